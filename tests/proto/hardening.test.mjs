// Issue #11 hardening: JSON documents (depth and size caps, documents from older builds),
// bounded attribute updates, and message text that is not UTF-8. docs/security.md "Limits
// and their defaults" lists each limit with the test here that covers it; the query-cost
// budget is in query-cost.test.mjs.
// protocol.md §3.4, §3.5, §3.6, §3.14, §3.18, §6, §7.1.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  assertError, closeAll, encode, session, startConv, uid, withServer,
} from '../lib/proto-client.mjs';
import { startServer } from '../lib/server.mjs';
import { TEXT, bystander, memKb, rssSampler } from '../lib/issue4-util.mjs';

let server;
before(async () => { server = await startServer({ env: { TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0', TERN_MAX_FRAME: '1048576' } }); });
after(async () => { await closeAll(server); await server.stop(); });

/** JSON text of an array nested n levels deep ([] is 1). */
const nest = (n) => '['.repeat(n) + ']'.repeat(n);
/** An attr object whose own level counts: {"k": <n-1 deep>} is n levels deep. */
const attrOf = (n) => `{"k":${nest(n - 1)}}`;

/** One REST call with the master key; returns {status, body}. */
async function api(srv, method, path, { body, raw } = {}) {
  const res = await fetch(srv.httpUrl + path, {
    method,
    headers: { 'Content-Type': 'application/json', 'X-LC-Id': srv.appId, 'X-LC-Key': `${srv.masterKey},master` },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await res.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch { parsed = text; }
  return { status: res.status, body: parsed };
}

function assert400(r, what, re) {
  assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
  assert.equal(typeof r.body.code, 'number', what);
  assert.ok(typeof r.body.error === 'string' && r.body.error.length > 0, `${what}: a message`);
  if (re) assert.match(r.body.error, re, what);
}

const update = (c, cid, attr, i) => c.request({ cmd: 'conv', op: 'update', ...(i ? { i } : {}), convMessage: { cid, attr: { data: typeof attr === 'string' ? attr : JSON.stringify(attr) } } });
const start = (c, m, attr, i) => c.request({ cmd: 'conv', op: 'start', ...(i ? { i } : {}), convMessage: { m, attr: { data: attr } } });

async function query(c, where) {
  const r = await c.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify(where) } } }, 10000);
  assert.equal(r.cmd, 'conv', JSON.stringify(r));
  assert.equal(r.op, 'results', JSON.stringify(r));
  return JSON.parse(r.convMessage.results.data);
}

/** Stops a server a test started itself, whatever state the test left it in. */
async function stopQuietly(srv) {
  if (!srv) return;
  await closeAll(srv);
  await srv.stop({ keepData: true }).catch(() => {});
}

/** Runs one SQL statement on a stopped server's database with the sqlite3 CLI. */
function sql(dir, statement) {
  return execFileSync('sqlite3', [join(dir, 'tern.db'), statement], { encoding: 'utf8' }).trim();
}

/** A command's frame with the bytes of `placeholder` (in a string field) replaced by `bytes`
 * of the same length: how a client puts ill-formed UTF-8 where protobuf wants a string. */
function frameWith(cmd, placeholder, bytes) {
  const buf = encode(cmd);
  const at = buf.indexOf(Buffer.from(placeholder));
  assert.ok(at >= 0 && bytes.length === Buffer.byteLength(placeholder));
  bytes.copy(buf, at);
  return buf;
}

// ---------------------------------------------------------------- point 2: depth

describe('§2 JSON nesting: 64 levels at most in every document the server accepts', () => {
  test('conv start: attr 64 levels deep is accepted, 65 gets 4301 with a reason', async () => {
    const A = await session(server, uid('A'));
    const ok = await start(A, [uid('B')], attrOf(64));
    assert.equal(ok.op, 'started', JSON.stringify(ok));
    const r = await start(A, [uid('B')], attrOf(65), 11);
    assertError(r, 11, 4301, 'CONVERSATION_API_FAILED');
    assert.match(r.errorMessage.detail, /nested deeper than 64 levels/);
  });

  test('conv update: a value 65 levels deep, or a dotted key plus value past 64, gets 4306; the document is unchanged', async () => {
    const A = await session(server, uid('A'));
    const { cid } = await startConv(A, [uid('B')], { attr: { data: '{"name":"kept"}' } });
    let r = await update(A, cid, attrOf(65), 21);
    assertError(r, 21, 4306, 'CONVERSATION_UPDATE_FAILED');
    assert.match(r.errorMessage.detail, /nested deeper than 64/);
    // 60 key segments + a value 5 deep = 65 levels of document
    const key = Array.from({ length: 60 }, (_, k) => `s${k}`).join('.');
    r = await update(A, cid, `{"${key}":${nest(5)}}`, 22);
    assertError(r, 22, 4306, 'CONVERSATION_UPDATE_FAILED');
    assert.match(r.errorMessage.detail, /nested deeper than 64/);
    // 59 + 5 = 64 is fine
    const key59 = Array.from({ length: 59 }, (_, k) => `s${k}`).join('.');
    assert.equal((await update(A, cid, `{"${key59}":${nest(5)}}`)).op, 'updated');
    const [doc] = await query(A, { objectId: cid });
    assert.equal(doc.name, 'kept');
    assert.ok(doc.s0, 'the 64-level update landed');
  });

  test('REST: bodies nested deeper than 64 levels get 400 (create, update, send with push_data)', async () => {
    const A = await session(server, uid('A'));
    const { cid } = await startConv(A, [uid('B')]);
    assert400(await api(server, 'POST', '/1.2/rtm/conversations', { raw: `{"name":"d","m":["x"],"deep":${nest(64)}}` }), 'create 65 deep');
    assert400(await api(server, 'PUT', `/1.2/rtm/conversations/${cid}`, { raw: `{"deep":${nest(64)}}` }), 'update 65 deep');
    assert400(await api(server, 'POST', `/1.2/rtm/conversations/${cid}/messages`, { raw: `{"from_client":"${A.peer}","message":"x","push_data":${attrOf(64)}}` }), 'push_data 65 deep');
    const created = await api(server, 'POST', '/1.2/rtm/conversations', { raw: `{"name":"d","m":["x"],"deep":${nest(63)}}` });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  });

  test('direct: pushData nested deeper than 64 levels gets 4114; 64 levels is sent', async () => {
    const A = await session(server, uid('A'));
    const { cid } = await startConv(A, [uid('B')]);
    const r = await A.request({ cmd: 'direct', i: 31, directMessage: { cid, msg: TEXT('p'), pushData: attrOf(65) } });
    assertError(r, 31, 4114, 'UNPARSEABLE_RAW_MESSAGE');
    assert.equal((await A.request({ cmd: 'direct', directMessage: { cid, msg: TEXT('p'), pushData: attrOf(64) } })).cmd, 'ack');
  });
});

// ---------------------------------------------------------------- point 2: size

describe('§2 conversation document size: max_conv_doc (64 KiB by default)', () => {
  test('conv start over the cap gets 4301; updates that would pass it get 4306 and change nothing; Deletes still work', async () => {
    const A = await session(server, uid('A'));
    const big = 'x'.repeat(66 * 1024);
    const r = await start(A, [uid('B')], JSON.stringify({ big }), 41);
    assertError(r, 41, 4301, 'CONVERSATION_API_FAILED');
    assert.match(r.errorMessage.detail, /max_conv_doc/);
    const { cid } = await startConv(A, [uid('B')]);
    const chunk = 'y'.repeat(20 * 1024);
    for (const k of ['a', 'b', 'e']) assert.equal((await update(A, cid, { [k]: chunk })).op, 'updated');
    const over = await update(A, cid, { d: chunk, name: 'not applied' }, 42);
    assertError(over, 42, 4306, 'CONVERSATION_UPDATE_FAILED');
    assert.match(over.errorMessage.detail, /max_conv_doc/);
    // growing with an operator is refused the same way
    assertError(await update(A, cid, { list: { __op: 'Add', objects: [chunk] } }, 43), 43, 4306, 'CONVERSATION_UPDATE_FAILED');
    let [doc] = await query(A, { objectId: cid });
    assert.equal(doc.name, undefined, 'nothing of the refused update was applied');
    assert.equal(doc.d, undefined);
    assert.equal(doc.list, undefined);
    // replacing a value by a smaller one, and deleting, are fine
    assert.equal((await update(A, cid, { a: { __op: 'Delete' }, name: 'fits' })).op, 'updated');
    assert.equal((await update(A, cid, { d: chunk })).op, 'updated');
    [doc] = await query(A, { objectId: cid });
    assert.equal(doc.name, 'fits');
    assert.equal(doc.a, undefined);
    assert.equal(doc.d.length, chunk.length);
  });

  test('REST create and update past the cap get 400', async () => {
    const big = 'z'.repeat(70 * 1024);
    assert400(await api(server, 'POST', '/1.2/rtm/conversations', { body: { name: 'big', m: ['x'], big } }), 'create', /max_conv_doc/);
    const made = await api(server, 'POST', '/1.2/rtm/conversations', { body: { name: 'small', m: ['x'] } });
    assert.equal(made.status, 201);
    const half = 'w'.repeat(40 * 1024);
    assert.equal((await api(server, 'PUT', `/1.2/rtm/conversations/${made.body.objectId}`, { body: { one: half } })).status, 200);
    assert400(await api(server, 'PUT', `/1.2/rtm/conversations/${made.body.objectId}`, { body: { two: half } }), 'update', /max_conv_doc/);
  });

  test('max_conv_doc is an option', () => withServer({ TERN_MAX_CONV_DOC: '2048' }, async (srv) => {
    const A = await session(srv, uid('A'));
    assertError(await start(A, [uid('B')], JSON.stringify({ s: 'q'.repeat(3000) }), 5), 5, 4301, 'CONVERSATION_API_FAILED');
    assert.equal((await start(A, [uid('B')], JSON.stringify({ s: 'q'.repeat(1500) }))).op, 'started');
  }));
});

// ---------------------------------------------------------------- point 2: older documents

describe('§2 documents stored by older builds (planted with sqlite3)', () => {
  test('a conversation whose document SQLite cannot parse (2,010 levels) is skipped by queries instead of failing them for everyone; it takes only Deletes until it fits', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tern-deep-'));
    const files = mkdtempSync(join(tmpdir(), 'tern-deep-doc-'));
    let srv;
    try {
      srv = await startServer({ dataDir: dir });
      const [a, b] = [uid('A'), uid('B')];
      let A = await session(srv, a);
      const good = (await startConv(A, [b], { attr: { data: '{"topic":"tea","level":1}' } })).cid;
      const bad = (await startConv(A, [b], { attr: { data: '{"topic":"tea","level":2}' } })).cid;
      await A.close();
      await srv.stop({ keepData: true });
      // what an older build let a client store: an attr nested 2,010 levels deep
      const doc = JSON.parse(sql(dir, `SELECT doc FROM conv WHERE cid = '${bad}'`));
      const text = JSON.stringify(doc).slice(0, -1) + `,"attr":${nest(2010)}}`;
      const file = join(files, 'doc.json');
      writeFileSync(file, text);
      sql(dir, `UPDATE conv SET doc = readfile('${file}') WHERE cid = '${bad}'`);
      assert.equal(sql(dir, `SELECT json_valid(doc) FROM conv WHERE cid = '${bad}'`), '0', 'SQLite cannot parse it');

      srv = await startServer({ dataDir: dir });
      A = await session(srv, a);
      // every kind of document condition, and a sort on a document field
      assert.deepEqual((await query(A, { topic: 'tea' })).map((c) => c.objectId), [good]);
      assert.deepEqual((await query(A, { level: { $gte: 1 } })).map((c) => c.objectId), [good]);
      assert.deepEqual((await query(A, { topic: { $regex: '^te' } })).map((c) => c.objectId), [good]);
      assert.deepEqual((await query(A, { topic: { $ne: 'coffee' }, m: a })).map((c) => c.objectId), [good]);
      const sorted = await A.request({ cmd: 'conv', op: 'query', convMessage: { sort: 'level', where: { data: JSON.stringify({ m: a }) } } });
      assert.equal(sorted.op, 'results', JSON.stringify(sorted));
      const rest = await api(srv, 'GET', `/1.2/rtm/conversations?where=${encodeURIComponent(JSON.stringify({ topic: 'tea' }))}`);
      assert.equal(rest.status, 200, JSON.stringify(rest.body));
      assert.deepEqual(rest.body.results.map((c) => c.objectId), [good]);
      // the bad document takes no new values, but deleting the deep field repairs it
      const refused = await update(A, bad, { topic: 'coffee' }, 51);
      assertError(refused, 51, 4306, 'CONVERSATION_UPDATE_FAILED');
      assert.match(refused.errorMessage.detail, /only Delete/);
      assert.equal((await update(A, bad, { attr: { __op: 'Delete' } })).op, 'updated');
      assert.deepEqual((await query(A, { topic: 'tea' })).map((c) => c.objectId).sort(), [good, bad].sort());
      assert.equal((await update(A, bad, { topic: 'coffee' })).op, 'updated');
      assert.deepEqual((await query(A, { topic: 'coffee' })).map((c) => c.objectId), [bad]);
      await A.close();
      await srv.stop({ keepData: true });
      assert.equal(sql(dir, `SELECT json_extract(doc, '$.topic') FROM conv WHERE cid = '${bad}'`), 'coffee', 'stored');
    } finally {
      await stopQuietly(srv);
      rmSync(dir, { recursive: true, force: true });
      rmSync(files, { recursive: true, force: true });
    }
  });
});

describe('§2 documents over max_conv_doc from older builds', () => {
  test('a 200 KB document (default cap 64 KiB) takes only Deletes; once under the cap, updates work again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tern-bigold-'));
    let srv;
    try {
      srv = await startServer({ dataDir: dir });
      const a = uid('A');
      let A = await session(srv, a);
      const { cid } = await startConv(A, [uid('B')], { attr: { data: '{"name":"old"}' } });
      await A.close();
      await srv.stop({ keepData: true });
      sql(dir, `UPDATE conv SET doc = json_set(doc, '$.blob', printf('%.*c', 200000, 'b')) WHERE cid = '${cid}'`);
      srv = await startServer({ dataDir: dir });
      A = await session(srv, a);
      for (const attr of [{ name: 'x' }, { name: { __op: 'Delete' }, other: 1 }, { blob: 'small' }]) {
        const r = await update(A, cid, attr, 71);
        assertError(r, 71, 4306, 'CONVERSATION_UPDATE_FAILED');
        assert.match(r.errorMessage.detail, /only Delete/, JSON.stringify(attr));
      }
      assert.equal((await update(A, cid, { name: { __op: 'Delete' } })).op, 'updated', 'a Delete is taken');
      assert.equal((await update(A, cid, { blob: { __op: 'Delete' } })).op, 'updated');
      assert.equal((await update(A, cid, { name: 'new' })).op, 'updated', 'under the cap: updates work');
      const [doc] = await query(A, { objectId: cid });
      assert.equal(doc.name, 'new');
      assert.equal(doc.blob, undefined);
      await A.close();
      await srv.stop();
    } finally {
      await stopQuietly(srv);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------- point 3: bounded updates

describe('§3 attribute updates cost what they change', () => {
  // Before: 300 such updates took the server to 2.4 GB and held unrelated acks ~23 s.
  test('300 two-byte updates of an 8 MB document: memory stays flat, a bystander\'s round trips stay fast, every update lands', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tern-bigdoc-'));
    // a cap that admits the document, so the updates are real work, not refusals; a small
    // ASan quarantine, so freed blocks (SQLite's 8 MB rewrites) do not count as memory held
    const env = {
      TERN_MAX_CONV_DOC: '16777216', TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0',
      ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0:exitcode=23:quarantine_size_mb=16',
    };
    let srv;
    try {
      srv = await startServer({ dataDir: dir, env });
      const [a, b] = [uid('A'), uid('B')];
      let A = await session(srv, a);
      const { cid } = await startConv(A, [b]);
      await A.close();
      await srv.stop({ keepData: true });
      sql(dir, `UPDATE conv SET doc = json_set(doc, '$.big', printf('%.*c', 8000000, 'x')) WHERE cid = '${cid}'`);

      srv = await startServer({ dataDir: dir, env });
      A = await session(srv, a);
      assert.equal((await update(A, cid, { n: 0 })).op, 'updated'); // loads the document once
      const by = await bystander(srv, { intervalMs: 20, maxRoundMs: 2000, label: 'bigdoc' });
      const base = memKb(srv.child.pid).rss;
      const sampler = rssSampler(srv.child.pid, 20);
      const N = 300;
      const is = [];
      for (let k = 1; k <= N; k++) is.push(A.send({ cmd: 'conv', op: 'update', convMessage: { cid, attr: { data: `{"n":${k % 10}}` } } }));
      const replies = await Promise.all(is.map((i) => A.reply(i, 60000)));
      const { max } = sampler.stop();
      assert.deepEqual([...new Set(replies.map((r) => r.op ?? r.cmd))], ['updated'], 'every update is acknowledged');
      await by.check({ minRounds: 5 });
      const grewMb = (max - base) / 1024;
      assert.ok(grewMb < 100, `RSS grew by ${grewMb.toFixed(0)} MB during the updates (was ${(base / 1024).toFixed(0)} MB)`);
      await A.close();
      await srv.stop({ keepData: true });
      // (read back with sqlite3: an 8 MB reply would pass the output limit)
      assert.equal(sql(dir, `SELECT json_extract(doc, '$.n') || ' ' || length(json_extract(doc, '$.big')) FROM conv WHERE cid = '${cid}'`), `${N % 10} 8000000`);
    } finally {
      await stopQuietly(srv);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('updates of nested paths, operators and several keys at once are stored as applied (restart reads them back)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tern-paths-'));
    let srv;
    try {
      srv = await startServer({ dataDir: dir });
      const a = uid('A');
      let A = await session(srv, a);
      const { cid } = await startConv(A, [uid('B')], { attr: { data: '{"keep":1,"num":5,"obj":{"x":1,"y":2},"scalar":3,"list":[1]}' } });
      const steps = [
        { 'obj.x': 10, 'obj.z.w': 'new', 'scalar.inner': true, 'fresh.a.b': [1, { c: 2 }] },
        { num: { __op: 'Increment', amount: 2 }, list: { __op: 'AddUnique', objects: [1, 2, 3] }, 'obj.y': { __op: 'Delete' } },
        { list: { __op: 'Remove', objects: [2] }, 'k"q': 'quoted', 'we[ird': 1, 'odd"[': 2, 'absent.path': { __op: 'Delete' } },
      ];
      for (const s of steps) assert.equal((await update(A, cid, s)).op, 'updated', JSON.stringify(s));
      const expected = {
        keep: 1, num: 7, obj: { x: 10, z: { w: 'new' } }, scalar: { inner: true }, list: [1, 3], fresh: { a: { b: [1, { c: 2 }] } },
        'k"q': 'quoted', 'we[ird': 1, 'odd"[': 2,
      };
      const pick = (d) => Object.fromEntries(Object.keys(expected).map((k) => [k, d[k]]));
      const [live] = await query(A, { objectId: cid });
      assert.deepEqual(pick(live), expected, 'the cached document');
      assert.equal(live.absent, undefined, 'deleting a missing path creates nothing');
      await A.close();
      await srv.stop({ keepData: true });
      srv = await startServer({ dataDir: dir });
      A = await session(srv, a);
      const [stored] = await query(A, { objectId: cid });
      assert.deepEqual(pick(stored), expected, 'the stored document');
      assert.equal(stored.absent, undefined);
      await A.close();
      await srv.stop();
    } finally {
      await stopQuietly(srv);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a key with a quote, a backslash or a control character, set alone, is stored under its own name', async () => {
    // SQLite 3.40's json_set creates a new key from an escaped path label without unescaping
    // it, so such keys were stored as k\"q (unless another key in the same update made the
    // whole document go); the backend now edits such keys itself
    const dir = mkdtempSync(join(tmpdir(), 'tern-keys-'));
    let srv;
    try {
      srv = await startServer({ dataDir: dir });
      const a = uid('A');
      let A = await session(srv, a);
      const { cid } = await startConv(A, [uid('B')], { attr: { data: '{"keep":1}' } });
      const keys = ['k"q', 'b\\s', 't\tn', 'plain'];
      for (const [i, k] of keys.entries()) assert.equal((await update(A, cid, { [k]: i })).op, 'updated', k);
      const expected = Object.fromEntries([['keep', 1], ...keys.map((k, i) => [k, i])]);
      await A.close();
      await srv.stop({ keepData: true });
      srv = await startServer({ dataDir: dir });
      A = await session(srv, a);
      const [stored] = await query(A, { objectId: cid });
      const pick = (d) => Object.fromEntries(Object.keys(d).filter((k) => k in expected || /["\\\t]/.test(k)).map((k) => [k, d[k]]));
      assert.deepEqual(pick(stored), expected, 'the stored document');
      // and each is found by a query on it
      for (const [i, k] of keys.entries()) assert.equal((await query(A, { objectId: cid, [k]: i })).length, 1, k);
      await A.close();
      await srv.stop();
    } finally {
      await stopQuietly(srv);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------- point 12: UTF-8

describe('§12 message text is UTF-8 or refused', () => {
  const BAD = Buffer.from([0x61, 0xff, 0xfe, 0x62, 0xc3, 0x28, 0xed, 0xa0, 0x80]); // stray, truncated, surrogate
  const HOLE = 'PLACEHOLDER'.slice(0, BAD.length);

  test('direct with ill-formed UTF-8 in msg gets 4114 and is not delivered or stored; binaryMsg carries any bytes', async () => {
    const [a, b] = [uid('A'), uid('B')];
    const A = await session(server, a);
    const B = await session(server, b);
    const { cid } = await startConv(A, [b]);
    const mark = B.mark();
    A.sendRaw(frameWith({ cmd: 'direct', i: 61, directMessage: { cid, msg: HOLE } }, HOLE, BAD));
    const r = await A.reply(61);
    assertError(r, 61, 4114, 'UNPARSEABLE_RAW_MESSAGE');
    assert.match(r.errorMessage.detail, /UTF-8/);
    const ok = await A.request({ cmd: 'direct', directMessage: { cid, binaryMsg: BAD } });
    assert.equal(ok.cmd, 'ack');
    await B.next((p) => p.cmd === 'direct' && p.directMessage.id === ok.ackMessage.uid);
    assert.deepEqual(B.since(mark).filter((p) => p.cmd === 'direct').length, 1, 'only the binary message arrived');
    const rest = await api(server, 'GET', `/1.2/rtm/conversations/${cid}/messages`);
    assert.equal(rest.status, 200);
    assert.equal(rest.body.length, 1);
    assert.equal(rest.body[0].bin, true);
    assert.deepEqual(Buffer.from(rest.body[0].data, 'base64'), BAD);
  });

  test('patch (edit) with ill-formed UTF-8 gets 4114 and leaves the message as it was', async () => {
    const A = await session(server, uid('A'));
    const { cid } = await startConv(A, [uid('B')]);
    const m = await A.request({ cmd: 'direct', directMessage: { cid, msg: TEXT('original') } });
    A.sendRaw(frameWith({ cmd: 'patch', op: 'modify', i: 62, patchMessage: { patches: [{ cid, mid: m.ackMessage.uid, timestamp: m.ackMessage.t, data: HOLE }] } }, HOLE, BAD));
    assertError(await A.reply(62), 62, 4114, 'UNPARSEABLE_RAW_MESSAGE');
    const logs = await A.request({ cmd: 'logs', logsMessage: { cid, l: 5 } });
    assert.deepEqual(logs.logsMessage.logs.map((x) => x.data), [TEXT('original')]);
  });

  test('REST send with ill-formed UTF-8 in the body gets 400', async () => {
    const A = await session(server, uid('A'));
    const { cid } = await startConv(A, [uid('B')]);
    const body = Buffer.concat([Buffer.from(`{"from_client":"${A.peer}","message":"`), BAD, Buffer.from('"}')]);
    const res = await fetch(`${server.httpUrl}/1.2/rtm/conversations/${cid}/messages`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master` },
      body,
    });
    assert.equal(res.status, 400, await res.text());
  });

  test('history rows an older build stored with ill-formed text reach REST history (U+FFFD), never vanish', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tern-utf8-'));
    let srv;
    try {
      srv = await startServer({ dataDir: dir });
      const a = uid('A');
      let A = await session(srv, a);
      const { cid } = await startConv(A, [uid('B')]);
      for (const t of ['one', 'two', 'three']) assert.equal((await A.request({ cmd: 'direct', directMessage: { cid, msg: t } })).cmd, 'ack');
      await A.close();
      await srv.stop({ keepData: true });
      // as an older build stored it: the middle message's text with bytes that are not UTF-8
      // (in msg or in a hot table it has not moved out of yet: docs/architecture.md)
      const bad = Buffer.concat([Buffer.from('tw'), BAD]).toString('hex');
      sql(dir, ['msg', 'msg_hot0', 'msg_hot1'].map((t) => `UPDATE ${t} SET data = X'${bad}' WHERE CAST(data AS TEXT) = 'two';`).join(''));
      srv = await startServer({ dataDir: dir });
      const convHist = await api(srv, 'GET', `/1.2/rtm/conversations/${cid}/messages`);
      assert.equal(convHist.status, 200);
      assert.equal(convHist.body.length, 3, JSON.stringify(convHist.body));
      const texts = convHist.body.map((x) => x.data);
      assert.ok(texts.includes('one') && texts.includes('three'), JSON.stringify(texts));
      const mangled = texts.find((t) => t.startsWith('tw'));
      assert.equal(mangled, 'twa\uFFFD\uFFFDb\uFFFD(\uFFFD', 'ill-formed bytes read as U+FFFD');
      const appHist = await api(srv, 'GET', '/1.2/rtm/messages?limit=10');
      assert.equal(appHist.status, 200);
      assert.equal(appHist.body.filter((x) => x['conv-id'] === cid).length, 3, 'app-wide history keeps it too');
      A = await session(srv, a);
      const [conv] = await (async () => {
        const r = await A.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) }, flag: 2 } });
        return JSON.parse(r.convMessage.results.data);
      })();
      assert.equal(conv.msg, 'three', 'last message shape intact');
      await A.close();
      await srv.stop();
    } finally {
      await stopQuietly(srv);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

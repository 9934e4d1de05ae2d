// The rows of docs/security.md "Limits and their defaults" that no other test covered (issue
// #11, last acceptance line): each test drives one limit with raw frames or plain HTTP,
// asserts the exact code or status one step past it and that at the limit the request is
// accepted. Limits that are options run on a ternd of their own with the option lowered
// through TERN_* (a 60 s sign_ttl instead of 6 h); fixed ones run at their real value.
// Every test names its row; docs/security.md names the test back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import {
  assertError, connect, login, session, startConv, uid, withServer,
} from '../lib/proto-client.mjs';
import { httpRequest } from '../lib/proto-raw.mjs';
import { TEXT, drainUntilClosed, sleep, tcp } from '../lib/issue4-util.mjs';

const MASTER = (srv) => ({ 'X-LC-Id': srv.appId, 'X-LC-Key': `${srv.masterKey},master` });
const hex24 = () => randomBytes(12).toString('hex');

/** POST /1.2/import/records with NDJSON lines; resolves {status, json}. */
function importRecords(srv, records) {
  const body = records.map((r) => JSON.stringify(r)).join('\n');
  return httpRequest(srv, {
    method: 'POST', path: '/1.2/import/records', body,
    headers: { ...MASTER(srv), 'Content-Type': 'application/x-ndjson', 'Content-Length': Buffer.byteLength(body) },
  });
}

// ---------------------------------------------------------------- shut-up list, blacklist: 500

test('shut-up list and blacklist (fixed 500): the 500th id is taken, the 501st is in failedPids with 4561 / 4543', () =>
  withServer({ TERN_MAX_CONN_RATE: '0', TERN_MAX_CLIENT_RATE: '0' }, async (srv) => {
    const owner = await session(srv, uid('own'));
    const cid = (await startConv(owner, [uid('m')])).cid;
    const ids = Array.from({ length: 501 }, (_, k) => `lt-${k}`);
    for (const [op, cmd, field, reply, code, reason] of [
      ['add_shutup', 'conv', 'convMessage', 'shutup_added', 4561, 'SILIENCED_MEMBER_LIST_FULL'],
      ['block', 'blacklist', 'blacklistMessage', 'blocked', 4543, 'BLACKLIST_FULL'],
    ]) {
      const msg = (m) => (cmd === 'conv' ? { cid, m } : { srcCid: cid, toPids: m });
      // 499, then the 500th alone: at the limit it is still taken
      let r = await owner.request({ cmd, op, [field]: msg(ids.slice(0, 499)) }, 20000);
      assert.equal(r.op, reply, JSON.stringify(r).slice(0, 300));
      r = await owner.request({ cmd, op, [field]: msg([ids[499]]) });
      assert.equal(r.op, reply, JSON.stringify(r));
      assert.deepEqual(r[field].allowedPids, [ids[499]], `${op}: the 500th is taken`);
      assert.equal(r[field].failedPids, undefined, `${op}: nothing failed at 500`);
      // one past it: refused for that id, the ids already in still succeed (no change)
      r = await owner.request({ cmd, op, [field]: msg([ids[0], ids[500]]) });
      assert.equal(r.op, reply, JSON.stringify(r));
      assert.deepEqual(r[field].allowedPids, [ids[0]]);
      assert.deepEqual(r[field].failedPids, [{ code, reason, pids: [ids[500]] }], `${op}: the 501st`);
    }
    const q = await owner.request({ cmd: 'conv', op: 'check_shutup', convMessage: { cid, m: [ids[0], ids[499], ids[500]] } });
    assert.deepEqual(q.convMessage.m, [ids[0], ids[499]], 'the shut-up list holds the 1st and the 500th, not the 501st');
  }));

// ---------------------------------------------------------------- will messages: 16

test('will messages per session (fixed 16): the 16th is acked, the 17th gets 4116 and is not kept; the 16 go out when the connection drops', () =>
  withServer({}, async (srv) => {
    const [a, b] = [uid('willA'), uid('willB')];
    const A = await session(srv, a);
    const B = await session(srv, b);
    const cid = (await startConv(A, [b])).cid;
    for (let k = 0; k < 16; k++) {
      const r = await A.request({ cmd: 'direct', directMessage: { cid, msg: TEXT(`will ${k}`), will: true } });
      assert.equal(r.cmd, 'ack', `will ${k}: ${JSON.stringify(r)}`);
    }
    const i = A.send({ cmd: 'direct', directMessage: { cid, msg: TEXT('will 16'), will: true } });
    const r = await A.reply(i);
    assertError(r, i, 4116, 'MESSAGE_SENT_QUOTA_EXCEEDED');
    assert.equal(r.errorMessage.detail, 'too many will messages on this session');
    A.ws._socket.destroy(); // dropped without a goodbye: the wills are sent
    const got = new Set();
    while (got.size < 16) {
      const p = await B.next((x) => x.cmd === 'direct');
      got.add(JSON.parse(p.directMessage.msg)._lctext);
    }
    assert.deepEqual([...got].sort(), Array.from({ length: 16 }, (_, k) => `will ${k}`).sort());
    await B.echo();
    assert.ok(!B.pending().some((p) => p.cmd === 'direct' && p.directMessage.msg.includes('will 16')), 'the 17th was not kept');
  }));

// ---------------------------------------------------------------- session query: 20 ids

test('session query (fixed 20 ids): with 20 ids every online one is answered; past 20 the later ids are not looked at', () =>
  withServer({}, async (srv) => {
    const c = await connect(srv);
    const ids = Array.from({ length: 25 }, () => uid('on'));
    for (const id of ids) await login(c, id);
    const q = async (list) => {
      const r = await c.request({ cmd: 'session', op: 'query', peerId: ids[0], sessionMessage: { sessionPeerIds: list } });
      assert.equal(r.op, 'query_result', JSON.stringify(r));
      return r.sessionMessage?.onlineSessionPeerIds ?? [];
    };
    assert.deepEqual(await q(ids.slice(0, 20)), ids.slice(0, 20), 'at the limit: all 20 online');
    assert.deepEqual(await q(ids), ids.slice(0, 20), 'past it: the last 5 (online too) are ignored');
    assert.deepEqual(await q(ids.slice(5)), ids.slice(5), 'they are online');
  }));

// ---------------------------------------------------------------- pages: logs, conv query, REST lists, class reads

test('pages of 1,000 (fixed): logs, conv query and the REST conversation list, history and class reads cap a larger limit at 1,000; classes default to 100 and take any skip', () =>
  withServer({ TERN_QUERY_TIMEOUT: '20000' }, async (srv) => {
    // 1,001 conversations of one member, the first with 1,001 messages: one import request
    const me = uid('pages');
    const cids = Array.from({ length: 1001 }, hex24);
    const T0 = Date.parse('2024-03-01T08:00:00.000Z');
    const recs = cids.map((cid) => ({ type: 'conversation', objectId: cid, m: [me, 'other'], c: me }));
    for (let k = 0; k < 1001; k++) recs.push({ type: 'message', cid: cids[0], 'msg-id': `pg-${k}`, timestamp: T0 + k, from: me, data: TEXT(`#${k}`) });
    const imp = await importRecords(srv, recs);
    assert.equal(imp.status, 200, imp.body.slice(0, 300));
    assert.equal(imp.json.applied, 2002, imp.body.slice(0, 300));
    const c = await session(srv, me);
    // logs
    for (const [limit, want] of [[1000, 1000], [1001, 1000], [5000, 1000]]) {
      const r = await c.request({ cmd: 'logs', logsMessage: { cid: cids[0], limit } }, 20000);
      assert.equal(r.cmd, 'logs', JSON.stringify(r).slice(0, 300));
      assert.equal(r.logsMessage.logs.length, want, `logs limit ${limit}`);
    }
    // conv query (WebSocket)
    for (const [limit, want] of [[1000, 1000], [1001, 1000]]) {
      const r = await c.request({ cmd: 'conv', op: 'query', convMessage: { limit, where: { data: JSON.stringify({ m: me }) } } }, 20000);
      assert.equal(r.op, 'results', JSON.stringify(r).slice(0, 300));
      assert.equal(JSON.parse(r.convMessage.results.data).length, want, `conv query limit ${limit}`);
    }
    // REST: the conversation list and the class read
    const get = async (path) => {
      const r = await httpRequest(srv, { path, headers: MASTER(srv) });
      assert.equal(r.status, 200, `${path}: ${r.body.slice(0, 300)}`);
      return r.json.results;
    };
    assert.equal((await get('/1.2/rtm/conversations?limit=1000')).length, 1000);
    assert.equal((await get('/1.2/rtm/conversations?limit=1001')).length, 1000);
    const history = async (q) => {
      const r = await httpRequest(srv, { path: `/1.2/rtm/conversations/${cids[0]}/messages?${q}`, headers: MASTER(srv) });
      assert.equal(r.status, 200, r.body.slice(0, 300));
      return r.json;
    };
    assert.equal((await history('limit=1000')).length, 1000);
    assert.equal((await history('limit=1001')).length, 1000, 'REST history: 1,000 at most');
    assert.equal((await get('/1.1/classes/_Conversation?limit=1000')).length, 1000);
    assert.equal((await get('/1.1/classes/_Conversation?limit=1001')).length, 1000);
    assert.equal((await get('/1.1/classes/_Conversation')).length, 100, 'classes: 100 without a limit');
    assert.equal((await get('/1.1/classes/_Conversation?skip=1000&limit=5')).length, 1, 'skip within the cap counts');
    // skip past the cap (10,000,000) is taken as the cap: an empty page, not an error
    assert.deepEqual(await get('/1.1/classes/_Conversation?skip=10000001'), []);
    assert.deepEqual(await get('/1.1/classes/_Conversation?skip=99999999999999'), []);
  }));

// ---------------------------------------------------------------- import requests in flight: 8

test('import requests in flight (fixed 8, server-wide): of 14 sent at once the first 8 are taken, the rest get 429 {"code": 429} until an answer frees a slot', () =>
  withServer({}, async (srv) => {
    const cid = hex24();
    assert.equal((await importRecords(srv, [{ type: 'conversation', objectId: cid, m: ['u1', 'u2'], c: 'u1' }])).status, 200);
    // bodies of 4,000 messages: each takes the writer a while, so the 14 overlap
    const T0 = Date.parse('2024-03-01T08:00:00.000Z');
    const bodyOf = (j) => Array.from({ length: 4000 }, (_, k) => ({
      type: 'message', cid, 'msg-id': `fl-${j}-${k}`, timestamp: T0 + j * 10000 + k, from: 'u1', data: TEXT(`${j}/${k}`),
    }));
    const bodies = Array.from({ length: 14 }, (_, j) => bodyOf(j).map((r) => JSON.stringify(r)).join('\n'));
    // all heads and bodies written before any answer is read
    const socks = await Promise.all(bodies.map(() => tcp(srv)));
    const answers = socks.map((s) => drainUntilClosed(s, 30000));
    for (const [j, s] of socks.entries()) {
      s.write(`POST /1.2/import/records HTTP/1.1\r\nHost: x\r\nX-LC-Id: ${srv.appId}\r\nX-LC-Key: ${srv.masterKey},master\r\n`
        + `Content-Type: application/x-ndjson\r\nConnection: close\r\nContent-Length: ${Buffer.byteLength(bodies[j])}\r\n\r\n${bodies[j]}`);
    }
    const got = (await Promise.all(answers)).map((a) => a.data.toString());
    const status = got.map((t) => Number(/^HTTP\/1\.1 (\d{3})/.exec(t)?.[1]));
    const ok = status.filter((s) => s === 200).length;
    const busy = got.filter((t, k) => status[k] === 429);
    assert.equal(ok + busy.length, 14, `statuses: ${status}`);
    assert.ok(ok >= 8, `${ok} taken: at the limit, 8 are in flight at once`);
    assert.ok(busy.length >= 1, `none refused with 14 in flight (statuses ${status})`);
    for (const t of busy) {
      const json = JSON.parse(t.slice(t.indexOf('\r\n\r\n') + 4));
      assert.equal(json.code, 429);
      assert.match(json.error, /too many import requests at once/);
    }
    // the slots come back: a request after the answers is taken
    assert.equal((await importRecords(srv, bodyOf(99).slice(0, 10))).status, 200);
  }));

// ---------------------------------------------------------------- rehosted file: max_file_size

test('rehosted file PUT /1.2/import/files/{id} (max_file_size lowered to 1000): 1000 bytes stored, 1001 → 413 from the head', () =>
  withServer({ TERN_MAX_FILE_SIZE: '1000' }, async (srv) => {
    const put = (id, len) => httpRequest(srv, {
      method: 'PUT', path: `/1.2/import/files/${id}`, body: Buffer.alloc(len, 0x61),
      headers: { ...MASTER(srv), 'Content-Type': 'text/plain', 'Content-Length': len, 'X-Tern-File-Name': 'a.txt' },
    });
    const at = await put(hex24(), 1000);
    assert.equal(at.status, 200, at.body);
    assert.match(at.json.url, /\/files\//);
    const over = await put(hex24(), 1001);
    assert.equal(over.status, 413, over.body);
    assert.equal(over.json.code, 413);
    // decided from the head: an announced 1 GB body is refused before any of it is sent
    const s = await tcp(srv);
    s.write(`PUT /1.2/import/files/${hex24()} HTTP/1.1\r\nHost: x\r\nX-LC-Id: ${srv.appId}\r\nX-LC-Key: ${srv.masterKey},master\r\nContent-Length: 1000000000\r\n\r\n`);
    const { data, how } = await drainUntilClosed(s, 3000);
    assert.match(data.toString(), /^HTTP\/1\.1 413 /);
    assert.notEqual(how, 'timeout', 'and the connection is closed');
  }));

// ---------------------------------------------------------------- web_root: 512 files, 64 MiB, 8 levels

test('web_root (fixed 512 files, 64 MiB, folders 8 deep): at each limit ternd starts; one past it, it refuses to start and says why', async () => {
  const base = mkdtempSync(join(tmpdir(), 'tern-webcap-'));
  try {
    const tree = (name, make) => { const d = join(base, name); mkdirSync(d); make(d); return d; };
    const files = (n) => (d) => { for (let k = 0; k < n; k++) writeFileSync(join(d, `f${k}.txt`), 'x'); };
    const sparse = (bytes) => (d) => { writeFileSync(join(d, 'big.bin'), ''); truncateSync(join(d, 'big.bin'), bytes); };
    const deep = (levels) => (d) => {
      let p = d;
      for (let k = 0; k < levels; k++) { p = join(p, `d${k}`); mkdirSync(p); }
      writeFileSync(join(p, 'leaf.txt'), 'leaf');
    };
    const rows = [
      { name: '512 files', dir: tree('n512', files(512)), ok: true },
      { name: '513 files', dir: tree('n513', files(513)), err: /web_root: more than 512 files or 64 MiB/ },
      { name: '64 MiB', dir: tree('b64', sparse(64 << 20)), ok: true },
      { name: '64 MiB + 1', dir: tree('b65', sparse((64 << 20) + 1)), err: /web_root: more than 512 files or 64 MiB/ },
      { name: '8 levels of folders', dir: tree('d8', deep(8)), ok: true },
      { name: '9 levels of folders', dir: tree('d9', deep(9)), err: /web_root: .* is nested more than 8 deep/ },
    ];
    for (const row of rows) {
      if (row.ok) {
        const srv = await startServer({ env: { TERN_WEB_ROOT: row.dir } });
        try {
          assert.equal((await httpRequest(srv, { path: '/health' })).status, 200, row.name);
        } finally {
          await srv.stop();
        }
      } else {
        // (a ternd that starts after all is stopped, not left running, before the test fails)
        const started = await startServer({ env: { TERN_WEB_ROOT: row.dir } }).catch((e) => e);
        if (!(started instanceof Error)) await started.stop();
        assert.ok(started instanceof Error, `${row.name}: ternd started`);
        assert.match(started.message, row.err, row.name);
      }
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------- dead letters: limit ≤ 1,000

test('GET /1.2/tern/push/dead-letters (fixed limit ≤ 1,000): limit=1000 gives 1,000, limit=5000 still 1,000 with truncated: true', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tern-deadcap-'));
  writeFileSync(join(dir, 'push-dead-letter.jsonl'),
    Array.from({ length: 1500 }, (_, k) => `${JSON.stringify({ clientId: `c${k}` })}\n`).join(''));
  const srv = await startServer({ dataDir: dir });
  try {
    for (const limit of [1000, 1001, 5000]) {
      const r = await httpRequest(srv, { path: `/1.2/tern/push/dead-letters?limit=${limit}`, headers: MASTER(srv) });
      assert.equal(r.status, 200, r.body.slice(0, 200));
      assert.equal(r.json.results.length, 1000, `limit=${limit}`);
      assert.equal(r.json.results[0].clientId, 'c1499', 'newest first');
      assert.equal(r.json.truncated, true);
    }
  } finally {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------- sign_ttl

/** HMAC-SHA1 hex with the master key, as the app's signing server makes it (protocol.md §5). */
const sign = (srv, text) => createHmac('sha1', srv.masterKey).update(text).digest('hex');

test('sign_ttl (lowered to 60 s): a signature 50 s old is accepted; 70 s old (or 70 s ahead) → 4102 login, 4302 conv start, 4546 blacklist', () =>
  withServer({ TERN_SIGN_TTL: '60', TERN_SIGN_LOGIN: '1', TERN_SIGN_CONVERSATION: '1', TERN_SIGN_BLACKLIST: '1' }, async (srv) => {
    const now = Math.floor(Date.now() / 1000);
    const nonce = () => randomBytes(8).toString('hex');
    const loginCmd = (peer, t) => {
      const n = nonce();
      return { cmd: 'session', op: 'open', appId: srv.appId, peerId: peer,
        sessionMessage: { ua: 't', t, n, s: sign(srv, `${srv.appId}:${peer}::${t}:${n}`) } };
    };
    const me = uid('sig');
    for (const t of [now - 70, now + 70]) {
      const c = await connect(srv);
      const r = await c.request(loginCmd(me, t));
      assertError(r, r.i, 4102, 'SIGNATURE_FAILED');
      assert.equal(r.errorMessage.detail, 'signature timestamp outside the validity window');
    }
    const c = await connect(srv);
    assert.equal((await c.request(loginCmd(me, now - 50))).op, 'opened', 'at 50 s of 60 the login signature holds');
    // conversation start
    const other = uid('sigo');
    const startCmd = (t) => {
      const n = nonce();
      return { cmd: 'conv', op: 'start', convMessage: { m: [other], t, n, s: sign(srv, `${srv.appId}:${me}:${other}:${t}:${n}`) } };
    };
    let r = await c.request(startCmd(now - 70));
    assertError(r, r.i, 4302, 'CONVERSATION_SIGNATURE_FAILED');
    assert.equal(r.errorMessage.detail, 'signature timestamp outside the validity window');
    r = await c.request(startCmd(now - 50));
    assert.equal(r.op, 'started', JSON.stringify(r));
    const cid = r.convMessage.cid;
    // blacklist block by the owner
    const blockCmd = (t) => {
      const n = nonce();
      return { cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: cid, toPids: [other], t, n,
        s: sign(srv, `${srv.appId}:${me}:${cid}:${other}:${t}:${n}:conversation-block-clients`) } };
    };
    r = await c.request(blockCmd(now - 70));
    assertError(r, r.i, 4546, 'BLACKLIST_SIGNATURE_FAILED');
    assert.equal(r.errorMessage.detail, 'signature timestamp outside the validity window');
    r = await c.request(blockCmd(now - 50));
    assert.equal(r.op, 'blocked', JSON.stringify(r));
    assert.deepEqual(r.blacklistMessage.allowedPids, [other]);
  }));

// ---------------------------------------------------------------- session_ttl

/** A token as token.c seals it (st3: expiry s ‖ issued ms ‖ lineage ‖ HMAC-SHA256[0..16]). */
function sealToken(srv, client, expiresS, issuedMs, lineage = randomBytes(8)) {
  const head = Buffer.alloc(18);
  head.writeUInt32BE(expiresS, 0);
  head.writeUIntBE(issuedMs, 4, 6);
  lineage.copy(head, 10);
  const mac = createHmac('sha256', srv.masterKey)
    .update(Buffer.concat([Buffer.from(`st3:${srv.appId}\0${client}\0`), head])).digest().subarray(0, 16);
  return Buffer.concat([head, mac]).toString('base64url');
}

test('session_ttl (lowered to 60 s): a login\'s st lives 60 s (stTtl 60); past its expiry, or sealed to outlive session_ttl, r:true + st → 4112', () =>
  withServer({ TERN_SESSION_TTL: '60' }, async (srv) => {
    const me = uid('ttl');
    const c = await session(srv, me);
    const sm = c.openReply.sessionMessage;
    assert.equal(sm.stTtl, 60);
    const raw = Buffer.from(sm.st, 'base64url');
    const expires = raw.readUInt32BE(0) * 1000;
    const issued = raw.readUIntBE(4, 6);
    assert.ok(Math.abs(expires - issued - 60000) < 1000, `the token lives ${expires - issued} ms`);
    assert.equal(sealToken(srv, me, raw.readUInt32BE(0), issued, raw.subarray(10, 18)), sm.st, 'the test seals tokens as ternd does');
    const resume = async (st) => {
      const s = await connect(srv);
      return s.request({ cmd: 'session', op: 'open', appId: srv.appId, peerId: me, sessionMessage: { ua: 't', r: true, st } });
    };
    const nowS = Math.floor(Date.now() / 1000);
    // within the lifetime: resumes (a token 30 s old, 30 s to go)
    assert.equal((await resume(sealToken(srv, me, nowS + 30, Date.now() - 30000))).op, 'opened');
    // past it: expired
    let r = await resume(sealToken(srv, me, nowS - 1, Date.now() - 61000));
    assertError(r, r.i, 4112, 'SESSION_TOKEN_EXPIRED');
    assert.equal(r.errorMessage.detail, 'session token expired');
    // one that would outlive today's session_ttl (issued under a longer one) is refused too
    r = await resume(sealToken(srv, me, nowS + 3600, Date.now()));
    assertError(r, r.i, 4112, 'SESSION_TOKEN_EXPIRED');
    assert.equal(r.errorMessage.detail, 'session token revoked');
  }));

// ---------------------------------------------------------------- the whole HTTP request: idle_timeout

test('an HTTP request must be whole within idle_timeout (lowered to 3 s; head within login_timeout 1 s): a body trickled past it is cut, one finished in time is answered', () =>
  withServer({ TERN_IDLE_TIMEOUT: '3', TERN_LOGIN_TIMEOUT: '1' }, async (srv) => {
    const body = JSON.stringify({ name: 'x'.repeat(40), m: ['a'] });
    const trickle = async (everyMs) => {
      const s = await tcp(srv);
      const t0 = Date.now();
      s.write(`POST /1.2/rtm/conversations HTTP/1.1\r\nHost: x\r\nX-LC-Id: ${srv.appId}\r\nX-LC-Key: ${srv.masterKey},master\r\n`
        + `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
      const res = drainUntilClosed(s, 8000);
      let k = 0;
      const timer = setInterval(() => { if (!s.destroyed && k < body.length) s.write(body[k++]); }, everyMs);
      const r = await res;
      clearInterval(timer);
      return { ...r, ms: Date.now() - t0, sent: k };
    };
    // every byte within login_timeout of the last, but the whole would take ~7 s: cut at 3 s
    // (the sweep runs once a second: between 3 and 4 s)
    const [slow, fast] = await Promise.all([trickle(7000 / body.length), trickle(1500 / body.length)]);
    assert.equal(slow.data.length, 0, `no answer to the request cut: ${slow.data.toString().slice(0, 200)}`);
    assert.notEqual(slow.how, 'timeout', 'the connection is closed');
    assert.ok(slow.sent < body.length, 'cut before the body was whole');
    assert.ok(slow.ms >= 2500 && slow.ms <= 6000, `cut after ${slow.ms} ms`);
    assert.match(fast.data.toString(), /^HTTP\/1\.1 20[01] /, `a body finished in 1.5 s is answered: ${fast.data.toString().slice(0, 200)}`);
  }));

// ---------------------------------------------------------------- where: 16 levels, 256 conditions, 16 KiB patterns

test('conv query where (fixed): 16 levels of $and/$or, 256 conditions and a 16,384-byte $regex are run; one more of each → 4310 with the reason', () =>
  withServer({ TERN_QUERY_TIMEOUT: '20000' }, async (srv) => {
    const c = await session(srv, uid('where'));
    await startConv(c, [uid('w')], { n: 'Lobby' });
    const query = (where) => c.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify(where) }, limit: 10 } }, 20000);
    const nest = (levels) => {
      let w = { name: 'Lobby' };
      for (let d = 1; d < levels; d++) w = { [d % 2 ? '$and' : '$or']: [w, { m: c.peer }] };
      return w;
    };
    const conds = (n) => Object.fromEntries(Array.from({ length: n }, (_, k) => [`attr.k${k}`, { $exists: false }]));
    const regex = (n) => ({ name: { $regex: 'a'.repeat(n - 1) + '*' } });
    for (const [name, atLimit, past, reason] of [
      ['16 levels', nest(16), nest(17), /nested deeper than 16 levels/],
      ['256 conditions', conds(256), conds(257), /more than 256 conditions/],
      ['16,384-byte pattern', regex(16384), regex(16385), /pattern too long/],
    ]) {
      const ok = await query(atLimit);
      assert.equal(ok.op, 'results', `${name}: ${JSON.stringify(ok).slice(0, 300)}`);
      const r = await query(past);
      assertError(r, r.i, 4310, 'CONVERSATION_QUERY_FAILED');
      assert.match(r.errorMessage.detail, reason, name);
    }
  }));

// ---------------------------------------------------------------- single sign-on tag: 256 bytes

test('single sign-on tag (fixed 256 bytes, carried in the session token): 256 logs in and resumes with its st; 257 → 4103', () =>
  withServer({}, async (srv) => {
    const me = uid('tag');
    const c = await connect(srv);
    const ok = await login(c, me, { tag: 't'.repeat(256) });
    const st = ok.sessionMessage.st;
    const d = await connect(srv);
    const r = await d.request({ cmd: 'session', op: 'open', appId: srv.appId, peerId: uid('tag2'), sessionMessage: { ua: 't', tag: 't'.repeat(257) } });
    assertError(r, r.i, 4103, 'INVALID_LOGIN');
    assert.equal(r.errorMessage.detail, 'tag too long');
    c.ws._socket.destroy(); // gone without a goodbye: the st still resumes, with its tag
    // once the server has noticed (until then the login is held, and a resume of it is 4111):
    // the reset reaches its worker a moment later, and the resume may be read by another
    const q = await session(srv, uid('q'));
    for (const end = Date.now() + 5000; ;) {
      const r = await q.request({ cmd: 'session', op: 'query', sessionMessage: { sessionPeerIds: [me] } });
      if (!(r.sessionMessage.onlineSessionPeerIds ?? []).includes(me)) break;
      assert.ok(Date.now() < end, 'the server noticed the reset socket within 5 s');
      await sleep(20);
    }
    const e = await connect(srv);
    const back = await e.request({ cmd: 'session', op: 'open', appId: srv.appId, peerId: me, sessionMessage: { ua: 't', r: true, st } });
    assert.equal(back.op, 'opened', JSON.stringify(back));
  }));

// ---------------------------------------------------------------- tempConvIds: 1,000 a query

test('conv query by tempConvIds (fixed 1,000 ids): 1,000 are answered; of 1,001 the last is not looked at', () =>
  withServer({}, async (srv) => {
    const me = uid('tmpq');
    const ids = Array.from({ length: 1001 }, () => `_tmp:${hex24()}`);
    const imp = await importRecords(srv, ids.map((objectId) => ({
      type: 'conversation', objectId, temporary: true, expireAt: Date.now() + 86400000, m: [me, 'other'],
    })));
    assert.equal(imp.status, 200, imp.body.slice(0, 300));
    assert.equal(imp.json.applied, 1001, imp.body.slice(0, 300));
    const c = await session(srv, me);
    const found = async (list) => {
      const r = await c.request({ cmd: 'conv', op: 'query', convMessage: { tempConvIds: list } }, 20000);
      assert.equal(r.op, 'results', JSON.stringify(r).slice(0, 300));
      return JSON.parse(r.convMessage.results.data).map((x) => x.objectId);
    };
    assert.deepEqual(new Set(await found(ids.slice(1))), new Set(ids.slice(1)), 'at the limit: all 1,000');
    const got = await found(ids);
    assert.equal(got.length, 1000);
    assert.ok(!got.includes(ids[1000]), 'the 1,001st is not looked at');
  }));

// ---------------------------------------------------------------- patches: 20 a request, 200 caught up at login

test('patch modify (fixed 20 patches a request) → 21 gets 4404 "too many patches in one request", nothing edited; an edit past max_message gets 4109; the catch-up at login carries 200 patches at most', () =>
  withServer({ TERN_MAX_CONN_RATE: '0', TERN_MAX_CLIENT_RATE: '0' }, async (srv) => {
    const [a, b] = [uid('pa'), uid('pb')];
    const A = await session(srv, a);
    const cid = (await startConv(A, [b])).cid;
    const sent = [];
    for (let k = 0; k < 201; k++) sent.push(await A.request({ cmd: 'direct', directMessage: { cid, msg: TEXT(`m${k}`) } }));
    const sinceBefore = Date.now() - 1;
    const item = (k) => ({ cid, mid: sent[k].ackMessage.uid, timestamp: sent[k].ackMessage.t, data: TEXT(`m${k} edited`) });
    const modify = (ks) => A.request({ cmd: 'patch', op: 'modify', patchMessage: { patches: ks.map(item) } }, 20000);
    const over = await modify(Array.from({ length: 21 }, (_, k) => k));
    assertError(over, over.i, 4404, 'MESSAGE_NOT_FOUND');
    assert.equal(over.errorMessage.detail, 'too many patches in one request');
    const logs = await A.request({ cmd: 'logs', logsMessage: { cid, limit: 1, direction: 'NEW' } });
    assert.equal(JSON.parse(logs.logsMessage.logs[0].data)._lctext, 'm0', 'nothing of the 21 was applied');
    // an edit's content is held to max_message (5,120 bytes) as a send is
    const big = (n) => ({ ...item(0), data: JSON.stringify({ _lctype: -1, _lctext: 'e'.repeat(n - 27) }) });
    assert.equal(big(5120).data.length, 5120);
    const tooBig = await A.request({ cmd: 'patch', op: 'modify', patchMessage: { patches: [big(5121)] } });
    assertError(tooBig, tooBig.i, 4109, 'FRAME_TOO_LONG');
    const atMax = await A.request({ cmd: 'patch', op: 'modify', patchMessage: { patches: [big(5120)] } });
    assert.equal(atMax.op, 'modified', JSON.stringify(atMax).slice(0, 300));
    for (let k = 0; k < 201; k += 20) {
      const r = await modify(Array.from({ length: Math.min(20, 201 - k) }, (_, j) => k + j));
      assert.equal(r.op, 'modified', `20 patches at the limit: ${JSON.stringify(r).slice(0, 300)}`);
    }
    // B was never online: its login with a cursor from before the edits gets one push of 200
    const B = await connect(srv);
    await login(B, b, { lastPatchTime: sinceBefore });
    const p = await B.next((x) => x.cmd === 'patch');
    assert.equal(p.patchMessage.patches.length, 200, 'the catch-up is capped at 200 patches');
    assert.equal(new Set(p.patchMessage.patches.map((x) => x.mid)).size, 200);
  }));

// ---------------------------------------------------------------- unread at login: 50 conversations

test('the unread notice at login (fixed 50 conversations): a client with 51 unread conversations is told of 50', () =>
  withServer({ TERN_MAX_CONN_RATE: '0', TERN_MAX_CLIENT_RATE: '0' }, async (srv) => {
    const [a, b] = [uid('ua'), uid('ub')];
    const A = await session(srv, a);
    for (let k = 0; k < 51; k++) {
      const cid = (await startConv(A, [b])).cid;
      await A.request({ cmd: 'direct', directMessage: { cid, msg: TEXT(`to b ${k}`) } });
    }
    const B = await connect(srv);
    await login(B, b);
    const u = await B.next((x) => x.cmd === 'unread');
    assert.equal(u.unreadMessage.convs.length, 50, 'at most 50 conversations in the notice');
    assert.ok(u.unreadMessage.convs.every((c) => c.unread === 1));
  }));

// ---------------------------------------------------------------- REST list pages of service conversations

test('REST pages of service conversations (fixed): subscribers 50 a page, a client\'s service conversations 1,000 (default 50), broadcasts 1,000 (default 10)', () =>
  withServer({}, async (srv) => {
    const sub = uid('sub');
    const svc = Array.from({ length: 1001 }, hex24);
    const T0 = Date.parse('2024-03-01T08:00:00.000Z');
    const recs = svc.map((cid) => ({ type: 'conversation', objectId: cid, sys: true, name: 'svc', c: 'admin' }));
    recs.push({ type: 'subscribers', cid: svc[0], clients: Array.from({ length: 50 }, (_, k) => `s${k}`) });
    for (const cid of svc) recs.push({ type: 'subscribers', cid, clients: [sub] });
    for (let k = 0; k < 1001; k++) recs.push({ type: 'message', cid: svc[0], 'msg-id': `bc-${k}`, timestamp: T0 + k, from: 'admin', data: TEXT(`#${k}`) });
    const imp = await importRecords(srv, recs);
    assert.equal(imp.status, 200, imp.body.slice(0, 300));
    assert.deepEqual(imp.json.skipped, []);
    const get = async (path) => {
      const r = await httpRequest(srv, { path, headers: MASTER(srv) });
      assert.equal(r.status, 200, `${path}: ${r.body.slice(0, 300)}`);
      return r.json;
    };
    const subs = `/1.2/rtm/service-conversations/${svc[0]}/subscribers`;
    assert.equal((await get(`${subs}?limit=50`)).length, 50, 'subscribers: 50 at the limit');
    assert.equal((await get(`${subs}?limit=51`)).length, 50, 'subscribers: 51 of 51 asked, 50 given');
    const mine = `/1.2/rtm/clients/${sub}/service-conversations`;
    assert.equal((await get(mine)).length, 50, 'a client\'s service conversations: 50 by default');
    assert.equal((await get(`${mine}?limit=1000`)).length, 1000);
    assert.equal((await get(`${mine}?limit=1001`)).length, 1000, 'a client\'s service conversations: 1,000 at most');
    const bc = `/1.2/rtm/broadcasts?conv_id=${svc[0]}`;
    assert.equal((await get(bc)).length, 10, 'broadcasts: 10 by default');
    assert.equal((await get(`${bc}&limit=1000`)).length, 1000);
    assert.equal((await get(`${bc}&limit=1001`)).length, 1000, 'broadcasts: 1,000 at most');
    assert.equal((await get(`${bc}&limit=5&skip=1000`)).length, 1, 'skip within its cap counts');
  }));

// ---------------------------------------------------------------- offline pushes to lc.protobuf2.1 clients: 500

test('offline messages pushed at an lc.protobuf2.1 login (fixed 500): of 501 stored the oldest 500 come; once acked, the 501st comes at the next login', () =>
  withServer({ TERN_MAX_CONN_RATE: '0', TERN_MAX_CLIENT_RATE: '0' }, async (srv) => {
    const [a, b] = [uid('oa'), uid('ob')];
    const A = await session(srv, a);
    const { cid, cdate } = await startConv(A, [b]);
    while (Date.now() <= cdate + 1) await sleep(2); // b's position starts at the creation millisecond
    const sent = [];
    const send = async (k) => sent.push((await A.request({ cmd: 'direct', directMessage: { cid, msg: `o${k}` } })).ackMessage);
    for (let k = 0; k < 500; k++) await send(k);
    while (Date.now() <= sent[499].t + 1) await sleep(2); // the ack below, up to the 500th, must not reach the 501st
    await send(500);
    const offline = async () => {
      const B = await connect(srv, { subprotocol: 'lc.protobuf2.1' });
      const mark = B.mark();
      await login(B, b);
      const got = (await B.quiet(mark)).filter((p) => p.cmd === 'direct');
      return { B, got };
    };
    const first = await offline();
    assert.equal(first.got.length, 500, 'at most 500 offline messages at a login');
    assert.deepEqual(first.got.map((p) => p.directMessage.id), sent.slice(0, 500).map((s) => s.uid), 'the oldest 500, in order');
    first.B.send({ cmd: 'ack', i: null, ackMessage: { cid, fromts: sent[0].t, tots: sent[499].t } });
    await first.B.echo();
    await first.B.close();
    // the ack has no answer: its read position is stored by the writer's next commit, which a
    // loaded machine (or a checkpoint holding the writer) can put after the next login's read,
    // and that login is then told the 500 again (at least once). Logins that find them are not
    // acked, so asking again until the position is stored changes nothing; 10 s at most.
    let second;
    for (const end = Date.now() + 10000; ;) {
      second = await offline();
      if (second.got.length <= 1 || Date.now() > end) break;
      await second.B.close();
      await sleep(100);
    }
    assert.deepEqual(second.got.map((p) => p.directMessage.id), [sent[500].uid], 'the rest at the next login');
  }));

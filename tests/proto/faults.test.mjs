// Issue #4 §8 fault injection: storage write failures (POST /debug/faults {store_fail})
// give the sender an error and never an ack for an unstored message, recipients get
// nothing, history holds exactly the acknowledged messages, also with many senders in
// flight while the failure is switched on and off; and clients that disconnect mid-frame,
// stall mid-frame or mid-request do not hurt anyone else.
// protocol.md §3.6, §3.11, §6 (4200, 4301); docs/security.md "losing acknowledged messages".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertError, assertHealthy, encode, session, startConv, uid, withServer,
} from '../lib/proto-client.mjs';
import { OP, frame, rawWebSocket } from '../lib/proto-raw.mjs';
import {
  TEXT, bystander, history, sleep, storeFail, tcp, until, within,
} from '../lib/issue4-util.mjs';

const FAULTS = { TERN_DEBUG_FAULTS: '1' };
const directs = (c) => c.received.filter((p) => p.cmd === 'direct');

// ---------------------------------------------------------------- the switch itself

test('§8 POST /debug/faults: 404 unless debug_faults is on; then the master key is required (401/403), the body checked (400), 200 echoes the state', async () => {
  await withServer({}, async (srv) => {
    const r = await storeFail(srv, true);
    assert.equal(r.status, 404, 'no fault injection without TERN_DEBUG_FAULTS');
    const S = await session(srv, uid('plain'));
    const B = uid('b');
    const cid = (await startConv(S, [B])).cid;
    assert.equal((await S.request({ cmd: 'direct', directMessage: { cid, msg: TEXT('stored') } })).cmd, 'ack', 'and storage still works');
  });
  await withServer(FAULTS, async (srv) => {
    const rows = [
      { name: 'no key', key: '', status: 401 },
      { name: 'wrong key', key: 'nope,master', status: 401 },
      { name: 'the app key', key: srv.appKey, status: 403 },
      { name: 'not JSON', body: 'store_fail=1', status: 400 },
      { name: 'not a boolean', body: '{"store_fail": 1}', status: 400 },
    ];
    for (const row of rows) {
      const r = await storeFail(srv, true, { key: row.key ?? `${srv.masterKey},master`, body: row.body });
      assert.equal(r.status, row.status, `${row.name}: ${r.body}`);
      assert.equal(r.json?.code, row.status === 400 ? 107 : row.status, r.body);
    }
    // none of the refused calls switched it on
    const S = await session(srv, uid('s'));
    const cid = (await startConv(S, [uid('b')])).cid;
    assert.equal((await S.request({ cmd: 'direct', directMessage: { cid, msg: TEXT('x') } })).cmd, 'ack');
    const on = await storeFail(srv, true);
    assert.equal(on.status, 200);
    assert.deepEqual(on.json, { store_fail: true });
    const off = await storeFail(srv, false);
    assert.deepEqual(off.json, { store_fail: false });
  });
});

// ---------------------------------------------------------------- failing writes

test('§8 store_fail: direct → 4200 INTERNAL_ERROR and nothing delivered; conv start → 4301; transient and reads still work; afterwards history holds exactly the acked messages', () =>
  withServer(FAULTS, async (srv) => {
    const by = await bystander(srv, { intervalMs: 50, label: 'fault', transient: true });
    const [a, b] = [uid('A'), uid('B')];
    const A = await session(srv, a, { extra: { configBitmap: 8 } }); // bit 3: ack transient messages
    const B = await session(srv, b);
    const cid = (await startConv(A, [b])).cid;
    const acked = [];
    const ok = async (text) => {
      const r = await A.request({ cmd: 'direct', directMessage: { cid, msg: TEXT(text) } });
      assert.equal(r.cmd, 'ack', `${text}: ${JSON.stringify(r)}`);
      acked.push(r.ackMessage.uid);
      return r;
    };
    await ok('before');
    await until(() => directs(B).length === 1, 3000, 'first delivery');

    assert.equal((await storeFail(srv, true)).status, 200);
    const markB = B.mark();
    for (let k = 0; k < 5; k++) {
      const i = 100 + k;
      const r = await A.request({ cmd: 'direct', i, directMessage: { cid, msg: TEXT(`lost ${k}`) } });
      assertError(r, i, 4200, 'INTERNAL_ERROR');
      assert.equal(r.errorMessage.detail, 'message could not be stored');
    }
    // will messages, receipts-requested and mentions go the same way
    assertError(await A.request({ cmd: 'direct', i: 110, directMessage: { cid, msg: TEXT('lost r'), r: true, mentionPids: [b] } }), 110, 4200, 'INTERNAL_ERROR');
    // a new conversation cannot be stored either
    assertError(await A.request({ cmd: 'conv', op: 'start', i: 111, convMessage: { m: [b, uid('c')] } }), 111, 4301, 'CONVERSATION_API_FAILED');
    // what needs no write still works: transient messages, history, queries, echo
    const tr = await A.request({ cmd: 'direct', directMessage: { cid, msg: TEXT('transient'), transient: true } });
    assert.equal(tr.cmd, 'ack', `transient: ${JSON.stringify(tr)}`);
    assert.equal((await history(A, cid)).length, 1);
    const q = await A.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } });
    assert.equal(q.cmd, 'conv', JSON.stringify(q));
    const got = (await B.quiet(markB)).filter((p) => p.cmd === 'direct').map((p) => JSON.parse(p.directMessage.msg)._lctext);
    assert.deepEqual(got, ['transient'], 'recipients got none of the unstored messages');
    assert.equal(A.isClosed || B.isClosed, false, 'nobody was disconnected');

    assert.equal((await storeFail(srv, false)).status, 200);
    await ok('after 1');
    await ok('after 2');
    const conv2 = await startConv(A, [b, uid('c')]);
    assert.match(conv2.cid, /^[0-9a-f]{24}$/);
    await until(() => directs(B).length === 4, 3000, 'deliveries after recovery');
    const hist = await history(B, cid);
    assert.deepEqual(hist.map((l) => l.msgId), acked, 'history is exactly the acked messages');
    assert.deepEqual(hist.map((l) => JSON.parse(l.data)._lctext), ['before', 'after 1', 'after 2']);
    // the conversation's last message is the last stored one, not a failed one
    const q2 = await A.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } });
    const conv = JSON.parse(q2.convMessage.results.data)[0];
    assert.equal(Date.parse(conv.lm?.iso), hist[hist.length - 1].timestamp, `lm: ${JSON.stringify(conv.lm)}`);
    await by.check();
    await assertHealthy(srv);
  }));

test('§8 store_fail: every conversation write (add, remove, update, mute, shut-up, block, edit, recall) gets an error, tells nobody, and changes nothing', () =>
  withServer(FAULTS, async (srv) => {
    const ids = { A: uid('A'), B: uid('B'), C: uid('C'), X: uid('X') };
    const A = await session(srv, ids.A);
    const B = await session(srv, ids.B);
    const C = await session(srv, ids.C);
    const X = await session(srv, ids.X);
    const cid = (await startConv(A, [ids.B, ids.C], { name: 'before' })).cid;
    const m1 = await A.request({ cmd: 'direct', directMessage: { cid, msg: TEXT('original') } });
    assert.equal(m1.cmd, 'ack');
    await until(() => directs(B).length === 1 && directs(C).length === 1, 3000, 'first message');
    const row = async () => {
      const q = await A.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } });
      return JSON.parse(q.convMessage.results.data)[0];
    };
    const before = await row();
    assert.equal((await storeFail(srv, true)).status, 200);
    const marks = { A: A.mark(), B: B.mark(), C: C.mark(), X: X.mark() };
    const writes = [
      ['add X', A, { cmd: 'conv', op: 'add', convMessage: { cid, m: [ids.X] } }],
      ['remove C', A, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [ids.C] } }],
      ['C quits', C, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [ids.C] } }],
      ['update name', A, { cmd: 'conv', op: 'update', convMessage: { cid, attr: { data: JSON.stringify({ name: 'after' }) } } }],
      ['mute', B, { cmd: 'conv', op: 'mute', convMessage: { cid } }],
      ['shut up B', A, { cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [ids.B] } }],
      ['block C', A, { cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: cid, toPids: [ids.C] } }],
      ['edit', A, { cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid, mid: m1.ackMessage.uid, timestamp: m1.ackMessage.t, data: TEXT('edited') }] } }],
      ['recall', A, { cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid, mid: m1.ackMessage.uid, timestamp: m1.ackMessage.t, recall: true }] } }],
    ];
    const answers = [];
    for (const [name, who, cmd] of writes) {
      const r = await who.request(cmd);
      answers.push([name, r.cmd, r.errorMessage?.code]);
    }
    // an error (4xxx), never the success reply, for every one of them
    for (const [name, cmd, code] of answers) {
      assert.equal(cmd, 'error', `${name} answered ${cmd} while storage fails: ${JSON.stringify(answers)}`);
      assert.ok(code >= 4200 && code < 4400, `${name}: error code ${code}`);
    }
    // nobody was told anything
    for (const [k, cl] of Object.entries({ A, B, C, X })) {
      const pushes = (await cl.quiet(marks[k])).filter((p) => !p.i);
      assert.deepEqual(pushes, [], `${k} was told about a write that failed`);
    }
    assert.equal((await storeFail(srv, false)).status, 200);
    const after = await row();
    for (const f of ['name', 'm', 'mu', 'updatedAt']) assert.deepEqual(after[f], before[f], `conversation field ${f} changed by a failed write`);
    const hist = await history(B, cid);
    assert.deepEqual(hist.map((l) => [l.msgId, l.data, l.patchTimestamp]), [[m1.ackMessage.uid, TEXT('original'), undefined]], 'the message is unchanged');
    // the cached state agrees: B may still send, C is still a member, X is not
    const s2 = await B.request({ cmd: 'direct', directMessage: { cid, msg: TEXT('B is not shut up') } });
    assert.equal(s2.cmd, 'ack', JSON.stringify(s2));
    await C.next((p) => p.cmd === 'direct' && p.directMessage.id === s2.ackMessage.uid);
    assertError(await X.request({ cmd: 'direct', i: 5, directMessage: { cid, msg: TEXT('x') } }), 5, 4401, 'INVALID_MESSAGING_TARGET');
    const bl = await A.request({ cmd: 'blacklist', op: 'query', blacklistMessage: { srcCid: cid } });
    assert.equal(bl.op, 'query_result', JSON.stringify(bl));
    assert.deepEqual(bl.blacklistMessage?.blockedPids ?? [], [], JSON.stringify(bl));
    await assertHealthy(srv);
  }));

test('§8 store_fail toggled under load: every request answered; acked ⊆ history, nothing that got an error is stored or delivered; recipients get exactly the acked messages', { timeout: 90000 }, () =>
  withServer({ ...FAULTS, TERN_MAX_CONN_RATE: '0', TERN_MAX_CLIENT_RATE: '0' }, async (srv) => {
    const PAIRS = 6;
    const WINDOW = 6;
    const pairs = [];
    for (let k = 0; k < PAIRS; k++) {
      const [s, r] = [uid(`S${k}`), uid(`R${k}`)];
      const S = await session(srv, s);
      const R = await session(srv, r);
      const cid = (await startConv(S, [r])).cid;
      pairs.push({ S, R, cid, outcome: new Map() }); // text -> {ack uid} | {error code}
    }
    let stop = false;
    const senders = pairs.map(async (p, k) => {
      let n = 0;
      const inflight = new Set();
      while (!stop) {
        const text = TEXT(`p${k} m${n++}`);
        const req = p.S.request({ cmd: 'direct', directMessage: { cid: p.cid, msg: text } }, 20000).then((r) => {
          if (r.cmd === 'ack') p.outcome.set(text, { uid: r.ackMessage.uid, t: r.ackMessage.t });
          else p.outcome.set(text, { error: r.errorMessage?.code, reply: r });
        }, (e) => p.outcome.set(text, { lost: e.message }));
        inflight.add(req);
        req.finally(() => inflight.delete(req));
        if (inflight.size >= WINDOW) await Promise.race(inflight);
      }
      await Promise.all(inflight);
    });
    // flip the switch 12 times, 150 ms apart, while the senders run
    let flips = 0;
    for (let k = 0; k < 12; k++) {
      await sleep(150);
      assert.equal((await storeFail(srv, k % 2 === 0)).status, 200);
      flips++;
    }
    assert.equal((await storeFail(srv, false)).status, 200);
    await sleep(150);
    stop = true;
    await Promise.all(senders);
    assert.equal(flips, 12);

    let totalAcked = 0;
    let totalFailed = 0;
    for (const [k, p] of pairs.entries()) {
      const outcomes = [...p.outcome.entries()];
      const lost = outcomes.filter(([, o]) => o.lost);
      assert.deepEqual(lost, [], `pair ${k}: every request got a reply`);
      const bad = outcomes.filter(([, o]) => o.error !== undefined && o.error !== 4200);
      assert.deepEqual(bad.map(([, o]) => o.reply), [], `pair ${k}: the only error is 4200`);
      const acked = new Map(outcomes.filter(([, o]) => o.uid).map(([text, o]) => [o.uid, text]));
      const failed = new Set(outcomes.filter(([, o]) => o.error === 4200).map(([text]) => text));
      totalAcked += acked.size;
      totalFailed += failed.size;
      const hist = await history(p.R, p.cid);
      const ids = hist.map((l) => l.msgId);
      assert.equal(new Set(ids).size, ids.length, `pair ${k}: no message stored twice`);
      const missing = [...acked.keys()].filter((id) => !ids.includes(id));
      assert.deepEqual(missing, [], `pair ${k}: ${missing.length} acked messages are not in history`);
      const stray = hist.filter((l) => !acked.has(l.msgId));
      assert.deepEqual(stray.map((l) => l.data), [], `pair ${k}: history holds messages that were not acked`);
      const failedStored = hist.filter((l) => failed.has(l.data));
      assert.deepEqual(failedStored, [], `pair ${k}: a message that got an error is in history`);
      for (const l of hist) assert.equal(l.timestamp, p.outcome.get(acked.get(l.msgId)).t, 'stored timestamp = acked t');
      // the recipient: exactly the acked messages, once each, in order
      await until(() => directs(p.R).length >= acked.size, 10000, `pair ${k}: deliveries`);
      const mark = 0;
      const got = (await p.R.quiet(mark)).filter((c) => c.cmd === 'direct').map((c) => c.directMessage.id);
      assert.deepEqual(got, ids, `pair ${k}: the recipient got exactly the stored messages, in order`);
    }
    if (process.env.TERN_TEST_VERBOSE) console.log(`acked ${totalAcked}, failed ${totalFailed}`);
    assert.ok(totalAcked > 50, `only ${totalAcked} acked: the load did not run`);
    assert.ok(totalFailed > 20, `only ${totalFailed} failed: the fault was not injected under load`);
    await assertHealthy(srv);
  }));

// ---------------------------------------------------------------- misbehaving clients

test('§8 clients that disconnect mid-frame (FIN or RST), mid-upgrade, or stall mid-frame do not disturb others; the stalled ones are timed out', () =>
  withServer({ TERN_IDLE_TIMEOUT: '2', TERN_LOGIN_TIMEOUT: '2' }, async (srv) => {
    const by = await bystander(srv, { intervalMs: 50, label: 'mid' });
    // keeps the bystander's sockets from idling out (idle_timeout 2 s): its rounds are traffic
    const [a, b] = [uid('A'), uid('B')];
    const A = await session(srv, a);
    const B = await session(srv, b);
    const cid = (await startConv(A, [b])).cid;
    const keep = setInterval(() => { A.send({ cmd: 'echo', i: null }); B.send({ cmd: 'echo', i: null }); }, 500);
    const loggedIn = async () => {
      const raw = await rawWebSocket(srv);
      raw.command({ cmd: 'session', op: 'open', i: 1, appId: srv.appId, peerId: uid('mid'), sessionMessage: { ua: 't' } });
      assert.equal((await raw.nextCommand()).op, 'opened');
      return raw;
    };
    const half = (obj) => { const f = frame(OP.BINARY, encode(obj)); return f.subarray(0, f.length >> 1); };
    const stalled = [];
    for (let round = 0; round < 3; round++) {
      // half a frame, then FIN
      let raw = await loggedIn();
      raw.write(half({ cmd: 'direct', i: 2, directMessage: { cid, msg: TEXT('x'.repeat(3000)) } }));
      raw.sock.end();
      // half a frame, then RST
      raw = await loggedIn();
      raw.write(half({ cmd: 'conv', op: 'start', i: 2, convMessage: { m: [b] } }));
      await sleep(5);
      raw.sock.resetAndDestroy();
      // half a frame header (1 byte), then gone
      raw = await loggedIn();
      raw.write(Buffer.from([0x82]));
      raw.destroy();
      // half an upgrade request, then gone
      const s = await tcp(srv);
      s.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnec');
      s.destroy();
      // half a frame, then silence: stays until the idle timeout
      raw = await loggedIn();
      raw.write(half({ cmd: 'echo', i: 3 }));
      stalled.push(raw);
      // between them the others keep going
      const text = TEXT(`between ${round}`);
      const got = B.next((p) => p.cmd === 'direct' && p.directMessage.msg === text);
      assert.equal((await A.request({ cmd: 'direct', directMessage: { cid, msg: text } })).cmd, 'ack');
      await got;
    }
    // the stalled ones: no reply to their half frame, closed READ_TIMEOUT after 2 s of silence
    for (const raw of stalled) {
      const f = await raw.expectClose(6000);
      assert.equal(f.code, 4107, `a stalled mid-frame client is closed READ_TIMEOUT, got ${f.code}`);
      assert.equal(raw.frames.length, 0);
    }
    clearInterval(keep);
    assert.equal(A.isClosed || B.isClosed, false);
    await assertHealthy(srv);
    await by.check();
  }));

test('§8 a client that never reads while messages pour at it is dropped, and nobody else waits for it (output_limit=256 KiB)', () =>
  withServer({ TERN_OUTPUT_LIMIT: String(256 << 10) }, async (srv) => {
    // A raw socket that logs in and then never reads again: every push to it piles up in the
    // kernel, then in the server's queue. Small messages (4 KB), many senders, so the other
    // members' deliveries share the worker with the doomed writes.
    const by = await bystander(srv, { intervalMs: 50, label: 'never' });
    const deaf = uid('deaf');
    const raw = await rawWebSocket(srv);
    raw.command({ cmd: 'session', op: 'open', i: 1, appId: srv.appId, peerId: deaf, sessionMessage: { ua: 't' } });
    assert.equal((await raw.nextCommand()).op, 'opened');
    raw.sock.pause();
    const members = [];
    for (let k = 0; k < 4; k++) members.push(await session(srv, uid(`m${k}`)));
    const cid = (await startConv(members[0], [deaf, ...members.slice(1).map((m) => m.peer)])).cid;
    const pad = 'z'.repeat(4000);
    const sent = [];
    const t0 = Date.now();
    while (!raw.isEnded && Date.now() - t0 < 20000) {
      const batch = members.map((m, k) => m.request({ cmd: 'direct', directMessage: { cid, msg: TEXT(`${k} ${sent.length} ${pad}`) } }, 10000));
      for (const r of await Promise.all(batch)) { assert.equal(r.cmd, 'ack'); sent.push(r.ackMessage.uid); }
      if (sent.length > 4000) break;
    }
    // a paused socket sees its end only when read: resume and drain
    raw.sock.resume();
    await within(raw.ended, 10000, 'the deaf client is disconnected');
    // each member got every message of the others, in order
    for (const [k, m] of members.entries()) {
      const want = sent.filter((_, n) => n % members.length !== k);
      await until(() => directs(m).length >= want.length, 10000, `member ${k} deliveries`);
      assert.deepEqual(directs(m).map((p) => p.directMessage.id).sort(), [...want].sort(), `member ${k} got every message`);
    }
    await assertHealthy(srv);
    await by.check();
  }));

// deliver_early (issue #17 point 4, experimental, off by default; bench/README.md "Delivery
// before the commit", docs/architecture.md): recipients get a stored message when it is
// queued for its commit, while the sender's ack still waits for the commit. What it keeps:
// a conversation's messages reach every recipient in history order, each once, with the id
// and timestamp history has. What it gives up, asserted here so that the doc stays true: a
// message whose commit fails may already have reached recipients (the first failure); after
// it the server delivers after the commit again for 10 s, so a store that keeps failing
// leaks no more.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertError, session, startConv, uid, withServer } from '../lib/proto-client.mjs';
import { TEXT, history, storeFail, until } from '../lib/issue4-util.mjs';

const directs = (c, cid) => c.received.filter((p) => p.cmd === 'direct' && p.directMessage.cid === cid);
// commits at least 100 ms apart: a message sent just after a commit waits ~100 ms for its own
const SLOW = { TERN_COMMIT_INTERVAL: '100000' };

/** Sends n messages from A without waiting; for each: when its ack came and when B got it. */
async function burst(A, B, cid, n, label) {
  const pushAt = new Map();
  const want = new Set();
  const acks = [];
  for (let k = 0; k < n; k++) {
    const text = TEXT(`${label} ${k}`);
    want.add(text);
    const pushed = B.next((p) => p.cmd === 'direct' && p.directMessage.msg === text, 10000)
      .then((p) => { pushAt.set(text, { t: performance.now(), p }); });
    const acked = A.request({ cmd: 'direct', directMessage: { cid, msg: text } }, 10000)
      .then((r) => ({ text, r, t: performance.now() }));
    acks.push(Promise.all([acked, pushed]).then(([a]) => a));
  }
  const out = [];
  for (const a of await Promise.all(acks)) {
    assert.equal(a.r.cmd, 'ack', JSON.stringify(a.r));
    const got = pushAt.get(a.text);
    out.push({ text: a.text, uid: a.r.ackMessage.uid, t: Number(a.r.ackMessage.t), ackAt: a.t, pushAt: got.t, push: got.p.directMessage });
  }
  return out;
}

for (const early of [true, false]) {
  test(`deliver_early ${early ? 'on' : 'off'}: a message waiting for its commit reaches the recipient ${early ? 'before' : 'only after'} the sender's ack, with the id and timestamp of the ack and of history`, () =>
    withServer({ ...SLOW, TERN_DELIVER_EARLY: early ? '1' : '0' }, async (srv) => {
      const [a, b] = [uid('A'), uid('B')];
      const A = await session(srv, a);
      const B = await session(srv, b);
      const { cid } = await startConv(A, [b]);
      await burst(A, B, cid, 1, 'first'); // a commit just ran: the burst waits out the interval
      const got = await burst(A, B, cid, 5, 'burst');
      for (const m of got) {
        assert.equal(m.push.id, m.uid, 'the pushed id is the acked one');
        assert.equal(Number(m.push.timestamp), m.t, 'the pushed timestamp is the acked one');
        const lead = m.ackAt - m.pushAt; // how long before its ack the recipient had it
        if (early) assert.ok(lead > 30, `${m.text}: pushed ${lead.toFixed(1)} ms before the ack, not ~100 ms`);
        else assert.ok(lead < 30, `${m.text}: pushed ${lead.toFixed(1)} ms before the ack, without deliver_early`);
      }
      const hist = await history(B, cid);
      assert.deepEqual(hist.map((l) => [l.msgId, Number(l.timestamp), l.data]).slice(1),
        got.map((m) => [m.uid, m.t, m.text]), 'history holds every delivered message with its id, timestamp and content');
      await A.request({ cmd: 'echo' });
      assert.equal(directs(B, cid).length, 6, 'each delivered once');
    }));
}

const manySenders = (early, room = false) => () =>
  withServer({ TERN_DELIVER_EARLY: early ? '1' : '0' }, async (srv) => {
    const senders = await Promise.all(Array.from({ length: 8 }, (_, k) => session(srv, uid(`s${k}`))));
    const readers = await Promise.all(Array.from({ length: 4 }, (_, k) => session(srv, uid(`r${k}`))));
    const all = [...senders, ...readers];
    let cid;
    if (room) { // a chat room: everyone joins itself (the fan-out goes to the sessions in it)
      cid = (await startConv(senders[0], [], { transient: true })).cid;
      for (const c of all.slice(1)) assert.equal((await c.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [c.peer] } })).cmd, 'conv');
    } else {
      cid = (await startConv(senders[0], all.slice(1).map((c) => c.peer))).cid;
      await Promise.all(all.slice(1).map((c) => c.next((p) => p.op === 'joined' && p.convMessage.cid === cid)));
    }
    const N = 40;
    const acks = [];
    for (let k = 0; k < N; k++) for (const [j, s] of senders.entries()) acks.push(s.request({ cmd: 'direct', directMessage: { cid, msg: `s${j} ${k}` } }, 20000));
    for (const r of await Promise.all(acks)) assert.equal(r.cmd, 'ack', JSON.stringify(r));
    const hist = await history(readers[0], cid);
    assert.equal(hist.length, N * senders.length, 'every acked message is in history');
    const line = (id, ts, data) => `${id} ${ts} ${data}`;
    for (const [k, c] of all.entries()) {
      // a sender is not pushed its own messages on the connection that sent them
      const want = hist.filter((l) => !l.data.startsWith(`s${k} `) || k >= senders.length).map((l) => line(l.msgId, l.timestamp, l.data));
      await until(() => directs(c, cid).length >= want.length, 10000, `client ${k}'s deliveries`);
      await c.request({ cmd: 'echo' }); // a barrier: a duplicate would have come by now
      const got = directs(c, cid).map((p) => line(p.directMessage.id, p.directMessage.timestamp, p.directMessage.msg));
      assert.deepEqual(got, want, `client ${k}: history's messages, each once, in history order`);
    }
  });

test('deliver_early: many senders on both workers, one conversation: every recipient gets every message once, in history order, with history\'s id and timestamp', manySenders(true));
// Without deliver_early the fan-out follows the commit: each completion runs on its sender's
// worker, and two workers run theirs side by side, so the fan-outs take turns by submission
// (im_order.c:deliver_in_turn). This failed on every run before that: a recipient got a later
// message of a sender on its own worker before earlier ones from the other worker.
test('after the commit (deliver_early off): many senders on both workers, one conversation: every recipient gets every message once, in history order', manySenders(false));
test('after the commit (deliver_early off): many senders on both workers, one chat room: every session in it gets every message once, in history order', manySenders(false, true));
test('deliver_early: many senders on both workers, one chat room: every session in it gets every message once, in history order', manySenders(true, true));

test('deliver_early and a failing store: the first failed message has reached the recipient (what the option gives up); later ones reach nobody; for 10 s the next stored ones are delivered after their commit, in order, and history is exactly the acked messages', () =>
  withServer({ TERN_DELIVER_EARLY: '1', TERN_DEBUG_FAULTS: '1', ...SLOW }, async (srv) => {
    const [a, b] = [uid('A'), uid('B')];
    const A = await session(srv, a);
    const B = await session(srv, b);
    const { cid } = await startConv(A, [b]);
    const before = await burst(A, B, cid, 1, 'before');

    assert.equal((await storeFail(srv, true)).status, 200);
    const mark = B.mark();
    for (let k = 0; k < 4; k++) {
      const i = 100 + k;
      assertError(await A.request({ cmd: 'direct', i, directMessage: { cid, msg: TEXT(`lost ${k}`) } }), i, 4200, 'INTERNAL_ERROR');
    }
    await B.request({ cmd: 'echo' });
    await A.request({ cmd: 'echo' });
    const leaked = B.since(mark).filter((p) => p.cmd === 'direct').map((p) => JSON.parse(p.directMessage.msg)._lctext);
    assert.deepEqual(leaked, ['lost 0'], 'the first failed message was pushed before its commit failed; none after it');

    assert.equal((await storeFail(srv, false)).status, 200);
    const after = await burst(A, B, cid, 5, 'after'); // within 10 s of the failure: after the commit
    for (const m of after) assert.ok(m.ackAt - m.pushAt < 30, `${m.text}: pushed ${(m.ackAt - m.pushAt).toFixed(1)} ms before its ack, within 10 s of a failure`);
    const hist = await history(B, cid);
    assert.deepEqual(hist.map((l) => l.msgId), [...before, ...after].map((m) => m.uid), 'history is exactly the acked messages');
    const got = directs(B, cid).map((p) => p.directMessage.id);
    assert.deepEqual(got.filter((id) => hist.some((l) => l.msgId === id)), hist.map((l) => l.msgId), 'in history order, each once');
  }));

test('deliver_early with the store failing on and off under load: every acked message is in history once and reached its recipient once, in history order, with the ack\'s id and timestamp; whatever a recipient got beyond that is a send that was answered 4200', { timeout: 90000 }, () =>
  withServer({ TERN_DELIVER_EARLY: '1', TERN_DEBUG_FAULTS: '1', TERN_MAX_CONN_RATE: '0', TERN_MAX_CLIENT_RATE: '0' }, async (srv) => {
    const PAIRS = 4;
    const WINDOW = 6;
    const pairs = [];
    for (let k = 0; k < PAIRS; k++) {
      const [s, r] = [uid(`S${k}`), uid(`R${k}`)];
      const S = await session(srv, s);
      const R = await session(srv, r);
      pairs.push({ S, R, cid: (await startConv(S, [r])).cid, outcome: new Map() }); // text -> {uid, t} | {error}
    }
    let stop = false;
    const senders = pairs.map(async (p, k) => {
      let n = 0;
      const inflight = new Set();
      while (!stop) {
        const text = TEXT(`p${k} m${n++}`);
        const req = p.S.request({ cmd: 'direct', directMessage: { cid: p.cid, msg: text } }, 20000).then((r) => {
          if (r.cmd === 'ack') p.outcome.set(text, { uid: r.ackMessage.uid, t: r.ackMessage.t });
          else p.outcome.set(text, { error: r.errorMessage?.code });
        }, (e) => p.outcome.set(text, { lost: e.message }));
        inflight.add(req);
        req.finally(() => inflight.delete(req));
        if (inflight.size >= WINDOW) await Promise.race(inflight);
      }
      await Promise.all(inflight);
    });
    await new Promise((r) => setTimeout(r, 200)); // early deliveries first, then the flips
    for (let k = 0; k < 6; k++) {
      assert.equal((await storeFail(srv, k % 2 === 0)).status, 200);
      await new Promise((r) => setTimeout(r, 150));
    }
    assert.equal((await storeFail(srv, false)).status, 200);
    await new Promise((r) => setTimeout(r, 150));
    stop = true;
    await Promise.all(senders);
    let failedTotal = 0;
    for (const [k, p] of pairs.entries()) {
      const outcomes = [...p.outcome.entries()];
      assert.deepEqual(outcomes.filter(([, o]) => o.lost || (o.error !== undefined && o.error !== 4200)), [], `pair ${k}: every send acked or 4200`);
      const acked = outcomes.filter(([, o]) => o.uid).map(([text, o]) => ({ text, ...o }));
      const failed = new Set(outcomes.filter(([, o]) => o.error === 4200).map(([text]) => text));
      failedTotal += failed.size;
      const hist = await history(p.R, p.cid);
      const ackedIds = new Set(acked.map((a) => a.uid));
      assert.deepEqual(hist.map((l) => l.msgId).sort(), [...ackedIds].sort(), `pair ${k}: history is exactly the acked messages`);
      await p.R.request({ cmd: 'echo' }); // a barrier: every push sent before it has come
      const got = directs(p.R, p.cid).map((d) => d.directMessage);
      const gotAcked = got.filter((d) => ackedIds.has(d.id));
      assert.deepEqual(gotAcked.map((d) => `${d.id} ${d.timestamp} ${d.msg}`), hist.map((l) => `${l.msgId} ${l.timestamp} ${l.data}`),
        `pair ${k}: every acked message reached the recipient once, in history order, as history has it`);
      const extra = got.filter((d) => !ackedIds.has(d.id));
      assert.deepEqual(extra.filter((d) => !failed.has(d.msg)).map((d) => d.msg), [], `pair ${k}: anything else it got was a failed send`);
    }
    assert.ok(failedTotal > 0, 'some sends failed while the switch was on');
  }));

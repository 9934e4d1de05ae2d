// The fan-out after the commit, in history order (docs/architecture.md "A message, end to
// end"; src/server/im/im_order.c): a stored message reaches its recipients only after its
// commit, and each completion runs on its sender's worker, two workers side by side. So
// each fan-out takes its turn by submission (im_order.c:deliver_in_turn) and goes through
// the ordered fan-out (im.c:fanout_to_clients_ordered / fanout_to_room_ordered). Both tests
// failed on every run before that (the eaa8d59 binary): a recipient got a later message of a
// sender on its own worker before earlier ones from the other worker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { session, startConv, uid, withServer } from '../lib/proto-client.mjs';
import { history, until } from '../lib/issue4-util.mjs';

const directs = (c, cid) => c.received.filter((p) => p.cmd === 'direct' && p.directMessage.cid === cid);

const manySenders = (room = false) => () =>
  withServer({}, async (srv) => {
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

test('after the commit: many senders on both workers, one conversation: every recipient gets every message once, in history order', manySenders());
test('after the commit: many senders on both workers, one chat room: every session in it gets every message once, in history order', manySenders(true));

// Issue #3 point 8 with hand-built frames: the rules of chat rooms (protocol.md §3.12,
// §3.13, §3.19, §9.1): one chat room per login, online count and online members, no
// membership notifications, no offline messages, no receipts, automatic re-join after an
// unexpected disconnect (r:true reconnect login), and priorities under congestion: LOW is
// dropped first, NORMAL and HIGH still arrive.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { join as pathJoin } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { holdWriter } from '../lib/hold-writer.mjs';
import {
  assertError, closeAll, connect, login, sendMsg, session, startConv, uid, withServer,
} from '../lib/proto-client.mjs';
import { count, ok, concerns } from '../lib/issue3-util.mjs';

let server;
before(async () => { server = await startServer(); });
afterEach(() => closeAll(server));
after(async () => { await server.stop(); });

const TEXT = (t) => JSON.stringify({ _lctype: -1, _lctext: t });

async function join(client, cid) {
  const r = await ok(client, { cmd: 'conv', op: 'add', convMessage: { cid, m: [client.peer] } }, 'added');
  assert.deepEqual(r.convMessage.allowedPids, [client.peer]);
}

async function isMember(client, cid) {
  const r = await ok(client, { cmd: 'conv', op: 'is_member', convMessage: { cids: [cid] } }, 'is_member');
  return JSON.parse(r.convMessage.results.data)[cid];
}

async function online(client, cid) {
  const r = await ok(client, { cmd: 'conv', op: 'members', convMessage: { cid, limit: 50 } }, 'members');
  return [...(r.convMessage.m ?? [])].sort();
}

/** Polls count until it equals n (a dropped socket is noticed asynchronously). */
async function countBecomes(client, cid, n, what) {
  const end = Date.now() + 5000;
  let c;
  while ((c = await count(client, cid)) !== n) {
    assert.ok(Date.now() < end, `${what}: count stayed ${c}, expected ${n}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The direct pushes about cid received since mark, as texts. */
const texts = (client, mark, cid) => client.since(mark).filter((p) => p.cmd === 'direct' && p.directMessage.cid === cid)
  .map((p) => JSON.parse(p.directMessage.msg)._lctext);

test('§3.12 one chat room per login: joining another leaves the previous one (count, members, delivery, is_member)', async () => {
  const [b, c, d] = [uid('B'), uid('C'), uid('D')];
  const B = await session(server, b);
  const C = await session(server, c);
  const D = await session(server, d);
  const r1 = (await startConv(B, [], { transient: true })).cid;
  const r2 = (await startConv(C, [], { transient: true })).cid;
  await join(D, r1);
  assert.equal(await count(B, r1), 2);
  assert.deepEqual(await online(B, r1), [b, d].sort());
  await join(D, r2);
  assert.equal(await count(B, r1), 1, 'D left r1 by joining r2');
  assert.equal(await count(B, r2), 2);
  assert.deepEqual(await online(C, r2), [c, d].sort());
  assert.deepEqual(await online(C, r1), [b]);
  assert.equal(await isMember(D, r1), false);
  assert.equal(await isMember(D, r2), true);
  const mk = D.mark();
  await sendMsg(B, r1, TEXT('to r1'));
  await sendMsg(C, r2, TEXT('to r2'));
  await D.next((p) => p.cmd === 'direct' && p.directMessage.cid === r2);
  await D.quiet(mk);
  assert.deepEqual(texts(D, mk, r1), [], 'nothing from the room it left');
  assert.deepEqual(texts(D, mk, r2), ['to r2']);
  // creating a room is joining it: C's creation of r3 takes C out of r2
  const r3 = (await startConv(C, [], { transient: true })).cid;
  assert.equal(await count(D, r2), 1);
  assert.equal(await count(D, r3), 1);
});

test('§3.12/§3.19 chat rooms: no membership notifications, no offline messages, no receipts, no unread', async () => {
  const [b, d, x] = [uid('B'), uid('D'), uid('X')];
  const B = await session(server, b);
  const D = await session(server, d);
  const room = (await startConv(B, [], { transient: true })).cid;
  await join(D, room);
  const mkB = B.mark();
  const X = await session(server, x);
  await join(X, room);
  await ok(X, { cmd: 'conv', op: 'remove', convMessage: { cid: room, m: [x] } }, 'removed');
  // a message with a receipt request: D acks it, B gets no rcp
  const m = await sendMsg(B, room, TEXT('receipt?'), { r: true });
  const got = await D.next((p) => p.cmd === 'direct' && p.directMessage.id === m.uid);
  assert.equal(got.directMessage.convType, 2);
  D.send({ cmd: 'ack', i: null, ackMessage: { cid: room, mid: m.uid } });
  D.send({ cmd: 'ack', i: null, ackMessage: { cid: room, fromts: m.t, tots: m.t } });
  await D.echo();
  assert.deepEqual((await B.quiet(mkB)).filter((p) => !p.i), [], 'B: no joined/left notifications, no receipt');
  // D quits; messages sent meanwhile are not kept for it
  await ok(D, { cmd: 'conv', op: 'remove', convMessage: { cid: room, m: [d] } }, 'removed');
  await D.close();
  await sendMsg(B, room, TEXT('while D is away'));
  const D2 = await connect(server);
  await login(D2, d, { lastUnreadNotifTime: 1 });
  const queued = (await D2.quiet(0)).filter((p) => !p.i && concerns(p, room));
  assert.deepEqual(queued, [], 'no offline message, no unread count for a chat room');
  // and the history is still there for whoever looks
  const h = await B.request({ cmd: 'logs', logsMessage: { cid: room, l: 10 } });
  assert.deepEqual(h.logsMessage.logs.map((l) => JSON.parse(l.data)._lctext), ['receipt?', 'while D is away']);
});

test('§3.12 chat room: re-joined automatically after an unexpected disconnect and an r:true reconnect login', async () => {
  const [b, d] = [uid('B'), uid('D')];
  const B = await session(server, b);
  const room = (await startConv(B, [], { transient: true })).cid;
  const D = await session(server, d);
  await join(D, room);
  const st = D.openReply.sessionMessage.st;
  D.ws.terminate(); // no close frame: the connection died
  await D.closed;
  await countBecomes(B, room, 1, 'a dropped socket leaves the room');
  const D2 = await connect(server);
  const mk = D2.mark();
  await login(D2, d, { r: true, st });
  assert.equal(await count(B, room), 2, 'back in the room without a join');
  assert.equal(await isMember(D2, room), true);
  assert.deepEqual(await online(B, room), [b, d].sort());
  await sendMsg(B, room, TEXT('welcome back'));
  await D2.next((p) => p.cmd === 'direct' && p.directMessage.cid === room);
  assert.deepEqual(texts(D2, mk, room), ['welcome back']);
  assert.deepEqual(D2.since(mk).filter((p) => !p.i && p.cmd === 'conv'), [], 'no notification for the re-join');
});

test('§3.12 chat room: no automatic re-join for a fresh login (r:false) or after a goodbye', async () => {
  const [b, d, e, f] = [uid('B'), uid('D'), uid('E'), uid('F')];
  const B = await session(server, b);
  const room = (await startConv(B, [], { transient: true })).cid;
  // D drops unexpectedly but comes back with an explicit login
  const D = await session(server, d);
  await join(D, room);
  D.ws.terminate();
  await D.closed;
  await countBecomes(B, room, 1, 'D dropped');
  const D2 = await session(server, d);
  assert.equal(await isMember(D2, room), false, 'r:false is a new login: not put back');
  // E says goodbye (session close), then reconnects with r:true
  const E = await session(server, e);
  await join(E, room);
  const stE = E.openReply.sessionMessage.st;
  assert.equal((await E.request({ cmd: 'session', op: 'close' })).op, 'closed');
  await countBecomes(B, room, 1, 'E closed its session');
  // a logout revokes its token (issue #11 §10): the r:true reconnect with it is refused,
  // and one without a token (as the JS SDK retries then) is not put back either
  const refused = await (await connect(server)).request({ cmd: 'session', op: 'open', appId: server.appId, peerId: e, sessionMessage: { r: true, st: stE } });
  assert.equal(refused.errorMessage?.code, 4112, JSON.stringify(refused));
  const E2 = await session(server, e, { extra: { r: true } });
  assert.equal(await isMember(E2, room), false, 'a session close is a goodbye');
  // F closes the WebSocket cleanly (close frame 1000)
  const F = await session(server, f);
  await join(F, room);
  const stF = F.openReply.sessionMessage.st;
  await F.close();
  await countBecomes(B, room, 1, 'F closed its socket');
  const F2 = await session(server, f, { extra: { r: true, st: stF } });
  assert.equal(await isMember(F2, room), false, 'a WebSocket close frame is a goodbye');
  assert.equal(await count(B, room), 1);
});

test('§3.12 chat room: a client blocked from the room is not re-joined after a reconnect', async () => {
  const [b, d] = [uid('B'), uid('D')];
  const B = await session(server, b);
  const room = (await startConv(B, [], { transient: true })).cid;
  const D = await session(server, d);
  await join(D, room);
  const st = D.openReply.sessionMessage.st;
  D.ws.terminate();
  await D.closed;
  await countBecomes(B, room, 1, 'D dropped');
  await ok(B, { cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: room, toPids: [d] } }, 'blocked');
  const D2 = await session(server, d, { extra: { r: true, st } });
  assert.equal(await isMember(D2, room), false);
  assert.equal(await count(B, room), 1);
  const r = await ok(D2, { cmd: 'conv', op: 'add', convMessage: { cid: room, m: [d] } }, 'added');
  assert.deepEqual(r.convMessage.failedPids, [{ code: 4548, reason: 'BLOCKED_BY_CONV', pids: [d] }]);
});

test('§3.12 chat room: only self may join or leave; shut-up members cannot send (4563)', async () => {
  const [b, d] = [uid('B'), uid('D')];
  const B = await session(server, b);
  const room = (await startConv(B, [], { transient: true })).cid;
  const D = await session(server, d);
  await join(D, room);
  const r = await ok(B, { cmd: 'conv', op: 'remove', convMessage: { cid: room, m: [d] } }, 'removed');
  assert.deepEqual(r.convMessage.failedPids, [{ code: 4308, reason: 'CONVERSATION_NOT_ALLOWED', pids: [d] }]);
  assert.equal(await count(B, room), 2);
  await ok(B, { cmd: 'conv', op: 'add_shutup', convMessage: { cid: room, m: [d] } }, 'shutup_added');
  assertError(await D.request({ cmd: 'direct', i: 9, directMessage: { cid: room, msg: TEXT('hush') } }), 9, 4563, 'SILIENCED');
});

test('§3.19 chat room priorities under congestion: LOW is dropped first, NORMAL and HIGH still arrive, in order; a reader keeping up gets everything', async () => {
  // large messages so that a few hundred overflow whatever the kernel buffers for the
  // paused reader (several MB on loopback)
  await withServer({ TERN_OUTPUT_LIMIT: String(16 << 20), TERN_MAX_MESSAGE: String(1 << 17), TERN_MAX_FRAME: String(1 << 18) }, async (srv) => {
    const [s, slow, fast] = [uid('S'), uid('slow'), uid('fast')];
    const S = await session(srv, s);
    const room = (await startConv(S, [], { transient: true })).cid;
    const Slow = await session(srv, slow);
    const Fast = await session(srv, fast);
    await join(Slow, room);
    await join(Fast, room);
    Slow.ws._socket.pause(); // stops reading: the server's queue for it grows
    const pad = 'x'.repeat(60000);
    const N_LOW = 300;
    // one request in flight at a time, so that the reader that keeps up is never behind
    for (let k = 0; k < N_LOW; k++) {
      await S.request({ cmd: 'direct', priority: 3, directMessage: { cid: room, msg: TEXT(`low ${k} ${pad}`) } }, 30000);
    }
    const tail = [];
    for (let k = 0; k < 10; k++) tail.push(S.request({ cmd: 'direct', priority: 2, directMessage: { cid: room, msg: TEXT(`normal ${k}`) } }, 30000));
    for (let k = 0; k < 10; k++) tail.push(S.request({ cmd: 'direct', priority: 1, directMessage: { cid: room, msg: TEXT(`high ${k}`) } }, 30000));
    for (const a of await Promise.all(tail)) assert.equal(a.cmd, 'ack');
    const isText = (t) => (p) => p.cmd === 'direct' && p.directMessage.msg.includes(`"${t}"`);
    await Fast.next(isText('high 9'), 30000);
    Slow.ws._socket.resume();
    await Slow.next(isText('high 9'), 30000);
    const kinds = (cl) => cl.received.filter((p) => p.cmd === 'direct').map((p) => JSON.parse(p.directMessage.msg)._lctext.split(' ').slice(0, 2).join(' '));
    const fastGot = kinds(Fast);
    assert.equal(fastGot.length, N_LOW + 20, 'the reader that keeps up gets every message');
    const slowGot = kinds(Slow);
    const low = slowGot.filter((t) => t.startsWith('low'));
    const rest = slowGot.filter((t) => !t.startsWith('low'));
    assert.ok(low.length < N_LOW, `some LOW messages were dropped for the congested reader (got ${low.length} of ${N_LOW})`);
    assert.ok(low.length > 0, 'LOW messages are delivered until the queue fills');
    assert.deepEqual(rest, [...Array.from({ length: 10 }, (_, k) => `normal ${k}`), ...Array.from({ length: 10 }, (_, k) => `high ${k}`)],
      'every NORMAL and HIGH message arrives, in order');
    const lowSeq = low.map((t) => Number(t.split(' ')[1]));
    assert.deepEqual(lowSeq, [...lowSeq].sort((x, y) => x - y), 'the LOW messages that arrive are in order');
    assert.equal(Slow.isClosed, false, 'the slow reader was not disconnected');
  });
});

test('§3.19 chat room back-pressure: senders that do not wait for their acks are paused past 64 waiting and resumed; every message acked once, delivered once, in order', async () => {
  // Two workers: a chat-room message's ack waits until every worker has queued it to its
  // members (docs/architecture.md, "Chat-room back-pressure"). 300 sends written at once are
  // committed in one batch (the writer held meanwhile), so well over 64 acks wait at the
  // same moment. Two senders (on one worker or two, as the kernel spreads them): a fan-out
  // whose commit completed before the other sender's waits for its turn, and its ack
  // travels with it.
  await withServer({ TERN_WORKERS: '2' }, async (srv) => {
    const senders = [await session(srv, uid('S')), await session(srv, uid('T'))];
    const room = (await startConv(senders[0], [], { transient: true })).cid;
    await join(senders[1], room);
    const members = [];
    for (let k = 0; k < 6; k++) { // spread over both workers by the kernel (SO_REUSEPORT)
      const m = await session(srv, uid(`m${k}`));
      await join(m, room);
      members.push(m);
    }
    const N = 300;
    // the writer held (sqlite3's BEGIN IMMEDIATE) until both senders' 300 are read, so they
    // commit together and their completions run in a row: over 64 acks wait at once
    const writer = await holdWriter('sqlite3', [pathJoin(srv.dir, 'tern.db')], '.timeout 0\nBEGIN IMMEDIATE;', 'COMMIT;');
    const acks = [];
    try {
      for (let k = 0; k < N; k++) {
        for (const [j, S] of senders.entries()) acks.push(S.request({ cmd: 'direct', directMessage: { cid: room, msg: TEXT(`m${j} ${k}`) } }, 30000));
      }
      for (const S of senders) await S.echo(); // answered after the sends before it were read
    } finally {
      await writer.release();
    }
    const got = await Promise.all(acks);
    for (const a of got) assert.equal(a.cmd, 'ack');
    assert.equal(new Set(got.map((a) => a.ackMessage.uid)).size, 2 * N, 'one stored message per send');
    // the links were paused and read again: a request after the flood is answered
    for (const [j, S] of senders.entries()) {
      const after = await S.request({ cmd: 'direct', directMessage: { cid: room, msg: TEXT(`m${j} after`) } }, 30000);
      assert.equal(after.cmd, 'ack');
    }
    for (const m of members) {
      for (let j = 0; j < 2; j++) await m.next((p) => p.cmd === 'direct' && p.directMessage.msg.includes(`"m${j} after"`), 30000);
      const seen = m.received.filter((p) => p.cmd === 'direct' && p.directMessage.cid === room)
        .map((p) => JSON.parse(p.directMessage.msg)._lctext);
      for (let j = 0; j < 2; j++) {
        const want = [...Array.from({ length: N }, (_, k) => `m${j} ${k}`), `m${j} after`];
        assert.deepEqual(seen.filter((t) => t.startsWith(`m${j} `)), want, `${m.peer}: every message of sender ${j} once, in order`);
      }
    }
    const res = await fetch(`${srv.httpUrl}/metrics`, { headers: { Authorization: `Bearer ${srv.masterKey}` } });
    const paused = Number(/^tern_room_senders_paused_total (\d+)$/m.exec(await res.text())?.[1]);
    assert.ok(paused >= 1, `a sender was paused (tern_room_senders_paused_total ${paused})`);
  });
});

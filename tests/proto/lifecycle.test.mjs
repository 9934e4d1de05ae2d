// Issue #3 points 9–12 with hand-built frames:
//   9  temporary conversations: TTL expiry → 4323 on every operation, swept afterwards
//  10  idle conversations (no message, no update for conv_idle_ttl) deleted by the sweep;
//      later use gets 4401 (send) / 4303 (conversation ops); a room with people in it stays
//  11  will messages: held with the session, sent when its connection drops unexpectedly,
//      discarded on a goodbye (session close, close frame)
//  12  reliable notifications: GET /1.1/rtm/notifications serves the permanent conversation
//      notifications a client missed, in the JS shape (and the Swift one), paged by serverTs
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import {
  assertError, closeAll, connect, login, sendMsg, session, startConv, uid, withServer,
} from '../lib/proto-client.mjs';
import { group, nextConv, count, ok } from '../lib/issue3-util.mjs';

let server;
before(async () => { server = await startServer(); });
afterEach(() => closeAll(server));
after(async () => { await server.stop(); });

const TEXT = (t) => JSON.stringify({ _lctype: -1, _lctext: t });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const textOf = (p) => JSON.parse(p.directMessage.msg)._lctext;

/** Polls fn() until it returns true (time-based server behaviour: TTLs and the sweep). */
async function eventually(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    assert.ok(Date.now() < end, `${what}: not within ${ms} ms`);
    await sleep(100);
  }
}

// ================================================================ 11. will messages

test('§3.6 will message: acked now, delivered to nobody until the sender\'s connection drops, then sent as a normal message', async () => {
  const g = await group(server);
  const { cid, ids } = g;
  const mkB = g.B.mark();
  const r = await g.A.request({ cmd: 'direct', i: 7, directMessage: { cid, msg: TEXT('A went away'), will: true } });
  assert.equal(r.cmd, 'ack', JSON.stringify(r));
  assert.equal(r.i, 7);
  assert.ok(r.ackMessage.uid, 'the will is acked with an id');
  assert.ok(r.ackMessage.t > 0);
  assert.equal(r.ackMessage.code, undefined);
  // a normal message afterwards arrives alone
  await sendMsg(g.A, cid, TEXT('normal'));
  await g.B.next((p) => p.cmd === 'direct' && textOf(p) === 'normal');
  assert.deepEqual(g.B.since(mkB).filter((p) => p.cmd === 'direct').map(textOf), ['normal'], 'the will is not delivered yet');
  g.A.ws.terminate(); // the connection dies without a goodbye
  for (const cl of [g.B, g.C]) {
    const p = await cl.next((x) => x.cmd === 'direct' && textOf(x) === 'A went away');
    assert.equal(p.directMessage.fromPeerId, ids.A);
    assert.equal(p.directMessage.cid, cid);
    assert.ok(p.directMessage.id);
  }
  const h = await g.B.request({ cmd: 'logs', logsMessage: { cid, l: 10 } });
  assert.deepEqual(h.logsMessage.logs.map((l) => JSON.parse(l.data)._lctext), ['normal', 'A went away'], 'stored like any message');
  // D, offline, finds it as an unread message like any other
  const D = await connect(server);
  await login(D, ids.D);
  const u = await D.next((p) => p.cmd === 'unread');
  const t = u.unreadMessage.convs.find((x) => x.cid === cid);
  assert.equal(t.unread, 2);
  assert.equal(JSON.parse(t.data)._lctext, 'A went away');
});

test('§3.6 will message is discarded on a goodbye: session close, or a WebSocket close frame', async () => {
  for (const how of ['session close', 'close frame']) {
    const g = await group(server);
    const { cid } = g;
    const mkB = g.B.mark();
    await sendMsg(g.A, cid, TEXT(`will (${how})`), { will: true });
    if (how === 'session close') assert.equal((await g.A.request({ cmd: 'session', op: 'close' })).op, 'closed');
    await g.A.close();
    // a marker from C after the goodbye: had the will been sent, it would be ahead of it
    await sendMsg(g.C, cid, TEXT('marker'));
    await g.B.next((p) => p.cmd === 'direct' && textOf(p) === 'marker');
    assert.deepEqual(g.B.since(mkB).filter((p) => p.cmd === 'direct').map(textOf), ['marker'], `${how}: no will`);
  }
});

test('§3.6 will message: checked when given (4401 for a non-member), not sent if the sender left meanwhile; several wills all go', async () => {
  const g = await group(server);
  const { cid, ids } = g;
  const M = await session(server, uid('M'));
  assertError(await M.request({ cmd: 'direct', i: 3, directMessage: { cid, msg: TEXT('x'), will: true } }), 3, 4401, 'INVALID_MESSAGING_TARGET');
  // B leaves a will, then quits: at its drop it is no longer a member, so nothing is sent
  await sendMsg(g.B, cid, TEXT('B will'), { will: true });
  await ok(g.B, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [ids.B] } }, 'removed');
  // C leaves two wills in two conversations
  const other = (await startConv(g.A, [ids.C])).cid;
  await nextConv(g.C, 'joined', other);
  await sendMsg(g.C, cid, TEXT('C will 1'), { will: true });
  await sendMsg(g.C, other, TEXT('C will 2'), { will: true });
  const mkA = g.A.mark();
  g.B.ws.terminate();
  g.C.ws.terminate();
  await g.A.next((p) => p.cmd === 'direct' && textOf(p) === 'C will 1');
  await g.A.next((p) => p.cmd === 'direct' && textOf(p) === 'C will 2');
  await sendMsg(g.A, cid, TEXT('marker')); // after both drops were handled
  const h = await g.A.request({ cmd: 'logs', logsMessage: { cid, l: 10 } });
  assert.deepEqual(h.logsMessage.logs.map((l) => JSON.parse(l.data)._lctext), ['C will 1', 'marker'], 'B\'s will was not sent');
  assert.ok(!g.A.since(mkA).some((p) => p.cmd === 'direct' && textOf(p) === 'B will'));
});

// ================================================================ 9. temporary conversations

test('§3.4 temporary conversation past its TTL: 4323 for send, count, update, add, max_read; the sweep removes it', async () => {
  await withServer({ TERN_SWEEP_INTERVAL: '1' }, async (srv) => {
    const [a, b] = [uid('A'), uid('B')];
    const A = await session(srv, a);
    const B = await session(srv, b);
    const t = await startConv(A, [b], { tempConv: true, tempConvTTL: 1 });
    assert.equal(t.tempConvTTL, 1);
    const cid = t.cid;
    await sendMsg(A, cid, TEXT('in time'));
    await eventually(async () => {
      const r = await A.request({ cmd: 'conv', op: 'count', convMessage: { cid } });
      return r.cmd === 'error';
    }, 5000, 'the temporary conversation expires');
    const cases = [
      [A, { cmd: 'direct', directMessage: { cid, msg: TEXT('too late') } }],
      [B, { cmd: 'direct', directMessage: { cid, msg: TEXT('too late'), transient: true } }],
      [A, { cmd: 'conv', op: 'count', convMessage: { cid } }],
      [A, { cmd: 'conv', op: 'update', convMessage: { cid, attr: { data: '{"name":"x"}' } } }],
      [A, { cmd: 'conv', op: 'add', convMessage: { cid, m: [uid('x')] } }],
      [B, { cmd: 'conv', op: 'max_read', convMessage: { cid } }],
    ];
    let i = 100;
    for (const [cl, cmd] of cases) {
      i += 1;
      assertError(await cl.request({ ...cmd, i }), i, 4323, ''); // an empty reason: the SDKs show their own text
    }
    await eventually(async () => {
      const r = await A.request({ cmd: 'conv', op: 'query', convMessage: { tempConvIds: [cid] } });
      return JSON.parse(r.convMessage.results.data).length === 0;
    }, 5000, 'the sweep deletes the expired temporary conversation');
    assertError(await A.request({ cmd: 'direct', i: 200, directMessage: { cid, msg: TEXT('gone') } }), 200, 4323, ''); // an empty reason: the SDKs show their own text
  });
});

// ================================================================ 10. idle conversations

test('§9.1 conversations idle (no message, no update) for conv_idle_ttl are deleted by the sweep; later use gets 4401 / 4303', async () => {
  // The idle one goes at ~8–9 s, the updated and the messaged ones not before 11 s: the
  // checks between the two have ~2 s. A message's time reaches storage (lm) with the
  // writer's once-a-second flush, after the next write (here the sweep's own prune), so the
  // messaged one counts as used only from then: it has ~5 s to land before the idle one's
  // sweep (with a 4 s TTL and the update at 2.5 s it had ~1.5 s, which a loaded machine
  // overran now and then).
  await withServer({ TERN_CONV_IDLE_TTL: '8', TERN_SWEEP_INTERVAL: '1' }, async (srv) => {
    const [a, b, c] = [uid('A'), uid('B'), uid('C')];
    const A = await session(srv, a);
    const B = await session(srv, b);
    const C = await session(srv, c);
    const idle = (await startConv(A, [b])).cid;
    const updated = (await startConv(A, [b])).cid;
    const messaged = (await startConv(A, [b])).cid;
    const emptyRoom = (await startConv(A, [], { transient: true })).cid;
    const busyRoom = (await startConv(C, [], { transient: true })).cid; // C stays in it
    await startConv(A, [], { transient: true }); // A moves on to another room: emptyRoom is empty
    const t0 = Date.now();
    await sleep(3000 - (Date.now() - t0));
    await ok(B, { cmd: 'conv', op: 'update', convMessage: { cid: updated, attr: { data: '{"name":"still used"}' } } }, 'updated');
    await sendMsg(B, messaged, TEXT('still used'));
    // polled through conv/query, which reads storage and leaves the conversation cache alone
    const exists = async (cid) => JSON.parse((await ok(A, { cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } }, 'results')).convMessage.results.data).length > 0;
    await eventually(async () => !(await exists(idle)), 12000, 'the idle conversation is swept');
    // the two that were used recently, and the room with someone in it, are still there
    assert.equal(await count(A, updated), 2);
    assert.equal(await count(A, messaged), 2);
    assert.equal(await count(A, busyRoom), 1);
    // the empty room went idle when A moved on, after the idle conversation's creation: on a
    // loaded machine that can be past the sweep tick that took the idle one, so it may go a
    // tick (1 s) later
    let gone;
    for (const end = Date.now() + 5000; ;) {
      gone = await A.request({ cmd: 'conv', op: 'count', i: 11, convMessage: { cid: emptyRoom } });
      if (gone.cmd === 'error' || Date.now() > end) break;
      await sleep(100);
    }
    assertError(gone, 11, 4303, 'CONVERSATION_NOT_FOUND');
    // later use of the deleted conversation
    assertError(await B.request({ cmd: 'direct', i: 12, directMessage: { cid: idle, msg: TEXT('hello?') } }), 12, 4401, 'INVALID_MESSAGING_TARGET');
    assertError(await A.request({ cmd: 'conv', op: 'count', i: 13, convMessage: { cid: idle } }), 13, 4303, 'CONVERSATION_NOT_FOUND');
    assertError(await A.request({ cmd: 'conv', op: 'update', i: 14, convMessage: { cid: idle, attr: { data: '{"name":"x"}' } } }), 14, 4303, 'CONVERSATION_NOT_FOUND');
    assertError(await B.request({ cmd: 'conv', op: 'add', i: 15, convMessage: { cid: idle, m: [b] } }), 15, 4303, 'CONVERSATION_NOT_FOUND');
    const q = await A.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: { $in: [idle, updated] } }) } } });
    assert.deepEqual(JSON.parse(q.convMessage.results.data).map((x) => x.objectId), [updated]);
    // an update only postpones: the updated conversation goes too once it is idle long enough
    await eventually(async () => !(await exists(updated)), 14000, 'the updated conversation is swept later');
    assertError(await A.request({ cmd: 'conv', op: 'count', i: 16, convMessage: { cid: updated } }), 16, 4303, 'CONVERSATION_NOT_FOUND');
  });
});

test('§9.1 a conversation in use while the sweep deletes it is gone afterwards (not kept alive by the cache)', async () => {
  // rate limits off: A reads as fast as it can to hit the moment of the deletion
  await withServer({ TERN_CONV_IDLE_TTL: '2', TERN_SWEEP_INTERVAL: '1', TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0' }, async (srv) => {
    const [a, b] = [uid('A'), uid('B')];
    const A = await session(srv, a);
    const B = await session(srv, b);
    const cid = (await startConv(A, [b])).cid;
    const exists = async () => JSON.parse((await ok(B, { cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } }, 'results')).convMessage.results.data).length > 0;
    // A keeps reading the member count (a read: it does not make the conversation active)
    // while the sweep runs; B watches storage
    let stop = false;
    const reader = (async () => {
      while (!stop) await A.request({ cmd: 'conv', op: 'count', convMessage: { cid } });
    })();
    try {
      await eventually(async () => !(await exists()), 8000, 'the conversation is swept');
    } finally {
      stop = true;
      await reader;
    }
    assertError(await A.request({ cmd: 'conv', op: 'count', i: 5, convMessage: { cid } }), 5, 4303, 'CONVERSATION_NOT_FOUND');
    assertError(await B.request({ cmd: 'direct', i: 6, directMessage: { cid, msg: TEXT('still there?') } }), 6, 4401, 'INVALID_MESSAGING_TARGET');
  });
});

// ================================================================ 12. reliable notifications

async function notifications(srv, client, st, { start, type = 'permanent', key = srv.appKey } = {}) {
  const qs = new URLSearchParams({ client_id: client });
  if (start !== undefined) qs.set('start_ts', String(start));
  if (type) qs.set('notification_type', type);
  const res = await fetch(`${srv.httpUrl}/1.1/rtm/notifications?${qs}`, {
    headers: { 'X-LC-Id': srv.appId, 'X-LC-Key': key, 'X-LC-IM-Session-Token': st },
  });
  return { status: res.status, body: await res.json() };
}

test('§3.20 GET /1.1/rtm/notifications: what a client missed while away, in order, in the JS shape; start_ts exclusive; Swift shape', async () => {
  const g = await group(server);
  const { cid, ids } = g;
  const st = g.B.openReply.sessionMessage.st;
  const t0 = g.B.openReply.serverTs;
  const E = await session(server, uid('E'));
  ids.E = E.peer;
  // everything B saw while online
  const seen = await notifications(server, ids.B, st, { start: t0 });
  assert.equal(seen.status, 200, JSON.stringify(seen.body));
  assert.equal(seen.body.hasMore, false);
  const cursor = Math.max(t0, ...seen.body.notifications.map((n) => n.serverTs));
  await g.B.close();
  // while B is away
  await ok(g.A, { cmd: 'conv', op: 'add', convMessage: { cid, m: [ids.E] } }, 'added');
  await ok(g.C, { cmd: 'conv', op: 'update', convMessage: { cid, attr: { data: '{"name":"renamed","attr.x":1}' } } }, 'updated');
  await ok(g.A, { cmd: 'conv', op: 'member_info_update', convMessage: { cid, targetClientId: ids.C, info: { pid: ids.C, role: 'Manager' } } }, 'member_info_updated');
  await ok(g.A, { cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [ids.C] } }, 'shutup_added');
  await ok(g.A, { cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: cid, toPids: [ids.E] } }, 'blocked');
  await ok(g.A, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [ids.B] } }, 'removed');
  // the notifications are written behind the pushes: wait until all seven are readable
  let got;
  await eventually(async () => {
    got = await notifications(server, ids.B, st, { start: cursor });
    return got.status === 200 && got.body.notifications.length >= 7;
  }, 3000, 'B\'s notifications are stored');
  assert.equal(got.body.hasMore, false);
  const list = got.body.notifications;
  assert.deepEqual(list.map((n) => `${n.cmd}/${n.op}`), [
    'conv/members_joined', 'conv/updated', 'conv/member_info_changed', 'conv/members_shutuped',
    'conv/members_blocked', 'conv/members_left', 'conv/left',
  ]);
  for (const n of list) {
    assert.equal(n.cid, cid);
    assert.equal(n.notificationType, 1);
    assert.ok(n.serverTs > cursor, 'start_ts is exclusive');
  }
  assert.deepEqual(list.map((n) => n.serverTs), list.map((n) => n.serverTs).sort((x, y) => x - y), 'oldest first');
  const [mj, upd, mic, msh, mbl, mle, left] = list;
  assert.deepEqual([mj.initBy, mj.m], [ids.A, [ids.E]]);
  assert.equal(upd.initBy, ids.C);
  assert.equal(typeof upd.attr.data, 'string', 'attr as the JsonObjectMessage the JS SDK reads (attr.data)');
  assert.deepEqual(JSON.parse(upd.attr.data), { name: 'renamed', 'attr.x': 1 });
  assert.deepEqual([mic.initBy, mic.info.pid, mic.info.role], [ids.A, ids.C, 'Manager']);
  assert.deepEqual([msh.initBy, msh.m], [ids.A, [ids.C]]);
  assert.deepEqual([mbl.initBy, mbl.m], [ids.A, [ids.E]]);
  assert.deepEqual([mle.initBy, mle.m], [ids.A, [ids.E]]);
  assert.equal(left.initBy, ids.A);
  // from the third one on
  const later = await notifications(server, ids.B, st, { start: mic.serverTs });
  assert.deepEqual(later.body.notifications.map((n) => n.op), ['members_shutuped', 'members_blocked', 'members_left', 'left']);
  // the Swift SDK's shape: no notification_type
  const swift = await notifications(server, ids.B, st, { start: cursor, type: null });
  assert.equal(swift.status, 200);
  assert.deepEqual(swift.body.droppable, { notifications: [], invalidLocalConvCache: false });
  const sl = swift.body.permanent.notifications;
  assert.deepEqual(sl.map((n) => n.op), ['members-joined', 'updated', 'member-info-changed', 'members-shutuped', 'members-blocked', 'members-left', 'left']);
  assert.deepEqual(sl[1].attr, { name: 'renamed', 'attr.x': 1 }, 'Swift: attr as an object');
  assert.equal(typeof sl[1].attrModified, 'object');
  // other clients' notifications are not in B's list: C got shutuped, E got blocked
  const stC = g.C.openReply.sessionMessage.st;
  const cl = await notifications(server, ids.C, stC, { start: cursor });
  assert.ok(cl.body.notifications.some((n) => n.op === 'shutuped'), 'C has its own shutuped');
  assert.ok(!list.some((n) => n.op === 'shutuped' || n.op === 'blocked'));
});

test('§3.20 /rtm/notifications pages: hasMore, cursor = the last serverTs, nothing lost or repeated', async () => {
  const g = await group(server);
  const { cid, ids } = g;
  const st = g.B.openReply.sessionMessage.st;
  const start = Date.now() - 1;
  const N = 130;
  for (let k = 0; k < N; k += 1) {
    await ok(g.A, { cmd: 'conv', op: k % 2 ? 'remove_shutup' : 'add_shutup', convMessage: { cid, m: [ids.D] } }, k % 2 ? 'shutup_removed' : 'shutup_added');
  }
  let all;
  let pages;
  const collectAll = async () => {
    all = [];
    pages = 0;
    let cursor = start;
    for (;;) {
      const r = await notifications(server, ids.B, st, { start: cursor });
      assert.equal(r.status, 200);
      pages += 1;
      all.push(...r.body.notifications);
      if (!r.body.hasMore) break;
      assert.ok(r.body.notifications.length > 0);
      cursor = r.body.notifications[r.body.notifications.length - 1].serverTs;
      assert.ok(pages < 10);
    }
    return all.filter((n) => n.cid === cid && /^members_(un)?shutuped$/.test(n.op)).length >= N;
  };
  // the notifications are written behind the pushes: wait until the last is readable
  await eventually(collectAll, 3000, 'all notifications stored');
  assert.ok(pages >= 2, 'more than one page');
  const mine = all.filter((n) => n.cid === cid && /^members_(un)?shutuped$/.test(n.op));
  assert.equal(mine.length, N, 'every notification exactly once');
  mine.forEach((n, k) => assert.equal(n.op, k % 2 ? 'members_unshutuped' : 'members_shutuped', `#${k}`));
});

test('§3.20 /rtm/notifications needs the app key and the client\'s own session token (401)', async () => {
  const g = await group(server);
  const stB = g.B.openReply.sessionMessage.st;
  const stC = g.C.openReply.sessionMessage.st;
  assert.equal((await notifications(server, g.ids.B, stB)).status, 200);
  assert.equal((await notifications(server, g.ids.B, stC)).status, 401, 'C\'s token for B');
  assert.equal((await notifications(server, g.ids.B, 'forged')).status, 401);
  assert.equal((await notifications(server, g.ids.B, stB, { key: 'wrong' })).status, 401);
  const res = await fetch(`${server.httpUrl}/1.1/rtm/notifications?client_id=${g.ids.B}`, { headers: { 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey } });
  assert.equal(res.status, 401, 'no token');
  await res.arrayBuffer();
});

// Issue #11 (hardening), the IM-domain points, with hand-built frames (protocol.md §3, §6,
// §9). Each test fails on the code before the fix it covers (see the commit messages).
//    1  a client blocked from a chat room (blacklist/block, REST …/chatrooms/{cid}/blacklists)
//       is out of it at once (blocked, then left), its sends are refused (4548), it cannot
//       join nor re-join
//    5  client ids: valid UTF-8, 1–64 characters, no control characters, wherever an id
//       comes in (4103; REST 400 with code 4103); unique ids stay stable for ordinary ids
//       and cannot be forged with '\n'
//    9  edit and recall pass the checks a send does (4401 removed, 4548 blocked, 4563 shut up)
//   11  a chat room's history is for the sessions in it (4312)
//   16  conv query with limit 0 finds nothing
//   17  tempConv + unique: the same temporary conversation while it lives, a new one after
//   19  member roles: a shut-up member (a Manager too) lifts no shut-up; the owner may quit
//       and re-join where there is no Manager, not where there is (4324)
//   20  every command's reply is written before the notifications it causes
// The suite's server runs one worker, so an echo round trip is a barrier for deliveries
// too; the cross-worker kick of point 1 has its own multi-worker server.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import protobuf from 'protobufjs';
import { startServer } from '../lib/server.mjs';
import {
  PROTO_PATH, assertError, assertPush, closeAll, connect, login, session, startConv, sendMsg, uid, withServer,
} from '../lib/proto-client.mjs';
import { count, ok, nextConv, convPushes, row } from '../lib/issue3-util.mjs';

let server;
before(async () => { server = await startServer({ env: { TERN_WORKERS: '1' } }); });
afterEach(() => closeAll(server));
after(async () => { await server.stop(); });

const TEXT = (t) => JSON.stringify({ _lctype: -1, _lctext: t });
const MASTER = (srv) => ({ 'X-LC-Id': srv.appId, 'X-LC-Key': `${srv.masterKey},master`, 'Content-Type': 'application/json' });

async function api(srv, method, path, body) {
  const res = await fetch(srv.httpUrl + path, {
    method, headers: MASTER(srv), body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch { parsed = text; }
  return { status: res.status, body: parsed };
}

/** A refused REST call: 400, code 4103 INVALID_LOGIN and a message. */
function assertBadId(r, what) {
  assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
  assert.equal(r.body.code, 4103, `${what}: ${JSON.stringify(r.body)}`);
  assert.ok(typeof r.body.error === 'string' && r.body.error.length > 0, what);
}

async function join(client, cid, peer = client.peer) {
  const r = await ok(client, { cmd: 'conv', op: 'add', peerId: peer, convMessage: { cid, m: [peer] } }, 'added');
  assert.deepEqual(r.convMessage.allowedPids, [peer], JSON.stringify(r));
}

async function online(client, cid) {
  const r = await ok(client, { cmd: 'conv', op: 'members', convMessage: { cid, limit: 50 } }, 'members');
  return [...(r.convMessage.m ?? [])].sort();
}

async function isMember(client, cid) {
  const r = await ok(client, { cmd: 'conv', op: 'is_member', convMessage: { cids: [cid] } }, 'is_member');
  return JSON.parse(r.convMessage.results.data)[cid];
}

async function eventually(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    assert.ok(Date.now() < end, `${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Text messages of cid pushed to client since mark. */
const texts = (client, mark, cid) => client.since(mark).filter((p) => p.cmd === 'direct' && p.directMessage.cid === cid)
  .map((p) => JSON.parse(p.directMessage.msg)._lctext);

// ================================================================ 1. chat-room blacklist

test('#11.1 blocked from a chat room: out at once (blocked, then left, initBy the owner), no more messages, sends 4548, no join, no re-join', async () => {
  const [b, d, e] = [uid('B'), uid('D'), uid('E')];
  const B = await session(server, b);
  const room = (await startConv(B, [], { transient: true })).cid;
  const D = await session(server, d); // in the room
  const D2 = await session(server, d); // D's other device, not in the room
  const E = await session(server, e);
  await join(D, room);
  await join(E, room);
  assert.equal(await count(B, room), 3);
  const [mkD, mkD2, mkE] = [D.mark(), D2.mark(), E.mark()];
  const r = await B.request({ cmd: 'blacklist', op: 'block', i: 40, blacklistMessage: { srcCid: room, toPids: [d] } });
  assert.equal(r.op, 'blocked', JSON.stringify(r));
  assert.deepEqual(r.blacklistMessage.allowedPids, [d]);
  await nextConv(D, 'left', room, 'conv', undefined, mkD);
  const got = convPushes(D, mkD, room);
  assert.deepEqual(got.map((p) => p.op), ['blocked', 'left'], 'the session in the room: blocked, then left');
  for (const p of got) {
    assertPush(p, d);
    assert.equal(p.convMessage.initBy, b);
  }
  assert.deepEqual((await D2.quiet(mkD2)).filter((p) => !p.i).map((p) => p.op), ['blocked'], 'the device not in the room: only blocked');
  assert.deepEqual((await E.quiet(mkE)).filter((p) => !p.i), [], 'the rest of the room hears nothing');
  assert.equal(await count(B, room), 2, 'D is out');
  assert.deepEqual(await online(B, room), [b, e].sort());
  assert.equal(await isMember(D, room), false);
  // nothing more reaches D's session
  const mk = D.mark();
  await sendMsg(B, room, TEXT('after the block'));
  await sendMsg(E, room, TEXT('me too'));
  await D.quiet(mk); // one worker: the deliveries of both sends ran before this echo
  assert.deepEqual(texts(D, mk, room), [], 'D gets no room message');
  // its sends are refused, its joins too
  assertError(await D.request({ cmd: 'direct', i: 41, directMessage: { cid: room, msg: TEXT('still here?') } }), 41, 4548, 'BLOCKED_BY_CONV');
  assertError(await D.request({ cmd: 'direct', i: 42, directMessage: { cid: room, msg: TEXT('typing'), transient: true } }), 42, 4548, 'BLOCKED_BY_CONV');
  const j = await ok(D2, { cmd: 'conv', op: 'add', convMessage: { cid: room, m: [d] } }, 'added');
  assert.deepEqual(j.convMessage.failedPids, [{ code: 4548, reason: 'BLOCKED_BY_CONV', pids: [d] }]);
  assert.equal(await count(B, room), 2);
  // an unexpected drop now brings no re-join: D was not in the room when it dropped
  const st = D.openReply.sessionMessage.st;
  D.ws.terminate();
  await D.closed;
  const D3 = await session(server, d, { extra: { r: true, st } });
  assert.equal(await isMember(D3, room), false);
  // unblocked, D may come back and hears the room again
  await ok(B, { cmd: 'blacklist', op: 'unblock', blacklistMessage: { srcCid: room, toPids: [d] } }, 'unblocked');
  await join(D3, room);
  const mk3 = D3.mark();
  await sendMsg(B, room, TEXT('welcome back'));
  await D3.quiet(mk3);
  assert.deepEqual(texts(D3, mk3, room), ['welcome back']);
});

test('#11.1 a client in a chat room, dropped, then blocked, is not put back by its r:true reconnect login', async () => {
  const [b, d] = [uid('B'), uid('D')];
  const B = await session(server, b);
  const room = (await startConv(B, [], { transient: true })).cid;
  const D = await session(server, d);
  await join(D, room);
  const st = D.openReply.sessionMessage.st;
  D.ws.terminate();
  await D.closed;
  await eventually(async () => (await count(B, room)) === 1, 5000, 'D dropped');
  await ok(B, { cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: room, toPids: [d] } }, 'blocked');
  const D2 = await session(server, d, { extra: { r: true, st } });
  assert.equal(await isMember(D2, room), false);
  assert.equal(await count(B, room), 1);
});

test('#11.1 REST POST /1.2/rtm/chatrooms/{cid}/blacklists takes the client out of the room (initBy ""), DELETE lets it back', async () => {
  const [b, d] = [uid('B'), uid('D')];
  const B = await session(server, b);
  const room = (await startConv(B, [], { transient: true })).cid;
  const D = await session(server, d);
  await join(D, room);
  const mk = D.mark();
  const r = await api(server, 'POST', `/1.2/rtm/chatrooms/${room}/blacklists`, { client_ids: [d] });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  await nextConv(D, 'left', room, 'conv', undefined, mk);
  assert.deepEqual(convPushes(D, mk, room).map((p) => [p.op, p.convMessage.initBy]), [['blocked', ''], ['left', '']]);
  assert.equal(await count(B, room), 1);
  assertError(await D.request({ cmd: 'direct', i: 7, directMessage: { cid: room, msg: TEXT('hello?') } }), 7, 4548, 'BLOCKED_BY_CONV');
  assert.deepEqual((await api(server, 'GET', `/1.2/rtm/chatrooms/${room}/blacklists`)).body, { client_ids: [d] });
  assert.equal((await api(server, 'DELETE', `/1.2/rtm/chatrooms/${room}/blacklists`, { client_ids: [d] })).status, 200);
  await join(D, room);
  assert.equal(await count(B, room), 2);
  await sendMsg(D, room, TEXT('back'));
});

test('#11.1 the kick reaches every session of the blocked client, on every worker', async () => {
  await withServer({ TERN_WORKERS: '4' }, async (srv) => {
    const [b, d] = [uid('B'), uid('D')];
    const B = await session(srv, b);
    const room = (await startConv(B, [], { transient: true })).cid;
    const Ds = [];
    for (let k = 0; k < 6; k++) { // six sockets: the kernel spreads them over the workers
      const D = await session(srv, d);
      await join(D, room);
      Ds.push(D);
    }
    assert.equal(await count(B, room), 7);
    const marks = Ds.map((D) => D.mark());
    await ok(B, { cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: room, toPids: [d] } }, 'blocked');
    for (const [k, D] of Ds.entries()) {
      await nextConv(D, 'left', room, 'conv', undefined, marks[k]);
      assert.deepEqual(convPushes(D, marks[k], room).map((p) => p.op), ['blocked', 'left'], `session ${k}`);
    }
    assert.equal(await count(B, room), 1);
    assert.deepEqual(await online(B, room), [b]);
  });
});

// ================================================================ 5. client ids

// The schema with the id fields as bytes, to send ids that are not valid UTF-8.
const bytesRoot = protobuf.parse(readFileSync(PROTO_PATH, 'utf8')
  .replace('optional string peerId = 4;', 'optional bytes peerId = 4;')
  .replace('repeated string m = 1;', 'repeated bytes m = 1;')
  .replace('repeated string toPids = 2;', 'repeated bytes toPids = 2;'), { keepCase: true }).root;
const RawCommand = bytesRoot.lookupType('lc.GenericCommand');
const raw = (obj) => Buffer.from(RawCommand.encode(RawCommand.fromObject(obj)).finish());

const BAD_IDS = [
  { name: 'a 51 KB id of continuation bytes (one "character" by lead bytes)', bytes: Buffer.concat([Buffer.from('a'), Buffer.alloc(51000, 0x80)]) },
  { name: '65 characters of three bytes each', bytes: Buffer.from('好'.repeat(65)) },
  { name: 'a lone continuation byte', bytes: Buffer.from([0x61, 0x80, 0x62]) },
  { name: 'an overlong "/"', bytes: Buffer.from([0x61, 0xc0, 0xaf]) },
  { name: 'a surrogate', bytes: Buffer.from([0x61, 0xed, 0xa0, 0x80]) },
  { name: 'a code point above U+10FFFF', bytes: Buffer.from([0x61, 0xf4, 0x90, 0x80, 0x80]) },
  { name: 'a truncated sequence', bytes: Buffer.from([0x61, 0xe5, 0xa5]) },
  { name: 'a newline', bytes: Buffer.from('alice\nbob') },
  { name: 'a tab', bytes: Buffer.from('a\tb') },
  { name: 'U+001F', bytes: Buffer.from('a\x1fb') },
  { name: 'DEL (U+007F)', bytes: Buffer.from('a\x7f') },
];
const GOOD_IDS = ['好'.repeat(64), '😀'.repeat(64), 'a b', 'Tom-01_x.y@z', '123456'];

for (const c of BAD_IDS) {
  test(`#11.5 session open with ${c.name} → error 4103 INVALID_LOGIN; no session`, async () => {
    const C = await connect(server);
    C.sendRaw(raw({ cmd: 'session', op: 'open', appId: server.appId, peerId: c.bytes, i: 1, sessionMessage: { ua: 't' } }));
    assertError(await C.reply(1), 1, 4103, 'INVALID_LOGIN'); // a refused open is {cmd: error}
    assertError(await C.request({ cmd: 'conv', op: 'count', i: 2, convMessage: { cid: '0123456789abcdef01234567' } }), 2, 4105, 'SESSION_REQUIRED');
  });
}

test('#11.5 ordinary ids still log in: 64 CJK characters, 64 emoji, spaces and punctuation, digits', async () => {
  for (const id of GOOD_IDS) {
    const C = await connect(server);
    const r = await login(C, id);
    assert.equal(r.peerId, id);
    await C.close();
  }
});

test('#11.5 ids in conv start, add, remove, shut-up, blacklist and roles: 4103 for a malformed one', async () => {
  const [a, b] = [uid('A'), uid('B')];
  const A = await session(server, a);
  await session(server, b);
  const bad = Buffer.from(`${b}\nx`);
  // conv start: the whole request
  A.sendRaw(raw({ cmd: 'conv', op: 'start', i: 10, convMessage: { m: [Buffer.from(b), bad] } }));
  assertError(await A.reply(10), 10, 4103, 'INVALID_LOGIN');
  A.sendRaw(raw({ cmd: 'conv', op: 'start', i: 11, convMessage: { m: [Buffer.from([0x62, 0xff])] } }));
  assertError(await A.reply(11), 11, 4103, 'INVALID_LOGIN');
  const cid = (await startConv(A, [b])).cid;
  // add / shut-up / block: that id in failedPids, the others go through
  A.sendRaw(raw({ cmd: 'conv', op: 'add', i: 12, convMessage: { cid, m: [bad, Buffer.from('ok-1')] } }));
  let r = await A.reply(12);
  assert.deepEqual(r.convMessage.allowedPids, ['ok-1'], JSON.stringify(r));
  assert.equal(r.convMessage.failedPids[0].code, 4103);
  assert.equal(r.convMessage.failedPids[0].pids.length, 1);
  A.sendRaw(raw({ cmd: 'conv', op: 'add_shutup', i: 13, convMessage: { cid, m: [Buffer.from('a\x7f')] } }));
  r = await A.reply(13);
  assert.deepEqual(r.convMessage.failedPids, [{ code: 4103, reason: 'INVALID_LOGIN', pids: ['a\x7f'] }]);
  A.sendRaw(raw({ cmd: 'blacklist', op: 'block', i: 14, blacklistMessage: { srcCid: cid, toPids: [Buffer.from('x\ty')] } }));
  r = await A.reply(14);
  assert.deepEqual(r.blacklistMessage.failedPids, [{ code: 4103, reason: 'INVALID_LOGIN', pids: ['x\ty'] }]);
  assertError(await A.request({ cmd: 'conv', op: 'member_info_update', i: 15, convMessage: { cid, targetClientId: 'q\nr', info: { pid: 'q\nr', role: 'Manager' } } }),
    15, 4103, 'INVALID_LOGIN');
  assert.deepEqual((await row(A, cid)).m, [a, b, 'ok-1'].sort(), 'nothing malformed came in');
});

test('#11.5 REST bodies, paths and queries that carry client ids: 400 with code 4103', async () => {
  const [o, a] = [uid('o'), uid('a')];
  const cid = (await api(server, 'POST', '/1.2/rtm/conversations', { name: 'x', c: o, m: [o, a] })).body.objectId;
  const room = (await api(server, 'POST', '/1.2/rtm/chatrooms', { name: 'r' })).body.objectId;
  const sys = (await api(server, 'POST', '/1.2/rtm/service-conversations', { name: 's' })).body.objectId;
  assert.ok(cid && room && sys);
  const cases = [
    ['POST', '/1.2/rtm/conversations', { name: 'x', m: [o, 'a\nb'] }, 'm of a new conversation (dropped silently before)'],
    ['POST', '/1.2/rtm/conversations', { name: 'x', c: 'c\u0001', m: [o] }, 'its creator c'],
    ['POST', `/1.2/rtm/conversations/${cid}/members`, { client_ids: ['ok', 'x\ty'] }, 'members to add'],
    ['DELETE', `/1.2/rtm/conversations/${cid}/members`, { client_ids: ['z'.repeat(65)] }, 'members to remove'],
    ['POST', `/1.2/rtm/conversations/${cid}/mutes`, { client_ids: ['\u007f'] }, 'mutes'],
    ['POST', `/1.2/rtm/conversations/${cid}/permanent-silenceds`, { client_ids: ['a\rb'] }, 'silenced'],
    ['POST', `/1.2/rtm/conversations/${cid}/temporary-silenceds`, { client_id: 'a\nb', ttl: 10 }, 'temporarily silenced'],
    ['DELETE', `/1.2/rtm/conversations/${cid}/temporary-silenceds?client_id=a%0Ab`, undefined, 'a temporary shut-up to lift'],
    ['POST', `/1.2/rtm/chatrooms/${room}/blacklists`, { client_ids: ['a\u001bb'] }, 'blacklist'],
    ['POST', `/1.2/rtm/conversations/${cid}/member-infos`, { clientId: 'a\nb', role: 'Manager' }, 'member info'],
    ['POST', `/1.2/rtm/conversations/${cid}/messages`, { from_client: 'a\nb', message: 'hi' }, 'from_client of a message'],
    ['PUT', `/1.2/rtm/conversations/${cid}/messages/AAAAAAAAAAAAAAAAAAAAAA`, { from_client: 'a\tb', message: 'hi' }, 'from_client of an edit'],
    ['POST', `/1.2/rtm/service-conversations/${sys}/subscribers`, { client_id: 'a\nb' }, 'a subscriber'],
    ['DELETE', `/1.2/rtm/service-conversations/${sys}/subscribers/a%0Ab`, undefined, 'a subscriber in the path'],
    ['POST', '/1.2/rtm/clients/check-online', { client_ids: ['a\nb'] }, 'check-online'],
    ['POST', '/1.2/rtm/clients/a%0Ab/kick', {}, 'kick path'],
    ['GET', '/1.2/rtm/clients/a%09b/unread-count', undefined, 'unread-count path'],
    ['GET', '/1.2/rtm/clients/a%0Ab/messages', undefined, 'a client\'s messages'],
    ['GET', '/1.2/rtm/clients/a%7Fb/service-conversations', undefined, 'a client\'s subscriptions'],
  ];
  for (const [method, path, body, what] of cases) assertBadId(await api(server, method, path, body), what);
  const members = (await api(server, 'GET', `/1.2/rtm/conversations/${cid}/members`)).body.result;
  assert.deepEqual([...members].sort(), [o, a].sort(), 'nothing came in');
});

test('#11.5 unique conversations: the id of an ordinary member set is the one tern always gave it (md5 of each id + "\\n")', async () => {
  const [a, b] = [uid('A'), uid('B')];
  const A = await session(server, a);
  const conv = await startConv(A, [b], { unique: true });
  const old = createHash('md5').update([a, b].sort().map((x) => `${x}\n`).join('')).digest('hex');
  assert.equal(conv.uniqueId, old, 'stored unique conversations are still found after the upgrade');
  const again = await startConv(A, [b], { unique: true });
  assert.equal(again.cid, conv.cid);
  assert.equal(again.existing, true);
});

test('#11.5 a client id with "\\n" cannot take over another pair\'s unique conversation', async () => {
  const [a, b] = [uid('alice'), uid('bob')];
  const A = await session(server, a);
  const conv = await startConv(A, [b], { unique: true });
  await sendMsg(A, conv.cid, TEXT('between us'));
  // "alice\nbob" alone hashed like [alice, bob] and got its cid, then joined and read it
  const M = await connect(server);
  M.sendRaw(raw({ cmd: 'session', op: 'open', appId: server.appId, peerId: Buffer.from([a, b].sort().join('\n')), i: 1, sessionMessage: { ua: 't' } }));
  assertError(await M.reply(1), 1, 4103, 'INVALID_LOGIN');
});

// ================================================================ 9. edits after removal

test('#11.9 edit and recall need what a send needs: a removed member 4401, a blocked room client 4548, a shut-up member 4563', async () => {
  const [a, b, c] = [uid('A'), uid('B'), uid('C')];
  const A = await session(server, a);
  const B = await session(server, b);
  const C = await session(server, c);
  const cid = (await startConv(A, [b, c])).cid;
  const mb = await sendMsg(B, cid, TEXT('B said this'));
  const mc = await sendMsg(C, cid, TEXT('C said this'));
  const patch = (cl, i, m, fields) => cl.request({ cmd: 'patch', op: 'modify', i, patchMessage: { patches: [{ cid, mid: m.uid, timestamp: m.t, ...fields }] } });
  // B is removed: its message stays as it was
  await ok(A, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [b] } }, 'removed');
  assertError(await patch(B, 20, mb, { data: TEXT('rewritten') }), 20, 4401, 'INVALID_MESSAGING_TARGET');
  assertError(await patch(B, 21, mb, { recall: true }), 21, 4401, 'INVALID_MESSAGING_TARGET');
  // C is shut up
  await ok(A, { cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [c] } }, 'shutup_added');
  assertError(await patch(C, 22, mc, { data: TEXT('rewritten') }), 22, 4563, 'SILIENCED');
  assertError(await patch(C, 23, mc, { recall: true }), 23, 4563, 'SILIENCED');
  const h = await A.request({ cmd: 'logs', logsMessage: { cid, l: 10 } });
  assert.deepEqual(h.logsMessage.logs.map((l) => JSON.parse(l.data)._lctext), ['B said this', 'C said this'], 'history unchanged');
  // lifted: C may edit again
  await ok(A, { cmd: 'conv', op: 'remove_shutup', convMessage: { cid, m: [c] } }, 'shutup_removed');
  assert.equal((await patch(C, 24, mc, { data: TEXT('C edited') })).op, 'modified');
  // a chat room: the blocked client's messages stay
  const room = (await startConv(A, [], { transient: true })).cid;
  await join(B, room);
  const mr = await sendMsg(B, room, TEXT('in the room'));
  await ok(A, { cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: room, toPids: [b] } }, 'blocked');
  const r = await B.request({ cmd: 'patch', op: 'modify', i: 25, patchMessage: { patches: [{ cid: room, mid: mr.uid, timestamp: mr.t, recall: true }] } });
  assertError(r, 25, 4548, 'BLOCKED_BY_CONV');
});

// ================================================================ 11. chat-room history

test('#11.11 a chat room\'s history is for the sessions in it: 4312 outside, the messages once joined, 4312 after leaving', async () => {
  const [b, o] = [uid('B'), uid('O')];
  const B = await session(server, b);
  const room = (await startConv(B, [], { transient: true })).cid;
  await sendMsg(B, room, TEXT('for the room'));
  const O = await session(server, o);
  const logs = (cl, i) => cl.request({ cmd: 'logs', i, logsMessage: { cid: room, l: 10 } });
  assertError(await logs(O, 30), 30, 4312, 'CONVERSATION_LOG_REJECTED');
  await join(O, room);
  const h = await logs(O, 31);
  assert.equal(h.cmd, 'logs', JSON.stringify(h));
  assert.deepEqual(h.logsMessage.logs.map((l) => JSON.parse(l.data)._lctext), ['for the room']);
  await ok(O, { cmd: 'conv', op: 'remove', convMessage: { cid: room, m: [o] } }, 'removed');
  assertError(await logs(O, 32), 32, 4312, 'CONVERSATION_LOG_REJECTED');
  // the creator is in it from the start
  assert.equal((await logs(B, 33)).cmd, 'logs');
});

// ================================================================ 16. query limit 0

test('#11.16 conv query with limit 0 returns no conversations; without a limit, the default 10', async () => {
  const a = uid('A');
  const A = await session(server, a);
  for (let k = 0; k < 11; k++) await startConv(A, [uid('m')], { unique: false });
  const q = async (fields) => JSON.parse((await ok(A, { cmd: 'conv', op: 'query', convMessage: { where: { data: '{}' }, ...fields } }, 'results')).convMessage.results.data);
  assert.deepEqual(await q({ limit: 0 }), []);
  assert.equal((await q({})).length, 10);
  assert.equal((await q({ limit: 3 })).length, 3);
});

// ================================================================ 17. unique temporary conversations

test('#11.17 tempConv + unique: the same temporary conversation for the same members while it lives (existing, the TTL it has left)', async () => {
  const [a, b, c] = [uid('A'), uid('B'), uid('C')];
  const A = await session(server, a);
  const B = await session(server, b);
  const t1 = await startConv(A, [b], { tempConv: true, unique: true, tempConvTTL: 3600 });
  assert.match(t1.cid, /^_tmp:/);
  assert.equal(t1.tempConvTTL, 3600);
  assert.equal(t1.existing, undefined);
  await nextConv(B, 'members_joined', t1.cid);
  const mkB = B.mark();
  const t2 = await startConv(A, [b], { tempConv: true, unique: true, tempConvTTL: 60 });
  assert.equal(t2.cid, t1.cid, 'the same one');
  assert.equal(t2.existing, true);
  assert.ok(t2.tempConvTTL > 3500 && t2.tempConvTTL <= 3600, `the TTL it has left: ${t2.tempConvTTL}`);
  assert.equal(t2.uniqueId, t1.uniqueId);
  // from the other member's side too, and nobody is told anything again
  const t3 = await startConv(B, [a], { tempConv: true, unique: true });
  assert.equal(t3.cid, t1.cid);
  assert.deepEqual((await B.quiet(mkB)).filter((p) => !p.i), []);
  // other member sets, non-unique starts and normal unique conversations are others
  assert.notEqual((await startConv(A, [b, c], { tempConv: true, unique: true })).cid, t1.cid);
  assert.notEqual((await startConv(A, [b], { tempConv: true })).cid, t1.cid);
  const normal = await startConv(A, [b], { unique: true });
  assert.match(normal.cid, /^[0-9a-f]{24}$/);
  assert.notEqual(normal.uniqueId, t1.uniqueId, 'a temporary and a normal conversation over the same members differ');
});

test('#11.17 once the unique temporary conversation expired, the same start makes a new one (before the sweep removed the old)', async () => {
  const [a, b] = [uid('A'), uid('B')];
  const A = await session(server, a);
  const t1 = await startConv(A, [b], { tempConv: true, unique: true, tempConvTTL: 1 });
  await eventually(async () => (await A.request({ cmd: 'conv', op: 'count', convMessage: { cid: t1.cid } })).cmd === 'error', 5000, 'expired');
  const t2 = await startConv(A, [b], { tempConv: true, unique: true, tempConvTTL: 600 });
  assert.notEqual(t2.cid, t1.cid);
  assert.equal(t2.existing, undefined);
  assert.equal(t2.tempConvTTL, 600);
  await sendMsg(A, t2.cid, TEXT('fresh'));
  assert.equal((await startConv(A, [b], { tempConv: true, unique: true })).cid, t2.cid);
});

// ================================================================ 19. member roles

test('#11.19 a shut-up member lifts no shut-up, a Manager neither (its own or another\'s): 4320', async () => {
  const [a, b, c, d] = [uid('A'), uid('B'), uid('C'), uid('D')];
  const A = await session(server, a);
  const B = await session(server, b);
  const C = await session(server, c);
  const cid = (await startConv(A, [b, c, d])).cid;
  const setRole = (pid, role) => ok(A, { cmd: 'conv', op: 'member_info_update', convMessage: { cid, targetClientId: pid, info: { pid, role } } }, 'member_info_updated');
  await setRole(b, 'Manager');
  await setRole(c, 'Manager');
  await ok(A, { cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [b, c] } }, 'shutup_added');
  assertError(await B.request({ cmd: 'conv', op: 'remove_shutup', i: 50, convMessage: { cid, m: [b] } }), 50, 4320, 'CONVERSATION_OPERATION_UNAUTHORIZED');
  assertError(await B.request({ cmd: 'conv', op: 'remove_shutup', i: 51, convMessage: { cid, m: [c] } }), 51, 4320, 'CONVERSATION_OPERATION_UNAUTHORIZED');
  assertError(await C.request({ cmd: 'conv', op: 'remove_shutup', i: 52, convMessage: { cid, m: [b, c] } }), 52, 4320, 'CONVERSATION_OPERATION_UNAUTHORIZED');
  assertError(await B.request({ cmd: 'direct', i: 53, directMessage: { cid, msg: TEXT('free?') } }), 53, 4563, 'SILIENCED');
  const q = await ok(A, { cmd: 'conv', op: 'check_shutup', convMessage: { cid, m: [b, c] } }, 'check_result');
  assert.deepEqual(q.convMessage.m, [b, c]);
  // the owner lifts B's; B, a Manager no longer silenced, may lift C's
  await ok(A, { cmd: 'conv', op: 'remove_shutup', convMessage: { cid, m: [b] } }, 'shutup_removed');
  const r = await ok(B, { cmd: 'conv', op: 'remove_shutup', convMessage: { cid, m: [c] } }, 'shutup_removed');
  assert.deepEqual(r.convMessage.allowedPids, [c]);
});

test('#11.19 member_roles on: the creator of a conversation without Managers may quit and re-join (Owner again); with a Manager it may not (4324)', async () => {
  await withServer({ TERN_MEMBER_ROLES: '1', TERN_WORKERS: '1' }, async (srv) => {
    const [a, b, c] = [uid('A'), uid('B'), uid('C')];
    const A = await session(srv, a);
    const B = await session(srv, b);
    await session(srv, c);
    const cid = (await startConv(A, [b, c])).cid;
    let r = await ok(A, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [a] } }, 'removed');
    assert.deepEqual(r.convMessage.allowedPids, [a], JSON.stringify(r));
    assert.equal(r.convMessage.failedPids, undefined);
    assert.deepEqual((await row(B, cid)).m, [b, c].sort());
    assertError(await A.request({ cmd: 'conv', op: 'add_shutup', i: 60, convMessage: { cid, m: [c] } }), 60, 4320, 'CONVERSATION_OPERATION_UNAUTHORIZED');
    await join(A, cid);
    await ok(A, { cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [c] } }, 'shutup_added'); // the Owner again
    // a Manager: the owner stays
    await ok(A, { cmd: 'conv', op: 'member_info_update', convMessage: { cid, targetClientId: b, info: { pid: b, role: 'Manager' } } }, 'member_info_updated');
    r = await ok(A, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [a] } }, 'removed');
    assert.deepEqual(r.convMessage.failedPids, [{ code: 4324, reason: 'CONVERSATION_NEED_OWNER', pids: [a] }]);
    r = await ok(B, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [a, c] } }, 'removed');
    assert.deepEqual(r.convMessage.allowedPids, [c]);
    assert.deepEqual(r.convMessage.failedPids, [{ code: 4324, reason: 'CONVERSATION_NEED_OWNER', pids: [a] }]);
    // the Manager demoted: roles no longer in use, the owner may go
    await ok(A, { cmd: 'conv', op: 'member_info_update', convMessage: { cid, targetClientId: b, info: { pid: b, role: 'Member' } } }, 'member_info_updated');
    r = await ok(A, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [a] } }, 'removed');
    assert.deepEqual(r.convMessage.allowedPids, [a]);
    assert.deepEqual((await row(B, cid)).m, [b]);
  });
});

// ================================================================ 20. reply before notification

/**
 * Sends cmd on socket S and asserts that its reply arrived before the first push matching
 * `caused` on the same socket (which must come); returns [reply, push].
 */
async function replyFirst(S, cmd, caused, what) {
  const mk = S.mark();
  const i = S.send(cmd);
  const reply = await S.reply(i);
  assert.notEqual(reply.cmd, 'error', `${what}: ${JSON.stringify(reply)}`);
  const push = await S.next((p) => S.received.indexOf(p) >= mk && caused(p));
  const seq = S.since(mk);
  assert.ok(seq.indexOf(reply) < seq.indexOf(push),
    `${what}: the reply must be written before the notification; got ${seq.map((p) => `${p.cmd}/${p.op ?? ''}${p.i ? `#${p.i}` : ''}`).join(', ')}`);
  return [reply, push];
}

test('#11.20 reply before notification: every command, on a socket holding the requester and a member it notifies', async () => {
  const [a, b, c, d] = [uid('A'), uid('B'), uid('C'), uid('D')];
  const S = await connect(server); // one socket, two sessions: A acts, B is told
  await login(S, a);
  await login(S, b);
  const C = await session(server, c);
  const as = (cmd) => ({ ...cmd, peerId: a });
  const toB = (cmd, op, cid) => (p) => p.peerId === b && p.cmd === cmd && p.op === op && (!cid || p.convMessage?.cid === cid || p.patchMessage?.patches?.[0]?.cid === cid || p.directMessage?.cid === cid);
  const toA = (cmd, op) => (p) => p.peerId === a && p.cmd === cmd && p.op === op;
  // conv start: the requester's own joined, and B's
  let [r] = await replyFirst(S, as({ cmd: 'conv', op: 'start', convMessage: { m: [a, b, c] } }), toA('conv', 'joined'), 'start (own joined)');
  const cid = r.convMessage.cid;
  await S.next(toB('conv', 'members_joined', cid));
  await S.echo();
  // direct → B's copy
  [r] = await replyFirst(S, as({ cmd: 'direct', directMessage: { cid, msg: TEXT('hello') } }), toB('direct', undefined, cid), 'direct');
  const sent = r.ackMessage;
  // patch modify (edit, recall) → B's patch push
  await replyFirst(S, as({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid, mid: sent.uid, timestamp: sent.t, data: TEXT('edited') }] } }),
    toB('patch', 'modify', cid), 'patch edit');
  await replyFirst(S, as({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid, mid: sent.uid, timestamp: sent.t, recall: true }] } }),
    toB('patch', 'modify', cid), 'patch recall');
  // add / remove → members_joined / members_left
  await replyFirst(S, as({ cmd: 'conv', op: 'add', convMessage: { cid, m: [d] } }), toB('conv', 'members_joined', cid), 'add');
  await replyFirst(S, as({ cmd: 'conv', op: 'remove', convMessage: { cid, m: [d] } }), toB('conv', 'members_left', cid), 'remove');
  // update → updated
  await replyFirst(S, as({ cmd: 'conv', op: 'update', convMessage: { cid, attr: { data: '{"name":"renamed"}' } } }), toB('conv', 'updated', cid), 'update');
  // shut-up → shutuped (B the target) / members_shutuped
  await replyFirst(S, as({ cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [b] } }), toB('conv', 'shutuped', cid), 'add_shutup');
  await S.next(toB('conv', 'members_shutuped', cid));
  await replyFirst(S, as({ cmd: 'conv', op: 'remove_shutup', convMessage: { cid, m: [b] } }), toB('conv', 'unshutuped', cid), 'remove_shutup');
  // roles → member_info_changed
  await replyFirst(S, as({ cmd: 'conv', op: 'member_info_update', convMessage: { cid, targetClientId: b, info: { pid: b, role: 'Manager' } } }),
    toB('conv', 'member_info_changed', cid), 'member_info_update');
  // blacklist → members_blocked (C blocked) / members_unblocked
  await replyFirst(S, as({ cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: cid, toPids: [c] } }), toB('conv', 'members_blocked', cid), 'block');
  await replyFirst(S, as({ cmd: 'blacklist', op: 'unblock', blacklistMessage: { srcCid: cid, toPids: [c] } }), toB('conv', 'members_unblocked', cid), 'unblock');
  await C.echo();
});

test('#11.20 reply before notification: a request of several patches gets its one reply, then every patch push', async () => {
  const [a, b] = [uid('A'), uid('B')];
  const S = await connect(server);
  await login(S, a);
  await login(S, b);
  const cid = (await startConv(S, [b], {})).cid;
  const m1 = await sendMsg(S, cid, TEXT('one'), {}, { peerId: a });
  const m2 = await sendMsg(S, cid, TEXT('two'), {}, { peerId: a });
  const patches = [{ cid, mid: m1.uid, timestamp: m1.t, data: TEXT('one, edited') }, { cid, mid: m2.uid, timestamp: m2.t, recall: true }];
  const mk = S.mark();
  const [reply] = await replyFirst(S, { cmd: 'patch', op: 'modify', peerId: a, patchMessage: { patches } },
    (p) => p.cmd === 'patch' && p.op === 'modify' && p.peerId === b, 'patch of two messages');
  await S.next((p) => S.received.indexOf(p) >= mk && p.cmd === 'patch' && p.peerId === b && p.patchMessage.patches[0].mid === m2.uid);
  const seq = S.since(mk).filter((p) => p === reply || (p.cmd === 'patch' && p.peerId === b));
  assert.deepEqual(seq.map((p) => (p === reply ? 'reply' : p.patchMessage.patches[0].mid)), ['reply', m1.uid, m2.uid]);
  for (const p of seq.slice(1)) assert.equal(p.patchMessage.patches[0].patchTimestamp, reply.patchMessage.lastPatchTime);
});

// The moderation and app-wide endpoints of the REST API /1.2/rtm/… (protocol.md §7.1–7.3):
// permanent and temporary shut-ups, blacklists, member roles, every conversation, the
// app's history and a client's, global broadcasts and user_count_today. Each endpoint's
// success shape, what clients connected over WebSocket are pushed and later see, auth
// failures and bad input.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startServer } from '../lib/server.mjs';
import { assertError, closeAll, session, sendMsg, uid, ISO_RE } from '../lib/proto-client.mjs';

let server;
before(async () => { server = await startServer({ env: { TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0' } }); });
after(async () => { await closeAll(); await server.stop(); });

const MASTER = (srv = server) => ({ 'X-LC-Id': srv.appId, 'X-LC-Key': `${srv.masterKey},master` });

/** One REST call; returns {status, body (parsed JSON)}. */
async function api(method, path, { body, headers, raw, srv = server } = {}) {
  const res = await fetch(srv.httpUrl + path, {
    method,
    headers: { 'Content-Type': 'application/json', ...(headers ?? MASTER(srv)) },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await res.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch { parsed = text; }
  return { status: res.status, body: parsed };
}

/** A call that must succeed: 201 for creating a conversation, else 200. */
async function ok(method, path, body, srv = server) {
  const r = await api(method, path, { body, srv });
  const created = method === 'POST' && /^\/1\.2\/rtm\/(conversations|chatrooms|service-conversations)$/.test(path);
  assert.equal(r.status, created ? 201 : 200, `${method} ${path}: ${JSON.stringify(r.body)}`);
  return r.body;
}

/** A refused call: the status, the LeanCloud error shape, and the code when given. */
function assertRefused(r, status, code, what) {
  assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
  assert.equal(typeof r.body.code, 'number', what);
  assert.ok(typeof r.body.error === 'string' && r.body.error.length > 0, `${what}: an error message`);
  if (code !== undefined) assert.equal(r.body.code, code, `${what}: ${JSON.stringify(r.body)}`);
}
const assertBad = (r, what, code) => assertRefused(r, 400, code, what);

const TEXT = (t) => JSON.stringify({ _lctype: -1, _lctext: t });
const direct = (cid) => (c) => c.cmd === 'direct' && c.directMessage?.cid === cid;
const convPush = (op, cid) => (c) => c.cmd === 'conv' && c.op === op && c.convMessage?.cid === cid;
const NOWHERE = '000000000000000000000000';
const tick = () => new Promise((r) => setTimeout(r, 3));

/** A normal conversation created by `owner` (its creator, so its Owner) with members. */
async function group(owner, members) {
  return (await ok('POST', '/1.2/rtm/conversations', { name: 'admin', c: owner, m: [owner, ...members] })).objectId;
}

/** A direct message as `client`: its ack, or its error reply. */
function trySend(client, cid, text) {
  return client.request({ cmd: 'direct', directMessage: { cid, msg: TEXT(text) } });
}

describe('auth', () => {
  const routes = [
    ['POST', '/1.2/rtm/conversations/x/permanent-silenceds'], ['DELETE', '/1.2/rtm/conversations/x/permanent-silenceds'],
    ['GET', '/1.2/rtm/conversations/x/permanent-silenceds'], ['GET', '/1.2/rtm/chatrooms/x/permanent-silenceds'],
    ['POST', '/1.2/rtm/conversations/x/blacklists'], ['DELETE', '/1.2/rtm/chatrooms/x/blacklists'],
    ['GET', '/1.2/rtm/service-conversations/x/blacklists'],
    ['POST', '/1.2/rtm/conversations/x/temporary-silenceds'], ['DELETE', '/1.2/rtm/chatrooms/x/temporary-silenceds?client_id=a'],
    ['POST', '/1.2/rtm/conversations/x/member-infos'], ['GET', '/1.2/rtm/chatrooms/x/member-infos'],
    ['PUT', '/1.2/rtm/conversations/x/member-infos/y'], ['DELETE', '/1.2/rtm/conversations/x/member-infos/y'],
    ['GET', '/1.2/rtm/all-conversations'], ['GET', '/1.2/rtm/messages'], ['GET', '/1.2/rtm/clients/a/messages'],
    ['POST', '/1.2/rtm/broadcasts'], ['GET', '/1.2/rtm/broadcasts?conv_id=x'], ['DELETE', '/1.2/rtm/broadcasts/m?conv_id=x'],
  ];
  test('every endpoint: no keys → 401, the app key → 403 (the master key is required)', async () => {
    for (const [m, p] of routes) {
      const body = m === 'GET' || m === 'DELETE' ? undefined : {};
      assertRefused(await api(m, p, { headers: {}, body }), 401, undefined, `${m} ${p} without keys`);
      assertRefused(await api(m, p, { headers: { 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey }, body }), 403,
        undefined, `${m} ${p} with the app key`);
      assertRefused(await api(m, p, { headers: { 'X-LC-Id': server.appId, 'X-LC-Key': 'wrong,master' }, body }), 401,
        undefined, `${m} ${p} with a wrong master key`);
    }
  });
});

describe('permanent-silenceds (shut-up)', () => {
  test('add: the target hears shutuped, members hear members_shutuped, its sends get 4563; list pages; remove lifts it', async () => {
    const o = uid('o'), a = uid('a'), b = uid('b');
    const cid = await group(o, [a, b]);
    const ca = await session(server, a), cb = await session(server, b);
    const path = `/1.2/rtm/conversations/${cid}/permanent-silenceds`;
    assert.deepEqual(await ok('POST', path, { client_ids: [a] }), {});
    await ca.next(convPush('shutuped', cid));
    assert.deepEqual((await cb.next(convPush('members_shutuped', cid))).convMessage.m, [a]);
    assertError(await ca.request({ cmd: 'direct', i: 31, directMessage: { cid, msg: TEXT('hush') } }), 31, 4563, 'SILIENCED');
    await sendMsg(cb, cid, TEXT('b may speak'));
    // what a member's query over the protocol shows
    const q = await cb.request({ cmd: 'conv', op: 'query_shutup', convMessage: { cid } });
    assert.deepEqual(q.convMessage.m, [a]);
    assert.deepEqual(await ok('GET', path), { client_ids: [a] });

    // paging: limit and next
    const more = [uid('m'), uid('m'), uid('m')];
    await ok('POST', path, { client_ids: more });
    const all = [a, ...more].sort();
    const p1 = await ok('GET', `${path}?limit=3`);
    assert.deepEqual(p1, { client_ids: all.slice(0, 3), next: all[2] });
    const p2 = await ok('GET', `${path}?limit=3&next=${encodeURIComponent(p1.next)}`);
    assert.deepEqual(p2, { client_ids: all.slice(3) });
    assert.deepEqual((await ok('GET', path)).client_ids, all, 'default limit 10 takes them all');

    assert.deepEqual(await ok('DELETE', path, { client_ids: [a] }), {});
    await ca.next(convPush('unshutuped', cid));
    assert.deepEqual((await cb.next(convPush('members_unshutuped', cid))).convMessage.m, [a]);
    await sendMsg(ca, cid, TEXT('a speaks again'));
    assert.deepEqual((await ok('GET', path)).client_ids, more.sort());
  });

  test('the owner cannot be silenced: alone → 400 with 4320; beside others → 200 listing it under failed', async () => {
    const o = uid('o'), a = uid('a');
    const cid = await group(o, [a]);
    const path = `/1.2/rtm/conversations/${cid}/permanent-silenceds`;
    assertBad(await api('POST', path, { body: { client_ids: [o] } }), 'the owner alone', 4320);
    const r = await ok('POST', path, { client_ids: [o, a] });
    assert.deepEqual(r.failed.map((f) => [f.client_id, f.code]), [[o, 4320]]);
    assert.deepEqual((await ok('GET', path)).client_ids, [a]);
    const co = await session(server, o);
    await sendMsg(co, cid, TEXT('the owner may always speak'));
  });

  test('chat rooms: a silenced client in the room cannot send', async () => {
    const room = (await ok('POST', '/1.2/rtm/chatrooms', { name: 'room' })).objectId;
    const a = uid('a');
    const ca = await session(server, a);
    assert.equal((await ca.request({ cmd: 'conv', op: 'add', convMessage: { cid: room, m: [a] } })).op, 'added');
    await ok('POST', `/1.2/rtm/chatrooms/${room}/permanent-silenceds`, { client_ids: [a] });
    const r = await trySend(ca, room, 'in the room');
    assert.equal(r.errorMessage?.code, 4563, JSON.stringify(r));
    assert.deepEqual(await ok('GET', `/1.2/rtm/chatrooms/${room}/permanent-silenceds`), { client_ids: [a] });
    assert.equal((await api('GET', `/1.2/rtm/conversations/${room}/permanent-silenceds`)).status, 404, 'a room is not under /conversations');
  });

  test('bad input and unknown conversations', async () => {
    const cid = await group(uid('o'), [uid('a')]);
    const path = `/1.2/rtm/conversations/${cid}/permanent-silenceds`;
    assertBad(await api('POST', path, { body: {} }), 'no client_ids');
    assertBad(await api('POST', path, { body: { client_ids: [] } }), 'empty client_ids');
    assertBad(await api('POST', path, { body: { client_ids: [7] } }), 'a number id');
    assertBad(await api('DELETE', path, { body: { client_ids: ['x'.repeat(65)] } }), 'an id over 64 characters');
    assertBad(await api('POST', path, { raw: '{"client_ids":' }), 'broken JSON');
    assertBad(await api('POST', path, { body: { client_ids: Array.from({ length: 501 }, (_, i) => `u${i}`) } }), '501 ids');
    assertRefused(await api('POST', `/1.2/rtm/conversations/${NOWHERE}/permanent-silenceds`, { body: { client_ids: ['a'] } }),
      404, 4303, 'unknown conversation');
    assertRefused(await api('GET', `/1.2/rtm/conversations/${NOWHERE}/permanent-silenceds`), 404, 4303, 'unknown conversation');
  });
});

describe('blacklists', () => {
  test('block: the target hears blocked and left, members members_blocked and members_left; it cannot come back; unblock', async () => {
    const o = uid('o'), a = uid('a'), b = uid('b');
    const cid = await group(o, [a, b]);
    const ca = await session(server, a), cb = await session(server, b);
    const path = `/1.2/rtm/conversations/${cid}/blacklists`;
    assert.deepEqual(await ok('POST', path, { client_ids: [b] }), {});
    await cb.next(convPush('blocked', cid));
    await cb.next(convPush('left', cid));
    assert.deepEqual((await ca.next(convPush('members_blocked', cid))).convMessage.m, [b]);
    assert.deepEqual((await ca.next(convPush('members_left', cid))).convMessage.m, [b]);
    assert.deepEqual((await ok('GET', `/1.2/rtm/conversations/${cid}/members`)).result.sort(), [o, a].sort());
    assert.deepEqual(await ok('GET', path), { client_ids: [b] });
    // b can join neither by itself nor be added by a member
    const j = await cb.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [b] } });
    assert.deepEqual(j.convMessage.failedPids, [{ code: 4548, reason: 'BLOCKED_BY_CONV', pids: [b] }]);
    const q = await ca.request({ cmd: 'blacklist', op: 'query', blacklistMessage: { srcCid: cid } });
    assert.deepEqual(q.blacklistMessage.blockedPids, [b], 'the protocol query shows the REST block');

    assert.deepEqual(await ok('DELETE', path, { client_ids: [b] }), {});
    assert.deepEqual((await ca.next(convPush('members_unblocked', cid))).convMessage.m, [b]);
    assert.deepEqual(await ok('GET', path), { client_ids: [] });
    const back = await cb.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [b] } });
    assert.deepEqual(back.convMessage.allowedPids, [b], JSON.stringify(back));
    assertBad(await api('POST', path, { body: { client_ids: [o] } }), 'blocking the owner', 4324);
  });

  test('service conversations: a blocked subscriber is unsubscribed and cannot subscribe again; chat rooms: cannot join', async () => {
    const sys = (await ok('POST', '/1.2/rtm/service-conversations', { name: 'news' })).objectId;
    const s = uid('s'), t = uid('t');
    await ok('POST', `/1.2/rtm/service-conversations/${sys}/subscribers`, { client_id: s });
    await ok('POST', `/1.2/rtm/service-conversations/${sys}/subscribers`, { client_id: t });
    const ct = await session(server, t);
    const cs = await session(server, s);
    const m = ct.mark();
    await ok('POST', `/1.2/rtm/service-conversations/${sys}/blacklists`, { client_ids: [s] });
    await cs.next(convPush('blocked', sys));
    assert.deepEqual(await ok('GET', `/1.2/rtm/service-conversations/${sys}/subscribers/count`), { count: 1 });
    assert.deepEqual(await ok('GET', `/1.2/rtm/service-conversations/${sys}/blacklists`), { client_ids: [s] });
    const again = await cs.request({ cmd: 'conv', op: 'add', convMessage: { cid: sys, m: [s] } });
    assert.deepEqual(again.convMessage.failedPids, [{ code: 4548, reason: 'BLOCKED_BY_CONV', pids: [s] }]);
    await ct.echo();
    assert.equal(ct.since(m).filter((x) => x.convMessage?.cid === sys).length, 0, 'subscribers are not told about each other');

    const room = (await ok('POST', '/1.2/rtm/chatrooms', { name: 'r' })).objectId;
    await ok('POST', `/1.2/rtm/chatrooms/${room}/blacklists`, { client_ids: [s] });
    const join = await cs.request({ cmd: 'conv', op: 'add', convMessage: { cid: room, m: [s] } });
    assert.deepEqual(join.convMessage.failedPids, [{ code: 4548, reason: 'BLOCKED_BY_CONV', pids: [s] }]);
    assertBad(await api('POST', `/1.2/rtm/chatrooms/${room}/blacklists`, { body: { client_ids: 'x' } }), 'ids not an array');
    assertRefused(await api('GET', `/1.2/rtm/service-conversations/${room}/blacklists`), 404, 4303, 'a room is not a service conversation');
  });
});

describe('temporary-silenceds', () => {
  test('a timed shut-up: 4563 meanwhile, not in the permanent list, lifted by the server after ttl (unshutuped)', async () => {
    const o = uid('o'), a = uid('a'), b = uid('b');
    const cid = await group(o, [a, b]);
    const ca = await session(server, a), cb = await session(server, b);
    const at = Date.now();
    assert.deepEqual(await ok('POST', `/1.2/rtm/conversations/${cid}/temporary-silenceds`, { client_id: a, ttl: 1 }), {});
    await ca.next(convPush('shutuped', cid));
    assert.deepEqual((await cb.next(convPush('members_shutuped', cid))).convMessage.m, [a]);
    assertError(await ca.request({ cmd: 'direct', i: 41, directMessage: { cid, msg: TEXT('now?') } }), 41, 4563, 'SILIENCED');
    assert.deepEqual(await ok('GET', `/1.2/rtm/conversations/${cid}/permanent-silenceds`), { client_ids: [] });
    await ca.next(convPush('unshutuped', cid), 4000);
    assert.ok(Date.now() - at >= 1000, 'not lifted before its time');
    assert.deepEqual((await cb.next(convPush('members_unshutuped', cid))).convMessage.m, [a]);
    await sendMsg(ca, cid, TEXT('a speaks again'));
    const q = await cb.request({ cmd: 'conv', op: 'query_shutup', convMessage: { cid } });
    assert.equal(q.convMessage.m, undefined);
  });

  test('DELETE lifts a timed one at once and leaves a permanent one alone; timed over permanent stays permanent', async () => {
    const o = uid('o'), a = uid('a'), p = uid('p');
    const cid = await group(o, [a, p]);
    const ca = await session(server, a), cp = await session(server, p);
    const tpath = `/1.2/rtm/conversations/${cid}/temporary-silenceds`;
    await ok('POST', tpath, { client_id: a, ttl: 3600 });
    await ca.next(convPush('shutuped', cid));
    assert.deepEqual(await ok('DELETE', `${tpath}?client_id=${a}`), {});
    await ca.next(convPush('unshutuped', cid));
    await sendMsg(ca, cid, TEXT('lifted early'));

    await ok('POST', `/1.2/rtm/conversations/${cid}/permanent-silenceds`, { client_ids: [p] });
    await cp.next(convPush('shutuped', cid));
    assert.deepEqual(await ok('POST', tpath, { client_id: p, ttl: 1 }), {});
    assert.deepEqual(await ok('DELETE', `${tpath}?client_id=${p}`), {});
    assert.deepEqual((await ok('GET', `/1.2/rtm/conversations/${cid}/permanent-silenceds`)).client_ids, [p]);
    assert.equal((await trySend(cp, cid, 'still silenced')).errorMessage?.code, 4563);
    const m = cp.mark();
    await cp.echo();
    assert.equal(cp.since(m).filter(convPush('unshutuped', cid)).length, 0, 'nothing was lifted');
  });

  test('a permanent shut-up over a timed one makes it permanent: the ttl passing lifts nothing', async () => {
    const o = uid('o'), a = uid('a');
    const cid = await group(o, [a]);
    const ca = await session(server, a);
    await ok('POST', `/1.2/rtm/conversations/${cid}/temporary-silenceds`, { client_id: a, ttl: 1 });
    await ca.next(convPush('shutuped', cid));
    await ok('POST', `/1.2/rtm/conversations/${cid}/permanent-silenceds`, { client_ids: [a] });
    assert.deepEqual((await ok('GET', `/1.2/rtm/conversations/${cid}/permanent-silenceds`)).client_ids, [a]);
    // the point of the test: the 1 s temporary silence runs out (and its sweep) while the
    // permanent one holds; nothing to wait on but the clock
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(ca.pending().filter(convPush('unshutuped', cid)).length, 0);
    assert.equal((await trySend(ca, cid, 'still?')).errorMessage?.code, 4563);
  });

  test('bad input: ttl out of range or not a number, no client_id, the owner, unknown conversation', async () => {
    const o = uid('o');
    const cid = await group(o, [uid('a')]);
    const tpath = `/1.2/rtm/conversations/${cid}/temporary-silenceds`;
    for (const ttl of [0, -5, 86401, '60', 1.5, null]) {
      assertBad(await api('POST', tpath, { body: { client_id: 'x', ttl } }), `ttl ${JSON.stringify(ttl)}`);
    }
    assertBad(await api('POST', tpath, { body: { ttl: 60 } }), 'no client_id');
    assertBad(await api('POST', tpath, { body: { client_id: o, ttl: 60 } }), 'the owner', 4320);
    assertBad(await api('DELETE', tpath), 'DELETE without client_id');
    assertRefused(await api('POST', `/1.2/rtm/conversations/${NOWHERE}/temporary-silenceds`, { body: { client_id: 'x', ttl: 5 } }),
      404, 4303, 'unknown conversation');
  });

  test('a timed shut-up outlives a restart and is lifted after it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tern-restart-'));
    try {
      const env = { TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0' };
      let srv = await startServer({ env, dataDir: dir });
      const o = uid('o'), a = uid('a');
      const cid = (await ok('POST', '/1.2/rtm/conversations', { name: 'r', c: o, m: [o, a] }, srv)).objectId;
      await ok('POST', `/1.2/rtm/conversations/${cid}/temporary-silenceds`, { client_id: a, ttl: 3 }, srv);
      await srv.stop();
      srv = await startServer({ env, dataDir: dir });
      try {
        const ca = await session(srv, a);
        assert.equal((await trySend(ca, cid, 'after restart')).errorMessage?.code, 4563, 'still silenced after the restart');
        await ca.next(convPush('unshutuped', cid), 5000);
        await sendMsg(ca, cid, TEXT('lifted'));
      } finally {
        await closeAll(srv);
        await srv.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('member-infos (roles)', () => {
  test('promote: member_info_changed to members, the manager may moderate; list, demote (row kept), delete', async () => {
    const o = uid('o'), a = uid('a'), b = uid('b');
    const cid = await group(o, [a, b]);
    const ca = await session(server, a), cb = await session(server, b);
    const path = `/1.2/rtm/conversations/${cid}/member-infos`;
    // before: a is a plain member and may not silence b
    let r = await ca.request({ cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [b] } });
    assert.equal(r.errorMessage?.code, 4320, JSON.stringify(r));

    const made = await ok('POST', path, { clientId: a, role: 'Manager' });
    assert.match(made.updatedAt, ISO_RE);
    assert.match(made.objectId, /^[0-9a-f]{24}$/);
    for (const cl of [ca, cb]) {
      const p = await cl.next(convPush('member_info_changed', cid));
      assert.deepEqual(p.convMessage.info, { pid: a, role: 'Manager' });
    }
    r = await ca.request({ cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [b] } });
    assert.equal(r.op, 'shutup_added', 'a manager may silence members');
    await ca.request({ cmd: 'conv', op: 'remove_shutup', convMessage: { cid, m: [b] } });
    assert.deepEqual(await ok('GET', path), { results: [{ clientId: a, objectId: made.objectId, role: 'Manager' }] });
    assert.deepEqual(await ok('GET', `${path}?role=Member`), { results: [] });

    const demoted = await ok('PUT', `${path}/${made.objectId}`, { role: 'Member' });
    assert.equal(demoted.objectId, made.objectId, 'the row keeps its id');
    assert.match(demoted.updatedAt, ISO_RE);
    assert.deepEqual((await cb.next((x) => convPush('member_info_changed', cid)(x) && x.convMessage.info.role === 'Member'))
      .convMessage.info, { pid: a, role: 'Member' });
    r = await ca.request({ cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [b] } });
    assert.equal(r.errorMessage?.code, 4320, 'a member again');
    assert.deepEqual(await ok('GET', `${path}?role=Member`), { results: [{ clientId: a, objectId: made.objectId, role: 'Member' }] });
    // what the SDKs read (§3.15)
    const sdk = await fetch(`${server.httpUrl}/1.1/classes/_ConversationMemberInfo?where=${encodeURIComponent(JSON.stringify({ cid }))}&client_id=${a}`,
      { headers: { 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey, 'X-LC-IM-Session-Token': ca.openReply.sessionMessage.st } });
    assert.deepEqual((await sdk.json()).results.map((x) => [x.clientId, x.role, x.objectId]), [[a, 'Member', made.objectId]]);

    await ok('PUT', `${path}/${made.objectId}`, { role: 'Manager' });
    const gone = await ok('DELETE', `${path}/${made.objectId}`);
    assert.equal(gone.objectId, made.objectId);
    assert.deepEqual((await cb.next((x) => convPush('member_info_changed', cid)(x) && x.convMessage.info.role === 'Member'))
      .convMessage.info, { pid: a, role: 'Member' });
    assert.deepEqual(await ok('GET', path), { results: [] });
    assert.equal((await ca.request({ cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [b] } })).errorMessage?.code, 4320);
    assertRefused(await api('DELETE', `${path}/${made.objectId}`), 404, undefined, 'deleted twice');
  });

  test('list: skip, limit and role filter; chat rooms have roles too', async () => {
    const o = uid('o'), ids = [uid('a'), uid('b'), uid('c')].sort();
    const cid = await group(o, ids);
    const path = `/1.2/rtm/conversations/${cid}/member-infos`;
    await ok('POST', path, { clientId: ids[0], role: 'Manager' });
    await ok('POST', path, { client_id: ids[1], role: 'Member' });
    await ok('POST', path, { clientId: ids[2], role: 'Manager' });
    const rows = (await ok('GET', path)).results;
    assert.deepEqual(rows.map((x) => [x.clientId, x.role]), [[ids[0], 'Manager'], [ids[1], 'Member'], [ids[2], 'Manager']]);
    assert.deepEqual((await ok('GET', `${path}?role=Manager`)).results.map((x) => x.clientId), [ids[0], ids[2]]);
    assert.deepEqual((await ok('GET', `${path}?skip=1&limit=1`)).results.map((x) => x.clientId), [ids[1]]);
    assert.deepEqual((await ok('GET', `${path}?role=Owner`)).results, [], 'the owner is the creator, without a row');

    const room = (await ok('POST', '/1.2/rtm/chatrooms', { name: 'r' })).objectId;
    const x = uid('x');
    const made = await ok('POST', `/1.2/rtm/chatrooms/${room}/member-infos`, { clientId: x, role: 'Manager' });
    assert.deepEqual(await ok('GET', `/1.2/rtm/chatrooms/${room}/member-infos`), { results: [{ clientId: x, objectId: made.objectId, role: 'Manager' }] });
  });

  test('refused: the owner, Owner as a role, an unknown role, a non-member, missing fields, unknown ids', async () => {
    const o = uid('o'), a = uid('a');
    const cid = await group(o, [a]);
    const path = `/1.2/rtm/conversations/${cid}/member-infos`;
    assertBad(await api('POST', path, { body: { clientId: o, role: 'Member' } }), 'the owner', 4320);
    assertBad(await api('POST', path, { body: { clientId: a, role: 'Owner' } }), 'Owner as a role', 4320);
    assertBad(await api('POST', path, { body: { clientId: a, role: 'Boss' } }), 'an unknown role', 4321);
    assertBad(await api('POST', path, { body: { clientId: uid('stranger'), role: 'Manager' } }), 'not a member', 4317);
    assertBad(await api('POST', path, { body: { role: 'Manager' } }), 'no clientId');
    assertBad(await api('POST', path, { body: { clientId: a } }), 'no role');
    assertBad(await api('POST', path, { body: { clientId: a, role: 5 } }), 'role not a string');
    assertBad(await api('GET', `${path}?role=Boss`), 'filter by an unknown role');
    assertRefused(await api('PUT', `${path}/${NOWHERE}`, { body: { role: 'Manager' } }), 404, undefined, 'PUT an unknown info');
    assertRefused(await api('DELETE', `${path}/${NOWHERE}`), 404, undefined, 'DELETE an unknown info');
    assertRefused(await api('POST', `/1.2/rtm/conversations/${NOWHERE}/member-infos`, { body: { clientId: a, role: 'Manager' } }),
      404, 4303, 'unknown conversation');
    assert.deepEqual(await ok('GET', path), { results: [] }, 'nothing was stored');
  });
});

describe('all-conversations', () => {
  test('every kind with where, skip and limit; bad where → 400', async () => {
    const tag = uid('tag');
    const n = (await ok('POST', '/1.2/rtm/conversations', { name: 'n', m: ['x'], tag })).objectId;
    const r = (await ok('POST', '/1.2/rtm/chatrooms', { name: 'r', tag })).objectId;
    const s = (await ok('POST', '/1.2/rtm/service-conversations', { name: 's', tag })).objectId;
    const where = encodeURIComponent(JSON.stringify({ tag }));
    const all = (await ok('GET', `/1.2/rtm/all-conversations?where=${where}`)).results;
    assert.deepEqual(all.map((c) => c.objectId).sort(), [n, r, s].sort());
    const kinds = Object.fromEntries(all.map((c) => [c.objectId, [c.tr, c.sys]]));
    assert.deepEqual(kinds, { [n]: [false, false], [r]: [true, false], [s]: [false, true] });
    const page = (await ok('GET', `/1.2/rtm/all-conversations?where=${where}&skip=1&limit=1`)).results;
    assert.deepEqual(page.map((c) => c.objectId), [all[1].objectId]);
    const rooms = (await ok('GET', `/1.2/rtm/all-conversations?where=${encodeURIComponent(JSON.stringify({ tag, tr: true }))}`)).results;
    assert.deepEqual(rooms.map((c) => c.objectId), [r]);
    const everything = (await ok('GET', '/1.2/rtm/all-conversations?limit=1000')).results.map((c) => c.objectId);
    for (const id of [n, r, s]) assert.ok(everything.includes(id), 'no where: every conversation');
    assertBad(await api('GET', `/1.2/rtm/all-conversations?where=${encodeURIComponent('{nope')}`), 'where not JSON');
    assertBad(await api('GET', `/1.2/rtm/all-conversations?where=${encodeURIComponent('{"$bogus":1}')}`), 'an unknown operator');
  });
});

describe('app-wide history', () => {
  test('GET /1.2/rtm/messages: every conversation newest first, paging by msgid/timestamp, reversed, till, include flags', async () => {
    const a = uid('a'), b = uid('b');
    const c1 = await group(a, [b]);
    const room = (await ok('POST', '/1.2/rtm/chatrooms', { name: 'h' })).objectId;
    const sent = [];
    for (let i = 0; i < 6; i++) {
      const [cid, from] = i % 3 === 2 ? [room, b] : [c1, i % 2 ? b : a];
      const s = await ok('POST', `/1.2/rtm/${cid === room ? 'chatrooms' : 'conversations'}/${cid}/messages`,
        { from_client: from, message: TEXT(`m${i}`) });
      sent.push({ ...s, cid, from, text: TEXT(`m${i}`) });
      await tick(); // the order across conversations is by time: one message per millisecond or more
    }
    const mids = (arr) => arr.map((x) => x['msg-id']);
    const all = sent.map((x) => x['msg-id']);
    const newest = await ok('GET', '/1.2/rtm/messages?limit=6');
    assert.deepEqual(mids(newest), [...all].reverse());
    const item = newest.find((x) => x['msg-id'] === all[2]);
    assert.deepEqual(item, { timestamp: sent[2].timestamp, data: sent[2].text, from: b, 'msg-id': all[2], bin: false,
      'conv-id': room, to: room, 'is-conv': true, 'is-room': true });
    assert.equal(newest.find((x) => x['msg-id'] === all[0])['is-room'], false);

    const s3 = sent[3], s1 = sent[1];
    const at = (s) => `msgid=${encodeURIComponent(s['msg-id'])}&timestamp=${s.timestamp}`;
    assert.deepEqual(mids(await ok('GET', `/1.2/rtm/messages?${at(s3)}&limit=2`)), [all[2], all[1]]);
    assert.deepEqual(mids(await ok('GET', `/1.2/rtm/messages?${at(s3)}&include_start=true&limit=2`)), [all[3], all[2]]);
    assert.deepEqual(mids(await ok('GET',
      `/1.2/rtm/messages?${at(s3)}&till_msgid=${encodeURIComponent(s1['msg-id'])}&till_timestamp=${s1.timestamp}`)), [all[2]]);
    assert.deepEqual(mids(await ok('GET',
      `/1.2/rtm/messages?${at(s3)}&till_msgid=${encodeURIComponent(s1['msg-id'])}&till_timestamp=${s1.timestamp}&include_stop=true`)),
    [all[2], all[1]]);
    assert.deepEqual(mids(await ok('GET', `/1.2/rtm/messages?reversed=true&${at(s1)}&limit=3`)), [all[2], all[3], all[4]]);
    // a time alone bounds by time: everything after the first message's millisecond, oldest first
    const later = await ok('GET', `/1.2/rtm/messages?reversed=true&timestamp=${sent[0].timestamp - 1}&limit=1000`);
    assert.deepEqual(mids(later).slice(0, 6), all);
    assert.ok((await ok('GET', '/1.2/rtm/messages?limit=5000')).length <= 1000, 'limit is capped, not refused');
  });

  test('GET /1.2/rtm/clients/:id/messages: only what that client sent, in any conversation, member or not', async () => {
    const a = uid('a'), b = uid('b'), stranger = uid('s');
    const c1 = await group(a, [b]);
    const c2 = await group(b, [uid('z')]);
    const ca = await session(server, a);
    const own = await sendMsg(ca, c1, TEXT('over the socket'));
    await tick();
    await ok('POST', `/1.2/rtm/conversations/${c1}/messages`, { from_client: b, message: TEXT('from b') });
    const rest = await ok('POST', `/1.2/rtm/conversations/${c2}/messages`, { from_client: a, message: TEXT('not a member there') });
    const mine = await ok('GET', `/1.2/rtm/clients/${a}/messages`);
    assert.deepEqual(mine.map((x) => [x['msg-id'], x['conv-id'], x.from]), [[rest['msg-id'], c2, a], [own.uid, c1, a]]);
    assert.deepEqual((await ok('GET', `/1.2/rtm/clients/${a}/messages?limit=1&reversed=true`)).map((x) => x['msg-id']), [own.uid]);
    assert.deepEqual(await ok('GET', `/1.2/rtm/clients/${stranger}/messages`), []);
    assertBad(await api('GET', `/1.2/rtm/clients/${'x'.repeat(65)}/messages`), 'a client id over 64 characters');
  });
});

describe('global broadcasts', () => {
  test('POST /1.2/rtm/broadcasts reaches subscribers; GET lists broadcasts only (skip, limit); DELETE removes the server copy', async () => {
    const sys = (await ok('POST', '/1.2/rtm/service-conversations', { name: 'news' })).objectId;
    const s = uid('s');
    await ok('POST', `/1.2/rtm/service-conversations/${sys}/subscribers`, { client_id: s });
    const cs = await session(server, s);
    const b1 = await ok('POST', '/1.2/rtm/broadcasts',
      { from_client: 'bot', conv_id: sys, message: TEXT('one'), valid_till: Date.now() + 3600e3, push: { alert: 'one' } });
    assert.equal(typeof b1['msg-id'], 'string');
    assert.equal(typeof b1.timestamp, 'number');
    const got = await cs.next(direct(sys));
    assert.equal(got.directMessage.id, b1['msg-id']);
    assert.equal(got.directMessage.fromPeerId, 'bot');
    const only = await ok('POST', `/1.2/rtm/service-conversations/${sys}/messages`, { from_client: 'bot', message: TEXT('just s'), to_clients: [s] });
    await cs.next(direct(sys));
    const own = await sendMsg(cs, sys, TEXT('feedback'));
    const b2 = await ok('POST', `/1.2/rtm/service-conversations/${sys}/broadcasts`, { from_client: 'bot', message: TEXT('two') });
    const tr = await ok('POST', '/1.2/rtm/broadcasts', { from_client: 'bot', conv_id: sys, message: TEXT('typing'), transient: true });
    assert.equal((await cs.next(direct(sys))).directMessage.id, b2['msg-id']);
    assert.equal((await cs.next(direct(sys))).directMessage.transient, true);

    const list = await ok('GET', `/1.2/rtm/broadcasts?conv_id=${sys}`);
    assert.deepEqual(list.map((x) => x['msg-id']), [b2['msg-id'], b1['msg-id']], 'not the targeted, own or transient ones');
    assert.ok(![only['msg-id'], own.uid, tr['msg-id']].some((m) => list.some((x) => x['msg-id'] === m)));
    assert.equal(list[1].data, TEXT('one'));
    assert.equal(list[1]['conv-id'], sys);
    assert.deepEqual((await ok('GET', `/1.2/rtm/broadcasts?conv_id=${sys}&limit=1&skip=1`)).map((x) => x['msg-id']), [b1['msg-id']]);

    assert.deepEqual(await ok('DELETE', `/1.2/rtm/broadcasts/${b1['msg-id']}?conv_id=${sys}`), {});
    assert.deepEqual((await ok('GET', `/1.2/rtm/broadcasts?conv_id=${sys}`)).map((x) => x['msg-id']), [b2['msg-id']]);
    const logs = await cs.request({ cmd: 'logs', logsMessage: { cid: sys, limit: 10 } });
    assert.ok(!logs.logsMessage.logs.some((l) => l.msgId === b1['msg-id']), 'gone from history too');
    assertRefused(await api('DELETE', `/1.2/rtm/broadcasts/${b1['msg-id']}?conv_id=${sys}`), 404, 4404, 'deleted twice');
  });

  test('bad input: no conv_id, not a service conversation, valid_till in the past or beyond a month, no message', async () => {
    const sys = (await ok('POST', '/1.2/rtm/service-conversations', { name: 'n' })).objectId;
    const normal = await group(uid('o'), [uid('a')]);
    const base = { from_client: 'bot', message: TEXT('x') };
    assertBad(await api('POST', '/1.2/rtm/broadcasts', { body: base }), 'no conv_id');
    assertRefused(await api('POST', '/1.2/rtm/broadcasts', { body: { ...base, conv_id: normal } }), 404, 4303, 'a normal conversation');
    assertBad(await api('POST', '/1.2/rtm/broadcasts', { body: { ...base, conv_id: sys, valid_till: Date.now() - 1000 } }), 'valid_till past');
    assertBad(await api('POST', '/1.2/rtm/broadcasts', { body: { ...base, conv_id: sys, valid_till: Date.now() + 40 * 86400e3 } }),
      'valid_till beyond a month');
    assertBad(await api('POST', '/1.2/rtm/broadcasts', { body: { ...base, conv_id: sys, valid_till: 'soon' } }), 'valid_till a string');
    assertBad(await api('POST', '/1.2/rtm/broadcasts', { body: { from_client: 'bot', conv_id: sys } }), 'no message');
    assertBad(await api('GET', '/1.2/rtm/broadcasts'), 'GET without conv_id');
    assertBad(await api('DELETE', '/1.2/rtm/broadcasts/abc'), 'DELETE without conv_id');
    assertRefused(await api('GET', `/1.2/rtm/broadcasts?conv_id=${normal}`), 404, 4303, 'GET of a normal conversation');
    assert.deepEqual(await ok('GET', `/1.2/rtm/broadcasts?conv_id=${sys}`), [], 'nothing was sent');
  });
});

describe('stats', () => {
  test('user_count_today counts distinct clients that logged in today', async () => {
    const before = (await ok('GET', '/1.2/rtm/stats')).result;
    assert.equal(typeof before.user_count_today, 'number');
    assert.ok(before.user_count_today >= before.online_user_count);
    const x = uid('x'), y = uid('y');
    const c1 = await session(server, x);
    await session(server, x);
    await session(server, y);
    const during = (await ok('GET', '/1.2/rtm/stats')).result;
    assert.equal(during.user_count_today, before.user_count_today + 2);
    await c1.close();
    const afterAll = (await ok('GET', '/1.2/rtm/stats')).result;
    assert.equal(afterAll.user_count_today, before.user_count_today + 2, 'logging out does not uncount');
  });
});

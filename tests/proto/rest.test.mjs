// The server-to-server REST API, /1.2/rtm/… (protocol.md §7, issue #7 §1): every endpoint's
// success shape, what clients connected over WebSocket see, auth failures and bad input.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startServer } from '../lib/server.mjs';
import { closeAll, session, sendMsg, startConv, uid, ISO_RE, CID_RE } from '../lib/proto-client.mjs';

let server;
before(async () => { server = await startServer({ env: { TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0' } }); });
after(async () => { await closeAll(); await server.stop(); });

const MASTER = () => ({ 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master` });

/** One REST call; returns {status, body (parsed JSON)}. */
async function api(method, path, { body, headers = MASTER(), raw } = {}) {
  const res = await fetch(server.httpUrl + path, {
    method,
    headers: { 'Content-Type': 'application/json', ...headers },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await res.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch { parsed = text; }
  return { status: res.status, body: parsed };
}

/** A call that must succeed: 201 for creating a conversation (LeanCloud's status), else 200. */
async function ok(method, path, body) {
  const r = await api(method, path, { body });
  const created = method === 'POST' && /^\/1\.2\/rtm\/(conversations|chatrooms|service-conversations)$/.test(path);
  assert.equal(r.status, created ? 201 : 200, `${method} ${path}: ${JSON.stringify(r.body)}`);
  return r.body;
}

function assertBad(r, what) {
  assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
  assert.equal(typeof r.body.code, 'number', what);
  assert.ok(typeof r.body.error === 'string' && r.body.error.length > 0, `${what}: an error message`);
}

const TEXT = (t) => JSON.stringify({ _lctype: -1, _lctext: t });
const direct = (cid) => (c) => c.cmd === 'direct' && c.directMessage?.cid === cid;

describe('auth', () => {
  test('no keys → 401; the app key where the master key is needed → 403; X-LC-Sign with the master key works', async () => {
    let r = await api('GET', '/1.2/rtm/conversations', { headers: {} });
    assert.equal(r.status, 401);
    assert.equal(typeof r.body.error, 'string');
    r = await api('GET', '/1.2/rtm/conversations', { headers: { 'X-LC-Id': 'someOtherApp', 'X-LC-Key': `${server.masterKey},master` } });
    assert.equal(r.status, 401);
    r = await api('GET', '/1.2/rtm/conversations', { headers: { 'X-LC-Id': server.appId, 'X-LC-Key': 'wrong,master' } });
    assert.equal(r.status, 401);
    for (const [m, p] of [['GET', '/1.2/rtm/conversations'], ['POST', '/1.2/rtm/conversations'], ['GET', '/1.2/rtm/stats'],
      ['POST', '/1.2/rtm/clients/check-online'], ['POST', '/1.2/rtm/clients/x/kick'],
      ['POST', '/1.2/rtm/service-conversations/x/broadcasts']]) {
      r = await api(m, p, { headers: { 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey }, body: m === 'GET' ? undefined : {} });
      assert.equal(r.status, 403, `${m} ${p} with the app key: ${JSON.stringify(r.body)}`);
    }
    const ts = Date.now();
    const sign = createHash('md5').update(`${ts}${server.masterKey}`).digest('hex');
    r = await api('GET', '/1.2/rtm/stats', { headers: { 'X-LC-Id': server.appId, 'X-LC-Sign': `${sign},${ts},master` } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(typeof r.body.result.online_user_count, 'number');
  });

  test('unread-count takes the app key only with that client\'s session token (issue #11 §14; tests/proto/auth.test.mjs)', async () => {
    const id = uid('n');
    const r = await api('GET', `/1.2/rtm/clients/${id}/unread-count`,
      { headers: { 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey } });
    assert.equal(r.status, 401);
    const c = await session(server, id);
    const mine = await api('GET', `/1.2/rtm/clients/${id}/unread-count`,
      { headers: { 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey, 'X-LC-IM-Session-Token': c.openReply.sessionMessage.st } });
    assert.equal(mine.status, 200);
    assert.deepEqual(mine.body, { count: 0 });
  });
});

describe('conversations', () => {
  test('create, get, list with where/skip/limit, update, delete', async () => {
    const a = uid('a'), b = uid('b');
    const tag = uid('tag');
    const created = await ok('POST', '/1.2/rtm/conversations', { name: 'rest', m: [a, b], tag });
    assert.match(created.objectId, CID_RE);
    assert.match(created.createdAt, ISO_RE);
    assert.match(created.updatedAt, ISO_RE);
    assert.equal(created.name, 'rest');
    assert.deepEqual(created.m, [a, b]);
    const got = await ok('GET', `/1.2/rtm/conversations/${created.objectId}`);
    assert.equal(got.objectId, created.objectId);
    assert.deepEqual([...got.m].sort(), [a, b].sort());
    assert.equal(got.tag, tag, 'other fields are kept');
    for (let i = 0; i < 3; i++) await ok('POST', '/1.2/rtm/conversations', { name: `more${i}`, m: [a], tag });
    const where = encodeURIComponent(JSON.stringify({ tag }));
    const all = await ok('GET', `/1.2/rtm/conversations?where=${where}`);
    assert.equal(all.results.length, 4);
    const page = await ok('GET', `/1.2/rtm/conversations?where=${where}&limit=2&skip=1`);
    assert.equal(page.results.length, 2);
    assert.deepEqual(page.results.map((c) => c.objectId), all.results.slice(1, 3).map((c) => c.objectId));

    const client = await session(server, a);
    const upd = await ok('PUT', `/1.2/rtm/conversations/${created.objectId}`, { name: 'renamed', attr: { color: 'red' } });
    assert.equal(upd.objectId, created.objectId);
    assert.match(upd.updatedAt, ISO_RE);
    const push = await client.next((c) => c.cmd === 'conv' && c.op === 'updated');
    assert.equal(push.convMessage.cid, created.objectId);
    const after = await ok('GET', `/1.2/rtm/conversations/${created.objectId}`);
    assert.equal(after.name, 'renamed');
    assert.deepEqual(after.attr, { color: 'red' });

    assert.deepEqual(await ok('DELETE', `/1.2/rtm/conversations/${created.objectId}`), {});
    const gone = await api('GET', `/1.2/rtm/conversations/${created.objectId}`);
    assert.equal(gone.status, 404);
    assert.equal(gone.body.code, 4303);
  });

  test('unique conversations: the same members give the same conversation', async () => {
    const a = uid('a'), b = uid('b');
    const one = await ok('POST', '/1.2/rtm/conversations', { name: 'u', m: [a, b], unique: true });
    const again = await api('POST', '/1.2/rtm/conversations', { body: { name: 'u', m: [b, a], unique: true } });
    assert.equal(again.status, 200, 'the existing twin is found, not created');
    const two = again.body;
    assert.equal(two.objectId, one.objectId);
    assert.equal(one.unique, true);
    assert.match(one.uniqueId, /^[0-9a-f]{32}$/);
  });

  test('bad input: broken JSON, wrong types, unknown conversation', async () => {
    assertBad(await api('POST', '/1.2/rtm/conversations', { raw: '{"name":' }), 'broken JSON');
    assertBad(await api('POST', '/1.2/rtm/conversations', { body: { m: 'not-an-array' } }), 'm as a string');
    assertBad(await api('POST', '/1.2/rtm/conversations', { body: [1, 2] }), 'an array body');
    assertBad(await api('GET', `/1.2/rtm/conversations?where=${encodeURIComponent('{bad')}`), 'where that is not JSON');
    const r = await api('PUT', '/1.2/rtm/conversations/000000000000000000000000', { body: { name: 'x' } });
    assert.equal(r.status, 404);
  });
});

describe('members and mutes', () => {
  test('add, list, remove: members are told as if a client did it', async () => {
    const a = uid('a'), b = uid('b'), c = uid('c');
    const conv = await ok('POST', '/1.2/rtm/conversations', { name: 'm', m: [a, b] });
    const ca = await session(server, a), cc = await session(server, c);
    const added = await ok('POST', `/1.2/rtm/conversations/${conv.objectId}/members`, { client_ids: [c] });
    assert.equal(added.objectId, conv.objectId);
    assert.match(added.updatedAt, ISO_RE);
    const joined = await cc.next((x) => x.cmd === 'conv' && x.op === 'joined');
    assert.equal(joined.convMessage.cid, conv.objectId);
    const mj = await ca.next((x) => x.cmd === 'conv' && x.op === 'members_joined');
    assert.deepEqual(mj.convMessage.m, [c]);
    assert.deepEqual((await ok('GET', `/1.2/rtm/conversations/${conv.objectId}/members`)).result.sort(), [a, b, c].sort());
    await ok('DELETE', `/1.2/rtm/conversations/${conv.objectId}/members`, { client_ids: [b] });
    const ml = await ca.next((x) => x.cmd === 'conv' && x.op === 'members_left');
    assert.deepEqual(ml.convMessage.m, [b]);
    assert.deepEqual((await ok('GET', `/1.2/rtm/conversations/${conv.objectId}/members`)).result.sort(), [a, c].sort());
    assertBad(await api('POST', `/1.2/rtm/conversations/${conv.objectId}/members`, { body: { client_ids: [] } }), 'no ids');
    assertBad(await api('POST', `/1.2/rtm/conversations/${conv.objectId}/members`, { body: { client_ids: [5] } }), 'a number id');
  });

  test('mutes: add, list, remove (the mu field)', async () => {
    const a = uid('a'), b = uid('b');
    const conv = await ok('POST', '/1.2/rtm/conversations', { name: 'mu', m: [a, b] });
    await ok('POST', `/1.2/rtm/conversations/${conv.objectId}/mutes`, { client_ids: [a, b] });
    assert.deepEqual((await ok('GET', `/1.2/rtm/conversations/${conv.objectId}/mutes`)).result.sort(), [a, b].sort());
    await ok('DELETE', `/1.2/rtm/conversations/${conv.objectId}/mutes`, { client_ids: [a] });
    assert.deepEqual((await ok('GET', `/1.2/rtm/conversations/${conv.objectId}/mutes`)).result, [b]);
    assert.deepEqual((await ok('GET', `/1.2/rtm/conversations/${conv.objectId}`)).mu, [b]);
  });
});

describe('messages', () => {
  test('send: members get it from from_client, history has it, the sender\'s sessions get a copy unless no_sync', async () => {
    const a = uid('a'), b = uid('b');
    const conv = await ok('POST', '/1.2/rtm/conversations', { name: 'msg', m: [a, b] });
    const ca = await session(server, a), cb = await session(server, b);
    const sent = await ok('POST', `/1.2/rtm/conversations/${conv.objectId}/messages`,
      { from_client: a, message: TEXT('hi'), mention_client_ids: [b], push_data: { alert: 'x' } });
    assert.equal(typeof sent['msg-id'], 'string');
    assert.equal(typeof sent.timestamp, 'number');
    const got = await cb.next(direct(conv.objectId));
    assert.equal(got.directMessage.fromPeerId, a);
    assert.equal(got.directMessage.msg, TEXT('hi'));
    assert.equal(got.directMessage.id, sent['msg-id']);
    assert.equal(got.directMessage.timestamp, sent.timestamp);
    assert.deepEqual(got.directMessage.mentionPids, [b]);
    const copy = await ca.next(direct(conv.objectId));
    assert.equal(copy.directMessage.id, sent['msg-id']);

    const quiet = await ok('POST', `/1.2/rtm/conversations/${conv.objectId}/messages`,
      { from_client: a, message: TEXT('no sync'), no_sync: true });
    assert.equal((await cb.next(direct(conv.objectId))).directMessage.id, quiet['msg-id']);
    const m = ca.mark();
    await ca.echo();
    assert.equal(ca.since(m).filter(direct(conv.objectId)).length, 0, 'no copy to the sender with no_sync');

    const tr = await ok('POST', `/1.2/rtm/conversations/${conv.objectId}/messages`,
      { from_client: a, message: TEXT('typing'), transient: true });
    const trGot = (await cb.next(direct(conv.objectId))).directMessage;
    assert.equal(trGot.transient, true);
    assert.equal(trGot.id, tr['msg-id'], 'the transient send is answered with the id it was delivered with');

    const hist = await ok('GET', `/1.2/rtm/conversations/${conv.objectId}/messages`);
    assert.deepEqual(hist.map((x) => x['msg-id']), [quiet['msg-id'], sent['msg-id']], 'newest first, the transient one not kept');
    assert.ok(!hist.some((x) => x['msg-id'] === tr['msg-id']));
    const item = hist[1];
    assert.equal(item.from, a);
    assert.equal(item.data, TEXT('hi'));
    assert.equal(item['conv-id'], conv.objectId);
    assert.equal(item.to, conv.objectId);
    assert.equal(item['is-conv'], true);
    assert.equal(item['is-room'], false);
    assert.equal(item.bin, false);
    assert.equal(item.timestamp, sent.timestamp);
  });

  test('history paging: limit, reversed, start and end bounds with include flags', async () => {
    const a = uid('a');
    const conv = await ok('POST', '/1.2/rtm/conversations', { name: 'h', m: [a] });
    const ids = [];
    for (let i = 0; i < 6; i++) {
      ids.push(await ok('POST', `/1.2/rtm/conversations/${conv.objectId}/messages`, { from_client: a, message: TEXT(`m${i}`) }));
    }
    const base = `/1.2/rtm/conversations/${conv.objectId}/messages`;
    const mids = (arr) => arr.map((x) => x['msg-id']);
    const all = ids.map((x) => x['msg-id']);
    assert.deepEqual(mids(await ok('GET', `${base}?limit=2`)), [all[5], all[4]]);
    assert.deepEqual(mids(await ok('GET', `${base}?limit=2&reversed=true`)), [all[0], all[1]]);
    const s = ids[3];
    assert.deepEqual(mids(await ok('GET', `${base}?msgid=${s['msg-id']}&timestamp=${s.timestamp}&limit=10`)), [all[2], all[1], all[0]]);
    assert.deepEqual(mids(await ok('GET', `${base}?msgid=${s['msg-id']}&timestamp=${s.timestamp}&include_start=true&limit=2`)),
      [all[3], all[2]]);
    const e = ids[1];
    assert.deepEqual(mids(await ok('GET',
      `${base}?msgid=${s['msg-id']}&timestamp=${s.timestamp}&till_msgid=${e['msg-id']}&till_timestamp=${e.timestamp}`)), [all[2]]);
    assert.deepEqual(mids(await ok('GET',
      `${base}?msgid=${s['msg-id']}&timestamp=${s.timestamp}&till_msgid=${e['msg-id']}&till_timestamp=${e.timestamp}&include_stop=true`)),
    [all[2], all[1]]);
    assert.deepEqual(mids(await ok('GET', `${base}?reversed=true&msgid=${e['msg-id']}&timestamp=${e.timestamp}&limit=2`)),
      [all[2], all[3]]);
    assert.equal((await ok('GET', `${base}?limit=5000`)).length, 6, 'limit is capped, not refused');
  });

  test('edit, recall and delete as the sender; members get the patch', async () => {
    const a = uid('a'), b = uid('b');
    const conv = await ok('POST', '/1.2/rtm/conversations', { name: 'p', m: [a, b] });
    const cb = await session(server, b);
    const sent = await ok('POST', `/1.2/rtm/conversations/${conv.objectId}/messages`, { from_client: a, message: TEXT('v1') });
    await cb.next(direct(conv.objectId));
    const path = `/1.2/rtm/conversations/${conv.objectId}/messages/${sent['msg-id']}`;
    assert.deepEqual(await ok('PUT', path, { from_client: a, message: TEXT('v2'), timestamp: sent.timestamp }), {});
    const patch = await cb.next((x) => x.cmd === 'patch' && x.op === 'modify');
    assert.equal(patch.patchMessage.patches[0].mid, sent['msg-id']);
    assert.equal(patch.patchMessage.patches[0].data, TEXT('v2'));
    let r = await api('PUT', path, { body: { from_client: b, message: TEXT('hijack') } });
    assert.equal(r.status, 403);
    assert.equal(r.body.code, 4403);
    assertBad(await api('PUT', path, { body: { message: TEXT('who') } }), 'edit without from_client');
    assert.deepEqual(await ok('PUT', `${path}/recall`, { from_client: a, timestamp: sent.timestamp }), {});
    const recall = await cb.next((x) => x.cmd === 'patch' && x.op === 'modify');
    assert.equal(recall.patchMessage.patches[0].recall, true);
    let hist = await ok('GET', `/1.2/rtm/conversations/${conv.objectId}/messages`);
    assert.equal(hist[0].data, JSON.stringify({ _lctype: -127 }));
    assert.deepEqual(await ok('DELETE', `${path}?from_client=${a}&timestamp=${sent.timestamp}`), {});
    hist = await ok('GET', `/1.2/rtm/conversations/${conv.objectId}/messages`);
    assert.equal(hist.length, 0);
    r = await api('DELETE', path);
    assert.equal(r.status, 404);
    assert.equal(r.body.code, 4404);
    r = await api('PUT', `/1.2/rtm/conversations/${conv.objectId}/messages/nonsense`, { body: { from_client: a, message: 'x' } });
    assert.equal(r.status, 404);
  });

  test('bad input: no from_client, no message, too long, bad mentions, unknown conversation', async () => {
    const a = uid('a');
    const conv = await ok('POST', '/1.2/rtm/conversations', { name: 'bad', m: [a] });
    const p = `/1.2/rtm/conversations/${conv.objectId}/messages`;
    assertBad(await api('POST', p, { body: { message: 'x' } }), 'no from_client');
    assertBad(await api('POST', p, { body: { from_client: a } }), 'no message');
    assertBad(await api('POST', p, { body: { from_client: a, message: 7 } }), 'a number message');
    assertBad(await api('POST', p, { body: { from_client: a, message: 'x'.repeat(6000) } }), 'too long');
    assertBad(await api('POST', p, { body: { from_client: a, message: 'x', mention_client_ids: 'b' } }), 'mentions not an array');
    assertBad(await api('POST', p, { body: { from_client: a, message: 'x', to_clients: [a] } }), 'to_clients outside a service conversation');
    assertBad(await api('POST', p, { raw: 'nope' }), 'not JSON');
    const r = await api('POST', '/1.2/rtm/conversations/000000000000000000000000/messages', { body: { from_client: a, message: 'x' } });
    assert.equal(r.status, 404);
    assert.equal((await ok('GET', `${p}`)).length, 0, 'nothing was stored');
  });
});

describe('chat rooms', () => {
  test('create, online members and count, messages never copied to the sender', async () => {
    const room = await ok('POST', '/1.2/rtm/chatrooms', { name: 'room' });
    assert.match(room.objectId, CID_RE);
    const a = uid('a'), b = uid('b');
    const ca = await session(server, a), cb = await session(server, b);
    for (const c of [ca, cb]) {
      const r = await c.request({ cmd: 'conv', op: 'add', convMessage: { cid: room.objectId, m: [c.peer] } });
      assert.equal(r.op, 'added', JSON.stringify(r));
    }
    assert.deepEqual(await ok('GET', `/1.2/rtm/chatrooms/${room.objectId}/members/online-count`), { result: 2 });
    assert.deepEqual((await ok('GET', `/1.2/rtm/chatrooms/${room.objectId}/members`)).result.sort(), [a, b].sort());
    await ok('POST', `/1.2/rtm/chatrooms/${room.objectId}/messages`, { from_client: a, message: TEXT('to the room') });
    assert.equal((await cb.next(direct(room.objectId))).directMessage.fromPeerId, a);
    const m = ca.mark();
    await ca.echo();
    assert.equal(ca.since(m).filter(direct(room.objectId)).length, 0);
    assert.equal((await ok('GET', '/1.2/rtm/chatrooms')).results.filter((c) => c.objectId === room.objectId).length, 1);
    const normal = await api('GET', `/1.2/rtm/conversations/${room.objectId}`);
    assert.equal(normal.status, 404, 'a room is not served under /conversations');
  });
});

describe('service conversations', () => {
  test('subscribers, broadcasts, messages to chosen subscribers, and a subscriber\'s own messages stay private', async () => {
    const sys = await ok('POST', '/1.2/rtm/service-conversations', { name: 'news' });
    const cid = sys.objectId;
    const a = uid('a'), b = uid('b'), c = uid('c');
    const ca = await session(server, a), cb = await session(server, b);
    // a subscribes itself over the protocol; b and c through REST
    const sub = await ca.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [a] } });
    assert.equal(sub.op, 'added', JSON.stringify(sub));
    const refused = await ca.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [c] } });
    assert.equal(refused.cmd, 'error', 'a client cannot subscribe someone else');
    assert.deepEqual(await ok('POST', `/1.2/rtm/service-conversations/${cid}/subscribers`, { client_id: b }), {});
    await ok('POST', `/1.2/rtm/service-conversations/${cid}/subscribers`, { client_id: c });
    assert.deepEqual(await ok('GET', `/1.2/rtm/service-conversations/${cid}/subscribers/count`), { count: 3 });
    const subs = await ok('GET', `/1.2/rtm/service-conversations/${cid}/subscribers?limit=2`);
    assert.equal(subs.length, 2);
    assert.deepEqual(subs.map((s) => s.subscriber), [a, b, c].sort().slice(0, 2));
    for (const s of subs) { assert.equal(s.conv_id, cid); assert.equal(typeof s.timestamp, 'number'); }
    const rest = await ok('GET', `/1.2/rtm/service-conversations/${cid}/subscribers?client_id=${subs[1].subscriber}`);
    assert.deepEqual(rest.map((s) => s.subscriber), [[a, b, c].sort()[2]]);
    const mine = await ok('GET', `/1.2/rtm/clients/${a}/service-conversations`);
    assert.deepEqual(mine.map((s) => s.conv_id), [cid]);
    const q = await ca.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } });
    const row = JSON.parse(q.convMessage.results.data)[0];
    assert.equal(row.sys, true);
    assert.equal(row.m, undefined, 'a service conversation shows no member list');

    const bc = await ok('POST', `/1.2/rtm/service-conversations/${cid}/broadcasts`, { from_client: 'news-bot', message: TEXT('to all') });
    assert.equal((await ca.next(direct(cid))).directMessage.id, bc['msg-id']);
    assert.equal((await cb.next(direct(cid))).directMessage.id, bc['msg-id']);

    const only = await ok('POST', `/1.2/rtm/service-conversations/${cid}/messages`,
      { from_client: 'news-bot', message: TEXT('just b'), to_clients: [b] });
    assert.equal((await cb.next(direct(cid))).directMessage.id, only['msg-id']);
    const own = await sendMsg(ca, cid, TEXT('feedback from a'));
    const m = ca.mark(), mb = cb.mark();
    await ca.echo();
    await cb.echo();
    assert.equal(ca.since(m).filter(direct(cid)).length, 0, 'a did not get the message for b');
    assert.equal(cb.since(mb).filter(direct(cid)).length, 0, 'b did not get a\'s own message');

    const logs = async (client) => (await client.request({ cmd: 'logs', logsMessage: { cid, limit: 10 } })).logsMessage.logs.map((l) => l.msgId);
    assert.deepEqual(await logs(ca), [bc['msg-id'], own.uid], 'a reads the broadcast and its own message');
    assert.deepEqual(await logs(cb), [bc['msg-id'], only['msg-id']], 'b reads the broadcast and the message for it');
    const hist = (who) => ok('GET', `/1.2/rtm/service-conversations/${cid}/subscribers/${who}/messages`);
    assert.deepEqual((await hist(c)).map((x) => x['msg-id']), [bc['msg-id']]);
    assert.deepEqual((await hist(b)).map((x) => x['msg-id']), [only['msg-id'], bc['msg-id']]);
    assert.equal((await ok('GET', `/1.2/rtm/service-conversations/${cid}/messages`)).length, 3, 'the back end reads everything');

    // c is offline: at login it counts only what it may read
    const cc = await session(server, c);
    const unread = await cc.next((x) => x.cmd === 'unread');
    const mineUnread = unread.unreadMessage.convs.find((u) => u.cid === cid);
    assert.equal(mineUnread.unread, 1);
    assert.equal(mineUnread.mid, bc['msg-id']);

    // modifying a broadcast (§7.3: PUT …/service-conversations/{cid}/messages/{mid}): the
    // subscribers online get the patch, history and the global list show the new text
    const path = `/1.2/rtm/service-conversations/${cid}/messages/${bc['msg-id']}`;
    assert.deepEqual(await ok('PUT', path, { from_client: 'news-bot', message: TEXT('to all, corrected'), timestamp: bc.timestamp }), {});
    for (const cl of [ca, cb, cc]) {
      const p = await cl.next((x) => x.cmd === 'patch' && x.op === 'modify');
      assert.equal(p.patchMessage.patches[0].mid, bc['msg-id']);
      assert.equal(p.patchMessage.patches[0].data, TEXT('to all, corrected'));
    }
    assert.equal((await hist(c)).find((x) => x['msg-id'] === bc['msg-id']).data, TEXT('to all, corrected'));
    const notSender = await api('PUT', path, { body: { from_client: a, message: TEXT('hijack') } });
    assert.equal(notSender.status, 403);

    assertBad(await api('POST', `/1.2/rtm/service-conversations/${cid}/messages`, { body: { from_client: 'x', message: 'y' } }),
      'a service message without to_clients');
    assertBad(await api('POST', `/1.2/rtm/service-conversations/${cid}/messages`,
      { body: { from_client: 'x', message: 'y', to_clients: Array.from({ length: 21 }, (_, i) => `u${i}`) } }), '21 to_clients');
    assertBad(await api('POST', `/1.2/rtm/service-conversations/${cid}/subscribers`, { body: {} }), 'subscribe without client_id');

    assert.deepEqual(await ok('DELETE', `/1.2/rtm/service-conversations/${cid}/subscribers/${c}`), {});
    assert.deepEqual(await ok('GET', `/1.2/rtm/service-conversations/${cid}/subscribers/count`), { count: 2 });
    const notThere = await api('POST', `/1.2/rtm/conversations/${cid}/messages`, { body: { from_client: 'x', message: 'y' } });
    assert.equal(notThere.status, 404, 'a service conversation is not served under /conversations');
  });
});

describe('clients', () => {
  test('check-online, unread-count, kick (4115 with the reason), stats', async () => {
    const a = uid('a'), b = uid('b'), off = uid('off');
    const conv = await ok('POST', '/1.2/rtm/conversations', { name: 'cl', m: [a, b] });
    const ca = await session(server, a);
    const online = await ok('POST', '/1.2/rtm/clients/check-online', { client_ids: [a, off] });
    assert.deepEqual(online.results, [a]);
    assertBad(await api('POST', '/1.2/rtm/clients/check-online', { body: { client_ids: 'a' } }), 'ids not an array');
    await ok('POST', `/1.2/rtm/conversations/${conv.objectId}/messages`, { from_client: a, message: TEXT('1') });
    await ok('POST', `/1.2/rtm/conversations/${conv.objectId}/messages`, { from_client: a, message: TEXT('2') });
    assert.deepEqual(await ok('GET', `/1.2/rtm/clients/${b}/unread-count`), { count: 2 });
    assert.deepEqual(await ok('GET', `/1.2/rtm/clients/${b}/unread-count?conv_id=${conv.objectId}`), { count: 2 });
    assert.deepEqual(await ok('GET', `/1.2/rtm/clients/${b}/unread-count?conv_id=other`), { count: 0 });
    const stats = await ok('GET', '/1.2/rtm/stats');
    assert.ok(stats.result.online_user_count >= 1);

    assertBad(await api('POST', `/1.2/rtm/clients/${a}/kick`, { body: { reason: 'x'.repeat(21) } }), 'a reason over 20 characters');
    assert.deepEqual(await ok('POST', `/1.2/rtm/clients/${a}/kick`, { reason: 'bye now' }), {});
    const closed = await ca.next((x) => x.cmd === 'session' && x.op === 'closed');
    assert.equal(closed.sessionMessage.code, 4115);
    assert.equal(closed.sessionMessage.reason, 'KICKED_BY_APP');
    assert.equal(closed.sessionMessage.detail, 'bye now');
    assert.deepEqual((await ok('POST', '/1.2/rtm/clients/check-online', { client_ids: [a] })).results, []);
  });

  // One client id may hold any number of sessions (a connection each, no tags): fan-out and
  // the app's kick read them into fixed buffers first (32 and 64) — the kick ended only the
  // first 64, and a fan-out's second read could find more than it had room for.
  test('a client on 70 sessions: a message reaches each, the app\'s kick ends each', async () => {
    const a = uid('many'), b = uid('b');
    const many = [];
    for (let i = 0; i < 70; i++) many.push(await session(server, a));
    const cb = await session(server, b);
    const conv = await startConv(cb, [a]);
    await sendMsg(cb, conv.cid, 'to every one');
    for (const c of many) await c.next((x) => x.cmd === 'direct' && x.directMessage.msg === 'to every one');
    assert.deepEqual(await ok('POST', `/1.2/rtm/clients/${a}/kick`, {}), {});
    for (const c of many) {
      const closed = await c.next((x) => x.cmd === 'session' && x.op === 'closed');
      assert.equal(closed.sessionMessage.code, 4115);
    }
    assert.deepEqual((await ok('POST', '/1.2/rtm/clients/check-online', { client_ids: [a] })).results, []);
    await Promise.all([...many, cb].map((c) => c.close()));
  });

  test('an unknown path under /1.2/rtm is 404 with a JSON error', async () => {
    const r = await api('GET', '/1.2/rtm/nothing-here');
    assert.equal(r.status, 404);
  });
});

describe('user login signatures (rtm/sign)', () => {
  // A stand-in for the app's user service (a LeanCloud-style storage API) and its hook
  // server: real HTTP servers on loopback that ternd calls.
  const users = { 'token-alice': { objectId: 'alice0000000000000000001', username: 'alice' },
    'token-mallory': { objectId: 'mallory00000000000000001', username: 'mallory' } };
  let svc, signed, hookCalls;
  before(async () => {
    const { createServer } = await import('node:http');
    hookCalls = [];
    svc = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => {
        res.setHeader('Content-Type', 'application/json');
        if (req.url === '/1.1/users/me') {
          const u = users[req.headers['x-lc-session-token']];
          const keyOk = req.headers['x-lc-id'] && req.headers['x-lc-key'];
          if (!u || !keyOk) { res.statusCode = 400; res.end(JSON.stringify({ code: 211, error: 'Could not find user.' })); return; }
          res.end(JSON.stringify({ ...u, sessionToken: req.headers['x-lc-session-token'] }));
        } else if (req.url === '/1.1/functions/_rtmClientSign') {
          const p = JSON.parse(body);
          hookCalls.push(p);
          res.end(JSON.stringify({ result: p.user.username !== 'mallory' }));
        } else { res.statusCode = 404; res.end('{}'); }
      });
    });
    await new Promise((r) => svc.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${svc.address().port}`;
    signed = await startServer({ env: { TERN_USERS_URL: base, TERN_HOOK_URL: base, TERN_HOOKS: '_rtmClientSign', TERN_SIGN_LOGIN: '1' } });
  });
  after(async () => { await closeAll(signed); await signed.stop(); svc.close(); });

  const call = (srv, method, path, body) => fetch(srv.httpUrl + path, {
    method, headers: { 'X-LC-Id': srv.appId, 'X-LC-Key': srv.appKey, 'Content-Type': 'application/json' },
    body: body && JSON.stringify(body),
  }).then(async (r) => ({ status: r.status, body: await r.json() }));

  test('POST /1.1/rtm/sign and GET /1.2/rtm/clients/sign sign a login for the token\'s user, which then logs in', async () => {
    const a = await call(signed, 'POST', '/1.1/rtm/sign', { session_token: 'token-alice' });
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(a.body.client_id, users['token-alice'].objectId);
    assert.match(a.body.signature, /^[0-9a-f]{40}$/);
    assert.equal(typeof a.body.nonce, 'string');
    assert.equal(typeof a.body.timestamp, 'number');
    assert.equal(hookCalls.at(-1).user.objectId, users['token-alice'].objectId, '_rtmClientSign got the user');
    const g = await call(signed, 'GET', '/1.2/rtm/clients/sign?session_token=token-alice');
    assert.equal(g.status, 200);
    assert.equal(g.body.client_id, users['token-alice'].objectId);

    const { connect } = await import('../lib/proto-client.mjs');
    const c = await connect(signed);
    const open = await c.request({ cmd: 'session', op: 'open', appId: signed.appId, peerId: a.body.client_id,
      sessionMessage: { ua: 'rest-test', t: a.body.timestamp, n: a.body.nonce, s: a.body.signature } });
    assert.equal(open.op, 'opened', JSON.stringify(open));
    const c2 = await connect(signed);
    const unsigned = await c2.request({ cmd: 'session', op: 'open', appId: signed.appId, peerId: a.body.client_id,
      sessionMessage: { ua: 'rest-test' } });
    assert.equal(unsigned.cmd, 'error', JSON.stringify(unsigned));
    assert.equal(unsigned.errorMessage.code, 4102, 'without the signature the login is refused');
  });

  test('an unknown token, a hook that says no, a missing token', async () => {
    let r = await call(signed, 'POST', '/1.1/rtm/sign', { session_token: 'nobody' });
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 4102);
    r = await call(signed, 'POST', '/1.1/rtm/sign', { session_token: 'token-mallory' });
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 4102);
    r = await call(signed, 'POST', '/1.1/rtm/sign', {});
    assert.equal(r.status, 400);
    assert.equal(typeof r.body.error, 'string');
    r = await fetch(`${signed.httpUrl}/1.1/rtm/sign`, { method: 'POST', body: JSON.stringify({ session_token: 'token-alice' }) });
    assert.equal(r.status, 401, 'the app id and key are required');
  });

  test('without users_url the endpoint says what is missing (501)', async () => {
    const r = await call(server, 'POST', '/1.1/rtm/sign', { session_token: 'token-alice' });
    assert.equal(r.status, 501);
    assert.match(r.body.error, /users_url/);
  });
});

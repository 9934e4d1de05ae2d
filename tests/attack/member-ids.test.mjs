// Client ids per request on the member, shut-up and blacklist paths (protocol.md §9.1: a
// normal conversation has at most 500 members (max_members, 4304); shut-up lists and
// blacklists at most 500 each (4561, 4543); REST takes `client_ids` of 1 to 500). One
// WebSocket frame (max_frame, 64 KiB) holds ~8,000 short ids: a request naming more ids than
// the list can ever hold is refused whole with the list's error code, before any per-id work
// (each id was checked, stored and echoed back in allowedPids / failedPids before).
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { assertError, closeAll, session, startConv, uid } from '../lib/proto-client.mjs';

let server;
before(async () => { server = await startServer({ env: { TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0' } }); });
afterEach(() => closeAll(server));
after(async () => { await server.stop(); });

const ids = (n, p = 'x') => Array.from({ length: n }, (_, k) => `${p}${k}`);

async function api(srv, method, path, body) {
  const res = await fetch(srv.httpUrl + path, {
    method,
    headers: { 'X-LC-Id': srv.appId, 'X-LC-Key': `${srv.masterKey},master`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch { parsed = text; }
  return { status: res.status, body: parsed };
}

test('§9.1 WebSocket: more ids in one request than the list can hold → the list\'s error, nothing done; 500 still pass', async () => {
  const o = uid('owner');
  const O = await session(server, o);
  const { cid } = await startConv(O, [uid('m')]);
  const many = ids(8000); // ~56 KB: within one frame
  const cases = [
    [{ cmd: 'conv', op: 'add', convMessage: { cid, m: ids(501) } }, 4304, 'CONVERSATION_FULL'],
    [{ cmd: 'conv', op: 'remove', convMessage: { cid, m: many } }, 4304, 'CONVERSATION_FULL'],
    [{ cmd: 'conv', op: 'start', convMessage: { m: many } }, 4304, 'CONVERSATION_FULL'],
    [{ cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: ids(501) } }, 4561, 'SILIENCED_MEMBER_LIST_FULL'],
    [{ cmd: 'conv', op: 'remove_shutup', convMessage: { cid, m: many } }, 4561, 'SILIENCED_MEMBER_LIST_FULL'],
    [{ cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: cid, toPids: ids(501) } }, 4543, 'BLACKLIST_FULL'],
    [{ cmd: 'blacklist', op: 'unblock', blacklistMessage: { srcCid: cid, toPids: many } }, 4543, 'BLACKLIST_FULL'],
  ];
  let i = 100;
  for (const [cmd, code, reason] of cases) {
    const r = assertError(await O.request({ ...cmd, i: ++i }), i, code, reason);
    assert.match(r.errorMessage.detail, /too many client ids in one request \(at most 500\)/, JSON.stringify(r));
  }
  // nothing of it happened: the member list is the owner and its one member
  const q = await O.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } });
  const row = JSON.parse(q.convMessage.results.data)[0];
  assert.equal(row.m.length, 2, JSON.stringify(row.m));
  // at the cap a request is served as before: 500 ids to remove (none of them members)
  const ok = await O.request({ cmd: 'conv', op: 'remove_shutup', convMessage: { cid, m: ids(500) } });
  assert.equal(ok.op, 'shutup_removed', JSON.stringify(ok).slice(0, 300));
  const ok2 = await O.request({ cmd: 'blacklist', op: 'unblock', blacklistMessage: { srcCid: cid, toPids: ids(500) } });
  assert.equal(ok2.op, 'unblocked', JSON.stringify(ok2).slice(0, 300));
  const ok3 = await O.request({ cmd: 'conv', op: 'remove', convMessage: { cid, m: ids(500) } });
  assert.equal(ok3.op, 'removed', JSON.stringify(ok3).slice(0, 300));
});

test('§9.1 REST: client_ids of more than 500 on members, permanent-silenceds and blacklists → 400, nothing done', async () => {
  const o = uid('owner');
  const cid = (await api(server, 'POST', '/1.2/rtm/conversations', { name: 'x', c: o, m: [o] })).body.objectId;
  const room = (await api(server, 'POST', '/1.2/rtm/chatrooms', { name: 'r' })).body.objectId;
  assert.ok(cid && room);
  const many = ids(8000);
  for (const [method, path] of [
    ['POST', `/1.2/rtm/conversations/${cid}/members`], ['DELETE', `/1.2/rtm/conversations/${cid}/members`],
    ['POST', `/1.2/rtm/conversations/${cid}/permanent-silenceds`], ['DELETE', `/1.2/rtm/conversations/${cid}/permanent-silenceds`],
    ['POST', `/1.2/rtm/conversations/${cid}/blacklists`], ['DELETE', `/1.2/rtm/conversations/${cid}/blacklists`],
    ['POST', `/1.2/rtm/chatrooms/${room}/blacklists`], ['DELETE', `/1.2/rtm/chatrooms/${room}/blacklists`],
  ]) {
    for (const body of [{ client_ids: ids(501) }, { client_ids: many }]) {
      const r = await api(server, method, path, body);
      assert.equal(r.status, 400, `${method} ${path} ${body.client_ids.length}: ${JSON.stringify(r.body)}`);
      assert.match(r.body.error, /client_ids must be an array of 1 to 500 client ids/);
    }
  }
  const members = (await api(server, 'GET', `/1.2/rtm/conversations/${cid}/members`)).body.result;
  assert.deepEqual(members, [o], 'nothing came in');
  const sil = (await api(server, 'GET', `/1.2/rtm/conversations/${cid}/permanent-silenceds`)).body.client_ids;
  assert.deepEqual(sil, []);
  // 500 pass
  const r = await api(server, 'DELETE', `/1.2/rtm/conversations/${cid}/permanent-silenceds`, { client_ids: ids(500) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
});

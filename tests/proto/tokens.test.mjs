// Session tokens taken back (issue #11 §10, protocol.md §3.1–§3.2, docs/security.md): a
// logout, an admin kick (4115) and a single-sign-on displacement (4111) revoke the `st`
// the session was given — it no longer reconnects (session open r:true + st → error 4112
// SESSION_TOKEN_EXPIRED, which makes the JS SDK log in afresh) nor reads
// /1.1/rtm/notifications — and the revocation survives a restart. What is not revoked keeps
// working: another device's token of the same client, a fresh login.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { assertError, closeAll, connect, login, session, uid } from '../lib/proto-client.mjs';

let server;
before(async () => { server = await startServer(); });
afterEach(() => closeAll(server));
after(async () => { await server.stop(); });

/** session/open r:true with st on a new socket: the reply (opened, or the error). */
async function reconnect(srv, peer, st) {
  const c = await connect(srv);
  return c.request({ cmd: 'session', op: 'open', appId: srv.appId, peerId: peer, sessionMessage: { ua: 'tern-proto-test/1', r: true, st } });
}

async function assertResumes(srv, peer, st, what) {
  const r = await reconnect(srv, peer, st);
  assert.equal(r.op, 'opened', `${what}: ${JSON.stringify(r)}`);
  return r.sessionMessage.st;
}

async function assertRevoked(srv, peer, st, what) {
  const r = await reconnect(srv, peer, st);
  assertError(r, r.i, 4112, 'SESSION_TOKEN_EXPIRED');
  assert.match(r.errorMessage.detail ?? '', /revoked/, what);
}

/** GET /1.1/rtm/notifications as the JS SDK calls it after a reconnect: the status. */
async function notifications(srv, client, st) {
  const qs = new URLSearchParams({ client_id: client, start_ts: '0', notification_type: 'permanent' });
  const res = await fetch(`${srv.httpUrl}/1.1/rtm/notifications?${qs}`,
    { headers: { 'X-LC-Id': srv.appId, 'X-LC-Key': srv.appKey, 'X-LC-IM-Session-Token': st } });
  await res.arrayBuffer();
  return res.status;
}

async function kick(srv, client) {
  const res = await fetch(`${srv.httpUrl}/1.2/rtm/clients/${encodeURIComponent(client)}/kick`, {
    method: 'POST',
    headers: { 'X-LC-Id': srv.appId, 'X-LC-Key': `${srv.masterKey},master`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ reason: 'banned' }),
  });
  assert.equal(res.status, 200, await res.text());
}

test('§3.2 logout (session close) revokes its st and every token descended from that login; another login of the client keeps its own', async () => {
  const peer = uid('logout');
  const a = await session(server, peer);
  const stA = a.openReply.sessionMessage.st;
  const refreshed = (await a.request({ cmd: 'session', op: 'refresh', sessionMessage: { st: stA } })).sessionMessage.st;
  // the same device reconnecting: the token it gets continues the chain
  const stA2 = await assertResumes(server, peer, stA, 'before the logout');
  const b = await session(server, peer); // a second device, a login of its own
  const stB = b.openReply.sessionMessage.st;
  assert.equal(await notifications(server, peer, stA), 200, 'a live token reads notifications');

  const r = await a.request({ cmd: 'session', op: 'close' });
  assert.equal(r.op, 'closed');
  // at once, on any socket (the revocation is in memory before it is committed)
  await assertRevoked(server, peer, stA, 'the logged-out token');
  await assertRevoked(server, peer, refreshed, 'its refresh');
  await assertRevoked(server, peer, stA2, 'the token of its reconnect');
  assert.equal(await notifications(server, peer, stA), 401, 'nor does it read notifications');
  assert.equal(await notifications(server, peer, stA2), 401);

  await assertResumes(server, peer, stB, 'the other device');
  assert.equal(await notifications(server, peer, stB), 200);
  // a fresh login needs no token and gets a new one that works
  const fresh = await session(server, peer);
  await assertResumes(server, peer, fresh.openReply.sessionMessage.st, 'a fresh login');
});

test('§3.2 an admin kick (REST, 4115) revokes every token of the client: the kicked session\'s and those of devices that were offline', async () => {
  const peer = uid('kicked');
  const online = await session(server, peer);
  const away = await session(server, peer);
  const stOnline = online.openReply.sessionMessage.st;
  const stAway = away.openReply.sessionMessage.st;
  away.ws.terminate(); // gone without a goodbye: its token would resume it
  await away.closed;
  const other = uid('bystander');
  const by = await session(server, other);

  await kick(server, peer);
  const closed = await online.nextCmd('session', 'closed');
  assert.equal(closed.sessionMessage.code, 4115);
  await assertRevoked(server, peer, stOnline, 'the kicked session\'s token');
  await assertRevoked(server, peer, stAway, 'the offline device\'s token');
  assert.equal(await notifications(server, peer, stAway), 401);
  await assertResumes(server, other, by.openReply.sessionMessage.st, 'another client is not touched');
  // the client may log in afresh, and that login's token works
  const again = await session(server, peer);
  await assertResumes(server, peer, again.openReply.sessionMessage.st, 'a login after the kick');
});

test('§3.1 single sign-on: the login displaced by a new one with its tag (4111) loses its token; the new login keeps its own', async () => {
  const peer = uid('sso');
  const first = await session(server, peer, { extra: { tag: 'Mobile' } });
  const stFirst = first.openReply.sessionMessage.st;
  const second = await session(server, peer, { extra: { tag: 'Mobile' } });
  const stSecond = second.openReply.sessionMessage.st;
  const closed = await first.nextCmd('session', 'closed');
  assert.equal(closed.sessionMessage.code, 4111);
  // while the new login holds <peer, tag>, the old token's re-login is told 4111 (the session
  // ended elsewhere), not 4112 — which would make the SDK log in afresh and push the holder out
  const held = await reconnect(server, peer, stFirst);
  assert.equal(`${held.cmd}/${held.op}`, 'session/closed', JSON.stringify(held));
  assert.equal(held.sessionMessage.code, 4111);
  assert.equal(await notifications(server, peer, stFirst), 401, 'the displaced token opens no REST route');
  await second.close();
  await assertRevoked(server, peer, stFirst, 'the displaced login, once nobody holds the tag');
  await assertResumes(server, peer, stSecond, 'the login that took over');
});

test('§3.1 revocations are stored: after a restart a revoked token still does not resume, an untouched one does', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tern-tokens-'));
  let srv = await startServer({ dataDir: dir });
  try {
    const [out, kicked, kept] = [uid('out'), uid('kick'), uid('kept')];
    const o = await session(srv, out);
    const k = await session(srv, kicked);
    const p = await session(srv, kept);
    const st = { out: o.openReply.sessionMessage.st, kicked: k.openReply.sessionMessage.st, kept: p.openReply.sessionMessage.st };
    assert.equal((await o.request({ cmd: 'session', op: 'close' })).op, 'closed');
    await kick(srv, kicked);
    await closeAll(srv);
    await srv.stop();
    srv = await startServer({ dataDir: dir });
    await assertRevoked(srv, out, st.out, 'logged out before the restart');
    await assertRevoked(srv, kicked, st.kicked, 'kicked before the restart');
    await assertResumes(srv, kept, st.kept, 'tokens themselves survive a restart');
    assert.equal(await notifications(srv, out, st.out), 401);
    assert.equal(await notifications(srv, kept, st.kept), 200);
  } finally {
    await closeAll(srv);
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('§3.1 a token is bound to its client, and a forged or stale one is refused as before', async () => {
  const peer = uid('bound');
  const c = await session(server, peer);
  const st = c.openReply.sessionMessage.st;
  const r = await reconnect(server, uid('someone-else'), st);
  assertError(r, r.i, 4112, 'SESSION_TOKEN_EXPIRED');
  const forged = `${st.slice(0, 10)}${st[10] === 'A' ? 'B' : 'A'}${st.slice(11)}`;
  const f = await reconnect(server, peer, forged);
  assertError(f, f.i, 4112, 'SESSION_TOKEN_EXPIRED');
  const l = await login(await connect(server), peer, { r: true, st });
  assert.equal(l.op, 'opened');
});

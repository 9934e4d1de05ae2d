// Helpers shared by the issue #3 hand-built-frame suites (tests/proto/conv-admin, patch,
// chatroom-rules, will): a group fixture with an owner, two online members and one member
// that stays offline until the test logs it in, and assertions over "what each client was
// pushed for this conversation since a mark".
import assert from 'node:assert/strict';
import { assertPush, login, connect, session, startConv, uid } from './proto-client.mjs';

/** Pushes (no `i`) received since `mark` that concern conversation `cid` (conv, direct,
 * patch or blacklist commands naming it). */
export function convPushes(client, mark, cid) {
  return client.since(mark).filter((p) => !p.i && concerns(p, cid));
}

export function concerns(p, cid) {
  if (p.convMessage?.cid === cid) return true;
  if (p.directMessage?.cid === cid) return true;
  if (p.blacklistMessage?.srcCid === cid) return true;
  if (p.patchMessage?.patches?.some((x) => x.cid === cid)) return true;
  if (p.unreadMessage?.convs?.some((x) => x.cid === cid)) return true;
  return false;
}

/** Waits for the push `op` (cmd conv unless given) about cid on client; with `mark`, only
 * one that arrived after it (older ones left in the queue do not count). */
export function nextConv(client, op, cid, cmd = 'conv', timeout, mark) {
  return client.next((p) => p.cmd === cmd && p.op === op && concerns(p, cid)
    && (mark === undefined || client.received.indexOf(p) >= mark), timeout);
}

/**
 * A normal conversation created by A with members B, C (online, own sockets) and D
 * (offline: a member that has never logged in). The creation pushes are drained.
 * Returns {ids, A, B, C, cid, udate}.
 */
export async function group(server, { extraMembers = [], attr } = {}) {
  const ids = { A: uid('A'), B: uid('B'), C: uid('C'), D: uid('D') };
  const A = await session(server, ids.A);
  const B = await session(server, ids.B);
  const C = await session(server, ids.C);
  const fields = attr ? { attr: { data: JSON.stringify(attr) } } : {};
  const conv = await startConv(A, [ids.B, ids.C, ids.D, ...extraMembers], fields);
  for (const cl of [A, B, C]) await nextConv(cl, 'members_joined', conv.cid);
  return { ids, A, B, C, cid: conv.cid, cdate: conv.cdate };
}

/**
 * Logs `peer` in on a fresh socket and asserts that the server queued nothing about `cid`
 * for it while it was away (membership, attribute, role, shut-up, blacklist or patch
 * notifications). Returns the client for further use.
 */
export async function assertNothingQueued(server, peer, cid, extra) {
  const c = await connect(server);
  await login(c, peer, extra);
  const got = (await c.quiet(0)).filter((p) => !p.i && concerns(p, cid));
  assert.deepEqual(got, [], `${peer} (offline member) must get nothing queued for ${cid}`);
  return c;
}

/** Asserts a list of pushes is exactly `ops` in order, each a well-formed push to peer. */
export function assertOps(pushes, ops, peer, what) {
  assert.deepEqual(pushes.map((p) => `${p.cmd}/${p.op}`), ops, `${what}: pushes to ${peer}`);
  for (const p of pushes) assertPush(p, peer);
}

/** conv/query {objectId: cid} as client; returns the row. */
export async function row(client, cid) {
  const r = await client.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } });
  assert.equal(r.op, 'results', JSON.stringify(r));
  const rows = JSON.parse(r.convMessage.results.data);
  assert.equal(rows.length, 1, `conversation ${cid} found`);
  return rows[0];
}

export async function count(client, cid) {
  const r = await client.request({ cmd: 'conv', op: 'count', convMessage: { cid } });
  assert.equal(r.op, 'result', JSON.stringify(r));
  return r.convMessage.count ?? 0;
}

/** A conv request that must succeed with reply op `op`; returns the reply. */
export async function ok(client, cmd, op) {
  const r = await client.request(cmd);
  assert.equal(r.op, op, `expected ${op}, got ${JSON.stringify(r)}`);
  return r;
}

export { uid, session };

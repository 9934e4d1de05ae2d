// A login racing sends into one of its conversations (docs/cluster.md, "A login's counts"):
// each message must reach the new login exactly once — counted in its unread counts, or
// pushed live — never both, never neither. Used on one node (tests/proto/unread-exact.test.mjs)
// and across nodes (tests/cluster/unread-exact.test.mjs).
import assert from 'node:assert/strict';

// A tern message id is base64url of 16 bytes: 6 of timestamp, 6 of the conversation's
// sequence (src/server/im/msgid.c): history's order is (ts, seq).
export function msgKey(mid) {
  const raw = Buffer.from(mid, 'base64url');
  assert.equal(raw.length, 16, `a tern message id: ${mid}`);
  return [raw.readUIntBE(0, 6), raw.readUIntBE(6, 6)];
}
const byKey = (a, b) => { const [x, y] = [msgKey(a), msgKey(b)]; return x[0] - y[0] || x[1] - y[1]; };

/**
 * sender (a logged-in ProtoClient, member of cid with x) sends n messages, pipelined a few at
 * a time; after `before` of them `loginX()` is started (it resolves with x's ProtoClient, whose
 * login has been answered). Then a last marker message, sent once the login is answered, is
 * awaited on x (pushes of one conversation keep their order: every earlier push is in).
 * Returns { counted, live, dup, missing, extra, order } for the n messages.
 */
export async function raceLogin({ sender, cid, n, before, loginX, batch = 4, timeout = 20000 }) {
  const acks = [];
  let xp;
  let inflight = [];
  for (let i = 0; i < n; i++) {
    if (i === before) xp = loginX();
    inflight.push(sender.request({ cmd: 'direct', directMessage: { cid, msg: `race ${i}` } }, timeout));
    if (inflight.length >= batch) {
      for (const r of await Promise.all(inflight)) { assert.equal(r.cmd, 'ack', JSON.stringify(r)); acks.push(r.ackMessage.uid); }
      inflight = [];
    }
  }
  for (const r of await Promise.all(inflight)) { assert.equal(r.cmd, 'ack', JSON.stringify(r)); acks.push(r.ackMessage.uid); }
  if (!xp) xp = loginX();
  const x = await xp;
  const marker = await sender.request({ cmd: 'direct', directMessage: { cid, msg: 'marker' } }, timeout);
  assert.equal(marker.cmd, 'ack', JSON.stringify(marker));
  await x.next((c) => c.cmd === 'direct' && c.directMessage?.id === marker.ackMessage.uid, timeout);
  const sorted = [...acks].sort(byKey);
  // what x was told, in arrival order, from its session/opened on
  const rx = x.received;
  const openedAt = rx.findIndex((c) => c.cmd === 'session' && c.op === 'opened');
  const unreadAt = rx.findIndex((c) => c.cmd === 'unread');
  const tuple = unreadAt >= 0 ? (rx[unreadAt].unreadMessage.convs || []).find((t) => t.cid === cid) : undefined;
  const liveAt = rx.map((c, k) => (c.cmd === 'direct' && c.directMessage?.cid === cid && c.directMessage.id !== marker.ackMessage.uid ? k : -1)).filter((k) => k >= 0);
  const live = liveAt.map((k) => rx[k].directMessage.id);
  const last = tuple?.mid ? sorted.indexOf(tuple.mid) : -1;
  if (tuple?.mid) assert.ok(last >= 0, `the counts' last message ${tuple.mid} is one of the ${n} sent`);
  const countedIds = new Set(sorted.slice(0, last + 1));
  const counted = tuple ? tuple.unread : 0;
  const liveSet = new Set(live);
  const dup = live.filter((id) => countedIds.has(id)).length + (live.length - liveSet.size);
  const missing = sorted.filter((id) => !countedIds.has(id) && !liveSet.has(id)).length;
  const extra = live.filter((id) => !acks.includes(id)).length;
  // order on the wire: session/opened, then the counts, then the live pushes
  const order = openedAt >= 0 && (unreadAt < 0 || (unreadAt > openedAt && liveAt.every((k) => k > unreadAt)));
  return { x, counted, countedKeys: last + 1, live: live.length, dup, missing, extra, order };
}

// A login's unread counts across nodes (docs/cluster.md, "A login's counts"; issue #14): while
// client X logs in on node 2, a client on node 1 sends N messages into their conversation,
// spread over the login. Every message reaches X exactly once: counted in the unread counts
// (the counts' last message and every one before it) or pushed live after them — never
// both, never neither. In half of the rounds Redis holds writes for 300 ms at the login
// (CLIENT PAUSE WRITE: the login's presence publish waits), which widens the window in which
// node 1 does not know X is online yet.
//
// Before: the counts were read at the login, before its presence publish was confirmed, so a
// message node 1 sent in that window was not pushed (node 1 did not know X yet) and, committed
// after the read, not counted either (X learnt of it only at its next sync); and a message
// committed just before the read whose push reached the new session was counted and pushed.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { useNodes } from '../lib/cluster-mode.mjs';
import { connect, login, session, startConv, uid } from '../lib/proto-client.mjs';
import { raceLogin } from '../lib/unread-exact.mjs';

const ROUNDS = Number(process.env.UNREAD_ROUNDS || 20);
const N = 40;

describe('cluster: a login on one node racing sends from another is told each message once', () => {
  after(() => {
    try { cluster.redis?.cli('CLIENT', 'UNPAUSE'); } catch { /* already stopped */ }
  });
  const cluster = useNodes(2, { pg: true });

  test(`counted or live, never both, never neither (${ROUNDS} rounds of ${N}, half with Redis paused at the login)`, async () => {
    const [n1, n2] = cluster.nodes;
    const bad = [];
    let counted = 0, live = 0;
    for (let k = 0; k < ROUNDS; k++) {
      const sender = await session(n1, uid('s'));
      const xid = uid('x');
      const { cid } = await startConv(sender, [xid]);
      const x = await connect(n2);
      const r = await raceLogin({
        sender, cid, n: N, before: 8 + (k % 4) * 4, batch: 2,
        loginX: async () => {
          if (k % 2 === 1) cluster.redis.cli('CLIENT', 'PAUSE', '300', 'WRITE');
          await login(x, xid);
          return x;
        },
      });
      assert.equal(r.extra, 0);
      assert.ok(r.order, `round ${k}: session/opened, then the counts, then the live pushes`);
      counted += r.counted;
      live += r.live;
      if (r.dup || r.missing || r.counted + r.live !== N || r.counted !== r.countedKeys) bad.push({ k, counted: r.counted, upToLast: r.countedKeys, live: r.live, dup: r.dup, missing: r.missing });
      await x.close();
      await sender.close();
    }
    assert.deepEqual(bad, [], `rounds where counted + live != ${N}`);
    assert.ok(counted > 0 && live > 0, `both paths met: counted ${counted}, live ${live}`);
  });
});

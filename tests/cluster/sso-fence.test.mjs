// Single sign-on across nodes reads the other nodes' sessions of <client, tag> from this
// node's replica (im_session.c, bus_sessions). A tagged login answered on node 1 has its
// presence delta in node 2's subscriber socket by then (docs/cluster.md, "The window,
// closed"), but node 2 applies it only when its home worker reads that socket: a tagged
// login of the same client on node 2 must first wait for what the subscriber holds (the
// presence fence, as session query and a room's count do), or it keeps the session on
// node 1 that it should push out (4111) — two devices on one tag, for good.
//
// Held open deterministically (tests/lib/home-blocked.mjs): node 2's home worker is blocked
// while the first login is answered on node 1; the second login goes on a connection node
// 2's worker 1 serves.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { whileHomeBlocked } from '../lib/home-blocked.mjs';
import { closeAll, connect, login, session, uid } from '../lib/proto-client.mjs';
import { startRedis } from '../lib/redis.mjs';
import { startNodes } from '../lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const STALL_MS = 2000;

describe('cluster: single sign-on waits for the presence the subscriber already holds', () => {
  let redis;
  let nodes;
  before(async () => {
    redis = await startRedis();
    nodes = await startNodes(2, redis, { envs: [{}, { TERN_WORKERS: '2', TERN_TEST_STALL_HOME_MS: String(STALL_MS) }] });
  });
  after(async () => {
    for (const s of nodes || []) await closeAll(s);
    await Promise.all((nodes || []).map((s) => s.stop()));
    if (redis) await redis.stop();
  });

  test('a tagged login on node 2 while its home worker has not yet read the same tag\'s login on node 1 pushes that one out (4111)', async () => {
    const [n1, n2] = nodes;
    const conns = { open: async () => { const c = await connect(n2); await c.echo(); return c; }, probe: (c) => c.echo(), close: (c) => c.close() };
    await whileHomeBlocked(n2, STALL_MS, conns, async (w1, inside) => {
      const x = uid('sso');
      const a = await session(n1, x, { extra: { tag: 'mobile' } }); // answered: Redis has its delta
      if (!inside()) {
        await a.close();
        return false;
      }
      const pushedOut = a.next((c) => c.cmd === 'session' && c.op === 'closed', STALL_MS + 5000);
      await login(w1, x, { tag: 'mobile' });
      const closed = await pushedOut;
      assert.equal(closed.sessionMessage?.code, 4111, JSON.stringify(closed));
      await sleep(50);
      assert.ok(!w1.isClosed, 'the new login stays');
      await a.close();
      return true;
    });
  });
});

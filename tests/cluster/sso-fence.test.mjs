// Single sign-on across nodes reads the other nodes' sessions of <client, tag> from this
// node's replica (im_session.c, bus_sessions). A tagged login answered on node 1 has its
// presence delta in node 2's subscriber socket by then (docs/cluster.md, "The window,
// closed"), but node 2 applies it only when its home worker reads that socket: a tagged
// login of the same client on node 2 must first wait for what the subscriber holds (the
// presence fence, as session query and a room's count do), or it keeps the session on
// node 1 that it should push out (4111) — two devices on one tag, for good.
//
// Held open deterministically: node 2 has two workers and its home worker (0, which reads
// the subscriber) is blocked (TERN_TEST_STALL_HOME_MS, SIGUSR2: the hook of
// hb-thread.test.mjs) while the first login is answered on node 1; the second login goes on
// a connection node 2's worker 1 serves (found by which connections answer an echo while
// worker 0 is blocked; the kernel spreads them).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { closeAll, connect, login, session, uid } from '../lib/proto-client.mjs';
import { startRedis } from '../lib/redis.mjs';
import { startNodes } from '../lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const within = (p, ms) => Promise.race([p, sleep(ms).then(() => undefined)]);
const STALL_MS = 2000;
// how many times the home worker has logged that it blocks (bus_redis.c on_stall, just before)
const stalls = (s) => s.stderr().split("test hook: blocking the home worker's loop").length - 1;

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
    let done = false;
    for (let attempt = 0; attempt < 5 && !done; attempt++) {
      const conns = [];
      for (let i = 0; i < 6; i++) {
        const c = await connect(n2);
        await c.echo();
        conns.push(c);
      }
      const stalls0 = stalls(n2);
      process.kill(n2.child.pid, 'SIGUSR2'); // node 2's worker 0 blocks for STALL_MS
      // blocking from its log line on: a connection that answers from now on is worker 1's
      for (const t = Date.now(); stalls(n2) === stalls0; await sleep(10)) assert.ok(Date.now() - t < 5000, 'node 2 never blocked');
      const t0 = Date.now();
      const onW1 = await Promise.all(conns.map((c) => within(c.echo().then(() => true), 300)));
      const w1 = conns[onW1.findIndex(Boolean)];
      if (!w1 || Date.now() - t0 > STALL_MS / 2) { // all on worker 0, or too slow: again
        await sleep(STALL_MS);
        for (const c of conns) await c.close();
        continue;
      }
      const x = uid('sso');
      const a = await session(n1, x, { extra: { tag: 'mobile' } }); // answered: Redis has its delta
      if (Date.now() - t0 > STALL_MS - 500) { // node 2's block may be over: not the case tested, again
        await sleep(STALL_MS);
        for (const c of conns) await c.close();
        await a.close();
        continue;
      }
      const pushedOut = a.next((c) => c.cmd === 'session' && c.op === 'closed', STALL_MS + 5000);
      await login(w1, x, { tag: 'mobile' });
      const closed = await pushedOut;
      assert.equal(closed.sessionMessage?.code, 4111, JSON.stringify(closed));
      await sleep(50);
      assert.ok(!w1.isClosed, 'the new login stays');
      for (const c of conns) await c.close();
      await a.close();
      done = true;
    }
    assert.ok(done, 'no connection of node 2 landed on its worker 1 in 5 attempts');
  });
});

// The app's kick asked of one node ends the client's sessions on every node: the node that
// takes it sends their kick to the nodes its replica lists them on (rest_kick, im_bus_kick).
// A login answered on node 1 has its presence delta in node 2's subscriber socket by then
// (docs/cluster.md, "The window, closed"), but node 2 applies it only when its home worker
// reads that socket: a kick asked of node 2 in that moment must first wait for what the
// subscriber holds (the presence fence, as session query and single sign-on do), or it
// finds the client nowhere, answers 200, and the session on node 1 is never ended — the
// kicked client stays connected (presence-window's 4115 test met this once under load:
// no session/closed within 5 s).
//
// Held open deterministically as in sso-fence.test.mjs: node 2 has two workers and its home
// worker (0, which reads the subscriber) is blocked (TERN_TEST_STALL_HOME_MS, SIGUSR2) while
// the login is answered on node 1; the kick goes on an HTTP connection node 2's worker 1
// serves (found by which keep-alive connections answer /health while worker 0 is blocked).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { closeAll, session, uid } from '../lib/proto-client.mjs';
import { rawHttp } from '../lib/raw-http.mjs';
import { startRedis } from '../lib/redis.mjs';
import { startNodes } from '../lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const within = (p, ms) => Promise.race([p, sleep(ms).then(() => undefined)]);
const STALL_MS = 2000;
// how many times the home worker has logged that it blocks (bus_redis.c on_stall, just before)
const stalls = (s) => s.stderr().split("test hook: blocking the home worker's loop").length - 1;

async function fences(s) {
  const res = await fetch(`${s.httpUrl}/metrics`, { headers: { 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master` } });
  return Number(/^tern_bus_fences_total (\d+)$/m.exec(await res.text())?.[1]);
}

describe('cluster: the app\'s kick waits for the presence the subscriber already holds', () => {
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

  test('a kick asked of node 2 while its home worker has not yet read the login on node 1 ends that session (4115)', async () => {
    const [n1, n2] = nodes;
    let done = false;
    for (let attempt = 0; attempt < 5 && !done; attempt++) {
      const conns = [];
      for (let i = 0; i < 8; i++) {
        const h = await rawHttp(n2.port);
        assert.equal((await h.request('GET', '/health')).status, 200); // accepted by a worker
        conns.push(h);
      }
      const f0 = await fences(n2);
      const stalls0 = stalls(n2);
      process.kill(n2.child.pid, 'SIGUSR2'); // node 2's worker 0 blocks for STALL_MS
      // blocking from its log line on: a connection that answers from now on is worker 1's
      for (const t = Date.now(); stalls(n2) === stalls0; await sleep(10)) assert.ok(Date.now() - t < 5000, 'node 2 never blocked');
      const t0 = Date.now();
      const onW1 = await Promise.all(conns.map((h) => within(h.request('GET', '/health').then((r) => r.status === 200), 300)));
      const w1 = conns[onW1.findIndex(Boolean)];
      const x = uid('kicked');
      // answered: Redis has its delta, in node 2's subscriber socket
      const a = w1 && Date.now() - t0 < STALL_MS / 2 ? await session(n1, x) : null;
      if (!a || Date.now() - t0 > STALL_MS - 500) { // all on worker 0, or too slow to be inside the block: again
        await sleep(STALL_MS);
        for (const h of conns) h.close();
        await a?.close();
        continue;
      }
      const closed = a.next((c) => c.cmd === 'session' && c.op === 'closed', STALL_MS + 5000);
      const r = await w1.request('POST', `/1.2/rtm/clients/${x}/kick`, {
        'X-LC-Id': n2.appId, 'X-LC-Key': `${n2.masterKey},master`, 'Content-Type': 'application/json',
      }, '{"reason":"fence"}');
      assert.equal(r.status, 200, JSON.stringify(r));
      const c = await closed;
      assert.equal(c.sessionMessage?.code, 4115, JSON.stringify(c));
      assert.ok((await fences(n2)) > f0, 'node 2 answered the kick without a presence fence');
      for (const h of conns) h.close();
      await a.close();
      done = true;
    }
    assert.ok(done, 'no HTTP connection of node 2 landed on its worker 1 in 5 attempts');
  });
});

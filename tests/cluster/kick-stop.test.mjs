// The app's kick (POST /1.2/rtm/clients/:id/kick) is answered once this node's sessions of
// the client have ended (each on its own worker) and Redis confirmed their ends
// (im_session_kick_app). A node told to stop (SIGTERM) while such a kick is under way must
// still answer it — the kick completed (200) or an HTTP error with a message (503 "server
// stopping") — never a connection closed without an answer, and it exits cleanly (ASan:
// no leak of the kick's state).
//
// The kick is held under way deterministically: worker 0 of a 2-worker node is blocked
// (TERN_TEST_STALL_HOME_MS, SIGUSR2: the test hook of hb-thread.test.mjs) and the kick is
// sent on a connection worker 1 serves, for a client with a session on each worker. Worker
// 1 ends its sessions at once; the end of the one on worker 0 waits for that loop. SIGTERM
// then: worker 1 stops (about 2 s later: the node waits up to 1 s each for the blocked
// worker to stop accepting and to leave the bus) while the kick still waits for worker 0.
// Before, worker 1 closed the kick's connection unanswered, and the kick's state, posted
// back to a worker already stopped, leaked.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { startRedis } from '../lib/redis.mjs';
import { startNodes } from '../lib/server.mjs';
import { closeAll, session, uid } from '../lib/proto-client.mjs';
import { rawHttp } from '../lib/raw-http.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const STALL_MS = 4000;

const within = (p, ms) => Promise.race([p, sleep(ms).then(() => undefined)]);

// One attempt: the node, the sessions and connections placed, the kick, SIGTERM. null when
// the connections did not land where the test needs them (each is spread by the kernel).
async function attempt() {
  const redis = await startRedis();
  let node;
  const conns = [];
  try {
    [node] = await startNodes(1, redis, { env: { TERN_WORKERS: '2', TERN_TEST_STALL_HOME_MS: String(STALL_MS), TERN_DRAIN_TIMEOUT: '0' } });
    const x = uid('kicked');
    const S = [];
    for (let i = 0; i < 8; i++) S.push(await session(node, x));
    for (let i = 0; i < 8; i++) {
      const h = await rawHttp(node.port);
      assert.equal((await h.request('GET', '/health')).status, 200); // accepted by a worker
      conns.push(h);
    }
    process.kill(node.child.pid, 'SIGUSR2'); // worker 0 blocks for STALL_MS
    await sleep(100);
    // who is on worker 1: answered while worker 0 is blocked
    const t0 = Date.now();
    const onW1 = await Promise.all(S.map((c) => within(c.echo().then(() => true), 400)));
    const httpW1 = await Promise.all(conns.map((h) => within(h.request('GET', '/health').then((r) => r.status === 200), 400)));
    const w0Sessions = S.filter((_, i) => !onW1[i]);
    const w1Sessions = S.filter((_, i) => onW1[i]);
    const k = httpW1.findIndex(Boolean);
    if (!w0Sessions.length || !w1Sessions.length || k < 0 || Date.now() - t0 > 2000) return null;

    const kick = conns[k].request('POST', `/1.2/rtm/clients/${x}/kick`, {
      'X-LC-Id': node.appId, 'X-LC-Key': `${node.masterKey},master`, 'Content-Type': 'application/json',
    }, '{"reason":"bye"}');
    // under way on worker 1, which is idle: not answered, since worker 0 has not ended its
    // session (nor can the bus confirm the ends: worker 0 runs its Redis link)
    assert.equal(await within(kick, 500), undefined, 'the kick was answered while worker 0 was blocked');
    assert.equal(w0Sessions[0].isClosed, false);
    const exited = new Promise((r) => node.child.once('exit', (code, sig) => r({ code, sig })));
    const t1 = Date.now();
    node.child.kill('SIGTERM');
    const r = await kick;
    const took = Date.now() - t1;
    const { code, sig } = await exited;
    // every session of the client is over: kicked, or closed with the node
    await Promise.all(S.map((c) => within(c.closed, 5000)));
    for (const c of S) assert.ok(c.isClosed, 'a session of the kicked client is still open');
    return { r, took, code, sig, stderr: node.stderr() };
  } finally {
    for (const h of conns) h.close();
    if (node) {
      await closeAll(node);
      if (node.child.exitCode === null && node.child.signalCode === null) await node.kill();
    }
    await redis.stop();
  }
}

describe('cluster: a kick under way when the node is told to stop is answered', () => {
  test('SIGTERM while the kick waits for a blocked worker: 503 "server stopping", a clean exit', async (t) => {
    let res = null;
    for (let i = 0; i < 4 && !res; i++) res = await attempt();
    assert.ok(res, 'the kernel never spread the connections over both workers (4 attempts)');
    const { r, took, code, sig, stderr } = res;
    t.diagnostic(`answer ${JSON.stringify(r)} ${took} ms after SIGTERM; exit ${code ?? sig}${/LeakSanitizer/.test(stderr) ? ' (LeakSanitizer report)' : ''}`);
    assert.ok(!r.closed, `the kick's connection was closed without an answer (${took} ms after SIGTERM)`);
    assert.ok(took < STALL_MS + 4000, `the kick was answered ${took} ms after SIGTERM`);
    if (r.status !== 200) {
      assert.equal(r.status, 503, r.body);
      assert.match(JSON.parse(r.body).error, /server stopping/, r.body);
    }
    assert.doesNotMatch(stderr, /ERROR: AddressSanitizer|runtime error:|LeakSanitizer|WARNING: ThreadSanitizer/, stderr.slice(-6000));
    assert.equal(code, 0, `ternd exited with ${code ?? sig}:\n${stderr.slice(-4000)}`);
  });
});

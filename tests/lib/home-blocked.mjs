// A cluster node's presence window held open on purpose: the node's home worker (worker 0,
// which reads the bus subscriber) is blocked by the test hook TERN_TEST_STALL_HOME_MS (the
// node started with it and TERN_WORKERS=2; SIGUSR2 blocks the loop that long), and the
// request under test goes on a connection its worker 1 serves — found by which of several
// connections answer a probe while worker 0 is blocked (the kernel spreads them). What
// another node answered meanwhile has its presence delta waiting, unapplied, in this
// node's subscriber socket. Used by tests/cluster/*-fence.test.mjs.
import assert from 'node:assert/strict';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const within = (p, ms) => Promise.race([p, sleep(ms).then(() => undefined)]);

// How many times the node's home worker has logged that it blocks (bus_redis.c on_stall,
// just before it does).
const stalls = (s) => s.stderr().split("test hook: blocking the home worker's loop").length - 1;

// Runs act(w1, inside) while node's home worker is blocked for stallMs: w1 is one of the
// candidates `open()` made (n of them) whose `probe(c)` answered during the block, i.e.
// worker 1's; inside() says whether the block still has 500 ms to run. act returns false
// when it was too slow to be inside the block (not the case tested): then, as when no
// candidate landed on worker 1, the whole thing is tried again (5 attempts). Each
// attempt's candidates are closed with close(c).
export async function whileHomeBlocked(node, stallMs, { open, probe, close, n = 6 }, act) {
  for (let attempt = 0; attempt < 5; attempt++) {
    const cands = [];
    try {
      for (let i = 0; i < n; i++) cands.push(await open());
      const stalls0 = stalls(node);
      process.kill(node.child.pid, 'SIGUSR2');
      // blocking from its log line on: a candidate that answers from now on is worker 1's
      for (const t = Date.now(); stalls(node) === stalls0; await sleep(10)) assert.ok(Date.now() - t < 5000, 'the node never blocked');
      const t0 = Date.now();
      const onW1 = await Promise.all(cands.map((c) => within(probe(c).then(() => true), 300)));
      const w1 = cands[onW1.findIndex(Boolean)];
      if (w1 && Date.now() - t0 < stallMs / 2 && (await act(w1, () => Date.now() - t0 < stallMs - 500))) return;
      await sleep(stallMs);
    } finally {
      for (const c of cands) await close(c);
    }
  }
  assert.fail('no connection of the node served by its worker 1 in time while worker 0 was blocked (5 attempts)');
}

// A block from a chat room (blacklist block, §3.17) takes the blocked members' sessions out of
// the room on every node: the node that blocks sends the room's nodes, as its replica has
// them, the `left` (im_bus_room_kick, bus_room_nodes). A join answered on node 1 has its
// delta in node 2's subscriber socket by then (docs/cluster.md, "The window, closed"), but
// node 2 applies it only when its home worker reads that socket: a block on node 2 in that
// moment must first wait for what the subscriber holds (the presence fence), or it finds no
// member of the room on node 1 and the member there stays in the room, told `blocked` but
// never `left` (presence-window's block test met this once in a TSan run of 300 rounds: no
// `left` within 5 s).
//
// Held open deterministically as in sso-fence.test.mjs: node 2 has two workers and its home
// worker (0, which reads the subscriber) is blocked (TERN_TEST_STALL_HOME_MS, SIGUSR2) while
// the join is answered on node 1; the block is sent by a room owner whose connection node
// 2's worker 1 serves (found by which connections answer an echo while worker 0 is blocked).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { closeAll, session, startConv, uid } from '../lib/proto-client.mjs';
import { startPg } from '../lib/pg.mjs';
import { startRedis } from '../lib/redis.mjs';
import { startNodes } from '../lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const within = (p, ms) => Promise.race([p, sleep(ms).then(() => undefined)]);
const STALL_MS = 2000;
// how many times the home worker has logged that it blocks (bus_redis.c on_stall, just before)
const stalls = (s) => s.stderr().split("test hook: blocking the home worker's loop").length - 1;

describe('cluster: a block from a chat room waits for the presence the subscriber already holds', () => {
  let pg, redis;
  let nodes;
  before(async () => {
    pg = startPg(); // one store: both nodes know the rooms
    redis = await startRedis();
    nodes = await startNodes(2, redis, { env: { TERN_STORE: pg.createDatabase() }, envs: [{}, { TERN_WORKERS: '2', TERN_TEST_STALL_HOME_MS: String(STALL_MS) }] });
  });
  after(async () => {
    for (const s of nodes || []) await closeAll(s);
    await Promise.all((nodes || []).map((s) => s.stop()));
    if (redis) await redis.stop();
    pg?.stop();
  });

  test('a member whose join node 1 answered, blocked on node 2 before its home worker read the join, is pushed `left`', async () => {
    const [n1, n2] = nodes;
    let done = false;
    for (let attempt = 0; attempt < 5 && !done; attempt++) {
      const owners = []; // each with a room of its own, on node 2's workers as the kernel spreads them
      for (let i = 0; i < 6; i++) {
        const o = await session(n2, uid('owner'));
        owners.push({ o, cid: (await startConv(o, [], { transient: true, n: 'block-fence' })).cid });
      }
      const x = uid('blocked');
      const a = await session(n1, x); // its login is not what is raced: node 2 has it long before the block
      const stalls0 = stalls(n2);
      process.kill(n2.child.pid, 'SIGUSR2'); // node 2's worker 0 blocks for STALL_MS
      for (const t = Date.now(); stalls(n2) === stalls0; await sleep(10)) assert.ok(Date.now() - t < 5000, 'node 2 never blocked');
      const t0 = Date.now();
      const onW1 = await Promise.all(owners.map(({ o }) => within(o.echo().then(() => true), 300)));
      const w1 = owners[onW1.findIndex(Boolean)];
      let joined = null;
      if (w1 && Date.now() - t0 < STALL_MS / 2) // answered: the join's delta is in node 2's subscriber socket
        joined = await a.request({ cmd: 'conv', op: 'add', convMessage: { cid: w1.cid, m: [x] } });
      if (!joined || Date.now() - t0 > STALL_MS - 500) { // all on worker 0, or too slow to be inside the block: again
        await sleep(STALL_MS);
        for (const { o } of owners) await o.close();
        await a.close();
        continue;
      }
      assert.equal(joined.op, 'added', JSON.stringify(joined));
      const left = a.next((c) => c.cmd === 'conv' && c.op === 'left' && c.convMessage?.cid === w1.cid, STALL_MS + 5000);
      const blocked = await w1.o.request({ cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: w1.cid, toPids: [x] } }, STALL_MS + 5000);
      assert.equal(blocked.op, 'blocked', JSON.stringify(blocked));
      await left;
      for (const { o } of owners) await o.close();
      await a.close();
      done = true;
    }
    assert.ok(done, 'no connection of node 2 landed on its worker 1 in time in 5 attempts');
  });
});

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
// Held open deterministically (tests/lib/home-blocked.mjs): node 2's home worker is blocked
// while the join is answered on node 1; the block is sent by a room owner whose connection
// node 2's worker 1 serves.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { whileHomeBlocked } from '../lib/home-blocked.mjs';
import { closeAll, session, startConv, uid } from '../lib/proto-client.mjs';
import { startPg } from '../lib/pg.mjs';
import { startRedis } from '../lib/redis.mjs';
import { startNodes } from '../lib/server.mjs';
import { rawHttp } from '../lib/raw-http.mjs';

const STALL_MS = 2000;

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
    const x = uid('blocked');
    const a = await session(n1, x); // its login is not what is raced: node 2 has it long before the block
    // the candidates: room owners on node 2, each with a room of its own
    const owners = {
      open: async () => {
        const o = await session(n2, uid('owner'));
        return { o, cid: (await startConv(o, [], { transient: true, n: 'block-fence' })).cid };
      },
      probe: ({ o }) => o.echo(),
      close: ({ o }) => o.close(),
    };
    await whileHomeBlocked(n2, STALL_MS, owners, async (w1, inside) => {
      // answered: the join's delta is in node 2's subscriber socket
      const joined = await a.request({ cmd: 'conv', op: 'add', convMessage: { cid: w1.cid, m: [x] } });
      assert.equal(joined.op, 'added', JSON.stringify(joined));
      if (!inside()) return false;
      const left = a.next((c) => c.cmd === 'conv' && c.op === 'left' && c.convMessage?.cid === w1.cid, STALL_MS + 5000);
      const blocked = await w1.o.request({ cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: w1.cid, toPids: [x] } }, STALL_MS + 5000);
      assert.equal(blocked.op, 'blocked', JSON.stringify(blocked));
      await left;
      return true;
    });
    await a.close();
  });

  // The app's block (REST POST /1.2/rtm/chatrooms/:cid/blacklists, rest_block_add) takes the
  // same path (conv_block_apply → im_room_kick → bus_room_nodes) and so waits for the same
  // fence (rest_presence_fence): asked of node 2 on a connection its worker 1 serves.
  test('a member whose join node 1 answered, blocked by the app over REST on node 2 before its home worker read the join, is pushed `left`', async () => {
    const [n1, n2] = nodes;
    const x = uid('rblocked');
    const a = await session(n1, x);
    const owner = await session(n1, uid('rowner'));
    const master = { 'X-LC-Id': n2.appId, 'X-LC-Key': `${n2.masterKey},master`, 'Content-Type': 'application/json' };
    const httpConns = {
      n: 8,
      open: async () => {
        const h = await rawHttp(n2.port);
        assert.equal((await h.request('GET', '/health')).status, 200);
        return h;
      },
      probe: (h) => h.request('GET', '/health'),
      close: (h) => h.close(),
    };
    await whileHomeBlocked(n2, STALL_MS, httpConns, async (w1, inside) => {
      // a room of its own each attempt (x may be blocked from the last one); node 2 reads it
      // from the shared store
      const { cid } = await startConv(owner, [], { transient: true, n: 'rest-block-fence' });
      // answered: the join's delta is in node 2's subscriber socket
      const joined = await a.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [x] } });
      assert.equal(joined.op, 'added', JSON.stringify(joined));
      if (!inside()) return false;
      const left = a.next((c) => c.cmd === 'conv' && c.op === 'left' && c.convMessage?.cid === cid, STALL_MS + 5000);
      const r = await w1.request('POST', `/1.2/rtm/chatrooms/${cid}/blacklists`, master, JSON.stringify({ client_ids: [x] }));
      assert.equal(r.status, 200, JSON.stringify(r));
      await left;
      return true;
    });
    await owner.close();
    await a.close();
  });
});

// The app's REST calls that read the other nodes' presence, asked of node 2 the moment node 1
// answered a login or a chat-room join. node 1's answer waits until Redis has the delta, so
// it is in node 2's subscriber socket by then (docs/cluster.md, "The window, closed"), but
// node 2 applies it only when its home worker reads that socket: a request that answers
// from the replica must first wait for what the subscriber holds (the presence fence, as
// session query and single sign-on do).
// - the app's kick (rest_kick, im_session_kick_app): it sends the client's sessions on the
//   other nodes their kick; unfenced it found the client nowhere, answered 200, and the
//   session on node 1 was never ended — the kicked client stayed connected
//   (presence-window's 4115 test met this once under load: no session/closed within 5 s);
// - check-online, a chat room's online count and REST stats (rest_presence_fence):
//   unfenced they did not list the client, counted the room one short, or left the client
//   out of online_user_count.
//
// Held open deterministically (tests/lib/home-blocked.mjs): node 2's home worker is blocked
// while the login is answered on node 1, and the request goes on a keep-alive HTTP
// connection node 2's worker 1 serves.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { closeAll, session, startConv, uid } from '../lib/proto-client.mjs';
import { startPg } from '../lib/pg.mjs';
import { rawHttp } from '../lib/raw-http.mjs';
import { startRedis } from '../lib/redis.mjs';
import { startNodes } from '../lib/server.mjs';
import { whileHomeBlocked } from '../lib/home-blocked.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const STALL_MS = 2000;

async function fences(s) {
  const res = await fetch(`${s.httpUrl}/metrics`, { headers: { 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master` } });
  return Number(/^tern_bus_fences_total (\d+)$/m.exec(await res.text())?.[1]);
}

// The candidates for worker 1: keep-alive HTTP connections, each accepted (a /health
// answered) before the block, probed with /health during it.
const httpConns = (s) => ({
  n: 8,
  open: async () => {
    const h = await rawHttp(s.port);
    assert.equal((await h.request('GET', '/health')).status, 200);
    return h;
  },
  probe: (h) => h.request('GET', '/health'),
  close: (h) => h.close(),
});

const master = (s) => ({ 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master`, 'Content-Type': 'application/json' });

describe('cluster: the app\'s REST calls wait for the presence the subscriber already holds', () => {
  let pg, redis;
  let nodes;
  before(async () => {
    pg = startPg(); // one store: node 2 knows node 1's chat room
    redis = await startRedis();
    nodes = await startNodes(2, redis, { env: { TERN_STORE: pg.createDatabase() }, envs: [{}, { TERN_WORKERS: '2', TERN_TEST_STALL_HOME_MS: String(STALL_MS) }] });
  });
  after(async () => {
    for (const s of nodes || []) await closeAll(s);
    await Promise.all((nodes || []).map((s) => s.stop()));
    if (redis) await redis.stop();
    pg?.stop();
  });

  test('a kick asked of node 2 while its home worker has not yet read the login on node 1 ends that session (4115)', async () => {
    const [n1, n2] = nodes;
    const f0 = await fences(n2); // not while blocked: the request may go to worker 0
    await whileHomeBlocked(n2, STALL_MS, httpConns(n2), async (w1, inside) => {
      const x = uid('kicked');
      const a = await session(n1, x); // answered: Redis has its delta, in node 2's subscriber socket
      if (!inside()) {
        await a.close();
        return false;
      }
      const closed = a.next((c) => c.cmd === 'session' && c.op === 'closed', STALL_MS + 5000);
      const r = await w1.request('POST', `/1.2/rtm/clients/${x}/kick`, master(n2), '{"reason":"fence"}');
      assert.equal(r.status, 200, JSON.stringify(r));
      const c = await closed;
      assert.equal(c.sessionMessage?.code, 4115, JSON.stringify(c));
      assert.ok((await fences(n2)) > f0, 'node 2 answered the kick without a presence fence');
      await a.close();
      return true;
    });
  });

  test('check-online asked of node 2 while its home worker has not yet read the login on node 1 lists the client', async () => {
    const [n1, n2] = nodes;
    await whileHomeBlocked(n2, STALL_MS, httpConns(n2), async (w1, inside) => {
      const x = uid('online');
      const a = await session(n1, x);
      if (!inside()) {
        await a.close();
        return false;
      }
      const r = await w1.request('POST', '/1.2/rtm/clients/check-online', master(n2), JSON.stringify({ client_ids: [x] }));
      assert.equal(r.status, 200, JSON.stringify(r));
      assert.deepEqual(JSON.parse(r.body).results, [x], 'node 2 did not list a client node 1 had answered "opened"');
      await a.close();
      return true;
    });
  });

  test('REST stats asked of node 2 while its home worker has not yet read a login on node 1 counts the client', async () => {
    const [n1, n2] = nodes;
    const stats = async (s) => (await (await fetch(`${s.httpUrl}/1.2/rtm/stats`, { headers: master(s) })).json()).result.online_user_count;
    // settled: both nodes count the same clients (the earlier tests' logouts applied everywhere)
    let base;
    for (const t = Date.now(); (base = await stats(n2)) !== (await stats(n1)); await sleep(20)) assert.ok(Date.now() - t < 5000, 'the nodes never agreed on the clients online');
    await whileHomeBlocked(n2, STALL_MS, httpConns(n2), async (w1, inside) => {
      const a = await session(n1, uid('counted')); // answered: its delta is in node 2's subscriber socket
      if (!inside()) {
        await a.close();
        return false;
      }
      const r = await w1.request('GET', '/1.2/rtm/stats', master(n2));
      assert.equal(r.status, 200, JSON.stringify(r));
      assert.equal(JSON.parse(r.body).result.online_user_count, base + 1, 'node 2 did not count a client node 1 had answered "opened"');
      await a.close();
      return true;
    });
  });

  test('a chat room\'s online count asked of node 2 while its home worker has not yet read a join on node 1 counts it', async () => {
    const [n1, n2] = nodes;
    const owner = await session(n1, uid('owner'));
    const { cid } = await startConv(owner, [], { transient: true, n: 'count-fence' });
    const path = `/1.2/rtm/chatrooms/${cid}/members/online-count`;
    // node 2 has the room cached and counts its creator (on node 1)
    const count = async () => (await (await fetch(`${n2.httpUrl}${path}`, { headers: master(n2) })).json()).result;
    for (const t = Date.now(); (await count()) !== 1; await sleep(20)) assert.ok(Date.now() - t < 5000, 'node 2 never counted the room\'s creator');
    const base = 1;
    await whileHomeBlocked(n2, STALL_MS, httpConns(n2), async (w1, inside) => {
      const a = await session(n1, uid('joiner'));
      const joined = await a.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [a.peer] } }); // answered: the delta is in Redis
      assert.equal(joined.op, 'added', JSON.stringify(joined));
      if (!inside()) {
        await a.close();
        return false;
      }
      const r = await w1.request('GET', path, master(n2));
      assert.equal(r.status, 200, JSON.stringify(r));
      assert.equal(JSON.parse(r.body).result, base + 1, 'node 2 did not count a member node 1 had answered "added"');
      await a.close();
      return true;
    });
  });
});

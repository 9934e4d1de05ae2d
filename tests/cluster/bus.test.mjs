// Several ternd nodes on one Redis bus act as one service (issue #14 §2–3, docs/cluster.md):
// a real redis-server (tests/lib/redis.mjs) and 2–3 real ternd nodes (startNodes). Until the
// PostgreSQL store lands each node has its own SQLite, so these test what needs no shared
// history: live delivery, presence, kicks, revocations, rate limits, routing, failures.
//
// Barriers, not sleeps: a node learns of a session on another node through the bus, so a
// test first waits until the node it acts on sees that session (session query or
// check-online answering it), then acts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { closeAll, connect, login, session, startConv, sendMsg, uid } from '../lib/proto-client.mjs';
import { startRedis } from '../lib/redis.mjs';
import { startNodes, startServer, waitNodes } from '../lib/server.mjs';
import { scrape, value } from '../lib/metrics.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function rest(server, method, path, body, { master = true, type = 'application/json' } = {}) {
  const res = await fetch(`${server.httpUrl}${path}`, {
    method,
    headers: {
      'X-LC-Id': server.appId,
      'X-LC-Key': master ? `${server.masterKey},master` : server.appKey,
      'Content-Type': type,
    },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  return { status: res.status, body: json };
}

// Online ids among `ids`, as `server` sees them (REST check-online: takes no rate-limit token).
async function onlineAt(server, ids) {
  const r = await rest(server, 'POST', '/1.2/rtm/clients/check-online', { client_ids: ids });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.results;
}

// Waits until `server` sees every id of `ids` online (want true) or none of them (false);
// returns how long that took.
async function waitOnline(server, ids, want = true, timeoutMs = 8000) {
  const t0 = Date.now();
  for (;;) {
    const on = await onlineAt(server, ids);
    if (want ? on.length === ids.length : on.length === 0) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) assert.fail(`${server.port} never saw ${ids} ${want ? 'online' : 'offline'} (sees ${on})`);
    await sleep(20);
  }
}

// The same conversation (same id) on each node: each node has its own store until the
// PostgreSQL backend lands, so a conversation one node's clients act on must exist there.
async function importConv(nodes, rec) {
  for (const s of nodes) {
    const r = await rest(s, 'POST', '/1.2/import/records', JSON.stringify({ type: 'conversation', ...rec }),
      { type: 'application/x-ndjson' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.applied, 1, JSON.stringify(r.body));
  }
}

const hexId = () => [...Array(24)].map(() => '0123456789abcdef'[Math.floor(Math.random() * 16)]).join('');

describe('cluster: three nodes on one bus', () => {
  let redis;
  let nodes;
  before(async () => {
    redis = await startRedis();
    nodes = await startNodes(3, redis, { env: { TERN_MAX_CLIENT_RATE: '10' } });
  });
  after(async () => {
    for (const s of nodes || []) await closeAll(s);
    await Promise.all((nodes || []).map((s) => s.stop()));
    if (redis) await redis.stop();
  });

  test('a message from node 1 reaches its recipient on node 2, once', async () => {
    const [n1, n2] = nodes;
    const A = uid('a'), B = uid('b');
    const b = await session(n2, B);
    const a = await session(n1, A);
    await waitOnline(n1, [B]);
    const conv = await startConv(a, [B]);
    await b.nextCmd('conv', 'joined');
    const ack = await sendMsg(a, conv.cid, 'hello across');
    const d = await b.nextCmd('direct');
    assert.equal(d.peerId, B);
    assert.equal(d.directMessage.msg, 'hello across');
    assert.equal(d.directMessage.cid, conv.cid);
    assert.equal(d.directMessage.fromPeerId, A);
    assert.equal(d.directMessage.id, ack.uid);
    const mark = b.mark();
    assert.deepEqual((await b.quiet(mark)).filter((c) => c.cmd === 'direct'), [], 'delivered twice');
  });

  test('group fan-out over three nodes: each recipient gets each message once, in order, one publish per node', async () => {
    const [n1, n2, n3] = nodes;
    const A = uid('a'), B = uid('b'), C = uid('c'), E = uid('e'), D = uid('d');
    const b = await session(n2, B);
    const c = await session(n3, C);
    const e = await session(n3, E);
    const d = await session(n1, D);
    const a = await session(n1, A);
    await waitOnline(n1, [B, C, E]);
    const conv = await startConv(a, [B, C, E, D]);
    for (const x of [b, c, e, d]) await x.nextCmd('conv', 'joined');
    const before = value(await scrape(n1), 'tern_bus_messages_total{dir="out"}');
    const N = 15; // with its conv/start, within max_client_rate's burst of 20 (this suite runs at 10/s)
    const sent = [];
    for (let i = 0; i < N; i++) sent.push(a.request({ cmd: 'direct', directMessage: { cid: conv.cid, msg: `m${i}` } }));
    const acks = await Promise.all(sent);
    for (const r of acks) assert.equal(r.cmd, 'ack');
    for (const [x, who] of [[b, B], [c, C], [e, E], [d, D]]) {
      const got = [];
      for (let i = 0; i < N; i++) got.push((await x.nextCmd('direct')).directMessage.msg);
      assert.deepEqual(got, acks.map((_, i) => `m${i}`), `${who}: order`);
      assert.deepEqual((await x.quiet(x.mark())).filter((k) => k.cmd === 'direct'), [], `${who}: a message twice`);
    }
    // node 2 (B) and node 3 (C and E): two publishes per message, not one per recipient
    const after = value(await scrape(n1), 'tern_bus_messages_total{dir="out"}');
    assert.equal(after - before, 2 * N);
  });

  test('transient messages cross nodes', async () => {
    const [n1, n2] = nodes;
    const A = uid('a'), B = uid('b');
    const b = await session(n2, B);
    const a = await session(n1, A);
    await waitOnline(n1, [B]);
    const conv = await startConv(a, [B]);
    await b.nextCmd('conv', 'joined');
    a.send({ cmd: 'direct', i: null, directMessage: { cid: conv.cid, msg: 'typing…', transient: true } });
    const d = await b.nextCmd('direct');
    assert.equal(d.directMessage.msg, 'typing…');
    assert.equal(d.directMessage.transient, true);
  });

  test('a chat room spans nodes: messages reach every node, the online count and members are the cluster\'s', async () => {
    const cid = hexId();
    const owner = uid('owner');
    await importConv(nodes, { objectId: cid, name: 'lobby', tr: true, c: owner });
    const ids = [uid('x'), uid('y'), uid('z')];
    const cs = [];
    for (let i = 0; i < 3; i++) {
      const c = await session(nodes[i], ids[i]);
      const r = await c.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [ids[i]] } });
      assert.equal(r.op, 'added', JSON.stringify(r));
      cs.push(c);
    }
    // every node counts the three (its own and the others' through the bus)
    for (const s of nodes) {
      const t0 = Date.now();
      for (;;) {
        const r = await rest(s, 'GET', `/1.2/rtm/chatrooms/${cid}/members/online-count`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        if (r.body.result === 3) break;
        if (Date.now() - t0 > 5000) assert.fail(`node ${s.port} counts ${r.body.result}, not 3`);
        await sleep(20);
      }
    }
    const r = await cs[0].request({ cmd: 'conv', op: 'count', convMessage: { cid } });
    assert.equal(r.convMessage.count, 3, JSON.stringify(r));
    // the online members, as node 1 lists them: its own and the others'
    const members = async (c) => (await c.request({ cmd: 'conv', op: 'members', convMessage: { cid, limit: 50 } })).convMessage.m || [];
    assert.deepEqual((await members(cs[0])).sort(), [...ids].sort());
    await sendMsg(cs[0], cid, 'to the room');
    for (const c of cs.slice(1)) assert.equal((await c.nextCmd('direct')).directMessage.msg, 'to the room');
    assert.deepEqual((await cs[0].quiet(cs[0].mark())).filter((k) => k.cmd === 'direct'), [], 'the sender got its own');
    // the room's owner, on node 1, blocks the client on node 2: out of the room there (§3.17)
    const o = await session(nodes[0], owner);
    const b = await o.request({ cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: cid, toPids: [ids[1]] } });
    assert.equal(b.op, 'blocked', JSON.stringify(b));
    for (const s of nodes) {
      const t0 = Date.now();
      while ((await rest(s, 'GET', `/1.2/rtm/chatrooms/${cid}/members/online-count`)).body.result !== 2) {
        if (Date.now() - t0 > 5000) assert.fail(`node ${s.port} still counts the blocked client`);
        await sleep(20);
      }
    }
    assert.deepEqual((await members(cs[0])).sort(), [ids[0], ids[2]].sort());
    const m = cs[1].mark();
    await sendMsg(cs[0], cid, 'after the block');
    assert.equal((await cs[2].nextCmd('direct')).directMessage.msg, 'after the block');
    assert.deepEqual((await cs[1].quiet(m)).filter((k) => k.cmd === 'direct'), [], 'a blocked client still got the room');
  });

  test('single sign-on across nodes: the same tag on node 2 closes the session on node 1 (4111); its token is dead everywhere', async () => {
    const [n1, n2, n3] = nodes;
    const A = uid('sso');
    const a1 = await connect(n1);
    const opened = await login(a1, A, { tag: 'mobile' });
    const st = opened.sessionMessage.st;
    assert.ok(st);
    await waitOnline(n2, [A]);
    const a2 = await connect(n2);
    await login(a2, A, { tag: 'mobile' });
    const closed = await a1.nextCmd('session', 'closed');
    assert.equal(closed.sessionMessage.code, 4111);
    // the displaced device's token, on a third node: the login that displaced it holds the
    // tag, so it hears 4111 again (as on one node), not 4112
    await waitOnline(n3, [A]);
    const a3 = await connect(n3);
    const t0 = Date.now();
    let r;
    for (;;) { // the revocation travels as a broadcast: wait until node 3 has it
      r = await a3.request({ cmd: 'session', op: 'open', appId: n3.appId, peerId: A, sessionMessage: { r: true, st } });
      if (r.op !== 'opened' || Date.now() - t0 > 5000) break;
      await a3.request({ cmd: 'session', op: 'close', peerId: A });
      await sleep(50);
    }
    assert.equal(r.cmd, 'session', JSON.stringify(r));
    assert.equal(r.op, 'closed', JSON.stringify(r));
    assert.equal(r.sessionMessage.code, 4111, JSON.stringify(r));
  });

  test('session query answers across nodes, and forgets a client that logged out', async () => {
    const [n1, n2] = nodes;
    const A = uid('q'), B = uid('q'), nobody = uid('nobody');
    const b = await session(n2, B);
    const a = await session(n1, A);
    await waitOnline(n1, [B]);
    const r = await a.request({ cmd: 'session', op: 'query', sessionMessage: { sessionPeerIds: [B, nobody] } });
    assert.deepEqual(r.sessionMessage.onlineSessionPeerIds, [B]);
    await b.request({ cmd: 'session', op: 'close' });
    await waitOnline(n1, [B], false);
    const r2 = await a.request({ cmd: 'session', op: 'query', sessionMessage: { sessionPeerIds: [B] } });
    assert.equal((r2.sessionMessage.onlineSessionPeerIds || []).length, 0);
  });

  test('REST stats count the clients online on every node, each once', async () => {
    const [n1, n2, n3] = nodes;
    const stats = async (s) => (await rest(s, 'GET', '/1.2/rtm/stats')).body.result.online_user_count;
    await Promise.all(nodes.map((s) => closeAll(s)));
    for (const s of nodes) await waitOnlineCount(s, 0);
    const A = uid('st'), B = uid('st');
    await session(n1, A);
    await session(n2, B);
    await session(n3, B); // B on two nodes counts once
    for (const s of nodes) await waitOnline(s, [A, B]);
    for (const s of nodes) assert.equal(await stats(s), 2);
    async function waitOnlineCount(s, want) {
      const t0 = Date.now();
      while (await stats(s) !== want) {
        if (Date.now() - t0 > 5000) assert.fail(`node ${s.port} counts ${await stats(s)} online, not ${want}`);
        await sleep(20);
      }
    }
  });

  test('the app kicks a client through node 2: its session on node 1 closes (4115) and its token fails on node 3', async () => {
    const [n1, n2, n3] = nodes;
    const A = uid('kick');
    const a = await connect(n1);
    const st = (await login(a, A)).sessionMessage.st;
    await waitOnline(n2, [A]);
    const r = await rest(n2, 'POST', `/1.2/rtm/clients/${A}/kick`, { reason: 'bye' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const closed = await a.nextCmd('session', 'closed');
    assert.equal(closed.sessionMessage.code, 4115);
    const a3 = await connect(n3);
    const t0 = Date.now();
    let rep;
    for (;;) {
      rep = await a3.request({ cmd: 'session', op: 'open', appId: n3.appId, peerId: A, sessionMessage: { r: true, st } });
      if (rep.cmd === 'error' || Date.now() - t0 > 5000) break;
      await a3.request({ cmd: 'session', op: 'close', peerId: A });
      await sleep(50);
    }
    assert.equal(rep.cmd, 'error', JSON.stringify(rep));
    assert.equal(rep.errorMessage.code, 4112, JSON.stringify(rep));
  });

  test('max_client_rate is one budget for a client on two nodes', async () => {
    const [n1, n2] = nodes;
    const A = uid('rate');
    const a1 = await session(n1, A);
    const a2 = await session(n2, A);
    // each node must know the other holds A before the burst
    const seen = async (s) => {
      const t0 = Date.now();
      while (value(await scrape(s), 'tern_bus_remote_clients') < 1 || !(await onlineAt(s, [A])).length) {
        if (Date.now() - t0 > 5000) assert.fail('the nodes never saw each other\'s session');
        await sleep(20);
      }
    };
    await seen(n1);
    await seen(n2);
    // 60 commands on each node at once; rate 10/s with a burst of 2 s: a client allowed
    // 20 by each node separately would get 40 through, one budget split two ways ~20
    const burst = (c) => Promise.all(Array.from({ length: 60 }, () =>
      c.request({ cmd: 'session', op: 'query', sessionMessage: { sessionPeerIds: [A] } })));
    const [r1, r2] = await Promise.all([burst(a1), burst(a2)]);
    const ok = [...r1, ...r2].filter((r) => r.cmd === 'session').length;
    const refused = [...r1, ...r2].filter((r) => r.cmd === 'error' && r.errorMessage.code === 4116).length;
    assert.equal(ok + refused, 120);
    assert.ok(ok >= 18 && ok <= 26, `accepted ${ok} of 120 (a shared budget lets about 20 through)`);
  });
});

describe('cluster: routing and node failures', () => {
  let redis;
  let nodes;
  before(async () => {
    redis = await startRedis();
    nodes = await startNodes(3, redis, {
      envs: [1, 2, 3].map((i) => ({ TERN_PUBLIC_URL: `wss://node${i}.example.test/` })),
    });
  });
  after(async () => {
    for (const s of nodes || []) await closeAll(s);
    await Promise.all((nodes || []).map((s) => s.stop()));
    if (redis) await redis.stop();
  });

  const route = async (s) => (await (await fetch(`${s.httpUrl}/v1/route?appId=${s.appId}`)).json()).server;

  test('/v1/route answers the least-loaded live node; a node killed with SIGKILL is dropped within seconds, SIGTERM at once (its clients told goaway)', async () => {
    const [n1, n2, n3] = nodes;
    // loads: node1 2 sessions, node2 1, node3 0
    const ids = [uid('r'), uid('r'), uid('r')];
    await session(n1, ids[0]);
    await session(n1, ids[1]);
    const y = await session(n2, ids[2]);
    const X = uid('onnode3');
    await waitOnline(n3, ids); // node3 has heard of them
    // node 3 is the least loaded until X logs in there; the heartbeat carries the load (1 s)
    const t0 = Date.now();
    while ((await route(n1)) !== 'wss://node3.example.test/') {
      if (Date.now() - t0 > 5000) assert.fail(`route never named node3: ${await route(n1)}`);
      await sleep(50);
    }
    const x = await session(n3, X);
    await waitOnline(n1, [X]);
    // SIGKILL node 3: no goodbye; its heartbeat lapses (3 s TTL, polled every second)
    await n3.kill();
    const killedAt = Date.now();
    await waitOnline(n1, [X], false, 10000);
    const gone = Date.now() - killedAt;
    assert.ok(gone <= 6000, `a SIGKILLed node's sessions went after ${gone} ms (bound: 6 s)`);
    await waitNodes(n1, 2, 2000);
    await waitNodes(n2, 2, Math.max(0, 6000 - (Date.now() - killedAt))); // node 2 polls on its own second
    assert.notEqual(await route(n1), 'wss://node3.example.test/');
    assert.notEqual(await route(n2), 'wss://node3.example.test/');
    // its client comes back on another node with the token node 3 gave it
    const st = x.openReply.sessionMessage.st;
    const back = await connect(n1);
    const r = await back.request({ cmd: 'session', op: 'open', appId: n1.appId, peerId: X, sessionMessage: { r: true, st } });
    assert.equal(r.op, 'opened', JSON.stringify(r));
    await waitOnline(n2, [X]);
    // SIGTERM node 2: it leaves the bus, tells its clients to go elsewhere (goaway, §3.21)
    // and closes them (1001); node 1 drops it (and its session) at once
    const told = y.nextCmd('goaway');
    await n2.stop();
    assert.equal((await told).cmd, 'goaway');
    assert.equal((await y.closed).code, 1001);
    const t1 = Date.now();
    await waitOnline(n1, [ids[2]], false, 3000);
    await waitNodes(n1, 1, 3000);
    const took = Date.now() - t1;
    assert.ok(took < 1000, `a stopped node's sessions went after ${took} ms`);
    assert.equal(await route(n1), 'wss://node1.example.test/');
  });
});

describe('cluster: Redis stopped and started again', () => {
  let redis;
  let nodes;
  before(async () => {
    redis = await startRedis();
    // node 2's subscriber is back 2 s after its other connections, as when its reconnect
    // came a backoff later (CI, on TSan): node 2 must not be known again before it hears
    // its channel, or node 1's first sends to it go nowhere
    nodes = await startNodes(2, redis, { envs: [{}, { TERN_TEST_SUB_UP_DELAY_MS: '2000' }] });
  });
  after(async () => {
    for (const s of nodes || []) await closeAll(s);
    await Promise.all((nodes || []).map((s) => s.stop()));
    if (redis) await redis.stop();
  });

  test('clients stay connected and local delivery goes on; cross-node delivery comes back by itself', async () => {
    const [n1, n2] = nodes;
    const A = uid('a'), B = uid('b'), L = uid('local');
    const b = await session(n2, B);
    const l = await session(n1, L);
    const a = await session(n1, A);
    await waitOnline(n1, [B]);
    const conv = await startConv(a, [B, L]);
    await b.nextCmd('conv', 'joined');
    await l.nextCmd('conv', 'joined');
    await sendMsg(a, conv.cid, 'before');
    assert.equal((await b.nextCmd('direct')).directMessage.msg, 'before');
    assert.equal((await l.nextCmd('direct')).directMessage.msg, 'before');

    await redis.stop({ keepDir: true });
    for (const s of nodes) {
      const t0 = Date.now();
      while (value(await scrape(s), 'tern_bus_up') !== 0) {
        if (Date.now() - t0 > 5000) assert.fail('tern_bus_up stayed 1 with Redis stopped');
        await sleep(50);
      }
    }
    const errs = value(await scrape(n1), 'tern_bus_errors_total');
    await sendMsg(a, conv.cid, 'during'); // stored and acked; the local member gets it
    assert.equal((await l.nextCmd('direct')).directMessage.msg, 'during');
    assert.ok(value(await scrape(n1), 'tern_bus_errors_total') > errs, 'the failed cross-node send is counted');
    for (const c of [a, b, l]) await c.echo(); // nobody was disconnected

    await redis.start();
    for (const s of nodes) {
      const t0 = Date.now();
      while (value(await scrape(s), 'tern_bus_up') !== 1) {
        if (Date.now() - t0 > 10000) assert.fail('no reconnect within 10 s of Redis coming back');
        await sleep(50);
      }
    }
    await waitNodes(n1, 2, 10000);
    await waitOnline(n1, [B], true, 10000); // the replica was taken again
    assert.ok(value(await scrape(n1), 'tern_bus_reconnects_total') >= 1);
    await sendMsg(a, conv.cid, 'after');
    const got = await b.nextCmd('direct');
    assert.equal(got.directMessage.msg, 'after');
    assert.equal((await l.nextCmd('direct')).directMessage.msg, 'after');
  });

  // Redis drops a subscriber alone when its output buffer passes the limit (client-output-
  // buffer-limit pubsub); the node stays registered and reconnects it. What other nodes
  // publish to its channel meanwhile nobody hears: stored and acked, not pushed. The sender
  // counts each such delivery (PUBLISH answers 0 subscribers): tern_bus_unheard_total, and
  // records its recipients for that node in Redis (P unheard:<node>); the node drains the
  // set when its subscriber is back (or hears the sender's notice) and tells those clients'
  // sessions goaway, so that their login brings what they missed. Only them: a client of
  // the node that was sent nothing stays undisturbed.
  // Node 2's subscriber is used 2 s after it reconnects: the window stays open that long.
  test('a subscriber Redis drops alone: a delivery published while it is off its channel is counted unheard, its recipient there is told goaway (no one else) and its login shows it; live delivery comes back by itself', async () => {
    const [n1, n2] = nodes;
    const A = uid('a'), B = uid('b'), C = uid('c');
    const b = await session(n2, B);
    const c = await session(n2, C); // on node 2 too, sent nothing
    const a = await session(n1, A);
    await waitOnline(n1, [B]);
    const conv = await startConv(a, [B]);
    await b.nextCmd('conv', 'joined');
    await sendMsg(a, conv.cid, 'before');
    assert.equal((await b.nextCmd('direct')).directMessage.msg, 'before');
    const u0 = value(await scrape(n1), 'tern_bus_unheard_total');
    const g0 = value(await scrape(n2), 'tern_bus_unheard_goaway_total');
    const cMark = c.mark();

    redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub'); // both nodes' subscribers; node 2's is back last
    const ack = await sendMsg(a, conv.cid, 'unheard'); // stored and acked
    assert.ok(ack.uid, JSON.stringify(ack));
    const t0 = Date.now();
    while (value(await scrape(n1), 'tern_bus_unheard_total') <= u0) {
      if (Date.now() - t0 > 5000) assert.fail('the delivery nobody heard was not counted');
      await sleep(20);
    }
    assert.equal(value(await scrape(n1), 'tern_bus_up'), 1, 'node 1 stayed up');
    // node 2, its subscriber back, finds B recorded and tells B's session goaway; the
    // message itself was never pushed
    const g = await b.next((p) => p.cmd === 'goaway' || p.cmd === 'direct', 10000);
    assert.equal(g.cmd, 'goaway', `expected goaway, got ${JSON.stringify(g)}`);
    // node 2 hears its channel again (its subscriber back), and deliveries reach B live
    for (const t1 = Date.now(); redis.cli('PUBSUB', 'NUMSUB', 'tern0:to:node2').split('\n')[1] !== '1';) {
      if (Date.now() - t1 > 10000) assert.fail('node 2 never subscribed again');
      await sleep(50);
    }
    assert.equal(value(await scrape(n2), 'tern_bus_unheard_goaway_total'), g0 + 1, 'one session told: B\'s');
    assert.equal(redis.cli('EXISTS', 'tern0:unheard:node2'), '0', 'the set was drained');
    // B reconnects (a second login, here on node 1, whose store holds the conversation):
    // the unread counts at its login name the message it missed
    const b2 = await session(n1, B);
    const u = await b2.nextCmd('unread');
    const uc = u.unreadMessage.convs.find((x) => x.cid === conv.cid);
    assert.ok(uc, JSON.stringify(u));
    assert.equal(uc.unread, 2); // neither was marked read
    assert.equal(uc.mid, ack.uid, 'the newest is the one B missed');
    await sendMsg(a, conv.cid, 'after');
    await b.next((x) => x.cmd === 'direct' && x.directMessage?.msg === 'after', 5000);
    // C, sent nothing, was told nothing
    const cGot = await c.quiet(cMark);
    assert.deepEqual(cGot.filter((x) => x.cmd === 'goaway'), [], JSON.stringify(cGot));
  });

  // The other order: the sender's SADD and its notice land while the node is subscribed
  // again (its subscriber back before the sender had the PUBLISH's 0): the node drains the
  // set when it hears the notice. The sender's MULTI is sent here by hand, as bus_redis.c's
  // record_unheard sends it (raw RESP through redis-cli --pipe: the notice holds a NUL).
  test('a node that hears the notice of a delivery nobody heard drains its set at once and tells those clients goaway, no one else', async () => {
    const [, n2] = nodes;
    const B = uid('b'), C = uid('c');
    const b = await session(n2, B);
    const c = await session(n2, C);
    for (const t1 = Date.now(); redis.cli('PUBSUB', 'NUMSUB', 'tern0:to:node2').split('\n')[1] !== '1';) {
      if (Date.now() - t1 > 10000) assert.fail('node 2 is not subscribed');
      await sleep(50);
    }
    const g0 = value(await scrape(n2), 'tern_bus_unheard_goaway_total');
    const cMark = c.mark();
    const key = 'tern0:unheard:node2';
    const resp = (...args) => Buffer.concat([Buffer.from(`*${args.length}\r\n`),
      ...args.map((a) => { const v = Buffer.from(a); return Buffer.concat([Buffer.from(`$${v.length}\r\n`), v, Buffer.from('\r\n')]); })]);
    execFileSync('redis-cli', ['-p', String(redis.port), '--pipe'], {
      input: Buffer.concat([resp('MULTI'), resp('SADD', key, B), resp('PEXPIRE', key, '300000'),
        resp('PUBLISH', 'tern0:to:node2', Buffer.from('node1\0')), resp('EXEC')]),
    });
    assert.equal((await b.nextCmd('goaway', undefined, 5000)).cmd, 'goaway');
    assert.equal(value(await scrape(n2), 'tern_bus_unheard_goaway_total'), g0 + 1, 'one session told: B\'s');
    assert.equal(redis.cli('EXISTS', key), '0', 'the set was drained');
    const cGot = await c.quiet(cMark);
    assert.deepEqual(cGot.filter((x) => x.cmd === 'goaway'), [], JSON.stringify(cGot));
  });

  // A kick ('K') or a chat-room block ('B') nobody on node 2 heard is not a delivery (no
  // login brings it back): node 1 records the message itself for node 2 (P missed:<node>,
  // a list, beside the unheard set and with the same notice) and node 2, draining it when
  // its subscriber is back, handles each as if heard late (bus_send_kept). Before, the
  // kicked session stayed connected and the blocked member stayed in the room.
  const subscribed = async () => {
    for (const t1 = Date.now(); redis.cli('PUBSUB', 'NUMSUB', 'tern0:to:node2').split('\n')[1] !== '1';) {
      if (Date.now() - t1 > 10000) assert.fail('node 2 is not subscribed');
      await sleep(50);
    }
  };
  const waitUnheard = async (n1, u0) => {
    for (const t0 = Date.now(); value(await scrape(n1), 'tern_bus_unheard_total') <= u0;) {
      if (Date.now() - t0 > 5000) assert.fail('the message nobody heard was not counted');
      await sleep(20);
    }
  };

  test('the app\'s kick asked of node 1 while node 2\'s subscriber is off its channel: the session on node 2 gets its 4115 once the subscriber is back', async () => {
    const [n1, n2] = nodes;
    const X = uid('kicked'), C = uid('c');
    await subscribed();
    const x = await session(n2, X);
    const c = await session(n2, C); // on node 2 too, not kicked
    await waitOnline(n1, [X, C]);
    const u0 = value(await scrape(n1), 'tern_bus_unheard_total');
    const r0 = value(await scrape(n2), 'tern_bus_missed_replayed_total');
    const closed = x.next((p) => p.cmd === 'session' && p.op === 'closed', 15000);
    const cMark = c.mark();

    redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub'); // node 2's subscriber is back 2 s after it reconnects
    // answered at KICK_REMOTE_WAIT_MS (node 2 ends the session only once it has the kick)
    const r = await rest(n1, 'POST', `/1.2/rtm/clients/${X}/kick`, { reason: 'banned' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await waitUnheard(n1, u0);
    const got = await closed;
    assert.equal(got.sessionMessage?.code, 4115, JSON.stringify(got));
    await waitOnline(n1, [X], false);
    assert.equal(value(await scrape(n2), 'tern_bus_missed_replayed_total'), r0 + 1, 'one kick replayed');
    assert.equal(redis.cli('EXISTS', 'tern0:missed:node2'), '0', 'the list was drained');
    await subscribed();
    const cGot = await c.quiet(cMark);
    assert.deepEqual(cGot.filter((p) => p.cmd === 'session' || p.cmd === 'goaway'), [], JSON.stringify(cGot));
    await c.echo(); // still connected
  });

  test('a block from a chat room asked of node 1 over REST while node 2\'s subscriber is off its channel: the member on node 2 is pushed `left` once the subscriber is back, and is out of the room', async () => {
    const [n1, n2] = nodes;
    const cid = hexId();
    await importConv(nodes, { objectId: cid, name: 'missed-block', tr: true, c: uid('owner') });
    const X = uid('blocked'), Y = uid('stays');
    await subscribed();
    const x = await session(n2, X);
    const y = await session(n2, Y); // in the room too, not blocked
    for (const [c, id] of [[x, X], [y, Y]]) {
      const j = await c.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [id] } });
      assert.equal(j.op, 'added', JSON.stringify(j));
    }
    const count = async (s) => (await rest(s, 'GET', `/1.2/rtm/chatrooms/${cid}/members/online-count`)).body.result;
    for (const t0 = Date.now(); (await count(n1)) !== 2;) { // node 1 knows the room's members on node 2
      if (Date.now() - t0 > 5000) assert.fail('node 1 never counted the room\'s two members');
      await sleep(20);
    }
    const u0 = value(await scrape(n1), 'tern_bus_unheard_total');
    const r0 = value(await scrape(n2), 'tern_bus_missed_replayed_total');
    const left = x.next((p) => p.cmd === 'conv' && p.op === 'left' && p.convMessage?.cid === cid, 15000);
    const yMark = y.mark();

    redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
    const r = await rest(n1, 'POST', `/1.2/rtm/chatrooms/${cid}/blacklists`, { client_ids: [X] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await waitUnheard(n1, u0);
    await left;
    assert.equal(value(await scrape(n2), 'tern_bus_missed_replayed_total'), r0 + 1, 'one block replayed');
    assert.equal(redis.cli('EXISTS', 'tern0:missed:node2'), '0', 'the list was drained');
    for (const s of [n2, n1]) { // out of the room on node 2, and node 1 hears of it
      for (const t0 = Date.now(); (await count(s)) !== 1;) {
        if (Date.now() - t0 > 5000) assert.fail(`node ${s.port} still counts the blocked member`);
        await sleep(20);
      }
    }
    await subscribed();
    const yGot = await y.quiet(yMark);
    assert.deepEqual(yGot.filter((p) => p.cmd === 'conv' && p.op === 'left'), [], JSON.stringify(yGot));
  });

  // What the list holds when a node starts was meant for a previous run of it: no other node
  // knows this run's sessions before its first announce. Its kicks name session handles this
  // run hands out again (generations start over), so a stale 4111 could close a new session
  // of the same client: the drains before the first announce drop the list, not replay it.
  test('kicks a previous run of a node left in its list are dropped at its start, not replayed', async () => {
    const key = 'tern0:missed:node9';
    const X = uid('rerun');
    const str = (v) => { const b = Buffer.from(v); const l = Buffer.alloc(4); l.writeUInt32BE(b.length); return Buffer.concat([l, b]); };
    const handle = Buffer.alloc(8);
    handle.writeBigUInt64BE(1n << 32n); // worker 0's first session handle, in any run
    const code = Buffer.alloc(4);
    code.writeUInt32BE(4111);
    const kick = Buffer.concat([Buffer.from('K'), str('node9'), handle, str(X), code, str('logged in elsewhere')]);
    const resp = (...args) => Buffer.concat([Buffer.from(`*${args.length}\r\n`),
      ...args.map((a) => { const v = Buffer.from(a); return Buffer.concat([Buffer.from(`$${v.length}\r\n`), v, Buffer.from('\r\n')]); })]);
    execFileSync('redis-cli', ['-p', String(redis.port), '--pipe'], {
      input: Buffer.concat([resp('RPUSH', key, kick), resp('PEXPIRE', key, '300000')]),
    });
    assert.equal(redis.cli('LLEN', key), '1');
    const n9 = await startServer({ env: { TERN_BUS: redis.url, TERN_NODE_ID: 'node9', TERN_WORKERS: '1' } });
    try {
      await waitNodes(n9, 3, 10000);
      for (const t0 = Date.now(); redis.cli('EXISTS', key) !== '0';) {
        if (Date.now() - t0 > 5000) assert.fail('node 9 never drained its list');
        await sleep(50);
      }
      assert.equal(value(await scrape(n9), 'tern_bus_missed_replayed_total'), 0, 'a previous run\'s kick was replayed');
      assert.match(n9.stderr(), /1 kept message\(s\) a previous run of this node did not hear dropped/);
      const x = await session(n9, X);
      const m = x.mark();
      await sleep(300);
      assert.deepEqual((await x.quiet(m)).filter((p) => p.cmd === 'session'), []);
      await x.close();
    } finally {
      await n9.stop();
    }
  });
});

describe('cluster: signature nonces are single-use across nodes', () => {
  let redis;
  let nodes;
  before(async () => {
    redis = await startRedis();
    nodes = await startNodes(2, redis, { env: { TERN_SIGN_LOGIN: '1' } });
  });
  after(async () => {
    for (const s of nodes || []) await closeAll(s);
    await Promise.all((nodes || []).map((s) => s.stop()));
    if (redis) await redis.stop();
  });

  const signed = (s, client, nonce) => {
    const t = Date.now();
    const text = `${s.appId}:${client}::${t}:${nonce}`;
    return { t, n: nonce, s: createHmac('sha1', s.masterKey).update(text).digest('hex') };
  };

  test('a login signature used on node 1 is refused on node 2 (4102), and frames behind it keep their order', async () => {
    const [n1, n2] = nodes;
    const A = uid('signed');
    const sig = signed(n1, A, uid('nonce'));
    const c1 = await connect(n1);
    const i = c1.send({ cmd: 'session', op: 'open', appId: n1.appId, peerId: A, sessionMessage: { ...sig } });
    const j = c1.send({ cmd: 'echo' }); // sent before the login's answer: it must come after it
    const mark = c1.mark();
    const r1 = await c1.reply(i);
    await c1.reply(j);
    assert.equal(r1.op, 'opened', JSON.stringify(r1));
    const order = c1.since(mark - 0).filter((x) => x.i === i || x.i === j).map((x) => x.i);
    assert.deepEqual(order, [i, j]);
    // the same signature (same nonce) on the other node
    const c2 = await connect(n2);
    const r2 = await c2.request({ cmd: 'session', op: 'open', appId: n2.appId, peerId: A, sessionMessage: { ...sig } });
    assert.equal(r2.cmd, 'error', JSON.stringify(r2));
    assert.equal(r2.errorMessage.code, 4102);
    assert.equal(r2.errorMessage.detail, 'signature nonce already used');
    // a fresh nonce is fine there
    const r3 = await c2.request({ cmd: 'session', op: 'open', appId: n2.appId, peerId: A,
      sessionMessage: signed(n2, A, uid('nonce')) });
    assert.equal(r3.op, 'opened', JSON.stringify(r3));
  });

  test('a connection that sends more than 64 frames behind a request waiting on the bus is closed (4116)', async () => {
    const [n1] = nodes;
    const A = uid('flood');
    const c = await connect(n1);
    // one write: the login parks on its nonce, and the 70 echoes behind it are read before
    // the bus can answer (the answer comes on a later turn of the loop)
    const frames = [c.payload({ cmd: 'session', op: 'open', i: 1, appId: n1.appId, peerId: A, sessionMessage: signed(n1, A, uid('nonce')) })];
    for (let k = 0; k < 70; k++) frames.push(c.payload({ cmd: 'echo', i: 2 + k }));
    c.ws._socket.cork();
    for (const f of frames) c.ws.send(f, { binary: true });
    c.ws._socket.uncork();
    let timer;
    const info = await Promise.race([c.closed, new Promise((_, no) => { timer = setTimeout(() => no(new Error('not closed within 5 s')), 5000); })]);
    clearTimeout(timer);
    assert.equal(info.code, 4116, JSON.stringify(info));
  });
});

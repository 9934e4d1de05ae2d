// Output held behind an answer that waits for Redis (a chat-room join here: im_hold.c,
// docs/cluster.md "The window, closed") counts in the per-address and per-server output
// budgets (output_limit_ip, output_limit_total) from the moment it is held, as queued
// socket output does (net/conn.c): while Redis is slow, many held connections, each under
// the hold's own 256 KiB, cannot hold more than the budgets between them. Past a budget the
// largest queues are dropped, as for socket output (the client sees 1006, counted in
// tern_output_dropped_total); readers that keep up, from another address, are not touched;
// and nothing stays counted once the holds end — written out, dropped, closed by the
// client, timed out or released because Redis went away (tern_output_queued_bytes back to 0).
//
// Redis is stalled with CLIENT PAUSE WRITE (the presence batch's EXEC waits, so the answer
// is held for up to BUS_WAIT_MAX_MS + 1 s); addresses are told apart with X-Forwarded-For
// from a trusted proxy. Two nodes: node 1 has a small output_limit_ip, node 2 a small
// output_limit_total. Barriers: replies, pushes and /metrics, not sleeps.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startNodes } from '../lib/server.mjs';
import { startRedis } from '../lib/redis.mjs';
import { closeAll, connect, login, sendMsg, startConv, uid } from '../lib/proto-client.mjs';
import { scrape, scrapeUntil, value } from '../lib/metrics.mjs';

const IP_CAP = 100000; // node 1
const TOTAL_CAP = 150000; // node 2
const HELD = 4; // connections from one address whose join's answer is held
const PUSHES = 12; // 5 KB room messages while they are held: ~60 KB a connection, under 256 KiB
const BODY = 'x'.repeat(5000);
const QUEUED = 'tern_output_queued_bytes';

describe('cluster: output held behind an answer waiting for Redis counts in the output budgets', () => {
  let redis, nodes;
  before(async () => {
    redis = await startRedis();
    nodes = await startNodes(2, redis, {
      env: { TERN_TRUSTED_PROXIES: '127.0.0.1' },
      envs: [{ TERN_OUTPUT_LIMIT_IP: String(IP_CAP) }, { TERN_OUTPUT_LIMIT_TOTAL: String(TOTAL_CAP) }],
    });
  });
  after(async () => {
    try { redis?.cli('CLIENT', 'UNPAUSE'); } catch { /* stopped */ }
    for (const s of nodes || []) await closeAll(s);
    await Promise.all((nodes || []).map((s) => s.stop()));
    await redis?.stop();
  });

  // A connection "from" ip with a session open (answered at once: Redis is not paused yet).
  async function from(s, ip, tag) {
    const c = await connect(s, { headers: { 'X-Forwarded-For': ip } });
    await login(c, uid(tag));
    return c;
  }

  const count = async (c, cid) => (await c.request({ cmd: 'conv', op: 'count', convMessage: { cid } })).convMessage.count;

  // While Redis is paused: each of `held` joins the room (its answer held), then the owner
  // sends PUSHES messages to it. Returns the joins' request ids.
  async function holdAndPour(owner, cid, held, members) {
    const ids = held.map((c) => c.send({ cmd: 'conv', op: 'add', convMessage: { cid, m: [c.peer] } }));
    // the joins ran (their answers are held): the node counts them in the room
    for (const t0 = Date.now(); (await count(owner, cid)) !== members + held.length;) {
      if (Date.now() - t0 > 900) assert.fail('the node never counted the joins');
    }
    await Promise.all(Array.from({ length: PUSHES }, (_, k) => sendMsg(owner, cid, `${k} ${BODY}`)));
    return ids;
  }

  // The held pushes are counted (a push to a connection on another worker than the
  // sender's reaches it shortly after the sender's ack: scraped until there).
  const countedWhileHeld = (s) => scrapeUntil(s, (x) => value(x, QUEUED) >= PUSHES * BODY.length,
    `the held bytes counted in ${QUEUED} while held`, 800);

  // Everything a connection is owed once its hold ends: the join's answer, then every push.
  async function getsEverything(c, i) {
    const joined = await c.reply(i, 5000);
    assert.equal(joined.op, 'added', JSON.stringify(joined));
    for (let k = 0; k < PUSHES; k++) await c.next((x) => x.cmd === 'direct' && x.directMessage?.msg?.startsWith(`${k} `), 5000);
    const at = c.received.indexOf(joined);
    assert.ok(c.received.slice(0, at).every((x) => x.cmd !== 'direct'), 'the answer comes before the pushes held behind it');
  }

  async function overBudget(s, limit, heldIp, otherIp) {
    const owner = await from(s, otherIp, 'owner');
    const { cid } = await startConv(owner, [], { transient: true, n: `held-${limit}` });
    const bystander = await from(s, otherIp, 'bystander');
    assert.equal((await bystander.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [bystander.peer] } })).op, 'added');
    const held = [];
    for (let k = 0; k < HELD; k++) held.push(await from(s, heldIp, 'held'));
    const m0 = await scrape(s);
    let ids;
    redis.cli('CLIENT', 'PAUSE', '5000', 'WRITE'); // the joins' presence batch waits
    try {
      ids = await holdAndPour(owner, cid, held, 2);
      // the budget was enforced on what is held: the largest held queues were dropped
      // before their answer left (as socket output past it: no close frame, 1006)
      // (a drop another worker was asked to make may take a moment: scraped until done)
      const cap = limit === 'ip' ? IP_CAP : TOTAL_CAP;
      const drops = (x) => value(x, `tern_output_dropped_total{limit="${limit}"}`) - value(m0, `tern_output_dropped_total{limit="${limit}"}`);
      await scrapeUntil(s, (x) => drops(x) > 0 && value(x, QUEUED) > 0 && value(x, QUEUED) <= cap,
        `a drop by output_limit_${limit}, and the held output counted within ${cap}`, 1000).catch(async (e) => {
        const x = await scrape(s);
        throw new Error(`${e.message}: drops ${drops(x)}, queued ${value(x, QUEUED)}, held ${value(x, 'tern_bus_held_replies_total{end="any"}')}, closed ${held.filter((c) => c.isClosed).length}`);
      });
    } finally {
      redis.cli('CLIENT', 'UNPAUSE');
    }
    // the bystander (another address, a reader that keeps up) got every push and chats on
    for (let k = 0; k < PUSHES; k++) await bystander.next((x) => x.cmd === 'direct' && x.directMessage?.msg?.startsWith(`${k} `), 5000);
    await sendMsg(bystander, cid, 'still here');
    await owner.echo();
    // each held connection was either dropped (pushes still arriving when the first drop
    // was seen may have dropped more) or gets everything, the answer first
    const dropped = [], kept = [];
    for (const [n, c] of held.entries()) {
      try {
        await getsEverything(c, ids[n]);
        kept.push(c);
      } catch (e) {
        if (!c.isClosed) throw e;
        dropped.push(c);
        assert.equal(c.closeInfo.code, 1006, 'dropped as socket output is: no close frame');
        assert.ok(!c.received.some((x) => x.i === ids[n]), 'dropped while its answer was held');
      }
    }
    assert.ok(dropped.length >= 1 && kept.length >= 1, `${dropped.length} of ${HELD} held connections dropped, ${kept.length} kept`);
    const m1 = await scrapeUntil(s, (x) => value(x, QUEUED) === 0, `${QUEUED} back to 0`);
    assert.equal(value(m1, `tern_output_dropped_total{limit="${limit}"}`) - value(m0, `tern_output_dropped_total{limit="${limit}"}`), dropped.length,
      'every drop counted');
    for (const c of [owner, bystander, ...kept]) await c.close();
  }

  test(`output_limit_ip=${IP_CAP}: ${HELD} connections from one address held while a room pours at them — the largest are dropped, the rest and another address get everything, nothing stays counted`, () =>
    overBudget(nodes[0], 'ip', '10.14.0.1', '10.14.0.2'));

  test(`output_limit_total=${TOTAL_CAP}: the same against the server's budget`, () =>
    overBudget(nodes[1], 'total', '10.14.1.1', '10.14.1.2'));

  test('held output is counted while held and released exactly once: the client closing, the hold timing out, Redis going away', async () => {
    const s = nodes[0];
    const owner = await from(s, '10.14.2.2', 'owner');
    const { cid } = await startConv(owner, [], { transient: true, n: 'held-release' });
    await scrapeUntil(s, (x) => value(x, QUEUED) === 0, `${QUEUED} idle`);

    // 1. the client goes while held: its held bytes leave the budgets with it
    let a = await from(s, '10.14.2.1', 'closer');
    redis.cli('CLIENT', 'PAUSE', '5000', 'WRITE');
    try {
      await holdAndPour(owner, cid, [a], 1);
      const m = await countedWhileHeld(s);
      assert.ok(value(m, QUEUED) < IP_CAP, 'one connection stays under the address budget');
      a.ws.terminate();
      await scrapeUntil(s, (x) => value(x, QUEUED) === 0, `${QUEUED} back to 0 when the held connection went`, 1500);
    } finally {
      redis.cli('CLIENT', 'UNPAUSE');
    }

    // 2. Redis does not answer: the hold times out (forced), the frames are written, nothing stays
    a = await from(s, '10.14.2.1', 'timeout');
    redis.cli('CLIENT', 'PAUSE', '6000', 'WRITE');
    try {
      const [i] = await holdAndPour(owner, cid, [a], 1);
      await countedWhileHeld(s);
      await getsEverything(a, i); // released by the bound, Redis still paused
      await scrapeUntil(s, (x) => value(x, QUEUED) === 0, `${QUEUED} back to 0 after the forced release`, 1500);
    } finally {
      redis.cli('CLIENT', 'UNPAUSE');
    }
    await a.close();

    // 3. Redis goes away while an answer is held: released at once, nothing stays
    a = await from(s, '10.14.2.1', 'down');
    redis.cli('CLIENT', 'PAUSE', '6000', 'WRITE');
    let i;
    try {
      [i] = await holdAndPour(owner, cid, [a], 1);
      await countedWhileHeld(s);
    } catch (e) {
      redis.cli('CLIENT', 'UNPAUSE');
      throw e;
    }
    process.kill(redis.pid, 'SIGKILL');
    try {
      await getsEverything(a, i);
      await scrapeUntil(s, (x) => value(x, QUEUED) === 0, `${QUEUED} back to 0 once Redis went`, 1500);
      // no budget leaked: the address can hold up to its budget again (one connection here,
      // ~60 KB of the 100 KB), which a leak of what was held above would not let it
      await a.close();
    } finally {
      await redis.stop({ keepDir: true });
      await redis.start();
    }
    const b = await from(s, '10.14.2.1', 'after');
    for (const t0 = Date.now(); (await scrape(s)).series.get('tern_bus_up') !== 1;) {
      if (Date.now() - t0 > 15000) assert.fail('node 1 never reconnected to Redis');
      await new Promise((r) => setTimeout(r, 50));
    }
    redis.cli('CLIENT', 'PAUSE', '5000', 'WRITE');
    try {
      const [j] = await holdAndPour(owner, cid, [b], 1);
      redis.cli('CLIENT', 'UNPAUSE');
      await getsEverything(b, j);
      assert.ok(!b.isClosed, 'not dropped: the address\'s budget was whole again');
    } finally {
      redis.cli('CLIENT', 'UNPAUSE');
    }
    await scrapeUntil(s, (x) => value(x, QUEUED) === 0, `${QUEUED} idle at the end`);
  });
});

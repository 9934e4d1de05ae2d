// This node's heartbeat beats on a thread of its own, not on the home worker's loop
// (docs/cluster.md, "A node declared dead while alive"): a home loop busy past the
// heartbeat's TTL (3 s) keeps its node alive — the others do not drop its sessions and what
// they send its clients is pushed once the loop runs again; a loop hung past the staleness
// bound (10 s) still gets its node declared dead; and the goodbye of a stopped node is not
// undone by a late beat. The home loop is blocked with the test-only hook
// TERN_TEST_STALL_HOME_MS (SIGUSR2 blocks the home worker's loop for that many ms).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useNodes } from '../lib/cluster-mode.mjs';
import { session, startConv, sendMsg, uid } from '../lib/proto-client.mjs';
import { scrape, value } from '../lib/metrics.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function online(server, ids) {
  const res = await fetch(`${server.httpUrl}/1.2/rtm/clients/check-online`, {
    method: 'POST',
    headers: { 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ client_ids: ids }),
  });
  assert.equal(res.status, 200);
  return (await res.json()).results;
}

// A on node 2 in a conversation with B on node 1, one message delivered live.
async function pair(n1, n2) {
  const A = uid('a'), B = uid('b');
  const b = await session(n1, B);
  const a = await session(n2, A);
  for (let t0 = Date.now(); !(await online(n2, [B])).includes(B); await sleep(20))
    assert.ok(Date.now() - t0 < 8000, 'node 2 never saw B online');
  const conv = await startConv(a, [B]);
  await b.nextCmd('conv', 'joined');
  const first = await sendMsg(a, conv.cid, 'before');
  assert.equal((await b.nextCmd('direct')).directMessage.id, first.uid);
  return { a, b, conv, B };
}

const STALL_MS = 6000;

describe('cluster: the home loop busy past the heartbeat TTL', () => {
  const cluster = useNodes(2, { env: { TERN_TEST_STALL_HOME_MS: String(STALL_MS) } });

  test('node 1 blocked 6 s: node 2 never drops it, no goaway, every message sent meanwhile is pushed after, in order', async () => {
    const [n1, n2] = cluster.nodes;
    const { a, b, conv } = await pair(n1, n2);
    const mark = b.mark();
    process.kill(n1.child.pid, 'SIGUSR2');
    const t0 = Date.now();
    const sent = [];
    const nodes2 = [];
    // sends on node 2 every 250 ms through the block and past it (node 2 is not blocked);
    // node 2's view of the cluster sampled each time
    while (Date.now() - t0 < STALL_MS + 1000) {
      sent.push((await sendMsg(a, conv.cid, `during ${sent.length}`)).uid);
      nodes2.push(value(await scrape(n2), 'tern_bus_nodes'));
      await sleep(250);
    }
    assert.ok(nodes2.every((n) => n === 2), `node 2 dropped node 1 during the block: ${JSON.stringify(nodes2)}`);
    assert.doesNotMatch(n2.stderr(), /node node1 stopped heartbeating/);
    // every message, in order, live, and no goaway before or among them
    for (const id of sent) {
      const p = await b.next((x) => x.cmd === 'direct' || x.cmd === 'goaway', 15000);
      assert.equal(p.cmd, 'direct', `expected the message ${id}, got ${JSON.stringify(p)}`);
      assert.equal(p.directMessage.id, id, 'out of order or missing');
    }
    const after = await sendMsg(a, conv.cid, 'after');
    assert.equal((await b.nextCmd('direct')).directMessage.id, after.uid);
    assert.equal(b.since(mark).filter((x) => x.cmd === 'goaway').length, 0);
    assert.equal(value(await scrape(n1), 'tern_bus_heartbeat_lapses_total'), 0);
    assert.match(n1.stderr(), /test hook: blocking the home worker's loop/);
  });

  test('a SIGTERMed node is gone from the registry at once and not added again', async () => {
    const [n1, n2] = cluster.nodes;
    // a client that does not leave when told goaway: the node waits drain_timeout (3 s)
    // after its goodbye before it closes it, time for the heartbeat thread to beat again
    const held = await session(n1, uid('held'));
    const told = held.nextCmd('goaway');
    const stopped = n1.stop();
    await told; // sent after the goodbye was confirmed (im_cluster_leave)
    assert.doesNotMatch(cluster.redis.cli('SMEMBERS', 'tern0:nodes'), /\bnode1\b/, 'not gone at once');
    await stopped;
    // the process has exited: whatever it sent (a late beat of its heartbeat thread
    // included) has landed, so its registry entry, heartbeat and record stay gone
    assert.doesNotMatch(cluster.redis.cli('SMEMBERS', 'tern0:nodes'), /\bnode1\b/);
    assert.equal(cluster.redis.cli('EXISTS', 'tern0:hb:node1'), '0');
    assert.equal(cluster.redis.cli('EXISTS', 'tern0:n:node1'), '0');
    assert.equal(value(await scrape(n2), 'tern_bus_nodes'), 1);
    await sleep(1500); // one more beat of node 2's own: node 1 is not re-added by anyone
    assert.doesNotMatch(cluster.redis.cli('SMEMBERS', 'tern0:nodes'), /\bnode1\b/);
  });
});

const HUNG_MS = 17000; // past the staleness bound (10 s) plus the TTL (3 s) and a poll (1 s)

describe('cluster: a hung home loop', () => {
  const cluster = useNodes(2, { env: { TERN_TEST_STALL_HOME_MS: String(HUNG_MS) } });

  test('node 1 blocked 17 s is declared dead by node 2; when it runs again it finds the lapse and says goaway', { timeout: 120000 }, async () => {
    const [n1, n2] = cluster.nodes;
    const { b, B } = await pair(n1, n2);
    process.kill(n1.child.pid, 'SIGUSR2');
    const t0 = Date.now();
    for (; value(await scrape(n2), 'tern_bus_nodes') !== 1; await sleep(100))
      assert.ok(Date.now() - t0 < HUNG_MS, 'node 2 still takes the hung node 1 for alive');
    const took = Date.now() - t0;
    assert.ok(took > 10000, `node 1 declared dead after ${took} ms, before the staleness bound`);
    assert.match(n2.stderr(), /node node1 stopped heartbeating/);
    const g = await b.next((p) => p.cmd === 'goaway' || p.cmd === 'direct', HUNG_MS + 10000);
    assert.equal(g.cmd, 'goaway', `expected goaway, got ${JSON.stringify(g)}`);
    assert.ok(value(await scrape(n1), 'tern_bus_heartbeat_lapses_total') >= 1);
    assert.match(n1.stderr(), /home worker's loop has not run for \d+ ms: heartbeat withheld/);
    // B, told goaway but still connected to node 1, is known to node 2 again: node 1
    // rewrote its record (it may have expired with the heartbeat) when it found the lapse
    for (let t1 = Date.now(); !(await online(n2, [B])).includes(B); await sleep(50))
      assert.ok(Date.now() - t1 < 5000, 'node 2 never saw B, still on node 1, again');
  });
});

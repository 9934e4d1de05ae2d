// tern-bench against several nodes (issue #14 point 6): with --url repeated, client i
// connects to node i mod nodes, so in `pairs` the two ends of every conversation sit on
// different nodes and every delivery crosses the bus, and a group's members (and its
// rotating sender) are spread. Two ternd nodes on ONE PostgreSQL and ONE Redis (the file
// starts both, tests/lib/pg.mjs and redis.mjs); the generator's accounting must be exact
// — nothing lost, nothing duplicated — and each node's process is sampled on its own.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { benchBin, runBench } from '../lib/bench.mjs';
import { startPg } from '../lib/pg.mjs';
import { startRedis } from '../lib/redis.mjs';
import { startNodes } from '../lib/server.mjs';

const SANITIZER = /ERROR: AddressSanitizer|runtime error:|LeakSanitizer/;

async function busIn(s) {
  const res = await fetch(`${s.httpUrl}/metrics`, { headers: { 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master` } });
  const m = /^tern_bus_messages_total\{dir="in"\} (\d+)$/m.exec(await res.text());
  assert.ok(m, 'tern_bus_messages_total{dir="in"} in /metrics');
  return Number(m[1]);
}

describe('tern-bench over two nodes on one PostgreSQL and one Redis', () => {
  let pg;
  let redis;
  let nodes;
  before(async () => {
    assert.ok(existsSync(benchBin), `${benchBin} is missing: build the tern-bench target`);
    pg = startPg();
    redis = await startRedis();
    // a load generator sends far faster than a person: the rate limits are off (docs/security.md)
    nodes = await startNodes(2, redis, { env: { TERN_STORE: pg.createDatabase(), TERN_MAX_CONN_RATE: '0', TERN_MAX_CLIENT_RATE: '0' } });
  });
  after(async () => {
    try {
      await Promise.all((nodes || []).map((s) => s.stop()));
    } finally {
      if (redis) await redis.stop();
      if (pg) pg.stop();
    }
  });

  // Runs tern-bench over both nodes (urlArgs says how they are given); the report, checked
  // for the invariants every run shares, and how many bus messages each node received.
  async function bench(urlArgs, args) {
    const in0 = await Promise.all(nodes.map(busIn));
    const r = await runBench([...urlArgs, '--app-id', nodes[0].appId, '--json', '--duration', '2', '--warmup', '0.5',
      '--drain', '10', ...args], { timeoutMs: 90000 });
    assert.doesNotMatch(r.stderr, SANITIZER, 'sanitizer report from tern-bench');
    assert.equal(r.code, 0, `tern-bench exited ${r.code ?? r.signal}:\n${r.stderr}`);
    const rep = JSON.parse(r.stdout);
    assert.equal(rep.lost, 0, `lost: ${r.stdout}`);
    assert.equal(rep.duplicated, 0, `duplicated: ${r.stdout}`);
    assert.equal(rep.delivered, rep.expected, `delivered != expected: ${r.stdout}`);
    assert.equal(rep.errors, 0, `errors: ${r.stdout}`);
    assert.equal(rep.disconnects, 0);
    assert.equal(rep.login_failures, 0);
    assert.equal(rep.params.nodes, 2);
    // each node's own process, sampled apart, and "server" their sum
    assert.deepEqual(rep.nodes.map((n) => n.pid).sort(), nodes.map((s) => s.child.pid).sort());
    for (const n of rep.nodes) assert.ok(n.rss_end_kb > 0 && n.cpu_s > 0, `node ${n.pid} sampled: ${JSON.stringify(n)}`);
    assert.ok(Math.abs(rep.server.cpu_s - rep.nodes.reduce((a, n) => a + n.cpu_s, 0)) < 1e-6);
    assert.equal(rep.server.rss_end_kb, rep.nodes.reduce((a, n) => a + n.rss_end_kb, 0));
    const in1 = await Promise.all(nodes.map(busIn));
    return { rep, crossed: in1.map((v, k) => v - in0[k]) };
  }

  test('pairs, both ends sending: every delivery crosses nodes, none lost or duplicated', { timeout: 120000 }, async () => {
    const { rep, crossed } = await bench(['--url', nodes[0].wsUrl, '--url', nodes[1].wsUrl],
      ['--scenario', 'pairs', '--clients', '20', '--window', '8']);
    assert.equal(rep.params.one_way, false);
    assert.ok(rep.sent > 200, `sent ${rep.sent}`);
    assert.equal(rep.expected, rep.sent);
    assert.ok(rep.latency_us.count > 0 && rep.latency_us.p999 >= rep.latency_us.p50);
    // every delivery crosses (one publish per message: its one recipient is on the other
    // node), and both directions ran (flat out they need not run at the same rate)
    assert.ok(crossed[0] > 0 && crossed[1] > 0, `bus messages in ${crossed}`);
    assert.ok(crossed[0] + crossed[1] >= rep.delivered, `bus messages in ${crossed} for ${rep.delivered} deliveries`);
  });

  test('pairs --one-way, paced, nodes given as --urls: only the creators send, all to the other node', { timeout: 120000 }, async () => {
    const { rep, crossed } = await bench(['--urls', `${nodes[0].wsUrl},${nodes[1].wsUrl}`],
      ['--scenario', 'pairs', '--clients', '20', '--rate', '400', '--one-way']);
    assert.equal(rep.params.one_way, true);
    assert.ok(Math.abs(rep.sent - 1000) <= 20, `sent ${rep.sent}`);
    // creators are the even clients, all on node 1: every delivery arrives at node 2
    assert.ok(crossed[1] >= rep.delivered, `node 2 received ${crossed[1]} bus messages for ${rep.delivered} deliveries`);
    assert.ok(crossed[0] < rep.delivered / 10, `node 1 received ${crossed[0]} bus messages`);
  });

  test('group of 6 spread over both nodes, the sender rotating across them', { timeout: 120000 }, async () => {
    const { rep, crossed } = await bench(['--url', `${nodes[0].wsUrl},${nodes[1].wsUrl}`],
      ['--scenario', 'group', '--clients', '12', '--group-size', '6', '--window', '4', '--rotate', '10', '--ack-ms', '100']);
    assert.equal(rep.params.groups, 2);
    assert.ok(rep.sent > 20, `sent ${rep.sent}`);
    assert.equal(rep.expected, rep.sent * 5);
    // three members of each group on each node: whichever sends, the other node gets one
    // bus message per message, and the turn passed to members on both nodes
    assert.ok(crossed[0] > 0 && crossed[1] > 0, `bus messages in ${crossed}`);
    assert.ok(crossed[0] + crossed[1] >= rep.sent, `bus messages in ${crossed} for ${rep.sent} messages`);
  });

  test('login storm over both nodes: every login answered, both nodes busy', { timeout: 120000 }, async () => {
    const { rep } = await bench(['--url', nodes[0].wsUrl, '--url', nodes[1].wsUrl],
      ['--scenario', 'login-storm', '--clients', '20']);
    assert.ok(rep.delivered > 50, `logins ${rep.delivered}`);
    assert.equal(rep.lost, 0);
  });
});

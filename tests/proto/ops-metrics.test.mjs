// /metrics as an operator scrapes it (issue #15 point 3, docs/operations.md "Monitoring"):
// the whole exposition passes a real parser (promtool check metrics, from Debian's
// prometheus package), every series family the issue names is there, metrics_token reads
// /metrics and nothing else, process_* are the process's own numbers, and /ready turns 503
// when the store cannot commit and back when it can.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { closeAll, connect, sendMsg, session, startConv, uid } from '../lib/proto-client.mjs';
import { parseMetrics, scrape, scrapeUntil, value } from '../lib/metrics.mjs';

const TOKEN = 'scrape-token-0123456789abcdef';
let server;
before(async () => { server = await startServer({ env: { TERN_METRICS_TOKEN: TOKEN, TERN_DEBUG_FAULTS: '1' } }); });
afterEach(() => closeAll(server));
after(async () => { await server.stop(); });

const get = (path, headers = {}) => fetch(`${server.httpUrl}${path}`, { headers });

/** promtool's verdict on an exposition: its exit status and what it said. */
function promtool(text) {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.ok(!r.error, `promtool is needed (Debian's prometheus package; scripts/deps.sh --test installs it): ${r.error}`);
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('promtool check metrics accepts the exposition after real traffic, and every family of the issue is there', async () => {
  // traffic: sessions on both framings, messages stored and transient, an error, a refused login, REST calls
  const [a, b] = [uid('pa'), uid('pb')];
  const ca = await session(server, a);
  const cb = await session(server, b, { subprotocol: 'lc.proto2base64.3' });
  const conv = await startConv(ca, [b]);
  await sendMsg(ca, conv.cid, 'hello');
  ca.send({ cmd: 'direct', i: null, directMessage: { cid: conv.cid, msg: 'typing', transient: true } });
  await cb.next((p) => p.cmd === 'direct' && p.directMessage?.transient);
  await ca.request({ cmd: 'direct', directMessage: { cid: '0123456789abcdef01234567', msg: 'x' } });
  const cr = await connect(server);
  await cr.request({ cmd: 'session', op: 'open', appId: server.appId, peerId: uid('forged'), sessionMessage: { r: true, st: 'forged' } });
  assert.equal((await get('/health')).status, 200);
  assert.equal((await get('/nope')).status, 404);
  const res = await get('/metrics', { Authorization: `Bearer ${server.masterKey}` });
  assert.equal(res.status, 200);
  const text = await res.text();
  const verdict = promtool(text);
  assert.equal(verdict.status, 0, `promtool check metrics:\n${verdict.out}`);
  assert.equal(verdict.out.trim(), '', `promtool has remarks:\n${verdict.out}`);
  const m = parseMetrics(text);
  const families = {
    // sessions and connections by protocol
    tern_sessions: 'gauge', tern_ws_connections: 'gauge', tern_connections: 'gauge',
    // logins and failures by code
    tern_logins_total: 'counter', tern_login_failures_total: 'counter', tern_errors_total: 'counter',
    // messages in/out by kind, fan-out
    tern_messages_in_total: 'counter', tern_messages_out_total: 'counter', tern_fanout_deliveries_total: 'counter',
    // commit latency and batch size, send→ack and delivery latency
    tern_store_commit_seconds: 'histogram', tern_store_commit_batch_size: 'histogram',
    tern_send_ack_seconds: 'histogram', tern_delivery_seconds: 'histogram',
    // output queues and drops
    tern_output_queued_bytes: 'gauge', tern_output_dropped_total: 'counter',
    // WAL size and checkpoints
    tern_store_wal_bytes: 'gauge', tern_store_db_bytes: 'gauge', tern_store_checkpoints_total: 'counter',
    // where the time goes (issue #17): queue wait, checkpoints, the writer held, inbox wait, stages
    tern_store_queue_wait_seconds: 'histogram', tern_store_checkpoint_seconds: 'histogram',
    tern_store_checkpoint_hold_seconds: 'histogram', tern_store_fsync_seconds: 'histogram',
    tern_worker_inbox_wait_seconds: 'histogram', tern_stage_seconds_total: 'counter',
    tern_store_writer_wakeups_total: 'counter', tern_store_wal_frames_total: 'counter',
    tern_store_checkpoint_hold_frames: 'histogram', tern_store_wal_restarts_total: 'counter',
    // the workers' writes through io_uring (tests/proto/uring.test.mjs)
    tern_uring_submits_total: 'counter', tern_uring_sends_total: 'counter',
    // push: latency and errors (the hook families, tern_hook_latency_seconds and
    // tern_hook_failures_total, appear when hooks are configured: tests/integration/hooks.test.mjs)
    tern_push_seconds: 'histogram', tern_push_errors_total: 'counter',
    // REST by route and status
    tern_http_requests_total: 'counter', tern_http_request_seconds: 'histogram',
    // the standard process series
    process_cpu_seconds_total: 'counter', process_resident_memory_bytes: 'gauge', process_virtual_memory_bytes: 'gauge',
    process_open_fds: 'gauge', process_max_fds: 'gauge', process_start_time_seconds: 'gauge',
  };
  for (const [fam, type] of Object.entries(families)) {
    assert.equal(m.type.get(fam), type, `# TYPE of ${fam}`);
    assert.ok(m.help.get(fam), `# HELP of ${fam}`);
  }
  assert.equal(value(m, 'tern_sessions{protocol="base64"}'), 1);
  assert.equal(value(m, 'tern_login_failures_total{code="4112",reason="SESSION_TOKEN_EXPIRED"}'), 1);
  assert.equal(value(m, 'tern_messages_in_total{kind="transient"}'), 1);
  assert.equal(value(m, 'tern_http_requests_total{method="GET",route="/health",status="200"}'), 1);
  assert.equal(value(m, 'tern_http_requests_total{method="",route="none",status="404"}'), 1);
  assert.ok(value(m, 'tern_store_commit_batch_size_count') >= 1);
  // a stored message went through every stage: read, decode, handle, commit, complete (its ack), write
  for (const st of ['read', 'decode', 'handle', 'complete', 'write', 'commit'])
    assert.ok(value(m, `tern_stage_seconds_total{stage="${st}"}`) > 0, `stage ${st} timed`);
  assert.ok(value(m, 'tern_store_queue_wait_seconds_count') >= 1, 'a commit\'s queue wait observed');
  assert.ok(value(m, 'tern_worker_inbox_wait_seconds_count') >= 1, 'a completion\'s inbox wait observed');
  assert.ok(value(m, 'tern_store_wal_bytes') + value(m, 'tern_store_db_bytes') > 0);
});

test('process_* are the process\'s own numbers', async () => {
  const m = await scrape(server);
  const pid = server.child.pid;
  const fds = Number(execFileSync('sh', ['-c', `ls /proc/${pid}/fd | wc -l`], { encoding: 'utf8' }));
  assert.ok(Math.abs(value(m, 'process_open_fds') - fds) <= 3, `open fds ${value(m, 'process_open_fds')} vs ${fds}`);
  const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
  const soft = Number(/Max open files\s+(\d+)/.exec(limits)[1]);
  assert.equal(value(m, 'process_max_fds'), soft);
  const rssKb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
  assert.ok(Math.abs(value(m, 'process_resident_memory_bytes') / 1024 - rssKb) < rssKb * 0.5, 'resident memory near VmRSS');
  assert.ok(value(m, 'process_virtual_memory_bytes') >= value(m, 'process_resident_memory_bytes'));
  const start = value(m, 'process_start_time_seconds');
  assert.ok(start <= Date.now() / 1000 + 1 && start > Date.now() / 1000 - 600, `start time ${start}`);
  assert.ok(value(m, 'process_cpu_seconds_total') > 0);
});

test('metrics_token reads /metrics and nothing else; no key is 401, the app key 403', async () => {
  assert.equal((await get('/metrics', { Authorization: `Bearer ${TOKEN}` })).status, 200);
  assert.equal((await get('/metrics')).status, 401);
  assert.equal((await get('/metrics', { Authorization: 'Bearer wrong-token' })).status, 401);
  assert.equal((await get('/metrics', { Authorization: `Bearer ${TOKEN}x` })).status, 401);
  assert.equal((await get('/metrics', { 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey })).status, 403);
  // the token is no master key: not as a bearer, not as X-LC-Key
  assert.equal((await get('/1.2/rtm/conversations', { Authorization: `Bearer ${TOKEN}` })).status, 401);
  assert.equal((await get('/1.2/rtm/conversations', { 'X-LC-Id': server.appId, 'X-LC-Key': `${TOKEN},master` })).status, 401);
});

test('WAL size and checkpoints move with writes', async () => {
  const before = await scrape(server);
  const [a, b] = [uid('wa'), uid('wb')];
  const ca = await session(server, a);
  const conv = await startConv(ca, [b]);
  for (let i = 0; i < 50; i++) await sendMsg(ca, conv.cid, `wal ${i} ${'x'.repeat(500)}`);
  const after = await scrapeUntil(server,
    (x) => value(x, 'tern_store_checkpoints_total') > value(before, 'tern_store_checkpoints_total'),
    'a checkpoint round after the writes');
  // every round that copied frames is also timed (tern_store_checkpoint_seconds; observed before it is counted)
  assert.ok(value(after, 'tern_store_checkpoint_seconds_count') - value(before, 'tern_store_checkpoint_seconds_count') >=
    value(after, 'tern_store_checkpoints_total') - value(before, 'tern_store_checkpoints_total'));
  assert.ok(value(after, 'tern_stage_seconds_total{stage="checkpoint"}') > value(before, 'tern_stage_seconds_total{stage="checkpoint"}'));
});

test('/ready: 200 when the store commits and the workers answer; 503 while commits fail; 200 again after', async () => {
  const ok = await get('/ready');
  assert.equal(ok.status, 200);
  const body = await ok.json();
  assert.equal(body.status, 'ready');
  assert.equal(body.store, 'ok');
  assert.equal(body.workers_answering, body.workers);
  assert.ok(body.workers >= 1);
  const faults = (on) => fetch(`${server.httpUrl}/debug/faults`, {
    method: 'POST', headers: { 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ store_fail: on }),
  });
  assert.equal((await faults(true)).status, 200);
  try {
    const bad = await get('/ready');
    assert.equal(bad.status, 503);
    const b2 = await bad.json();
    assert.equal(b2.status, 'not ready');
    assert.equal(b2.store, 'failed');
    assert.equal((await get('/health')).status, 200, '/health is liveness: still 200');
  } finally {
    assert.equal((await faults(false)).status, 200);
  }
  const again = await get('/ready');
  assert.equal(again.status, 200);
  assert.equal((await again.json()).store, 'ok');
});

test('docs/grafana-dashboard.json: every query parses (promtool check rules) and reads only series /metrics has', async () => {
  const dash = JSON.parse(readFileSync(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8'));
  const exprs = dash.panels.flatMap((p) => p.targets.map((t) => t.expr));
  assert.ok(exprs.length >= 20, 'a panel for each group of series');
  // Grafana's variables as Prometheus would see them once substituted
  const promql = exprs.map((e) => e.replaceAll('$__rate_interval', '1m').replaceAll('$job', 'tern'));
  const rules = `groups:\n  - name: dashboard\n    rules:\n${promql.map((e, i) => `      - record: tern:dashboard:q${i}\n        expr: ${JSON.stringify(e)}\n`).join('')}`;
  const dir = mkdtempSync(join(tmpdir(), 'tern-dash-'));
  try {
    writeFileSync(join(dir, 'rules.yml'), rules);
    const r = spawnSync('promtool', ['check', 'rules', join(dir, 'rules.yml')], { encoding: 'utf8' });
    assert.equal(r.status, 0, `promtool check rules:\n${r.stdout}${r.stderr}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const m = await scrape(server);
  const families = new Set([...m.type.keys()]);
  const used = new Set(exprs.flatMap((e) => e.match(/\b(?:tern|process)_[a-z_]+/g)).map((n) => n.replace(/_(bucket|sum|count)$/, '')));
  // the hook families appear once hooks are configured, the per-provider push families once a
  // provider is (tests/integration/hooks.test.mjs and push.test.mjs check those)
  const configured = /^tern_hook_|^tern_push_(requests|delivered|retries|dead_letters)_total$/;
  const missing = [...used].filter((n) => !families.has(n) && !configured.test(n));
  assert.deepEqual(missing, [], 'series the dashboard reads that /metrics does not have');
});

// tern-bench smoke test (issue #6): every scenario, briefly and with few clients, against a
// real ternd. The generator must account for every message exactly — zero lost, zero
// duplicated, delivered == expected — so that its figures can be trusted when it runs at
// full load in `make bench`. Both binaries are the sanitizer build here: a report from
// either fails the test.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { userInfo } from 'node:os';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { benchBin, runBench } from '../lib/bench.mjs';

const SANITIZER = /ERROR: AddressSanitizer|runtime error:|LeakSanitizer/;

let server;
before(async () => {
  assert.ok(existsSync(benchBin), `${benchBin} is missing: build the tern-bench target`);
  // a load generator sends far faster than a person: the rate limits are off (docs/security.md)
  server = await startServer({ env: { TERN_MAX_CONN_RATE: '0', TERN_MAX_CLIENT_RATE: '0' } });
});
after(async () => { await server.stop(); });

async function bench(args) {
  const r = await runBench(['--url', server.wsUrl, '--app-id', server.appId, '--server-pid', String(server.child.pid),
    '--json', '--duration', '2', '--warmup', '0.5', '--drain', '10', ...args]);
  assert.doesNotMatch(r.stderr, SANITIZER, 'sanitizer report from tern-bench');
  assert.equal(r.code, 0, `tern-bench exited ${r.code ?? r.signal}:\n${r.stderr}`);
  const rep = JSON.parse(r.stdout);
  // The invariants every scenario shares: exact accounting, nothing failed.
  assert.equal(rep.lost, 0, `lost: ${r.stdout}`);
  assert.equal(rep.duplicated, 0, `duplicated: ${r.stdout}`);
  assert.equal(rep.delivered, rep.expected, `delivered != expected: ${r.stdout}`);
  assert.equal(rep.errors, 0, `errors: ${r.stdout}`);
  assert.equal(rep.disconnects, 0);
  assert.equal(rep.login_failures, 0);
  assert.equal(rep.unexpected_frames, 0);
  assert.ok(rep.server.rss_end_kb > 0, 'server RSS was sampled');
  // the server's WAL, found through the -shm file it maps: small after a short run
  assert.ok(Number.isInteger(rep.server.wal_end_kb) && rep.server.wal_end_kb >= 0 && rep.server.wal_end_kb < 256 * 1024,
    `wal_end_kb: ${rep.server.wal_end_kb}`);
  return rep;
}

// One row per scenario of the issue: [name, arguments, extra checks on the report].
const cases = [
  ['pairs, flat out', ['--scenario', 'pairs', '--clients', '10', '--window', '8'], (r) => {
    assert.ok(r.sent > 0);
    assert.equal(r.expected, r.sent); // one receiver per message
    assert.ok(r.latency_us.count > 0 && r.latency_us.p50 > 0 && r.latency_us.max >= r.latency_us.p999);
    assert.ok(r.ack_latency_us.count > 0);
  }],
  ['pairs, paced', ['--scenario', 'pairs', '--clients', '10', '--rate', '400'], (r) => {
    // 2.5 s at 400/s: the schedule is kept to within a few messages
    assert.ok(Math.abs(r.sent - 1000) <= 20, `sent ${r.sent}`);
    assert.ok(Math.abs(r.throughput.sent_per_s - 400) < 40, `rate ${r.throughput.sent_per_s}`);
    // each message of the 2 s window is timed from its schedule, so its latency includes how late it left
    assert.ok(r.send_lag_us.count > 700 && r.send_lag_us.p50 <= r.latency_us.p50, JSON.stringify(r.send_lag_us));
  }],
  ['pairs, paced by a 200 µs timerfd tick', ['--scenario', 'pairs', '--clients', '10', '--rate', '400', '--tick-us', '200'], (r) => {
    assert.equal(r.params.tick_us, 200);
    assert.ok(Math.abs(r.sent - 1000) <= 20, `sent ${r.sent}`);
    assert.ok(r.send_lag_us.count > 700 && r.send_lag_us.p50 <= r.latency_us.p50, JSON.stringify(r.send_lag_us));
  }],
  ['group of 6, rotating sender', ['--scenario', 'group', '--clients', '12', '--group-size', '6', '--window', '4',
    '--rotate', '10', '--ack-ms', '100'], (r) => {
    assert.equal(r.params.groups, 2);
    assert.equal(r.expected, r.sent * 5);
  }],
  ['chatroom', ['--scenario', 'chatroom', '--clients', '12', '--senders', '2', '--rate', '100'], (r) => {
    assert.equal(r.expected, r.sent * 11); // every member but the sender
  }],
  ['login-storm', ['--scenario', 'login-storm', '--clients', '6'], (r) => {
    assert.ok(r.sent > 0 && r.logins_per_s > 0);
  }],
  ['history', ['--scenario', 'history', '--clients', '3', '--history-messages', '250', '--page-size', '20'], (r) => {
    assert.equal(r.params.history_messages, 250);
    assert.ok(r.delivered > 13, 'more than one walk of 13 pages');
    assert.ok(r.walks_completed >= 1, 'a walk reached the first message and saw all 250');
  }],
  ['idle', ['--scenario', 'idle', '--clients', '40', '--sources', '2', '--echo-s', '1'], (r) => {
    assert.equal(r.sessions_held, 40);
    assert.ok(r.sent > 0, 'keepalive echoes were sent and answered');
  }],
];

for (const [name, args, check] of cases) {
  test(`tern-bench ${name}: zero loss, zero duplicates`, { timeout: 90000 }, async () => {
    check(await bench(args));
  });
}

test('tern-bench --timeline: one row per 100 ms of send time, every delivery in one, p50 <= p99 <= max', { timeout: 90000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tern-tl-'));
  try {
    const file = join(dir, 'tl.tsv');
    const r = await bench(['--scenario', 'pairs', '--clients', '10', '--rate', '400', '--timeline', file]);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.match(lines[0], /^# t_s\tunix_s\tmeasured\tcount\tp50_us\tp99_us\tmax_us$/);
    const rows = lines.slice(1).map((l) => l.split('\t').map(Number));
    // 2.5 s of sending at 400/s: ~25 bins of ~40 messages, in time order, warmup first
    assert.ok(rows.length >= 20 && rows.length <= 27, `${rows.length} rows`);
    let count = 0;
    for (let k = 0; k < rows.length; k++) {
      const [t, unix, measured, n, p50, p99, max] = rows[k];
      if (k) assert.ok(t > rows[k - 1][0] && unix > rows[k - 1][1], 'rows in time order');
      assert.equal(measured, t >= 0.5 ? 1 : 0, `row ${t}: measured flag`);
      assert.ok(n > 0 && p50 <= p99 && p99 <= max, `row ${lines[k + 1]}`);
      count += n;
    }
    assert.equal(count, r.delivered, 'every delivery counted in exactly one bin');
    assert.ok(Math.abs(rows[0][1] - Date.now() / 1000) < 60, 'unix time of the first bin');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tern-bench rejects a bad option and a wrong app id', { timeout: 60000 }, async () => {
  const bad = await runBench(['--no-such-option']);
  assert.equal(bad.code, 2);
  const wrong = await runBench(['--url', server.wsUrl, '--app-id', 'wrong-app', '--scenario', 'pairs', '--clients', '2',
    '--duration', '1', '--warmup', '0']);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /login refused/);
  assert.doesNotMatch(wrong.stderr, SANITIZER);
});

// The reference of issue #17 (bench/README.md, "The mosquitto reference"): the pairs scenario
// over MQTT 3.1.1 on a WebSocket, against a real mosquitto (Debian's package), with the same
// exact accounting as against ternd. The config is scripts/bench.sh's.
test('tern-bench --protocol mqtt against mosquitto: every publish acked, every message delivered once', { timeout: 90000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tern-mq-'));
  const port = await new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
  writeFileSync(join(dir, 'mosquitto.conf'), `user ${userInfo().username}\npersistence false\nallow_anonymous true\n` +
    `listener 0 ${dir}/mqtt.sock\nlistener ${port} 127.0.0.1\nprotocol websockets\n`);
  const broker = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  try {
    for (let k = 0; ; k++) { // listening?
      const up = await new Promise((resolve) => {
        const s = connect(port, '127.0.0.1', () => { s.destroy(); resolve(true); }).on('error', () => resolve(false));
      });
      if (up) break;
      assert.ok(k < 100 && broker.exitCode === null, 'mosquitto did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
    const r = await runBench(['--protocol', 'mqtt', '--url', `ws://127.0.0.1:${port}/`, '--server-pid', String(broker.pid),
      '--json', '--scenario', 'pairs', '--clients', '20', '--rate', '400', '--duration', '2', '--warmup', '0.5']);
    assert.doesNotMatch(r.stderr, SANITIZER);
    assert.equal(r.code, 0, `tern-bench exited ${r.code ?? r.signal}:\n${r.stderr}`);
    const rep = JSON.parse(r.stdout);
    assert.equal(rep.protocol, 'mqtt');
    assert.ok(Math.abs(rep.sent - 1000) <= 20, `sent ${rep.sent}`);
    assert.equal(rep.delivered, rep.sent);
    assert.equal(rep.expected, rep.sent);
    assert.equal(rep.lost, 0);
    assert.equal(rep.duplicated, 0);
    assert.equal(rep.errors, 0);
    assert.equal(rep.unexpected_frames, 0);
    assert.equal(rep.login_failures, 0);
    assert.ok(rep.ack_latency_us.count > 0 && rep.latency_us.count > 0, 'PUBACKs and deliveries were timed');
    assert.ok(rep.server.cpu_s > 0, "the broker's CPU was sampled");
  } finally {
    broker.kill();
    rmSync(dir, { recursive: true, force: true });
  }
  // MQTT is mapped for the pairs scenario only
  const other = await runBench(['--protocol', 'mqtt', '--scenario', 'group', '--url', 'ws://127.0.0.1:1/']);
  assert.equal(other.code, 2);
  assert.match(other.stderr, /pairs scenario only/);
});

// Issue #11 acceptance: while points 3 (attribute updates of a document at its cap), 4
// (backtracking $regex queries), 7 (descriptor exhaustion), 8 (uploads without keys, and
// keyed ones that trickle) and 11 (readers that never read under a flood) are attacked at
// once, an unrelated pair of clients keeps chatting: every message arrives, send→receive p99
// stays under 100 ms, and neither is disconnected. The attacks run in a child process
// (tests/lib/attacker.mjs) so their client-side work does not delay the pair's timing here.
// docs/security.md "Limits and their defaults".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../lib/server.mjs';
import { closeAll, session, startConv, uid } from '../lib/proto-client.mjs';
import { TEXT, rssSampler, sleep } from '../lib/issue4-util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const MEASURE_MS = 15000;

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))];
};

test('a bystander pair chats undisturbed while points 3, 4, 7, 8 and 11 are attacked at once: p99 < 100 ms, nothing lost, no disconnect', { timeout: 300000 }, async () => {
  const server = await startServer({
    // descriptors run out before max_conns does, so accept() itself meets EMFILE (point 7)
    shell: 'ulimit -n 700',
    env: {
      TERN_WORKERS: '2',
      TERN_MAX_CONNS: '100000',
      TERN_MAX_CONNS_PER_IP: '0', // every client here is 127.0.0.1
      TERN_OUTPUT_LIMIT: String(2 << 20),
      TERN_OUTPUT_LIMIT_TOTAL: String(32 << 20),
      TERN_OUTPUT_LIMIT_IP: '0',
      TERN_MAX_MESSAGE: String(64 << 10),
      TERN_MAX_FRAME: String(128 << 10),
      TERN_MAX_UPLOADS_PER_IP: '4',
      ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0:exitcode=23:quarantine_size_mb=16',
    },
  });
  let attacker;
  try {
    const A = await session(server, uid('byA'));
    const B = await session(server, uid('byB'));
    const { cid } = await startConv(A, [B.peer]);
    attacker = fork(join(here, '..', 'lib', 'attacker.mjs'), [JSON.stringify({
      server: { port: server.port, appId: server.appId, appKey: server.appKey, masterKey: server.masterKey },
      attacks: process.env.ATTACKS?.split(','),
    })], { stdio: 'inherit' });
    const fromAttacker = (key) => new Promise((resolve, reject) => {
      attacker.on('message', (m) => { if (m[key]) resolve(m[key]); });
      attacker.on('exit', (code) => reject(new Error(`attacker exited ${code} before sending ${key}`)));
    });
    await fromAttacker('ready');
    const rss = rssSampler(server.child.pid, 100);

    // the pair: A sends, B receives; a round at a time, about 25 a second
    const lat = [];
    let sent = 0;
    const end = Date.now() + MEASURE_MS;
    while (Date.now() < end) {
      const text = TEXT(`bystander ${sent}`);
      const got = B.next((p) => p.cmd === 'direct' && p.directMessage?.msg === text, 10000);
      const t0 = performance.now();
      const ack = await A.request({ cmd: 'direct', directMessage: { cid, msg: text } }, 10000);
      assert.equal(ack.cmd, 'ack', JSON.stringify(ack));
      await got;
      lat.push(performance.now() - t0);
      sent++;
      B.pushes.length = 0;
      await sleep(40);
    }
    const mem = rss.stop();

    attacker.send('stop');
    const stats = await fromAttacker('stats');
    // the bystanders
    const p99 = pct(lat, 0.99);
    const p50 = pct(lat, 0.5);
    console.log(`bystander: ${sent} messages, p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${Math.max(...lat).toFixed(1)} ms; server RSS max ${(mem.max / 1024).toFixed(0)} MiB; attacks ${JSON.stringify(stats)}`);
    // the attacks ran, and were refused where they should be
    assert.ok(stats.attrAcked > 100, `attribute updates: ${JSON.stringify(stats)}`);
    assert.ok(stats.queries > 10 && stats.queryRefused > 0, `hostile queries: ${JSON.stringify(stats)}`);
    assert.ok(stats.fdOpened > 400, `descriptor attack: ${JSON.stringify(stats)}`);
    assert.ok(stats.uploadsRefused > 40, `uploads: ${JSON.stringify(stats)}`);
    assert.ok(stats.floodSent > 50, `flood: ${JSON.stringify(stats)}`);
    assert.match(server.stderr(), /accept: Too many open files/, 'the descriptor attack reached EMFILE');

    assert.ok(sent > 100, `${sent} rounds`);
    assert.ok(p99 < 100, `send→receive p99 ${p99.toFixed(1)} ms`);
    assert.equal(A.isClosed, false);
    assert.equal(B.isClosed, false);
    await A.echo();
    await B.echo();
    assert.ok(mem.max < 1024 * 1024, `server RSS reached ${(mem.max / 1024).toFixed(0)} MiB`);
  } finally {
    if (attacker && attacker.exitCode === null) attacker.kill('SIGKILL');
    await closeAll(server);
    await server.stop();
  }
});

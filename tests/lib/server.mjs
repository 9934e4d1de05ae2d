// Starting a real ternd for a test: its own data directory, a free port (port 0, read
// back from the "listening on" line), and a teardown that fails the test when the
// server's stderr shows a sanitizer report or it did not exit cleanly.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function ternBinary() {
  return process.env.TERND || join(root, 'build-asan', 'ternd');
}

// shell: commands bash runs before it execs ternd in its place (same pid), e.g.
// 'ulimit -n 64' to start it with few descriptors.
export async function startServer({ env = {}, dataDir, args = [], shell } = {}) {
  const dir = dataDir || mkdtempSync(join(tmpdir(), 'tern-test-'));
  const appId = env.TERN_APP_ID || 'testAppId0000000000000000-gzGzoHsz';
  const [cmd, argv] = shell ? ['bash', ['-c', `${shell} && exec "$0" "$@"`, ternBinary(), ...args]] : [ternBinary(), args];
  const child = spawn(cmd, argv, {
    env: {
      ...process.env,
      TERN_LISTEN: '127.0.0.1:0',
      TERN_DATA_DIR: dir,
      TERN_APP_ID: appId,
      TERN_APP_KEY: env.TERN_APP_KEY || 'testAppKey00000000000000',
      TERN_MASTER_KEY: env.TERN_MASTER_KEY || 'testMasterKey00000000000',
      ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0:exitcode=23',
      UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1:exitcode=24',
      // The ThreadSanitizer build (scripts/test.sh's TSan phase): every race is reported,
      // the exit code says so, and tests/tsan.supp lists the third-party ones let through.
      TSAN_OPTIONS: `halt_on_error=0:exitcode=25:second_deadlock_stack=1:suppressions=${join(root, 'tests', 'tsan.supp')}`,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; if (process.env.TERN_TEST_VERBOSE) process.stderr.write(d); });
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ternd did not start:\n${stderr}`)), 20000);
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = /listening on [^\s]+:(\d+)/.exec(stdout);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`ternd exited ${code}:\n${stderr}`)); });
  });
  const server = {
    child, dir, port, appId,
    appKey: env.TERN_APP_KEY || 'testAppKey00000000000000',
    masterKey: env.TERN_MASTER_KEY || 'testMasterKey00000000000',
    wsUrl: `ws://127.0.0.1:${port}/`,
    httpUrl: `http://127.0.0.1:${port}`,
    stderr: () => stderr,
    // Graceful stop; rejects if the exit was not clean or a sanitizer spoke.
    async stop({ keepData = false } = {}) {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', (code, sig) => r({ code, sig })));
        child.kill('SIGTERM');
        const { code, sig } = await exited;
        if (!keepData && !dataDir) rmSync(dir, { recursive: true, force: true });
        if (code !== 0) throw new Error(`ternd exited with ${code ?? sig}:\n${stderr.slice(-4000)}`);
      }
      if (/ERROR: AddressSanitizer|runtime error:|LeakSanitizer|WARNING: ThreadSanitizer/.test(stderr)) {
        throw new Error(`sanitizer report from ternd:\n${stderr.slice(-6000)}`);
      }
    },
    // Hard kill (crash tests); the data directory stays.
    async kill() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
  return server;
}

// n ternd nodes on one bus (redis: tests/lib/redis.mjs), each with its own data directory
// (until the PostgreSQL store lands, each its own SQLite) and id node1…noden, started
// together; resolves once every node's /metrics counts n live nodes (tern_bus_nodes).
// opts: env and args for every node, and per node (envs[i]).
export async function startNodes(n, redis, { env = {}, envs = [], args = [] } = {}) {
  const nodes = await Promise.all(Array.from({ length: n }, (_, i) => startServer({
    env: { TERN_BUS: redis.url, TERN_NODE_ID: `node${i + 1}`, ...env, ...(envs[i] || {}) },
    args,
  })));
  await Promise.all(nodes.map((s) => waitNodes(s, n)));
  return nodes;
}

// Polls s's /metrics until it counts `want` live nodes (itself included); the time it took.
export async function waitNodes(s, want, timeoutMs = 15000) {
  const t0 = Date.now();
  for (;;) {
    const res = await fetch(`${s.httpUrl}/metrics`, {
      headers: { 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master` },
    });
    const m = /^tern_bus_nodes (\d+)$/m.exec(await res.text());
    if (m && Number(m[1]) === want) return Date.now() - t0;
    if (Date.now() - t0 > timeoutMs) throw new Error(`node on port ${s.port} never saw ${want} nodes (last: ${m?.[1]})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

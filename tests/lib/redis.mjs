// A real redis-server for the cluster tests (tests/cluster): Debian's package, on a free
// loopback port, in a temporary directory, with persistence off; stopped (and the
// directory removed) after. restart() stops it and starts it again on the same port, empty,
// as a crashed or restarted Redis comes back.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function launch(port, dir) {
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    '--dir', dir, '--daemonize', 'no', '--protected-mode', 'yes',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${out}`)), 10000);
    const onData = (d) => {
      out += d;
      if (/Ready to accept connections/.test(out)) { clearTimeout(timer); resolve(child); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`redis-server: ${e.message} (scripts/deps.sh --test installs it)`)); });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`redis-server exited ${code}:\n${out}`)); });
  });
}

export async function startRedis() {
  const dir = mkdtempSync(join(tmpdir(), 'tern-redis-'));
  const port = await freePort();
  let child = await launch(port, dir);
  const redis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() { return child?.pid; },
    async stop({ keepDir = false } = {}) {
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      child = null;
      if (!keepDir) rmSync(dir, { recursive: true, force: true });
    },
    async start() {
      child = await launch(port, dir);
    },
    async restart() {
      await redis.stop({ keepDir: true });
      await redis.start();
    },
    /** One redis-cli command; its output, trimmed. */
    cli(...args) {
      return execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim();
    },
  };
  return redis;
}

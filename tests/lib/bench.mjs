// tern-bench from the test build, started as every spawned binary of the suites is: with
// the sanitizers' settings (a report fails the run through its exit code).
import { spawn } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const benchBin = join(process.env.TERN_BUILD || join(root, 'build-asan'), 'tern-bench');

// Starts it: {child, done (resolves {code, signal, stdout, stderr} at exit), stderr()}.
export function spawnBench(args) {
  const child = spawn(benchBin, args, {
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:exitcode=23', UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1:exitcode=24' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  const done = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done, stderr: () => stderr };
}

// Runs it to the end: {code, signal, stdout, stderr}; killed and rejected after timeoutMs.
export function runBench(args, { timeoutMs = 60000 } = {}) {
  const b = spawnBench(args);
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      b.child.kill('SIGKILL');
      reject(new Error(`tern-bench timed out:\n${b.stderr()}`));
    }, timeoutMs);
  });
  return Promise.race([b.done, timeout]).finally(() => clearTimeout(timer));
}

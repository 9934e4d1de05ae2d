// Running libtern's C test programs (tests/sdk/*.c, built by src/sdk/CMakeLists.txt) from
// node:test files: where the binaries are, and a promise-returning runner that keeps
// stdout/stderr and fails with both when the program exits non-zero (which includes
// sanitizer reports: ASan/LSan make the exit code non-zero).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function sdkBinary(name) {
  const build = process.env.TERN_BUILD || join(root, 'build-asan');
  return join(build, 'src', 'sdk', name);
}

export function cliBinary() {
  const build = process.env.TERN_BUILD || join(root, 'build-asan');
  return join(build, 'src', 'cli', 'tern');
}

export function haveBinary(path) {
  return existsSync(path);
}

/** Runs a program; resolves {code, stdout, stderr}. Rejects on timeout. */
export function run(bin, args, { env = {}, timeoutMs = 120000, input } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      env: {
        ...process.env,
        ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0:exitcode=23',
        UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1:exitcode=24',
        ...env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${bin} ${args.join(' ')} timed out\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? sig, stdout, stderr });
    });
    // a spawn that fails (ENOENT, EACCES) emits 'error' and never 'exit'
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${bin}: ${e.message}`));
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/** Like run() but throws unless the exit code is 0. */
export async function runOk(bin, args, opts) {
  const r = await run(bin, args, opts);
  if (r.code !== 0) {
    throw new Error(`${bin} ${args.join(' ')} exited ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr.slice(-8000)}`);
  }
  return r;
}

// Issue #11, the process points: a second ternd on a port (22) or a data directory (23)
// in use fails at start; files are created 0600 and directories 0700 (25); listening
// beyond loopback with signatures off says so (15); SIGHUP reopens the log file and
// reloads what can change, never ending the process; --version; unknown flags (24).
// docs/security.md, docs/architecture.md "Listening", docs/options.md (on SIGHUP).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, ternBinary } from '../lib/server.mjs';
import { closeAll, connect, login, session, startConv, sendMsg, uid } from '../lib/proto-client.mjs';
import { httpRequest } from '../lib/proto-raw.mjs';
import { png, uploadRaw } from '../lib/files-util.mjs';
import { TEXT, sleep, until } from '../lib/issue4-util.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SANITIZER = /ERROR: AddressSanitizer|runtime error:|LeakSanitizer/;

/** Runs ternd to its exit (it is expected to refuse to start): {code, stdout, stderr}. */
function runTernd(args, env = {}, ms = 20000) {
  return new Promise((resolve, reject) => {
    const child = spawn(ternBinary(), args, {
      env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:exitcode=23', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`ternd ${args.join(' ')} still running after ${ms} ms:\n${stdout}\n${stderr}`)); }, ms);
    child.on('exit', (code, signal) => { clearTimeout(t); resolve({ code, signal, stdout, stderr }); });
  });
}

const tmp = (prefix) => mkdtempSync(join(tmpdir(), prefix));

// ------------------------------------------------------------------ 22: port in use

test('22: a second ternd on a port a running ternd listens on fails at start with "address in use"; the first keeps every client', { timeout: 60000 }, async () => {
  const a = await startServer();
  const dir = tmp('tern-second-');
  try {
    for (const host of ['127.0.0.1', '0.0.0.0']) {
      const b = await runTernd([], {
        TERN_LISTEN: `${host}:${a.port}`, TERN_DATA_DIR: dir, TERN_APP_ID: 'otherApp0000000000000000-gzGzoHsz',
      });
      assert.notEqual(b.code, 0, `the second ternd on ${host}:${a.port} started:\n${b.stdout}`);
      assert.match(b.stderr, new RegExp(`listen on ${host.replace(/\./g, '\\.')}:${a.port}: Address already in use`));
      assert.doesNotMatch(b.stdout, /listening on/);
      assert.doesNotMatch(b.stderr, SANITIZER);
    }
    // every connection still reaches the first one (its app id answers)
    for (let k = 0; k < 20; k++) {
      const c = await connect(a);
      const r = await login(c, uid('only'));
      assert.equal(r.op, 'opened');
      await c.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await closeAll(a);
    await a.stop();
  }
});

// ------------------------------------------------------------------ 23: data directory in use

test('23: a second ternd on a data directory in use fails at start with a clear message; after the first is killed (SIGKILL) the directory is free again', { timeout: 60000 }, async () => {
  const dir = tmp('tern-lock-');
  const a = await startServer({ dataDir: dir });
  try {
    const b = await runTernd([], { TERN_LISTEN: '127.0.0.1:0', TERN_DATA_DIR: dir });
    assert.notEqual(b.code, 0, `the second ternd started:\n${b.stdout}`);
    assert.match(b.stderr, new RegExp(`data directory ${dir} is in use by another ternd \\(pid ${a.child.pid}\\)`));
    assert.doesNotMatch(b.stdout, /listening on/);
    assert.doesNotMatch(b.stderr, SANITIZER);
    // the first is untouched
    const c = await session(a, uid('still'));
    await c.echo();
    await c.close();
    // a stale lock file (the process is gone, the file stays) blocks nothing
    await a.kill();
    assert.ok(existsSync(join(dir, 'ternd.lock')));
    const again = await startServer({ dataDir: dir });
    try {
      const d = await session(again, uid('after'));
      await d.echo();
      await d.close();
      assert.equal(readFileSync(join(dir, 'ternd.lock'), 'utf8').trim(), String(again.child.pid));
    } finally {
      await closeAll(again);
      await again.stop();
    }
  } finally {
    if (a.child.exitCode === null && a.child.signalCode === null) await a.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

// ------------------------------------------------------------------ 25: file modes

test('25: under umask 022, the data directory, database, WAL, app.json, lock and uploads are created 0600 / directories 0700', { timeout: 60000 }, async () => {
  const parent = tmp('tern-modes-');
  const dir = join(parent, 'data'); // ternd creates it
  // no keys in the environment: ternd generates them and writes app.json
  const server = await startServer({ dataDir: dir, shell: 'umask 022', env: { TERN_APP_KEY: '', TERN_MASTER_KEY: '' } });
  try {
    const keys = JSON.parse(readFileSync(join(dir, 'app.json'), 'utf8'));
    server.appKey = keys.app_key;
    // some traffic: a stored message (the WAL), and an upload
    const A = await session(server, uid('A'));
    const cid = (await startConv(A, [uid('B')])).cid;
    await sendMsg(A, cid, TEXT('stored'));
    const up = await uploadRaw(server, 'pic.png', png(3, 2), { contentType: 'image/png' });
    assert.equal(up.status, 201, up.text);
    const mode = (p) => (statSync(p).mode & 0o777).toString(8);
    assert.equal(mode(dir), '700', 'data directory');
    for (const f of ['tern.db', 'tern.db-wal', 'tern.db-shm', 'app.json', 'ternd.lock']) {
      assert.ok(existsSync(join(dir, f)), `${f} exists`);
      assert.equal(mode(join(dir, f)), '600', f);
    }
    assert.equal(mode(join(dir, 'files')), '700', 'files directory');
    const stored = readdirSync(join(dir, 'files'));
    assert.ok(stored.length >= 2, `upload stored: ${stored}`);
    for (const f of stored) assert.equal(mode(join(dir, 'files', f)), '600', `files/${f}`);
    // nothing in the data directory is readable by group or others
    const walk = (d) => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? [join(d, e.name), ...walk(join(d, e.name))] : [join(d, e.name)]));
    for (const p of walk(dir)) assert.equal(statSync(p).mode & 0o077, 0, `${p} is ${mode(p)}`);
  } finally {
    await closeAll(server);
    await server.stop();
    rmSync(parent, { recursive: true, force: true });
  }
});

// ------------------------------------------------------------------ 15: unsigned and reachable

test('15: listening on 0.0.0.0 with signatures off logs one warning naming TERN_SIGN_LOGIN / TERN_SIGN_CONVERSATION; on 127.0.0.1, or with both on, none', { timeout: 60000 }, async () => {
  const warning = /reachable from other machines.*TERN_SIGN_/;
  const cases = [
    { env: { TERN_LISTEN: '0.0.0.0:0' }, warn: /login signatures and conversation signatures off.*TERN_SIGN_LOGIN=1 and TERN_SIGN_CONVERSATION=1/ },
    { env: { TERN_LISTEN: '0.0.0.0:0', TERN_SIGN_LOGIN: '1' }, warn: /with conversation signatures off.*TERN_SIGN_CONVERSATION=1/ },
    { env: { TERN_LISTEN: '0.0.0.0:0', TERN_SIGN_LOGIN: '1', TERN_SIGN_CONVERSATION: '1' }, warn: null },
    { env: { TERN_LISTEN: '127.0.0.1:0' }, warn: null },
  ];
  for (const { env, warn } of cases) {
    const server = await startServer({ env });
    try {
      // the warning comes before the "app id" line; one request later it has surely arrived
      await httpRequest(server, { path: '/health' });
      await sleep(100);
      const lines = server.stderr().split('\n').filter((l) => warning.test(l));
      if (warn) {
        assert.equal(lines.length, 1, `${JSON.stringify(env)}: ${server.stderr()}`);
        assert.match(lines[0], warn);
        assert.match(lines[0], / warn +listening on 0\.0\.0\.0:\d+, reachable from other machines/);
      } else {
        assert.deepEqual(lines, [], JSON.stringify(env));
      }
    } finally {
      await server.stop();
    }
  }
});

// ------------------------------------------------------------------ 24: SIGHUP, --version, flags

test('24: SIGHUP reopens log_file (rotation) and applies the reloadable options (log level, limits); a bad file changes nothing; the process lives on', { timeout: 90000 }, async () => {
  const dir = tmp('tern-hup-');
  const conf = join(dir, 'ternd.conf');
  const log = join(dir, 'ternd.log');
  writeFileSync(conf, `log_file = ${log}\nmax_conns_per_ip = 2\nlog_level = info\n`);
  const server = await startServer({ args: ['--config', conf] });
  const readLog = (p = log) => (existsSync(p) ? readFileSync(p, 'utf8') : '');
  const refused = () => connect(server).then((c) => { c.close(); return false; }, (e) => e.statusCode === 429);
  try {
    assert.match(readLog(), /open files: limit/, 'the log goes to log_file');
    assert.doesNotMatch(server.stderr(), /open files: limit/, 'and not to stderr');
    // max_conns_per_ip = 2
    const a = await session(server, uid('a'));
    const b = await session(server, uid('b'));
    assert.equal(await refused(), true, 'a third connection is refused at 2');
    assert.match(readLog(), /over max_conns_per_ip, refused/);

    // rotate, change the file, SIGHUP
    renameSync(log, `${log}.1`);
    writeFileSync(conf, `log_file = ${log}\nmax_conns_per_ip = 3\nlog_level = error\nworkers = 3\n`);
    server.child.kill('SIGHUP');
    await until(() => /SIGHUP: log reopened; reloaded: /.test(readLog()), 10000, 'the reload line in the new log file');
    const reloaded = /SIGHUP: log reopened; reloaded: (.*)/.exec(readLog())[1];
    assert.deepEqual(reloaded.split(', ').sort(), ['log_level', 'max_conns_per_ip']);
    assert.doesNotMatch(readLog(`${log}.1`), /SIGHUP/, 'nothing after the rotation goes to the old file');
    assert.match(readLog(`${log}.1`), /over max_conns_per_ip, refused/);
    assert.equal(server.child.exitCode, null, 'SIGHUP did not end ternd');
    await a.echo();
    await b.echo();
    // the new limit: a third is accepted, a fourth refused; log_level = error: not logged
    const c = await session(server, uid('c'));
    await sleep(1100); // the refusal line is limited to one a second
    assert.equal(await refused(), true, 'a fourth connection is refused at 3');
    assert.doesNotMatch(readLog(), /refused/, 'warnings are off at log_level = error');
    assert.match(readLog(), /SIGHUP: changed but only applied at a restart: workers/, 'the reload itself is always said');

    // a bad file: an error line, nothing changes (still 3), ternd lives
    writeFileSync(conf, `log_file = ${log}\nmax_conns_per_ip = many\nlog_level = info\n`);
    server.child.kill('SIGHUP');
    await until(() => /SIGHUP: the configuration has an error, nothing changed: .*max_conns_per_ip: expected an integer/.test(readLog()), 10000, 'the error line');
    assert.equal(await refused(), true, 'still refused at 3');
    // back to info (twice in a row: no harm): warnings are logged again
    writeFileSync(conf, `log_file = ${log}\nmax_conns_per_ip = 3\nlog_level = info\nworkers = 3\n`);
    server.child.kill('SIGHUP');
    server.child.kill('SIGHUP');
    await until(() => /reloaded: log_level\n/.test(readLog()), 10000, 'log_level back to info');
    await sleep(1100);
    assert.equal(await refused(), true);
    await until(() => /over max_conns_per_ip, refused/.test(readLog()), 5000, 'the refusal logged at info');
    for (const x of [a, b, c]) await x.echo();
    assert.equal(server.child.exitCode, null);
  } finally {
    await closeAll(server);
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('24: --version prints the version and the git commit; a tree without .git says "unknown"', { timeout: 60000 }, async () => {
  const r = await runTernd(['--version']);
  assert.equal(r.code, 0, r.stderr);
  const m = /^ternd (\d+\.\d+\.\d+) \(commit ([0-9a-f]{12}(-dirty)?|unknown)\)\n$/.exec(r.stdout);
  assert.ok(m, r.stdout);
  if (existsSync(join(root, '.git'))) {
    const head = execFileSync('git', ['-C', root, 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8' }).trim();
    assert.equal(m[2].replace('-dirty', ''), head, 'the commit the build was made from (a ternd built before the last commit fails here: rebuild it)');
  }
  // the generator itself, on a source tree without .git (a release tarball)
  const d = tmp('tern-tarball-');
  try {
    mkdirSync(join(d, 'src'));
    execFileSync('cmake', [`-DSRC=${join(d, 'src')}`, `-DOUT=${join(d, 'v.h')}`, '-P', join(root, 'cmake', 'version.cmake')]);
    assert.equal(readFileSync(join(d, 'v.h'), 'utf8'), '#define TERN_COMMIT "unknown"\n');
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('24: unknown flags are reported as such (exit 2, no sanitizer report), also a misspelt boolean before a value', { timeout: 60000 }, async () => {
  for (const [args, re] of [
    [['--bogus'], /^ternd: unknown option --bogus \(see --help\)$/m],
    [['--bogus=1'], /^ternd: unknown option --bogus \(see --help\)$/m],
    [['--sign-loginn', '--listen', '127.0.0.1:0'], /^ternd: unknown option --sign-loginn \(see --help\)$/m],
    [['-v'], /^ternd: unexpected argument "-v"/m],
    [['--max-conns-per-ip'], /^ternd: --max_conns_per_ip needs a value$/m],
  ]) {
    const r = await runTernd(args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, SANITIZER);
  }
  const h = await runTernd(['--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /--max_conns_per_ip .*\n.*reloaded on SIGHUP/);
});

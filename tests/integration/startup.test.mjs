// Issue #15 point 6 and the Type=notify half of point 1: what ternd says when it starts.
//  * the banner: app id and keys, then the WebSocket, REST, router, console and chat URLs;
//    with TLS every one of them says https / wss;
//  * listening on 0.0.0.0 without public_url warns (the router would hand out 0.0.0.0);
//  * --listen=localhost:PORT is resolved; a name that does not resolve says an IP is needed;
//  * sd_notify: READY=1 only once the port accepts, RELOADING=1 … READY=1 around SIGHUP,
//    STOPPING=1 at shutdown, to a path or an abstract NOTIFY_SOCKET;
//  * `make run`: no compiler chatter, only ternd, tern and the web pages built, then the banner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ternBinary } from '../lib/server.mjs';
import { notifySocket } from '../lib/notify.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const build = process.env.TERN_BUILD || join(root, 'build-asan');
const SANITIZER = /ERROR: AddressSanitizer|runtime error:|LeakSanitizer/;
const tmp = (p) => mkdtempSync(join(tmpdir(), p));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts a command that runs ternd (ternd itself by default); resolves once its stdout
 * has the banner's router line, or once it exits. */
function start({ args = [], env = {}, cmd = ternBinary(), cwd = root, detached = false, ms = 30000 } = {}) {
  const dir = tmp('tern-startup-');
  const child = spawn(cmd, args, {
    cwd, detached,
    env: {
      ...process.env, TERN_LISTEN: '127.0.0.1:0', TERN_DATA_DIR: join(dir, 'data'),
      ASAN_OPTIONS: 'detect_leaks=1:exitcode=23', ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const p = { child, dir, out: '', err: '', exit: null };
  child.stdout.on('data', (d) => { p.out += d; });
  child.stderr.on('data', (d) => { p.err += d; });
  p.exited = new Promise((r) => child.on('exit', (code, sig) => { p.exit = code ?? sig; r(p.exit); }));
  // 'exit' can come before the last of stdout and stderr has been read; 'close' comes once
  // both pipes are at their end, so p.out and p.err are then all the process wrote
  p.closed = new Promise((r) => child.on('close', r));
  p.port = () => Number(/ternd listening on [^\s]+:(\d+)/.exec(p.out)[1]);
  p.stop = async (sig = 'SIGTERM') => {
    if (p.exit === null) { if (detached) process.kill(-child.pid, sig); else child.kill(sig); }
    const code = await p.exited;
    await p.closed;
    rmSync(dir, { recursive: true, force: true });
    assert.doesNotMatch(p.err, SANITIZER);
    return code;
  };
  p.ready = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no banner:\n${p.out}\n${p.err}`)), ms);
    const check = () => {
      if (/^router: .*\n/m.test(p.out)) { clearTimeout(t); resolve(p); } else if (p.exit !== null) { clearTimeout(t); resolve(p); } else setTimeout(check, 20);
    };
    check();
  });
  return p;
}

const canConnect = (port) => new Promise((resolve) => {
  const s = tcpConnect({ host: '127.0.0.1', port }, () => { s.destroy(); resolve(true); });
  s.on('error', () => resolve(false));
});

test('the banner: keys, then the WebSocket, REST, router, console and chat URLs', { timeout: 60000 }, async () => {
  const p = await start({ env: { TERN_APP_ID: 'bannerApp000000000000000-gzGzoHsz', TERN_APP_KEY: 'bannerKey', TERN_MASTER_KEY: 'bannerMaster' } }).ready;
  try {
    const port = p.port();
    const lines = p.out.split('\n');
    const at = lines.findIndex((l) => l.startsWith('app id:'));
    assert.deepEqual(lines.slice(at, at + 6), [
      'app id:     bannerApp000000000000000-gzGzoHsz',
      'app key:    bannerKey',
      'master key: bannerMaster',
      `WebSocket:  ws://127.0.0.1:${port}/`,
      `REST API:   http://127.0.0.1:${port}   (the SDKs' server option)`,
      `router:     GET http://127.0.0.1:${port}/v1/route -> ws://127.0.0.1:${port}/`,
    ]);
    // the console and chat lines when the build has the web pages (ternd found them)
    if (existsSync(join(build, 'web', 'console'))) {
      assert.equal(lines[at + 6], `console:    http://127.0.0.1:${port}/console/`);
      assert.equal(lines[at + 7], `chat:       http://127.0.0.1:${port}/chat/`);
      assert.equal((await fetch(`http://127.0.0.1:${port}/console/`)).status, 200);
    }
    const route = await (await fetch(`http://127.0.0.1:${port}/v1/route?appId=bannerApp000000000000000-gzGzoHsz`)).json();
    assert.equal(route.server, `ws://127.0.0.1:${port}/`, 'the router hands out what the banner says');
    assert.doesNotMatch(p.err, /without public_url/, 'no warning on 127.0.0.1');
  } finally {
    assert.equal(await p.stop(), 0);
  }
});

test('with TLS the banner says https and wss, and the router URL answers over https', { timeout: 60000 }, async () => {
  const dir = tmp('tern-startup-tls-');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out',
    join(dir, 'cert.pem'), '-subj', '/CN=127.0.0.1', '-days', '1'], { stdio: 'ignore' });
  const p = await start({ env: { TERN_TLS_CERT: join(dir, 'cert.pem'), TERN_TLS_KEY: join(dir, 'key.pem') } }).ready;
  try {
    const port = p.port();
    assert.match(p.out, new RegExp(`^WebSocket:  wss://127\\.0\\.0\\.1:${port}/$`, 'm'));
    assert.match(p.out, new RegExp(`^REST API:   https://127\\.0\\.0\\.1:${port} `, 'm'));
    assert.match(p.out, new RegExp(`^router:     GET https://127\\.0\\.0\\.1:${port}/v1/route -> wss://127\\.0\\.0\\.1:${port}/$`, 'm'));
    if (existsSync(join(build, 'web', 'console'))) assert.match(p.out, new RegExp(`^console:    https://127\\.0\\.0\\.1:${port}/console/$`, 'm'));
    const r = await new Promise((resolve, reject) => {
      https.get(`https://127.0.0.1:${port}/v1/route?appId=x`, { ca: readFileSync(join(dir, 'cert.pem')), checkServerIdentity: () => undefined }, (res) => {
        let body = '';
        res.on('data', (d) => { body += d; });
        res.on('end', () => resolve(body));
      }).on('error', reject);
    });
    assert.match(r, /"server":"wss:\/\/127\.0\.0\.1:/);
  } finally {
    assert.equal(await p.stop(), 0);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('listening on 0.0.0.0 without public_url warns once that the router hands out 0.0.0.0; with public_url it does not', { timeout: 60000 }, async () => {
  const warning = /warn +listening on 0\.0\.0\.0:\d+ without public_url: the router hands clients ws:\/\/0\.0\.0\.0:\d+\/, an address no other machine can connect to; set public_url/;
  // ternd writes the warning on stderr after the banner on stdout (main.c, banner()): two
  // pipes, which this process may read in either order, so the router line that makes
  // ready resolve can arrive before the warning. Wait for the warning, and count it in all
  // ternd wrote (once it has exited and both pipes are read).
  const a = await start({ env: { TERN_LISTEN: '0.0.0.0:0' } }).ready;
  try {
    for (const end = Date.now() + 10000; !warning.test(a.err) && a.exit === null && Date.now() < end;) await sleep(20);
  } finally {
    assert.equal(await a.stop(), 0);
  }
  assert.equal(a.err.split('\n').filter((l) => warning.test(l)).length, 1, a.err);
  const b = await start({ env: { TERN_LISTEN: '0.0.0.0:0', TERN_PUBLIC_URL: 'wss://im.example.com/' } }).ready;
  try {
    assert.match(b.out, /^router: .* -> wss:\/\/im\.example\.com\/$/m);
  } finally {
    assert.equal(await b.stop(), 0);
  }
  assert.doesNotMatch(b.err, /without public_url/);
});

test('--listen=localhost:PORT is resolved to an address; a name that does not resolve says an IP is needed', { timeout: 60000 }, async () => {
  const p = await start({ args: ['--listen=localhost:0'] }).ready;
  try {
    assert.match(p.out, /^ternd listening on (127\.0\.0\.1|\[::1\]):\d+ /m);
    assert.match(p.err, /listen: localhost is (127\.0\.0\.1|::1)/);
    if (p.out.includes('127.0.0.1')) assert.equal(await canConnect(p.port()), true);
  } finally {
    assert.equal(await p.stop(), 0);
  }
  const bad = start({ args: ['--listen=no-such-host.invalid:8080'] });
  const code = await bad.exited;
  assert.notEqual(code, 0);
  assert.match(bad.err, /listen: cannot resolve "no-such-host\.invalid" \(.*\): give an IP address, e\.g\. 127\.0\.0\.1:8080 or \[::1\]:8080/);
  assert.doesNotMatch(bad.out, /listening on/);
  await bad.stop();
});

test('sd_notify: READY=1 once the port accepts connections, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 at shutdown', { timeout: 60000 }, async () => {
  const dir = tmp('tern-notify-');
  for (const address of [join(dir, 'notify.sock'), `@tern-notify-test-${process.pid}`]) {
    const n = await notifySocket(address);
    const p = start({ env: { NOTIFY_SOCKET: address } });
    try {
      await n.waitFor(/READY=1/);
      // READY=1 came after the listeners were open: the port is in the banner, and accepts
      await p.ready;
      assert.equal(await canConnect(p.port()), true);
      assert.deepEqual(n.messages(), [`READY=1\\nSTATUS=listening on 127.0.0.1:${p.port()}`]);
      p.child.kill('SIGHUP');
      await n.waitCount(3);
      assert.deepEqual(n.messages().slice(1), ['RELOADING=1', 'READY=1']);
      assert.equal(await p.stop(), 0);
      await n.waitFor(/STOPPING=1/);
      assert.deepEqual(n.messages().slice(3), ['STOPPING=1']);
    } finally {
      n.close();
      if (p.exit === null) await p.stop('SIGKILL');
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

test('`make run`: the build is quiet (ternd, tern and the web pages only), then the banner', { timeout: 600000 }, async () => {
  // The plan: the one build command names only the run targets.
  const plan = execFileSync('make', ['-n', 'run', `BUILD=${relative(root, build)}`], { cwd: root, encoding: 'utf8' });
  const builds = plan.split('\n').filter((l) => /cmake --build/.test(l));
  assert.equal(builds.length, 1, plan);
  assert.match(builds[0], /--target run-targets/);
  // The run itself, on this test's build directory (up to date: nothing to compile).
  const data = tmp('tern-make-run-');
  const p = await start({ cmd: 'make', args: ['-s', 'run', `BUILD=${relative(root, build)}`, `DATA=${data}`, 'ARGS=--listen=127.0.0.1:0'], detached: true, ms: 500000 }).ready;
  try {
    assert.equal(p.exit, null, `make run ended:\n${p.out}\n${p.err}`);
    const before = p.out.slice(0, p.out.indexOf('ternd listening on'));
    assert.doesNotMatch(before + p.err, /Building C|Linking C|Built target|\[ *\d+%\]|-- Configuring|-- Build files/, 'no compiler chatter');
    assert.match(before, /^building ternd and tern in .* \(log: .*build\.log\)\.\.\. done\n$/m);
    assert.match(p.out, /^app id: +\S+\napp key: +\S+\nmaster key: +\S+\nWebSocket: +ws:\/\/127\.0\.0\.1:\d+\/\n/m);
    assert.ok(existsSync(join(data, 'app.json')), 'the data directory is DATA');
  } finally {
    await p.stop('SIGINT');
    rmSync(data, { recursive: true, force: true });
  }
});

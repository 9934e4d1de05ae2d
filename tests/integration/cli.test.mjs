// The `tern` CLI end to end against a real ternd:
//  * scriptable commands: every --json output parses and says what happened (conv create,
//    add, remove, count, query, send, history with paging, watch as JSON lines);
//  * the command line itself (issue #15 point 5): --version, `tern COMMAND --help`, unknown
//    commands and options named, a send without text, numbers outside their range, JSON
//    arguments with the parser's message, connection errors with the URL; wss:// with
//    --cacert (and what fails without it); watch --count from its start only;
//  * `tern chat` in two terminals (tmux, each pane a real pty): Tom creates a conversation
//    with Jerry, they talk both ways, the typing indicator shows, /more puts older pages
//    above and says once that there are no more, and both leave cleanly (the CLI is an ASan
//    build: a leak would fail its exit code); then the line editor (arrows, history, UTF-8),
//    a failed send shown as failed, /login after a kick, unnamed conversations by members,
//    /open and /new without arguments.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { cliBinary, run, runOk } from '../lib/sdk-c.mjs';
import { session, startConv, sendMsg, closeAll } from '../lib/proto-client.mjs';

const tern = cliBinary();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const suffix = Math.random().toString(16).slice(2, 8);
const id = (name) => `${name}-${suffix}`;

describe('tern CLI', () => {
  let server;
  let env;
  before(async () => {
    server = await startServer();
    env = { TERN_URL: server.wsUrl, TERN_APP_ID: server.appId, TERN_APP_KEY: server.appKey };
  });
  after(async () => { await server?.stop(); });

  const cli = async (args) => JSON.parse((await runOk(tern, args, { env })).stdout);

  it('scriptable commands print JSON that parses', async () => {
    const tom = id('Tom');
    const jerry = id('Jerry');
    const conv = await cli(['conv', 'create', '--as', tom, '--name', '猫和老鼠', '--attr', '{"type":"private"}', '--json', jerry]);
    assert.equal(conv.name, '猫和老鼠');
    assert.deepEqual(conv.members, [jerry, tom].sort());
    assert.deepEqual(conv.attributes, { type: 'private' });
    assert.match(conv.id, /^[0-9a-f]{24}$/);

    const added = await cli(['conv', 'add', '--as', tom, '--conv', conv.id, '--json', id('Spike')]);
    assert.equal(added.members.length, 3);
    const removed = await cli(['conv', 'remove', '--as', tom, '--conv', conv.id, '--json', id('Spike')]);
    assert.equal(removed.members.length, 2);
    assert.deepEqual(await cli(['conv', 'count', '--as', tom, '--conv', conv.id, '--json']), { id: conv.id, count: 2 });

    const sent = [];
    for (let i = 0; i < 5; i++) sent.push(await cli(['send', '--as', tom, '--conv', conv.id, '--json', `hello ${i}`]));
    assert.equal(sent[0].text, 'hello 0');
    assert.equal(sent[0].type, -1);
    assert.equal(sent[0].from, tom);
    const loc = await cli(['send', '--as', jerry, '--conv', conv.id, '--type', '-1', '--attr', '{"k":[1,2]}', '--json', 'with attrs']);
    assert.deepEqual(loc.attributes, { k: [1, 2] });

    // history: newest page, then the page before its oldest message
    const page1 = await cli(['history', '--as', jerry, '--conv', conv.id, '--limit', '3', '--json']);
    assert.deepEqual(page1.map((m) => m.text), ['hello 3', 'hello 4', 'with attrs']);
    const page2 = await cli(['history', '--as', jerry, '--conv', conv.id, '--limit', '3', '--json',
      '--before', page1[0].id, '--before-ts', String(page1[0].timestamp)]);
    assert.deepEqual(page2.map((m) => m.text), ['hello 0', 'hello 1', 'hello 2']);

    // a file from a local path is uploaded to ternd and sent with its URL and metadata
    const png = join(mkdtempSync(join(tmpdir(), 'tern-cli-file-')), 'photo.png');
    writeFileSync(png, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 4, 0, 0, 0, 3, 8, 6, 0, 0, 0]));
    const img = await cli(['send', '--as', tom, '--conv', conv.id, '--file', png, '--type', '-2', '--json', 'a photo']);
    assert.equal(img.type, -2);
    assert.equal(img.file.name, 'photo.png');
    assert.equal(img.file.size, 29);
    assert.ok(img.file.url.startsWith(server.httpUrl), img.file.url);
    assert.equal((await fetch(img.file.url)).status, 200);
    const afterFile = await cli(['history', '--as', jerry, '--conv', conv.id, '--limit', '1', '--json']);
    assert.equal(afterFile[0].file.url, img.file.url);

    // --to: the unique conversation of two clients
    const direct1 = await cli(['send', '--as', tom, '--to', id('Mary'), '--json', 'hi Mary']);
    const direct2 = await cli(['send', '--as', tom, '--to', id('Mary'), '--json', 'again']);
    assert.equal(direct1.conv, direct2.conv);

    // query: operators pass through
    const found = await cli(['conv', 'query', '--as', jerry, '--where', JSON.stringify({ 'attr.type': 'private', name: { $regex: '^猫' } }), '--json']);
    assert.deepEqual(found.map((c) => c.id), [conv.id]);
    assert.equal(found[0].lastMessage.text, 'a photo');
    const none = await cli(['conv', 'query', '--as', jerry, '--where', '{"attr.type":"public"}', '--json']);
    assert.deepEqual(none, []);

    // errors are JSON too, with a non-zero exit
    const bad = await run(tern, ['send', '--as', id('Eve'), '--conv', conv.id, '--json', 'intruder'], { env });
    assert.equal(bad.code, 1);
    assert.equal(JSON.parse(bad.stdout.trim().split('\n').at(-1)).error, 'INVALID_MESSAGING_TARGET');
  });

  it('watch prints one JSON object per event', async () => {
    const tom = id('TomW');
    const jerry = id('JerryW');
    const child = spawn(tern, ['watch', '--as', jerry, '--json', '--count', '4', '--timeout', '30'], {
      env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const exited = new Promise((r) => child.on('exit', r));
    for (let i = 0; i < 200 && !out.includes('"ready"'); i++) await sleep(25);
    const conv = await cli(['conv', 'create', '--as', tom, '--name', 'w', '--json', jerry]);
    await cli(['send', '--as', tom, '--conv', conv.id, '--json', 'watched']);
    await cli(['send', '--as', tom, '--conv', conv.id, '--type', '100', '--transient', '--json', 'typing']);
    assert.equal(await exited, 0, err);
    const lines = out.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.event), ['ready', 'invited', 'joined', 'message', 'typing']);
    assert.equal(lines[3].message.text, 'watched');
    assert.equal(lines[3].message.conv, conv.id);
    assert.equal(lines[4].from, tom);
  });

  it('two terminals chat in tern chat (tmux)', { timeout: 120000 }, async (t) => {
    if (!haveTmux()) { t.skip('tmux not installed'); return; }
    const tm = terminals(env);
    const tom = id('TomC');
    const jerry = id('JerryC');
    try {
      tm.start('tom', tom);
      tm.start('jerry', jerry);
      await tm.waitScreen('tom', /logged in as/);
      await tm.waitScreen('jerry', /logged in as/);
      tm.keys('tom', `/new Tom&Jerry ${jerry}`);
      await tm.waitScreen('tom', /== Tom&Jerry/);
      await tm.waitScreen('jerry', /you are in .* \(added by TomC/);
      await tm.waitScreen('jerry', /is "Tom&Jerry"/);
      // typing indicator: the first keystroke of a line sends a transient message
      tm.type('tom', 'x');
      await tm.waitScreen('jerry', new RegExp(`… ${tom} is typing`));
      tm.press('tom', 'BSpace');
      for (let i = 1; i <= 12; i++) tm.keys('tom', `耗子，起床！ ${i}`);
      await tm.waitScreen('jerry', /\(Tom&Jerry\) TomC-\w+: 耗子，起床！ 12/);
      // Tom sees his own lines once the server has them, in order
      await tm.waitScreen('tom', new RegExp(`\\] ${tom}: 耗子，起床！ 12`));
      // Jerry lists, opens: the last ten, under a line that says older ones exist
      tm.keys('jerry', '/list');
      await tm.waitScreen('jerry', / 1\) Tom&Jerry \[/);
      tm.keys('jerry', '/open 1');
      await tm.waitScreen('jerry', /— \/more for older messages —\n(\[.*起床！ \d+\n){10}/, 10000, { visible: true });
      const order = (name) => [...tm.visible(name).matchAll(/起床！ (\d+)$/gm)].map((m) => Number(m[1]));
      assert.deepEqual(order('jerry'), [3, 4, 5, 6, 7, 8, 9, 10, 11, 12], tm.visible('jerry'));
      assert.match(tm.visible('jerry'), /^== Tom&Jerry \([0-9a-f]{24}\) \[.*\] ==\n— \/more for older messages —\n\[/m);
      // /more: the two older ones go above, the view starts at the beginning, said once
      tm.keys('jerry', '/more');
      await tm.waitScreen('jerry', /— no older messages —\n(\[.*起床！ \d+\n){12}/, 10000, { visible: true });
      assert.deepEqual(order('jerry'), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], tm.visible('jerry'));
      tm.keys('jerry', '/more');
      tm.keys('jerry', '/members');
      await tm.waitScreen('jerry', new RegExp(`^  ${tom}$`, 'm'), 10000, { visible: true });
      assert.equal(tm.visible('jerry').split('— no older messages —').length, 2, 'said exactly once');
      assert.deepEqual(order('jerry'), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
      tm.keys('jerry', '在呢！');
      await tm.waitScreen('tom', new RegExp(`${jerry}: 在呢！`));
      tm.keys('tom', '/members');
      await tm.waitScreen('tom', new RegExp(`^  ${jerry}$`, 'm'));
      tm.keys('tom', '/quit');
      tm.keys('jerry', '/quit');
      assert.equal(await tm.rc('tom'), 0, tm.err('tom'));
      assert.equal(await tm.rc('jerry'), 0, tm.err('jerry'));
    } finally {
      tm.close();
    }
  });
});

function haveTmux() {
  try { execFileSync('tmux', ['-V']); return true; } catch { return false; }
}

/** tern chat sessions in tmux panes (each a real pty), 150x50, on their own tmux server. */
function terminals(env) {
  const sock = `tern-cli-test-${process.pid}-${Math.random().toString(16).slice(2, 6)}`;
  const dir = mkdtempSync(join(tmpdir(), 'tern-cli-'));
  const tmux = (...args) => execFileSync('tmux', ['-L', sock, ...args], { encoding: 'utf8' });
  const tm = {
    start(name, who, { tag } = {}) {
      // the exit status lands in a file so the test can assert a clean (leak-free) exit
      const script = join(dir, `${name}.sh`);
      writeFileSync(script, `#!/bin/sh\nexport TERN_URL='${env.TERN_URL}' TERN_APP_ID='${env.TERN_APP_ID}'\n` +
        `export ASAN_OPTIONS=detect_leaks=1:exitcode=23\n'${tern}' chat --as '${who}'${tag ? ` --tag '${tag}'` : ''} 2>'${dir}/${name}.err'\n` +
        `echo $? > '${dir}/${name}.rc'\nsleep 60\n`, { mode: 0o755 });
      tmux('new-session', '-d', '-s', name, '-x', '150', '-y', '50', script);
    },
    /** The pane with its scrollback. */
    screen: (name) => tmux('capture-pane', '-p', '-J', '-t', name, '-S', '-300'),
    /** Only what is on the screen now. */
    visible: (name) => tmux('capture-pane', '-p', '-J', '-t', name),
    /** The line the cursor is on, and the cursor's column. */
    cursor(name) {
      const [x, y] = tmux('display-message', '-p', '-t', name, '#{cursor_x} #{cursor_y}').trim().split(' ').map(Number);
      return { x, line: tm.visible(name).split('\n')[y].trimEnd() };
    },
    type: (name, text) => tmux('send-keys', '-t', name, '-l', text),
    press: (name, ...keys) => tmux('send-keys', '-t', name, ...keys),
    keys(name, text) { tm.type(name, text); tm.press(name, 'Enter'); },
    async waitScreen(name, re, ms = 10000, { visible = false } = {}) {
      for (let i = 0; i < ms / 50; i++) {
        if (re.test(visible ? tm.visible(name) : tm.screen(name))) return;
        await sleep(50);
      }
      throw new Error(`${name}: no ${re} on screen:\n${tm.screen(name)}`);
    },
    async until(fn, what, ms = 10000) {
      for (let i = 0; i < ms / 50; i++) { if (fn()) return; await sleep(50); }
      throw new Error(`${typeof what === 'function' ? what() : what}`);
    },
    async rc(name) {
      for (let i = 0; i < 200; i++) {
        try { return Number(readFileSync(join(dir, `${name}.rc`), 'utf8')); } catch { await sleep(50); }
      }
      throw new Error(`${name} did not exit`);
    },
    err: (name) => { try { return readFileSync(join(dir, `${name}.err`), 'utf8'); } catch { return ''; } },
    close() {
      try { tmux('kill-server'); } catch { /* already gone */ }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return tm;
}

describe('tern: the command line (issue #15 point 5)', () => {
  let server;
  let env;
  before(async () => {
    server = await startServer();
    env = { TERN_URL: server.wsUrl, TERN_APP_ID: server.appId, TERN_APP_KEY: server.appKey, TERN_DATA_DIR: '/nonexistent' };
  });
  after(async () => { await closeAll(server); await server?.stop(); });

  const usage = async (args, re) => {
    const r = await run(tern, args, { env });
    assert.equal(r.code, 2, `tern ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, re, `tern ${args.join(' ')}`);
    assert.equal(r.stdout, '', 'usage errors go to stderr');
    return r.stderr;
  };

  it('--version names the version and the commit', async () => {
    const r = await runOk(tern, ['--version'], { env });
    assert.match(r.stdout, /^tern \d+\.\d+\.\d+ \(commit ([0-9a-f]{12}(-dirty)?|unknown)\)\n$/);
  });

  it('tern COMMAND --help: each command says its own usage and options, exit 0', async () => {
    for (const [args, re] of [
      [['chat', '--help'], /^usage: tern chat --as ID\n[\s\S]*\/login/],
      [['send', '--help'], /^usage: tern send --as ID \(--conv CID \| --to ID\) \[options\] TEXT\.\.\.\n[\s\S]*--receipt/],
      [['history', '-h'], /^usage: tern history [\s\S]*--limit N +messages in the page, 1 to 1000/],
      [['conv', 'create', '--help'], /^usage: tern conv create [\s\S]*--unique/],
      [['conv', '--help'], /usage: tern conv create[\s\S]*usage: tern conv add[\s\S]*usage: tern conv query[\s\S]*usage: tern conv count/],
      [['watch', '--help'], /^usage: tern watch [\s\S]*--count N +exit after N events, counted from/],
      [['--help'], /^usage: tern <command> \[options\]\n\ncommands:\n  chat [\s\S]*--cacert FILE/],
    ]) {
      const r = await runOk(tern, args, { env });
      assert.match(r.stdout, re, `tern ${args.join(' ')}`);
      if (args[0] !== '--help') assert.match(r.stdout, /common options:\n  --as ID/);
    }
    // one command's help is not another's
    assert.doesNotMatch((await runOk(tern, ['send', '--help'], { env })).stdout, /usage: tern history/);
  });

  it('unknown commands and options are named as such; an option of another command is said to be so', async () => {
    await usage(['frobnicate'], /^tern: unknown command frobnicate \(tern --help\)$/m);
    await usage(['conv', 'frob', '--as', 'a'], /^tern conv: unknown command conv frob \(tern conv --help\)$/m);
    await usage(['send', '--as', 'a', '--to', 'b', '--bogus', 'hi'], /^tern send: unknown option --bogus \(tern send --help\)$/m);
    await usage(['--bogus=1', 'send'], /^tern: unknown option --bogus /m);
    await usage(['send', '--as', 'a', '--to', 'b', '--limit', '3', 'hi'], /^tern send: --limit is not an option of send /m);
    await usage(['history', '--as', 'a', '--conv', 'c', 'extra'], /^tern history: unexpected argument "extra"/m);
    await usage(['send', '--as', 'a', '--to', 'b', '--json=yes', 'hi'], /--json takes no value/);
    await usage(['send', '--as', 'a', '--to'], /^tern send: --to needs a value/m);
  });

  it('send with no text is a usage error, before anything connects', async () => {
    await usage(['send', '--as', 'a', '--to', 'b', '--url', 'ws://127.0.0.1:1/'], /^tern send: no text to send \(tern send --help\)$/m);
    await usage(['send', '--as', 'a', '--url', 'ws://127.0.0.1:1/', 'hi'], /^tern send: --conv CID or --to ID is required/m);
  });

  it('numbers outside their range say the range', async () => {
    await usage(['history', '--as', 'a', '--conv', 'c', '--limit', '0'], /^tern history: --limit must be a number from 1 to 1000 \(messages or conversations\), not "0"/m);
    await usage(['history', '--as', 'a', '--conv', 'c', '--limit', '5000'], /--limit must be a number from 1 to 1000 .*not "5000"/);
    await usage(['history', '--as', 'a', '--conv', 'c', '--limit', 'ten'], /--limit must be a number from 1 to 1000 .*not "ten"/);
    await usage(['watch', '--as', 'a', '--count', '-1'], /^tern watch: --count must be a number from 1 to 1000000 \(events\), not "-1"/m);
    await usage(['watch', '--as', 'a', '--timeout', '99999'], /--timeout must be a number from 1 to 86400 \(seconds\)/);
    await usage(['send', '--as', 'a', '--to', 'b', '--type', '0', 'x'], /--type must be a message type, -7 to -1 \(built-in\) or 1 to 2147483647 \(custom\), not "0"/);
    await usage(['send', '--as', 'a', '--to', 'b', '--type', '-9', 'x'], /--type must be a message type/);
    await usage(['history', '--as', 'a', '--conv', 'c', '--before-ts', '1e3'], /--before-ts must be a number from 0 to 9007199254740991/);
    // tern admin says its ranges too
    const r = await run(tern, ['admin', 'conv', 'list', '--limit', '5000'], { env: { TERN_APP_ID: 'x', TERN_MASTER_KEY: 'y' } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--limit needs a number from 0 to 1000, not 5000/);
  });

  it('JSON arguments are reported with the parser\'s error', async () => {
    await usage(['send', '--as', 'a', '--to', 'b', '--attr', '{"k":', 'x'], /^tern send: --attr is not JSON: .+ \(line 1, column \d+\) \(tern send --help\)$/m);
    await usage(['send', '--as', 'a', '--to', 'b', '--attr', '[1,2]', 'x'], /--attr must be a JSON object/);
    await usage(['conv', 'query', '--as', 'a', '--where', '{name: 1}'], /^tern conv query: --where is not JSON: string or '}' expected near 'name' \(line 1, column 5\)/m);
    await usage(['conv', 'create', '--as', 'a', '--attr', 'true'], /--attr must be a JSON object/);
    // an operator the query builder does not have is said by name
    const r = await run(tern, ['conv', 'query', '--as', id('q'), '--where', '{"m":{"$nin":["x"]}}'], { env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--where: \$nin is not an operator/);
  });

  it('connection errors name the URL tried (and say it in --json)', async () => {
    const dead = 'ws://127.0.0.1:9/';
    const r = await run(tern, ['send', '--as', 'a', '--to', 'b', '--url', dead, 'hi'], { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^tern: cannot connect to ws:\/\/127\.0\.0\.1:9\/: could not connect to the server \(TERN_ECONNECT\)/m);
    const j = await run(tern, ['history', '--as', 'a', '--conv', 'c', '--url', dead, '--json'], { env });
    assert.equal(j.code, 1);
    assert.deepEqual(JSON.parse(j.stdout), { error: 'TERN_ECONNECT', code: -31, what: 'connect', url: dead });
    // a port that is not a WebSocket server: the handshake, with the URL
    const h = await run(tern, ['watch', '--as', 'a', '--url', `ws://127.0.0.1:${server.port}/not-here`, '--app-id', 'wrong'], { env });
    assert.equal(h.code, 1);
    assert.match(h.stderr, new RegExp(`tern: (cannot connect to|a could not log in at) ws://127\\.0\\.0\\.1:${server.port}/not-here`));
    // chat says the same
    const c = spawnSync(tern, ['chat', '--as', 'a', '--url', dead], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 60000 });
    assert.equal(c.status, 1, c.stderr);
    assert.match(c.stderr, /^tern: cannot connect to ws:\/\/127\.0\.0\.1:9\/: /m);
  });

  it('watch --count counts only the events after it started, not what the login brings', async () => {
    const tom = id('TomU');
    const jerry = id('JerryU');
    // Jerry has unread messages before watching: the login brings an "unread" event
    const conv = JSON.parse((await runOk(tern, ['conv', 'create', '--as', tom, '--json', jerry], { env })).stdout);
    await runOk(tern, ['send', '--as', tom, '--conv', conv.id, 'while you were away'], { env });
    const child = spawn(tern, ['watch', '--as', jerry, '--json', '--count', '1', '--timeout', '30'], {
      env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const exited = new Promise((r) => child.on('exit', r));
    for (let i = 0; i < 400 && !out.includes('"ready"'); i++) await sleep(25);
    await runOk(tern, ['send', '--as', tom, '--conv', conv.id, 'now'], { env });
    assert.equal(await exited, 0, err);
    const events = out.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(events.map((e) => e.event), ['unread', 'ready', 'message'], out);
    assert.equal(events[0].count, 1);
    assert.equal(events[2].message.text, 'now');
  });
});

describe('tern over wss:// (libtern TLS) with --cacert', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tern-cli-tls-'));
  const cert = (name, san) => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, `${name}.key`), '-out',
      join(dir, `${name}.pem`), '-subj', `/CN=${name}`, '-addext', `subjectAltName=${san}`, '-days', '1'], { stdio: 'ignore' });
    return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  };
  let good;
  let other;
  before(async () => {
    const a = cert('tern-ip', 'IP:127.0.0.1');
    const b = cert('other.example', 'DNS:other.example');
    good = await startServer({ env: { TERN_TLS_CERT: a.cert, TERN_TLS_KEY: a.key } });
    good.ca = a.cert;
    other = await startServer({ env: { TERN_TLS_CERT: b.cert, TERN_TLS_KEY: b.key } });
    other.ca = b.cert;
  });
  after(async () => {
    await good?.stop();
    await other?.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const wss = (srv) => `wss://127.0.0.1:${srv.port}/`;
  const envOf = (srv) => ({ TERN_APP_ID: srv.appId, TERN_APP_KEY: srv.appKey, TERN_DATA_DIR: '/nonexistent' });

  it('send and history over wss:// trusting the server\'s certificate with --cacert; a file goes up over https://', async () => {
    const tom = id('TomS');
    const jerry = id('JerryS');
    const base = ['--url', wss(good), '--cacert', good.ca, '--json'];
    const sent = JSON.parse((await runOk(tern, ['send', '--as', tom, '--to', jerry, ...base, 'over TLS'], { env: envOf(good) })).stdout);
    assert.equal(sent.text, 'over TLS');
    const hist = JSON.parse((await runOk(tern, ['history', '--as', jerry, '--conv', sent.conv, ...base], { env: envOf(good) })).stdout);
    assert.deepEqual(hist.map((m) => m.text), ['over TLS']);
    const png = join(dir, 'tiny.png');
    writeFileSync(png, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 2, 0, 0, 0, 2, 8, 6, 0, 0, 0]));
    const img = JSON.parse((await runOk(tern, ['send', '--as', tom, '--conv', sent.conv, '--file', png, '--type', '-2', ...base], { env: envOf(good) })).stdout);
    assert.match(img.file.url, new RegExp(`^https://127\\.0\\.0\\.1:${good.port}/`));
    assert.equal(img.file.size, 29);
  });

  it('without --cacert the certificate is not trusted: exit 1, the URL and the reason; --insecure skips the check', async () => {
    const r = await run(tern, ['send', '--as', id('a'), '--to', id('b'), '--url', wss(good), 'x'], { env: envOf(good) });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^tern: cannot connect to wss://127\\.0\\.0\\.1:${good.port}/: TLS handshake failed .*\\(TERN_ETLS\\); TLS with 127\\.0\\.0\\.1:${good.port}: handshake failed: certificate verify failed: self-signed certificate$`, 'm'));
    await runOk(tern, ['send', '--as', id('a'), '--to', id('b'), '--url', wss(good), '--insecure', 'x'], { env: envOf(good) });
  });

  it('a trusted certificate for another name is refused (the host is checked)', async () => {
    const r = await run(tern, ['send', '--as', id('a'), '--to', id('b'), '--url', wss(other), '--cacert', other.ca, 'x'], { env: envOf(other) });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /certificate verify failed: (IP address mismatch|hostname mismatch)/);
  });

  it('--cacert with a ws:// URL is a usage error; a CA file that cannot be read says so', async () => {
    const r = await run(tern, ['send', '--as', 'a', '--to', 'b', '--url', 'ws://127.0.0.1:1/', '--cacert', good.ca, 'x'], { env: envOf(good) });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--cacert and --insecure are for wss:\/\/ URLs/);
    const m = await run(tern, ['send', '--as', 'a', '--to', 'b', '--url', wss(good), '--cacert', join(dir, 'missing.pem'), 'x'], { env: envOf(good) });
    assert.equal(m.code, 1);
    assert.match(m.stderr, /cannot load the CA certificates .*missing\.pem/);
  });
});

describe('tern chat: editing, failures, kicks, unnamed conversations (tmux)', () => {
  let server;
  let env;
  // messages above 200 bytes are refused (4109): a failed send on demand
  before(async () => {
    server = await startServer({ env: { TERN_MAX_MESSAGE: '200' } });
    env = { TERN_URL: server.wsUrl, TERN_APP_ID: server.appId, TERN_APP_KEY: server.appKey, TERN_DATA_DIR: '/nonexistent' };
  });
  after(async () => { await closeAll(server); await server?.stop(); });

  it('arrow keys, input history and UTF-8 editing; a failed send shown as failed; /login after a kick; unnamed conversations by their members; /open and /new usage', { timeout: 120000 }, async (t) => {
    if (!haveTmux()) { t.skip('tmux not installed'); return; }
    const tm = terminals(env);
    const tom = id('TomE');
    const jerry = id('JerryE');
    try {
      // an unnamed conversation of the two, made before Tom starts: /list shows it by Jerry
      const made = JSON.parse((await runOk(tern, ['conv', 'create', '--as', jerry, '--json', tom], { env })).stdout);
      assert.equal(made.name, null);
      tm.start('tom', tom);
      await tm.waitScreen('tom', / 1\) (\S+) \[/);
      assert.match(tm.screen('tom'), new RegExp(` 1\\) ${jerry} \\[${[jerry, tom].sort().join(', ')}\\]`), 'listed by its other member');
      // /open and /new without arguments say how to use them
      tm.keys('tom', '/open');
      await tm.waitScreen('tom', /^usage: \/open N\|ID — /m);
      tm.keys('tom', '/new');
      await tm.waitScreen('tom', /^usage: \/new NAME \[ID…\] — /m);
      tm.keys('tom', '/open 1');
      await tm.waitScreen('tom', new RegExp(`^== ${jerry} \\(${made.id}\\)`, 'm'), 10000, { visible: true });
      await tm.until(() => (tm.cursor('tom').line === `${jerry}>` && tm.cursor('tom').x === jerry.length + 2), () => `the prompt names the conversation by its member: ${JSON.stringify(tm.cursor('tom'))}\n${tm.visible('tom')}`);

      // the line editor: ← moves by characters (wide ones too), edits in the middle
      tm.type('tom', '猫和鼠');
      await tm.until(() => tm.cursor('tom').line.includes('猫和鼠'), 'typed');
      const end = tm.cursor('tom').x;
      tm.press('tom', 'Left');
      await tm.until(() => tm.cursor('tom').x === end - 2, `one wide character left: ${JSON.stringify(tm.cursor('tom'))}`);
      tm.press('tom', 'Left');
      tm.type('tom', '老');
      tm.press('tom', 'End');
      tm.type('tom', '!');
      tm.press('tom', 'Home');
      tm.type('tom', '>');
      tm.press('tom', 'Enter');
      await tm.waitScreen('tom', new RegExp(`\\] ${tom}: >猫老和鼠!$`, 'm'));
      // backspace removes a whole character, Ctrl-U the line
      tm.type('tom', 'ab😀');
      tm.press('tom', 'BSpace');
      tm.type('tom', 'c');
      tm.press('tom', 'Enter');
      await tm.waitScreen('tom', new RegExp(`\\] ${tom}: abc$`, 'm'));
      // ↑ brings back earlier lines, ↓ returns to the one being typed
      tm.type('tom', 'draft');
      tm.press('tom', 'Up');
      await tm.until(() => tm.cursor('tom').line.endsWith('> abc'), `↑ shows the last line: ${tm.cursor('tom').line}`);
      tm.press('tom', 'Up');
      await tm.until(() => tm.cursor('tom').line.endsWith('> >猫老和鼠!'), `↑↑ the one before: ${tm.cursor('tom').line}`);
      tm.press('tom', 'Down', 'Down');
      await tm.until(() => tm.cursor('tom').line.endsWith('> draft'), `↓↓ back to the draft: ${tm.cursor('tom').line}`);
      tm.press('tom', 'C-u');
      tm.press('tom', 'Up');
      tm.press('tom', 'Enter'); // sends "abc" again, from the history
      await tm.until(() => (tm.screen('tom').match(new RegExp(`\\] ${tom}: abc$`, 'gm')) || []).length === 2, 'abc sent twice');

      // a message the server refuses is shown as not sent, never as sent
      const long = 'x'.repeat(250);
      tm.keys('tom', long);
      await tm.waitScreen('tom', /^! not sent \(FRAME_TOO_LONG, 4109\): x{250}$/m);
      assert.doesNotMatch(tm.screen('tom'), new RegExp(`\\] ${tom}: x{250}`));
      const hist = JSON.parse((await runOk(tern, ['history', '--as', jerry, '--conv', made.id, '--json'], { env })).stdout);
      assert.deepEqual(hist.map((m) => m.text), ['>猫老和鼠!', 'abc', 'abc'], 'what the server has is what was shown as sent');

      // kicked by the back office: said, and /login brings the session back
      const kick = await run(tern, ['admin', 'kick', tom], { env: { TERN_SERVER: server.httpUrl, TERN_APP_ID: server.appId, TERN_MASTER_KEY: server.masterKey } });
      assert.equal(kick.code, 0, kick.stderr);
      await tm.waitScreen('tom', /^\* logged out by the server: .*\(4115\) — \/login logs in again$/m);
      tm.keys('tom', 'while out');
      await tm.waitScreen('tom', /^! not sent \(.*\): while out$/m);
      tm.keys('tom', '/login');
      await tm.until(() => (tm.screen('tom').match(/^logged in as /gm) || []).length === 2, `logged in again:\n${tm.screen('tom')}`);
      tm.keys('tom', 'back again');
      await tm.waitScreen('tom', new RegExp(`\\] ${tom}: back again$`, 'm'));
      const after = JSON.parse((await runOk(tern, ['history', '--as', jerry, '--conv', made.id, '--limit', '1', '--json'], { env })).stdout);
      assert.equal(after[0].text, 'back again');
      tm.keys('tom', '/login');
      await tm.waitScreen('tom', /^! already logged in as /m);
      tm.keys('tom', '/quit');
      assert.equal(await tm.rc('tom'), 0, tm.err('tom'));
    } finally {
      tm.close();
    }
  });
});

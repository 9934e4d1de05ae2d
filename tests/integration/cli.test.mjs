// The `tern` CLI end to end against a real ternd:
//  * scriptable commands: every --json output parses and says what happened (conv create,
//    add, remove, count, query, send, history with paging, watch as JSON lines);
//  * `tern chat` in two terminals (tmux, each pane a real pty): Tom creates a conversation
//    with Jerry, they talk both ways, the typing indicator shows, history pages with /more,
//    and both leave cleanly (the CLI is an ASan build: a leak would fail its exit code).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { cliBinary, run, runOk } from '../lib/sdk-c.mjs';

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
    try { execFileSync('tmux', ['-V']); } catch { t.skip('tmux not installed'); return; }
    const sock = `tern-cli-test-${process.pid}`;
    const dir = mkdtempSync(join(tmpdir(), 'tern-cli-'));
    const tmux = (...args) => execFileSync('tmux', ['-L', sock, ...args], { encoding: 'utf8' });
    const tom = id('TomC');
    const jerry = id('JerryC');
    const start = (name, who) => {
      // the exit status lands in a file so the test can assert a clean (leak-free) exit
      const script = join(dir, `${name}.sh`);
      writeFileSync(script, `#!/bin/sh\nexport TERN_URL='${env.TERN_URL}' TERN_APP_ID='${env.TERN_APP_ID}'\n` +
        `export ASAN_OPTIONS=detect_leaks=1:exitcode=23\n'${tern}' chat --as '${who}' 2>'${dir}/${name}.err'\n` +
        `echo $? > '${dir}/${name}.rc'\nsleep 60\n`, { mode: 0o755 });
      tmux('new-session', '-d', '-s', name, '-x', '150', '-y', '50', script);
    };
    const screen = (name) => tmux('capture-pane', '-p', '-t', name, '-S', '-200');
    const keys = (name, text) => { tmux('send-keys', '-t', name, '-l', text); tmux('send-keys', '-t', name, 'Enter'); };
    const waitScreen = async (name, re, ms = 10000) => {
      for (let i = 0; i < ms / 50; i++) { if (re.test(screen(name))) return; await sleep(50); }
      throw new Error(`${name}: no ${re} on screen:\n${screen(name)}`);
    };
    const rc = async (name) => {
      for (let i = 0; i < 200; i++) {
        try { return Number(readFileSync(join(dir, `${name}.rc`), 'utf8')); } catch { await sleep(50); }
      }
      throw new Error(`${name} did not exit`);
    };
    try {
      start('tom', tom);
      start('jerry', jerry);
      await waitScreen('tom', /logged in as/);
      await waitScreen('jerry', /logged in as/);
      keys('tom', `/new Tom&Jerry ${jerry}`);
      await waitScreen('tom', /== Tom&Jerry/);
      await waitScreen('jerry', /you are in .* \(added by TomC/);
      await waitScreen('jerry', /is "Tom&Jerry"/);
      // typing indicator: the first keystroke of a line sends a transient message
      tmux('send-keys', '-t', 'tom', '-l', 'x');
      await waitScreen('jerry', new RegExp(`… ${tom} is typing`));
      tmux('send-keys', '-t', 'tom', 'BSpace');
      for (let i = 1; i <= 12; i++) keys('tom', `耗子，起床！ ${i}`);
      await waitScreen('jerry', /\(Tom&Jerry\) TomC-\w+: 耗子，起床！ 12/);
      // Jerry lists, opens, sees the last ten, pages back, answers
      keys('jerry', '/list');
      await waitScreen('jerry', / 1\) Tom&Jerry \[/);
      keys('jerry', '/open 1');
      await waitScreen('jerry', /— 10 messages; \/more for older —/);
      assert.doesNotMatch(screen('jerry').split('== Tom&Jerry').at(-1), /起床！ 2\n/);
      keys('jerry', '/more');
      await waitScreen('jerry', /— 2 messages; \/more for older —/);
      keys('jerry', '/more');
      await waitScreen('jerry', /— no older messages —/);
      keys('jerry', '在呢！');
      await waitScreen('tom', new RegExp(`${jerry}: 在呢！`));
      keys('tom', '/members');
      await waitScreen('tom', new RegExp(`^  ${jerry}$`, 'm'));
      keys('tom', '/quit');
      keys('jerry', '/quit');
      assert.equal(await rc('tom'), 0, readFileSync(join(dir, 'tom.err'), 'utf8'));
      assert.equal(await rc('jerry'), 0, readFileSync(join(dir, 'jerry.err'), 'utf8'));
    } finally {
      try { tmux('kill-server'); } catch { /* already gone */ }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

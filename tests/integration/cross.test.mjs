// Cross-client: a libtern client (tests/sdk/sdk_cross.c, "Tom") and an official JS SDK
// 5.0.0-rc.8 client ("Jerry") chat through a real ternd in both directions. Every built-in
// typed message (text, image, audio, video, location, file) and a custom type with custom
// fields crosses intact: the JS SDK parses libtern's messages into the right classes with
// the exact payload libtern sent, and libtern parses the JS SDK's messages into the same
// type, text, attributes, file fields (url, objId, name, format, size, width, height,
// duration) and location.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { startServer } from '../lib/server.mjs';
import { Clients, collect, uid, payloadOf, CUSTOM_TYPE } from '../lib/interop-util.mjs';
import { sdkBinary } from '../lib/sdk-c.mjs';

const CLASSES = ['TextMessage', 'ImageMessage', 'AudioMessage', 'VideoMessage', 'LocationMessage', 'FileMessage', 'PokeMessage'];
const ATTRS = { nested: { list: [1, 'two', { three: 3 }], nothing: null }, unicode: '猫🐱 "q" \\ back\nslash', n: -1.5, flag: true };
const FILE = (kind, meta) => ({
  url: `http://files.example.invalid/${kind}/abc%20def.bin?x=1&y=2`,
  objId: `5f0${kind}0000000000000000a`,
  metaData: { name: `${kind}.bin`, size: 12345, ...meta },
});

describe('libtern ⇄ official JS SDK', () => {
  let server;
  let env;
  before(async () => { server = await startServer(); env = new Clients(server); });
  after(async () => { await env?.closeAll(); await server?.stop(); });

  it('chat both ways with every typed message and attributes intact', { timeout: 60000 }, async () => {
    const jerry = await env.login(uid('jerry'));
    const tomId = uid('tom');
    const fromC = collect(jerry, 'message');
    const child = spawn(sdkBinary('sdk_cross'), [tomId, jerry.id], {
      env: { ...process.env, TERN_URL: server.wsUrl, TERN_APP_ID: server.appId, ASAN_OPTIONS: 'detect_leaks=1:exitcode=23' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const exited = new Promise((r) => child.on('exit', r));
    const lines = (tag) => out.split('\n').filter((l) => l.startsWith(`${tag} `)).map((l) => l.slice(tag.length + 1));

    // libtern → JS
    const received = (await fromC.until(7, 20000)).map(([m]) => m);
    for (let i = 0; i < 50 && lines('sent').length < 7; i++) await new Promise((r) => setTimeout(r, 20));
    const sent = lines('sent').map((l) => JSON.parse(l));
    const cid = lines('conv')[0];
    assert.equal(sent.length, 7, err);
    received.forEach((m, i) => {
      const s = sent[i];
      assert.equal(m.id, s.id);
      assert.equal(m.from, tomId);
      assert.equal(m.cid, cid);
      assert.equal(m.timestamp.getTime(), s.timestamp);
      const cls = i === 0 ? jerry.sdk.TextMessage : jerry.classes[CLASSES[i]];
      assert.ok(m instanceof cls, `message ${i} is a ${CLASSES[i]}`);
      assert.deepEqual(payloadOf(m), JSON.parse(s.content), `message ${i} payload`);
      assert.deepEqual(m.attributes, { ...ATTRS, index: i }, `message ${i} attributes`);
    });
    assert.equal(received[0].text, 'hello from libtern');
    assert.deepEqual(received[4]._lcloc, { latitude: 39.9042, longitude: 116.4074 });
    assert.equal(received[1]._lcfile.url, 'http://files.example.invalid/a%20b.png?x=1&y=2');
    assert.equal(received[6].pokes, 3);
    assert.deepEqual(received[6].target, { who: 'Jerry', where: ['kitchen', 'hole'] });
    const conv = await jerry.getConversation(cid);
    assert.equal(conv.name, 'cross');
    assert.equal(conv.creator, tomId);

    // JS → libtern
    const C = jerry.classes;
    const replies = [
      new jerry.sdk.TextMessage('hello from JS'),
      new C.ImageMessage({ _lcfile: FILE('image', { format: 'png', width: 640, height: 480 }) }),
      new C.AudioMessage({ _lcfile: FILE('audio', { format: 'mp3', duration: 3.25 }) }),
      new C.VideoMessage({ _lcfile: FILE('video', { format: 'mp4', duration: 61.5 }) }),
      new C.LocationMessage({ _lcloc: { latitude: 45.0, longitude: 34.5 } }),
      new C.FileMessage({ _lcfile: FILE('file', { format: 'pdf' }) }),
      new C.PokeMessage({ pokes: 7, target: { who: 'Tom', where: ['yard'] } }),
    ];
    replies.forEach((m, i) => { if (i) m.setText(`caption ${i}`); m.setAttributes({ ...ATTRS, index: i, from: 'js' }); });
    const jsSent = [];
    for (const m of replies) jsSent.push(await conv.send(m));
    assert.equal(await exited, 0, `sdk_cross failed:\n${err.slice(-4000)}`);
    const got = lines('got').map((l) => JSON.parse(l));
    assert.equal(got.length, 7);
    got.forEach((g, i) => {
      const s = jsSent[i];
      const p = payloadOf(s);
      assert.equal(g.id, s.id);
      assert.equal(g.from, jerry.id);
      assert.equal(g.timestamp, s.timestamp.getTime());
      assert.equal(g.type, [-1, -2, -3, -4, -5, -6, CUSTOM_TYPE][i]);
      assert.equal(g.type, p._lctype);
      assert.equal(g.text, p._lctext);
      assert.deepEqual(g.attributes, p._lcattrs, `reply ${i} attributes`);
      if (p._lcfile) assert.deepEqual(g.file, p._lcfile, `reply ${i} file`);
      if (p._lcloc) assert.deepEqual(g.location, p._lcloc, `reply ${i} location`);
    });
    assert.equal(got[6].pokes, 7);
    assert.deepEqual(got[6].target, { who: 'Tom', where: ['yard'] });
  });
});

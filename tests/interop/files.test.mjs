// Issue #7 §4 acceptance, the JS SDK half: an app on the official JS SDK uploads a file
// over the REST path, sends a typed message carrying the returned URL and metadata
// (protocol.md §4 `_lcfile`), and the receiver downloads the URL byte-identical.
//
// The last suite is what an app does today, with nothing of ours in between:
// leancloud-storage 4.15.2's AV.File.save() (POST /1.1/fileTokens, PUT to the upload URL,
// POST /1.1/fileCallback), then the ImageMessage of leancloud-realtime-plugin-typed-messages
// 4.0.2 built from that AV.File. The suites before it make the old SDK's one-request upload
// with fetch:
//
// The realtime SDK has no uploader of its own: apps upload with leancloud-storage's AV.File
// (what leancloud-realtime-plugin-typed-messages wraps), whose REST path is POST
// /1.1/files/<name> with X-LC-Id / X-LC-Key — the bytes as base64 in a JSON body
// {base64, _ContentType, metaData}, the shape the SDK sent for data it held. That request
// is made here with fetch, exactly so; then the message classes of the typed-messages
// plugin (tests/lib/interop-util.mjs) carry {url, objId, metaData: {name, format, width,
// height, size}} from the answer.
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import AV from 'leancloud-storage';
import { startInteropServer } from '../lib/cluster-mode.mjs';
import { MODES, Clients, collect, uid, payloadOf, createConversationSeen, modeSuite } from '../lib/interop-util.mjs';
import { png, gif, md5, download } from '../lib/files-util.mjs';

// POST /1.1/files/<name> as AV.File.save() sends it for a file built from data.
async function avFileSave(server, name, bytes, mime) {
  const res = await fetch(`${server.httpUrl}/1.1/files/${encodeURIComponent(name)}`, {
    method: 'POST',
    headers: {
      'X-LC-Id': server.appId,
      'X-LC-Key': server.appKey,
      'X-LC-UA': 'LeanCloud-JS-SDK/3.15.0 (Node.js/20)',
      'Content-Type': 'application/json;charset=UTF-8',
    },
    body: JSON.stringify({ base64: bytes.toString('base64'), _ContentType: mime, metaData: { owner: 'unknown' } }),
  });
  assert.equal(res.status, 201, `upload of ${name}`);
  return res.json();
}

// What the typed-messages plugin puts in `_lcfile` for an AV.File (protocol.md §4).
const lcfile = (file, extra = {}) => ({
  url: file.url,
  objId: file.objectId,
  metaData: { name: file.name, format: file.metaData.format, size: file.size, ...extra },
});

for (const mode of MODES) {
  describe(`files [${mode.name}]`, () => {
    const suite = modeSuite(mode);

    it('an image uploaded through the REST path travels in an ImageMessage; the receiver downloads it byte-identical', async () => {
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'));
      const bytes = png(16, 9);
      const file = await avFileSave(suite.server, '猫 cat.png', bytes, 'image/png');
      assert.equal(file.name, '猫 cat.png');
      assert.deepEqual(
        { width: file.metaData.width, height: file.metaData.height, format: file.metaData.format, size: file.size },
        { width: 16, height: 9, format: 'png', size: bytes.length },
      );

      const conv = await createConversationSeen(tom, { members: [jerry.id], name: 'pictures' }, [jerry]);
      const got = collect(jerry, 'message', (m) => m);
      const img = new tom.classes.ImageMessage({
        _lcfile: lcfile(file, { width: file.metaData.width, height: file.metaData.height }),
      });
      img.setText('look at this');
      const sent = await conv.send(img);

      const [m] = await got.until(1);
      assert.ok(m instanceof jerry.classes.ImageMessage, 'parsed as ImageMessage');
      assert.equal(m.type, -2);
      assert.equal(m.id, sent.id);
      assert.equal(m.text, 'look at this');
      assert.deepEqual(payloadOf(m), payloadOf(sent));
      const { url, objId, metaData } = m._lcfile;
      assert.equal(objId, file.objectId);
      assert.deepEqual(metaData, { name: '猫 cat.png', format: 'png', size: bytes.length, width: 16, height: 9 });

      // Jerry fetches what the message points at, with no key, as an app's image view would
      const d = await download(url);
      assert.equal(d.status, 200);
      assert.ok(d.body.equals(bytes), 'downloaded bytes are the uploaded bytes');
      assert.equal(d.headers.get('content-type'), 'image/png');
      assert.equal(md5(d.body), file.metaData._checksum);
    });

    it('a raw upload travels in a FileMessage to a group; every member downloads it, and history still points at it', async () => {
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'));
      const spike = await suite.env.login(uid('spike'));
      const bytes = Buffer.concat([gif(3, 3), Buffer.from(' and some trailing bytes')]);
      const res = await fetch(`${suite.server.httpUrl}/1.1/files/${encodeURIComponent('report (final).gif')}`, {
        method: 'POST',
        headers: { 'X-LC-Id': suite.server.appId, 'X-LC-Key': suite.server.appKey, 'Content-Type': 'image/gif' },
        body: bytes,
      });
      assert.equal(res.status, 201);
      const file = await res.json();

      const conv = await createConversationSeen(tom, { members: [jerry.id, spike.id], name: 'files' }, [jerry, spike]);
      const jGot = collect(jerry, 'message', (m) => m);
      const sGot = collect(spike, 'message', (m) => m);
      const sent = await conv.send(new tom.classes.FileMessage({ _lcfile: lcfile(file) }));
      for (const [who, got] of [[jerry, jGot], [spike, sGot]]) {
        const [m] = await got.until(1);
        assert.ok(m instanceof who.classes.FileMessage, `${who.id} parsed a FileMessage`);
        assert.equal(m.id, sent.id);
        const d = await download(m._lcfile.url);
        assert.ok(d.body.equals(bytes), `${who.id} downloaded the same bytes`);
      }
      const jconv = await jerry.getConversation(conv.id);
      const [fromHistory] = await jconv.queryMessages({ limit: 1 });
      assert.equal(fromHistory.id, sent.id);
      assert.ok(fromHistory instanceof jerry.classes.FileMessage);
      const ranged = await download(fromHistory._lcfile.url, { Range: 'bytes=0-5' });
      assert.equal(ranged.status, 206);
      assert.equal(ranged.body.toString('latin1'), 'GIF89a');
    });
  });
}

// leancloud-storage and the typed-messages plugin, as an app uses them. AV.init is once per
// process, so one server serves both transport modes here.
const initTypedMessages = createRequire(import.meta.url)('leancloud-realtime-plugin-typed-messages');
const pluginClasses = (sdk) => {
  const { TypedMessagesPlugin, ...classes } = initTypedMessages(AV, sdk);
  return classes;
};

describe('external files: AV.File.withURL(name, url).save() of leancloud-storage (issue #11 §21)', () => {
  let server;
  before(async () => {
    server = await startInteropServer();
    AV.init({ appId: server.appId, appKey: server.appKey, serverURLs: server.httpUrl });
  });
  after(async () => {
    if (server) await server.stop();
  });

  it('saves a file object that points at the URL and keeps its metadata; fetch and GET /1.1/files/:id return it; tern serves no bytes for it', async () => {
    const url = 'https://cdn.example.com/pics/猫.png?size=large';
    const saved = await AV.File.withURL('cat.png', url, { author: 'tom', width: 640 }).save();
    assert.match(saved.id, /^[0-9a-f]{24}$/);
    assert.equal(saved.url(), url);

    const fetched = await AV.File.createWithoutData(saved.id).fetch();
    assert.equal(fetched.name(), 'cat.png');
    assert.equal(fetched.url(), url, 'the external URL, not a tern download URL');
    assert.equal(fetched.get('mime_type'), 'image/png');
    assert.equal(fetched.metaData('__source'), 'external');
    assert.equal(fetched.metaData('author'), 'tom');
    assert.equal(fetched.metaData('width'), 640);
    assert.equal(fetched.metaData('size'), 0);

    const res = await fetch(`${server.httpUrl}/1.1/files/${saved.id}`, { headers: { 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey } });
    assert.equal(res.status, 200);
    const meta = await res.json();
    assert.deepEqual({ ...meta, createdAt: 'T', updatedAt: 'T' }, {
      objectId: saved.id, name: 'cat.png', url, size: 0, mime_type: 'image/png', createdAt: 'T', updatedAt: 'T',
      metaData: { __source: 'external', size: 0, owner: 'unknown', author: 'tom', width: 640 },
    });
    // no bytes were stored as the file: its tern download URL has nothing, and does not redirect
    const d = await fetch(`${server.httpUrl}/files/${saved.id}/cat.png`, { redirect: 'manual' });
    assert.equal(d.status, 404);
    await d.arrayBuffer();
  });
});

describe('files through leancloud-storage AV.File and the typed-messages plugin', () => {
  let server;
  let env;
  before(async () => {
    server = await startInteropServer();
    AV.init({ appId: server.appId, appKey: server.appKey, serverURLs: server.httpUrl });
  });
  after(async () => {
    if (server) await server.stop();
  });
  afterEach(async () => {
    await env.closeAll();
  });

  for (const mode of MODES) {
    it(`[${mode.name}] AV.File.save() uploads; an ImageMessage of it reaches the receiver, whose AV.File downloads byte-identical`, async () => {
      env = new Clients(server, { noBinary: mode.noBinary, classes: pluginClasses });
      const tom = await env.login(uid('tom'));
      const jerry = await env.login(uid('jerry'));
      const bytes = png(12, 7);
      const file = await new AV.File('猫 cat.png', bytes).save();
      assert.match(file.id, /^[0-9a-f]{24}$/);
      // the node it was uploaded to (cluster mode: any of them; the others serve it too)
      const bases = server.nodes ? server.nodes.map((n) => n.httpUrl) : [server.httpUrl];
      assert.ok(bases.some((b) => file.url().startsWith(`${b}/files/${file.id}/`)), file.url());

      // what the storage API says about it: the server looked at the bytes
      const fetched = await AV.File.createWithoutData(file.id).fetch();
      assert.equal(fetched.name(), '猫 cat.png');
      assert.equal(fetched.get('mime_type'), 'image/png');
      assert.deepEqual(
        { width: fetched.metaData('width'), height: fetched.metaData('height'), size: fetched.metaData('size'), sum: fetched.metaData('_checksum') },
        { width: 12, height: 7, size: bytes.length, sum: md5(bytes) },
      );

      const conv = await createConversationSeen(tom, { members: [jerry.id], name: 'pictures' }, [jerry]);
      const got = collect(jerry, 'message', (m) => m);
      const img = new tom.classes.ImageMessage(file);
      img.setText('look at this');
      const sent = await conv.send(img);

      const [m] = await got.until(1);
      assert.ok(m instanceof jerry.classes.ImageMessage, 'parsed as the plugin\'s ImageMessage');
      assert.equal(m.id, sent.id);
      assert.equal(m.text, 'look at this');
      const theirs = m.getFile();
      assert.ok(theirs instanceof AV.File);
      assert.equal(theirs.id, file.id);
      assert.equal(theirs.name(), '猫 cat.png');
      assert.equal(theirs.metaData('size'), bytes.length);
      const d = await download(theirs.url());
      assert.equal(d.status, 200);
      assert.ok(d.body.equals(bytes), 'downloaded bytes are the uploaded bytes');
      assert.equal(d.headers.get('content-type'), 'image/png');

      // and from history, as after a reinstall
      const [old] = await (await jerry.getConversation(conv.id)).queryMessages({ limit: 1 });
      assert.ok(old instanceof jerry.classes.ImageMessage);
      assert.equal(old.getFile().url(), file.url());
    });
  }
});

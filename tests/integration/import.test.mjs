// The acceptance test of issue #12's importer: a source ternd (which answers LeanCloud's
// storage and IM REST reads) seeded with every kind of conversation and message, imported
// with `tern admin import leancloud` into an empty ternd, compared conversation by
// conversation and history page by history page through the REST API and through the
// official JS SDK; then the source changes and the delta run is compared again.
// Needs the import endpoints (POST /1.2/import/records, PUT /1.2/import/files/{id}) and
// the class reads (GET /1.1/classes/_Conversation …) in ternd: without them each test
// says so and skips.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { cliBinary, run } from '../lib/sdk-c.mjs';
import { Clients, waitFor } from '../lib/interop-util.mjs';
import { uploadRaw, png } from '../lib/files-util.mjs';
import { rest, seedRest, compareServers, history, send } from '../lib/import-e2e.mjs';

const tern = cliBinary();
const tmp = mkdtempSync(join(tmpdir(), 'tern-import-'));
let source, target;

before(async () => {
  source = await startServer({ env: { TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0' } });
  target = await startServer({ env: { TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0' } });
});
after(async () => {
  await source?.stop();
  await target?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const importer = (extra = []) => run(tern, ['admin', 'import', 'leancloud', '--from', source.httpUrl, '--from-master-key',
  source.masterKey, '--server', target.httpUrl, '--app-id', target.appId, '--master-key', target.masterKey, '--rate', '0',
  '--state', join(tmp, 'state.json'), '--json', ...extra], { timeoutMs: 300000 });

describe('import from a ternd acting as LeanCloud', () => {
  const env = {};
  let ids, uniqueId, binId, typed, fileUrl, fileId;
  const sentOnTarget = new Set(); // messages sent to the target after the switch

  it('seeds the source with every kind of conversation and message', async () => {
    ids = await seedRest(source, 'e');
    env.src = new Clients(source);
    const a = await env.src.login('ea');
    const b = await env.src.login('eb');
    const { TextMessage, BinaryMessage } = a.sdk;
    // unique 1:1 created by the SDK, with a typed text, a binary, an image with a file
    const uc = await a.createConversation({ members: ['eb'], unique: true, name: 'ea&eb' });
    uniqueId = uc.id;
    await uc.send(new TextMessage('typed hello').setAttributes({ k: 'v' }));
    const bm = await uc.send(new BinaryMessage(new Uint8Array([0, 1, 2, 250]).buffer));
    binId = bm.id;
    const f = (await uploadRaw(source, 'pic.png', png(2, 3), { contentType: 'image/png' })).json;
    fileUrl = f.url;
    fileId = f.objectId;
    typed = await uc.send(new a.classes.ImageMessage({ _lcfile: { url: fileUrl, objId: fileId, metaData: { name: 'pic.png', width: 2, height: 3, format: 'png', size: f.metaData?.size } } }));
    await uc.send(new a.classes.PokeMessage({ pokes: 3, target: 'eb' }));
    await b.close();
    await a.close();
  });

  it('imports everything into an empty ternd: REST shows the same conversations and history pages', async () => {
    const r = await importer(['--rehost-files']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-3000));
    const sum = JSON.parse(r.stdout.trim().split('\n').at(-1));
    assert.equal(sum.complete, true);
    assert.deepEqual(sum.skipped, []);
    // rehosted: the target serves the file under the same id, and the image message points there
    const srcBase = source.httpUrl, dstBase = target.httpUrl;
    await compareServers(source, target, { urlMap: (d) => (typeof d === 'string' ? d.replaceAll(srcBase, dstBase) : d) });
    const bytes = Buffer.from(await (await fetch(`${dstBase}/files/${fileId}/pic.png`)).arrayBuffer());
    assert.deepEqual(bytes, png(2, 3));
  });

  it('the JS SDK sees identical history, finds the unique conversation, and new messages flow', async () => {
    const sdkHistory = async (srv) => {
      const c = new Clients(srv);
      const a = await c.login('ea');
      const conv = await a.getConversation(uniqueId);
      const all = [];
      for (const it = conv.createMessagesIterator({ limit: 2 }); ;) {
        const { value, done } = await it.next();
        all.push(...value.map((m) => ({ id: m.id, ts: +m.timestamp, from: m.from, content: JSON.stringify(m.content ?? m.getPayload?.()) })));
        if (done) break;
      }
      await c.closeAll();
      return all;
    };
    const want = await sdkHistory(source);
    const got = await sdkHistory(target);
    assert.equal(got.length, want.length);
    assert.deepEqual(got.map((m) => [m.id, m.ts, m.from]), want.map((m) => [m.id, m.ts, m.from]));
    assert.ok(got.some((m) => m.id === binId), 'the binary message');
    const c = new Clients(target);
    const a = await c.login('ea');
    const b = await c.login('eb');
    const again = await a.createConversation({ members: ['eb'], unique: true });
    assert.equal(again.id, uniqueId, 'createConversation({unique:true}) of the same members returns the imported id');
    const got2 = waitFor(b, 'message', (m) => m.text === 'after the move');
    const sent = await again.send(new a.sdk.TextMessage('after the move'));
    sentOnTarget.add(sent.id);
    await got2;
    const [newest] = await again.queryMessages({ limit: 1 });
    assert.equal(newest.id, sent.id, 'the new message sorts after every imported one');
    await c.closeAll();
  });

  it('the delta copies what changed: a new conversation, new messages, an edit, a recall, a member change', async () => {
    const g = `/1.2/rtm/conversations/${ids.group}`;
    const fresh = await rest(source, 'POST', '/1.2/rtm/conversations', { name: 'delta conv', m: ['da', 'db'] });
    await send(source, 'conversations', fresh.objectId, 'da', 'in the new one');
    for (let i = 0; i < 30; i++) await send(source, 'conversations', ids.group, 'ea', `later ${i}`);
    const old = ids.msgs[5];
    await rest(source, 'PUT', `${g}/messages/${old['msg-id']}`, { from_client: 'eb', message: 'edited later', timestamp: old.timestamp });
    const old2 = ids.msgs[6];
    await rest(source, 'PUT', `${g}/messages/${old2['msg-id']}/recall`, { from_client: 'ec', timestamp: old2.timestamp });
    await rest(source, 'POST', `${g}/members`, { client_ids: ['enew'] });
    await rest(source, 'DELETE', `${g}/members`, { client_ids: ['ed'] });
    const r = await importer();
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-3000));
    // what was sent to the target after the switch stays: the delta adds, it does not replace
    await compareServers(source, target, { urlMap: (d) => (typeof d === 'string' ? d.replaceAll(source.httpUrl, target.httpUrl) : d), targetOnly: sentOnTarget });
    const after = (await history(target, { objectId: uniqueId })).pages.flat();
    for (const id of sentOnTarget) assert.ok(after.some((x) => x['msg-id'] === id), 'the message sent to the target after the switch is still there');
    const h = await history(target, { objectId: ids.group });
    assert.equal(h.items.find((x) => x['msg-id'] === old['msg-id']).data, 'edited later');
  });
});

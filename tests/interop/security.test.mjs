// Security with the official SDK (issue #4 §1–§2): signatures for login, conversation
// start/invite/kick/join and blacklist changes, made by the app's signature factories with
// the master key (HMAC-SHA1, protocol.md §5) — valid ones accepted, a wrong key, a stale
// timestamp and a replayed nonce refused with the exact code; and single sign-on tags
// (4111 SESSION_CONFLICT).
import { test, describe, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { startInteropServer } from '../lib/cluster-mode.mjs';
import { startProxy } from '../lib/interop-proxy.mjs';
import { Clients, uid, waitFor } from '../lib/interop-util.mjs';

const sign = (key, text) => createHmac('sha1', key).update(text).digest('hex');
const nonce = () => randomBytes(8).toString('hex');

// A factory set signing with `key`; `tweak` lets a test spoil one field.
function factories(server, key = server.masterKey, tweak = {}) {
  const ts = () => tweak.timestamp ?? Math.floor(Date.now() / 1000); // seconds, as LeanCloud's demos send
  const n = () => tweak.nonce ?? nonce();
  return {
    signatureFactory: (clientId) => {
      const t = ts(), no = n();
      return { signature: sign(key, `${server.appId}:${clientId}::${t}:${no}`), timestamp: t, nonce: no };
    },
    conversationSignatureFactory: (convId, clientId, targets, action) => {
      const t = ts(), no = n();
      const ids = [...targets].sort().join(':');
      const text = action === 'create'
        ? `${server.appId}:${clientId}:${ids}:${t}:${no}`
        : `${server.appId}:${clientId}:${convId}:${ids}:${t}:${no}:${action}`;
      return { signature: sign(key, text), timestamp: t, nonce: no };
    },
    blacklistSignatureFactory: (convId, clientId, targets, action) => {
      const t = ts(), no = n();
      const ids = [...targets].sort().join(':');
      return { signature: sign(key, `${server.appId}:${clientId}:${convId}:${ids}:${t}:${no}:${action}`), timestamp: t, nonce: no };
    },
  };
}

describe('signatures', () => {
  let server;
  let clients;
  before(async () => {
    server = await startInteropServer({ env: { TERN_SIGN_LOGIN: '1', TERN_SIGN_CONVERSATION: '1', TERN_SIGN_BLACKLIST: '1' } });
  });
  after(() => server.stop());
  afterEach(() => clients.closeAll());

  test('a valid login signature is accepted; timestamps in seconds and in milliseconds', async () => {
    clients = new Clients(server);
    const a = await clients.login(uid('sig'), { clientOptions: factories(server) });
    assert.ok(a.id);
    const b = await clients.login(uid('sigms'), { clientOptions: factories(server, server.masterKey, { timestamp: Date.now() }) });
    assert.ok(b.id);
  });

  test('login without a signature, with the app key instead of the master key, or stale, gets 4102', async () => {
    clients = new Clients(server);
    const cases = [
      ['no signature', {}],
      ['wrong key', factories(server, server.appKey)],
      ['stale timestamp (7 h old)', factories(server, server.masterKey, { timestamp: Math.floor(Date.now() / 1000) - 7 * 3600 })],
      ['future timestamp (7 h ahead)', factories(server, server.masterKey, { timestamp: Math.floor(Date.now() / 1000) + 7 * 3600 })],
    ];
    for (const [name, opts] of cases) {
      await assert.rejects(clients.login(uid('bad'), { clientOptions: opts }), (e) => {
        assert.equal(e.code, 4102, `${name}: ${e.message}`);
        assert.equal(e.message, 'SIGNATURE_FAILED');
        return true;
      }, name);
    }
  });

  test('a replayed nonce is refused within the validity window (4102)', async () => {
    clients = new Clients(server);
    const reused = nonce();
    const opts = factories(server, server.masterKey, { nonce: reused });
    const id = uid('replay');
    await clients.login(id, { clientOptions: opts });
    await assert.rejects(clients.login(`${id}-2`, { clientOptions: opts }), (e) => e.code === 4102);
  });

  test('conversation start, invite, kick and join need valid signatures (4302 otherwise)', async () => {
    clients = new Clients(server);
    const good = factories(server);
    const tom = await clients.login(uid('tom'), { clientOptions: good });
    const jerry = await clients.login(uid('jerry'), { clientOptions: good });
    const spike = uid('spike');
    const conv = await tom.createConversation({ members: [jerry.id], name: 'signed', unique: false });
    assert.match(conv.id, /^[0-9a-f]{24}$/);
    const added = await conv.add([spike]);
    assert.deepEqual(added.successfulClientIds, [spike]);
    const removed = await conv.remove([spike]);
    assert.deepEqual(removed.successfulClientIds, [spike]);
    const room = await tom.createChatRoom({ name: 'signed room' });
    const jroom = await jerry.getConversation(room.id);
    await jroom.join();
    assert.equal(await room.count(), 2);

    // the same operations signed with the app key instead of the master key
    const bad = await clients.login(uid('mallory'), {
      clientOptions: { ...good, conversationSignatureFactory: factories(server, server.appKey).conversationSignatureFactory },
    });
    await assert.rejects(bad.createConversation({ members: [jerry.id], unique: false }),
      (e) => e.code === 4302 && e.message === 'CONVERSATION_SIGNATURE_FAILED');
    const mconv = await bad.getConversation(room.id);
    await assert.rejects(mconv.join(), (e) => e.code === 4302);
    await assert.rejects(conv.add([uid('x')]).then(() => bad.getConversation(conv.id)).then((c) => c.add([uid('y')])),
      (e) => e.code === 4302);
  });

  test('blacklist changes need a valid signature (4546 otherwise)', async () => {
    clients = new Clients(server);
    const good = factories(server);
    const tom = await clients.login(uid('owner'), { clientOptions: good });
    const troll = uid('troll');
    const conv = await tom.createConversation({ members: [troll, uid('m')], unique: false });
    const left = waitFor(tom, 'membersleft', (p) => p.members.includes(troll));
    const r = await conv.blockMembers([troll]);
    assert.deepEqual(r.successfulClientIds, [troll]);
    await left; // blocking takes the client out of the conversation
    assert.equal(conv.members.includes(troll), false);
    const liar = await clients.login(uid('liar'), {
      clientOptions: { ...good, blacklistSignatureFactory: factories(server, 'not-the-master-key').blacklistSignatureFactory },
    });
    const lconv = await liar.createConversation({ members: [uid('z')], unique: false });
    await assert.rejects(lconv.blockMembers([uid('z')]), (e) => e.code === 4546 && e.message === 'BLACKLIST_SIGNATURE_FAILED');
  });
});

describe('single sign-on tags', () => {
  let server;
  let clients;
  before(async () => { server = await startInteropServer(); });
  after(() => server.stop());
  afterEach(() => clients.closeAll());

  test('an explicit login with the same tag kicks the older session with CONFLICT (4111)', async () => {
    clients = new Clients(server);
    const id = uid('tom');
    const phone1 = await clients.login(id, { clientOptions: { tag: 'Mobile' } });
    const conflict = waitFor(phone1, 'conflict');
    const phone2 = await clients.login(id, { clientOptions: { tag: 'Mobile' } });
    const [payload] = await conflict; // the SDK emits 'conflict' only for session/closed 4111
    assert.equal(payload.reason, 'SESSION_CONFLICT');
    // the new one works: it can talk to someone
    const jerry = await clients.login(uid('jerry'));
    const got = waitFor(jerry, 'message');
    const conv = await phone2.createConversation({ members: [jerry.id], unique: false });
    await conv.send(new phone2.sdk.TextMessage('from the new phone'));
    const [msg] = await got;
    assert.equal(msg.text, 'from the new phone');
    assert.deepEqual(await jerry.ping([id]), [id]);
  });

  test('different tags coexist, and untagged logins are unlimited', async () => {
    clients = new Clients(server);
    const id = uid('multi');
    const mobile = await clients.login(id, { clientOptions: { tag: 'Mobile' } });
    const desktop = await clients.login(id, { clientOptions: { tag: 'Desktop' } });
    const web1 = await clients.login(id);
    const web2 = await clients.login(id);
    let conflicts = 0;
    for (const c of [mobile, desktop, web1, web2]) c.on('conflict', () => conflicts++);
    const jerry = await clients.login(uid('jerry'));
    const conv = await jerry.createConversation({ members: [id], unique: false });
    const seen = [mobile, desktop, web1, web2].map((c) => waitFor(c, 'message', (m) => m.text === 'to all devices'));
    await conv.send(new jerry.sdk.TextMessage('to all devices'));
    await Promise.all(seen);
    assert.equal(conflicts, 0);
  });

  test('a reconnect that conflicts is refused (4111) and the session that is there stays', async () => {
    clients = new Clients(server);
    const proxy = await startProxy(server.port);
    try {
      const id = uid('roam');
      const target = { ...server, wsUrl: proxy.wsUrl, httpUrl: server.httpUrl };
      const first = await clients.login(id, { target, clientOptions: { tag: 'Mobile' } });
      const refused = waitFor(first, 'reconnecterror', () => true, 15000);
      proxy.refuse(true);
      proxy.dropAll(); // first's connection dies; it will come back with r:true and its st
      const second = await clients.login(id, { clientOptions: { tag: 'Mobile' } });
      proxy.refuse(false);
      const [err] = await refused;
      assert.equal(err.code, 4111);
      // the second device was not kicked and still receives
      const jerry = await clients.login(uid('jerry'));
      const got = waitFor(second, 'message');
      const conv = await jerry.createConversation({ members: [id], unique: false });
      await conv.send(new jerry.sdk.TextMessage('still here'));
      assert.equal((await got)[0].text, 'still here');
    } finally {
      await proxy.close();
    }
  });
});

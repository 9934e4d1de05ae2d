// Official JS SDK 5.0.0-rc.8 against ternd: logging in and out (issue #2 point 1), client
// ids with unicode and at the 64-character limit, the online query `client.ping()` (point
// 13) and two IMClients multiplexed on one WebSocket (point 10). Runs once per transport
// (binary protobuf frames and base64 text frames).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MODES, collect, waitFor, uid, modeSuite } from '../lib/interop-util.mjs';

for (const mode of MODES) {
  describe(`login and sessions [${mode.name}]`, () => {
    const suite = modeSuite(mode);

    it('createIMClient logs in, close() logs out (seen by another client\'s ping)', async () => {
      const tomId = uid('tom');
      const watcher = await suite.env.login(uid('watcher'));
      const tom = await suite.env.login(tomId);
      assert.equal(tom.id, tomId);
      assert.deepEqual(await watcher.ping([tomId]), [tomId]);
      const closed = waitFor(tom, 'close');
      await tom.close();
      const [payload] = await closed;
      assert.equal(payload.code, 0);
      assert.deepEqual(await watcher.ping([tomId]), []);
    });

    it('ping() returns exactly the online subset of the ids asked about', async () => {
      const a = uid('a');
      const b = uid('b');
      const offline = uid('never');
      const ca = await suite.env.login(a);
      await suite.env.login(b);
      const online = await ca.ping([offline, b, a]);
      assert.deepEqual([...online].sort(), [a, b].sort());
      assert.deepEqual(await ca.ping([offline]), []);
    });

    it('unicode client ids log in and exchange messages', async () => {
      const tomId = `汤姆-トム-🐱-${uid('ü')}`;
      const jerryId = `杰瑞-ジェリー-🐭-${uid('ñ')}`;
      const tom = await suite.env.login(tomId);
      const jerry = await suite.env.login(jerryId);
      assert.equal(tom.id, tomId);
      assert.equal(jerry.id, jerryId);
      const got = waitFor(jerry, 'message');
      const conv = await tom.createConversation({ members: [jerryId], name: '猫と鼠' });
      assert.deepEqual([...conv.members].sort(), [tomId, jerryId].sort());
      const sent = await conv.send(new tom.sdk.TextMessage('你好 🧀'));
      const [msg, jconv] = await got;
      assert.equal(msg.id, sent.id);
      assert.equal(msg.from, tomId);
      assert.equal(msg.text, '你好 🧀');
      assert.equal(jconv.id, conv.id);
      assert.equal(jconv.name, '猫と鼠');
      assert.deepEqual(await jerry.ping([tomId]), [tomId]);
    });

    it('a 64-character ASCII client id is accepted and can chat', async () => {
      const base = uid('x');
      const longId = (base + 'L'.repeat(64)).slice(0, 64);
      assert.equal(longId.length, 64);
      const tom = await suite.env.login(longId);
      assert.equal(tom.id, longId);
      const jerry = await suite.env.login(uid('jerry'));
      const got = waitFor(tom, 'message');
      const conv = await jerry.createConversation({ members: [longId] });
      await conv.send(new jerry.sdk.TextMessage('to the long id'));
      const [msg] = await got;
      assert.equal(msg.text, 'to the long id');
      assert.equal(msg.cid, conv.id);
    });

    it('a 64-character client id of multi-byte characters is accepted (the limit is characters)', async () => {
      const longId = '猫'.repeat(64);
      const tom = await suite.env.login(longId);
      assert.equal(tom.id, longId);
      const jerry = await suite.env.login(uid('jerry'));
      const got = waitFor(tom, 'message');
      const conv = await jerry.createConversation({ members: [longId] });
      await conv.send(new jerry.sdk.TextMessage('to 64 cats'));
      const [msg] = await got;
      assert.equal(msg.text, 'to 64 cats');
    });

    it('a 65-character client id is refused with INVALID_LOGIN (4103)', async () => {
      const tooLong = (uid('y') + 'L'.repeat(65)).slice(0, 65);
      await assert.rejects(suite.env.login(tooLong), (err) => {
        assert.equal(err.code, 4103);
        return true;
      });
    });

    it('two IMClients on one Realtime share a socket and each gets exactly the other\'s messages', async () => {
      const tomId = uid('tom');
      const jerryId = uid('jerry');
      const entry = suite.env.realtime();
      const tom = await suite.env.loginOn(entry, tomId);
      const jerry = await suite.env.loginOn(entry, jerryId);
      assert.equal(tom.id, tomId);
      assert.equal(jerry.id, jerryId);
      const tomGot = collect(tom, 'message', (m) => ({ text: m.text, from: m.from }));
      const jerryGot = collect(jerry, 'message', (m) => ({ text: m.text, from: m.from }));
      const tConv = await tom.createConversation({ members: [jerryId], name: 'mux' });
      const jConv = await jerry.getConversation(tConv.id);
      assert.ok(jConv, 'Jerry finds the conversation');
      // strict ping-pong: each message is sent only after the previous one arrived, so any
      // copy of a client's own message would have reached it before the next reply
      await tConv.send(new tom.sdk.TextMessage('t1'));
      await jerryGot.until(1);
      await jConv.send(new jerry.sdk.TextMessage('j1'));
      await tomGot.until(1);
      await tConv.send(new tom.sdk.TextMessage('t2'));
      await jerryGot.until(2);
      await jConv.send(new jerry.sdk.TextMessage('j2'));
      await tomGot.until(2);
      assert.deepEqual(tomGot.items, [
        { text: 'j1', from: jerryId },
        { text: 'j2', from: jerryId },
      ]);
      assert.deepEqual(jerryGot.items, [
        { text: 't1', from: tomId },
        { text: 't2', from: tomId },
      ]);
      // both are online as far as the server is concerned, through the one socket
      const watcher = await suite.env.login(uid('watcher'));
      assert.deepEqual([...(await watcher.ping([tomId, jerryId]))].sort(), [tomId, jerryId].sort());
      // closing one client keeps the other working on the shared socket
      await tom.close();
      assert.deepEqual(await watcher.ping([tomId, jerryId]), [jerryId]);
      const wConv = await watcher.createConversation({ members: [jerryId] });
      const late = waitFor(jerry, 'message', (m) => m.text === 'after tom left');
      await wConv.send(new watcher.sdk.TextMessage('after tom left'));
      const [m] = await late;
      assert.equal(m.cid, wConv.id);
    });
  });
}

// Official JS SDK 5.0.0-rc.8 against ternd: messages for an offline member become unread
// counts at its next login (issue #2 point 5), read state syncs to its other devices, and
// the sender sees how far it has read (point 13: fetchReceiptTimestamps / max_read, and
// the read receipt push). Runs once per transport.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MODES, waitFor, sleep, uid, modeSuite, deviceSeen } from '../lib/interop-util.mjs';
import { clusterSkip } from '../lib/cluster-mode.mjs';

const N = 5;

// Waits for the first UNREAD_MESSAGES_COUNT_UPDATE on `client` that includes `cid`, and
// returns that conversation.
async function unreadFor(client, cid, predicate = () => true) {
  const [convs] = await waitFor(client, 'unreadmessagescountupdate', (cs) =>
    cs.some((c) => c.id === cid && predicate(c)),
  );
  return convs.find((c) => c.id === cid);
}

for (const mode of MODES) {
  describe(`offline messages and unread counts [${mode.name}]`, () => {
    const suite = modeSuite(mode);

    it('a never-logged-in member gets unread count, mention and last message at login; history in order; read syncs to a 2nd device', async () => {
      const tom = await suite.env.login(uid('tom'));
      const jerryId = uid('jerry');
      const conv = await tom.createConversation({ members: [jerryId], name: 'offline' });
      const sent = [];
      for (let i = 0; i < N; i++) {
        const m = new tom.sdk.TextMessage(i === 2 ? `@${jerryId} look at ${i}` : `offline ${i}`);
        if (i === 2) m.setMentionList([jerryId]);
        sent.push(await conv.send(m));
      }

      const jerry1 = await suite.env.login(jerryId);
      const c1 = await unreadFor(jerry1, conv.id);
      assert.equal(c1.unreadMessagesCount, N);
      assert.equal(c1.unreadMessagesMentioned, true);
      assert.ok(c1.lastMessage, 'lastMessage set from the unread notification');
      assert.equal(c1.lastMessage.id, sent[N - 1].id);
      assert.equal(c1.lastMessage.text, `offline ${N - 1}`);
      assert.equal(c1.lastMessage.from, tom.id);
      assert.equal(c1.lastMessage.timestamp.getTime(), sent[N - 1].timestamp.getTime());
      assert.equal(c1.lastMessageAt.getTime(), sent[N - 1].timestamp.getTime());
      assert.equal(c1.name, 'offline');

      const history = await c1.queryMessages({ limit: 20 });
      assert.deepEqual(history.map((m) => m.id), sent.map((m) => m.id));
      assert.deepEqual(history.map((m) => m.text), sent.map((m) => m.text));
      assert.deepEqual(history[2].mentionList, [jerryId]);
      assert.equal(history[2].mentioned, true);
      assert.equal(history[1].mentioned, false);

      // a second device of Jerry sees the same state
      const jerry2 = await suite.env.login(jerryId);
      const c2 = await unreadFor(jerry2, conv.id);
      assert.equal(c2.unreadMessagesCount, N);
      assert.equal(c2.unreadMessagesMentioned, true);
      assert.equal(c2.lastMessage.id, sent[N - 1].id);

      // device 1 reads: device 2 is told the count is now 0; Tom learns how far Jerry read
      await deviceSeen(jerry1, c1, jerry2); // cluster: device 1's node must know device 2 (the window)
      const readReceipt = waitFor(conv, 'lastreadatupdate');
      const cleared = unreadFor(jerry2, conv.id, (c) => c.unreadMessagesCount === 0);
      await c1.read();
      assert.equal(c1.unreadMessagesCount, 0);
      const c2after = await cleared;
      assert.equal(c2after.unreadMessagesCount, 0);
      assert.equal(c2after.unreadMessagesMentioned, false);
      await readReceipt;
      assert.equal(conv.lastReadAt.getTime(), sent[N - 1].timestamp.getTime(), 'read receipt points at the last message');

      // max_read from a fresh view of the conversation
      const tom2 = await suite.env.login(tom.id);
      const tconv = await tom2.getConversation(conv.id);
      assert.equal(tconv.lastReadAt, undefined);
      // read is fire-and-forget and the server stores the position asynchronously (the push
      // to the other device and the receipt go out first): poll max_read for up to 2 s
      for (const deadline = Date.now() + 2000; ; ) {
        await tconv.fetchReceiptTimestamps();
        if ((tconv.lastReadAt && tconv.lastReadAt.getTime() > 0) || Date.now() > deadline) break;
        await sleep(50);
      }
      assert.ok(tconv.lastReadAt instanceof Date, 'lastReadAt after fetchReceiptTimestamps');
      assert.equal(tconv.lastReadAt.getTime(), sent[N - 1].timestamp.getTime());

      // a third login after the read starts at zero: no unread notification for this conversation
      const other = await tom.createConversation({ members: [jerryId], name: 'barrier', unique: false });
      const bmsg = await other.send(new tom.sdk.TextMessage('barrier'));
      const jerry3 = await suite.env.login(jerryId);
      const [convs] = await waitFor(jerry3, 'unreadmessagescountupdate', (cs) => cs.some((c) => c.id === other.id));
      assert.deepEqual(convs.map((c) => c.id), [other.id], 'only the conversation with unread messages');
      assert.equal(convs[0].unreadMessagesCount, 1);
      assert.equal(convs[0].unreadMessagesMentioned, false);
      assert.equal(convs[0].lastMessage.id, bmsg.id);
    });

    // Jerry's read() is fire-and-forget just before close(); on one node the writer commits
    // it before the login's unread read, but his next login lands on another node, whose
    // read of the store has no order against the first node's commit (docs/cluster.md)
    it('a member that logged out gets only what was sent while it was away; mentionAll counts as a mention',
      clusterSkip('a read sent just before close, then a login on another node'), async () => {
      const tomId = uid('tom');
      const jerryId = uid('jerry');
      const spikeId = uid('spike');
      const tom = await suite.env.login(tomId);
      let jerry = await suite.env.login(jerryId);
      const seen = waitFor(jerry, 'invited');
      const conv = await tom.createConversation({ members: [jerryId, spikeId], name: 'away' });
      await seen;
      const online = waitFor(jerry, 'message');
      const m0 = await conv.send(new tom.sdk.TextMessage('while online'));
      const [got] = await online;
      assert.equal(got.id, m0.id);
      const jc = await jerry.getConversation(conv.id);
      // read() goes out at once (fire-and-forget) and close() after it on the same socket,
      // so the server has the read position before Jerry is gone
      await jc.read();
      await jerry.close();

      const away = [];
      away.push(await conv.send(new tom.sdk.TextMessage('away 1')));
      const all = new tom.sdk.TextMessage('@all away 2');
      all.mentionAll();
      away.push(await conv.send(all));
      away.push(await conv.send(new tom.sdk.TextMessage('away 3')));

      jerry = await suite.env.login(jerryId);
      const c = await unreadFor(jerry, conv.id);
      assert.equal(c.unreadMessagesCount, 3);
      assert.equal(c.unreadMessagesMentioned, true);
      assert.equal(c.lastMessage.id, away[2].id);
      const history = await c.queryMessages({ limit: 10 });
      assert.deepEqual(history.map((m) => m.id), [m0, ...away].map((m) => m.id));
      assert.equal(history[2].mentionedAll, true);
      assert.equal(history[2].mentioned, true);
      assert.equal(history[3].mentioned, false);
      // Spike never logged in: all four are unread for him, with the mentionAll
      const spike = await suite.env.login(spikeId);
      const s = await unreadFor(spike, conv.id);
      assert.equal(s.unreadMessagesCount, 4);
      assert.equal(s.unreadMessagesMentioned, true);
      assert.equal(s.lastMessage.id, away[2].id);
    });

    it('count() returns the member count of a normal conversation', async () => {
      const tom = await suite.env.login(uid('tom'));
      const conv = await tom.createConversation({ members: [uid('a'), uid('b'), uid('c')], name: 'count' });
      assert.equal(await conv.count(), 4);
      const pair = await tom.createConversation({ members: [uid('d')], name: 'pair' });
      assert.equal(await pair.count(), 2);
    });
  });
}

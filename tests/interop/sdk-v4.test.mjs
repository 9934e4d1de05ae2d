// The npm `latest` SDK, leancloud-realtime 4.3.1, against ternd: the subset of issue #2
// that apps still on v4 need (login, 1:1 send/receive, history, offline unread counts,
// reconnect), plus v4's pushOfflineMessages mode (subprotocol lc.protobuf2.1: offline
// messages are pushed at login instead of counted). v4 has no usable `server` option
// (it forces https), so it connects through RTMServers only; unique defaults to false.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { freshSdk } from '../lib/sdk.mjs';
import { startProxy, sessionOpens } from '../lib/interop-proxy.mjs';
import { MODES, collect, waitFor, uid, createConversationSeen, payloadOf, reconnection, sleep, modeSuite, deviceSeen } from '../lib/interop-util.mjs';

const decode = (() => {
  const sdk = freshSdk(4);
  const Protocols = sdk.Protocols || sdk.Protocals; // 4.3.1 exports only the misspelt name
  return (data) => Protocols.GenericCommand.decode(data);
})();

for (const mode of MODES) {
  describe(`SDK 4.3.1 [${mode.name}]`, () => {
    const suite = modeSuite(mode, { clients: { major: 4 } });

    it('logs in and out (ping sees it), unicode id', async () => {
      const tomId = `汤姆-${uid('tom')}`;
      const watcher = await suite.env.login(uid('watcher'));
      const tom = await suite.env.login(tomId);
      assert.equal(tom.id, tomId);
      assert.deepEqual(await watcher.ping([tomId]), [tomId]);
      await tom.close();
      assert.deepEqual(await watcher.ping([tomId]), []);
    });

    it('1:1 send and receive, text and typed with _lcattrs; replies; unique is off by default', async () => {
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'));
      const conv = await createConversationSeen(tom, { members: [jerry.id], name: 'v4 chat' }, [jerry]);
      const again = await tom.createConversation({ members: [jerry.id], name: 'v4 chat 2' });
      assert.notEqual(again.id, conv.id, 'v4 creates a new conversation unless unique: true');
      const got = collect(jerry, 'message', (m, c) => ({ m, cid: c.id }));
      const text = new tom.sdk.TextMessage('hello from v4');
      text.setAttributes({ deep: { list: [1, { two: 2 }] }, s: '猫' });
      const img = new tom.classes.ImageMessage({
        _lcfile: { url: 'http://x.invalid/a.png', objId: 'o1', metaData: { width: 1, height: 2, format: 'png', size: 3 } },
      });
      img.setText('caption');
      const poke = new tom.classes.PokeMessage({ pokes: 2, target: { who: 'Jerry' } });
      const sent = [];
      for (const m of [text, img, poke]) sent.push(await conv.send(m));
      const received = await got.until(3);
      received.forEach(({ m, cid }, i) => {
        assert.equal(cid, conv.id);
        assert.equal(m.id, sent[i].id);
        assert.equal(m.from, tom.id);
        assert.deepEqual(payloadOf(m), payloadOf(sent[i]));
      });
      assert.ok(received[1].m instanceof jerry.classes.ImageMessage);
      assert.ok(received[2].m instanceof jerry.classes.PokeMessage);
      assert.deepEqual(received[0].m.attributes, { deep: { list: [1, { two: 2 }] }, s: '猫' });
      const back = waitFor(tom, 'message');
      const jconv = await jerry.getConversation(conv.id);
      const reply = await jconv.send(new jerry.sdk.TextMessage('hello v4 back'));
      const [r] = await back;
      assert.equal(r.id, reply.id);
      assert.equal(r.text, 'hello v4 back');
    });

    it('history: 45 messages paged back with createMessagesIterator and forwards with OLD_TO_NEW', async () => {
      const tom = await suite.env.login(uid('tom'));
      const conv = await tom.createConversation({ members: [uid('jerry')], name: 'v4 history' });
      const ids = [];
      for (let i = 0; i < 45; i++) ids.push((await conv.send(new tom.sdk.TextMessage(`h${i}`))).id);
      const it = conv.createMessagesIterator({ limit: 10 });
      const pages = [];
      for (;;) {
        const { value, done } = await it.next();
        pages.push(value.map((m) => m.id));
        if (done) break;
        assert.ok(pages.length < 10);
      }
      assert.deepEqual(pages.reverse().flat(), ids);
      const first = (await conv.queryMessages({ limit: 1, startTime: new Date(0), direction: tom.sdk.MessageQueryDirection.OLD_TO_NEW }))[0];
      assert.equal(first.id, ids[0]);
      const fwd = [first];
      for (;;) {
        const last = fwd[fwd.length - 1];
        const page = await conv.queryMessages({
          startTime: last.timestamp,
          startMessageId: last.id,
          direction: tom.sdk.MessageQueryDirection.OLD_TO_NEW,
          limit: 10,
        });
        if (!page.length) break;
        fwd.push(...page);
      }
      assert.deepEqual(fwd.map((m) => m.id), ids);
      assert.deepEqual(fwd.map((m) => m.text), ids.map((_, i) => `h${i}`));
    });

    it('offline member: unread count, mention and last message at login; read() clears it on a second device', async () => {
      const tom = await suite.env.login(uid('tom'));
      const jerryId = uid('jerry');
      const conv = await tom.createConversation({ members: [jerryId], name: 'v4 offline' });
      const sent = [];
      for (let i = 0; i < 3; i++) {
        const m = new tom.sdk.TextMessage(`off ${i}`);
        if (i === 0) m.setMentionList([jerryId]);
        sent.push(await conv.send(m));
      }
      const jerry = await suite.env.login(jerryId);
      const [convs] = await waitFor(jerry, 'unreadmessagescountupdate', (cs) => cs.some((c) => c.id === conv.id));
      const c = convs.find((x) => x.id === conv.id);
      assert.equal(c.unreadMessagesCount, 3);
      assert.equal(c.unreadMessagesMentioned, true);
      assert.equal(c.lastMessage.id, sent[2].id);
      assert.equal(c.lastMessage.text, 'off 2');
      assert.deepEqual((await c.queryMessages({ limit: 10 })).map((m) => m.id), sent.map((m) => m.id));
      const jerry2 = await suite.env.login(jerryId);
      await waitFor(jerry2, 'unreadmessagescountupdate', (cs) => cs.some((x) => x.id === conv.id && x.unreadMessagesCount === 3));
      await deviceSeen(jerry, c, jerry2); // cluster: the first device's node must know the second (the window)
      const cleared = waitFor(jerry2, 'unreadmessagescountupdate', (cs) =>
        cs.some((x) => x.id === conv.id && x.unreadMessagesCount === 0),
      );
      await c.read();
      const [after2] = await cleared;
      assert.equal(after2.find((x) => x.id === conv.id).unreadMessagesMentioned, false);
    });

    it('reconnect after a TCP drop resumes with r:true + st and keeps messaging', async () => {
      const proxy = await startProxy(suite.server.port, { decode });
      try {
        const via = { ...suite.server, wsUrl: proxy.wsUrl, httpUrl: proxy.httpUrl };
        const tom = await suite.env.login(uid('tom'));
        const jerry = await suite.env.login(uid('jerry'), { target: via });
        const conv = await createConversationSeen(tom, { members: [jerry.id], name: 'v4 reconnect' }, [jerry]);
        const jconv = await jerry.getConversation(conv.id);
        const rj = reconnection(jerry);
        proxy.dropAll();
        await rj.done;
        assert.deepEqual(rj.order, ['disconnect', 'reconnect']);
        const opens = sessionOpens(proxy.log, jerry.id);
        assert.equal(opens.length, 2, JSON.stringify(opens));
        assert.equal(opens[1].r, true);
        assert.equal(opens[1].st, opens[0].issued);
        assert.equal(opens[1].reply, 'opened');
        const got = waitFor(jerry, 'message');
        const m = await conv.send(new tom.sdk.TextMessage('after the drop'));
        assert.equal((await got)[0].id, m.id);
        const toTom = waitFor(tom, 'message');
        const r = await jconv.send(new jerry.sdk.TextMessage('still here'));
        assert.equal((await toTom)[0].id, r.id);
      } finally {
        await suite.env.closeAll();
        await proxy.close();
      }
    });

    it('pushOfflineMessages: messages sent while offline are pushed at login, each exactly once', async () => {
      const tom = await suite.env.login(uid('tom'));
      const jerryId = uid('jerry');
      const conv = await tom.createConversation({ members: [jerryId], name: 'v4 push offline' });
      const sent = [];
      for (let i = 0; i < 4; i++) sent.push(await conv.send(new tom.sdk.TextMessage(`push ${i}`)));
      const entry = suite.env.realtime({ pushOfflineMessages: true });
      // The pushes follow session/opened at once, but the SDK emits each only after looking
      // up the (uncached) conversation, so a listener attached here is in time. Those
      // lookups may finish in any order, so the order of the events is the SDK's, not the
      // server's: compare as sets.
      const client = await suite.env.loginOn(entry, jerryId);
      const got = collect(client, 'message', (m) => ({ id: m.id, text: m.text, cid: m.cid }));
      const received = await got.until(4);
      const byId = (a, b) => (a.id < b.id ? -1 : 1);
      assert.deepEqual([...received].sort(byId), sent.map((m) => ({ id: m.id, text: m.text, cid: conv.id })).sort(byId));
      // The SDK acks at most once a second (a throttle in the client): let the last batch go
      // out before logging out, or the server rightly pushes the unacked ones again.
      await sleep(1200);
      // acked: a second login in the same mode gets nothing more, only what is new
      await client.close();
      const fresh = await tom.createConversation({ members: [jerryId], name: 'v4 push offline 2' });
      const next = await fresh.send(new tom.sdk.TextMessage('only this one'));
      const entry2 = suite.env.realtime({ pushOfflineMessages: true });
      const client2 = await suite.env.loginOn(entry2, jerryId);
      const got2 = collect(client2, 'message', (m) => m.id);
      assert.deepEqual(await got2.until(1), [next.id]);
      await client2.ping([tom.id]); // barrier: anything else would have been pushed by now
      assert.deepEqual(got2.items, [next.id]);
    });
  });
}

// Official JS SDK 5.0.0-rc.8 against ternd: chat rooms (issue #2 point 9), once per
// transport. Tom creates a room (and is in it), Jerry and Spike find it by id and join,
// count() is the online count, messages reach everyone in the room, quit() leaves, and
// room messages never become unread counts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MODES, collect, waitFor, uid, modeSuite } from '../lib/interop-util.mjs';

for (const mode of MODES) {
  describe(`chat rooms [${mode.name}]`, () => {
    const suite = modeSuite(mode);

    it('create, join, count, deliver, quit, and no unread counts for room messages', async () => {
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'));
      const spike = await suite.env.login(uid('spike'));
      const room = await tom.createChatRoom({ name: 'lobby', topic: 'cheese' });
      assert.ok(room instanceof tom.sdk.ChatRoom);
      assert.equal(room.transient, true);
      assert.equal(await room.count(), 1, 'the creator is in the room');

      const jroom = await jerry.getConversation(room.id);
      const sroom = await spike.getConversation(room.id);
      assert.ok(jroom instanceof jerry.sdk.ChatRoom, 'Jerry finds a ChatRoom');
      assert.ok(sroom instanceof spike.sdk.ChatRoom, 'Spike finds a ChatRoom');
      assert.equal(jroom.name, 'lobby');
      assert.equal(jroom.get('topic'), 'cheese');
      assert.equal(jroom.transient, true);
      // the chat-room query finds it too
      const rooms = await jerry.getChatRoomQuery().equalTo('name', 'lobby').find();
      assert.deepEqual(rooms.map((r) => r.id), [room.id]);

      await jroom.join();
      assert.equal(await room.count(), 2);
      await sroom.join();
      assert.equal(await room.count(), 3);
      assert.equal(await sroom.count(), 3);

      const jGot = collect(jerry, 'message', (m, c) => ({ id: m.id, text: m.text, cid: c.id }));
      const sGot = collect(spike, 'message', (m, c) => ({ id: m.id, text: m.text, cid: c.id }));
      const tGot = collect(tom, 'message', (m) => m.id);
      const m1 = await room.send(new tom.sdk.TextMessage('hello room'));
      assert.deepEqual(await jGot.until(1), [{ id: m1.id, text: 'hello room', cid: room.id }]);
      assert.deepEqual(await sGot.until(1), [{ id: m1.id, text: 'hello room', cid: room.id }]);
      // a member's message reaches the creator and the other member, not the sender
      const m2 = await jroom.send(new jerry.sdk.TextMessage('hi from jerry'));
      assert.deepEqual(await tGot.until(1), [m2.id]);
      assert.deepEqual((await sGot.until(2))[1], { id: m2.id, text: 'hi from jerry', cid: room.id });

      await sroom.quit();
      assert.equal(await room.count(), 2);
      const m3 = await room.send(new tom.sdk.TextMessage('after spike left'));
      assert.deepEqual((await jGot.until(2)).map((x) => x.id), [m1.id, m3.id]);
      // barrier: a request of Spike's answered after m3 was delivered to the room
      await spike.ping([tom.id]);
      assert.deepEqual(sGot.items.map((x) => x.id), [m1.id, m2.id], 'Spike got nothing after quit()');
      assert.deepEqual(jGot.items.map((x) => x.id), [m1.id, m3.id], 'Jerry got his own message back');

      // room messages are stored: history works for someone in the room
      const history = await jroom.queryMessages({ limit: 10 });
      assert.deepEqual(history.map((m) => m.id), [m1.id, m2.id, m3.id]);

      // a new login of Jerry hears about unread messages of his normal conversation only
      const dm = await tom.createConversation({ members: [jerry.id], name: 'dm' });
      const dmMsg = await dm.send(new tom.sdk.TextMessage('direct'));
      const jerry2 = await suite.env.login(jerry.id);
      const [convs] = await waitFor(jerry2, 'unreadmessagescountupdate');
      assert.deepEqual(convs.map((c) => c.id), [dm.id], 'no unread count for the chat room');
      assert.equal(convs[0].unreadMessagesCount, 1);
      assert.equal(convs[0].lastMessage.id, dmMsg.id);
    });

    it('leaving the room by logging out lowers the online count', async () => {
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'));
      const room = await tom.createChatRoom({ name: 'short stay' });
      const jroom = await jerry.getConversation(room.id);
      await jroom.join();
      assert.equal(await room.count(), 2);
      await jerry.close();
      assert.equal(await room.count(), 1);
    });

    it('a client that joins late receives only what is sent after it joined', async () => {
      const tom = await suite.env.login(uid('tom'));
      const outsider = await suite.env.login(uid('outsider'));
      const room = await tom.createChatRoom({ name: 'closed door' });
      const oGot = collect(outsider, 'message', (m) => m.id);
      const m1 = await room.send(new tom.sdk.TextMessage('inside only'));
      // outsider joins afterwards: it receives only what is sent from then on
      const oroom = await outsider.getConversation(room.id);
      await oroom.join();
      const m2 = await room.send(new tom.sdk.TextMessage('now you hear me'));
      assert.deepEqual(await oGot.until(1), [m2.id]);
      assert.notEqual(m1.id, m2.id);
      await outsider.ping([tom.id]);
      assert.deepEqual(oGot.items, [m2.id]);
    });
  });
}

// Official JS SDK 5.0.0-rc.8 against ternd, issue #3 points 7–12, once per transport:
//   7  edit and recall: messageupdate / messagerecall (RecalledMessage, _lctype -127) on the
//      other members and the sender's other device, the stored content replaced, 4403 and
//      4404 from the server, and the catch-up of missed patches after a reconnect
//   8  chat rooms: re-joined after a reconnect, one room per login, no membership events,
//      priorities accepted
//   9  temporary conversations: the server refuses an expired one (4323)
//  10  conversations removed by the expiry sweep: later sends get 4401
//  11  will messages: sent when the sender's connection dies, not after a goodbye
//  12  reliable notifications: what a client missed while disconnected arrives after its
//      reconnect through GET /1.1/rtm/notifications, as the same events, in order
// A TCP proxy (tests/lib/interop-proxy.mjs) cuts connections without a close frame.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startInteropServer } from '../lib/cluster-mode.mjs';
import { MODES, Clients, uid, createConversationSeen, reconnection, waitFor, sleep, modeSuite } from '../lib/interop-util.mjs';
import {
  recordEvents, eventsUntil, assertOfflineMemberGetsNothing, closeProxies, decodingProxy, wirePushes,
} from '../lib/issue3-interop.mjs';

const strip = (evs) => evs.map(({ cid, message, ...x }) => x);

/** Cuts `client`'s connection (through `proxy`) and keeps it down until the returned
 * function is called; resolves once the SDK has noticed. */
async function cut(client, proxy) {
  const rc = reconnection(client);
  const down = waitFor(client.rt, 'disconnect');
  proxy.refuse(true);
  proxy.dropAll();
  await down;
  return async () => {
    proxy.refuse(false);
    await rc.done;
  };
}

for (const mode of MODES) {
  describe(`edit, recall, chat rooms, wills and reliable notifications [${mode.name}]`, () => {
    const suite = modeSuite(mode, { cleanup: closeProxies });

    const via = (proxy) => ({ ...suite.server, wsUrl: proxy.wsUrl, httpUrl: proxy.httpUrl });

    it('edit and recall: messageupdate / messagerecall on the members and the sender\'s other device, history replaced, 4403 / 4404', async () => {
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'));
      const spike = await suite.env.login(uid('spike'));
      const tyke = uid('tyke');
      const conv = await createConversationSeen(tom, { members: [jerry.id, spike.id, tyke], unique: false }, [jerry, spike]);
      const cid = conv.id;
      const tom2 = await suite.env.login(tom.id); // Tom's other device
      const rec = { tom: recordEvents(tom), jerry: recordEvents(jerry), spike: recordEvents(spike), tom2: recordEvents(tom2) };
      const m1 = await conv.send(new tom.sdk.TextMessage('original'));
      const m2 = await conv.send(new tom.sdk.TextMessage('to be recalled'));
      for (const k of ['jerry', 'spike', 'tom2']) await rec[k].until((x) => x.e === 'message' && x.id === m2.id);

      const edited = await conv.update(m1, new tom.sdk.TextMessage('edited'));
      assert.equal(edited.id, m1.id);
      assert.equal(edited.text, 'edited');
      const recalled = await conv.recall(m2);
      assert.equal(recalled.type, -127);
      for (const k of ['jerry', 'spike', 'tom2']) {
        const got = await eventsUntil(rec[k], cid, 2, ['messageupdate', 'messagerecall']);
        assert.deepEqual(strip(got), [
          { e: 'messageupdate', id: m1.id, from: tom.id, type: -1, text: 'edited' },
          { e: 'messagerecall', id: m2.id, from: tom.id, type: -127, text: undefined },
        ], `${k}: update then recall`);
        const { sdk } = { jerry, spike, tom2 }[k];
        const [upd, rcl] = rec[k].events.filter((x) => x.cid === cid && (x.e === 'messageupdate' || x.e === 'messagerecall'));
        assert.ok(upd.message instanceof sdk.TextMessage);
        assert.ok(rcl.message instanceof sdk.RecalledMessage, `${k}: a RecalledMessage`);
        assert.equal(upd.message.timestamp.getTime(), m1.timestamp.getTime(), 'original send time kept');
        assert.ok(upd.message.updatedAt instanceof Date && upd.message.updatedAt >= m1.timestamp);
      }
      assert.deepEqual(rec.tom.of(cid, ['messageupdate', 'messagerecall']), [], 'the patching client is not told of its own patch');
      // the stored messages are replaced, for everyone
      const jconv = await jerry.getConversation(cid);
      const hist = await jconv.queryMessages({ limit: 10 });
      assert.deepEqual(hist.map((m) => m.id), [m1.id, m2.id]);
      assert.equal(hist[0].text, 'edited');
      assert.ok(hist[1] instanceof jerry.sdk.RecalledMessage);
      // someone else's message, and an unknown one: refused by the server
      const m3 = await jconv.send(new jerry.sdk.TextMessage('jerry\'s own'));
      const tconv = await tom.getConversation(cid);
      await assert.rejects(tconv.recall({ id: m3.id, timestamp: m3.timestamp }), (e) => e.code === 4403 && e.message === 'MESSAGE_OWNERSHIP_REQUIRED');
      await assert.rejects(tconv.update({ id: m3.id, timestamp: m3.timestamp }, new tom.sdk.TextMessage('hijack')), (e) => e.code === 4403);
      await assert.rejects(tconv.recall({ id: 'AAAAAAAAAAAAAAAAAAAAAA', timestamp: m3.timestamp }), (e) => e.code === 4404 && e.message === 'MESSAGE_NOT_FOUND');
      assert.equal((await jconv.queryMessages({ limit: 1 }))[0].text, 'jerry\'s own');
      // Tyke, offline: nothing pushed; its history shows the new contents
      const t = await assertOfflineMemberGetsNothing(suite.env, suite.server, tyke, cid, { noBinary: mode.noBinary });
      const th = await t.conv.queryMessages({ limit: 10 });
      assert.equal(th[0].text, 'edited');
      assert.ok(th[1] instanceof t.client.sdk.RecalledMessage);
    });

    it('patches made while a member was disconnected arrive after its reconnect (lastPatchTime catch-up)', async () => {
      const proxy = await decodingProxy(suite.server);
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'), { target: via(proxy) });
      const conv = await createConversationSeen(tom, { members: [jerry.id], unique: false }, [jerry]);
      const rec = recordEvents(jerry);
      const m1 = await conv.send(new tom.sdk.TextMessage('one'));
      const m2 = await conv.send(new tom.sdk.TextMessage('two'));
      await rec.until((x) => x.e === 'message' && x.id === m2.id);
      const back = await cut(jerry, proxy);
      await conv.update(m1, new tom.sdk.TextMessage('one, edited while you were away'));
      await conv.recall(m2);
      await back();
      const got = await eventsUntil(rec, conv.id, 2, ['messageupdate', 'messagerecall']);
      assert.deepEqual(strip(got), [
        { e: 'messageupdate', id: m1.id, from: tom.id, type: -1, text: 'one, edited while you were away' },
        { e: 'messagerecall', id: m2.id, from: tom.id, type: -127, text: undefined },
      ]);
      const pushes = wirePushes(proxy.log).filter((p) => p.name === 'patch/modify');
      assert.equal(pushes.length, 1, 'one catch-up push after the reconnect login');
    });

    it('will message: delivered when the sender\'s connection dies, not after a goodbye', async () => {
      const proxy = await decodingProxy(suite.server);
      const tom = await suite.env.login(uid('tom'), { target: via(proxy) });
      const jerry = await suite.env.login(uid('jerry'));
      const spike = await suite.env.login(uid('spike'));
      const conv = await createConversationSeen(tom, { members: [jerry.id, spike.id], unique: false }, [jerry, spike]);
      const rec = recordEvents(jerry);
      const will = await conv.send(new tom.sdk.TextMessage('tom dropped'), { will: true });
      assert.ok(will.id);
      const sconv = await spike.getConversation(conv.id);
      await sconv.send(new spike.sdk.TextMessage('spike\'s will'), { will: true });
      // nothing yet: a normal message overtakes the wills
      const n = await sconv.send(new spike.sdk.TextMessage('normal'));
      await rec.until((x) => x.e === 'message' && x.id === n.id);
      assert.deepEqual(rec.of(conv.id, ['message']).map((x) => x.text), ['normal']);
      // Spike says goodbye: its will is dropped. Tom's connection dies: its will goes out.
      await spike.close();
      const back = await cut(tom, proxy);
      const got = await rec.until((x) => x.e === 'message' && x.text === 'tom dropped');
      assert.equal(got.from, tom.id);
      await back();
      const marker = await conv.send(new tom.sdk.TextMessage('marker'));
      await rec.until((x) => x.e === 'message' && x.id === marker.id);
      assert.deepEqual(rec.of(conv.id, ['message']).map((x) => x.text), ['normal', 'tom dropped', 'marker'], 'no will from Spike');
    });

    it('reliable notifications: what happened while disconnected arrives after the reconnect, as events, in order', async () => {
      const proxy = await decodingProxy(suite.server);
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'), { target: via(proxy) });
      const spike = await suite.env.login(uid('spike'));
      const butch = uid('butch');
      const conv = await createConversationSeen(tom, { members: [jerry.id, spike.id], name: 'before', unique: false }, [jerry, spike]);
      const cid = conv.id;
      const rec = recordEvents(jerry);
      const back = await cut(jerry, proxy);
      await conv.add([butch]);
      const sconv = await spike.getConversation(cid);
      sconv.name = 'renamed while away';
      await sconv.save();
      await conv.updateMemberRole(spike.id, 'Manager');
      await conv.muteMembers([butch]);
      await back();
      const NAMES = ['membersjoined', 'conversationinfoupdated', 'memberinfoupdated', 'membersmuted', 'invited'];
      const got = strip(await eventsUntil(rec, cid, 4, NAMES, 15000));
      const want = [
        { e: 'membersjoined', by: tom.id, members: [butch] },
        { e: 'conversationinfoupdated', by: spike.id, attributes: { name: 'renamed while away' } },
        { e: 'memberinfoupdated', by: tom.id, member: spike.id, role: 'Manager' },
        { e: 'membersmuted', by: tom.id, members: [butch] },
      ];
      // the SDK emits memberinfoupdated only after its own REST read of the member infos, so
      // that one event may come later than the server sent it; the others keep the order
      const byE = (a) => [...a].sort((x, y) => x.e.localeCompare(y.e));
      assert.deepEqual(byE(got), byE(want));
      const sync = (a) => a.filter((x) => x.e !== 'memberinfoupdated');
      assert.deepEqual(sync(got), sync(want), 'in the order they happened');
      const jconv = await jerry.getConversation(cid);
      assert.ok(jconv.members.includes(butch), 'the member list caught up');
      assert.equal(jconv.name, 'renamed while away');
      // they came over HTTP, not as pushes on the new connection
      const onWire = wirePushes(proxy.log).filter((p) => p.cid === cid && p.name.startsWith('conv/'));
      assert.deepEqual(onWire.map((p) => p.name), ['conv/joined', 'conv/members_joined'], 'only the creation pushes went over the socket');
    });

    it('chat room: re-joined after a reconnect, one room per login, no membership events, priorities accepted', async () => {
      const proxy = await decodingProxy(suite.server);
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'), { target: via(proxy) });
      const recT = recordEvents(tom);
      const recJ = recordEvents(jerry);
      const room = await tom.createChatRoom({ name: 'lobby' });
      const spike = await suite.env.login(uid('spike'));
      const other = await spike.createChatRoom({ name: 'other' });
      const jroom = await jerry.getConversation(room.id);
      await jroom.join();
      assert.equal(await room.count(), 2);
      // dropped and back: still in the room, no join needed
      const back = await cut(jerry, proxy);
      await back();
      assert.equal(await room.count(), 2, 're-joined by the reconnect login');
      const { MessagePriority } = tom.sdk;
      const m = await room.send(new tom.sdk.TextMessage('after the reconnect'), { priority: MessagePriority.LOW });
      await recJ.until((x) => x.e === 'message' && x.id === m.id);
      const h = await room.send(new tom.sdk.TextMessage('high'), { priority: MessagePriority.HIGH });
      await recJ.until((x) => x.e === 'message' && x.id === h.id);
      // one room per login: joining the other leaves the lobby
      const jother = await jerry.getConversation(other.id);
      await jother.join();
      assert.equal(await room.count(), 1);
      assert.equal(await other.count(), 2);
      const gone = await room.send(new tom.sdk.TextMessage('not for jerry'));
      const marker = await other.send(new spike.sdk.TextMessage('marker'));
      await recJ.until((x) => x.e === 'message' && x.id === marker.id);
      assert.deepEqual(recJ.events.filter((x) => x.e === 'message').map((x) => x.text), ['after the reconnect', 'high', 'marker'],
        'nothing from the room Jerry left');
      assert.ok(gone.id);
      assert.deepEqual(recT.of(room.id, ['invited', 'kicked', 'membersjoined', 'membersleft']), [], 'no membership events in chat rooms');
    });

    it('temporary conversation past its TTL: the server refuses it with 4323 even when the client\'s clock disagrees', async () => {
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'));
      // 3 s: with 1 s, a loaded machine (the cluster run, on PostgreSQL) took longer than the
      // TTL between the start and the first send, which was then refused
      const tmp = await tom.createTemporaryConversation({ members: [jerry.id], ttl: 3 });
      assert.match(tmp.id, /^_tmp:/);
      await tmp.send(new tom.sdk.TextMessage('in time'));
      await sleep(3300); // the point: the 3 s TTL runs out on the server's clock
      tmp.expiredAt = new Date(Date.now() + 3600 * 1000); // a client whose clock is behind
      // the server sends no reason for 4323 (issue #11 point 18): the SDK shows its own text
      await assert.rejects(tmp.send(new tom.sdk.TextMessage('too late')),
        (e) => e.code === 4323 && e.message === 'Temporary conversation expired or does not exist.' && e.name === 'TEMPORARY_CONVERSATION_EXPIRED');
      await assert.rejects(tmp.count(), (e) => e.code === 4323);
    });
  });
}

describe('conversation expiry sweep (JS SDK)', () => {
  let server;
  let env;
  before(async () => { server = await startInteropServer({ env: { TERN_CONV_IDLE_TTL: '2', TERN_SWEEP_INTERVAL: '1' } }); });
  after(async () => {
    if (env) await env.closeAll();
    if (server) await server.stop();
  });

  it('a conversation idle past conv_idle_ttl is deleted; later sends get 4401, lookups find nothing', async () => {
    env = new Clients(server);
    const tom = await env.login(uid('tom'));
    const jerry = await env.login(uid('jerry'));
    const conv = await createConversationSeen(tom, { members: [jerry.id], unique: false }, [jerry]);
    await conv.send(new tom.sdk.TextMessage('last words'));
    const end = Date.now() + 8000;
    while ((await jerry.getQuery().equalTo('objectId', conv.id).find()).length) {
      assert.ok(Date.now() < end, 'swept within 8 s');
      await sleep(200);
    }
    await assert.rejects(conv.send(new tom.sdk.TextMessage('anyone?')), (e) => e.code === 4401 && e.message === 'INVALID_MESSAGING_TARGET');
    assert.equal(await jerry.getConversation(conv.id, true), null);
  });
});

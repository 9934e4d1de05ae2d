// Official JS SDK 5.0.0-rc.8 against ternd, issue #3 points 1, 2, 3 and 11, once per
// transport: membership (invite, join, kick, quit, partial results, count), attribute
// updates (dotted paths, custom fields, operators, renames by any member, the updater's
// other device), mute/unmute, and the online query (ping). Every step asserts the events
// each client involved saw — initiator, target, third member, and the updater's second
// device — with their payloads and order, and that a member offline throughout gets
// nothing queued for the conversation when it logs in.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MODES, uid, createConversationSeen, modeSuite, deviceSeen } from '../lib/interop-util.mjs';
import { recordEvents, eventsUntil, assertOfflineMemberGetsNothing, closeProxies } from '../lib/issue3-interop.mjs';

const sorted = (a) => [...a].sort();
const MEMBERSHIP = ['invited', 'kicked', 'membersjoined', 'membersleft'];

for (const mode of MODES) {
  describe(`conversation membership, attributes and mute [${mode.name}]`, () => {
    const suite = modeSuite(mode, { cleanup: closeProxies });

    it('invite / join / kick / quit / partial add: events, payloads and order on every client; count; the offline member gets nothing', async () => {
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'));
      const spike = await suite.env.login(uid('spike'));
      const butch = await suite.env.login(uid('butch'));
      const tyke = uid('tyke'); // a member that stays offline until the end
      const rec = { tom: recordEvents(tom), jerry: recordEvents(jerry), spike: recordEvents(spike), butch: recordEvents(butch) };
      const conv = await createConversationSeen(tom, { members: [jerry.id, spike.id, tyke], name: 'crew', unique: false }, [jerry, spike]);
      const cid = conv.id;
      const all0 = sorted([tom.id, jerry.id, spike.id, tyke]);
      const want = {
        tom: [{ e: 'invited', by: tom.id }, { e: 'membersjoined', by: tom.id, members: all0 }],
        jerry: [{ e: 'invited', by: tom.id }, { e: 'membersjoined', by: tom.id, members: all0 }],
        spike: [{ e: 'invited', by: tom.id }, { e: 'membersjoined', by: tom.id, members: all0 }],
        butch: [],
      };
      const check = async (what) => {
        for (const [k, r] of Object.entries(rec)) {
          const got = await eventsUntil(r, cid, want[k].length, MEMBERSHIP);
          assert.deepEqual(got.map(({ cid: c, ...x }) => x), want[k], `${what}: events of ${k}`);
        }
      };
      await check('creation');
      const add = (k, e) => want[k].push(e);

      // 1. Tom invites Butch
      let r = await conv.add([butch.id]);
      assert.deepEqual(r.successfulClientIds, [butch.id]);
      assert.deepEqual(r.failures, []);
      add('butch', { e: 'invited', by: tom.id });
      for (const k of ['butch', 'tom', 'jerry', 'spike']) add(k, { e: 'membersjoined', by: tom.id, members: [butch.id] });
      await check('Tom invites Butch');
      assert.equal(await conv.count(), 5);

      // 2. Spike quits
      const sconv = await spike.getConversation(cid);
      await sconv.quit();
      add('spike', { e: 'kicked', by: spike.id });
      for (const k of ['tom', 'jerry', 'butch']) add(k, { e: 'membersleft', by: spike.id, members: [spike.id] });
      await check('Spike quits');
      assert.equal(sconv.members.includes(spike.id), false);

      // 3. Tom kicks Jerry
      r = await conv.remove(jerry.id);
      assert.deepEqual(r.successfulClientIds, [jerry.id]);
      add('jerry', { e: 'kicked', by: tom.id });
      for (const k of ['tom', 'butch']) add(k, { e: 'membersleft', by: tom.id, members: [jerry.id] });
      await check('Tom kicks Jerry');
      assert.equal(await conv.count(), 3);

      // 4. Jerry joins again by itself
      const jconv = await jerry.getConversation(cid);
      await jconv.join();
      add('jerry', { e: 'invited', by: jerry.id });
      for (const k of ['jerry', 'tom', 'butch']) add(k, { e: 'membersjoined', by: jerry.id, members: [jerry.id] });
      await check('Jerry joins');

      // 5. a partial add: Spike back, one invalid id
      const bad = 'x'.repeat(65);
      r = await conv.add([spike.id, bad]);
      assert.deepEqual(r.successfulClientIds, [spike.id]);
      assert.equal(r.failures.length, 1);
      assert.equal(r.failures[0].code, 4103);
      assert.equal(r.failures[0].message, 'INVALID_LOGIN');
      assert.deepEqual(r.failures[0].clientIds, [bad]);
      add('spike', { e: 'invited', by: tom.id });
      for (const k of ['spike', 'tom', 'jerry', 'butch']) add(k, { e: 'membersjoined', by: tom.id, members: [spike.id] });
      await check('Tom re-adds Spike');

      const final = sorted([tom.id, jerry.id, spike.id, tyke, butch.id]);
      assert.equal(await conv.count(), 5);
      for (const [k, c] of [['tom', conv], ['jerry', jconv], ['spike', sconv], ['butch', await butch.getConversation(cid)]]) {
        assert.deepEqual(sorted(c.members), final, `${k}'s member list followed the events`);
      }
      // Tyke, offline all along: nothing queued
      const t = await assertOfflineMemberGetsNothing(suite.env, suite.server, tyke, cid, { noBinary: mode.noBinary });
      assert.deepEqual(sorted(t.conv.members), final);
      await check('end (no late events)');
    });

    it('the 500-member limit: a partial add answers 4304 CONVERSATION_FULL for the ids beyond it; join of a full conversation fails', async () => {
      const tom = await suite.env.login(uid('tom'));
      const others = Array.from({ length: 498 }, (_, k) => `${tom.id}-m${k}`);
      const conv = await tom.createConversation({ members: others, unique: false });
      assert.equal(await conv.count(), 499);
      const [x, y] = [uid('x'), uid('y')];
      const r = await conv.add([x, y]);
      assert.deepEqual(r.successfulClientIds, [x]);
      assert.equal(r.failures.length, 1);
      assert.equal(r.failures[0].code, 4304);
      assert.equal(r.failures[0].message, 'CONVERSATION_FULL');
      assert.deepEqual(r.failures[0].clientIds, [y]);
      assert.equal(await conv.count(), 500);
      const late = await suite.env.login(y);
      const lconv = await late.getConversation(conv.id);
      await assert.rejects(lconv.join(), (e) => e.code === 4304);
      assert.equal(await conv.count(), 500);
    });

    it('update by a member: dotted path, custom fields, an operator; others and the updater\'s other device get conversationinfoupdated; untouched keys survive', async () => {
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'));
      const spike = await suite.env.login(uid('spike'));
      const tyke = uid('tyke');
      const conv = await createConversationSeen(tom, {
        members: [jerry.id, spike.id, tyke], name: 'n0', unique: false,
        color: 'red', size: 3, attr: { topic: 't0', lang: 'en' }, extra: 'bye',
      }, [jerry, spike]);
      const cid = conv.id;
      const jerry2 = await suite.env.login(jerry.id); // Jerry's second device (its own Realtime)
      const rec = { tom: recordEvents(tom), jerry: recordEvents(jerry), spike: recordEvents(spike), jerry2: recordEvents(jerry2) };
      const jconv = await jerry.getConversation(cid);
      await deviceSeen(jerry, jconv, jerry2); // cluster: Jerry's node must know his second device (the window)
      jconv.set('attr.topic', 't1');
      jconv.name = 'n1';
      jconv.set('size', { __op: 'Increment', amount: 2 });
      jconv.set('extra', { __op: 'Delete' });
      jconv.set('fresh', { deep: [1, 2] });
      const before = jconv.updatedAt;
      await jconv.save();
      assert.ok(jconv.updatedAt > before, 'updatedAt from the reply\'s udate');
      const sent = { 'attr.topic': 't1', name: 'n1', size: { __op: 'Increment', amount: 2 }, extra: { __op: 'Delete' }, fresh: { deep: [1, 2] } };
      for (const k of ['tom', 'spike', 'jerry2']) {
        const got = await eventsUntil(rec[k], cid, 1, ['conversationinfoupdated']);
        assert.deepEqual(got.map(({ cid: c, ...x }) => x), [{ e: 'conversationinfoupdated', by: jerry.id, attributes: sent }], `${k}`);
      }
      // the others' copies: nested merge of the dotted path, untouched keys kept
      const tconv = await tom.getConversation(cid);
      assert.equal(tconv.name, 'n1');
      assert.equal(tconv.get('attr.topic'), 't1');
      assert.equal(tconv.get('attr.lang'), 'en');
      assert.equal(tconv.get('color'), 'red');
      // what the server stored, seen by a client that reloads it
      const [fresh] = await spike.getQuery().equalTo('objectId', cid).find();
      assert.equal(fresh.name, 'n1');
      assert.equal(fresh.get('color'), 'red', 'untouched custom field');
      assert.deepEqual(fresh.get('attr'), { topic: 't1', lang: 'en' }, 'sibling of the dotted path kept');
      assert.equal(fresh.get('size'), 5, 'Increment applied');
      assert.equal(fresh.get('extra'), undefined, 'Delete applied');
      assert.deepEqual(fresh.get('fresh'), { deep: [1, 2] });
      assert.equal(fresh.creator, tom.id);
      assert.deepEqual(sorted(fresh.members), sorted([tom.id, jerry.id, spike.id, tyke]));
      // any member may rename: Spike now
      const sconv = await spike.getConversation(cid);
      sconv.name = 'by spike';
      await sconv.save();
      for (const k of ['tom', 'jerry', 'jerry2']) {
        await rec[k].until((x) => x.e === 'conversationinfoupdated' && x.by === spike.id);
      }
      assert.equal(jconv.name, 'by spike');
      assert.deepEqual(rec.jerry.of(cid, ['conversationinfoupdated']).map((x) => x.by), [spike.id], 'the updating session is not told of its own update');
      assert.deepEqual(rec.spike.of(cid, ['conversationinfoupdated']).map((x) => x.by), [jerry.id]);
      await assertOfflineMemberGetsNothing(suite.env, suite.server, tyke, cid, { noBinary: mode.noBinary });
    });

    it('three custom attributes, one changed: the other two unchanged in a second client\'s query', async () => {
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'));
      const conv = await createConversationSeen(tom, { members: [jerry.id], name: 'three', unique: false, first: 'one', second: { v: 2 }, third: [3] }, [jerry]);
      conv.set('second', { v: 22 });
      await conv.save();
      const observer = await suite.env.login(jerry.id); // a fresh SDK copy: nothing cached
      const [seen] = await observer.getQuery().equalTo('objectId', conv.id).find();
      assert.equal(seen.get('first'), 'one');
      assert.deepEqual(seen.get('third'), [3]);
      assert.deepEqual(seen.get('second'), { v: 22 });
      assert.equal(seen.name, 'three');
    });

    it('update by a member who was kicked → 4309 CONVERSATION_UPDATE_REJECTED, nothing changes', async () => {
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'));
      const conv = await createConversationSeen(tom, { members: [jerry.id], name: 'keep', unique: false }, [jerry]);
      const jconv = await jerry.getConversation(conv.id);
      await conv.remove(jerry.id);
      await recordEvents(jerry).until((x) => x.e === 'kicked' && x.cid === conv.id).catch(() => {});
      jconv.name = 'hijacked';
      await assert.rejects(jconv.save(), (e) => e.code === 4309 && e.message === 'CONVERSATION_UPDATE_REJECTED');
      const [seen] = await tom.getQuery().equalTo('objectId', conv.id).find();
      assert.equal(seen.name, 'keep');
    });

    it('mute / unmute: muted and mutedMembers on the requester, visible at once to others\' queries, no events', async () => {
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'));
      const recT = recordEvents(tom);
      // several conversations: an acknowledged mute must be visible to the very next query
      for (let k = 0; k < 5; k += 1) {
        const conv = await createConversationSeen(tom, { members: [jerry.id], unique: false }, [jerry]);
        const jconv = await jerry.getConversation(conv.id);
        await jconv.mute();
        assert.equal(jconv.muted, true);
        assert.deepEqual(jconv.mutedMembers, [jerry.id]);
        // a query no other command in flight shares: the SDK would hand an identical one the
        // answer of its own earlier lookup (Duplicated command … is throttled), made before the mute
        let [seen] = await tom.getQuery().equalTo('objectId', conv.id).limit(100 + 2 * k).find();
        assert.deepEqual(seen.mutedMembers, [jerry.id], `#${k}: Tom's query right after Jerry's mute`);
        assert.equal(seen.muted, false, 'Tom has not muted it');
        await jconv.unmute();
        assert.equal(jconv.muted, false);
        assert.deepEqual(jconv.mutedMembers, []);
        [seen] = await tom.getQuery().equalTo('objectId', conv.id).limit(101 + 2 * k).find();
        assert.deepEqual(seen.mutedMembers, [], `#${k}: Tom's query right after Jerry's unmute`);
        await eventsUntil(recT, conv.id, 2);
        assert.deepEqual(recT.of(conv.id).map((x) => x.e), ['invited', 'membersjoined'], 'mute concerns only the requester');
      }
    });

    it('ping answers which of the given clients are online', async () => {
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'));
      const away = uid('away');
      assert.deepEqual(sorted(await tom.ping([jerry.id, away, tom.id])), sorted([jerry.id, tom.id]));
      await jerry.close();
      assert.deepEqual(await tom.ping([jerry.id, away]), []);
    });
  });
}

// Official JS SDK 5.0.0-rc.8 against ternd, issue #3 points 4, 5 and 6, once per transport:
// member roles (updateMemberRole, memberinfoupdated, getAllMemberInfo through the
// _ConversationMemberInfo REST read, 4320), shut-up (muteMembers / unmuteMembers /
// queryMutedMembers, the muted / membersmuted events, 4563 for a muted sender, 4320) and
// the conversation blacklist (blockMembers / unblockMembers / queryBlockedMembers, blocked
// + kicked / membersblocked + membersleft, 4548 on re-join). Each step asserts the events
// of the initiator, the target and a third member, in order, and that a member offline
// throughout finds nothing queued.
import { describe, it, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startInteropServer } from '../lib/cluster-mode.mjs';
import { MODES, Clients, uid, createConversationSeen, modeSuite, waitFor } from '../lib/interop-util.mjs';
import { recordEvents, eventsUntil, assertOfflineMemberGetsNothing, closeProxies } from '../lib/issue3-interop.mjs';

const sorted = (a) => [...a].sort();
const strip = (evs) => evs.map(({ cid, ...x }) => x);
const NOTIFS = ['invited', 'kicked', 'membersjoined', 'membersleft', 'memberinfoupdated', 'blocked', 'unblocked',
  'membersblocked', 'membersunblocked', 'muted', 'unmuted', 'membersmuted', 'membersunmuted', 'conversationinfoupdated'];

for (const mode of MODES) {
  describe(`roles, shut-up and blacklists [${mode.name}]`, () => {
    const suite = modeSuite(mode, { cleanup: closeProxies });

    /** Tom (owner) with Jerry and Spike online and Tyke offline; creation events drained. */
    async function crew() {
      const tom = await suite.env.login(uid('tom'));
      const jerry = await suite.env.login(uid('jerry'));
      const spike = await suite.env.login(uid('spike'));
      const tyke = uid('tyke');
      const rec = { tom: recordEvents(tom), jerry: recordEvents(jerry), spike: recordEvents(spike) };
      const conv = await createConversationSeen(tom, { members: [jerry.id, spike.id, tyke], name: 'crew', unique: false }, [jerry, spike]);
      for (const r of Object.values(rec)) await eventsUntil(r, conv.id, 2, NOTIFS);
      const base = Object.fromEntries(Object.entries(rec).map(([k, r]) => [k, r.of(conv.id, NOTIFS).length]));
      const since = (k) => strip(rec[k].of(conv.id, NOTIFS).slice(base[k]));
      const waitN = async (k, n) => {
        await eventsUntil(rec[k], conv.id, base[k] + n, NOTIFS);
        return since(k);
      };
      return { tom, jerry, spike, tyke, rec, conv, cid: conv.id, since, waitN };
    }

    it('roles: the owner promotes and demotes; memberinfoupdated to every member; getAllMemberInfo; a member cannot (4320)', async () => {
      const { tom, jerry, spike, tyke, conv, cid, waitN } = await crew();
      await conv.updateMemberRole(jerry.id, 'Manager');
      const promoted = { e: 'memberinfoupdated', by: tom.id, member: jerry.id, role: 'Manager' };
      for (const k of ['tom', 'jerry', 'spike']) assert.deepEqual(await waitN(k, 1), [promoted], `${k}: memberinfoupdated`);
      // the JS SDK reads the roles through GET /1.1/classes/_ConversationMemberInfo
      const sconv = await spike.getConversation(cid);
      const infos = await sconv.getAllMemberInfo({ noCache: true });
      const roles = Object.fromEntries(infos.map((i) => [i.memberId, i.role]));
      assert.deepEqual(roles, { [tom.id]: 'Owner', [jerry.id]: 'Manager', [spike.id]: 'Member', [tyke]: 'Member' });
      assert.equal((await sconv.getMemberInfo(tom.id)).isOwner, true);
      // a plain member may not change roles; the owner cannot be promoted to (client-side 5130)
      await assert.rejects(sconv.updateMemberRole(jerry.id, 'Member'), (e) => e.code === 4320 && e.message === 'CONVERSATION_OPERATION_UNAUTHORIZED');
      const jconv = await jerry.getConversation(cid);
      await assert.rejects(jconv.updateMemberRole(spike.id, 'Manager'), (e) => e.code === 4320, 'only the owner changes roles');
      await assert.rejects(conv.updateMemberRole(spike.id, 'Owner'), (e) => e.code === 5130);
      // demotion
      await conv.updateMemberRole(jerry.id, 'Member');
      const demoted = { e: 'memberinfoupdated', by: tom.id, member: jerry.id, role: 'Member' };
      for (const k of ['tom', 'jerry', 'spike']) assert.deepEqual(await waitN(k, 2), [promoted, demoted], `${k}: both changes, in order`);
      const again = await sconv.getAllMemberInfo({ noCache: true });
      assert.equal(again.find((i) => i.memberId === jerry.id).role, 'Member');
      await assertOfflineMemberGetsNothing(suite.env, suite.server, tyke, cid, { noBinary: mode.noBinary });
    });

    it('shut-up: muted + membersmuted to the target, membersmuted to the rest; 4563 while muted; query; unmute', async () => {
      const { tom, jerry, spike, tyke, conv, cid, waitN } = await crew();
      const r = await conv.muteMembers([jerry.id]);
      assert.deepEqual(r.successfulClientIds, [jerry.id]);
      assert.deepEqual(r.failures, []);
      const mutedAll = { e: 'membersmuted', by: tom.id, members: [jerry.id] };
      assert.deepEqual(await waitN('jerry', 2), [{ e: 'muted', by: tom.id }, mutedAll], 'jerry: muted then membersmuted');
      assert.deepEqual(await waitN('tom', 1), [mutedAll]);
      assert.deepEqual(await waitN('spike', 1), [mutedAll]);
      const jconv = await jerry.getConversation(cid);
      await assert.rejects(jconv.send(new jerry.sdk.TextMessage('hello?')), (e) => e.code === 4563 && e.message === 'SILIENCED');
      await assert.rejects(jconv.unmuteMembers([jerry.id]), (e) => e.code === 4320, 'a muted member cannot unmute itself');
      const sconv = await spike.getConversation(cid);
      await assert.rejects(sconv.muteMembers([tom.id]), (e) => e.code === 4320, 'a plain member cannot mute');
      const q = await sconv.queryMutedMembers();
      assert.deepEqual(q.results, [jerry.id]);
      assert.ok(!q.next, 'no next page');
      // the others still talk
      const got = recordEvents(jerry);
      const m = await sconv.send(new spike.sdk.TextMessage('spike speaks'));
      await got.until((x) => x.e === 'message' && x.id === m.id);
      // unmute
      const u = await conv.unmuteMembers([jerry.id]);
      assert.deepEqual(u.successfulClientIds, [jerry.id]);
      const unmutedAll = { e: 'membersunmuted', by: tom.id, members: [jerry.id] };
      assert.deepEqual(await waitN('jerry', 4), [{ e: 'muted', by: tom.id }, mutedAll, { e: 'unmuted', by: tom.id }, unmutedAll]);
      assert.deepEqual(await waitN('tom', 2), [mutedAll, unmutedAll]);
      assert.deepEqual(await waitN('spike', 2), [mutedAll, unmutedAll]);
      await jconv.send(new jerry.sdk.TextMessage('free again'));
      assert.deepEqual((await sconv.queryMutedMembers()).results, []);
      // Tyke finds the messages as an unread count, and no shut-up notification
      await assertOfflineMemberGetsNothing(suite.env, suite.server, tyke, cid, { noBinary: mode.noBinary });
    });

    it('paged queryMutedMembers: limit and next', async () => {
      const { conv } = await crew();
      const many = Array.from({ length: 7 }, (_, k) => `${conv.id}-m${k}`);
      await conv.muteMembers(many);
      const p1 = await conv.queryMutedMembers({ limit: 5 });
      assert.deepEqual(p1.results, sorted(many).slice(0, 5));
      assert.ok(p1.next);
      const p2 = await conv.queryMutedMembers({ limit: 5, next: p1.next });
      assert.deepEqual(p2.results, sorted(many).slice(5));
      assert.ok(!p2.next, 'no next page');
    });

    it('blacklist: blocked + kicked to the target, membersblocked + membersleft to the rest; 4548 on re-join; unblock', async () => {
      const { tom, jerry, spike, tyke, conv, cid, waitN } = await crew();
      const r = await conv.blockMembers([jerry.id]);
      assert.deepEqual(r.successfulClientIds, [jerry.id]);
      assert.deepEqual(r.failures, []);
      assert.deepEqual(await waitN('jerry', 2), [{ e: 'blocked', by: tom.id }, { e: 'kicked', by: tom.id }], 'jerry: blocked then kicked');
      const others = [{ e: 'membersblocked', by: tom.id, members: [jerry.id] }, { e: 'membersleft', by: tom.id, members: [jerry.id] }];
      assert.deepEqual(await waitN('tom', 2), others);
      assert.deepEqual(await waitN('spike', 2), others);
      assert.deepEqual(sorted(conv.members), sorted([tom.id, spike.id, tyke]), 'the owner\'s member list follows');
      assert.equal(await conv.count(), 3);
      const jconv = await jerry.getConversation(cid);
      await assert.rejects(jconv.join(), (e) => e.code === 4548 && e.message === 'BLOCKED_BY_CONV');
      const add = await conv.add([jerry.id]);
      assert.deepEqual(add.successfulClientIds, []);
      assert.equal(add.failures[0].code, 4548);
      assert.deepEqual(add.failures[0].clientIds, [jerry.id]);
      const sconv = await spike.getConversation(cid);
      await assert.rejects(sconv.blockMembers([tom.id]), (e) => e.code === 4320, 'a plain member cannot block');
      const q = await sconv.queryBlockedMembers();
      assert.deepEqual(q.results, [jerry.id]);
      const owner = await conv.blockMembers([tom.id]);
      assert.equal(owner.failures[0].code, 4324, 'the owner cannot be blocked');
      // unblock: Jerry is told, the members are told, Jerry may join again
      const u = await conv.unblockMembers([jerry.id]);
      assert.deepEqual(u.successfulClientIds, [jerry.id]);
      assert.deepEqual(await waitN('jerry', 3), [{ e: 'blocked', by: tom.id }, { e: 'kicked', by: tom.id }, { e: 'unblocked', by: tom.id }]);
      const unb = { e: 'membersunblocked', by: tom.id, members: [jerry.id] };
      assert.deepEqual(await waitN('tom', 3), [...others, unb]);
      assert.deepEqual(await waitN('spike', 3), [...others, unb]);
      await jconv.join();
      assert.deepEqual((await waitN('jerry', 5)).slice(3), [{ e: 'invited', by: jerry.id }, { e: 'membersjoined', by: jerry.id, members: [jerry.id] }]);
      assert.deepEqual((await sconv.queryBlockedMembers()).results, []);
      await assertOfflineMemberGetsNothing(suite.env, suite.server, tyke, cid, { noBinary: mode.noBinary });
    });
  });
}

describe('member_roles on (JS SDK)', () => {
  let server;
  let env;
  before(async () => { server = await startInteropServer({ env: { TERN_MEMBER_ROLES: '1' } }); });
  afterEach(async () => {
    if (env) await env.closeAll();
    env = null;
  });
  after(async () => {
    if (server) await server.stop();
  });

  it('a plain member cannot add or remove others (4320); with a Manager the owner cannot quit or be removed (4324)', async () => {
    env = new Clients(server);
    const tom = await env.login(uid('tom'));
    const jerry = await env.login(uid('jerry'));
    const spike = await env.login(uid('spike'));
    const conv = await createConversationSeen(tom, { members: [jerry.id, spike.id], unique: false }, [jerry, spike]);
    const jconv = await jerry.getConversation(conv.id);
    await assert.rejects(jconv.add([uid('x')]), (e) => e.code === 4320 && e.message === 'CONVERSATION_OPERATION_UNAUTHORIZED');
    await assert.rejects(jconv.remove([spike.id]), (e) => e.code === 4320);
    await conv.updateMemberRole(jerry.id, 'Manager');
    await assert.rejects(conv.quit(), (e) => e.code === 4324 && e.message === 'CONVERSATION_NEED_OWNER');
    const r = await jconv.remove([tom.id, spike.id]);
    assert.deepEqual(r.successfulClientIds, [spike.id]);
    assert.equal(r.failures.length, 1);
    assert.equal(r.failures[0].code, 4324);
    assert.deepEqual(r.failures[0].clientIds, [tom.id]);
    const [seen] = await tom.getQuery().equalTo('objectId', conv.id).find();
    assert.deepEqual(sorted(seen.members), sorted([tom.id, jerry.id]));
  });

  it('the creator of a conversation without Managers may quit and join again, the Owner once back (issue #11 point 19)', async () => {
    env = new Clients(server);
    const tom = await env.login(uid('tom'));
    const jerry = await env.login(uid('jerry'));
    const conv = await createConversationSeen(tom, { members: [jerry.id], unique: false }, [jerry]);
    const jconv = await jerry.getConversation(conv.id);
    const left = waitFor(jerry, 'membersleft');
    await conv.quit();
    assert.deepEqual((await left)[0].members, [tom.id]);
    await assert.rejects(conv.muteMembers([jerry.id]), (e) => e.code === 4320, 'no powers while out');
    await conv.join();
    const muted = waitFor(jerry, 'muted');
    const r = await conv.muteMembers([jerry.id]);
    assert.deepEqual(r.successfulClientIds, [jerry.id], 'the Owner again');
    // cluster: Jerry's send is judged by his node's cached copy (sends use the cache,
    // docs/cluster.md "The conversation cache across nodes"), which hears of the mute by the
    // 'C' broadcast; his MUTED push leaves Tom's node after it on the same connection, so
    // once he has it his node has the change (without this wait, the broadcast held back by
    // Redis CLIENT PAUSE WRITE, node 2 accepted 'hush': nothing ordered it after Tom's reply)
    await muted;
    await assert.rejects(jconv.send(new jerry.sdk.TextMessage('hush')), (e) => e.code === 4563);
  });
});

// Official JS SDK 5.0.0-rc.8 against ternd: conversations, once per transport.
// * unique conversations (issue #2 point 7);
// * ConversationQuery (point 8) over a fixture of 8 conversations with distinct
//   attributes, on a server of its own so that every query's EXACT result set (and for
//   sorts, order) is known;
// * temporary conversations (point 12).
import { describe, it, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startInteropServer } from '../lib/cluster-mode.mjs';
import { MODES, Clients, waitFor, uid } from '../lib/interop-util.mjs';

// The fixture. `by` is the creator (Tom unless stated), `with` the other members.
// Tom is NOT a member of c6, which a query with conditions must still find.
const FIXTURE = [
  { name: 'alpha', with: ['Jerry'], level: 1, color: 'red', tags: ['a', 'b'], attr: { kind: 'pub' }, title: 'Hello World' },
  { name: 'beta', with: ['Jerry', 'Spike'], level: 2, color: 'blue', tags: ['b'], attr: { kind: 'priv' }, title: 'hello there' },
  { name: 'gamma', with: ['Spike'], level: 3, color: 'red', attr: { kind: 'pub' }, title: 'Say Hello' },
  { name: 'delta', with: ['Jerry', 'Spike', 'Tyke'], level: 4, color: 'green', tags: [], attr: { kind: 'priv' }, title: 'goodbye' },
  { name: 'epsilon', with: [], level: 5, color: 'blue', title: 'HELLO' },
  { name: 'zeta', with: ['Tyke'], level: 6, title: 'a.b*c (x)' },
  { name: 'eta', by: 'Jerry', with: ['Spike'], level: 7, color: 'red', title: 'Eta' },
  { name: 'theta', with: ['Jerry'], level: 8.5, color: 'red', title: 'theta \\E end' },
];

for (const mode of MODES) {
  describe(`conversation queries [${mode.name}]`, () => {
    let server;
    let env;
    let tom;
    let ids; // ids[i] = id of FIXTURE[i]
    let created; // the conversations as created, by fixture index
    const ID = {}; // the fixture's client ids, unique to this run

    // Runs `build(query)` on Tom's client and returns the fixture indexes found, in order.
    const run = async (build, client = tom) => {
      const found = await build(client.getQuery()).find();
      return found.map((c) => {
        const i = ids.indexOf(c.id);
        assert.ok(i >= 0, `query returned a conversation outside the fixture: ${c.id}`);
        return i;
      });
    };
    const sorted = (a) => [...a].sort((x, y) => x - y);

    before(async () => {
      server = await startInteropServer();
      env = new Clients(server, { noBinary: mode.noBinary });
      for (const n of ['Tom', 'Jerry', 'Spike', 'Tyke']) ID[n] = uid(n.toLowerCase());
      tom = await env.login(ID.Tom);
      const jerry = await env.login(ID.Jerry);
      created = [];
      for (const f of FIXTURE) {
        const by = f.by === 'Jerry' ? jerry : tom;
        const { with: others, by: _by, ...attrs } = f;
        created.push(await by.createConversation({ members: others.map((n) => ID[n]), unique: false, ...attrs }));
      }
      ids = created.map((c) => c.id);
      assert.equal(new Set(ids).size, FIXTURE.length);
      await created[0].send(new tom.sdk.TextMessage('last in alpha'));
    });
    after(async () => {
      if (env) await env.closeAll();
      if (server) await server.stop();
    });

    it('no conditions: the conversations the client is a member of', async () => {
      assert.deepEqual(sorted(await run((q) => q.limit(100))), [0, 1, 2, 3, 4, 5, 7]);
      const spike = await env.login(ID.Spike);
      assert.deepEqual(sorted(await run((q) => q.limit(100), spike)), [1, 2, 3, 6]);
    });

    it('equalTo on name, a top-level custom attribute and an attr. path', async () => {
      assert.deepEqual(await run((q) => q.equalTo('name', 'beta')), [1]);
      assert.deepEqual(sorted(await run((q) => q.equalTo('color', 'red').limit(100))), [0, 2, 6, 7]);
      assert.deepEqual(sorted(await run((q) => q.equalTo('level', 8.5))), [7]);
      assert.deepEqual(sorted(await run((q) => q.equalTo('attr.kind', 'pub'))), [0, 2]);
      assert.deepEqual(sorted(await run((q) => q.equalTo('tags', 'b'))), [0, 1], 'array field equality = contains');
      assert.deepEqual(await run((q) => q.equalTo('name', 'nope')), []);
      assert.deepEqual(await run((q) => q.equalTo('objectId', ids[3])), [3]);
      // a conversation found by a query carries its attributes
      const [beta] = await tom.getQuery().equalTo('name', 'beta').find();
      assert.equal(beta.get('color'), 'blue');
      assert.equal(beta.get('level'), 2);
      assert.deepEqual(beta.get('tags'), ['b']);
      assert.deepEqual(beta.get('attr'), { kind: 'priv' });
      assert.equal(beta.get('attr.kind'), 'priv');
      assert.equal(beta.creator, ID.Tom);
    });

    it('notEqualTo (a missing field counts as not equal)', async () => {
      assert.deepEqual(sorted(await run((q) => q.notEqualTo('color', 'red').limit(100))), [1, 3, 4, 5]);
    });

    it('lessThan / lessThanOrEqualTo / greaterThan / greaterThanOrEqualTo on a number', async () => {
      assert.deepEqual(sorted(await run((q) => q.lessThan('level', 3))), [0, 1]);
      assert.deepEqual(sorted(await run((q) => q.lessThanOrEqualTo('level', 3))), [0, 1, 2]);
      assert.deepEqual(sorted(await run((q) => q.greaterThan('level', 6))), [6, 7]);
      assert.deepEqual(sorted(await run((q) => q.greaterThanOrEqualTo('level', 6))), [5, 6, 7]);
      assert.deepEqual(sorted(await run((q) => q.greaterThan('level', 2).lessThan('level', 5))), [2, 3]);
    });

    it('lessThan / greaterThan on createdAt (a Date)', async () => {
      const pivot = created[3].createdAt;
      const expectAfter = created.map((c, i) => [c, i]).filter(([c]) => c.createdAt > pivot).map(([, i]) => i);
      const expectBefore = created.map((c, i) => [c, i]).filter(([c]) => c.createdAt < pivot).map(([, i]) => i);
      assert.deepEqual(sorted(await run((q) => q.greaterThan('createdAt', pivot).limit(100))), expectAfter);
      assert.deepEqual(sorted(await run((q) => q.lessThan('createdAt', pivot).limit(100))), expectBefore);
    });

    it('containedIn / notContainsIn', async () => {
      assert.deepEqual(sorted(await run((q) => q.containedIn('color', ['blue', 'green']).limit(100))), [1, 3, 4]);
      assert.deepEqual(sorted(await run((q) => q.containedIn('name', ['eta', 'zeta', 'omega']))), [5, 6]);
      assert.deepEqual(sorted(await run((q) => q.notContainsIn('color', ['red', 'blue']).limit(100))), [3, 5]);
    });

    it('containsMembers / withMembers (exact set) / sizeEqualTo on m', async () => {
      assert.deepEqual(sorted(await run((q) => q.containsMembers([ID.Jerry, ID.Spike]).limit(100))), [1, 3, 6]);
      assert.deepEqual(sorted(await run((q) => q.withMembers([ID.Jerry], true).limit(100))), [0, 7]);
      assert.deepEqual(sorted(await run((q) => q.withMembers([ID.Spike, ID.Jerry]).limit(100))), [6]);
      assert.deepEqual(sorted(await run((q) => q.withMembers([ID.Tom]).limit(100))), [4]);
      assert.deepEqual(sorted(await run((q) => q.sizeEqualTo('m', 3).limit(100))), [1]);
      assert.deepEqual(sorted(await run((q) => q.sizeEqualTo('m', 2).limit(100))), [0, 2, 5, 6, 7]);
      assert.deepEqual(sorted(await run((q) => q.equalTo('m', ID.Tyke).limit(100))), [3, 5]);
    });

    it('exists / doesNotExist', async () => {
      assert.deepEqual(sorted(await run((q) => q.exists('tags').limit(100))), [0, 1, 3]);
      assert.deepEqual(sorted(await run((q) => q.doesNotExist('tags').limit(100))), [2, 4, 5, 6, 7]);
      assert.deepEqual(sorted(await run((q) => q.exists('attr.kind').limit(100))), [0, 1, 2, 3]);
    });

    it('matches: regex with and without the i option', async () => {
      assert.deepEqual(sorted(await run((q) => q.matches('title', /^hello/).limit(100))), [1]);
      assert.deepEqual(sorted(await run((q) => q.matches('title', /^hello/i).limit(100))), [0, 1, 4]);
      assert.deepEqual(sorted(await run((q) => q.matches('title', /hello$/i).limit(100))), [2, 4]);
      assert.deepEqual(sorted(await run((q) => q.matches('name', /^[a-e].*a$/).limit(100))), [0, 1, 3, 6]);
    });

    it('startsWith / endsWith / contains (literal text, regex characters quoted)', async () => {
      assert.deepEqual(await run((q) => q.startsWith('title', 'Say')), [2]);
      assert.deepEqual(await run((q) => q.startsWith('title', 'say')), []);
      assert.deepEqual(await run((q) => q.endsWith('title', 'World')), [0]);
      assert.deepEqual(await run((q) => q.contains('title', 'b*c (')), [5]);
      assert.deepEqual(await run((q) => q.contains('title', 'a.b')), [5]);
      assert.deepEqual(await run((q) => q.contains('title', 'axb')), []);
      assert.deepEqual(await run((q) => q.contains('title', '\\E end')), [7]);
      assert.deepEqual(sorted(await run((q) => q.contains('name', 'et').limit(100))), [1, 5, 6, 7]);
    });

    it('ConversationQuery.and / .or', async () => {
      const { ConversationQuery } = tom.sdk;
      const red = tom.getQuery().equalTo('color', 'red');
      const high = tom.getQuery().greaterThan('level', 2);
      const and = ConversationQuery.and(red, high).limit(100);
      assert.deepEqual(sorted(await run(() => and)), [2, 6, 7]);
      const or = ConversationQuery.or(tom.getQuery().equalTo('name', 'alpha'), tom.getQuery().greaterThanOrEqualTo('level', 7)).limit(100);
      assert.deepEqual(sorted(await run(() => or)), [0, 6, 7]);
      const nested = ConversationQuery.and(
        ConversationQuery.or(tom.getQuery().equalTo('color', 'blue'), tom.getQuery().equalTo('color', 'green')),
        tom.getQuery().lessThan('level', 5),
      ).limit(100);
      assert.deepEqual(sorted(await run(() => nested)), [1, 3]);
    });

    it('ascending / descending / addAscending / addDescending sort', async () => {
      const all = (q) => q.exists('level').limit(100);
      assert.deepEqual(await run((q) => all(q).ascending('level')), [0, 1, 2, 3, 4, 5, 6, 7]);
      assert.deepEqual(await run((q) => all(q).descending('level')), [7, 6, 5, 4, 3, 2, 1, 0]);
      // alpha, beta, delta, epsilon, eta, gamma, theta, zeta
      assert.deepEqual(await run((q) => all(q).ascending('name')), [0, 1, 3, 4, 6, 2, 7, 5]);
      assert.deepEqual(
        await run((q) => q.containedIn('color', ['red', 'blue']).limit(100).ascending('color').addDescending('level')),
        [4, 1, 7, 6, 2, 0],
      );
      assert.deepEqual(
        await run((q) => q.containedIn('color', ['red', 'blue']).limit(100).descending('color').addAscending('level')),
        [0, 2, 6, 7, 1, 4],
      );
      // createdAt: a permutation of the fixture in non-decreasing creation time
      const byTime = await run((q) => all(q).ascending('createdAt'));
      assert.deepEqual(sorted(byTime), [0, 1, 2, 3, 4, 5, 6, 7]);
      for (let k = 1; k < byTime.length; k++) {
        assert.ok(created[byTime[k]].createdAt >= created[byTime[k - 1]].createdAt, 'ascending createdAt');
      }
    });

    it('limit and skip', async () => {
      assert.deepEqual(await run((q) => q.exists('level').ascending('level').skip(2).limit(3)), [2, 3, 4]);
      assert.deepEqual(await run((q) => q.exists('level').ascending('level').skip(6).limit(3)), [6, 7]);
      assert.deepEqual(await run((q) => q.exists('level').ascending('level').skip(8).limit(3)), []);
      assert.deepEqual(await run((q) => q.exists('level').descending('level').limit(2)), [7, 6]);
      // the default limit is 10
      assert.equal((await run((q) => q.exists('level'))).length, 8);
    });

    it('compact(true) leaves members out; without it they are there', async () => {
      // a fresh login has nothing cached, so what the conversation holds is what the server sent
      const fresh = await env.login(ID.Tom);
      assert.notEqual(fresh, tom);
      const [c] = await fresh.getQuery().equalTo('name', 'beta').compact(true).find();
      assert.equal(c.id, ids[1]);
      assert.deepEqual(c.members, []);
      assert.equal(c.name, 'beta');
      const other = await env.login(ID.Spike);
      const [full] = await other.getQuery().equalTo('name', 'beta').find();
      assert.deepEqual([...full.members].sort(), [ID.Tom, ID.Jerry, ID.Spike].sort());
    });

    it('withLastMessagesRefreshed(true) brings the last message; without it there is none', async () => {
      // Spike is not a member of alpha, so no unread notification at login brings him its
      // last message: only the query can
      const fresh = await env.login(ID.Spike);
      const [plain] = await fresh.getQuery().equalTo('name', 'alpha').find();
      assert.equal(plain.id, ids[0]);
      assert.equal(plain.lastMessage, undefined);
      const fresh2 = await env.login(ID.Spike);
      const [c] = await fresh2.getQuery().equalTo('name', 'alpha').withLastMessagesRefreshed(true).find();
      assert.equal(c.id, ids[0]);
      assert.ok(c.lastMessage, 'lastMessage present');
      assert.equal(c.lastMessage.text, 'last in alpha');
      assert.equal(c.lastMessage.from, ID.Tom);
      assert.equal(c.lastMessage.id, created[0].lastMessage.id);
      assert.equal(c.lastMessage.timestamp.getTime(), created[0].lastMessage.timestamp.getTime());
      assert.equal(c.lastMessageAt.getTime(), created[0].lastMessage.timestamp.getTime());
    });
  });

  describe(`unique and temporary conversations [${mode.name}]`, () => {
    let server;
    let env;
    before(async () => {
      server = await startInteropServer();
    });
    after(async () => {
      if (server) await server.stop();
    });
    beforeEach(() => {
      env = new Clients(server, { noBinary: mode.noBinary });
    });
    afterEach(async () => {
      await env.closeAll();
    });

    it('unique: the same member set twice gives the same id; the first attributes stay', async () => {
      const tom = await env.login(uid('tom'));
      const jerryId = uid('jerry');
      const spikeId = uid('spike');
      const first = await tom.createConversation({ members: [jerryId, spikeId], name: 'first', color: 'red', unique: true });
      const again = await tom.createConversation({ members: [spikeId, jerryId, tom.id], name: 'second', color: 'blue', unique: true });
      assert.equal(again.id, first.id);
      // a new conversation when unique is off, or when the member set differs
      const notUnique = await tom.createConversation({ members: [jerryId, spikeId], name: 'third', unique: false });
      assert.notEqual(notUnique.id, first.id);
      const other = await tom.createConversation({ members: [jerryId], name: 'pair', unique: true });
      assert.notEqual(other.id, first.id);
      // unique is the default in v5
      const dflt = await tom.createConversation({ members: [jerryId], name: 'pair again' });
      assert.equal(dflt.id, other.id);
      // what the server stored: the first request's attributes
      const jerry = await env.login(jerryId);
      const seen = await jerry.getConversation(first.id);
      assert.equal(seen.name, 'first');
      assert.equal(seen.get('color'), 'red');
      assert.deepEqual([...seen.members].sort(), [tom.id, jerryId, spikeId].sort());
      const refetched = await tom.getConversation(first.id, true);
      assert.equal(refetched.name, 'first');
      assert.equal(refetched.get('color'), 'red');
      const [byName] = await jerry.getQuery().equalTo('name', 'second').find();
      assert.equal(byName, undefined, 'no conversation was stored under the second name');
    });

    it('temporary conversation: _tmp: id, ttl reported, messages both ways', async () => {
      const tom = await env.login(uid('tom'));
      const jerry = await env.login(uid('jerry'));
      const seen = waitFor(jerry, 'invited');
      const t0 = Date.now();
      const conv = await tom.createTemporaryConversation({ members: [jerry.id], ttl: 3600 });
      const t1 = Date.now(); // the SDK counts the ttl from the answer: a slow one moves it later
      assert.match(conv.id, /^_tmp:/);
      assert.ok(conv instanceof tom.sdk.TemporaryConversation);
      assert.ok(conv.expiredAt instanceof Date);
      const expiresIn = conv.expiredAt.getTime() - t0;
      assert.ok(expiresIn > 3590e3 && conv.expiredAt.getTime() <= t1 + 3601e3,
        `expiredAt ~1 h ahead, was ${expiresIn} ms after the request, answered after ${t1 - t0} ms`);
      assert.equal(conv.expired, false);
      const [payload, jconv] = await seen;
      assert.equal(payload.invitedBy, tom.id);
      assert.equal(jconv.id, conv.id);
      assert.ok(jconv instanceof jerry.sdk.TemporaryConversation, 'Jerry sees a TemporaryConversation');
      const jIn = jconv.expiredAt.getTime() - Date.now();
      assert.ok(jIn > 3500e3 && jIn <= 3601e3, `Jerry's expiredAt ~1 h ahead, was ${jIn} ms`);
      assert.deepEqual([...jconv.members].sort(), [tom.id, jerry.id].sort());

      const got = waitFor(jerry, 'message');
      const sent = await conv.send(new tom.sdk.TextMessage('temporary hello'));
      const [m, c] = await got;
      assert.equal(m.id, sent.id);
      assert.equal(m.text, 'temporary hello');
      assert.equal(c.id, conv.id);
      const back = waitFor(tom, 'message');
      const reply = await jconv.send(new jerry.sdk.TextMessage('temporary reply'));
      const [r] = await back;
      assert.equal(r.id, reply.id);
      assert.equal(r.from, jerry.id);
      const history = await conv.queryMessages({ limit: 10 });
      assert.deepEqual(history.map((x) => x.text), ['temporary hello', 'temporary reply']);
      // default TTL (no ttl option) is one day; other members, since the same ones get the
      // conversation above back while it lives (5.x sends unique: true)
      const dflt = await tom.createTemporaryConversation({ members: [jerry.id, uid('spike')] });
      const d = dflt.expiredAt.getTime() - Date.now();
      assert.ok(d > 86390e3 && d <= 86401e3, `default ttl ~86400 s, was ${d} ms`);
    });

    it('a temporary conversation is not in _Conversation: where-queries miss it, lookup by id finds it', async () => {
      const tom = await env.login(uid('tom'));
      const jerryId = uid('jerry');
      const conv = await tom.createTemporaryConversation({ members: [jerryId], ttl: 600 });
      const found = await tom.getQuery().equalTo('objectId', conv.id).find();
      assert.deepEqual(found, []);
      const other = await env.login(tom.id);
      const again = await other.getConversation(conv.id);
      assert.ok(again, 'found by id');
      assert.equal(again.id, conv.id);
      assert.ok(again instanceof other.sdk.TemporaryConversation);
      assert.deepEqual([...again.members].sort(), [tom.id, jerryId].sort());
    });
  });
}

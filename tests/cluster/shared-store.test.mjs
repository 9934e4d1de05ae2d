// Two ternd nodes on ONE PostgreSQL and ONE Redis (issue #14, docs/cluster.md "The
// conversation cache across nodes"): what one node changes in a conversation, the other
// does not serve stale from its cache. Real engines (tests/lib/pg.mjs, tests/lib/redis.mjs)
// and the official JS SDK for the clients. Skipped without PostgreSQL (TERN_TEST_PG unset and
// no scripts/pg.sh server), like the store suite's PostgreSQL group.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { Clients, uid, waitFor } from '../lib/interop-util.mjs';
import { startPg } from '../lib/pg.mjs';
import { startRedis } from '../lib/redis.mjs';
import { startNodes } from '../lib/server.mjs';

describe('two nodes on one PostgreSQL and one Redis', () => {
  let pg;
  let redis;
  let nodes;
  let on1;
  let on2;
  before(async () => {
    pg = startPg();
    redis = await startRedis();
    nodes = await startNodes(2, redis, { env: { TERN_STORE: pg.createDatabase() } });
  });
  afterEach(async () => {
    await on1?.closeAll();
    await on2?.closeAll();
  });
  after(async () => {
    try {
      await Promise.all((nodes || []).map((s) => s.stop()));
    } finally {
      if (redis) await redis.stop();
      if (pg) pg.stop();
    }
  });

  test('a member added on node 2 gets what node 1 sends; one removed on node 2 can no longer send on node 1', async () => {
    const [n1, n2] = nodes;
    on1 = new Clients(n1);
    on2 = new Clients(n2);
    const tomId = uid('tom'), jerryId = uid('jerry'), spikeId = uid('spike');
    const tom = await on1.login(tomId);
    const jerry = await on2.login(jerryId);
    const spike = await on1.login(spikeId);
    // created on node 1: node 1 caches it with members {tom, jerry}
    const joined = waitFor(jerry, 'invited');
    const conv = await tom.createConversation({ members: [jerryId], name: 'across' });
    await joined;
    await conv.send(new tom.sdk.TextMessage('first'));
    // node 2 adds Spike (Jerry is a member); both nodes' members hear of it
    const jc = await jerry.getConversation(conv.id);
    const tomHears = waitFor(tom, 'membersjoined', (p) => p.members.includes(spikeId));
    const spikeInvited = waitFor(spike, 'invited');
    await jc.add([spikeId]);
    await tomHears;
    await spikeInvited;
    // node 1 must fan out to Spike now: its cached member list was stale before the join
    const got = waitFor(spike, 'message', (m) => m.text === 'after the add');
    await conv.send(new tom.sdk.TextMessage('after the add'));
    const [msg] = await got;
    assert.equal(msg.from, tomId);
    // Spike sends on node 1 (its cached copy holds Spike), then Jerry removes Spike on node 2
    const sc = await spike.getConversation(conv.id);
    await sc.send(new spike.sdk.TextMessage('spike was here'));
    const kicked = waitFor(spike, 'kicked');
    await jc.remove([spikeId]);
    await kicked; // delivered after the invalidation: both left node 2's worker in that order
    await assert.rejects(sc.send(new spike.sdk.TextMessage('must not pass')), (e) => e.code === 4401);
    // history is the same from both nodes, and holds no refused message
    const h1 = (await conv.queryMessages({ limit: 50 })).map((m) => `${m.id}:${m.text}`);
    const h2 = (await jc.queryMessages({ limit: 50 })).map((m) => `${m.id}:${m.text}`);
    assert.deepEqual(h2, h1);
    assert.deepEqual(h1.map((s) => s.split(':').slice(1).join(':')), ['first', 'after the add', 'spike was here']);
  });

  test('a message sent on node 1 to an offline member is read at its login on node 2', async () => {
    const [n1, n2] = nodes;
    on1 = new Clients(n1);
    on2 = new Clients(n2);
    const tomId = uid('tom'), jerryId = uid('jerry');
    const tom = await on1.login(tomId);
    const conv = await tom.createConversation({ members: [jerryId], name: 'offline' });
    await conv.send(new tom.sdk.TextMessage('while you were away'));
    // the SDK emits the unread counts right after the login (the server's `unreads` frame)
    const jerry = await on2.login(jerryId);
    const [c] = await waitFor(jerry, 'unreadmessagescountupdate', (cs) => cs.some((x) => x.id === conv.id));
    const mine = c.find((x) => x.id === conv.id);
    assert.equal(mine.unreadMessagesCount, 1);
    assert.equal(mine.lastMessage.text, 'while you were away');
  });
});

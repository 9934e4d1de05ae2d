// ternd on a PostgreSQL store (issue #14 points 1, 4, 5): the official JS SDK against
// `ternd --store postgres://…` on a real PostgreSQL 15 (tests/lib/pg.mjs starts one of
// its own for this file) — login, send, history, an offline member's unread messages,
// a message after a reconnect, the SDK's own conversation queries — and PostgreSQL
// stopped under it: sends are refused with the store's error (never acked), the clients
// stay connected, and once PostgreSQL is back sends work again with nothing acked lost.
import { describe, it, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { startPg } from '../lib/pg.mjs';
import { Clients, waitFor, uid, sleep, reconnection } from '../lib/interop-util.mjs';
import { startProxy } from '../lib/interop-proxy.mjs';

describe('ternd on a PostgreSQL store, with the official JS SDK', () => {
  let pg, db, server, env, proxy;
  before(async () => {
    pg = startPg();
    db = pg.createDatabase();
    server = await startServer({ env: { TERN_STORE: db } });
    proxy = await startProxy(server.port);
  });
  after(async () => {
    try {
      if (proxy) await proxy.close();
      if (server) await server.stop(); // throws on a sanitizer report: PostgreSQL goes all the same
    } finally {
      if (pg) pg.stop();
    }
  });
  beforeEach(() => { env = new Clients(server); });
  afterEach(async () => { await env.closeAll(); });

  it('stores in PostgreSQL: send, history, unread at login, a message after a reconnect, SDK queries', async () => {
    const tom = await env.login(uid('tom'));
    const jerryId = uid('jerry');
    const conv = await tom.createConversation({ members: [jerryId], name: 'on postgres' });
    const sent = [];
    for (let i = 0; i < 3; i++) sent.push(await conv.send(new tom.sdk.TextMessage(`pg ${i}`)));
    // the rows are in PostgreSQL, not in a SQLite file beside it
    const dbName = new URL(db).pathname.slice(1);
    const stored = pg.sql(`SELECT count(*) FROM msg m JOIN conv c ON c.id = m.conv WHERE c.cid = '${conv.id}'`, dbName);
    assert.equal(stored, '3');

    const via = { ...server, wsUrl: proxy.wsUrl, httpUrl: proxy.httpUrl };
    const jerry = await env.login(jerryId, { target: via });
    const [convs] = await waitFor(jerry, 'unreadmessagescountupdate', (cs) => cs.some((c) => c.id === conv.id));
    const jc = convs.find((c) => c.id === conv.id);
    assert.equal(jc.unreadMessagesCount, 3);
    assert.equal(jc.lastMessage.id, sent[2].id);
    assert.equal(jc.name, 'on postgres');
    const history = await jc.queryMessages({ limit: 10 });
    assert.deepEqual(history.map((m) => m.id), sent.map((m) => m.id));
    assert.deepEqual(history.map((m) => m.text), ['pg 0', 'pg 1', 'pg 2']);

    // the SDK's own queries: getConversation (objectId), the client's conversations (m)
    const again = await env.login(tom.id);
    const got = await again.getConversation(conv.id, true);
    assert.equal(got.id, conv.id);
    assert.deepEqual([...got.members].sort(), [tom.id, jerryId].sort());
    const mine = await again.getQuery().containsMembers([jerryId]).find();
    assert.deepEqual(mine.map((c) => c.id), [conv.id]);
    // queries on attributes (the document as jsonb), and a $regex PostgreSQL would read
    // otherwise than PCRE refused with its reason rather than answered differently
    const named = await again.getQuery().equalTo('name', 'on postgres').find();
    assert.deepEqual(named.map((c) => c.id), [conv.id]);
    const matched = await again.getQuery().matches('name', /^ON POST/i).find();
    assert.deepEqual(matched.map((c) => c.id), [conv.id]);
    await assert.rejects(again.getQuery().matches('name', /\bpostgres/).find(), (err) => {
      assert.equal(err.code, 4310);
      assert.match(`${err.detail}`, /not supported on a PostgreSQL store/);
      return true;
    });

    // Jerry's connection drops; a message sent meanwhile is unread once it is back
    const rj = reconnection(jerry);
    const down = waitFor(jerry.rt, 'disconnect');
    proxy.refuse(true);
    proxy.dropAll();
    await down;
    const late = await conv.send(new tom.sdk.TextMessage('while jerry was away'));
    const unread = waitFor(jerry, 'unreadmessagescountupdate', (cs) => cs.some((c) => c.id === conv.id), 15000);
    proxy.refuse(false);
    await rj.done;
    const [after] = await unread;
    assert.equal(after.find((c) => c.id === conv.id).lastMessage.id, late.id);
    const history2 = await jc.queryMessages({ limit: 10 });
    assert.deepEqual(history2.map((m) => m.id), [...sent.map((m) => m.id), late.id]);
  });

  it('PostgreSQL stopped under load: sends refused (4200), clients stay connected, all acked messages kept', async () => {
    const tom = await env.login(uid('tom'));
    const jerry = await env.login(uid('jerry'));
    const conv = await tom.createConversation({ members: [jerry.id], name: 'outage' });
    const received = [];
    jerry.on('message', (m) => received.push(m.id));
    const disconnects = [];
    for (const c of [tom, jerry]) c.rt.on('disconnect', () => disconnects.push(c.id));
    const acked = [];
    for (let i = 0; i < 5; i++) acked.push((await conv.send(new tom.sdk.TextMessage(`before ${i}`))).id);

    pg.pause(); // a fast shutdown: every connection of ternd's is closed by the server
    let refused = 0;
    for (let i = 0; i < 5; i++) {
      await assert.rejects(conv.send(new tom.sdk.TextMessage(`during ${i}`)), (err) => {
        assert.equal(err.code, 4200, `a send with PostgreSQL down is refused with 4200, got ${err.code} ${err.message}`);
        return true;
      });
      refused++;
    }
    assert.equal(refused, 5);
    // the store says it is down, and the clients are still connected and served
    const metrics = await (
      await fetch(`${server.httpUrl}/metrics`, { headers: { Authorization: `Bearer ${server.masterKey}` } })
    ).text();
    assert.match(metrics, /tern_store_pg_writer_up 0/);
    const pong = await tom.getConversation(conv.id); // the cache answers: no store read
    assert.equal(pong.id, conv.id);

    pg.resume();
    // the writer reconnects by itself (backoff up to 5 s): the first send that succeeds
    let first;
    for (const deadline = Date.now() + 20000; !first; ) {
      try {
        first = await conv.send(new tom.sdk.TextMessage('after'));
      } catch (err) {
        assert.equal(err.code, 4200);
        if (Date.now() > deadline) throw new Error('sends did not work again within 20 s of PostgreSQL coming back');
        await sleep(200);
      }
    }
    acked.push(first.id);
    for (let i = 0; i < 5; i++) acked.push((await conv.send(new tom.sdk.TextMessage(`after ${i}`))).id);
    assert.deepEqual(disconnects, [], 'no client was disconnected');
    // every acked message reached Jerry and is stored, and no refused one is
    await waitFor(jerry, 'message', () => received.length >= acked.length, 10000).catch(() => {});
    for (const id of acked) assert.ok(received.includes(id), `Jerry received ${id}`);
    const history = await conv.queryMessages({ limit: 100 });
    assert.deepEqual(history.map((m) => m.id), acked);
    assert.ok(!history.some((m) => /during/.test(m.text)), 'no refused message is stored');
  });
});

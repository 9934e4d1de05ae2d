// ternd on a PostgreSQL store (issue #14 points 1, 4, 5): the official JS SDK against
// `ternd --store postgres://…` on a real PostgreSQL 15 (tests/lib/pg.mjs starts one of
// its own for this file) — login, send, history, an offline member's unread messages,
// a message after a reconnect, the SDK's own conversation queries — and PostgreSQL
// stopped under it: sends are refused with the store's error (never acked), the clients
// stay connected, and once PostgreSQL is back sends work again with nothing acked lost.
import { describe, it, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import { startServer } from '../lib/server.mjs';
import { startPg, lockTable } from '../lib/pg.mjs';
import { Clients, waitFor, uid, sleep, reconnection } from '../lib/interop-util.mjs';
import { startProxy } from '../lib/interop-proxy.mjs';
import { session as protoSession, connect as protoConnect, startConv, sendMsg, closeAll as protoCloseAll, loopFree } from '../lib/proto-client.mjs';

/** A counter of server's /metrics (NaN when absent). */
async function metricOf(server, name) {
  const res = await fetch(`${server.httpUrl}/metrics`, { headers: { Authorization: `Bearer ${server.masterKey}` } });
  return Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(await res.text())?.[1]);
}

/** A describe's own PostgreSQL, one database of it, and a ternd on that database for each
 * env (TERN_STORE set), started before its tests and stopped after them: pgs.pg, pgs.db,
 * pgs.servers. */
function usePgServers(...envs) {
  const pgs = { servers: [] };
  before(async () => {
    pgs.pg = startPg();
    pgs.db = pgs.pg.createDatabase();
    for (const env of envs) pgs.servers.push(await startServer({ env: { TERN_STORE: pgs.db, ...env } }));
  });
  after(async () => {
    for (const s of pgs.servers) await protoCloseAll(s);
    try {
      for (const s of pgs.servers) await s.stop(); // throws on a sanitizer report: PostgreSQL goes all the same
    } finally {
      pgs.pg?.stop();
    }
  });
  return pgs;
}

/** frame sent by client while db's table is locked: it waits for its read while another
 * client (other) of the same (only) worker gets its echoes answered, and an echo sent
 * behind it waits for it; then the lock goes and its answer is returned. */
async function frameWhileLocked(db, table, client, other, frame, what) {
  const locker = await lockTable(db, table);
  try {
    let answered = false;
    const pending = client.request(frame, 20000).then((r) => { answered = true; return r; });
    let echoed = false; // sent behind it: run after it (its connection waits for the read)
    const behind = client.request({ cmd: 'echo' }, 20000).then((e) => { echoed = true; return e; });
    await loopFree(other, what);
    assert.equal(answered, false, `${what}: waits for its read (${table} is locked)`);
    assert.equal(echoed, false, `${what}: the frame behind it waits for it`);
    locker.commit();
    const r = await pending;
    assert.equal((await behind).cmd, 'echo');
    return r;
  } finally {
    await locker.close();
  }
}

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

// docs/cluster.md, "Reads: what they cost the worker": a history page is read by the store's
// read threads, not on the worker's loop, so a PostgreSQL that makes one read wait (here: a
// table it needs locked by another session) holds that one request, not every connection
// of the worker. One worker, so both clients share its loop.
describe('a slow PostgreSQL read does not stall the other clients of its worker', () => {
  let db, server;
  const pgs = usePgServers({ TERN_WORKERS: '1' });
  before(() => { db = pgs.db; [server] = pgs.servers; });

  it('a history read waiting on a lock; another client of the worker chats meanwhile', async () => {
    const a = await protoSession(server, 'reader-a');
    const b = await protoSession(server, 'chatter-b');
    const c = await protoSession(server, 'chatter-c');
    // a one-to-one conversation: its history page reads the other member's progress (member)
    const slow = await startConv(a, ['someone-x']);
    await sendMsg(a, slow.cid, 'hello');
    const chat = await startConv(b, ['chatter-c', 'chatter-d']);
    await sendMsg(b, chat.cid, 'warm up');
    // more connections of a's address, logged in now: a login's answer waits for its unread
    // counts, which read the member table the lock below takes
    const ds = [];
    for (let k = 0; k < 3; k++) ds.push(await protoSession(server, 'reader-a'));
    const e = await protoSession(server, 'reader-a');
    // another session takes the member table: reads of it wait; sends do not touch it
    const locker = await lockTable(db, 'member');
    try {
      let answered = false;
      const page = a.request({ cmd: 'logs', logsMessage: { cid: slow.cid, l: 10 } }, 20000).then((r) => { answered = true; return r; });
      // one connection holds at most 16 reads (MAX_LINK_READS, docs/security.md): 15 more
      // wait beside the first, the 17th is refused at once
      const more = [];
      for (let i = 0; i < 15; i++) more.push(a.request({ cmd: 'logs', logsMessage: { cid: slow.cid, l: 10 } }, 20000));
      const refused = await a.request({ cmd: 'logs', logsMessage: { cid: slow.cid, l: 10 } });
      assert.equal(refused.cmd, 'error', JSON.stringify(refused));
      assert.equal(refused.errorMessage.code, 4311);
      assert.equal(refused.errorMessage.detail, 'too many history reads running on this connection');
      // and one address at most 64 (MAX_IP_READS): three more connections of 16 each fill
      // it, a fifth connection's first read is refused at once
      for (const d of ds) {
        for (let i = 0; i < 16; i++) more.push(d.request({ cmd: 'logs', logsMessage: { cid: slow.cid, l: 10 } }, 20000));
      }
      // each connection's frames run in order: its echo answered, its 16 reads are counted
      await Promise.all(ds.map((d) => d.echo()));
      const fromIp = await e.request({ cmd: 'logs', logsMessage: { cid: slow.cid, l: 10 } });
      assert.equal(fromIp.cmd, 'error', JSON.stringify(fromIp));
      assert.equal(fromIp.errorMessage.code, 4311);
      assert.equal(fromIp.errorMessage.detail, 'too many history reads from this address');
      // b keeps chatting on the same worker: every send acked and delivered, each well
      // within a second (before, the first waited for the lock, up to the 5 s read timeout).
      // (All of this within the readers' 5 s statement_timeout, after which the held reads
      // fail: the limits are checked first, and 10 sends are enough.)
      for (let i = 0; i < 10; i++) {
        const t0 = Date.now();
        const ack = await sendMsg(b, chat.cid, `while locked ${i}`);
        assert.ok(ack.uid);
        const got = await c.next((m) => m.cmd === 'direct' && m.directMessage?.msg === `while locked ${i}`);
        assert.ok(got);
        const ms = Date.now() - t0;
        assert.ok(ms < 1000, `send ${i} took ${ms} ms while another client's read waited`);
      }
      assert.equal(answered, false, 'the history reads are still waiting on the lock');
      locker.commit();
      assert.equal(more.length, 15 + 48);
      for (const r of [await page, ...(await Promise.all(more))]) {
        assert.equal(r.cmd, 'logs', JSON.stringify(r));
        assert.deepEqual(r.logsMessage.logs.map((l) => l.data), ['hello']);
      }
      // and the counts went back down: a read runs again
      const again = await e.request({ cmd: 'logs', logsMessage: { cid: slow.cid, l: 10 } });
      assert.equal(again.cmd, 'logs', JSON.stringify(again));
    } finally {
      await locker.close();
    }
  });

  // A login's unread counts read the member table (its conversations): with that table
  // locked, the login waits — its answer and its counts, held together (im_login.c) — while
  // another client of the same (only) worker keeps chatting; once the lock goes the login is
  // answered, then told its counts. Before, the counts were read on the worker's loop: the
  // other client's first send waited for the lock (up to the 5 s statement_timeout).
  it("a login's unread counts wait on a lock off the loop; another client of the worker chats meanwhile", async () => {
    const sender = await protoSession(server, 'unread-sender');
    const xid = 'unread-x';
    const conv = await startConv(sender, [xid]);
    const sent = [];
    for (let i = 0; i < 3; i++) sent.push((await sendMsg(sender, conv.cid, `unread ${i}`)).uid);
    const b = await protoSession(server, 'unread-chatter-b');
    const c = await protoSession(server, 'unread-chatter-c');
    const chat = await startConv(b, ['unread-chatter-c', 'unread-chatter-d']);
    await sendMsg(b, chat.cid, 'warm up');
    const x = await protoConnect(server);
    const locker = await lockTable(db, 'member');
    try {
      let answered = false;
      const opened = x.request({ cmd: 'session', op: 'open', peerId: xid, appId: server.appId, sessionMessage: { ua: 'unread-lock' } }, 20000)
        .then((r) => { answered = true; return r; });
      for (let i = 0; i < 10; i++) {
        const t0 = Date.now();
        const ack = await sendMsg(b, chat.cid, `while counting ${i}`);
        assert.ok(ack.uid);
        const got = await c.next((m) => m.cmd === 'direct' && m.directMessage?.msg === `while counting ${i}`);
        assert.ok(got);
        const ms = Date.now() - t0;
        assert.ok(ms < 1000, `send ${i} took ${ms} ms while another client's login counts waited`);
      }
      assert.equal(answered, false, 'the login (answer and counts) waits on the lock');
      locker.commit();
      const r = await opened;
      assert.equal(r.op, 'opened', JSON.stringify(r));
      const unread = await x.next((m) => m.cmd === 'unread', 10000);
      const t = unread.unreadMessage.convs.find((u) => u.cid === conv.cid);
      assert.ok(t, JSON.stringify(unread));
      assert.equal(t.unread, 3);
      assert.equal(t.mid, sent[2]);
      // in order: the answer, then the counts
      const kinds = x.received.map((m) => m.cmd);
      assert.ok(kinds.indexOf('session') < kinds.indexOf('unread'), kinds.join());
    } finally {
      await locker.close();
    }
  });

  // A login with lastPatchTime is told the edits and recalls it missed (patch/modify), read
  // from the message table beside its unread counts, off the loop: with that table locked,
  // another client of the same (only) worker gets its echoes answered while the login waits;
  // once the lock goes the login is answered, then its counts, then the patches. Before, the
  // patches were read on the worker's loop: the other client's first echo waited for the lock.
  it("a login's patch catch-up waits on a lock off the loop; another client of the worker is answered meanwhile", async () => {
    const sender = await protoSession(server, 'pc-sender');
    const xid = 'pc-x';
    const conv = await startConv(sender, [xid]);
    const m = await sendMsg(sender, conv.cid, 'to be edited');
    const since = Date.now() - 1;
    const edit = await sender.request({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid: conv.cid, mid: m.uid, timestamp: m.t, data: 'edited' }] } });
    assert.equal(edit.op, 'modified', JSON.stringify(edit));
    const other = await protoSession(server, 'pc-other');
    const x = await protoConnect(server);
    const locker = await lockTable(db, 'msg');
    try {
      let answered = false;
      const opened = x.request({ cmd: 'session', op: 'open', peerId: xid, appId: server.appId, sessionMessage: { ua: 'patch-lock', lastPatchTime: since } }, 20000)
        .then((r) => { answered = true; return r; });
      await loopFree(other, "another client's login read its patches");
      assert.equal(answered, false, 'the login (answer, counts, patches) waits on the lock');
      locker.commit();
      const r = await opened;
      assert.equal(r.op, 'opened', JSON.stringify(r));
      const p = await x.next((f) => f.cmd === 'patch', 10000);
      assert.equal(p.op, 'modify');
      assert.deepEqual(p.patchMessage.patches.map((it) => [it.cid, it.mid, it.data, it.patchTimestamp]),
        [[conv.cid, m.uid, 'edited', edit.patchMessage.lastPatchTime]]);
      // in order: the answer, the counts, then the patches
      const kinds = x.received.map((f) => f.cmd);
      assert.ok(kinds.indexOf('session') < kinds.indexOf('unread') && kinds.indexOf('unread') < kinds.indexOf('patch'), kinds.join());
      assert.equal(kinds.filter((k) => k === 'patch').length, 1, kinds.join());
    } finally {
      await locker.close();
    }
  });

  // The sweep (worker 0, every second: temporary shut-ups due; every sweep_interval: expired
  // conversations) reads off the loop too: with the shut-up table locked across two ticks,
  // another client of the (only) worker is answered every time, and the shut-up due meanwhile
  // is lifted once the lock goes. Before, the tick's read held the worker until the lock went.
  it('the sweep reads off the loop: a locked shut-up table holds the lifting, not the worker', async () => {
    const owner = await protoSession(server, 'sweep-owner');
    const muted = await protoSession(server, 'sweep-muted');
    const other = await protoSession(server, 'sweep-other');
    const conv = await startConv(owner, ['sweep-muted']);
    const res = await fetch(`${server.httpUrl}/1.2/rtm/conversations/${conv.cid}/temporary-silenceds`, {
      method: 'POST',
      headers: { 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ client_id: 'sweep-muted', ttl: 1 }),
    });
    assert.equal(res.status, 200, await res.text());
    await muted.next((m) => m.cmd === 'conv' && m.op === 'shutuped' && m.convMessage?.cid === conv.cid);
    const locker = await lockTable(db, 'conv_set');
    try {
      let lifted = false;
      const unshut = muted.next((m) => m.cmd === 'conv' && m.op === 'unshutuped' && m.convMessage?.cid === conv.cid, 20000)
        .then((m) => { lifted = true; return m; });
      const end = Date.now() + 2500;
      for (let i = 0; Date.now() < end; i++) {
        const t0 = Date.now();
        await other.echo();
        const ms = Date.now() - t0;
        assert.ok(ms < 1000, `echo ${i} took ${ms} ms while the sweep's read waited`);
        await sleep(50);
      }
      assert.equal(lifted, false, 'the lifting waits for the lock');
      locker.commit();
      await unshut;
    } finally {
      await locker.close();
    }
  });

  // An ack's receipts are found by a read of the message table: with that table locked (so
  // nothing is stored meanwhile either), the worker still answers everything that needs no
  // store — here echoes of another client — and the receipt goes out once the lock goes.
  it('the receipts an ack owes are read off the loop: a locked message table holds only them', async () => {
    const sender = await protoSession(server, 'rcp-sender');
    const receiver = await protoSession(server, 'rcp-receiver');
    const other = await protoSession(server, 'rcp-other');
    const conv = await startConv(sender, ['rcp-receiver']);
    const ack = await sendMsg(sender, conv.cid, 'receipt please', { r: true });
    await receiver.next((m) => m.cmd === 'direct' && m.directMessage?.id === ack.uid);
    const locker = await lockTable(db, 'msg');
    try {
      let delivered = false;
      const rcp = sender.next((m) => m.cmd === 'rcp' && m.rcpMessage?.id === ack.uid, 20000).then((m) => { delivered = true; return m; });
      receiver.send({ cmd: 'ack', ackMessage: { cid: conv.cid, mid: ack.uid } }); // no reply: a position
      for (let i = 0; i < 20; i++) {
        const t0 = Date.now();
        await other.echo();
        const ms = Date.now() - t0;
        assert.ok(ms < 1000, `echo ${i} took ${ms} ms while an ack's receipts waited`);
      }
      assert.equal(delivered, false, 'the receipt waits for the lock');
      locker.commit();
      const r = await rcp;
      assert.equal(r.rcpMessage.cid, conv.cid);
      assert.equal(r.rcpMessage.from, 'rcp-receiver');
      assert.ok(!r.rcpMessage.read);
    } finally {
      await locker.close();
    }
  });
});

// A reconnect (session/open r:true with its session token) reads the token's revocations
// (token_revoked, client_revoked): on PostgreSQL off the worker's loop, its connection
// paused (im_prefetch_token), so a reconnect storm after a node dies does not stall the
// worker's other clients behind a slow read. Before, the read was made on the loop: with
// token_revoked locked, the other client's first echo waited for the lock (up to the 5 s
// statement_timeout) and the reconnect was answered only then.
describe("a reconnect's reads (its token's revocations, its resends' lookups) are made off the loop", () => {
  let db, server;
  const pgs = usePgServers({ TERN_WORKERS: '1' });
  before(() => { db = pgs.db; [server] = pgs.servers; });

  const reopen = (c, peer, st, timeout) =>
    c.request({ cmd: 'session', op: 'open', appId: server.appId, peerId: peer, sessionMessage: { ua: 'tern-proto-test/1', r: true, st } }, timeout);

  it('a reconnect waits on a locked revocation table off the loop; the worker answers another client meanwhile; the frames behind it keep their order', async () => {
    const first = await protoSession(server, 'tk-a');
    const st = first.openReply.sessionMessage.st;
    await first.close(); // the connection drops: no logout, the token still resumes
    const other = await protoSession(server, 'tk-other');
    const y = await protoConnect(server);
    const locker = await lockTable(db, 'token_revoked');
    try {
      let answered = false;
      const opened = reopen(y, 'tk-a', st, 20000).then((r) => { answered = true; return r; });
      const behind = y.request({ cmd: 'echo' }, 20000); // sent after the open: answered after it
      await loopFree(other, "another client's token was checked");
      assert.equal(answered, false, 'the reconnect waits for its token check (the table is locked)');
      locker.commit();
      const r = await opened;
      assert.equal(r.op, 'opened', JSON.stringify(r));
      assert.equal(r.peerId, 'tk-a');
      assert.equal((await behind).cmd, 'echo');
      const order = y.received.filter((m) => m.i).map((m) => m.cmd);
      assert.deepEqual(order.slice(0, 2), ['session', 'echo'], order.join());
      assert.equal((await y.echo()).cmd, 'echo'); // the session works: the connection reads on
      const n = await metricOf(server, 'tern_token_prefetches_total');
      assert.ok(n >= 1, `tern_token_prefetches_total ${n}`);
    } finally {
      await locker.close();
    }
  });

  // A send with a dt within dedupe_window of a reconnect (r:true) is looked up among the
  // sender's messages (store_msg_by_dt, the message table) in case it is a resend: off the
  // loop, its connection paused (im_dedupe_prefetch). With msg locked, another client of the
  // same (only) worker gets its echoes answered meanwhile; then the resend is answered with
  // the first copy's id and timestamp (stored and delivered once), and a new message sent
  // behind it is acked after it. Before, the lookup was made on the loop: the other
  // client's first echo waited for the lock.
  it('a resend after a reconnect is looked up off the loop while the message table is locked; the worker answers another client meanwhile', async () => {
    const a = await protoSession(server, 'rs-a');
    const b = await protoSession(server, 'rs-b');
    const conv = await startConv(a, ['rs-b']);
    const dt = `dt-${Date.now()}-resent`;
    const first = await sendMsg(a, conv.cid, 'once', { dt });
    await b.next((m) => m.cmd === 'direct' && m.directMessage?.id === first.uid);
    const st = a.openReply.sessionMessage.st;
    await a.close(); // the connection drops; the SDK reconnects and resends what it thinks unacked
    const y = await protoConnect(server);
    const re = await reopen(y, 'rs-a', st);
    assert.equal(re.op, 'opened', JSON.stringify(re));
    const other = await protoSession(server, 'rs-other');
    const locker = await lockTable(db, 'msg');
    try {
      let answered = false;
      const resent = y.request({ cmd: 'direct', directMessage: { cid: conv.cid, msg: 'once', dt } }, 20000)
        .then((r) => { answered = true; return r; });
      const fresh = y.request({ cmd: 'direct', directMessage: { cid: conv.cid, msg: 'new', dt: `${dt}-new` } }, 20000);
      await loopFree(other, "another client's resend was looked up");
      assert.equal(answered, false, 'the resend waits for its lookup (the table is locked)');
      locker.commit();
      const r = await resent;
      assert.equal(r.cmd, 'ack', JSON.stringify(r));
      assert.equal(r.ackMessage.uid, first.uid, 'the resend is answered with the first copy');
      assert.equal(r.ackMessage.t, first.t);
      const f = await fresh;
      assert.equal(f.cmd, 'ack', JSON.stringify(f));
      assert.notEqual(f.ackMessage.uid, first.uid);
      const acks = y.received.filter((m) => m.cmd === 'ack').map((m) => m.i);
      assert.deepEqual(acks, [r.i, f.i], 'acked in the order sent');
      await b.next((m) => m.cmd === 'direct' && m.directMessage?.msg === 'new', 10000);
      const got = b.received.filter((m) => m.cmd === 'direct' && m.directMessage?.cid === conv.cid).map((m) => m.directMessage.msg);
      assert.deepEqual(got, ['once', 'new'], 'the resend is not delivered again');
      const n = await metricOf(server, 'tern_dedupe_prefetches_total');
      assert.ok(n >= 2, `tern_dedupe_prefetches_total ${n}`);
    } finally {
      await locker.close();
    }
  });

  // The answer is read before the open runs; a revocation made while it is read is not
  // in it. Here the logout of the same login's other connection comes while the read waits
  // (its own write waits on the lock too, so it is held in memory): the reconnect is
  // refused all the same. A token revoked earlier, stored, is refused from the read.
  it('a token revoked while its reconnect reads is refused; one revoked before, from the read', async () => {
    const x = await protoSession(server, 'tk-b');
    const st = x.openReply.sessionMessage.st;
    const y = await protoSession(server, 'tk-b'); // the same client, another device (lineage)
    const stY = y.openReply.sessionMessage.st;
    await y.request({ cmd: 'session', op: 'close' }); // a logout: stY revoked, stored
    const z = await protoConnect(server);
    const refusedBefore = await reopen(z, 'tk-b', stY);
    assert.equal(refusedBefore.cmd, 'error', JSON.stringify(refusedBefore));
    assert.equal(refusedBefore.errorMessage.code, 4112);
    assert.match(refusedBefore.errorMessage.detail, /revoked/);
    const w = await protoConnect(server);
    const locker = await lockTable(db, 'token_revoked');
    try {
      let answered = false;
      const reconnect = reopen(w, 'tk-b', st, 20000).then((r) => { answered = true; return r; });
      await x.echo(); // the worker reads on: the reconnect waits off the loop
      assert.equal(answered, false, 'the reconnect waits for its token check (the table is locked)');
      const closed = await x.request({ cmd: 'session', op: 'close' }); // revokes st's lineage
      assert.equal(closed.op, 'closed', JSON.stringify(closed));
      locker.commit();
      const r = await reconnect;
      assert.equal(r.cmd, 'error', JSON.stringify(r));
      assert.equal(r.errorMessage.code, 4112);
      assert.match(r.errorMessage.detail, /revoked/);
    } finally {
      await locker.close();
    }
  });
});

// im_prefetch.c: a request naming a conversation this node has not cached (created on
// another node, or changed there) reads it on the store's read threads, with the request's
// connection paused meanwhile, instead of on the worker's loop. Two ternd on one database,
// no bus: the conversation is made on the other; this one (one worker) has never seen it.
describe('a conversation the cache lacks is read off the loop', () => {
  let db, server, other;
  const pgs = usePgServers({ TERN_WORKERS: '1' }, { TERN_WORKERS: '1' });
  before(() => { db = pgs.db; [server, other] = pgs.servers; });

  it('a send to it waits on a locked conversation table off the loop; the worker answers another client meanwhile; the frames behind it keep their order', async () => {
    const maker = await protoSession(other, 'pf-a');
    const conv = await startConv(maker, ['pf-b']);
    const a = await protoSession(server, 'pf-a');
    const b = await protoSession(server, 'pf-b');
    const c = await protoSession(server, 'pf-c');
    const locker = await lockTable(db, 'conv');
    try {
      let acked = false;
      const first = a.request({ cmd: 'direct', directMessage: { cid: conv.cid, msg: 'off the loop 0' } }, 20000)
        .then((r) => { acked = true; return r; });
      const second = a.request({ cmd: 'direct', directMessage: { cid: conv.cid, msg: 'off the loop 1' } }, 20000);
      await loopFree(c, "another client's conversation was read");
      assert.equal(acked, false, 'the send waits for its conversation (the table is locked)');
      locker.commit();
      const acks = await Promise.all([first, second]);
      for (const r of acks) assert.equal(r.cmd, 'ack', JSON.stringify(r));
      assert.ok(acks[0].ackMessage.t <= acks[1].ackMessage.t);
      await b.next((m) => m.cmd === 'direct' && m.directMessage?.msg === 'off the loop 1', 10000);
      const got = b.received.filter((m) => m.cmd === 'direct' && m.directMessage?.cid === conv.cid).map((m) => m.directMessage.msg);
      assert.deepEqual(got, ['off the loop 0', 'off the loop 1'], 'delivered once each, in the order sent');
      const n = await metricOf(server, 'tern_conv_prefetches_total');
      assert.ok(n >= 1, `tern_conv_prefetches_total ${n}`);
    } finally {
      await locker.close();
    }
  });

  it('a history page of it waits on the locked conversation table off the loop too; the worker answers another client meanwhile', async () => {
    const maker = await protoSession(other, 'pfl-a');
    const conv = await startConv(maker, ['pfl-b']);
    await sendMsg(maker, conv.cid, 'history');
    const b = await protoSession(server, 'pfl-b');
    const c = await protoSession(server, 'pfl-c');
    const locker = await lockTable(db, 'conv');
    try {
      let answered = false;
      const page = b.request({ cmd: 'logs', logsMessage: { cid: conv.cid, l: 10 } }, 20000).then((r) => { answered = true; return r; });
      await loopFree(c, "another client's history page's conversation was read");
      assert.equal(answered, false, 'the page waits for its conversation (the table is locked)');
      locker.commit();
      const r = await page;
      assert.equal(r.cmd, 'logs', JSON.stringify(r));
      assert.deepEqual(r.logsMessage.logs.map((m) => m.data), ['history']);
    } finally {
      await locker.close();
    }
  });

  // One address has at most MAX_IP_READS (64) such reads running, with its history pages:
  // a 65th request reads on the loop, as before the reads moved off it, so one address
  // cannot fill the server's read queue (STORE_READ_QUEUE_MAX) that every client shares.
  it('one address has at most 64 requests waiting for their conversations off the loop; the 65th reads on the loop', async () => {
    const N = 65;
    const maker = await protoSession(other, 'ipr-maker');
    const convs = [];
    for (let k = 0; k < N; k++) convs.push((await startConv(maker, [`ipr-${k}`])).cid);
    const cs = [];
    for (let k = 0; k < N; k++) cs.push(await protoSession(server, `ipr-${k}`));
    const n0 = await metricOf(server, 'tern_conv_prefetches_total');
    const locker = await lockTable(db, 'conv');
    const sends = [];
    try {
      for (let k = 0; k < N - 1; k++) sends.push(cs[k].request({ cmd: 'direct', directMessage: { cid: convs[k], msg: `ip ${k}` } }, 30000));
      for (const end = Date.now() + 10000; await metricOf(server, 'tern_conv_prefetches_total') < n0 + N - 1;) {
        assert.ok(Date.now() < end, 'the first 64 wait off the loop');
        await sleep(20);
      }
      sends.push(cs[N - 1].request({ cmd: 'direct', directMessage: { cid: convs[N - 1], msg: `ip ${N - 1}` } }, 30000));
      await sleep(1000); // let the 65th arrive: read on the loop, it waits for the lock with the worker (no barrier can be answered meanwhile)
      locker.commit();
      for (const r of await Promise.all(sends)) assert.equal(r.cmd, 'ack', JSON.stringify(r));
      assert.equal(await metricOf(server, 'tern_conv_prefetches_total'), n0 + N - 1, 'the 65th was not read off the loop');
    } finally {
      await locker.close();
    }
  });
});

// The sweep (worker 0, every sweep_interval) deletes the conversations that expired; one
// this node has not cached is read with the sweep's read, off the loop, not by conv_get on
// it (im_notif.c). With the member table locked (the conversation's read needs it, the
// expiry query does not) the node's other client is answered meanwhile; the conversation is
// gone once the lock goes. Before, its read held worker 0 until then.
describe('the sweep reads the conversations it deletes off the loop', () => {
  let db, server, other;
  const pgs = usePgServers({ TERN_WORKERS: '1', TERN_SWEEP_INTERVAL: '1' }, { TERN_WORKERS: '1' });
  before(() => { db = pgs.db; [server, other] = pgs.servers; });

  it('a temporary conversation past its ttl, made on another node, is deleted with the worker free meanwhile', async () => {
    const dbName = new URL(db).pathname.slice(1);
    const maker = await protoSession(other, 'sw-a');
    const conv = await startConv(maker, ['sw-b'], { tempConv: true, tempConvTTL: 1 });
    const c = await protoSession(server, 'sw-c');
    const locker = await lockTable(db, 'member');
    try {
      // the sweep runs each second: within 3 s it has found the conversation expired
      for (const end = Date.now() + 3000; Date.now() < end;) {
        const t0 = Date.now();
        await c.echo();
        assert.ok(Date.now() - t0 < 1000, `an echo took ${Date.now() - t0} ms while the sweep read`);
        await sleep(50);
      }
      assert.equal(pgs.pg.sql(`SELECT count(*) FROM conv WHERE cid = '${conv.cid}'`, dbName), '1', 'not deleted while the lock holds');
      locker.commit();
      for (const end = Date.now() + 10000; pgs.pg.sql(`SELECT count(*) FROM conv WHERE cid = '${conv.cid}'`, dbName) !== '0';) {
        assert.ok(Date.now() < end, 'the expired conversation is deleted once the lock goes');
        await sleep(100);
      }
    } finally {
      await locker.close();
    }
  });
});

// The REST routes a client may call with the public app key and its own session token
// (AUTH_CLIENT: /1.1/rtm/notifications, /1.2/rtm/clients/:id/unread-count,
// /1.1/classes/_ConversationMemberInfo) read the store off the loop (api/rest_read.c): the
// token's revocations and the route's own reads go to the read threads together, the HTTP
// request is deferred, and the answer goes out once they are read. With the table a read
// needs locked from psql, another client of the same (only) worker gets its echoes
// answered, each within a second, while the request waits; once the lock goes the answer
// is right. Before, each read was made on the worker's loop (the token check in the
// request's head, the route's read in its handler): the other client's first echo waited
// for the lock, up to the 5 s statement_timeout.
describe("the REST API's reads a client may make (its session-token check, its route's reads) are made off the loop", () => {
  let db, server;
  const pgs = usePgServers({ TERN_WORKERS: '1' });
  before(() => { db = pgs.db; [server] = pgs.servers; });

  /** GET path with the app key and st as X-LC-IM-Session-Token; resolves {status, body}. */
  const restGet = (path, st) =>
    fetch(`${server.httpUrl}${path}`, { headers: { 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey, 'X-LC-IM-Session-Token': st } })
      .then(async (res) => ({ status: res.status, body: await res.json() }));

  /** Starts the request, shows the worker free while it waits on the locked table, then
   * lets the table go and resolves the request's answer. */
  async function whileLocked(table, other, request, what) {
    const locker = await lockTable(db, table);
    try {
      let answered = false;
      const pending = request().then((r) => { answered = true; return r; });
      await loopFree(other, what);
      assert.equal(answered, false, `${what}: waits for its read (${table} is locked)`);
      locker.commit();
      return await pending;
    } finally {
      await locker.close();
    }
  }

  it("GET /1.1/rtm/notifications: its session token's check waits on a locked revocation table off the loop; the worker answers another client meanwhile", async () => {
    const a = await protoSession(server, 'rn-a');
    const b = await protoSession(server, 'rn-b');
    const st = b.openReply.sessionMessage.st;
    const other = await protoSession(server, 'rn-other');
    const { cid } = await startConv(a, ['rn-b']); // b's 'joined' and 'members_joined' are permanent notifications
    const path = `/1.1/rtm/notifications?client_id=rn-b&start_ts=0&notification_type=permanent`;
    let first;
    for (let t0 = Date.now(); Date.now() - t0 < 5000; await sleep(50)) { // written behind the push
      first = await restGet(path, st);
      if (first.status === 200 && first.body.notifications.length >= 2) break;
    }
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const r = await whileLocked('token_revoked', other, () => restGet(path, st), 'a REST call\'s session token was checked');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, first.body);
    assert.deepEqual(r.body.notifications.map((n) => `${n.cid}/${n.op}`), [`${cid}/joined`, `${cid}/members_joined`]);
    // a revoked token is still refused, from the read: b logs out (its lineage revoked, stored)
    await b.request({ cmd: 'session', op: 'close' });
    const refused = await restGet(path, st);
    assert.equal(refused.status, 401, JSON.stringify(refused.body));
  });

  it('a token revoked while its REST call reads is refused', async () => {
    const b = await protoSession(server, 'rn-c');
    const st = b.openReply.sessionMessage.st;
    const other = await protoSession(server, 'rn-other2');
    const locker = await lockTable(db, 'token_revoked');
    try {
      let answered = false;
      const pending = restGet('/1.1/rtm/notifications?client_id=rn-c&notification_type=permanent', st).then((r) => { answered = true; return r; });
      await other.echo();
      assert.equal(answered, false, 'the call waits for its token check (the table is locked)');
      const closed = await b.request({ cmd: 'session', op: 'close' }); // revokes st's lineage: held in memory, its write waits
      assert.equal(closed.op, 'closed', JSON.stringify(closed));
      locker.commit();
      const r = await pending;
      assert.equal(r.status, 401, JSON.stringify(r.body));
      assert.equal(r.body.code, 4112);
    } finally {
      await locker.close();
    }
  });

  it('GET /1.2/rtm/clients/:id/unread-count waits on a locked member table off the loop; the worker answers another client meanwhile', async () => {
    const a = await protoSession(server, 'ru-a');
    const b = await protoSession(server, 'ru-b');
    const st = b.openReply.sessionMessage.st;
    const other = await protoSession(server, 'ru-other');
    const { cid } = await startConv(a, ['ru-b']);
    await sendMsg(a, cid, 'one');
    await sendMsg(a, cid, 'two');
    const path = `/1.2/rtm/clients/ru-b/unread-count?conv_id=${cid}`;
    let first;
    for (let t0 = Date.now(); Date.now() - t0 < 5000; await sleep(50)) {
      first = await restGet(path, st);
      if (first.status === 200 && first.body.count === 2) break;
    }
    assert.deepEqual([first.status, first.body], [200, { count: 2 }]);
    const r = await whileLocked('member', other, () => restGet(path, st), "a REST call's unread counts were read");
    assert.deepEqual([r.status, r.body], [200, { count: 2 }]);
  });

  it('GET /1.1/classes/_ConversationMemberInfo waits on a locked member_info table off the loop; the worker answers another client meanwhile', async () => {
    const a = await protoSession(server, 'ri-a');
    const st = a.openReply.sessionMessage.st;
    const other = await protoSession(server, 'ri-other');
    const { cid } = await startConv(a, ['ri-b', 'ri-c']);
    const upd = await a.request({ cmd: 'conv', op: 'member_info_update', convMessage: { cid, targetClientId: 'ri-b', info: { pid: 'ri-b', role: 'Manager' } } });
    assert.equal(upd.op, 'member_info_updated', JSON.stringify(upd));
    const infos = (c) => restGet(`/1.1/classes/_ConversationMemberInfo?client_id=ri-a&where=${encodeURIComponent(JSON.stringify({ cid: c }))}`, st);
    let first;
    for (let t0 = Date.now(); Date.now() - t0 < 5000; await sleep(50)) {
      first = await infos(cid);
      if (first.status === 200 && first.body.results.length) break;
    }
    assert.deepEqual(first.body.results.map((x) => [x.clientId, x.role]), [['ri-b', 'Manager']]);
    const r = await whileLocked('member_info', other, () => infos(cid), "a REST call's member roles were read");
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body, first.body);
    // someone not in the conversation is refused without its infos being read: with the
    // table locked the 403 comes at once (before, the read was made first and waited)
    const x = await protoSession(server, 'ri-x');
    const locker = await lockTable(db, 'member_info');
    try {
      const path = `/1.1/classes/_ConversationMemberInfo?client_id=ri-x&where=${encodeURIComponent(JSON.stringify({ cid }))}`;
      const t0 = Date.now();
      const refused = await restGet(path, x.openReply.sessionMessage.st);
      assert.deepEqual([refused.status, refused.body.code], [403, 119], JSON.stringify(refused.body));
      assert.ok(Date.now() - t0 < 2000, `the refusal took ${Date.now() - t0} ms: it waited for the locked table`);
    } finally {
      await locker.close();
    }
  });

  // one address has at most 64 reads waiting (MAX_IP_READS, with its WebSocket reads): a
  // 65th REST call is refused at once (429), not read on the loop; the count goes back down
  it('one address has at most 64 REST reads waiting off the loop; the 65th is refused with 429, not read on the loop', async () => {
    const b = await protoSession(server, 'rl-b');
    const st = b.openReply.sessionMessage.st;
    const other = await protoSession(server, 'rl-other');
    const path = '/1.2/rtm/clients/rl-b/unread-count';
    assert.deepEqual((await restGet(path, st)).body, { count: 0 });
    const locker = await lockTable(db, 'member');
    try {
      const waiting = [];
      for (let i = 0; i < 64; i++) waiting.push(restGet(path, st));
      // each call is on a connection of its own: wait until all 64 are read (each holds a count)
      let refused;
      for (let t0 = Date.now(); Date.now() - t0 < 3000; await sleep(20)) {
        refused = await restGet(path, st);
        if (refused.status === 429) break;
      }
      assert.deepEqual([refused.status, refused.body.error], [429, 'too many reads from this address']);
      await other.echo(); // the worker reads on
      locker.commit();
      for (const r of await Promise.all(waiting)) assert.deepEqual([r.status, r.body], [200, { count: 0 }]);
      assert.deepEqual((await restGet(path, st)).body, { count: 0 }, 'the count went back down');
    } finally {
      await locker.close();
    }
  });

  // /1.1/installations takes the app key alone (every copy of the app carries it): a save
  // reads the stored object (and, for each channel, the session token's revocations and
  // the device's old binding), a GET the object, all off the loop now
  it('POST and GET /1.1/installations with the app key wait on a locked installation table off the loop; the worker answers another client meanwhile', async () => {
    const a = await protoSession(server, 'rd-a');
    const st = a.openReply.sessionMessage.st;
    const other = await protoSession(server, 'rd-other');
    const headers = { 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey, 'Content-Type': 'application/json' };
    const post = () => fetch(`${server.httpUrl}/1.1/installations`, {
      method: 'POST', headers: { ...headers, 'X-LC-IM-Session-Token': st },
      body: JSON.stringify({ deviceType: 'ios', deviceToken: 'ab'.repeat(32), channels: ['rd-a', 'rd-nobody'] }),
    }).then(async (res) => ({ status: res.status, body: await res.json() }));
    const made = await whileLocked('installation', other, post, 'an installation was saved');
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const get = () => fetch(`${server.httpUrl}/1.1/installations/${made.body.objectId}`, { headers })
      .then(async (res) => ({ status: res.status, body: await res.json() }));
    const got = await whileLocked('installation', other, get, 'an installation was read');
    assert.equal(got.status, 200, JSON.stringify(got.body));
    assert.deepEqual([got.body.objectId, got.body.deviceType, got.body.channels], [made.body.objectId, 'ios', ['rd-a', 'rd-nobody']]);
    // the channel its session token vouched for is bound (a device row), the other is not
    const devices = await new Promise((resolve) => {
      const p = spawn('/usr/lib/postgresql/15/bin/psql', [db, '-tA', '-c', `SELECT client FROM device WHERE installation_id = '${made.body.objectId}' ORDER BY client`]);
      let out = '';
      p.stdout.on('data', (d) => { out += d; });
      p.on('exit', () => resolve(out.trim().split('\n').filter(Boolean)));
    });
    assert.deepEqual(devices, ['rd-a']);
  });

  // any id a client names (here: one no conversation has) is looked up in the store when
  // the cache lacks it: off the loop too
  it('GET /1.1/classes/_ConversationMemberInfo of a conversation the cache lacks waits on a locked conversation table off the loop', async () => {
    const a = await protoSession(server, 'ri-d');
    const st = a.openReply.sessionMessage.st;
    const other = await protoSession(server, 'ri-other2');
    const path = `/1.1/classes/_ConversationMemberInfo?client_id=ri-d&where=${encodeURIComponent(JSON.stringify({ cid: '000000000000000000000000' }))}`;
    const none = await whileLocked('conv', other, () => restGet(path, st), 'a REST call read a conversation the cache lacks');
    assert.deepEqual([none.status, none.body], [200, { results: [] }]);
  });
});

// An offline push reads each offline recipient's devices (the device table): any logged-in
// client's send to a conversation with offline members triggers it, one read per member.
// Off the loop now (out/push.c): with the device table locked, a send's push waits while
// another client of the same (only) worker gets its echoes answered, each within a second;
// then the push goes out. Before, the devices were read on the worker's loop after the
// commit: the other client's first echo waited for the lock.
describe("an offline push reads its recipients' devices off the loop", () => {
  const pushes = [];
  let webhook, db, server;
  const env = { TERN_WORKERS: '1', TERN_PUSH_PROVIDER: 'webhook', TERN_PUSH_TEMPLATE: JSON.stringify({ alert: '${fromClientId} wrote' }) };
  before(async () => { // before usePgServers' own: the server starts with the webhook's URL
    webhook = http.createServer((req, res) => {
      let raw = '';
      req.on('data', (d) => { raw += d; });
      req.on('end', () => { pushes.push(JSON.parse(raw)); res.writeHead(200); res.end('{}'); });
    });
    await new Promise((resolve) => webhook.listen(0, '127.0.0.1', resolve));
    env.TERN_PUSH_WEBHOOK_URL = `http://127.0.0.1:${webhook.address().port}/push`;
  });
  after(() => new Promise((resolve) => webhook.close(resolve)));
  const pgs = usePgServers(env);
  before(() => { db = pgs.db; [server] = pgs.servers; });

  it('a send to an offline member waits for its push on a locked device table off the loop; the worker answers another client meanwhile', async () => {
    const tom = await protoSession(server, 'pp-tom');
    const other = await protoSession(server, 'pp-other');
    const jerry = await protoSession(server, 'pp-jerry');
    const token = 'ab'.repeat(32);
    const up = await jerry.request({ cmd: 'report', op: 'upload', reportMessage: { initiative: true, type: 'token', data: token } });
    assert.equal(up.op, 'uploaded', JSON.stringify(up));
    const { cid } = await startConv(tom, ['pp-jerry']);
    await jerry.close();
    for (let t0 = Date.now(); Date.now() - t0 < 5000; await sleep(50)) { // jerry is offline once its close is seen
      const r = await tom.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } });
      if (r.convMessage) break;
    }
    await sleep(200);
    const locker = await lockTable(db, 'device');
    try {
      const ack = await sendMsg(tom, cid, 'while the devices are locked');
      await loopFree(other, "an offline push's devices were read");
      assert.deepEqual(pushes.filter((p) => p.msgId === ack.uid), [], 'the push waits for its devices (the table is locked)');
      locker.commit();
      for (let t0 = Date.now(); Date.now() - t0 < 5000 && !pushes.some((p) => p.msgId === ack.uid); await sleep(50));
      const got = pushes.filter((p) => p.msgId === ack.uid);
      assert.deepEqual(got.map((p) => [p.clientId, p.convId, p.fromClientId]), [['pp-jerry', cid, 'pp-tom']]);
    } finally {
      await locker.close();
    }
  });
});

// An edit or recall (patch/modify, up to 20 patches a request, any logged-in client's at
// will) reads each patched message (msg), in a conversation with imported ids its key first
// (msg_ext), and a conversation the cache lacks (conv). Off the loop now (im_patch.c), the
// connection paused meanwhile, the patch run again with the answers: with the table
// locked, another client of the same (only) worker gets its echoes answered, each within a
// second; then the patch is answered and pushed. Before, each read was made on the loop:
// the other client's first echo waited for the lock.
describe("an edit's reads (its messages, their imported ids, their conversations) are made off the loop", () => {
  let db, server;
  const pgs = usePgServers({ TERN_WORKERS: '1' });
  before(() => { db = pgs.db; [server] = pgs.servers; });

  const patchWhileLocked = (table, client, other, patch, what) =>
    frameWhileLocked(db, table, client, other, { cmd: 'patch', op: 'modify', patchMessage: { patches: [patch] } }, what);

  it('an edit waits on a locked message table off the loop; the worker answers another client meanwhile; the member gets the patch', async () => {
    const a = await protoSession(server, 'pe-a');
    const b = await protoSession(server, 'pe-b');
    const other = await protoSession(server, 'pe-other');
    const { cid } = await startConv(a, ['pe-b']);
    const m = await sendMsg(a, cid, 'to be edited');
    const r = await patchWhileLocked('msg', a, other, { cid, mid: m.uid, timestamp: m.t, data: 'edited' }, 'an edit read its message');
    assert.equal(r.op, 'modified', JSON.stringify(r));
    const push = await b.next((x) => x.cmd === 'patch' && x.op === 'modify');
    assert.deepEqual(push.patchMessage.patches.map((p) => [p.mid, p.data]), [[m.uid, 'edited']]);
  });

  it('an edit of an imported message waits on a locked imported-id table off the loop; the worker answers another client meanwhile', async () => {
    const cid = 'a1b2c3d4e5f6a7b8c9d0e1f2';
    const t = Date.now() - 60000;
    const res = await fetch(`${server.httpUrl}/1.2/import/records`, {
      method: 'POST',
      headers: { 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master`, 'Content-Type': 'application/x-ndjson' },
      body: [
        { type: 'conversation', objectId: cid, m: ['pi-a', 'pi-b'], c: 'pi-a' },
        { type: 'message', cid, 'msg-id': 'imported-1', timestamp: t, from: 'pi-a', data: 'imported' },
      ].map((x) => JSON.stringify(x)).join('\n'),
    });
    assert.equal(res.status, 200, await res.text());
    const a = await protoSession(server, 'pi-a');
    const other = await protoSession(server, 'pi-other');
    const r = await patchWhileLocked('msg_ext', a, other, { cid, mid: 'imported-1', timestamp: t, data: 'edited' }, "an edit read an imported message's key");
    assert.equal(r.op, 'modified', JSON.stringify(r));
    const page = await a.request({ cmd: 'logs', logsMessage: { cid, l: 10 } });
    assert.deepEqual(page.logsMessage.logs.map((l) => [l.msgId, l.data]), [['imported-1', 'edited']]);
  });

  // the same for what an ack, a read or a history page reads besides its conversation
  // (im_prefetch_keys): an imported id's key, a read's other conversations
  async function framesWhileLocked(table, client, other, frame, what) {
    const locker = await lockTable(db, table);
    try {
      const i = client.send(frame);
      let echoed = false; // sent after it: runs after it (its connection waits for the read)
      const behind = client.request({ cmd: 'echo' }, 20000).then((e) => { echoed = true; return e; });
      await loopFree(other, what);
      assert.equal(echoed, false, `${what}: the frame behind it waits for its read (${table} is locked)`);
      locker.commit();
      assert.equal((await behind).cmd, 'echo');
      return i;
    } finally {
      await locker.close();
    }
  }

  it('a history page bounded by an imported id waits on a locked imported-id table off the loop; the worker answers another client meanwhile', async () => {
    const cid = 'b1b2c3d4e5f6a7b8c9d0e1f2';
    const t = Date.now() - 60000;
    const res = await fetch(`${server.httpUrl}/1.2/import/records`, {
      method: 'POST',
      headers: { 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master`, 'Content-Type': 'application/x-ndjson' },
      body: [
        { type: 'conversation', objectId: cid, m: ['pl-a'], c: 'pl-a' },
        { type: 'message', cid, 'msg-id': 'old-0', timestamp: t - 1000, from: 'pl-a', data: 'zero' },
        { type: 'message', cid, 'msg-id': 'old-1', timestamp: t, from: 'pl-a', data: 'one' },
      ].map((x) => JSON.stringify(x)).join('\n'),
    });
    assert.equal(res.status, 200, await res.text());
    const a = await protoSession(server, 'pl-a');
    const other = await protoSession(server, 'pl-other');
    assert.equal((await a.request({ cmd: 'logs', logsMessage: { cid, l: 10 } })).cmd, 'logs'); // cached now
    const id = await framesWhileLocked('msg_ext', a, other, { cmd: 'logs', logsMessage: { cid, mid: 'old-1', t, l: 10 } }, "a history page read an imported id's key");
    const page = await a.reply(id);
    assert.deepEqual(page.logsMessage.logs.map((l) => [l.msgId, l.data]), [['old-0', 'zero']]);
  });

  it("a read receipt's conversations the cache lacks wait on a locked conversation table off the loop; the worker answers another client meanwhile", async () => {
    const a = await protoSession(server, 'pr-a');
    const other = await protoSession(server, 'pr-other');
    const convs = [];
    for (let i = 0; i < 5; i++) convs.push({ cid: `c0ffee00000000000000000${i}`, timestamp: Date.now() });
    await framesWhileLocked('conv', a, other, { cmd: 'read', readMessage: { convs } }, "a read receipt read conversations the cache lacks");
  });
});

describe("what a conversation command reads besides its conversation (a unique start's twin, a max_read's progress) is read off the loop", () => {
  let db, server;
  const pgs = usePgServers({ TERN_WORKERS: '1' });
  before(() => { db = pgs.db; [server] = pgs.servers; });

  const whileLocked = (table, client, other, frame, what) => frameWhileLocked(db, table, client, other, frame, what);

  it('a unique start looks for its twin on a locked conversation table off the loop; the worker answers another client meanwhile; the twin is answered', async () => {
    const a = await protoSession(server, 'cu-a');
    const b = await protoSession(server, 'cu-b');
    const other = await protoSession(server, 'cu-other');
    const first = await startConv(a, ['cu-b'], { unique: true });
    const r = await whileLocked('conv', b, other, { cmd: 'conv', op: 'start', convMessage: { m: ['cu-a'], unique: true } }, 'a unique start looked for its twin');
    assert.equal(r.op, 'started', JSON.stringify(r));
    assert.equal(r.convMessage.cid, first.cid, 'the same members: the conversation they made before');
    assert.equal(r.convMessage.uniqueId, first.uniqueId);
    // and a unique start with no twin is made once the lock goes
    const r2 = await whileLocked('conv', b, other, { cmd: 'conv', op: 'start', convMessage: { m: ['cu-other'], unique: true } }, 'a unique start looked for a twin it has not');
    assert.equal(r2.op, 'started', JSON.stringify(r2));
    assert.notEqual(r2.convMessage.cid, first.cid);
    assert.equal((await startConv(other, ['cu-b'], { unique: true })).cid, r2.convMessage.cid);
  });

  it("a max_read reads its members' progress on a locked member table off the loop; the worker answers another client meanwhile; the answer is right", async () => {
    const a = await protoSession(server, 'cm-a');
    const b = await protoSession(server, 'cm-b');
    const other = await protoSession(server, 'cm-other');
    const { cid } = await startConv(a, ['cm-b']);
    const m = await sendMsg(a, cid, 'read me');
    await b.next((x) => x.cmd === 'direct');
    b.send({ cmd: 'read', i: null, readMessage: { convs: [{ cid, timestamp: m.t, mid: m.uid }] } });
    for (let k = 0; ; k++) { // the read position is written asynchronously
      if ((await a.request({ cmd: 'conv', op: 'max_read', convMessage: { cid } })).convMessage.maxReadTimestamp === m.t) break;
      assert.ok(k < 100, 'the read committed');
      await sleep(50);
    }
    const r = await whileLocked('member', a, other, { cmd: 'conv', op: 'max_read', convMessage: { cid, queryAllMembers: true } }, 'a max_read read its progress');
    assert.equal(r.op, 'max_read', JSON.stringify(r));
    assert.equal(r.convMessage.maxReadTimestamp, m.t);
    assert.deepEqual(r.convMessage.maxReadTuples.map((t) => t.pid).sort(), ['cm-a', 'cm-b']);
  });

  it("an add looks up whether each client blocked the conversation on a locked client-blacklist table off the loop; the worker answers another client meanwhile; the blocked one is refused", async () => {
    const a = await protoSession(server, 'cb-a');
    const e = await protoSession(server, 'cb-e');
    const f = await protoSession(server, 'cb-f');
    const other = await protoSession(server, 'cb-other');
    const { cid } = await startConv(a, ['cb-other']);
    const bl = await e.request({ cmd: 'blacklist', op: 'block', blacklistMessage: { srcPid: 'cb-e', toCids: [cid] } });
    assert.equal(bl.op, 'blocked', JSON.stringify(bl));
    const r = await whileLocked('client_block', a, other, { cmd: 'conv', op: 'add', convMessage: { cid, m: ['cb-e', 'cb-f'] } }, 'an add looked up its clients');
    assert.equal(r.op, 'added', JSON.stringify(r));
    assert.deepEqual(r.convMessage.allowedPids, ['cb-f']);
    assert.deepEqual(r.convMessage.failedPids, [{ code: 4548, reason: 'BLOCKED_BY_CONV', pids: ['cb-e'] }]);
    // and a join (an add of oneself) the same
    const j = await whileLocked('client_block', e, other, { cmd: 'conv', op: 'add', convMessage: { cid, m: ['cb-e'] } }, 'a join looked up its client');
    assert.deepEqual(j.convMessage.failedPids, [{ code: 4548, reason: 'BLOCKED_BY_CONV', pids: ['cb-e'] }]);
    assert.equal((await f.next((x) => x.cmd === 'conv' && x.op === 'joined')).convMessage.cid, cid);
  });

  it("a client blacklist's query and check read on a locked client-blacklist table off the loop; the worker answers another client meanwhile; the answers are right", async () => {
    const a = await protoSession(server, 'cq-a');
    const e = await protoSession(server, 'cq-e');
    const other = await protoSession(server, 'cq-other');
    const c1 = (await startConv(a, ['cq-other'])).cid;
    const c2 = (await startConv(a, ['cq-other', 'cq-a'])).cid;
    const bl = await e.request({ cmd: 'blacklist', op: 'block', blacklistMessage: { srcPid: 'cq-e', toCids: [c1, c2] } });
    assert.equal(bl.op, 'blocked', JSON.stringify(bl));
    const q = await whileLocked('client_block', e, other, { cmd: 'blacklist', op: 'query', blacklistMessage: { srcPid: 'cq-e', limit: 1 } }, "a client blacklist's query read its page");
    assert.equal(q.op, 'query_result', JSON.stringify(q));
    const first = [c1, c2].sort()[0];
    assert.deepEqual(q.blacklistMessage.blockedCids, [first]);
    assert.equal(q.blacklistMessage.next, first);
    const k = await whileLocked('client_block', e, other, { cmd: 'blacklist', op: 'check_block', blacklistMessage: { srcPid: 'cq-e', toCids: [c2, 'c0ffee0000000000000000ff'] } }, "a client blacklist's check read its conversations");
    assert.equal(k.op, 'check_result', JSON.stringify(k));
    assert.deepEqual(k.blacklistMessage.blockedCids, [c2]);
  });

  it("an update of a conversation cached without its document reads the document on a locked conversation table off the loop; the worker answers another client meanwhile; the merge keeps the rest", async () => {
    const cid = 'd1b2c3d4e5f6a7b8c9d0e1f2';
    const res = await fetch(`${server.httpUrl}/1.2/import/records`, {
      method: 'POST',
      headers: { 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master`, 'Content-Type': 'application/x-ndjson' },
      body: JSON.stringify({ type: 'conversation', objectId: cid, name: 'imported', m: ['cd-a'], c: 'cd-a', attr: { topic: 'old', keep: 1 } }) + '\n',
    });
    assert.equal(res.status, 200, await res.text());
    const a = await protoSession(server, 'cd-a');
    const other = await protoSession(server, 'cd-other');
    assert.equal((await a.request({ cmd: 'logs', logsMessage: { cid, l: 1 } })).cmd, 'logs'); // its row cached, not its document
    const r = await whileLocked('conv', a, other, { cmd: 'conv', op: 'update', convMessage: { cid, attr: { data: '{"attr.topic":"new"}' } } }, 'an update read its document');
    assert.equal(r.op, 'updated', JSON.stringify(r));
    const q = await a.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } });
    const [row] = JSON.parse(q.convMessage.results.data);
    assert.equal(row.name, 'imported');
    assert.deepEqual(row.attr, { topic: 'new', keep: 1 });
  });

  // A request can wait off the loop twice in a row: a conversation the cache lacks is read
  // (im_prefetch), and its run again finds the document missing (im_prefetch_cmd). Its
  // connection stays paused until the second answer: the updates sent behind the first
  // are merged after it, in the order sent (issue #14: the first end of the two unpaused
  // the connection, and update 3 was applied before 2, which left its value last).
  it("pipelined updates of a conversation the cache lacks (the first reads its row, then its document, off the loop) are applied in the order sent; the last one's value stays", async () => {
    const cid = 'f1b2c3d4e5f6a7b8c9d0e1f2';
    const res = await fetch(`${server.httpUrl}/1.2/import/records`, {
      method: 'POST',
      headers: { 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master`, 'Content-Type': 'application/x-ndjson' },
      body: JSON.stringify({ type: 'conversation', objectId: cid, m: ['co-a'], c: 'co-a', attr: { keep: 1 } }) + '\n',
    });
    assert.equal(res.status, 200, await res.text());
    const a = await protoSession(server, 'co-a');
    const other = await protoSession(server, 'co-other');
    const N = 6;
    const locker = await lockTable(db, 'conv'); // the first update's row read waits: the others are sent behind it
    const is = [];
    let echoed = false;
    try {
      for (let k = 1; k <= N; k++) is.push(a.send({ cmd: 'conv', op: 'update', convMessage: { cid, attr: { data: JSON.stringify({ 'attr.n': k }) } } }));
      const behind = a.request({ cmd: 'echo' }, 20000).then((e) => { echoed = true; return e; });
      await loopFree(other, 'the first update read its conversation');
      assert.equal(echoed, false, 'the frames behind the first update wait for it (conv is locked)');
      locker.commit();
      assert.equal((await behind).cmd, 'echo');
      for (const i of is) assert.equal((await a.reply(i, 20000)).op, 'updated');
    } finally {
      await locker.close();
    }
    const q = await a.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } });
    const [row] = JSON.parse(q.convMessage.results.data);
    assert.deepEqual(row.attr, { keep: 1, n: N }, JSON.stringify(row));
  });

  it("a read's cids list of conversations the cache lacks waits on a locked conversation table off the loop; the worker answers another client meanwhile", async () => {
    const a = await protoSession(server, 'rc-a');
    const other = await protoSession(server, 'rc-other');
    const cids = [];
    for (let i = 0; i < 5; i++) cids.push(`c0ffee11000000000000000${i}`);
    const locker = await lockTable(db, 'conv');
    try {
      a.send({ cmd: 'read', i: null, readMessage: { cids } });
      let echoed = false; // sent after it: runs after it (its connection waits for the read)
      const behind = a.request({ cmd: 'echo' }, 20000).then((e) => { echoed = true; return e; });
      await loopFree(other, "a read's cids read conversations the cache lacks");
      assert.equal(echoed, false, 'the frame behind the read waits for it (conv is locked)');
      locker.commit();
      assert.equal((await behind).cmd, 'echo');
    } finally {
      await locker.close();
    }
  });

  it("a query of temporary conversations by id (tempConvIds) reads them on a locked conversation table off the loop; the worker answers another client meanwhile; the answer is right", async () => {
    const a = await protoSession(server, 'ct-a');
    const other = await protoSession(server, 'ct-other');
    const t = await startConv(a, ['ct-other'], { tempConv: true, tempConvTTL: 3600 });
    const r = await whileLocked('conv', a, other, { cmd: 'conv', op: 'query', convMessage: { tempConvIds: [t.cid, '_tmp:nothere'] } }, 'a query read temporary conversations');
    assert.equal(r.op, 'results', JSON.stringify(r));
    assert.deepEqual(JSON.parse(r.convMessage.results.data).map((x) => x.objectId), [t.cid]);
  });

  it("an is_member's conversations the cache lacks are read on a locked conversation table off the loop; the worker answers another client meanwhile; the answer is right", async () => {
    const cid = 'e1b2c3d4e5f6a7b8c9d0e1f2';
    const res = await fetch(`${server.httpUrl}/1.2/import/records`, {
      method: 'POST',
      headers: { 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master`, 'Content-Type': 'application/x-ndjson' },
      body: JSON.stringify({ type: 'conversation', objectId: cid, m: ['im-a'], c: 'im-a' }) + '\n',
    });
    assert.equal(res.status, 200, await res.text());
    const a = await protoSession(server, 'im-a');
    const other = await protoSession(server, 'im-other');
    const nothere = 'c0ffee2200000000000000ff';
    const r = await whileLocked('conv', a, other, { cmd: 'conv', op: 'is_member', convMessage: { cids: [cid, nothere] } }, 'an is_member read conversations the cache lacks');
    assert.equal(r.op, 'is_member', JSON.stringify(r));
    assert.deepEqual(JSON.parse(r.convMessage.results.data), { [cid]: true, [nothere]: false });
  });
});

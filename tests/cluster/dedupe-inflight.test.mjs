// A resend that reaches ANOTHER node while its first copy is still in its commit (issue #14,
// docs/cluster.md "A resend is stored once"): two ternd nodes on one PostgreSQL and one
// Redis. The first copy's commit on node 1 is held (a psql session holds the conversation's
// order lock, the advisory lock pg_writer.c takes to COMMIT); the client drops before the
// ack, logs in again on node 2 with r:true and resends the same dt, which node 2's writer
// queues behind node 1's on that lock. Released, the first copy commits, and node 2's writer
// finds it in its own transaction: one message stored, the resend acked with its id,
// delivered once.
//
// The opposite order (issue #14's open case): node 1's writer is behind (a psql session holds
// the order lock of ANOTHER conversation its previous batch is waiting for), the first copy
// queued behind that batch; the client's socket to node 1 closes, it logs in again on node 2
// with r:true and resends; node 2 commits the resend first. Released, node 1's writer must
// drop its copy (the session that sent it ended before its commit: store.h, job
// gone): one message stored, the resend's id, delivered once.
//
// And the same when node 1 never sees the old socket go (a half-open connection: no FIN or
// RST reached it): the login on node 2 with r:true tells node 1 (the bus's 'S'), which marks
// that session's sends in flight as its end would.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { startPg } from '../lib/pg.mjs';
import { closeAll, connect, login, session, startConv, uid } from '../lib/proto-client.mjs';
import { startRedis } from '../lib/redis.mjs';
import { startNodes } from '../lib/server.mjs';

const PSQL = '/usr/lib/postgresql/15/bin/psql';
const direct = (dm) => ({ cmd: 'direct', directMessage: dm });

async function until(f, what, ms = 10000) {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function metric(s, line) {
  const res = await fetch(`${s.httpUrl}/metrics`, { headers: { 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master` } });
  const m = line.exec(await res.text());
  return m ? Number(m[1]) : 0;
}
const deduped = (s) => metric(s, /^tern_send_deduped_total (\d+)$/m);
const sessions = (s) => metric(s, /^tern_sessions\{protocol="protobuf"\} (\d+)$/m);

async function history(s, cid) {
  const res = await fetch(`${s.httpUrl}/1.2/rtm/conversations/${cid}/messages?limit=100`, {
    headers: { 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master` },
  });
  assert.equal(res.status, 200);
  return (await res.json()).reverse().map((m) => ({ id: m['msg-id'], data: m.data }));
}

describe('a resend on another node while the first copy is in its commit (PostgreSQL)', () => {
  let pg;
  let redis;
  let nodes;
  let db;
  let dbName;
  before(async () => {
    pg = startPg();
    redis = await startRedis();
    db = pg.createDatabase();
    dbName = new URL(db).pathname.slice(1);
    nodes = await startNodes(2, redis, { env: { TERN_STORE: db } });
  });
  after(async () => {
    try {
      for (const n of nodes || []) await closeAll(n);
      await Promise.all((nodes || []).map((s) => s.stop()));
    } finally {
      if (redis) await redis.stop();
      if (pg) pg.stop();
    }
  });

  /** A psql session holding conversation `cid`'s order lock (pg_writer.c: ORDER_LOCK) until
   * the function it resolves to is called. */
  async function holdOrderLock(cid) {
    const id = pg.sql(`SELECT id FROM conv WHERE cid = '${cid}'`, dbName);
    assert.match(id, /^\d+$/);
    const key = `1952805486, (${id}::bigint % 2147483647)::int`;
    const lock = spawn(PSQL, [db, '-qtA'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const exited = new Promise((r) => lock.on('exit', r));
    let out = '';
    await new Promise((resolve, reject) => {
      lock.stdout.on('data', (d) => {
        out += d;
        if (out.includes('held-now')) resolve();
      });
      lock.on('exit', (code) => reject(new Error(`psql exited (${code}): ${out}`)));
      lock.stdin.write(`SELECT pg_advisory_lock(${key});\nSELECT 'held-now';\n`);
    });
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      lock.stdin.end(`SELECT pg_advisory_unlock(${key});\n`);
      await exited;
    };
  }

  /** Writers of this database waiting for an advisory lock (the order lock), now. */
  const waiting = () =>
    Number(pg.sql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid" +
      ` WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = '${dbName}'`));

  test('node 1 holds the first copy, node 2 gets the resend: stored once, acked with its id, delivered once', async () => {
    const [n1, n2] = nodes;
    const a = uid('alice');
    const alice = await session(n1, a);
    const bob = await session(n1, uid('bob'));
    const { cid } = await startConv(alice, [bob.peer]);
    await bob.next((p) => p.op === 'members_joined' && p.convMessage.cid === cid);
    // a message stored before (the resend's first look sees it as the conversation's newest)
    const before = await alice.request(direct({ cid, msg: 'before', dt: randomUUID() }));
    assert.equal(before.cmd, 'ack');
    await bob.next((p) => p.cmd === 'direct' && p.directMessage?.msg === 'before');
    const st = alice.openReply.sessionMessage.st;
    const release = await holdOrderLock(cid);
    try {
      const d0 = (await deduped(n1)) + (await deduped(n2));
      const dt = randomUUID();
      alice.send(direct({ cid, msg: 'across nodes', dt }));
      alice.ws.close();
      await until(() => waiting() >= 1, "node 1's writer to wait for the order lock");
      const c = await connect(n2);
      await login(c, a, { r: true, st });
      const resent = c.request(direct({ cid, msg: 'across nodes', dt }), 15000);
      await until(() => waiting() >= 2, "node 2's writer to wait behind it");
      await release();
      const r = await resent;
      assert.equal(r.cmd, 'ack', JSON.stringify(r));
      // a barrier: a fresh message from node 2 reaches bob after everything before it
      const text = `barrier-${randomUUID()}`;
      assert.equal((await c.request(direct({ cid, msg: text, dt: randomUUID() }))).cmd, 'ack');
      await bob.next((p) => p.cmd === 'direct' && p.directMessage?.msg === text);
      const stored = (await history(n2, cid)).filter((m) => m.data === 'across nodes');
      assert.equal(stored.length, 1, `stored once: ${JSON.stringify(stored)}`);
      assert.equal(r.ackMessage.uid, stored[0].id, "the resend's ack names the stored message");
      const got = bob.received.filter((x) => x.cmd === 'direct' && !x.i && x.directMessage?.msg === 'across nodes');
      assert.equal(got.length, 1, 'bob got it once');
      assert.equal(got[0].directMessage.id, stored[0].id);
      assert.equal((await deduped(n1)) + (await deduped(n2)), d0 + 1);
    } finally {
      await release();
    }
  });

  /** The first copy queued on node 1 behind a batch its writer cannot commit (another
   * conversation's order lock held), the resend committed on node 2, then node 1 released:
   * stored once, the resend's id, delivered once, the copy dropped on node 1 counted.
   * halfOpen: alice's socket to node 1 stays open (node 1 never learns she moved; the
   * reconnect's 'S' tells it), else it closes and node 1 sees her session end. */
  async function resendCommitsFirst(halfOpen) {
    const [n1, n2] = nodes;
    const a = uid('alice');
    const alice = await session(n1, a);
    const bob = await session(n1, uid('bob'));
    const carol = await session(n1, uid('carol'));
    const { cid } = await startConv(alice, [bob.peer]);
    await bob.next((p) => p.op === 'members_joined' && p.convMessage.cid === cid);
    const other = (await startConv(carol, [uid('dave')])).cid; // only for stalling node 1's writer
    const before = await alice.request(direct({ cid, msg: 'before', dt: randomUUID() }));
    assert.equal(before.cmd, 'ack');
    await bob.next((p) => p.cmd === 'direct' && p.directMessage?.msg === 'before');
    assert.equal((await carol.request(direct({ cid: other, msg: 'warm', dt: randomUUID() }))).cmd, 'ack');
    const st = alice.openReply.sessionMessage.st;
    const release = await holdOrderLock(other);
    try {
      const d0 = (await deduped(n1)) + (await deduped(n2));
      // node 1's writer takes carol's message and waits for its conversation's lock
      const stalled = carol.request(direct({ cid: other, msg: 'stalled', dt: randomUUID() }), 30000);
      await until(() => waiting() >= 1, "node 1's writer to wait for the other conversation's lock");
      const s0 = await sessions(n1);
      const dt = randomUUID();
      const msg = halfOpen ? 'half open' : 'resent first';
      alice.send(direct({ cid, msg, dt })); // queued behind the stalled batch
      if (!halfOpen) {
        alice.ws.close(); // a network blip: no answer will come on this socket
        await until(async () => (await sessions(n1)) === s0 - 1, "node 1 to see alice's socket close");
      }
      const c = await connect(n2);
      await login(c, a, { r: true, st });
      const r = await c.request(direct({ cid, msg, dt }), 15000);
      assert.equal(r.cmd, 'ack', JSON.stringify(r)); // committed on node 2 while node 1 is held
      assert.equal(waiting(), 1, "node 1's writer still held");
      if (halfOpen) assert.equal(await sessions(n1), s0, "node 1 still holds alice's old session");
      await release();
      assert.equal((await stalled).cmd, 'ack');
      // node 1's writer has run the first copy's batch once a later send of its own is acked
      const text = `barrier-${randomUUID()}`;
      assert.equal((await bob.request(direct({ cid, msg: text, dt: randomUUID() }))).cmd, 'ack');
      await new Promise((res) => setTimeout(res, 300));
      const stored = (await history(n1, cid)).filter((m) => m.data === msg);
      assert.equal(stored.length, 1, `stored once: ${JSON.stringify(stored)}`);
      assert.equal(r.ackMessage.uid, stored[0].id, "the resend's ack names the stored message");
      const got = bob.received.filter((x) => x.cmd === 'direct' && !x.i && x.directMessage?.msg === msg);
      assert.equal(got.length, 1, `bob got it once: ${JSON.stringify(got.map((x) => x.directMessage.id))}`);
      assert.equal(got[0].directMessage.id, stored[0].id);
      // a session still there has its send answered with the stored message's id
      const acks = alice.received.filter((x) => x.cmd === 'ack' && x.ackMessage?.uid && x.ackMessage.uid !== before.ackMessage.uid);
      assert.ok(acks.every((x) => x.ackMessage.uid === stored[0].id), JSON.stringify(acks));
      assert.equal((await deduped(n1)) + (await deduped(n2)), d0 + 1, 'the copy dropped on node 1 is counted');
    } finally {
      await release();
    }
  }

  test("the resend's node commits first, node 1's writer behind: node 1 drops its copy — stored once, delivered once", () =>
    resendCommitsFirst(false));

  test("the old socket never closes on node 1 (half-open): the reconnect on node 2 marks node 1's copy — stored once, delivered once", () =>
    resendCommitsFirst(true));
});

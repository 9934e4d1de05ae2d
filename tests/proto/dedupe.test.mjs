// A resent message is stored once (issue #14; docs/protocol-map.md, "dt: a resend is stored
// once"): the SDKs send a `dt` with every message and the SAME `dt` when they resend one
// whose ack never came, after a reconnect (session/open r:true). ternd answers such a resend
// with the stored message's ack and neither stores nor delivers it again — on SQLite and on
// PostgreSQL (its own server, scripts/pg.sh). Dedupe is per conversation and sender, the
// stored content wins, and an over-long dt is ignored.
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { startPg } from '../lib/pg.mjs';
import { closeAll, connect, login, session, startConv, uid } from '../lib/proto-client.mjs';
import { holdWriter } from '../lib/hold-writer.mjs';

async function metric(s, name) {
  const res = await fetch(`${s.httpUrl}/metrics`, { headers: { 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master` } });
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(await res.text());
  return m ? Number(m[1]) : 0;
}

/** Messages the server accepted for storage so far (tern_messages_in_total{kind="stored"}). */
async function storedIn(s) {
  const res = await fetch(`${s.httpUrl}/metrics`, { headers: { 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master` } });
  const m = /^tern_messages_in_total\{kind="stored"\} (\d+)$/m.exec(await res.text());
  return m ? Number(m[1]) : 0;
}

/** Polls until f() is true (a counter the server moves: no fixed sleep). */
async function until(f, what, ms = 10000) {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function history(s, cid) {
  const res = await fetch(`${s.httpUrl}/1.2/rtm/conversations/${cid}/messages?limit=100`, {
    headers: { 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master` },
  });
  assert.equal(res.status, 200);
  return (await res.json()).reverse().map((m) => ({ id: m['msg-id'], from: m.from, data: m.data }));
}

const direct = (dm) => ({ cmd: 'direct', directMessage: dm });

for (const backend of ['sqlite', 'postgres']) {
  describe(`dt dedupe on ${backend}`, () => {
    let server;
    let pg;
    let dbUri;
    before(async () => {
      const env = process.env.DEDUPE_TEST_WINDOW ? { TERN_DEDUPE_WINDOW: process.env.DEDUPE_TEST_WINDOW } : {};
      if (backend === 'postgres') {
        pg = startPg();
        env.TERN_STORE = dbUri = pg.createDatabase();
      }
      server = await startServer({ env });
    });
    afterEach(() => closeAll(server));
    after(async () => {
      try {
        await server?.stop();
      } finally {
        pg?.stop();
      }
    });

    /** a and b on sockets of their own in a fresh 1:1 conversation; a's session token. */
    async function pair() {
      const [a, b] = [uid('alice'), uid('bob')];
      const alice = await session(server, a);
      const bob = await session(server, b);
      const { cid } = await startConv(alice, [b]);
      await bob.next((p) => p.op === 'members_joined' && p.convMessage.cid === cid);
      return { a, b, alice, bob, cid, st: alice.openReply.sessionMessage.st };
    }

    /** A reconnect as the SDKs make it: a new socket, session/open r:true with st. */
    async function reconnect(peer, st) {
      const c = await connect(server);
      const r = await login(c, peer, { r: true, st });
      return { c, st: r.sessionMessage?.st || st };
    }

    /** Every live `direct` push c got in cid. */
    const pushes = (c, cid) => c.received.filter((x) => x.cmd === 'direct' && !x.i && x.directMessage?.cid === cid);

    /** b has every push of cid up to a fresh message of a's: nothing more is on its way. */
    async function barrier(sender, bob, cid) {
      const text = `barrier-${randomUUID()}`;
      const r = await sender.request(direct({ cid, msg: text, dt: randomUUID() }));
      assert.equal(r.cmd, 'ack', JSON.stringify(r));
      await bob.next((p) => p.cmd === 'direct' && p.directMessage?.msg === text);
      return r.ackMessage.uid;
    }

    test('the connection drops before the ack: the resend after r:true gets the first id, one message stored and delivered', async () => {
      const { a, alice, bob, cid, st } = await pair();
      const dt = randomUUID();
      const deduped0 = await metric(server, 'tern_send_deduped_total');
      // sent, then the socket goes before the ack can be read
      alice.send(direct({ cid, msg: 'hello once', dt }));
      alice.ws.close();
      // committed: bob has it (the barrier that the first send was stored)
      const first = await bob.next((p) => p.cmd === 'direct' && p.directMessage?.msg === 'hello once');
      const { c } = await reconnect(a, st);
      const r = await c.request(direct({ cid, msg: 'hello once', dt }));
      assert.equal(r.cmd, 'ack', JSON.stringify(r));
      assert.equal(r.ackMessage.uid, first.directMessage.id, 'the ack names the stored message');
      assert.equal(Number(r.ackMessage.t), Number(first.directMessage.timestamp), 'with its timestamp');
      const next = await barrier(c, bob, cid);
      const h = await history(server, cid);
      assert.deepEqual(h.map((m) => m.id), [first.directMessage.id, next], JSON.stringify(h));
      assert.equal(h[0].data, 'hello once');
      assert.equal(pushes(bob, cid).filter((x) => x.directMessage.msg === 'hello once').length, 1, 'bob got it once');
      assert.equal(await metric(server, 'tern_send_deduped_total'), deduped0 + 1);
    });

    /** The writer held before it can commit anything of cid (holdWriter). */
    async function holdCommit(cid) {
      if (backend === 'sqlite') {
        return holdWriter('sqlite3', [join(server.dir, 'tern.db')], '.timeout 0\nBEGIN IMMEDIATE;', 'COMMIT;');
      }
      const db = new URL(dbUri).pathname.slice(1);
      const id = pg.sql(`SELECT id FROM conv WHERE cid = '${cid}'`, db);
      assert.match(id, /^\d+$/);
      const key = `1952805486, (${id}::bigint % 2147483647)::int`;
      return holdWriter('/usr/lib/postgresql/15/bin/psql', [dbUri, '-qtA'], `SELECT pg_advisory_lock(${key});`,
        `SELECT pg_advisory_unlock(${key});`);
    }

    test('the first copy is still in its commit when the resend comes (issue #14): stored once, the resend acked with its id, delivered once', async () => {
      const { a, alice, bob, cid, st } = await pair();
      // a message stored before: the resend's first look sees it as the newest, and the
      // writer's second look starts there (the first copy is stored after it)
      await barrier(alice, bob, cid);
      const dt = randomUUID();
      const deduped0 = await metric(server, 'tern_send_deduped_total');
      const in0 = await storedIn(server);
      const lock = await holdCommit(cid);
      let released = false;
      try {
        // sent, then the socket goes before the ack: the frame was read, its commit waits
        alice.send(direct({ cid, msg: 'in flight', dt }));
        alice.ws.close();
        await until(async () => (await storedIn(server)) >= in0 + 1, 'the first copy to reach the writer');
        // the SDK reconnects and resends at once: nothing is committed for the store to show
        const { c } = await reconnect(a, st);
        const resent = c.request(direct({ cid, msg: 'in flight', dt }), 15000);
        await until(async () => (await storedIn(server)) >= in0 + 2, 'the resend to reach the writer');
        assert.equal(pushes(bob, cid).filter((x) => x.directMessage.msg === 'in flight').length, 0,
          'nothing committed (the hold works) before the release');
        released = true;
        await lock.release();
        const r = await resent;
        assert.equal(r.cmd, 'ack', JSON.stringify(r));
        await barrier(c, bob, cid);
        const h = await history(server, cid);
        const stored = h.filter((m) => m.data === 'in flight');
        assert.equal(stored.length, 1, `stored once: ${JSON.stringify(h)}`);
        assert.equal(r.ackMessage.uid, stored[0].id, "the resend's ack names the stored message");
        const got = pushes(bob, cid).filter((x) => x.directMessage.msg === 'in flight');
        assert.equal(got.length, 1, 'bob got it once');
        assert.equal(got[0].directMessage.id, stored[0].id);
        assert.equal(Number(r.ackMessage.t), Number(got[0].directMessage.timestamp), 'with its timestamp');
        assert.equal(await metric(server, 'tern_send_deduped_total'), deduped0 + 1);
      } finally {
        if (!released) await lock.release();
      }
    });

    test('the ack was read, then the connection dropped: a resend is still stored once', async () => {
      const { a, alice, bob, cid, st } = await pair();
      const dt = randomUUID();
      const r1 = await alice.request(direct({ cid, msg: 'acked once', dt }));
      assert.equal(r1.cmd, 'ack');
      await alice.close();
      const { c } = await reconnect(a, st);
      const r2 = await c.request(direct({ cid, msg: 'acked once', dt }));
      assert.equal(r2.ackMessage?.uid, r1.ackMessage.uid, JSON.stringify(r2));
      // twice more, the same: still one message
      const r3 = await c.request(direct({ cid, msg: 'acked once', dt }));
      assert.equal(r3.ackMessage?.uid, r1.ackMessage.uid);
      await barrier(c, bob, cid);
      const h = await history(server, cid);
      assert.equal(h.filter((m) => m.data === 'acked once').length, 1, JSON.stringify(h));
      assert.equal(pushes(bob, cid).filter((x) => x.directMessage.msg === 'acked once').length, 1);
    });

    test('a resend with other content under the same dt: the stored message wins, nothing new is stored or delivered', async () => {
      const { a, alice, bob, cid, st } = await pair();
      const dt = randomUUID();
      const r1 = await alice.request(direct({ cid, msg: 'original', dt }));
      const { c } = await reconnect(a, st);
      const r2 = await c.request(direct({ cid, msg: 'forged', dt }));
      assert.equal(r2.ackMessage?.uid, r1.ackMessage.uid, JSON.stringify(r2));
      await barrier(c, bob, cid);
      const h = await history(server, cid);
      assert.deepEqual(h.filter((m) => m.data !== undefined && !m.data.startsWith('barrier-')).map((m) => m.data), ['original']);
      assert.equal(pushes(bob, cid).filter((x) => x.directMessage.msg === 'forged').length, 0);
    });

    test('dedupe is per conversation and sender: another client, or the same dt in another conversation, suppresses nothing', async () => {
      const { a, b, alice, bob, cid, st } = await pair();
      const dt = randomUUID();
      const r1 = await alice.request(direct({ cid, msg: 'alice says', dt }));
      // bob, reconnected, sends with alice's dt into the same conversation: a message of his own
      const { c: bob2 } = await reconnect(b, bob.openReply.sessionMessage.st);
      const rb = await bob2.request(direct({ cid, msg: 'bob says', dt }));
      assert.equal(rb.cmd, 'ack', JSON.stringify(rb));
      assert.notEqual(rb.ackMessage.uid, r1.ackMessage.uid, 'bob cannot reuse alice\'s message');
      // alice, reconnected, reuses her dt in another conversation: stored there
      const carol = await session(server, uid('carol'));
      const { cid: cid2 } = await startConv(alice, [carol.peer]);
      const { c } = await reconnect(a, st);
      const r2 = await c.request(direct({ cid: cid2, msg: 'alice elsewhere', dt }));
      assert.notEqual(r2.ackMessage?.uid, r1.ackMessage.uid, JSON.stringify(r2));
      await carol.next((p) => p.cmd === 'direct' && p.directMessage?.msg === 'alice elsewhere');
      // mallory, not a member, with alice's dt: refused as any non-member, nothing read
      const mallory = await connect(server);
      const mr = await login(mallory, uid('mallory'));
      const { c: m2 } = await reconnect(mr.peerId, mr.sessionMessage.st);
      const rm = await m2.request(direct({ cid, msg: 'x', dt }));
      assert.equal(rm.cmd, 'error', JSON.stringify(rm));
      assert.equal(rm.errorMessage.code, 4401);
      const h = await history(server, cid);
      assert.deepEqual(h.map((m) => m.data), ['alice says', 'bob says']);
      assert.equal(pushes(alice, cid).filter((x) => x.directMessage.msg === 'bob says').length, 1);
      assert.deepEqual((await history(server, cid2)).map((m) => m.data), ['alice elsewhere']);
    });

    test('only where a resend is possible: sends of a session that did not reconnect are not compared', async () => {
      const { alice, cid } = await pair();
      const dt = randomUUID();
      const r1 = await alice.request(direct({ cid, msg: 'twice', dt }));
      const r2 = await alice.request(direct({ cid, msg: 'twice', dt }));
      assert.notEqual(r1.ackMessage.uid, r2.ackMessage.uid);
      assert.equal((await history(server, cid)).filter((m) => m.data === 'twice').length, 2);
    });

    test(`a dt longer than 64 bytes is ignored (stored without one); 64 bytes is honoured; a non-string dt is an undecodable frame`, async () => {
      const { a, alice, cid, st } = await pair();
      const long = 'd'.repeat(65);
      const max = 'e'.repeat(64);
      const l1 = await alice.request(direct({ cid, msg: 'long', dt: long }));
      const m1 = await alice.request(direct({ cid, msg: 'max', dt: max }));
      assert.equal(l1.cmd, 'ack');
      const { c } = await reconnect(a, st);
      const l2 = await c.request(direct({ cid, msg: 'long', dt: long }));
      const m2 = await c.request(direct({ cid, msg: 'max', dt: max }));
      assert.equal(l2.cmd, 'ack', JSON.stringify(l2));
      assert.notEqual(l2.ackMessage.uid, l1.ackMessage.uid, 'over the cap: not compared');
      assert.equal(m2.ackMessage?.uid, m1.ackMessage.uid, 'at the cap: a resend');
      // a dt that is not a string (a varint in field 14): the frame does not decode, and is
      // refused as any undecodable frame (close 4114), nothing stored
      const { c: bad } = await reconnect(a, st);
      const body = Buffer.concat([Buffer.from([0x5a, cid.length]), Buffer.from(cid), Buffer.from([0x0a, 1, 0x78, 0x70, 7])]);
      bad.ws.send(Buffer.concat([Buffer.from([0x08, 0x02, 0x28, 0x09, 0xc2, 0x06, body.length]), body]), { binary: true });
      assert.equal((await bad.closed).code, 4114);
      const h = await history(server, cid);
      assert.deepEqual(h.map((m) => m.data), ['long', 'max', 'long']);
      // a dt past max_frame (64 KiB) is no worse: the frame is refused as any other (4109)
      const huge = await c.request(direct({ cid, msg: 'huge', dt: 'h'.repeat(70000) })).catch((e) => e);
      assert.ok(huge instanceof Error || huge.cmd === 'error', 'refused');
    });
  });
}

// Conversations: conv start (normal, unique, chat room, temporary) and its notifications,
// lookups on unknown ids, membership changes and the notification matrix, chat-room
// presence, count/members/is_member/max_read, and conv query.
// protocol.md §3.4, §3.5, §3.8 (max_read), §3.12, §3.13, §6, §9.1.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import {
  CID_RE, ISO_RE, assertError, assertHealthy, assertPush, closeAll, session, startConv, uid,
} from '../lib/proto-client.mjs';

let server;
before(async () => { server = await startServer(); });
afterEach(closeAll);
after(async () => { await server.stop(); });

const UNKNOWN_CID = '0123456789abcdef01234567';
const UNKNOWN_TMP = '_tmp:0123456789abcdef01234567';

async function query(client, where, extra = {}) {
  const cm = { ...extra };
  if (where !== undefined) cm.where = { data: typeof where === 'string' ? where : JSON.stringify(where) };
  const r = await client.request({ cmd: 'conv', op: 'query', convMessage: cm });
  assert.equal(r.cmd, 'conv', JSON.stringify(r));
  assert.equal(r.op, 'results', JSON.stringify(r));
  return JSON.parse(r.convMessage.results.data);
}

async function count(client, cid) {
  const r = await client.request({ cmd: 'conv', op: 'count', convMessage: { cid } });
  assert.equal(r.cmd, 'conv', JSON.stringify(r));
  assert.equal(r.op, 'result');
  return r.convMessage.count ?? 0;
}

/** Fresh clients on their own sockets: alice and bob members of a normal, a temporary
 * conversation and a chat room alice created; mallory logged in but in none of them. */
async function fixture() {
  const [a, b, m] = [uid('alice'), uid('bob'), uid('mallory')];
  const alice = await session(server, a);
  const bob = await session(server, b);
  const mallory = await session(server, m);
  const normal = (await startConv(alice, [b])).cid;
  const temp = (await startConv(alice, [b], { tempConv: true })).cid;
  const room = (await startConv(alice, [], { transient: true })).cid;
  return { a, b, m, alice, bob, mallory, normal, temp, room };
}

// ---------------------------------------------------------------- conv start: errors

const many = (n) => Array.from({ length: n }, (_, k) => `m${k}`);

const startErrors = [
  { section: '§3.4 4304', name: '500 others + creator exceed max_members 500', conv: { m: many(500) }, code: 4304, reason: 'CONVERSATION_FULL' },
  { section: '§3.4 4301', name: 'attr.data a JSON array', conv: { m: ['b'], attr: { data: '[1,2]' } }, code: 4301, reason: 'CONVERSATION_API_FAILED' },
  { section: '§3.4 4301', name: 'attr.data not JSON', conv: { m: ['b'], attr: { data: '{name: nope' } }, code: 4301, reason: 'CONVERSATION_API_FAILED' },
  { section: '§3.4 4301', name: 'attr.data a JSON string', conv: { m: ['b'], attr: { data: '"name"' } }, code: 4301, reason: 'CONVERSATION_API_FAILED' },
  { section: '§3.4 4301', name: 'attr.data with a duplicated key', conv: { m: ['b'], attr: { data: '{"a":1,"a":2}' } }, code: 4301, reason: 'CONVERSATION_API_FAILED' },
  { section: '§9.1 4103', name: 'a member id of 65 characters', conv: { m: ['b', 'x'.repeat(65)] }, code: 4103, reason: 'INVALID_LOGIN' },
  { section: '§9.1 4103', name: 'an empty member id', conv: { m: ['b', ''] }, code: 4103, reason: 'INVALID_LOGIN' },
];

for (const c of startErrors) {
  test(`${c.section} conv start fails: ${c.name} → ${c.code} ${c.reason}`, async () => {
    const alice = await session(server, uid('alice'));
    const mark = alice.mark();
    assertError(await alice.request({ cmd: 'conv', op: 'start', convMessage: c.conv, i: 5 }), 5, c.code, c.reason);
    assert.deepEqual((await alice.quiet(mark)).filter((x) => x.i !== 5), [], 'no notifications for a failed start');
    await assertHealthy(server);
  });
}

test('§3.4 conv start with 499 others + creator (= max_members) succeeds', async () => {
  const alice = await session(server, uid('alice'));
  const conv = await startConv(alice, many(499));
  assert.equal(await count(alice, conv.cid), 500);
});

// ---------------------------------------------------------------- conv start: success and notifications

test('§3.4 conv start: started {cid, cdate}; every online member gets joined then members_joined', async () => {
  const [a, b, c] = [uid('alice'), uid('bob'), uid('carol')]; // carol stays offline
  const alice = await session(server, a);
  const bob = await session(server, b);
  const [ma, mb] = [alice.mark(), bob.mark()];
  const r = await alice.request({ cmd: 'conv', op: 'start', i: 30, convMessage: { m: [c, b], attr: { data: '{"name":"trio"}' } } });
  assert.equal(r.cmd, 'conv');
  assert.equal(r.op, 'started');
  assert.equal(r.i, 30);
  const { cid, cdate } = r.convMessage;
  assert.match(cid, CID_RE);
  assert.match(cdate, ISO_RE);
  assert.ok(Math.abs(Date.parse(cdate) - Date.now()) < 10000);
  assert.equal(r.convMessage.existing, undefined);
  const all = [a, b, c].sort();
  for (const [client, peer, mark] of [[alice, a, ma], [bob, b, mb]]) {
    const mj = await client.next((p) => p.op === 'members_joined' && p.convMessage.cid === cid);
    const pushes = client.since(mark).filter((p) => !p.i);
    assert.deepEqual(pushes.map((p) => p.op), ['joined', 'members_joined'], `${peer}: joined then members_joined`);
    const joined = pushes[0];
    for (const p of [joined, mj]) {
      assertPush(p, peer);
      assert.equal(p.cmd, 'conv');
      assert.equal(p.convMessage.cid, cid);
      assert.equal(p.convMessage.initBy, a);
      assert.equal(p.convMessage.udate, cdate, 'udate = the new updatedAt');
      assert.equal(p.notificationType, 1);
      assert.ok(p.serverTs > 0);
    }
    assert.equal(joined.convMessage.m, undefined);
    assert.deepEqual(mj.convMessage.m, all, 'members_joined lists every initial member, creator included');
  }
  assert.equal(alice.since(ma)[0].i, 30, 'the reply comes before the notifications');
});

test('§3.4 unique:true twice with the same members returns the same cid with existing:true', async () => {
  const [a, b, c] = [uid('alice'), uid('bob'), uid('carol')];
  const alice = await session(server, a);
  const first = await startConv(alice, [b], { unique: true, attr: { data: '{"name":"first"}' } });
  assert.match(first.uniqueId, /^[0-9a-f]{32}$/);
  assert.equal(first.existing, undefined);
  const mark = alice.mark();
  const second = await startConv(alice, [b, a], { unique: true, attr: { data: '{"name":"second"}' } });
  assert.equal(second.cid, first.cid);
  assert.equal(second.existing, true);
  assert.equal(second.uniqueId, first.uniqueId);
  assert.equal(second.cdate, first.cdate);
  const extra = (await alice.quiet(mark)).filter((p) => !p.i);
  assert.deepEqual(extra, [], 'no joined notifications for an existing unique conversation');
  const [row] = await query(alice, { objectId: first.cid });
  assert.equal(row.name, 'first', 'attributes are not overwritten by the second start');
  assert.equal(row.unique, true);
  assert.equal(row.uniqueId, first.uniqueId);
  const other = await startConv(alice, [b, c], { unique: true });
  assert.notEqual(other.cid, first.cid, 'a different member set is a different conversation');
  const plain = await startConv(alice, [b]);
  assert.notEqual(plain.cid, first.cid, 'unique:false always creates');
});

test('§3.4 transient:true creates a chat room: no joined notifications, creator online in it', async () => {
  const a = uid('alice');
  const alice = await session(server, a);
  const mark = alice.mark();
  const conv = await startConv(alice, [], { transient: true });
  assert.match(conv.cid, CID_RE);
  assert.deepEqual((await alice.quiet(mark)).filter((p) => !p.i), [], 'no notifications for chat rooms');
  assert.equal(await count(alice, conv.cid), 1);
  const [row] = await query(alice, { objectId: conv.cid });
  assert.equal(row.tr, true);
  assert.equal(row.c, a);
  assert.equal(row.m, undefined, 'chat rooms keep no member list');
});

const tempCases = [
  { section: '§3.4', name: 'default TTL', fields: { tempConv: true }, ttl: 86400 },
  { section: '§3.4', name: 'tempConvTTL 3600', fields: { tempConv: true, tempConvTTL: 3600 }, ttl: 3600 },
  { section: '§3.4', name: 'tempConvTTL over 30 days is capped', fields: { tempConv: true, tempConvTTL: 40 * 86400 }, ttl: 30 * 86400 },
];
for (const c of tempCases) {
  test(`${c.section} tempConv:true (${c.name}): _tmp: cid and tempConvTTL, members notified`, async () => {
    const [a, b] = [uid('alice'), uid('bob')];
    const alice = await session(server, a);
    const bob = await session(server, b);
    const conv = await startConv(alice, [b], c.fields);
    assert.match(conv.cid, /^_tmp:[0-9a-f]{24}$/);
    assert.equal(conv.tempConvTTL, c.ttl);
    const joined = await bob.nextCmd('conv', 'joined');
    assertPush(joined, b);
    assert.equal(joined.convMessage.cid, conv.cid);
    assert.equal(await count(alice, conv.cid), 2);
    const r = await alice.request({ cmd: 'conv', op: 'query', convMessage: { tempConvIds: [conv.cid] } });
    const [row] = JSON.parse(r.convMessage.results.data);
    assert.equal(row.objectId, conv.cid);
    assert.equal(row.temp, true);
    assert.ok(row.ttl > c.ttl - 60 && row.ttl <= c.ttl, `ttl ${row.ttl}`);
    assert.deepEqual(row.m, [a, b].sort());
  });
}

// ---------------------------------------------------------------- errors on lookups and membership

const convErrors = [
  { section: '§3.13 4303', name: 'count on an unknown cid', cmd: () => ({ op: 'count', convMessage: { cid: UNKNOWN_CID } }), code: 4303, reason: 'CONVERSATION_NOT_FOUND' },
  { section: '§3.4 4323', name: 'count on an unknown _tmp: id', cmd: () => ({ op: 'count', convMessage: { cid: UNKNOWN_TMP } }), code: 4323, reason: '' /* empty: the SDKs show their own text */ },
  { section: '§3.13 4303', name: 'count without convMessage', cmd: () => ({ op: 'count' }), code: 4303, reason: 'CONVERSATION_NOT_FOUND' },
  { section: '§3.13 4303', name: 'members on an unknown cid', cmd: () => ({ op: 'members', convMessage: { cid: UNKNOWN_CID } }), code: 4303, reason: 'CONVERSATION_NOT_FOUND' },
  { section: '§3.4 4323', name: 'members on an unknown _tmp: id', cmd: () => ({ op: 'members', convMessage: { cid: UNKNOWN_TMP } }), code: 4323, reason: '' /* empty: the SDKs show their own text */ },
  { section: '§3.13 4316', name: 'members on a normal conversation', cmd: (f) => ({ op: 'members', convMessage: { cid: f.normal } }), code: 4316, reason: 'TRANSIENT_CONVERSATION_REQUIRED' },
  { section: '§3.13 4316', name: 'members on a temporary conversation', cmd: (f) => ({ op: 'members', convMessage: { cid: f.temp } }), code: 4316, reason: 'TRANSIENT_CONVERSATION_REQUIRED' },
  { section: '§3.8 4303', name: 'max_read on an unknown cid', cmd: () => ({ op: 'max_read', convMessage: { cid: UNKNOWN_CID } }), code: 4303, reason: 'CONVERSATION_NOT_FOUND' },
  { section: '§3.4 4323', name: 'max_read on an unknown _tmp: id', cmd: () => ({ op: 'max_read', convMessage: { cid: UNKNOWN_TMP } }), code: 4323, reason: '' /* empty: the SDKs show their own text */ },
  { section: '§3.8 4317', name: 'max_read by a non-member', who: 'mallory', cmd: (f) => ({ op: 'max_read', convMessage: { cid: f.normal } }), code: 4317, reason: 'CONVERSATION_MEMBERSHIP_REQUIRED' },
  { section: '§3.12 4303', name: 'add to an unknown cid', cmd: (f) => ({ op: 'add', convMessage: { cid: UNKNOWN_CID, m: [f.m] } }), code: 4303, reason: 'CONVERSATION_NOT_FOUND' },
  { section: '§3.12 4303', name: 'remove from an unknown cid', cmd: (f) => ({ op: 'remove', convMessage: { cid: UNKNOWN_CID, m: [f.b] } }), code: 4303, reason: 'CONVERSATION_NOT_FOUND' },
  { section: '§3.12 4303', name: 'add without cid', cmd: (f) => ({ op: 'add', convMessage: { m: [f.m] } }), code: 4303, reason: 'CONVERSATION_NOT_FOUND' },
  { section: '§3.12 4323', name: 'add to an unknown _tmp: id', cmd: (f) => ({ op: 'add', convMessage: { cid: UNKNOWN_TMP, m: [f.m] } }), code: 4323, reason: '' /* empty: the SDKs show their own text */ },
  { section: '§3.12 4317', name: 'a non-member adding others', who: 'mallory', cmd: (f) => ({ op: 'add', convMessage: { cid: f.normal, m: [uid('z')] } }), code: 4317, reason: 'CONVERSATION_MEMBERSHIP_REQUIRED' },
  { section: '§3.12 4317', name: 'a non-member adding itself and others', who: 'mallory', cmd: (f) => ({ op: 'add', convMessage: { cid: f.normal, m: [f.m, uid('z')] } }), code: 4317, reason: 'CONVERSATION_MEMBERSHIP_REQUIRED' },
  { section: '§3.12 4317', name: 'a non-member removing a member', who: 'mallory', cmd: (f) => ({ op: 'remove', convMessage: { cid: f.normal, m: [f.b] } }), code: 4317, reason: 'CONVERSATION_MEMBERSHIP_REQUIRED' },
  { section: '§3.4 4307', name: 'add on a temporary conversation', cmd: (f) => ({ op: 'add', convMessage: { cid: f.temp, m: [f.m] } }), code: 4307, reason: 'CONVERSATION_READ_ONLY' },
  { section: '§3.4 4307', name: 'remove on a temporary conversation', cmd: (f) => ({ op: 'remove', convMessage: { cid: f.temp, m: [f.b] } }), code: 4307, reason: 'CONVERSATION_READ_ONLY' },
];

for (const c of convErrors) {
  test(`${c.section} conv ${c.name} → ${c.code} ${c.reason}`, async () => {
    const f = await fixture();
    const who = f[c.who || 'alice'];
    const mark = who.mark();
    assertError(await who.request({ cmd: 'conv', ...c.cmd(f), i: 60 }), 60, c.code, c.reason);
    assert.deepEqual((await who.quiet(mark)).filter((x) => x.i !== 60), [], 'nothing else');
    assert.equal(await count(f.alice, f.normal), 2, 'membership unchanged');
    await assertHealthy(server);
  });
}

// ---------------------------------------------------------------- membership notification matrix

/** Waits for the push ending this step for each client, then returns the step's pushes. */
async function stepPushes(clients, marks, cid, last) {
  const out = {};
  for (const [name, cl] of Object.entries(clients)) {
    if (!last[name]) continue;
    await cl.next((p) => p.cmd === 'conv' && p.op === last[name] && p.convMessage?.cid === cid);
    out[name] = cl.since(marks[name]).filter((p) => !p.i && p.convMessage?.cid === cid);
  }
  return out;
}

test('§3.12 add / join / remove / quit: replies and the notification matrix', async () => {
  const ids = { A: uid('A'), B: uid('B'), C: uid('C'), D: uid('D') };
  const cl = {};
  for (const k of Object.keys(ids)) cl[k] = await session(server, ids[k]);
  const { cid } = await startConv(cl.A, [ids.B]);
  for (const k of ['A', 'B']) await cl[k].next((p) => p.op === 'members_joined' && p.convMessage.cid === cid);

  let lastUdate = '';
  const steps = [
    { name: 'A adds C', by: 'A', op: 'add', m: ['C'], reply: 'added', allowed: ['C'],
      expect: { C: [['joined', 'A'], ['members_joined', 'A', ['C']]], A: [['members_joined', 'A', ['C']]], B: [['members_joined', 'A', ['C']]] } },
    { name: 'D joins itself', by: 'D', op: 'add', m: ['D'], reply: 'added', allowed: ['D'],
      expect: { D: [['joined', 'D'], ['members_joined', 'D', ['D']]], A: [['members_joined', 'D', ['D']]], B: [['members_joined', 'D', ['D']]], C: [['members_joined', 'D', ['D']]] } },
    { name: 'A removes B', by: 'A', op: 'remove', m: ['B'], reply: 'removed', allowed: ['B'],
      expect: { B: [['left', 'A']], A: [['members_left', 'A', ['B']]], C: [['members_left', 'A', ['B']]], D: [['members_left', 'A', ['B']]] } },
    { name: 'C quits', by: 'C', op: 'remove', m: ['C'], reply: 'removed', allowed: ['C'],
      expect: { C: [['left', 'C']], A: [['members_left', 'C', ['C']]], D: [['members_left', 'C', ['C']]] } },
    // an existing member succeeds (allowedPids) but changes nothing and is announced to nobody
    { name: 'A adds B back, one bad id and an existing member', by: 'A', op: 'add', m: ['B', 'x'.repeat(65), 'D'], reply: 'added', allowed: ['B', 'D'],
      failed: [{ code: 4103, reason: 'INVALID_LOGIN', pids: ['x'.repeat(65)] }],
      expect: { B: [['joined', 'A'], ['members_joined', 'A', ['B']]], A: [['members_joined', 'A', ['B']]], D: [['members_joined', 'A', ['B']]] } },
  ];
  const real = (k) => ids[k] ?? k;
  for (const s of steps) {
    const marks = Object.fromEntries(Object.entries(cl).map(([k, c]) => [k, c.mark()]));
    const r = await cl[s.by].request({ cmd: 'conv', op: s.op, convMessage: { cid, m: s.m.map(real) } });
    assert.equal(r.cmd, 'conv', `${s.name}: ${JSON.stringify(r)}`);
    assert.equal(r.op, s.reply, s.name);
    assert.equal(r.convMessage.cid, cid);
    assert.deepEqual(r.convMessage.allowedPids, s.allowed.map(real), `${s.name}: allowedPids`);
    assert.deepEqual(r.convMessage.failedPids, s.failed, `${s.name}: failedPids`);
    const udate = r.convMessage.udate;
    assert.match(udate, ISO_RE);
    assert.ok(udate > lastUdate, `${s.name}: udate advances`);
    lastUdate = udate;
    const last = Object.fromEntries(Object.entries(s.expect).map(([k, v]) => [k, v[v.length - 1][0]]));
    const got = await stepPushes(cl, marks, cid, last);
    for (const [k, want] of Object.entries(s.expect)) {
      assert.deepEqual(got[k].map((p) => p.op), want.map((w) => w[0]), `${s.name}: ops pushed to ${k}`);
      got[k].forEach((p, n) => {
        const [, initBy, m] = want[n];
        assertPush(p, ids[k]);
        assert.equal(p.convMessage.initBy, ids[initBy], `${s.name}: ${k} ${p.op} initBy`);
        assert.equal(p.convMessage.udate, udate, `${s.name}: ${k} ${p.op} udate`);
        assert.deepEqual(p.convMessage.m, m && m.map(real), `${s.name}: ${k} ${p.op} m`);
      });
    }
  }
  assert.equal(await count(cl.A, cid), 3);
  const [row] = await query(cl.A, { objectId: cid });
  assert.deepEqual(row.m, [ids.A, ids.B, ids.D].sort());
  assert.equal(row.updatedAt, lastUdate);
  await assertHealthy(server);
});

// ---------------------------------------------------------------- chat rooms, count, is_member, max_read

test('§3.13 count is the member count for a normal conversation', async () => {
  const alice = await session(server, uid('alice'));
  const { cid } = await startConv(alice, [uid('b'), uid('c'), uid('d')]);
  assert.equal(await count(alice, cid), 4);
});

test('§3.12/§3.13 chat room: join = add self, count = online sessions, members lists them, leave and drop', async () => {
  const [a, b, c] = [uid('alice'), uid('bob'), uid('carol')];
  const alice = await session(server, a);
  const bob = await session(server, b);
  const { cid } = await startConv(alice, [], { transient: true });
  assert.equal(await count(bob, cid), 1);
  const join = await bob.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [b] } });
  assert.equal(join.op, 'added');
  assert.deepEqual(join.convMessage.allowedPids, [b]);
  assert.equal(await count(alice, cid), 2);
  const mem = await alice.request({ cmd: 'conv', op: 'members', convMessage: { cid, limit: 10 } });
  assert.equal(mem.cmd, 'conv');
  assert.deepEqual([...mem.convMessage.m].sort(), [a, b].sort());
  // others cannot be invited into a chat room
  const inv = await bob.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [c] } });
  assert.equal(inv.op, 'added');
  assert.deepEqual(inv.convMessage.allowedPids ?? [], []);
  assert.deepEqual(inv.convMessage.failedPids, [{ code: 4308, reason: 'CONVERSATION_NOT_ALLOWED', pids: [c] }]);
  // quit
  const quit = await bob.request({ cmd: 'conv', op: 'remove', convMessage: { cid, m: [b] } });
  assert.equal(quit.op, 'removed');
  assert.deepEqual(quit.convMessage.allowedPids, [b]);
  assert.equal(await count(alice, cid), 1);
  // rejoin, then the socket drops: that leaves the room
  await bob.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [b] } });
  assert.equal(await count(alice, cid), 2);
  bob.ws.terminate();
  await bob.closed;
  const end = Date.now() + 3000;
  while (await count(alice, cid) !== 1) {
    assert.ok(Date.now() < end, 'a dropped socket leaves the chat room');
    await new Promise((r) => setImmediate(r));
  }
  assert.deepEqual(alice.pending().filter((p) => p.convMessage?.cid === cid), [], 'chat rooms send no membership notifications');
});

test('§3.13 is_member answers per cid', async () => {
  const f = await fixture();
  const r = await f.bob.request({ cmd: 'conv', op: 'is_member', convMessage: { cids: [f.normal, UNKNOWN_CID, f.temp] } });
  assert.equal(r.cmd, 'conv');
  assert.deepEqual(JSON.parse(r.convMessage.results.data), { [f.normal]: true, [UNKNOWN_CID]: false, [f.temp]: true });
  const r2 = await f.mallory.request({ cmd: 'conv', op: 'is_member', convMessage: { cids: [f.normal] } });
  assert.deepEqual(JSON.parse(r2.convMessage.results.data), { [f.normal]: false });
});

test('§3.8 max_read for a member answers op max_read with timestamps', async () => {
  const f = await fixture();
  const r = await f.alice.request({ cmd: 'conv', op: 'max_read', convMessage: { cid: f.normal, queryAllMembers: true } });
  assert.equal(r.cmd, 'conv');
  assert.equal(r.op, 'max_read');
  assert.equal(r.convMessage.cid, f.normal);
  // nothing sent, read or received yet: the timestamps are absent, not 0 (the JS SDK
  // would show "read at 1970")
  for (const k of ['maxReadTimestamp', 'maxAckTimestamp']) assert.equal(r.convMessage[k], undefined, k);
  assert.deepEqual((r.convMessage.maxReadTuples ?? []).map((t) => t.pid).sort(), [f.a, f.b].sort());
});

// ---------------------------------------------------------------- conv query

const queryErrors = [
  { section: '§3.5 4310', name: 'where.data not JSON', where: '{objectId: 1' },
  { section: '§3.5 4310', name: 'unknown top-level $op', where: { $foo: 1 } },
  { section: '§3.5 4310', name: 'unknown $op on a field', where: { name: { $foo: 1 } } },
  { section: '§3.5 4310', name: '$in without an array', where: { objectId: { $in: 'x' } } },
  { section: '§3.5 4310', name: 'sort by m', where: {}, extra: { sort: 'm' } },
];
for (const c of queryErrors) {
  test(`${c.section} conv query fails with CONVERSATION_QUERY_FAILED: ${c.name}`, async () => {
    const alice = await session(server, uid('alice'));
    const cm = { where: { data: typeof c.where === 'string' ? c.where : JSON.stringify(c.where) }, ...c.extra };
    assertError(await alice.request({ cmd: 'conv', op: 'query', i: 70, convMessage: cm }), 70, 4310, 'CONVERSATION_QUERY_FAILED');
    await alice.echo();
    await assertHealthy(server);
  });
}

test('§3.5 conv query {objectId} returns that conversation with its stored fields', async () => {
  const [a, b] = [uid('alice'), uid('bob')];
  const alice = await session(server, a);
  const bob = await session(server, b);
  const attr = { name: 'the room', foo: 'bar', attributes: { x: 1 }, c: 'mallory', objectId: 'forged', tr: true };
  const conv = await startConv(alice, [b], { attr: { data: JSON.stringify(attr) } });
  for (const who of [alice, bob]) {
    const rows = await query(who, { objectId: conv.cid });
    assert.equal(rows.length, 1);
    const [row] = rows;
    assert.equal(row.objectId, conv.cid);
    assert.deepEqual(row.m, [a, b].sort());
    assert.equal(row.c, a, 'creator cannot be forged through attr');
    assert.equal(row.name, 'the room');
    assert.equal(row.foo, 'bar', 'top-level attr keys become conversation fields');
    assert.deepEqual(row.attributes, { x: 1 });
    assert.equal(row.tr, false);
    assert.equal(row.unique, false);
    assert.equal(row.createdAt, conv.cdate);
    assert.equal(row.updatedAt, conv.cdate);
    assert.equal(row.lm, undefined, 'no message yet');
  }
  const compact = await query(alice, { objectId: conv.cid }, { flag: 1 });
  assert.equal(compact[0].m, undefined, 'flag 1 (compact) omits m');
  assert.deepEqual(await query(alice, { objectId: UNKNOWN_CID }), []);
});

test('§3.5 an empty where means "conversations whose m contains me"', async () => {
  const [a, b, o] = [uid('alice'), uid('bob'), uid('outsider')];
  const alice = await session(server, a);
  const outsider = await session(server, o);
  const c1 = await startConv(alice, [b]);
  const c2 = await startConv(alice, [uid('x')]);
  for (const where of [undefined, {}]) {
    assert.deepEqual((await query(alice, where)).map((r) => r.objectId).sort(), [c1.cid, c2.cid].sort(), `where ${JSON.stringify(where)}`);
    assert.deepEqual(await query(outsider, where), []);
  }
  const inq = await query(outsider, { objectId: { $in: [c1.cid, c2.cid] } }, { limit: 999 });
  assert.equal(inq.length, 2, 'an explicit where is not limited to my conversations');
});

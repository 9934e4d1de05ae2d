// Issue #3 with hand-built frames: conversation management (protocol.md §3.12–§3.17, §6,
// §9). For every operation: the reply, the pushes each client gets (initiator, target, a
// third member, the initiator's second device where it matters) in order, and an offline
// member that must find nothing queued when it logs in; then every error code.
//   1 membership: invite / join / kick / quit, allowedPids/failedPids, the 500 limit, count
//   2 conv update: dotted paths, custom fields, storage operators, attrModified, pushes
//   3 mute / unmute and `mu`
//   4 member roles, member_info_changed, the member_roles option (4320, 4324), the
//     _ConversationMemberInfo REST read
//   5 shut-up (add/remove/query/check_shutup, pushes, 4563)
//   6 blacklists both ways (pushes, query, check, 4548)
//  11 session query, is_member
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import {
  ISO_RE, assertError, assertHealthy, closeAll, session, startConv, sendMsg, uid, withServer, connect, login,
} from '../lib/proto-client.mjs';
import {
  group, convPushes, nextConv, assertNothingQueued, assertOps, row, count, ok,
} from '../lib/issue3-util.mjs';

let server;
before(async () => { server = await startServer(); });
afterEach(() => closeAll(server));
after(async () => { await server.stop(); });

const UNKNOWN_CID = '0123456789abcdef01234567';
const UNKNOWN_TMP = '_tmp:0123456789abcdef01234567';
const TEXT = (t) => JSON.stringify({ _lctype: -1, _lctext: t });

/** Marks on every client, to read "what did this step push" later. */
const marks = (cls) => Object.fromEntries(Object.entries(cls).map(([k, c]) => [k, c.mark()]));

/**
 * For each client name in `expect` ({name: [[op, initBy, m?], …]}), waits for the last op
 * and asserts the exact pushes about cid since its mark; clients listed in `none` must have
 * got nothing (checked with an echo barrier after the others have theirs).
 */
async function expectStep(what, cls, ids, mk, cid, expect, none = [], extra = {}) {
  for (const [k, want] of Object.entries(expect)) {
    const last = want[want.length - 1];
    await nextConv(cls[k], last[0], cid, last[3] || 'conv', undefined, mk[k]);
    const got = convPushes(cls[k], mk[k], cid);
    assertOps(got, want.map((w) => `${w[3] || 'conv'}/${w[0]}`), ids[k] ?? cls[k].peer, `${what}: ${k}`);
    got.forEach((p, n) => {
      const [, initBy, m] = want[n];
      assert.equal(p.convMessage.initBy, ids[initBy], `${what}: ${k} ${p.op} initBy`);
      assert.deepEqual(p.convMessage.m, m && m.map((x) => ids[x] ?? x), `${what}: ${k} ${p.op} m`);
      if (extra.udate) assert.equal(p.convMessage.udate, extra.udate, `${what}: ${k} ${p.op} udate`);
      assert.equal(p.notificationType, 1, `${what}: ${k} ${p.op} notificationType`);
      assert.ok(p.serverTs > 0, `${what}: ${k} ${p.op} serverTs`);
    });
  }
  for (const k of none) {
    const got = (await cls[k].quiet(mk[k])).filter((p) => !p.i && p.convMessage?.cid === cid);
    assert.deepEqual(got, [], `${what}: ${k} must get nothing`);
  }
}

// ================================================================ 1. membership

test('§3.12 invite / join / kick / quit: reply, notification matrix, count, and nothing queued for an offline member', async () => {
  const g = await group(server);
  const ids = { ...g.ids, E: uid('E'), F: uid('F') };
  const cls = { A: g.A, B: g.B, C: g.C, E: await session(server, ids.E), F: await session(server, ids.F) };
  const { cid } = g;
  let lastUdate = g.cdate;
  const steps = [
    { what: 'A invites E', by: 'A', op: 'add', m: ['E'], reply: 'added', allowed: ['E'], count: 5,
      expect: { E: [['joined', 'A'], ['members_joined', 'A', ['E']]], A: [['members_joined', 'A', ['E']]], B: [['members_joined', 'A', ['E']]], C: [['members_joined', 'A', ['E']]] },
      none: ['F'] },
    { what: 'F joins', by: 'F', op: 'add', m: ['F'], reply: 'added', allowed: ['F'], count: 6,
      expect: { F: [['joined', 'F'], ['members_joined', 'F', ['F']]], A: [['members_joined', 'F', ['F']]], B: [['members_joined', 'F', ['F']]], C: [['members_joined', 'F', ['F']]], E: [['members_joined', 'F', ['F']]] } },
    { what: 'A kicks B', by: 'A', op: 'remove', m: ['B'], reply: 'removed', allowed: ['B'], count: 5,
      expect: { B: [['left', 'A']], A: [['members_left', 'A', ['B']]], C: [['members_left', 'A', ['B']]], E: [['members_left', 'A', ['B']]], F: [['members_left', 'A', ['B']]] } },
    { what: 'C quits', by: 'C', op: 'remove', m: ['C'], reply: 'removed', allowed: ['C'], count: 4,
      expect: { C: [['left', 'C']], A: [['members_left', 'C', ['C']]], E: [['members_left', 'C', ['C']]], F: [['members_left', 'C', ['C']]] },
      none: ['B'] },
    { what: 'A re-invites B with an invalid id and an existing member', by: 'A', op: 'add', m: ['B', 'x'.repeat(65), 'E'], reply: 'added', allowed: ['B', 'E'], count: 5,
      failed: [{ code: 4103, reason: 'INVALID_LOGIN', pids: ['x'.repeat(65)] }],
      expect: { B: [['joined', 'A'], ['members_joined', 'A', ['B']]], A: [['members_joined', 'A', ['B']]], E: [['members_joined', 'A', ['B']]], F: [['members_joined', 'A', ['B']]] },
      none: ['C'] },
    { what: 'A removes B and a non-member', by: 'A', op: 'remove', m: ['B', 'nobody-here'], reply: 'removed', allowed: ['B', 'nobody-here'], count: 4,
      expect: { B: [['left', 'A']], A: [['members_left', 'A', ['B']]], E: [['members_left', 'A', ['B']]], F: [['members_left', 'A', ['B']]] },
      none: ['C'] },
  ];
  const real = (k) => ids[k] ?? k;
  for (const s of steps) {
    const mk = marks(cls);
    const r = await cls[s.by].request({ cmd: 'conv', op: s.op, convMessage: { cid, m: s.m.map(real) } });
    assert.equal(r.cmd, 'conv', `${s.what}: ${JSON.stringify(r)}`);
    assert.equal(r.op, s.reply, s.what);
    assert.equal(r.convMessage.cid, cid);
    assert.deepEqual(r.convMessage.allowedPids, s.allowed.map(real), `${s.what}: allowedPids`);
    assert.deepEqual(r.convMessage.failedPids, s.failed, `${s.what}: failedPids`);
    assert.match(r.convMessage.udate, ISO_RE);
    assert.ok(r.convMessage.udate > lastUdate, `${s.what}: udate advances`);
    lastUdate = r.convMessage.udate;
    await expectStep(s.what, cls, ids, mk, cid, s.expect, s.none || [], { udate: r.convMessage.udate });
    assert.equal(await count(cls.A, cid), s.count, `${s.what}: count`);
  }
  const D = await assertNothingQueued(server, ids.D, cid);
  const rw = await row(D, cid);
  assert.deepEqual(rw.m, [ids.A, ids.D, ids.E, ids.F].sort());
  assert.equal(rw.updatedAt, lastUdate, 'updatedAt = the last udate');
  await assertHealthy(server);
});

test('§3.12/§9.1 500-member limit: partial add → failedPids 4304, join of a full conversation fails, room after a removal', async () => {
  const a = uid('alice');
  const alice = await session(server, a);
  const others = Array.from({ length: 498 }, (_, k) => `${a}-m${k}`);
  const { cid } = await startConv(alice, others); // 499 members
  assert.equal(await count(alice, cid), 499);
  const [x, y, z] = [uid('x'), uid('y'), uid('z')];
  let r = await ok(alice, { cmd: 'conv', op: 'add', convMessage: { cid, m: [x, y] } }, 'added');
  assert.deepEqual(r.convMessage.allowedPids, [x]);
  assert.deepEqual(r.convMessage.failedPids, [{ code: 4304, reason: 'CONVERSATION_FULL', pids: [y] }]);
  assert.equal(await count(alice, cid), 500);
  // an existing member succeeds even when full; a newcomer does not
  r = await ok(alice, { cmd: 'conv', op: 'add', convMessage: { cid, m: [others[0], z] } }, 'added');
  assert.deepEqual(r.convMessage.allowedPids, [others[0]]);
  assert.deepEqual(r.convMessage.failedPids, [{ code: 4304, reason: 'CONVERSATION_FULL', pids: [z] }]);
  // z joining by itself: the same partial reply, and z is told nothing
  const zc = await session(server, z);
  const zm = zc.mark();
  r = await ok(zc, { cmd: 'conv', op: 'add', convMessage: { cid, m: [z] } }, 'added');
  assert.deepEqual(r.convMessage.allowedPids ?? [], []);
  assert.deepEqual(r.convMessage.failedPids, [{ code: 4304, reason: 'CONVERSATION_FULL', pids: [z] }]);
  assert.deepEqual((await zc.quiet(zm)).filter((p) => !p.i), [], 'a failed join notifies nobody');
  assert.equal(await count(alice, cid), 500);
  await ok(alice, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [others[1]] } }, 'removed');
  r = await ok(zc, { cmd: 'conv', op: 'add', convMessage: { cid, m: [z] } }, 'added');
  assert.deepEqual(r.convMessage.allowedPids, [z]);
  assert.equal(r.convMessage.failedPids, undefined);
  await nextConv(zc, 'joined', cid);
  assert.equal(await count(alice, cid), 500);
});

// ================================================================ 2. conv update

const FIX_ATTR = { name: 'n0', color: 'red', size: 3, tags: ['a'], attr: { topic: 't0', lang: 'en' }, extra: { keep: 1 } };

test('§3.14 update by a member: dotted path, custom fields, operators; reply attrModified+udate; updated push to the others and the updater\'s other device; offline member gets nothing', async () => {
  const g = await group(server, { attr: FIX_ATTR });
  const { cid, ids } = g;
  const B2 = await session(server, ids.B); // B's second device
  const cls = { A: g.A, B: g.B, C: g.C, B2 };
  const mk = marks(cls);
  const attr = {
    'attr.topic': 't1',
    name: 'n1',
    size: { __op: 'Increment', amount: 2 },
    tags: { __op: 'AddUnique', objects: ['a', 'b'] },
    extra: { __op: 'Delete' },
    fresh: { deep: [1, 2] },
  };
  const data = JSON.stringify(attr);
  const r = await g.B.request({ cmd: 'conv', op: 'update', i: 41, convMessage: { cid, attr: { data } } });
  assert.equal(r.cmd, 'conv', JSON.stringify(r));
  assert.equal(r.op, 'updated');
  assert.equal(r.i, 41);
  assert.equal(r.convMessage.cid, cid);
  const { udate } = r.convMessage;
  assert.match(udate, ISO_RE);
  assert.ok(udate > g.cdate);
  const mod = JSON.parse(r.convMessage.attrModified.data);
  const { extra: deleted, ...rest } = mod;
  assert.deepEqual(rest, { attr: { topic: 't1' }, name: 'n1', size: 5, tags: ['a', 'b'], fresh: { deep: [1, 2] } },
    'attrModified: resulting values of the touched keys, nested by key path');
  assert.ok(deleted === null || deleted === undefined, `a deleted key is null or absent in attrModified: ${deleted}`);
  for (const k of ['A', 'C', 'B2']) {
    const p = await nextConv(cls[k], 'updated', cid);
    const got = convPushes(cls[k], mk[k], cid);
    assertOps(got, ['conv/updated'], k === 'B2' ? ids.B : ids[k], `update: ${k}`);
    assert.equal(p.convMessage.attr.data, data, `${k}: attr is the request JSON, dotted keys and all`);
    assert.deepEqual(JSON.parse(p.convMessage.attrModified.data), mod, `${k}: attrModified as in the reply`);
    assert.equal(p.convMessage.initBy, ids.B);
    assert.equal(p.convMessage.udate, udate);
    assert.equal(p.notificationType, 1);
  }
  assert.deepEqual((await g.B.quiet(mk.B)).filter((p) => !p.i), [], 'the updating session gets only its reply');
  // stored result, seen by another member: untouched keys and siblings survive
  const rw = await row(g.C, cid);
  assert.equal(rw.name, 'n1');
  assert.equal(rw.color, 'red', 'untouched custom field survives');
  assert.deepEqual(rw.attr, { topic: 't1', lang: 'en' }, 'attr.topic set, attr.lang untouched');
  assert.equal(rw.size, 5);
  assert.deepEqual(rw.tags, ['a', 'b']);
  assert.equal('extra' in rw, false, 'Delete removes the field');
  assert.deepEqual(rw.fresh, { deep: [1, 2] });
  assert.equal(rw.updatedAt, udate);
  assert.deepEqual(rw.m, [ids.A, ids.B, ids.C, ids.D].sort(), 'members untouched');
  assert.equal(rw.c, ids.A, 'creator untouched');
  await assertNothingQueued(server, ids.D, cid);
});

test('§3.14 storage operators Add, Remove, Increment (float), Delete on a dotted path', async () => {
  const g = await group(server, { attr: FIX_ATTR });
  const { cid } = g;
  const steps = [
    [{ tags: { __op: 'Add', objects: ['a', 'c'] } }, { tags: ['a', 'a', 'c'] }],
    [{ tags: { __op: 'Remove', objects: ['a'] } }, { tags: ['c'] }],
    [{ size: { __op: 'Increment', amount: 0.5 } }, { size: 3.5 }],
    [{ counter: { __op: 'Increment', amount: 4 } }, { counter: 4 }],
    [{ list: { __op: 'AddUnique', objects: [1, 1, 2] } }, { list: [1, 2] }],
    [{ 'attr.lang': { __op: 'Delete' } }, null],
    [{ 'attr.nested.deeper': true }, { attr: { nested: { deeper: true } } }],
  ];
  for (const [attr, want] of steps) {
    const r = await ok(g.C, { cmd: 'conv', op: 'update', convMessage: { cid, attr: { data: JSON.stringify(attr) } } }, 'updated');
    if (want) assert.deepEqual(JSON.parse(r.convMessage.attrModified.data), want, JSON.stringify(attr));
  }
  const rw = await row(g.A, cid);
  assert.deepEqual(rw.tags, ['c']);
  assert.equal(rw.size, 3.5);
  assert.equal(rw.counter, 4);
  assert.deepEqual(rw.list, [1, 2]);
  assert.deepEqual(rw.attr, { topic: 't0', nested: { deeper: true } }, 'attr.lang deleted, attr.topic kept');
  assert.equal(rw.color, 'red');
});

test('§3.14 three custom attributes, one changed: the other two unchanged in a second client\'s query', async () => {
  const g = await group(server, { attr: { name: 'three', first: 'one', second: { v: 2 }, third: [3] } });
  const before = await row(g.B, g.cid);
  const r = await ok(g.A, { cmd: 'conv', op: 'update', convMessage: { cid: g.cid, attr: { data: '{"second":{"v":22}}' } } }, 'updated');
  assert.deepEqual(JSON.parse(r.convMessage.attrModified.data), { second: { v: 22 } });
  await nextConv(g.B, 'updated', g.cid);
  const after = await row(g.B, g.cid);
  assert.equal(after.first, 'one');
  assert.deepEqual(after.third, [3]);
  assert.deepEqual(after.second, { v: 22 });
  assert.equal(after.name, 'three');
  const strip = ({ second, updatedAt, ...o }) => o;
  assert.deepEqual(strip(after), strip(before), 'nothing else changed');
});

test('§3.14 any member may rename; the creator and the third member are told', async () => {
  const g = await group(server, { attr: { name: 'old' } });
  const mk = marks({ A: g.A, B: g.B });
  await ok(g.C, { cmd: 'conv', op: 'update', convMessage: { cid: g.cid, attr: { data: '{"name":"new"}' } } }, 'updated');
  for (const [k, cl] of [['A', g.A], ['B', g.B]]) {
    const p = await nextConv(cl, 'updated', g.cid);
    assert.equal(p.convMessage.attr.data, '{"name":"new"}');
    assert.equal(p.convMessage.initBy, g.ids.C);
    assertOps(convPushes(cl, mk[k], g.cid), ['conv/updated'], g.ids[k], 'rename');
  }
  assert.equal((await row(g.A, g.cid)).name, 'new');
});

const updateErrors = [
  { name: 'by a non-member', who: 'M', conv: (f) => ({ cid: f.cid, attr: { data: '{"name":"x"}' } }), code: 4309, reason: 'CONVERSATION_UPDATE_REJECTED' },
  { name: 'by a member who was kicked', who: 'K', conv: (f) => ({ cid: f.cid, attr: { data: '{"name":"x"}' } }), code: 4309, reason: 'CONVERSATION_UPDATE_REJECTED' },
  { name: 'of an unknown conversation', conv: () => ({ cid: UNKNOWN_CID, attr: { data: '{"name":"x"}' } }), code: 4303, reason: 'CONVERSATION_NOT_FOUND' },
  { name: 'without cid', conv: () => ({ attr: { data: '{"name":"x"}' } }), code: 4303, reason: 'CONVERSATION_NOT_FOUND' },
  { name: 'of an unknown _tmp: id', conv: () => ({ cid: UNKNOWN_TMP, attr: { data: '{"name":"x"}' } }), code: 4323, reason: '' /* empty: the SDKs show their own text */ },
  { name: 'of a temporary conversation', conv: (f) => ({ cid: f.temp, attr: { data: '{"name":"x"}' } }), code: 4307, reason: 'CONVERSATION_READ_ONLY' },
  { name: 'with attr a JSON array', conv: (f) => ({ cid: f.cid, attr: { data: '["name"]' } }), code: 4306, reason: 'CONVERSATION_UPDATE_FAILED' },
  { name: 'with attr not JSON', conv: (f) => ({ cid: f.cid, attr: { data: '{name' } }), code: 4306, reason: 'CONVERSATION_UPDATE_FAILED' },
  { name: 'of m (members change only through add/remove)', conv: (f) => ({ cid: f.cid, attr: { data: '{"m":["x"]}' } }), code: 4306, reason: 'CONVERSATION_UPDATE_FAILED' },
  { name: 'of the creator c', conv: (f) => ({ cid: f.cid, attr: { data: '{"c":"x"}' } }), code: 4306, reason: 'CONVERSATION_UPDATE_FAILED' },
  { name: 'Increment on a string field', conv: (f) => ({ cid: f.cid, attr: { data: '{"name":{"__op":"Increment","amount":1}}' } }), code: 4306, reason: 'CONVERSATION_UPDATE_FAILED' },
  { name: 'an unknown operator', conv: (f) => ({ cid: f.cid, attr: { data: '{"x":{"__op":"Explode"}}' } }), code: 4306, reason: 'CONVERSATION_UPDATE_FAILED' },
  { name: 'a good key with a bad one (all or nothing)', conv: (f) => ({ cid: f.cid, attr: { data: '{"name":"changed","mu":[]}' } }), code: 4306, reason: 'CONVERSATION_UPDATE_FAILED' },
];

for (const c of updateErrors) {
  test(`§3.14 conv update ${c.name} → ${c.code} ${c.reason}; nothing changes, nobody is told`, async () => {
    const g = await group(server, { attr: { name: 'keep' } });
    const f = { cid: g.cid, temp: (await startConv(g.A, [g.ids.B], { tempConv: true })).cid };
    const M = await session(server, uid('M'));
    const K = await session(server, uid('K'));
    await ok(g.A, { cmd: 'conv', op: 'add', convMessage: { cid: g.cid, m: [K.peer] } }, 'added');
    await ok(g.A, { cmd: 'conv', op: 'remove', convMessage: { cid: g.cid, m: [K.peer] } }, 'removed');
    await nextConv(g.B, 'members_left', g.cid);
    await nextConv(g.A, 'members_left', g.cid);
    await nextConv(K, 'left', g.cid);
    const who = { M, K }[c.who] || g.A;
    const before = await row(g.B, g.cid);
    const mk = marks({ A: g.A, B: g.B, who });
    assertError(await who.request({ cmd: 'conv', op: 'update', i: 77, convMessage: c.conv(f) }), 77, c.code, c.reason);
    for (const [k, cl] of [['A', g.A], ['B', g.B], ['who', who]]) {
      const got = (await cl.quiet(mk[k])).filter((p) => !p.i);
      assert.deepEqual(got, [], `${k}: no pushes after a failed update`);
    }
    assert.deepEqual(await row(g.B, g.cid), before, 'the conversation is unchanged');
    await assertHealthy(server);
  });
}

// ================================================================ 3. mute / unmute

test('§3.14 mute / unmute: reply conv/updated {cid, udate}, mu in queries, no pushes to anyone', async () => {
  const g = await group(server);
  const { cid, ids } = g;
  const mk = marks({ A: g.A, B: g.B, C: g.C });
  const r = await g.B.request({ cmd: 'conv', op: 'mute', i: 9, convMessage: { cid } });
  assert.equal(r.cmd, 'conv');
  assert.equal(r.op, 'updated');
  assert.equal(r.i, 9);
  assert.equal(r.convMessage.cid, cid);
  assert.match(r.convMessage.udate, ISO_RE);
  assert.deepEqual((await row(g.A, cid)).mu, [ids.B]);
  await ok(g.C, { cmd: 'conv', op: 'mute', convMessage: { cid } }, 'updated');
  await ok(g.B, { cmd: 'conv', op: 'mute', convMessage: { cid } }, 'updated'); // twice: still once in mu
  assert.deepEqual([...(await row(g.A, cid)).mu].sort(), [ids.B, ids.C].sort());
  const q = await g.B.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ mu: ids.B }) } } });
  assert.deepEqual(JSON.parse(q.convMessage.results.data).map((x) => x.objectId), [cid], 'mu is queryable');
  await ok(g.B, { cmd: 'conv', op: 'unmute', convMessage: { cid } }, 'updated');
  assert.deepEqual((await row(g.A, cid)).mu, [ids.C]);
  for (const [k, cl] of [['A', g.A], ['B', g.B], ['C', g.C]]) {
    assert.deepEqual((await cl.quiet(mk[k])).filter((p) => !p.i), [], `${k}: mute concerns only the requester`);
  }
  await assertNothingQueued(server, ids.D, cid);
});

const muteErrors = [
  { name: 'mute by a non-member', op: 'mute', who: 'M', cid: (f) => f.cid, code: 4309, reason: 'CONVERSATION_UPDATE_REJECTED' },
  { name: 'unmute by a non-member', op: 'unmute', who: 'M', cid: (f) => f.cid, code: 4309, reason: 'CONVERSATION_UPDATE_REJECTED' },
  { name: 'mute of an unknown conversation', op: 'mute', cid: () => UNKNOWN_CID, code: 4303, reason: 'CONVERSATION_NOT_FOUND' },
  { name: 'mute of a chat room', op: 'mute', cid: (f) => f.room, code: 4314, reason: 'NORMAL_CONVERSATION_REQUIRED' },
  { name: 'mute of a temporary conversation', op: 'mute', cid: (f) => f.temp, code: 4307, reason: 'CONVERSATION_READ_ONLY' },
];
for (const c of muteErrors) {
  test(`§3.14 ${c.name} → ${c.code} ${c.reason}`, async () => {
    const a = uid('A');
    const A = await session(server, a);
    const M = await session(server, uid('M'));
    const f = {
      cid: (await startConv(A, [uid('B')])).cid,
      room: (await startConv(A, [], { transient: true })).cid,
      temp: (await startConv(A, [uid('B')], { tempConv: true })).cid,
    };
    const who = c.who === 'M' ? M : A;
    assertError(await who.request({ cmd: 'conv', op: c.op, i: 12, convMessage: { cid: c.cid(f) } }), 12, c.code, c.reason);
    assert.deepEqual((await row(A, f.cid)).mu, []);
  });
}

// ================================================================ 4. roles

async function setRole(client, cid, pid, role, i) {
  return client.request({ cmd: 'conv', op: 'member_info_update', ...(i ? { i } : {}), convMessage: { cid, targetClientId: pid, info: { pid, role } } });
}

async function memberInfos(srv, cid, client, st) {
  const url = `${srv.httpUrl}/1.1/classes/_ConversationMemberInfo?where=${encodeURIComponent(JSON.stringify({ cid }))}&client_id=${encodeURIComponent(client)}`;
  const headers = { 'X-LC-Id': srv.appId, 'X-LC-Key': srv.appKey };
  if (st) headers['X-LC-IM-Session-Token'] = st;
  const res = await fetch(url, { headers });
  return { status: res.status, body: await res.json() };
}

test('§3.15 member_info_update by the owner: reply member_info_updated, member_info_changed to every member, REST read, demotion', async () => {
  const g = await group(server);
  const { cid, ids } = g;
  const A2 = await session(server, ids.A);
  const cls = { A: g.A, B: g.B, C: g.C, A2 };
  let mk = marks(cls);
  const r = await setRole(g.A, cid, ids.B, 'Manager', 21);
  assert.equal(r.cmd, 'conv', JSON.stringify(r));
  assert.equal(r.op, 'member_info_updated');
  assert.equal(r.i, 21);
  for (const k of ['A', 'B', 'C', 'A2']) {
    const p = await nextConv(cls[k], 'member_info_changed', cid);
    assertOps(convPushes(cls[k], mk[k], cid), ['conv/member_info_changed'], k === 'A2' ? ids.A : ids[k], `promotion: ${k}`);
    assert.equal(p.convMessage.initBy, ids.A);
    assert.deepEqual({ pid: p.convMessage.info.pid, role: p.convMessage.info.role }, { pid: ids.B, role: 'Manager' });
    assert.equal(p.notificationType, 1);
  }
  // the JS SDK's getAllMemberInfo: GET /1.1/classes/_ConversationMemberInfo
  const st = g.C.openReply.sessionMessage.st;
  const res = await memberInfos(server, cid, ids.C, st);
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const byClient = Object.fromEntries(res.body.results.map((x) => [x.clientId, x]));
  assert.equal(byClient[ids.B]?.role, 'Manager', JSON.stringify(res.body));
  assert.equal(byClient[ids.B].cid, cid);
  assert.match(byClient[ids.B].objectId, /^\S+$/);
  for (const x of res.body.results) assert.ok(['Owner', 'Manager', 'Member'].includes(x.role), JSON.stringify(x));
  assert.ok(!byClient[ids.C] || byClient[ids.C].role === 'Member', 'C is a plain member');
  // demotion
  mk = marks(cls);
  const d = await setRole(g.A, cid, ids.B, 'Member');
  assert.equal(d.op, 'member_info_updated');
  for (const k of ['A', 'B', 'C', 'A2']) {
    const p = await nextConv(cls[k], 'member_info_changed', cid);
    assert.equal(p.convMessage.info.role, 'Member');
    assert.equal(p.convMessage.info.pid, ids.B);
  }
  const res2 = await memberInfos(server, cid, ids.C, st);
  const b2 = res2.body.results.find((x) => x.clientId === ids.B);
  assert.ok(!b2 || b2.role === 'Member', `B demoted: ${JSON.stringify(res2.body)}`);
  await assertNothingQueued(server, ids.D, cid);
});

test('§3.15 _ConversationMemberInfo REST: 401 without a valid session token, 403 for a non-member, empty for an unknown cid', async () => {
  const g = await group(server);
  const M = await session(server, uid('M'));
  assert.equal((await memberInfos(server, g.cid, g.ids.B)).status, 401);
  assert.equal((await memberInfos(server, g.cid, g.ids.B, 'forged-token')).status, 401);
  assert.equal((await memberInfos(server, g.cid, g.ids.B, g.C.openReply.sessionMessage.st)).status, 401, 'C\'s token does not act for B');
  assert.equal((await memberInfos(server, g.cid, M.peer, M.openReply.sessionMessage.st)).status, 403);
  const unknown = await memberInfos(server, UNKNOWN_CID, g.ids.B, g.B.openReply.sessionMessage.st);
  assert.equal(unknown.status, 200);
  assert.deepEqual(unknown.body, { results: [] });
});

const roleErrors = [
  { name: 'a member promoting another', who: 'B', target: 'C', role: 'Manager', code: 4320, reason: 'CONVERSATION_OPERATION_UNAUTHORIZED' },
  { name: 'a member promoting itself', who: 'C', target: 'C', role: 'Manager', code: 4320, reason: 'CONVERSATION_OPERATION_UNAUTHORIZED' },
  { name: 'a manager promoting a member (only the owner changes roles)', who: 'B', target: 'C', role: 'Manager', manager: true, code: 4320, reason: 'CONVERSATION_OPERATION_UNAUTHORIZED' },
  { name: 'a manager demoting the owner', who: 'B', target: 'A', role: 'Member', manager: true, code: 4320, reason: 'CONVERSATION_OPERATION_UNAUTHORIZED' },
  { name: 'the owner promoting to Owner', who: 'A', target: 'C', role: 'Owner', code: 4320, reason: 'CONVERSATION_OPERATION_UNAUTHORIZED' },
  { name: 'the owner demoting itself', who: 'A', target: 'A', role: 'Member', code: 4320, reason: 'CONVERSATION_OPERATION_UNAUTHORIZED' },
  { name: 'an unknown role', who: 'A', target: 'C', role: 'Admin', code: 4321, reason: 'UNKNOWN_CONVERSATION_ROLE' },
  { name: 'a target that is not a member', who: 'A', target: 'X', role: 'Manager', code: 4317, reason: 'CONVERSATION_MEMBERSHIP_REQUIRED' },
  { name: 'a non-member', who: 'M', target: 'C', role: 'Manager', code: 4320, reason: 'CONVERSATION_OPERATION_UNAUTHORIZED' },
  { name: 'an unknown conversation', who: 'A', target: 'C', role: 'Manager', cid: UNKNOWN_CID, code: 4303, reason: 'CONVERSATION_NOT_FOUND' },
];
for (const c of roleErrors) {
  test(`§3.15 member_info_update by ${c.name} → ${c.code} ${c.reason}; nobody is told`, async () => {
    const g = await group(server);
    const M = await session(server, uid('M'));
    const ids = { ...g.ids, M: M.peer, X: uid('X') };
    const cls = { A: g.A, B: g.B, C: g.C, M };
    if (c.manager) {
      assert.equal((await setRole(g.A, g.cid, ids.B, 'Manager')).op, 'member_info_updated');
      for (const k of ['A', 'B', 'C']) await nextConv(cls[k], 'member_info_changed', g.cid);
    }
    const mk = marks(cls);
    assertError(await setRole(cls[c.who], c.cid || g.cid, ids[c.target], c.role, 33), 33, c.code, c.reason);
    for (const k of ['A', 'B', 'C']) {
      assert.deepEqual((await cls[k].quiet(mk[k])).filter((p) => !p.i), [], `${k}: nothing pushed`);
    }
  });
}

test('§3.15 a manager who leaves the conversation loses its powers (ex-manager → 4320 on shut-up and block)', async () => {
  const g = await group(server);
  const { cid, ids } = g;
  assert.equal((await setRole(g.A, cid, ids.B, 'Manager')).op, 'member_info_updated');
  await ok(g.B, { cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [ids.C] } }, 'shutup_added');
  await ok(g.B, { cmd: 'conv', op: 'remove_shutup', convMessage: { cid, m: [ids.C] } }, 'shutup_removed');
  await ok(g.B, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [ids.B] } }, 'removed');
  assertError(await g.B.request({ cmd: 'conv', op: 'add_shutup', i: 5, convMessage: { cid, m: [ids.C] } }), 5, 4320, 'CONVERSATION_OPERATION_UNAUTHORIZED');
  assertError(await g.B.request({ cmd: 'blacklist', op: 'block', i: 6, blacklistMessage: { srcCid: cid, toPids: [ids.C] } }), 6, 4320, 'CONVERSATION_OPERATION_UNAUTHORIZED');
  assert.equal(await count(g.A, cid), 3, 'C is still a member');
});

test('§3.12/§3.15 member_roles on: only owner/managers add or remove others (4320); the owner cannot be removed or quit (4324 in failedPids)', async () => {
  await withServer({ TERN_MEMBER_ROLES: '1' }, async (srv) => {
    const g = await group(srv);
    const { cid, ids } = g;
    const [x, y] = [uid('x'), uid('y')];
    // a plain member adding or removing others
    assertError(await g.C.request({ cmd: 'conv', op: 'add', i: 3, convMessage: { cid, m: [x] } }), 3, 4320, 'CONVERSATION_OPERATION_UNAUTHORIZED');
    assertError(await g.C.request({ cmd: 'conv', op: 'remove', i: 4, convMessage: { cid, m: [ids.B] } }), 4, 4320, 'CONVERSATION_OPERATION_UNAUTHORIZED');
    assert.equal(await count(g.A, cid), 4);
    // members may still join and quit by themselves
    const X = await session(srv, x);
    await ok(X, { cmd: 'conv', op: 'add', convMessage: { cid, m: [x] } }, 'added');
    await ok(X, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [x] } }, 'removed');
    // a manager may
    assert.equal((await setRole(g.A, cid, ids.B, 'Manager')).op, 'member_info_updated');
    let r = await ok(g.B, { cmd: 'conv', op: 'add', convMessage: { cid, m: [y] } }, 'added');
    assert.deepEqual(r.convMessage.allowedPids, [y]);
    await g.A.next((p) => p.op === 'members_joined' && p.convMessage?.m?.includes(y));
    // removing the owner: the others go, the owner stays with 4324
    const mk = marks({ A: g.A, C: g.C });
    r = await ok(g.B, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [ids.A, y] } }, 'removed');
    assert.deepEqual(r.convMessage.allowedPids, [y]);
    assert.deepEqual(r.convMessage.failedPids, [{ code: 4324, reason: 'CONVERSATION_NEED_OWNER', pids: [ids.A] }]);
    await nextConv(g.A, 'members_left', cid, 'conv', undefined, mk.A);
    assertOps(convPushes(g.A, mk.A, cid), ['conv/members_left'], ids.A, 'owner is not told it left');
    // the owner quitting (the spec's own example: owner removing [owner, x])
    r = await ok(g.A, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [ids.A, ids.C] } }, 'removed');
    assert.deepEqual(r.convMessage.allowedPids, [ids.C]);
    assert.deepEqual(r.convMessage.failedPids, [{ code: 4324, reason: 'CONVERSATION_NEED_OWNER', pids: [ids.A] }]);
    r = await ok(g.A, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [ids.A] } }, 'removed');
    assert.deepEqual(r.convMessage.allowedPids ?? [], []);
    assert.deepEqual(r.convMessage.failedPids, [{ code: 4324, reason: 'CONVERSATION_NEED_OWNER', pids: [ids.A] }]);
    assert.deepEqual((await row(g.A, cid)).m, [ids.A, ids.B, ids.D].sort());
  });
});

// ================================================================ 5. shut-up

test('§3.16 add_shutup / remove_shutup: reply, shutuped then members_shutuped to the target, members_shutuped to the rest, 4563 while muted', async () => {
  const g = await group(server);
  const { cid, ids } = g;
  const cls = { A: g.A, B: g.B, C: g.C };
  let mk = marks(cls);
  const r = await g.A.request({ cmd: 'conv', op: 'add_shutup', i: 50, convMessage: { cid, m: [ids.B, 'y'.repeat(65)] } });
  assert.equal(r.cmd, 'conv', JSON.stringify(r));
  assert.equal(r.op, 'shutup_added');
  assert.equal(r.i, 50);
  assert.equal(r.convMessage.cid, cid);
  assert.deepEqual(r.convMessage.allowedPids, [ids.B]);
  assert.deepEqual(r.convMessage.failedPids, [{ code: 4103, reason: 'INVALID_LOGIN', pids: ['y'.repeat(65)] }]);
  await expectStep('shut up B', cls, ids, mk, cid, {
    B: [['shutuped', 'A'], ['members_shutuped', 'A', ['B']]],
    A: [['members_shutuped', 'A', ['B']]],
    C: [['members_shutuped', 'A', ['B']]],
  });
  // B cannot send; C can; B's failed send reaches nobody
  mk = marks(cls);
  assertError(await g.B.request({ cmd: 'direct', i: 51, directMessage: { cid, msg: TEXT('muted?') } }), 51, 4563, 'SILIENCED');
  assertError(await g.B.request({ cmd: 'direct', i: 52, directMessage: { cid, msg: TEXT('typing'), transient: true } }), 52, 4563, 'SILIENCED');
  await sendMsg(g.C, cid, TEXT('still here'));
  await g.A.nextCmd('direct');
  for (const [k, cl] of [['A', g.A], ['C', g.C]]) {
    const got = (await cl.quiet(mk[k])).filter((p) => !p.i && p.cmd === 'direct');
    assert.deepEqual(got.map((p) => p.directMessage.fromPeerId), k === 'A' ? [ids.C] : [], `${k}: only C's message`);
  }
  // check and query
  let q = await ok(g.C, { cmd: 'conv', op: 'check_shutup', convMessage: { cid, m: [ids.B, ids.C] } }, 'check_result');
  assert.deepEqual(q.convMessage.m, [ids.B]);
  q = await ok(g.C, { cmd: 'conv', op: 'query_shutup', convMessage: { cid } }, 'shutup_result');
  assert.deepEqual(q.convMessage.m, [ids.B]);
  assert.equal(q.convMessage.next, undefined);
  // the muted member cannot unmute itself
  assertError(await g.B.request({ cmd: 'conv', op: 'remove_shutup', i: 53, convMessage: { cid, m: [ids.B] } }), 53, 4320, 'CONVERSATION_OPERATION_UNAUTHORIZED');
  // unmute
  mk = marks(cls);
  const u = await ok(g.A, { cmd: 'conv', op: 'remove_shutup', convMessage: { cid, m: [ids.B] } }, 'shutup_removed');
  assert.deepEqual(u.convMessage.allowedPids, [ids.B]);
  assert.equal(u.convMessage.failedPids, undefined);
  await expectStep('unmute B', cls, ids, mk, cid, {
    B: [['unshutuped', 'A'], ['members_unshutuped', 'A', ['B']]],
    A: [['members_unshutuped', 'A', ['B']]],
    C: [['members_unshutuped', 'A', ['B']]],
  });
  await sendMsg(g.B, cid, TEXT('free again'));
  q = await ok(g.C, { cmd: 'conv', op: 'check_shutup', convMessage: { cid, m: [ids.B] } }, 'check_result');
  assert.deepEqual(q.convMessage.m ?? [], []);
  // D was away for all of it: only the messages wait for it, no shut-up notifications
  const D = await connect(server);
  await login(D, ids.D);
  const got = (await D.quiet(0)).filter((p) => !p.i && p.cmd === 'conv');
  assert.deepEqual(got, [], 'offline member: no shut-up notifications queued');
});

test('§3.16 a manager may shut up; the owner cannot be shut up; a plain member may not (4320); unknown cid 4303', async () => {
  const g = await group(server);
  const { cid, ids } = g;
  assertError(await g.C.request({ cmd: 'conv', op: 'add_shutup', i: 1, convMessage: { cid, m: [ids.B] } }), 1, 4320, 'CONVERSATION_OPERATION_UNAUTHORIZED');
  assertError(await g.C.request({ cmd: 'conv', op: 'remove_shutup', i: 2, convMessage: { cid, m: [ids.B] } }), 2, 4320, 'CONVERSATION_OPERATION_UNAUTHORIZED');
  assertError(await g.A.request({ cmd: 'conv', op: 'add_shutup', i: 3, convMessage: { cid: UNKNOWN_CID, m: [ids.B] } }), 3, 4303, 'CONVERSATION_NOT_FOUND');
  assertError(await g.A.request({ cmd: 'conv', op: 'query_shutup', i: 4, convMessage: { cid: UNKNOWN_CID } }), 4, 4303, 'CONVERSATION_NOT_FOUND');
  assertError(await g.A.request({ cmd: 'conv', op: 'check_shutup', i: 5, convMessage: { cid: UNKNOWN_CID, m: [ids.B] } }), 5, 4303, 'CONVERSATION_NOT_FOUND');
  const M = await session(server, uid('M'));
  assertError(await M.request({ cmd: 'conv', op: 'query_shutup', i: 6, convMessage: { cid } }), 6, 4317, 'CONVERSATION_MEMBERSHIP_REQUIRED');
  assert.equal((await setRole(g.A, cid, ids.B, 'Manager')).op, 'member_info_updated');
  const r = await ok(g.B, { cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [ids.C, ids.A] } }, 'shutup_added');
  assert.deepEqual(r.convMessage.allowedPids, [ids.C]);
  assert.deepEqual(r.convMessage.failedPids, [{ code: 4320, reason: 'CONVERSATION_OPERATION_UNAUTHORIZED', pids: [ids.A] }]);
  const p = await nextConv(g.C, 'shutuped', cid);
  assert.equal(p.convMessage.initBy, ids.B);
  for (const cl of [g.A, g.C]) await nextConv(cl, 'members_shutuped', cid);
  // repeating it succeeds and tells nobody
  const mk = marks({ A: g.A, C: g.C });
  const again = await ok(g.B, { cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [ids.C] } }, 'shutup_added');
  assert.deepEqual(again.convMessage.allowedPids, [ids.C]);
  for (const [k, cl] of [['A', g.A], ['C', g.C]]) {
    assert.deepEqual((await cl.quiet(mk[k])).filter((x) => !x.i && x.convMessage?.cid === cid), [], `${k}: no repeat notification`);
  }
  await sendMsg(g.A, cid, TEXT('the owner may always speak'));
});

test('§3.16 query_shutup pages: default limit 10, next = last id of the page, limit capped at 100', async () => {
  const g = await group(server);
  const { cid } = g;
  const muted = Array.from({ length: 12 }, (_, k) => `${g.ids.A}-s${String(k).padStart(2, '0')}`);
  await ok(g.A, { cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: muted } }, 'shutup_added');
  const sorted = [...muted].sort();
  let q = await ok(g.B, { cmd: 'conv', op: 'query_shutup', convMessage: { cid } }, 'shutup_result');
  assert.deepEqual(q.convMessage.m, sorted.slice(0, 10));
  assert.equal(q.convMessage.next, sorted[9]);
  q = await ok(g.B, { cmd: 'conv', op: 'query_shutup', convMessage: { cid, next: q.convMessage.next } }, 'shutup_result');
  assert.deepEqual(q.convMessage.m, sorted.slice(10));
  assert.equal(q.convMessage.next, undefined);
  q = await ok(g.B, { cmd: 'conv', op: 'query_shutup', convMessage: { cid, limit: 5 } }, 'shutup_result');
  assert.deepEqual(q.convMessage.m, sorted.slice(0, 5));
  assert.equal(q.convMessage.next, sorted[4]);
  q = await ok(g.B, { cmd: 'conv', op: 'query_shutup', convMessage: { cid, limit: 1000 } }, 'shutup_result');
  assert.deepEqual(q.convMessage.m, sorted);
  assert.equal(q.convMessage.next, undefined);
  const chk = await ok(g.B, { cmd: 'conv', op: 'check_shutup', convMessage: { cid, m: [sorted[3], g.ids.B, sorted[11]] } }, 'check_result');
  assert.deepEqual(chk.convMessage.m, [sorted[3], sorted[11]]);
});

// ================================================================ 6. blacklists

test('§3.17 block: reply blacklist/blocked, target gets blocked+left, members get members_blocked+members_left, 4548 on re-join; unblock', async () => {
  const g = await group(server);
  const { cid, ids } = g;
  const cls = { A: g.A, B: g.B, C: g.C };
  let mk = marks(cls);
  const r = await g.A.request({ cmd: 'blacklist', op: 'block', i: 70, blacklistMessage: { srcCid: cid, toPids: [ids.B] } });
  assert.equal(r.cmd, 'blacklist', JSON.stringify(r));
  assert.equal(r.op, 'blocked');
  assert.equal(r.i, 70);
  assert.equal(r.blacklistMessage.srcCid, cid);
  assert.deepEqual(r.blacklistMessage.allowedPids, [ids.B]);
  assert.equal(r.blacklistMessage.failedPids, undefined);
  await expectStep('block B', cls, ids, mk, cid, {
    B: [['blocked', 'A'], ['left', 'A']],
    A: [['members_blocked', 'A', ['B']], ['members_left', 'A', ['B']]],
    C: [['members_blocked', 'A', ['B']], ['members_left', 'A', ['B']]],
  });
  assert.equal(await count(g.A, cid), 3);
  assert.deepEqual((await row(g.A, cid)).m, [ids.A, ids.C, ids.D].sort());
  let im = await ok(g.B, { cmd: 'conv', op: 'is_member', convMessage: { cids: [cid] } }, 'is_member');
  assert.deepEqual(JSON.parse(im.convMessage.results.data), { [cid]: false });
  // B can neither join nor be added, nor send
  mk = marks(cls);
  let j = await ok(g.B, { cmd: 'conv', op: 'add', convMessage: { cid, m: [ids.B] } }, 'added');
  assert.deepEqual(j.convMessage.allowedPids ?? [], []);
  assert.deepEqual(j.convMessage.failedPids, [{ code: 4548, reason: 'BLOCKED_BY_CONV', pids: [ids.B] }]);
  const x = uid('x');
  j = await ok(g.A, { cmd: 'conv', op: 'add', convMessage: { cid, m: [ids.B, x] } }, 'added');
  assert.deepEqual(j.convMessage.allowedPids, [x]);
  assert.deepEqual(j.convMessage.failedPids, [{ code: 4548, reason: 'BLOCKED_BY_CONV', pids: [ids.B] }]);
  assertError(await g.B.request({ cmd: 'direct', i: 71, directMessage: { cid, msg: TEXT('let me in') } }), 71, 4401, 'INVALID_MESSAGING_TARGET');
  assert.deepEqual((await g.B.quiet(mk.B)).filter((p) => !p.i && p.convMessage?.cid === cid), [], 'B hears nothing more');
  // query / check
  let q = await ok(g.C, { cmd: 'blacklist', op: 'query', blacklistMessage: { srcCid: cid } }, 'query_result');
  assert.equal(q.blacklistMessage.srcCid, cid);
  assert.deepEqual(q.blacklistMessage.blockedPids, [ids.B]);
  assert.equal(q.blacklistMessage.next, undefined);
  q = await ok(g.C, { cmd: 'blacklist', op: 'check_block', blacklistMessage: { srcCid: cid, toPids: [ids.B, ids.C, x] } }, 'check_result');
  assert.deepEqual(q.blacklistMessage.blockedPids, [ids.B]);
  // unblock: B is told, the members are told, B may join again
  await ok(g.A, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [x] } }, 'removed');
  await nextConv(g.C, 'members_left', cid);
  mk = marks(cls);
  const u = await ok(g.A, { cmd: 'blacklist', op: 'unblock', blacklistMessage: { srcCid: cid, toPids: [ids.B] } }, 'unblocked');
  assert.equal(u.blacklistMessage.srcCid, cid);
  assert.deepEqual(u.blacklistMessage.allowedPids, [ids.B]);
  await expectStep('unblock B', cls, ids, mk, cid, {
    B: [['unblocked', 'A']],
    A: [['members_unblocked', 'A', ['B']]],
    C: [['members_unblocked', 'A', ['B']]],
  });
  j = await ok(g.B, { cmd: 'conv', op: 'add', convMessage: { cid, m: [ids.B] } }, 'added');
  assert.deepEqual(j.convMessage.allowedPids, [ids.B]);
  im = await ok(g.B, { cmd: 'conv', op: 'is_member', convMessage: { cids: [cid] } }, 'is_member');
  assert.deepEqual(JSON.parse(im.convMessage.results.data), { [cid]: true });
  q = await ok(g.C, { cmd: 'blacklist', op: 'query', blacklistMessage: { srcCid: cid } }, 'query_result');
  assert.deepEqual(q.blacklistMessage.blockedPids ?? [], []);
  // D was offline throughout: nothing of this waits for it
  await assertNothingQueued(server, ids.D, cid);
});

test('§3.17 block rules: owner/manager only (4320), the owner cannot be blocked (4324), non-members can be blocked, unknown cid 4303, query pages', async () => {
  const g = await group(server);
  const { cid, ids } = g;
  assertError(await g.C.request({ cmd: 'blacklist', op: 'block', i: 1, blacklistMessage: { srcCid: cid, toPids: [ids.B] } }), 1, 4320, 'CONVERSATION_OPERATION_UNAUTHORIZED');
  assertError(await g.C.request({ cmd: 'blacklist', op: 'unblock', i: 2, blacklistMessage: { srcCid: cid, toPids: [ids.B] } }), 2, 4320, 'CONVERSATION_OPERATION_UNAUTHORIZED');
  assertError(await g.A.request({ cmd: 'blacklist', op: 'block', i: 3, blacklistMessage: { srcCid: UNKNOWN_CID, toPids: [ids.B] } }), 3, 4303, 'CONVERSATION_NOT_FOUND');
  assertError(await g.A.request({ cmd: 'blacklist', op: 'query', i: 4, blacklistMessage: { srcCid: UNKNOWN_CID } }), 4, 4303, 'CONVERSATION_NOT_FOUND');
  const M = await session(server, uid('M'));
  assertError(await M.request({ cmd: 'blacklist', op: 'query', i: 5, blacklistMessage: { srcCid: cid } }), 5, 4317, 'CONVERSATION_MEMBERSHIP_REQUIRED');
  assert.equal(await count(g.A, cid), 4, 'nothing changed');
  assert.equal((await setRole(g.A, cid, ids.B, 'Manager')).op, 'member_info_updated');
  const outsiders = Array.from({ length: 11 }, (_, k) => `${ids.A}-o${String(k).padStart(2, '0')}`);
  const r = await ok(g.B, { cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: cid, toPids: [ids.A, ...outsiders] } }, 'blocked');
  assert.deepEqual(r.blacklistMessage.allowedPids, outsiders);
  assert.deepEqual(r.blacklistMessage.failedPids, [{ code: 4324, reason: 'CONVERSATION_NEED_OWNER', pids: [ids.A] }]);
  assert.equal(await count(g.A, cid), 4, 'blocking non-members leaves the members alone');
  let q = await ok(g.C, { cmd: 'blacklist', op: 'query', blacklistMessage: { srcCid: cid } }, 'query_result');
  assert.deepEqual(q.blacklistMessage.blockedPids, outsiders.slice(0, 10));
  assert.equal(q.blacklistMessage.next, outsiders[9]);
  q = await ok(g.C, { cmd: 'blacklist', op: 'query', blacklistMessage: { srcCid: cid, next: q.blacklistMessage.next } }, 'query_result');
  assert.deepEqual(q.blacklistMessage.blockedPids, outsiders.slice(10));
  assert.equal(q.blacklistMessage.next, undefined);
  q = await ok(g.C, { cmd: 'blacklist', op: 'query', blacklistMessage: { srcCid: cid, limit: 3 } }, 'query_result');
  assert.deepEqual(q.blacklistMessage.blockedPids, outsiders.slice(0, 3));
  assert.equal(q.blacklistMessage.next, outsiders[2]);
  // an outsider that logs in cannot join
  const o = await session(server, outsiders[0]);
  const j = await ok(o, { cmd: 'conv', op: 'add', convMessage: { cid, m: [outsiders[0]] } }, 'added');
  assert.deepEqual(j.convMessage.failedPids, [{ code: 4548, reason: 'BLOCKED_BY_CONV', pids: [outsiders[0]] }]);
});

test('§3.17 a client blocking conversations (srcPid + toCids): blocked, query, check, 4548 when added, unblocked', async () => {
  const g = await group(server);
  const { ids } = g;
  const E = await session(server, uid('E'));
  const e = E.peer;
  const c1 = g.cid;
  const c2 = (await startConv(g.A, [ids.B])).cid;
  const r = await E.request({ cmd: 'blacklist', op: 'block', i: 80, blacklistMessage: { srcPid: e, toCids: [c1, c2] } });
  assert.equal(r.cmd, 'blacklist', JSON.stringify(r));
  assert.equal(r.op, 'blocked');
  assert.equal(r.i, 80);
  assert.equal(r.blacklistMessage.srcPid, e);
  assert.deepEqual(r.blacklistMessage.allowedPids, [c1, c2]);
  let q = await ok(E, { cmd: 'blacklist', op: 'query', blacklistMessage: { srcPid: e } }, 'query_result');
  assert.equal(q.blacklistMessage.srcPid, e);
  assert.deepEqual([...q.blacklistMessage.blockedCids].sort(), [c1, c2].sort());
  q = await ok(E, { cmd: 'blacklist', op: 'check_block', blacklistMessage: { srcPid: e, toCids: [c1, UNKNOWN_CID] } }, 'check_result');
  assert.deepEqual(q.blacklistMessage.blockedCids, [c1]);
  // the conversation cannot add E, nor can E join it
  const mk = E.mark();
  let a = await ok(g.A, { cmd: 'conv', op: 'add', convMessage: { cid: c1, m: [e] } }, 'added');
  assert.deepEqual(a.convMessage.failedPids, [{ code: 4548, reason: 'BLOCKED_BY_CONV', pids: [e] }]);
  a = await ok(E, { cmd: 'conv', op: 'add', convMessage: { cid: c1, m: [e] } }, 'added');
  assert.deepEqual(a.convMessage.failedPids, [{ code: 4548, reason: 'BLOCKED_BY_CONV', pids: [e] }]);
  assert.deepEqual((await E.quiet(mk)).filter((p) => !p.i), [], 'E is told nothing');
  // acting for someone else
  assertError(await E.request({ cmd: 'blacklist', op: 'block', i: 81, blacklistMessage: { srcPid: ids.B, toCids: [c1] } }), 81, 4320, 'CONVERSATION_OPERATION_UNAUTHORIZED');
  // unblock one
  const u = await ok(E, { cmd: 'blacklist', op: 'unblock', blacklistMessage: { srcPid: e, toCids: [c1] } }, 'unblocked');
  assert.equal(u.blacklistMessage.srcPid, e);
  assert.deepEqual(u.blacklistMessage.allowedPids, [c1]);
  a = await ok(g.A, { cmd: 'conv', op: 'add', convMessage: { cid: c1, m: [e] } }, 'added');
  assert.deepEqual(a.convMessage.allowedPids, [e]);
  await nextConv(E, 'joined', c1);
  q = await ok(E, { cmd: 'blacklist', op: 'query', blacklistMessage: { srcPid: e } }, 'query_result');
  assert.deepEqual(q.blacklistMessage.blockedCids, [c2]);
});

// ================================================================ 11. session query, is_member

test('§3.3/§3.13 session query answers the online subset; is_member follows joins and quits', async () => {
  const g = await group(server);
  const { ids, cid } = g;
  const q = await ok(g.A, { cmd: 'session', op: 'query', sessionMessage: { sessionPeerIds: [ids.B, ids.D, 'nobody-at-all', ids.C] } }, 'query_result');
  assert.deepEqual([...q.sessionMessage.onlineSessionPeerIds].sort(), [ids.B, ids.C].sort());
  await g.C.close();
  // the close handshake can finish a moment before the session is forgotten: poll briefly
  const end = Date.now() + 3000;
  let q2;
  do {
    q2 = await ok(g.A, { cmd: 'session', op: 'query', sessionMessage: { sessionPeerIds: [ids.B, ids.C] } }, 'query_result');
  } while (q2.sessionMessage.onlineSessionPeerIds.length > 1 && Date.now() < end && await new Promise((r) => setTimeout(r, 20, true)));
  assert.deepEqual(q2.sessionMessage.onlineSessionPeerIds, [ids.B]);
  const E = await session(server, uid('E'));
  const isMember = async () => JSON.parse((await ok(E, { cmd: 'conv', op: 'is_member', convMessage: { cids: [cid] } }, 'is_member')).convMessage.results.data)[cid];
  assert.equal(await isMember(), false);
  await ok(E, { cmd: 'conv', op: 'add', convMessage: { cid, m: [E.peer] } }, 'added');
  assert.equal(await isMember(), true);
  await ok(E, { cmd: 'conv', op: 'remove', convMessage: { cid, m: [E.peer] } }, 'removed');
  assert.equal(await isMember(), false);
});

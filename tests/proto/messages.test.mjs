// Messages: direct (errors, ack, fan-out, transient, binary, size limit), history (logs and
// its paging table), client acks, receipts, read state, and what a client is told at login
// (unread in lc.protobuf2.3, offline pushes in lc.protobuf2.1).
// protocol.md §3.6–§3.11, §6, §9.1.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { scrape, value } from '../lib/metrics.mjs';
import {
  assertError, assertHealthy, assertPush, closeAll, connect, login, sendMsg, session, startConv, uid,
} from '../lib/proto-client.mjs';

let server;
before(async () => { server = await startServer(); });
afterEach(closeAll);
after(async () => { await server.stop(); });

const UNKNOWN_CID = '0123456789abcdef01234567';

/** alice and bob on their own sockets in a fresh 1:1 conversation (joined pushes drained). */
async function pair({ aliceExtra, bobExtra } = {}) {
  const [a, b] = [uid('alice'), uid('bob')];
  const alice = await session(server, a, { extra: aliceExtra });
  const bob = await session(server, b, { extra: bobExtra });
  const { cid } = await startConv(alice, [b]);
  await alice.next((p) => p.op === 'members_joined' && p.convMessage.cid === cid);
  await bob.next((p) => p.op === 'members_joined' && p.convMessage.cid === cid);
  return { a, b, alice, bob, cid };
}

async function logs(client, cid, fields = {}) {
  const r = await client.request({ cmd: 'logs', logsMessage: { cid, ...fields } });
  assert.equal(r.cmd, 'logs', JSON.stringify(r));
  assert.ok(r.logsMessage, 'logsMessage present');
  return r.logsMessage.logs ?? [];
}

async function eventually(fn, what, timeout = 3000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`not within ${timeout} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---------------------------------------------------------------- direct: errors

const directErrors = [
  { section: '§3.6 4401', name: 'unknown cid', dm: () => ({ cid: UNKNOWN_CID, msg: 'x' }), code: 4401, reason: 'INVALID_MESSAGING_TARGET' },
  { section: '§3.6 4401', name: 'no cid', dm: () => ({ msg: 'x' }), code: 4401, reason: 'INVALID_MESSAGING_TARGET' },
  { section: '§3.6 4401', name: 'sender not a member', who: 'mallory', dm: (f) => ({ cid: f.cid, msg: 'x' }), code: 4401, reason: 'INVALID_MESSAGING_TARGET' },
  { section: '§3.6 4323', name: 'unknown _tmp: conversation', dm: () => ({ cid: `_tmp:${UNKNOWN_CID}`, msg: 'x' }), code: 4323, reason: '' /* empty: the SDKs show their own text */ },
  { section: '§3.6 4109', name: 'msg of 5121 bytes', dm: (f) => ({ cid: f.cid, msg: 'x'.repeat(5121) }), code: 4109, reason: 'FRAME_TOO_LONG' },
  { section: '§3.6 4109', name: 'msg 5000 + pushData 121 bytes', dm: (f) => ({ cid: f.cid, msg: 'x'.repeat(5000), pushData: `{"alert":"${'y'.repeat(110)}"}` }), code: 4109, reason: 'FRAME_TOO_LONG' },
  { section: '§3.6 4109', name: 'binaryMsg of 5121 bytes', dm: (f) => ({ cid: f.cid, binaryMsg: Buffer.alloc(5121, 7) }), code: 4109, reason: 'FRAME_TOO_LONG' },
  { section: '§3.6 4109', name: 'multi-byte UTF-8 over 5120 bytes (1800 × 3 bytes)', dm: (f) => ({ cid: f.cid, msg: '消'.repeat(1800) }), code: 4109, reason: 'FRAME_TOO_LONG' },
];

for (const c of directErrors) {
  test(`${c.section} direct fails: ${c.name} → ${c.code} ${c.reason}, connection stays`, async () => {
    const f = await pair();
    f.mallory = await session(server, uid('mallory'));
    const who = f[c.who || 'alice'];
    const mark = who.mark();
    assertError(await who.request({ cmd: 'direct', i: 40, directMessage: c.dm(f) }), 40, c.code, c.reason);
    assert.deepEqual((await who.quiet(mark)).filter((x) => x.i !== 40), []);
    assert.equal(who.isClosed, false);
    assert.deepEqual(await logs(f.alice, f.cid), [], 'nothing stored');
    await assertHealthy(server);
  });
}

test('§3.6 exactly 5120 bytes of content (msg + pushData) is accepted', async () => {
  const f = await pair();
  await sendMsg(f.alice, f.cid, 'x'.repeat(5120));
  await sendMsg(f.alice, f.cid, 'x'.repeat(5100), { pushData: 'y'.repeat(20) });
  assert.equal((await logs(f.alice, f.cid)).length, 2);
});

// ---------------------------------------------------------------- direct: success and fan-out

test('§3.6/§3.7 ack {uid, t} without code; recipients and the sender\'s other devices get the direct', async () => {
  const [a, b] = [uid('alice'), uid('bob')];
  const alice1 = await session(server, a);
  const alice2 = await session(server, a);
  const bob1 = await session(server, b);
  const bob2 = await session(server, b);
  const { cid } = await startConv(alice1, [b, uid('offline')]);
  const before = Date.now();
  const mark1 = alice1.mark();
  const r = await alice1.request({ cmd: 'direct', i: 77, directMessage: { cid, msg: '{"_lctype":-1,"_lctext":"hi"}', dt: 'dedup-1', mentionPids: [b] } });
  assert.equal(r.cmd, 'ack');
  assert.equal(r.i, 77);
  assert.deepEqual(Object.keys(r.ackMessage).sort(), ['t', 'uid'], `ackMessage has no code: ${JSON.stringify(r)}`);
  assert.equal(r.ackMessage.uid.length, 22);
  assert.ok(r.ackMessage.t >= before - 1000 && r.ackMessage.t <= Date.now() + 1000);
  for (const [cl, peer] of [[bob1, b], [bob2, b], [alice2, a]]) {
    const d = await cl.next((p) => p.cmd === 'direct' && p.directMessage.cid === cid);
    assertPush(d, peer);
    assert.equal(d.directMessage.id, r.ackMessage.uid);
    assert.equal(d.directMessage.timestamp, r.ackMessage.t);
    assert.equal(d.directMessage.fromPeerId, a);
    assert.equal(d.directMessage.msg, '{"_lctype":-1,"_lctext":"hi"}');
    assert.deepEqual(d.directMessage.mentionPids, [b]);
    assert.equal(d.directMessage.transient, undefined);
    assert.equal(d.directMessage.offline ?? false, false);
  }
  const own = (await alice1.quiet(mark1)).filter((p) => p.cmd === 'direct');
  assert.deepEqual(own, [], 'the sending session does not get its own message');
});

test('§1.6/§3.7 two clients on one socket: the other session gets the push, the sender\'s does not', async () => {
  const [a, b] = [uid('alice'), uid('bob')];
  const c = await connect(server);
  await login(c, a);
  await login(c, b);
  const { cid } = await startConv(c, [b]);
  const mark = c.mark();
  const ack = await sendMsg(c, cid, 'shared socket');
  const d = await c.next((p) => p.cmd === 'direct');
  assertPush(d, b);
  assert.equal(d.directMessage.id, ack.uid);
  const directs = (await c.quiet(mark)).filter((p) => p.cmd === 'direct');
  assert.deepEqual(directs.map((p) => p.peerId), [b]);
});

test('§3.6 binaryMsg round-trips as bytes; history has bin:true and base64 data', async () => {
  const f = await pair();
  const bytes = Buffer.from(Array.from({ length: 256 }, (_, k) => k));
  const ack = await sendMsg(f.alice, f.cid, undefined, { binaryMsg: bytes });
  const d = await f.bob.nextCmd('direct');
  assert.ok(Buffer.isBuffer(d.directMessage.binaryMsg) || d.directMessage.binaryMsg instanceof Uint8Array);
  assert.deepEqual(Buffer.from(d.directMessage.binaryMsg), bytes);
  assert.equal(d.directMessage.msg, undefined);
  const [item] = await logs(f.bob, f.cid);
  assert.equal(item.msgId, ack.uid);
  assert.equal(item.bin, true);
  assert.equal(item.data, bytes.toString('base64'));
});

const transientCases = [
  { section: '§3.19', name: 'configBitmap without bit 3: no ack', bitmap: 1 | 2 | 16 | 32 | 128, ack: false },
  { section: '§3.6/§3.19', name: 'configBitmap bit 3 (8): ack {uid, t}', bitmap: 8, ack: true },
  { section: '§3.6/§3.19', name: 'JS 5 configBitmap 187: ack', bitmap: 187, ack: true },
];
for (const c of transientCases) {
  test(`${c.section} transient message, ${c.name}; delivered online, not stored`, async () => {
    const f = await pair({ aliceExtra: { configBitmap: c.bitmap } });
    const mark = f.alice.mark();
    const i = f.alice.send({ cmd: 'direct', directMessage: { cid: f.cid, msg: 'typing…', transient: true } });
    const d = await f.bob.nextCmd('direct');
    assertPush(d, f.b);
    assert.equal(d.directMessage.transient, true);
    assert.equal(d.directMessage.msg, 'typing…');
    const got = await f.alice.quiet(mark);
    const acks = got.filter((x) => x.i === i);
    if (c.ack) {
      assert.equal(acks.length, 1, 'one ack');
      assert.equal(acks[0].cmd, 'ack');
      assert.equal(acks[0].ackMessage.uid, d.directMessage.id);
      assert.equal(acks[0].ackMessage.t, d.directMessage.timestamp);
      assert.equal(acks[0].ackMessage.code, undefined);
    } else {
      assert.deepEqual(got, [], 'no reply at all');
    }
    assert.deepEqual(await logs(f.bob, f.cid), [], 'transient messages are not in history');
  });
}

test('§3.19 chat room messages go to the sessions in the room', async () => {
  const [a, b] = [uid('alice'), uid('bob')];
  const alice = await session(server, a);
  const bob = await session(server, b);
  const { cid } = await startConv(alice, [], { transient: true });
  await bob.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [b] } });
  const ack = await sendMsg(alice, cid, 'to the room');
  const d = await bob.nextCmd('direct');
  assertPush(d, b);
  assert.equal(d.directMessage.id, ack.uid);
  assert.equal(d.directMessage.convType, 2);
  assert.equal((await logs(bob, cid)).length, 1, 'chat room messages are stored');
});

// ---------------------------------------------------------------- history

const logsErrors = [
  { section: '§3.11 4312', name: 'unknown cid', lm: () => ({ cid: UNKNOWN_CID }) },
  { section: '§3.11 4312', name: 'no cid', lm: () => ({}) },
  { section: '§3.11 4312', name: 'non-member', who: 'mallory', lm: (f) => ({ cid: f.cid }) },
];
for (const c of logsErrors) {
  test(`${c.section} logs fails with CONVERSATION_LOG_REJECTED: ${c.name}`, async () => {
    const f = await pair();
    await sendMsg(f.alice, f.cid, 'secret');
    f.mallory = await session(server, uid('mallory'));
    const who = f[c.who || 'alice'];
    assertError(await who.request({ cmd: 'logs', i: 50, logsMessage: c.lm(f) }), 50, 4312, 'CONVERSATION_LOG_REJECTED');
    await who.echo();
    await assertHealthy(server);
  });
}

test('§3.11 logs: LogItems ascending by timestamp with msgId, timestamp, from, data', async () => {
  const f = await pair();
  const sent = [];
  for (const [who, from, text] of [[f.alice, f.a, 'one'], [f.bob, f.b, 'two'], [f.alice, f.a, 'three']]) {
    sent.push({ ...(await sendMsg(who, f.cid, text, { mentionAll: text === 'two' })), from, text });
  }
  const items = await logs(f.bob, f.cid);
  assert.deepEqual(items.map((x) => x.msgId), sent.map((s) => s.uid));
  items.forEach((x, k) => {
    assert.equal(x.timestamp, sent[k].t);
    assert.equal(x.from, sent[k].from);
    assert.equal(x.data, sent[k].text);
    assert.equal(x.bin ?? false, false);
  });
  assert.equal(items[1].mentionAll, true);
  for (let k = 1; k < items.length; k++) assert.ok(items[k].timestamp >= items[k - 1].timestamp);
});

test('§3.11 logs: default limit 20 returns the newest 20; l and limit; l:0 is empty', async () => {
  const f = await pair();
  const ids = [];
  for (let k = 0; k < 22; k++) ids.push((await sendMsg(f.alice, f.cid, `m${k}`)).uid);
  assert.deepEqual((await logs(f.alice, f.cid)).map((x) => x.msgId), ids.slice(2), 'default 20, newest, ascending');
  assert.deepEqual((await logs(f.alice, f.cid, { l: 3 })).map((x) => x.msgId), ids.slice(19), 'l (JS)');
  assert.deepEqual((await logs(f.alice, f.cid, { limit: 2 })).map((x) => x.msgId), ids.slice(20), 'limit (Swift/Java)');
  assert.deepEqual(await logs(f.alice, f.cid, { l: 0 }), [], 'l: 0 is empty');
  assert.deepEqual((await logs(f.alice, f.cid, { l: 100 })).map((x) => x.msgId), ids);
});

test('§3.11 logs paging table (t/mid, tt/tmid, tIncluded, ttIncluded, direction NEW)', async () => {
  const f = await pair();
  const m = [];
  for (const text of ['id1', 'id2', 'id3']) m.push(await sendMsg(f.alice, f.cid, text));
  const [m1, m2, m3] = m;
  const start3 = { t: m3.t, mid: m3.uid };
  const end1 = { tt: m1.t, tmid: m1.uid };
  const start1 = { t: m1.t, mid: m1.uid };
  const end3 = { tt: m3.t, tmid: m3.uid };
  const rows = [
    { section: '§3.11', name: 'start (t3,id3) end (t1,id1)', lm: { ...start3, ...end1 }, want: ['id2'] },
    { section: '§3.11', name: '+tIncluded', lm: { ...start3, ...end1, tIncluded: true }, want: ['id2', 'id3'] },
    { section: '§3.11', name: '+ttIncluded', lm: { ...start3, ...end1, ttIncluded: true }, want: ['id1', 'id2'] },
    { section: '§3.11', name: '+tIncluded +ttIncluded', lm: { ...start3, ...end1, tIncluded: true, ttIncluded: true }, want: ['id1', 'id2', 'id3'] },
    { section: '§3.11', name: 'NEW from (t1,id1) to (t3,id3)', lm: { ...start1, ...end3, direction: 'NEW' }, want: ['id2'] },
    { section: '§3.11', name: 'NEW +tIncluded', lm: { ...start1, ...end3, direction: 'NEW', tIncluded: true }, want: ['id1', 'id2'] },
    { section: '§3.11', name: 'NEW +ttIncluded', lm: { ...start1, ...end3, direction: 'NEW', ttIncluded: true }, want: ['id2', 'id3'] },
    { section: '§3.11', name: 'start (t3,id3) only, l 1 (JS iterator page)', lm: { ...start3, l: 1 }, want: ['id2'] },
    { section: '§3.11', name: 'start (t3,id3) tIncluded, l 2', lm: { ...start3, tIncluded: true, l: 2 }, want: ['id2', 'id3'] },
    { section: '§3.11', name: 'NEW from (t1,id1), l 1: the next newer one', lm: { ...start1, direction: 'NEW', l: 1 }, want: ['id2'] },
    { section: '§3.11', name: 'NEW from (t1,id1), no end', lm: { ...start1, direction: 'NEW' }, want: ['id2', 'id3'] },
    { section: '§3.11', name: 'end (t2,id2) only: everything newer', lm: { tt: m2.t, tmid: m2.uid }, want: ['id3'] },
  ];
  for (const row of rows) {
    const items = await logs(f.bob, f.cid, row.lm);
    assert.deepEqual(items.map((x) => x.data), row.want, `${row.section} ${row.name}`);
  }
});

test('§3.11 logs lctype filters on the content\'s _lctype', async () => {
  const f = await pair();
  await sendMsg(f.alice, f.cid, '{"_lctype":-1,"_lctext":"text"}');
  const img = await sendMsg(f.alice, f.cid, '{"_lctext":"img","_lctype":-2}');
  await sendMsg(f.alice, f.cid, 'plain');
  assert.deepEqual((await logs(f.alice, f.cid, { lctype: -2 })).map((x) => x.msgId), [img.uid]);
  assert.deepEqual(await logs(f.alice, f.cid, { lctype: 1000 }), []);
});

// ---------------------------------------------------------------- acks, receipts, read

test('§2.5 ack and read get no reply', async () => {
  const f = await pair();
  const sent = await sendMsg(f.alice, f.cid, 'x');
  await f.bob.nextCmd('direct');
  const mark = f.bob.mark();
  f.bob.send({ cmd: 'ack', i: null, ackMessage: { cid: f.cid, mid: sent.uid } });
  f.bob.send({ cmd: 'ack', i: null, ackMessage: { cid: f.cid, fromts: sent.t, tots: sent.t } });
  f.bob.send({ cmd: 'read', i: null, readMessage: { convs: [{ cid: f.cid, timestamp: sent.t, mid: sent.uid }] } });
  f.bob.send({ cmd: 'ack', i: null, ackMessage: { cid: UNKNOWN_CID, tots: 1 } });
  f.bob.send({ cmd: 'read', i: null, readMessage: { cid: UNKNOWN_CID } });
  assert.deepEqual(await f.bob.quiet(mark), []);
});

const receiptCases = [
  { section: '§3.7/§3.8', name: 'ack {cid, mid} (Swift/Java)', ack: (plain, wanted, cid) => ({ cid, mid: wanted.uid }) },
  // the JS batch covers both messages; only the one sent with r:true is receipted
  { section: '§3.7/§3.8', name: 'ack {cid, fromts, tots} (JS)', ack: (plain, wanted, cid) => ({ cid, fromts: plain.t, tots: wanted.t }) },
];
for (const c of receiptCases) {
  test(`${c.section} r:true message: after the recipient's ${c.name} the sender gets rcp {id, cid, t, from}`, async () => {
    const f = await pair();
    const plain = await sendMsg(f.alice, f.cid, 'no receipt wanted');
    const wanted = await sendMsg(f.alice, f.cid, 'receipt please', { r: true });
    await f.bob.next((p) => p.cmd === 'direct' && p.directMessage.id === wanted.uid);
    const mark = f.alice.mark();
    const before = Date.now();
    f.bob.send({ cmd: 'ack', i: null, ackMessage: c.ack(plain, wanted, f.cid) });
    const rcp = await f.alice.nextCmd('rcp');
    assertPush(rcp, f.a);
    assert.equal(rcp.rcpMessage.id, wanted.uid);
    assert.equal(rcp.rcpMessage.cid, f.cid);
    assert.equal(rcp.rcpMessage.from, f.b);
    assert.equal(rcp.rcpMessage.read, undefined, 'a delivery receipt is not a read receipt');
    assert.ok(rcp.rcpMessage.t >= before - 1000 && rcp.rcpMessage.t <= Date.now() + 1000);
    // barrier: a later message from bob reaches alice after any other receipt bob's ack caused
    const marker = await sendMsg(f.bob, f.cid, 'marker');
    await f.alice.next((p) => p.cmd === 'direct' && p.directMessage.id === marker.uid);
    const rcps = f.alice.since(mark).filter((p) => p.cmd === 'rcp');
    assert.deepEqual(rcps.map((p) => p.rcpMessage.id), [wanted.uid], 'only the r:true message is receipted');
  });
}

// An ack looks up receipts (a read of the store) only in a conversation some message of
// which asked for them; the store keeps that per conversation, so it holds after a restart
// (before, every conversation with messages was looked in after one) and for a database
// from before the flag (every conversation that had messages then is taken to have asked).
test('§3.7 receipts after a restart: looked up only where a message asked, and still sent there', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tern-rcp-'));
  const [a, b] = [uid('alice'), uid('bob')];
  let srv, alice, bob;
  const start = async () => {
    srv = await startServer({ dataDir: dir });
    alice = await session(srv, a);
    bob = await session(srv, b);
  };
  const restart = async (between = () => {}) => {
    await closeAll(srv);
    await srv.stop({ keepData: true });
    between();
    await start();
  };
  const reads = async () => value(await scrape(srv), 'tern_receipt_reads_total');
  /** alice sends, bob acks from fromts up to it; after the ack has been handled */
  const ackUpTo = async (cid, fromts, text) => {
    const m = await sendMsg(alice, cid, text);
    await bob.next((p) => p.cmd === 'direct' && p.directMessage.id === m.uid);
    bob.send({ cmd: 'ack', i: null, ackMessage: { cid, fromts, tots: m.t } });
    const marker = await sendMsg(bob, cid, 'marker'); // handled after bob's ack
    await alice.next((p) => p.cmd === 'direct' && p.directMessage.id === marker.uid);
  };
  try {
    await start();
    const plain = (await startConv(alice, [b], { name: 'plain' })).cid;
    const asked = (await startConv(alice, [b], { name: 'asked' })).cid;
    const empty = (await startConv(alice, [b], { name: 'empty' })).cid;
    await sendMsg(alice, plain, 'no receipt wanted');
    const wanted = await sendMsg(alice, asked, 'receipt please', { r: true });

    await restart();
    const mark = alice.mark();
    await ackUpTo(plain, 1, 'plain, after the restart');
    assert.equal(await reads(), 0, 'no message of that conversation asked for receipts: nothing read');
    await ackUpTo(asked, wanted.t, 'asked, after the restart');
    await alice.next((p) => p.cmd === 'rcp' && p.rcpMessage.id === wanted.uid);
    assert.equal(await reads(), 1, 'the conversation that asked is looked in');
    assert.deepEqual(alice.since(mark).filter((p) => p.cmd === 'rcp').map((p) => p.rcpMessage.id), [wanted.uid],
      'only the message that asked is receipted');
    // the first message to ask in a conversation: looked in from then on
    const now = await sendMsg(alice, plain, 'now one asks', { r: true });
    await ackUpTo(plain, now.t, 'plain, after one asked');
    await alice.next((p) => p.cmd === 'rcp' && p.rcpMessage.id === now.uid);
    assert.equal(await reads(), 2);

    // a database from before the flag (no column, no triggers): a conversation that had
    // messages is taken to have asked, one that had none has not
    await restart(() => execFileSync('sqlite3', [join(dir, 'tern.db'),
      'DROP TRIGGER msg_rcp; DROP TRIGGER msg_hot0_rcp; DROP TRIGGER msg_hot1_rcp; ALTER TABLE conv DROP COLUMN rcp;' +
      " UPDATE meta SET value = '11' WHERE key = 'schema_version'"]));
    await ackUpTo(empty, 1, 'empty, after the upgrade');
    assert.equal(await reads(), 0, 'no message before the upgrade, none asked since: nothing read');
    await ackUpTo(asked, wanted.t + 1, 'asked, after the upgrade');
    assert.equal(await reads(), 1, 'a conversation with messages from before the flag is looked in');
    await closeAll(srv);
  } finally {
    await srv?.stop({ keepData: true }).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
});

test('§3.8/§3.9 read: the reader\'s other devices get unread 0, the other 1:1 member gets rcp read:true', async () => {
  const [a, b] = [uid('alice'), uid('bob')];
  const alice = await session(server, a);
  const bob1 = await session(server, b);
  const bob2 = await session(server, b);
  const { cid } = await startConv(alice, [b]);
  const sent = await sendMsg(alice, cid, 'read me');
  await bob1.next((p) => p.cmd === 'direct' && p.directMessage.id === sent.uid);
  const mark1 = bob1.mark();
  bob1.send({ cmd: 'read', i: null, readMessage: { convs: [{ cid, timestamp: sent.t, mid: sent.uid }] } });
  const u = await bob2.nextCmd('unread');
  assertPush(u, b);
  assert.equal(u.unreadMessage.convs.length, 1);
  assert.equal(u.unreadMessage.convs[0].cid, cid);
  assert.equal(u.unreadMessage.convs[0].unread, 0);
  assert.equal(u.unreadMessage.convs[0].mentioned ?? false, false);
  const rcp = await alice.nextCmd('rcp');
  assertPush(rcp, a);
  assert.equal(rcp.rcpMessage.cid, cid);
  assert.equal(rcp.rcpMessage.read, true);
  assert.equal(rcp.rcpMessage.from, b);
  assert.equal(rcp.rcpMessage.t, sent.t, 'read position = the message read');
  assert.equal(rcp.rcpMessage.id, sent.uid);
  assert.deepEqual(await bob1.quiet(mark1), [], 'the reading session itself gets nothing');
  // max_read shows bob's progress to alice (the position is written asynchronously)
  await eventually(async () => {
    const r = await alice.request({ cmd: 'conv', op: 'max_read', convMessage: { cid } });
    return r.convMessage.maxReadTimestamp >= sent.t;
  }, 'max_read reflects the read');
});

// ---------------------------------------------------------------- at login

/** Waits (probing the shared clock) until a later millisecond than iso/ms t has begun, so a
 * message cannot share the membership's millisecond; that case has its own test below. */
async function pastMs(t) {
  const ms = typeof t === 'string' ? Date.parse(t) : t;
  while (Date.now() <= ms) await new Promise((r) => setImmediate(r));
}

const unreadCases = [
  { section: '§3.10', name: 'no mentions', fields: [{}, {}, {}], mentioned: false },
  { section: '§3.10', name: 'mentionPids includes the client', fields: [{}, { mentionPids: ['$bob'] }, {}], mentioned: true },
  { section: '§3.10', name: 'mentionAll', fields: [{ mentionAll: true }, {}, {}], mentioned: true },
  { section: '§3.10', name: 'mentionPids of someone else', fields: [{ mentionPids: ['$carol'] }, {}, {}], mentioned: false },
];
for (const c of unreadCases) {
  test(`${c.section} lc.protobuf2.3 login after 3 messages sent offline: unread push (${c.name})`, async () => {
    const [a, b, carol] = [uid('alice'), uid('bob'), uid('carol')];
    const alice = await session(server, a);
    const { cid, cdate } = await startConv(alice, [b, carol]);
    await pastMs(cdate);
    const sent = [];
    for (let k = 0; k < 3; k++) {
      const fields = { ...c.fields[k] };
      if (fields.mentionPids) fields.mentionPids = fields.mentionPids.map((p) => (p === '$bob' ? b : carol));
      sent.push(await sendMsg(alice, cid, `offline ${k}`, fields));
    }
    const bob = await connect(server);
    const mark = bob.mark();
    await login(bob, b);
    const u = await bob.nextCmd('unread');
    assertPush(u, b);
    assert.equal(bob.since(mark)[0].op, 'opened', 'the opened reply comes first');
    assert.ok(u.unreadMessage.notifTime > 0);
    const tuple = u.unreadMessage.convs.find((t) => t.cid === cid);
    const last = sent[2];
    assert.deepEqual(tuple, {
      cid, unread: 3, mid: last.uid, timestamp: last.t, from: a, data: 'offline 2', mentioned: c.mentioned, convType: 1,
    });
  });
}

test('§3.10 after a read, the next login reports nothing unread for that conversation', async () => {
  const [a, b] = [uid('alice'), uid('bob')];
  const alice = await session(server, a);
  const { cid, cdate } = await startConv(alice, [b]);
  await pastMs(cdate);
  const sent = await sendMsg(alice, cid, 'x');
  const bob = await session(server, b);
  await bob.nextCmd('unread');
  bob.send({ cmd: 'read', i: null, readMessage: { convs: [{ cid, timestamp: sent.t, mid: sent.uid }] } });
  await eventually(async () => {
    const again = await connect(server);
    const mark = again.mark();
    await login(again, b);
    const got = await again.quiet(mark);
    await again.close();
    const unread = got.filter((p) => p.cmd === 'unread').flatMap((p) => p.unreadMessage.convs).filter((t) => t.cid === cid);
    return unread.every((t) => t.unread === 0);
  }, 'read state persisted');
});

test('§3.10 a client\'s own messages are never unread for it', async () => {
  const [a, b] = [uid('alice'), uid('bob')];
  const alice = await session(server, a);
  const { cid } = await startConv(alice, [b]);
  await sendMsg(alice, cid, 'mine');
  const again = await connect(server);
  const mark = again.mark();
  await login(again, a);
  const tuples = (await again.quiet(mark)).filter((p) => p.cmd === 'unread').flatMap((p) => p.unreadMessage.convs);
  for (const t of tuples.filter((x) => x.cid === cid)) assert.equal(t.unread, 0);
});

test('§3.1/§3.7 lc.protobuf2.1 login pushes stored messages as direct offline:true, hasMore on all but the last', async () => {
  const [a, b] = [uid('alice'), uid('bob')];
  const alice = await session(server, a);
  const { cid, cdate } = await startConv(alice, [b]);
  await pastMs(cdate);
  const sent = [];
  for (let k = 0; k < 3; k++) sent.push(await sendMsg(alice, cid, `stored ${k}`, k === 1 ? { mentionAll: true } : {}));
  const bob = await connect(server, { subprotocol: 'lc.protobuf2.1' });
  const mark = bob.mark();
  await login(bob, b);
  const got = (await bob.quiet(mark)).filter((p) => !p.i);
  assert.deepEqual(got.map((p) => p.cmd), ['direct', 'direct', 'direct'], 'three offline directs and no unread command');
  got.forEach((p, k) => {
    assertPush(p, b);
    const d = p.directMessage;
    assert.equal(d.offline, true);
    assert.equal(d.hasMore ?? false, k < 2, `hasMore on message ${k}`);
    assert.equal(d.id, sent[k].uid);
    assert.equal(d.timestamp, sent[k].t);
    assert.equal(d.cid, cid);
    assert.equal(d.fromPeerId, a);
    assert.equal(d.msg, `stored ${k}`);
  });
  assert.equal(got[1].directMessage.mentionAll, true);
  // once acked they are not pushed again
  bob.send({ cmd: 'ack', i: null, ackMessage: { cid, fromts: sent[0].t, tots: sent[2].t } });
  await eventually(async () => {
    const again = await connect(server, { subprotocol: 'lc.protobuf2.1' });
    const m2 = again.mark();
    await login(again, b);
    const pushed = (await again.quiet(m2)).filter((p) => p.cmd === 'direct');
    await again.close();
    return pushed.length === 0;
  }, 'acked messages are not pushed again');
});

// A member's read/ack position starts at the millisecond it joined; a message sent right
// after the join in that same millisecond must still count as unread / be pushed offline.
// Timing-dependent, so each row tries 30 times (a same-millisecond send happens in a good
// share of them on a local server).
const joinRace = [
  { section: '§3.10', name: 'created with the conversation, lc.protobuf2.3 unread', join: 'start', sub: 'lc.protobuf2.3' },
  { section: '§3.10/§3.12', name: 'added to the conversation, lc.protobuf2.3 unread', join: 'add', sub: 'lc.protobuf2.3' },
  { section: '§3.1/§3.7', name: 'created with the conversation, lc.protobuf2.1 offline push', join: 'start', sub: 'lc.protobuf2.1' },
  { section: '§3.1/§3.12', name: 'added to the conversation, lc.protobuf2.1 offline push', join: 'add', sub: 'lc.protobuf2.1' },
];
for (const c of joinRace) {
  test(`${c.section} a message sent in the millisecond a member joined reaches it (${c.name})`, async () => {
    const misses = [];
    for (let k = 0; k < 30; k++) {
      const [a, b] = [uid('alice'), uid('bob')];
      const alice = await session(server, a);
      let cid;
      let joinedAt;
      if (c.join === 'start') {
        const conv = await startConv(alice, [b]);
        cid = conv.cid;
        joinedAt = conv.cdate;
      } else {
        cid = (await startConv(alice, [uid('carol')])).cid;
        const r = await alice.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [b] } });
        assert.deepEqual(r.convMessage.allowedPids, [b]);
        joinedAt = r.convMessage.udate;
      }
      const sent = await sendMsg(alice, cid, `race ${k}`);
      const bob = await connect(server, { subprotocol: c.sub });
      const mark = bob.mark();
      await login(bob, b);
      const got = await bob.quiet(mark);
      const ok = c.sub === 'lc.protobuf2.3'
        ? got.some((p) => p.cmd === 'unread' && p.unreadMessage.convs.some((t) => t.cid === cid && t.unread === 1 && t.mid === sent.uid))
        : got.some((p) => p.cmd === 'direct' && p.directMessage.id === sent.uid && p.directMessage.offline);
      if (!ok) misses.push({ joinedAt, sentAt: new Date(sent.t).toISOString(), got: got.filter((p) => !p.i).map((p) => p.cmd) });
      await closeAll(server);
    }
    assert.deepEqual(misses, [], `${misses.length}/30 messages were never reported to the member`);
  });
}

test('a burst from one sender reaches members on every worker complete and in order', async () => {
  // 12 members on their own connections land on both workers (SO_REUSEPORT spreads them), so
  // deliveries cross from the sender's worker to the other one through its inbox, while the
  // commits complete in batches (issue #17 reworked both): nothing lost, nothing duplicated,
  // nothing reordered
  const a = uid('burst');
  const ids = Array.from({ length: 12 }, (_, k) => uid(`m${k}`));
  const sender = await session(server, a);
  const members = await Promise.all(ids.map((id) => session(server, id)));
  const { cid } = await startConv(sender, ids);
  await Promise.all(members.map((m) => m.next((p) => p.op === 'joined' && p.convMessage.cid === cid)));
  const N = 60;
  const acks = [];
  for (let k = 0; k < N; k++) acks.push(sender.request({ cmd: 'direct', directMessage: { cid, msg: `burst ${k}` } }));
  for (const r of await Promise.all(acks)) assert.equal(r.cmd, 'ack', JSON.stringify(r));
  for (const [k, m] of members.entries()) {
    const got = [];
    for (let n = 0; n < N; n++) got.push((await m.next((p) => p.cmd === 'direct' && p.directMessage.cid === cid)).directMessage.msg);
    assert.deepEqual(got, Array.from({ length: N }, (_, n) => `burst ${n}`), `member ${k}: every message, in order`);
  }
  await sender.request({ cmd: 'echo' }); // a barrier: anything more would have arrived by now
  for (const m of members) assert.equal(m.pushes.filter((p) => p.cmd === 'direct').length, 0, 'no duplicate');
});

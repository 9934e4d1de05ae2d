// Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/seed-*).
//
//   node tests/fuzz/make_seeds.mjs        (from the repository root; needs tests/node_modules)
//
// Seeds are small, meaningful inputs from the protocol: the official SDKs' own frames
// (tests/unit/data/vectors.jsonl, with the server-invented ids turned into the harness's
// placeholders), hand-built command sequences covering every handler, the WebSocket
// framing corner cases of tests/proto/websocket.test.mjs, HTTP requests for every route
// and every upgrade refusal, the where/sort cases of tests/unit/test_query.c, and config
// files. Regression inputs (regress-*) and whatever fuzzing added are not touched; this
// script only (re)writes seed-* files, so it is safe to run again after changing it.
//
// The input format of each target is described at the top of its fuzz_<target>.c.
import { createHmac } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, readdirSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const pbRoot = new protobuf.Root();
pbRoot.loadSync(join(root, 'proto', 'lc.proto'), { keepCase: true });
const GenericCommand = pbRoot.lookupType('lc.GenericCommand');
const encode = (obj) => Buffer.from(GenericCommand.encode(GenericCommand.fromObject(obj)).finish());

// ---------------------------------------------------------------- placeholders (fuzz_im.h)
const ph = (letter, k, len) => `$${letter}${k}` + '$'.repeat(len - 3);
const CID = (k = 0) => ph('c', k, 24);
const TMP = (k = 0) => ph('t', k, 29);
const MID = (k = 0) => ph('m', k, 22);
const ST = (k = 0) => ph('s', k, 46);
const APP = 'probeAppId0000000000000-gzGzoHsz';
const UNKNOWN_CID = '000000000000000000000000';

const out = {};
function seed(target, name, bytes) {
  (out[target] ??= []).push([`seed-${name}`, Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes)]);
}

// ---------------------------------------------------------------- fuzz_dispatch
// record: flags u8 (bit0 link 1, bit1 base64 text, bit2 hold completions, bit3 v1 socket,
// bit4 socket congested, bit5 store writes fail, bit6 socket drops after, bit7 closes after),
// len u16be, payload
function rec(cmd, { link = 0, text = false, hold = false, v1 = false, congested = false, diskFull = false, drop = false, bye = false } = {}) {
  let payload = Buffer.isBuffer(cmd) ? cmd : encode(cmd);
  if (text) payload = Buffer.from(payload.toString('base64'));
  const flags = (link ? 1 : 0) | (text ? 2 : 0) | (hold ? 4 : 0) | (v1 ? 8 : 0) | (congested ? 16 : 0) | (diskFull ? 32 : 0) |
    (drop ? 64 : 0) | (bye ? 128 : 0);
  return Buffer.concat([Buffer.from([flags, payload.length >> 8, payload.length & 255]), payload]);
}
let serial = 0;
const open = (peerId, extra = {}) => ({
  cmd: 'session', op: 'open', appId: APP, peerId, i: ++serial,
  sessionMessage: { ua: 'js/5.0.0-rc.8', r: false, configBitmap: 59, ...extra },
});
const req = (cmd, fields = {}) => ({ ...cmd, i: ++serial, ...fields });
const dispatch = (name, records) => {
  serial = 0;
  seed('dispatch', name, Buffer.concat(records.map((r) => (Buffer.isBuffer(r) ? r : rec(r)))));
};

const T = 1795642112602; // a timestamp in the vectors' range
const conv = (op, convMessage = {}, extra = {}) => req({ cmd: 'conv', op, convMessage }, extra);
const direct = (cid, msg, fields = {}, extra = {}) => req({ cmd: 'direct', directMessage: { cid, msg, ...fields } }, extra);

{
  serial = 0;
  const r = [];
  r.push(rec(open('Tom')));
  r.push(rec(conv('start', { m: ['Jerry', 'Tom'], attr: { data: '{"name":"Tom & Jerry"}' } })));
  r.push(rec(direct(CID(), '{"_lctext":"hello Jerry","_lctype":-1}', { dt: 'dt-1' })));
  r.push(rec({ cmd: 'ack', peerId: 'Tom', ackMessage: { cid: CID(), fromts: T, tots: T + 1000 } }));
  r.push(rec(req({ cmd: 'logs', logsMessage: { cid: CID(), l: 10, direction: 'OLD' } })));
  r.push(rec({ cmd: 'read', readMessage: { convs: [{ cid: CID(), timestamp: T + 1000, mid: MID() }] } }));
  r.push(rec(req({ cmd: 'session', op: 'close' })));
  seed('dispatch', 'login-start-direct-logs', Buffer.concat(r));
}

dispatch('two-clients-receipts', [
  rec(open('Tom')),
  rec(open('Jerry'), { link: 1 }),
  rec(conv('start', { m: ['Jerry'] })),
  rec(direct(CID(), 'with a receipt', { r: true, mentionPids: ['Jerry'] })),
  rec({ cmd: 'ack', ackMessage: { cid: CID(), mid: MID(), t: T } }, { link: 1 }),
  rec({ cmd: 'read', readMessage: { convs: [{ cid: CID(), mid: MID() }] } }, { link: 1 }),
  rec(req({ cmd: 'logs', logsMessage: { cid: CID(), limit: 5, direction: 'NEW', t: 0, tIncluded: true } }), { link: 1 }),
  rec(conv('max_read', { cid: CID(), queryAllMembers: true })),
  rec(req({ cmd: 'logs', logsMessage: { cid: CID(), mid: MID(), t: T, tmid: MID(), tt: 1, ttIncluded: true, lctype: -1 } })),
  rec(conv('members', { cid: CID() })),
  rec(conv('is_member', { cids: [CID(), UNKNOWN_CID, TMP()] }), { link: 1 }),
]);

dispatch('unique-and-count', [
  rec(open('Tom')),
  rec(conv('start', { m: ['Jerry', 'Tom'], unique: true, attr: { data: '{}' } })),
  rec(conv('start', { m: ['Tom', 'Jerry'], unique: true, attr: { data: '{"name":"again"}' } })),
  rec(conv('count', { cid: CID() })),
  rec(conv('query', { where: { data: `{"objectId":"${CID()}"}` }, flag: 0 })),
]);

dispatch('temporary', [
  rec(open('Tom')),
  rec(conv('start', { m: ['Jerry'], tempConv: true, tempConvTTL: 3600 })),
  rec(direct(TMP(), 'to a temporary conversation')),
  rec(conv('query', { tempConvIds: [TMP(), '_tmp:000000000000000000000000'] })),
  rec(conv('max_read', { cid: TMP() })),
  rec(req({ cmd: 'logs', logsMessage: { cid: TMP() } })),
]);

dispatch('chat-room', [
  rec(open('Tom')),
  rec(open('Jerry'), { link: 1 }),
  rec(conv('start', { transient: true, attr: { data: '{"name":"lobby"}' } })),
  rec(conv('add', { cid: CID(), m: ['Jerry'] }), { link: 1 }),
  rec(direct(CID(), 'hello room', { transient: false }, { priority: 1 })),
  rec(direct(CID(), 'typing', { transient: true }, { priority: 3 }), { link: 1 }),
  rec(conv('members', { cid: CID(), limit: 10 })),
  rec(conv('count', { cid: CID() })),
  rec(conv('remove', { cid: CID(), m: ['Jerry'] }), { link: 1 }),
  rec(req({ cmd: 'logs', logsMessage: { cid: CID(), l: 100 } })),
]);

dispatch('update-mute', [
  rec(open('Tom')),
  rec(conv('start', { m: ['Jerry', 'Spike'], attr: { data: '{"name":"n","attr":{"topic":"a","tags":["x"]},"n":1}' } })),
  rec(conv('update', {
    cid: CID(),
    attr: { data: '{"name":"renamed","attr.topic":"b","attr.tags":{"__op":"AddUnique","objects":["x","y"]},"n":{"__op":"Increment","amount":2},"gone":{"__op":"Delete"},"list":{"__op":"Add","objects":[1,{"k":"v"}]}}' },
  })),
  rec(conv('update', { cid: CID(), attr: { data: '{"attr.tags":{"__op":"Remove","objects":["x"]},"m":["no"],"tr":true}' } })),
  rec(conv('mute', { cid: CID() })),
  rec(conv('unmute', { cid: CID() })),
  rec(conv('query', { where: { data: '{"attr.topic":"b"}' }, sort: '-updatedAt', limit: 5, skip: 0, flag: 1 })),
  rec(conv('remove', { cid: CID(), m: ['Spike'] })),
  rec(conv('add', { cid: CID(), m: ['Tyke', 'Spike'] })),
]);

dispatch('roles-shutup', [
  rec(open('Tom')),
  rec(open('Jerry'), { link: 1 }),
  rec(conv('start', { m: ['Jerry', 'Spike'] })),
  rec(conv('member_info_update', { cid: CID(), targetClientId: 'Jerry', info: { pid: 'Jerry', role: 'Manager' } })),
  rec(conv('add_shutup', { cid: CID(), m: ['Spike', 'Nobody'] }), { link: 1 }),
  rec(conv('query_shutup', { cid: CID(), limit: 1 })),
  rec(conv('check_shutup', { cid: CID(), m: ['Spike'] })),
  rec(conv('remove_shutup', { cid: CID(), m: ['Spike'] })),
  rec(conv('member_info_update', { cid: CID(), info: { pid: 'Jerry', role: 'Member' } })),
  rec(direct(CID(), 'after roles'), { link: 1 }),
]);

dispatch('blacklists', [
  rec(open('Tom')),
  rec(conv('start', { m: ['Jerry', 'Mallory'] })),
  rec(req({ cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: CID(), toPids: ['Mallory'] } })),
  rec(req({ cmd: 'blacklist', op: 'query', blacklistMessage: { srcCid: CID(), limit: 10 } })),
  rec(req({ cmd: 'blacklist', op: 'check_block', blacklistMessage: { srcCid: CID(), toPids: ['Mallory', 'Jerry'] } })),
  rec(req({ cmd: 'blacklist', op: 'unblock', blacklistMessage: { srcCid: CID(), toPids: ['Mallory'] } })),
  rec(req({ cmd: 'blacklist', op: 'block', blacklistMessage: { srcPid: 'Tom', toCids: [CID(), UNKNOWN_CID] } })),
  rec(req({ cmd: 'blacklist', op: 'query', blacklistMessage: { srcPid: 'Tom', limit: 1 } })),
  rec(req({ cmd: 'blacklist', op: 'unblock', blacklistMessage: { srcPid: 'Tom', toCids: [CID()] } })),
]);

dispatch('queries', [
  rec(open('Tom')),
  rec(conv('start', { m: ['Jerry'], attr: { data: '{"name":"a","score":3,"labels":["red"]}' } })),
  rec(conv('start', { m: ['Spike'], attr: { data: '{"name":"b","score":7}' } })),
  rec(conv('query', {})),
  rec(conv('query', { where: { data: '{"m":{"$all":["Tom","Jerry"],"$size":2}}' }, sort: 'name,-createdAt' })),
  rec(conv('query', { where: { data: '{"$or":[{"score":{"$gt":5}},{"labels":"red"}]}' }, limit: 1, skip: 1, flag: 2 })),
  rec(conv('query', { where: { data: '{"name":{"$regex":"^A","$options":"i"}}' }, sort: '-lm' })),
  rec(conv('query', { where: { data: '{"lm":{"$lt":{"__type":"Date","iso":"2030-01-01T00:00:00.000Z"}}}' } })),
  rec(conv('query', { where: { data: 'not json' } })),
  rec(conv('query', { where: { data: '{"$bogus":1}' }, sort: 'm' })),
]);

dispatch('sessions', [
  rec(open('Tom', { tag: 'mobile', deviceId: 'd1' })),
  rec(req({ cmd: 'session', op: 'refresh' })),
  rec(req({ cmd: 'session', op: 'query', sessionMessage: { sessionPeerIds: ['Tom', 'Jerry', 'Nobody'] } })),
  rec(open('Tom', { r: true, st: ST() }), { link: 1 }),
  rec(open('Tom', { r: true, st: 'forged-token' }), { link: 1 }),
  rec(open('Jerry')),
  rec(req({ cmd: 'echo', peerId: 'Jerry' })),
  rec(req({ cmd: 'session', op: 'close', peerId: 'Jerry' })),
  rec(req({ cmd: 'session', op: 'query', peerId: 'Jerry' })),
  rec(open('')),
  rec(open('x'.repeat(65))),
  rec({ cmd: 'session', op: 'open', appId: 'wrong-app', peerId: 'Tom', i: 99 }),
]);

dispatch('offline-v1', [
  rec(open('Tom')),
  rec(conv('start', { m: ['Jerry'] })),
  rec(direct(CID(), 'offline 1')),
  rec(direct(CID(), 'offline 2', { mentionAll: true })),
  rec(direct(CID(), '', { binaryMsg: Buffer.from([0, 1, 2, 255]) })),
  rec(open('Jerry', { lastUnreadNotifTime: 1 }), { link: 1, v1: true }),
  rec({ cmd: 'ack', ackMessage: { cid: CID(), mid: MID(1) } }, { link: 1 }),
]);

dispatch('offline-unread-v3', [
  rec(open('Tom')),
  rec(conv('start', { m: ['Jerry'] })),
  rec(direct(CID(), 'offline 1', { mentionPids: ['Jerry'] })),
  rec(direct(CID(), 'offline 2', { pushData: '{"alert":"hi"}' })),
  rec(open('Jerry', { lastUnreadNotifTime: 0, lastPatchTime: 1 }), { link: 1 }),
  rec({ cmd: 'read', readMessage: { cid: CID() } }, { link: 1 }),
  rec({ cmd: 'read', readMessage: { cids: [CID(), UNKNOWN_CID] } }, { link: 1 }),
]);

dispatch('empty-messages', [
  rec(open('Tom')),
  rec(conv('start', { m: ['Jerry'] })),
  rec(direct(CID(), '')),
  rec(direct(CID(), '', { binaryMsg: Buffer.alloc(0) })),
  rec(direct(CID(), '', { will: true })),
  rec(req({ cmd: 'logs', logsMessage: { cid: CID() } })),
  rec(req({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid: CID(), mid: MID(), data: '' }] } })),
  rec(open('Jerry'), { link: 1, v1: true }),
  rec(open('Spike'), { link: 1 }),
]);

dispatch('patch', [
  rec(open('Tom')),
  rec(open('Jerry'), { link: 1 }),
  rec(conv('start', { m: ['Jerry'] })),
  rec(direct(CID(), 'to be edited')),
  rec(req({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid: CID(), mid: MID(), timestamp: T, data: 'edited', mentionPids: ['Jerry'] }] } })),
  rec(req({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid: CID(), mid: MID(), recall: true }] } })),
  rec({ cmd: 'patch', op: 'modified', patchMessage: { lastPatchTime: T } }, { link: 1 }),
  rec(open('Jerry', { lastPatchTime: 1 }), { link: 1 }),
]);

dispatch('will', [
  rec(open('Tom')),
  rec(conv('start', { m: ['Jerry'] })),
  rec(direct(CID(), 'I was disconnected', { will: true })),
  rec(open('Jerry'), { link: 1 }),
  rec(Buffer.from([0xff, 0xff, 0xff])), // undecodable: im closes link 0 with 4114, the will goes out
]);

dispatch('will-drop-reconnect', [
  rec(open('Tom')),
  rec(open('Jerry'), { link: 1 }),
  rec(conv('start', { m: ['Jerry'] })),
  rec(direct(CID(), 'gone', { will: true }), { drop: true }),
  rec(open('Tom', { r: true, st: ST() })),
  rec(direct(CID(), 'bye', { will: true }), { bye: true }),
  rec(open('Tom', { r: true, st: ST(2) })),
  rec(conv('start', { transient: true })),
  rec(conv('add', { cid: CID(1), m: ['Jerry'] }), { link: 1, drop: true }),
  rec(open('Jerry', { r: true, st: ST(1) }), { link: 1 }),
]);

dispatch('held-completions', [
  rec(open('Tom')),
  rec(conv('start', { m: ['Jerry'] }), { hold: true }),
  rec(direct(CID(), 'before the conversation is stored'), { hold: true }),
  rec(conv('add', { cid: CID(), m: ['Spike'] }), { hold: true }),
  rec(conv('remove', { cid: CID(), m: ['Jerry'] }), { hold: true }),
  rec(direct(CID(), 'racing', { r: true }), { hold: true }),
  rec(req({ cmd: 'session', op: 'close' }), { hold: true }),
  rec(open('Tom')),
]);

dispatch('disk-full', [
  rec(open('Tom')),
  rec(open('Jerry'), { link: 1 }),
  rec(conv('start', { m: ['Jerry'] }), { diskFull: true }),
  rec(conv('start', { m: ['Jerry'], attr: { data: '{"name":"ok"}' } })),
  rec(direct(CID(), 'lost', { r: true }), { diskFull: true }),
  rec(conv('update', { cid: CID(), attr: { data: '{"name":"lost"}' } }), { diskFull: true }),
  rec(conv('add', { cid: CID(), m: ['Spike'] }), { diskFull: true }),
  rec(conv('add_shutup', { cid: CID(), m: ['Jerry'] }), { diskFull: true }),
  rec(req({ cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: CID(), toPids: ['Spike'] } }), { diskFull: true }),
  rec({ cmd: 'read', readMessage: { convs: [{ cid: CID() }] } }, { link: 1, diskFull: true }),
  rec(direct(CID(), 'kept')),
]);

dispatch('room-congested', [
  rec(open('Tom')),
  rec(open('Jerry'), { link: 1 }),
  rec(conv('start', { transient: true })),
  rec(conv('add', { cid: CID(), m: ['Jerry'] }), { link: 1, congested: true }),
  rec(direct(CID(), 'low', {}, { priority: 3 })),
  rec(direct(CID(), 'normal', {}, { priority: 2 })),
  rec(direct(CID(), 'high', {}, { priority: 1 })),
]);

const sweep = (secs) => Buffer.from([0xff, 0, 4, (secs >>> 24) & 255, (secs >>> 16) & 255, (secs >>> 8) & 255, secs & 255]);
dispatch('sweeps', [
  rec(open('Tom')),
  rec(conv('start', { m: ['Jerry'], tempConv: true, tempConvTTL: 60 })),
  rec(conv('start', { m: ['Jerry', 'Spike'] })),
  rec(direct(CID(), 'kept')),
  sweep(3600),
  rec(conv('query', { tempConvIds: [TMP()] })),
  sweep(400 * 86400 - 1),
  rec(conv('query', {})),
  rec(req({ cmd: 'logs', logsMessage: { cid: CID() } })),
]);

dispatch('base64', [
  rec(open('Tom'), { text: true }),
  rec(conv('start', { m: ['Jerry'] }), { text: true }),
  rec(direct(CID(), 'in base64'), { text: true }),
  rec(Buffer.from('@@@@'), { text: false, link: 1 }),
]);

dispatch('misc-commands', [
  rec(req({ cmd: 'direct', directMessage: { cid: UNKNOWN_CID, msg: 'before login' } })),
  rec(open('Tom')),
  rec(req({ cmd: 'echo' })),
  rec(req({ cmd: 'presence', presenceMessage: { status: 'on' } })),
  rec(req({ cmd: 'room', roomMessage: { roomId: 'r' } })),
  rec(req({ cmd: 'login' })),
  rec(req({ cmd: 'conv', op: 'join', convMessage: { cid: UNKNOWN_CID } })),
  rec(req({ cmd: 'report', reportMessage: { initiative: true, type: 'token', data: 'x' } })),
  rec(req({ cmd: 'conv', op: 'update', convMessage: { cid: UNKNOWN_CID, attr: { data: '[]' } } })),
  rec(req({ cmd: 'logs', logsMessage: {} })),
  rec(req({ cmd: 'direct', directMessage: { cid: UNKNOWN_CID, msg: 'x'.repeat(6000) } })),
  rec(Buffer.alloc(0)),
]);

// Issue #11 limits: documents nested past 64 levels, past max_conv_doc, text that is not
// UTF-8 (a command encoded with a same-length hole, then the hole overwritten).
{
  const nest = (n) => '['.repeat(n) + ']'.repeat(n);
  const holed = (cmd, hole, bytes) => {
    const buf = encode(cmd);
    Buffer.from(bytes).copy(buf, buf.indexOf(Buffer.from(hole)));
    return buf;
  };
  const BAD = [0x61, 0xff, 0xfe, 0x62, 0xc3, 0x28, 0xed, 0xa0, 0x80];
  const chunk = 'y'.repeat(7000);
  dispatch('json-limits', [
    rec(open('Tom')),
    rec(conv('start', { m: ['Jerry'], attr: { data: `{"k":${nest(63)}}` } })),
    rec(conv('start', { m: ['Jerry'], attr: { data: `{"k":${nest(64)}}` } })),
    rec(conv('update', { cid: CID(), attr: { data: `{"k":${nest(64)}}` } })),
    rec(conv('update', { cid: CID(), attr: { data: `{"${Array.from({ length: 60 }, (_, k) => `s${k}`).join('.')}":${nest(5)}}` } })),
    rec(conv('update', { cid: CID(), attr: { data: '{"a.b.c":1,"a.b":{"__op":"Delete"},"k\\"q":2,"odd\\"[":3,"n":{"__op":"Increment","amount":1}}' } })),
    ...Array.from({ length: 10 }, (_, k) => rec(conv('update', { cid: CID(), attr: { data: JSON.stringify({ [`c${k}`]: chunk }) } }))),
    rec(conv('update', { cid: CID(), attr: { data: '{"c0":{"__op":"Delete"},"c1":{"__op":"Delete"}}' } })),
    rec(conv('mute', { cid: CID() })),
    rec(direct(CID(), 'ok', { pushData: `{"k":${nest(64)}}` })),
    rec(holed(direct(CID(), 'HOLEHOLEH'), 'HOLEHOLEH', BAD)),
    rec(direct(CID(), 'to edit')),
    rec(holed(req({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid: CID(), mid: MID(), timestamp: T, data: 'HOLEHOLEH' }] } }), 'HOLEHOLEH', BAD)),
    rec(conv('query', { where: { data: '{"k":{"$exists":true},"s0":{"$regex":"(*LIMIT_MATCH=4000000000)(*NO_START_OPT)(a|aa)*b"}}' }, sort: 'n' })),
    rec(conv('query', { where: { data: `{"k":${nest(70)}}` } })),
  ]);
}

// The official SDKs' frames (vectors.jsonl), one seed per captured connection: the cids,
// message ids they name become placeholders, so the fuzzer starts from real bytes.
{
  const lines = readFileSync(join(root, 'tests', 'unit', 'data', 'vectors.jsonl'), 'utf8').split('\n').filter(Boolean);
  const conns = [];
  for (const l of lines) {
    const v = JSON.parse(l);
    if (v.dir !== 'C->S') continue;
    if (v.command.cmd === 'session' && v.command.op === 'open' && v.command.i === 1) conns.push([]);
    if (!conns.length) conns.push([]);
    conns[conns.length - 1].push(v);
  }
  conns.forEach((frames, k) => {
    const ids = new Map();
    const bufs = frames.map((v) => {
      let b = Buffer.from(v.hex, 'hex');
      let s = b.toString('latin1');
      for (const m of s.matchAll(/[0-9a-f]{24}/g)) if (!ids.has(m[0]) && ids.size < 4) ids.set(m[0], CID(ids.size));
      for (const [id, p] of ids) s = s.split(id).join(p);
      return rec(Buffer.from(s, 'latin1'), { text: v.frame === 'text' });
    });
    seed('dispatch', `sdk-${frames[0].sdk.replace(/[^a-z0-9.]/gi, '_')}-${k}`, Buffer.concat(bufs));
  });
}

// ---------------------------------------------------------------- fuzz_ws_frame
// chunk u8, mode u8 (bit0 base64, bit1 v1), client frames
const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };
function frame(opcode, payload = Buffer.alloc(0), { fin = true, mask = [0, 0, 0, 0], rsv = 0, lengthBytes } = {}) {
  const p = Buffer.isBuffer(payload) ? Buffer.from(payload) : Buffer.from(payload);
  const head = [(fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f)];
  const m = mask ? 0x80 : 0;
  const lb = lengthBytes ?? (p.length < 126 ? 0 : p.length < 65536 ? 2 : 8);
  if (lb === 0) head.push(m | p.length);
  else if (lb === 2) head.push(m | 126, (p.length >> 8) & 0xff, p.length & 0xff);
  else {
    head.push(m | 127);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(p.length));
    head.push(...b);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), p]);
  for (let i = 0; i < p.length; i++) p[i] ^= mask[i & 3];
  return Buffer.concat([Buffer.from(head), Buffer.from(mask), p]);
}
const ws = (name, frames, { chunk = 0, base64 = false, v1 = false } = {}) =>
  seed('ws_frame', name, Buffer.concat([Buffer.from([chunk, (base64 ? 1 : 0) | (v1 ? 2 : 0)]), ...frames]));
serial = 0;
const login = frame(OP.BINARY, encode(open('Tom')));
const echo = frame(OP.BINARY, encode({ cmd: 'echo', i: 7 }));
ws('login-echo', [login, echo]);
ws('login-echo-bytewise', [login, echo], { chunk: 1 });
ws('login-echo-chunk5', [login, echo], { chunk: 5 });
ws('base64', [frame(OP.TEXT, encode(open('Tom')).toString('base64')), frame(OP.TEXT, encode({ cmd: 'echo', i: 2 }).toString('base64'))], { base64: true });
ws('v1-binary', [login], { v1: true });
ws('masked', [frame(OP.BINARY, encode(open('Tom')), { mask: [0x12, 0x34, 0x56, 0x78] }), frame(OP.PING, 'p', { mask: [1, 2, 3, 4] })]);
{
  const e = encode({ cmd: 'echo', i: 3 });
  ws('fragmented', [login, frame(OP.BINARY, e.subarray(0, 2), { fin: false }), frame(OP.PING, 'mid'), frame(OP.CONT, e.subarray(2, 3), { fin: false }), frame(OP.CONT, e.subarray(3))]);
  ws('fragmented-text', [frame(OP.TEXT, 'CAAQASgC', { fin: false }), frame(OP.CONT, '')], { base64: true });
}
ws('ping-pong', [frame(OP.PING, 'hello'), frame(OP.PONG, 'x'), frame(OP.PING)]);
ws('close-code', [login, frame(OP.CLOSE, Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65])), echo]);
ws('close-empty', [frame(OP.CLOSE)]);
ws('close-4000', [frame(OP.CLOSE, Buffer.from([0x0f, 0xa0]))]);
ws('heartbeat-empty', [frame(OP.BINARY), frame(OP.TEXT), echo]);
ws('len16', [login, frame(OP.BINARY, encode(req({ cmd: 'echo', peerId: 'x'.repeat(200) })))]);
ws('len64-too-long', [Buffer.from([0x82, 0xff, 0, 0, 0, 0, 0, 1, 0x11, 0x70, 0, 0, 0, 0]), Buffer.alloc(32)]);
ws('len16-too-long', [frame(OP.BINARY, Buffer.alloc(8193))]);
ws('len16-nonminimal', [frame(OP.BINARY, 'abc', { lengthBytes: 2 })]);
ws('len64-nonminimal', [frame(OP.BINARY, 'abc', { lengthBytes: 8 })]);
ws('unmasked', [frame(OP.BINARY, encode({ cmd: 'echo', i: 1 }), { mask: null })]);
ws('rsv-bits', [frame(OP.BINARY, 'x', { rsv: 4 })]);
ws('bad-opcode', [frame(3, 'x')]);
ws('long-ping', [frame(OP.PING, Buffer.alloc(126))]);
ws('fragmented-ping', [frame(OP.PING, 'x', { fin: false })]);
ws('stray-continuation', [frame(OP.CONT, 'x')]);
ws('data-in-fragment', [frame(OP.BINARY, 'a', { fin: false }), frame(OP.BINARY, 'b')]);
ws('undecodable', [login, frame(OP.BINARY, Buffer.from([0xff, 0xff, 0xff, 0xff]))]);
ws('bad-base64', [frame(OP.TEXT, '@@@@')], { base64: true });
ws('fragments-over-limit', [frame(OP.BINARY, Buffer.alloc(5000), { fin: false }), frame(OP.CONT, Buffer.alloc(4000), { fin: false })]); // max_frame is 8192 in the harness
{
  // a conversation and a message, so pushes and acks come back framed
  serial = 0;
  const f = [open('Tom'), conv('start', { m: ['Tom', 'Jerry'] }), direct(CID(), 'hi'), req({ cmd: 'logs', logsMessage: { cid: CID() } })];
  ws('conversation', f.map((c) => frame(OP.BINARY, encode(c))));
  ws('conversation-base64', f.map((c) => frame(OP.TEXT, encode(c).toString('base64'))), { base64: true, chunk: 7 });
}

// ---------------------------------------------------------------- fuzz_http
// chunk u8, then the byte stream
const http = (name, text, { chunk = 0, tail = [] } = {}) =>
  seed('http', name, Buffer.concat([Buffer.from([chunk]), Buffer.from(text, 'latin1'), ...tail]));
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const upgrade = (proto = 'lc.protobuf2.3', extra = '', path = '/') =>
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${proto}\r\n${extra}\r\n`;
serial = 0;
http('upgrade-then-frames', upgrade(), { tail: [login, echo] });
http('upgrade-then-frames-bytewise', upgrade(), { chunk: 1, tail: [login, echo] });
http('upgrade-base64', upgrade('lc.proto2base64.3'), { tail: [frame(OP.TEXT, encode(open('Tom')).toString('base64'))] });
http('upgrade-offer-list', upgrade('lc.json.3, lc.proto2base64.1, lc.protobuf2.1'));
http('upgrade-keep-alive-upgrade', upgrade('lc.protobuf2.2').replace('Connection: Upgrade', 'Connection: keep-alive, Upgrade'), { chunk: 3 });
http('upgrade-bad-version', upgrade().replace('Version: 13', 'Version: 8'));
http('upgrade-no-key', upgrade().replace(`Sec-WebSocket-Key: ${KEY}\r\n`, ''));
http('upgrade-short-key', upgrade().replace(KEY, 'abc'));
http('upgrade-bad-protocol', upgrade('mqtt'));
http('upgrade-no-protocol', upgrade().replace('Sec-WebSocket-Protocol: lc.protobuf2.3\r\n', ''));
http('upgrade-post', upgrade().replace('GET', 'POST'));
http('upgrade-no-connection', upgrade().replace('Connection: Upgrade\r\n', ''));
http('health', 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
http('route', `GET /v1/route?appId=${APP}&secure=1 HTTP/1.1\r\nHost: x\r\n\r\n`);
http('pipelined', 'GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/route HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /health HTTP/1.1\r\n\r\n', { chunk: 9 });
http('options', 'OPTIONS /1.1/rtm/notifications HTTP/1.1\r\nOrigin: http://a\r\nAccess-Control-Request-Method: GET\r\n\r\n');
http('notifications', `GET /1.1/rtm/notifications?client_id=Tom&limit=10 HTTP/1.1\r\nX-LC-Id: ${APP}\r\nX-LC-Key: fuzz-app-key\r\nX-LC-IM-Session-Token: ${ST()}\r\n\r\n`);
http('notifications-bad-token', `GET /1.1/rtm/notifications?client_id=Tom HTTP/1.1\r\nX-LC-Id: ${APP}\r\nX-LC-Key: fuzz-app-key\r\nX-LC-IM-Session-Token: nope\r\n\r\n`);
http('member-infos', `GET /1.1/classes/_ConversationMemberInfo?client_id=Tom&where=%7B%22cid%22%3A%22${UNKNOWN_CID}%22%7D&limit=5&skip=0&order=-updatedAt HTTP/1.1\r\nX-LC-Id: ${APP}\r\nX-LC-Key: fuzz-master-key-0123456789abcdef,master\r\nX-LC-IM-Session-Token: ${ST()}\r\n\r\n`);
http('member-infos-app-key', `GET /1.1/classes/_ConversationMemberInfo?where={} HTTP/1.1\r\nX-LC-Id: ${APP}\r\nX-LC-Key: wrong\r\n\r\n`);
http('not-found', 'GET /nope%20here?a=b+c&d=%zz HTTP/1.1\r\n\r\n');
http('method', 'DELETE /health HTTP/1.1\r\n\r\n');
http('post-body', 'POST /health HTTP/1.1\r\nContent-Length: 11\r\n\r\n{"a":"b"}\r\n');
http('chunked', 'POST /v1/route HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
http('body-too-large', 'POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n');
http('http10', 'GET /health HTTP/1.0\r\n\r\n');
http('garbage', 'HELLO\r\n\r\n');
http('many-headers', 'GET / HTTP/1.1\r\n' + Array.from({ length: 70 }, (_, k) => `X-H${k}: v\r\n`).join('') + '\r\n');
http('split-header-values', 'GET /health HTTP/1.1\r\nX-Long: ' + 'a'.repeat(300) + '\r\n\r\n', { chunk: 17 });

// The REST API (master key), one keep-alive connection per seed: each request can use the
// ids the answers before it returned (learned from quoted strings in the bodies).
const MASTER = 'fuzz-master-key-0123456789abcdef';
const rest = (method, path, body, { auth = 'master', extra = '' } = {}) => {
  const b = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
  const key = auth === 'master' ? `X-LC-Key: ${MASTER},master\r\n` : auth === 'app' ? 'X-LC-Key: fuzz-app-key\r\n' : '';
  return `${method} ${path} HTTP/1.1\r\nHost: x\r\nX-LC-Id: ${APP}\r\n${key}${extra}` +
    (b ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(b)}\r\n` : '') + `\r\n${b}`;
};
const C = '/1.2/rtm/conversations';
http('rest-conversation', [
  rest('POST', C, { name: 'n', m: ['Tom', 'Jerry'], unique: true, attr: { topic: 'x' } }),
  rest('GET', `${C}/${CID()}`),
  rest('GET', `${C}?where=${encodeURIComponent('{"m":"Tom"}')}&limit=10&skip=0&order=-updatedAt`),
  rest('PUT', `${C}/${CID()}`, { name: 'renamed', attr: { topic: 'y' }, tags: { __op: 'AddUnique', objects: ['a'] } }),
  rest('POST', `${C}/${CID()}/members`, { client_ids: ['Spike', 'Tyke'] }),
  rest('GET', `${C}/${CID()}/members?limit=1`),
  rest('DELETE', `${C}/${CID()}/members`, { client_ids: ['Tyke'] }),
  rest('POST', `${C}/${CID()}/mutes`, { client_ids: ['Jerry'] }),
  rest('GET', `${C}/${CID()}/mutes`),
  rest('DELETE', `${C}/${CID()}/mutes`, { client_ids: ['Jerry'] }),
  rest('DELETE', `${C}/${CID()}`),
].join(''));
http('rest-json-limits', [
  rest('POST', C, `{"name":"deep","m":["Tom"],"d":${'['.repeat(64)}${']'.repeat(64)}}`),
  rest('POST', C, { name: 'big', m: ['Tom'], big: 'z'.repeat(70000) }),
  rest('POST', C, { name: 'ok', m: ['Tom', 'Jerry'] }),
  rest('PUT', `${C}/${CID()}`, `{"d":${'['.repeat(64)}${']'.repeat(64)}}`),
  rest('PUT', `${C}/${CID()}`, { one: 'w'.repeat(40000) }),
  rest('PUT', `${C}/${CID()}`, { two: 'w'.repeat(40000) }),
  rest('GET', `${C}?where=${encodeURIComponent(`{"d":${'['.repeat(70)}${']'.repeat(70)}}`)}`),
  rest('GET', `${C}?where=${encodeURIComponent('{"name":{"$regex":"(*NO_START_OPT)(a|aa)*b"}}')}&order=name`),
  rest('POST', `${C}/${CID()}/messages`, `{"from_client":"Tom","message":"x","push_data":{"a":${'['.repeat(64)}${']'.repeat(64)}}}`),
].join(''));
http('rest-messages', [
  rest('POST', C, { name: 'm', m: ['Tom', 'Jerry'] }),
  rest('POST', `${C}/${CID()}/messages`, { from_client: 'Tom', message: '{"_lctype":-1,"_lctext":"hi"}', transient: false, no_sync: true, push_data: { alert: 'hi' }, mention_client_ids: ['Jerry'], mention_all: false, priority: 'high' }),
  rest('POST', `${C}/${CID()}/messages`, { from_client: 'Jerry', message: 'second', to_clients: ['Tom'] }),
  rest('GET', `${C}/${CID()}/messages?limit=10&reversed=true&include_start=true&msgid=${MID()}`),
  rest('PUT', `${C}/${CID()}/messages/${MID()}`, { from_client: 'Tom', message: 'edited', timestamp: 1 }),
  rest('PUT', `${C}/${CID()}/messages/${MID()}/recall`, { from_client: 'Tom', timestamp: 1 }),
  rest('DELETE', `${C}/${CID()}/messages/${MID(1)}?timestamp=1&from_client=Jerry`),
  rest('GET', '/1.2/rtm/messages?limit=5'),
  rest('GET', '/1.2/rtm/clients/Tom/messages?limit=5&till_timestamp=99999999999999'),
  rest('GET', '/1.2/rtm/clients/Jerry/unread-count'),
].join(''));
http('rest-sets', [
  rest('POST', C, { name: 's', m: ['Tom', 'Jerry', 'Spike'] }),
  rest('POST', `${C}/${CID()}/blacklists`, { client_ids: ['Spike'] }),
  rest('GET', `${C}/${CID()}/blacklists?limit=10&next=`),
  rest('DELETE', `${C}/${CID()}/blacklists`, { client_ids: ['Spike'] }),
  rest('POST', `${C}/${CID()}/permanent-silenceds`, { client_ids: ['Jerry'] }),
  rest('GET', `${C}/${CID()}/permanent-silenceds`),
  rest('DELETE', `${C}/${CID()}/permanent-silenceds`, { client_ids: ['Jerry'] }),
  rest('POST', `${C}/${CID()}/temporary-silenceds`, { client_ids: ['Jerry'], ttl: 60 }),
  rest('DELETE', `${C}/${CID()}/temporary-silenceds`, { client_ids: ['Jerry'] }),
  rest('POST', `${C}/${CID()}/member-infos`, { client_id: 'Jerry', role: 'Manager' }),
  rest('GET', `${C}/${CID()}/member-infos?client_id=Jerry`),
].join(''));
http('rest-rooms-services', [
  rest('POST', '/1.2/rtm/chatrooms', { name: 'room' }),
  rest('GET', `/1.2/rtm/chatrooms/${CID()}/members/online-count`),
  rest('POST', '/1.2/rtm/service-conversations', { name: 'svc' }),
  rest('POST', `/1.2/rtm/service-conversations/${CID(1)}/subscribers`, { client_id: 'Tom' }),
  rest('GET', `/1.2/rtm/service-conversations/${CID(1)}/subscribers/count`),
  rest('POST', `/1.2/rtm/service-conversations/${CID(1)}/broadcasts`, { from_client: 'svc', message: 'news', to_clients: ['Tom'] }),
  rest('GET', '/1.2/rtm/clients/Tom/service-conversations'),
  rest('DELETE', `/1.2/rtm/service-conversations/${CID(1)}/subscribers/Tom`),
  rest('POST', '/1.2/rtm/broadcasts', { from_client: 'sys', message: 'all', valid_till: 99999999999999 }),
  rest('GET', '/1.2/rtm/broadcasts'),
  rest('DELETE', `/1.2/rtm/broadcasts/${MID()}`),
].join(''));
http('rest-clients', [
  rest('POST', '/1.2/rtm/clients/check-online', { client_ids: ['Tom', 'Jerry'] }),
  rest('POST', '/1.2/rtm/clients/Tom/kick', { reason: 'bye' }),
  rest('GET', '/1.2/rtm/clients/sign?client_id=Tom'),
  rest('GET', '/1.2/rtm/stats'),
  rest('GET', '/1.2/rtm/all-conversations?limit=2'),
  rest('GET', '/metrics'),
  rest('POST', '/1.1/installations', { deviceType: 'ios', deviceToken: 'abc', channels: ['x'] }, { auth: 'app' }),
  rest('POST', '/debug/faults', { store_fail: true }),
  rest('POST', '/1.1/rtm/sign', { session_token: 'x', client_id: 'Tom' }), // 501 closes the connection
].join(''));
http('rest-sign-header', rest('GET', '/1.2/rtm/stats', undefined, { auth: 'none', extra: 'X-LC-Sign: 0123456789abcdef0123456789abcdef,1795654081298,master\r\n' }));
http('rest-bad-bodies', [
  rest('POST', C, '{"m":'),
  rest('POST', C, '[]'),
  rest('POST', C, { m: 'Tom', name: 7, unique: 'yes' }),
  rest('POST', `${C}/${UNKNOWN_CID}/messages`, { from_client: 7, message: null }),
  rest('PUT', `${C}/%zz`, {}),
].join(''));
http('rest-app-key', rest('GET', `${C}`, undefined, { auth: 'app' }));
http('rest-empty-message', [
  rest('POST', C, { name: 'e', m: ['Tom', 'Jerry'] }),
  rest('POST', `${C}/${CID()}/messages`, { from_client: 'Tom', message: '' }),
  rest('GET', `${C}/${CID()}/messages?limit=10`),
  rest('GET', '/1.2/rtm/messages?limit=10'),
  rest('GET', '/1.2/rtm/clients/Tom/messages?limit=10'),
].join(''));

// File storage: uploads (raw and the old SDK's JSON), metadata, ranged and HEAD downloads,
// deletion, and the upload-token flow. An upload token is signed with the harness's master
// key, so the seed carries a valid one (it expires in 2100) for the fuzzer to mutate.
const PNG_1X1 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC';
const FILE_ID = 'f0f0f0f0f0f0f0f0f0f0f0f0';
const uploadToken = (claims) => {
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const mac = createHmac('sha256', MASTER).update(`tern file upload token\n${payload}`).digest('hex');
  return `${payload}.${mac}`;
};
const TOKEN = uploadToken({ id: FILE_ID, exp: 4102444800000, name: 'seed.png', mime: 'image/png', meta: { owner: 'Tom' } });
const raw = (method, path, body, headers = '') =>
  `${method} ${path} HTTP/1.1\r\nHost: x\r\n${headers}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
http('rest-files', [
  raw('POST', '/1.1/files/notes.txt', 'some text\n', `X-LC-Id: ${APP}\r\nX-LC-Key: fuzz-app-key\r\nContent-Type: text/plain\r\n`),
  rest('GET', `/1.1/files/${CID()}`, undefined, { auth: 'app' }),
  rest('GET', `/files/${CID()}/notes.txt`, undefined, { auth: 'none', extra: 'Range: bytes=2-5\r\n' }),
  rest('HEAD', `/files/${CID()}`, undefined, { auth: 'none' }),
  rest('GET', `/files/${CID()}`, undefined, { auth: 'none', extra: 'Range: bytes=99-\r\n' }),
  rest('POST', '/1.1/files', { base64: PNG_1X1, name: 'dot.png', mime_type: 'image/png', metaData: { owner: 'Tom' } }, { auth: 'app' }),
  rest('GET', `/files/${CID(1)}`, undefined, { auth: 'none' }),
  rest('DELETE', `/1.1/files/${CID()}`),
  rest('GET', `/files/${CID()}`, undefined, { auth: 'none' }),
].join(''));
http('rest-file-tokens', [
  rest('POST', '/1.1/fileTokens', { name: 'a.png', metaData: { size: 3, owner: 'unknown' } }, { auth: 'app' }),
  raw('PUT', `/1.1/fileUploads/${FILE_ID}?token=${TOKEN}`, 'not really a png', 'Content-Type: image/png\r\n'),
  raw('PUT', `/1.1/fileUploads/${FILE_ID}?token=${TOKEN}`, 'again', 'Content-Type: image/png\r\n'),
  rest('GET', `/files/${FILE_ID}/seed.png`, undefined, { auth: 'none' }),
  rest('POST', '/1.1/fileCallback', { token: TOKEN, result: false }, { auth: 'app' }),
  rest('GET', `/1.1/files/${FILE_ID}`, undefined, { auth: 'app' }),
  raw('PUT', `/1.1/fileUploads/${FILE_ID}?token=${TOKEN.slice(0, -1)}0`, 'forged'),
  rest('POST', '/1.1/fileCallback', { token: 'x.y', result: true }, { auth: 'app' }),
].join(''));

// The import API (docs/migrate-api.md): an NDJSON body of every record kind and some bad
// lines, a replay, a rehosted file; then the storage-class reads an importer makes.
const ndjson = (lines) => lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n');
const IMP_CID = 'a0a0a0a0a0a0a0a0a0a0a0a0';
const IMPORT_BODY = ndjson([
  { type: 'conversation', objectId: IMP_CID, name: 'imported', m: ['Tom', 'Jerry'], c: 'Tom', mu: ['Jerry'], unique: true,
    uniqueId: '6c7b0e5afcae9aa1139a0afa25833dec', createdAt: '2024-01-01T00:00:00.000Z', updatedAt: { __type: 'Date', iso: '2024-01-02T00:00:00.000Z' },
    lm: { __type: 'Date', iso: '2024-01-03T00:00:00.000Z' }, color: 'red' },
  { type: 'conversation', objectId: 'b0b0b0b0b0b0b0b0b0b0b0b0', sys: true, name: 'svc' },
  { type: 'message', cid: IMP_CID, 'msg-id': 'vdkGm4dtRNmhQ5gqUTFBiA', timestamp: 1704240000000, from: 'Tom', data: '{"_lctype":-1,"_lctext":"hi"}', 'mention-pids': ['Jerry'] },
  { type: 'message', cid: IMP_CID, 'msg-id': 'qNkRkFWOeSqP65S9fDyHJw', timestamp: 1704240000000, from: 'Jerry', data: 'AAEC/w==', bin: true },
  { type: 'message', cid: IMP_CID, 'msg-id': 'zzzzzzzzzzzzzzzzzzzzzw', timestamp: 1704240001000, from: 'Tom', data: '{"_lctype":-127}', recalled: true, 'patch-timestamp': 1704240002000 },
  { type: 'member_roles', cid: IMP_CID, roles: { Jerry: 'Manager' } },
  { type: 'shutup', cid: IMP_CID, clients: ['Jerry'] },
  { type: 'blacklist', cid: IMP_CID, clients: ['Spike'] },
  { type: 'mutes', cid: IMP_CID, clients: ['Tom'] },
  { type: 'subscribers', cid: 'b0b0b0b0b0b0b0b0b0b0b0b0', clients: ['Tom'], replace: true },
  { type: 'installation', objectId: 'inst0', deviceType: 'ios', deviceToken: 'abcdef', channels: ['Tom'], badge: 1 },
  { type: 'file', objectId: 'c0c0c0c0c0c0c0c0c0c0c0c0', name: 'x.png', url: 'https://example.com/x.png', mime_type: 'image/png', metaData: { size: 3 } },
  '{"type":"message"',
  { type: 'nonsense' },
]);
const ndjsonPost = (body) => `POST /1.2/import/records HTTP/1.1\r\nHost: x\r\nX-LC-Id: ${APP}\r\nX-LC-Key: ${MASTER},master\r\n` +
  `Content-Type: application/x-ndjson\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
http('rest-import', [
  ndjsonPost(IMPORT_BODY),
  ndjsonPost(IMPORT_BODY),
  raw('PUT', '/1.2/import/files/c0c0c0c0c0c0c0c0c0c0c0c0', 'png bytes', `X-LC-Id: ${APP}\r\nX-LC-Key: ${MASTER},master\r\nContent-Type: image/png\r\n` +
    'X-Tern-File-Name: x%20y.png\r\nX-Tern-Created-At: 2024-01-01T00:00:00.000Z\r\nX-Tern-Meta: {"owner":"Tom"}\r\n'),
  rest('GET', `${C}/${IMP_CID}/messages?limit=2&msgid=qNkRkFWOeSqP65S9fDyHJw&timestamp=1704240000000`),
].join(''));
http('rest-classes', [
  ndjsonPost(IMPORT_BODY),
  rest('GET', `/1.1/classes/_Conversation?count=1&limit=2&skip=1&order=-updatedAt&where=${encodeURIComponent('{"updatedAt":{"$gt":{"__type":"Date","iso":"2020-01-01T00:00:00.000Z"}},"objectId":{"$gt":"0"}}')}`),
  rest('GET', `/1.1/classes/_Conversation/${IMP_CID}`),
  rest('GET', `/1.1/classes/_Installation?count=1&order=updatedAt,-objectId&where=${encodeURIComponent('{"badge":{"$gte":1},"channels":"Tom","deviceType":{"$in":["ios"]},"x":{"$exists":false}}')}`),
  rest('GET', '/1.1/installations?limit=0&count=1'),
  rest('GET', `/1.1/classes/_File?order=objectId&where=${encodeURIComponent('{"objectId":{"$gt":"0"}}')}`),
  rest('GET', `/1.1/files?order=-createdAt&where=${encodeURIComponent('{"metaData.size":{"$lt":9},"name":{"$ne":"y"}}')}`),
  rest('GET', '/1.1/classes/_File/c0c0c0c0c0c0c0c0c0c0c0c0'),
].join(''));

// ---------------------------------------------------------------- fuzz_where
// where-JSON, NUL, sort, NUL, flags byte
{
  const src = readFileSync(join(root, 'tests', 'unit', 'test_query.c'), 'utf8');
  const cstr = (s) => s.replace(/\\(["\\])/g, '$1');
  const lit = '"((?:[^"\\\\]|\\\\.)*)"';
  const seen = new Set();
  let k = 0;
  const add = (where, sort, flags) => {
    const key = `${where}\0${sort ?? ''}`;
    if (seen.has(key)) return;
    seen.add(key);
    const parts = [Buffer.from(where)];
    if (sort !== undefined) parts.push(Buffer.from([0]), Buffer.from(sort));
    if (flags !== undefined) parts.push(Buffer.from([0, flags]));
    seed('where', `test-query-${String(k++).padStart(3, '0')}`, Buffer.concat(parts));
  };
  for (const m of src.matchAll(new RegExp(`expect_(?:set|reject)\\(\\s*(?:db,\\s*)?${lit}`, 'g'))) add(cstr(m[1]));
  for (const m of src.matchAll(new RegExp(`expect_order\\(db,\\s*${lit},\\s*${lit}`, 'g'))) add(cstr(m[1]), cstr(m[2]), 2);
}
seed('where', 'empty', '');
seed('where', 'null-sort', Buffer.concat([Buffer.from('null'), Buffer.from([0]), Buffer.from('-lm,name'), Buffer.from([0, 1])]));
seed('where', 'deep-or', '{"$or":[{"$and":[{"a":1},{"$or":[{"b":{"$in":[1,"x",null]}},{"c":{"$exists":false}}]}]},{"m":{"$size":0}}]}');
seed('where', 'deep-value-65', `{"a":${'['.repeat(64)}${']'.repeat(64)}}`);
seed('where', 'regex-inline-limits', Buffer.concat([Buffer.from('{"name":{"$regex":"(*LIMIT_MATCH=4000000000)(*LIMIT_DEPTH=4000000000)(*NO_START_OPT)(a|aa)*b"}}'), Buffer.from([0]), Buffer.from('attr.level'), Buffer.from([0, 0])]));
seed('where', 'regex-catastrophic', '{"name":{"$regex":"(a+)+$","$options":"imxs"}}');

// ---------------------------------------------------------------- fuzz_config
// file text [NUL arg NUL arg ...]
const cfg = (name, text, args = []) =>
  seed('config', name, Buffer.concat([Buffer.from(text), ...args.map((a) => Buffer.concat([Buffer.from([0]), Buffer.from(a)]))]));
cfg('full', '# ternd\nlisten = 0.0.0.0:8080\ndata_dir = "/var/lib/tern"\nworkers = 4\nidle_timeout = 300\nlog-level = debug\nLOG_FRAMES = yes\nmax_frame=1024 # min\n');
cfg('bad-int', 'workers = 4x\n');
cfg('out-of-range', 'max_members = 1\n');
cfg('unknown', 'nope = 1\n');
cfg('no-equals', 'listen\n');
cfg('bool-words', 'log_frames = off\nlog_frames = TRUE\nlog_frames = maybe\n');
cfg('quoted-empty', 'app_id = ""\nmaster_key = "\n');
cfg('crlf', 'workers = 2\r\nstore_sync = full\r\n');
cfg('flags', '', ['--workers=2', '--log-frames', '--listen', '127.0.0.1:0', '--max_frame=16777216']);
cfg('flags-bad', '', ['--workers', 'many', 'stray']);
cfg('flags-help', 'workers = 1', ['--help']);
cfg('flags-missing-value', '', ['--listen']);
cfg('flags-markdown', '', ['--options-markdown']);
cfg('flags-unknown', '', ['--bogus', '--bogus=1', '--listen=127.0.0.1:0']);
cfg('flags-misspelt-bool', '', ['--sign-loginn', '--listen', '127.0.0.1:0']);
cfg('flags-odd', '', ['--', '--=1', `--${'x'.repeat(80)}=1`, '--LOG-LEVEL=debug']);
cfg('limits', 'max_conns = 0\nmax_conns_per_ip = 1000\noutput_limit_ip = 68719476736\noutput_limit_total = 68719476737\nlog_file = /dev/null\n');

// ---------------------------------------------------------------- write
for (const [target, files] of Object.entries(out)) {
  const dir = join(here, 'corpus', target);
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) if (f.startsWith('seed-')) unlinkSync(join(dir, f));
  for (const [name, bytes] of files) writeFileSync(join(dir, name), bytes);
  console.log(`${target}: ${files.length} seeds`);
}

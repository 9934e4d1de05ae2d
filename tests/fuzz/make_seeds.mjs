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

// Issue #11, the rest of its limits (docs/security.md "Limits and their defaults"), each at,
// under and over where that makes sense. The harness lowers max_conv_doc to 4096,
// max_message to 2048 and max_queries_per_ip to 6 (fuzz_im.c) so the limits sit within a short input.
{
  const holed = (cmd, hole, bytes) => {
    const buf = encode(cmd);
    Buffer.from(bytes).copy(buf, buf.indexOf(Buffer.from(hole)));
    return buf;
  };
  const HOLE = 'HOLEHOLEH';
  const BAD_UTF8 = [0x61, 0xff, 0xfe, 0x62, 0xc3, 0x28, 0xed, 0xa0, 0x80]; // 9 bytes, as HOLE
  const OVERLONG = [0x61, 0xc0, 0xaf, 0x62, 0xe0, 0x80, 0xaf, 0x63, 0x64]; // "/" spelt overlong
  const CJK64 = '中'.repeat(64), CJK65 = '中'.repeat(65), EMOJI64 = '😀'.repeat(64);
  const A64 = 'a'.repeat(64), A65 = 'a'.repeat(65);
  // client ids (utf8_client_id_ok): every way an id comes in over the protocol
  dispatch('client-ids', [
    rec(open(A64)),
    rec(open(A65)),
    rec(open(CJK64)),
    rec(open(CJK65)),
    rec(open(EMOJI64)),
    rec(open('alice\nbob')),
    rec(open('tab\there')),
    rec(open('del\u007f')),
    rec(open('nul\u0000id')),
    rec(open('\u0085next-line-is-no-C0')),
    rec(holed(open(HOLE), HOLE, BAD_UTF8)),
    rec(holed(open(HOLE), HOLE, OVERLONG)),
    rec(open('Tom')),
    rec(conv('start', { m: ['Jerry', A64, CJK64, 'alice\nbob', A65, ''] })),
    rec(conv('start', { m: ['alice', 'bob'], unique: true })),
    rec(conv('start', { m: ['alice\nbob'], unique: true })),
    rec(conv('add', { cid: CID(), m: ['x\u0001', CJK65, EMOJI64] })),
    rec(holed(conv('add', { cid: CID(), m: [HOLE, 'Spike'] }), HOLE, BAD_UTF8)),
    rec(conv('remove', { cid: CID(), m: ['x\u0001', 'Spike'] })),
    rec(conv('add_shutup', { cid: CID(), m: ['\n', A65, 'Jerry'] })),
    rec(conv('remove_shutup', { cid: CID(), m: ['\n'] })),
    rec(req({ cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: CID(), toPids: ['\r', CJK65, 'Spike'] } })),
    rec(req({ cmd: 'blacklist', op: 'unblock', blacklistMessage: { srcCid: CID(), toPids: ['\r', 'Spike'] } })),
    rec(conv('member_info_update', { cid: CID(), targetClientId: 'a\nb', info: { pid: 'a\nb', role: 'Manager' } })),
    rec(conv('member_info_update', { cid: CID(), targetClientId: A65, info: { pid: A65, role: 'Manager' } })),
    rec(req({ cmd: 'session', op: 'query', sessionMessage: { sessionPeerIds: ['\n', A65, 'Jerry'] } })),
    rec(direct(CID(), 'mentions', { mentionPids: ['\n', A65, 'Jerry'] })),
    rec(conv('query', { where: { data: `{"m":"${A65}"}` } })),
  ]);

  // max_sessions_per_conn (64): the 65th session on one socket gets 4113
  dispatch('sessions-per-socket', Array.from({ length: 66 }, (_, k) => rec(open(`s${k}`))));

  // token revocation (revoke.h): a logout revokes its token and every one refreshed from it;
  // a login displaced by single sign-on (same client and tag) loses its token
  dispatch('revoked-tokens', [
    rec(open('Tom')), // $s0
    rec(req({ cmd: 'session', op: 'refresh' })), // $s1, same lineage
    rec(open('Jerry'), { link: 1 }), // $s2
    rec(req({ cmd: 'session', op: 'close' })), // Tom logs out: $s0 and $s1 are revoked
    rec(open('Tom', { r: true, st: ST(0) }), { link: 1 }), // 4112
    rec(open('Tom', { r: true, st: ST(1) }), { link: 1 }), // 4112
    rec(open('Jerry', { r: true, st: ST(2) }), { drop: true }), // untouched: resumes
    rec(open('Tom', { tag: 'm' })), // $u0
    rec(open('Tom', { tag: 'm' }), { link: 1 }), // displaces the first: 4111, $u0 revoked
    rec(open('Tom', { r: true, st: ph('u', 0, 47) })), // 4112
    rec(open('Tom', { r: true, st: ph('u', 1, 47) }), { link: 1 }), // the new login's own: ok
    rec(open('Tom', { r: true, st: 'x'.repeat(46) })),
  ]);

  // edit and recall need what a send needs (#11.9): removed, shut up, blocked from a room
  dispatch('patch-after-removal', [
    rec(open('Tom')),
    rec(open('Jerry'), { link: 1 }),
    rec(conv('start', { m: ['Jerry', 'Spike'] })),
    rec(direct(CID(), 'from Jerry'), { link: 1 }),
    rec(conv('add_shutup', { cid: CID(), m: ['Jerry'] })),
    rec(req({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid: CID(), mid: MID(), timestamp: T, data: 'shut up' }] } }), { link: 1 }),
    rec(conv('remove_shutup', { cid: CID(), m: ['Jerry'] })),
    rec(conv('remove', { cid: CID(), m: ['Jerry'] })),
    rec(req({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid: CID(), mid: MID(), timestamp: T, data: 'removed' }] } }), { link: 1 }),
    rec(req({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid: CID(), mid: MID(), recall: true }] } }), { link: 1 }),
    rec(conv('add', { cid: CID(), m: ['Jerry'] })),
    rec(req({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid: CID(), mid: MID(), timestamp: T, data: 'back' }, { cid: CID(), mid: MID(), recall: true }] } }), { link: 1 }),
  ]);

  // a chat room's blacklist (#11.1) and history (#11.11); a Manager and a shut-up member
  // lift no shut-up (#11.19)
  dispatch('room-blacklist', [
    rec(open('Tom')),
    rec(open('Jerry'), { link: 1 }),
    rec(conv('start', { transient: true })),
    rec(req({ cmd: 'logs', logsMessage: { cid: CID() } }), { link: 1 }), // 4312: not in the room
    rec(conv('add', { cid: CID(), m: ['Jerry'] }), { link: 1 }),
    rec(direct(CID(), 'in the room'), { link: 1 }),
    rec(req({ cmd: 'logs', logsMessage: { cid: CID() } }), { link: 1 }),
    rec(req({ cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: CID(), toPids: ['Jerry'] } })),
    rec(direct(CID(), 'blocked'), { link: 1 }), // 4548
    rec(req({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid: CID(), mid: MID(), timestamp: T, data: 'x' }] } }), { link: 1 }),
    rec(conv('add', { cid: CID(), m: ['Jerry'] }), { link: 1 }),
    rec(conv('add', { cid: CID(), m: ['Jerry'] })),
    rec(req({ cmd: 'echo' }), { link: 1, drop: true }),
    rec(open('Jerry', { r: true, st: ST(1) }), { link: 1 }), // not put back in the room
    rec(req({ cmd: 'logs', logsMessage: { cid: CID() } }), { link: 1 }),
    rec(req({ cmd: 'blacklist', op: 'unblock', blacklistMessage: { srcCid: CID(), toPids: ['Jerry'] } })),
    rec(conv('add', { cid: CID(), m: ['Jerry'] }), { link: 1 }),
    rec(conv('start', { m: ['Jerry', 'Spike'] })),
    rec(conv('member_info_update', { cid: CID(1), targetClientId: 'Jerry', info: { pid: 'Jerry', role: 'Manager' } })),
    rec(conv('add_shutup', { cid: CID(1), m: ['Jerry', 'Spike'] })),
    rec(conv('remove_shutup', { cid: CID(1), m: ['Jerry'] }), { link: 1 }), // 4320
    rec(conv('remove_shutup', { cid: CID(1), m: ['Spike'] }), { link: 1 }), // 4320
  ]);

  // the query budget (§3.5): 4 running per connection, max_queries_per_ip (6 here) per
  // address, queries held in flight; hostile patterns; limit 0 (#11.16)
  const q = (where, extra = {}) => conv('query', { where: { data: where }, ...extra });
  dispatch('query-budget', [
    rec(open('Tom')),
    rec(open('Jerry'), { link: 1 }),
    rec(conv('start', { m: ['Jerry'], attr: { data: `{"name":"${'a'.repeat(40)}!","n":1}` } })),
    ...Array.from({ length: 5 }, () => rec(q('{"name":{"$regex":"^a"}}'), { hold: true })), // the 5th: 4310
    ...Array.from({ length: 3 }, () => rec(q('{"n":1}'), { link: 1, hold: true })), // the 3rd: 7 from one address
    rec(q('{"name":{"$regex":"(a+)+$"}}')), // backtracking past PCRE2's match limit: 4310
    rec(q('{"name":{"$regex":"(*LIMIT_MATCH=4000000000)(*LIMIT_DEPTH=4000000000)(*LIMIT_HEAP=4000000000)(a|aa)*$"}}')),
    rec(q('{"name":{"$regex":"(?:a*)*b","$options":"ix"}}', { limit: 0 })),
    rec(q('{"name":{"$regex":"["}}')),
    rec(q('{}', { limit: 0 })),
    rec(q('{}', { limit: -1, skip: -1 })),
    rec(q('{}', { limit: 100000, skip: 2147483647 })),
  ]);

  // max_conv_doc (4096 in the harness): a start at the cap and just over; updates that
  // reach it and pass it; Deletes always
  const doc = (bytes) => `{"pad":"${'p'.repeat(bytes - 10)}"}`; // compact text of exactly `bytes`
  dispatch('doc-size', [
    rec(open('Tom')),
    rec(conv('start', { m: ['Jerry'], attr: { data: doc(4200) } })), // over: 4301
    rec(conv('start', { m: ['Jerry'], attr: { data: doc(3900) } })),
    rec(conv('update', { cid: CID(), attr: { data: `{"q":"${'q'.repeat(100)}"}` } })),
    rec(conv('update', { cid: CID(), attr: { data: `{"r":"${'r'.repeat(100)}"}` } })), // somewhere here: 4306
    rec(conv('update', { cid: CID(), attr: { data: `{"s":"${'s'.repeat(100)}"}` } })),
    rec(conv('update', { cid: CID(), attr: { data: '{"pad":{"__op":"Delete"}}' } })),
    rec(conv('update', { cid: CID(), attr: { data: `{"a.b.c":"${'t'.repeat(3500)}"}` } })),
    rec(conv('update', { cid: CID(), attr: { data: '{"list":{"__op":"Add","objects":["x","y"]},"n":{"__op":"Increment","amount":9007199254740993}}' } })),
    rec(conv('update', { cid: CID(), attr: { data: `{"list":{"__op":"AddUnique","objects":["${'u'.repeat(600)}"]}}` } })),
  ]);

  // max_message (2,048 bytes in the harness, pushData included): at, just over
  dispatch('message-size', [
    rec(open('Tom')),
    rec(conv('start', { m: ['Jerry'] })),
    rec(direct(CID(), 'm'.repeat(2048))),
    rec(direct(CID(), 'm'.repeat(2049))), // 4109
    rec(direct(CID(), 'm'.repeat(1900), { pushData: `{"alert":"${'a'.repeat(200)}"}` })),
    rec(direct(CID(), '', { binaryMsg: Buffer.alloc(2049, 7) })),
    rec(req({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid: CID(), mid: MID(), timestamp: T, data: 'e'.repeat(2049) }] } })),
    rec(req({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid: CID(), mid: MID(), timestamp: T, data: 'e'.repeat(2048) }] } })),
  ]);

  // will messages per session (16) and members per conversation (max_members 500), the
  // shut-up list and the blacklist (500 each)
  dispatch('wills', [
    rec(open('Tom')),
    rec(conv('start', { m: ['Jerry'] })),
    ...Array.from({ length: 17 }, (_, k) => rec(direct(CID(), `will ${k}`, { will: true }))), // the 17th: 4116
    rec(open('Jerry'), { link: 1 }),
    rec(req({ cmd: 'echo' }), { drop: true }), // the wills go out
  ]);
  const ids = (n, p) => Array.from({ length: n }, (_, k) => `${p}${k}`);
  dispatch('set-limits', [
    rec(open('Tom')),
    rec(conv('start', { m: ids(499, 'm') })), // with Tom: 500
    rec(conv('add', { cid: CID(), m: ['m499', 'one-more'] })), // 4304
    rec(conv('add_shutup', { cid: CID(), m: ids(501, 'm') })), // 4561
    rec(req({ cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: CID(), toPids: ids(501, 'b') } })), // 4543
  ]);

  // member_roles on (record 0xfe, fuzz_dispatch.c): the owner may not leave while there is
  // a Manager (4324), may once there is none, and is the Owner again when back (#11.19);
  // edit and recall switched off
  const opts = (bits) => Buffer.from([0xfe, 0, 1, bits]);
  dispatch('member-roles', [
    opts(1),
    rec(open('Tom')),
    rec(open('Jerry'), { link: 1 }),
    rec(conv('start', { m: ['Jerry', 'Spike'] })),
    rec(conv('remove', { cid: CID(), m: ['Spike'] }), { link: 1 }), // a Member removes another: 4320
    rec(conv('member_info_update', { cid: CID(), targetClientId: 'Jerry', info: { pid: 'Jerry', role: 'Manager' } })),
    rec(conv('remove', { cid: CID(), m: ['Tom'] })), // the owner quits with a Manager: 4324
    rec(conv('remove', { cid: CID(), m: ['Tom', 'Spike'] }), { link: 1 }),
    rec(conv('member_info_update', { cid: CID(), targetClientId: 'Jerry', info: { pid: 'Jerry', role: 'Member' } })),
    rec(conv('remove', { cid: CID(), m: ['Tom'] })), // no Manager left: the owner may go
    rec(conv('add', { cid: CID(), m: ['Tom'] })),
    rec(conv('add', { cid: CID(), m: ['Tom'] }), { link: 1 }),
    rec(direct(CID(), 'edit me')),
    opts(6),
    rec(req({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid: CID(), mid: MID(), timestamp: T, data: 'x' }] } })),
    rec(req({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid: CID(), mid: MID(), recall: true }] } })),
  ]);

  // tempConv + unique (#11.17): the same live conversation, a new one once it expired
  dispatch('temp-unique', [
    rec(open('Tom')),
    rec(conv('start', { m: ['Jerry'], tempConv: true, tempConvTTL: 60, unique: true })),
    rec(conv('start', { m: ['Jerry', 'Tom'], tempConv: true, tempConvTTL: 3600, unique: true })),
    sweep(120),
    rec(conv('start', { m: ['Jerry'], tempConv: true, tempConvTTL: 60, unique: true })),
    rec(conv('query', { tempConvIds: [TMP(0), TMP(1)] })),
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
// http() writes its text as latin1 (so a connection switch's 0xfe is one byte): bodies go in
// as their UTF-8 bytes spelt in latin1, and Content-Length counts those bytes.
const utf8 = (t) => Buffer.from(t, 'utf8').toString('latin1');
const rest = (method, path, body, { auth = 'master', extra = '' } = {}) => {
  const b = utf8(body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body));
  const key = auth === 'master' ? `X-LC-Key: ${MASTER},master\r\n` : auth === 'app' ? 'X-LC-Key: fuzz-app-key\r\n' : '';
  return `${method} ${path} HTTP/1.1\r\nHost: x\r\nX-LC-Id: ${APP}\r\n${key}${extra}` +
    (b ? `Content-Type: application/json\r\nContent-Length: ${b.length}\r\n` : '') + `\r\n${b}`;
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
http('rest-json-limits', [ // max_conv_doc is 4096 in the harness
  rest('POST', C, `{"name":"deep","m":["Tom"],"d":${'['.repeat(64)}${']'.repeat(64)}}`),
  rest('POST', C, `{"name":"at","m":["Tom"],"d":${'['.repeat(63)}${']'.repeat(63)}}`),
  rest('POST', C, { name: 'big', m: ['Tom'], big: 'z'.repeat(4200) }),
  rest('POST', C, { name: 'ok', m: ['Tom', 'Jerry'] }),
  rest('PUT', `${C}/${CID()}`, `{"d":${'['.repeat(64)}${']'.repeat(64)}}`),
  rest('PUT', `${C}/${CID()}`, { one: 'w'.repeat(2000) }),
  rest('PUT', `${C}/${CID()}`, { two: 'w'.repeat(2000) }),
  rest('PUT', `${C}/${CID()}`, { one: { __op: 'Delete' } }),
  rest('GET', `${C}?where=${encodeURIComponent(`{"d":${'['.repeat(70)}${']'.repeat(70)}}`)}`),
  rest('GET', `${C}?where=${encodeURIComponent('{"name":{"$regex":"(*NO_START_OPT)(a|aa)*b"}}')}&order=name`),
  rest('POST', `${C}/${CID()}/messages`, `{"from_client":"Tom","message":"x","push_data":{"a":${'['.repeat(64)}${']'.repeat(64)}}}`),
  rest('POST', `${C}/${CID()}/messages`, { from_client: 'Tom', message: 'm'.repeat(2049) }), // max_message 2048 here
  rest('POST', `${C}/${CID()}/messages`, '{"from_client":"Tom","message":"\udc00 lone surrogate"}'),
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

// Issue #11's HTTP limits. Connection switches (fuzz_http.c): 00 fe k hands the rest of the
// stream to connection k (0 and 1 from 127.0.0.1, 2 and 3 from 127.0.0.2).
const SW = (k) => `\x00\xfe${String.fromCharCode(k)}`;
const G = (k) => ph('g', k, 46); // X-LC-Sign values the harness makes at the start
const signed = (sig, extra = '') => ({ auth: 'none', extra: `X-LC-Sign: ${sig}\r\n${extra}` });
const get = (path, headers = '') => `GET ${path} HTTP/1.1\r\nHost: x\r\n${headers}\r\n`;
http('rest-sign-window', [
  rest('GET', '/1.2/rtm/stats', undefined, signed(`${G(1)},master`)), // the master key's, now: 200
  rest('GET', '/1.2/rtm/stats', undefined, signed(G(0))), // the app key's: 403 for a master route
  rest('GET', '/1.1/rtm/notifications?client_id=Tom', undefined, signed(G(0), `X-LC-IM-Session-Token: ${ST()}\r\n`)),
  rest('GET', '/1.2/rtm/stats', undefined, signed(`${G(2)},master`)), // 30 s inside the window: 200
  rest('GET', '/1.2/rtm/stats', undefined, signed(`${G(3)},master`)), // 30 s past it: 401
  rest('GET', '/1.2/rtm/stats', undefined, signed(`${G(0)},master`)), // an app signature is no master one
  rest('GET', '/1.2/rtm/stats', undefined, signed(`${G(1)}`)), // nor the reverse
  rest('GET', '/1.2/rtm/stats', undefined, signed(`${G(1)},mister`)),
  rest('GET', '/1.2/rtm/stats', undefined, signed(`${'0'.repeat(32)},1796503518537,master`)),
  rest('GET', '/1.2/rtm/stats', undefined, signed(`${'0'.repeat(32)},9999999999999999,master`)),
  rest('GET', '/1.2/rtm/stats', undefined, signed(`${'0'.repeat(32)},,master`)),
  rest('GET', '/1.2/rtm/stats', undefined, signed(`${'0'.repeat(31)},1,master`)),
  rest('GET', '/1.2/rtm/stats', undefined, signed(`${'0'.repeat(32)},-1`)),
  get('/1.2/rtm/stats', `X-LC-Sign: ${G(1)},master\r\n`), // without X-LC-Id: 401
  rest('GET', '/1.2/rtm/stats', undefined, signed(`${G(1)},master`, 'X-LC-Key: fuzz-app-key\r\n')), // a key wins over a signature
].join(''));
http('rest-metrics-auth', [
  get('/metrics'),
  rest('GET', '/metrics', undefined, { auth: 'app' }),
  get('/metrics', `Authorization: Bearer ${MASTER}\r\n`),
  get('/metrics', `Authorization: bearer    ${MASTER}\r\n`),
  get('/metrics', `Authorization: Bearer ${MASTER}x\r\n`),
  get('/metrics', 'Authorization: Bearer \r\n'),
  get('/metrics', `Authorization: Basic ${MASTER}\r\n`),
  rest('GET', '/metrics', undefined, { auth: 'app', extra: `Authorization: Bearer ${MASTER}\r\n` }),
  rest('GET', '/metrics', undefined, signed(`${G(1)},master`)),
].join(''));
// route auth levels (rest.h): AUTH_CLIENT takes the app key only with that client's live token
http('rest-route-auth', [
  rest('GET', '/1.2/rtm/clients/Tom/unread-count', undefined, { auth: 'app', extra: `X-LC-IM-Session-Token: ${ST()}\r\n` }),
  rest('GET', '/1.2/rtm/clients/Jerry/unread-count', undefined, { auth: 'app', extra: `X-LC-IM-Session-Token: ${ST()}\r\n` }),
  rest('GET', '/1.2/rtm/clients/Tom/unread-count', undefined, { auth: 'app' }),
  rest('GET', '/1.2/rtm/clients/Tom/unread-count', undefined, { auth: 'none', extra: `X-LC-IM-Session-Token: ${ST()}\r\n` }),
  rest('GET', '/1.1/rtm/notifications?client_id=Jerry', undefined, { auth: 'app', extra: `X-LC-IM-Session-Token: ${ST()}\r\n` }),
  rest('GET', '/1.1/rtm/notifications', undefined, { auth: 'app', extra: `X-LC-IM-Session-Token: ${ST()}\r\n` }),
  rest('GET', `/1.1/classes/_ConversationMemberInfo?client_id=Tom&where=${encodeURIComponent('{"cid":"x"}')}`, undefined, { auth: 'app', extra: `X-LC-IM-Session-Token: ${ST()}\r\n` }),
  rest('GET', '/1.2/rtm/stats', undefined, { auth: 'app' }),
  rest('GET', '/1.1/classes/_Conversation', undefined, { auth: 'app' }),
  rest('GET', '/1.2/tern/push/dead-letters?limit=1001', undefined, { auth: 'app' }),
  rest('GET', '/1.2/tern/push/dead-letters?limit=1001'),
  rest('GET', '/1.2/tern/hooks'),
  rest('DELETE', '/1.1/installations/x', undefined, { auth: 'app' }),
  rest('POST', '/1.1/installations', { deviceType: 'ios', deviceToken: 'a' }, { auth: 'none' }), // 401 with a body: closed
].join(''));
// revocation over REST: an admin kick revokes every token the client was given
http('rest-revoked-token', [
  rest('GET', '/1.2/rtm/clients/Tom/unread-count', undefined, { auth: 'app', extra: `X-LC-IM-Session-Token: ${ST()}\r\n` }),
  rest('POST', '/1.2/rtm/clients/Tom/kick', { reason: 'revoked' }),
  rest('GET', '/1.2/rtm/clients/Tom/unread-count', undefined, { auth: 'app', extra: `X-LC-IM-Session-Token: ${ST()}\r\n` }),
  rest('GET', '/1.1/rtm/notifications?client_id=Tom', undefined, { auth: 'app', extra: `X-LC-IM-Session-Token: ${ST()}\r\n` }),
].join(''));
// client ids over REST: bodies, paths and queries (400, code 4103)
http('rest-client-ids', [
  rest('POST', C, { name: 'ids', m: ['Tom', 'a\nb'] }),
  rest('POST', C, { name: 'ids', m: ['Tom', 'a'.repeat(65)] }),
  rest('POST', C, { name: 'ids', m: ['Tom', '中'.repeat(64), 'a'.repeat(64)] }),
  rest('POST', `${C}/${CID()}/members`, { client_ids: ['\u0007', 'Jerry'] }),
  rest('DELETE', `${C}/${CID()}/members`, { client_ids: ['\u0007'] }),
  rest('POST', `${C}/${CID()}/blacklists`, { client_ids: ['\u007f'] }),
  rest('POST', `${C}/${CID()}/permanent-silenceds`, { client_ids: ['x\ty'] }),
  rest('POST', `${C}/${CID()}/temporary-silenceds`, { client_ids: ['x\ty'], ttl: 60 }),
  rest('POST', `${C}/${CID()}/member-infos`, { client_id: 'a\nb', role: 'Manager' }),
  rest('POST', `${C}/${CID()}/messages`, { from_client: 'a\rb', message: 'x' }),
  rest('POST', `${C}/${CID()}/messages`, { from_client: 'Tom', message: 'x', to_clients: ['\n'], mention_client_ids: ['a'.repeat(65)] }),
  rest('POST', '/1.2/rtm/clients/%0a/kick', {}),
  rest('POST', `/1.2/rtm/clients/${'a'.repeat(65)}/kick`, {}),
  rest('GET', '/1.2/rtm/clients/%ff%fe/messages?limit=1'),
  rest('GET', '/1.2/rtm/clients/%e4%b8%ad/unread-count'),
  rest('GET', '/1.1/rtm/notifications?client_id=%00'),
  rest('POST', '/1.2/rtm/clients/check-online', { client_ids: ['\n', 'Tom'] }),
  rest('POST', '/1.2/rtm/service-conversations', { name: 'svc' }),
  rest('POST', `/1.2/rtm/service-conversations/${CID(1)}/subscribers`, { client_id: 'a\u0000b' }),
  rest('POST', `/1.2/rtm/service-conversations/${CID(1)}/broadcasts`, { from_client: '\u001f', message: 'x' }),
  rest('DELETE', `/1.2/rtm/service-conversations/${CID(1)}/subscribers/%7f`),
].join(''));
// uploads: keys and caps decided from the head (max_file_size 8192, one upload in flight
// per address and two in all, in the harness)
const up = (path, body, headers = '', len = Buffer.byteLength(body)) =>
  `POST ${path} HTTP/1.1\r\nHost: x\r\n${headers}Content-Length: ${len}\r\n\r\n${body}`;
const APPH = `X-LC-Id: ${APP}\r\nX-LC-Key: fuzz-app-key\r\n`;
const MASTERH = `X-LC-Id: ${APP}\r\nX-LC-Key: ${MASTER},master\r\n`;
http('upload-no-key', up('/1.1/files/a.txt', 'x'.repeat(9000)));
http('upload-wrong-key', up('/1.1/files/a.txt', 'x'.repeat(100), `X-LC-Id: ${APP}\r\nX-LC-Key: nope\r\n`));
http('upload-forged-token', `PUT /1.1/fileUploads/${FILE_ID}?token=${'e30'}.${'0'.repeat(64)} HTTP/1.1\r\nContent-Length: 5000\r\n\r\n${'x'.repeat(5000)}`);
http('upload-size', [
  up('/1.1/files/at.bin', 'a'.repeat(8192), APPH), // at max_file_size: stored
  up('/1.1/files/over.bin', 'b'.repeat(8193), APPH), // one past: 413 from the head
].join(''));
http('upload-chunked-over', `POST /1.1/files/c.bin HTTP/1.1\r\n${APPH}Transfer-Encoding: chunked\r\n\r\n` +
  `1000\r\n${'c'.repeat(4096)}\r\n1000\r\n${'c'.repeat(4096)}\r\n1\r\nc\r\n0\r\n\r\n`); // 8193 bytes: 413 mid-body
http('upload-json-over', rest('POST', '/1.1/files', { base64: Buffer.alloc(8193, 1).toString('base64'), name: 'j.bin' }, { auth: 'app' }));
// external files (AV.File.withURL): the URL 2,048 characters at most, metaData 4,096 bytes
const ext = (url, meta) => rest('POST', '/1.1/files', { name: 'e.png', url, mime_type: 'image/png', metaData: { __source: 'external', ...meta } }, { auth: 'app' });
const metaOf = (bytes) => ({ pad: 'p'.repeat(bytes - 32) }); // {"__source":"external","pad":"…"}: `bytes` long
http('rest-external-files', [
  ext(`https://e.com/${'u'.repeat(2048 - 14)}`, {}),
  ext(`https://e.com/${'u'.repeat(2049 - 14)}`, {}),
  ext('https://e.com/m', metaOf(4096)),
  ext('https://e.com/m', metaOf(4097)),
  ext('javascript:alert(1)', {}),
  ext('https:///no-host', {}),
  ext('https://e.com/a b', {}),
  rest('GET', `/files/${CID()}`, undefined, { auth: 'none' }),
  rest('GET', `/1.1/files/${CID()}`, undefined, { auth: 'app' }),
].join(''));
http('upload-slots', [
  up('/1.1/files/one.txt', 'x'.repeat(10), APPH, 100), // connection 0 holds 127.0.0.1's slot
  SW(1), up('/1.1/files/master.txt', 'master keys are not counted', MASTERH),
  up('/1.1/files/two.txt', 'x', APPH), // 127.0.0.1 again: 429 from the head, closed
  SW(2), up('/1.1/files/three.txt', 'y'.repeat(10), APPH, 100), // 127.0.0.2: the second slot in all
  SW(3), up('/1.1/files/four.txt', 'z', APPH), // none left in all: 503, closed
  SW(0), 'x'.repeat(90), // connection 0's body completes: stored, its slot is free
  SW(2), 'y'.repeat(90),
  SW(3), up('/1.1/files/five.txt', 'five', APPH), // connection 3 was closed: nothing happens
  SW(1), up('/1.1/files/six.txt', 'six', APPH),
].join(''));
http('upload-slot-abandoned', [
  up('/1.1/files/gone.txt', 'x'.repeat(10), APPH, 100), // never completes: its slot goes with the connection
  SW(2), up('/1.1/files/a.txt', 'a', APPH),
  SW(3), `PUT /1.1/fileUploads/${FILE_ID}?token=${TOKEN} HTTP/1.1\r\nContent-Length: 50\r\n\r\npartial`,
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

// The import API's limits over HTTP: bodies decided from the head (16 MiB only with the
// master key, else 1 MiB), record checks, the rehosting headers; and the class reads' page
// and skip caps and where checks.
{
  const nest = (n) => '['.repeat(n) + ']'.repeat(n);
  const bad = ndjson([
    `{"type":"conversation","objectId":"d0d0d0d0d0d0d0d0d0d0d0d0","m":["Tom"],"d":${nest(63)}}`,
    `{"type":"conversation","objectId":"d1d1d1d1d1d1d1d1d1d1d1d1","m":["Tom"],"d":${nest(64)}}`,
    { type: 'conversation', objectId: 'd2d2d2d2d2d2d2d2d2d2d2d2', m: ['Tom', 7] },
    { type: 'conversation', objectId: 'd3d3d3d3d3d3d3d3d3d3d3d3', m: ['Tom', 'a\nb'] },
    { type: 'shutup', cid: 'd0d0d0d0d0d0d0d0d0d0d0d0', clients: ['Tom', null] },
    { type: 'message', cid: 'd0d0d0d0d0d0d0d0d0d0d0d0', 'msg-id': 'm'.repeat(65), timestamp: 1, from: 'Tom', data: 'x' },
    { type: 'message', cid: 'd0d0d0d0d0d0d0d0d0d0d0d0', 'msg-id': 'big', timestamp: 1, from: 'Tom', data: 'x'.repeat(2049) },
    { type: 'conversation', objectId: 'o'.repeat(65), m: ['Tom'] },
    '{"type":"conversation","type":"message"}',
  ]);
  const importH = (auth) => `POST /1.2/import/records HTTP/1.1\r\nHost: x\r\nX-LC-Id: ${APP}\r\n${auth}`;
  http('rest-import-limits', [
    ndjsonPost(bad),
    `${importH(`X-LC-Sign: ${G(1)},master\r\n`)}Content-Length: ${Buffer.byteLength(bad)}\r\n\r\n${bad}`,
    raw('PUT', '/1.2/import/files/e0e0e0e0e0e0e0e0e0e0e0e0', 'bytes', `${MASTERH}X-Tern-Meta: {"a":${nest(64)}}\r\n`),
    raw('PUT', '/1.2/import/files/e1e1e1e1e1e1e1e1e1e1e1e1', 'bytes', `${MASTERH}X-Tern-Meta: {"a":"${'m'.repeat(8200)}"}\r\n`),
    raw('PUT', '/1.2/import/files/e2e2e2e2e2e2e2e2e2e2e2e2', 'bytes', `${MASTERH}X-Tern-File-Name: %ff%fe\r\nX-Tern-Created-At: yesterday\r\n`),
    raw('PUT', '/1.2/import/files/e3e3e3e3e3e3e3e3e3e3e3e3', 'b'.repeat(8193), MASTERH), // past max_file_size: 413
  ].join(''));
  http('rest-import-app-key', `${importH('X-LC-Key: fuzz-app-key\r\n')}Content-Length: 2097152\r\n\r\n{}`); // 403 from the head
  http('rest-import-no-master-big', `${importH('X-LC-Key: wrong,master\r\n')}Content-Length: 16777217\r\n\r\n`);
  http('rest-import-master-too-big', `${importH(`X-LC-Key: ${MASTER},master\r\n`)}Content-Length: 16777217\r\n\r\n`);
  http('rest-classes-limits', [
    ndjsonPost(IMPORT_BODY),
    rest('GET', '/1.1/classes/_Conversation?limit=1001&skip=10000001&count=1'),
    rest('GET', '/1.1/classes/_Conversation?limit=-1&skip=-5&count=true'),
    rest('GET', '/1.1/classes/_Conversation?limit=abc&skip=99999999999999999999999'),
    rest('GET', `/1.1/classes/_Conversation?where=${encodeURIComponent(`{"a":${nest(65)}}`)}`),
    rest('GET', `/1.1/classes/_Conversation?where=${encodeURIComponent(`{"$and":[${'{"$or":['.repeat(20)}{"a":1}${']}'.repeat(20)}]}`)}`),
    rest('GET', `/1.1/classes/_Conversation?where=${encodeURIComponent('[]')}`),
    rest('GET', `/1.1/classes/_Conversation?where=${encodeURIComponent('{"name":{"$regex":"(a+)+$"}}')}&order=-name,objectId,updatedAt,x.y`),
    rest('GET', `/1.1/classes/_Installation?where=${encodeURIComponent(`{"badge":{"$in":[${nest(65)}]},"$or":[{}]}`)}&limit=1000&skip=1`),
    rest('GET', `/1.1/classes/_Installation?where=${encodeURIComponent('{"objectId":{"$regex":"a"},"deviceType":{"$nin":"ios"}}')}`),
    rest('GET', `/1.1/classes/_File?where=${encodeURIComponent('{"metaData.size":{"$exists":true},"objectId":{"$in":["c0c0c0c0c0c0c0c0c0c0c0c0",1]}}')}&order=-metaData.size&limit=0&count=1`),
    rest('GET', '/1.1/classes/_File/..%2f..%2fetc'),
    rest('GET', '/1.1/classes/_Installation/inst0'),
    rest('GET', '/1.1/classes/_Conversation/a0a0a0a0a0a0a0a0a0a0a0a0', undefined, { auth: 'app' }),
  ].join(''));
}

// ---------------------------------------------------------------- fuzz_import
// mode u8 (bit0 a live cached conversation $c0 first, bit1 post the body twice, bit2 the
// reads afterwards), then the NDJSON body (fuzz_import.c)
const imp = (name, mode, lines) => seed('import', name, Buffer.concat([Buffer.from([mode]), Buffer.from(ndjson(lines))]));
{
  const nest = (n) => '['.repeat(n) + ']'.repeat(n);
  const K = 'a0a0a0a0a0a0a0a0a0a0a0a0', SVC = 'b0b0b0b0b0b0b0b0b0b0b0b0';
  const conv = (o = {}) => ({ type: 'conversation', objectId: K, name: 'k', m: ['Tom', 'Jerry'], c: 'Tom', ...o });
  const msg = (o = {}) => ({ type: 'message', cid: K, 'msg-id': 'vdkGm4dtRNmhQ5gqUTFBiA', timestamp: 1704240000000, from: 'Tom', data: 'hi', ...o });
  const ids = (n, p) => Array.from({ length: n }, (_, k) => `${p}${k}`);
  imp('every-kind', 7, IMPORT_BODY.split('\n'));
  imp('every-kind-plain', 0, IMPORT_BODY.split('\n'));
  // records for a conversation in use (cached, with a live message): keys from its
  // counter, its members, sets and document refreshed; then the reads and a REST update of
  // a document the import made larger than max_conv_doc (4096 here: it takes only Deletes)
  const L = CID(0);
  imp('live-conversation', 7, [
    { type: 'conversation', objectId: L, name: 'live', m: ['Tom', 'Jerry', 'Spike'], c: 'Tom', big: 'b'.repeat(5000), mu: ['Jerry'] },
    { type: 'message', cid: L, 'msg-id': 'imported-1', timestamp: 1, from: 'Jerry', data: '{"_lctype":-1,"_lctext":"old"}' },
    { type: 'message', cid: L, 'msg-id': 'imported-2', timestamp: 99999999999999, from: 'Spike', data: 'future' },
    { type: 'member_roles', cid: L, roles: { Jerry: 'Manager', Tom: 'Owner' } },
    { type: 'shutup', cid: L, clients: ['Spike'] },
    { type: 'blacklist', cid: L, clients: ['Tyke'] },
    { type: 'mutes', cid: L, clients: ['Tom'] },
    { type: 'conversation', objectId: L, tr: true },
  ]);
  imp('kinds-and-times', 6, [
    conv({ createdAt: '2024-01-01T00:00:00.000Z', updatedAt: 1704067200001, lm: { __type: 'Date', iso: '2024-01-03T00:00:00.000Z' } }),
    conv({ objectId: 'c1', createdAt: { __type: 'Date' }, m: ['x'] }),
    conv({ objectId: 'c2', createdAt: -5 }),
    conv({ objectId: 'c3', updatedAt: 'not a date' }),
    conv({ objectId: 'c4', tr: true, sys: true }),
    conv({ objectId: 'c5', tr: true, m: undefined }),
    conv({ objectId: SVC, sys: true, m: undefined }),
    conv({ objectId: '_tmp:c6', temporary: true, expireAt: 4102444800000, m: ['a', 'b'] }),
    conv({ objectId: '_tmp:c7', temporary: true, expireAt: 1, m: ['a', 'b'] }),
    conv({ objectId: 'c8', unique: true, m: ['u1', 'u2'] }),
    conv({ objectId: 'c9', unique: true, m: ['u2', 'u1'], uniqueId: 'cloud-unique' }),
    conv({ objectId: 'c10', c: null, m: [] }),
    { type: 'subscribers', cid: SVC, clients: ['s1', 's2'] },
    { type: 'subscribers', cid: SVC, clients: ['s3'], replace: true },
    { type: 'subscribers', cid: K, clients: ['s3'] },
    conv({ tr: true }),
  ]);
  imp('messages', 6, [
    conv(),
    msg(),
    msg({ 'msg-id': 'bin1', data: 'AAEC/w==', bin: true }),
    msg({ 'msg-id': 'bin2', binary: 'not base64!' }),
    msg({ 'msg-id': 'bin3', binary: '' }),
    msg({ 'msg-id': 'rec1', data: undefined, recalled: true, 'patch-timestamp': 1704240002000 }),
    msg({ 'msg-id': 'rec2', data: '{"_lctype":-127}', recall: true }),
    msg({ 'msg-id': 'vdkGm4dtRNmhQ5gqUTFBiA', data: 'edited', 'patch-timestamp': 1704240009000 }),
    msg({ 'msg-id': 'vdkGm4dtRNmhQ5gqUTFBiA', data: 'older edit', 'patch-timestamp': 1704240001000 }),
    msg({ 'msg-id': 'same-ms', timestamp: 1704240000000, 'mention-all': true, 'mention-pids': ['Jerry', 'Jerry'] }),
    msg({ 'msg-id': 'typed', data: '{"_lctype" : -2 , "_lcfile":{"url":"https://x/y"}}' }),
    msg({ 'msg-id': 'no-data', data: undefined }),
    msg({ 'msg-id': 'ts0', timestamp: 0 }),
    msg({ 'msg-id': 'tsf', timestamp: 1.5 }),
    msg({ 'msg-id': 'pts', 'patch-timestamp': -1 }),
    msg({ 'msg-id': 'unknown', cid: 'ffffffffffffffffffffffff' }),
    msg({ 'msg-id': 'sp ace' }),
  ]);
  // every per-record limit at and just past it (docs/security.md; max_message 2048 and
  // max_members 500 in the harness)
  imp('record-limits-members', 0, [
    conv({ m: ids(499, 'm').concat(['Tom']) }),
    conv({ objectId: 'over', m: ids(501, 'm') }),
  ]);
  imp('record-limits-sets', 0, [
    conv(),
    { type: 'shutup', cid: K, clients: ids(500, 's') },
    { type: 'blacklist', cid: K, clients: ids(501, 'b') },
  ]);
  imp('record-limits-fields', 0, [
    conv(),
    msg({ 'msg-id': 'm'.repeat(64), data: 'd'.repeat(2048) }),
    msg({ 'msg-id': 'n'.repeat(65) }),
    msg({ 'msg-id': 'big', data: 'd'.repeat(2049) }),
    msg({ 'msg-id': 'men100', 'mention-pids': ids(100, 'p') }),
    msg({ 'msg-id': 'men101', 'mention-pids': ids(101, 'p') }),
    conv({ objectId: 'o'.repeat(64), m: ['x'] }),
    conv({ objectId: 'o'.repeat(65), m: ['x'] }),
    conv({ objectId: 'bad/id', m: ['x'] }),
  ]);
  imp('roles-limit', 0, [
    conv(),
    { type: 'member_roles', cid: K, roles: Object.fromEntries(ids(1000, 'r').map((k) => [k, 'Member'])) },
    { type: 'member_roles', cid: K, roles: { x: 'Owner', y: 'King' } },
    { type: 'member_roles', cid: K, roles: [] },
  ]);
  const inst = (o = {}) => ({ type: 'installation', objectId: 'inst0', deviceType: 'ios', deviceToken: 'tok', channels: ['Tom'], ...o });
  imp('installations-and-files', 4, [
    inst(),
    inst({ objectId: 'i1', deviceType: 'android', deviceToken: undefined, registrationId: 'r'.repeat(256), channels: ids(100, 'c') }),
    inst({ objectId: 'i2', deviceType: 'android', deviceToken: undefined, installationId: 'i'.repeat(257) }),
    inst({ objectId: 'i3', channels: ids(101, 'c') }),
    inst({ objectId: 'i4', deviceType: 'd'.repeat(33) }),
    inst({ objectId: 'i5', deviceToken: 'with space' }),
    inst({ objectId: 'i6', badge: 'one' }),
    inst({ objectId: 'i7', clientIds: ['Tom', 'Jerry'], clientId: 'x' }),
    inst({ objectId: 'i8', clientId: 'Spike', createdAt: '2020-01-01T00:00:00Z' }),
    inst({ objectId: 'i9', clientIds: 'Tom' }),
    inst({ objectId: 'i10', deviceToken: 'tok' }), // the same device token as inst0
  ]);
  imp('files', 4, [    { type: 'file', objectId: 'c0c0c0c0c0c0c0c0c0c0c0c0', name: 'x.png', url: 'https://example.com/x.png', mime_type: 'image/png', metaData: { size: 3 } },
    { type: 'file', objectId: 'c1c1c1c1c1c1c1c1c1c1c1c1', name: 'n'.repeat(1024), url: `https://e.com/${'u'.repeat(4000)}`, metaData: { pad: 'p'.repeat(100) } },
    { type: 'file', objectId: 'c2c2c2c2c2c2c2c2c2c2c2c2', name: 'n'.repeat(1025), url: 'https://e.com/' },
    { type: 'file', objectId: 'c3c3c3c3c3c3c3c3c3c3c3c3', name: 'x', url: `https://e.com/${'u'.repeat(4083)}` },
    { type: 'file', objectId: 'c4c4c4c4c4c4c4c4c4c4c4c4', name: 'x', url: 'ftp://e.com/x', mime_type: 'm'.repeat(128) },
    { type: 'file', objectId: 'C0C0C0C0C0C0C0C0C0C0C0C0', name: 'x\u0001', url: 'https://e.com/x', metaData: [] },
  ]);
  imp('file-meta-limit', 4, [ // a file record's metadata: 8 KiB at most
    { type: 'file', objectId: 'c5c5c5c5c5c5c5c5c5c5c5c5', name: 'x', url: 'https://e.com/x', metaData: { pad: 'p'.repeat(7900) } },
    { type: 'file', objectId: 'c6c6c6c6c6c6c6c6c6c6c6c6', name: 'x', url: 'https://e.com/x', metaData: { pad: 'p'.repeat(8100) } },
  ]);
  imp('bad-lines', 0, [
    '',
    '   \t  ',
    '\r',
    '{"type":"conversation"',
    '[1,2]',
    '"string"',
    '{"type":"conversation","type":"message"}',
    '{"type":7}',
    '{}',
    '{"type":"nonsense"}',
    '\t{"type":"conversation","objectId":"tab","m":["x"]}\r',
    '{"type":"message","cid":null}',
    '{"type":"shutup","cid":"a0a0a0a0a0a0a0a0a0a0a0a0","clients":"x"}',
    '{"type":"conversation","objectId":"nul","name":"a\\u0000b"}',
    '{"type":"conversation","objectId":"sur","name":"\\ud800"}',
    Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]).toString('latin1'),
  ]);
  imp('depth', 4, [
    `{"type":"conversation","objectId":"d64","m":["x"],"d":${nest(63)}}`,
    `{"type":"conversation","objectId":"d65","m":["x"],"d":${nest(64)}}`,
    `{"type":"installation","objectId":"i65","deviceType":"ios","deviceToken":"t","d":${nest(64)}}`,
    `{"type":"message","cid":"d64","msg-id":"x","timestamp":1,"from":"x","data":"x","d":${nest(64)}}`,
    `{"type":"file","objectId":"c0c0c0c0c0c0c0c0c0c0c0c0","name":"x","url":"https://e.com/x","metaData":{"d":${nest(63)}}}`,
    `{"type":"conversation","objectId":"str","m":["x"],"d":"${'['.repeat(100)}"}`,
  ]);
  // more than 20,000 records: 413, nothing applied (past fuzz_import's max_len, so only the
  // replay reaches it whole)
  seed('import', 'records-over-limit', Buffer.concat([Buffer.from([0]), Buffer.from(`${JSON.stringify(conv())}\n${'{}\n'.repeat(20000)}`)]));
}

// ---------------------------------------------------------------- fuzz_jsonlim
// cap u8 (mod 80), then any text (fuzz_jsonlim.c)
{
  const jl = (name, cap, text) => seed('jsonlim', name, Buffer.concat([Buffer.from([cap]), Buffer.isBuffer(text) ? text : Buffer.from(text)]));
  const nest = (n) => '['.repeat(n) + ']'.repeat(n);
  jl('depth-64', 63, nest(64));
  jl('depth-65', 64, `{"a":${nest(64)}}`);
  jl('depth-mixed', 5, `{"a":[{"b":[{"c":${nest(10)}}]},"[[[[",{"d":"\\"[{"}]}`);
  jl('brackets-in-strings', 0, `["\\\\",{"k\\"[":"]]]]]"},"\\u005b"]`);
  jl('scalars', 3, ' -12.5e3 ');
  jl('unbalanced', 2, ']]]}}}[[{');
  jl('unterminated-string', 1, '["abc');
  jl('trailing', 2, '[[1]] x');
  jl('deep-2100', 70, nest(2100));
  jl('utf8-bad', 0, Buffer.from([0x61, 0xff, 0xfe, 0x62, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0xf4, 0x90, 0x80, 0x80, 0xc0, 0xaf]));
  jl('utf8-good', 0, 'aé中😀');
  jl('client-id-64-cjk', 0, '中'.repeat(64));
  jl('client-id-65-cjk', 0, '中'.repeat(65));
  jl('client-id-64-emoji', 0, '😀'.repeat(64));
  jl('client-id-control', 0, 'a\nb');
  jl('client-id-del', 0, 'ab\u007f');
  jl('client-id-c1', 0, 'a\u0085b');
  jl('client-id-nul', 0, Buffer.from('ab\0cd'));
  jl('lctype', 0, '{"_lctype":-1,"_lctext":"hi"}');
  jl('lctype-escaped', 0, '{"a":"\\"_lctype\\":5","_lctype" : -99999999999}');
}

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
seed('where', 'deep-value-64', `{"a":${'['.repeat(63)}${']'.repeat(63)}}`);
seed('where', 'and-or-16', `${'{"$or":['.repeat(15)}{"a":1}${']}'.repeat(15)}`);
seed('where', 'and-or-17', `${'{"$and":['.repeat(17)}{"a":1}${']}'.repeat(17)}`);
seed('where', 'dotted-65', `{"${Array.from({ length: 65 }, (_, k) => `k${k}`).join('.')}":1}`);
seed('where', 'regex-heap-limit', '{"labels":{"$regex":"(*LIMIT_HEAP=1000000)(*LIMIT_DEPTH=1)((a)|b)*c","$options":"s"}}');
seed('where', 'regex-inline-options', '{"name":{"$regex":"(*UTF)(*UCP)(?i)ünï","$options":"m"},"attr.topic":{"$regex":"(*CR)^w"}}');
seed('where', 'regex-bad', '{"name":{"$regex":"(?<n>a)\\\\k<m>"}}');
seed('where', 'sort-many', Buffer.concat([Buffer.from('{}'), Buffer.from([0]), Buffer.from(Array.from({ length: 40 }, (_, k) => (k % 2 ? '-' : '') + ['name', 'lm', 'attr.level', 'score', 'createdAt'][k % 5]).join(',')), Buffer.from([0, 3])]));

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
// issue #11's options at their bounds and one past them
cfg('issue11-at-bounds', 'max_conv_doc = 1024\nquery_timeout = 600000\nmax_queries_per_ip = 0\nsign_header_window = 86400\n' +
  'max_uploads = 0\nmax_uploads_per_ip = 100000\nmember_roles = on\nsession_ttl = 60\n');
cfg('issue11-past-bounds', 'max_conv_doc = 1023\nquery_timeout = 9\nmax_queries_per_ip = 100001\nsign_header_window = 0\n' +
  'max_uploads = -1\nmax_uploads_per_ip = 100001\nsession_ttl = 31536001\nmax_conv_doc = 16777217\n');
cfg('issue11-flags', '', ['--max-conv-doc=16777216', '--query_timeout', '10', '--sign-header-window=abc',
  '--max-queries-per-ip=', '--max-uploads', '--member-roles', '--member-roles=maybe']);
cfg('version', '', ['--version']);
cfg('version-and-more', 'workers = 1\n', ['--version', '--workers=2', '-v', '-', '--help=1']);
cfg('unknown-flags', '', ['--no-such-option=1', '--max-conv-docs=1024', '--MAX_CONV_DOC=2048', 'positional']);

// ---------------------------------------------------------------- write
for (const [target, files] of Object.entries(out)) {
  const dir = join(here, 'corpus', target);
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) if (f.startsWith('seed-')) unlinkSync(join(dir, f));
  for (const [name, bytes] of files) writeFileSync(join(dir, name), bytes);
  console.log(`${target}: ${files.length} seeds`);
}

// WebSocket framing and the transport-level duties of ternd: ping/pong, echo, empty
// frames, undecodable payloads (4114), oversized frames (4109), fragmentation, RFC 6455
// protocol errors (1002) and the closing handshake.
// protocol.md §1.1, §1.2, §2.1, §3.21, §6; interop.md §4.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { assertHealthy, closeAll, connect, encode, login, uid, withServer } from '../lib/proto-client.mjs';
import { OP, closePayload, frame, rawWebSocket } from '../lib/proto-raw.mjs';

let server;
before(async () => { server = await startServer(); });
afterEach(closeAll);
after(async () => { await server.stop(); });

// ---------------------------------------------------------------- keep-alive

test('§1.2 WS ping is answered with a pong carrying the same payload', async () => {
  const c = await connect(server);
  const payload = Buffer.from('tern-ping-\x00\xff', 'latin1');
  const pong = new Promise((resolve) => c.ws.once('pong', resolve));
  c.ping(payload);
  assert.deepEqual(Buffer.from(await pong), payload);
  await c.echo(); // still alive
});

test('§1.2/§3.21 echo before any session: {cmd: echo, i} and nothing else', async () => {
  const c = await connect(server);
  const r = await c.request({ cmd: 'echo', i: 41 });
  assert.deepEqual(r, { cmd: 'echo', i: 41 });
  assert.deepEqual(c.received, [{ cmd: 'echo', i: 41 }]);
});

test('§1.2/§3.21 echo after login carries the i and the request\'s peerId', async () => {
  const c = await connect(server);
  const peer = uid('echo');
  await login(c, peer);
  const r = await c.request({ cmd: 'echo', i: 7, peerId: peer });
  assert.deepEqual(r, { cmd: 'echo', i: 7, peerId: peer });
});

test('§1.1 an empty binary frame is ignored: no reply, connection stays', async () => {
  const c = await connect(server);
  const mark = c.mark();
  c.sendRaw(Buffer.alloc(0));
  c.sendRaw(Buffer.alloc(0));
  assert.deepEqual(await c.quiet(mark), []);
  assert.equal(c.isClosed, false);
});

// ---------------------------------------------------------------- undecodable → 4114

const ws4114 = [
  { section: '§6 4114', name: 'ff ff ff ff (bad tag / wire type)', data: Buffer.from('ffffffff', 'hex') },
  { section: '§6 4114', name: 'truncated varint (08 80)', data: Buffer.from('0880', 'hex') },
  { section: '§6 4114', name: 'length-delimited field past the end (22 05 61)', data: Buffer.from('220561', 'hex') },
  { section: '§6 4114', name: 'end-group wire type at top level (0c)', data: Buffer.from('0c', 'hex') },
  { section: '§2.1 4114', name: 'JsonObjectMessage without its required data', data: Buffer.from('08011007' + '2801' + 'f20603aa0600', 'hex') },
  { section: '§2.1 4114', name: 'ErrorCommand without required code/reason', data: Buffer.from('0807' + '2801' + 'ba0600', 'hex') },
  { section: '§1.1 4114', name: 'text frame that is not base64 (lc.protobuf2.3)', data: '!!not base64!!', binary: false },
  { section: '§1.1 4114', name: 'text frame with one dangling base64 char', data: 'CAEQ' + 'A', binary: false },
  // (no login first in base64 mode: replies in that mode are covered by the session tests)
  { section: '§1.1 4114', name: 'bad base64 text in lc.proto2base64.3', data: '@@@@', binary: false, subprotocol: 'lc.proto2base64.3', login: false },
  { section: '§1.1 4114', name: 'base64 of ff ff ff ff in lc.proto2base64.3', data: '/////w==', binary: false, subprotocol: 'lc.proto2base64.3', login: false },
];

for (const c of ws4114) {
  test(`${c.section} undecodable payload closes 4114 UNPARSEABLE_RAW_MESSAGE: ${c.name}`, async () => {
    const cl = await connect(server, { subprotocol: c.subprotocol });
    if (c.login !== false) await login(cl, uid('garbage'));
    const mark = cl.mark();
    cl.sendRaw(c.data, { binary: c.binary ?? true });
    const info = await cl.closed;
    assert.deepEqual(info, { code: 4114, reason: 'UNPARSEABLE_RAW_MESSAGE' });
    assert.deepEqual(cl.since(mark), [], 'no reply before the close');
    await assertHealthy(server);
  });
}

test('§1.1 a text frame of valid base64 is decoded in lc.protobuf2.3 too (reply stays binary)', async () => {
  const c = await connect(server);
  c.sendRaw(encode({ cmd: 'echo', i: 5 }).toString('base64'), { binary: false });
  const r = await c.reply(5);
  assert.deepEqual(r, { cmd: 'echo', i: 5 });
  assert.deepEqual(c.frameKinds, ['binary']);
});

// ---------------------------------------------------------------- fragmentation

test('§1.1 RFC 6455 §5.4 a message in binary + continuation frames is reassembled', async () => {
  const raw = await rawWebSocket(server);
  const bytes = encode({ cmd: 'echo', i: 9, installationId: 'x'.repeat(300) });
  raw.send(OP.BINARY, bytes.subarray(0, 1), { fin: false });
  raw.send(OP.CONT, bytes.subarray(1, 200), { fin: false });
  raw.send(OP.CONT, bytes.subarray(200), { fin: true });
  assert.deepEqual(await raw.nextCommand(), { cmd: 'echo', i: 9 });
  raw.destroy();
});

test('§1.1 RFC 6455 §5.4 a ping between fragments is answered and the message still arrives', async () => {
  const raw = await rawWebSocket(server);
  const bytes = encode({ cmd: 'echo', i: 10 });
  raw.send(OP.BINARY, bytes.subarray(0, 2), { fin: false });
  raw.send(OP.PING, Buffer.from('mid'));
  raw.send(OP.CONT, bytes.subarray(2), { fin: true });
  const pong = await raw.nextFrame();
  assert.equal(pong.opcode, OP.PONG);
  assert.equal(pong.payload.toString(), 'mid');
  assert.deepEqual(await raw.nextCommand(), { cmd: 'echo', i: 10 });
  raw.destroy();
});

test('§1.1 a fragmented base64 text message is reassembled', async () => {
  const raw = await rawWebSocket(server);
  const text = Buffer.from(encode({ cmd: 'echo', i: 11 }).toString('base64'));
  raw.send(OP.TEXT, text.subarray(0, 3), { fin: false });
  raw.send(OP.CONT, text.subarray(3), { fin: true });
  assert.deepEqual(await raw.nextCommand(), { cmd: 'echo', i: 11 });
  raw.destroy();
});

test('§1.1 server frames are unmasked, FIN, no reserved bits', async () => {
  const raw = await rawWebSocket(server);
  raw.command({ cmd: 'echo', i: 12 });
  const f = await raw.nextFrame();
  assert.equal(f.masked, false);
  assert.equal(f.fin, true);
  assert.equal(f.rsv, 0);
  assert.equal(f.opcode, OP.BINARY);
  raw.destroy();
});

// ---------------------------------------------------------------- RFC 6455 violations → 1002

const echoBytes = encode({ cmd: 'echo', i: 1 });
const protocolErrors = [
  { section: '§1.1 RFC 6455 §5.1', name: 'unmasked client frame', frames: [[OP.BINARY, echoBytes, { mask: false }]] },
  { section: '§1.1 RFC 6455 §5.2', name: 'RSV1 set (no extension negotiated)', frames: [[OP.BINARY, echoBytes, { rsv: 4 }]] },
  { section: '§1.1 RFC 6455 §5.2', name: 'RSV2 set', frames: [[OP.BINARY, echoBytes, { rsv: 2 }]] },
  { section: '§1.1 RFC 6455 §5.2', name: 'RSV3 set', frames: [[OP.BINARY, echoBytes, { rsv: 1 }]] },
  { section: '§1.1 RFC 6455 §5.2', name: 'reserved data opcode 3', frames: [[3, echoBytes]] },
  { section: '§1.1 RFC 6455 §5.2', name: 'reserved control opcode 0xB', frames: [[0xb, Buffer.alloc(0)]] },
  { section: '§1.1 RFC 6455 §5.4', name: 'continuation without a message in progress', frames: [[OP.CONT, echoBytes]] },
  { section: '§1.1 RFC 6455 §5.4', name: 'new data frame inside a fragmented message', frames: [[OP.BINARY, echoBytes.subarray(0, 2), { fin: false }], [OP.BINARY, echoBytes]] },
  { section: '§1.1 RFC 6455 §5.5', name: 'fragmented ping', frames: [[OP.PING, Buffer.from('x'), { fin: false }]] },
  { section: '§1.1 RFC 6455 §5.5', name: 'ping with a 126-byte payload', frames: [[OP.PING, Buffer.alloc(126)]] },
  { section: '§1.1 RFC 6455 §5.2', name: 'non-minimal 16-bit length', frames: [[OP.BINARY, echoBytes, { lengthBytes: 2 }]] },
  { section: '§1.1 RFC 6455 §5.2', name: 'non-minimal 64-bit length', frames: [[OP.BINARY, echoBytes, { lengthBytes: 8 }]] },
];

for (const c of protocolErrors) {
  test(`${c.section} protocol error closes 1002: ${c.name}`, async () => {
    const raw = await rawWebSocket(server);
    for (const [op, payload, opts] of c.frames) raw.send(op, payload, opts);
    const f = await raw.expectClose();
    assert.equal(f.code, 1002, `close code (reason ${f.reason})`);
    assert.equal(raw.frames.filter((x) => x.opcode !== OP.CLOSE).length, 0, 'nothing but the close');
    await assertHealthy(server);
  });
}

// ---------------------------------------------------------------- closing handshake

test('§1.1 RFC 6455 §5.5.1 a client close is echoed with its code and the TCP connection ends', async () => {
  const raw = await rawWebSocket(server);
  raw.command({ cmd: 'session', op: 'open', i: 1, appId: server.appId, peerId: uid('closer') });
  const opened = await raw.nextCommand();
  assert.equal(opened.op, 'opened');
  raw.send(OP.CLOSE, closePayload(4321, 'bye now'));
  const f = await raw.expectClose();
  assert.equal(f.code, 4321);
  await assertHealthy(server);
});

test('§1.1 RFC 6455 §5.5.1 a close without status is echoed without status', async () => {
  const raw = await rawWebSocket(server);
  raw.send(OP.CLOSE, Buffer.alloc(0));
  const f = await raw.expectClose();
  assert.equal(f.payload.length, 0);
});

test('§1.1 ws client close(1000) completes cleanly', async () => {
  const c = await connect(server);
  await c.echo();
  const info = await c.close();
  assert.equal(info.code, 1000);
});

test('§1.1 frames after the close are ignored', async () => {
  const raw = await rawWebSocket(server);
  raw.write(Buffer.concat([
    frame(OP.CLOSE, closePayload(1000)),
    frame(OP.BINARY, encode({ cmd: 'echo', i: 3 })),
  ]));
  const f = await raw.expectClose();
  assert.equal(f.code, 1000);
  assert.equal(raw.frames.length, 0, 'no echo reply after the close');
  await assertHealthy(server);
});

// ---------------------------------------------------------------- size limit → 4109

/** A command of exactly n encoded bytes (an echo padded with installationId). */
function echoOfSize(n, i = 1) {
  for (let pad = n; pad >= Math.max(0, n - 40); pad--) {
    for (let k = 0; k < 4; k++) {
      const b = encode({ cmd: 'echo', i, installationId: 'p'.repeat(pad), ...(k ? { appId: 'a'.repeat(k) } : {}) });
      if (b.length === n) return b;
    }
  }
  throw new Error(`cannot build a ${n}-byte echo`);
}

test('§1.1/§6 4109 frames over max_frame (TERN_MAX_FRAME=1024) close FRAME_TOO_LONG', () =>
  withServer({ TERN_MAX_FRAME: '1024' }, async (srv) => {
    const rows = [
      { section: '§1.1', name: 'exactly max_frame is accepted', send: (c) => c.sendRaw(echoOfSize(1024, 1)), reply: 1 },
      { section: '§6 4109', name: 'one byte over max_frame', send: (c) => c.sendRaw(echoOfSize(1025, 1)), close: 4109 },
      { section: '§6 4109', name: '64 KiB of zeros (checked before decoding)', send: (c) => c.sendRaw(Buffer.alloc(65536)), close: 4109 },
      { section: '§6 4109', name: 'oversized base64 text frame', send: (c) => c.sendRaw('A'.repeat(1100), { binary: false }), close: 4109 },
    ];
    for (const row of rows) {
      const c = await connect(srv);
      await login(c, uid('big'));
      const mark = c.mark();
      row.send(c);
      if (row.reply) {
        assert.deepEqual(await c.reply(row.reply), { cmd: 'echo', i: row.reply }, `${row.section} ${row.name}`);
        await c.close();
      } else {
        assert.deepEqual(await c.closed, { code: 4109, reason: 'FRAME_TOO_LONG' }, `${row.section} ${row.name}`);
        assert.deepEqual(c.since(mark), [], `${row.name}: no reply`);
      }
      await assertHealthy(srv);
    }
    // fragments that only together pass the limit (RFC 6455 §5.4 + the limit on the whole message)
    const raw = await rawWebSocket(srv);
    const big = echoOfSize(1200, 2);
    raw.send(OP.BINARY, big.subarray(0, 600), { fin: false });
    raw.send(OP.CONT, big.subarray(600), { fin: true });
    const f = await raw.expectClose();
    assert.equal(f.code, 4109, 'fragmented message over the limit');
    assert.equal(f.reason, 'FRAME_TOO_LONG');
    await assertHealthy(srv);
  }));

// libtern against a scripted fake server (the way mosquitto's test/lib checks a client):
// every frame the SDK sends is decoded with the project's lc.proto and compared field by
// field with what the protocol (shared/spec/protocol.md) says it must be; the fake server
// answers with hand-built replies and pushes. Covers login with tag and signature, create,
// send with receipt, transient send, the per-message ack of a received message, history,
// query, update, read, the echo keepalive, a dropped TCP connection followed by reconnects
// at 1 s, 2 s, 4 s (exponential backoff, the JS SDK's schedule) and an r:true re-login with
// the session token, a 4111 conflict push, non-forced and forced logins after it, and close.
//
// The C side is tests/sdk/sdk_fake.c; it prints the delegate events, which are checked at
// the end against the order the server produced them in.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { spawn } from 'node:child_process';
import protobuf from 'protobufjs';
import { WebSocketServer } from 'ws';
import { PROTO_PATH } from '../lib/proto-client.mjs';
import { sdkBinary } from '../lib/sdk-c.mjs';

const root = new protobuf.Root();
root.loadSync(PROTO_PATH, { keepCase: true });
const GenericCommand = root.lookupType('lc.GenericCommand');
const encode = (o) => Buffer.from(GenericCommand.encode(GenericCommand.fromObject(o)).finish());
const decode = (b) => GenericCommand.toObject(GenericCommand.decode(b), { enums: String, longs: Number, defaults: false });

const APP = 'fakeApp';
const UA = 'libtern/0.1.0';
const BITMAP = 43; // patch, temp-conv, transient-ack, partial-failure

/** A fake ternd: accepts or refuses upgrades by plan, queues connections and their frames. */
class FakeServer {
  constructor() {
    this.http = createServer();
    this.wss = new WebSocketServer({ noServer: true, handleProtocols: (p) => ([...p][0] === 'lc.protobuf2.3' ? 'lc.protobuf2.3' : false) });
    this.refuse = 0;
    this.attempts = []; // times of upgrade requests
    this.conns = [];
    this.waiters = [];
    this.protocols = [];
    this.http.on('upgrade', (req, socket, head) => {
      this.attempts.push(Date.now());
      this.protocols.push(req.headers['sec-websocket-protocol']);
      if (this.refuse > 0) { this.refuse--; socket.destroy(); return; }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
    });
  }
  listen() { return new Promise((r) => this.http.listen(0, '127.0.0.1', () => r(this.http.address().port))); }
  accept(ws) {
    const conn = { ws, frames: [], waiters: [], echoes: [], closed: false };
    ws.on('message', (data, isBinary) => {
      assert.ok(isBinary, 'libtern sends binary frames');
      const cmd = decode(data);
      if (cmd.cmd === 'echo') { // keepalive: answered and kept aside
        conn.echoes.push(cmd);
        ws.send(encode({ cmd: 'echo', i: cmd.i }));
        return;
      }
      const w = conn.waiters.shift();
      if (w) w(cmd); else conn.frames.push(cmd);
    });
    ws.on('close', () => { conn.closed = true; });
    const w = this.waiters.shift();
    if (w) w(conn); else this.conns.push(conn);
  }
  nextConn(ms = 15000) {
    if (this.conns.length) return Promise.resolve(this.conns.shift());
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no connection')), ms);
      this.waiters.push((c) => { clearTimeout(t); resolve(c); });
    });
  }
  close() { this.wss.close(); this.http.close(); }
}

function next(conn, ms = 5000) {
  if (conn.frames.length) return Promise.resolve(conn.frames.shift());
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no frame')), ms);
    conn.waiters.push((c) => { clearTimeout(t); resolve(c); });
  });
}
const send = (conn, o) => conn.ws.send(encode(o));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('libtern frames against a scripted server', () => {
  it('sends exactly the protocol frames, keeps alive, reconnects with backoff and re-logs in with st', { timeout: 90000 }, async () => {
    const fake = new FakeServer();
    const port = await fake.listen();
    const child = spawn(sdkBinary('sdk_fake'), [], {
      env: {
        ...process.env, TERN_URL: `ws://127.0.0.1:${port}/`, TERN_APP_ID: APP, TERN_PING_MS: '300',
        ASAN_OPTIONS: 'detect_leaks=1:exitcode=23',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const exited = new Promise((r) => child.on('exit', (code) => r(code)));
    const events = () => out.trim().split('\n').filter(Boolean);
    const waitEvent = async (e, ms = 10000) => {
      for (let i = 0; i < ms / 20; i++) { if (events().includes(e)) return; await sleep(20); }
      throw new Error(`no event ${e}; got ${events().join(' | ')}\n${err.slice(-3000)}`);
    };
    try {
      // ---- login: appId, peerId, tag, signature, r:false, ua, configBitmap (§3.1)
      let c = await fake.nextConn();
      assert.equal(fake.protocols[0], 'lc.protobuf2.3', 'one subprotocol offered: unread mode');
      let f = await next(c);
      assert.deepEqual(f, {
        cmd: 'session', op: 'open', appId: APP, peerId: 'Tom', i: 1,
        sessionMessage: { ua: UA, configBitmap: BITMAP, r: false, tag: 'Mobile', s: 'sig-open', n: 'nonce-open', t: 1700000000 },
      });
      send(c, { cmd: 'session', op: 'opened', i: f.i, peerId: 'Tom', serverTs: Date.now(), sessionMessage: { st: 'tok1', stTtl: 3600 } });
      send(c, {
        cmd: 'unread', peerId: 'Tom', service: 2,
        unreadMessage: { notifTime: 1700000000001, convs: [{ cid: 'c0', unread: 2, mid: 'x0', timestamp: 1700000000000, from: 'Jerry', data: '{"_lctype":-1,"_lctext":"old"}' }] },
      });
      // ---- create: members sorted with the creator, iOS-style attr, unique, signature (§3.4, §5)
      f = await next(c);
      assert.deepEqual(f, {
        cmd: 'conv', op: 'start', peerId: 'Tom', i: 2,
        convMessage: { m: ['Jerry', 'Tom'], unique: true, attr: { data: '{"name":"n","attr":{"a":1}}' }, s: 'sig-start', n: 'nonce-start', t: 1700000000 },
      });
      send(c, { cmd: 'conv', op: 'started', i: f.i, convMessage: { cid: 'c1', cdate: '2026-01-01T00:00:00.000Z' } });
      // ---- send with receipt, then transient (§3.6)
      f = await next(c);
      assert.deepEqual(f, { cmd: 'direct', peerId: 'Tom', i: 3, directMessage: { cid: 'c1', msg: '{"_lctype":-1,"_lctext":"hi"}', r: true } });
      send(c, { cmd: 'ack', i: f.i, ackMessage: { uid: 'm1', t: 1700000000100 } });
      f = await next(c);
      assert.deepEqual(f, { cmd: 'direct', peerId: 'Tom', i: 4, directMessage: { cid: 'c1', msg: '{"_lctype":-1,"_lctext":"hi"}', transient: true } });
      send(c, { cmd: 'ack', i: f.i, ackMessage: { uid: 'm1t', t: 1700000000101 } });
      // ---- an incoming message: acked per message {cid, mid} (§3.7); then the receipt (§3.8)
      send(c, { cmd: 'direct', peerId: 'Tom', service: 2, directMessage: { cid: 'c1', id: 'm2', fromPeerId: 'Jerry', timestamp: 1700000000200, msg: '{"_lctype":-1,"_lctext":"yo"}' } });
      f = await next(c);
      assert.deepEqual(f, { cmd: 'ack', peerId: 'Tom', ackMessage: { cid: 'c1', mid: 'm2' } });
      send(c, { cmd: 'rcp', peerId: 'Tom', service: 2, rcpMessage: { id: 'm1', cid: 'c1', t: 1700000000300, from: 'Jerry' } });
      // ---- history before a message: t + mid, both limit fields (§3.11)
      f = await next(c);
      assert.deepEqual(f, { cmd: 'logs', peerId: 'Tom', i: 5, logsMessage: { cid: 'c1', l: 5, limit: 5, t: 1700000000000, mid: 'm0' } });
      send(c, { cmd: 'logs', i: f.i, logsMessage: { logs: [{ msgId: 'mm', timestamp: 1699999999999, from: 'Jerry', data: 'plain' }] } });
      // ---- query: where JSON with attr. keys and operators, limit (§3.5)
      f = await next(c);
      assert.deepEqual(f, { cmd: 'conv', op: 'query', peerId: 'Tom', i: 6, convMessage: { where: { data: '{"attr.age":{"$gt":18},"attr.topic":"movie"}' }, limit: 20 } });
      send(c, { cmd: 'conv', op: 'results', i: f.i, convMessage: { results: { data: JSON.stringify([{ objectId: 'c1', name: 'n', m: ['Jerry', 'Tom'], attr: { topic: 'movie', age: 20 } }]) } } });
      // ---- update: dotted paths, Delete op (§3.14)
      f = await next(c);
      assert.deepEqual(f, { cmd: 'conv', op: 'update', peerId: 'Tom', i: 7, convMessage: { cid: 'c1', attr: { data: '{"attr.type":"public","attr.old":{"__op":"Delete"}}' } } });
      send(c, { cmd: 'conv', op: 'updated', i: f.i, convMessage: { cid: 'c1', udate: '2026-01-01T00:00:01.000Z', attrModified: { data: '{"attr":{"type":"public"}}' } } });
      // ---- read: the last message of the conversation (§3.8)
      f = await next(c);
      assert.deepEqual(f, { cmd: 'read', peerId: 'Tom', readMessage: { convs: [{ cid: 'c1', mid: 'm2', timestamp: 1700000000200 }] } });
      await waitEvent('ops done');
      // ---- keepalive: echo commands with an i and nothing else (§1.2)
      for (let i = 0; i < 100 && c.echoes.length < 2; i++) await sleep(20);
      assert.ok(c.echoes.length >= 2, 'periodic echo');
      for (const e of c.echoes) assert.deepEqual(Object.keys(e).sort(), ['cmd', 'i']);
      assert.equal(c.frames.length, 0, `no other frame: ${JSON.stringify(c.frames)}`);

      // ---- drop the TCP connection; refuse two reconnects; accept the third (§1.3)
      fake.refuse = 2;
      const before = fake.attempts.length;
      const dropped = Date.now();
      c.ws._socket.destroy();
      c = await fake.nextConn(20000);
      const [a1, a2, a3] = fake.attempts.slice(before);
      const delays = [a1 - dropped, a2 - a1, a3 - a2];
      for (const [k, want] of [[0, 1000], [1, 2000], [2, 4000]]) {
        assert.ok(delays[k] >= want - 50 && delays[k] < want + 1200, `reconnect delay ${k}: ${delays[k]} ms, want ~${want}`);
      }
      f = await next(c);
      let { i } = f;
      assert.ok(i > 0);
      delete f.i;
      assert.deepEqual(f, {
        cmd: 'session', op: 'open', appId: APP, peerId: 'Tom',
        sessionMessage: { ua: UA, configBitmap: BITMAP, r: true, st: 'tok1', lastUnreadNotifTime: 1700000000001 },
      }, 're-login: r:true with the token, no tag, no signature');
      send(c, { cmd: 'session', op: 'opened', i, peerId: 'Tom', serverTs: Date.now(), sessionMessage: { st: 'tok2', stTtl: 3600 } });
      await waitEvent('resumed');

      // ---- another device took the tag: the server ends the session (§3.1 tags)
      send(c, { cmd: 'session', op: 'closed', peerId: 'Tom', service: 2, sessionMessage: { code: 4111, reason: 'SESSION_CONFLICT' } });
      await waitEvent('offline 4111');
      // the last client is closed, so the SDK drops the socket; a non-forced open after a
      // kick is an explicit login with r:true, which the server refuses
      c = await fake.nextConn();
      f = await next(c);
      ({ i } = f);
      delete f.i;
      assert.deepEqual(f, {
        cmd: 'session', op: 'open', appId: APP, peerId: 'Tom',
        sessionMessage: { ua: UA, configBitmap: BITMAP, r: true, tag: 'Mobile', s: 'sig-open', n: 'nonce-open', t: 1700000000, lastUnreadNotifTime: 1700000000001 },
      });
      send(c, { cmd: 'session', op: 'closed', i, sessionMessage: { code: 4111, reason: 'SESSION_CONFLICT' } });
      await waitEvent('reopen 4111');
      c = await fake.nextConn();
      f = await next(c);
      ({ i } = f);
      delete f.i;
      assert.deepEqual(f, {
        cmd: 'session', op: 'open', appId: APP, peerId: 'Tom',
        sessionMessage: { ua: UA, configBitmap: BITMAP, r: false, tag: 'Mobile', s: 'sig-open', n: 'nonce-open', t: 1700000000, lastUnreadNotifTime: 1700000000001 },
      }, 'forced: r:false');
      send(c, { cmd: 'session', op: 'opened', i, peerId: 'Tom', serverTs: Date.now(), sessionMessage: { st: 'tok3', stTtl: 3600 } });
      // ---- close (§3.2)
      f = await next(c);
      ({ i } = f);
      assert.deepEqual(f, { cmd: 'session', op: 'close', peerId: 'Tom', i });
      send(c, { cmd: 'session', op: 'closed', i, sessionMessage: {} });
      const code = await exited;
      assert.equal(code, 0, `sdk_fake exit ${code}\n${err.slice(-4000)}`);
      assert.deepEqual(events(), [
        'opened', 'unread c0 2', 'created c1', 'sent m1', 'message m2 yo', 'delivered m1', 'ops done',
        'paused', 'resuming', 'resuming', 'resuming', 'resumed',
        'offline 4111', 'reopen 4111', 'forced open', 'closed',
      ]);
    } catch (e) {
      child.kill();
      fake.close();
      throw new Error(`${e.stack}\n--- sdk events\n${out}\n--- sdk stderr\n${err.slice(-4000)}`);
    }
    fake.close();
  });

  it('drops a silent connection after the watchdog period and logs in again', { timeout: 30000 }, async () => {
    const fake = new FakeServer();
    const port = await fake.listen();
    const child = spawn(sdkBinary('sdk_fake'), ['watchdog'], {
      env: { ...process.env, TERN_URL: `ws://127.0.0.1:${port}/`, TERN_APP_ID: APP, ASAN_OPTIONS: 'detect_leaks=1:exitcode=23' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const exited = new Promise((r) => child.on('exit', r));
    try {
      let c = await fake.nextConn();
      let f = await next(c);
      send(c, { cmd: 'session', op: 'opened', i: f.i, peerId: 'Tom', serverTs: Date.now(), sessionMessage: { st: 'tokW', stTtl: 3600 } });
      // from now on this connection is silent: echoes are not answered
      c.ws.removeAllListeners('message');
      c.ws.on('message', (data) => c.frames.push(decode(data)));
      const silentFrom = Date.now();
      const closed = new Promise((r) => c.ws.on('close', () => r(Date.now())));
      const closedAt = await closed;
      assert.ok(closedAt - silentFrom >= 500 && closedAt - silentFrom < 3000, `closed after ${closedAt - silentFrom} ms`);
      assert.ok(c.frames.some((x) => x.cmd === 'echo'), 'it pinged before giving up');
      c = await fake.nextConn();
      f = await next(c);
      const { i } = f;
      delete f.i;
      assert.deepEqual(f, { cmd: 'session', op: 'open', appId: APP, peerId: 'Tom', sessionMessage: { ua: UA, configBitmap: BITMAP, r: true, st: 'tokW' } });
      send(c, { cmd: 'session', op: 'opened', i, peerId: 'Tom', serverTs: Date.now(), sessionMessage: { st: 'tokW2', stTtl: 3600 } });
      assert.equal(await exited, 0, err.slice(-3000));
      assert.deepEqual(out.trim().split('\n'), ['opened', 'paused', 'resuming', 'resumed']);
    } finally {
      child.kill();
      fake.close();
    }
  });
});

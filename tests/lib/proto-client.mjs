// A hand-driven LeanCloud IM client for the black-box protocol tests (tests/proto).
//
// It speaks GenericCommands encoded with protobufjs from the project's own schema
// (proto/lc.proto) over a `ws` WebSocket whose subprotocol the test chooses, and it keeps
// every decoded command in arrival order so a test can assert exactly what the server sent
// and what it did not. Replies are matched by `i`; everything without an `i` is a push and
// waits in a queue until a test takes it with next(). Commands are plain objects in the
// .proto's field names with enums as names ({cmd: 'conv', op: 'start', convMessage: {m}}),
// and come back the same way (toObject: enums as names, int64 as numbers, no defaults).
//
// "Nothing else arrived" is asserted without sleeping: a command's reply and the pushes a
// handler queues for the same socket leave in order, so an `echo` round trip after the
// command is a barrier (see quiet()).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import WebSocket from 'ws';
import { startServer } from './server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const PROTO_PATH = join(here, '..', '..', 'proto', 'lc.proto');

const root = new protobuf.Root();
root.loadSync(PROTO_PATH, { keepCase: true });
export const GenericCommand = root.lookupType('lc.GenericCommand');

export const TIMEOUT_MS = 5000;

/** Encodes a command object (field names of lc.proto, enums by name or number) to bytes. */
export function encode(obj) {
  return Buffer.from(GenericCommand.encode(GenericCommand.fromObject(obj)).finish());
}

/** Decodes protobuf bytes to the plain object form used throughout the tests. */
export function decode(bytes) {
  return GenericCommand.toObject(GenericCommand.decode(bytes), {
    enums: String,
    longs: Number,
    defaults: false,
  });
}

/** A short random suffix so tests sharing a server never share client ids. */
export function uid(prefix = 'u') {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

const open = new Set(); // every client not yet closed, for closeAll()

export class ProtoClient {
  constructor(server, ws, { base64, subprotocol }) {
    this.server = server;
    this.ws = ws;
    this.base64 = base64;
    this.subprotocol = subprotocol;
    this.nextI = 1;
    this.received = []; // every decoded command, in arrival order
    this.frameKinds = []; // 'binary' | 'text' per received data frame
    this.errors = []; // frames that did not decode: a server bug, fails waiters
    this.pushes = []; // unsolicited commands not yet taken by next()
    this.replies = new Map(); // i -> reply that arrived before anyone asked
    this.replyWaiters = new Map(); // i -> {resolve, reject, timer}
    this.pushWaiters = []; // {pred, resolve, reject, timer}
    this.pongs = [];
    this.peer = undefined; // set by login()
    this.isClosed = false;
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.isClosed = true;
        open.delete(this);
        const info = { code, reason: reason.toString() };
        this.closeInfo = info;
        const err = new Error(`connection closed (${code} ${info.reason}) while waiting`);
        for (const w of this.replyWaiters.values()) { clearTimeout(w.timer); w.reject(err); }
        this.replyWaiters.clear();
        for (const w of this.pushWaiters) { clearTimeout(w.timer); w.reject(err); }
        this.pushWaiters = [];
        resolve(info);
      });
    });
    ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    ws.on('pong', (data) => this.pongs.push(Buffer.from(data)));
    ws.on('error', (e) => this.errors.push(e));
    open.add(this);
  }

  onFrame(data, isBinary) {
    this.frameKinds.push(isBinary ? 'binary' : 'text');
    let cmd;
    try {
      const bytes = isBinary ? Buffer.from(data) : Buffer.from(data.toString(), 'base64');
      cmd = decode(bytes);
    } catch (e) {
      const err = new Error(`server sent an undecodable frame (${isBinary ? 'binary' : 'text'}): ${e.message}`);
      this.errors.push(err);
      for (const w of this.replyWaiters.values()) { clearTimeout(w.timer); w.reject(err); }
      this.replyWaiters.clear();
      for (const w of this.pushWaiters) { clearTimeout(w.timer); w.reject(err); }
      this.pushWaiters = [];
      return;
    }
    this.received.push(cmd);
    if (cmd.i) {
      const w = this.replyWaiters.get(cmd.i);
      if (w) {
        this.replyWaiters.delete(cmd.i);
        clearTimeout(w.timer);
        w.resolve(cmd);
      } else {
        this.replies.set(cmd.i, cmd);
      }
      return;
    }
    const k = this.pushWaiters.findIndex((w) => w.pred(cmd));
    if (k >= 0) {
      const [w] = this.pushWaiters.splice(k, 1);
      clearTimeout(w.timer);
      w.resolve(cmd);
    } else {
      this.pushes.push(cmd);
    }
  }

  /** Serialises one command to the frame payload for this connection's format. */
  payload(cmd) {
    const bytes = encode(cmd);
    return this.base64 ? bytes.toString('base64') : bytes;
  }

  /**
   * Sends a command. `i` is assigned from a per-socket counter unless the object has its
   * own `i` property (`i: null` or `i: undefined` sends none). Returns the `i` used.
   */
  send(cmd) {
    const c = { ...cmd };
    if (!Object.prototype.hasOwnProperty.call(cmd, 'i')) c.i = this.nextI++;
    if (c.i === null || c.i === undefined) delete c.i;
    this.ws.send(this.payload(c), { binary: !this.base64 });
    return c.i;
  }

  /** Sends bytes or a string as one WebSocket message, untouched. */
  sendRaw(data, { binary = typeof data !== 'string' } = {}) {
    this.ws.send(data, { binary });
  }

  /** The reply carrying `i` (one that already arrived, or the next one). */
  reply(i, timeout = TIMEOUT_MS) {
    if (this.replies.has(i)) {
      const r = this.replies.get(i);
      this.replies.delete(i);
      return Promise.resolve(r);
    }
    if (this.isClosed) return Promise.reject(new Error(`connection closed (${this.closeInfo?.code}) before reply ${i}`));
    if (this.errors.length) return Promise.reject(this.errors[0]);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.replyWaiters.delete(i);
        reject(new Error(`no reply with i=${i} within ${timeout} ms`));
      }, timeout);
      this.replyWaiters.set(i, { resolve, reject, timer });
    });
  }

  /** Sends a command and resolves with the reply carrying the same `i`. */
  request(cmd, timeout = TIMEOUT_MS) {
    const i = this.send(cmd);
    assert.ok(i, 'request() needs an i');
    return this.reply(i, timeout);
  }

  /** The next push (command without `i`) matching pred, already queued or still to come. */
  next(pred = () => true, timeout = TIMEOUT_MS) {
    const k = this.pushes.findIndex(pred);
    if (k >= 0) return Promise.resolve(this.pushes.splice(k, 1)[0]);
    if (this.isClosed) return Promise.reject(new Error(`connection closed (${this.closeInfo?.code}) before the push came`));
    if (this.errors.length) return Promise.reject(this.errors[0]);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, reject };
      w.timer = setTimeout(() => {
        this.pushWaiters = this.pushWaiters.filter((x) => x !== w);
        reject(new Error(`no matching push within ${timeout} ms; queued: ${JSON.stringify(this.pushes)}`));
      }, timeout);
      this.pushWaiters.push(w);
    });
  }

  /** Shorthand: next push with this cmd (and op). */
  nextCmd(cmd, op, timeout) {
    return this.next((c) => c.cmd === cmd && (op === undefined || c.op === op), timeout);
  }

  /** Index into `received` to pass to since(). */
  mark() {
    return this.received.length;
  }

  since(mark) {
    return this.received.slice(mark);
  }

  /** Echo round trip. */
  async echo() {
    const r = await this.request({ cmd: 'echo' });
    assert.equal(r.cmd, 'echo');
    return r;
  }

  /**
   * Barrier: an echo round trip, then the commands that arrived since `mark` other than
   * the echo reply. Whatever the server queued for this socket while handling earlier
   * commands of this socket is in the list.
   */
  async quiet(mark) {
    const r = await this.echo();
    return this.since(mark).filter((c) => c !== r);
  }

  /** Pushes still queued, not taken by next(). */
  pending() {
    return [...this.pushes];
  }

  ping(data = Buffer.alloc(0)) {
    this.ws.ping(data);
  }

  async close() {
    if (this.isClosed) return this.closeInfo;
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(1000);
    const t = setTimeout(() => this.ws.terminate(), 2000);
    const info = await this.closed;
    clearTimeout(t);
    return info;
  }
}

/**
 * Opens a WebSocket to the server with one subprotocol (null: none offered). base64
 * defaults to true for lc.proto2base64.* subprotocols; headers go with the upgrade request.
 */
export function connect(server, { subprotocol = 'lc.protobuf2.3', base64, path = '/', headers } = {}) {
  const b64 = base64 ?? /^lc\.proto2base64\./.test(subprotocol || '');
  const url = `ws://127.0.0.1:${server.port}${path}`;
  const opts = headers ? { headers } : undefined; // extra upgrade headers (X-Forwarded-For)
  const ws = subprotocol === null ? new WebSocket(url, opts) : new WebSocket(url, subprotocol, opts);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { ws.terminate(); reject(new Error('WebSocket open timed out')); }, TIMEOUT_MS);
    ws.once('open', () => {
      clearTimeout(t);
      resolve(new ProtoClient(server, ws, { base64: b64, subprotocol }));
    });
    ws.once('unexpected-response', (req, res) => {
      clearTimeout(t);
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => {
        const e = new Error(`upgrade refused: HTTP ${res.statusCode} ${body}`);
        e.statusCode = res.statusCode;
        e.body = body;
        reject(e);
      });
      req.destroy();
    });
    ws.once('error', (e) => { clearTimeout(t); reject(e); });
  });
}

/** session/open for peerId (undefined: anonymous); asserts it opened and returns the reply. */
export async function login(client, peerId, extraSessionFields = {}, { appId = client.server.appId } = {}) {
  const cmd = { cmd: 'session', op: 'open', appId, sessionMessage: { ua: 'tern-proto-test/1', ...extraSessionFields } };
  if (peerId !== undefined) cmd.peerId = peerId;
  const r = await client.request(cmd);
  assert.equal(r.cmd, 'session', `login ${peerId}: ${JSON.stringify(r)}`);
  assert.equal(r.op, 'opened', `login ${peerId}: ${JSON.stringify(r)}`);
  if (!client.peer) client.peer = r.peerId;
  return r;
}

/** A new socket with one session open for peerId. */
export async function session(server, peerId, { subprotocol, extra, base64 } = {}) {
  const c = await connect(server, { subprotocol, base64 });
  c.openReply = await login(c, peerId, extra);
  return c;
}

/** Closes every client this module opened and has not seen closed (only those of `server`
 * when given; node:test passes a context object when used directly as a hook). */
export async function closeAll(server) {
  const mine = server && server.port ? [...open].filter((c) => c.server === server) : [...open];
  await Promise.all(mine.map((c) => c.close().catch(() => {})));
}

/** A well-behaved client can still connect, log in and echo: the server survived. */
export async function assertHealthy(server) {
  const c = await connect(server);
  try {
    const peer = uid('healthy');
    const r = await login(c, peer);
    assert.equal(r.peerId, peer);
    await c.echo();
  } finally {
    await c.close();
  }
}

/** Asserts `reply` is {cmd: error, i, errorMessage: {code, reason}} and returns it. */
export function assertError(reply, i, code, reason) {
  assert.equal(reply.cmd, 'error', `expected error ${code}, got ${JSON.stringify(reply)}`);
  assert.equal(reply.i, i);
  assert.equal(reply.errorMessage?.code, code, JSON.stringify(reply));
  assert.equal(reply.errorMessage?.reason, reason, JSON.stringify(reply));
  return reply;
}

/** Asserts a push's envelope: no i, service 2, peerId of the recipient. */
export function assertPush(cmd, peerId) {
  assert.equal(cmd.i, undefined, `push carries i: ${JSON.stringify(cmd)}`);
  assert.equal(cmd.service, 2, `push without service 2: ${JSON.stringify(cmd)}`);
  assert.equal(cmd.peerId, peerId, `push peerId: ${JSON.stringify(cmd)}`);
}

/** Creates a conversation as client (members besides itself), returns convMessage of conv/started. */
export async function startConv(client, members, convFields = {}) {
  const r = await client.request({ cmd: 'conv', op: 'start', convMessage: { m: members, ...convFields } });
  assert.equal(r.cmd, 'conv', JSON.stringify(r));
  assert.equal(r.op, 'started', JSON.stringify(r));
  return r.convMessage;
}

/** Sends a direct message and asserts the ack; returns ackMessage ({uid, t}). */
export async function sendMsg(client, cid, msg, directFields = {}, envelope = {}) {
  const dm = { cid, ...directFields };
  if (msg !== undefined) dm.msg = msg;
  const r = await client.request({ cmd: 'direct', ...envelope, directMessage: dm });
  assert.equal(r.cmd, 'ack', JSON.stringify(r));
  return r.ackMessage;
}

export const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const CID_RE = /^[0-9a-f]{24}$/;

/**
 * Runs fn(server) against a ternd of its own (for options set through the environment, or
 * to keep a crash from taking other tests down) and stops it; stop() fails the test on an
 * unclean exit or a sanitizer report, after fn's own failure if it had one.
 */
export async function withServer(env, fn) {
  const server = await startServer({ env });
  let failure = null;
  try {
    await fn(server);
  } catch (e) {
    failure = e;
  }
  await closeAll(server);
  try {
    await server.stop();
  } catch (e) {
    if (!failure) throw e;
    failure.message += `\n(and the server: ${e.message.slice(0, 3000)})`;
  }
  if (failure) throw failure;
}

/** 10 echoes of `other`, each answered within a second: the worker's loop is not held. */
export async function loopFree(other, what) {
  for (let i = 0; i < 10; i++) {
    const t0 = Date.now();
    await other.echo();
    const ms = Date.now() - t0;
    assert.ok(ms < 1000, `echo ${i} took ${ms} ms while ${what}`);
  }
}

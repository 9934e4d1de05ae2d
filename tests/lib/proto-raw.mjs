// Byte-level access for the protocol tests: plain HTTP requests, and a WebSocket spoken
// over a bare TCP socket after an upgrade written by hand, so a test can send frames no
// conforming client would (unmasked, reserved bits, bad lengths, stray continuations) and
// read the server's frames exactly as they arrive.
import assert from 'node:assert/strict';
import { randomBytes, createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { decode, encode, TIMEOUT_MS } from './proto-client.mjs';

export const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

/** One HTTP request with node:http (no agent); resolves {status, headers, body, json}. */
export function httpRequest(server, { method = 'GET', path = '/', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: server.port, method, path, headers, agent: false },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => { data += d; });
        res.on('end', () => {
          let json;
          try { json = JSON.parse(data); } catch { json = undefined; }
          resolve({ status: res.statusCode, headers: res.headers, body: data, json });
          req.destroy();
        });
      },
    );
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, headers: res.headers, body: '', json: undefined });
    });
    req.on('error', reject);
    req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error('HTTP request timed out')));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** The headers of a WebSocket upgrade request; `overrides` replace or (value null) drop some. */
export function upgradeHeaders(overrides = {}) {
  const h = {
    Connection: 'Upgrade',
    Upgrade: 'websocket',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
    'Sec-WebSocket-Protocol': 'lc.protobuf2.3',
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === null) delete h[k];
    else h[k] = v;
  }
  return h;
}

export function acceptKey(key) {
  return createHash('sha1').update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
}

/** Builds one WebSocket frame. Client frames are masked unless mask: false. */
export function frame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, rsv = 0, lengthBytes } = {}) {
  const p = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const head = [((fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f))];
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
  const key = randomBytes(4);
  const body = Buffer.from(p);
  for (let i = 0; i < body.length; i++) body[i] ^= key[i & 3];
  return Buffer.concat([Buffer.from(head), key, body]);
}

export function closePayload(code, reason = '') {
  const b = Buffer.alloc(2 + Buffer.byteLength(reason));
  b.writeUInt16BE(code, 0);
  b.write(reason, 2);
  return b;
}

/**
 * A WebSocket on a bare TCP socket. Resolves after the 101; rejects with the HTTP status
 * if the server refuses. Server frames are parsed as they arrive (they must be unmasked).
 * `headers` are added to the upgrade request as given (an SDK's exact handshake).
 */
export function rawWebSocket(server, { subprotocol = 'lc.protobuf2.3', path = '/', headers: extra = {} } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(server.port, '127.0.0.1');
    const key = randomBytes(16).toString('base64');
    let buf = Buffer.alloc(0);
    let ws = null;
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('raw upgrade timed out')); }, TIMEOUT_MS);
    sock.on('connect', () => {
      const lines = [
        `GET ${path} HTTP/1.1`, `Host: 127.0.0.1:${server.port}`, 'Connection: Upgrade', 'Upgrade: websocket',
        'Sec-WebSocket-Version: 13', `Sec-WebSocket-Key: ${key}`,
      ];
      if (subprotocol) lines.push(`Sec-WebSocket-Protocol: ${subprotocol}`);
      for (const [k, v] of Object.entries(extra)) lines.push(`${k}: ${v}`);
      sock.write(lines.join('\r\n') + '\r\n\r\n');
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!ws) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString();
        buf = buf.subarray(end + 4);
        clearTimeout(timer);
        const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
        const headers = {};
        for (const line of head.split('\r\n').slice(1)) {
          const i = line.indexOf(':');
          headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
        }
        if (status !== 101) {
          sock.destroy();
          const e = new Error(`upgrade refused: ${status}`);
          e.status = status;
          reject(e);
          return;
        }
        assert.equal(headers['sec-websocket-accept'], acceptKey(key));
        ws = new RawWebSocket(sock, headers);
        resolve(ws);
      }
      ws.feed(buf);
      buf = Buffer.alloc(0);
    });
    sock.on('error', (e) => { if (!ws) { clearTimeout(timer); reject(e); } });
  });
}

export class RawWebSocket {
  constructor(sock, headers) {
    this.sock = sock;
    this.headers = headers;
    this.buf = Buffer.alloc(0);
    this.frames = []; // parsed, not yet taken
    this.waiters = [];
    this.ended = new Promise((resolve) => sock.on('close', () => {
      this.isEnded = true;
      for (const w of this.waiters) { clearTimeout(w.timer); w.reject(new Error('socket closed while waiting for a frame')); }
      this.waiters = [];
      resolve();
    }));
    sock.on('error', () => {});
  }

  feed(d) {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const rsv = (b[0] >> 4) & 7;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) { if (b.length < 4) return; len = b.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (b.length < 10) return; len = Number(b.readBigUInt64BE(2)); off = 10; }
      if (masked) off += 4;
      if (b.length < off + len) return;
      const payload = Buffer.from(b.subarray(off, off + len));
      this.buf = b.subarray(off + len);
      const f = { fin, rsv, opcode, masked, payload };
      if (opcode === OP.CLOSE) {
        f.code = payload.length >= 2 ? payload.readUInt16BE(0) : undefined;
        f.reason = payload.subarray(2).toString();
      }
      const w = this.waiters.shift();
      if (w) { clearTimeout(w.timer); w.resolve(f); } else this.frames.push(f);
    }
  }

  /** The next frame from the server. */
  nextFrame(timeout = TIMEOUT_MS) {
    if (this.frames.length) return Promise.resolve(this.frames.shift());
    if (this.isEnded) return Promise.reject(new Error('socket already closed'));
    return new Promise((resolve, reject) => {
      const w = { resolve, reject };
      w.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`no frame within ${timeout} ms`));
      }, timeout);
      this.waiters.push(w);
    });
  }

  /** The next data frame decoded as a GenericCommand (binary, or base64 text). */
  async nextCommand(timeout) {
    const f = await this.nextFrame(timeout);
    assert.ok(f.opcode === OP.BINARY || f.opcode === OP.TEXT, `expected a data frame, got opcode ${f.opcode}`);
    return decode(f.opcode === OP.TEXT ? Buffer.from(f.payload.toString(), 'base64') : f.payload);
  }

  write(bytes) {
    this.sock.write(bytes);
  }

  send(opcode, payload, opts) {
    this.sock.write(frame(opcode, payload, opts));
  }

  command(obj, opts) {
    this.send(OP.BINARY, encode(obj), opts);
  }

  /** Waits for a close frame from the server and the TCP close after it. */
  async expectClose(timeout = TIMEOUT_MS) {
    for (;;) {
      const f = await this.nextFrame(timeout);
      if (f.opcode === OP.CLOSE) {
        await Promise.race([this.ended, new Promise((_, rej) => setTimeout(() => rej(new Error('TCP not closed after the close frame')), timeout))]);
        return f;
      }
    }
  }

  destroy() {
    this.sock.destroy();
  }
}

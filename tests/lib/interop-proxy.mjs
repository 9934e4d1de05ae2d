// A TCP proxy between the SDK and ternd, used by the reconnect tests:
//
// * dropAll() destroys every proxied connection (both sides), which to the SDK is a TCP
//   connection that died without a WebSocket close frame;
// * setTarget(port) points new connections at another ternd (a restart on a new port);
// * refuse() makes the server unreachable for a while (new connections are closed at once);
// * dropBefore(pred) kills the connection that is about to carry the next server command
//   matching pred, before the client gets it (an ack lost with its connection);
// * it decodes the WebSocket frames it forwards (RFC 6455, no extensions: ternd does not
//   accept permessage-deflate) with the SDK's own protobuf schema (`sdk.Protocols`, a
//   public export), so a test can assert what the client actually sent on the wire, e.g.
//   that a reconnect login carried r:true and the old session token.
import net from 'node:net';

// Incremental parser of one direction of a WebSocket connection: the HTTP head first
// (skipped), then frames. Calls onMessage(opcode, payload Buffer) per complete message.
class WsSniffer {
  constructor(onMessage) {
    this.onMessage = onMessage;
    this.buf = Buffer.alloc(0);
    this.headDone = false;
    this.isWs = true;
    this.fragments = null;
    this.fragOpcode = 0;
  }

  push(chunk) {
    if (!this.isWs) return;
    this.buf = Buffer.concat([this.buf, chunk]);
    if (!this.headDone) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.buf.subarray(0, end).toString('latin1');
      // plain HTTP (the SDK's REST calls) is forwarded but not parsed
      if (!/^upgrade:\s*websocket/im.test(head)) {
        this.isWs = false;
        this.buf = Buffer.alloc(0);
        return;
      }
      this.headDone = true;
      this.buf = this.buf.subarray(end + 4);
    }
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      const maskOff = off;
      if (masked) off += 4;
      if (b.length < off + len) return;
      const payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] ^= b[maskOff + (i & 3)];
      this.buf = b.subarray(off + len);
      if (opcode >= 8) continue; // control frames
      if (opcode !== 0) {
        this.fragOpcode = opcode;
        this.fragments = [payload];
      } else if (this.fragments) {
        this.fragments.push(payload);
      }
      if (fin && this.fragments) {
        const whole = Buffer.concat(this.fragments);
        this.fragments = null;
        this.onMessage(this.fragOpcode, whole);
      }
    }
  }
}

export async function startProxy(targetPort, { decode } = {}) {
  let target = targetPort;
  const pairs = new Set();
  // Every decoded command: {dir: 'C->S' | 'S->C', conn: n, opcode: 1 (text) | 2 (binary), cmd}
  const log = [];
  let connSeq = 0;
  let refusing = false;
  let dropPred = null; // dropBefore: the next S->C command it matches kills its connection
  const server = net.createServer((down) => {
    if (refusing) {
      down.destroy();
      return;
    }
    const conn = ++connSeq;
    const up = net.connect(target, '127.0.0.1');
    const pair = { down, up };
    pairs.add(pair);
    const sniff = (dir) =>
      new WsSniffer((opcode, payload) => {
        if (!decode) return;
        try {
          // binary frames are protobuf; text frames (proto2base64) hold its base64
          const cmd = decode(opcode === 1 ? payload.toString('latin1') : payload);
          log.push({ dir, conn, opcode, cmd });
          if (dir === 'S->C' && dropPred && dropPred(cmd)) {
            dropPred = null;
            pair.dropNow = true;
          }
        } catch (e) {
          log.push({ dir, conn, opcode, error: String(e) });
        }
      });
    const c2s = sniff('C->S');
    const s2c = sniff('S->C');
    down.on('data', (d) => {
      c2s.push(d);
      up.write(d);
    });
    up.on('data', (d) => {
      s2c.push(d);
      if (pair.dropNow) { // what this chunk carried is never forwarded
        close();
        return;
      }
      down.write(d);
    });
    const close = () => {
      pairs.delete(pair);
      down.destroy();
      up.destroy();
    };
    down.on('error', close);
    up.on('error', close);
    down.on('close', close);
    up.on('close', close);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    wsUrl: `ws://127.0.0.1:${port}/`,
    httpUrl: `http://127.0.0.1:${port}`,
    log,
    get connections() {
      return pairs.size;
    },
    setTarget(p) {
      target = p;
    },
    // While refusing, new connections are accepted and closed at once (the server is
    // "unreachable"); existing ones are not touched.
    refuse(on = true) {
      refusing = on;
    },
    // The next command from the server that pred(cmd) accepts (needs decode) is not
    // forwarded: its connection is killed both ways instead, with no close frame.
    dropBefore(pred) {
      dropPred = pred;
    },
    // Kills every proxied TCP connection at once, with no WebSocket close frame.
    dropAll() {
      for (const { down, up } of [...pairs]) {
        down.destroy();
        up.destroy();
      }
      pairs.clear();
    },
    async close() {
      this.dropAll();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

// The session/open commands `peerId` sent through the proxy, in order, each with the
// server's answer: [{conn, r, st, reply: 'opened' | 'closed' | 'error' | null, code,
// issued}], where `issued` is the token (st) the answer handed out, if any.
export function sessionOpens(log, peerId) {
  const opens = [];
  for (const e of log) {
    if (!e.cmd) continue;
    const c = e.cmd;
    if (e.dir === 'C->S' && c.cmd === 0 && c.op === 1 && c.peerId === peerId) {
      const sm = c.sessionMessage || {};
      opens.push({ conn: e.conn, i: c.i, r: sm.r === true, st: sm.st || null, reply: null, code: null, issued: null });
    } else if (e.dir === 'S->C' && c.i) {
      const o = opens.find((x) => x.conn === e.conn && x.i === c.i && x.reply === null);
      if (!o) continue;
      if (c.cmd === 7) {
        o.reply = 'error';
        o.code = c.errorMessage && c.errorMessage.code;
      } else if (c.cmd === 0 && c.op === 5) {
        o.reply = 'opened';
        o.issued = (c.sessionMessage && c.sessionMessage.st) || null;
      } else if (c.cmd === 0 && c.op === 6) {
        o.reply = 'closed';
        o.code = c.sessionMessage && c.sessionMessage.code;
      } else {
        o.reply = `cmd ${c.cmd} op ${c.op}`;
      }
    }
  }
  return opens;
}

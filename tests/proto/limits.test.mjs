// Issue #4 §5 limits, each with hand-built frames and a well-behaved bystander pair on the
// same server that must see no interruption: command rates per connection and per client
// (4116), connections per IP (HTTP 429), frame and message size (4109), sessions per socket
// (4113), the output limit that drops a reader that stopped reading, HTTP header (431) and
// body (413) size, and slow handshakes (slowloris, login_timeout).
// protocol.md §1.1, §1.2, §6, §9.1; docs/security.md "Limits and their defaults".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  assertError, assertHealthy, connect, encode, login, session, startConv, uid, withServer,
} from '../lib/proto-client.mjs';
import { OP, frame, httpRequest, rawWebSocket } from '../lib/proto-raw.mjs';
import {
  TEXT, bystander, drainUntilClosed, history, logCount, sleep, tcp, until, within,
} from '../lib/issue4-util.mjs';

/** Sends every command of cmds on c in one TCP write (the server reads them in one go). */
function burst(c, cmds) {
  const sock = c.ws._socket;
  sock.cork();
  const is = cmds.map((cmd) => c.send(cmd));
  sock.uncork();
  return is;
}

const MASTER = (srv) => ({ 'X-LC-Id': srv.appId, 'X-LC-Key': `${srv.masterKey},master` });
const masterLines = (srv) => `X-LC-Id: ${srv.appId}\r\nX-LC-Key: ${srv.masterKey},master\r\n`;

const isDirect = (text) => (p) => p.cmd === 'direct' && p.directMessage?.msg === text;

// ---------------------------------------------------------------- command rates → 4116

test('§6 4116 per-connection rate (max_conn_rate=20, burst 40): requests over it get MESSAGE_SENT_QUOTA_EXCEEDED and are not run; fire-and-forget is dropped; tokens refill', () =>
  withServer({ TERN_MAX_CONN_RATE: '20', TERN_MAX_CLIENT_RATE: '0' }, async (srv) => {
    const by = await bystander(srv, { intervalMs: 150, label: 'rate' });
    const [x, y] = [uid('X'), uid('Y')];
    const X = await session(srv, x);
    const Y = await session(srv, y);
    const cid = (await startConv(X, [y])).cid;
    await sleep(300); // the two commands so far are refilled: a full bucket of 40
    const markY = Y.mark();
    const N = 100;
    const cmds = Array.from({ length: N }, () => ({ cmd: 'echo' }));
    cmds.push({ cmd: 'direct', directMessage: { cid, msg: TEXT('over the rate, with i') } });
    cmds.push({ cmd: 'direct', i: null, directMessage: { cid, msg: TEXT('over the rate, fire and forget') } });
    cmds.push({ cmd: 'read', i: null, readMessage: { cid } });
    const is = burst(X, cmds);
    const replies = await Promise.all(is.slice(0, N + 1).map((i) => X.reply(i)));
    const ok = replies.filter((r) => r.cmd === 'echo').length;
    // 40 from the full bucket, and at 20/s at most a token or two while the burst is read
    assert.ok(ok >= 40 && ok <= 43, `${ok} echoes answered`);
    assert.deepEqual(replies.slice(0, 40).map((r) => r.cmd), Array(40).fill('echo'), 'the burst allowance comes first');
    for (const [k, r] of replies.entries()) {
      if (r.cmd === 'echo') continue;
      assertError(r, is[k], 4116, 'MESSAGE_SENT_QUOTA_EXCEEDED');
      assert.equal(r.errorMessage.detail, 'too many commands on this connection');
    }
    assert.equal(replies[N].cmd, 'error', 'the direct at the end of the burst is refused');
    // refill (20/s), then: nothing else came back to X, and Y got neither message
    await sleep(1100);
    const afterMark = X.mark();
    assert.deepEqual(await X.quiet(afterMark), [], 'no reply to the fire-and-forget commands over the rate');
    assert.deepEqual((await Y.quiet(markY)).filter((p) => p.cmd === 'direct'), [], 'over-rate messages were not delivered');
    // recovered: a request goes through and is delivered
    const got = Y.next(isDirect(TEXT('after the refill')));
    const ack = await X.request({ cmd: 'direct', directMessage: { cid, msg: TEXT('after the refill') } });
    assert.equal(ack.cmd, 'ack', JSON.stringify(ack));
    await got;
    assert.deepEqual((await history(Y, cid)).map((l) => l.msgId), [ack.ackMessage.uid], 'only the message within the rate is stored');
    await by.check();
  }));

test('§6 4116 per-client rate (max_client_rate=10): one client over it is refused; another client on the same socket and echo (no client) are not', () =>
  withServer({ TERN_MAX_CONN_RATE: '0', TERN_MAX_CLIENT_RATE: '10' }, async (srv) => {
    const by = await bystander(srv, { intervalMs: 250, label: 'crate' });
    const c = await connect(srv);
    const [p, q] = [uid('P'), uid('Q')];
    await login(c, p);
    await login(c, q);
    await sleep(300);
    const query = (peerId) => ({ cmd: 'session', op: 'query', peerId, sessionMessage: { sessionPeerIds: [p, q] } });
    const cmds = [];
    for (let k = 0; k < 40; k++) cmds.push(query(p));
    for (let k = 0; k < 5; k++) cmds.push(query(q));
    for (let k = 0; k < 30; k++) cmds.push({ cmd: 'echo' });
    const is = burst(c, cmds);
    const replies = await Promise.all(is.map((i) => c.reply(i)));
    const pr = replies.slice(0, 40);
    const okP = pr.filter((r) => r.cmd === 'session').length;
    assert.ok(okP >= 20 && okP <= 22, `${okP} of P's 40 answered (burst 20)`);
    for (const [k, r] of pr.entries()) {
      if (r.cmd === 'session') { assert.equal(r.op, 'query_result'); continue; }
      assertError(r, is[k], 4116, 'MESSAGE_SENT_QUOTA_EXCEEDED');
      assert.equal(r.errorMessage.detail, 'too many commands from this client');
      assert.equal(r.peerId, p);
    }
    assert.deepEqual(replies.slice(40, 45).map((r) => r.op), Array(5).fill('query_result'), 'Q has its own allowance');
    assert.deepEqual(replies.slice(45).map((r) => r.cmd), Array(30).fill('echo'), 'echo is not a client command');
    await sleep(1100);
    const r = await c.request(query(p));
    assert.equal(r.op, 'query_result', `P recovered after a second: ${JSON.stringify(r)}`);
    assert.equal(c.isClosed, false);
    await by.check();
  }));

test('§6 4116 per-client rate counts the client, not each of its sockets: one client id on 3 sockets shares max_client_rate=10', () =>
  withServer({ TERN_MAX_CONN_RATE: '0', TERN_MAX_CLIENT_RATE: '10' }, async (srv) => {
    // Otherwise a client multiplies its allowance by opening more connections (or by closing
    // and reopening its session): "per client" would mean "per session object".
    const p = uid('multi');
    const socks = [];
    for (let k = 0; k < 3; k++) socks.push(await session(srv, p));
    await sleep(300);
    const query = { cmd: 'session', op: 'query', sessionMessage: { sessionPeerIds: [p] } };
    const all = await Promise.all(socks.map((c) => Promise.all(burst(c, Array(30).fill(query)).map((i) => c.reply(i)))));
    const ok = all.flat().filter((r) => r.cmd === 'session').length;
    const refused = all.flat().filter((r) => r.cmd === 'error' && r.errorMessage?.code === 4116).length;
    assert.equal(ok + refused, 90);
    assert.ok(ok <= 24, `${ok} of 90 commands from one client accepted within a moment (burst 20): each socket had its own allowance`);
  }));

// ---------------------------------------------------------------- connections per IP → 429

test('§6/§7 connections per IP (max_conns_per_ip=6): the next gets HTTP 429 JSON and is closed; a closed one frees its slot; refusals hold no slot', () =>
  withServer({ TERN_MAX_CONNS_PER_IP: '6' }, async (srv) => {
    const by = await bystander(srv, { intervalMs: 100, label: 'ip' }); // 2 connections
    const mine = [];
    for (let k = 0; k < 4; k++) mine.push(await connect(srv));
    // a hand-written upgrade: the refusal comes at once, then the close
    for (let k = 0; k < 5; k++) {
      const s = await tcp(srv);
      s.write(`GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${Buffer.alloc(16, k).toString('base64')}\r\nSec-WebSocket-Protocol: lc.protobuf2.3\r\n\r\n`);
      const { data, how } = await drainUntilClosed(s, 3000);
      assert.notEqual(how, 'timeout', 'the refused connection is closed');
      const text = data.toString();
      assert.match(text, /^HTTP\/1\.1 429 /, text);
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      const json = JSON.parse(body);
      assert.equal(json.code, 429);
      assert.equal(typeof json.error, 'string');
      assert.match(text, new RegExp(`Content-Length: ${Buffer.byteLength(body)}\\r\\n`, 'i'));
    }
    await assert.rejects(connect(srv), (e) => e.statusCode === 429, 'a WebSocket client sees 429');
    const h = await httpRequest(srv, { path: '/health' }).catch((e) => ({ status: e.code }));
    assert.equal(h.status, 429, 'plain HTTP is counted and refused too');
    // closing one frees a slot (the server releases it when it reaps the connection)
    await mine.pop().close();
    const again = await until(() => connect(srv).catch(() => null), 2000, 'a slot after closing one');
    mine.push(again);
    await login(again, uid('late'));
    await again.echo();
    // the refused attempts hold nothing: close all 4, then 4 connect again
    for (const c of mine.splice(0)) await c.close();
    await sleep(200);
    for (let k = 0; k < 4; k++) mine.push(await until(() => connect(srv).catch(() => null), 2000, `connection ${k}`));
    await assert.rejects(connect(srv), (e) => e.statusCode === 429);
    for (const c of mine) await c.close();
    await by.check();
  }));

test('§6/§7 connections in all (max_conns=5, issue #11 point 7): the next gets HTTP 503 JSON and is closed; a closed one frees its slot; /metrics counts the refusals', () =>
  withServer({ TERN_MAX_CONNS: '5', TERN_MAX_CONNS_PER_IP: '0' }, async (srv) => {
    const mine = [];
    for (let k = 0; k < 5; k++) {
      mine.push(await connect(srv));
      await login(mine[k], uid(`all${k}`));
    }
    const s = await tcp(srv);
    s.write(`GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${Buffer.alloc(16, 7).toString('base64')}\r\nSec-WebSocket-Protocol: lc.protobuf2.3\r\n\r\n`);
    const { data, how } = await drainUntilClosed(s, 3000);
    assert.notEqual(how, 'timeout', 'the refused connection is closed');
    const text = data.toString();
    assert.match(text, /^HTTP\/1\.1 503 /, text);
    const json = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
    assert.deepEqual(json, { code: 503, error: 'the server is at its connection limit' });
    await assert.rejects(connect(srv), (e) => e.statusCode === 503, 'a WebSocket client sees 503');
    for (const c of mine) await c.echo(); // the five are unaffected
    // two closed: one slot for a new client, one for /metrics
    await mine.pop().close();
    await mine.pop().close();
    const again = await until(() => connect(srv).catch(() => null), 2000, 'a slot after closing one');
    await login(again, uid('again'));
    await again.echo();
    const m = await until(() => httpRequest(srv, { path: '/metrics', headers: MASTER(srv) }).catch(() => null), 2000, '/metrics');
    assert.ok(Number(/^tern_connections_refused_total\{limit="server"\} (\d+)$/m.exec(m.body)?.[1]) >= 2, m.body);
    const lines = logCount(srv, /over max_conns \(5 open\), refused/);
    assert.ok(lines >= 1 && lines <= 2, `${lines} lines for 2 refusals a few ms apart: a line a second at most`);
    await again.close();
  }));

// ---------------------------------------------------------------- frame size → close 4109

test('§1.1/§6 4109 max_frame=1024: oversized frames close FRAME_TOO_LONG, also one only announced in its header; nobody else notices', () =>
  withServer({ TERN_MAX_FRAME: '1024' }, async (srv) => {
    const by = await bystander(srv, { intervalMs: 50, label: 'frame' });
    const pad = (n) => encode({ cmd: 'echo', i: 1, installationId: 'p'.repeat(n) });
    const rows = [
      { name: 'binary frame of 2000 bytes', send: (raw) => raw.send(OP.BINARY, pad(2000)) },
      { name: 'text frame of 1500 bytes', send: (raw) => raw.send(OP.TEXT, 'A'.repeat(1500)) },
      // only the header: 2^40 bytes announced, nothing sent after it. The limit must be applied
      // to the announced length, not after waiting for (or buffering) the payload.
      { name: '64-bit length 2^40 announced, no payload', send: (raw) => {
        const h = Buffer.alloc(14);
        h[0] = 0x82; h[1] = 0x80 | 127; h.writeBigUInt64BE(1n << 40n, 2); // mask key: zeros
        raw.write(h);
      } },
      { name: '16-bit length 60000 announced, 100 bytes sent', send: (raw) => raw.write(frame(OP.BINARY, Buffer.alloc(60000)).subarray(0, 108)) },
      { name: 'a continuation that takes the message past the limit', send: (raw) => {
        raw.send(OP.BINARY, Buffer.alloc(600), { fin: false });
        raw.send(OP.CONT, Buffer.alloc(600), { fin: true });
      } },
    ];
    for (const row of rows) {
      const raw = await rawWebSocket(srv);
      raw.command({ cmd: 'session', op: 'open', i: 1, appId: srv.appId, peerId: uid('big'), sessionMessage: { ua: 't' } });
      const opened = await raw.nextCommand();
      assert.equal(opened.op, 'opened');
      row.send(raw);
      const f = await raw.expectClose(3000).catch((e) => { throw new Error(`${row.name}: ${e.message}`); });
      assert.equal(f.code, 4109, row.name);
      assert.equal(f.reason, 'FRAME_TOO_LONG', row.name);
    }
    await assertHealthy(srv);
    await by.check();
  }));

// ---------------------------------------------------------------- message size → error 4109

test('§6/§9.1 4109 max_message=200: content (+pushData) over it gets an error reply, the connection stays, nothing is delivered or stored', () =>
  withServer({ TERN_MAX_MESSAGE: '200' }, async (srv) => {
    const by = await bystander(srv, { intervalMs: 50, label: 'msg' });
    const [a, b] = [uid('A'), uid('B')];
    const A = await session(srv, a);
    const B = await session(srv, b);
    const cid = (await startConv(A, [b])).cid;
    const markB = B.mark();
    const rows = [
      { dm: { cid, msg: 'x'.repeat(201) }, code: 4109 },
      { dm: { cid, msg: 'x'.repeat(150), pushData: 'y'.repeat(51) }, code: 4109 },
      { dm: { cid, binaryMsg: Buffer.alloc(201, 1) }, code: 4109 },
      { dm: { cid, msg: 'ü'.repeat(101) }, code: 4109 }, // 202 bytes in UTF-8
      { dm: { cid, msg: 'x'.repeat(200) }, ok: true },
      { dm: { cid, msg: 'x'.repeat(150), pushData: 'y'.repeat(50) }, ok: true },
    ];
    const acked = [];
    for (const [k, row] of rows.entries()) {
      const i = 10 + k;
      const r = await A.request({ cmd: 'direct', i, directMessage: row.dm });
      if (row.ok) {
        assert.equal(r.cmd, 'ack', `row ${k}: ${JSON.stringify(r)}`);
        acked.push(r.ackMessage.uid);
      } else {
        assertError(r, i, 4109, 'FRAME_TOO_LONG');
      }
    }
    assert.equal(A.isClosed, false, 'the sender stays connected');
    await until(() => B.received.filter((p) => p.cmd === 'direct').length >= 2, 3000, 'deliveries');
    const got = (await B.quiet(markB)).filter((p) => p.cmd === 'direct').map((p) => p.directMessage.id);
    assert.deepEqual(got, acked, 'only the messages within the limit are delivered');
    assert.deepEqual((await history(B, cid)).map((l) => l.msgId), acked, 'only they are stored');
    await by.check();
  }));

// ---------------------------------------------------------------- sessions per socket → 4113

test('§6 4113 max_sessions_per_conn=3: a fourth client on the socket gets error APP_QUOTA_EXCEEDED; re-login and closing one make room', () =>
  withServer({ TERN_MAX_SESSIONS_PER_CONN: '3' }, async (srv) => {
    const by = await bystander(srv, { intervalMs: 50, label: 'sess' });
    const c = await connect(srv);
    const peers = [uid('s1'), uid('s2'), uid('s3'), uid('s4')];
    for (const p of peers.slice(0, 3)) await login(c, p);
    const open4 = { cmd: 'session', op: 'open', i: 77, appId: srv.appId, peerId: peers[3], sessionMessage: { ua: 't' } };
    const r = await c.request(open4);
    assertError(r, 77, 4113, 'APP_QUOTA_EXCEEDED');
    assert.equal(c.isClosed, false, 'the socket stays open');
    // the fourth is not logged in: a command for it gets 4105
    assertError(await c.request({ cmd: 'conv', op: 'query', i: 78, peerId: peers[3], convMessage: {} }), 78, 4105, 'SESSION_REQUIRED');
    // the three still work, and logging one of them in again needs no new slot
    await login(c, peers[1]);
    for (const p of peers.slice(0, 3)) {
      const q = await c.request({ cmd: 'conv', op: 'query', peerId: p, convMessage: {} });
      assert.equal(q.cmd, 'conv', `${p}: ${JSON.stringify(q)}`);
    }
    // another socket has its own three
    const other = await connect(srv);
    for (let k = 0; k < 3; k++) await login(other, uid('o'));
    // closing one session frees its slot
    const closed = await c.request({ cmd: 'session', op: 'close', peerId: peers[2] });
    assert.equal(closed.op, 'closed', JSON.stringify(closed));
    const r2 = await c.request({ ...open4, i: 79 });
    assert.equal(r2.op, 'opened', JSON.stringify(r2));
    await by.check();
  }));

// ---------------------------------------------------------------- output limit: slow consumers

test('§5 output_limit=1 MiB: a member that stops reading is dropped once its queue passes the limit; the sender, a reader that keeps up and a bystander are not affected', () =>
  // (the limit must be well above one message: with 64 KiB and 49 KB messages even a reader
  // that keeps up is dropped, because two messages are briefly queued while the kernel's send
  // buffer is still small)
  withServer({ TERN_OUTPUT_LIMIT: String(1 << 20), TERN_MAX_MESSAGE: '60000', TERN_MAX_FRAME: '131072' }, async (srv) => {
    const by = await bystander(srv, { intervalMs: 50, label: 'slow' });
    const [s, slow, fast] = [uid('S'), uid('slow'), uid('fast')];
    const S = await session(srv, s);
    const Slow = await session(srv, slow);
    const Fast = await session(srv, fast);
    const cid = (await startConv(S, [slow, fast])).cid;
    await Slow.nextCmd('conv', 'joined');
    Slow.ws._socket.pause(); // reads nothing more: the kernel buffers fill, then the server's queue
    // ~20 KB messages, 8 in flight, until the server has dropped the slow reader and 50 more;
    // a loopback socket's buffers hold a few MB, so ~300 are needed; 1500 (30 MB) is the cap
    const pad = 'x'.repeat(20000);
    const acks = [];
    const window = [];
    let after = -1;
    for (let k = 0; k < 1500 && after < 50; k++) {
      window.push(S.request({ cmd: 'direct', directMessage: { cid, msg: TEXT(`m ${k} ${pad}`) } }, 30000));
      if (window.length >= 8) acks.push(await window.shift());
      if (after >= 0 || logCount(srv, /dropping slow consumer/)) after++;
    }
    acks.push(...(await Promise.all(window)));
    const N = acks.length;
    assert.ok(after >= 0, `the slow reader was not dropped after ${N} messages (${N * 20} KB)`);
    assert.deepEqual(acks.map((a) => a.cmd), Array(N).fill('ack'), 'the sender got every ack');
    await until(() => Fast.received.filter((p) => p.cmd === 'direct').length >= N, 30000, 'the fast reader gets all');
    const fastIds = Fast.received.filter((p) => p.cmd === 'direct').map((p) => p.directMessage.id);
    assert.deepEqual(fastIds, acks.map((a) => a.ackMessage.uid), 'the reader that keeps up got every message, in order');
    assert.equal(logCount(srv, /dropping slow consumer/), 1, 'the server dropped exactly one slow consumer');
    // the dropped reader: whatever the kernel held, then the end (no close frame: dropped)
    Slow.ws._socket.resume();
    const info = await within(Slow.closed, 10000, 'the slow reader sees its connection end');
    assert.equal(info.code, 1006, `dropped without a close handshake: ${JSON.stringify(info)}`);
    const slowGot = Slow.received.filter((p) => p.cmd === 'direct').length;
    assert.ok(slowGot < N - 50, `the slow reader got ${slowGot} of ${N} before it was dropped`);
    assert.equal(S.isClosed || Fast.isClosed, false);
    // it can come back and catch up from history (pages of 20: one reply of all N × 20 KB
    // would itself pass the output limit)
    const Back = await session(srv, slow);
    assert.deepEqual((await history(Back, cid, 20)).map((l) => l.msgId), acks.map((a) => a.ackMessage.uid));
    await by.check();
  }));

// ---------------------------------------------------------------- HTTP limits


/** A number from /metrics: the first line that starts with `name` (labels included). */
async function metric(srv, name) {
  const body = (await httpRequest(srv, { path: '/metrics', headers: MASTER(srv) })).body;
  const line = body.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} not in /metrics:\n${body}`);
  return Number(line.slice(name.length + 1));
}

for (const which of ['ip', 'total']) {
  const env = which === 'ip'
    ? { TERN_OUTPUT_LIMIT_IP: String(8 << 20), TERN_OUTPUT_LIMIT_TOTAL: '0' }
    : { TERN_OUTPUT_LIMIT_IP: '0', TERN_OUTPUT_LIMIT_TOTAL: String(8 << 20) };
  test(`§5 output_limit_${which}=8 MiB (issue #11 point 11): past it the largest queue goes first; a smaller one from the same address stays and gets everything`, () =>
    withServer({
      ...env, TERN_WORKERS: '2', TERN_OUTPUT_LIMIT: String(64 << 20), TERN_MAX_MESSAGE: String(128 << 10),
      TERN_MAX_FRAME: String(256 << 10), TERN_MAX_CONN_RATE: '0', TERN_MAX_CLIENT_RATE: '0',
    }, async (srv) => {
      const F = await session(srv, uid('F'), { extra: { configBitmap: 8 } }); // acks for transient messages
      const A = await session(srv, uid('bigQ'));
      const B = await session(srv, uid('smallQ'));
      const cidA = (await startConv(F, [A.peer])).cid;
      const cidB = (await startConv(F, [B.peer])).cid;
      await A.nextCmd('conv', 'joined');
      await B.nextCmd('conv', 'joined');
      A.ws._socket.pause(); // neither reads any more: the kernel's buffers fill, then ternd's queues
      B.ws._socket.pause();
      const pad = 'q'.repeat(100 * 1024);
      const send = (cid, k) => F.request({ cmd: 'direct', directMessage: { cid, msg: TEXT(`${k} ${pad}`), transient: true } }, 20000)
        .then((r) => assert.equal(r.cmd, 'ack', JSON.stringify(r)));
      const dropped = `tern_output_dropped_total{limit="${which}"}`;
      // A first, until 5 MiB wait in ternd for it (the metric counts queues that outlive a flush)
      let sentA = 0;
      while (await metric(srv, 'tern_output_queued_bytes') < (5 << 20)) {
        await Promise.all([0, 1, 2, 3].map((j) => send(cidA, sentA + j)));
        sentA += 4;
        assert.ok(sentA < 600, `${sentA} messages to A and still under 5 MiB queued`);
      }
      // then B, until the sum passes 8 MiB: A's queue is the larger, so A goes
      let sentB = 0;
      while (await metric(srv, dropped) === 0) {
        await send(cidB, sentB++);
        assert.ok(sentB < 300, `nothing dropped after ${sentB} messages to B (output_limit_${which} not enforced)`);
      }
      assert.equal(await metric(srv, dropped), 1, 'one connection dropped');
      assert.equal(await metric(srv, 'tern_output_dropped_total{limit="connection"}'), 0);
      assert.ok(await metric(srv, 'tern_output_queued_bytes') <= (8 << 20), 'under the cap again');
      assert.match(srv.stderr(), new RegExp(`the largest while over output_limit_${which} \\(8388608\\): dropping it`));
      // A was the one: reading again, it finds the connection closed
      A.ws._socket.resume();
      await until(() => A.isClosed, 10000, 'A (the larger queue) closed');
      // B stays, and gets every message sent to it, in order
      B.ws._socket.resume();
      await B.next((p) => p.cmd === 'direct' && p.directMessage?.msg?.startsWith(`"${sentB - 1} `) === false
        && JSON.parse(p.directMessage.msg)._lctext.startsWith(`${sentB - 1} `), 20000);
      const got = B.received.filter((p) => p.cmd === 'direct' && p.directMessage?.cid === cidB)
        .map((p) => Number(JSON.parse(p.directMessage.msg)._lctext.split(' ')[0]));
      assert.deepEqual(got, Array.from({ length: sentB }, (_, k) => k), 'B received everything, in order');
      assert.equal(B.isClosed, false);
      await B.echo();
      await F.echo();
    }));
}

test('§7 HTTP limits: headers over 16 KiB or more than 64 headers → 431; a body over 1 MiB → 413 (announced or chunked); JSON error bodies', () =>
  withServer({}, async (srv) => {
    const by = await bystander(srv, { intervalMs: 50, label: 'http' });
    const rows = [
      { name: '15 KiB header value', headers: { 'X-Pad': 'p'.repeat(15 * 1024) }, status: 200 },
      { name: '17 KiB header value', headers: { 'X-Pad': 'p'.repeat(17 * 1024) }, status: 431 },
      { name: '17 KiB URL', path: `/health?${'q'.repeat(17 * 1024)}`, status: 431 },
      { name: '70 headers', headers: Object.fromEntries(Array.from({ length: 70 }, (_, k) => [`X-H${k}`, 'v'])), status: 431 },
      // with the master key, which /debug/faults needs: a request without it is refused before its size matters
      { name: 'Content-Length 1 MiB + 1', method: 'POST', path: '/debug/faults', headers: MASTER(srv), body: 'x'.repeat(1024 * 1024 + 1), status: 413 },
    ];
    for (const row of rows) {
      const res = await httpRequest(srv, { method: row.method || 'GET', path: row.path || '/health', headers: row.headers || {}, body: row.body })
        .catch((e) => ({ status: `failed: ${e.message}` }));
      assert.equal(res.status, row.status, row.name);
      if (row.status !== 200) {
        assert.equal(res.json?.code, row.status, `${row.name}: ${res.body}`);
        assert.equal(typeof res.json.error, 'string');
      }
    }
    // announced only: the 413 comes at once, without waiting for the body
    const s = await tcp(srv);
    s.write(`POST /debug/faults HTTP/1.1\r\nHost: x\r\n${masterLines(srv)}Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n{`);
    const announced = await drainUntilClosed(s, 3000);
    assert.match(announced.data.toString(), /^HTTP\/1\.1 413 /, 'announced 50 MB → 413');
    assert.notEqual(announced.how, 'timeout', 'and the connection is closed');
    // chunked: no length announced, the body grows past 1 MiB
    const c = await tcp(srv);
    c.write(`POST /debug/faults HTTP/1.1\r\nHost: x\r\n${masterLines(srv)}Transfer-Encoding: chunked\r\n\r\n`);
    const chunk = 'y'.repeat(256 * 1024);
    const replyP = drainUntilClosed(c, 5000);
    for (let k = 0; k < 5 && !c.destroyed; k++) c.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    const chunked = await replyP;
    assert.match(chunked.data.toString(), /^HTTP\/1\.1 413 /, `chunked past 1 MiB → 413: ${chunked.data.toString().slice(0, 200)}`);
    await assertHealthy(srv);
    await by.check();
  }));

test('§5 output_limit=256 KiB over HTTP: pipelined requests from a client that never reads the responses get it dropped; others unaffected', () =>
  withServer({ TERN_OUTPUT_LIMIT: String(256 << 10) }, async (srv) => {
    const by = await bystander(srv, { intervalMs: 50, label: 'pipe' });
    const s = await tcp(srv);
    s.pause(); // never reads a response
    const req = Buffer.from('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    const batch = Buffer.concat(Array(1000).fill(req)); // 1000 requests, ~150 KB of responses
    let k = 0;
    let writeError = null;
    s.on('error', (e) => { writeError = e; });
    // ~15 MB of responses at most: far more than the kernel buffers and the 256 KiB queue hold
    while (k < 100 && !s.destroyed && !logCount(srv, /dropping slow consumer/)) {
      if (!s.write(batch)) await Promise.race([new Promise((r) => s.once('drain', r)), sleep(500)]);
      k++;
    }
    await until(() => logCount(srv, /dropping slow consumer/) === 1, 5000, `the non-reader is dropped (${k} × 1000 requests sent, ${writeError?.code ?? 'no write error'})`);
    s.destroy();
    await assertHealthy(srv);
    await by.check();
  }));

test('§1.2 slow handshakes (login_timeout=1): requests whose headers stop half-way are closed; a WebSocket trickling a frame without a session is closed 4108', () =>
  withServer({ TERN_LOGIN_TIMEOUT: '1' }, async (srv) => {
    const by = await bystander(srv, { intervalMs: 50, label: 'loris' });
    const t0 = Date.now();
    // 20 silent ones: the request line and one header, then nothing
    const silent = [];
    for (let k = 0; k < 20; k++) {
      const s = await tcp(srv);
      s.write('GET /health HTTP/1.1\r\nHost: x\r\n');
      silent.push(drainUntilClosed(s, 5000).then((r) => ({ ...r, ms: Date.now() - t0 })));
    }
    // a WebSocket upgraded, then a frame trickled a byte every 200 ms, never a session
    const raw = await rawWebSocket(srv);
    const big = frame(OP.BINARY, Buffer.alloc(800, 0x41));
    let k = 0;
    const wsTimer = setInterval(() => { if (!raw.isEnded && k < big.length) raw.write(big.subarray(k, ++k)); }, 200);
    const wsClose = raw.expectClose(6000).then((f) => ({ code: f.code, ms: Date.now() - t0 }), (e) => ({ error: e.message }));
    for (const r of await Promise.all(silent)) {
      assert.notEqual(r.how, 'timeout', 'a silent half-request is closed');
      assert.ok(r.ms <= 3500, `silent half-request closed after ${r.ms} ms`);
    }
    const w = await wsClose;
    clearInterval(wsTimer);
    raw.destroy();
    assert.equal(w.code, 4108, `trickling WebSocket without a session: ${JSON.stringify(w)}`);
    assert.ok(w.ms <= 3500, `closed after ${w.ms} ms`);
    await by.check();
  }));

test('§1.2 slowloris (login_timeout=1): request headers trickled a byte every 200 ms, never finished, are closed within a few seconds', () =>
  withServer({ TERN_LOGIN_TIMEOUT: '1' }, async (srv) => {
    // The classic slowloris keeps a connection by sending a little of its headers before any
    // silence timer fires. The handshake needs a deadline of its own (here login_timeout from
    // the connection's start), not only a silence timer.
    const by = await bystander(srv, { intervalMs: 50, label: 'trickle' });
    const t0 = Date.now();
    const socks = [];
    for (let k = 0; k < 5; k++) {
      const s = await tcp(srv);
      s.write('GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ');
      socks.push(s);
    }
    let k = 0;
    const timer = setInterval(() => { for (const s of socks) if (!s.destroyed) s.write('abcdefgh'[k++ % 8]); }, 200);
    const results = await Promise.all(socks.map((s) => drainUntilClosed(s, 6000).then((r) => ({ ...r, ms: Date.now() - t0 }))));
    clearInterval(timer);
    for (const r of results) {
      assert.notEqual(r.how, 'timeout', 'a request trickling its headers is closed (slowloris)');
      assert.ok(r.ms <= 4000, `slowloris closed after ${r.ms} ms`);
    }
    await by.check();
  }));

// Issue #11 point 11 (second half), output amplification: 100 readers that log in, join a
// busy group and never read their sockets again. Each may queue output_limit (2 MiB here)
// before it is dropped on its own account, so together they could make ternd hold 100 ×
// 2 MiB; output_limit_total (16 MiB here) caps what all queues hold, dropping the largest
// first. The server's RSS must stay within the cap plus allowances, a member that reads
// must get every message and never be dropped, and the sender must not notice.
// docs/security.md "Limits and their defaults": output_limit_total, output_limit_ip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { closeAll, connect, login, session, startConv, uid } from '../lib/proto-client.mjs';
import { httpRequest } from '../lib/proto-raw.mjs';
import { TEXT, memKb, rssSampler, sleep } from '../lib/issue4-util.mjs';

const MiB = 1 << 20;
const READERS = 100;
const OUTPUT_LIMIT = 2 * MiB;
const TOTAL = 16 * MiB;
const QUARANTINE_MB = 16; // AddressSanitizer keeps freed memory this long (default 256 MB)
const FLOOD_MSG = 100 * 1024;
// What the server may grow by over its RSS with everyone logged in: the capped queues at
// twice their bytes (a queue's buffer doubles as it grows, so it can hold up to twice what
// it counts), the allocator's quarantine under AddressSanitizer, and 64 MiB for what does not
// grow with the flood (messages in flight, allocator caches and fragmentation, ASan's shadow
// of new heap; measured growth under a loaded make test reached 95 MiB with old and new
// builds alike). Without the cap the readers' queues alone reach READERS × OUTPUT_LIMIT =
// 200 MiB, twice that in buffer capacity, so the bound still tells a capped server from one
// that is not.
const RSS_ALLOWANCE_KB = (2 * TOTAL + QUARANTINE_MB * MiB + 64 * MiB) / 1024;

async function metrics(server) {
  const body = (await httpRequest(server, { path: '/metrics', headers: { Authorization: `Bearer ${server.masterKey}` } })).body;
  const num = (name) => Number(body.split('\n').find((l) => l.startsWith(`${name} `))?.slice(name.length + 1) ?? NaN);
  return {
    queued: num('tern_output_queued_bytes'),
    droppedTotal: num('tern_output_dropped_total{limit="total"}'),
    droppedConn: num('tern_output_dropped_total{limit="connection"}'),
    connections: num('tern_connections'),
  };
}

test(`output_limit_total: ${READERS} readers in a busy group never read — the largest queues are dropped first, RSS stays bounded, a reader that keeps up gets everything`, { timeout: 240000 }, async () => {
  const server = await startServer({
    env: {
      TERN_WORKERS: '2',
      TERN_OUTPUT_LIMIT: String(OUTPUT_LIMIT),
      TERN_OUTPUT_LIMIT_TOTAL: String(TOTAL),
      TERN_OUTPUT_LIMIT_IP: '0', // all of them come from 127.0.0.1: the server-wide cap is the one under test
      TERN_MAX_CONN_RATE: '0',
      TERN_MAX_CLIENT_RATE: '0',
      TERN_MAX_MESSAGE: String(128 * 1024),
      TERN_MAX_FRAME: String(256 * 1024),
      ASAN_OPTIONS: `detect_leaks=1:abort_on_error=0:exitcode=23:quarantine_size_mb=${QUARANTINE_MB}`,
    },
  });
  const pid = server.child.pid;
  try {
    const F = await session(server, uid('sender'), { extra: { configBitmap: 8 } }); // acks for transient messages
    const H = await session(server, uid('keepsUp'));
    const deaf = [];
    for (let k = 0; k < READERS; k++) deaf.push(await session(server, uid(`deaf${k}`)));
    const cid = (await startConv(F, [H.peer, ...deaf.map((d) => d.peer)])).cid;
    await Promise.all([H, ...deaf].map((c) => c.nextCmd('conv', 'joined', 20000)));
    for (const d of deaf) d.ws._socket.pause(); // from here on they never read

    // baseline: everyone logged in, and a few messages through (buffers of that size exist)
    const send = (k) => F.request({ cmd: 'direct', directMessage: { cid, msg: TEXT(`${k} ${'m'.repeat(FLOOD_MSG)}`), transient: true } }, 30000)
      .then((r) => assert.equal(r.cmd, 'ack', JSON.stringify(r)));
    let sent = 0;
    for (; sent < 3; sent++) await send(sent);
    await sleep(500);
    const baseline = memKb(pid).rss;
    const sampler = rssSampler(pid, 20);

    // the flood: until every deaf reader is dropped (an uncapped server holds 2 MiB for each)
    let m;
    const inflight = new Set();
    for (;;) {
      const p = send(sent++);
      inflight.add(p);
      p.finally(() => inflight.delete(p));
      if (inflight.size >= 4) await Promise.race(inflight);
      if (sent % 10 === 0) {
        m = await metrics(server);
        // 200 × 100 KB × 100 readers: 2 GB poured, far more than every reader's output_limit
        if (m.droppedTotal + m.droppedConn >= READERS || sent >= 200) break;
      }
    }
    await Promise.all(inflight);
    const { max } = sampler.stop();
    const peak = Math.max(max, memKb(pid).rss);
    m = await metrics(server);
    const report = { baselineKb: baseline, peakKb: peak, growthKb: peak - baseline, allowanceKb: RSS_ALLOWANCE_KB, sent, ...m };
    if (process.env.TERN_TEST_VERBOSE) console.log(JSON.stringify(report));

    // memory stayed bounded
    assert.ok(peak - baseline <= RSS_ALLOWANCE_KB, `RSS grew by ${peak - baseline} KiB: ${JSON.stringify(report)}`);
    // every deaf reader was dropped, most by the cap (the last few, alone under it, reach
    // their own output_limit), and what is left queued is under the cap
    assert.equal(m.droppedTotal + m.droppedConn, READERS, `all dropped: ${JSON.stringify(report)}`);
    assert.ok(m.droppedTotal >= READERS / 2, `dropped by output_limit_total: ${JSON.stringify(report)}`);
    assert.ok(m.queued <= TOTAL, `queued after the flood: ${JSON.stringify(report)}`);

    // the reader that keeps up got every message and is still there; so is the sender
    const last = `${sent - 1} `;
    await H.next((p) => p.cmd === 'direct' && JSON.parse(p.directMessage.msg)._lctext.startsWith(last), 30000);
    const got = H.received.filter((p) => p.cmd === 'direct' && p.directMessage?.cid === cid).length;
    assert.equal(got, sent, 'the reader that keeps up received everything');
    assert.equal(H.isClosed, false);
    await H.echo();
    assert.equal(F.isClosed, false);
    await F.echo();
    // and the deaf ones find their connections closed once they read again
    for (const d of deaf) d.ws._socket.resume();
    await Promise.all(deaf.map(async (d) => {
      for (let t = 0; t < 200 && !d.isClosed; t++) await sleep(50);
      assert.ok(d.isClosed, `${d.peer} still connected`);
    }));
  } finally {
    await closeAll(server);
    await server.stop();
  }
});

// What output_limit counts is what the kernel would not take. One loop iteration can append
// far more to one connection than it held at the last flush: a worker runs every delivery
// its inbox gathered while it was busy or off the CPU before it flushes (the reader that
// keeps up above was dropped so, now and then, on a loaded machine), and a message to a
// socket that carries many sessions is appended once for each. Here every message is
// SESSIONS × 100 KB, over output_limit at once, to a socket that reads each one before the
// next is sent: it must not be dropped. The same to a socket that stopped reading still is,
// once the kernel's buffers are full.
test('output_limit counts what the kernel did not take: a message appended once per session, past output_limit in one go, does not drop a socket that keeps up; one that stopped reading is dropped', { timeout: 120000 }, async () => {
  const SESSIONS = 16;
  const LIMIT = 1 * MiB; // under SESSIONS × FLOOD_MSG: each message passes it in one fan-out
  const server = await startServer({
    env: {
      TERN_WORKERS: '1',
      TERN_OUTPUT_LIMIT: String(LIMIT),
      TERN_MAX_CONN_RATE: '0',
      TERN_MAX_CLIENT_RATE: '0',
      TERN_MAX_MESSAGE: String(128 * 1024),
      TERN_MAX_FRAME: String(256 * 1024),
    },
  });
  try {
    const F = await session(server, uid('sender'), { extra: { configBitmap: 8 } });
    // two sockets of SESSIONS clients each: K reads, D stops reading once in the conversation
    const many = async (tag) => {
      const c = await connect(server);
      const peers = [];
      for (let k = 0; k < SESSIONS; k++) peers.push((await login(c, uid(`${tag}${k}`))).peerId);
      return { c, peers };
    };
    const K = await many('keeps');
    const D = await many('deaf');
    const cid = (await startConv(F, [...K.peers, ...D.peers])).cid;
    for (const x of [K, D]) for (let k = 0; k < SESSIONS; k++) await x.c.nextCmd('conv', 'joined', 20000);
    D.c.ws._socket.pause();

    let sent = 0;
    for (; sent < 12; sent++) {
      const mark = K.c.mark();
      const copies = () => K.c.since(mark).filter((p) => p.cmd === 'direct' && p.directMessage?.cid === cid);
      const ack = await F.request({ cmd: 'direct', directMessage: { cid, msg: TEXT(`${sent} ${'m'.repeat(FLOOD_MSG)}`), transient: true } }, 30000);
      assert.equal(ack.cmd, 'ack', JSON.stringify(ack));
      // K reads all of it before the next message is sent: a reader that keeps up
      for (let t = 0; t < 600 && copies().length < SESSIONS && !K.c.isClosed; t++) await sleep(50);
      assert.equal(K.c.isClosed, false, `the socket that reads was dropped at message ${sent}: ${JSON.stringify(K.c.closeInfo)}`);
      const got = copies();
      assert.equal(got.length, SESSIONS, `message ${sent}: one copy for each session`);
      assert.deepEqual(got.map((p) => p.peerId).sort(), [...K.peers].sort());
      assert.ok(got.every((p) => JSON.parse(p.directMessage.msg)._lctext.startsWith(`${sent} `)), `message ${sent}`);
      if ((await metrics(server)).droppedConn >= 1) break; // D's kernel buffers and its queue are full
    }
    const m = await metrics(server);
    if (process.env.TERN_TEST_VERBOSE) console.log(JSON.stringify({ sent, ...m }));
    assert.equal(m.droppedConn, 1, `only the socket that stopped reading was dropped (output_limit): ${JSON.stringify({ sent, ...m })}`);
    await K.c.echo();
    D.c.ws._socket.resume();
    for (let t = 0; t < 200 && !D.c.isClosed; t++) await sleep(50);
    assert.ok(D.c.isClosed, 'the socket that stopped reading was dropped');
    assert.equal(K.c.isClosed, false);
  } finally {
    await closeAll(server);
    await server.stop();
  }
});

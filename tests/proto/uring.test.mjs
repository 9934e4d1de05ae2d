// io_uring for the workers' socket writes (src/server/net/uring.c, issue #17 point 2): every
// connection due in one loop iteration is sent in one io_uring submission; what a socket does
// not take goes to uv_write as before (order, backpressure and the output limits unchanged);
// the io_uring option turns it off, and where the kernel refuses io_uring (a seccomp filter,
// io_uring_disabled) the workers write with write(2). The rest of tests/proto runs on the
// io_uring path too (it is on by default, for one connection as for many).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../lib/server.mjs';
import { assertHealthy, closeAll, sendMsg, session, startConv, uid, withServer } from '../lib/proto-client.mjs';
import { scrape, value } from '../lib/metrics.mjs';
import { TEXT, until } from '../lib/issue4-util.mjs';

const noUring = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'no-io-uring.pl');
const SUBMITS = 'tern_uring_submits_total';
const SENDS = 'tern_uring_sends_total';

/** A conversation of n members (the first one sends), every member logged in on its own socket. */
async function group(srv, n) {
  const ids = Array.from({ length: n }, (_, k) => uid(`m${k}`));
  const members = await Promise.all(ids.map((id) => session(srv, id)));
  const cid = (await startConv(members[0], ids.slice(1))).cid;
  for (const R of members.slice(1)) await R.nextCmd('conv', 'joined');
  return { members, cid };
}

/** One message from the first member: its ack and every other member's copy. */
async function oneMessage({ members, cid }, text) {
  const [A, ...rest] = members;
  const ack = await sendMsg(A, cid, TEXT(text));
  for (const R of rest) {
    const p = await R.nextCmd('direct');
    assert.equal(p.directMessage.id, ack.uid);
  }
  return ack;
}

async function delta(srv, fn) {
  const m0 = await scrape(srv);
  await fn();
  const m1 = await scrape(srv);
  return { submits: value(m1, SUBMITS) - value(m0, SUBMITS), sends: value(m1, SENDS) - value(m0, SENDS) };
}

test('a message to 5 members on one worker: its ack and 4 copies leave in one submission (sends outnumber submissions)', () =>
  withServer({ TERN_WORKERS: '1' }, async (srv) => {
    const g = await group(srv, 5);
    const d = await delta(srv, () => oneMessage(g, 'batched'));
    // the scrape's own answer is one send in one submission; the commit's completion writes
    // the ack and the 4 deliveries in one loop iteration: at least 3 sends fewer submissions
    assert.ok(d.submits >= 1, `no io_uring submission: ${JSON.stringify(d)}`);
    assert.ok(d.sends - d.submits >= 3, `the iteration's writes were not batched: ${JSON.stringify(d)}`);
  }));

test('io_uring = false: the same messages go out with write(2), none through io_uring', () =>
  withServer({ TERN_WORKERS: '1', TERN_IO_URING: '0' }, async (srv) => {
    const g = await group(srv, 5);
    const d = await delta(srv, () => oneMessage(g, 'plain'));
    assert.deepEqual(d, { submits: 0, sends: 0 });
    assert.doesNotMatch(srv.stderr(), /io_uring unavailable/);
  }));

test('io_uring refused by a seccomp filter (as in containers): ternd says so and writes with write(2)',
  { skip: process.arch !== 'x64' && 'the filter names x86_64 system call numbers' }, async () => {
    const srv = await startServer({ env: { TERN_WORKERS: '2' }, shell: `exec perl ${noUring} "$0" "$@"` });
    try {
      // logged before "listening on", but stderr is another pipe than the line we waited for
      await until(() => /io_uring unavailable/.test(srv.stderr()), 5000, 'the fallback is logged');
      assert.match(srv.stderr(), /io_uring unavailable \(Operation not permitted\): worker 0 writes each connection with write\(2\)/);
      const g = await group(srv, 4);
      const d = await delta(srv, async () => {
        for (let k = 0; k < 5; k++) await oneMessage(g, `fallback ${k}`);
      });
      assert.deepEqual(d, { submits: 0, sends: 0 });
      await assertHealthy(srv);
    } finally {
      await closeAll(srv);
      await srv.stop();
    }
  });

test('io_uring_enter refused after the ring was made: the first flush falls back, nothing is lost, and write(2) from then on',
  { skip: process.arch !== 'x64' && 'the filter names x86_64 system call numbers' }, async () => {
    const srv = await startServer({ env: { TERN_WORKERS: '1' }, shell: `exec perl ${noUring} --enter "$0" "$@"` });
    try {
      // the ring is made; the first flush (the upgrade's answer) is refused and written with write(2)
      const g = await group(srv, 4);
      const d = await delta(srv, async () => {
        for (let k = 0; k < 5; k++) await oneMessage(g, `enter refused ${k}`);
      });
      assert.deepEqual(d, { submits: 0, sends: 0 });
      assert.match(srv.stderr(), /io_uring_enter: Operation not permitted: worker 0 writes each connection with write\(2\) from now on/);
      assert.equal((srv.stderr().match(/io_uring_enter: /g) || []).length, 1, 'said once');
      await assertHealthy(srv);
    } finally {
      await closeAll(srv);
      await srv.stop();
    }
  });

test('two readers that stop reading: what their sockets do not take waits in ternd, in order, and all of it arrives once they read again', () =>
  withServer({ TERN_WORKERS: '1', TERN_MAX_MESSAGE: '60000', TERN_MAX_FRAME: '131072', TERN_MAX_CONN_RATE: '0', TERN_MAX_CLIENT_RATE: '0', TERN_OUTPUT_LIMIT: String(32 << 20) }, async (srv) => {
    const g = await group(srv, 3);
    const [A, B, C] = g.members;
    B.ws._socket.pause(); // neither reads: the kernel's buffers fill, then ternd's queues (uv_write)
    C.ws._socket.pause();
    const pad = 'x'.repeat(20000);
    const acks = [];
    let held = 0;
    const d = await delta(srv, async () => {
      // ~20 KB messages, 8 in flight, until ternd holds 1 MB the sockets did not take (a SEND
      // that came back short or EAGAIN), and 20 more behind it; 1,000 (20 MB) at most
      const window = [];
      let after = -1;
      for (let k = 0; k < 1000 && after < 20; k++) {
        window.push(A.request({ cmd: 'direct', directMessage: { cid: g.cid, msg: TEXT(`${k} ${pad}`) } }, 30000));
        if (window.length >= 8) acks.push(await window.shift());
        if (after >= 0) after++;
        else if (k % 20 === 19) {
          held = value(await scrape(srv), 'tern_output_queued_bytes');
          if (held >= 1 << 20) after = 0;
        }
      }
      acks.push(...(await Promise.all(window)));
    });
    assert.ok(held >= 1 << 20, `ternd never held output for the paused readers (${held} bytes after ${acks.length} messages)`);
    assert.deepEqual(acks.map((a) => a.cmd), Array(acks.length).fill('ack'));
    assert.ok(d.sends > d.submits, `the writes did not go through io_uring in batches: ${JSON.stringify(d)}`);
    B.ws._socket.resume();
    C.ws._socket.resume();
    const ids = acks.map((a) => a.ackMessage.uid);
    for (const R of [B, C]) {
      await until(() => R.received.filter((p) => p.cmd === 'direct').length >= ids.length, 30000, 'a paused reader gets everything');
      assert.deepEqual(R.received.filter((p) => p.cmd === 'direct').map((p) => p.directMessage.id), ids, 'every message, once, in order');
    }
    assert.equal(B.isClosed || C.isClosed, false);
    await until(async () => value(await scrape(srv), 'tern_output_queued_bytes') === 0, 10000, 'the queues drain');
  }));

test('a reader that resets its connection in the middle of a stream: the others get everything, the server goes on', () =>
  withServer({ TERN_WORKERS: '1', TERN_MAX_MESSAGE: '60000', TERN_MAX_FRAME: '131072', TERN_MAX_CONN_RATE: '0', TERN_MAX_CLIENT_RATE: '0' }, async (srv) => {
    const g = await group(srv, 4);
    const [A, B, C, D] = g.members;
    B.ws._socket.pause(); // B's queue backs up, then B resets with bytes in flight
    const pad = 'y'.repeat(20000);
    const acks = [];
    for (let k = 0; k < 120; k++) {
      if (k === 60) B.ws._socket.resetAndDestroy();
      acks.push(await A.request({ cmd: 'direct', directMessage: { cid: g.cid, msg: TEXT(`${k} ${pad}`) } }, 30000));
    }
    assert.deepEqual(acks.map((a) => a.cmd), Array(120).fill('ack'));
    const ids = acks.map((a) => a.ackMessage.uid);
    for (const R of [C, D]) {
      await until(() => R.received.filter((p) => p.cmd === 'direct').length >= 120, 30000, 'a reader gets everything');
      assert.deepEqual(R.received.filter((p) => p.cmd === 'direct').map((p) => p.directMessage.id), ids);
    }
    await until(async () => value(await scrape(srv), 'tern_ws_connections{protocol="protobuf"}') === 3, 10000, 'the reset connection is closed');
    await assertHealthy(srv);
  }));

// Issue #4 acceptance, slow consumer: 500 clients (tern-bench, group scenario: one
// conversation of 500 members) receive a stream while one more member — a raw socket that
// logs in, joins the same conversation and then never reads again — has messages poured at
// it. The server must drop that one once its queue passes output_limit (1 MiB here), the 500
// must receive everything (lost 0, duplicated 0, delivered == expected), and the server's
// memory must stay bounded while it happens.
//
// Why the flood: the group stream alone (a few hundred bytes × 100/s) would take minutes to
// fill the kernel's buffers for the deaf socket, so a second member pours ~100 KB transient
// messages (not stored: no SQLite growth) at it through a conversation of their own. Without
// the output limit all of that would pile up in ternd; the RSS bound below is far below it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startServer } from '../lib/server.mjs';
import { benchBin, spawnBench } from '../lib/bench.mjs';
import { closeAll, session, startConv, uid } from '../lib/proto-client.mjs';
import { rawWebSocket } from '../lib/proto-raw.mjs';
import { TEXT, logCount, memKb, rssSampler, sleep, until, within } from '../lib/issue4-util.mjs';

const SANITIZER = /ERROR: AddressSanitizer|runtime error:|LeakSanitizer/;

const MiB = 1 << 20;
const OUTPUT_LIMIT = 1 * MiB;
const QUARANTINE_MB = 16; // AddressSanitizer keeps freed memory this long (default 256 MB)
const FLOOD_MSG = 100 * 1024;
const FLOOD_AFTER_DROP = 100 * MiB; // poured on after the drop: what an unbounded queue would hold
const FLOOD_CAP = 200 * MiB;
// What the server may grow by while the flood runs, over the RSS it had with all 500
// clients logged in and the stream flowing: the deaf client's queue (output_limit), the
// allocator's quarantine under AddressSanitizer, and 32 MiB for the rest, none of which
// grows with the flood: flood messages in flight (4 × ~100 KB, each as input frame, decoded
// copy and encoded push), the queue buffer's doublings up to the limit, per-thread allocator
// caches and size-class fragmentation. Measured here: ~0.2 MiB without the flood, 18–28 MiB
// with it (sanitizer build, 2 cores, other tests running). A server without the limit grows
// by at least FLOOD_AFTER_DROP (~290 MiB when tried with output_limit = 1 GiB).
const RSS_ALLOWANCE_KB = (OUTPUT_LIMIT + QUARANTINE_MB * MiB + 32 * MiB) / 1024;


test('slow consumer: one member never reads while 500 receive a stream — it is dropped past output_limit, the 500 get everything, RSS stays bounded', { timeout: 150000 }, async () => {
  assert.ok(existsSync(benchBin), `${benchBin} is missing: build the tern-bench target`);
  const server = await startServer({
    env: {
      TERN_OUTPUT_LIMIT: String(OUTPUT_LIMIT),
      TERN_MAX_CONN_RATE: '0',
      TERN_MAX_CLIENT_RATE: '0',
      TERN_MAX_MESSAGE: String(128 * 1024),
      TERN_MAX_FRAME: String(256 * 1024),
      ASAN_OPTIONS: `detect_leaks=1:abort_on_error=0:exitcode=23:quarantine_size_mb=${QUARANTINE_MB}`,
    },
  });
  const pid = server.child.pid;
  let bench;
  try {
    // the deaf member and the member who floods it, in a conversation of their own
    const deaf = uid('deaf');
    const raw = await rawWebSocket(server);
    raw.command({ cmd: 'session', op: 'open', i: 1, appId: server.appId, peerId: deaf, sessionMessage: { ua: 't' } });
    assert.equal((await raw.nextCommand()).op, 'opened');
    const F = await session(server, uid('flood'), { extra: { configBitmap: 8 } }); // acks for transient messages
    const floodCid = (await startConv(F, [deaf])).cid;
    const scout = await session(server, uid('scout'));

    // 500 receivers in one group, 100 messages/s of 200 bytes, one sender at a time
    const prefix = `${uid('sc')}-`;
    bench = spawnBench(['--url', server.wsUrl, '--app-id', server.appId, '--server-pid', String(pid), '--json',
      '--scenario', 'group', '--clients', '500', '--group-size', '500', '--rate', '100', '--payload', '200',
      '--rotate', '1000000', '--warmup', '2', '--duration', '6', '--drain', '15', '--id-prefix', prefix]);

    // the deaf one joins the bench's conversation (found by its name) as soon as it exists
    const groupCid = await until(async () => {
      const q = await scout.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ name: 'tern-bench' }) } } });
      const rows = q.convMessage?.results ? JSON.parse(q.convMessage.results.data) : [];
      return rows[0]?.objectId;
    }, 60000, 'the bench conversation', 100);
    raw.command({ cmd: 'conv', op: 'add', i: 2, convMessage: { cid: groupCid, m: [deaf] } });
    for (;;) {
      const c = await raw.nextCommand(10000);
      if (c.i === 2) { assert.equal(c.op, 'added', JSON.stringify(c)); break; }
    }
    raw.sock.pause(); // from here on it never reads: the group stream and the flood pile up for it
    await scout.close();

    // baseline: 500 logged in, the group created, the stream flowing (warmup is 2 s); the
    // sleep is the warm-up itself, RSS is sampled from here on
    await sleep(1500);
    const baseline = memKb(pid).rss;
    const sampler = rssSampler(pid, 20);

    // the flood: 100 KB transient messages, 4 in flight, until the deaf one is dropped and
    // FLOOD_AFTER_DROP more has been sent (an unbounded queue would hold all of it)
    const pad = 'f'.repeat(FLOOD_MSG);
    let sent = 0;
    let sentAtDrop = -1;
    const inflight = new Set();
    while (sent < FLOOD_CAP && (sentAtDrop < 0 || sent - sentAtDrop < FLOOD_AFTER_DROP)) {
      const p = F.request({ cmd: 'direct', directMessage: { cid: floodCid, msg: TEXT(pad), transient: true } }, 20000)
        .then((r) => assert.equal(r.cmd, 'ack', JSON.stringify(r)));
      inflight.add(p);
      p.finally(() => inflight.delete(p));
      sent += FLOOD_MSG;
      if (inflight.size >= 4) await Promise.race(inflight);
      if (sentAtDrop < 0 && logCount(server, /dropping slow consumer/)) sentAtDrop = sent;
    }
    await Promise.all(inflight);
    const r = await within(bench.done, 60000, 'tern-bench');
    const { max } = sampler.stop();
    const peak = Math.max(max, memKb(pid).rss);
    const report = { baselineKb: baseline, peakKb: peak, growthKb: peak - baseline, allowanceKb: RSS_ALLOWANCE_KB,
      floodMiB: sent / MiB, droppedAfterMiB: sentAtDrop / MiB };
    if (process.env.TERN_TEST_VERBOSE) console.log(JSON.stringify(report));

    // the deaf member was dropped, and only it
    assert.ok(sentAtDrop > 0, `not dropped after ${sent / MiB} MiB poured at it: ${JSON.stringify(report)}`);
    assert.equal(logCount(server, /dropping slow consumer/), 1, 'exactly one connection dropped');
    raw.sock.resume();
    await within(raw.ended, 10000, 'the deaf socket is closed');

    // memory stayed bounded
    assert.ok(peak - baseline <= RSS_ALLOWANCE_KB, `RSS grew by ${peak - baseline} KiB: ${JSON.stringify(report)}`);

    // the 500 got everything
    assert.doesNotMatch(r.stderr, SANITIZER, 'sanitizer report from tern-bench');
    assert.equal(r.code, 0, `tern-bench exited ${r.code ?? r.signal}:\n${r.stderr}`);
    const rep = JSON.parse(r.stdout);
    assert.ok(rep.sent >= 500, `the stream ran: sent ${rep.sent}`);
    assert.equal(rep.expected, rep.sent * 499, 'every member but the sender receives');
    assert.equal(rep.lost, 0, `lost: ${r.stdout}`);
    assert.equal(rep.duplicated, 0, `duplicated: ${r.stdout}`);
    assert.equal(rep.delivered, rep.expected, `delivered != expected: ${r.stdout}`);
    assert.equal(rep.errors, 0, `errors: ${r.stdout}`);
    assert.equal(rep.disconnects, 0, 'none of the 500 was disconnected');
    assert.equal(rep.login_failures, 0);
    // and the flood's sender was not hurt either
    assert.equal(F.isClosed, false);
    await F.echo();
  } finally {
    if (bench && bench.child.exitCode === null && bench.child.signalCode === null) bench.child.kill('SIGKILL');
    await closeAll(server);
    await server.stop();
  }
});

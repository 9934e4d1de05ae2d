// Issue #4 §8 crash safety under load: many conversations at a high rate (raw protocol
// senders that keep a window of requests in flight and collect every ack, plus tern-bench
// pairs for more load), SIGKILL in the middle, restart on the same data directory, twice.
// Every acknowledged message must be in history exactly once with the acked id and
// timestamp; nothing may be stored twice or appear that was never sent.
// (tests/integration/crash.test.mjs does the same once with the official JS SDK.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../lib/server.mjs';
import { closeAll, session, startConv, uid } from '../lib/proto-client.mjs';
import { TEXT, history, sleep } from '../lib/issue4-util.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const benchBin = join(process.env.TERN_BUILD || join(root, 'build-asan'), 'tern-bench');
const ENV = { TERN_MAX_CONN_RATE: '0', TERN_MAX_CLIENT_RATE: '0' };
const CONVS = 8;
const WINDOW = 16;

/** Senders keep WINDOW requests in flight per conversation until the server dies. */
function load(convs, round) {
  let stopped = false;
  const runs = convs.map((cv, k) => (async () => {
    const inflight = new Set();
    let n = 0;
    while (!stopped && !cv.S.isClosed) {
      const text = TEXT(`r${round} c${k} m${n++}`);
      cv.sent.add(text);
      const p = cv.S.request({ cmd: 'direct', directMessage: { cid: cv.cid, msg: text } }, 20000).then((r) => {
        if (r.cmd === 'ack') cv.acked.set(r.ackMessage.uid, { text, t: r.ackMessage.t });
        else cv.errors.push(r);
      }, () => { /* the server died with it in flight: never acked */ });
      inflight.add(p);
      p.finally(() => inflight.delete(p));
      if (inflight.size >= WINDOW) await Promise.race(inflight);
    }
    await Promise.allSettled(inflight);
  })());
  return {
    acked: () => convs.reduce((s, cv) => s + cv.acked.size, 0),
    async stop() { stopped = true; await Promise.all(runs); },
  };
}

function startBench(server) {
  if (!existsSync(benchBin)) return null;
  const child = spawn(benchBin, ['--url', server.wsUrl, '--app-id', server.appId, '--scenario', 'pairs', '--clients', '20',
    '--window', '4', '--duration', '60', '--warmup', '0', '--drain', '1', '--json'], { stdio: ['ignore', 'ignore', 'ignore'] });
  return child;
}

async function stopBench(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

test('SIGKILL twice under multi-conversation load loses no acked message and stores none twice', { timeout: 150000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tern-crash-load-'));
  let server;
  try {
    server = await startServer({ dataDir, env: ENV });
    const convs = [];
    for (let k = 0; k < CONVS; k++) {
      const [s, r] = [uid(`S${k}`), uid(`R${k}`)];
      const S = await session(server, s);
      const cid = (await startConv(S, [r])).cid;
      convs.push({ s, r, S, cid, sent: new Set(), acked: new Map(), errors: [] });
    }
    for (let round = 0; round < 2; round++) {
      const bench = startBench(server);
      const l = load(convs, round);
      const t0 = Date.now();
      const before = l.acked();
      // kill once a good number are acked (at least 400 this round), at most after 8 s
      while ((l.acked() - before < 1500 || Date.now() - t0 < 1500) && Date.now() - t0 < 8000) await sleep(20);
      await server.kill();
      await l.stop();
      await stopBench(bench);
      await closeAll(server);
      const thisRound = l.acked() - before;
      assert.ok(thisRound >= 400, `round ${round}: only ${thisRound} acked before the kill`);
      for (const cv of convs) assert.deepEqual(cv.errors, [], 'no send was refused');

      server = await startServer({ dataDir, env: ENV });
      let unackedStored = 0;
      for (const [k, cv] of convs.entries()) {
        const R = await session(server, cv.r);
        const hist = await history(R, cv.cid);
        const ids = hist.map((l) => l.msgId);
        assert.equal(new Set(ids).size, ids.length, `conv ${k}: a message id is stored twice`);
        const texts = hist.map((l) => l.data);
        assert.equal(new Set(texts).size, texts.length, `conv ${k}: a message is stored twice`);
        const foreign = texts.filter((t) => !cv.sent.has(t));
        assert.deepEqual(foreign, [], `conv ${k}: history holds messages nobody sent`);
        const byId = new Map(hist.map((l) => [l.msgId, l]));
        const missing = [];
        for (const [id, a] of cv.acked) {
          const l = byId.get(id);
          if (!l) { missing.push(a.text); continue; }
          assert.equal(l.data, a.text, `conv ${k}: ${id} holds another message`);
          assert.equal(l.timestamp, a.t, `conv ${k}: ${id} stored with another timestamp`);
        }
        assert.deepEqual(missing, [], `conv ${k}: ${missing.length} of ${cv.acked.size} acked messages lost`);
        const ts = hist.map((l) => l.timestamp);
        assert.deepEqual(ts, [...ts].sort((a, b) => a - b), `conv ${k}: history out of order`);
        unackedStored += hist.length - cv.acked.size;
        await R.close();
        // the sender comes back for the next round
        cv.S = await session(server, cv.s);
      }
      if (process.env.TERN_TEST_VERBOSE) console.log(`round ${round}: ${thisRound} acked, ${unackedStored} stored without an ack`);
    }
    // the twice-recovered server still works normally
    const cv = convs[0];
    const r = await cv.S.request({ cmd: 'direct', directMessage: { cid: cv.cid, msg: TEXT('after the crashes') } });
    assert.equal(r.cmd, 'ack', JSON.stringify(r));
    await closeAll(server);
    await server.stop({ keepData: true });
    server = null;
  } finally {
    if (server) await server.kill().catch(() => {});
    rmSync(dataDir, { recursive: true, force: true });
  }
});

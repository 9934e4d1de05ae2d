// Helpers for the issue #4 limit, fault-injection, slow-consumer and crash-under-load tests.
//
// The central one is bystander(): a well-behaved pair of clients that keeps doing
// request/response and receiving pushes on the same server while a test abuses it, and
// afterwards asserts it never saw an interruption (every round answered, no close, no
// round slower than a bound).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { session, startConv, uid } from './proto-client.mjs';
import { httpRequest } from './proto-raw.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const TEXT = (t) => JSON.stringify({ _lctype: -1, _lctext: t });

/** Races p against a timer; rejects with `what` when it does not settle within ms. */
export function within(p, ms, what) {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms); }),
  ]);
}

/** Polls fn until it returns a truthy value (returned), or fails after ms. */
export async function until(fn, ms, what, every = 50) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(every);
  }
}

/**
 * A pair of well-behaved clients (A sends to B in a conversation of their own, B answers an
 * echo) looping one round at a time until stop(). check() asserts that no round failed or
 * took longer than maxRoundMs, that at least minRounds completed, and that neither socket
 * was closed: the "second, well-behaved client saw no interruption" of the acceptance.
 */
export async function bystander(server, { intervalMs = 50, maxRoundMs = 3000, label = 'bystander', transient = false } = {}) {
  // transient: A's messages are not stored (for tests that make storage fail on purpose);
  // configBitmap bit 3 asks for their acks
  const A = await session(server, uid(`${label}A`), transient ? { extra: { configBitmap: 8 } } : {});
  const B = await session(server, uid(`${label}B`));
  const cid = (await startConv(A, [B.peer])).cid;
  const state = { rounds: 0, errors: [], slowest: 0, stopped: false };
  const loop = (async () => {
    while (!state.stopped) {
      const k = state.rounds;
      const t0 = Date.now();
      try {
        const text = TEXT(`${label} ${k}`);
        const pushed = B.next((c) => c.cmd === 'direct' && c.directMessage?.msg === text, maxRoundMs);
        pushed.catch(() => {}); // awaited below; a failed request must not leave it unhandled
        const ack = await A.request({ cmd: 'direct', directMessage: { cid, msg: text, ...(transient ? { transient: true } : {}) } }, maxRoundMs);
        assert.equal(ack.cmd, 'ack', `round ${k}: ${JSON.stringify(ack)}`);
        const p = await pushed;
        assert.equal(p.directMessage.id, ack.ackMessage.uid, `round ${k}: pushed id is the acked id`);
        const e = await B.request({ cmd: 'echo' }, maxRoundMs);
        assert.equal(e.cmd, 'echo');
      } catch (e) {
        state.errors.push(`round ${k}: ${e.message}`);
        if (A.isClosed || B.isClosed) break;
      }
      state.slowest = Math.max(state.slowest, Date.now() - t0);
      state.rounds++;
      // the A/B pushes nobody takes (conv/joined etc.) need not pile up
      B.pushes.length = 0;
      await sleep(intervalMs);
    }
  })();
  return {
    A, B, cid, state,
    async stop() {
      state.stopped = true;
      await loop;
      return state;
    },
    /** Stops the loop and asserts the pair was never interrupted. */
    async check({ minRounds = 3, after = 2 } = {}) {
      // a couple of full rounds after whatever the test did, however quick it was
      const target = Math.max(minRounds, state.rounds + after);
      const end = Date.now() + (target - state.rounds + 1) * (maxRoundMs + intervalMs);
      while (state.rounds < target && !state.errors.length && Date.now() < end) await sleep(10);
      await this.stop();
      assert.deepEqual(state.errors, [], `the bystander was interrupted (${state.rounds} rounds)`);
      assert.ok(state.rounds >= minRounds, `the bystander completed only ${state.rounds} rounds`);
      assert.ok(state.slowest <= maxRoundMs, `a bystander round took ${state.slowest} ms`);
      assert.equal(A.isClosed, false, 'bystander A was disconnected');
      assert.equal(B.isClosed, false, 'bystander B was disconnected');
      await A.close();
      await B.close();
      return state;
    },
  };
}

/** VmRSS and VmHWM of a process in KiB. */
export function memKb(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return {
    rss: Number(/VmRSS:\s+(\d+)/.exec(s)?.[1]),
    hwm: Number(/VmHWM:\s+(\d+)/.exec(s)?.[1]),
  };
}

/** Samples VmRSS every `everyMs` until stop(), which returns {max, samples}. */
export function rssSampler(pid, everyMs = 50) {
  const samples = [];
  const t = setInterval(() => {
    try { samples.push(memKb(pid).rss); } catch { /* exited */ }
  }, everyMs);
  return {
    samples,
    stop() {
      clearInterval(t);
      return { max: Math.max(0, ...samples), samples };
    },
  };
}

/** POST /debug/faults {store_fail} with the master key; returns the HTTP response. */
export function storeFail(server, on, { key = `${server.masterKey},master`, body } = {}) {
  return httpRequest(server, {
    method: 'POST',
    path: '/debug/faults',
    headers: { 'Content-Type': 'application/json', 'X-LC-Id': server.appId, 'X-LC-Key': key },
    body: body ?? JSON.stringify({ store_fail: on }),
  });
}

/** Every stored message of cid, oldest first, read forwards in pages of `page` (max 1000). */
export async function history(client, cid, page = 1000) {
  const all = [];
  let from;
  for (;;) {
    const lm = { cid, limit: page, direction: 'NEW' };
    if (from) Object.assign(lm, { t: from.timestamp, mid: from.msgId });
    const r = await client.request({ cmd: 'logs', logsMessage: lm }, 20000);
    assert.equal(r.cmd, 'logs', JSON.stringify(r));
    const items = r.logsMessage?.logs ?? [];
    all.push(...items);
    if (items.length < page) return all;
    from = items[items.length - 1];
  }
}

/** A plain TCP connection to the server; resolves once connected. */
export function tcp(server) {
  return new Promise((resolve, reject) => {
    const s = net.connect(server.port, '127.0.0.1');
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * Collects what the server sends on a raw socket until it closes it: resolves
 * {data, how} where how is 'end' (FIN), 'reset' (ECONNRESET) or 'timeout'.
 */
export function drainUntilClosed(sock, ms) {
  return new Promise((resolve) => {
    const chunks = [];
    let done = false;
    const finish = (how) => {
      if (done) return;
      done = true;
      clearTimeout(t);
      resolve({ data: Buffer.concat(chunks), how });
    };
    const t = setTimeout(() => { finish('timeout'); sock.destroy(); }, ms);
    sock.on('data', (d) => chunks.push(d));
    sock.on('end', () => finish('end'));
    sock.on('close', () => finish('end'));
    sock.on('error', (e) => finish(e.code === 'ECONNRESET' ? 'reset' : `error ${e.code}`));
    sock.resume();
  });
}

/** A `ternd` stderr line count matching re (log lines the server writes). */
export function logCount(server, re) {
  return server.stderr().split('\n').filter((l) => re.test(l)).length;
}

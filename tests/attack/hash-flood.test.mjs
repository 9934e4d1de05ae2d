// Hash flooding, end to end (docs/security.md; src/common/map.h). Every table keyed by what
// clients choose — client ids, conversation ids, nonces, addresses — hashes with keyed
// SipHash, so ids chosen offline to share a bucket under a plain hash do not share one here.
// The attack: log in thousands of clients whose ids all fall in one bucket under FNV-1a (the
// hash tern's tables used before; tests/unit/test_map.c test_flood makes such ids the same
// way), then make the server look them up. Under FNV-1a each lookup walked a chain of every
// such client; here a lookup of them costs what a lookup of random ids does. The test
// compares the two in the same run (a ratio, not a wall time), so a slow or loaded machine
// does not fail it, and a quadratic table does: checked by building ternd with map_hash
// returning FNV-1a, where the flooded lookups are many times slower.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, uid, withServer } from '../lib/proto-client.mjs';

const N = 5000; // flooding clients logged in
const ASKED = 3000; // ids asked about: never logged in, so each lookup walks its whole bucket
const MASK = 0x3fff; // 14 bits: one bucket of the ≤ 16,384 a table of N clients has
const QUERIES = 300; // session queries of 20 ids each, per round and kind
const ROUNDS = 5;

function fnv1a(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619) >>> 0;
  return h;
}

// n ids "<prefix>xxxxx" (x of [0-9a-zA-Z]) whose FNV-1a agree in the bits of MASK: the hash
// carried along the nested loops, one multiply a candidate.
function colliding(prefix, n) {
  const C = [...'0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'].map((c) => c.charCodeAt(0));
  const step = (h, c) => Math.imul(h ^ c, 16777619) >>> 0;
  let h0 = 0x811c9dc5;
  for (const ch of prefix) h0 = step(h0, ch.charCodeAt(0));
  const out = [];
  let want = -1;
  for (const a of C) {
    const h1 = step(h0, a);
    for (const b of C) {
      const h2 = step(h1, b);
      for (const c of C) {
        const h3 = step(h2, c);
        for (const d of C) {
          const h4 = step(h3, d);
          for (const e of C) {
            const h = step(h4, e) & MASK;
            if (want < 0) want = h;
            if (h !== want) continue;
            out.push(prefix + String.fromCharCode(a, b, c, d, e));
            if (out.length === n) return out;
          }
        }
      }
    }
  }
  return out;
}

// Opens a session for each id on connection c (multiplexed), all sent at once.
async function loginAll(c, ids) {
  const is = ids.map((peerId) => c.send({ cmd: 'session', op: 'open', appId: c.server.appId, peerId, sessionMessage: { ua: 'flood/1' } }));
  for (const i of is) {
    const r = await c.reply(i, 120000);
    assert.equal(r.op, 'opened', JSON.stringify(r));
  }
}

// Milliseconds for QUERIES session queries of 20 ids from `ids` each, all in flight at once;
// none of them is online.
async function timeQueries(q, ids) {
  const t0 = process.hrtime.bigint();
  const is = [];
  for (let k = 0; k < QUERIES; k++) {
    const batch = [];
    for (let j = 0; j < 20; j++) batch.push(ids[(k * 20 + j) % ids.length]);
    is.push(q.send({ cmd: 'session', op: 'query', sessionMessage: { sessionPeerIds: batch } }));
  }
  for (const i of is) {
    const r = await q.reply(i, 120000);
    assert.equal(r.op, 'query_result', JSON.stringify(r).slice(0, 300));
    assert.equal(r.sessionMessage?.onlineSessionPeerIds?.length ?? 0, 0, JSON.stringify(r).slice(0, 300));
  }
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

test('ids that share one FNV-1a bucket cost no more to look up than random ids (session query beside 5,000 such clients online)', () =>
  withServer({ TERN_WORKERS: '1', TERN_MAX_SESSIONS_PER_CONN: '4096', TERN_MAX_CONN_RATE: '0', TERN_MAX_CLIENT_RATE: '0' }, async (srv) => {
    const ids = colliding('flood-', N + ASKED);
    assert.equal(new Set(ids.map((id) => fnv1a(id) & MASK)).size, 1, 'one bucket under FNV-1a');
    const online = ids.slice(0, N);
    const flood = ids.slice(N);
    const tag = uid('r');
    const random = Array.from({ length: ASKED }, (_, k) => `${tag}-${k}-${Math.random().toString(36).slice(2, 8)}`);
    const F1 = await connect(srv);
    const F2 = await connect(srv);
    await Promise.all([loginAll(F1, online.slice(0, N / 2)), loginAll(F2, online.slice(N / 2))]);
    const Q = await connect(srv);
    const qr = await Q.request({ cmd: 'session', op: 'open', appId: srv.appId, peerId: uid('asker') });
    assert.equal(qr.op, 'opened');
    await timeQueries(Q, random); // warm up
    let tf = Infinity;
    let tr = Infinity;
    for (let k = 0; k < ROUNDS; k++) { // interleaved, the best of each: noise from other work cancels out
      tf = Math.min(tf, await timeQueries(Q, flood));
      tr = Math.min(tr, await timeQueries(Q, random));
    }
    const ratio = tf / tr;
    console.log(`# ${QUERIES} session queries x 20 ids: flooded ${tf.toFixed(1)} ms, random ${tr.toFixed(1)} ms, ratio ${ratio.toFixed(2)}`);
    assert.ok(ratio < 2, `lookups of ids sharing an FNV-1a bucket took ${ratio.toFixed(2)}x those of random ids`);
  }));

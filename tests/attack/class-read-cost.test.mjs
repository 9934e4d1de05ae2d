// Issue #13: master-key class reads (GET /1.1/classes/_Conversation) take the same `where`
// as conv query, so a costly one — a backtracking `$regex` over ~1,000 conversations — must
// not run on a network loop either. They used to run synchronously on the worker with no
// deadline: every client of that worker waited for the whole scan (seconds). Now they go
// through the store's query threads within query_timeout, like conversation queries: an
// HTTP 400 ("query too expensive") within the deadline, count included, while a chatting
// pair on the same (only) worker keeps its echo and send round trips under 100 ms p99.
// protocol.md §3.5; docs/rest.md; docs/security.md "Limits and their defaults".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { session, uid, withServer } from '../lib/proto-client.mjs';
import { HOSTILE, assertBystanderFast, bystanderPair, plant, roundsUnderAttack } from '../lib/query-attack.mjs';

// 21 a's: each match stays under PCRE2's match limit (so no row fails fast with "match
// limits") but costs milliseconds — a thousand of them cost seconds without a deadline
const S = 'a'.repeat(21);
const ENV = { TERN_WORKERS: '1', TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0', TERN_QUERY_TIMEOUT: '500', TERN_MAX_QUERIES_PER_IP: '0' };

async function classRead(srv, params) {
  const qs = Object.entries(params).map(([k, v]) => `${k}=${encodeURIComponent(typeof v === 'string' ? v : JSON.stringify(v))}`).join('&');
  const t0 = Date.now();
  const res = await fetch(`${srv.httpUrl}/1.1/classes/_Conversation?${qs}`, {
    headers: { 'X-LC-Id': srv.appId, 'X-LC-Key': `${srv.masterKey},master` },
  });
  return { status: res.status, body: await res.json(), ms: Date.now() - t0 };
}

test('#13 costly _Conversation class reads: 400 within the deadline (count too), and a pair on the same worker keeps echo and send under 100 ms p99', () =>
  withServer(ENV, async (srv) => {
    const owner = await session(srv, uid('owner'));
    await plant(owner, 1000, S);
    const where = { s: { $regex: HOSTILE } };
    for (const params of [{ where, limit: 1000 }, { where, limit: 0, count: 1 }]) {
      const r = await classRead(srv, params);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error, /too expensive/);
      assert.ok(r.ms < 2000, `answered after ${r.ms} ms (query_timeout 500)`);
    }

    const pair = await bystanderPair(srv);
    const answers = [];
    const attack = async () => answers.push(await classRead(srv, { where, limit: 1000, count: 1 }));
    const rounds = await roundsUnderAttack(pair, [attack, attack, attack]);
    assert.ok(answers.length >= 6, `${answers.length} costly class reads answered in 4 s`);
    for (const r of answers) {
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error, /too expensive/);
      assert.ok(r.ms < 3000, `a costly class read was answered after ${r.ms} ms`);
    }
    assertBystanderFast(rounds);

    // and an ordinary class read still answers, with its count
    const ok = await classRead(srv, { where: { k: { $lt: 3 } }, count: 1, order: 'createdAt' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.count, 3);
    assert.deepEqual(ok.body.results.map((c) => c.k).sort(), [0, 1, 2]);
    assert.equal(ok.body.results[0].conv_type, undefined); // the class's shape, not conv query's
  }));

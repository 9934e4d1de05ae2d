// Issue #11 point 4: a conversation query has a budget, and no query holds up its worker.
// Hostile `$regex` queries (a pattern built to backtrack, over ~1,000 conversations) used to
// run on the worker's loop and stall every client on it for over a minute. Now queries run
// on the store's query threads within query_timeout (4310 / HTTP 400 past it), PCRE2's
// limits sit in the match context (a pattern cannot raise them), and a bystander pair on the
// same worker (TERN_WORKERS=1) keeps its echo and send round trips fast meanwhile.
// protocol.md §3.5, §6 (4310), §7.1; docs/security.md "Limits and their defaults".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertError, session, startConv, uid, withServer } from '../lib/proto-client.mjs';
import { HOSTILE, assertBystanderFast, bystanderPair, plant as plantS, roundsUnderAttack } from '../lib/query-attack.mjs';

const ENV = { TERN_WORKERS: '1', TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0', TERN_QUERY_TIMEOUT: '500' };

/** n conversations of `owner`, each with s = 24 a's (what HOSTILE backtracks on for ~15 ms). */
const plant = (owner, n) => plantS(owner, n, 'a'.repeat(24));

const queryCmd = (where, extra = {}) => ({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify(where) }, limit: 1000, ...extra } });

test('§3.5 hostile $regex queries: 4310 within the deadline, and a bystander on the same worker keeps echo and send under 100 ms p99', () =>
  withServer(ENV, async (srv) => {
    const owner = await session(srv, uid('owner'));
    await plant(owner, 1000);
    // the query is expensive indeed: no deadline would let it finish quickly
    const t0 = Date.now();
    const r = await owner.request({ ...queryCmd({ s: { $regex: HOSTILE } }), i: 7 }, 10000);
    const took = Date.now() - t0;
    assertError(r, 7, 4310, 'CONVERSATION_QUERY_FAILED');
    assert.match(r.errorMessage.detail, /too expensive/);
    assert.ok(took < 2000, `answered after ${took} ms (query_timeout 500)`);

    // a bystander pair on the same (only) worker
    const pair = await bystanderPair(srv);
    const hostile = await Promise.all([1, 2, 3].map((k) => session(srv, uid(`hostile${k}`))));
    // the hostile clients query the owner's conversations too: m must contain them
    const where = { s: { $regex: HOSTILE }, k: { $gte: 0 } };
    const answers = [];
    const attacks = hostile.map((h) => async () => {
      const q0 = Date.now();
      const x = await h.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify(where) }, limit: 1000 } }, 15000);
      answers.push({ x, ms: Date.now() - q0 });
    });
    // the owner keeps the query threads busy with the real (matching-rows) version too
    attacks.push(async () => {
      const x = await owner.request(queryCmd({ s: { $regex: HOSTILE } }), 15000);
      answers.push({ x, ms: 0 });
    });
    const rounds = await roundsUnderAttack(pair, attacks);
    assert.ok(answers.length >= 6, `${answers.length} hostile queries answered in 4 s`);
    for (const { x, ms } of answers) {
      assert.equal(x.cmd, 'error', JSON.stringify(x));
      assert.equal(x.errorMessage.code, 4310);
      if (ms) assert.ok(ms < 3000, `a hostile query was answered after ${ms} ms`);
    }
    assertBystanderFast(rounds);

    // REST: the same query is a 400 with code 4310, within the deadline
    const q1 = Date.now();
    const res = await fetch(`${srv.httpUrl}/1.2/rtm/conversations?limit=1000&where=${encodeURIComponent(JSON.stringify({ s: { $regex: HOSTILE } }))}`, {
      headers: { 'X-LC-Id': srv.appId, 'X-LC-Key': `${srv.masterKey},master` },
    });
    const body = await res.json();
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.equal(body.code, 4310);
    assert.match(body.error, /too expensive/);
    assert.ok(Date.now() - q1 < 2000);
    // and ordinary queries still work
    const okq = await owner.request(queryCmd({ k: { $lt: 3 } }));
    assert.equal(okq.op, 'results', JSON.stringify(okq));
    assert.equal(JSON.parse(okq.convMessage.results.data).length, 3);
  }));

test('§3.5 a pattern cannot raise PCRE2\'s limits with (*LIMIT_MATCH=…) / (*LIMIT_DEPTH=…): 4310 as without them', () =>
  withServer(ENV, async (srv) => {
    const A = await session(srv, uid('A'));
    await startConv(A, [uid('B')], { attr: { data: JSON.stringify({ s: 'a'.repeat(40) }) } });
    for (const p of ['(*LIMIT_MATCH=4000000000)', '(*LIMIT_DEPTH=4000000000)(*LIMIT_HEAP=4000000000)', '']) {
      const r = await A.request({ ...queryCmd({ s: { $regex: `${p}${HOSTILE}` } }), i: 9 }, 10000);
      assertError(r, 9, 4310, 'CONVERSATION_QUERY_FAILED');
      assert.match(r.errorMessage.detail, /too expensive/, p);
    }
    const ok = await A.request(queryCmd({ s: { $regex: '^a+$' } }));
    assert.equal(JSON.parse(ok.convMessage.results.data).length, 1);
  }));

test('§3.5 at most 4 queries run for one connection; more get 4310 at once, the rest are answered', () =>
  withServer(ENV, async (srv) => {
    const owner = await session(srv, uid('owner'));
    await plant(owner, 300);
    const is = [];
    for (let k = 0; k < 6; k++) is.push(owner.send(queryCmd({ s: { $regex: HOSTILE } })));
    const rs = await Promise.all(is.map((i) => owner.reply(i, 15000)));
    const busy = rs.filter((r) => /too many queries running on this connection/.test(r.errorMessage?.detail ?? ''));
    assert.equal(busy.length, 2, JSON.stringify(rs.map((r) => r.errorMessage?.detail)));
    assert.ok(rs.every((r) => r.cmd === 'error' && r.errorMessage.code === 4310));
    // once they are answered, the connection may query again
    const again = await owner.request(queryCmd({ k: 1 }));
    assert.equal(again.op, 'results', JSON.stringify(again));
  }));

test('§3.5 max_queries_per_ip: queries from one address past it get 4310 at once, across connections', () =>
  withServer({ ...ENV, TERN_MAX_QUERIES_PER_IP: '6' }, async (srv) => {
    const owner = await session(srv, uid('owner'));
    await plant(owner, 300);
    const other = await session(srv, owner.peer); // a second connection of the same client, same address
    const sent = [];
    for (const c of [owner, other]) for (let k = 0; k < 4; k++) sent.push([c, c.send(queryCmd({ s: { $regex: HOSTILE } }))]);
    const rs = await Promise.all(sent.map(([c, i]) => c.reply(i, 15000)));
    const perIp = rs.filter((r) => /too many queries from this address/.test(r.errorMessage?.detail ?? ''));
    assert.equal(perIp.length, 2, JSON.stringify(rs.map((r) => r.errorMessage?.detail)));
    assert.ok(rs.every((r) => r.cmd === 'error' && r.errorMessage.code === 4310));
    // REST from the same address counts too, and is free again once those are answered
    const again = await owner.request(queryCmd({ k: 1 }));
    assert.equal(again.op, 'results', JSON.stringify(again));
  }));

test('§3.5 at most 256 queries wait server-wide: past it 4310 "server busy" at once; a bystander is unaffected', () =>
  withServer({ ...ENV, TERN_MAX_QUERIES_PER_IP: '0', TERN_QUERY_TIMEOUT: '2000' }, async (srv) => {
    const owner = await session(srv, uid('owner'));
    await plant(owner, 200);
    const conns = [];
    for (let k = 0; k < 70; k++) conns.push(await session(srv, owner.peer));
    const A = await session(srv, uid('byA'));
    const sent = [];
    for (const c of conns) for (let k = 0; k < 4; k++) sent.push([c, c.send(queryCmd({ s: { $regex: HOSTILE } }))]);
    const e0 = Date.now();
    assert.equal((await A.request({ cmd: 'echo' }, 5000)).cmd, 'echo');
    const echoMs = Date.now() - e0;
    const rs = await Promise.all(sent.map(([c, i]) => c.reply(i, 30000)));
    const busy = rs.filter((r) => /server busy/.test(r.errorMessage?.detail ?? ''));
    assert.ok(busy.length >= 280 - 256 - 2 && busy.length <= 280 - 256, `${busy.length} refused as busy`);
    assert.ok(rs.every((r) => r.cmd === 'error' && r.errorMessage.code === 4310));
    assert.ok(echoMs < 1000, `an echo during the flood took ${echoMs} ms`);
  }));

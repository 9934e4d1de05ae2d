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
import { session, startConv, uid, withServer } from '../lib/proto-client.mjs';
import { TEXT, sleep } from '../lib/issue4-util.mjs';

const HOSTILE = '(*NO_START_OPT)(a|aa)*b';
// 21 a's: each match stays under PCRE2's match limit (so no row fails fast with "match
// limits") but costs milliseconds — a thousand of them cost seconds without a deadline
const S = 'a'.repeat(21);
const ENV = { TERN_WORKERS: '1', TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0', TERN_QUERY_TIMEOUT: '500', TERN_MAX_QUERIES_PER_IP: '0' };

async function plant(owner, n) {
  const is = [];
  for (let k = 0; k < n; k++) {
    is.push(owner.send({ cmd: 'conv', op: 'start', convMessage: { m: [`peer${k}`], attr: { data: JSON.stringify({ s: S, k }) } } }));
  }
  const rs = await Promise.all(is.map((i) => owner.reply(i, 60000)));
  assert.ok(rs.every((r) => r.op === 'started'), 'all created');
}

function p99(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))];
}

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
    await plant(owner, 1000);
    const where = { s: { $regex: HOSTILE } };
    for (const params of [{ where, limit: 1000 }, { where, limit: 0, count: 1 }]) {
      const r = await classRead(srv, params);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error, /too expensive/);
      assert.ok(r.ms < 2000, `answered after ${r.ms} ms (query_timeout 500)`);
    }

    const [a, b] = [uid('byA'), uid('byB')];
    const A = await session(srv, a);
    const B = await session(srv, b);
    const { cid } = await startConv(A, [b]);
    let stop = false;
    const answers = [];
    const attackers = [1, 2, 3].map(async () => {
      while (!stop) answers.push(await classRead(srv, { where, limit: 1000, count: 1 }));
    });
    const echo = [];
    const send = [];
    const end = Date.now() + 4000;
    let n = 0;
    while (Date.now() < end) {
      let s0 = Date.now();
      const e = await A.request({ cmd: 'echo' }, 10000);
      echo.push(Date.now() - s0);
      assert.equal(e.cmd, 'echo');
      s0 = Date.now();
      const text = TEXT(`by ${n++}`);
      const got = B.next((p) => p.cmd === 'direct' && p.directMessage?.msg === text, 10000);
      const ack = await A.request({ cmd: 'direct', directMessage: { cid, msg: text } }, 10000);
      assert.equal(ack.cmd, 'ack');
      await got;
      send.push(Date.now() - s0);
      B.pushes.length = 0;
      await sleep(10);
    }
    stop = true;
    await Promise.all(attackers);
    assert.ok(answers.length >= 6, `${answers.length} costly class reads answered in 4 s`);
    for (const r of answers) {
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error, /too expensive/);
      assert.ok(r.ms < 3000, `a costly class read was answered after ${r.ms} ms`);
    }
    assert.ok(echo.length >= 20, `${echo.length} bystander rounds`);
    assert.ok(p99(echo) < 100, `bystander echo p99 ${p99(echo)} ms (max ${Math.max(...echo)})`);
    assert.ok(p99(send) < 100, `bystander send p99 ${p99(send)} ms (max ${Math.max(...send)})`);

    // and an ordinary class read still answers, with its count
    const ok = await classRead(srv, { where: { k: { $lt: 3 } }, count: 1, order: 'createdAt' });
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.count, 3);
    assert.deepEqual(ok.body.results.map((c) => c.k).sort(), [0, 1, 2]);
    assert.equal(ok.body.results[0].conv_type, undefined); // the class's shape, not conv query's
  }));

// Each change a node applies to a conversation tells every other node to reload it (a 'C'
// broadcast, im_bus.c). A client changing one conversation as fast as its rate allows must
// not make one broadcast per change: they are coalesced — told at once when the
// conversation was not told of within 50 ms, else once when that window ends, after the
// last change, so the other nodes still end up with the final state.
//
// Two nodes on one PostgreSQL and one Redis (the other node must read what this one wrote).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, test } from 'node:test';
import { useNodes } from '../lib/cluster-mode.mjs';
import { sendMsg, session, startConv, uid } from '../lib/proto-client.mjs';
import { scrape, value } from '../lib/metrics.mjs';

const N = 100;

// Waits until node s sees each of ids online (the bus has told it).
async function seen(s, ids) {
  const t0 = Date.now();
  for (;;) {
    const res = await fetch(`${s.httpUrl}/1.2/rtm/clients/check-online`, {
      method: 'POST',
      headers: { 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ client_ids: ids }),
    });
    if ((await res.json()).results?.length === ids.length) return;
    if (Date.now() - t0 > 8000) assert.fail(`node ${s.port} never saw ${ids} online`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const WINDOW = 2000; // bus_conv_coalesce_ms here: long enough that the steps below fall in one window

describe('cluster: conversation-change broadcasts are coalesced', () => {
  const cluster = useNodes(2, { pg: true, env: { TERN_BUS_CONV_COALESCE_MS: String(WINDOW) } });

  test(`${N} rapid attribute changes make far fewer than ${N} broadcasts; the other node ends with the last change`, async () => {
    const [n1, n2] = cluster.nodes;
    const a = uid('ca');
    const b = uid('cb');
    const x = uid('cx');
    const A = await session(n1, a);
    const B = await session(n2, b);
    const { cid } = await startConv(A, [b]);
    await sendMsg(B, cid, 'hello from node 2'); // node 2 has it cached now
    const X = await session(n2, x); // not a member yet
    await seen(n1, [x]);

    // what goes out on the broadcast channel, seen by a subscriber of our own
    const sub = spawn('redis-cli', ['-p', String(cluster.redis.port), 'SUBSCRIBE', 'tern0:all'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let heard = Buffer.alloc(0);
    sub.stdout.on('data', (d) => { heard = Buffer.concat([heard, d]); });
    const told = () => heard.toString('latin1').split(cid).length - 1; // each 'C' names the cid once
    try {
      for (let t0 = Date.now(); !heard.toString().includes('tern0:all');) { // subscribed
        if (Date.now() - t0 > 5000) assert.fail('redis-cli never subscribed');
        await new Promise((r) => setTimeout(r, 20));
      }
      const changes = (m, o) => value(m, `tern_bus_conv_changes_total{outcome="${o}"}`);
      const m0 = await scrape(n1);
      // the burst: N updates in one go; the first 4 are told at once (node 2 marks its copy
      // stale), the others wait for the window's end
      const is = [];
      for (let k = 1; k <= N; k++) is.push(A.send({ cmd: 'conv', op: 'update', convMessage: { cid, attr: { data: JSON.stringify({ n: k }) } } }));
      for (const i of is) assert.equal((await A.reply(i)).op, 'updated');
      // node 2 uses the conversation now: it reloads it, and is fresh as of the burst
      await sendMsg(B, cid, 'between');
      // the last change, inside the window: x becomes a member; node 2 is not told yet
      const m1 = await scrape(n1);
      const add = await A.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [x] } });
      assert.equal(add.op, 'added', JSON.stringify(add));
      const m2 = await scrape(n1);
      assert.ok(changes(m2, 'coalesced') > changes(m1, 'coalesced'), 'the last change was held for the window (else this test proves nothing)');
      assert.ok(changes(m2, 'sent') + changes(m2, 'coalesced') - changes(m0, 'sent') - changes(m0, 'coalesced') >= N + 1,
        'every change counted');

      // node 2 ends with the last change: once the window ends, a message b sends there
      // reaches x, a member only since the last change (never, were that change not told)
      let got = null;
      const until = Date.now() + 3 * WINDOW + 2000;
      for (let k = 0; !got && Date.now() < until; k++) {
        await sendMsg(B, cid, `after ${k}`);
        got = await X.next((c) => c.cmd === 'direct' && c.directMessage?.cid === cid, 200).catch(() => null);
      }
      assert.ok(got, 'x never got a message sent on node 2: node 2 kept the member list from before the last change');
      const q = await X.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } });
      const rows = JSON.parse(q.convMessage.results.data);
      assert.equal(rows.length, 1, JSON.stringify(q));
      assert.equal(rows[0].attr?.n ?? rows[0].n, N, JSON.stringify(rows[0]));
      assert.ok(rows[0].m.includes(x));
      // the broadcasts node 1 published for the conversation: by now all of them (node 2
      // has reloaded after the last change), far fewer than the changes
      const c = told();
      assert.ok(c >= 2 && c <= N / 4, `${c} 'C' broadcasts for ${N + 1} changes`);
      const m3 = await scrape(n1);
      assert.equal(c, changes(m3, 'sent') - changes(m0, 'sent'), 'the subscriber heard what the sent counter counts');
    } finally {
      sub.kill();
    }
  });
});

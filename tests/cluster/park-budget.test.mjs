// Frames held behind a request that waits on the bus (a signature nonce asked of Redis,
// im_bus.c) are budgeted per connection (64 frames / 1 MiB), per IP address
// (bus_park_limit_ip) and per server (bus_park_limit_total): while Redis is slow, many
// connections each under the first cap cannot hold more than the others together. The one
// whose frame would pass a budget is closed 4116; the others keep what they hold and are
// answered, in order, once Redis answers.
//
// Redis is stalled with CLIENT PAUSE WRITE (the nonce's SET NX waits) and released with
// CLIENT UNPAUSE; addresses are told apart with X-Forwarded-For from a trusted proxy.
// Barriers: tern_bus_parked_bytes in /metrics, not sleeps.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { useNodes } from '../lib/cluster-mode.mjs';
import { connect, uid } from '../lib/proto-client.mjs';
import { scrape, scrapeUntil, value } from '../lib/metrics.mjs';

const IP_CAP = 40000;
const TOTAL_CAP = 100000;
const FRAMES = 30; // per connection: under its own cap of 64 frames / 1 MiB
const PAD = 1000; // bytes of peerId in each held echo: ~1 KB a frame, ~30 KB a connection

const signed = (s, client) => {
  const t = Date.now();
  const n = uid('nonce');
  const text = `${s.appId}:${client}::${t}:${n}`;
  return { t, n, s: createHmac('sha1', s.masterKey).update(text).digest('hex') };
};

describe('cluster: frames held behind a request waiting on the bus, per IP and per server', () => {
  after(() => {
    try { cluster.redis?.cli('CLIENT', 'UNPAUSE'); } catch { /* already stopped */ }
  });
  const cluster = useNodes(2, {
    env: {
      TERN_BUS_PARK_LIMIT_IP: String(IP_CAP),
      TERN_BUS_PARK_LIMIT_TOTAL: String(TOTAL_CAP),
      TERN_TRUSTED_PROXIES: '127.0.0.1',
      TERN_SIGN_LOGIN: '1',
    },
  });

  // A connection "from" ip that logs in with a signature (parked: Redis is paused) and
  // sends FRAMES echoes behind it in the same write; resolves with the client, the ids and
  // the bytes the echoes take.
  async function park(s, ip, tag) {
    const c = await connect(s, { headers: { 'X-Forwarded-For': ip } });
    const peer = uid(tag);
    const login = c.payload({ cmd: 'session', op: 'open', i: 1, appId: s.appId, peerId: peer,
      sessionMessage: signed(s, peer) });
    const echoes = [];
    for (let k = 0; k < FRAMES; k++) echoes.push(c.payload({ cmd: 'echo', i: 2 + k, peerId: 'p'.repeat(PAD) }));
    c.ws._socket.cork();
    c.ws.send(login, { binary: true });
    for (const f of echoes) c.ws.send(f, { binary: true });
    c.ws._socket.uncork();
    // the login waits (its frame counted) and the echoes are held behind it
    return { c, peer, bytes: login.length + echoes.reduce((a, f) => a + f.length, 0) };
  }

  const closedWithin = async (c, ms) => {
    let timer;
    const info = await Promise.race([c.closed,
      new Promise((_, no) => { timer = setTimeout(() => no(new Error(`not closed within ${ms} ms`)), ms); })]);
    clearTimeout(timer);
    return info;
  };

  test('past the IP budget and past the server budget the connection is closed 4116; the others are answered', async () => {
    const [n1] = cluster.nodes;
    const before = await scrape(n1);
    assert.equal(value(before, 'tern_bus_parked_bytes'), 0);
    cluster.redis.cli('CLIENT', 'PAUSE', '60000', 'WRITE');
    const kept = [];
    let held = 0;
    const hold = async (p) => {
      held += p.bytes;
      kept.push(p);
      await scrapeUntil(n1, (m) => value(m, 'tern_bus_parked_bytes') === held, `${held} bytes held`);
    };
    try {
      // address A: one connection holds ~30 KB (under 40 KB), the second passes 40 KB
      await hold(await park(n1, '10.1.0.1', 'ipA'));
      const a2 = await park(n1, '10.1.0.1', 'ipA2');
      assert.equal((await closedWithin(a2.c, 5000)).code, 4116);
      let m = await scrapeUntil(n1, (x) => value(x, 'tern_bus_park_refused_total{limit="ip"}') === 1 &&
        value(x, 'tern_bus_parked_bytes') === held, 'the ip refusal, and its held bytes given back');
      assert.equal(value(m, 'tern_bus_park_refused_total{limit="total"}'), 0);
      assert.equal(value(m, 'tern_bus_park_refused_total{limit="connection"}'), 0);
      // a bystander at another address is not hurt by A's budget: ~60 KB held now
      await hold(await park(n1, '10.2.0.1', 'ipB'));
      // a third address fits (~90 KB), a fourth passes the server's 100 KB
      await hold(await park(n1, '10.3.0.1', 'ipC'));
      const d = await park(n1, '10.4.0.1', 'ipD');
      assert.equal((await closedWithin(d.c, 5000)).code, 4116);
      m = await scrapeUntil(n1, (x) => value(x, 'tern_bus_park_refused_total{limit="total"}') === 1 &&
        value(x, 'tern_bus_parked_bytes') === held, 'the server refusal');
      assert.equal(value(m, 'tern_bus_park_refused_total{limit="ip"}'), 1);
      // a signed request that would itself pass the server's budget: {cmd: error} 4116, not
      // run, nothing held, and its connection stays
      const e = await connect(n1, { headers: { 'X-Forwarded-For': '10.5.0.1' } });
      const pe = uid('ipE');
      const big = { cmd: 'session', op: 'open', i: 1, appId: n1.appId, peerId: pe,
        sessionMessage: { ...signed(n1, pe), ua: 'u'.repeat(TOTAL_CAP - held + 1) } };
      const refused = await e.request(big);
      assert.equal(refused.cmd, 'error', JSON.stringify(refused).slice(0, 300));
      assert.equal(refused.errorMessage.code, 4116);
      assert.equal(refused.errorMessage.detail, 'too many requests waiting on the bus');
      assert.equal((await e.request({ cmd: 'echo' })).cmd, 'echo'); // not held: nothing waits on its connection
      m = await scrape(n1);
      assert.equal(value(m, 'tern_bus_parked_bytes'), held);
      assert.equal(value(m, 'tern_bus_park_refused_total{limit="total"}'), 2);
      for (const p of kept) assert.equal(p.c.isClosed, false, `${p.peer} was closed`);
    } finally {
      cluster.redis.cli('CLIENT', 'UNPAUSE');
    }
    // Redis answers: each kept connection gets its login and every echo, in order
    for (const p of kept) {
      const r = await p.c.reply(1);
      assert.equal(r.op, 'opened', JSON.stringify(r));
      for (let k = 0; k < FRAMES; k++) {
        const e = await p.c.reply(2 + k);
        assert.equal(e.cmd, 'echo', JSON.stringify(e));
      }
      const order = p.c.since(0).filter((x) => x.i >= 1 && x.i <= FRAMES + 1).map((x) => x.i);
      assert.deepEqual(order, Array.from({ length: FRAMES + 1 }, (_, k) => k + 1));
    }
    await scrapeUntil(n1, (x) => value(x, 'tern_bus_parked_bytes') === 0, 'nothing held');
    // and a fresh connection from the refused address may hold frames again
    cluster.redis.cli('CLIENT', 'PAUSE', '60000', 'WRITE');
    let again;
    try {
      again = await park(n1, '10.1.0.1', 'ipA3');
      await scrapeUntil(n1, (x) => value(x, 'tern_bus_parked_bytes') === again.bytes, 'A holding again');
    } finally {
      cluster.redis.cli('CLIENT', 'UNPAUSE');
    }
    assert.equal((await again.c.reply(1)).op, 'opened');
    assert.equal((await again.c.reply(FRAMES + 1)).cmd, 'echo');
  });
});

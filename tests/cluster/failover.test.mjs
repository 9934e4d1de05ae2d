// Issue #14: a node killed with SIGKILL under load, on one real PostgreSQL and one real Redis
// (docs/cluster.md, "When something fails"). Nine raw-protocol clients, three on each of
// three nodes, send continuously (~300 msgs/s in all) into 1:1 and group conversations whose
// members sit on different nodes. Node 3 is SIGKILLed mid-stream; its clients reconnect as the
// SDKs do (/v1/route on a live node, `session open` with r:true and their `st`), resend what
// was not acked (same content and dt), and catch up by history. Then, from the store (REST history)
// and from every client's own record: every acked message, and every resent one, is stored exactly once and reached
// every other member; no message id is stored twice; nothing was delivered that is not
// stored; and no client got the same id twice live — no duplicate frames at all, so the
// client-side merge by message id that protocol.md §3.7 asks of clients ("at least once" +
// client dedup; the test's catch-up merges live and `logs` by id) is never needed for live
// frames. Clients that stayed connected got every message acked by a surviving node live.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { LoadClient, checkAll, makeConv, metric, reconnect, route, until } from '../lib/cluster-load.mjs';
import { startPg } from '../lib/pg.mjs';
import { uid } from '../lib/proto-client.mjs';
import { startRedis } from '../lib/redis.mjs';
import { startNodes, waitNodes } from '../lib/server.mjs';

describe('cluster: a node killed with SIGKILL under load (PostgreSQL + Redis)', () => {
  let pg;
  let redis;
  let nodes;
  let clients = [];
  before(async () => {
    pg = startPg();
    redis = await startRedis();
    nodes = await startNodes(3, redis, { env: { TERN_STORE: pg.createDatabase() } });
  });
  after(async () => {
    try {
      for (const c of clients) await c.close();
      await Promise.all((nodes || []).slice(0, 2).map((s) => s.stop()));
    } finally {
      if (nodes?.[2]?.child.exitCode === null && nodes[2].child.signalCode === null) await nodes[2].kill();
      if (redis) await redis.stop();
      if (pg) pg.stop();
    }
  });

  test('every acked message is stored once and reaches every member once; the dead node\'s clients reconnect with their st', { timeout: 240000 }, async () => {
    const [n1, n2, n3] = nodes;
    const A = [0, 1, 2].map(() => new LoadClient(uid('a'), n1));
    const B = [0, 1, 2].map(() => new LoadClient(uid('b'), n2));
    const C = [0, 1, 2].map(() => new LoadClient(uid('c'), n3));
    clients = [...A, ...B, ...C];
    for (const c of clients) await c.open();
    // every node knows where every client is before anything is sent (the presence replica)
    const ids = clients.map((c) => c.id);
    for (const s of nodes) {
      await until(async () => {
        const res = await fetch(`${s.httpUrl}/1.2/rtm/clients/check-online`, {
          method: 'POST',
          headers: { 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ client_ids: ids }),
        });
        return (await res.json()).results?.length === ids.length;
      }, `node ${s.port} never saw all ${ids.length} clients online`);
    }
    // 1:1 across each pair of nodes, and two groups spread over all three
    const convs = [
      await makeConv([A[0], B[0]]), await makeConv([B[1], C[0]]), await makeConv([C[1], A[1]]),
      await makeConv([A[2], C[2]]),
      await makeConv([A[0], B[1], C[1], A[2]]), await makeConv([B[2], C[0], A[1], C[2], B[0]]),
    ];
    for (const c of clients) c.start({ window: 3, periodMs: 30 });
    // under load: every client has had 25 sends acked
    await until(() => clients.every((c) => c.acked.size >= 25),
      () => `acks before the kill: ${clients.map((c) => c.acked.size)}`, 60000);
    const before3 = C.map((c) => c.acked.size);
    const atKill = new Map(C.map((c) => [c, c.acked.size]));
    await n3.kill();
    const killedAt = Date.now();
    // its clients see the connection drop (no close frame: the process is gone)
    await until(() => C.every((c) => c.conn.isClosed), 'node 3\'s clients never saw their connection drop', 10000);
    // they reconnect through the router of a live node, with their st
    const took = [];
    await Promise.all(C.map(async (c) => {
      const { ms, node } = await reconnect(c, n1, nodes, 15000);
      assert.notEqual(node, n3);
      took.push(ms);
    }));
    const back = Date.now() - killedAt;
    assert.ok(back <= 10000, `node 3's clients were back after ${back} ms (bound: 10 s)`);
    // the router may name the dead node until its heartbeat lapses (3 s, polled each second:
    // docs/cluster.md); the reconnect above retried through that. Within 6 s it never does.
    await waitNodes(n1, 2, Math.max(0, 6000 - (Date.now() - killedAt)));
    await waitNodes(n2, 2, Math.max(0, 6000 - (Date.now() - killedAt)));
    for (let k = 0; k < 5; k++) {
      assert.notEqual(await route(n1), n3.wsUrl);
      assert.notEqual(await route(n2), n3.wsUrl);
    }
    // the survivors know where the moved clients are now, then the load goes on a while:
    // every moved client gets 20 more acks after its reconnect
    for (const s of [n1, n2]) {
      await until(async () => {
        const res = await fetch(`${s.httpUrl}/1.2/rtm/clients/check-online`, {
          method: 'POST',
          headers: { 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ client_ids: C.map((c) => c.id) }),
        });
        return (await res.json()).results?.length === C.length;
      }, `node ${s.port} never saw node 3's clients online again`);
    }
    const afterKill = C.map((c) => c.acked.size);
    // from here on every node knows where everyone is: whatever is acked now goes live to all
    const settled = new Map(clients.map((c) => [c, c.acked.size]));
    await until(() => C.every((c, k) => c.acked.size >= afterKill[k] + 20),
      () => `acks after the reconnect: ${C.map((c) => c.acked.size)} (from ${afterKill})`, 60000);
    await Promise.all(clients.map((c) => c.drain()));
    // a barrier per client: an echo round trip after the last ack; then the catch-up
    for (const c of clients) await c.conn.echo();
    for (const c of clients) await c.sync();

    for (const c of [...A, ...B]) assert.equal(c.disconnects, 0, `${c.id} on a surviving node was disconnected`);
    for (const c of [...A, ...B]) assert.equal(c.refused.length, 0, `${c.id}: ${JSON.stringify(c.refused.slice(0, 3))}`);
    const stats = await checkAll({
      reader: n2, convs, clients,
      // Live, not only by the catch-up: to whoever stayed connected, whatever a surviving node
      // acked, and whatever node 3 acked before the kill — up to its last ack: a worker writes
      // its publishes to Redis before its clients' output (bus_write_out), so an ack that left
      // had its cross-node publish in Redis's socket first; to everyone, whatever was acked
      // once the moved clients were known online again on both survivors.
      // A resend answered with the ack of the copy node 3 stored (the dt dedupe) is not sent
      // again: its live delivery died with node 3 if its publish had not left.
      liveRequired: (to, from, a) => !a.resent && (a.n >= settled.get(from) ||
        (!C.includes(to) && (!C.includes(from) || a.n < atKill.get(from)))),
      // every resent message is stored exactly once, even one node 3 committed but never acked
      strictResends: true,
    });
    // the sends in doubt at the kill that were stored by node 3 and answered by a survivor from
    // its copy (tern_send_deduped_total), rather than stored again
    stats.deduped = (await metric(n1, 'tern_send_deduped_total') || 0) + (await metric(n2, 'tern_send_deduped_total') || 0);
    // the history is the same from the other surviving node
    for (const conv of convs) {
      const h = (await (await fetch(`${n1.httpUrl}/1.2/rtm/conversations/${conv.cid}/messages?limit=1000`, {
        headers: { 'X-LC-Id': n1.appId, 'X-LC-Key': `${n1.masterKey},master` },
      })).json()).map((m) => m['msg-id']).reverse();
      assert.deepEqual(h.slice(-1000), conv.history.map((m) => m.id).slice(-1000), `${conv.cid} differs between nodes`);
    }
    const retries = await metric(n1, 'tern_send_key_retries_total');
    console.log(`# failover: ${JSON.stringify(stats)}; node 3's clients had ${before3} acks at the kill, reconnected in ${took} ms; key retries on node 1: ${retries}`);
    assert.ok(stats.acked >= clients.length * 25);
  });
});

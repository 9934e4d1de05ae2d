// A node the others took for dead while it was alive (docs/cluster.md, "A node taken for
// dead"): its home worker starved of CPU past the heartbeat's TTL (here: SIGSTOP for longer
// than it), the other nodes dropped its sessions and only stored what they sent its clients.
// When it runs again it finds its own heartbeat expired, counts the lapse and tells its
// clients goaway; their next login delivers what they missed (the unread counts name it).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useNodes } from '../lib/cluster-mode.mjs';
import { session, startConv, sendMsg, uid } from '../lib/proto-client.mjs';
import { scrape, value } from '../lib/metrics.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function online(server, ids) {
  const res = await fetch(`${server.httpUrl}/1.2/rtm/clients/check-online`, {
    method: 'POST',
    headers: { 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ client_ids: ids }),
  });
  assert.equal(res.status, 200);
  return (await res.json()).results;
}

describe('cluster: a live node taken for dead', () => {
  const cluster = useNodes(2);

  test('a node stopped past its heartbeat TTL tells its clients goaway when it runs again; their login shows what they missed', async () => {
    const [n1, n2] = cluster.nodes;
    const A = uid('a'), B = uid('b');
    const b = await session(n2, B);
    const a = await session(n1, A);
    for (let t0 = Date.now(); !(await online(n1, [B])).includes(B); await sleep(20))
      assert.ok(Date.now() - t0 < 8000, 'node 1 never saw B online');
    const conv = await startConv(a, [B]);
    await b.nextCmd('conv', 'joined');
    const first = await sendMsg(a, conv.cid, 'while alive');
    assert.equal((await b.nextCmd('direct')).directMessage.id, first.uid);

    process.kill(n2.child.pid, 'SIGSTOP');
    let sent;
    try {
      // node 1 drops node 2's sessions once its heartbeat expires (3 s): the barrier
      for (let t0 = Date.now(); (await online(n1, [B])).includes(B); await sleep(50))
        assert.ok(Date.now() - t0 < 10000, 'node 1 still takes node 2 for alive');
      sent = await sendMsg(a, conv.cid, 'while taken for dead');
    } finally {
      process.kill(n2.child.pid, 'SIGCONT');
    }
    // no push reached B (node 1 took it for offline); node 2 finds the lapse and says goaway
    const g = await b.next((p) => p.cmd === 'goaway' || p.cmd === 'direct', 10000);
    assert.equal(g.cmd, 'goaway', `expected goaway, got ${JSON.stringify(g)}`);
    // at least one: a machine busy enough can starve it past the TTL again (each is counted)
    assert.ok(value(await scrape(n2), 'tern_bus_heartbeat_lapses_total') >= 1);

    // B reconnects (here to node 1, whose store holds the conversation): the unread counts
    // at its login name the message it missed
    await b.close();
    const b2 = await session(n1, B);
    const u = await b2.nextCmd('unread');
    const c = u.unreadMessage.convs.find((x) => x.cid === conv.cid);
    assert.ok(c, JSON.stringify(u));
    assert.equal(c.unread, 2); // neither was marked read
    assert.equal(c.mid, sent.uid, 'the newest is the one B missed');
  });
});

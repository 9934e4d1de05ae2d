// The presence window across nodes (docs/cluster.md, "The window"): a node answers a login,
// a logout, a chat-room join or quit (and pushes a member a block takes out of a room its
// `left`, and a session it ends itself — the app's kick, 4115, single sign-on's, 4111 — its
// `session/closed`; the app's kick is answered so too) only once its presence batch carrying
// the change is confirmed by Redis (im_hold.c,
// bus_wait), so the moment the answer arrives every other node has the delta queued. Each
// test acts on one node and, the moment the answer arrives, asks another — no wait, no
// retry — many times over: before the held replies, each of them met the window within a
// few rounds (the interop suite across 3 nodes waited for it until these passed; it no
// longer does: docs/cluster.md, "The interop suite, without the waits").
//
// Three nodes, one PostgreSQL (a conversation started on one node is read on another) and
// one Redis. Raw protocol clients (tests/lib/proto-client.mjs).
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { useNodes } from '../lib/cluster-mode.mjs';
import { connect, login, session, startConv, sendMsg, uid } from '../lib/proto-client.mjs';

const ROUNDS = Number(process.env.PRESENCE_ROUNDS || 200);
const KICK_ROUNDS = Number(process.env.PRESENCE_KICK_ROUNDS || 100);

const online = async (c, ids) =>
  (await c.request({ cmd: 'session', op: 'query', sessionMessage: { sessionPeerIds: ids } })).sessionMessage
    .onlineSessionPeerIds || [];

async function scrape(s, name) {
  const res = await fetch(`${s.httpUrl}/metrics`, { headers: { 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master` } });
  const text = await res.text();
  const m = new RegExp(`^${name.replace(/[{}"=]/g, (x) => `\\${x}`)} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

describe('cluster: an acknowledged presence change is known to every node', () => {
  after(() => {
    try { cluster.redis?.cli('CLIENT', 'UNPAUSE'); } catch { /* already stopped */ }
  });
  const cluster = useNodes(3, { pg: true });

  test(`a login answered on node 1 is listed by node 2 at once, and a logout is not (${ROUNDS} rounds)`, async () => {
    const [n1, n2] = cluster.nodes;
    const asker = await session(n2, uid('asker'));
    const a = await connect(n1);
    const held0 = await scrape(n1, 'tern_bus_held_replies_total{end="any"}');
    let missed = 0, stale = 0;
    for (let k = 0; k < ROUNDS; k++) {
      const x = uid('w');
      const opened = await a.request({ cmd: 'session', op: 'open', peerId: x, appId: n1.appId, sessionMessage: { ua: 'presence-window' } });
      assert.equal(opened.op, 'opened', JSON.stringify(opened));
      if (!(await online(asker, [x])).includes(x)) missed++;
      const closed = await a.request({ cmd: 'session', op: 'close', peerId: x });
      assert.equal(closed.op, 'closed', JSON.stringify(closed));
      if ((await online(asker, [x])).includes(x)) stale++;
    }
    assert.equal(missed, 0, `node 2 did not list a client node 1 had answered "opened" (${missed} of ${ROUNDS})`);
    assert.equal(stale, 0, `node 2 still listed a client node 1 had answered "closed" (${stale} of ${ROUNDS})`);
    // the answers were held (the mechanism, not luck): one hold per login and per logout
    assert.ok((await scrape(n1, 'tern_bus_held_replies_total{end="any"}')) - held0 >= ROUNDS,
      'node 1 held its answers for the bus');
  });

  test(`a chat-room join answered on node 1: a message sent at once on node 2 reaches the member, node 3 counts it (${ROUNDS} rounds)`, async () => {
    const [n1, n2, n3] = cluster.nodes;
    const owner = await session(n2, uid('owner'));
    const { cid } = await startConv(owner, [], { transient: true, n: 'presence-window' });
    const counter = await session(n3, uid('counter'));
    const count = async () => (await counter.request({ cmd: 'conv', op: 'count', convMessage: { cid } })).convMessage.count;
    // the owner (node 2) is in the room since its start (§3.4); node 3 knows it once the
    // start was answered (the creator's join is held like any other)
    assert.equal(await count(), 1, 'node 3 counts the owner the moment its start was answered');
    const x = uid('joiner');
    const a = await session(n1, x);
    let lost = 0, miscounted = 0, quitCounted = 0;
    for (let k = 0; k < ROUNDS; k++) {
      const joined = await a.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [x] } });
      assert.equal(joined.op, 'added', JSON.stringify(joined));
      const text = `round ${k}`;
      const [, n] = await Promise.all([sendMsg(owner, cid, text), count()]);
      if (n !== 2) miscounted++;
      const got = await a.next((c) => c.cmd === 'direct' && c.directMessage?.msg === text, 3000).catch(() => null);
      if (!got) lost++;
      const quit = await a.request({ cmd: 'conv', op: 'remove', convMessage: { cid, m: [x] } });
      assert.equal(quit.op, 'removed', JSON.stringify(quit));
      if ((await count()) !== 1) quitCounted++;
      if (lost > 3) break; // each loss costs the push's timeout: enough to fail
    }
    assert.equal(lost, 0, `room messages sent on node 2 right after a join answered on node 1 were lost (${lost})`);
    assert.equal(miscounted, 0, `node 3 miscounted the room right after a join answered on node 1 (${miscounted} of ${ROUNDS})`);
    assert.equal(quitCounted, 0, `node 3 still counted a member whose quit node 1 had answered (${quitCounted} of ${ROUNDS})`);
  });

  test(`a member blocked from a chat room on node 1: the moment node 2 pushes it "left", node 3 no longer counts it (${KICK_ROUNDS} rounds)`, async () => {
    const [n1, n2, n3] = cluster.nodes;
    const owner = await session(n1, uid('owner'));
    const { cid } = await startConv(owner, [], { transient: true, n: 'kick-window' });
    const counter = await session(n3, uid('counter'));
    const count = async () => (await counter.request({ cmd: 'conv', op: 'count', convMessage: { cid } })).convMessage.count;
    let stale = 0;
    for (let k = 0; k < KICK_ROUNDS; k++) {
      const x = uid('kicked'); // a fresh member each round: no unblock, whose cache refresh would race the re-join
      const a = await session(n2, x);
      const joined = await a.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [x] } });
      assert.equal(joined.op, 'added', JSON.stringify(joined));
      assert.equal(await count(), 2, `round ${k}: node 3 counts the join node 2 answered`);
      // node 3 is asked the moment the push arrives, not after the blocker's answer
      const counted = a.next((c) => c.cmd === 'conv' && c.op === 'left' && c.convMessage?.cid === cid, 5000).then(count);
      const blocked = await owner.request({ cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: cid, toPids: [x] } });
      assert.equal(blocked.op, 'blocked', JSON.stringify(blocked));
      if ((await counted) !== 1) stale++;
      await a.close();
    }
    assert.equal(stale, 0, `node 3 still counted a member node 2 had pushed "left" (${stale} of ${KICK_ROUNDS})`);
  });

  // A session the server ends itself: the app's kick (4115) and single sign-on's push-out
  // of an older session (4111). Its session/closed is held like a logout's answer, so the
  // moment it arrives node 3 no longer lists the client (4115) and no longer counts the
  // session in its chat room (both codes: for 4111 the client stays online through its new
  // session, so the room is where the old session's end shows).
  test(`a session the app kicks (4115) on node 1: the moment its session/closed arrives, node 3 no longer lists it nor counts it in its room (${KICK_ROUNDS} rounds)`, async () => {
    const [n1, n2, n3] = cluster.nodes;
    const owner = await session(n2, uid('owner'));
    const { cid } = await startConv(owner, [], { transient: true, n: 'app-kick-window' });
    const asker = await session(n3, uid('asker'));
    const count = async () => (await asker.request({ cmd: 'conv', op: 'count', convMessage: { cid } })).convMessage.count;
    let listed = 0, counted = 0;
    for (let k = 0; k < KICK_ROUNDS; k++) {
      const x = uid('appkicked'); // a fresh client each round: a kick revokes its tokens
      const a = await session(n1, x);
      const joined = await a.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [x] } });
      assert.equal(joined.op, 'added', JSON.stringify(joined));
      // node 3 is asked the moment the push arrives, not after the app's answer
      const seen = a.next((c) => c.cmd === 'session' && c.op === 'closed', 5000)
        .then((c) => { assert.equal(c.sessionMessage?.code, 4115, JSON.stringify(c)); return Promise.all([online(asker, [x]), count()]); });
      // the kick asked of node 1 itself, or of node 2 (it reaches node 1 by the bus)
      const via = k % 2 ? n2 : n1;
      const res = await fetch(`${via.httpUrl}/1.2/rtm/clients/${x}/kick`, {
        method: 'POST',
        headers: { 'X-LC-Id': via.appId, 'X-LC-Key': `${via.masterKey},master`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ reason: 'window' }),
      });
      assert.equal(res.status, 200, await res.text());
      const [on, n] = await seen;
      if (on.includes(x)) listed++;
      if (n !== 1) counted++;
      await a.close();
    }
    assert.equal(listed, 0, `node 3 still listed a client node 1 had pushed 4115 (${listed} of ${KICK_ROUNDS})`);
    assert.equal(counted, 0, `node 3 still counted a session node 1 had pushed 4115 in its room (${counted} of ${KICK_ROUNDS})`);
  });

  test(`the app's kick answered on node 1: the moment the answer arrives, node 3 no longer lists the client's sessions on node 1 (${KICK_ROUNDS} rounds)`, async () => {
    const [n1, , n3] = cluster.nodes;
    const asker = await session(n3, uid('asker'));
    let listed = 0;
    for (let k = 0; k < KICK_ROUNDS; k++) {
      const x = uid('appkicked');
      // two devices: two connections, on the same worker of node 1 or on two
      const devices = [await session(n1, x), await session(n1, x)];
      const closed = devices.map((d) => d.next((c) => c.cmd === 'session' && c.op === 'closed', 5000));
      const res = await fetch(`${n1.httpUrl}/1.2/rtm/clients/${x}/kick`, {
        method: 'POST',
        headers: { 'X-LC-Id': n1.appId, 'X-LC-Key': `${n1.masterKey},master`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ reason: 'window' }),
      });
      assert.equal(res.status, 200, await res.text());
      if ((await online(asker, [x])).includes(x)) listed++;
      for (const c of await Promise.all(closed)) assert.equal(c.sessionMessage?.code, 4115, JSON.stringify(c));
      await Promise.all(devices.map((d) => d.close()));
    }
    assert.equal(listed, 0, `node 3 still listed a client whose kick node 1 had answered (${listed} of ${KICK_ROUNDS})`);
  });

  test(`a session pushed out by single sign-on (4111) on node 1: the moment its session/closed arrives, node 3 no longer counts it in its room (${KICK_ROUNDS} rounds)`, async () => {
    const [n1, n2, n3] = cluster.nodes;
    const owner = await session(n2, uid('owner'));
    const { cid } = await startConv(owner, [], { transient: true, n: 'sso-window' });
    const counter = await session(n3, uid('counter'));
    const count = async () => (await counter.request({ cmd: 'conv', op: 'count', convMessage: { cid } })).convMessage.count;
    let counted = 0;
    for (let k = 0; k < KICK_ROUNDS; k++) {
      const x = uid('sso');
      const a = await session(n1, x, { extra: { tag: 'mobile' } });
      const joined = await a.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [x] } });
      assert.equal(joined.op, 'added', JSON.stringify(joined));
      const seen = a.next((c) => c.cmd === 'session' && c.op === 'closed', 5000)
        .then((c) => { assert.equal(c.sessionMessage?.code, 4111, JSON.stringify(c)); return count(); });
      // the new login on node 1 itself (another connection), or on node 2 (the bus kicks)
      const b = await session(k % 2 ? n2 : n1, x, { extra: { tag: 'mobile' } });
      if ((await seen) !== 1) counted++;
      await Promise.all([a.close(), b.close()]);
    }
    assert.equal(counted, 0, `node 3 still counted a session node 1 had pushed 4111 in its room (${counted} of ${KICK_ROUNDS})`);
  });

  test('a conversation started on node 2 right after its member\'s login was answered on node 1 reaches it (INVITED)', async () => {
    const [n1, n2] = cluster.nodes;
    const creator = await session(n2, uid('creator'));
    const a = await connect(n1);
    // A start is a PostgreSQL commit, longer than a publish: without more, the delta is
    // there first by luck. So in half the rounds Redis holds every write for 300 ms
    // (CLIENT PAUSE WRITE: the login's presence batch waits in it), well under the bound
    // the answer may be held for: the start on node 2 then follows the login's answer
    // only as closely as the client does.
    const rounds = Math.max(20, Math.floor(ROUNDS / 10));
    let lost = 0;
    for (let k = 0; k < rounds && lost <= 3; k++) {
      const m = uid('invited');
      if (k % 2 === 0) cluster.redis.cli('CLIENT', 'PAUSE', '300', 'WRITE');
      await login(a, m);
      const { cid } = await startConv(creator, [m]);
      const got = await a.next((c) => c.cmd === 'conv' && c.op === 'joined' && c.peerId === m && c.convMessage?.cid === cid, 3000)
        .catch(() => null);
      if (!got) lost++;
      const closed = await a.request({ cmd: 'session', op: 'close', peerId: m });
      assert.equal(closed.op, 'closed', JSON.stringify(closed));
    }
    assert.equal(lost, 0, `members logged in on node 1 missed the INVITED push of a conversation started on node 2 (${lost})`);
  });

  test('frames held behind an answer are bounded: past 256 KiB they all go out at once, the answer first', async () => {
    const [n1] = cluster.nodes;
    const sender = await session(n1, uid('loud'));
    const { cid } = await startConv(sender, [], { transient: true, n: 'presence-window-cut' });
    const x = uid('held');
    const a = await session(n1, x);
    const cut0 = await scrape(n1, 'tern_bus_held_replies_total{end="cut"}');
    const mark = a.mark();
    cluster.redis.cli('CLIENT', 'PAUSE', '4000', 'WRITE'); // the join's presence batch waits
    try {
      const t0 = Date.now();
      const i = a.send({ cmd: 'conv', op: 'add', convMessage: { cid, m: [x] } });
      // the join ran (its answer is held): node 1 counts x in the room
      while ((await sender.request({ cmd: 'conv', op: 'count', convMessage: { cid } })).convMessage.count !== 2) {
        if (Date.now() - t0 > 2000) assert.fail('node 1 never counted the join');
      }
      const body = 'x'.repeat(5000);
      for (let k = 0; k < 60; k++) await sendMsg(sender, cid, `${k} ${body}`); // to the room: to x, held
      const joined = await a.reply(i, 3000);
      assert.equal(joined.op, 'added', JSON.stringify(joined));
      assert.ok(Date.now() - t0 < 3500, 'released by the size bound, before Redis answered');
      for (let k = 0; k < 60; k++) await a.next((c) => c.cmd === 'direct' && c.directMessage?.msg?.startsWith(`${k} `), 3000);
      const got = a.since(mark);
      const at = got.indexOf(joined), first = got.findIndex((c) => c.cmd === 'direct');
      assert.ok(at >= 0 && at < first, 'the answer comes before the pushes held behind it');
    } finally {
      cluster.redis.cli('CLIENT', 'UNPAUSE');
    }
    assert.equal((await scrape(n1, 'tern_bus_held_replies_total{end="cut"}')) - cut0, 1, 'counted as cut');
  });

  test('Redis not answering: a login is answered after a bounded wait, with the local state', async () => {
    const [n1] = cluster.nodes;
    const a = await connect(n1);
    const forced0 = await scrape(n1, 'tern_bus_held_replies_total{end="forced"}');
    const x = uid('paused');
    // CLIENT PAUSE WRITE holds the presence batch's EXEC (and key expiry: no heartbeat lapses)
    cluster.redis.cli('CLIENT', 'PAUSE', '5000', 'WRITE');
    let ms;
    try {
      const t0 = Date.now();
      await login(a, x);
      ms = Date.now() - t0;
      // answered from this node's own state meanwhile
      assert.deepEqual(await online(a, [x]), [x]);
    } finally {
      cluster.redis.cli('CLIENT', 'UNPAUSE');
    }
    assert.ok(ms >= 900, `the answer waited for the bus (${ms} ms)`);
    assert.ok(ms < 3500, `but not past the bound (${ms} ms; BUS_WAIT_MAX_MS 1000 + the 1 s tick)`);
    assert.equal((await scrape(n1, 'tern_bus_held_replies_total{end="forced"}')) - forced0, 1, 'counted as forced');
  });

  test('Redis down: a login is answered at once with the local state; presence is whole again once it is back', async () => {
    const [n1, n2] = cluster.nodes;
    await cluster.redis.stop({ keepDir: true });
    const a = await connect(n1);
    const x = uid('down');
    try {
      // node 1 notices the loss (its connection drops) before the login
      for (let t0 = Date.now(); (await scrape(n1, 'tern_bus_up')) !== 0;) {
        if (Date.now() - t0 > 5000) assert.fail('node 1 never saw Redis go');
        await new Promise((r) => setTimeout(r, 20));
      }
      const t0 = Date.now();
      await login(a, x);
      const ms = Date.now() - t0;
      assert.ok(ms < 900, `answered without waiting for a bus that is down (${ms} ms)`);
      assert.deepEqual(await online(a, [x]), [x]);
    } finally {
      await cluster.redis.start();
    }
    // back: node 1 rewrites its record and node 2 takes it again (within the backoff)
    const b = await session(n2, uid('after'));
    for (let t0 = Date.now(); !(await online(b, [x])).includes(x);) {
      if (Date.now() - t0 > 15000) assert.fail('node 2 never saw the login made while Redis was down');
      await new Promise((r) => setTimeout(r, 50));
    }
  });
});

// The official JS SDK (leancloud-realtime 5) against two ternd nodes on one Redis bus: what
// an app sees when its users land on different nodes (docs/cluster.md). Until the
// PostgreSQL store lands each node has its own SQLite, so the conversation is imported into
// both with the same id (the SDK looks a conversation up on the node it is connected to).
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { Clients, uid, waitFor } from '../lib/interop-util.mjs';
import { session } from '../lib/proto-client.mjs';
import { startRedis } from '../lib/redis.mjs';
import { freshSdk } from '../lib/sdk.mjs';
import { startNodes, waitNodes } from '../lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function masterPost(s, path, body, type = 'application/json') {
  const res = await fetch(`${s.httpUrl}${path}`, {
    method: 'POST',
    headers: { 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master`, 'Content-Type': type },
    body,
  });
  return { status: res.status, body: await res.json() };
}

// Waits until node s sees each of ids online (the bus has told it).
async function seen(s, ids) {
  const t0 = Date.now();
  for (;;) {
    const r = await masterPost(s, '/1.2/rtm/clients/check-online', JSON.stringify({ client_ids: ids }));
    if (r.body.results?.length === ids.length) return;
    if (Date.now() - t0 > 8000) assert.fail(`node ${s.port} never saw ${ids} online`);
    await sleep(20);
  }
}

describe('the JS SDK across two nodes', () => {
  let redis;
  let nodes;
  let on1;
  let on2;
  before(async () => {
    redis = await startRedis();
    nodes = await startNodes(2, redis);
  });
  afterEach(async () => {
    await on1?.closeAll();
    await on2?.closeAll();
  });
  after(async () => {
    await Promise.all((nodes || []).map((s) => s.stop()));
    if (redis) await redis.stop();
  });

  test('Tom on node 1 and Jerry on node 2 chat; ping sees across nodes', async () => {
    const [n1, n2] = nodes;
    on1 = new Clients(n1);
    on2 = new Clients(n2);
    const tomId = uid('tom'), jerryId = uid('jerry');
    const cid = [...Array(24)].map(() => '0123456789abcdef'[Math.floor(Math.random() * 16)]).join('');
    for (const s of nodes) {
      const rec = JSON.stringify({ type: 'conversation', objectId: cid, name: 'across', m: [tomId, jerryId], c: tomId });
      const r = await masterPost(s, '/1.2/import/records', rec, 'application/x-ndjson');
      assert.equal(r.body.applied, 1, JSON.stringify(r.body));
    }
    const tom = await on1.login(tomId);
    const jerry = await on2.login(jerryId);
    await seen(n1, [jerryId]);
    await seen(n2, [tomId]);
    assert.deepEqual(await jerry.ping([tomId, uid('nobody')]), [tomId]);
    const got = waitFor(jerry, 'message');
    const conv = await tom.getConversation(cid);
    await conv.send(new tom.sdk.TextMessage('hello from node 1'));
    const [msg, c] = await got;
    assert.equal(msg.text, 'hello from node 1');
    assert.equal(msg.from, tomId);
    assert.equal(c.id, cid);
    const back = waitFor(tom, 'message');
    const jc = await jerry.getConversation(cid);
    await jc.send(new jerry.sdk.TextMessage('and back from node 2'));
    const [reply] = await back;
    assert.equal(reply.text, 'and back from node 2');
  });

  test('the same tag on node 2 makes the SDK on node 1 report a conflict (4111)', async () => {
    const [n1, n2] = nodes;
    on1 = new Clients(n1);
    on2 = new Clients(n2);
    const id = uid('phone');
    const phone1 = await on1.login(id, { clientOptions: { tag: 'Mobile' } });
    await seen(n2, [id]);
    const conflict = waitFor(phone1, 'conflict');
    await on2.login(id, { clientOptions: { tag: 'Mobile' } });
    const [payload] = await conflict; // the SDK emits 'conflict' only for session/closed 4111
    assert.equal(payload.reason, 'SESSION_CONFLICT');
  });
});

// The last node of a cluster stopping has nowhere to send its clients: no goaway. The SDK
// answers goaway by asking the router again, and a router that does not answer (no node
// left) is a failure its goaway handler does not catch — an unhandled rejection in the app,
// which ends a Node.js app (docs/protocol-map.md, goaway). A plain close it retries quietly.
describe('the last node of a cluster stopping', () => {
  let redis;
  let nodes;
  before(async () => {
    redis = await startRedis();
    nodes = await startNodes(1, redis);
  });
  after(async () => {
    await Promise.all((nodes || []).map((s) => s.stop()));
    if (redis) await redis.stop();
  });

  test('sends no goaway: its clients are closed (1001) and the SDK in router mode reconnects quietly', async () => {
    const [n] = nodes;
    await waitNodes(n, 1, 5000);
    const raw = await session(n, uid('raw'));
    const sdk = freshSdk(5);
    const rt = new sdk.Realtime({ appId: n.appId, appKey: n.appKey, server: n.httpUrl }); // router mode
    const client = await rt.createIMClient(uid('app'));
    const unhandled = [];
    const onUnhandled = (e) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const disconnected = waitFor(rt, 'disconnect', () => true, 10000);
      await n.stop();
      const info = await raw.closed;
      assert.equal(info.code, 1001, 'closed as the server goes away');
      assert.ok(!raw.received.some((x) => x.cmd === 'goaway'), 'no goaway from the last node');
      await disconnected;
      await sleep(2500); // the SDK's first reconnect attempts, to a router that is gone
      assert.deepEqual(unhandled.map((e) => String(e?.message ?? e)), [], 'no unhandled rejection in the app');
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await client.close().catch(() => {});
      rt._close?.();
    }
  });
});

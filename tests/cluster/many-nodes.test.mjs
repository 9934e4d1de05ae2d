// Ten nodes (issue #14): a client may be logged in on more nodes than a fan-out once looked
// up (it took the first 8 of a recipient's nodes: on the 9th the message was stored but not
// pushed). One device per node on nodes 2–10, the sender on node 1: every device gets it.
// Hand-built frames (tests/lib/proto-client.mjs); one Redis, each node on its own SQLite
// (a 1:1 conversation needs only its creator's node: docs/cluster.md).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { closeAll, sendMsg, session, startConv, uid } from '../lib/proto-client.mjs';
import { startRedis } from '../lib/redis.mjs';
import { startNodes } from '../lib/server.mjs';

describe('cluster: ten nodes', () => {
  let redis, nodes;
  before(async () => {
    redis = await startRedis();
    nodes = await startNodes(10, redis);
  });
  after(async () => {
    for (const s of nodes || []) await closeAll(s);
    await Promise.all((nodes || []).map((s) => s.stop()));
    if (redis) await redis.stop();
  });

  test('a client on nine other nodes gets a message on every one of them', async () => {
    const x = uid('everywhere'), y = uid('sender');
    const devices = [];
    for (const s of nodes.slice(1)) devices.push(await session(s, x));
    const sender = await session(nodes[0], y);
    const conv = await startConv(sender, [x]);
    await sendMsg(sender, conv.cid, 'to nine nodes');
    for (const [i, d] of devices.entries()) {
      const got = await d.next((c) => c.cmd === 'direct' && c.directMessage.msg === 'to nine nodes', 10000)
        .catch(() => assert.fail(`the device on node ${i + 2} never got it`));
      assert.equal(got.peerId, x);
    }
  });
});

// A conversation command on one node sees a change another node acked, even before the
// broadcast that invalidates its cached copy arrives (im_conv.c need_conv; docs/cluster.md,
// "The conversation cache across nodes"). The broadcast is held back deterministically:
// Redis is paused for writes (CLIENT PAUSE WRITE holds the PUBLISH) while the owner on node
// 1 makes a member a Manager; that member, on node 2, then removes someone.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { useNodes } from '../lib/cluster-mode.mjs';
import { session, startConv, sendMsg, uid } from '../lib/proto-client.mjs';

describe('cluster: conversation commands read a fresh copy', () => {
  after(() => {
    try { cluster.redis?.cli('CLIENT', 'UNPAUSE'); } catch { /* already stopped */ }
  });
  const cluster = useNodes(2, { pg: true, env: { TERN_MEMBER_ROLES: '1' } });

  test('a member made Manager on node 1 may remove others on node 2 before node 2 hears of the change', async () => {
    const [n1, n2] = cluster.nodes;
    const a = uid('own'), b = uid('mgr'), c = uid('plain');
    const A = await session(n1, a);
    const B = await session(n2, b);
    const { cid } = await startConv(A, [b, c]);
    await sendMsg(B, cid, 'node 2 caches the conversation');
    const before = await B.request({ cmd: 'conv', op: 'remove', convMessage: { cid, m: [c] } });
    assert.equal(before.cmd, 'error', 'a plain member cannot remove (else this test proves nothing)');
    assert.equal(before.errorMessage?.code ?? before.code, 4320, JSON.stringify(before));

    cluster.redis.cli('CLIENT', 'PAUSE', '1500', 'WRITE'); // node 1's 'C' broadcast waits
    try {
      const up = await A.request({ cmd: 'conv', op: 'member_info_update', convMessage: { cid, targetClientId: b, info: { pid: b, role: 'Manager' } } });
      assert.equal(up.op, 'member_info_updated', JSON.stringify(up));
      const r = await B.request({ cmd: 'conv', op: 'remove', convMessage: { cid, m: [c] } });
      assert.equal(r.op, 'removed', `node 2 judged by its copy from before the change: ${JSON.stringify(r)}`);
    } finally {
      cluster.redis.cli('CLIENT', 'UNPAUSE');
    }
  });
});

// Receipts across nodes (docs/cluster.md, "Receipts"): an ack looks up the receipts it owes
// (a read of the store) only in a conversation some message of which asked for them. A node
// that cached a conversation before its first such message learns of it from the sending
// node's conversation-changed broadcast, which leaves before the message's delivery: the
// recipient's ack on that node then looks, and the sender gets its receipt. Every such send
// is told until one is stored, so a first one that failed leaves none untold.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { useNodes } from '../lib/cluster-mode.mjs';
import { storeFail } from '../lib/issue4-util.mjs';
import { scrape, value } from '../lib/metrics.mjs';
import { sendMsg, session, startConv, uid } from '../lib/proto-client.mjs';

/** alice on n1 and bob on n2 in a new 1:1 conversation; ackUpTo: alice sends, bob acks
 * from fromts up to it, and returns once bob's node has handled the ack. */
async function pair(n1, n2) {
  const [a, b] = [uid('alice'), uid('bob')];
  const alice = await session(n1, a);
  const bob = await session(n2, b);
  const { cid } = await startConv(alice, [b]);
  const ackUpTo = async (fromts, text, fields) => {
    const m = await sendMsg(alice, cid, text, fields);
    await bob.next((p) => p.cmd === 'direct' && p.directMessage.id === m.uid);
    bob.send({ cmd: 'ack', i: null, ackMessage: { cid, fromts, tots: m.t } });
    const marker = await sendMsg(bob, cid, 'marker'); // bob's node handles it after his ack
    await alice.next((p) => p.cmd === 'direct' && p.directMessage.id === marker.uid);
    return m;
  };
  return { b, alice, cid, ackUpTo };
}

describe('cluster: receipts', () => {
  const cluster = useNodes(2, { pg: true, env: { TERN_DEBUG_FAULTS: '1' } });

  test('the first message to ask for receipts, sent on node 1, is receipted after an ack on node 2 that had cached the conversation', async () => {
    const [n1, n2] = cluster.nodes;
    const { b, alice, ackUpTo } = await pair(n1, n2);
    const reads = async () => value(await scrape(n2), 'tern_receipt_reads_total');
    const mark = alice.mark();
    for (let i = 0; i < 3; i++) await ackUpTo(1, `plain ${i}`);
    assert.equal(await reads(), 0, 'no message asked for receipts: node 2 read nothing for the acks');
    const wanted = await ackUpTo(1, 'receipt please', { r: true });
    const rcp = await alice.next((p) => p.cmd === 'rcp' && p.rcpMessage.id === wanted.uid);
    assert.equal(rcp.rcpMessage.from, b);
    assert.equal(await reads(), 1);
    assert.deepEqual(alice.since(mark).filter((p) => p.cmd === 'rcp').map((p) => p.rcpMessage.id), [wanted.uid]);
  });

  test('the first message to ask fails to be stored on node 1: the next one to ask is still told, and receipted on node 2', async () => {
    const [n1, n2] = cluster.nodes;
    const { b, alice, cid, ackUpTo } = await pair(n1, n2);
    await ackUpTo(1, 'plain'); // node 2 caches the conversation
    assert.equal((await storeFail(n1, true)).status, 200);
    try {
      const r = await alice.request({ cmd: 'direct', directMessage: { cid, msg: 'lost', r: true } });
      assert.equal(r.cmd, 'error', `the send fails while the store does: ${JSON.stringify(r)}`);
    } finally {
      assert.equal((await storeFail(n1, false)).status, 200);
    }
    const wanted = await ackUpTo(1, 'receipt please', { r: true });
    const rcp = await alice.next((p) => p.cmd === 'rcp' && p.rcpMessage.id === wanted.uid);
    assert.equal(rcp.rcpMessage.from, b);
  });
});

// A conversation command on one node sees a change another node acked, even before the
// broadcast that invalidates its cached copy arrives (im_conv.c need_conv; docs/cluster.md,
// "The conversation cache across nodes"). The broadcast is held back deterministically:
// Redis is paused for writes (CLIENT PAUSE WRITE holds the PUBLISH) while the owner on node
// 1 makes a member a Manager; that member, on node 2, then removes someone.
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { useNodes } from '../lib/cluster-mode.mjs';
import { assertError, loopFree, session, startConv, sendMsg, uid } from '../lib/proto-client.mjs';
import { lockRows, lockTable } from '../lib/pg.mjs';

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

// The same fresh read made off the worker's loop (im_prefetch.c): the command's conversation
// is marked stale and read by the store's read threads, the connection paused meanwhile, as
// a send's conversation the cache lacks is. With the conversation table locked, another
// client of the node's one worker is answered meanwhile; before, need_conv's read held the
// worker until the lock went.
describe('cluster: a conversation command reads its conversation afresh off the loop', () => {
  const cluster = useNodes(1, { pg: true, env: { TERN_WORKERS: '1' } });

  test('with the conversation table locked, query_shutup waits and another client of the worker is answered', async () => {
    const [n1] = cluster.nodes;
    const A = await session(n1, uid('own'));
    const O = await session(n1, uid('other'));
    const { cid } = await startConv(A, [uid('m')]); // cached on the node
    const locker = await lockTable(cluster.db, 'conv');
    try {
      let answered = false;
      const q = A.request({ cmd: 'conv', op: 'query_shutup', convMessage: { cid } }, 20000).then((r) => { answered = true; return r; });
      await loopFree(O, "another client's conversation command read it");
      assert.equal(answered, false, 'the command waits for its fresh read (the table is locked)');
      locker.commit();
      const r = await q;
      assert.notEqual(r.cmd, 'error', JSON.stringify(r));
    } finally {
      await locker.close();
    }
  });
});

// In a cluster every conversation command reloads its conversation (need_conv), and the
// reload drops the cached document: the next update reads it from the store, on the loop or
// off it (im_prefetch_cmd). The node's own updates still in the writer are not in what it
// reads, so a merge on it lost them: an Increment counted from the stored value, not the
// value this node had already queued. A reload keeps the document while this node's writes
// of it are pending (and drops it once they are stored). The writes are held here by a lock
// on the conversation's row (its reads are not).
describe("cluster: an update merges on this node's own pending updates of the document", () => {
  const cluster = useNodes(1, { pg: true, env: { TERN_WORKERS: '1' } });

  test('5 pipelined Increments while the first write waits on a locked row: each counts the ones before; the stored count is 5', async () => {
    const [n1] = cluster.nodes;
    const A = await session(n1, uid('inc'));
    const { cid } = await startConv(A, [uid('m')]);
    const N = 5;
    const locker = await lockRows(cluster.db, 'conv', `cid = '${cid}'`);
    const is = [];
    try {
      for (let k = 0; k < N; k++) is.push(A.send({ cmd: 'conv', op: 'update', convMessage: { cid, attr: { data: JSON.stringify({ 'attr.count': { __op: 'Increment', amount: 1 } }) } } }));
      await A.echo(); // every update ran (and queued its write) before the lock goes
      locker.commit();
      for (let k = 0; k < N; k++) {
        const r = await A.reply(is[k], 20000);
        assert.equal(r.op, 'updated', JSON.stringify(r));
        assert.deepEqual(JSON.parse(r.convMessage.attrModified.data), { attr: { count: k + 1 } }, `update ${k + 1}`);
      }
    } finally {
      await locker.close();
    }
    const q = await A.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } });
    const [row] = JSON.parse(q.convMessage.results.data);
    assert.equal(row.attr?.count, N, JSON.stringify(row));
  });
});

// The same for the members and the sets (blacklist, shut-ups, roles): this node applies its
// own changes of them to its cache at once and the writer stores them later, so a reload in
// between read rows that lacked them and threw them away from the cache — a member added
// here was not a member here until the next reload (a message sent meanwhile did not reach
// it), a remove pipelined after the add found nobody to remove and the add then stored the
// member anyway, a shut-up was lifted. A reload keeps the members and sets while this node's
// changes of them are pending. The writer is held by a lock on the conversation's row, which
// a member change writes (its count and time); whatever is queued after it waits too.
describe("cluster: a reload keeps this node's own pending member and set changes", () => {
  const cluster = useNodes(1, { pg: true, env: { TERN_WORKERS: '1' } });
  const Q = (cid) => ({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } });
  const stored = async (C, cid) => {
    const q = await C.request(Q(cid));
    assert.equal(q.op, 'results', JSON.stringify(q));
    return JSON.parse(q.convMessage.results.data)[0];
  };

  test('a member added while another command reloads the conversation gets a message sent before the add is stored', async () => {
    const [n1] = cluster.nodes;
    const a = uid('own'), x = uid('new');
    const A = await session(n1, a);
    const X = await session(n1, x);
    const { cid } = await startConv(A, [uid('m')]);
    const locker = await lockRows(cluster.db, 'conv', `cid = '${cid}'`);
    let add, msg;
    try {
      add = A.send({ cmd: 'conv', op: 'add', convMessage: { cid, m: [x] } });
      const count = await A.request({ cmd: 'conv', op: 'count', convMessage: { cid } }); // reloads it
      assert.equal(count.convMessage?.count, 3, `the reload kept the add still in the writer: ${JSON.stringify(count)}`);
      msg = A.send({ cmd: 'direct', directMessage: { cid, msg: 'to all three' } });
      await A.echo();
      locker.commit();
    } finally {
      await locker.close();
    }
    const r = await A.reply(add, 20000);
    assert.equal(r.op, 'added', JSON.stringify(r));
    assert.equal((await A.reply(msg, 20000)).cmd, 'ack');
    const d = await X.nextCmd('direct', undefined, 10000);
    assert.equal(d.directMessage.msg, 'to all three');
    assert.ok((await stored(A, cid)).m.includes(x));
  });

  test('conv/add x then conv/remove x pipelined before the add is stored: x is not a member', async () => {
    const [n1] = cluster.nodes;
    const a = uid('own'), x = uid('gone');
    const A = await session(n1, a);
    const { cid } = await startConv(A, [uid('m')]);
    const locker = await lockRows(cluster.db, 'conv', `cid = '${cid}'`);
    let add, rm;
    try {
      add = A.send({ cmd: 'conv', op: 'add', convMessage: { cid, m: [x] } });
      rm = A.send({ cmd: 'conv', op: 'remove', convMessage: { cid, m: [x] } });
      await A.echo();
      locker.commit();
    } finally {
      await locker.close();
    }
    assert.equal((await A.reply(add, 20000)).op, 'added');
    assert.equal((await A.reply(rm, 20000)).op, 'removed');
    const row = await stored(A, cid);
    assert.ok(!row.m.includes(x), `the remove came last, yet the store has x: ${JSON.stringify(row.m)}`);
    const count = await A.request({ cmd: 'conv', op: 'count', convMessage: { cid } });
    assert.equal(count.convMessage?.count, 2, JSON.stringify(count));
  });

  test('a member shut up while another command reloads the conversation may not send', async () => {
    const [n1] = cluster.nodes;
    const a = uid('own'), x = uid('mute');
    const A = await session(n1, a);
    const X = await session(n1, x);
    const { cid } = await startConv(A, [x]);
    const locker = await lockRows(cluster.db, 'conv', `cid = '${cid}'`);
    let add, mute, send;
    try {
      add = A.send({ cmd: 'conv', op: 'add', convMessage: { cid, m: [uid('y')] } }); // holds the writer
      mute = A.send({ cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [x] } });
      const count = await A.request({ cmd: 'conv', op: 'count', convMessage: { cid } }); // reloads it
      assert.equal(count.convMessage?.count, 3, JSON.stringify(count));
      send = X.send({ cmd: 'direct', directMessage: { cid, msg: 'shut up already' } });
      await X.echo();
      locker.commit();
    } finally {
      await locker.close();
    }
    assert.equal((await A.reply(add, 20000)).op, 'added');
    assert.equal((await A.reply(mute, 20000)).op, 'shutup_added');
    const r = await X.reply(send, 20000);
    assertError(r, send, 4563, 'SILIENCED');
  });
});

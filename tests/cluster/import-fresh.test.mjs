// POST /1.2/import/records overwrites a conversation's members, sets and document in the
// store. Its completion used to replace the node's cached copy with what it read back at
// once — while this node's own change of that conversation (applied to the cache at submit)
// could still be in the writer: the cache took a copy without the change, and once the
// change was stored the store held import + change, the cache the import alone. The import
// now marks the cached copy stale, as another node's change does: its next use reloads it
// from the store, keeping this node's own pending member/set/document changes until they are
// stored (set_writes, doc_writes), then reading the rows again (docs/cluster.md, "The
// conversation cache across nodes").
//
// Deterministic order, on PostgreSQL: the conversation's row is locked (the import, which
// writes it, waits in the writer); then the owner lifts x's shut-up (applied to the cache at
// once, its DELETE queued behind the import) with x's shut-up row locked too. The first lock
// goes: the import commits and is answered while the lift still waits on its row. Then the
// second goes. The store now holds the imported members and document, and x not shut up:
// every command of the node must see exactly that.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { useNodes } from '../lib/cluster-mode.mjs';
import { startServer } from '../lib/server.mjs';
import { closeAll, session, startConv, uid } from '../lib/proto-client.mjs';
import { lockRows, startPg } from '../lib/pg.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// psql as the test sees the store
const q = (pg, db, sql) => pg.sql(sql, db.replace(/^.*\/([^/?]+)(\?.*)?$/, '$1'));

async function lockWaiters(pg, n, what) {
  const t0 = Date.now();
  for (;;) {
    const k = Number(pg.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"));
    if (k >= n) return;
    if (Date.now() - t0 > 10000) assert.fail(`the writer never waited on a lock: ${what}`);
    await sleep(20);
  }
}

async function importWhileOwnChangePending(node, pg, db) {
  const a = uid('own'), x = uid('mute'), m = uid('gone'), y = uid('new');
  const A = await session(node, a);
  const X = await session(node, x);
  const M = await session(node, m);
  const Y = await session(node, y);
  const { cid } = await startConv(A, [x, m]);
  const muted = await A.request({ cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [x] } });
  assert.equal(muted.op, 'shutup_added', JSON.stringify(muted));
  const direct = (msg) => ({ cmd: 'direct', directMessage: { cid, msg } });
  const refused = await X.request(direct('muted'));
  assert.equal(refused.cmd, 'error', `x is shut up: ${JSON.stringify(refused)}`);

  const convLock = await lockRows(db, 'conv', `cid = '${cid}'`);
  const setLock = await lockRows(db, 'conv_set', `conv = (SELECT id FROM conv WHERE cid = '${cid}') AND client = '${x}'`);
  let lift, during;
  try {
    const rec = JSON.stringify({ type: 'conversation', objectId: cid, c: a, m: [a, x, y], name: 'imported', attr: { v: 7 } });
    const imp = fetch(`${node.httpUrl}/1.2/import/records`, {
      method: 'POST',
      headers: { 'X-LC-Id': node.appId, 'X-LC-Key': `${node.masterKey},master`, 'Content-Type': 'application/x-ndjson' },
      body: `${rec}\n`,
    }).then(async (r) => ({ status: r.status, body: await r.json() }));
    await lockWaiters(pg, 1, 'the import on the conversation row');
    lift = A.send({ cmd: 'conv', op: 'remove_shutup', convMessage: { cid, m: [x] } }); // queued behind the import
    await A.echo();
    convLock.commit(); // the import commits; the lift then waits on x's shut-up row
    const r = await imp;
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.applied, 1, JSON.stringify(r.body));
    await lockWaiters(pg, 1, 'the lift on the shut-up row');
    // the lift is still in the writer: this node's own change holds (as for a cluster reload)
    during = X.send(direct('while the lift is in the writer'));
    await X.echo();
    setLock.commit();
  } finally {
    await convLock.close();
    await setLock.close();
  }
  assert.equal((await A.reply(lift, 20000)).op, 'shutup_removed');
  const d = await X.reply(during, 20000); // asserted last: the state after both landed first

  // both stored: what the store holds
  const dbName = db;
  const members = q(pg, dbName, `SELECT client FROM member WHERE conv = (SELECT id FROM conv WHERE cid = '${cid}') ORDER BY client`).split('\n');
  assert.deepEqual(members, [a, x, y].sort(), 'the store has the imported members');
  assert.equal(q(pg, dbName, `SELECT count(*) FROM conv_set WHERE conv = (SELECT id FROM conv WHERE cid = '${cid}')`), '0', 'the store has no shut-up');

  // … and what every command of the node sees
  const after1 = await X.request(direct('after both'));
  assert.equal(after1.cmd, 'ack', `x may send now (the store has no shut-up), the node refused: ${JSON.stringify(after1)}`);
  const got = await Y.next((c) => c.cmd === 'direct' && c.directMessage?.msg === 'after both', 5000);
  assert.equal(got.directMessage.cid, cid);
  const count = await A.request({ cmd: 'conv', op: 'count', convMessage: { cid } });
  assert.equal(count.convMessage?.count, 3, JSON.stringify(count));
  const shut = await A.request({ cmd: 'conv', op: 'query_shutup', convMessage: { cid } });
  assert.deepEqual(shut.convMessage?.m ?? [], [], JSON.stringify(shut));
  const qr = await A.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } });
  const [row] = JSON.parse(qr.convMessage.results.data);
  assert.equal(row.name, 'imported', JSON.stringify(row));
  assert.deepEqual(row.attr, { v: 7 }, JSON.stringify(row));
  assert.deepEqual([...row.m].sort(), [a, x, y].sort(), JSON.stringify(row));
  // m, no longer a member in the store, got nothing sent after both landed
  await A.echo();
  await sleep(300);
  assert.ok(!M.pushes.some((c) => c.cmd === 'direct' && c.directMessage?.msg === 'after both'), 'a member the import removed still got a message');
  // while the lift was in the writer, this node's own change held, as for a cluster reload
  assert.equal(d.cmd, 'ack', `x, whose shut-up this node lifted, was refused while the lift was in the writer: ${JSON.stringify(d)}`);
}

describe('import on one node (PostgreSQL, no bus): the cache follows the store past its own pending change', () => {
  let pg, db, node;
  before(async () => {
    pg = startPg();
    db = pg.createDatabase();
    node = await startServer({ env: { TERN_STORE: db, TERN_WORKERS: '1' } });
  });
  after(async () => {
    if (node) {
      await closeAll(node);
      await node.stop();
    }
    pg?.stop();
  });

  test('import of members and document while a shut-up lift waits in the writer: afterwards the node sees the store', async () => {
    await importWhileOwnChangePending(node, pg, db);
  });
});

describe('import on a cluster node: the cache follows the store past its own pending change', () => {
  const cluster = useNodes(1, { pg: true, env: { TERN_WORKERS: '1' } });

  test('import of members and document while a shut-up lift waits in the writer: afterwards the node sees the store', async () => {
    await importWhileOwnChangePending(cluster.nodes[0], cluster.pg, cluster.db);
  });
});

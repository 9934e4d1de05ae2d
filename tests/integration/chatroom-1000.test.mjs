// Issue #3 point 8 at scale: a chat room with 1,000 online members, each on its own
// WebSocket (the hand-built-frame client of tests/lib/proto-client.mjs). The online count
// (conv count) follows joins, quits and dropped sockets exactly; conv members lists online
// members; every message reaches every member but its sender, once and in order; and no
// membership notification is sent to anyone. Then the same room size under load with
// tern-bench (scenario chatroom, 1,000 clients): every message delivered to the other 999
// members, exactly once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { runBench } from '../lib/bench.mjs';
import { closeAll, connect, login, startConv, uid } from '../lib/proto-client.mjs';

const N = 1000;
const TEXT = (t) => JSON.stringify({ _lctype: -1, _lctext: t });

let server;
// all from 127.0.0.1: 1,000 at once is exactly max_conns_per_ip, and sockets of the first
// test may still be closing when the second opens its 1,000
before(async () => { server = await startServer({ env: { TERN_MAX_CONNS_PER_IP: '0' } }); });
after(async () => {
  await closeAll(server);
  await server.stop();
});

/** Runs fn over items with at most `width` in flight; returns the results in order. */
async function pool(items, width, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) {
      const k = next++;
      out[k] = await fn(items[k], k);
    }
  }));
  return out;
}

async function count(client, cid) {
  const r = await client.request({ cmd: 'conv', op: 'count', convMessage: { cid } });
  assert.equal(r.op, 'result', JSON.stringify(r));
  return r.convMessage.count ?? 0;
}

test(`chat room with ${N} online members: online count, online members, delivery to all`, { timeout: 180000 }, async () => {
  const prefix = uid('room');
  const ids = Array.from({ length: N }, (_, k) => `${prefix}-${k}`);
  const clients = await pool(ids, 50, async (id) => {
    const c = await connect(server);
    await login(c, id);
    return c;
  });
  const [owner] = clients;
  const { cid } = await startConv(owner, [], { transient: true, attr: { data: '{"name":"big room"}' } });
  assert.equal(await count(owner, cid), 1);
  const marks = clients.map((c) => c.mark());
  await pool(clients.slice(1), 50, async (c) => {
    const r = await c.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [c.peer] } }, 20000);
    assert.equal(r.op, 'added', JSON.stringify(r));
    assert.deepEqual(r.convMessage.allowedPids, [c.peer]);
  });
  assert.equal(await count(owner, cid), N, 'online count = every member');
  assert.equal(await count(clients[N - 1], cid), N);
  const mem = await owner.request({ cmd: 'conv', op: 'members', convMessage: { cid, limit: 50 } });
  assert.equal(mem.op, 'members');
  assert.equal(mem.convMessage.m.length, 50, 'conv members: up to the limit');
  assert.equal(new Set(mem.convMessage.m).size, 50);
  const all = new Set(ids);
  assert.ok(mem.convMessage.m.every((x) => all.has(x)), 'only members of the room');

  // three senders, five messages: each reaches the other 999, in order
  const senders = [clients[0], clients[N / 2], clients[N - 1]];
  const sent = [];
  for (let k = 0; k < 5; k += 1) {
    const s = senders[k % senders.length];
    const r = await s.request({ cmd: 'direct', directMessage: { cid, msg: TEXT(`hello ${k}`) } });
    assert.equal(r.cmd, 'ack', JSON.stringify(r));
    sent.push({ id: r.ackMessage.uid, from: s.peer, text: `hello ${k}` });
  }
  await pool(clients, 100, async (c, k) => {
    const last = sent.filter((m) => m.from !== c.peer).pop();
    await c.next((p) => p.cmd === 'direct' && p.directMessage.id === last.id, 30000);
    const got = c.since(marks[k]).filter((p) => p.cmd === 'direct').map((p) => ({ id: p.directMessage.id, from: p.directMessage.fromPeerId, text: JSON.parse(p.directMessage.msg)._lctext }));
    assert.deepEqual(got, sent.filter((m) => m.from !== c.peer), `${c.peer}: every message but its own, once, in order`);
    const notes = c.since(marks[k]).filter((p) => !p.i && p.cmd === 'conv');
    assert.deepEqual(notes, [], `${c.peer}: no membership notifications in a chat room`);
  });

  // 100 quit, 100 drop their sockets: the count follows
  await pool(clients.slice(1, 101), 50, async (c) => {
    const r = await c.request({ cmd: 'conv', op: 'remove', convMessage: { cid, m: [c.peer] } });
    assert.equal(r.op, 'removed');
  });
  assert.equal(await count(owner, cid), N - 100);
  const dropped = clients.slice(101, 201);
  for (const c of dropped) c.ws.terminate();
  await Promise.all(dropped.map((c) => c.closed));
  const end = Date.now() + 10000;
  let n;
  while ((n = await count(owner, cid)) !== N - 200) {
    assert.ok(Date.now() < end, `online count after 100 dropped sockets: ${n}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  // a last message reaches exactly the 799 still in the room
  const r = await owner.request({ cmd: 'direct', directMessage: { cid, msg: TEXT('to those still here') } });
  const still = clients.slice(201);
  await pool(still, 100, async (c) => {
    await c.next((p) => p.cmd === 'direct' && p.directMessage.id === r.ackMessage.uid, 30000);
  });
  const quitters = clients.slice(1, 101);
  await pool(quitters, 100, async (c) => { await c.echo(); });
  assert.ok(quitters.every((c) => !c.received.some((p) => p.cmd === 'direct' && p.directMessage.id === r.ackMessage.uid)), 'those who quit get nothing');
  await closeAll(server);
});

test(`tern-bench chatroom with ${N} clients: every message reaches the other ${N - 1}, none lost or duplicated`, { timeout: 120000 }, async () => {
  const args = ['--url', server.wsUrl, '--app-id', server.appId, '--server-pid', String(server.child.pid), '--json',
    '--scenario', 'chatroom', '--clients', String(N), '--senders', '4', '--rate', '50', '--duration', '2', '--warmup', '0.5', '--drain', '15'];
  const { code, stdout, stderr } = await runBench(args, { timeoutMs: 90000 });
  assert.equal(code, 0, `tern-bench exited ${code}: ${stderr}`);
  const rep = JSON.parse(stdout);
  assert.equal(rep.params.clients, N);
  assert.equal(rep.login_failures, 0);
  assert.equal(rep.disconnects, 0);
  assert.equal(rep.errors, 0);
  assert.equal(rep.lost, 0, stdout);
  assert.equal(rep.duplicated, 0, stdout);
  assert.ok(rep.sent > 0);
  assert.equal(rep.expected, rep.sent * (N - 1), 'each message is for the other members');
  assert.equal(rep.delivered, rep.expected, stdout);
});

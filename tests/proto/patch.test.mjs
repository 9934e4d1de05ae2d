// Issue #3 point 7 with hand-built frames: editing and recalling messages (protocol.md
// §3.18, §6). The sender's patch/modify is answered patch/modified {lastPatchTime}; every
// member's sessions and the sender's other devices get a patch/modify push (not the
// patching session); the stored message is replaced (a recall by {"_lctype":-127}); a
// member that was away gets every newer patch at its next login (lastPatchTime); and the
// error codes 4403, 4404, 4406, 4407.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import {
  assertError, assertHealthy, assertPush, closeAll, connect, login, sendMsg, session, startConv, uid, withServer,
} from '../lib/proto-client.mjs';
import { group, convPushes } from '../lib/issue3-util.mjs';

let server;
before(async () => { server = await startServer(); });
afterEach(() => closeAll(server));
after(async () => { await server.stop(); });

const TEXT = (t) => JSON.stringify({ _lctype: -1, _lctext: t });
const RECALLED = { _lctype: -127 };

async function logs(client, cid) {
  const r = await client.request({ cmd: 'logs', logsMessage: { cid, l: 20 } });
  assert.equal(r.cmd, 'logs', JSON.stringify(r));
  return r.logsMessage.logs ?? [];
}

function patchReq(items, i) {
  return { cmd: 'patch', op: 'modify', ...(i ? { i } : {}), patchMessage: { patches: items } };
}

/** Waits for the next patch/modify push naming mid after mark. */
function nextPatch(client, mid, mark) {
  return client.next((p) => p.cmd === 'patch' && p.op === 'modify'
    && p.patchMessage?.patches?.some((x) => x.mid === mid) && client.received.indexOf(p) >= mark);
}

test('§3.18 edit then recall: reply lastPatchTime, push to members and the sender\'s other device, stored content replaced, catch-up at login', async () => {
  const g = await group(server);
  const { cid, ids } = g;
  const A2 = await session(server, ids.A); // the sender's second device
  const m1 = await sendMsg(g.A, cid, TEXT('first'), { mentionPids: [ids.B] });
  const m2 = await sendMsg(g.A, cid, TEXT('second'));
  for (const cl of [g.B, g.C, A2]) await cl.next((p) => p.cmd === 'direct' && p.directMessage.id === m2.uid);
  const beforeEdit = Date.now() - 1;

  // ---- edit m1
  let mk = Object.fromEntries(['A', 'B', 'C', 'A2'].map((k) => [k, (k === 'A2' ? A2 : g[k]).mark()]));
  const edited = TEXT('first, edited');
  const r = await g.A.request(patchReq([{ cid, mid: m1.uid, timestamp: m1.t, data: edited, mentionPids: [ids.C] }], 90));
  assert.equal(r.cmd, 'patch', JSON.stringify(r));
  assert.equal(r.op, 'modified');
  assert.equal(r.i, 90);
  const editTs = r.patchMessage.lastPatchTime;
  assert.ok(editTs >= m2.t && Math.abs(editTs - Date.now()) < 10000, `lastPatchTime ${editTs}`);
  for (const [k, cl, peer] of [['B', g.B, ids.B], ['C', g.C, ids.C], ['A2', A2, ids.A]]) {
    const p = await nextPatch(cl, m1.uid, mk[k]);
    assertPush(p, peer);
    assert.equal(p.op, 'modify');
    assert.equal(p.patchMessage.patches.length, 1);
    const it = p.patchMessage.patches[0];
    assert.equal(it.cid, cid);
    assert.equal(it.mid, m1.uid);
    assert.equal(it.timestamp, m1.t, 'timestamp = the original send time');
    assert.equal(it.data, edited);
    assert.equal(it.from, ids.A);
    assert.equal(it.patchTimestamp, editTs);
    assert.equal(it.recall, undefined);
    assert.deepEqual(it.mentionPids, [ids.C]);
    assert.deepEqual(convPushes(cl, mk[k], cid).map((x) => `${x.cmd}/${x.op}`), ['patch/modify'], `${k}: one push`);
  }
  assert.deepEqual((await g.A.quiet(mk.A)).filter((p) => !p.i), [], 'the patching session gets only its reply');
  let hist = await logs(g.B, cid);
  assert.deepEqual(hist.map((x) => x.msgId), [m1.uid, m2.uid]);
  assert.equal(hist[0].data, edited);
  assert.equal(hist[0].patchTimestamp, editTs);
  assert.equal(hist[0].timestamp, m1.t);
  assert.deepEqual(hist[0].mentionPids, [ids.C]);
  assert.equal(hist[1].data, TEXT('second'));
  assert.equal(hist[1].patchTimestamp, undefined);

  // ---- recall m2
  mk = Object.fromEntries(['A', 'B', 'C', 'A2'].map((k) => [k, (k === 'A2' ? A2 : g[k]).mark()]));
  const rc = await g.A.request(patchReq([{ cid, mid: m2.uid, timestamp: m2.t, recall: true }], 91));
  assert.equal(rc.op, 'modified');
  const recallTs = rc.patchMessage.lastPatchTime;
  assert.ok(recallTs > editTs, 'patch times increase');
  for (const [k, cl] of [['B', g.B], ['C', g.C], ['A2', A2]]) {
    const p = await nextPatch(cl, m2.uid, mk[k]);
    const it = p.patchMessage.patches[0];
    assert.equal(it.recall, true);
    assert.deepEqual(JSON.parse(it.data), RECALLED, 'a recall carries a RecalledMessage (_lctype -127)');
    assert.equal(it.patchTimestamp, recallTs);
    assert.equal(it.from, ids.A);
    assert.equal(it.timestamp, m2.t);
  }
  hist = await logs(g.C, cid);
  assert.deepEqual(JSON.parse(hist[1].data), RECALLED, 'the stored message is replaced');
  assert.equal(hist[1].patchTimestamp, recallTs);
  assert.equal(hist[0].data, edited);

  // ---- D, offline all along, logs in with a lastPatchTime from before the edit
  const D = await connect(server);
  const mD = D.mark();
  await login(D, ids.D, { lastPatchTime: beforeEdit });
  const catchUp = await D.next((p) => p.cmd === 'patch');
  assertPush(catchUp, ids.D);
  assert.equal(catchUp.op, 'modify');
  const items = Object.fromEntries(catchUp.patchMessage.patches.map((x) => [x.mid, x]));
  assert.deepEqual(Object.keys(items).sort(), [m1.uid, m2.uid].sort(), 'both patched messages, once each');
  assert.equal(items[m1.uid].data, edited);
  assert.equal(items[m1.uid].patchTimestamp, editTs);
  assert.equal(items[m2.uid].recall, true);
  assert.deepEqual(JSON.parse(items[m2.uid].data), RECALLED);
  assert.equal(items[m2.uid].from, ids.A);
  assert.equal(items[m2.uid].timestamp, m2.t);
  assert.equal((await D.quiet(mD)).filter((p) => p.cmd === 'patch').length, 1, 'one catch-up push');
  // a cursor between the two patches: only the recall
  const D2 = await connect(server);
  await login(D2, ids.D, { lastPatchTime: editTs });
  const only = await D2.next((p) => p.cmd === 'patch');
  assert.deepEqual(only.patchMessage.patches.map((x) => x.mid), [m2.uid]);
  // a cursor at the newest patch, or none at all: no patch push
  for (const extra of [{ lastPatchTime: recallTs }, {}]) {
    const D3 = await connect(server);
    await login(D3, ids.D, extra);
    assert.deepEqual((await D3.quiet(0)).filter((p) => p.cmd === 'patch'), [], `no catch-up with ${JSON.stringify(extra)}`);
  }
  // a non-member's login never brings this conversation's patches
  const X = await connect(server);
  await login(X, uid('X'), { lastPatchTime: beforeEdit });
  assert.deepEqual((await X.quiet(0)).filter((p) => p.cmd === 'patch'), []);
});

test('§3.18 several patches in one request; a binary edit', async () => {
  const [a, b] = [uid('A'), uid('B')];
  const A = await session(server, a);
  const B = await session(server, b);
  const { cid } = await startConv(A, [b]);
  const m1 = await sendMsg(A, cid, TEXT('one'));
  const m2 = await sendMsg(A, cid, TEXT('two'));
  const mk = B.mark();
  const r = await A.request(patchReq([
    { cid, mid: m1.uid, timestamp: m1.t, data: TEXT('ONE') },
    { cid, mid: m2.uid, timestamp: m2.t, binaryMsg: Buffer.from([0, 1, 2, 255]) },
  ]));
  assert.equal(r.op, 'modified', JSON.stringify(r));
  await nextPatch(B, m1.uid, mk);
  await nextPatch(B, m2.uid, mk);
  const all = B.since(mk).filter((p) => p.cmd === 'patch').flatMap((p) => p.patchMessage.patches);
  const byMid = Object.fromEntries(all.map((x) => [x.mid, x]));
  assert.equal(byMid[m1.uid].data, TEXT('ONE'));
  assert.deepEqual(Buffer.from(byMid[m2.uid].binaryMsg, 'base64'), Buffer.from([0, 1, 2, 255]));
  assert.equal(byMid[m1.uid].patchTimestamp, r.patchMessage.lastPatchTime);
  const hist = await logs(B, cid);
  assert.equal(hist[1].bin, true);
  assert.deepEqual(Buffer.from(hist[1].data, 'base64'), Buffer.from([0, 1, 2, 255]));
});

const patchErrors = [
  { name: 'editing someone else\'s message', who: 'B', item: (f) => ({ cid: f.cid, mid: f.m.uid, timestamp: f.m.t, data: TEXT('hijack') }), code: 4403, reason: 'MESSAGE_OWNERSHIP_REQUIRED' },
  { name: 'recalling someone else\'s message', who: 'B', item: (f) => ({ cid: f.cid, mid: f.m.uid, timestamp: f.m.t, recall: true }), code: 4403, reason: 'MESSAGE_OWNERSHIP_REQUIRED' },
  { name: 'an unknown message id', item: (f) => ({ cid: f.cid, mid: 'AAAAAAAAAAAAAAAAAAAAAA', timestamp: f.m.t, data: TEXT('x') }), code: 4404, reason: 'MESSAGE_NOT_FOUND' },
  { name: 'a malformed message id', item: (f) => ({ cid: f.cid, mid: 'nope', timestamp: f.m.t, data: TEXT('x') }), code: 4404, reason: 'MESSAGE_NOT_FOUND' },
  { name: 'the message id in another conversation', item: (f) => ({ cid: f.other, mid: f.m.uid, timestamp: f.m.t, data: TEXT('x') }), code: 4404, reason: 'MESSAGE_NOT_FOUND' },
  { name: 'an unknown conversation', item: (f) => ({ cid: '0123456789abcdef01234567', mid: f.m.uid, timestamp: f.m.t, data: TEXT('x') }), code: 4404, reason: 'MESSAGE_NOT_FOUND' },
  { name: 'a batch with one bad item (nothing applied)', items: (f) => [{ cid: f.cid, mid: f.m.uid, timestamp: f.m.t, data: TEXT('half') }, { cid: f.cid, mid: f.mb.uid, timestamp: f.mb.t, data: TEXT('not mine') }], code: 4403, reason: 'MESSAGE_OWNERSHIP_REQUIRED' },
];
for (const c of patchErrors) {
  test(`§3.18 patch of ${c.name} → ${c.code} ${c.reason}; nothing changes, nobody is told`, async () => {
    const [a, b] = [uid('A'), uid('B')];
    const A = await session(server, a);
    const B = await session(server, b);
    const { cid } = await startConv(A, [b]);
    const other = (await startConv(A, [b])).cid;
    const m = await sendMsg(A, cid, TEXT('original'));
    const mb = await sendMsg(B, cid, TEXT('from B'));
    const f = { cid, other, m, mb };
    const who = c.who === 'B' ? B : A;
    const mk = [A.mark(), B.mark()];
    assertError(await who.request(patchReq(c.items ? c.items(f) : [c.item(f)], 44)), 44, c.code, c.reason);
    for (const [cl, k] of [[A, 0], [B, 1]]) {
      assert.deepEqual((await cl.quiet(mk[k])).filter((p) => p.cmd === 'patch'), [], 'no patch push');
    }
    const hist = await logs(A, cid);
    assert.deepEqual(hist.map((x) => x.data), [TEXT('original'), TEXT('from B')]);
    assert.ok(hist.every((x) => x.patchTimestamp === undefined));
    await assertHealthy(server);
  });
}

test('§3.18 edit switched off → 4406 MESSAGE_EDIT_DISABLED, recall still allowed; recall switched off → 4407', async () => {
  await withServer({ TERN_MESSAGE_EDIT: '0' }, async (srv) => {
    const A = await session(srv, uid('A'));
    const { cid } = await startConv(A, [uid('B')]);
    const m = await sendMsg(A, cid, TEXT('x'));
    assertError(await A.request(patchReq([{ cid, mid: m.uid, timestamp: m.t, data: TEXT('y') }], 3)), 3, 4406, 'MESSAGE_EDIT_DISABLED');
    assert.equal((await A.request(patchReq([{ cid, mid: m.uid, timestamp: m.t, recall: true }]))).op, 'modified');
  });
  await withServer({ TERN_MESSAGE_RECALL: '0' }, async (srv) => {
    const A = await session(srv, uid('A'));
    const { cid } = await startConv(A, [uid('B')]);
    const m = await sendMsg(A, cid, TEXT('x'));
    assertError(await A.request(patchReq([{ cid, mid: m.uid, timestamp: m.t, recall: true }], 4)), 4, 4407, 'MESSAGE_RECALL_DISABLED');
    assert.equal((await A.request(patchReq([{ cid, mid: m.uid, timestamp: m.t, data: TEXT('y') }]))).op, 'modified');
  });
});

test('§2.5 patch/modified from a client (Java\'s ack of a patch push) gets no reply', async () => {
  const A = await session(server, uid('A'));
  const mk = A.mark();
  A.send({ cmd: 'patch', op: 'modified', i: null, patchMessage: { lastPatchTime: Date.now() } });
  assert.deepEqual(await A.quiet(mk), []);
});

// Hooks (issue #7 §2, protocol.md §8): a real HTTP hook server in the test receives each
// hook with its documented params and headers; each honoured result field changes what
// clients see; a hung hook times out without stalling other traffic; /metrics reports
// per-hook latency.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startServer } from '../lib/server.mjs';
import { scrape, scrapeUntil, value } from '../lib/metrics.mjs';
import { randomUUID } from 'node:crypto';
import { session as open, connect, login, startConv, sendMsg, assertError, uid, closeAll, withServer } from '../lib/proto-client.mjs';

// A logged-in raw client that knows its own id.
const session = async (srv, id) => Object.assign(await open(srv, id), { peerId: id });

// The hook server: records every call; `answer[hook]` (a function of params) decides.
const calls = [];
let answer = {};
let hookServer;
let hookUrl;
before(async () => {
  hookServer = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', async () => {
      const name = req.url.replace('/1.1/functions/', '');
      const params = JSON.parse(body);
      calls.push({ name, params, headers: req.headers });
      const fn = answer[name];
      const out = fn ? await fn(params) : {};
      if (out === 'hang') return; // never answers
      if (out === 'fail') { res.writeHead(500); res.end('boom'); return; }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ result: out }));
    });
  });
  await new Promise((r) => hookServer.listen(0, '127.0.0.1', r));
  hookUrl = `http://127.0.0.1:${hookServer.address().port}`;
});
after(() => new Promise((r) => hookServer.close(r)));
beforeEach(() => { calls.length = 0; answer = {}; });

const env = (extra = {}) => ({
  TERN_HOOK_URL: hookUrl, TERN_HOOK_KEY: 'hook-secret', TERN_HOOKS: 'all', TERN_HOOK_TIMEOUT: '500', ...extra,
});
const waitCall = async (name, n = 1) => {
  for (let i = 0; i < 200; i++) {
    const got = calls.filter((c) => c.name === name);
    if (got.length >= n) return got;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`hook ${name} not called ${n} time(s): ${calls.map((c) => c.name)}`);
};

test('_messageReceived gets the documented params and headers; drop rejects with 4402 + appCode/appMsg', () =>
  withServer(env(), async (srv) => {
    const a = await session(srv, uid('a'));
    const b = await session(srv, uid('b'));
    const cid = (await startConv(a, [b.peerId])).cid;
    answer._messageReceived = (p) => (p.content === 'bad word' ? { drop: true, code: 1234, detail: 'not here' } : {});
    await sendMsg(a, cid, 'hello');
    const [c] = await waitCall('_messageReceived');
    assert.equal(c.headers['x-lc-id'], srv.appId);
    assert.equal(c.headers['x-lc-key'], srv.appKey);
    assert.equal(c.headers['x-lc-hook-key'], 'hook-secret');
    assert.deepEqual({ ...c.params, timestamp: 0, sourceIP: '' },
      { fromPeer: a.peerId, convId: cid, toPeers: [b.peerId], transient: false, bin: false, content: 'hello',
        receipt: false, timestamp: 0, system: false, groupId: null, sourceIP: '' });
    assert.equal(c.params.sourceIP, '127.0.0.1');
    assert.ok(Math.abs(c.params.timestamp - Date.now()) < 10000);
    assert.equal((await b.next((m) => m.cmd === 'direct')).directMessage.msg, 'hello');
    const r = await a.request({ cmd: 'direct', directMessage: { cid, msg: 'bad word' } });
    assertError(r, r.i, 4402, 'MESSAGE_REJECTED_BY_APP');
    assert.equal(r.errorMessage.appCode, 1234);
    assert.equal(r.errorMessage.appMsg, 'not here');
    await b.quiet(); // nothing delivered
    const logs = await a.request({ cmd: 'logs', logsMessage: { cid } });
    assert.deepEqual(logs.logsMessage.logs.map((l) => l.data), ['hello']);
  }));

test('_messageReceived content and toPeers rewrite what is stored and who receives it; _messageSent follows', () =>
  withServer(env(), async (srv) => {
    const a = await session(srv, uid('a'));
    const b = await session(srv, uid('b'));
    const c = await session(srv, uid('c'));
    const cid = (await startConv(a, [b.peerId, c.peerId])).cid;
    answer._messageReceived = (p) => ({ content: p.content.toUpperCase(), toPeers: [c.peerId] });
    const ack = await sendMsg(a, cid, 'quiet please');
    const got = await c.next((m) => m.cmd === 'direct');
    assert.equal(got.directMessage.msg, 'QUIET PLEASE');
    await b.quiet(); // b was taken off the recipients
    const logs = await a.request({ cmd: 'logs', logsMessage: { cid } });
    assert.deepEqual(logs.logsMessage.logs.map((l) => l.data), ['QUIET PLEASE']);
    const [sent] = await waitCall('_messageSent');
    assert.equal(sent.params.msgId, ack.uid);
    assert.equal(sent.params.content, 'QUIET PLEASE');
    // the message's recipients are the ones the hook named
    assert.deepEqual(sent.params.onlinePeers, [c.peerId]);
    assert.deepEqual(sent.params.offlinePeers, []);
  }));

test('a hung hook times out (fail-open) without stalling other traffic', () =>
  withServer(env(), async (srv) => {
    const a = await session(srv, uid('a'));
    const b = await session(srv, uid('b'));
    const other = await session(srv, uid('other'));
    const cid = (await startConv(a, [b.peerId])).cid;
    answer._messageReceived = () => 'hang';
    const t0 = Date.now();
    const pending = sendMsg(a, cid, 'eventually');
    // meanwhile the server answers everyone else at once
    for (let i = 0; i < 5; i++) {
      const t = Date.now();
      await other.request({ cmd: 'echo' });
      assert.ok(Date.now() - t < 200, 'echo stalled behind a hanging hook');
    }
    await pending;
    assert.ok(Date.now() - t0 >= 450, 'the ack waited for the hook timeout');
    assert.equal((await b.next((m) => m.cmd === 'direct')).directMessage.msg, 'eventually');
  }));

// A resend whose first copy still waits for the app's verdict (issue #14): the connection
// drops meanwhile, the SDK reconnects (r:true) and resends the same dt, and the resend's
// verdict comes first, so the resend is stored first. The first copy, its session gone, is
// checked by the writer like a resend and dropped: stored once, delivered once.
test('_messageReceived holds the first copy, the resend after a reconnect is answered first: stored once', () =>
  withServer(env({ TERN_HOOK_TIMEOUT: '20000' }), async (srv) => {
    const aId = uid('a');
    const a = await session(srv, aId);
    const b = await session(srv, uid('b'));
    const cid = (await startConv(a, [b.peerId])).cid;
    const st = a.openReply.sessionMessage.st;
    let verdict;
    const held = new Promise((r) => { verdict = r; });
    let first = true;
    answer._messageReceived = (p) => {
      if (p.content !== 'held' || !first) return {};
      first = false;
      return held; // the first copy's verdict waits
    };
    const dt = randomUUID();
    a.send({ cmd: 'direct', directMessage: { cid, msg: 'held', dt } });
    await waitCall('_messageReceived');
    a.ws.close(); // no ack will come on this socket
    await waitCall('_clientOffline');
    const c = await connect(srv);
    await login(c, aId, { r: true, st });
    const r = await c.request({ cmd: 'direct', directMessage: { cid, msg: 'held', dt } });
    assert.equal(r.cmd, 'ack', JSON.stringify(r));
    const key = 'tern_messages_in_total{kind="stored"}';
    const in0 = value(await scrape(srv), key);
    verdict({});
    await scrapeUntil(srv, (m) => value(m, key) >= in0 + 1, 'the first copy handed to the writer');
    await sendMsg(c, cid, 'after'); // the first copy was submitted before it: FIFO writer
    assert.equal((await b.next((m) => m.cmd === 'direct' && m.directMessage.msg === 'after')).directMessage.msg, 'after');
    const logs = await c.request({ cmd: 'logs', logsMessage: { cid } });
    const stored = logs.logsMessage.logs.filter((l) => l.data === 'held');
    assert.equal(stored.length, 1, `stored once: ${JSON.stringify(logs.logsMessage.logs)}`);
    assert.equal(stored[0].msgId, r.ackMessage.uid, "the resend's id is the one stored");
    const got = b.received.filter((m) => m.cmd === 'direct' && m.directMessage?.msg === 'held');
    assert.equal(got.length, 1, 'b got it once');
    assert.equal(got[0].directMessage.id, r.ackMessage.uid);
  }));

test('hook_fail_closed: a failing hook rejects the operation', () =>
  withServer(env({ TERN_HOOK_FAIL_CLOSED: '1' }), async (srv) => {
    const a = await session(srv, uid('a'));
    answer._conversationStart = () => 'fail';
    const r = await a.request({ cmd: 'conv', op: 'start', convMessage: { m: [uid('b')] } });
    assertError(r, r.i, 4305, 'CONVERSATION_REJECTED_BY_APP');
  }));

test('_conversationStart may reject (4305 + appCode/appMsg); _conversationStarted reports the new id', () =>
  withServer(env(), async (srv) => {
    const a = await session(srv, uid('a'));
    answer._conversationStart = (p) => (p.attr.name === 'forbidden' ? { reject: true, code: 7, detail: 'pick another name' } : {});
    const r = await a.request({ cmd: 'conv', op: 'start', convMessage: { m: [uid('b')], attr: { data: '{"name":"forbidden"}' } } });
    assertError(r, r.i, 4305, 'CONVERSATION_REJECTED_BY_APP');
    assert.equal(r.errorMessage.appCode, 7);
    assert.equal(r.errorMessage.appMsg, 'pick another name');
    const b = uid('b');
    const ok = await startConv(a, [b], { attr: { data: '{"name":"fine","x":1}' } });
    const starts = await waitCall('_conversationStart', 2);
    assert.deepEqual(starts[1].params, { initBy: a.peerId, members: [a.peerId, b].sort(), attr: { name: 'fine', x: 1 } });
    const [started] = await waitCall('_conversationStarted');
    assert.deepEqual(started.params, { convId: ok.cid });
  }));

test('_conversationAdd / _conversationRemove may reject; _conversationAdded / _conversationRemoved follow', () =>
  withServer(env(), async (srv) => {
    const a = await session(srv, uid('a'));
    const b = uid('b');
    const cid = (await startConv(a, [b])).cid;
    const spam = uid('spam');
    const friend = uid('friend');
    answer._conversationAdd = (p) => (p.members.includes(spam) ? { reject: true } : {});
    answer._conversationRemove = () => ({ reject: true, code: 9, detail: 'keep them' });
    const r1 = await a.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [spam] } });
    assertError(r1, r1.i, 4305, 'CONVERSATION_REJECTED_BY_APP');
    const r2 = await a.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [friend] } });
    assert.equal(r2.op, 'added');
    assert.deepEqual(r2.convMessage.allowedPids, [friend]);
    const [added] = await waitCall('_conversationAdded');
    assert.deepEqual(added.params, { initBy: a.peerId, convId: cid, members: [friend] });
    const adds = await waitCall('_conversationAdd', 2);
    assert.deepEqual(adds[1].params, { initBy: a.peerId, members: [friend], convId: cid });
    const r3 = await a.request({ cmd: 'conv', op: 'remove', convMessage: { cid, m: [b] } });
    assertError(r3, r3.i, 4305, 'CONVERSATION_REJECTED_BY_APP');
    assert.equal(r3.errorMessage.appCode, 9);
    // quitting yourself is not a kick: no _conversationRemove, but _conversationRemoved
    const f = await session(srv, friend);
    const before = calls.filter((c) => c.name === '_conversationRemove').length;
    const r4 = await f.request({ cmd: 'conv', op: 'remove', convMessage: { cid, m: [friend] } });
    assert.equal(r4.op, 'removed');
    const [removed] = await waitCall('_conversationRemoved');
    assert.deepEqual(removed.params, { initBy: friend, convId: cid, members: [friend] });
    assert.equal(calls.filter((c) => c.name === '_conversationRemove').length, before);
  }));

test('_conversationUpdate may reject or rewrite attr (members see the rewrite) and mute', () =>
  withServer(env(), async (srv) => {
    const a = await session(srv, uid('a'));
    const b = await session(srv, uid('b'));
    const cid = (await startConv(a, [b.peerId], { attr: { data: '{"name":"n0"}' } })).cid;
    answer._conversationUpdate = (p) => {
      if (p.attr && p.attr.name === 'rude') return { reject: true, code: 3, detail: 'no' };
      if (p.attr) return { attr: { name: `${p.attr.name}!` } };
      if ('mute' in p) return { mute: false }; // the app refuses to let anyone mute
      return {};
    };
    const r1 = await a.request({ cmd: 'conv', op: 'update', convMessage: { cid, attr: { data: '{"name":"rude"}' } } });
    assertError(r1, r1.i, 4305, 'CONVERSATION_REJECTED_BY_APP');
    const pushed = b.next((m) => m.cmd === 'conv' && m.op === 'updated');
    const r2 = await a.request({ cmd: 'conv', op: 'update', convMessage: { cid, attr: { data: '{"name":"nice"}' } } });
    assert.equal(r2.op, 'updated');
    assert.deepEqual(JSON.parse(r2.convMessage.attrModified.data), { name: 'nice!' });
    assert.deepEqual(JSON.parse((await pushed).convMessage.attr.data), { name: 'nice!' });
    const upd = (await waitCall('_conversationUpdate', 2))[1];
    assert.deepEqual(upd.params, { initBy: a.peerId, convId: cid, attr: { name: 'nice' } });
    const r3 = await a.request({ cmd: 'conv', op: 'mute', convMessage: { cid } });
    assert.equal(r3.op, 'updated');
    const q = await a.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } });
    const [conv] = JSON.parse(q.convMessage.results.data);
    assert.deepEqual(conv.mu, [], 'the hook turned the mute into an unmute');
    assert.equal(conv.name, 'nice!');
  }));

test('_messageUpdate may drop an edit (4405) or rewrite it', () =>
  withServer(env(), async (srv) => {
    const a = await session(srv, uid('a'));
    const b = await session(srv, uid('b'));
    const cid = (await startConv(a, [b.peerId])).cid;
    const ack = await sendMsg(a, cid, 'v1');
    await b.next((m) => m.cmd === 'direct');
    answer._messageUpdate = (p) => (p.content === 'v2' ? { drop: true, code: 5, detail: 'frozen' } : { content: `${p.content} (edited)` });
    const patch = (data) => a.request({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid, mid: ack.uid, timestamp: ack.t, data }] } });
    const r1 = await patch('v2');
    assertError(r1, r1.i, 4405, 'MESSAGE_UPDATE_REJECTED_BY_APP');
    assert.equal(r1.errorMessage.appMsg, 'frozen');
    const pushed = b.next((m) => m.cmd === 'patch');
    const r2 = await patch('v3');
    assert.equal(r2.op, 'modified');
    assert.equal((await pushed).patchMessage.patches[0].data, 'v3 (edited)');
    const [call] = (await waitCall('_messageUpdate', 2)).slice(1);
    assert.equal(call.params.msgId, ack.uid);
    assert.equal(call.params.recall, false);
    assert.deepEqual(call.params.toPeers, [b.peerId]);
  }));

test('_clientOnline and _clientOffline: reconnect flag, close codes 1 (logout) and 2 (connection lost)', () =>
  withServer(env(), async (srv) => {
    const id = uid('c');
    const a = await session(srv, id);
    const [on] = await waitCall('_clientOnline');
    assert.equal(on.params.peerId, id);
    assert.equal(on.params.reconnect, 0);
    assert.equal(on.params.sourceIP, '127.0.0.1');
    await a.request({ cmd: 'session', op: 'close' });
    const [off] = await waitCall('_clientOffline');
    assert.equal(off.params.peerId, id);
    assert.equal(off.params.closeCode, 1);
    const b = await session(srv, id);
    b.ws._socket.destroy(); // dropped without goodbye
    const offs = await waitCall('_clientOffline', 2);
    assert.equal(offs[1].params.closeCode, 2);
    assert.equal(offs[1].params.sourceIP, undefined);
  }));

test('/metrics reports hook calls and latency', () =>
  withServer(env(), async (srv) => {
    await session(srv, uid('m'));
    await waitCall('_clientOnline');
    // barrier, not a sleep: the hook server saw the call, but ternd counts it when the
    // answer is back on its loop; wait for the latency count, then read everything once
    await scrapeUntil(srv, (m) => value(m, 'tern_hook_latency_seconds_count{hook="_clientOnline"}') >= 1,
      'the _clientOnline call counted');
    const text = await (await fetch(`${srv.httpUrl}/metrics`, { headers: { Authorization: `Bearer ${srv.masterKey}` } })).text();
    assert.match(text, /tern_hook_calls_total\{hook="_clientOnline"\} 1/);
    assert.match(text, /tern_hook_latency_seconds_count\{hook="_clientOnline"\} 1/);
    assert.match(text, /tern_clients_online 1/);
  }));

after(() => closeAll());

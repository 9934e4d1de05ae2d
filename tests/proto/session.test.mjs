// Sessions: session open (errors, tokens, anonymous ids, per-socket limit), routing of
// commands to sessions on a shared socket, unsupported commands, session
// query/close/refresh, and the base64 text format end to end.
// protocol.md §1.1, §1.6, §2.5, §3.1–§3.3, §6; interop.md §6–§7.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import {
  CID_RE, assertError, assertHealthy, assertPush, closeAll, connect, login, session, startConv, uid, withServer,
} from '../lib/proto-client.mjs';

let server;
before(async () => { server = await startServer(); });
afterEach(closeAll);
after(async () => { await server.stop(); });

/** Probes until fn() is truthy (for state that settles on another thread), else fails. */
async function eventually(fn, what, timeout = 3000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`not within ${timeout} ms: ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

async function online(client, ids) {
  const r = await client.request({ cmd: 'session', op: 'query', sessionMessage: { sessionPeerIds: ids } });
  assert.equal(r.cmd, 'session');
  assert.equal(r.op, 'query_result');
  return r.sessionMessage?.onlineSessionPeerIds ?? [];
}

// ---------------------------------------------------------------- session open failures

function tamper(st) {
  const k = 20; // inside the MAC, away from the padding bits of the last character
  return st.slice(0, k) + (st[k] === 'A' ? 'B' : 'A') + st.slice(k + 1);
}

const openFailures = [
  { section: '§3.1 4100', name: 'appId not the server\'s', open: () => ({ appId: 'someOtherApp', peerId: uid('a') }), code: 4100, reason: 'APP_NOT_AVAILABLE' },
  { section: '§9.1 4103', name: 'peerId of 65 characters', open: () => ({ peerId: 'x'.repeat(65) }), code: 4103, reason: 'INVALID_LOGIN' },
  { section: '§9.1 4103', name: 'peerId of 1000 characters', open: () => ({ peerId: 'y'.repeat(1000) }), code: 4103, reason: 'INVALID_LOGIN' },
  { section: '§3.1 4112', name: 'r:true with a garbage st', open: () => ({ peerId: uid('r'), sessionMessage: { r: true, st: 'garbage' } }), code: 4112, reason: 'SESSION_TOKEN_EXPIRED' },
  { section: '§3.1 4112', name: 'r:true with an empty-looking st of the right length', open: () => ({ peerId: uid('r'), sessionMessage: { r: true, st: 'A'.repeat(38) } }), code: 4112, reason: 'SESSION_TOKEN_EXPIRED' },
  {
    section: '§3.1 4112', name: 'r:true with another client\'s st',
    open: async () => {
      const other = await session(server, uid('owner'));
      return { peerId: uid('thief'), sessionMessage: { r: true, st: other.openReply.sessionMessage.st } };
    },
    code: 4112, reason: 'SESSION_TOKEN_EXPIRED',
  },
  {
    section: '§3.1 4112', name: 'r:true with a tampered st',
    open: async () => {
      const peer = uid('tamper');
      const first = await session(server, peer);
      return { peerId: peer, sessionMessage: { r: true, st: tamper(first.openReply.sessionMessage.st) } };
    },
    code: 4112, reason: 'SESSION_TOKEN_EXPIRED',
  },
];

for (const c of openFailures) {
  // A refused open comes back as {cmd: error} (docs/protocol-map.md): the JS SDK drops its
  // token and logs in afresh on a 4112 only in that form, and the C# and Java SDKs read
  // only that form as a failed open. (A reconnect conflict, 4111, is session/closed:
  // tests/interop/security.test.mjs, tests/proto/other-sdks.test.mjs.)
  test(`${c.section} session open fails with error ${c.code} ${c.reason}: ${c.name}`, async () => {
    const cl = await connect(server);
    const fields = await c.open();
    const r = await cl.request({ cmd: 'session', op: 'open', appId: server.appId, ...fields, i: 3 });
    assertError(r, 3, c.code, c.reason);
    // nothing was opened: the socket has no session
    assertError(await cl.request({ cmd: 'conv', op: 'query', i: 4 }), 4, 4105, 'SESSION_REQUIRED');
    await assertHealthy(server);
  });
}

// ---------------------------------------------------------------- session open success

test('§3.1 session/opened carries i, peerId, serverTs and sessionMessage {st, stTtl}', async () => {
  const c = await connect(server);
  const peer = uid('shape');
  const before = Date.now();
  const r = await c.request({ cmd: 'session', op: 'open', i: 1, appId: server.appId, peerId: peer,
    sessionMessage: { ua: 'js/5.0.0-rc.8', r: false, deviceId: 'dev-1', configBitmap: 187, lastPatchTime: Date.now() } });
  assert.equal(r.cmd, 'session');
  assert.equal(r.op, 'opened');
  assert.equal(r.i, 1);
  assert.equal(r.peerId, peer);
  assert.ok(r.serverTs >= before - 1000 && r.serverTs <= Date.now() + 1000, `serverTs ${r.serverTs}`);
  assert.equal(typeof r.sessionMessage.st, 'string');
  assert.ok(r.sessionMessage.st.length > 0);
  assert.equal(r.sessionMessage.stTtl, 17280);
  assert.equal(r.sessionMessage.code, undefined);
});

const peerIdOk = [
  { section: '§9.1', name: '64 characters', peerId: 'z'.repeat(64) },
  { section: '§9.1', name: '1 character', peerId: '1' },
  { section: '§9.1', name: 'UTF-8 and punctuation', peerId: 'Tom & Jerry ✓' },
];
for (const c of peerIdOk) {
  test(`${c.section} peerId of ${c.name} is accepted`, async () => {
    const cl = await connect(server);
    const r = await login(cl, c.peerId);
    assert.equal(r.peerId, c.peerId);
    await cl.echo();
  });
}

test('§3.1 r:true with the st from an earlier login opens on a new socket', async () => {
  const peer = uid('reconnect');
  const first = await session(server, peer);
  const st = first.openReply.sessionMessage.st;
  await first.close();
  const c = await connect(server);
  const r = await login(c, peer, { r: true, st });
  assert.equal(r.peerId, peer);
  assert.equal(typeof r.sessionMessage.st, 'string');
  // also while the first socket is still open (a second device)
  const third = await connect(server);
  const r3 = await login(third, peer, { r: true, st: r.sessionMessage.st });
  assert.equal(r3.peerId, peer);
});

test('§3.3 session/refresh returns a new st that logs in with r:true', async () => {
  const peer = uid('refresh');
  const c = await session(server, peer);
  const r = await c.request({ cmd: 'session', op: 'refresh', sessionMessage: { st: c.openReply.sessionMessage.st } });
  assert.equal(r.cmd, 'session');
  assert.equal(r.op, 'refreshed');
  assert.equal(r.sessionMessage.stTtl, 17280);
  const d = await connect(server);
  assert.equal((await login(d, peer, { r: true, st: r.sessionMessage.st })).peerId, peer);
});

test('§1.6 session open without peerId invents an id and returns it', async () => {
  const c = await connect(server);
  const r = await c.request({ cmd: 'session', op: 'open', appId: server.appId, sessionMessage: { ua: 'x' } });
  assert.equal(r.op, 'opened');
  assert.equal(typeof r.peerId, 'string');
  assert.ok(r.peerId.length >= 1 && r.peerId.length <= 64, r.peerId);
  // it is a real session under that id
  const probe = await session(server, uid('probe'));
  assert.deepEqual(await online(probe, [r.peerId]), [r.peerId]);
  const again = await connect(server);
  const r2 = await again.request({ cmd: 'session', op: 'open', appId: server.appId });
  assert.notEqual(r2.peerId, r.peerId, 'each anonymous login gets its own id');
});

test('§1.6 opening the same peerId twice on one socket keeps one session', async () => {
  const peer = uid('twice');
  const c = await session(server, peer);
  const r = await login(c, peer);
  assert.equal(r.peerId, peer);
  await c.request({ cmd: 'session', op: 'close' });
  assertError(await c.request({ cmd: 'conv', op: 'query', i: 50 }), 50, 4105, 'SESSION_REQUIRED');
});

test('§1.6 4113 more than max_sessions_per_conn sessions on one socket (TERN_MAX_SESSIONS_PER_CONN=2)', () =>
  withServer({ TERN_MAX_SESSIONS_PER_CONN: '2' }, async (srv) => {
    const c = await connect(srv);
    const [a, b, x] = [uid('a'), uid('b'), uid('x')];
    await login(c, a);
    await login(c, b);
    const r = await c.request({ cmd: 'session', op: 'open', appId: srv.appId, peerId: x, i: 77 });
    assertError(r, 77, 4113, 'APP_QUOTA_EXCEEDED');
    // the first two still work, the third was not opened
    const q = await c.request({ cmd: 'session', op: 'query', peerId: b, sessionMessage: { sessionPeerIds: [a, b, x] } });
    assert.deepEqual(q.sessionMessage.onlineSessionPeerIds, [a, b]);
    assertError(await c.request({ cmd: 'conv', op: 'query', peerId: x, i: 78 }), 78, 4105, 'SESSION_REQUIRED');
    // re-opening one already open needs no new slot; closing one frees a slot
    assert.equal((await login(c, a)).peerId, a);
    const closed = await c.request({ cmd: 'session', op: 'close', peerId: b });
    assert.equal(closed.op, 'closed');
    assert.equal((await login(c, x)).peerId, x);
    await c.close();
    await assertHealthy(srv);
  }));

// ---------------------------------------------------------------- 4105 session required

const needSession = [
  { section: '§6 4105', name: 'conv start before open', cmd: { cmd: 'conv', op: 'start', convMessage: { m: ['b'] } } },
  { section: '§6 4105', name: 'conv query before open', cmd: { cmd: 'conv', op: 'query' } },
  { section: '§6 4105', name: 'direct before open', cmd: { cmd: 'direct', directMessage: { cid: '0123456789abcdef01234567', msg: 'x' } } },
  { section: '§6 4105', name: 'logs before open', cmd: { cmd: 'logs', logsMessage: { cid: '0123456789abcdef01234567' } } },
  { section: '§6 4105', name: 'session query before open', cmd: { cmd: 'session', op: 'query', sessionMessage: { sessionPeerIds: ['a'] } } },
  { section: '§6 4105', name: 'session close before open', cmd: { cmd: 'session', op: 'close' } },
  { section: '§6 4105', name: 'session refresh before open', cmd: { cmd: 'session', op: 'refresh' } },
  { section: '§1.6 4105', name: 'peerId not opened on this socket', login: 'other', cmd: { cmd: 'conv', op: 'query', peerId: 'not-here' } },
  { section: '§1.6 4105', name: 'peerId opened only on another socket', login: 'other', elsewhere: true, cmd: { cmd: 'conv', op: 'query' } },
];

for (const c of needSession) {
  test(`${c.section} error SESSION_REQUIRED: ${c.name}`, async () => {
    const cl = await connect(server);
    const cmd = { ...c.cmd, i: 9 };
    if (c.login) await login(cl, uid(c.login));
    if (c.elsewhere) {
      const peer = uid('elsewhere');
      await session(server, peer);
      cmd.peerId = peer;
    }
    const mark = cl.mark();
    assertError(await cl.request(cmd), 9, 4105, 'SESSION_REQUIRED');
    assert.deepEqual(await cl.quiet(mark + 1), [], 'exactly one reply');
    assert.equal(cl.isClosed, false, 'the connection stays open');
    await assertHealthy(server);
  });
}

// ---------------------------------------------------------------- unsupported commands → 4114 reply

const unsupported = [
  { section: '§2.5 4114', name: 'cmd room (legacy)', cmd: { cmd: 'room', roomMessage: { roomId: 'r' } }, detail: /room/ },
  { section: '§2.5 4114', name: 'conv op join', cmd: { cmd: 'conv', op: 'join', convMessage: { cid: 'c' } }, detail: /conv\/join/ },
  { section: '§2.5 4114', name: 'conv op invite', cmd: { cmd: 'conv', op: 'invite' }, detail: /conv\/invite/ },
  { section: '§2.5 4114', name: 'conv without op', cmd: { cmd: 'conv' }, detail: /conv/ },
  { section: '§2.5 4114', name: 'session op opened (a reply op)', cmd: { cmd: 'session', op: 'opened' }, detail: /session\/opened/ },
  { section: '§2.5 4114', name: 'cmd presence', cmd: { cmd: 'presence' }, detail: /presence/ },
  { section: '§3.22 4114', name: 'LiveQuery login (service 1)', cmd: { cmd: 'login', service: 1 }, detail: /login/ },
  { section: '§2.2 4114', name: 'cmd value 99 outside the enum', raw: Buffer.from('0863' + '2809', 'hex'), detail: /unsupported/ },
];

for (const c of unsupported) {
  test(`${c.section} unsupported command gets error UNPARSEABLE_RAW_MESSAGE naming it: ${c.name}`, async () => {
    const cl = await session(server, uid('unsup'));
    let r;
    if (c.raw) {
      cl.sendRaw(c.raw);
      r = await cl.reply(9);
    } else {
      r = await cl.request({ ...c.cmd, i: 9 });
    }
    assertError(r, 9, 4114, 'UNPARSEABLE_RAW_MESSAGE');
    assert.match(r.errorMessage.detail ?? '', c.detail);
    await cl.echo();
    assert.equal(cl.isClosed, false);
    await assertHealthy(server);
  });
}

test('§2.5 a command without i gets no reply, even an unsupported one', async () => {
  // echo is the exception: one without i is answered without i (the C# SDK's heartbeat,
  // tests/proto/other-sdks.test.mjs)
  const cl = await session(server, uid('noi'));
  const mark = cl.mark();
  cl.send({ cmd: 'room', i: null });
  cl.send({ cmd: 'conv', op: 'count', i: null, convMessage: { cid: 'nope' } });
  assert.deepEqual(await cl.quiet(mark), []);
});

// ---------------------------------------------------------------- default peer (two sessions, one socket)

test('§1.6 with two sessions on a socket, commands without peerId act as the first opened', async () => {
  const c = await connect(server);
  const [alice, bob] = [uid('alice'), uid('bob')];
  await login(c, alice);
  await login(c, bob);
  const conv = await startConv(c, [bob]); // no peerId: alice creates
  assert.match(conv.cid, CID_RE);
  const joinedA = await c.next((p) => p.op === 'joined' && p.peerId === alice);
  const joinedB = await c.next((p) => p.op === 'joined' && p.peerId === bob);
  assertPush(joinedA, alice);
  assertPush(joinedB, bob);
  assert.equal(joinedA.convMessage.initBy, alice);
  assert.equal(joinedB.convMessage.initBy, alice);
  const q = await c.request({ cmd: 'conv', op: 'query', peerId: bob, convMessage: { where: { data: JSON.stringify({ objectId: conv.cid }) } } });
  assert.equal(q.peerId, bob, 'reply echoes the request peerId');
  const [row] = JSON.parse(q.convMessage.results.data);
  assert.equal(row.c, alice);
  // explicit peerId selects the other session
  const conv2 = await c.request({ cmd: 'conv', op: 'start', peerId: bob, convMessage: { m: [uid('x')] } });
  const q2 = await c.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: conv2.convMessage.cid }) } } });
  assert.equal(JSON.parse(q2.convMessage.results.data)[0].c, bob);
  // once alice closes, bob is the first session
  await c.request({ cmd: 'session', op: 'close', peerId: alice });
  const conv3 = await startConv(c, [uid('y')]);
  const q3 = await c.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: conv3.cid }) } } });
  assert.equal(JSON.parse(q3.convMessage.results.data)[0].c, bob);
});

// ---------------------------------------------------------------- query / close

test('§3.3 session query returns only the online ids, in the order asked', async () => {
  const [a, b, off] = [uid('qa'), uid('qb'), uid('off')];
  const ca = await session(server, a);
  await session(server, b);
  assert.deepEqual(await online(ca, [b, off, a]), [b, a]);
  assert.deepEqual(await online(ca, [off]), []);
  const r = await ca.request({ cmd: 'session', op: 'query' });
  assert.equal(r.op, 'query_result', 'an empty query still answers');
});

test('§3.2 session close answers session/closed without code and ends only that session', async () => {
  const [a, b] = [uid('ca'), uid('cb')];
  const c = await connect(server);
  await login(c, a);
  await login(c, b);
  const watcher = await session(server, uid('watch'));
  const r = await c.request({ cmd: 'session', op: 'close', peerId: a, i: 21 });
  assert.equal(r.cmd, 'session');
  assert.equal(r.op, 'closed');
  assert.equal(r.i, 21);
  assert.equal(r.sessionMessage?.code, undefined);
  assert.deepEqual(await online(watcher, [a, b]), [b]);
  assertError(await c.request({ cmd: 'conv', op: 'query', peerId: a, i: 22 }), 22, 4105, 'SESSION_REQUIRED');
  await c.echo();
});

test('§1.6 a dropped socket takes its sessions offline', async () => {
  const peer = uid('drop');
  const c = await session(server, peer);
  const watcher = await session(server, uid('watch'));
  assert.deepEqual(await online(watcher, [peer]), [peer]);
  c.ws.terminate();
  await c.closed;
  await eventually(async () => (await online(watcher, [peer])).length === 0, `${peer} offline after its socket dropped`);
});

// ---------------------------------------------------------------- base64 text format end to end

for (const sub of ['lc.proto2base64.3', 'lc.proto2base64.1']) {
  test(`§1.1 ${sub}: replies and pushes are base64 text frames`, () =>
    withServer({}, async (srv) => {
      const [a, b] = [uid('b64a'), uid('b64b')];
      const ca = await session(srv, a, { subprotocol: sub });
      const cb = await session(srv, b, { subprotocol: sub });
      const conv = await startConv(ca, [b]);
      assert.match(conv.cid, CID_RE);
      const joined = await cb.nextCmd('conv', 'joined');
      assertPush(joined, b);
      const ack = await ca.request({ cmd: 'direct', directMessage: { cid: conv.cid, msg: 'over base64' } });
      assert.equal(ack.cmd, 'ack');
      const d = await cb.nextCmd('direct');
      assert.equal(d.directMessage.msg, 'over base64');
      for (const cl of [ca, cb]) assert.ok(cl.frameKinds.every((k) => k === 'text'), `${sub} frames: ${cl.frameKinds}`);
      await assertHealthy(srv);
    }));
}

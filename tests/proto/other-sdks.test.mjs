// The protocol details that the official SDKs other than JS rely on (issue #12 point 7),
// spoken with hand-built frames exactly as each SDK builds them. Every test names the SDK
// and the source file its behaviour was read from (repositories leancloud/swift-sdk 17.11,
// objc-sdk 14.0, java-unified-sdk 8.2.28 with Java-WebSocket 1.4.1, csharp-sdk 2.4.1);
// docs/migrate.md has the per-SDK guide these details come from.
//
// Server behaviours a test here added (each failed before its change):
//   - an echo without `i` (the C# heartbeat) is answered by an echo without `i`;
//   - a refused session open is {cmd: error} (C#, Java), except a re-login conflict (4111);
//   - a session open without `i` (Java's re-login after a reconnect) is answered too;
//   - "//v1/route" and "//1.1/…" (a server URL configured with a trailing slash, as the
//     C# and JS 5 SDKs join it) reach the same routes as "/v1/route" and "/1.1/…".
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import {
  assertError, assertPush, closeAll, connect, login, sendMsg, session, startConv, uid,
} from '../lib/proto-client.mjs';
import { OP, httpRequest, rawWebSocket } from '../lib/proto-raw.mjs';

const PUBLIC_URL = 'wss://im.example.com/';
let server;
before(async () => {
  server = await startServer({
    env: { TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0', TERN_PUBLIC_URL: PUBLIC_URL },
  });
});
after(async () => { await closeAll(server); await server.stop(); });

const TEXT = (t) => JSON.stringify({ _lctype: -1, _lctext: t });
const MASTER = () => ({ 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master`, 'Content-Type': 'application/json' });

/** Waits until the wall clock is past t (ms or ISO): a member's positions start at the
 * millisecond it joined, so a message in that same millisecond would not count as new. */
async function pastMs(t) {
  const ms = typeof t === 'string' ? Date.parse(t) : t;
  while (Date.now() <= ms) await new Promise((r) => setImmediate(r));
}

/** Every frame a client received is a binary frame: Swift and Objective-C never decode a
 * text frame (RTMConnection.swift websocketDidReceiveMessage(text:) logs "should never
 * happen"; LCRTMConnection.m only parses LCRTMWebSocketMessageTypeData). */
function assertAllBinary(c, what) {
  assert.ok(c.frameKinds.length > 0, `${what}: frames arrived`);
  assert.deepEqual([...new Set(c.frameKinds)], ['binary'], `${what}: only binary frames`);
}

// ---------------------------------------------------------------- transport

describe('transport: handshake, ping/pong, heartbeats', { concurrency: true }, () => {
  test('Java (Java-WebSocket 1.4.1 Draft_6455, knownProtocols = [lc.protobuf2.3]) and Swift (WebSocket.swift, permessage-deflate offered): the 101 names the offered subprotocol and no extension; server frames are binary with RSV bits clear', async () => {
    // Java-WebSocket overwrites the header with its known protocols, so the Java SDK offers
    // exactly lc.protobuf2.3 whatever setUnreadNotificationEnabled says, and refuses a 101
    // without it. Swift offers permessage-deflate and drops the socket on a frame with an
    // RSV bit set unless compression was agreed.
    for (const headers of [{}, { 'Sec-WebSocket-Extensions': 'permessage-deflate; client_max_window_bits; server_max_window_bits=15' }]) {
      const raw = await rawWebSocket(server, { subprotocol: 'lc.protobuf2.3', headers });
      try {
        assert.equal(raw.headers['sec-websocket-protocol'], 'lc.protobuf2.3');
        assert.equal(raw.headers['sec-websocket-extensions'], undefined, 'no compression is agreed');
        const peer = uid('java');
        raw.command({ cmd: 'session', op: 'open', i: 1, appId: server.appId, peerId: peer, sessionMessage: { ua: 'LeanCloud-Java-SDK/8.2.28' } });
        const f = await raw.nextFrame();
        assert.equal(f.opcode, OP.BINARY);
        assert.equal(f.rsv, 0);
        assert.equal(f.fin, true);
        assert.equal(f.masked, false);
      } finally {
        raw.destroy();
      }
    }
  });

  test('Swift/ObjC (RTMConnection.swift Timer.check(pingPong:), LCRTMConnection.m checkPingPong) and Java (HeartBeatPolicy.java, AbstractWebSocket connection-lost timer): an empty-payload ping is answered by an empty pong, before and after login', async () => {
    const raw = await rawWebSocket(server);
    try {
      raw.send(OP.PING, Buffer.alloc(0));
      let f = await raw.nextFrame();
      assert.equal(f.opcode, OP.PONG);
      assert.equal(f.payload.length, 0);
      raw.command({ cmd: 'session', op: 'open', i: 1, appId: server.appId, peerId: uid('swift'), sessionMessage: { configBitmap: 187 } });
      const opened = await raw.nextCommand();
      assert.equal(opened.op, 'opened');
      raw.send(OP.PING, Buffer.alloc(0));
      f = await raw.nextFrame();
      assert.equal(f.opcode, OP.PONG);
      assert.equal(f.payload.length, 0);
    } finally {
      raw.destroy();
    }
  });

  test('C#/.NET (LCWebSocketClient.cs sets ClientWebSocket.KeepAliveInterval): an unsolicited pong frame is ignored — no reply, no close', async () => {
    const raw = await rawWebSocket(server);
    try {
      raw.send(OP.PONG, Buffer.from('keepalive'));
      raw.send(OP.PONG, Buffer.alloc(0));
      raw.command({ cmd: 'echo', i: 7 });
      assert.deepEqual(await raw.nextCommand(), { cmd: 'echo', i: 7 }, 'the next frame is the echo reply');
    } finally {
      raw.destroy();
    }
  });

  test('C# heartbeat (LCRTMHeartBeat.cs SendPing: {cmd: echo, appId, peerId: appId}, no i) is answered by an echo without i, which ConnectedState.OnMessage takes as the pong', async () => {
    const c = await connect(server);
    const heartbeat = { cmd: 'echo', i: null, appId: server.appId, peerId: server.appId };
    c.send(heartbeat);
    let pong = await c.next((p) => p.cmd === 'echo');
    assert.equal(pong.i, undefined, 'no i: C# routes any command with i to its request table');
    // after login, still answered (the C# connection id, not a client id, is the peerId)
    const peer = uid('csharp');
    await login(c, peer);
    c.send(heartbeat);
    pong = await c.next((p) => p.cmd === 'echo');
    assert.equal(pong.i, undefined);
    // and an echo with an i (JS) keeps its i-carrying reply
    assert.deepEqual(await c.request({ cmd: 'echo', i: 99 }), { cmd: 'echo', i: 99 });
    assertAllBinary(c, 'C# heartbeat');
  });

  test('Java requestId wraps from 65535 to -65536 (WindTalker.getNextIMRequestId): a negative i is answered with the same i', async () => {
    const c = await connect(server);
    const peer = uid('java');
    const opened = await c.request({ cmd: 'session', op: 'open', i: -65536, appId: server.appId, peerId: peer, sessionMessage: { ua: 'LeanCloud-Java-SDK/8.2.28', configBitmap: 175 } });
    assert.equal(opened.op, 'opened');
    assert.equal(opened.i, -65536);
    assert.deepEqual(await c.request({ cmd: 'echo', i: -1 }), { cmd: 'echo', i: -1 });
    const q = await c.request({ cmd: 'conv', op: 'query', i: -300, convMessage: { where: { data: '{}' } } });
    assert.equal(q.op, 'results');
    assert.equal(q.i, -300);
  });

  test('Java push login (LCConnectionManager.onOpen sends LoginPacket: {cmd: login, appId, installationId, loginMessage.systemInfo}, no i, service absent = push) gets no reply and does not disturb the IM session after it', async () => {
    const c = await connect(server);
    const mark = c.mark();
    c.send({
      cmd: 'login', i: null, appId: server.appId, installationId: 'a1b2c3d4-installation',
      loginMessage: { systemInfo: { deviceType: 'android', isEmulator: false, androidVersion: { codename: 'REL', apiLevel: '33' }, osVersion: { build: 'Google/google/Pixel 7' } } },
    });
    assert.deepEqual(await c.quiet(mark), [], 'nothing comes back (a loggedin would only be read as push-service state)');
    const peer = uid('android');
    const r = await c.request({ cmd: 'session', op: 'open', appId: server.appId, peerId: peer,
      sessionMessage: { ua: 'LeanCloud-Java-SDK/8.2.28', deviceId: 'a1b2c3d4-installation', configBitmap: 175 } });
    assert.equal(r.op, 'opened');
    assert.equal(c.isClosed, false);
  });
});

// ---------------------------------------------------------------- the RTM router

describe('the RTM router (GET /v1/route)', { concurrency: true }, () => {
  const queries = [
    ['Swift (RTMRouter.swift: appId, secure=1)', `/v1/route?appId=APP&secure=1`],
    ['Objective-C (LCRouter.m getRTMRouterDataWithAppID: appId, secure="1")', `/v1/route?appId=APP&secure=1`],
    ['Java (AppRouterService.getRTMConnectionServer: appId, installationId, secure=1)', `/v1/route?appId=APP&installationId=inst-1&secure=1`],
    ['C# (LCRTMRouter.Fetch: appId, secure=1)', `/v1/route?appId=APP&secure=1`],
    ['JS 5 (realtime.js _fetchRTMServers: appId, secure, _t)', `/v1/route?appId=APP&secure=false&_t=1700000000000`],
  ];
  for (const [sdk, path] of queries) {
    test(`${sdk}: 200 with server and secondary (URLs), ttl (a number) and groupId`, async () => {
      const r = await httpRequest(server, { path: path.replace('APP', encodeURIComponent(server.appId)) });
      assert.equal(r.status, 200, r.body);
      assert.match(r.headers['content-type'], /application\/json/);
      // Swift: server String and ttl TimeInterval are required, else RTMRouterResponseDataMalformed.
      // Java: updateTargetServer alternates server/secondary, a null secondary would be the next URL.
      // C#: LCRTMServer {groupId, groupUrl, server, secondary, ttl int}; falls back to secondary.
      assert.equal(r.json.server, PUBLIC_URL);
      assert.equal(r.json.secondary, PUBLIC_URL);
      assert.equal(typeof r.json.ttl, 'number');
      assert.ok(Number.isInteger(r.json.ttl) && r.json.ttl > 0, `ttl ${r.json.ttl}`);
      assert.equal(typeof r.json.groupId, 'string');
    });
  }

  test('C# and JS 5 join "{server}/v1/route" and "{server}/1.1/…": with a trailing slash in the configured server URL, "//v1/route" and "//1.1/…" are the same routes', async () => {
    const q = `?appId=${encodeURIComponent(server.appId)}&secure=1`;
    const one = await httpRequest(server, { path: `/v1/route${q}` });
    const two = await httpRequest(server, { path: `//v1/route${q}` });
    assert.equal(two.status, 200, two.body);
    assert.deepEqual(two.json, one.json);
    // a REST path the SDKs call, e.g. the JS 5 notification sync after a reconnect
    const path = '/1.1/rtm/notifications?client_id=x&start_ts=0&notification_type=permanent';
    const restOne = await httpRequest(server, { path });
    const restTwo = await httpRequest(server, { path: `/${path}` });
    assert.notEqual(restOne.status, 404);
    assert.equal(restTwo.status, restOne.status, restTwo.body);
    assert.deepEqual(restTwo.json, restOne.json);
  });
});

// ---------------------------------------------------------------- session open as each SDK sends it

describe('session open as each SDK builds it', { concurrency: true }, () => {
  const opens = [
    {
      sdk: 'Swift (IMClient.newSessionCommand: deviceToken = UDID when there is no APNs token, no deviceId; configBitmap 187)',
      fields: { ua: 'LeanCloud-Swift-SDK/17.11.0', configBitmap: 187, deviceToken: 'B2A4E7B8-6E6D-4D1F-9C55-2F4B1D2C9A10' },
    },
    {
      sdk: 'Objective-C (LCIMClient.m newSessionCommandWithOp: configBitmap 171 = no keep-notification bit)',
      fields: { ua: 'LeanCloud-Objc-SDK/14.0.0', configBitmap: 171, deviceToken: '8C0A4B3F-1D2E-4F5A-9B8C-7D6E5F4A3B2C' },
    },
    {
      sdk: 'Java (SessionControlPacket.genSessionCommand: deviceId = installationId, configBitmap 175 with auto-bind bit 2)',
      fields: { ua: 'LeanCloud-Java-SDK/8.2.28', configBitmap: 175, deviceId: 'a1b2c3d4e5f6-installation' },
    },
    {
      sdk: 'C# (LCIMSessionController.Open: r = !force, configBitmap 0xAB, ua LeanCloud-CSharp-SDK/2.4.1)',
      fields: { r: false, configBitmap: 0xab, ua: 'LeanCloud-CSharp-SDK/2.4.1' },
    },
  ];
  for (const o of opens) {
    test(`${o.sdk}: opened {peerId, serverTs, sessionMessage {st, stTtl}} — Swift keeps the token only when both st and stTtl are present`, async () => {
      const c = await connect(server);
      const peer = uid('open');
      const before0 = Date.now();
      const r = await c.request({ cmd: 'session', op: 'open', appId: server.appId, peerId: peer, sessionMessage: o.fields });
      assert.equal(r.cmd, 'session');
      assert.equal(r.op, 'opened');
      assert.equal(r.peerId, peer);
      assert.ok(r.serverTs >= before0 - 5000 && r.serverTs <= Date.now() + 5000, `serverTs ${r.serverTs}`);
      assert.equal(typeof r.sessionMessage?.st, 'string');
      assert.ok(r.sessionMessage.st.length > 0);
      assert.ok(r.sessionMessage.stTtl > 0, 'stTtl');
      assert.equal(r.sessionMessage.code, undefined);
      assertAllBinary(c, o.sdk);
    });
  }

  test('Swift/ObjC/Java automatic re-login ({r: true, st, lastUnreadNotifTime, lastPatchTime}) and C# Reopen ({r: true}, no st): opened', async () => {
    const peer = uid('relogin');
    const first = await session(server, peer, { extra: { configBitmap: 187 } });
    const st = first.openReply.sessionMessage.st;
    const now = Date.now();
    await first.close();
    const swift = await connect(server);
    const r = await swift.request({ cmd: 'session', op: 'open', appId: server.appId, peerId: peer,
      sessionMessage: { r: true, st, configBitmap: 187, ua: 'LeanCloud-Swift-SDK/17.11.0', deviceToken: 'B2A4E7B8-6E6D-4D1F-9C55-2F4B1D2C9A10', lastUnreadNotifTime: now, lastPatchTime: now } });
    assert.equal(r.op, 'opened', JSON.stringify(r));
    assert.equal(r.peerId, peer);
    const csharp = await connect(server);
    const r2 = await csharp.request({ cmd: 'session', op: 'open', appId: server.appId, peerId: uid('cs'), sessionMessage: { r: true } });
    assert.equal(r2.op, 'opened', JSON.stringify(r2));
  });
});

// ---------------------------------------------------------------- a refused login

describe('a refused login', { concurrency: true }, () => {
  test('C# (LCIMSessionController.Open reads any reply but an error as success) and Java (processErrorCommand completes CLIENT_OPEN with the code): a refused open is {cmd: error, i, errorMessage {code, reason}}', async () => {
    const cases = [
      { what: 'another appId (4100)', open: { appId: 'someOtherApp', peerId: uid('cs') }, code: 4100, reason: 'APP_NOT_AVAILABLE' },
      { what: 'a 65-character client id (4103)', open: { appId: server.appId, peerId: 'c'.repeat(65) }, code: 4103, reason: 'INVALID_LOGIN' },
    ];
    for (const c of cases) {
      const cl = await connect(server);
      const r = await cl.request({ cmd: 'session', op: 'open', i: 12, ...c.open, sessionMessage: { r: false, configBitmap: 0xab, ua: 'LeanCloud-CSharp-SDK/2.4.1' } });
      assertError(r, 12, c.code, c.reason);
      assertError(await cl.request({ cmd: 'conv', op: 'query', i: 13 }), 13, 4105, 'SESSION_REQUIRED');
    }
  });

  test('Swift/ObjC/Java/C# automatic re-login that loses to the device holding <clientId, tag>: session/closed {code 4111} with the i (C# Reopen and Swift handleSessionOpenCallback read op closed), with its (revoked) st or without one', async () => {
    const peer = uid('tagged');
    const first = await session(server, peer, { extra: { tag: 'mobile' } });
    const st = first.openReply.sessionMessage.st;
    const holder = await session(server, peer, { extra: { tag: 'mobile' } }); // kicks `first`
    await first.next((p) => p.cmd === 'session' && p.op === 'closed');
    const again = await connect(server);
    // its token was revoked with the displacement (issue #11 point 10), but while the holder is
    // there the SDK is told the session ended elsewhere, not to log in afresh (which would
    // push the holder out in turn)
    for (const [i, sessionMessage] of [[20, { r: true, st }], [21, { r: true, tag: 'mobile' }]]) {
      const r = await again.request({ cmd: 'session', op: 'open', i, appId: server.appId, peerId: peer, sessionMessage });
      assert.equal(`${r.cmd}/${r.op}`, 'session/closed', JSON.stringify(r));
      assert.equal(r.i, i);
      assert.equal(r.sessionMessage.code, 4111);
      assert.equal(r.sessionMessage.reason, 'SESSION_CONFLICT');
    }
    await holder.echo(); // the holder stays
    assert.equal(holder.isClosed, false);
  });
});

// ---------------------------------------------------------------- Java's automatic re-login carries no i

describe('Java re-login after a reconnect (LCSession.reopen → openWithSessionToken: session open with st and no i)', { concurrency: true }, () => {
  const javaOpen = (server0, peer, st) => ({
    cmd: 'session', op: 'open', i: null, appId: server0.appId, peerId: peer,
    sessionMessage: { ua: 'LeanCloud-Java-SDK/8.2.28', deviceId: 'a1b2c3d4e5f6-installation', r: true, st, configBitmap: 175 },
  });

  test('a valid token: session/opened without i, with service 2, peerId, st and stTtl (processSessionCommand: "session resumed"), and the session works', async () => {
    const peer = uid('jre');
    const first = await session(server, peer, { extra: { configBitmap: 175 } });
    const st = first.openReply.sessionMessage.st;
    await first.close();
    const c = await connect(server);
    c.send(javaOpen(server, peer, st));
    const opened = await c.next((p) => p.cmd === 'session');
    assert.equal(opened.op, 'opened', JSON.stringify(opened));
    assert.equal(opened.i, undefined);
    assert.equal(opened.service, 2);
    assert.equal(opened.peerId, peer);
    assert.equal(typeof opened.sessionMessage.st, 'string');
    assert.ok(opened.sessionMessage.stTtl > 0);
    const q = await c.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: '{}' } } });
    assert.equal(q.op, 'results', 'the re-login opened a session');
  });

  test('a token tern did not issue (e.g. LeanCloud\'s, after the switch): {cmd: error, code 4112} without i, which makes Java drop it and log in afresh (processErrorCommand, CODE_SESSION_TOKEN_FAILURE)', async () => {
    const c = await connect(server);
    const peer = uid('jold');
    c.send(javaOpen(server, peer, 'Bk4tR1pQdVZ4a0ZpbmVfaXNfbGVhbmNsb3Vk'));
    const err = await c.next((p) => p.cmd === 'error');
    assert.equal(err.i, undefined);
    assert.equal(err.errorMessage.code, 4112);
    assert.equal(err.errorMessage.reason, 'SESSION_TOKEN_EXPIRED');
    assert.equal(err.peerId, peer);
    // Java then sends a fresh open with an i, which works
    const r = await c.request({ cmd: 'session', op: 'open', appId: server.appId, peerId: peer, sessionMessage: { ua: 'LeanCloud-Java-SDK/8.2.28', r: true, configBitmap: 175 } });
    assert.equal(r.op, 'opened');
  });

  test('a re-login that loses to the device holding <clientId, tag>: session/closed {code 4111} without i (onSessionClosedFromServer)', async () => {
    const peer = uid('jtag');
    const first = await session(server, peer, { extra: { tag: 'mobile', configBitmap: 175 } });
    const st = first.openReply.sessionMessage.st;
    await session(server, peer, { extra: { tag: 'mobile' } });
    await first.next((p) => p.cmd === 'session' && p.op === 'closed');
    const c = await connect(server);
    c.send(javaOpen(server, peer, st));
    const closed = await c.next((p) => p.cmd === 'session');
    assert.equal(closed.op, 'closed', JSON.stringify(closed));
    assert.equal(closed.i, undefined);
    assert.equal(closed.sessionMessage.code, 4111);
    assert.equal(closed.peerId, peer);
  });
});

// ---------------------------------------------------------------- replies: ops and shapes the SDKs check

describe('replies', { concurrency: true }, () => {
  test('Java dispatches every reply on its cmd/op name (LCDefaultConnectionListener.onMessageArriving, ConversationControlPacket, BlacklistCommandPacket); Swift/ObjC check session close → session/closed', async () => {
    const [a, b, x] = [uid('jA'), uid('jB'), uid('jX')];
    const A = await session(server, a, { extra: { configBitmap: 175 } });
    await session(server, b);
    const expect = async (req, cmd, op, what) => {
      const r = await A.request(req);
      assert.equal(`${r.cmd}/${r.op}`, `${cmd}/${op}`, `${what}: ${JSON.stringify(r)}`);
      return r;
    };
    const started = await expect({ cmd: 'conv', op: 'start', convMessage: { m: [a, b] } }, 'conv', 'started', 'conv start');
    const cid = started.convMessage.cid;
    await expect({ cmd: 'conv', op: 'add', convMessage: { cid, m: [x] } }, 'conv', 'added', 'conv add');
    await expect({ cmd: 'conv', op: 'remove', convMessage: { cid, m: [x] } }, 'conv', 'removed', 'conv remove');
    await expect({ cmd: 'conv', op: 'query', convMessage: { where: { data: JSON.stringify({ objectId: cid }) } } }, 'conv', 'results', 'conv query');
    await expect({ cmd: 'conv', op: 'count', convMessage: { cid } }, 'conv', 'result', 'conv count');
    await expect({ cmd: 'conv', op: 'update', convMessage: { cid, attr: { data: '{"name":"java"}' } } }, 'conv', 'updated', 'conv update');
    await expect({ cmd: 'conv', op: 'mute', convMessage: { cid } }, 'conv', 'updated', 'conv mute');
    await expect({ cmd: 'conv', op: 'unmute', convMessage: { cid } }, 'conv', 'updated', 'conv unmute');
    await expect({ cmd: 'conv', op: 'max_read', convMessage: { cid } }, 'conv', 'max_read', 'conv max_read');
    await expect({ cmd: 'conv', op: 'member_info_update', convMessage: { cid, targetClientId: b, info: { pid: b, role: 'Manager' } } }, 'conv', 'member_info_updated', 'member info');
    await expect({ cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [b] } }, 'conv', 'shutup_added', 'add_shutup');
    await expect({ cmd: 'conv', op: 'query_shutup', convMessage: { cid, limit: 10 } }, 'conv', 'shutup_result', 'query_shutup');
    await expect({ cmd: 'conv', op: 'remove_shutup', convMessage: { cid, m: [b] } }, 'conv', 'shutup_removed', 'remove_shutup');
    await expect({ cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: cid, toPids: [x] } }, 'blacklist', 'blocked', 'block');
    await expect({ cmd: 'blacklist', op: 'query', blacklistMessage: { srcCid: cid, limit: 10 } }, 'blacklist', 'query_result', 'blacklist query');
    await expect({ cmd: 'blacklist', op: 'unblock', blacklistMessage: { srcCid: cid, toPids: [x] } }, 'blacklist', 'unblocked', 'unblock');
    const ack = await expect({ cmd: 'direct', directMessage: { cid, msg: TEXT('hi') } }, 'ack', undefined, 'direct');
    assert.equal(ack.ackMessage.code, undefined, 'processAckCommand: hasCode means the send failed');
    await expect({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid, mid: ack.ackMessage.uid, timestamp: ack.ackMessage.t, data: TEXT('hi!') }] } }, 'patch', 'modified', 'patch modify');
    await expect({ cmd: 'logs', logsMessage: { cid, limit: 5 } }, 'logs', undefined, 'logs');
    await expect({ cmd: 'session', op: 'query', sessionMessage: { sessionPeerIds: [b] } }, 'session', 'query_result', 'session query');
    await expect({ cmd: 'session', op: 'refresh', sessionMessage: { st: A.openReply.sessionMessage.st } }, 'session', 'refreshed', 'session refresh');
    await expect({ cmd: 'report', op: 'upload', reportMessage: { initiative: true, type: 'token', data: 'ab'.repeat(32) } }, 'report', 'uploaded', 'report upload (Swift/ObjC reportDeviceToken)');
    const closed = await expect({ cmd: 'session', op: 'close' }, 'session', 'closed', 'session close');
    assert.equal(closed.sessionMessage?.code, undefined, 'Java: a code would mean closed by the server');
    assertAllBinary(A, 'Java replies');
  });

  test('Swift (IMConversation.handleMessageQueryResult: guard hasLogsMessage) and C# (response.LogsMessage.Logs): an empty history still carries logsMessage', async () => {
    const [a, b] = [uid('sA'), uid('sB')];
    const A = await session(server, a);
    const { cid } = await startConv(A, [b]);
    for (const logsMessage of [{ cid, limit: 20 }, { cid, l: 20 }, { cid, limit: 20, direction: 'NEW' }]) {
      const r = await A.request({ cmd: 'logs', logsMessage });
      assert.equal(r.cmd, 'logs');
      assert.ok(Object.prototype.hasOwnProperty.call(r, 'logsMessage'), `logsMessage present: ${JSON.stringify(r)}`);
      assert.deepEqual(r.logsMessage.logs ?? [], []);
    }
  });
});

// ---------------------------------------------------------------- history with `limit`

describe('history (logs) as the SDKs page it', () => {
  test('LogsCommand.limit (Swift messageQueryCommand, Java ConversationMessageQueryPacket, C# LCIMMessageController.QueryMessages) pages exactly as l (JS, ObjC)', async () => {
    const [a, b] = [uid('hA'), uid('hB')];
    const A = await session(server, a);
    const { cid } = await startConv(A, [b]);
    const m = [];
    for (let k = 0; k < 25; k++) m.push(await sendMsg(A, cid, TEXT(`m${k}`)));
    const ids = (from, to) => m.slice(from, to).map((x) => x.uid);
    const page = async (logsMessage, envelope = {}) => {
      const r = await A.request({ cmd: 'logs', ...envelope, logsMessage: { cid, ...logsMessage } });
      assert.equal(r.cmd, 'logs', JSON.stringify(r));
      return (r.logsMessage.logs ?? []).map((x) => x.msgId);
    };
    // Java always sends tIncluded/ttIncluded (false) and an explicit direction
    const java = { tIncluded: false, ttIncluded: false, direction: 'OLD' };
    assert.deepEqual(await page({ ...java, limit: 10 }), ids(15, 25), 'Java first page: newest 10, ascending');
    assert.deepEqual(await page({ l: 10 }), ids(15, 25), 'ObjC/JS l: the same page');
    assert.deepEqual(await page({ limit: 10 }), ids(15, 25), 'Swift limit without direction');
    // next page, from the oldest shown (Swift/Java pass its timestamp and id)
    assert.deepEqual(await page({ ...java, limit: 10, t: m[15].t, mid: m[15].uid }), ids(5, 15), 'Java second page');
    assert.deepEqual(await page({ limit: 10, t: m[15].t, mid: m[15].uid, tIncluded: true }), ids(6, 16), 'Swift closed start interval');
    // oldest first (Java direct != 0, Swift .oldToNew, C# OldToNew)
    assert.deepEqual(await page({ tIncluded: false, ttIncluded: false, direction: 'NEW', limit: 4 }), ids(0, 4), 'NEW from the beginning');
    assert.deepEqual(await page({ direction: 'NEW', limit: 4, t: m[3].t, mid: m[3].uid }), ids(4, 8), 'NEW after a message');
    // an end bound (tt, tmid) with limit
    assert.deepEqual(await page({ limit: 100, t: m[10].t, mid: m[10].uid, tt: m[5].t, tmid: m[5].uid, ttIncluded: true }), ids(5, 10), 'between two messages, end included');
    // C# sends op open, appId and peerId on every command
    assert.deepEqual(await page({ limit: 3, direction: 'OLD' }, { op: 'open', appId: server.appId, peerId: a }), ids(22, 25), 'C# envelope');
    // lctype filter with limit (Swift/Java/C# type)
    assert.deepEqual(await page({ limit: 5, lctype: -1 }), ids(20, 25), 'lctype -1 with limit');
    assert.deepEqual(await page({ limit: 5, lctype: 2 }), [], 'no image messages');
  });
});

// ---------------------------------------------------------------- acks, receipts, read, patch acks

describe('acks and receipts', { concurrency: true }, () => {
  /** a and b in a 1:1 conversation on their own sockets, creation pushes drained. */
  async function pair(prefix) {
    const [a, b] = [uid(`${prefix}A`), uid(`${prefix}B`)];
    const A = await session(server, a);
    const B = await session(server, b);
    const conv = await startConv(A, [b]);
    await A.next((p) => p.op === 'members_joined' && p.convMessage.cid === conv.cid);
    await B.next((p) => p.op === 'members_joined' && p.convMessage.cid === conv.cid);
    await pastMs(conv.cdate);
    return { a, b, A, B, cid: conv.cid };
  }

  test('Swift (IMClient.acknowledging) and Java (ConversationAckPacket) ack each message by {cid, mid}; the delivery receipt carries id, cid, t, from and no read field (Java processRcpCommand takes hasRead as a read receipt)', async () => {
    const f = await pair('ack');
    const sent = await sendMsg(f.A, f.cid, TEXT('with receipt'), { r: true });
    const d = await f.B.next((p) => p.cmd === 'direct' && p.directMessage.id === sent.uid);
    f.B.send({ cmd: 'ack', i: null, ackMessage: { cid: f.cid, mid: d.directMessage.id } });
    const rcp = await f.A.next((p) => p.cmd === 'rcp');
    assertPush(rcp, f.a);
    assert.equal(rcp.rcpMessage.id, sent.uid);
    assert.equal(rcp.rcpMessage.cid, f.cid);
    assert.equal(rcp.rcpMessage.from, f.b);
    assert.equal(typeof rcp.rcpMessage.t, 'number');
    assert.equal(Object.prototype.hasOwnProperty.call(rcp.rcpMessage, 'read'), false, `no read field: ${JSON.stringify(rcp)}`);
  });

  test('Swift/ObjC read {convs: [{cid, mid, timestamp}]}: the read receipt carries the message id Swift requires (IMClient.process(rcpCommand:) guards hasID and hasT) and read: true', async () => {
    const f = await pair('read');
    const sent = await sendMsg(f.A, f.cid, TEXT('read me'));
    await f.B.next((p) => p.cmd === 'direct' && p.directMessage.id === sent.uid);
    f.B.send({ cmd: 'read', i: null, readMessage: { convs: [{ cid: f.cid, mid: sent.uid, timestamp: sent.t }] } });
    const rcp = await f.A.next((p) => p.cmd === 'rcp');
    assertPush(rcp, f.a);
    assert.equal(rcp.rcpMessage.id, sent.uid);
    assert.equal(rcp.rcpMessage.read, true);
    assert.equal(rcp.rcpMessage.cid, f.cid);
    assert.equal(typeof rcp.rcpMessage.t, 'number');
  });

  test('Java read carries an i (UnreadMessagesClearPacket.getUnreadClearPacket with requestId, "no return value"): it takes effect and nothing comes back for it', async () => {
    const f = await pair('jread');
    const sent = await sendMsg(f.A, f.cid, TEXT('read by java'));
    await f.B.next((p) => p.cmd === 'direct' && p.directMessage.id === sent.uid);
    const mark = f.B.mark();
    f.B.send({ cmd: 'read', i: 31, readMessage: { convs: [{ cid: f.cid, mid: sent.uid, timestamp: sent.t }] } });
    const rcp = await f.A.next((p) => p.cmd === 'rcp');
    assert.equal(rcp.rcpMessage.read, true, 'the read happened');
    assert.deepEqual((await f.B.quiet(mark)).filter((p) => p.i === 31), [], 'no reply, and no error, for the read');
  });

  test('Java acks a patch push with {cmd: patch, op: modified, patchMessage: {lastPatchTime}}, no i (MessagePatchModifiedPacket): nothing comes back', async () => {
    const f = await pair('jpatch');
    const sent = await sendMsg(f.A, f.cid, TEXT('to edit'));
    const r = await f.A.request({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid: f.cid, mid: sent.uid, timestamp: sent.t, data: TEXT('edited') }] } });
    const p = await f.B.next((x) => x.cmd === 'patch' && x.op === 'modify');
    assertPush(p, f.b);
    const mark = f.B.mark();
    f.B.send({ cmd: 'patch', op: 'modified', i: null, patchMessage: { lastPatchTime: r.patchMessage.lastPatchTime } });
    assert.deepEqual(await f.B.quiet(mark), []);
  });
});

// ---------------------------------------------------------------- every push: service 2, peerId, no i

test('every kind of push carries service 2 and the recipient\'s peerId and no i (Swift RTMConnection.websocketDidReceiveData and ObjC LCRTMConnection didReceiveMessage drop an i-less command without service 2)', async () => {
  const ids = Object.fromEntries(['A', 'B', 'C', 'E', 'F', 'G', 'K'].map((k) => [k, uid(`p${k}`)]));
  const swift = { extra: { configBitmap: 187, ua: 'LeanCloud-Swift-SDK/17.11.0' } }; // bit 3: transient messages are acked
  const A = await session(server, ids.A, swift);
  const B = await session(server, ids.B, swift);
  const B2 = await session(server, ids.B, swift); // B's second device
  const C = await session(server, ids.C, swift);
  const watchers = [[A, ids.A], [B, ids.B], [B2, ids.B], [C, ids.C]];
  const seen = new Set();
  const nextOn = (cl, cmd, op, pred = () => true) => cl.next((p) => p.cmd === cmd && (op === undefined || p.op === op) && pred(p));

  // conversation lifecycle: joined, members_joined, updated, member_info_changed, shutuped …
  const { cid, cdate } = await startConv(A, [ids.B, ids.E, ids.G]);
  await nextOn(B, 'conv', 'joined');
  await nextOn(A, 'conv', 'members_joined');
  await A.request({ cmd: 'conv', op: 'add', convMessage: { cid, m: [ids.C] } });
  await nextOn(C, 'conv', 'joined');
  await nextOn(B, 'conv', 'members_joined', (p) => p.convMessage.m?.includes(ids.C));
  await A.request({ cmd: 'conv', op: 'update', convMessage: { cid, attr: { data: '{"name":"sweep"}' } } });
  await nextOn(B, 'conv', 'updated');
  await A.request({ cmd: 'conv', op: 'member_info_update', convMessage: { cid, targetClientId: ids.C, info: { pid: ids.C, role: 'Manager' } } });
  await nextOn(B, 'conv', 'member_info_changed');
  await A.request({ cmd: 'conv', op: 'add_shutup', convMessage: { cid, m: [ids.B] } });
  await nextOn(B, 'conv', 'shutuped');
  await nextOn(C, 'conv', 'members_shutuped');
  await A.request({ cmd: 'conv', op: 'remove_shutup', convMessage: { cid, m: [ids.B] } });
  await nextOn(B, 'conv', 'unshutuped');
  await nextOn(C, 'conv', 'members_unshutuped');
  await pastMs(cdate);

  // messages: direct, transient direct, delivery rcp, patch (edit, recall)
  const m1 = await sendMsg(A, cid, TEXT('one'), { r: true });
  await nextOn(B, 'direct', undefined, (p) => p.directMessage.id === m1.uid);
  B.send({ cmd: 'ack', i: null, ackMessage: { cid, mid: m1.uid } });
  await nextOn(A, 'rcp');
  await sendMsg(A, cid, TEXT('typing'), { transient: true });
  await nextOn(C, 'direct', undefined, (p) => p.directMessage.transient === true);
  await A.request({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid, mid: m1.uid, timestamp: m1.t, data: TEXT('one!') }] } });
  await nextOn(B, 'patch', 'modify');
  await A.request({ cmd: 'patch', op: 'modify', patchMessage: { patches: [{ cid, mid: m1.uid, timestamp: m1.t, recall: true }] } });
  await nextOn(C, 'patch', 'modify', (p) => p.patchMessage.patches[0].recall === true);

  // read: the reader's other device hears unread 0; a 1:1 conversation gives a read rcp
  B.send({ cmd: 'read', i: null, readMessage: { convs: [{ cid, mid: m1.uid, timestamp: m1.t }] } });
  await nextOn(B2, 'unread');
  const one = await startConv(A, [ids.B]);
  await pastMs(one.cdate);
  const m2 = await sendMsg(A, one.cid, TEXT('1:1'));
  await nextOn(B, 'direct', undefined, (p) => p.directMessage.id === m2.uid);
  B.send({ cmd: 'read', i: null, readMessage: { convs: [{ cid: one.cid, mid: m2.uid, timestamp: m2.t }] } });
  await nextOn(A, 'rcp', undefined, (p) => p.rcpMessage.read === true);

  // membership loss: removed (left / members_left), blocked (blacklist pushes)
  await A.request({ cmd: 'conv', op: 'remove', convMessage: { cid, m: [ids.C] } });
  await nextOn(C, 'conv', 'left');
  await nextOn(B, 'conv', 'members_left');
  await A.request({ cmd: 'blacklist', op: 'block', blacklistMessage: { srcCid: cid, toPids: [ids.B] } });
  await nextOn(B, 'conv', 'blocked'); // Java: ConversationControlOp.BLOCKED, a conv op

  // at login: unread (lc.protobuf2.3) and stored messages (lc.protobuf2.1)
  const E = await session(server, ids.E);
  await nextOn(E, 'unread');
  const G = await connect(server, { subprotocol: 'lc.protobuf2.1' });
  await login(G, ids.G);
  await nextOn(G, 'direct', undefined, (p) => p.directMessage.offline === true);
  watchers.push([E, ids.E], [G, ids.G]);

  // server-initiated session ends: a tag conflict (4111) and the REST kick (4115)
  const F1 = await session(server, ids.F, { extra: { tag: 'mobile' } });
  await session(server, ids.F, { extra: { tag: 'mobile' } });
  const conflict = await nextOn(F1, 'session', 'closed');
  assert.equal(conflict.sessionMessage.code, 4111);
  const K = await session(server, ids.K);
  const kick = await fetch(`${server.httpUrl}/1.2/rtm/clients/${ids.K}/kick`, { method: 'POST', headers: MASTER(), body: '{"reason":"moved"}' });
  assert.equal(kick.status, 200);
  const kicked = await nextOn(K, 'session', 'closed');
  assert.equal(kicked.sessionMessage.code, 4115);
  watchers.push([F1, ids.F], [K, ids.K]);

  for (const [cl, peer] of watchers) {
    const pushes = cl.received.filter((p) => p.i === undefined);
    for (const p of pushes) {
      assertPush(p, peer);
      seen.add(p.op ? `${p.cmd}/${p.op}` : p.cmd);
    }
    assertAllBinary(cl, peer);
  }
  const kinds = ['conv/joined', 'conv/members_joined', 'conv/updated', 'conv/member_info_changed', 'conv/shutuped',
    'conv/members_shutuped', 'conv/unshutuped', 'conv/members_unshutuped', 'conv/left', 'conv/members_left',
    'conv/blocked', 'direct', 'rcp', 'patch/modify', 'unread', 'session/closed'];
  for (const k of kinds) assert.ok(seen.has(k), `a ${k} push was seen (seen: ${[...seen].join(', ')})`);
});

// ---------------------------------------------------------------- nothing else breaks

test('the sockets of this file stayed healthy: a plain login still works', async () => {
  const c = await connect(server);
  await login(c, uid('after'));
  await c.echo();
  assertError(await c.request({ cmd: 'logs', i: 5, logsMessage: { limit: 5 } }), 5, 4312, 'CONVERSATION_LOG_REJECTED');
});

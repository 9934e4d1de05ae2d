// HTTP side of ternd: the WebSocket upgrade (subprotocol negotiation, version, key), the
// RTM router, unknown paths, and the SDKs' /1.1/rtm/notifications call.
// protocol.md §1.1, §1.4(b), §3.20, §7.4; interop.md §4.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer } from '../lib/server.mjs';
import { assertHealthy, closeAll, connect, login, uid, withServer } from '../lib/proto-client.mjs';
import { acceptKey, httpRequest, upgradeHeaders } from '../lib/proto-raw.mjs';

let server;
before(async () => { server = await startServer(); });
afterEach(closeAll);
after(async () => { await server.stop(); });

// ---------------------------------------------------------------- upgrade

const SUPPORTED = ['lc.protobuf2.1', 'lc.protobuf2.2', 'lc.protobuf2.3', 'lc.proto2base64.1', 'lc.proto2base64.2', 'lc.proto2base64.3'];

const upgradeCases = [
  ...SUPPORTED.map((p) => ({ section: '§1.1', name: `${p} is accepted and echoed`, headers: { 'Sec-WebSocket-Protocol': p }, status: 101, chosen: p })),
  { section: '§1.1', name: 'first supported offer of a list is chosen', headers: { 'Sec-WebSocket-Protocol': 'mqtt, lc.proto2base64.3, lc.protobuf2.3' }, status: 101, chosen: 'lc.proto2base64.3' },
  { section: '§1.1', name: 'any path upgrades', path: '/some/where?appId=x', headers: {}, status: 101, chosen: 'lc.protobuf2.3' },
  { section: '§1.1', name: 'legacy lc.json.3 is refused', headers: { 'Sec-WebSocket-Protocol': 'lc.json.3' }, status: 400, error: /^unsupported subprotocol/ },
  { section: '§1.1', name: 'legacy lc.protobuf.3 is refused', headers: { 'Sec-WebSocket-Protocol': 'lc.protobuf.3' }, status: 400, error: /^unsupported subprotocol/ },
  { section: '§1.1', name: 'lc.protobuf2.4 is refused', headers: { 'Sec-WebSocket-Protocol': 'lc.protobuf2.4' }, status: 400, error: /^unsupported subprotocol/ },
  { section: '§1.1', name: 'a prefix of a supported name is refused', headers: { 'Sec-WebSocket-Protocol': 'lc.protobuf2' }, status: 400, error: /^unsupported subprotocol/ },
  { section: '§1.1', name: 'no subprotocol offered is refused', headers: { 'Sec-WebSocket-Protocol': null }, status: 400, error: /^unsupported subprotocol/ },
  { section: '§1.1 RFC 6455 §4.2.1', name: 'missing Sec-WebSocket-Key is refused', headers: { 'Sec-WebSocket-Key': null }, status: 400, error: /Sec-WebSocket-Key/ },
  { section: '§1.1 RFC 6455 §4.4', name: 'Sec-WebSocket-Version 8 gets 426', headers: { 'Sec-WebSocket-Version': '8' }, status: 426, error: /version 13/, versionHeader: '13' },
  { section: '§1.1 RFC 6455 §4.4', name: 'missing Sec-WebSocket-Version gets 426', headers: { 'Sec-WebSocket-Version': null }, status: 426, error: /version 13/, versionHeader: '13' },
];

for (const c of upgradeCases) {
  test(`${c.section} upgrade: ${c.name}`, async () => {
    const headers = upgradeHeaders(c.headers);
    const res = await httpRequest(server, { path: c.path || '/', headers });
    assert.equal(res.status, c.status, res.body);
    if (c.status === 101) {
      assert.equal(res.headers['sec-websocket-protocol'], c.chosen);
      assert.equal(res.headers['sec-websocket-accept'], acceptKey(headers['Sec-WebSocket-Key']));
      assert.equal(res.headers.upgrade?.toLowerCase(), 'websocket');
    } else {
      assert.match(res.headers['content-type'], /^application\/json/);
      assert.equal(Number(res.headers['content-length']), Buffer.byteLength(res.body), 'Content-Length matches the body');
      assert.ok(res.json, `body is JSON: ${JSON.stringify(res.body)}`);
      assert.equal(res.json.code, c.status);
      assert.match(res.json.error, c.error);
      assert.equal(res.headers['sec-websocket-protocol'], undefined, 'no subprotocol on a refusal');
      if (c.versionHeader) assert.equal(res.headers['sec-websocket-version'], c.versionHeader);
      await assertHealthy(server);
    }
  });
}

for (const p of SUPPORTED) {
  // A server of its own per subprotocol: a crash in one format must not hide the others.
  test(`§1.1 upgrade: ${p} then carries commands in its own frame format (echo)`, () => withServer({}, async (srv) => {
    const c = await connect(srv, { subprotocol: p });
    assert.equal(c.ws.protocol, p);
    const r = await c.echo();
    assert.equal(r.i, 1);
    assert.deepEqual(c.frameKinds, [p.startsWith('lc.proto2base64') ? 'text' : 'binary'], `${p} answers in its own format`);
    await c.close();
    await assertHealthy(srv);
  }));
}

test('§1.1 upgrade refusal (426): the body is exactly Content-Length, nothing trails it', async () => {
  // A response whose Content-Length disagrees with its body corrupts the next response on a
  // keep-alive connection. Upgrade with a bad version, then GET /health: the server either
  // answers it cleanly or closes the connection with nothing after the 426 body.
  const sock = net.connect(server.port, '127.0.0.1');
  await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
  let data = Buffer.alloc(0);
  let closed = false;
  const waiters = [];
  const poke = () => { for (const w of [...waiters]) w(); };
  sock.on('data', (d) => { data = Buffer.concat([data, d]); poke(); });
  sock.on('close', () => { closed = true; poke(); });
  const waitFor = (pred) => new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out; got ${JSON.stringify(data.toString())}`)), 5000);
    const w = () => { if (pred()) { clearTimeout(t); waiters.splice(waiters.indexOf(w), 1); resolve(); } };
    waiters.push(w);
    w();
  });
  sock.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 8\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: lc.protobuf2.3\r\n\r\n');
  await waitFor(() => data.includes('\r\n\r\n'));
  const headEnd = data.indexOf('\r\n\r\n') + 4;
  const head = data.subarray(0, headEnd).toString();
  assert.match(head, /^HTTP\/1\.1 426 /);
  const len = Number(/Content-Length: (\d+)/i.exec(head)[1]);
  await waitFor(() => data.length >= headEnd + len);
  const body = data.subarray(headEnd, headEnd + len).toString();
  assert.doesNotThrow(() => JSON.parse(body), `426 body of Content-Length ${len} is not JSON: ${JSON.stringify(body)}`);
  if (!closed) sock.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor(() => closed || data.subarray(headEnd + len).includes('\r\n\r\n'));
  const rest = data.subarray(headEnd + len).toString();
  if (rest.length || !closed) {
    assert.match(rest, /^HTTP\/1\.1 200 /, `bytes after the 426 body: ${JSON.stringify(rest.slice(0, 40))}`);
  }
  sock.destroy();
  await assertHealthy(server);
});

test('§1.1 a request pipelined behind a refused upgrade is answered, or the connection is closed', async () => {
  // After a 400 with "Connection: keep-alive" the server must either serve the next request
  // on the connection or close it; silently dropping it leaves the client hanging.
  const sock = net.connect(server.port, '127.0.0.1');
  await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
  let data = '';
  sock.on('data', (d) => { data += d; });
  const closed = new Promise((r) => sock.once('close', () => r('closed')));
  sock.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n' +
    'GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
  const twoAnswers = new Promise((resolve) => {
    const check = () => { if ((data.match(/HTTP\/1\.1 \d{3}/g) || []).length >= 2) resolve('answered'); };
    sock.on('data', check);
  });
  let timer;
  const hung = new Promise((r) => { timer = setTimeout(() => r('hung'), 2000); });
  const outcome = await Promise.race([closed, twoAnswers, hung]);
  clearTimeout(timer);
  assert.match(data, /^HTTP\/1\.1 400 /);
  assert.notEqual(outcome, 'hung', `the pipelined GET /health was neither answered nor the connection closed: ${JSON.stringify(data.slice(-80))}`);
  if (outcome === 'answered') assert.match(data, /HTTP\/1\.1 200 [^]*"status":"ok"/);
  sock.destroy();
  await assertHealthy(server);
});

// ---------------------------------------------------------------- router and other paths

test('§1.4(b) GET /v1/route answers where to connect', async () => {
  const res = await httpRequest(server, { path: `/v1/route?appId=${server.appId}&secure=false&_t=${Date.now()}` });
  assert.equal(res.status, 200);
  assert.match(res.headers['content-type'], /^application\/json/);
  assert.deepEqual(res.json, {
    groupId: 'g0',
    server: `ws://127.0.0.1:${server.port}/`,
    secondary: `ws://127.0.0.1:${server.port}/`,
    ttl: 3600,
  });
});

const pathCases = [
  { section: '§7', name: 'unknown path', method: 'GET', path: '/1.1/classes/Nope', status: 404 },
  { section: '§7', name: 'GET / without upgrade', method: 'GET', path: '/', status: 404 },
  { section: '§7', name: 'wrong method on a known path', method: 'POST', path: '/v1/route', status: 405, body: '{}' },
];
for (const c of pathCases) {
  test(`${c.section} HTTP: ${c.name} → ${c.status} JSON {code, error}`, async () => {
    const res = await httpRequest(server, { method: c.method, path: c.path, body: c.body,
      headers: c.body ? { 'Content-Type': 'application/json' } : {} });
    assert.equal(res.status, c.status);
    assert.equal(res.json?.code, c.status, res.body);
    assert.equal(typeof res.json.error, 'string');
    await assertHealthy(server);
  });
}

// ---------------------------------------------------------------- notifications

test('§3.20/§7.4 GET /1.1/rtm/notifications requires app id and a session token for client_id', async () => {
  const c = await connect(server);
  const peer = uid('notif');
  const opened = await login(c, peer);
  const st = opened.sessionMessage.st;
  const other = await login(c, uid('other'));
  const path = (client) => `/1.1/rtm/notifications?client_id=${encodeURIComponent(client)}&start_ts=0&notification_type=permanent`;
  const cases = [
    { name: 'no headers', client: peer, headers: {}, status: 401 },
    { name: 'wrong X-LC-Id', client: peer, headers: { 'X-LC-Id': 'nope', 'X-LC-Key': server.appKey, 'X-LC-IM-Session-Token': st }, status: 401 },
    { name: 'no session token', client: peer, headers: { 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey }, status: 401 },
    { name: 'garbage token', client: peer, headers: { 'X-LC-Id': server.appId, 'X-LC-IM-Session-Token': 'garbage' }, status: 401 },
    { name: "another client's token", client: peer, headers: { 'X-LC-Id': server.appId, 'X-LC-IM-Session-Token': other.sessionMessage.st }, status: 401 },
    { name: 'no client_id', client: null, headers: { 'X-LC-Id': server.appId, 'X-LC-IM-Session-Token': st }, status: 401 },
    { name: 'valid', client: peer, headers: { 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey, 'X-LC-IM-Session-Token': st }, status: 200 },
  ];
  for (const k of cases) {
    const res = await httpRequest(server, { path: k.client ? path(k.client) : '/1.1/rtm/notifications?start_ts=0', headers: k.headers });
    assert.equal(res.status, k.status, `${k.name}: ${res.body}`);
    if (k.status === 200) assert.deepEqual(res.json, { hasMore: false, notifications: [] });
    else assert.equal(typeof res.json?.code, 'number', `${k.name}: JSON error body`);
  }
  await c.close();
  await assertHealthy(server);
});

test('§7 CORS preflight: the headers a browser asks for are allowed (leancloud-storage\'s upload PUT sends Cache-Control); anything but a list of names gets the usual set', async () => {
  const pre = (headers) => fetch(`${server.httpUrl}/1.1/fileUploads/${'a'.repeat(24)}?token=x`, {
    method: 'OPTIONS',
    headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'PUT', ...headers },
  });
  const asked = await pre({ 'Access-Control-Request-Headers': 'cache-control,content-type,x-lc-prod' });
  assert.equal(asked.status, 204);
  assert.equal(asked.headers.get('access-control-allow-origin'), '*');
  assert.match(asked.headers.get('access-control-allow-methods'), /\bPUT\b/);
  assert.equal(asked.headers.get('access-control-allow-headers'), 'cache-control,content-type,x-lc-prod');
  for (const odd of ['x-a;b', 'a'.repeat(600)]) {
    const r = await pre({ 'Access-Control-Request-Headers': odd });
    assert.equal(r.status, 204);
    assert.match(r.headers.get('access-control-allow-headers'), /^Content-Type, Cache-Control, .*X-LC-Id/);
  }
  const none = await pre({});
  assert.match(none.headers.get('access-control-allow-headers'), /X-LC-Sign/);
  await assertHealthy(server);
});

test('§7 GET /health', async () => {
  const res = await httpRequest(server, { path: '/health' });
  assert.equal(res.status, 200);
  assert.deepEqual(res.json, { status: 'ok' });
});

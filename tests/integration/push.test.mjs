// Offline push (issue #7 §3, protocol.md §10, §8 _receiversOffline, §3.3 report upload):
// real providers' shapes against local servers in the test —
//   * a webhook receiver: exactly one request per offline recipient, payload precedence
//     (hook pushMessage > pushData > template with ${…}), muted members skipped unless the
//     hook forces, nothing for online members, transient or chat-room messages, retries with
//     backoff and the dead-letter log;
//   * APNs over cleartext HTTP/2 (node:http2): path, headers, the ES256 provider token
//     verified with the public key, the body, the sandbox host for _profile "dev", 410;
//   * FCM HTTP v1: the OAuth2 JWT-bearer grant (RS256 verified) and the message body.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import { createHmac, generateKeyPairSync, verify as cryptoVerify } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { session as open, startConv, sendMsg, uid, closeAll, withServer } from '../lib/proto-client.mjs';

const session = async (srv, id, extra) => Object.assign(await open(srv, id, { extra }), { peerId: id });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tmp = mkdtempSync(join(tmpdir(), 'tern-push-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function eventually(fn, what, timeout = 5000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) assert.fail(`not within ${timeout} ms: ${what}`);
    await sleep(15);
  }
}

function readBody(req) {
  return new Promise((resolve) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => resolve(body));
  });
}

function listen(server) {
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(server.address().port)));
}

// Logs `id` out and waits until the server no longer counts it online.
async function goOffline(observer, client) {
  await client.close();
  await eventually(async () => {
    const r = await observer.request({ cmd: 'session', op: 'query', sessionMessage: { sessionPeerIds: [client.peerId] } });
    return !(r.sessionMessage?.onlineSessionPeerIds ?? []).includes(client.peerId);
  }, `${client.peerId} offline`);
}

// A client that logs in, reports an APNs-style token (§3.3) and leaves.
async function registerToken(srv, observer, id, token = hexToken()) {
  const c = await session(srv, id);
  const r = await c.request({ cmd: 'report', op: 'upload', reportMessage: { initiative: true, type: 'token', data: token } });
  assert.equal(r.cmd, 'report', JSON.stringify(r));
  assert.equal(r.op, 'uploaded', JSON.stringify(r));
  await goOffline(observer, c);
  return token;
}

function hexToken() {
  return [...Array(64)].map(() => '0123456789abcdef'[Math.floor(Math.random() * 16)]).join('');
}

// An installation call with the app key (key 'app'), the master key ('master'), or the app
// key with a client's session token ({ st }).
async function rest(srv, method, path, body, key = 'app') {
  const auth = key === 'master' ? { 'X-LC-Key': `${srv.masterKey},master` }
    : key === 'app' ? { 'X-LC-Key': srv.appKey } : { 'X-LC-Key': srv.appKey, 'X-LC-IM-Session-Token': key.st };
  const res = await fetch(`${srv.httpUrl}${path}`, {
    method,
    headers: { 'X-LC-Id': srv.appId, ...auth, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

// ---------------------------------------------------------------- the webhook and the hook

const hooks = []; // _receiversOffline calls
let hookAnswer = () => ({});
const pushes = []; // webhook requests: {headers, raw, body}
const failTimes = new Map(); // clientId -> how many more times to answer 500
const alwaysFail = new Set();
let hookServer, webhook, hookUrl, webhookUrl;

before(async () => {
  hookServer = http.createServer(async (req, res) => {
    const params = JSON.parse(await readBody(req));
    const name = req.url.replace('/1.1/functions/', '');
    hooks.push({ name, params });
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ result: name === '_receiversOffline' ? hookAnswer(params) : {} }));
  });
  hookUrl = `http://127.0.0.1:${await listen(hookServer)}`;
  webhook = http.createServer(async (req, res) => {
    const raw = await readBody(req);
    const body = JSON.parse(raw);
    pushes.push({ method: req.method, url: req.url, headers: req.headers, raw, body, at: Date.now() });
    const left = failTimes.get(body.clientId) ?? 0;
    if (alwaysFail.has(body.clientId) || left > 0) {
      failTimes.set(body.clientId, left - 1);
      res.writeHead(alwaysFail.has(body.clientId) ? 503 : 500);
      res.end('not now');
      return;
    }
    res.writeHead(200);
    res.end('{}');
  });
  webhookUrl = `http://127.0.0.1:${await listen(webhook)}/push`;
});
after(() => Promise.all([hookServer, webhook].map((s) => new Promise((r) => s.close(r)))));
beforeEach(() => { hooks.length = 0; pushes.length = 0; hookAnswer = () => ({}); });

const TEMPLATE = JSON.stringify({ alert: '${fromClientId} wrote in ${convId}', at: '${timestamp}', badge: 'Increment' });
const webhookEnv = (extra = {}) => ({
  TERN_PUSH_PROVIDER: 'webhook',
  TERN_PUSH_WEBHOOK_URL: webhookUrl,
  TERN_PUSH_WEBHOOK_SECRET: 's3cret',
  TERN_PUSH_TEMPLATE: TEMPLATE,
  TERN_PUSH_RETRIES: '3',
  TERN_PUSH_RETRY_DELAY: '40',
  TERN_HOOK_URL: hookUrl,
  TERN_HOOKS: '_receiversOffline',
  ...extra,
});

const pushesFor = (msgId) => pushes.filter((p) => p.body.msgId === msgId);
// No push for msgId: give the server time to have sent one, then look. An absence has no
// event to wait for (a push decided against sends nothing); 400 ms is many times what a
// push to the local webhook takes, and a late one would make this pass, never flake.
async function assertNoPush(msgId, why) {
  await sleep(400);
  assert.deepEqual(pushesFor(msgId).map((p) => p.body.clientId), [], why);
}

test('§10 webhook: one request per offline member, template with ${convId} ${timestamp} ${fromClientId}; the hook sees offlinePeers', () =>
  withServer(webhookEnv(), async (srv) => {
    const tom = await session(srv, uid('Tom'));
    const jerry = uid('Jerry');
    const token = await registerToken(srv, tom, jerry);
    const { cid } = await startConv(tom, [jerry]);
    const before = Math.floor(Date.now() / 1000);
    const ack = await sendMsg(tom, cid, 'hello Jerry');
    const [p] = await eventually(() => pushesFor(ack.uid).length && pushesFor(ack.uid), 'webhook request');
    assert.equal(p.method, 'POST');
    assert.equal(p.url, '/push');
    assert.equal(p.headers['content-type'], 'application/json');
    assert.equal(p.headers['x-tern-attempt'], '1');
    assert.equal(p.headers['x-tern-signature'], `sha256=${createHmac('sha256', 's3cret').update(p.raw).digest('hex')}`);
    const at = Number(p.body.data.at);
    assert.ok(at >= before && at <= Math.ceil(Date.now() / 1000), `timestamp ${p.body.data.at}`);
    assert.deepEqual(p.body, {
      clientId: jerry, convId: cid, fromClientId: tom.peerId, msgId: ack.uid, timestamp: ack.t,
      devices: [{ deviceType: 'ios', deviceToken: token }],
      data: { alert: `${tom.peerId} wrote in ${cid}`, at: p.body.data.at, badge: 'Increment' },
    });
    const h = hooks.filter((c) => c.name === '_receiversOffline');
    assert.equal(h.length, 1);
    assert.deepEqual(h[0].params, {
      fromPeer: tom.peerId, convId: cid, offlinePeers: [jerry], content: 'hello Jerry', timestamp: ack.t,
      mentionAll: false, mentionOfflinePeers: [],
    });
    await sleep(300);
    assert.equal(pushesFor(ack.uid).length, 1, 'exactly one push');
  }));

test('§10 precedence: pushData beats the template; the hook pushMessage beats both (object or stringified)', () =>
  withServer(webhookEnv(), async (srv) => {
    const tom = await session(srv, uid('Tom'));
    const jerry = uid('Jerry');
    await registerToken(srv, tom, jerry);
    const { cid } = await startConv(tom, [jerry]);
    const pushData = JSON.stringify({ alert: 'custom', sound: 'ding', badge: 3 });
    let ack = await sendMsg(tom, cid, 'with pushData', { pushData });
    let [p] = await eventually(() => pushesFor(ack.uid).length && pushesFor(ack.uid), 'pushData push');
    assert.deepEqual(p.body.data, { alert: 'custom', sound: 'ding', badge: 3 });

    hookAnswer = () => ({ pushMessage: JSON.stringify({ alert: 'from the hook', _profile: 'dev' }) }); // as LeanCloud's samples
    ack = await sendMsg(tom, cid, 'hook wins', { pushData });
    [p] = await eventually(() => pushesFor(ack.uid).length && pushesFor(ack.uid), 'hook push');
    assert.deepEqual(p.body.data, { alert: 'from the hook', _profile: 'dev' });

    hookAnswer = () => ({ pushMessage: { alert: { title: 'T', body: 'B' } } });
    ack = await sendMsg(tom, cid, 'hook object');
    [p] = await eventually(() => pushesFor(ack.uid).length && pushesFor(ack.uid), 'hook object push');
    assert.deepEqual(p.body.data, { alert: { title: 'T', body: 'B' } });

    hookAnswer = () => ({ pushMessage: 'just words' });
    ack = await sendMsg(tom, cid, 'hook string');
    [p] = await eventually(() => pushesFor(ack.uid).length && pushesFor(ack.uid), 'hook string push');
    assert.deepEqual(p.body.data, { alert: 'just words' });
  }));

test('§10 muted members get none unless the hook forces; skip and offlinePeers narrow the push', () =>
  withServer(webhookEnv(), async (srv) => {
    const tom = await session(srv, uid('Tom'));
    const [jerry, spike] = [uid('Jerry'), uid('Spike')];
    await registerToken(srv, tom, spike);
    const { cid } = await startConv(tom, [jerry, spike]);
    const j = await session(srv, jerry);
    const r = await j.request({ cmd: 'report', op: 'upload', reportMessage: { initiative: true, type: 'token', data: hexToken() } });
    assert.equal(r.op, 'uploaded');
    const m = await j.request({ cmd: 'conv', op: 'mute', convMessage: { cid } });
    assert.equal(m.op, 'updated', JSON.stringify(m));
    await goOffline(tom, j);

    let ack = await sendMsg(tom, cid, 'muted');
    await eventually(() => pushesFor(ack.uid).length, 'spike push');
    await sleep(400); // and still only spike after a while
    assert.deepEqual(pushesFor(ack.uid).map((p) => p.body.clientId), [spike]);

    hookAnswer = () => ({ force: true });
    ack = await sendMsg(tom, cid, 'forced');
    await eventually(() => pushesFor(ack.uid).length === 2, 'forced pushes');
    assert.deepEqual(pushesFor(ack.uid).map((p) => p.body.clientId).sort(), [jerry, spike].sort());

    hookAnswer = (params) => ({ force: true, offlinePeers: params.offlinePeers.filter((x) => x === jerry) });
    ack = await sendMsg(tom, cid, 'only jerry');
    await eventually(() => pushesFor(ack.uid).length, 'jerry push');
    await sleep(300);
    assert.deepEqual(pushesFor(ack.uid).map((p) => p.body.clientId), [jerry]);

    hookAnswer = () => ({ skip: true });
    ack = await sendMsg(tom, cid, 'skipped');
    await assertNoPush(ack.uid, 'skip: true');
  }));

test('§10 no push to online members, for transient messages or in chat rooms; none without a device', () =>
  withServer(webhookEnv(), async (srv) => {
    const tom = await session(srv, uid('Tom'));
    const [jerry, nodevice] = [uid('Jerry'), uid('NoDevice')];
    await registerToken(srv, tom, jerry);
    const { cid } = await startConv(tom, [jerry, nodevice]);
    const online = await session(srv, jerry);
    let ack = await sendMsg(tom, cid, 'you are here');
    await online.next((c) => c.cmd === 'direct');
    await assertNoPush(ack.uid, 'online member');
    await goOffline(tom, online);

    tom.send({ cmd: 'direct', directMessage: { cid, msg: 'typing…', transient: true } }); // no ack without bit 8
    await tom.echo();
    await sleep(400);
    assert.equal(pushes.length, 0, 'transient');

    const room = (await startConv(tom, [], { transient: true })).cid;
    await sendMsg(tom, room, 'room talk');
    await sleep(300);
    assert.equal(pushes.length, 0, 'chat room');

    ack = await sendMsg(tom, cid, 'back to normal');
    await eventually(() => pushesFor(ack.uid).length, 'push');
    await sleep(200);
    assert.deepEqual(pushesFor(ack.uid).map((p) => p.body.clientId), [jerry], 'nobody without a device');
  }));

// The back end's REST calls, with the master key.
async function master(srv, method, path, body) {
  const res = await fetch(`${srv.httpUrl}${path}`, {
    method,
    headers: { 'X-LC-Id': srv.appId, 'X-LC-Key': `${srv.masterKey},master`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  assert.ok(res.status === 200 || res.status === 201, `${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

test('§10 service conversations: a broadcast with push reaches offline subscribers with a device; to_clients only those chosen; a subscriber\'s own message nobody', () =>
  withServer(webhookEnv({ TERN_HOOKS: '' }), async (srv) => {
    const cid = (await master(srv, 'POST', '/1.2/rtm/service-conversations', { name: 'news' })).objectId;
    const observer = await session(srv, uid('Observer'));
    const [here, away, bare, other] = [uid('Here'), uid('Away'), uid('Bare'), uid('Other')];
    const awayToken = await registerToken(srv, observer, away);
    await registerToken(srv, observer, other);
    for (const id of [here, away, bare]) await master(srv, 'POST', `/1.2/rtm/service-conversations/${cid}/subscribers`, { client_id: id });
    const online = await session(srv, here);
    await online.request({ cmd: 'report', op: 'upload', reportMessage: { initiative: true, type: 'token', data: hexToken() } });

    const push = { alert: 'Breaking news', badge: 1 };
    const bc = await master(srv, 'POST', `/1.2/rtm/service-conversations/${cid}/broadcasts`, { from_client: 'news-bot', message: 'extra!', push });
    await eventually(() => pushesFor(bc['msg-id']).length, 'broadcast push');
    await sleep(400); // and nobody else: not the online one, not the one without a device, not a non-subscriber
    const [p] = pushesFor(bc['msg-id']);
    assert.deepEqual(pushesFor(bc['msg-id']).map((x) => x.body.clientId), [away]);
    assert.deepEqual(p.body, {
      clientId: away, convId: cid, fromClientId: 'news-bot', msgId: bc['msg-id'], timestamp: bc.timestamp,
      devices: [{ deviceType: 'ios', deviceToken: awayToken }], data: push,
    });

    const only = await master(srv, 'POST', `/1.2/rtm/service-conversations/${cid}/messages`,
      { from_client: 'news-bot', message: 'for the online one', to_clients: [here], push_data: { alert: 'psst' } });
    await assertNoPush(only['msg-id'], 'to_clients: that one is online');
    const toAway = await master(srv, 'POST', `/1.2/rtm/service-conversations/${cid}/messages`,
      { from_client: 'news-bot', message: 'for you', to_clients: [away, bare], push_data: { alert: 'psst' } });
    await eventually(() => pushesFor(toAway['msg-id']).length, 'to_clients push');
    await sleep(300);
    assert.deepEqual(pushesFor(toAway['msg-id']).map((x) => [x.body.clientId, x.body.data]), [[away, { alert: 'psst' }]]);

    const own = await sendMsg(online, cid, 'feedback', { pushData: JSON.stringify({ alert: 'nobody' }) });
    await assertNoPush(own.uid, 'a subscriber\'s own message goes to no other subscriber');
  }));

test('§3.3 report upload: other report types are acknowledged and not kept; an empty token is refused', () =>
  withServer(webhookEnv(), async (srv) => {
    const c = await session(srv, uid('C'));
    let r = await c.request({ cmd: 'report', op: 'upload', reportMessage: { initiative: true, type: 'crash', data: 'x' } });
    assert.equal(r.op, 'uploaded', JSON.stringify(r));
    r = await c.request({ cmd: 'report', op: 'upload', reportMessage: { initiative: true, type: 'token', data: '' } });
    assert.equal(r.cmd, 'error', JSON.stringify(r));
    assert.equal(r.errorMessage.code, 4114);
  }));

test('#11 a client keeps its 32 most recently reported devices: 40 reports store 32, and the push goes to the newest', () =>
  withServer(webhookEnv(), async (srv) => {
    const tom = await session(srv, uid('Tom'));
    const many = uid('Many');
    const c = await session(srv, many);
    const tokens = [];
    for (let k = 0; k < 40; k++) {
      tokens.push(hexToken());
      const r = await c.request({ cmd: 'report', op: 'upload', reportMessage: { initiative: true, type: 'token', data: tokens[k] } });
      assert.equal(r.op, 'uploaded', JSON.stringify(r));
      await sleep(2); // report times are in ms: each a later one than the last
    }
    await goOffline(tom, c);
    const { cid } = await startConv(tom, [many]);
    const ack = await sendMsg(tom, cid, 'to every device');
    await eventually(() => pushesFor(ack.uid).length, 'push');
    const sent = pushesFor(ack.uid).flatMap((p) => p.body.devices.map((d) => d.deviceToken));
    assert.deepEqual(sent.sort(), tokens.slice(8).sort(), 'the 32 newest devices, the 8 oldest dropped');
  }));

test('§3.1 deviceToken at login registers the device (Swift); a UDID does not', () =>
  withServer(webhookEnv(), async (srv) => {
    const tom = await session(srv, uid('Tom'));
    const [a, b] = [uid('A'), uid('B')];
    const token = hexToken();
    await goOffline(tom, await session(srv, a, { deviceToken: token }));
    await goOffline(tom, await session(srv, b, { deviceToken: '6F9619FF-8B86-D011-B42D-00C04FC964FF' }));
    const { cid } = await startConv(tom, [a, b]);
    const ack = await sendMsg(tom, cid, 'hi');
    await eventually(() => pushesFor(ack.uid).length, 'push');
    await sleep(300);
    assert.deepEqual(pushesFor(ack.uid).map((p) => [p.body.clientId, p.body.devices]), [[a, [{ deviceType: 'ios', deviceToken: token }]]]);
  }));

test('§10 _Installation over REST: channels name the clients (bound by the master key); PUT changes them; DELETE removes the device', () =>
  withServer(webhookEnv(), async (srv) => {
    const tom = await session(srv, uid('Tom'));
    const [jerry, spike] = [uid('Jerry'), uid('Spike')];
    const { cid } = await startConv(tom, [jerry, spike]);
    let r = await rest(srv, 'POST', '/1.1/installations',
      { deviceType: 'android', installationId: 'inst-1', registrationId: 'reg-1', channels: [jerry, spike], vendor: 'fcm' }, 'master');
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.match(r.body.objectId, /^[0-9a-f]{24}$/);
    assert.match(r.body.createdAt, /^\d{4}-\d\d-\d\dT/);
    assert.equal(r.headers.get('location'), `/1.1/installations/${r.body.objectId}`);
    const id = r.body.objectId;
    r = await rest(srv, 'GET', `/1.1/installations/${id}`);
    assert.equal(r.status, 200);
    assert.deepEqual({ ...r.body, createdAt: 0, updatedAt: 0 }, {
      objectId: id, deviceType: 'android', installationId: 'inst-1', registrationId: 'reg-1', channels: [jerry, spike],
      vendor: 'fcm', createdAt: 0, updatedAt: 0,
    });
    // the same device again, with the app key (as the SDK re-saves it): one installation,
    // updated, and its channels stay bound — the device is the same
    r = await rest(srv, 'POST', '/1.1/installations', { deviceType: 'android', registrationId: 'reg-1', channels: [jerry, spike], badge: 0 });
    assert.equal(r.status, 200);
    assert.equal(r.body.objectId, id);

    let ack = await sendMsg(tom, cid, 'both');
    await eventually(() => pushesFor(ack.uid).length === 2, 'two pushes');
    for (const p of pushesFor(ack.uid)) assert.deepEqual(p.body.devices, [{ deviceType: 'android', deviceToken: 'reg-1', installation: id }]);

    r = await rest(srv, 'PUT', `/1.1/installations/${id}`, { channels: { __op: 'Remove', objects: [spike] } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(r.body.updatedAt);
    ack = await sendMsg(tom, cid, 'jerry only');
    await eventually(() => pushesFor(ack.uid).length, 'push');
    await sleep(300);
    assert.deepEqual(pushesFor(ack.uid).map((p) => p.body.clientId), [jerry]);

    r = await rest(srv, 'PUT', `/1.1/installations/${id}`, { channels: { __op: 'AddUnique', objects: [spike, jerry] } });
    assert.equal(r.status, 200);
    assert.deepEqual((await rest(srv, 'GET', `/1.1/installations/${id}`)).body.channels, [jerry, spike]);

    assert.equal((await rest(srv, 'PUT', `/1.1/installations/${id}`, { channels: 'nope' })).status, 400);
    assert.equal((await rest(srv, 'PUT', '/1.1/installations/000000000000000000000000', { badge: 1 })).status, 404);
    assert.equal((await rest(srv, 'POST', '/1.1/installations', { deviceType: 'ios', channels: [jerry] })).status, 400);
    const bad = await fetch(`${srv.httpUrl}/1.1/installations`, { method: 'POST', body: '{}', headers: { 'X-LC-Id': srv.appId, 'X-LC-Key': 'wrong' } });
    assert.equal(bad.status, 401);

    assert.equal((await rest(srv, 'DELETE', `/1.1/installations/${id}`)).status, 403, 'deleting takes the master key');
    r = await rest(srv, 'DELETE', `/1.1/installations/${id}`, undefined, 'master');
    assert.equal(r.status, 200);
    assert.equal((await rest(srv, 'GET', `/1.1/installations/${id}`)).status, 404);
    ack = await sendMsg(tom, cid, 'nobody');
    await assertNoPush(ack.uid, 'installation deleted');
  }));

test('#11 §6 who may bind: the app key alone routes nobody\'s pushes to its device; the client\'s own session token or the master key do', () =>
  withServer(webhookEnv({ TERN_HOOKS: '' }), async (srv) => {
    const tom = await session(srv, uid('Tom'));
    const [jerry, spike] = [uid('Jerry'), uid('Spike')];
    const { cid } = await startConv(tom, [jerry, spike]);
    const devicesOf = (msgId) => pushesFor(msgId).map((p) => [p.body.clientId, p.body.devices.map((d) => d.deviceToken)]).sort();

    // someone with the app key (every copy of the app has it) claims Jerry's channel
    let r = await rest(srv, 'POST', '/1.1/installations', { deviceType: 'android', registrationId: 'evil-1', channels: [jerry] });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const evil = r.body.objectId;
    assert.deepEqual((await rest(srv, 'GET', `/1.1/installations/${evil}`)).body.channels, [jerry], 'saved as sent');
    let ack = await sendMsg(tom, cid, 'for Jerry\'s eyes only');
    await assertNoPush(ack.uid, 'the app key alone binds nobody');

    // Jerry's own app, with Jerry's session token: Jerry binds, Spike (not vouched for) does not
    const j = await session(srv, jerry);
    const st = j.openReply.sessionMessage.st;
    r = await rest(srv, 'POST', '/1.1/installations', { deviceType: 'android', registrationId: 'jerry-phone', channels: [jerry, spike] }, { st });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const mine = r.body.objectId;
    await goOffline(tom, j);
    ack = await sendMsg(tom, cid, 'hi Jerry');
    await eventually(() => pushesFor(ack.uid).length, 'Jerry\'s push');
    await sleep(300);
    assert.deepEqual(devicesOf(ack.uid), [[jerry, ['jerry-phone']]]);

    // the app key cannot point that installation at another device: the binding goes
    r = await rest(srv, 'PUT', `/1.1/installations/${mine}`, { registrationId: 'evil-2' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    ack = await sendMsg(tom, cid, 'after the switch');
    await assertNoPush(ack.uid, 'a new device is not bound by the old binding');
    // nor does the app key with a token that was logged out
    const j2 = await session(srv, jerry);
    const dead = j2.openReply.sessionMessage.st;
    assert.equal((await j2.request({ cmd: 'session', op: 'close' })).op, 'closed');
    r = await rest(srv, 'PUT', `/1.1/installations/${evil}`, { channels: [jerry] }, { st: dead });
    assert.equal(r.status, 200);
    ack = await sendMsg(tom, cid, 'still private');
    await assertNoPush(ack.uid, 'a revoked token vouches for nobody');
    // a token of another client vouches only for that client
    const s = await session(srv, spike);
    r = await rest(srv, 'PUT', `/1.1/installations/${evil}`, { channels: [jerry, spike] }, { st: s.openReply.sessionMessage.st });
    assert.equal(r.status, 200);
    await goOffline(tom, s);
    ack = await sendMsg(tom, cid, 'spike only');
    await eventually(() => pushesFor(ack.uid).length, 'Spike\'s push');
    await sleep(300);
    assert.deepEqual(devicesOf(ack.uid), [[spike, ['evil-1']]]);

    // the master key binds whom it names
    r = await rest(srv, 'PUT', `/1.1/installations/${mine}`, { channels: [jerry] }, 'master');
    assert.equal(r.status, 200);
    ack = await sendMsg(tom, cid, 'back end says so');
    await eventually(() => pushesFor(ack.uid).length === 2, 'both pushes');
    assert.deepEqual(devicesOf(ack.uid), [[jerry, ['evil-2']], [spike, ['evil-1']]]);
    assert.equal((await rest(srv, 'DELETE', `/1.1/installations/${evil}`)).status, 403);
  }));

test('§10 _Installation writes answer after their commit: back-to-back channel changes are all kept', () =>
  withServer(webhookEnv(), async (srv) => {
    let r = await rest(srv, 'POST', '/1.1/installations', { deviceType: 'ios', deviceToken: hexToken(), channels: ['a'] });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const id = r.body.objectId;
    // each request is sent the moment the previous one is answered, and reads what it left
    for (const [op, ch] of [['AddUnique', 'b'], ['Remove', 'a'], ['AddUnique', 'c'], ['AddUnique', 'd'], ['Remove', 'b']]) {
      r = await rest(srv, 'PUT', `/1.1/installations/${id}`, { channels: { __op: op, objects: [ch] } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    r = await rest(srv, 'GET', `/1.1/installations/${id}`);
    assert.deepEqual([...r.body.channels].sort(), ['c', 'd']);
    r = await rest(srv, 'DELETE', `/1.1/installations/${id}`, undefined, 'master');
    assert.equal(r.status, 200);
    r = await rest(srv, 'GET', `/1.1/installations/${id}`);
    assert.equal(r.status, 404, 'deleted, and the answer came after the delete committed');
  }));

test('retries with backoff: a webhook failing twice gets 3 requests and one delivery; one always failing gets push_retries+1 and a dead letter', () =>
  withServer(webhookEnv(), async (srv) => {
    const tom = await session(srv, uid('Tom'));
    const [flaky, dead] = [uid('Flaky'), uid('Dead')];
    await registerToken(srv, tom, flaky);
    const deadToken = await registerToken(srv, tom, dead);
    failTimes.set(flaky, 2);
    alwaysFail.add(dead);
    const { cid } = await startConv(tom, [flaky, dead]);
    const ack = await sendMsg(tom, cid, 'try hard');
    const file = join(srv.dir, 'push-dead-letter.jsonl');
    await eventually(() => existsSync(file) && readFileSync(file, 'utf8').includes(dead), 'dead letter', 8000);
    await sleep(300);
    const to = (c) => pushesFor(ack.uid).filter((p) => p.body.clientId === c);
    assert.deepEqual(to(flaky).map((p) => p.headers['x-tern-attempt']), ['1', '2', '3']);
    assert.deepEqual(to(dead).map((p) => p.headers['x-tern-attempt']), ['1', '2', '3', '4']);
    // backoff: each wait at least the doubled delay (40, 80, 160 ms)
    const gaps = to(dead).slice(1).map((p, i) => p.at - to(dead)[i].at);
    gaps.forEach((g, i) => assert.ok(g >= 40 * 2 ** i - 5, `gap ${i}: ${g} ms`));
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 1);
    assert.deepEqual({ ...lines[0], at: 0, timestamp: 0, data: 0 }, {
      at: 0, provider: 'webhook', reason: 'retries exhausted', clientId: dead, convId: cid, fromClientId: tom.peerId,
      msgId: ack.uid, timestamp: 0, devices: [{ deviceType: 'ios', deviceToken: deadToken }], attempts: 4, status: 503,
      data: 0,
    });
    assert.equal(lines[0].data.alert, `${tom.peerId} wrote in ${cid}`);
    const metrics = await (await fetch(`${srv.httpUrl}/metrics`, { headers: { Authorization: `Bearer ${srv.masterKey}` } })).text();
    assert.match(metrics, /tern_push_requests_total\{provider="webhook"\} 7/);
    assert.match(metrics, /tern_push_delivered_total\{provider="webhook"\} 1/);
    assert.match(metrics, /tern_push_retries_total\{provider="webhook"\} 5/);
    assert.match(metrics, /tern_push_dead_letters_total\{provider="webhook"\} 1/);
    // every attempt timed, every failed one an error (7 requests, 1 delivered)
    assert.match(metrics, /\ntern_push_seconds_count 7\n/);
    assert.match(metrics, /\ntern_push_errors_total 6\n/);
  }));

test('a push waiting for its retry when the server stops goes to the dead-letter log', async () => {
  const srv = await (await import('../lib/server.mjs')).startServer({ env: webhookEnv({ TERN_PUSH_RETRY_DELAY: '60000' }) });
  try {
    const tom = await session(srv, uid('Tom'));
    const dead = uid('Dead');
    await registerToken(srv, tom, dead);
    alwaysFail.add(dead);
    const { cid } = await startConv(tom, [dead]);
    const ack = await sendMsg(tom, cid, 'bye');
    await eventually(() => pushesFor(ack.uid).length, 'first attempt');
    await closeAll(srv);
  } finally {
    await srv.stop({ keepData: true });
  }
  const lines = readFileSync(join(srv.dir, 'push-dead-letter.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 1);
  assert.equal(lines[0].reason, 'server stopping');
  assert.equal(lines[0].attempts, 1);
  rmSync(srv.dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- APNs over HTTP/2

function b64urlJson(s) { return JSON.parse(Buffer.from(s, 'base64url').toString()); }

test('APNs: POST /3/device/<token> over HTTP/2 with an ES256 provider token, topic, push type, expiry and the aps body', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyPath = join(tmp, 'AuthKey_ABC123DEFG.p8');
  writeFileSync(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const seen = { prod: [], sandbox: [] };
  const gone = new Set();
  let expireOnce = false;
  const h2 = (which) => http2.createServer((req, res) => {
    readBody(req).then((raw) => {
      seen[which].push({ method: req.method, path: req.url, headers: req.headers, body: JSON.parse(raw), at: Date.now() });
      const token = req.url.split('/').pop();
      if (expireOnce) {
        expireOnce = false;
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ reason: 'ExpiredProviderToken' }));
        return;
      }
      if (gone.has(token)) {
        res.writeHead(410, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ reason: 'Unregistered', timestamp: Date.now() }));
        return;
      }
      res.writeHead(200, { 'apns-id': 'x' });
      res.end();
    });
  });
  const prod = h2('prod'), sandbox = h2('sandbox');
  const [pp, sp] = [await listen(prod), await listen(sandbox)];
  try {
    await withServer({
      TERN_PUSH_PROVIDER: 'apns',
      TERN_APNS_KEY_PATH: keyPath,
      TERN_APNS_KEY_ID: 'ABC123DEFG',
      TERN_APNS_TEAM_ID: 'DEF123GHIJ',
      TERN_APNS_TOPIC: 'com.example.tern',
      TERN_APNS_HOST: `http://127.0.0.1:${pp}`,
      TERN_APNS_SANDBOX_HOST: `http://127.0.0.1:${sp}`,
      TERN_PUSH_TEMPLATE: JSON.stringify({ alert: 'new message', badge: 'Increment', sound: 'default' }),
      TERN_PUSH_RETRY_DELAY: '40',
    }, async (srv) => {
      const tom = await session(srv, uid('Tom'));
      const jerry = uid('Jerry');
      const token = await registerToken(srv, tom, jerry);
      const { cid } = await startConv(tom, [jerry]);
      const t0 = Math.floor(Date.now() / 1000);
      const pushData = JSON.stringify({ alert: { title: 'Tom', body: 'hello' }, badge: 'Increment', category: 'MSG', 'thread-id': cid, convId: cid });
      await sendMsg(tom, cid, 'hello', { pushData });
      const [r] = await eventually(() => seen.prod.length && seen.prod, 'APNs request');
      assert.equal(r.method, 'POST');
      assert.equal(r.path, `/3/device/${token}`);
      assert.equal(r.headers['apns-topic'], 'com.example.tern');
      assert.equal(r.headers['apns-push-type'], 'alert');
      assert.equal(r.headers['apns-priority'], '10');
      const exp = Number(r.headers['apns-expiration']);
      assert.ok(Math.abs(exp - (t0 + 7 * 86400)) <= 5, `apns-expiration ${exp}`);
      const m = /^bearer (.+)$/.exec(r.headers.authorization);
      assert.ok(m, r.headers.authorization);
      const [h, c, s] = m[1].split('.');
      assert.deepEqual(b64urlJson(h), { alg: 'ES256', kid: 'ABC123DEFG' });
      const claims = b64urlJson(c);
      assert.deepEqual(Object.keys(claims).sort(), ['iat', 'iss']);
      assert.equal(claims.iss, 'DEF123GHIJ');
      assert.ok(Math.abs(claims.iat - t0) <= 5);
      const sig = Buffer.from(s, 'base64url');
      assert.equal(sig.length, 64, 'raw r||s');
      assert.ok(cryptoVerify('sha256', Buffer.from(`${h}.${c}`), { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig), 'JWT signature');
      assert.deepEqual(r.body, { aps: { alert: { title: 'Tom', body: 'hello' }, badge: 1, category: 'MSG', 'thread-id': cid }, convId: cid });

      // the template; the badge keeps counting; the provider token is reused
      await sendMsg(tom, cid, 'again');
      await eventually(() => seen.prod.length === 2, 'second request');
      assert.deepEqual(seen.prod[1].body, { aps: { alert: 'new message', badge: 2, sound: 'default' } });
      assert.equal(seen.prod[1].headers.authorization, r.headers.authorization);
      // a PUT of the installation-less badge is not possible; _profile dev goes to the sandbox
      await sendMsg(tom, cid, 'dev', { pushData: JSON.stringify({ alert: 'sandbox', _profile: 'dev', 'content-available': 1 }) });
      const [sb] = await eventually(() => seen.sandbox.length && seen.sandbox, 'sandbox request');
      assert.deepEqual(sb.body, { aps: { alert: 'sandbox', 'content-available': 1 } });
      assert.equal(sb.path, `/3/device/${token}`);

      // 403 ExpiredProviderToken: a new provider token, and the push goes through on the retry
      expireOnce = true;
      const before = seen.prod.length;
      await sendMsg(tom, cid, 'expired');
      await eventually(() => seen.prod.length === before + 2, 'retry with a new token');
      const [x, y] = seen.prod.slice(before);
      assert.equal(x.headers.authorization, r.headers.authorization);
      assert.notEqual(y.headers.authorization, x.headers.authorization);
      const [yh, yc, ys] = y.headers.authorization.slice(7).split('.');
      assert.ok(cryptoVerify('sha256', Buffer.from(`${yh}.${yc}`), { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(ys, 'base64url')));

      // 410 Unregistered: dead letter, and the token is forgotten
      gone.add(token);
      const ack = await sendMsg(tom, cid, 'gone');
      const file = join(srv.dir, 'push-dead-letter.jsonl');
      await eventually(() => existsSync(file) && readFileSync(file, 'utf8').includes(ack.uid), 'dead letter');
      const line = JSON.parse(readFileSync(file, 'utf8').trim().split('\n').pop());
      assert.equal(line.reason, 'device token rejected');
      assert.equal(line.status, 410);
      assert.equal(line.error, 'Unregistered');
      assert.equal(line.attempts, 1);
      const n = seen.prod.length;
      await sendMsg(tom, cid, 'after');
      await sleep(400);
      assert.equal(seen.prod.length, n, 'no request to a forgotten token');
    });
  } finally {
    await Promise.all([prod, sandbox].map((s) => new Promise((r) => s.close(r))));
  }
});

// ---------------------------------------------------------------- FCM HTTP v1

test('FCM: a JWT-bearer grant signed RS256 buys the access token once; messages:send gets token, notification and string data', async () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const tokenCalls = [];
  const sends = [];
  let rejectOnce = false;
  const fake = http.createServer(async (req, res) => {
    const raw = await readBody(req);
    if (req.url === '/token') {
      tokenCalls.push({ headers: req.headers, form: new URLSearchParams(raw) });
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ access_token: 'ya29.test-token', expires_in: 3599, token_type: 'Bearer' }));
      return;
    }
    sends.push({ path: req.url, headers: req.headers, body: JSON.parse(raw) });
    if (rejectOnce) {
      rejectOnce = false;
      res.writeHead(401, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 401, status: 'UNAUTHENTICATED' } }));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ name: 'projects/p1/messages/1' }));
  });
  const port = await listen(fake);
  const tokenUrl = `http://127.0.0.1:${port}/token`;
  const credPath = join(tmp, 'service-account.json');
  writeFileSync(credPath, JSON.stringify({
    type: 'service_account', project_id: 'p1', private_key_id: 'kid-1',
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    client_email: 'tern@p1.iam.gserviceaccount.com', token_uri: tokenUrl,
  }));
  try {
    await withServer({
      TERN_PUSH_PROVIDER: 'fcm',
      TERN_FCM_CREDENTIALS_PATH: credPath,
      TERN_FCM_BASE_URL: `http://127.0.0.1:${port}`,
      TERN_PUSH_RETRY_DELAY: '40',
    }, async (srv) => {
      const tom = await session(srv, uid('Tom'));
      const jerry = uid('Jerry');
      const r = await rest(srv, 'POST', '/1.1/installations', { deviceType: 'android', installationId: 'i1', registrationId: 'fcm-reg-1', channels: [jerry] }, 'master');
      assert.equal(r.status, 201);
      const { cid } = await startConv(tom, [jerry]);
      const t0 = Math.floor(Date.now() / 1000);
      await sendMsg(tom, cid, 'hello', { pushData: JSON.stringify({ alert: 'hello', title: 'Tom', convId: cid, n: 1, ios: { alert: 'not for android' } }) });
      const [s] = await eventually(() => sends.length && sends, 'FCM send');
      assert.equal(s.path, '/v1/projects/p1/messages:send');
      assert.equal(s.headers.authorization, 'Bearer ya29.test-token');
      assert.deepEqual(s.body, { message: { token: 'fcm-reg-1', notification: { title: 'Tom', body: 'hello' }, data: { convId: cid, n: '1' }, android: { ttl: '604800s' } } });
      assert.equal(tokenCalls.length, 1);
      const { form, headers } = tokenCalls[0];
      assert.equal(headers['content-type'], 'application/x-www-form-urlencoded');
      assert.equal(form.get('grant_type'), 'urn:ietf:params:oauth:grant-type:jwt-bearer');
      const [h, c, sig] = form.get('assertion').split('.');
      assert.deepEqual(b64urlJson(h), { alg: 'RS256', typ: 'JWT', kid: 'kid-1' });
      const claims = b64urlJson(c);
      assert.equal(claims.iss, 'tern@p1.iam.gserviceaccount.com');
      assert.equal(claims.scope, 'https://www.googleapis.com/auth/firebase.messaging');
      assert.equal(claims.aud, tokenUrl);
      assert.ok(Math.abs(claims.iat - t0) <= 5);
      assert.equal(claims.exp - claims.iat, 3600);
      assert.ok(cryptoVerify('sha256', Buffer.from(`${h}.${c}`), publicKey, Buffer.from(sig, 'base64url')), 'assertion signature');

      await sendMsg(tom, cid, 'again', { pushData: JSON.stringify({ alert: { title: 'T', body: 'B' } }) });
      await eventually(() => sends.length === 2, 'second send');
      assert.deepEqual(sends[1].body.message.notification, { title: 'T', body: 'B' });
      assert.equal(tokenCalls.length, 1, 'the access token is reused');

      rejectOnce = true; // the token went stale early: the retry buys a new one
      await sendMsg(tom, cid, 'stale', { pushData: JSON.stringify({ alert: 'once more' }) });
      await eventually(() => sends.length === 4, 'rejected send and its retry');
      assert.equal(tokenCalls.length, 2);
      assert.deepEqual(sends[3].body.message.notification, { body: 'once more' });
    });
  } finally {
    await new Promise((r) => fake.close(r));
  }
});

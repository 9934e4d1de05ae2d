// The operator's log (issue #15 point 2, docs/operations.md "Logs"): one line per
// connection open/close, login and logout, refused request and HTTP request at info level;
// log_format = json gives one JSON object per line with the documented keys; no message
// content and no key or token ever appears; X-Forwarded-For is believed only from
// trusted_proxies, and then the client's address is the one logged and limited.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { closeAll, connect, login, sendMsg, session, startConv, uid } from '../lib/proto-client.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'tern-logs-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** GET on a connection of its own, closed after the answer (no keep-alive pool): the status. */
const getOnce = (url, headers) => new Promise((resolve, reject) => {
  http.get(url, { headers, agent: false }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); }).on('error', reject);
});

const readJsonLog = (path) => readFileSync(path, 'utf8').split('\n').filter(Boolean).map((line) => {
  try { return JSON.parse(line); } catch { assert.fail(`not a JSON line: ${line}`); }
});

/** Polls the log until pred holds for its lines (lines are written as events happen). */
async function logUntil(path, pred, what, ms = 5000) {
  const until = Date.now() + ms;
  for (;;) {
    const lines = readJsonLog(path);
    if (pred(lines)) return lines;
    if (Date.now() > until) assert.fail(`the log never showed ${what}:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Keys every line of a kind carries (docs/operations.md lists them): the stable interface.
const KEYS = {
  'conn.open': ['ts', 'level', 'event', 'worker', 'conn', 'addr', 'tls'],
  'conn.close': ['ts', 'level', 'event', 'worker', 'conn', 'addr', 'via', 'protocol', 'duration_ms', 'code'],
  login: ['ts', 'level', 'event', 'addr', 'client', 'tag', 'result', 'code'],
  logout: ['ts', 'level', 'event', 'addr', 'client', 'tag', 'code', 'duration_ms'],
  refused: ['ts', 'level', 'event', 'addr', 'client', 'cmd', 'op', 'code', 'reason', 'held_back'],
  http: ['ts', 'level', 'event', 'addr', 'method', 'path', 'status', 'code', 'duration_ms'],
};

test('json log: connection, login, logout, refusal and HTTP lines with stable keys; no content, keys or tokens anywhere', async () => {
  const log = join(tmp, 'json.log');
  const master = 'MasterKeyNeverInLogs0123';
  const appKey = 'AppKeyNeverInLogs0123456';
  const server = await startServer({ env: { TERN_MASTER_KEY: master, TERN_APP_KEY: appKey, TERN_LOG_FILE: log, TERN_LOG_FORMAT: 'json', TERN_LOG_LEVEL: 'info' } });
  try {
    const secretText = 'SECRET-CONTENT-7f3a9c';
    const [a, b] = [uid('loga'), uid('logb')];
    const ca = await session(server, a, { extra: { tag: 'mobile' } });
    const st = ca.openReply.sessionMessage.st;
    assert.ok(st && st.length > 20, 'a session token to look for');
    const cb = await session(server, b);
    const conv = await startConv(ca, [b]);
    await sendMsg(ca, conv.cid, secretText);
    await cb.next((p) => p.cmd === 'direct');
    // a refused request: a message to a conversation that does not exist (4401)
    const bad = await ca.request({ cmd: 'direct', directMessage: { cid: '0123456789abcdef01234567', msg: secretText } });
    assert.equal(bad.cmd, 'error');
    // a refused login: a forged session token for a client id
    const cr = await connect(server);
    const r = await cr.request({ cmd: 'session', op: 'open', appId: server.appId, peerId: uid('forged'), sessionMessage: { r: true, st: `${st}x` } });
    assert.equal(r.cmd, 'error');
    // REST calls with every kind of key: app key, master key, X-LC-Sign, bearer, session token
    const hdr = { 'X-LC-Id': server.appId, 'X-LC-Key': `${master},master`, 'Content-Type': 'application/json' };
    let res = await fetch(`${server.httpUrl}/1.2/rtm/conversations/${conv.cid}/messages`, {
      method: 'POST', headers: hdr, body: JSON.stringify({ from_client: a, message: `${secretText}-rest` }),
    });
    assert.equal(res.status, 200, await res.text());
    res = await fetch(`${server.httpUrl}/1.2/rtm/conversations/${conv.cid}/messages?limit=5&client_id=${a}`, { headers: hdr });
    assert.equal(res.status, 200);
    res = await fetch(`${server.httpUrl}/1.1/rtm/notifications?client_id=${a}`, {
      headers: { 'X-LC-Id': server.appId, 'X-LC-Key': appKey, 'X-LC-IM-Session-Token': st },
    });
    assert.equal(res.status, 200, await res.text());
    res = await fetch(`${server.httpUrl}/metrics`, { headers: { Authorization: `Bearer ${master}` } });
    assert.equal(res.status, 200);
    res = await fetch(`${server.httpUrl}/1.2/rtm/conversations`, { headers: { 'X-LC-Id': server.appId, 'X-LC-Key': 'wrong-key' } });
    assert.equal(res.status, 401);
    await ca.request({ cmd: 'session', op: 'close' });
    await ca.close();
    await closeAll(server);

    const lines = await logUntil(log, (ls) => ls.filter((l) => l.event === 'conn.close' && /^ws-/.test(l.protocol)).length >= 3
      && ls.some((l) => l.event === 'logout' && l.client === b), 'three WebSocket closes and b\'s logout');
    // every line is an object with ts, level and either event or msg
    for (const l of lines) {
      assert.match(l.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.ok(['error', 'warn', 'info', 'debug'].includes(l.level));
      assert.ok(typeof l.event === 'string' || typeof l.msg === 'string', JSON.stringify(l));
      if (KEYS[l.event]) assert.deepEqual(Object.keys(l).slice(0, KEYS[l.event].length), KEYS[l.event], `keys of ${JSON.stringify(l)}`);
    }
    const loginA = lines.find((l) => l.event === 'login' && l.client === a);
    assert.equal(loginA.result, 'ok');
    assert.equal(loginA.tag, 'mobile');
    assert.equal(loginA.addr, '127.0.0.1');
    const refusedLogin = lines.find((l) => l.event === 'login' && l.result === 'refused');
    assert.equal(refusedLogin.code, 4112);
    const logoutA = lines.find((l) => l.event === 'logout' && l.client === a);
    assert.equal(logoutA.code, 1000, 'a session/close is a logout with 1000');
    assert.equal(logoutA.tag, 'mobile');
    const refused = lines.find((l) => l.event === 'refused' && l.code === 4401);
    assert.ok(refused, 'the 4401 refusal has a line');
    assert.equal(refused.cmd, 'direct');
    assert.equal(refused.client, a);
    assert.equal(refused.reason, 'INVALID_MESSAGING_TARGET');
    const ws = lines.filter((l) => l.event === 'conn.close' && /^ws-/.test(l.protocol));
    assert.ok(ws.every((l) => l.protocol === 'ws-protobuf' && Number.isInteger(l.code) && l.duration_ms >= 0));
    assert.ok(lines.filter((l) => l.event === 'conn.open').length >= 4);
    const post = lines.find((l) => l.event === 'http' && l.method === 'POST' && l.path === `/1.2/rtm/conversations/${conv.cid}/messages`);
    assert.equal(post.status, 200);
    assert.ok(post.duration_ms >= 0);
    const get = lines.find((l) => l.event === 'http' && l.method === 'GET' && l.path.startsWith(`/1.2/rtm/conversations/${conv.cid}/messages`));
    assert.equal(get.path, `/1.2/rtm/conversations/${conv.cid}/messages`, 'the path is logged without its query');
    const denied = lines.find((l) => l.event === 'http' && l.status === 401);
    assert.equal(denied.path, '/1.2/rtm/conversations');
    assert.equal(denied.code, 401);
    // nothing of the content, the keys or the token, in any form
    const text = readFileSync(log, 'utf8');
    for (const secret of [secretText, master, appKey, st, st.slice(0, 24), Buffer.from(secretText).toString('base64')]) {
      assert.ok(!text.includes(secret), `the log contains ${secret}`);
    }
  } finally {
    await closeAll(server);
    await server.stop();
  }
});

test('text log: the same events as key=value lines; nothing per message at info level', async () => {
  const log = join(tmp, 'text.log');
  const server = await startServer({ env: { TERN_LOG_FILE: log } });
  try {
    const [a, b] = [uid('txa'), uid('txb')];
    const ca = await session(server, a);
    const cb = await session(server, b);
    const conv = await startConv(ca, [b]);
    const before = readFileSync(log, 'utf8').split('\n').length;
    for (let i = 0; i < 20; i++) await sendMsg(ca, conv.cid, `m${i}`);
    await cb.echo();
    const after = readFileSync(log, 'utf8').split('\n').length;
    assert.equal(after, before, 'twenty messages wrote no line');
    await closeAll(server);
    const until = Date.now() + 5000;
    while (!/ logout .*client=txb/.test(readFileSync(log, 'utf8')) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    const text = readFileSync(log, 'utf8');
    assert.match(text, new RegExp(`Z info  login addr=127\\.0\\.0\\.1 client=${a} tag=- result=ok code=0 reconnect=0\\n`));
    assert.match(text, /Z info  conn\.close worker=\d+ conn=\d+ addr=127\.0\.0\.1 via=- protocol=ws-protobuf duration_ms=\d+ code=1000\n/);
    assert.match(text, new RegExp(`Z info  logout addr=127\\.0\\.0\\.1 client=${b} tag=- code=1000 duration_ms=\\d+\\n`));
  } finally {
    await closeAll(server);
    await server.stop();
  }
});

test('X-Forwarded-For: believed only from trusted_proxies; then the client address is logged and limited per IP', async () => {
  const log = join(tmp, 'xff.log');
  const server = await startServer({ env: { TERN_LOG_FILE: log, TERN_LOG_FORMAT: 'json', TERN_TRUSTED_PROXIES: '10.9.0.0/16, 127.0.0.1', TERN_MAX_CONNS_PER_IP: '2' } });
  const untrusted = await startServer({ env: { TERN_LOG_FILE: join(tmp, 'xff2.log'), TERN_LOG_FORMAT: 'json', TERN_MAX_CONNS_PER_IP: '2' } });
  try {
    // the rightmost address that is not a trusted proxy is the client; what the client wrote to its left proves nothing
    const xff = '198.51.100.1, 203.0.113.7, 10.9.4.4';
    assert.equal(await getOnce(`${server.httpUrl}/health`, { 'X-Forwarded-For': xff }), 200);
    // per-IP limit on the forwarded address: two WebSockets for 203.0.113.7, the third is refused
    const c1 = await connect(server, { headers: { 'X-Forwarded-For': '203.0.113.7' } });
    const c2 = await connect(server, { headers: { 'X-Forwarded-For': '203.0.113.7' } });
    await assert.rejects(connect(server, { headers: { 'X-Forwarded-For': '203.0.113.7' } }), (e) => e.statusCode === 429);
    // another client behind the same proxy is not affected, and neither is the proxy itself (more than 2 connections)
    const c3 = await connect(server, { headers: { 'X-Forwarded-For': '203.0.113.8' } });
    await login(c3, uid('xff'));
    await c1.echo();
    await c2.echo();
    // garbage in the header: the proxy's own address stands
    assert.equal(await getOnce(`${server.httpUrl}/health`, { 'X-Forwarded-For': 'not-an-ip' }), 200);
    await closeAll(server);
    const lines = await logUntil(log, (ls) => ls.filter((l) => l.event === 'http' && l.path === '/health').length >= 2
      && ls.some((l) => l.event === 'login'), 'the two /health lines and the login');
    const health = lines.filter((l) => l.event === 'http' && l.path === '/health');
    assert.equal(health[0].addr, '203.0.113.7', 'the client behind the trusted proxies');
    assert.equal(health[1].addr, '127.0.0.1', 'no address in the header: the peer');
    assert.equal(lines.find((l) => l.event === 'login').addr, '203.0.113.8');
    await logUntil(log, (ls) => ls.some((l) => l.event === 'conn.close' && l.addr === '203.0.113.8' && l.via === '127.0.0.1'), 'the close line with via');
    // a server that trusts no proxy ignores the header: the address is the peer's, and the limit counts the peer
    assert.equal(await getOnce(`${untrusted.httpUrl}/health`, { 'X-Forwarded-For': '203.0.113.9' }), 200);
    const ul = await logUntil(join(tmp, 'xff2.log'), (ls) => ls.some((l) => l.event === 'http'), 'the /health line');
    assert.equal(ul.find((l) => l.event === 'http').addr, '127.0.0.1');
    await logUntil(join(tmp, 'xff2.log'), (ls) => ls.some((l) => l.event === 'conn.close'), 'the fetch connection closed');
    const u1 = await connect(untrusted, { headers: { 'X-Forwarded-For': '203.0.113.9' } });
    const u2 = await connect(untrusted, { headers: { 'X-Forwarded-For': '203.0.113.10' } });
    await assert.rejects(connect(untrusted, { headers: { 'X-Forwarded-For': '203.0.113.11' } }), (e) => e.statusCode === 429);
    await u1.close();
    await u2.close();
  } finally {
    await closeAll();
    await server.stop();
    await untrusted.stop();
  }
});

test('X-Forwarded-For in two header lines (a proxy that adds its own, as HAProxy does): the last line\'s address is the client', async () => {
  const log = join(tmp, 'xff-lines.log');
  const server = await startServer({ env: { TERN_LOG_FILE: log, TERN_LOG_FORMAT: 'json', TERN_TRUSTED_PROXIES: '127.0.0.1' } });
  try {
    // the client's own line comes first and proves nothing; the proxy's line is the last
    assert.equal(await getOnce(`${server.httpUrl}/health`, { 'X-Forwarded-For': ['198.51.100.66', '203.0.113.44'] }), 200);
    const lines = await logUntil(log, (ls) => ls.some((l) => l.event === 'http' && l.path === '/health'), 'the /health line');
    assert.equal(lines.find((l) => l.event === 'http' && l.path === '/health').addr, '203.0.113.44');
  } finally {
    await server.stop();
  }
});

test('a bad trusted_proxies or log_format stops the start with a message', async () => {
  await assert.rejects(startServer({ env: { TERN_TRUSTED_PROXIES: '10.0.0.0/33' } }), /trusted_proxies: "10\.0\.0\.0\/33" is not an address or CIDR/);
  await assert.rejects(startServer({ env: { TERN_LOG_FORMAT: 'xml' } }), /log_format must be text or json/);
});

test('SIGHUP switches log_format and metrics_token without a restart', async () => {
  const log = join(tmp, 'hup.log');
  const conf = join(tmp, 'hup.conf');
  writeFileSync(conf, `log_file = ${log}\nlog_format = text\nmetrics_token = first-token-0123456789\n`);
  const server = await startServer({ env: { TERN_CONFIG: conf } });
  try {
    const scrape = (t) => fetch(`${server.httpUrl}/metrics`, { headers: { Authorization: `Bearer ${t}` } }).then((r) => r.status);
    assert.equal(await scrape('first-token-0123456789'), 200);
    writeFileSync(conf, `log_file = ${log}\nlog_format = json\nmetrics_token = second-token-0123456789\n`);
    server.child.kill('SIGHUP');
    const until = Date.now() + 10000;
    while (!/SIGHUP: log reopened; reloaded: .*log_format/.test(readFileSync(log, 'utf8'))) {
      assert.ok(Date.now() < until, `no reload line:\n${readFileSync(log, 'utf8')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(await scrape('first-token-0123456789'), 401);
    assert.equal(await scrape('second-token-0123456789'), 200);
    const after = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    const httpLine = after.filter((l) => l.includes('"event":"http"')).at(-1);
    assert.ok(httpLine, 'the scrape after the reload is logged as JSON');
    assert.equal(JSON.parse(httpLine).status, 200);
  } finally {
    await server.stop();
  }
});

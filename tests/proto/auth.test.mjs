// Who may call which HTTP route (issue #11 §14, §8; docs/rest.md "Who may call what"):
// every route of the documented table is tried without a key, with the app key and with
// the master key, and must refuse exactly what the table says it needs; X-LC-Sign is good
// within 15 minutes, not hours; /metrics and a client's unread count need more than the
// app key; and a refused request with a body is answered from its head, before its body
// has been sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../lib/server.mjs';
import { closeAll, session, startConv, sendMsg, uid } from '../lib/proto-client.mjs';
import { drainUntilClosed, tcp } from '../lib/issue4-util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
let server;
let client; // a logged-in client: what "client" routes are about
before(async () => {
  server = await startServer();
  client = await session(server, uid('me'));
});
after(async () => { await closeAll(); await server.stop(); });

const APP = () => ({ 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey });
const MASTER = () => ({ 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master` });
const st = () => client.openReply.sessionMessage.st;

async function call(method, path, headers = {}) {
  const hasBody = ['POST', 'PUT', 'DELETE'].includes(method);
  const res = await fetch(server.httpUrl + path, {
    method,
    headers: hasBody ? { 'Content-Type': 'application/json', ...headers } : headers,
    body: hasBody ? '{}' : undefined,
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text };
}

/** docs/rest.md's "Who may call what": [{method, path, level}], braces and method lists expanded. */
function documentedRoutes() {
  const md = readFileSync(join(here, '..', '..', 'docs', 'rest.md'), 'utf8');
  const section = md.split(/^## /m).find((s) => s.startsWith('Who may call what'));
  assert.ok(section, 'docs/rest.md has the table');
  const rows = [];
  for (const line of section.split('\n')) {
    const m = /^\| `([^`]+)` \| `([^`]+)` \| ([a-z]+) \|/.exec(line);
    if (!m) continue;
    const [, methods, pattern, level] = m;
    const b = /\{([^}]+)\}/.exec(pattern);
    const paths = b ? b[1].split(',').map((alt) => pattern.replace(b[0], alt)) : [pattern];
    for (const method of methods.split(/,\s*/)) for (const path of paths) rows.push({ method, path, level });
  }
  assert.ok(rows.length > 100, `${rows.length} routes documented`);
  return rows;
}

/** A concrete path for a pattern: parameters filled in; client routes name our client
 * (others another: the master key's pass over the kick route revokes its tokens). */
function concrete(pattern, level) {
  let p = pattern
    .replace(':client_id', level === 'client' ? encodeURIComponent(client.peer) : 'x')
    .replace(/:id\b/, '0123456789abcdef01234567')
    .replace(/:[a-z_]+/g, 'x')
    .replace('*name', 'n.txt');
  if (level === 'client' && !pattern.includes(':client_id')) p += `?client_id=${encodeURIComponent(client.peer)}`;
  return p;
}

test('§14 every documented route refuses less than its key and takes it: no key → 401, the app key where more is needed → 403 (401 without the client\'s token), the master key → through', async () => {
  const problems = [];
  for (const { method, path: pattern, level } of documentedRoutes()) {
    const path = concrete(pattern, level);
    const what = `${method} ${pattern} (${level})`;
    const none = await call(method, path);
    const app = await call(method, path, APP());
    const master = await call(method, path, MASTER());
    const refused = (r) => r.status === 401 || r.status === 403;
    if (level === 'open') {
      if (refused(none)) problems.push(`${what}: no key → ${none.status}`);
      continue;
    }
    if (level === 'upload') { // only an upload token opens it, whatever the keys
      for (const [k, r] of [['none', none], ['app', app], ['master', master]])
        if (r.status !== 403) problems.push(`${what}: ${k} without a token → ${r.status} ${r.text}`);
      continue;
    }
    if (none.status !== 401) problems.push(`${what}: no key → ${none.status} ${none.text}`);
    if (level === 'app' && refused(app)) problems.push(`${what}: app key → ${app.status} ${app.text}`);
    if ((level === 'master' || level === 'metrics') && app.status !== 403) problems.push(`${what}: app key → ${app.status}`);
    if (level === 'client') {
      if (app.status !== 401) problems.push(`${what}: app key without a session token → ${app.status}`);
      const withSt = await call(method, path, { ...APP(), 'X-LC-IM-Session-Token': st() });
      if (refused(withSt)) problems.push(`${what}: app key + the client's token → ${withSt.status} ${withSt.text}`);
    }
    if (refused(master)) problems.push(`${what}: master key → ${master.status} ${master.text}`);
    for (const r of [none, app, master])
      if (refused(r) && !(typeof r.json?.code === 'number' && typeof r.json?.error === 'string'))
        problems.push(`${what}: refusal without {code, error}: ${r.text}`);
  }
  assert.deepEqual(problems, []);
});

test('§14 X-LC-Sign is good within 15 minutes of its timestamp, either side; a master signature is no app one', async () => {
  const sign = (key, ts, master) => ({
    'X-LC-Id': server.appId,
    'X-LC-Sign': `${createHash('md5').update(`${ts}${key}`).digest('hex')},${ts}${master ? ',master' : ''}`,
  });
  const now = Date.now();
  const min = 60 * 1000;
  for (const [offset, status] of [[0, 200], [-10 * min, 200], [10 * min, 200], [-16 * min, 401], [16 * min, 401], [-11 * 3600 * 1000, 401], [6 * 3600 * 1000, 401]]) {
    const r = await call('GET', '/1.2/rtm/stats', sign(server.masterKey, now + offset, true));
    assert.equal(r.status, status, `a master signature ${offset / min} min away: ${r.text}`);
  }
  assert.equal((await call('GET', '/1.2/rtm/stats', sign(server.appKey, now, false))).status, 403, 'an app-key signature');
  assert.equal((await call('GET', '/1.2/rtm/stats', sign(server.appKey, now, true))).status, 401, 'the app key signed as master');
  assert.equal((await call('POST', '/1.1/installations', sign(server.appKey, now - 20 * min, false))).status, 401, 'a stale app signature');
  assert.equal((await call('GET', '/1.2/rtm/stats', { ...sign(server.masterKey, now, true), 'X-LC-Sign': `${'0'.repeat(32)},${now},master` })).status, 401);
});

test('§14 /metrics needs the master key, as X-LC-Key or as a bearer token (Prometheus)', async () => {
  assert.equal((await call('GET', '/metrics')).status, 401);
  assert.equal((await call('GET', '/metrics', APP())).status, 403);
  assert.equal((await call('GET', '/metrics', { Authorization: `Bearer ${server.appKey}` })).status, 401);
  assert.equal((await call('GET', '/metrics', { Authorization: `Bearer ${server.masterKey}x` })).status, 401);
  const m = await call('GET', '/metrics', MASTER());
  assert.equal(m.status, 200);
  assert.match(m.text, /^tern_clients_online \d+$/m);
  const b = await call('GET', '/metrics', { Authorization: `Bearer ${server.masterKey}` });
  assert.equal(b.status, 200);
  assert.match(b.text, /^tern_uploads_in_flight 0$/m);
});

test('§14 a client\'s unread count: the master key, or the app key with that client\'s own session token — not another\'s', async () => {
  const other = await session(server, uid('other'));
  const conv = await startConv(other, [client.peer]);
  await sendMsg(other, conv.cid, 'unread for you');
  const path = `/1.2/rtm/clients/${encodeURIComponent(client.peer)}/unread-count`;
  assert.equal((await call('GET', path, APP())).status, 401, 'the app key alone read anyone\'s counts');
  const theirs = await call('GET', path, { ...APP(), 'X-LC-IM-Session-Token': other.openReply.sessionMessage.st });
  assert.equal(theirs.status, 401, 'another client\'s token does not vouch');
  assert.equal(theirs.json.code, 4112);
  const own = await call('GET', path, { ...APP(), 'X-LC-IM-Session-Token': st() });
  assert.equal(own.status, 200, own.text);
  assert.deepEqual(own.json, { count: 1 });
  assert.deepEqual((await call('GET', path, MASTER())).json, { count: 1 });
});

/** Sends a request head announcing `length` bytes and only a little of the body; the answer. */
async function headOnly(head, length) {
  const s = await tcp(server);
  s.write(`${head}Content-Length: ${length}\r\n\r\n`);
  s.write(Buffer.alloc(1024, 0x61));
  const r = await drainUntilClosed(s, 3000);
  return { text: r.data.toString(), how: r.how };
}

test('§8 a refused upload is answered from its head: the body is never waited for (nor buffered), and the connection closes', async () => {
  const big = 10 * 1024 * 1024 - 1;
  let r = await headOnly('POST /1.1/files/big.bin HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n', big);
  assert.match(r.text, /^HTTP\/1\.1 401 /, `keyless: ${r.text.slice(0, 200)}`);
  assert.match(r.text, /"code":401/);
  assert.notEqual(r.how, 'timeout', 'and the connection is closed');
  r = await headOnly(`POST /1.1/files/big.bin HTTP/1.1\r\nHost: x\r\nX-LC-Id: ${server.appId}\r\nX-LC-Key: wrong\r\n`, big);
  assert.match(r.text, /^HTTP\/1\.1 401 /, 'a wrong key');
  r = await headOnly('PUT /1.1/fileUploads/0123456789abcdef01234567?token=forged.0000 HTTP/1.1\r\nHost: x\r\n', big);
  assert.match(r.text, /^HTTP\/1\.1 403 /, `a forged upload token: ${r.text.slice(0, 200)}`);
  r = await headOnly(`POST /1.2/rtm/conversations HTTP/1.1\r\nHost: x\r\nX-LC-Id: ${server.appId}\r\nX-LC-Key: ${server.appKey}\r\nContent-Type: application/json\r\n`, 500000);
  assert.match(r.text, /^HTTP\/1\.1 403 /, 'the app key on a master route, with a body');
  // nothing was admitted as an upload
  const m = await call('GET', '/metrics', MASTER());
  assert.match(m.text, /^tern_uploads_in_flight 0$/m);
  // a refused request without a body keeps its connection: the next one on it is served
  const s = await tcp(server);
  s.write('GET /1.2/rtm/stats HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const both = (await drainUntilClosed(s, 3000)).data.toString();
  assert.match(both, /^HTTP\/1\.1 401 [\s\S]*HTTP\/1\.1 200 [\s\S]*"status":"ok"/);
});

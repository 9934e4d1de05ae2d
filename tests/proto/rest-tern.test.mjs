// tern's own operator reads for the web console (src/server/api/rest_admin.c, docs/rest.md):
// GET /1.2/tern/hooks and GET /1.2/tern/push/dead-letters, master key only.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { closeAll, sendMsg, session, startConv, uid } from '../lib/proto-client.mjs';

const dirs = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function call(server, path, key = `${server.masterKey},master`) {
  return fetch(`${server.httpUrl}${path}`, { headers: { 'X-LC-Id': server.appId, 'X-LC-Key': key } })
    .then(async (res) => ({ status: res.status, json: await res.json() }));
}

test('the hooks read: configuration, and calls and failures per hook', async () => {
  let calls = 0;
  const hookServer = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      calls++;
      res.writeHead(calls === 1 ? 200 : 500, { 'Content-Type': 'application/json' });
      res.end(calls === 1 ? '{"result":{}}' : 'no');
    });
  });
  await new Promise((r) => hookServer.listen(0, '127.0.0.1', r));
  const hookUrl = `http://127.0.0.1:${hookServer.address().port}`;
  const server = await startServer({ env: { TERN_HOOK_URL: hookUrl, TERN_HOOKS: '_messageReceived', TERN_HOOK_TIMEOUT: '2000' } });
  try {
    const before = await call(server, '/1.2/tern/hooks');
    assert.equal(before.status, 200);
    assert.equal(before.json.url, hookUrl);
    assert.equal(before.json.timeout_ms, 2000);
    assert.equal(before.json.fail_closed, false);
    const byName = (j) => Object.fromEntries(j.hooks.map((h) => [h.name, h]));
    assert.equal(before.json.hooks.length, 14);
    assert.deepEqual(byName(before.json)._messageReceived, { name: '_messageReceived', enabled: true, calls: 0, failures: 0, avg_ms: 0 });
    assert.equal(byName(before.json)._conversationStart.enabled, false);

    const [a, b] = [uid('a'), uid('b')];
    const ca = await session(server, a);
    await session(server, b);
    const { cid } = await startConv(ca, [b]);
    await sendMsg(ca, cid, 'one'); // the hook answers 200
    await sendMsg(ca, cid, 'two'); // 500: fails open, counted as a failure
    const got = byName((await call(server, '/1.2/tern/hooks')).json)._messageReceived;
    assert.equal(got.calls, 2);
    assert.equal(got.failures, 1);
    assert.ok(got.avg_ms > 0);

    assert.equal((await call(server, '/1.2/tern/hooks', server.appKey)).status, 403, 'the app key is not enough');
    assert.equal((await call(server, '/1.2/tern/hooks', 'wrong,master')).status, 401);
  } finally {
    await closeAll(server);
    await server.stop();
    hookServer.close();
  }
});

test('without hooks the read says so: url null, every hook off', async () => {
  const server = await startServer();
  try {
    const r = await call(server, '/1.2/tern/hooks');
    assert.equal(r.status, 200);
    assert.equal(r.json.url, null);
    assert.ok(r.json.hooks.every((h) => !h.enabled && h.calls === 0));
  } finally {
    await server.stop();
  }
});

test('the dead-letter log, newest first, limited, read again on every request', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tern-dead-'));
  dirs.push(dir);
  const log = join(dir, 'push-dead-letter.jsonl');
  const line = (n) => `${JSON.stringify({ at: `2026-01-0${n}T00:00:00.000Z`, provider: 'webhook', reason: 'retries exhausted', clientId: `c${n}` })}\n`;
  writeFileSync(log, line(1) + line(2) + 'not json\n' + line(3));
  const server = await startServer({ dataDir: dir });
  try {
    let r = await call(server, '/1.2/tern/push/dead-letters');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.results.map((x) => x.clientId ?? x.unparsed), ['c3', 'not json', 'c2', 'c1']);
    assert.equal(r.json.truncated, false);
    r = await call(server, '/1.2/tern/push/dead-letters?limit=2');
    assert.deepEqual(r.json.results.map((x) => x.clientId ?? x.unparsed), ['c3', 'not json']);
    assert.equal(r.json.truncated, true);
    appendFileSync(log, line(4));
    r = await call(server, '/1.2/tern/push/dead-letters?limit=1');
    assert.equal(r.json.results[0].clientId, 'c4');
    assert.equal((await call(server, '/1.2/tern/push/dead-letters', server.appKey)).status, 403);
  } finally {
    await server.stop({ keepData: true });
  }
});

test('a dead-letter log larger than the 4 MiB window: the newest lines, the cut one skipped', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tern-dead-'));
  dirs.push(dir);
  const filler = `${JSON.stringify({ clientId: 'old', pad: 'x'.repeat(1000) })}\n`;
  writeFileSync(join(dir, 'push-dead-letter.jsonl'), filler.repeat(5000) + `${JSON.stringify({ clientId: 'newest' })}\n`);
  const server = await startServer({ dataDir: dir });
  try {
    const r = await call(server, '/1.2/tern/push/dead-letters?limit=1000');
    assert.equal(r.json.results[0].clientId, 'newest');
    assert.equal(r.json.truncated, true);
    assert.ok(r.json.results.every((x) => x.clientId), 'no partial line comes back');
    assert.ok(r.json.results.length < 5001 && r.json.results.length > 1000 - 1);
  } finally {
    await server.stop({ keepData: true });
  }
});

test('no log yet: an empty list', async () => {
  const server = await startServer();
  try {
    const r = await call(server, '/1.2/tern/push/dead-letters');
    assert.deepEqual(r.json, { results: [], truncated: false });
  } finally {
    await server.stop();
  }
});

// Faults between two real ternds: a proxy in front of the source answers 429 (with
// Retry-After) and 500 at random and cuts connections in the middle of answers; the import
// is killed with SIGKILL twice at random moments and resumed; the result compares equal
// to the source through REST, and no message is doubled (history pages equal, counted).
// Needs ternd's import endpoints and class reads: skips with the reason without them.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { cliBinary, run } from '../lib/sdk-c.mjs';
import { rest, send, compareServers, history } from '../lib/import-e2e.mjs';

const tern = cliBinary();
const tmp = mkdtempSync(join(tmpdir(), 'tern-import-faults-'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let source, target, proxy;
const stats = { r429: 0, r500: 0, drops: 0, passed: 0 };

/** Forwards to the source; 10% 429, 10% 500, 5% cut half way through the answer. */
function faultyProxy(port) {
  const server = http.createServer((req, res) => {
    const r = Math.random();
    if (r < 0.1) {
      stats.r429++;
      res.writeHead(429, { 'Content-Type': 'application/json', 'Retry-After': '0' });
      return res.end('{"code":429,"error":"Too many requests."}');
    }
    if (r < 0.2) {
      stats.r500++;
      res.writeHead(500, { 'Content-Type': 'application/json' });
      return res.end('{"code":1,"error":"Internal server error."}');
    }
    const cut = Math.random() < 0.05;
    const up = http.request({ host: '127.0.0.1', port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      const chunks = [];
      ur.on('data', (c) => chunks.push(c));
      ur.on('end', () => {
        const body = Buffer.concat(chunks);
        const h = { ...ur.headers, 'content-length': body.length };
        delete h['transfer-encoding'];
        res.writeHead(ur.statusCode, h);
        if (cut && body.length > 1) {
          stats.drops++;
          res.write(body.subarray(0, body.length >> 1));
          return setImmediate(() => res.socket.destroy());
        }
        stats.passed++;
        res.end(body);
      });
    });
    up.on('error', () => res.socket.destroy());
    req.pipe(up);
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, url: `http://127.0.0.1:${server.address().port}` })));
}

before(async () => {
  source = await startServer({ env: { TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0' } });
  target = await startServer({ env: { TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0' } });
  proxy = await faultyProxy(source.port);
});
after(async () => {
  proxy?.server.closeAllConnections();
  proxy?.server.close();
  await source?.stop();
  await target?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe('import through a failing source, killed twice', () => {
  it('resumes to a result equal to the source, nothing lost or doubled', async () => {
    const convs = [];
    for (let i = 0; i < 6; i++) {
      const c = await rest(source, 'POST', '/1.2/rtm/conversations', { name: `f${i}`, m: ['fa', 'fb'] });
      convs.push(c.objectId);
    }
    // 6 × 1,500 messages, sent 20 at a time
    const jobs = [];
    for (const cid of convs) for (let k = 0; k < 1500; k++) jobs.push([cid, k]);
    for (let i = 0; i < jobs.length; i += 20) {
      await Promise.all(jobs.slice(i, i + 20).map(([cid, k]) => send(source, 'conversations', cid, k % 2 ? 'fa' : 'fb', `m ${k}`)));
    }
    const args = ['admin', 'import', 'leancloud', '--from', proxy.url, '--from-master-key', source.masterKey,
      '--server', target.httpUrl, '--app-id', target.appId, '--master-key', target.masterKey, '--rate', '0',
      '--state', join(tmp, 'state.json'), '--batch', '500', '--retries', '40'];
    const countTarget = async () => {
      let n = 0;
      for (const cid of convs) n += (await rest(target, 'GET', `/1.2/rtm/conversations/${cid}/messages?limit=1000`).catch(() => [])).length;
      return n;
    };
    for (let kill = 0; kill < 2; kill++) {
      const child = spawn(tern, args, { env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0' }, stdio: 'ignore' });
      const before = await countTarget();
      const want = before + 500 + Math.floor(Math.random() * 2500);
      const t0 = Date.now();
      while ((await countTarget()) < want && Date.now() - t0 < 120000 && child.exitCode === null) await sleep(20);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    const r = await run(tern, [...args, '--json'], { timeoutMs: 300000 });
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
    assert.ok(stats.r429 && stats.r500 && stats.drops, JSON.stringify(stats));
    await compareServers(source, target);
    for (const cid of convs) {
      const h = await history(target, { objectId: cid });
      assert.equal(h.items.length, 1500, `${cid}: every message once`);
      assert.equal(new Set(h.items.map((x) => x['msg-id'])).size, 1500);
    }
  });
});

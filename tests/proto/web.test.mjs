// Static assets of /console and /chat (src/server/api/web.c): content types, caching (ETag,
// 304), HEAD, the security headers (a strict CSP without inline script), web_root, and that
// no request path — dot segments, encoded dots and slashes, backslashes, symbolic links,
// dotfiles — reaches a file outside the directory.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, rmSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { httpRequest } from '../lib/proto-raw.mjs';
import { webRoot } from '../lib/browser.mjs';

const SECRET = 'top-secret-4c1f9e';
let server;
let base;

before(async () => {
  base = mkdtempSync(join(tmpdir(), 'tern-web-'));
  const root = join(base, 'web');
  mkdirSync(join(root, 'console', 'sub'), { recursive: true });
  mkdirSync(join(root, 'chat'), { recursive: true });
  writeFileSync(join(base, 'secret.txt'), SECRET);
  writeFileSync(join(root, 'console', 'index.html'), '<!doctype html><title>console</title>');
  writeFileSync(join(root, 'console', 'console.js'), 'console.log("console");');
  writeFileSync(join(root, 'console', 'console.css'), 'body{}');
  writeFileSync(join(root, 'console', 'sub', 'x.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  writeFileSync(join(root, 'console', '.hidden'), SECRET);
  symlinkSync(join(base, 'secret.txt'), join(root, 'console', 'link.txt'));
  symlinkSync(base, join(root, 'chat', 'up'));
  writeFileSync(join(root, 'chat', 'index.html'), '<!doctype html><title>chat</title>');
  writeFileSync(join(root, 'secret.txt'), SECRET); // at the root: not under /console or /chat
  server = await startServer({ env: { TERN_WEB_ROOT: root } });
});
after(async () => {
  await server.stop();
  rmSync(base, { recursive: true, force: true });
});

const get = (path, headers = {}, method = 'GET') => httpRequest(server, { method, path, headers });

test('/console and /console/ are the page; assets have their content types', async () => {
  for (const path of ['/console', '/console/', '/console/index.html']) {
    const r = await get(path);
    assert.equal(r.status, 200, path);
    assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(r.body, '<!doctype html><title>console</title>');
  }
  const js = await get('/console/console.js');
  assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal((await get('/console/console.css')).headers['content-type'], 'text/css; charset=utf-8');
  assert.equal((await get('/console/sub/x.svg')).headers['content-type'], 'image/svg+xml');
  assert.equal((await get('/chat')).body, '<!doctype html><title>chat</title>');
});

test('every page carries a strict CSP, nosniff, no framing and no referrer', async () => {
  const r = await get('/console/', { Host: `127.0.0.1:${server.port}` });
  const csp = r.headers['content-security-policy'];
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self';/);
  assert.match(csp, /style-src 'self';/);
  assert.match(csp, new RegExp(`connect-src 'self' ws://127\\.0\\.0\\.1:${server.port} wss://127\\.0\\.0\\.1:${server.port};`));
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
  assert.equal(r.headers['x-frame-options'], 'DENY');
  assert.equal(r.headers['referrer-policy'], 'no-referrer');
  // a Host that is not a plain host[:port] never reaches the header
  const odd = await get('/console/', { Host: "evil.example; script-src *" });
  assert.match(odd.headers['content-security-policy'], /connect-src 'self';/);
});

test('ETag and no-cache: a revalidation with the same tag is 304 without a body', async () => {
  const r = await get('/console/console.js');
  assert.equal(r.headers['cache-control'], 'no-cache');
  assert.match(r.headers.etag, /^"[0-9a-f]{16}"$/);
  const again = await get('/console/console.js', { 'If-None-Match': r.headers.etag });
  assert.equal(again.status, 304);
  assert.equal(again.body, '');
  const other = await get('/console/console.js', { 'If-None-Match': '"0000000000000000"' });
  assert.equal(other.status, 200);
});

test('HEAD answers the length without the body; other methods are 405', async () => {
  const r = await get('/console/console.js', {}, 'HEAD');
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-length'], String('console.log("console");'.length));
  assert.equal(r.body, '');
  assert.equal((await get('/console/console.js', {}, 'POST')).status, 405);
});

test('no path leaves web_root: dot segments, encodings, backslashes, symbolic links, dotfiles', async () => {
  const paths = [
    '/console/../secret.txt', '/console/../../secret.txt', '/chat/../../secret.txt',
    '/console/%2e%2e/secret.txt', '/console/%2E%2E/%2e%2e/secret.txt', '/console/.%2e/secret.txt',
    '/console/..%2fsecret.txt', '/console/..%2f..%2fsecret.txt', '/console/%2e%2e%2f%2e%2e%2fsecret.txt',
    '/console/..\\secret.txt', '/console/sub/../../secret.txt', '/console/./index.html', '/console//index.html',
    '/console/sub/../index.html', '/console/link.txt', '/chat/up/secret.txt', '/console/.hidden',
    '/console/%2ehidden', '/console/index.html%00.png', '/console/index.html/', '/secret.txt',
    '/chat/%252e%252e/secret.txt',
  ];
  for (const path of paths) {
    const r = await get(path);
    assert.ok(r.status === 404 || r.status === 400, `${path}: ${r.status}`);
    assert.doesNotMatch(r.body, new RegExp(SECRET), path);
  }
});

test('web_root "off" serves no page; a web_root that does not exist stops ternd at start', async () => {
  const off = await startServer({ env: { TERN_WEB_ROOT: 'off' } });
  try {
    const r = await httpRequest(off, { path: '/chat/' });
    assert.equal(r.status, 404);
    assert.match(r.json.error, /web_root/);
  } finally {
    await off.stop();
  }
  await assert.rejects(startServer({ env: { TERN_WEB_ROOT: join(base, 'nowhere') } }), /cannot read/);
});

test('by default ternd serves the web/ its build made beside it', async () => {
  const built = join(webRoot(), 'chat', 'index.html');
  assert.ok(existsSync(built), `the build made ${built}`);
  const s = await startServer();
  try {
    const r = await httpRequest(s, { path: '/chat/' });
    assert.equal(r.status, 200);
    assert.equal(r.body, readFileSync(built, 'utf8'));
  } finally {
    await s.stop();
  }
});

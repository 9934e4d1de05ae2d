// The file endpoint (issue #7 §4): uploads (raw bytes and the old JS SDK's JSON/base64
// shape), the answer's fields with image metadata and the md5 checksum, downloads with
// byte ranges, metadata reads, deletion with the master key, the size limit, bad input,
// authentication, names outside ASCII, and order on a connection that pipelines.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { existsSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { assertHealthy, withServer, ISO_RE } from '../lib/proto-client.mjs';
import { png, gif, bmp, jpeg, webp, md5, appHeaders, masterHeaders, uploadRaw, download } from '../lib/files-util.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server.stop(); });

const ID_RE = /^[0-9a-f]{24}$/;
// RFC 3986 percent-encoding: everything but the unreserved characters (encodeURIComponent
// also leaves !'()* alone), which is how the server writes names into URLs and headers.
const strictEncode = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
const urlOf = (srv, id, name) => `${srv.httpUrl}/files/${id}/${strictEncode(name)}`;

// ---------------------------------------------------------------- uploads and their answer

test('#7 §4 raw upload of a 3×2 PNG: 201 with every field, image size and md5 checksum', async () => {
  const bytes = png(3, 2);
  const r = await uploadRaw(server, 'tiny.png', bytes, { contentType: 'image/png' });
  assert.equal(r.status, 201, r.text);
  const j = r.json;
  assert.match(j.objectId, ID_RE);
  assert.equal(j.name, 'tiny.png');
  assert.equal(j.size, bytes.length);
  assert.equal(j.mime_type, 'image/png');
  assert.equal(j.url, urlOf(server, j.objectId, 'tiny.png'));
  assert.match(j.createdAt, ISO_RE);
  assert.deepEqual(j.metaData, { size: bytes.length, owner: 'unknown', _checksum: md5(bytes), width: 3, height: 2, format: 'png' });
  assert.deepEqual(Object.keys(j).sort(), ['createdAt', 'metaData', 'mime_type', 'name', 'objectId', 'size', 'url']);
});

const images = [
  { format: 'png', build: png, w: 3, h: 2, mime: 'image/png', ext: 'png' },
  { format: 'png', build: png, w: 300, h: 1, mime: 'image/png', ext: 'png' },
  { format: 'gif', build: gif, w: 5, h: 4, mime: 'image/gif', ext: 'gif' },
  { format: 'jpeg', build: jpeg, w: 640, h: 480, mime: 'image/jpeg', ext: 'jpg' },
  { format: 'jpeg', build: jpeg, w: 7, h: 9, mime: 'image/jpeg', ext: 'jpeg' },
  { format: 'bmp', build: bmp, w: 2, h: 3, mime: 'image/bmp', ext: 'bmp' },
  { format: 'webp', build: webp, w: 1000, h: 800, mime: 'image/webp', ext: 'webp' },
];

for (const c of images) {
  test(`#7 §4 image metadata: ${c.format} ${c.w}×${c.h} → width, height, format; mime type from the extension`, async () => {
    const bytes = c.build(c.w, c.h);
    const r = await uploadRaw(server, `pic.${c.ext}`, bytes); // no Content-Type: guessed
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.mime_type, c.mime);
    assert.equal(r.json.metaData.width, c.w);
    assert.equal(r.json.metaData.height, c.h);
    assert.equal(r.json.metaData.format, c.format);
    assert.equal(r.json.metaData._checksum, md5(bytes));
  });
}

test('#7 §4 a file that is not an image has no width, height or format; the given Content-Type is kept', async () => {
  const bytes = Buffer.from('just some text\n');
  const r = await uploadRaw(server, 'notes.txt', bytes, { contentType: 'text/markdown; charset=utf-8' });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.mime_type, 'text/markdown; charset=utf-8');
  assert.deepEqual(r.json.metaData, { size: bytes.length, owner: 'unknown', _checksum: md5(bytes) });
  // a bytes-only default type from the client does not hide the name's type
  const g = await uploadRaw(server, 'pic.gif', gif(1, 1), { contentType: 'application/octet-stream' });
  assert.equal(g.json.mime_type, 'image/gif');
  const u = await uploadRaw(server, 'data.unknownext', Buffer.from([1, 2, 3]));
  assert.equal(u.json.mime_type, 'application/octet-stream');
});

test('#7 §4 an empty file is a file', async () => {
  const r = await uploadRaw(server, 'empty.bin', Buffer.alloc(0));
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.size, 0);
  assert.equal(r.json.metaData._checksum, md5(Buffer.alloc(0)));
  const d = await download(r.json.url);
  assert.equal(d.status, 200);
  assert.equal(d.body.length, 0);
  assert.equal(d.headers.get('content-length'), '0');
});

test('#7 §4 /1.2/files/<name> uploads too', async () => {
  const r = await uploadRaw(server, 'v12.png', png(1, 1), { prefix: '/1.2/files/' });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.metaData.width, 1);
});

test('#7 §4 JSON upload (old JS SDK AV.File shape): base64, name, mime_type and metaData', async () => {
  const bytes = png(4, 4);
  const res = await fetch(`${server.httpUrl}/1.1/files`, {
    method: 'POST',
    headers: appHeaders(server, { 'Content-Type': 'application/json' }),
    body: JSON.stringify({ base64: bytes.toString('base64'), name: 'from-json.png', mime_type: 'image/x-custom', metaData: { owner: 'user1', tag: 'x', size: 1 } }),
  });
  assert.equal(res.status, 201);
  const j = await res.json();
  assert.equal(j.name, 'from-json.png');
  assert.equal(j.size, bytes.length);
  assert.equal(j.mime_type, 'image/x-custom');
  // the client's own keys stay; size and checksum are the server's; owner is the client's
  assert.deepEqual(j.metaData, { owner: 'user1', tag: 'x', size: bytes.length, _checksum: md5(bytes), width: 4, height: 4, format: 'png' });
  const d = await download(j.url);
  assert.ok(d.body.equals(bytes));
  assert.equal(d.headers.get('content-type'), 'image/x-custom');
});

test('#7 §4 JSON upload to /1.1/files/<name> with _ContentType and base64 in wrapped lines', async () => {
  const bytes = Buffer.from('x'.repeat(200));
  const wrapped = bytes.toString('base64').replace(/.{76}/g, '$&\r\n');
  const res = await fetch(`${server.httpUrl}/1.1/files/${encodeURIComponent('wrapped.txt')}`, {
    method: 'POST',
    headers: appHeaders(server, { 'Content-Type': 'application/json; charset=utf-8' }),
    body: JSON.stringify({ base64: wrapped, _ContentType: 'text/plain' }),
  });
  assert.equal(res.status, 201);
  const j = await res.json();
  assert.equal(j.name, 'wrapped.txt');
  assert.equal(j.mime_type, 'text/plain');
  assert.ok((await download(j.url)).body.equals(bytes));
});

test('#7 §4 a JSON file uploaded raw (no "base64" key) is stored as it is', async () => {
  const body = JSON.stringify({ hello: 'world' });
  const r = await uploadRaw(server, 'doc.json', body, { contentType: 'application/json' });
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.mime_type, 'application/json');
  assert.equal((await download(r.json.url)).body.toString(), body);
});

// ---------------------------------------------------------------- external files (issue #11 §21)

const postJson = (srv, path, body, headers = appHeaders(srv)) => fetch(`${srv.httpUrl}${path}`, {
  method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
});

test('#11 §21 an external file ({name, url, metaData.__source "external"}) is a file object pointing at its URL; a named path needs the mark, else the JSON is the file', async () => {
  const url = 'http://example.org/a%20b/clip.mp4';
  let r = await postJson(server, `/1.1/files/${encodeURIComponent('clip.mp4')}`,
    { name: 'clip.mp4', url, mime_type: 'video/mp4', metaData: { __source: 'external', size: 0, owner: 'tom', duration: 12.5 } });
  assert.equal(r.status, 201);
  const ext = await r.json();
  assert.equal(ext.url, url);
  assert.equal(ext.size, 0);
  assert.equal(ext.mime_type, 'video/mp4');
  assert.deepEqual(ext.metaData, { __source: 'external', size: 0, owner: 'tom', duration: 12.5 });
  const meta = await (await fetch(`${server.httpUrl}/1.1/files/${ext.objectId}`, { headers: appHeaders(server) })).json();
  assert.equal(meta.url, url);
  assert.equal(meta.updatedAt, meta.createdAt);
  for (const path of [`/files/${ext.objectId}`, `/files/${ext.objectId}/clip.mp4`]) {
    const d = await fetch(`${server.httpUrl}${path}`, { redirect: 'manual' });
    assert.equal(d.status, 404, `${path}: no bytes here, and no redirect to a URL a client chose`);
    assert.equal(d.headers.get('location'), null);
    await d.arrayBuffer();
  }
  // without the mark, JSON to a named path is a JSON file, stored as it is
  const plain = { name: 'x', url: 'https://example.org/' };
  r = await postJson(server, '/1.1/files/links.json', plain);
  assert.equal(r.status, 201);
  const stored = await r.json();
  assert.notEqual(stored.url, plain.url);
  assert.equal((await download(stored.url)).body.toString(), JSON.stringify(plain));
  // the master key may delete it like any file
  const del = await fetch(`${server.httpUrl}/1.1/files/${ext.objectId}`, { method: 'DELETE', headers: masterHeaders(server) });
  assert.equal(del.status, 200);
  assert.equal((await fetch(`${server.httpUrl}/1.1/files/${ext.objectId}`, { headers: appHeaders(server) })).status, 404);
});

const badExternal = [
  { name: 'javascript: URL', body: { name: 'x', url: 'javascript:alert(1)' } },
  { name: 'data: URL', body: { name: 'x', url: 'data:text/html,<script>alert(1)</script>' } },
  { name: 'no host', body: { name: 'x', url: 'https:///path' } },
  { name: 'a space', body: { name: 'x', url: 'https://example.org/a b' } },
  { name: 'a line break', body: { name: 'x', url: 'https://example.org/\r\nSet-Cookie: a=b' } },
  { name: 'over 2048 characters', body: { name: 'x', url: `https://example.org/${'a'.repeat(2100)}` } },
  { name: 'metaData not an object', body: { name: 'x', url: 'https://example.org/', metaData: 'm' } },
  { name: 'metaData over 4 KB', body: { name: 'x', url: 'https://example.org/', metaData: { big: 'b'.repeat(5000) } } },
  { name: 'no name', body: { url: 'https://example.org/' } },
];
for (const c of badExternal) {
  test(`#11 §21 external file refused (400): ${c.name}`, async () => {
    const r = await postJson(server, '/1.1/files', c.body);
    assert.equal(r.status, 400, c.name);
    const j = await r.json();
    assert.equal(typeof j.error, 'string');
  });
}

// ---------------------------------------------------------------- names

const names = ['猫 photo (1).png', 'résumé.pdf', '😀.gif', 'a b+c&d=e?f#g.txt', 'dir/inside.txt', '..%2F..%2Fetc.txt', '../../escape.txt'];

for (const name of names) {
  test(`#7 §4 file name ${JSON.stringify(name)}: kept exactly, encoded in the URL, served back`, async () => {
    const bytes = Buffer.from(`bytes of ${name}`);
    const r = await uploadRaw(server, name, bytes);
    assert.equal(r.status, 201, r.text);
    assert.equal(r.json.name, name);
    assert.equal(r.json.url, urlOf(server, r.json.objectId, name));
    const d = await download(r.json.url);
    assert.equal(d.status, 200);
    assert.ok(d.body.equals(bytes));
    assert.equal(d.headers.get('content-disposition'), `inline; filename*=UTF-8''${strictEncode(name)}`);
  });
}

test('#7 §4 the name in the download URL is cosmetic; /files/<id> alone serves the file', async () => {
  const bytes = png(2, 2);
  const { json } = await uploadRaw(server, 'real.png', bytes);
  for (const path of [`/files/${json.objectId}`, `/files/${json.objectId}/other-name.bin`]) {
    const d = await download(`${server.httpUrl}${path}`);
    assert.equal(d.status, 200, path);
    assert.ok(d.body.equals(bytes), path);
    assert.equal(d.headers.get('content-type'), 'image/png');
  }
});

// ---------------------------------------------------------------- downloads

test('#7 §4 GET: byte-identical with Content-Type, Content-Length, Accept-Ranges and the md5 as ETag', async () => {
  const bytes = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) & 255));
  const { json } = await uploadRaw(server, 'bytes.bin', bytes, { contentType: 'application/x-test' });
  const d = await download(json.url);
  assert.equal(d.status, 200);
  assert.ok(d.body.equals(bytes));
  assert.equal(d.headers.get('content-type'), 'application/x-test');
  assert.equal(d.headers.get('content-length'), String(bytes.length));
  assert.equal(d.headers.get('accept-ranges'), 'bytes');
  assert.equal(d.headers.get('etag'), `"${md5(bytes)}"`);
  assert.equal(d.headers.get('x-content-type-options'), 'nosniff');
});

test('#7 §4 GET of a file larger than a request body may be (3 MiB), streamed in pieces, byte-identical', async () => {
  const bytes = Buffer.alloc(3 * 1024 * 1024 + 17);
  for (let i = 0; i < bytes.length; i += 4) bytes.writeUInt32LE((i * 2654435761) >>> 0, i > bytes.length - 4 ? bytes.length - 4 : i);
  const r = await uploadRaw(server, 'big.bin', bytes);
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.metaData._checksum, md5(bytes));
  const d = await download(r.json.url);
  assert.equal(d.status, 200);
  assert.equal(d.body.length, bytes.length);
  assert.ok(d.body.equals(bytes));
  // and every other path keeps the 1 MiB cap
  const other = await fetch(`${server.httpUrl}/1.1/rtm/notifications`, { method: 'POST', body: Buffer.alloc(2 * 1024 * 1024) }).catch((e) => e);
  if (!(other instanceof Error)) assert.equal(other.status, 413);
  await assertHealthy(server);
});

const BYTES = Buffer.from('0123456789abcdefghij'); // 20 bytes
const rangeCases = [
  { range: 'bytes=0-3', status: 206, body: '0123', cr: 'bytes 0-3/20' },
  { range: 'bytes=5-', status: 206, body: '56789abcdefghij', cr: 'bytes 5-19/20' },
  { range: 'bytes=-4', status: 206, body: 'ghij', cr: 'bytes 16-19/20' },
  { range: 'bytes=-100', status: 206, body: BYTES.toString(), cr: 'bytes 0-19/20' },
  { range: 'bytes=10-1000', status: 206, body: 'abcdefghij', cr: 'bytes 10-19/20' },
  { range: 'bytes=19-19', status: 206, body: 'j', cr: 'bytes 19-19/20' },
  { range: 'bytes=20-', status: 416, cr: 'bytes */20' },
  { range: 'bytes=100-200', status: 416, cr: 'bytes */20' },
  { range: 'bytes=-0', status: 416, cr: 'bytes */20' },
  { range: 'bytes=0-1,4-5', status: 200, body: BYTES.toString() }, // several ranges: the whole file
  { range: 'bytes=5-2', status: 200, body: BYTES.toString() },     // not a range: ignored
  { range: 'lines=1-2', status: 200, body: BYTES.toString() },
];

let rangeFile;
for (const c of rangeCases) {
  test(`#7 §4 Range "${c.range}" → ${c.status}`, async () => {
    rangeFile ??= (await uploadRaw(server, 'range.txt', BYTES)).json;
    const d = await download(rangeFile.url, { Range: c.range });
    assert.equal(d.status, c.status);
    if (c.body !== undefined) {
      assert.equal(d.body.toString(), c.body);
      assert.equal(d.headers.get('content-length'), String(Buffer.byteLength(c.body)));
    }
    assert.equal(d.headers.get('content-range'), c.cr ?? null);
    if (c.status === 416) assert.equal(JSON.parse(d.body).code, 416);
  });
}

test('#7 §4 HEAD: the headers of the GET (length, type, ETag), no body', async () => {
  const bytes = png(3, 3);
  const { json } = await uploadRaw(server, 'head.png', bytes);
  const res = await fetch(json.url, { method: 'HEAD' });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-length'), String(bytes.length));
  assert.equal(res.headers.get('content-type'), 'image/png');
  assert.equal(res.headers.get('etag'), `"${md5(bytes)}"`);
  assert.equal((await res.arrayBuffer()).byteLength, 0);
  const ranged = await fetch(json.url, { method: 'HEAD', headers: { Range: 'bytes=1-2' } });
  assert.equal(ranged.status, 206);
  assert.equal(ranged.headers.get('content-length'), '2');
  const missing = await fetch(`${server.httpUrl}/files/${'0'.repeat(24)}`, { method: 'HEAD' });
  assert.equal(missing.status, 404);
  // the connection is still usable: the HEAD answers carried no bytes after their heads
  assert.equal((await download(json.url)).body.length, bytes.length);
});

test('#7 §4 downloads need no key; unknown or malformed ids are 404', async () => {
  for (const path of [`/files/${'a'.repeat(24)}`, `/files/${'a'.repeat(24)}/x.png`, '/files/nothex', '/files/ABCDEFABCDEFABCDEFABCDEF', '/files/..%2F..%2Fapp.json']) {
    const d = await download(`${server.httpUrl}${path}`);
    assert.equal(d.status, 404, path);
    assert.equal(JSON.parse(d.body).code, 404);
  }
});

// ---------------------------------------------------------------- metadata and deletion

test('#7 §4 GET /1.1/files/<id>: the metadata with the app key, 401 without', async () => {
  const bytes = gif(6, 2);
  const { json } = await uploadRaw(server, 'meta.gif', bytes);
  const res = await fetch(`${server.httpUrl}/1.1/files/${json.objectId}`, { headers: appHeaders(server) });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { ...json, updatedAt: json.createdAt });
  const v12 = await fetch(`${server.httpUrl}/1.2/files/${json.objectId}`, { headers: appHeaders(server) });
  assert.equal(v12.status, 200);
  const anon = await fetch(`${server.httpUrl}/1.1/files/${json.objectId}`);
  assert.equal(anon.status, 401);
  const none = await fetch(`${server.httpUrl}/1.1/files/${'b'.repeat(24)}`, { headers: appHeaders(server) });
  assert.equal(none.status, 404);
});

test('#7 §4 DELETE: 403 with the app key, 200 {} with the master key, then 404 everywhere', async () => {
  const { json } = await uploadRaw(server, 'doomed.png', png(1, 2));
  const del = (headers) => fetch(`${server.httpUrl}/1.1/files/${json.objectId}`, { method: 'DELETE', headers });
  const byApp = await del(appHeaders(server));
  assert.equal(byApp.status, 403);
  assert.equal((await byApp.json()).code, 403);
  assert.equal((await download(json.url)).status, 200, 'still there after the refused delete');
  assert.equal((await del({})).status, 401);
  const byMaster = await del(masterHeaders(server));
  assert.equal(byMaster.status, 200);
  assert.deepEqual(await byMaster.json(), {});
  assert.equal((await download(json.url)).status, 404);
  assert.equal((await fetch(`${server.httpUrl}/1.1/files/${json.objectId}`, { headers: appHeaders(server) })).status, 404);
  assert.equal((await del(masterHeaders(server))).status, 404);
  assert.equal(existsSync(join(server.dir, 'files', json.objectId)), false, 'the bytes are gone from the disk');
});

// ---------------------------------------------------------------- refusals

test('#7 §4 authentication: missing or wrong X-LC-Id / X-LC-Key → 401; the master key may upload', async () => {
  const cases = [
    {},
    { 'X-LC-Id': server.appId },
    { 'X-LC-Id': 'someone-else', 'X-LC-Key': server.appKey },
    { 'X-LC-Id': server.appId, 'X-LC-Key': 'wrong' },
  ];
  for (const headers of cases) {
    const r = await uploadRaw(server, 'x.txt', Buffer.from('x'), { headers });
    assert.equal(r.status, 401, JSON.stringify(headers));
    assert.equal(r.json.code, 401);
    assert.equal(typeof r.json.error, 'string');
  }
  const m = await uploadRaw(server, 'x.txt', Buffer.from('x'), { headers: masterHeaders(server) });
  assert.equal(m.status, 201);
});

const badJson = [
  { name: 'base64 with a character outside the alphabet', path: '/1.1/files/a.bin', body: { base64: 'ab$d' }, status: 400 },
  { name: 'base64 of impossible length', path: '/1.1/files/a.bin', body: { base64: 'abcde' }, status: 400 },
  { name: 'no name anywhere', path: '/1.1/files', body: { base64: 'YWJj' }, status: 400 },
  { name: 'no base64 and no name in the path', path: '/1.1/files', body: { name: 'a.txt' }, status: 400 },
  { name: 'not JSON at all, no name in the path', path: '/1.1/files', raw: 'not json', status: 400 },
  { name: 'a name with a control character', path: '/1.1/files', body: { base64: 'YWJj', name: 'a\nb.txt' }, status: 400 },
  { name: 'a name over 1024 bytes', path: '/1.1/files', body: { base64: 'YWJj', name: `${'n'.repeat(1025)}.txt` }, status: 400 },
];

for (const c of badJson) {
  test(`#7 §4 JSON upload refused (${c.status}): ${c.name}`, async () => {
    const res = await fetch(`${server.httpUrl}${c.path}`, {
      method: 'POST',
      headers: appHeaders(server, { 'Content-Type': 'application/json' }),
      body: c.raw ?? JSON.stringify(c.body),
    });
    assert.equal(res.status, c.status);
    const j = await res.json();
    assert.equal(typeof j.code, 'number');
    assert.equal(typeof j.error, 'string');
  });
}

test('#7 §4 raw upload without a name → 400; a name that is not UTF-8 → 400', async () => {
  const res = await fetch(`${server.httpUrl}/1.1/files`, { method: 'POST', headers: appHeaders(server, { 'Content-Type': 'image/png' }), body: png(1, 1) });
  assert.equal(res.status, 400);
  const bad = await fetch(`${server.httpUrl}/1.1/files/%FF%FE.png`, { method: 'POST', headers: appHeaders(server), body: 'x' });
  assert.equal(bad.status, 400);
});

test('#7 §4 wrong methods: PUT on an upload path, POST on a download path → 405', async () => {
  assert.equal((await fetch(`${server.httpUrl}/1.1/files/${'c'.repeat(24)}`, { method: 'PUT', headers: appHeaders(server), body: 'x' })).status, 405);
  assert.equal((await fetch(`${server.httpUrl}/files/${'c'.repeat(24)}`, { method: 'POST', body: 'x' })).status, 405);
});

test('#7 §4 max_file_size: at the limit 201, one byte over 413 (raw and base64); the server stays healthy', () =>
  withServer({ TERN_MAX_FILE_SIZE: '1000' }, async (srv) => {
    const ok = await uploadRaw(srv, 'limit.bin', Buffer.alloc(1000, 1));
    assert.equal(ok.status, 201, ok.text);
    const over = await uploadRaw(srv, 'over.bin', Buffer.alloc(1001, 1));
    assert.equal(over.status, 413);
    assert.equal(over.json.code, 413);
    const b64 = await fetch(`${srv.httpUrl}/1.1/files/over.bin`, {
      method: 'POST',
      headers: appHeaders(srv, { 'Content-Type': 'application/json' }),
      body: JSON.stringify({ base64: Buffer.alloc(1001, 2).toString('base64') }),
    });
    assert.equal(b64.status, 413);
    assert.equal((await b64.json()).code, 413);
    const b64ok = await fetch(`${srv.httpUrl}/1.1/files/fits.bin`, {
      method: 'POST',
      headers: appHeaders(srv, { 'Content-Type': 'application/json' }),
      body: JSON.stringify({ base64: Buffer.alloc(1000, 2).toString('base64') }),
    });
    assert.equal(b64ok.status, 201);
    await assertHealthy(srv);
  }));

// ---------------------------------------------------------------- the upload-token flow
// leancloud-storage 4.x: POST /1.1/fileTokens, PUT the bytes to upload_url, POST
// /1.1/fileCallback (tests/interop/files.test.mjs drives it with the SDK itself).

const fileToken = (srv, body, headers = appHeaders(srv)) =>
  fetch(`${srv.httpUrl}/1.1/fileTokens`, { method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
const putTo = (url, bytes, contentType = 'application/octet-stream') =>
  fetch(url, { method: 'PUT', headers: { 'Content-Type': contentType }, body: bytes });
const fileCallback = (srv, body) =>
  fetch(`${srv.httpUrl}/1.1/fileCallback`, { method: 'POST', headers: { ...appHeaders(srv), 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

test('#7 §4 upload token: fileTokens answers provider s3 and an upload URL; the PUT stores the bytes under that objectId', async () => {
  const t = await fileToken(server, { name: 'shot 1.png', metaData: { size: 3, owner: 'tom', app: { v: 2 } } });
  assert.equal(t.status, 200);
  const tok = await t.json();
  assert.match(tok.objectId, ID_RE);
  assert.equal(tok.provider, 's3');
  assert.equal(tok.mime_type, 'image/png'); // from the name: the SDK sends none for a Buffer
  assert.equal(tok.url, urlOf(server, tok.objectId, 'shot 1.png'));
  assert.ok(tok.upload_url.startsWith(`${server.httpUrl}/1.1/fileUploads/${tok.objectId}?token=`), tok.upload_url);
  assert.match(tok.createdAt, ISO_RE);
  // nothing is stored until the bytes come
  assert.equal((await download(tok.url)).status, 404);

  const bytes = png(7, 5);
  const up = await putTo(tok.upload_url, bytes, 'image/png');
  assert.equal(up.status, 200, await up.clone().text());
  const d = await download(tok.url);
  assert.equal(d.status, 200);
  assert.ok(d.body.equals(bytes));
  assert.equal(d.headers.get('content-type'), 'image/png');
  const meta = await (await fetch(`${server.httpUrl}/1.1/files/${tok.objectId}`, { headers: appHeaders(server) })).json();
  assert.equal(meta.name, 'shot 1.png');
  // the client's metaData is kept; size and the image fields are what arrived
  assert.deepEqual(meta.metaData, { size: bytes.length, owner: 'tom', app: { v: 2 }, _checksum: md5(bytes), width: 7, height: 5, format: 'png' });

  const cb = await fileCallback(server, { token: tok.token, result: true });
  assert.equal(cb.status, 200);
  assert.deepEqual(await cb.json(), {});
  assert.equal((await download(tok.url)).status, 200);
});

test('#7 §4 upload token: a replayed PUT is 409 and changes nothing; a forged, altered or misdirected token is 403', async () => {
  const tok = await (await fileToken(server, { name: 'a.txt', mime_type: 'text/plain' })).json();
  assert.equal((await putTo(tok.upload_url, Buffer.from('first'))).status, 200);
  const again = await putTo(tok.upload_url, Buffer.from('second'));
  assert.equal(again.status, 409);
  assert.equal((await again.json()).code, 137);
  assert.equal((await download(tok.url)).body.toString(), 'first');

  const other = await (await fileToken(server, { name: 'b.txt' })).json();
  const base = other.upload_url.slice(0, other.upload_url.indexOf('?'));
  const [payload, mac] = other.token.split('.');
  const flip = (s) => s.slice(0, -1) + (s.at(-1) === 'a' ? 'b' : 'a');
  for (const [why, url] of [
    ['no token', base],
    ['MAC altered', `${base}?token=${payload}.${flip(mac)}`],
    ['payload altered', `${base}?token=${flip(payload)}.${mac}`],
    ['no MAC', `${base}?token=${payload}`],
    ['another file\'s token', `${server.httpUrl}/1.1/fileUploads/${tok.objectId}?token=${other.token}`],
    ['a token for an id the path does not name', `${server.httpUrl}/1.1/fileUploads/${'d'.repeat(24)}?token=${other.token}`],
  ]) {
    const r = await putTo(url, Buffer.from('x'));
    assert.equal(r.status, 403, why);
    assert.equal((await r.json()).code, 403, why);
  }
  assert.equal((await download(other.url)).status, 404);
  assert.equal((await putTo(other.upload_url, Buffer.from('ok'))).status, 200); // still good itself
  await assertHealthy(server);
});

test('#7 §4 upload token: fileCallback with result false deletes what was uploaded; a bad callback is 400', async () => {
  const tok = await (await fileToken(server, { name: 'gone.bin' })).json();
  assert.equal((await putTo(tok.upload_url, Buffer.from([1, 2, 3]))).status, 200);
  const cb = await fileCallback(server, { token: tok.token, result: false });
  assert.equal(cb.status, 200);
  assert.deepEqual(await cb.json(), {});
  assert.equal((await download(tok.url)).status, 404);
  // the upload never came: nothing to delete, still {}
  const none = await (await fileToken(server, { name: 'never.bin' })).json();
  assert.equal((await fileCallback(server, { token: none.token, result: false })).status, 200);
  for (const body of [{ token: 'nope', result: true }, { token: none.token }, { result: false }]) {
    const r = await fileCallback(server, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal((await r.json()).code, 107);
  }
});

test('#11 §13 upload tokens are single-use: after fileCallback {result: false} deleted the file, the token cannot PUT new bytes under its id and URL', async () => {
  const tok = await (await fileToken(server, { name: 'avatar.png' })).json();
  assert.equal((await putTo(tok.upload_url, png(2, 2), 'image/png')).status, 200);
  assert.equal((await fileCallback(server, { token: tok.token, result: false })).status, 200);
  const again = await putTo(tok.upload_url, Buffer.from('<svg onload=alert(1)>'), 'image/svg+xml');
  assert.equal(again.status, 409, 'the same token, an hour to live, after the delete');
  assert.equal((await again.json()).code, 137);
  assert.equal((await download(tok.url)).status, 404, 'nothing new under the URL');
  assert.equal((await fetch(`${server.httpUrl}/1.1/files/${tok.objectId}`, { headers: appHeaders(server) })).status, 404);
  // given up before its bytes came: the token is spent all the same
  const early = await (await fileToken(server, { name: 'late.bin' })).json();
  assert.equal((await fileCallback(server, { token: early.token, result: false })).status, 200);
  assert.equal((await putTo(early.upload_url, Buffer.from('late'))).status, 409);
  assert.equal((await download(early.url)).status, 404);
  // and a master-key DELETE retires the id likewise
  const third = await (await fileToken(server, { name: 'third.bin' })).json();
  assert.equal((await putTo(third.upload_url, Buffer.from('one'))).status, 200);
  const del = await fetch(`${server.httpUrl}/1.1/files/${third.objectId}`, { method: 'DELETE', headers: masterHeaders(server) });
  assert.equal(del.status, 200);
  assert.equal((await putTo(third.upload_url, Buffer.from('two'))).status, 409);
});

test('#7 §4 upload token: the longest name (1,020 bytes of UTF-8) and metaData (2 KB) make a token that works', async () => {
  const name = '猫'.repeat(340) + '.png';
  const metaData = { note: 'n'.repeat(2000 - 12) };
  assert.ok(JSON.stringify(metaData).length <= 2048);
  const t = await fileToken(server, { name, metaData });
  assert.equal(t.status, 200);
  const tok = await t.json();
  assert.equal((await putTo(tok.upload_url, png(1, 1))).status, 200);
  const meta = await (await fetch(`${server.httpUrl}/1.1/files/${tok.objectId}`, { headers: appHeaders(server) })).json();
  assert.equal(meta.name, name);
  assert.equal(meta.metaData.note, metaData.note);
});

test('#7 §4 upload token: fileTokens needs the app key and a name; metaData is an object of at most 2 KB', async () => {
  assert.equal((await fileToken(server, { name: 'x.png' }, { 'X-LC-Id': server.appId, 'X-LC-Key': 'wrong' })).status, 401);
  for (const body of [{}, { name: '' }, { name: 5 }, { name: 'x', metaData: 'str' }, { name: 'x', metaData: { big: 'y'.repeat(3000) } }]) {
    const r = await fileToken(server, body);
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.equal((await r.json()).code, 107);
  }
  const notJson = await fetch(`${server.httpUrl}/1.1/fileTokens`, { method: 'POST', headers: appHeaders(server), body: '{oops' });
  assert.equal(notJson.status, 400);
});

test('#7 §4 upload token: the PUT honours max_file_size (413) and the token still works for a smaller retry', () =>
  withServer({ TERN_MAX_FILE_SIZE: '1000' }, async (srv) => {
    const tok = await (await fileToken(srv, { name: 'big.json' })).json();
    const over = await putTo(tok.upload_url, Buffer.alloc(1001, 0x20), 'application/json');
    assert.equal(over.status, 413);
    const ok = await putTo(tok.upload_url, Buffer.from('{"a":1}'), 'application/json');
    assert.equal(ok.status, 200);
    assert.equal((await download(tok.url)).body.toString(), '{"a":1}');
    await assertHealthy(srv);
  }));

// ---------------------------------------------------------------- options

test('#7 §4 options: public_http_url is the base of file URLs; files_dir holds the bytes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tern-files-dir-'));
  try {
    await withServer({ TERN_PUBLIC_HTTP_URL: 'https://cdn.example.test/', TERN_FILES_DIR: join(dir, 'nested', 'files') }, async (srv) => {
      const r = await uploadRaw(srv, 'where.png', png(1, 1));
      assert.equal(r.status, 201, r.text);
      assert.equal(r.json.url, `https://cdn.example.test/files/${r.json.objectId}/where.png`);
      assert.ok(existsSync(join(dir, 'nested', 'files', r.json.objectId)));
      assert.ok(existsSync(join(dir, 'nested', 'files', `${r.json.objectId}.json`)));
      assert.ok(!existsSync(join(srv.dir, 'files', r.json.objectId)));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('#7 §4 the default URL base follows public_url (ws:// → http://)', () =>
  withServer({ TERN_PUBLIC_URL: 'ws://chat.example.test:9000/' }, async (srv) => {
    const r = await uploadRaw(srv, 'p.txt', Buffer.from('p'));
    assert.equal(r.json.url, `http://chat.example.test:9000/files/${r.json.objectId}/p.txt`);
  }));

// ---------------------------------------------------------------- one connection

// Reads HTTP/1.1 responses off a raw socket: heads, and bodies by Content-Length.
function readResponses(sock, n, headOnly = new Set()) {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const out = [];
    const timer = setTimeout(() => reject(new Error(`timed out with ${out.length} of ${n} responses`)), 10000);
    const parse = () => {
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString();
        const len = headOnly.has(out.length) ? 0 : Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        out.push({ status: Number(head.slice(9, 12)), head, body: buf.subarray(end + 4, end + 4 + len) });
        buf = buf.subarray(end + 4 + len);
        if (out.length === n) {
          clearTimeout(timer);
          sock.removeListener('data', onData);
          resolve(out);
          return;
        }
      }
    };
    const onData = (d) => { buf = Buffer.concat([buf, d]); parse(); };
    sock.on('data', onData);
  });
}

test('#7 §4 pipelined requests are answered in order around uploads and downloads', async () => {
  const bytes = png(5, 5);
  const { json } = await uploadRaw(server, 'pipe.png', bytes);
  const sock = net.connect(server.port, '127.0.0.1');
  await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
  const up = Buffer.from('uploaded in a pipeline');
  const path = new URL(json.url).pathname;
  const reqs = Buffer.concat([
    Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`),
    Buffer.from(`POST /1.1/files/pipe.txt HTTP/1.1\r\nHost: x\r\nX-LC-Id: ${server.appId}\r\nX-LC-Key: ${server.appKey}\r\nContent-Length: ${up.length}\r\n\r\n`),
    up,
    Buffer.from('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'),
    Buffer.from(`HEAD ${path} HTTP/1.1\r\nHost: x\r\n\r\n`),
    Buffer.from(`GET ${path} HTTP/1.1\r\nHost: x\r\nRange: bytes=-10\r\n\r\n`),
    Buffer.from(`GET /files/${'d'.repeat(24)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
  ]);
  const answers = readResponses(sock, 6, new Set([3]));
  sock.write(reqs);
  const [a, b, c, d, e, f] = await answers;
  assert.equal(a.status, 200);
  assert.ok(a.body.equals(bytes));
  assert.equal(b.status, 201);
  assert.equal(JSON.parse(b.body).name, 'pipe.txt');
  assert.equal(c.status, 200);
  assert.deepEqual(JSON.parse(c.body), { status: 'ok' });
  assert.equal(d.status, 200);
  assert.match(d.head, new RegExp(`Content-Length: ${bytes.length}`, 'i'));
  assert.equal(e.status, 206);
  assert.ok(e.body.equals(bytes.subarray(bytes.length - 10)));
  assert.equal(f.status, 404);
  await new Promise((r) => { if (sock.destroyed || sock.readableEnded) r(); else sock.once('close', r); });
  sock.destroy();
});

test('#7 §4 a client that goes away in the middle of a download leaves the server healthy', async () => {
  const bytes = Buffer.alloc(4 * 1024 * 1024, 7);
  const { json } = await uploadRaw(server, 'abandoned.bin', bytes);
  for (let i = 0; i < 5; i++) {
    const sock = net.connect(server.port, '127.0.0.1');
    await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
    sock.write(`GET ${new URL(json.url).pathname} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await new Promise((r) => sock.once('data', r));
    sock.destroy();
  }
  // and one that reads it all, after them
  const d = await download(json.url);
  assert.ok(d.body.equals(bytes));
  await assertHealthy(server);
});

test('#7 §4 Expect: 100-continue — "100 Continue" after the head passes the size check, 413 at once when it does not', async () => {
  const send = async (length, body) => {
    const sock = net.connect(server.port, '127.0.0.1');
    await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
    let data = '';
    sock.on('data', (d) => { data += d; });
    const waitData = (re) => new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`timed out; got ${JSON.stringify(data)}`)), 5000);
      const check = () => { if (re.test(data)) { clearTimeout(t); sock.removeListener('data', check); resolve(); } };
      sock.on('data', check);
      check();
    });
    sock.write(`POST /1.1/files/expect.bin HTTP/1.1\r\nHost: x\r\nX-LC-Id: ${server.appId}\r\nX-LC-Key: ${server.appKey}\r\n` +
      `Content-Length: ${length}\r\nExpect: 100-continue\r\n\r\n`);
    await waitData(/^HTTP\/1\.1 \d{3} [^]*\r\n\r\n/);
    const first = data;
    if (/^HTTP\/1\.1 100 /.test(first)) {
      sock.write(body);
      await waitData(/HTTP\/1\.1 201 [^]*"objectId"[^]*\}$/);
    }
    sock.destroy();
    return data;
  };
  const ok = await send(5, 'hello');
  assert.match(ok, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /);
  const big = await send(64 * 1024 * 1024, '');
  assert.match(big, /^HTTP\/1\.1 413 /);
});

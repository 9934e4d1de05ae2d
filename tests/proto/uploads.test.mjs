// Uploads in flight are capped (issue #11 §8, docs/security.md): an upload's body is held
// in memory until it is stored, so at most max_uploads_per_ip from one address (429) and
// max_uploads in all (503) may be in flight; the master key's are not counted. A slot is
// freed when the upload is stored, when its connection goes, and never leaks.
// /metrics' tern_uploads_in_flight is the barrier: it says what the server holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { withServer, assertHealthy } from '../lib/proto-client.mjs';
import { drainUntilClosed } from '../lib/issue4-util.mjs';

const BODY = 2 * 1024 * 1024;

function connectFrom(srv, localAddress) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port: srv.port, host: '127.0.0.1', localAddress });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

const keyLines = (srv, master) => `X-LC-Id: ${srv.appId}\r\nX-LC-Key: ${master ? `${srv.masterKey},master` : srv.appKey}\r\n`;

/** An upload from localAddress that sends its head and the first KiB of a 2 MiB body. */
async function startUpload(srv, localAddress, { master = false, path = '/1.1/files/part.bin', auth } = {}) {
  const s = await connectFrom(srv, localAddress);
  s.write(`POST ${path} HTTP/1.1\r\nHost: x\r\n${auth ?? keyLines(srv, master)}Content-Type: application/octet-stream\r\n`
    + `Content-Length: ${BODY}\r\nConnection: close\r\n\r\n`);
  s.write(Buffer.alloc(1024, 0x62));
  return s;
}

/** Sends the rest of an upload's body; resolves with the response's status line. */
async function finish(s) {
  const answer = drainUntilClosed(s, 10000);
  s.write(Buffer.alloc(BODY - 1024, 0x62));
  const { data } = await answer;
  return data.toString().split('\r\n')[0];
}

async function metric(srv, name) {
  const res = await fetch(`${srv.httpUrl}/metrics`, { headers: { Authorization: `Bearer ${srv.masterKey}` } });
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(await res.text());
  return Number(m[1]);
}

async function inFlight(srv, n, what) {
  const end = Date.now() + 5000;
  for (;;) {
    const v = await metric(srv, 'tern_uploads_in_flight');
    if (v === n) return;
    if (Date.now() > end) assert.fail(`${what}: tern_uploads_in_flight ${v}, expected ${n}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The answer to an upload refused from its head. */
async function refused(srv, localAddress, opts) {
  const s = await startUpload(srv, localAddress, opts);
  const { data, how } = await drainUntilClosed(s, 3000);
  const text = data.toString();
  assert.notEqual(how, 'timeout', `refused at once, not after the body: ${text}`);
  return { status: Number(text.split(' ')[1]), json: JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) };
}

test('#11 §8 max_uploads_per_ip=2, max_uploads=3: the third from one address gets 429, the fourth in all 503; finished or abandoned uploads free their slots; the master key is not counted', () =>
  withServer({ TERN_MAX_UPLOADS_PER_IP: '2', TERN_MAX_UPLOADS: '3' }, async (srv) => {
    const a1 = await startUpload(srv, '127.0.0.1');
    const a2 = await startUpload(srv, '127.0.0.1');
    await inFlight(srv, 2, 'two from 127.0.0.1');
    let r = await refused(srv, '127.0.0.1');
    assert.equal(r.status, 429);
    assert.equal(r.json.code, 429);
    assert.match(r.json.error, /max_uploads_per_ip/);

    const b1 = await startUpload(srv, '127.0.0.2'); // another address has room
    await inFlight(srv, 3, 'and one from 127.0.0.2');
    r = await refused(srv, '127.0.0.3');
    assert.equal(r.status, 503);
    assert.match(r.json.error, /max_uploads/);
    assert.equal(await metric(srv, 'tern_uploads_refused_total'), 2);

    // the back end's master key uploads whatever the counts say
    const m = await startUpload(srv, '127.0.0.3', { master: true });
    assert.match(await finish(m), /^HTTP\/1\.1 201 /);
    await inFlight(srv, 3, 'the master key\'s upload was not counted');

    // a stored upload frees its slot; then another address gets in
    assert.match(await finish(a1), /^HTTP\/1\.1 201 /);
    await inFlight(srv, 2, 'a1 stored');
    const c1 = await startUpload(srv, '127.0.0.3');
    await inFlight(srv, 3, 'c1 in');
    // an abandoned one frees its slot too
    a2.destroy();
    b1.destroy();
    c1.destroy();
    await inFlight(srv, 0, 'all abandoned');

    // an upload token's PUT counts like any upload
    const tok = await (await fetch(`${srv.httpUrl}/1.1/fileTokens`, {
      method: 'POST', headers: { 'X-LC-Id': srv.appId, 'X-LC-Key': srv.appKey, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'put.bin' }),
    })).json();
    const putPath = tok.upload_url.slice(tok.upload_url.indexOf('/1.1/'));
    const x1 = await startUpload(srv, '127.0.0.4');
    const x2 = await startUpload(srv, '127.0.0.4');
    await inFlight(srv, 2, 'two from 127.0.0.4');
    const s = await connectFrom(srv, '127.0.0.4');
    s.write(`PUT ${putPath} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789`);
    const put = (await drainUntilClosed(s, 3000)).data.toString();
    assert.match(put, /^HTTP\/1\.1 429 /, put);
    x1.destroy();
    const s2 = await connectFrom(srv, '127.0.0.4');
    await inFlight(srv, 1, 'x1 gone');
    s2.write(`PUT ${putPath} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n0123456789`);
    assert.match((await drainUntilClosed(s2, 3000)).data.toString(), /^HTTP\/1\.1 200 /);
    x2.destroy();
    await inFlight(srv, 0, 'nothing left');
    await assertHealthy(srv);
  }));

test('#11 §8 forty keyless near-10 MiB uploads hold nothing: each is refused from its head, none takes a slot', () =>
  withServer({}, async (srv) => {
    const socks = [];
    for (let i = 0; i < 40; i++) {
      const s = await startUpload(srv, '127.0.0.1', { auth: '' });
      socks.push(drainUntilClosed(s, 3000));
    }
    for (const p of socks) {
      const { data, how } = await p;
      assert.match(data.toString(), /^HTTP\/1\.1 401 /);
      assert.notEqual(how, 'timeout');
    }
    assert.equal(await metric(srv, 'tern_uploads_in_flight'), 0);
    assert.equal(await metric(srv, 'tern_uploads_refused_total'), 0, 'refused for their keys, before any slot');
  }));

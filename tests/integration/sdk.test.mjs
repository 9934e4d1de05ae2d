// libtern against a real ternd: every scenario of tests/sdk/sdk_scenarios.c, one per row of
// docs/sdk.md (the iOS guide's API → its C function → the scenario that covers it).
//
// One sanitizer ternd serves all scenarios (client ids carry a random suffix). The upload
// scenario needs the file endpoint of issue #7, which ternd does not have yet: until it
// does, a tiny HTTP server in this file answers POST /1.1/files/<name> with the documented
// shape {objectId, url, name, size, mime_type, metaData}, and the SDK is pointed at it with
// files_url. Each scenario program exits non-zero on a failed check or a sanitizer report.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { startServer } from '../lib/server.mjs';
import { sdkBinary, runOk, run } from '../lib/sdk-c.mjs';

const bin = sdkBinary('sdk_scenarios');

function fileServer() {
  const uploads = [];
  const srv = createServer((req, res) => {
    const m = /^\/1\.1\/files\/([^/?]+)$/.exec(req.url);
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || !m) { res.writeHead(404).end('{}'); return; }
      const body = Buffer.concat(chunks);
      const name = decodeURIComponent(m[1]);
      const objectId = randomBytes(12).toString('hex');
      uploads.push({ name, size: body.length, type: req.headers['content-type'], appId: req.headers['x-lc-id'] });
      const json = JSON.stringify({
        objectId, name, size: body.length, mime_type: req.headers['content-type'],
        url: `http://127.0.0.1:${srv.address().port}/files/${objectId}/${encodeURIComponent(name)}`,
        metaData: { size: body.length, owner: 'unknown' },
      });
      res.writeHead(201, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(json) });
      res.end(json);
    });
  });
  return { srv, uploads };
}

describe('libtern against ternd (docs/sdk.md rows)', () => {
  let server;
  let files;
  let env;
  before(async () => {
    server = await startServer();
    files = fileServer();
    await new Promise((r) => files.srv.listen(0, '127.0.0.1', r));
    env = {
      TERN_URL: server.wsUrl,
      TERN_APP_ID: server.appId,
      TERN_APP_KEY: server.appKey,
      TERN_FILES_URL: `http://127.0.0.1:${files.srv.address().port}`,
    };
  });
  after(async () => {
    files?.srv.close();
    await server?.stop();
  });

  it('lists its scenarios', async () => {
    const r = await runOk(bin, []);
    assert.ok(r.stdout.split('\n').includes('single_chat'));
  });

  const scenarios = [
    'client', 'single_chat', 'group_chat', 'typed_messages', 'custom_types', 'transient', 'receipt', 'members',
    'update', 'mute', 'chatroom', 'unique', 'query', 'query_cache', 'history', 'cache_file', 'unread',
    'push_offline', 'signature', 'file_upload', 'multi_client', 'errors',
  ];
  for (const name of scenarios) {
    it(name, async () => {
      const r = await runOk(bin, [name], { env });
      assert.match(r.stdout, new RegExp(`^ok ${name}$`, 'm'));
      if (name === 'file_upload') {
        const up = files.uploads.at(-1);
        assert.ok(up, 'the upload reached the file endpoint');
        assert.equal(up.type, 'image/png');
        assert.equal(up.appId, server.appId);
      }
    });
  }

  it('an unknown scenario is an error', async () => {
    const r = await run(bin, ['nope'], { env });
    assert.equal(r.code, 2);
  });
});

// libtern against a real ternd: every scenario of tests/sdk/sdk_scenarios.c, one per row of
// docs/sdk.md (the iOS guide's API → its C function → the scenario that covers it).
//
// One sanitizer ternd serves all scenarios (client ids carry a random suffix). The upload
// scenario sends an image from a local path through ternd's file endpoint (POST
// /1.1/files/<name>, issue #7); this file then downloads the URL the message carries and
// checks the bytes. Each scenario program exits non-zero on a failed check or a sanitizer
// report.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { sdkBinary, runOk, run } from '../lib/sdk-c.mjs';

const bin = sdkBinary('sdk_scenarios');

describe('libtern against ternd (docs/sdk.md rows)', () => {
  let server;
  let env;
  before(async () => {
    server = await startServer();
    env = { TERN_URL: server.wsUrl, TERN_APP_ID: server.appId, TERN_APP_KEY: server.appKey };
  });
  after(async () => {
    await server?.stop();
  });

  it('lists its scenarios', async () => {
    const r = await runOk(bin, []);
    assert.ok(r.stdout.split('\n').includes('single_chat'));
  });

  const scenarios = [
    'client', 'single_chat', 'group_chat', 'typed_messages', 'custom_types', 'transient', 'receipt', 'members',
    'update', 'mute', 'chatroom', 'unique', 'query', 'query_cache', 'history', 'cache_file', 'unread',
    'push_offline', 'signature', 'file_upload', 'multi_client', 'errors', 'sso',
  ];
  for (const name of scenarios) {
    it(name, async () => {
      const r = await runOk(bin, [name], { env });
      assert.match(r.stdout, new RegExp(`^ok ${name}$`, 'm'));
      if (name === 'file_upload') {
        const url = /^url (.+)$/m.exec(r.stdout)[1];
        assert.ok(url.startsWith(server.httpUrl), url);
        const res = await fetch(url);
        assert.equal(res.status, 200);
        const bytes = Buffer.from(await res.arrayBuffer());
        assert.equal(bytes.length, 33);
        assert.deepEqual([...bytes.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
      }
    });
  }

  it('resume: paused, resuming, resumed across a server restart (r:true login with st)', { timeout: 90000 }, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tern-resume-'));
    let srv = await startServer({ dataDir });
    const { port } = srv;
    const renv = { TERN_URL: srv.wsUrl, TERN_APP_ID: srv.appId, TERN_APP_KEY: srv.appKey };
    const child = spawn(bin, ['resume'], {
      env: { ...process.env, ...renv, ASAN_OPTIONS: 'detect_leaks=1:exitcode=23' }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const exited = new Promise((r) => child.on('exit', r));
    try {
      for (let i = 0; i < 400 && !out.includes('ready'); i++) await new Promise((r) => setTimeout(r, 25));
      assert.ok(out.includes('ready'), err);
      await srv.stop({ keepData: true });
      await new Promise((r) => setTimeout(r, 1500)); // the first reconnect attempt finds nobody
      srv = await startServer({ dataDir, env: { TERN_LISTEN: `127.0.0.1:${port}` } });
      assert.equal(await exited, 0, err.slice(-4000));
      assert.match(out, /^ok resume$/m);
    } finally {
      child.kill();
      await srv.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('signed: a ternd that checks login and conversation signatures accepts the data source\'s', async () => {
    const signing = await startServer({ env: { TERN_SIGN_LOGIN: '1', TERN_SIGN_CONVERSATION: '1' } });
    try {
      const r = await runOk(bin, ['signed'], {
        env: { TERN_URL: signing.wsUrl, TERN_APP_ID: signing.appId, TERN_APP_KEY: signing.appKey, TERN_MASTER_KEY: signing.masterKey },
      });
      assert.match(r.stdout, /^ok signed$/m);
    } finally {
      await signing.stop();
    }
  });

  it('an unknown scenario is an error', async () => {
    const r = await run(bin, ['nope'], { env });
    assert.equal(r.code, 2);
  });
});

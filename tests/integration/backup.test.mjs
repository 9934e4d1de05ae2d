// Backups (issue #15 point 4, docs/operations.md "Backups"): `tern admin backup --to DIR`
// while clients keep sending, `ternd --restore=DIR` into a fresh data directory, and a
// server started there has every message acked before the backup began — and none acked
// after it answered (it is one commit's state, not a copy of the live files) — plus the
// uploaded files and the app's keys (app.json).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, ternBinary } from '../lib/server.mjs';
import { cliBinary, run } from '../lib/sdk-c.mjs';
import { closeAll, session, startConv, uid } from '../lib/proto-client.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'tern-backup-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// the keys are generated and kept in app.json (none in the environment), so the restored
// server can only know them from the backup's app.json
const ENV = { TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0', TERN_APP_KEY: '', TERN_MASTER_KEY: '' };
/** startServer with the keys ternd generated (or found) in its data directory's app.json. */
async function startWithAppJson(dataDir) {
  const srv = await startServer({ dataDir, env: ENV });
  const keys = JSON.parse(readFileSync(join(dataDir, 'app.json'), 'utf8'));
  srv.appKey = keys.app_key;
  srv.masterKey = keys.master_key;
  return srv;
}
const adminEnv = (srv) => ({ TERN_SERVER: srv.httpUrl, TERN_APP_ID: srv.appId, TERN_MASTER_KEY: srv.masterKey, TERN_URL: '', TERN_DATA_DIR: join(tmp, 'none') });
const master = (srv) => ({ 'X-LC-Id': srv.appId, 'X-LC-Key': `${srv.masterKey},master` });

/** Every message id of a conversation, through the REST API (pages of 1000, oldest first). */
async function history(srv, cid) {
  const ids = new Set();
  let after = 0;
  for (;;) {
    const res = await fetch(`${srv.httpUrl}/1.2/rtm/conversations/${cid}/messages?limit=1000&reversed=true&start_ts=${after}`, { headers: master(srv) });
    assert.equal(res.status, 200);
    const page = await res.json();
    for (const m of page) ids.add(m['msg-id']);
    if (page.length < 1000) return ids;
    after = page.at(-1).timestamp;
  }
}

test('backup under load, restore into a fresh data directory: every message acked before the backup began is there', { timeout: 240000 }, async () => {
  const dataA = join(tmp, 'a');
  const server = await startWithAppJson(dataA);
  let restored;
  let stop = false;
  let loops = [];
  try {
    // an uploaded file and the generated app.json travel with the backup
    const fileBody = Buffer.from(`file bytes ${uid('f')}`);
    const up = await fetch(`${server.httpUrl}/1.1/files/hello.txt`, {
      method: 'POST', headers: { ...master(server), 'Content-Type': 'text/plain' }, body: fileBody,
    });
    assert.equal(up.status, 201, await up.clone().text());
    const file = await up.json();

    // load: four writers, each in its own conversation, sending as fast as acks come back
    const writers = await Promise.all([0, 1, 2, 3].map(async (k) => {
      const c = await session(server, uid(`w${k}`));
      const conv = await startConv(c, [uid(`r${k}`)]);
      return { c, cid: conv.cid, acked: [] };
    }));
    loops = writers.map(async (w) => {
      for (let n = 0; !stop && n < 900; n++) {
        const r = await w.c.request({ cmd: 'direct', directMessage: { cid: w.cid, msg: `m${n}` } });
        assert.equal(r.cmd, 'ack', JSON.stringify(r));
        w.acked.push({ id: r.ackMessage.uid, at: Date.now() });
      }
    });
    const total = () => writers.reduce((s, w) => s + w.acked.length, 0);
    while (total() < 200) await new Promise((r) => setTimeout(r, 10));

    const dir = join(tmp, 'backup1');
    const before = writers.map((w) => w.acked.map((a) => a.id)); // acked before the backup began
    const countBefore = total();
    const r = await run(cliBinary(), ['admin', 'backup', '--to', dir, '--json'], { env: adminEnv(server) });
    const doneAt = Date.now();
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const out = JSON.parse(r.stdout);
    assert.equal(out.to, dir);
    assert.ok(out.database_bytes > 0);
    assert.equal(out.files, readdirSync(join(dataA, 'files')).length, 'every file of files/ (bytes and metadata)');
    assert.ok(total() > countBefore, 'the clients kept chatting while the backup ran');
    // and go on a little after it, so there are messages the backup must not have
    while (!writers.every((w) => w.acked.some((a) => a.at > doneAt + 50))) await new Promise((res) => setTimeout(res, 10));
    stop = true;
    await Promise.all(loops);
    const afterIds = writers.map((w) => w.acked.filter((a) => a.at > doneAt + 50).map((a) => a.id));

    for (const f of ['tern.db', 'app.json', 'backup.json', `files`]) assert.ok(existsSync(join(dir, f)), `${f} in the backup`);
    assert.equal(JSON.parse(readFileSync(join(dir, 'backup.json'), 'utf8')).ternd, 'tern-backup-1');

    // a second backup into the same (now full) directory is refused, the CLI says why
    const again = await run(cliBinary(), ['admin', 'backup', '--to', dir], { env: adminEnv(server) });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists and is not empty/);
    const rel = await run(cliBinary(), ['admin', 'backup', '--to', 'relative/dir'], { env: adminEnv(server) });
    assert.equal(rel.code, 2, 'a relative directory is a usage error');

    // restore into a fresh data directory, then start a server there
    const dataB = join(tmp, 'b');
    const res = await run(ternBinary(), [`--restore=${dir}`], { env: { TERN_DATA_DIR: dataB, TERN_LISTEN: '127.0.0.1:0' } });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stderr, new RegExp(`restored .* \\(${out.files} uploaded files into`));
    // restoring over a data directory that has a database is refused
    const over = await run(ternBinary(), [`--restore=${dir}`], { env: { TERN_DATA_DIR: dataB, TERN_LISTEN: '127.0.0.1:0' } });
    assert.notEqual(over.code, 0);
    assert.match(over.stderr, /exists: restore into an empty data directory/);
    assert.deepEqual(JSON.parse(readFileSync(join(dataB, 'app.json'), 'utf8')), JSON.parse(readFileSync(join(dataA, 'app.json'), 'utf8')));

    restored = await startWithAppJson(dataB);
    assert.equal(restored.masterKey, server.masterKey, 'the master key came back with app.json');
    for (let k = 0; k < writers.length; k++) {
      const ids = await history(restored, writers[k].cid);
      const missing = before[k].filter((id) => !ids.has(id));
      assert.deepEqual(missing, [], `writer ${k}: messages acked before the backup began are missing`);
      const late = afterIds[k].filter((id) => ids.has(id));
      assert.deepEqual(late, [], `writer ${k}: messages acked after the backup answered are in it`);
    }
    const dl = await fetch(`${restored.httpUrl}/files/${file.objectId}`);
    assert.equal(dl.status, 200);
    assert.deepEqual(Buffer.from(await dl.arrayBuffer()), fileBody);
  } finally {
    stop = true;
    await Promise.allSettled(loops);
    await closeAll();
    await server.stop();
    await restored?.stop();
  }
});

test('ternd --restore refuses a directory that is not a tern backup', async () => {
  const dir = join(tmp, 'not-a-backup');
  mkdirSync(dir);
  writeFileSync(join(dir, 'tern.db'), 'junk');
  const r = await run(ternBinary(), [`--restore=${dir}`], { env: { TERN_DATA_DIR: join(tmp, 'c'), TERN_LISTEN: '127.0.0.1:0' } });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /is not a tern backup/);
  assert.ok(!existsSync(join(tmp, 'c', 'tern.db')));
});

test('one backup at a time: a second one while the first copies is refused with 409, the first completes', { timeout: 120000 }, async () => {
  // 300 files to copy (each written, fsync'd and renamed: seconds on this disk) keep the first backup busy
  const data = join(tmp, 'busy');
  mkdirSync(join(data, 'files', 'padding'), { recursive: true });
  for (let i = 0; i < 300; i++) writeFileSync(join(data, 'files', 'padding', `p${i}`), 'x'.repeat(1024));
  const srv = await startServer({ dataDir: data });
  try {
    const post = (to) => fetch(`${srv.httpUrl}/1.2/tern/backup`, {
      method: 'POST', headers: { ...master(srv), 'Content-Type': 'application/json' }, body: JSON.stringify({ to }),
    });
    const d1 = join(tmp, 'busy-1');
    const first = post(d1);
    // the database is copied first and renamed into place: from then on the files are being copied
    const until = Date.now() + 30000;
    while (!existsSync(join(d1, 'tern.db'))) {
      assert.ok(Date.now() < until, 'the first backup never wrote its database');
      await new Promise((r) => setTimeout(r, 2));
    }
    const second = await post(join(tmp, 'busy-2'));
    const r1 = await first;
    const b1 = await r1.json();
    assert.equal(r1.status, 200, JSON.stringify(b1));
    assert.equal(b1.files, 300);
    assert.equal(second.status, 409, `the second answered while the first took ${b1.duration_ms} ms`);
    assert.deepEqual(await second.json(), { code: 409, error: 'a backup is already running' });
    assert.ok(!existsSync(join(tmp, 'busy-2')), 'the refused backup wrote nothing');
    // and once the first is done, the next one runs
    const third = await post(join(tmp, 'busy-3'));
    assert.equal(third.status, 200);
  } finally {
    await srv.stop();
  }
});

test('a backup into the uploaded files\' directory is refused before anything is copied (it would copy itself)', async () => {
  const data = join(tmp, 'self');
  const srv = await startServer({ dataDir: data });
  try {
    const up = await fetch(`${srv.httpUrl}/1.1/files/a.txt`, {
      method: 'POST', headers: { ...master(srv), 'Content-Type': 'text/plain' }, body: 'some bytes',
    });
    assert.equal(up.status, 201);
    const post = (to) => fetch(`${srv.httpUrl}/1.2/tern/backup`, {
      method: 'POST', headers: { ...master(srv), 'Content-Type': 'application/json' }, body: JSON.stringify({ to }),
    });
    for (const to of [join(data, 'files', 'bk'), join(data, 'files')]) {
      const r = await post(to);
      const body = await r.json();
      assert.equal(r.status, to.endsWith('bk') ? 400 : 409, JSON.stringify(body));
      if (r.status === 400) assert.match(body.error, /inside the uploaded files' directory/);
    }
    assert.ok(!existsSync(join(data, 'files', 'bk')), 'the refused backup left nothing behind');
    // beside it, in the data directory, is fine
    const ok = await post(join(data, 'bk'));
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).files, readdirSync(join(data, 'files')).length);
  } finally {
    await srv.stop();
  }
});

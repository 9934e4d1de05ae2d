// `tern admin import leancloud` against test doubles (tests/lib/import-fake.mjs): a source
// that answers in LeanCloud's documented shapes and misbehaves on request, and a target
// that keeps what the import contract says it keeps. What these check is the importer's own
// behaviour — parsing what tern never produces (tests/fixtures/leancloud/), paging, retries,
// the state file across SIGKILL and SIGINT, the delta, skips, --json, export and
// --from-dir, --rehost-files. The same import into a real ternd is import.test.mjs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliBinary, run } from '../lib/sdk-c.mjs';
import { fakeLeanCloud, fakeTarget, lcItem } from '../lib/import-fake.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIX = join(root, 'tests', 'fixtures', 'leancloud');
const tern = cliBinary();
const tmp = mkdtempSync(join(tmpdir(), 'tern-import-fake-'));
const APP = 'fakeAppId0000000000000000-gzGzoHsz';
const KEY = 'fakeMasterKey0000000000';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let nstate = 0;
const stateFile = () => join(tmp, `state-${++nstate}.json`);

after(() => rmSync(tmp, { recursive: true, force: true }));

const readLines = (f) => readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const readAny = (f) => {
  const t = readFileSync(f, 'utf8').trim();
  if (t.startsWith('[')) return JSON.parse(t);
  if (t.startsWith('{"results"')) return JSON.parse(t).results;
  return readLines(f);
};

/** The fixtures' export directory as the fake source's data. */
function fixtureData() {
  const dir = join(FIX, 'export');
  const messages = {};
  for (const f of readdirSync(join(dir, 'messages'))) messages[decodeURIComponent(f.replace(/\.jsonl$/, ''))] = readLines(join(dir, 'messages', f));
  const extras = {};
  for (const x of readLines(join(dir, '_ConversationExtras.jsonl'))) extras[x.cid] = x;
  for (const mi of readLines(join(dir, '_ConversationMemberInfo.jsonl'))) {
    extras[mi.cid] ??= { member_infos: [] };
    extras[mi.cid].member_infos = [...(extras[mi.cid].member_infos || []), mi];
  }
  return {
    classes: {
      _Conversation: readLines(join(dir, '_Conversation.jsonl')).filter((c) => !c.objectId.startsWith('_tmp:')),
      _Installation: readAny(join(dir, '_Installation.json')),
      _File: readAny(join(dir, '_File.json')),
    },
    extras, messages, files: {},
  };
}

/** A bigger app: n conversations of m messages, paging everywhere. */
function bigData(n, m) {
  const d = { classes: { _Conversation: [], _Installation: [], _File: [] }, extras: {}, messages: {}, files: {} };
  for (let i = 0; i < n; i++) {
    const cid = (0x5a000000 + i).toString(16).padStart(8, '0') + '0'.repeat(16);
    d.classes._Conversation.push({ objectId: cid, name: `c${i}`, m: ['a', 'b'], c: 'a', createdAt: '2020-01-01T00:00:00.000Z',
      updatedAt: '2020-01-01T00:00:00.000Z', ACL: { '*': { read: true } } });
    d.extras[cid] = { member_infos: [], permanent_silenceds: [], blacklists: [], subscribers: [] };
    d.messages[cid] = Array.from({ length: m }, (_, k) =>
      lcItem(cid, 1600000000000 + k * 10 + (k % 3 === 0 ? 0 : 1), `m${i}x${String(k).padStart(6, '0')}`, k % 2 ? 'a' : 'b', `msg ${k}`));
  }
  for (let i = 0; i < 1500; i++) {
    d.classes._Installation.push({ objectId: `inst${String(i).padStart(5, '0')}`, deviceType: 'android', installationId: `i${i}`,
      channels: ['a'], createdAt: '2020-01-01T00:00:00.000Z', updatedAt: `2020-01-0${1 + (i % 3)}T00:00:00.000Z` });
  }
  return d;
}

function importArgs(src, target, extra = []) {
  return ['admin', 'import', 'leancloud', '--from', src.url, '--from-app-id', APP, '--from-master-key', KEY,
    '--server', target.url, '--app-id', APP, '--master-key', KEY, '--rate', '0', ...extra];
}
const runImport = (src, target, extra, opts) => run(tern, importArgs(src, target, extra), { timeoutMs: 300000, ...opts });

/** What the fake target holds, as sorted plain data. */
function targetView(t) {
  const strip = (m) => { const { 'patch-timestamp': _p, ...rest } = m; return rest; };
  return {
    convs: [...t.convs.values()].sort((a, b) => (a.objectId < b.objectId ? -1 : 1)),
    msgs: [...t.msgs.values()].map(strip).sort((a, b) => (`${a.cid}${a['msg-id']}` < `${b.cid}${b['msg-id']}` ? -1 : 1)),
    sets: [...t.sets.entries()].sort(),
    installations: [...t.installations.keys()].sort(),
  };
}

describe('fixtures: LeanCloud\'s documented shapes become the contract\'s records', () => {
  it('--from-dir --dry-run prints exactly the expected records, fields tern ignores dropped', async () => {
    const r = await run(tern, ['admin', 'import', 'leancloud', '--from-dir', join(FIX, 'export'), '--dry-run',
      '--server', 'http://127.0.0.1:9', '--app-id', APP, '--master-key', KEY]);
    const got = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const want = readLines(join(FIX, 'expected-records.ndjson'));
    assert.deepEqual(got, want, r.stderr);
    // the summary (stderr, last line) lists each skip with its reason; exit 1 because of them
    const sum = JSON.parse(r.stderr.trim().split('\n').at(-1));
    assert.equal(r.code, 1);
    assert.deepEqual(sum.skipped.map((s) => [s.kind, s.id]), [['file', '5a5d7433c3422b31ed845eff'], ['message', '']]);
    for (const rec of got) {
      assert.equal(rec.ACL, undefined, 'ACL is dropped');
      assert.equal(rec['from-ip'], undefined, 'from-ip is dropped');
      assert.equal(rec['conv-id'], undefined, 'conv-id (a hash on LeanCloud) is dropped');
    }
    const byId = Object.fromEntries(got.filter((x) => x.type === 'message').map((x) => [x['msg-id'], x]));
    assert.equal(byId.rEcAlLeDmEsSaGe0000001.recalled, true);
    assert.equal(byId.eDiTeDmEsSaGe000000001['patch-timestamp'], 1408008600000);
    assert.equal(byId.bInArYmEsSaGe000000001.binary, 'AAECAwQ=');
    assert.deepEqual(byId.mEnTiOnMeSsAgE00000001['mention-pids'], ['tom']);
    assert.ok(!got.some((x) => x.objectId?.startsWith('_tmp:')), 'an expired temporary conversation is left out');
  });

  it('the REST source gives the same records as the exported files', async () => {
    const src = await fakeLeanCloud({ appId: APP, masterKey: KEY, data: fixtureData() });
    const r = await run(tern, ['admin', 'import', 'leancloud', '--from', src.url, '--from-app-id', APP, '--from-master-key', KEY,
      '--dry-run', '--rate', '0', '--server', 'http://127.0.0.1:9', '--app-id', APP, '--master-key', KEY]);
    await src.close();
    const got = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    // conversations' jobs run at once, so records of different conversations interleave:
    // the same set, and each conversation's messages still oldest first
    const sorted = (a) => a.map((x) => JSON.stringify(x)).sort();
    assert.deepEqual(sorted(got), sorted(readLines(join(FIX, 'expected-records.ndjson'))), r.stderr);
    const ts = got.filter((x) => x.cid === '5a5ecde6c3422b738c8779d7' && x.type === 'message').map((x) => x.timestamp);
    assert.deepEqual(ts, [...ts].sort((a, b) => a - b));
  });

  it('rejects bad usage with exit 2', async () => {
    const base = ['admin', 'import', 'leancloud', '--server', 'http://127.0.0.1:9', '--app-id', APP, '--master-key', KEY];
    for (const extra of [[], ['--from', 'ftp://x', '--from-master-key', 'k'], ['--from', 'http://x'],
      ['--from', 'http://x', '--from-dir', '/tmp'], ['--from-dir', join(tmp, 'nope')]]) {
      const r = await run(tern, [...base, ...extra]);
      assert.equal(r.code, 2, `${extra.join(' ')}: ${r.stderr}`);
    }
  });
});

describe('into a target: paging, state, delta', () => {
  it('copies everything, pages every list, and a second run sends nothing new', async () => {
    const data = bigData(12, 2300);
    const cid0 = data.classes._Conversation[0].objectId;
    data.extras[cid0].permanent_silenceds = Array.from({ length: 1100 }, (_, i) => `s${String(i).padStart(4, '0')}`);
    data.classes._Conversation.push({ objectId: 'ffff00000000000000000001', sys: true, name: 'svc', createdAt: '2020-01-01T00:00:00.000Z', updatedAt: '2020-01-01T00:00:00.000Z' });
    data.extras.ffff00000000000000000001 = { subscribers: Array.from({ length: 130 }, (_, i) => `sub${String(i).padStart(3, '0')}`), blacklists: [] };
    const src = await fakeLeanCloud({ appId: APP, masterKey: KEY, data });
    const target = await fakeTarget({ appId: APP, masterKey: KEY });
    const state = stateFile();
    const r = await runImport(src, target, ['--state', state, '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
    const sum = JSON.parse(r.stdout.trim().split('\n').at(-1));
    assert.equal(sum.complete, true);
    assert.equal(sum.messages, 12 * 2300);
    assert.equal(target.msgs.size, 12 * 2300, 'every message arrived');
    assert.equal(target.installations.size, 1500, 'installations paged past 1000');
    assert.equal(target.sets.get(`shutup:${cid0}`).clients.length, 1100, 'permanent-silenceds paged with next');
    assert.equal(target.sets.get('subscribers:ffff00000000000000000001').clients.length, 130, 'subscribers paged by client_id');
    assert.ok(Math.max(...target.bodies) <= 5000, 'bodies of at most 5,000 lines');
    assert.ok([...target.lineCounts.values()].every((n) => n === 1), 'nothing sent twice');
    // again: nothing changed, so no record goes out
    const posts = target.posts;
    const r2 = await runImport(src, target, ['--state', state, '--json']);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(JSON.parse(r2.stdout.trim().split('\n').at(-1)).messages, 0);
    assert.equal(target.posts - posts, 0, 'an unchanged source sends no body');
    await src.close();
    await target.close();
  });

  it('the delta brings new conversations, new messages, edits, recalls and member changes', async () => {
    const data = bigData(3, 50);
    const [c0, c1] = data.classes._Conversation.map((c) => c.objectId);
    const src = await fakeLeanCloud({ appId: APP, masterKey: KEY, data });
    const target = await fakeTarget({ appId: APP, masterKey: KEY });
    const state = stateFile();
    assert.equal((await runImport(src, target, ['--state', state])).code, 0);
    const now = Date.now();
    // new messages in c0, an edit and a recall of old ones in c1, a member change in c1, a new conversation
    data.messages[c0].push(lcItem(c0, now, 'newmsg0000000000000001', 'a', 'new one'));
    const edited = data.messages[c1][10];
    edited.data = 'edited!';
    edited['patch-timestamp'] = now;
    const recalled = data.messages[c1][11];
    recalled.data = '{"_lctype":-127}';
    recalled['patch-timestamp'] = now;
    data.classes._Conversation[1].m = ['a', 'b', 'c'];
    data.classes._Conversation[1].updatedAt = new Date(now).toISOString();
    data.classes._Conversation.push({ objectId: 'fffe00000000000000000002', name: 'later', m: ['x'], createdAt: new Date(now).toISOString(), updatedAt: new Date(now).toISOString() });
    data.messages.fffe00000000000000000002 = [lcItem('fffe00000000000000000002', now - 5, 'latermsg00000000000001', 'x', 'hi')];
    // the recheck window reaches back to these (old) messages only through their edit: the
    // app-wide walk sees them because the fake's items keep their old timestamps, so widen it
    const r = await runImport(src, target, ['--state', state, '--recheck-days', '3650', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(target.msgs.get(`${c0}/newmsg0000000000000001`).data, 'new one');
    assert.equal(target.msgs.get(`${c1}/${edited['msg-id']}`).data, 'edited!');
    assert.equal(target.msgs.get(`${c1}/${recalled['msg-id']}`).recalled, true);
    assert.deepEqual(target.convs.get(c1).m, ['a', 'b', 'c']);
    assert.equal(target.msgs.get('fffe00000000000000000002/latermsg00000000000001').data, 'hi');
    assert.deepEqual(targetView(target).msgs.length, 3 * 50 + 2);
    await src.close();
    await target.close();
  });

  it('a record the target refuses is listed with its reason and the exit status is 1', async () => {
    const data = bigData(1, 10);
    const src = await fakeLeanCloud({ appId: APP, masterKey: KEY, data });
    const target = await fakeTarget({ appId: APP, masterKey: KEY, failLine: (r) => r['msg-id'] === 'm0x000003' });
    const r = await runImport(src, target, ['--state', stateFile(), '--json']);
    assert.equal(r.code, 1, r.stderr);
    const sum = JSON.parse(r.stdout.trim().split('\n').at(-1));
    assert.deepEqual(sum.skipped, [{ kind: 'record', id: 'm0x000003', reason: 'refused by the test' }]);
    assert.equal(sum.complete, true);
    assert.equal(target.msgs.size, 9);
    await src.close();
    await target.close();
  });
});

describe('faults', () => {
  it('429, 500 and cut connections are retried; two SIGKILLs and a resume lose and double nothing', async () => {
    const data = bigData(10, 3000);
    const src = await fakeLeanCloud({ appId: APP, masterKey: KEY, data, faults: { p429: 0.1, p500: 0.1, pDrop: 0.05, retryAfter: 0 } });
    const target = await fakeTarget({ appId: APP, masterKey: KEY });
    const state = stateFile();
    const env = { ASAN_OPTIONS: 'detect_leaks=0' };
    for (let kill = 0; kill < 2; kill++) {
      const child = spawn(tern, importArgs(src, target, ['--state', state, '--batch', '1000', '--retries', '30']), { env: { ...process.env, ...env }, stdio: 'ignore' });
      const before = target.msgs.size;
      // a random moment once it is under way
      const t0 = Date.now();
      while (target.msgs.size - before < 2000 + Math.floor(Math.random() * 4000) && Date.now() - t0 < 60000 && child.exitCode === null) await sleep(5);
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      assert.ok(target.msgs.size < 30000, 'killed before the end');
    }
    const r = await runImport(src, target, ['--state', state, '--json', '--retries', '30']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-1500));
    assert.ok(src.stats.r429 > 0 && src.stats.r500 > 0 && src.stats.drops > 0, JSON.stringify(src.stats));
    const sum = JSON.parse(r.stdout.trim().split('\n').at(-1));
    assert.ok(sum.retries > 0);
    assert.equal(target.msgs.size, 30000, 'nothing lost');
    for (const [cid, items] of Object.entries(data.messages)) {
      for (const it of items) assert.equal(target.msgs.get(`${cid}/${it['msg-id']}`)?.data, it.data);
    }
    // resent: at most the bodies in flight at each kill (3 queued + 1 open of 1,000 lines)
    const resent = [...target.lineCounts.entries()].filter(([k]) => k.startsWith('m:')).reduce((a, [, n]) => a + n - 1, 0);
    assert.ok(resent <= 2 * 5 * 1000, `resent ${resent}`);
    await src.close();
    await target.close();
  });

  it('SIGINT stops cleanly with the state saved; the next run finishes the job', async () => {
    const data = bigData(6, 3000);
    const src = await fakeLeanCloud({ appId: APP, masterKey: KEY, data });
    const target = await fakeTarget({ appId: APP, masterKey: KEY });
    const state = stateFile();
    const child = spawn(tern, importArgs(src, target, ['--state', state, '--batch', '500', '--rate', '40']), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    while (target.msgs.size < 1000) await sleep(5);
    child.kill('SIGINT');
    const code = await new Promise((r) => child.once('exit', r));
    assert.equal(code, 1, `interrupted: exit 1 (not a crash, no leak report)\n${err}`);
    assert.match(err, /interrupted/);
    assert.ok(existsSync(state));
    const st = JSON.parse(readFileSync(state, 'utf8'));
    assert.ok(Object.values(st.convs || {}).some((c) => c.ts > 0), 'cursors were saved');
    const r = await runImport(src, target, ['--state', state]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(target.msgs.size, 18000);
    assert.match(r.stdout, /import complete/);
    await src.close();
    await target.close();
  });
});

describe('export, --from-dir and --rehost-files', () => {
  it('export writes the pull; importing that directory gives what importing the source gives', async () => {
    const data = fixtureData();
    data.files['543cbaede4b07db196f50f3c'] = Buffer.from([0x89, 0x50, 0x4e, 0x47]);
    const src = await fakeLeanCloud({ appId: APP, masterKey: KEY, data });
    // files live on the source's file host: point the fixture URLs there
    const fileUrl = `${src.url}/files/543cbaede4b07db196f50f3c`;
    data.classes._File[0].url = fileUrl;
    const cid = '5a5ecde6c3422b738c8779d7';
    for (const it of data.messages[cid]) it.data = it.data.replaceAll('https://lc-gluttony.s3.amazonaws.com/4a2b1c.png', fileUrl);
    const dir = join(tmp, 'export');
    const e = await run(tern, ['admin', 'export', 'leancloud', '--from', src.url, '--from-app-id', APP, '--from-master-key', KEY,
      '--to', dir, '--rehost-files', '--rate', '0']);
    assert.equal(e.code, 0, e.stderr + e.stdout);
    assert.ok(existsSync(join(dir, 'manifest.json')));
    assert.deepEqual(readFileSync(join(dir, 'files', '543cbaede4b07db196f50f3c')), data.files['543cbaede4b07db196f50f3c']);
    assert.equal(readLines(join(dir, 'messages', `${cid}.jsonl`)).length, data.messages[cid].length);

    const viaRest = await fakeTarget({ appId: APP, masterKey: KEY });
    const a = await runImport(src, viaRest, ['--state', stateFile(), '--rehost-files']);
    const viaDir = await fakeTarget({ appId: APP, masterKey: KEY });
    await src.close(); // LeanCloud is gone: the directory must be enough
    const b = await run(tern, ['admin', 'import', 'leancloud', '--from-dir', dir, '--rehost-files', '--state', stateFile(),
      '--server', viaDir.url, '--app-id', APP, '--master-key', KEY]);
    for (const x of [a, b]) assert.equal(x.code, 1, `one message has no msg-id: skipped\n${x.stderr}${x.stdout}`);
    const strip = (v, t) => JSON.parse(JSON.stringify(v).replaceAll(t.url, 'TARGET'));
    assert.deepEqual(strip(targetView(viaDir), viaDir), strip(targetView(viaRest), viaRest));
    // rehosted: the bytes went to the target and the image message points there
    assert.deepEqual(viaDir.files.get('543cbaede4b07db196f50f3c').bytes, data.files['543cbaede4b07db196f50f3c']);
    assert.equal(viaDir.files.get('543cbaede4b07db196f50f3c').name, 'avatar.png');
    const img = viaDir.msgs.get(`${cid}/Hq3Kz8o1Rk2gM3n4P5q6Rw`);
    assert.ok(img.data.includes(`${viaDir.url}/files/543cbaede4b07db196f50f3c`), img.data);
    assert.ok(!img.data.includes(fileUrl));
    assert.ok(img.data.startsWith('{"_lctype":-2,"_lctext":"图像是个好东西","_lcfile":{"url":'), 'the content keeps its text form');
    await viaRest.close();
    await viaDir.close();
  });
});

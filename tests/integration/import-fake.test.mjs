// `tern admin import leancloud` from a test double of LeanCloud (tests/lib/import-fake.mjs:
// LeanCloud itself cannot run here) that answers in LeanCloud's documented shapes and
// misbehaves on request, into a real ternd, checked through ternd's own REST reads
// (/1.2/rtm/…, /1.1/classes/…). What these check is the importer's own behaviour —
// parsing what tern never produces (tests/fixtures/leancloud/), paging of every list,
// retries, the state file across SIGKILL and SIGINT, the delta, skips, --json, export and
// --from-dir, --rehost-files. A counting pass-through (importTap) in front of the target
// tells "sent once" from "sent twice", which ternd's reads cannot. The same import with a
// ternd as the source too is import.test.mjs.
import { describe, it, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, existsSync, cpSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliBinary, run } from '../lib/sdk-c.mjs';
import { fakeLeanCloud, importTap, lcItem } from '../lib/import-fake.mjs';
import { startServer } from '../lib/server.mjs';
import { rest, allConversations, conversationView, compareServers, history, countMessages, spawnTern, killWhen } from '../lib/import-e2e.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIX = join(root, 'tests', 'fixtures', 'leancloud');
const tern = cliBinary();
const tmp = mkdtempSync(join(tmpdir(), 'tern-import-fake-'));
const APP = 'fakeAppId0000000000000000-gzGzoHsz';
const KEY = 'fakeMasterKey0000000000';
let nstate = 0;
const stateFile = () => join(tmp, `state-${++nstate}.json`);

after(() => rmSync(tmp, { recursive: true, force: true }));

// every server a test starts is closed after it, passed or failed (a test that failed
// half way must not leave a ternd or a listening double keeping this file alive)
const opened = [];
const once = (fn) => { let p; return () => (p ??= fn()); };
afterEach(async () => {
  for (const close of opened.splice(0).reverse()) await close().catch(() => {});
});
async function source(opts) {
  const src = await fakeLeanCloud(opts);
  src.close = once(src.close);
  opened.push(src.close);
  return src;
}

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

/** A real ternd to import into, behind a counting tap (importTap). */
async function newTarget(env = {}, tapOpts = {}) {
  const server = await startServer({ env: { TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0', ...env } });
  const tap = await importTap(server, tapOpts);
  const t = { server, tap, url: tap.url, close: once(async () => { await tap.close(); await server.stop(); }) };
  opened.push(t.close);
  return t;
}

function importArgs(src, target, extra = []) {
  return ['admin', 'import', 'leancloud', '--from', src.url, '--from-app-id', APP, '--from-master-key', KEY,
    '--server', target.url, '--app-id', target.server.appId, '--master-key', target.server.masterKey, '--rate', '0', ...extra];
}
const runImport = (src, target, extra, opts) => run(tern, importArgs(src, target, extra), { timeoutMs: 300000, ...opts });
const lastJson = (r) => JSON.parse(r.stdout.trim().split('\n').at(-1));

/** ternd's REST history of a conversation, oldest first: [{msg-id, timestamp, from, data, …}]. */
const held = async (t, cid, kind = 'conversations') => (await history(t.server, { objectId: cid, tr: kind === 'chatrooms', sys: kind === 'service-conversations' })).items;

/** Every message the source data holds is in ternd, with its id, time, sender and content. */
async function assertHolds(t, data) {
  for (const [cid, items] of Object.entries(data.messages)) {
    const got = await held(t, cid);
    assert.deepEqual(got.map((x) => [x['msg-id'], x.timestamp, x.from, x.data]),
      items.map((x) => [x['msg-id'], x.timestamp, x.from, x.data]), `history of ${cid}`);
  }
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

  it('a directory holding a class twice (tern\'s export beside the console\'s) reads each object once, the newest', async () => {
    const dir = join(tmp, 'twice');
    cpSync(join(FIX, 'export'), dir, { recursive: true });
    // the console's export of the same class: {"results": […]}, an older copy of each object
    const older = readLines(join(dir, '_Conversation.jsonl')).map((c) => ({ ...c, name: 'stale', updatedAt: '2000-01-01T00:00:00.000Z' }));
    writeFileSync(join(dir, '_Conversation.0.json'), JSON.stringify({ results: older }));
    writeFileSync(join(dir, '_Installation.0.json'), JSON.stringify(readAny(join(dir, '_Installation.json'))));
    const r = await run(tern, ['admin', 'import', 'leancloud', '--from-dir', dir, '--dry-run',
      '--server', 'http://127.0.0.1:9', '--app-id', APP, '--master-key', KEY]);
    const got = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.deepEqual(got, readLines(join(FIX, 'expected-records.ndjson')), r.stderr);
  });

  it('the REST source gives the same records as the exported files', async () => {
    const src = await source({ appId: APP, masterKey: KEY, data: fixtureData() });
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

describe('into a real ternd: paging, state, delta', () => {
  it('copies everything, pages every list, and a second run sends nothing new', async () => {
    const data = bigData(12, 2300);
    const cid0 = data.classes._Conversation[0].objectId;
    // 450 shut-ups (tern keeps at most 500 a conversation) in pages of at most 200
    data.extras[cid0].permanent_silenceds = Array.from({ length: 450 }, (_, i) => `s${String(i).padStart(4, '0')}`);
    data.pageCap = 200;
    data.classes._Conversation.push({ objectId: 'ffff00000000000000000001', sys: true, name: 'svc', createdAt: '2020-01-01T00:00:00.000Z', updatedAt: '2020-01-01T00:00:00.000Z' });
    data.extras.ffff00000000000000000001 = { subscribers: Array.from({ length: 130 }, (_, i) => `sub${String(i).padStart(3, '0')}`), blacklists: [] };
    const src = await source({ appId: APP, masterKey: KEY, data });
    const t = await newTarget();
    const state = stateFile();
    const r = await runImport(src, t, ['--state', state, '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
    const sum = lastJson(r);
    assert.equal(sum.complete, true);
    assert.equal(sum.messages, 12 * 2300);
    // what ternd holds: every conversation, message, installation and set, paged past each limit
    const convs = await allConversations(t.server);
    assert.deepEqual(convs.map((c) => c.objectId), data.classes._Conversation.map((c) => c.objectId).sort());
    assert.equal(await countMessages(t.server, data.classes._Conversation.slice(0, 12).map((c) => c.objectId)), 12 * 2300);
    await assertHolds(t, { messages: { [cid0]: data.messages[cid0] } });
    const inst = await rest(t.server, 'GET', '/1.1/classes/_Installation?count=1&limit=0');
    assert.equal(inst.count, 1500, 'installations paged past 1000');
    const v0 = await conversationView(t.server, convs[0]);
    assert.deepEqual(v0.shutup, data.extras[cid0].permanent_silenceds, 'permanent-silenceds paged with next');
    assert.equal(src.stats.byPath['/1.2/rtm/conversations/:id/permanent-silenceds'], 12 + 2, 'three pages for the 450');
    const svc = await conversationView(t.server, convs.find((c) => c.objectId === 'ffff00000000000000000001'));
    assert.equal(svc.subscribers.length, 130, 'subscribers paged by client_id');
    assert.ok(Math.max(...t.tap.bodies) <= 5000, 'bodies of at most 5,000 lines');
    assert.ok([...t.tap.lineCounts.values()].every((n) => n === 1), 'nothing sent twice');
    // again: nothing changed, so no record goes out
    const posts = t.tap.posts;
    const r2 = await runImport(src, t, ['--state', state, '--json']);
    assert.equal(r2.code, 0, r2.stderr);
    const sum2 = lastJson(r2);
    assert.deepEqual([sum2.messages, sum2.applied, sum2.unchanged], [0, 0, 0]);
    assert.equal(t.tap.posts - posts, 0, 'an unchanged source sends no body');
    await src.close();
    await t.close();
  });

  it('two bodies go out at once, never two the target must apply in order', async () => {
    const data = bigData(12, 2300);
    // a tie at one millisecond where a conversation's pages meet: its two halves may not
    // be in flight together
    data.messages[data.classes._Conversation[3].objectId][1000].timestamp = data.messages[data.classes._Conversation[3].objectId][999].timestamp;
    const src = await source({ appId: APP, masterKey: KEY, data });
    const t = await newTarget({}, { delayRecordsMs: 150 }); // bodies sent at once are in flight together
    const r = await runImport(src, t, ['--state', stateFile(), '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
    assert.equal(t.tap.maxInFlight, 2, 'the target parses one body while it commits another');
    assert.deepEqual(t.tap.conflicts, [], 'no conversation has records in two bodies in flight whose order matters');
    await assertHolds(t, data);
    assert.ok([...t.tap.lineCounts.values()].every((n) => n === 1), 'nothing sent twice');
    await src.close();
    await t.close();
  });

  it('the delta brings new conversations, new messages, edits, recalls and member changes', async () => {
    const data = bigData(3, 50);
    const [c0, c1] = data.classes._Conversation.map((c) => c.objectId);
    const src = await source({ appId: APP, masterKey: KEY, data });
    const t = await newTarget();
    const state = stateFile();
    assert.equal((await runImport(src, t, ['--state', state])).code, 0);
    await assertHolds(t, data);
    const now = Date.now();
    // new messages in c0, an edit and a recall of old ones in c1, a member change in c1, a new conversation
    // its content has every character JSON escapes, and some it does not (the importer writes
    // message records itself, not through jansson)
    data.messages[c0].push(lcItem(c0, now, 'newmsg0000000000000001', 'a', 'new "one"\\ \u0001\u001f\b\f\n\r\t / é 好 😀 \u2028 end'));
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
    const r = await runImport(src, t, ['--state', state, '--recheck-days', '3650', '--json']);
    assert.equal(r.code, 0, r.stderr);
    await assertHolds(t, data);
    const h1 = await held(t, c1);
    assert.equal(h1.find((x) => x['msg-id'] === edited['msg-id'])['patch-timestamp'], now, 'the edit time');
    assert.equal(h1.find((x) => x['msg-id'] === recalled['msg-id']).recall, true, 'recalled');
    assert.deepEqual((await rest(t.server, 'GET', `/1.2/rtm/conversations/${c1}`)).m, ['a', 'b', 'c']);
    assert.equal((await rest(t.server, 'GET', '/1.2/rtm/conversations/fffe00000000000000000002')).name, 'later');
    assert.equal(await countMessages(t.server, Object.keys(data.messages)), 3 * 50 + 2);
    await src.close();
    await t.close();
  });

  it('records ternd refuses are listed with their reasons, the rest arrives, and the exit status is 1', async () => {
    const data = bigData(1, 10);
    const cid = data.classes._Conversation[0].objectId;
    data.messages[cid][3].data = 'x'.repeat(600000); // past max_message
    // ternd takes no U+0000 (its parser refuses the line, so its answer names only the line
    // number): the importer passes it on, and names the record from the body it sent
    data.messages[cid][5].data = 'a NUL: \u0000';
    const src = await source({ appId: APP, masterKey: KEY, data });
    const t = await newTarget();
    const r = await runImport(src, t, ['--state', stateFile(), '--json']);
    assert.equal(r.code, 1, r.stderr);
    const sum = lastJson(r);
    assert.deepEqual(sum.skipped, [{ kind: 'record', id: 'm0x000003', reason: 'content larger than max_message' },
      { kind: 'record', id: 'm0x000005', reason: 'not a JSON object' }]);
    assert.equal(sum.complete, true);
    assert.deepEqual((await held(t, cid)).map((x) => x['msg-id']),
      data.messages[cid].map((x) => x['msg-id']).filter((m) => m !== 'm0x000003' && m !== 'm0x000005'), 'the rest of the conversation arrived');
    await src.close();
    await t.close();
  });
});

describe('faults', () => {
  it('429, 500 and cut connections are retried; two SIGKILLs and a resume lose and double nothing', { timeout: 420000 }, async () => {
    const data = bigData(10, 3000);
    const src = await source({ appId: APP, masterKey: KEY, data, faults: { p429: 0.1, p500: 0.1, pDrop: 0.05, retryAfter: 0 } });
    const t = await newTarget();
    const state = stateFile();
    const TOTAL = 30000;
    for (let kill = 0; kill < 2; kill++) {
      const before = t.tap.acked.size;
      // a random moment in the first half of what is left
      const want = before + 1000 + Math.floor(Math.random() * Math.max(1, (TOTAL - before) / 2 - 1000));
      const p = spawnTern(tern, importArgs(src, t, ['--state', state, '--batch', '1000', '--retries', '30', '--rate', '40']));
      await killWhen(p, async () => t.tap.acked.size >= want, {
        diag: async () => JSON.stringify({ kill, before, want, acked: t.tap.acked.size, stats: src.stats }),
      });
    }
    const r = await runImport(src, t, ['--state', state, '--json', '--retries', '30']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-1500));
    assert.ok(src.stats.r429 > 0 && src.stats.r500 > 0 && src.stats.drops > 0, JSON.stringify(src.stats));
    assert.ok(lastJson(r).retries > 0);
    await assertHolds(t, data); // nothing lost, nothing doubled, every content as the source has it
    // resent: at most the bodies not yet acknowledged at each kill (4 sealed + 1 open of 1,000 lines)
    const resent = [...t.tap.lineCounts.entries()].filter(([k]) => k.startsWith('m:')).reduce((a, [, n]) => a + n - 1, 0);
    assert.ok(resent <= 2 * 5 * 1000, `resent ${resent}`);
    await src.close();
    await t.close();
  });

  it('an answer that never ends is cut at 64 MiB, not retried, and the run fails saying so', { timeout: 120000 }, async () => {
    const src = await source({ appId: APP, masterKey: KEY, data: bigData(1, 10), faults: { endless: /_Conversation/ } });
    const t = await newTarget();
    const r = await runImport(src, t, ['--state', stateFile(), '--retries', '5']);
    assert.notEqual(r.code, 0, r.stdout.slice(-1500));
    assert.match(r.stderr + r.stdout, /the answer is larger than 64 MiB/);
    assert.equal(src.stats.byPath['/1.1/classes/_Conversation'], 1, JSON.stringify(src.stats.byPath));
    await src.close();
    await t.close();
  });

  it('SIGINT stops cleanly with the state saved; the next run finishes the job', { timeout: 300000 }, async () => {
    const data = bigData(6, 3000);
    const src = await source({ appId: APP, masterKey: KEY, data });
    const t = await newTarget();
    const state = stateFile();
    const p = spawnTern(tern, importArgs(src, t, ['--state', state, '--batch', '500', '--rate', '40']), { ASAN_OPTIONS: 'detect_leaks=1' });
    const { code } = await killWhen(p, async () => t.tap.acked.size >= 1000, { signal: 'SIGINT', diag: async () => `acked ${t.tap.acked.size}` });
    assert.equal(code, 1, `interrupted: exit 1 (not a crash, no leak report)\n${p.stderr()}`);
    assert.match(p.stderr(), /interrupted/);
    assert.ok(existsSync(state));
    const st = JSON.parse(readFileSync(state, 'utf8'));
    assert.ok(Object.values(st.convs || {}).some((c) => c.ts > 0), 'cursors were saved');
    const r = await runImport(src, t, ['--state', state]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /import complete/);
    await assertHolds(t, data);
    await src.close();
    await t.close();
  });
});

describe('export, --from-dir and --rehost-files', () => {
  it('export writes the pull; importing that directory gives what importing the source gives', async () => {
    const data = fixtureData();
    data.files['543cbaede4b07db196f50f3c'] = Buffer.from([0x89, 0x50, 0x4e, 0x47]);
    const src = await source({ appId: APP, masterKey: KEY, data });
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

    // slow file uploads: messages must still wait for the _File's upload, not upload it again
    const viaRest = await newTarget({}, { delayFilesMs: 300 });
    const a = await runImport(src, viaRest, ['--state', stateFile(), '--rehost-files', '--json']);
    const viaDir = await newTarget({}, { delayFilesMs: 300 });
    await src.close(); // LeanCloud is gone: the directory must be enough
    const b = await run(tern, ['admin', 'import', 'leancloud', '--from-dir', dir, '--rehost-files', '--state', stateFile(),
      '--server', viaDir.url, '--app-id', viaDir.server.appId, '--master-key', viaDir.server.masterKey, '--json']);
    for (const x of [a, b]) {
      assert.equal(x.code, 1, `a file without url and a message without msg-id: skipped\n${x.stderr}${x.stdout}`);
      assert.deepEqual(lastJson(x).skipped.map((s) => [s.kind, s.id]), [['file', '5a5d7433c3422b31ed845eff'], ['message', '']], x.stdout);
    }
    for (const t of [viaRest, viaDir]) assert.deepEqual([...t.tap.filePuts], [['543cbaede4b07db196f50f3c', 1]], 'the file went up once');
    // the two ternds hold the same, conversation by conversation, page by page (each
    // serves the rehosted file under its own address)
    const [ra, rb] = [viaRest.server.httpUrl, viaDir.server.httpUrl];
    await compareServers(viaRest.server, viaDir.server, { urlMap: (d) => (typeof d === 'string' ? d.replaceAll(ra, rb) : d) });
    assert.equal((await allConversations(viaDir.server)).length, 4, 'the expired temporary conversation is left out');
    // rehosted: the bytes are in ternd under the same id and name, and the image message points there
    const meta = await rest(viaDir.server, 'GET', '/1.1/classes/_File/543cbaede4b07db196f50f3c');
    assert.equal(meta.name, 'avatar.png');
    const bytes = Buffer.from(await (await fetch(meta.url)).arrayBuffer());
    assert.deepEqual(bytes, data.files['543cbaede4b07db196f50f3c']);
    const img = (await held(viaDir, cid)).find((x) => x['msg-id'] === 'Hq3Kz8o1Rk2gM3n4P5q6Rw');
    assert.ok(img.data.includes(meta.url), img.data);
    assert.ok(meta.url.startsWith(rb), meta.url);
    assert.ok(!img.data.includes(fileUrl));
    assert.ok(img.data.startsWith('{"_lctype":-2,"_lctext":"图像是个好东西","_lcfile":{"url":'), 'the content keeps its text form');
    // the fixtures' LeanCloud shapes as ternd keeps them: kinds, custom fields, roles, sets
    const lobby = await rest(viaDir.server, 'GET', '/1.2/rtm/chatrooms/5a5d7432c3422b31ed845e75');
    assert.equal(lobby.tr, true);
    const news = await conversationView(viaDir.server, { objectId: '5a5d7433c3422b31ed845e76', sys: true });
    assert.deepEqual(news.subscribers, ['client id 1', 'client id 2']);
    const conv1 = await rest(viaDir.server, 'GET', `/1.2/rtm/conversations/${cid}`);
    assert.equal(conv1.isSticky, true);
    assert.deepEqual(conv1.attr, { type: 'private', pinned: true });
    assert.deepEqual(await conversationView(viaDir.server, { objectId: cid }), { roles: ['jerry:Manager'], shutup: ['client1', 'client2'], blacklist: ['spammer'] });
    const uniq = await rest(viaDir.server, 'GET', '/1.2/rtm/conversations/5eccba570d3a42c5fd4e25c3');
    assert.equal(uniq.uniqueId, '6c7b0e5afcae9aa1139a0afa25833dec');
    const h = Object.fromEntries((await held(viaDir, cid)).map((x) => [x['msg-id'], x]));
    assert.equal(h.bInArYmEsSaGe000000001.bin, true);
    assert.equal(h.rEcAlLeDmEsSaGe0000001.recall, true);
    assert.equal(h.eDiTeDmEsSaGe000000001['patch-timestamp'], 1408008600000);
    assert.deepEqual(h.mEnTiOnMeSsAgE00000001['mention-pids'], ['tom']);
    assert.equal(h.mEnTiOnAlLmEsSaGe00001['mention-all'], true);
    const inst = await rest(viaDir.server, 'GET', '/1.1/classes/_Installation/mrmBZvsErB');
    assert.deepEqual([inst.deviceType, inst.channels, inst.badge], ['ios', ['tom'], 3]);
    await viaRest.close();
    await viaDir.close();
  });
});

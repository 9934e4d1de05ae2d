// `tern admin` end to end against a real (sanitizer-built) ternd. Every command's effect is
// checked through a path that does not go through the CLI: a REST call made here with
// fetch, a WebSocket client (tests/lib/proto-client.mjs) that is pushed what happened, or
// a webhook push provider that receives the offline push. --json output must parse (and
// equal what the REST API answers); bad usage exits 2, a refusal 1 with LeanCloud's
// {"code","error"} on stderr. The CLI is an ASan build: a leak turns any exit into 23, so
// every exact exit status asserted here is also a leak check.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { cliBinary, run } from '../lib/sdk-c.mjs';
import { session, uid, closeAll, withServer } from '../lib/proto-client.mjs';

const tern = cliBinary();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tmp = mkdtempSync(join(tmpdir(), 'tern-cli-admin-'));
const TEXT = (t) => JSON.stringify({ _lctype: -1, _lctext: t });
const direct = (cid) => (c) => c.cmd === 'direct' && c.directMessage?.cid === cid;
const conv = (op, cid) => (c) => c.cmd === 'conv' && c.op === op && c.convMessage?.cid === cid;

let server;
before(async () => { server = await startServer({ env: { TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0' } }); });
after(async () => {
  await closeAll();
  await server?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** The CLI's environment for srv: everything from variables, nothing from a stray app.json. */
const envFor = (srv) => ({
  TERN_SERVER: srv.httpUrl, TERN_APP_ID: srv.appId, TERN_MASTER_KEY: srv.masterKey,
  TERN_URL: '', TERN_DATA_DIR: join(tmp, 'no-such-dir'),
});

/** Runs `tern admin ...args`; returns {code, stdout, stderr}. */
const admin = (args, { srv = server, env = {} } = {}) => run(tern, ['admin', ...args], { env: { ...envFor(srv), ...env } });

/** A command that must succeed; returns its stdout. */
async function ok(args, opts) {
  const r = await admin(args, opts);
  assert.equal(r.code, 0, `tern admin ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}
/** A --json command that must succeed; returns the parsed output (one JSON document). */
const okJson = async (args, opts) => JSON.parse(await ok([...args, '--json'], opts));

/** A refusal: exit 1 and the server's LeanCloud error on stderr. */
async function refused(args, code, opts) {
  const r = await admin(args, opts);
  assert.equal(r.code, 1, `tern admin ${args.join(' ')}: expected exit 1, got ${r.code}\n${r.stdout}\n${r.stderr}`);
  const err = JSON.parse(r.stderr.trim().split('\n').at(-1));
  assert.equal(err.code, code, r.stderr);
  assert.ok(typeof err.error === 'string' && err.error.length > 0, r.stderr);
  assert.equal(r.stdout, '', 'nothing on stdout after a refusal');
  return err;
}

/** Bad usage: exit 2, a message on stderr, and no request needed to tell. */
async function usage(args, re, opts) {
  const r = await admin(args, opts);
  assert.equal(r.code, 2, `tern admin ${args.join(' ')}: expected exit 2, got ${r.code}\n${r.stdout}\n${r.stderr}`);
  if (re) assert.match(r.stderr, re);
  assert.equal(r.stdout, '');
}

/** The REST API itself, with the master key. */
async function api(method, path, body, srv = server) {
  const res = await fetch(srv.httpUrl + path, {
    method,
    headers: { 'X-LC-Id': srv.appId, 'X-LC-Key': `${srv.masterKey},master`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch { parsed = text; }
  return { status: res.status, body: parsed };
}
/** Polls read() until it equals want (or want(value) is true); returns the value. */
async function eventually(read, want, what, ms = 3000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await read();
    const good = typeof want === 'function' ? want(v) : JSON.stringify(v) === JSON.stringify(want);
    if (good) return v;
    if (Date.now() > end) assert.fail(`${what}: still ${JSON.stringify(v)} after ${ms} ms`);
    await sleep(10);
  }
}

async function get(path, srv) {
  const r = await api('GET', path, undefined, srv);
  assert.equal(r.status, 200, `GET ${path}: ${JSON.stringify(r.body)}`);
  return r.body;
}

describe('tern admin conv', () => {
  it('create, get, list, update, delete: the REST API and members see each change', async () => {
    const tom = uid('Tom'), jerry = uid('Jerry');
    const tag = uid('tag');
    const made = await okJson(['conv', 'create', '--name', '猫和老鼠', '--members', `${tom},${jerry}`, '--attr', `{"tag":"${tag}","n":1}`]);
    assert.match(made.objectId, /^[0-9a-f]{24}$/);
    const cid = made.objectId;
    const stored = await get(`/1.2/rtm/conversations/${cid}`);
    assert.equal(stored.name, '猫和老鼠');
    assert.deepEqual(stored.m, [jerry, tom].sort());
    assert.deepEqual(stored.attr, { tag, n: 1 });
    assert.deepEqual(await okJson(['conv', 'get', cid]), stored, 'get --json is the REST document');
    const raw = await ok(['conv', 'get', cid, '--json']);
    assert.ok(raw.endsWith('}\n') && !raw.slice(0, -1).includes('\n'), `one line, newline-terminated: ${JSON.stringify(raw)}`);
    // without --json: the fields under names a person reads (issue #15 point 5), custom fields as named
    const readable = await ok(['conv', 'get', cid]);
    const shown = readable.trimEnd().split('\n');
    assert.equal(shown[0], `id: ${cid}`);
    assert.equal(shown[1], 'name: 猫和老鼠');
    assert.match(readable, new RegExp(`^members: ${jerry}, ${tom}$`, 'm'));
    assert.match(readable, /^chat room: no$/m);
    assert.match(readable, new RegExp(`^attributes: \\{"tag":"${tag}","n":1\\}$`, 'm'));
    assert.match(readable, /^created: \d{4}-\d\d-\d\dT/m);
    assert.doesNotMatch(readable, /^(objectId|m|tr|c|mu|attr|createdAt|updatedAt|lm): /m, 'no LeanCloud short keys');

    // unique: the same members again answer the same conversation, and say it existed
    const u1 = await ok(['conv', 'create', '--unique', '--members', `${tom},${jerry}`, '--name', 'u']);
    const [, verb1, ucid] = /^(created|exists) ([0-9a-f]{24})\n$/.exec(u1);
    assert.equal(verb1, 'created');
    assert.equal(await ok(['conv', 'create', '--unique', '--members', `${jerry},${tom}`]), `exists ${ucid}\n`);
    assert.equal((await get(`/1.2/rtm/conversations/${ucid}`)).unique, true);

    // list: where, limit, skip, order
    const more = [];
    for (let i = 0; i < 2; i++) {
      more.push((await okJson(['conv', 'create', '--name', `more${i}`, '--attr', `{"tag":"${tag}","n":${i + 2}}`])).objectId);
    }
    const where = JSON.stringify({ 'attr.tag': tag });
    const all = await okJson(['conv', 'list', '--where', where, '--order', 'attr.n']);
    assert.deepEqual(all.results.map((c) => c.objectId), [cid, ...more]);
    assert.deepEqual(all, await get(`/1.2/rtm/conversations?where=${encodeURIComponent(where)}&order=attr.n`));
    assert.deepEqual((await okJson(['conv', 'list', '--where', where, '--order', 'attr.n', '--limit', '2'])).results.map((c) => c.objectId), [cid, more[0]]);
    assert.deepEqual((await okJson(['conv', 'list', '--where', where, '--order', 'attr.n', '--skip', '2'])).results.map((c) => c.objectId), [more[1]]);
    const lines = (await ok(['conv', 'list', '--where', where, '--order', 'attr.n'])).trim().split('\n');
    assert.equal(lines.length, 3);
    assert.equal(lines[0], `${cid}  猫和老鼠  [${[jerry, tom].sort().join(', ')}]`);

    // update: a member online is told; untouched attributes stay
    const ct = await session(server, tom);
    const out = await ok(['conv', 'update', cid, '--name', 'renamed', '--attr', '{"n":7,"new":"x"}']);
    assert.match(out, new RegExp(`^updated ${cid} at \\d{4}-`));
    const pushed = await ct.next(conv('updated', cid));
    assert.deepEqual(JSON.parse(pushed.convMessage.attr.data), { name: 'renamed', 'attr.n': 7, 'attr.new': 'x' });
    const after = await get(`/1.2/rtm/conversations/${cid}`);
    assert.equal(after.name, 'renamed');
    assert.deepEqual(after.attr, { tag, n: 7, new: 'x' });
    await ok(['conv', 'update', cid, '--set', '{"topic":"raw field"}']);
    assert.equal((await get(`/1.2/rtm/conversations/${cid}`)).topic, 'raw field');

    // delete: gone for the REST API, and for the CLI (exit 1, the server's 4303)
    assert.equal(await ok(['conv', 'delete', more[1]]), `deleted ${more[1]}\n`);
    assert.equal((await api('GET', `/1.2/rtm/conversations/${more[1]}`)).status, 404);
    await refused(['conv', 'get', more[1]], 4303);
    await ct.close();
  });

  it('members, add, remove, mute, unmute: clients are pushed joined/left, mutes land in mu', async () => {
    const a = uid('a'), b = uid('b'), c = uid('c');
    const cid = (await okJson(['conv', 'create', '--members', `${a},${b}`])).objectId;
    const ca = await session(server, a), cc = await session(server, c);
    assert.equal(await ok(['conv', 'add', cid, c]), `added ${c} to ${cid}\n`);
    assert.equal((await cc.next(conv('joined', cid))).convMessage.cid, cid);
    assert.deepEqual((await ca.next(conv('members_joined', cid))).convMessage.m, [c]);
    assert.deepEqual((await get(`/1.2/rtm/conversations/${cid}/members`)).result.sort(), [a, b, c].sort());
    assert.deepEqual((await ok(['conv', 'members', cid])).trim().split('\n').sort(), [a, b, c].sort());
    assert.deepEqual(await okJson(['conv', 'members', cid]), await get(`/1.2/rtm/conversations/${cid}/members`));

    const d = uid('d'), e = uid('e');
    await ok(['conv', 'add', cid, `${d},${e}`]); // comma lists and several words both work
    await ok(['conv', 'remove', cid, b, d]);
    assert.deepEqual((await ca.next(conv('members_left', cid))).convMessage.m.sort(), [b, d].sort());
    assert.deepEqual((await get(`/1.2/rtm/conversations/${cid}/members`)).result.sort(), [a, c, e].sort());

    assert.equal(await ok(['conv', 'mute', cid, a, c]), `muted ${a}, ${c} in ${cid}\n`);
    assert.deepEqual((await get(`/1.2/rtm/conversations/${cid}/mutes`)).result.sort(), [a, c].sort());
    const un = await okJson(['conv', 'unmute', cid, a]);
    assert.equal(un.objectId, cid);
    assert.deepEqual((await get(`/1.2/rtm/conversations/${cid}`)).mu, [c]);
    await refused(['conv', 'add', '000000000000000000000000', a], 4303);
    await Promise.all([ca.close(), cc.close()]);
  });

  it('chat rooms and service conversations: --room, --service, and ids alone', async () => {
    const room = (await okJson(['conv', 'create', '--room', '--name', 'lobby'])).objectId;
    assert.equal((await get(`/1.2/rtm/chatrooms/${room}`)).tr, true);
    const a = uid('a'), b = uid('b');
    const ca = await session(server, a), cb = await session(server, b);
    for (const cl of [ca, cb]) {
      const r = await cl.request({ cmd: 'conv', op: 'add', convMessage: { cid: room, m: [cl.peer] } });
      assert.equal(r.op, 'added', JSON.stringify(r));
    }
    // the id alone is enough: the CLI finds out it is a room
    assert.deepEqual((await ok(['conv', 'members', room])).trim().split('\n').sort(), [a, b].sort());
    assert.equal((await okJson(['conv', 'get', room])).objectId, room);
    const sent = await okJson(['msg', 'send', room, '--from', a, '--text', 'to the room']);
    const got = await cb.next(direct(room));
    assert.equal(got.directMessage.id, sent['msg-id']);
    assert.equal(got.directMessage.msg, TEXT('to the room'));
    assert.ok((await okJson(['conv', 'list', '--room', '--limit', '1000'])).results.some((c) => c.objectId === room));
    const r = await admin(['conv', 'add', room, 'x']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /chat room/);

    const svc = (await okJson(['conv', 'create', '--service', '--name', 'news'])).objectId;
    assert.equal((await get(`/1.2/rtm/service-conversations/${svc}`)).sys, true);
    await ok(['conv', 'add', svc, a, b]);
    assert.deepEqual(await get(`/1.2/rtm/service-conversations/${svc}/subscribers/count`), { count: 2 });
    await ok(['conv', 'remove', svc, b]);
    assert.deepEqual((await get(`/1.2/rtm/service-conversations/${svc}/subscribers`)).map((s) => s.subscriber), [a]);
    assert.equal(await ok(['conv', 'members', svc]), `${a}\n`);
    await Promise.all([ca.close(), cb.close()]);
  });
});

describe('tern admin msg', () => {
  it('send: members receive it; --content, --transient, --no-sync, --attr, mentions', async () => {
    const a = uid('a'), b = uid('b');
    const cid = (await okJson(['conv', 'create', '--members', `${a},${b}`])).objectId;
    const ca = await session(server, a), cb = await session(server, b);
    const out = await ok(['msg', 'send', cid, '--from', a, '--text', 'hello 耗子']);
    const [, mid] = /^sent (\S+) at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n$/.exec(out);
    const got = await cb.next(direct(cid));
    assert.equal(got.directMessage.id, mid);
    assert.equal(got.directMessage.fromPeerId, a);
    assert.equal(got.directMessage.msg, TEXT('hello 耗子'));
    assert.equal((await ca.next(direct(cid))).directMessage.id, mid, 'the sender\'s session gets a copy');

    const raw = await okJson(['msg', 'send', cid, '--from', a, '--content', 'not json at all', '--mention', b]);
    const gotRaw = await cb.next(direct(cid));
    assert.equal(gotRaw.directMessage.id, raw['msg-id']);
    assert.equal(gotRaw.directMessage.msg, 'not json at all');
    assert.deepEqual(gotRaw.directMessage.mentionPids, [b]);
    await ca.next(direct(cid));

    await ok(['msg', 'send', cid, '--from', a, '--text', 'withattrs', '--attr', '{"k":[1,2]}']);
    assert.deepEqual(JSON.parse((await cb.next(direct(cid))).directMessage.msg), { _lctype: -1, _lctext: 'withattrs', _lcattrs: { k: [1, 2] } });
    await ca.next(direct(cid));

    await ok(['msg', 'send', cid, '--from', a, '--text', 'typing', '--transient']);
    assert.equal((await cb.next(direct(cid))).directMessage.transient, true);
    await ca.next(direct(cid));

    // --no-sync: no copy to the sender; the copy of the next message comes first
    const quiet = await okJson(['msg', 'send', cid, '--from', a, '--text', 'quiet', '--no-sync']);
    const loud = await okJson(['msg', 'send', cid, '--from', a, '--text', 'loud']);
    assert.equal((await ca.next(direct(cid))).directMessage.id, loud['msg-id'], 'no copy of the --no-sync message');
    assert.equal((await cb.next(direct(cid))).directMessage.id, quiet['msg-id']);

    const hist = await get(`/1.2/rtm/conversations/${cid}/messages?limit=10`);
    assert.ok(!hist.some((m) => m.data === TEXT('typing')), 'the transient message is not kept');
    assert.equal(hist.find((m) => m['msg-id'] === mid).data, TEXT('hello 耗子'));
    await Promise.all([ca.close(), cb.close()]);
  });

  it('history: --json is the REST page; --limit, --before, --after, --until, --reversed', async () => {
    const a = uid('a');
    const cid = (await okJson(['conv', 'create', '--members', a])).objectId;
    const sent = [];
    for (let i = 0; i < 6; i++) sent.push(await okJson(['msg', 'send', cid, '--from', a, '--text', `m${i}`]));
    const all = sent.map((s) => s['msg-id']);
    const mids = (arr) => arr.map((m) => m['msg-id']);
    const page = await okJson(['msg', 'history', cid, '--limit', '2']);
    assert.deepEqual(page, await get(`/1.2/rtm/conversations/${cid}/messages?limit=2`));
    assert.deepEqual(mids(page), [all[5], all[4]]);
    assert.deepEqual(mids(await okJson(['msg', 'history', cid, '--reversed', '--limit', '2'])), [all[0], all[1]]);
    assert.deepEqual(mids(await okJson(['msg', 'history', cid, '--before', all[3]])), [all[2], all[1], all[0]]);
    assert.deepEqual(mids(await okJson(['msg', 'history', cid, '--before', `${all[3]}/${sent[3].timestamp}`, '--limit', '1'])), [all[2]]);
    assert.deepEqual(mids(await okJson(['msg', 'history', cid, '--after', all[3]])), [all[4], all[5]]);
    assert.deepEqual(mids(await okJson(['msg', 'history', cid, '--before', all[4], '--until', all[1]])), [all[3], all[2]]);
    assert.deepEqual(mids(await okJson(['msg', 'history', cid, '--before', String(sent[2].timestamp + 1)])).slice(0, 1), [all[2]],
      'a time in ms bounds by time');
    // readable: oldest first, one line per message with its text
    const lines = (await ok(['msg', 'history', cid, '--limit', '3'])).trim().split('\n');
    assert.equal(lines.length, 3);
    lines.forEach((l, i) => assert.match(l, new RegExp(`  ${all[3 + i]}  ${a}: m${3 + i}$`)));
  });

  it('edit, recall, delete: members get the patch, history changes', async () => {
    const a = uid('a'), b = uid('b');
    const cid = (await okJson(['conv', 'create', '--members', `${a},${b}`])).objectId;
    const cb = await session(server, b);
    const { 'msg-id': mid } = await okJson(['msg', 'send', cid, '--from', a, '--text', 'v1']);
    await cb.next(direct(cid));
    assert.equal(await ok(['msg', 'edit', cid, mid, '--from', a, '--text', 'v2']), `edited ${mid}\n`);
    const patch = await cb.next((x) => x.cmd === 'patch' && x.op === 'modify');
    assert.equal(patch.patchMessage.patches[0].mid, mid);
    assert.equal(patch.patchMessage.patches[0].data, TEXT('v2'));
    assert.equal((await get(`/1.2/rtm/conversations/${cid}/messages`))[0].data, TEXT('v2'));
    await refused(['msg', 'edit', cid, mid, '--from', b, '--text', 'not mine'], 4403);

    assert.equal(await ok(['msg', 'recall', cid, mid, '--from', a]), `recalled ${mid}\n`);
    const recall = await cb.next((x) => x.cmd === 'patch' && x.op === 'modify');
    assert.equal(recall.patchMessage.patches[0].recall, true);

    assert.deepEqual(await okJson(['msg', 'delete', cid, mid]), {});
    assert.deepEqual(await get(`/1.2/rtm/conversations/${cid}/messages`), []);
    await cb.close();
  });

  it('service conversations: broadcast reaches every subscriber, --to only the chosen, subscribers lists them', async () => {
    const a = uid('a'), b = uid('b');
    const svc = (await okJson(['conv', 'create', '--service', '--name', 'bulletin'])).objectId;
    await ok(['conv', 'add', svc, `${a},${b}`]);
    const ca = await session(server, a), cb = await session(server, b);
    const out = await ok(['broadcast', svc, '--from', 'sys', '--text', 'to all']);
    const [, mid] = /^broadcast (\S+) at /.exec(out);
    for (const cl of [ca, cb]) {
      const got = await cl.next(direct(svc));
      assert.equal(got.directMessage.id, mid);
      assert.equal(got.directMessage.msg, TEXT('to all'));
    }
    const only = await okJson(['msg', 'send', svc, '--from', 'sys', '--text', 'just a', '--to', a]);
    assert.equal((await ca.next(direct(svc))).directMessage.id, only['msg-id']);
    const m = cb.mark();
    const next = await okJson(['broadcast', svc, '--from', 'sys', '--text', 'again']);
    assert.equal((await cb.next(direct(svc))).directMessage.id, next['msg-id']);
    assert.deepEqual(cb.since(m).filter(direct(svc)).map((x) => x.directMessage.id), [next['msg-id']], 'b never got the --to a message');
    // what b may read, through the subscriber's history
    assert.deepEqual((await okJson(['msg', 'history', svc, '--client', b])).map((x) => x['msg-id']), [next['msg-id'], mid]);

    const subs = await okJson(['subscribers', svc]);
    assert.deepEqual(subs, await get(`/1.2/rtm/service-conversations/${svc}/subscribers`));
    assert.deepEqual(subs.map((s) => s.subscriber).sort(), [a, b].sort());
    assert.equal(await ok(['subscribers', svc, '--count']), '2\n');
    const [first] = [a, b].sort();
    assert.deepEqual((await okJson(['subscribers', svc, '--limit', '1'])).map((s) => s.subscriber), [first]);
    assert.deepEqual((await okJson(['subscribers', svc, '--next', first])).map((s) => s.subscriber), [[a, b].sort()[1]]);
    await usage(['msg', 'history', (await okJson(['conv', 'create'])).objectId, '--client', a], /service conversations/);
    await Promise.all([ca.close(), cb.close()]);
  });
});

describe('tern admin clients', () => {
  it('online, unread, stats agree with the REST API; kick closes the session with 4115', async () => {
    const a = uid('a'), b = uid('b'), off = uid('off');
    const cid = (await okJson(['conv', 'create', '--members', `${a},${b}`])).objectId;
    const ca = await session(server, a);
    assert.equal(await ok(['online', `${a},${off}`]), `${a}\tonline\n${off}\toffline\n`);
    assert.deepEqual(await okJson(['online', a, off]), { results: [a] });
    await ok(['msg', 'send', cid, '--from', a, '--text', '1']);
    await ok(['msg', 'send', cid, '--from', a, '--text', '2']);
    assert.equal(await ok(['unread', b]), `${(await get(`/1.2/rtm/clients/${b}/unread-count`)).count}\n`);
    assert.deepEqual(await okJson(['unread', b, '--conv', cid]), { count: 2 });
    assert.deepEqual(await okJson(['unread', b, '--conv', '000000000000000000000000']), { count: 0 });
    const stats = await okJson(['stats']);
    assert.deepEqual(stats, await get('/1.2/rtm/stats'));
    assert.ok(stats.result.online_user_count >= 1);
    assert.match(await ok(['stats']), new RegExp(`^online now:\\t${stats.result.online_user_count}\\nclients today:\\t\\d+\\n$`));

    assert.equal(await ok(['kick', a, '--reason', 'bye now']), `kicked ${a}\n`);
    const closed = await ca.next((x) => x.cmd === 'session' && x.op === 'closed');
    assert.equal(closed.sessionMessage.code, 4115);
    assert.equal(closed.sessionMessage.detail, 'bye now');
    assert.deepEqual((await api('POST', '/1.2/rtm/clients/check-online', { client_ids: [a] })).body.results, []);
    await refused(['kick', a, '--reason', 'x'.repeat(21)], 107);
    await usage(['online', ...Array.from({ length: 21 }, (_, i) => `c${i}`)], /1 to 20/);
  });
});

describe('tern admin push', () => {
  it('install, show, update, delete an _Installation', async () => {
    const a = uid('a'), b = uid('b'), c = uid('c');
    const token = 'ab'.repeat(32);
    const out = await ok(['push', 'install', '--type', 'ios', '--token', token, '--channels', `${a},${b}`, '--badge', '0']);
    const [, id] = /^created installation ([0-9a-f]+)\n$/.exec(out);
    const stored = (await eventually(() => api('GET', `/1.1/installations/${id}`), (r) => r.status === 200, 'stored')).body;
    assert.equal(stored.deviceType, 'ios');
    assert.equal(stored.deviceToken, token);
    assert.deepEqual(stored.channels, [a, b]);
    assert.equal(stored.badge, 0);
    assert.deepEqual(await okJson(['push', 'show', id]), stored);
    // the same device again is the same installation
    assert.equal(await ok(['push', 'install', '--type', 'ios', '--token', token]), `updated installation ${id}\n`);

    // ternd answers installation writes before they commit (rest_installations.c): each step
    // waits until a read shows it, so the next one cannot be applied to the old object
    await ok(['push', 'update', id, '--add-channels', c]);
    await eventually(async () => (await get(`/1.1/installations/${id}`)).channels, [a, b, c], 'added c');
    await ok(['push', 'update', id, '--remove-channels', a]);
    await eventually(async () => (await get(`/1.1/installations/${id}`)).channels, [b, c], 'removed a');
    await usage(['push', 'update', id, '--add-channels', c, '--remove-channels', a], /one of --channels/);
    await ok(['push', 'update', id, '--channels', a, '--badge', '5', '--set', '{"timeZone":"Asia/Shanghai"}']);
    const now = await eventually(async () => get(`/1.1/installations/${id}`), (x) => x.badge === 5, 'badge 5');
    assert.deepEqual(now.channels, [a]);
    assert.equal(now.timeZone, 'Asia/Shanghai');

    assert.equal(await ok(['push', 'delete', id]), `deleted installation ${id}\n`);
    await eventually(async () => (await api('GET', `/1.1/installations/${id}`)).status, 404, 'deleted');
    await refused(['push', 'show', id], 101);
    await refused(['push', 'install', '--type', 'ios', '--installation-id', 'x'], 107); // iOS needs deviceToken
    await usage(['push', 'install', '--type', 'ios'], /--token/);
  });

  it('an installed device gets the offline push of msg send --push-data (webhook provider)', async () => {
    const pushes = [];
    const hook = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => { pushes.push(JSON.parse(body)); res.writeHead(200); res.end('{}'); });
    });
    await new Promise((r) => hook.listen(0, '127.0.0.1', r));
    try {
      await withServer({ TERN_PUSH_PROVIDER: 'webhook', TERN_PUSH_WEBHOOK_URL: `http://127.0.0.1:${hook.address().port}/push` }, async (srv) => {
        const tom = uid('Tom'), jerry = uid('Jerry');
        const id = (await okJson(['push', 'install', '--type', 'android', '--installation-id', uid('iid'), '--channels', jerry], { srv })).objectId;
        const cid = (await okJson(['conv', 'create', '--members', `${tom},${jerry}`], { srv })).objectId;
        const sent = await okJson(['msg', 'send', cid, '--from', tom, '--text', 'hi', '--push-data', '{"alert":"from the CLI","badge":3}'], { srv });
        for (let i = 0; i < 200 && !pushes.some((p) => p.msgId === sent['msg-id']); i++) await sleep(25);
        const p = pushes.find((x) => x.msgId === sent['msg-id']);
        assert.ok(p, 'the webhook got the push');
        assert.equal(p.clientId, jerry);
        assert.deepEqual(p.data, { alert: 'from the CLI', badge: 3 });
        assert.equal(p.devices[0].deviceType, 'android');

        // muted, or no longer on the device's channels: no push
        await ok(['conv', 'mute', cid, jerry], { srv });
        const muted = await okJson(['msg', 'send', cid, '--from', tom, '--text', 'm', '--push-data', '{"alert":"x"}'], { srv });
        await ok(['conv', 'unmute', cid, jerry], { srv });
        await ok(['push', 'update', id, '--remove-channels', jerry], { srv });
        const gone = await okJson(['msg', 'send', cid, '--from', tom, '--text', 'g', '--push-data', '{"alert":"y"}'], { srv });
        await sleep(500);
        assert.deepEqual(pushes.filter((x) => x.msgId === muted['msg-id'] || x.msgId === gone['msg-id']), []);
      });
    } finally {
      await new Promise((r) => hook.close(r));
    }
  });
});

describe('tern admin file', () => {
  it('upload, info, download, delete', async () => {
    const path = join(tmp, 'photo.png');
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52, 0, 0, 0, 4, 0, 0, 0, 3, 8, 6, 0, 0, 0]);
    writeFileSync(path, png);
    const up = await okJson(['file', 'upload', path]);
    assert.equal(up.name, 'photo.png');
    assert.equal(up.size, png.length);
    assert.equal(up.mime_type, 'image/png');
    assert.equal(up.metaData.width, 4);
    const res = await fetch(up.url);
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), png);
    const meta = await get(`/1.1/files/${up.objectId}`);
    assert.deepEqual(await okJson(['file', 'info', up.objectId]), meta);
    assert.match(await ok(['file', 'info', up.objectId]), /^mime_type: image\/png$/m);

    // a bigger file, renamed, through download -o and to stdout
    const big = Buffer.alloc(300000, 0);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
    const bigPath = join(tmp, 'big.bin');
    writeFileSync(bigPath, big);
    const line = await ok(['file', 'upload', bigPath, '--name', 'renamed.dat', '--mime', 'application/x-test']);
    const [, id, url] = /^([0-9a-f]+)\t(\S+)\n$/.exec(line);
    assert.ok(url.endsWith('/renamed.dat'), url);
    assert.equal((await get(`/1.1/files/${id}`)).mime_type, 'application/x-test');
    const out = join(tmp, 'got.bin');
    assert.equal(await ok(['file', 'download', id, '-o', out]), `saved ${big.length} bytes to ${out}\n`);
    assert.deepEqual(readFileSync(out), big);
    // the bytes on stdout, unchanged (a Buffer: run() would decode them as text)
    const viaStdout = execFileSync(tern, ['admin', 'file', 'download', id],
      { env: { ...process.env, ...envFor(server), ASAN_OPTIONS: 'detect_leaks=1:exitcode=23' }, maxBuffer: 1 << 24 });
    assert.deepEqual(viaStdout, big);
    assert.deepEqual(await okJson(['file', 'download', id, '-o', out]), { objectId: id, size: big.length, out });

    assert.equal(await ok(['file', 'delete', id]), `deleted file ${id}\n`);
    assert.equal((await fetch(url)).status, 404);
    const kept = join(tmp, 'kept.bin');
    writeFileSync(kept, 'old');
    await refused(['file', 'download', id, '-o', kept], 404);
    assert.equal(readFileSync(kept, 'utf8'), 'old', 'a failed download leaves the file as it was');
    assert.ok(!existsSync(`${kept}.part`));
    await refused(['file', 'info', id], 404);
  });
});

describe('tern admin usage, keys and transport', () => {
  it('bad usage exits 2 without asking the server', async () => {
    await usage([], /which command/);
    await usage(['frobnicate'], /unknown command frobnicate/);
    await usage(['conv'], /conv what/);
    await usage(['conv', 'frob'], /unknown command conv frob/);
    await usage(['conv', 'get'], /wrong number of arguments/);
    await usage(['conv', 'get', 'a', 'b'], /wrong number of arguments/);
    await usage(['stats', '--bogus'], /unknown option --bogus/);
    await usage(['stats', '--limit', '3'], /stats does not take --limit/);
    await usage(['conv', 'list', '--limit', 'ten'], /needs a number/);
    await usage(['conv', 'list', '--where', '{nope'], /--where is not JSON/);
    await usage(['conv', 'list', '--where', '[1]'], /JSON object/);
    await usage(['conv', 'create', '--room', '--service'], /exclude/);
    await usage(['msg', 'send', 'c', '--from', 'a'], /--text T or --content RAW/);
    await usage(['msg', 'send', 'c', '--text', 't'], /--from/);
    await usage(['msg', 'send', 'c', '--from', 'a', '--text', 't', '--push-data', '"s"'], /JSON object/);
    await usage(['msg', 'history', 'c', '--before', 'x', '--after', 'y'], /one of them/);
    await usage(['conv', 'update', 'c'], /nothing to update/);
    await usage(['file', 'download', 'x', '--json'], /-o OUT/);
    await usage(['stats', '--json=yes'], /takes no value/);
    await usage(['stats'], /no master key/, { env: { TERN_MASTER_KEY: '' } });
    await usage(['stats', '--server', 'ftp://x'], /http:\/\/ or https:\/\//);
    const help = await admin(['--help']);
    assert.equal(help.code, 0);
    for (const c of ['conv create', 'msg send', 'kick CLIENT', 'online', 'push install', 'file download']) assert.ok(help.stdout.includes(c), c);
    const group = await admin(['msg', '--help']);
    assert.equal(group.code, 0);
    assert.ok(group.stdout.includes('msg history') && !group.stdout.includes('push install'), group.stdout);
    const top = await run(tern, ['--help'], {});
    assert.match(top.stdout, /admin/);
  });

  it('a wrong master key or app id exits 1 with the server\'s error', async () => {
    const err = await refused(['stats', '--master-key', 'wrong'], 401);
    assert.match(err.error, /wrong key/);
    await refused(['conv', 'list'], 401, { env: { TERN_APP_ID: 'another-app' } });
    // the app key is not the master key
    await refused(['stats', '--master-key', server.appKey], 401);
  });

  it('unreachable server: exit 1 and why', async () => {
    const r = await admin(['stats', '--server', 'http://127.0.0.1:1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot connect to 127\.0\.0\.1:1/);
  });

  it('with no flags: the server from TERN_URL, the app id and master key from $TERN_DATA_DIR/app.json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tern-cli-admin-data-'));
    // empty keys: ternd generates them and saves app.json in its data directory
    const srv = await startServer({ dataDir: dir, env: { TERN_APP_ID: '', TERN_APP_KEY: '', TERN_MASTER_KEY: '' } });
    try {
      const keys = JSON.parse(readFileSync(join(dir, 'app.json'), 'utf8'));
      const env = { TERN_SERVER: '', TERN_URL: `ws://127.0.0.1:${srv.port}/`, TERN_APP_ID: '', TERN_MASTER_KEY: '', TERN_DATA_DIR: dir };
      const stats = await run(tern, ['admin', 'stats', '--json'], { env });
      assert.equal(stats.code, 0, stats.stderr);
      assert.equal(typeof JSON.parse(stats.stdout).result.online_user_count, 'number');
      // app.json's master key is not used for another app id
      const other = await run(tern, ['admin', 'stats'], { env: { ...env, TERN_APP_ID: 'someone-else' } });
      assert.equal(other.code, 2);
      assert.match(other.stderr, /no master key/);
      const withId = await run(tern, ['admin', 'stats'], { env: { ...env, TERN_APP_ID: keys.app_id } });
      assert.equal(withId.code, 0, withId.stderr);
    } finally {
      await srv.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('https: the certificate is checked (--cacert trusts it, --insecure skips the check)', async (t) => {
    try { execFileSync('openssl', ['version']); } catch { t.skip('openssl not installed'); return; }
    const dir = mkdtempSync(join(tmpdir(), 'tern-cli-admin-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out',
      join(dir, 'cert.pem'), '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '1'], { stdio: 'ignore' });
    const srv = await startServer({ env: { TERN_TLS_CERT: join(dir, 'cert.pem'), TERN_TLS_KEY: join(dir, 'key.pem') } });
    try {
      const https = `https://127.0.0.1:${srv.port}`;
      const untrusted = await admin(['stats', '--server', https], { srv });
      assert.equal(untrusted.code, 1);
      assert.match(untrusted.stderr, /self-signed|certificate/);
      const cid = (await okJson(['conv', 'create', '--name', 'tls', '--server', https, '--cacert', join(dir, 'cert.pem')], { srv })).objectId;
      assert.equal((await okJson(['conv', 'get', cid, '--server', https, '--insecure'], { srv })).name, 'tls');
      const wrongName = await admin(['stats', '--server', `https://localhost:${srv.port}`, '--cacert', join(dir, 'cert.pem')], { srv });
      assert.equal(wrongName.code, 1);
      assert.match(wrongName.stderr, /hostname mismatch/);
    } finally {
      await srv.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

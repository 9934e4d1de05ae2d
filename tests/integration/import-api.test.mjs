// The import API (docs/migrate-api.md, issue #12): records posted into an empty ternd, read
// back through the REST API and through the official JS SDK. Every record kind keeps its
// ids, times and contents; a second post of the same body is all `unchanged`; edits and
// recalls arrive as a delta; unparseable lines are skipped with their reason and the rest
// applies. Imported message ids (LeanCloud's, which encode no tern key) are resolved
// wherever a client or the REST API names a message: SDK history paging, ack, read, edit
// and recall over WebSocket and REST, REST history bounds. A short bulk run checks nothing
// is lost (the timed 1,000,000-message run is `make bench`).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../lib/server.mjs';
import { Clients, waitFor } from '../lib/interop-util.mjs';
import { session, closeAll, uid } from '../lib/proto-client.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
let server, env;
before(async () => {
  server = await startServer({ env: { TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0' } });
  env = new Clients(server);
});
after(async () => {
  await env.closeAll();
  await closeAll();
  await server.stop();
});

const MASTER = () => ({ 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master` });

async function api(method, path, { body, raw, headers = MASTER(), type = 'application/json' } = {}) {
  const res = await fetch(server.httpUrl + path, {
    method,
    headers: { 'Content-Type': type, ...headers },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await res.text();
  let parsed;
  try { parsed = JSON.parse(text); } catch { parsed = text; }
  return { status: res.status, body: parsed };
}

/** Posts records (objects, or raw strings for bad lines) as one NDJSON body. */
async function post(records, headers) {
  const raw = records.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n');
  return api('POST', '/1.2/import/records', { raw, headers, type: 'application/x-ndjson' });
}

async function postOk(records) {
  const r = await post(records);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

/** The status a POST head with this Content-Length gets before its body is sent (with
 * expect100: asks to be told to go on, 100, which the server sends once it accepted the size). */
function headStatus(path, headers, length, expect100 = false) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(server.port, '127.0.0.1', () => {
      const lines = [`POST ${path} HTTP/1.1`, 'Host: x', `Content-Length: ${length}`, 'Content-Type: application/x-ndjson',
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
      if (expect100) lines.push('Expect: 100-continue');
      sock.write(lines.join('\r\n') + '\r\n\r\n');
    });
    let got = '';
    const timer = setTimeout(() => { sock.destroy(); resolve(expect100 ? 0 : -1); }, 3000);
    sock.on('data', (d) => {
      got += d;
      const m = /^HTTP\/1\.1 (\d+)/.exec(got);
      if (m) { clearTimeout(timer); sock.destroy(); resolve(Number(m[1])); }
    });
    sock.on('error', reject);
  });
}

const hex24 = () => [...crypto.getRandomValues(new Uint8Array(12))].map((b) => b.toString(16).padStart(2, '0')).join('');
const lcId = () => Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64url');
const TEXT = (t) => JSON.stringify({ _lctype: -1, _lctext: t });
const DAY = 86400000;
const T0 = Date.parse('2024-03-01T08:00:00.000Z');
const iso = (ms) => new Date(ms).toISOString();
const date = (ms) => ({ __type: 'Date', iso: iso(ms) });

/** Every message of a conversation through REST history, oldest first, in pages of `limit`
 * bounded by the last page's oldest (msgid, timestamp). */
async function allHistory(kind, cid, limit = 1000) {
  const out = [];
  let q = `limit=${limit}`;
  for (;;) {
    const r = await api('GET', `/1.2/rtm/${kind}/${cid}/messages?${q}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const seen = new Set(out.map((m) => m['msg-id']));
    assert.ok(r.body.every((m) => !seen.has(m['msg-id'])), `a page bounded by ${q} repeats messages`);
    out.push(...r.body);
    if (r.body.length < limit) break;
    const last = r.body[r.body.length - 1];
    q = `limit=${limit}&msgid=${encodeURIComponent(last['msg-id'])}&timestamp=${last.timestamp}`;
  }
  return out.reverse();
}

describe('records: every kind, read back through REST', () => {
  const A = uid('a'), B = uid('b'), C = uid('c'), S1 = uid('s1'), S2 = uid('s2');
  const group = hex24(), pair = hex24(), room = hex24(), svc = hex24(), temp = `_tmp:${hex24()}`;
  const file = hex24();
  const png = Buffer.from('89504e470d0a1a0a0000000d4948445200000002000000030806000000', 'hex');
  const msgs = [
    { 'msg-id': lcId(), timestamp: T0 + 1000, from: A, data: TEXT('hello') },
    { 'msg-id': lcId(), timestamp: T0 + 1000, from: B, data: TEXT('same millisecond, after hello') },
    { 'msg-id': lcId(), timestamp: T0 + 2000, from: A, data: JSON.stringify({ _lctype: -2, _lcfile: { url: 'https://x/y.png', objId: file } }) },
    { 'msg-id': lcId(), timestamp: T0 + 3000, from: B, data: Buffer.from([0, 1, 2, 255]).toString('base64'), bin: true },
    { 'msg-id': lcId(), timestamp: T0 + 4000, from: A, data: TEXT('edited'), 'patch-timestamp': T0 + 5000 },
    { 'msg-id': lcId(), timestamp: T0 + 6000, from: B, data: '{"_lctype":-127}', 'patch-timestamp': T0 + 7000, recalled: true },
    { 'msg-id': lcId(), timestamp: T0 + 8000, from: A, data: TEXT('@all @b'), 'mention-all': true, 'mention-pids': [B] },
    { 'msg-id': lcId(), timestamp: T0 + 9000, from: C, data: JSON.stringify({ _lctype: 1001, pokes: 3 }) },
  ];
  const records = [
    { type: 'conversation', objectId: group, name: 'friends', m: [A, B, C], c: A, mu: [C], attr: { topic: 'x' }, color: 'red',
      tr: false, sys: false, unique: false, createdAt: iso(T0), updatedAt: date(T0 + 10), lm: date(T0 + 9000) },
    { type: 'conversation', objectId: pair, m: [B, A], c: A, mu: [], unique: true, uniqueId: '6c7b0e5afcae9aa1139a0afa25833dec',
      createdAt: iso(T0 - DAY), updatedAt: iso(T0 - DAY) },
    { type: 'conversation', objectId: room, name: 'lobby', tr: true, c: A, createdAt: iso(T0), updatedAt: iso(T0) },
    { type: 'conversation', objectId: svc, name: 'news', sys: true, createdAt: iso(T0), updatedAt: iso(T0) },
    { type: 'conversation', objectId: temp, m: [A, B], temporary: true, expireAt: Date.now() + DAY, createdAt: iso(T0), updatedAt: iso(T0) },
    ...msgs.map((m) => ({ type: 'message', cid: group, ...m })),
    { type: 'message', cid: room, 'msg-id': lcId(), timestamp: T0 + 100, from: A, data: TEXT('in the room') },
    { type: 'message', cid: svc, 'msg-id': lcId(), timestamp: T0 + 200, from: 'sys', data: TEXT('broadcast') },
    { type: 'member_roles', cid: group, roles: { [A]: 'Owner', [B]: 'Manager', [C]: 'Member' } },
    { type: 'shutup', cid: group, clients: [C] },
    { type: 'blacklist', cid: group, clients: ['mallory'] },
    { type: 'subscribers', cid: svc, clients: [S1, S2] },
    { type: 'installation', objectId: 'inst' + hex24(), deviceType: 'ios', deviceToken: 'aa' + hex24(), channels: [A], badge: 2,
      createdAt: iso(T0), updatedAt: iso(T0 + 1) },
    { type: 'file', objectId: file, name: 'y.png', url: 'https://x/y.png', mime_type: 'image/png', metaData: { size: 4 }, createdAt: iso(T0) },
  ];

  let first;
  before(async () => { first = await postOk(records); });

  it('applies every line of a clean body, and a second post of it is all unchanged', async () => {
    assert.deepEqual(first, { applied: records.length, unchanged: 0, skipped: [] });
    assert.deepEqual(await postOk(records), { applied: 0, unchanged: records.length, skipped: [] });
  });

  it('conversations keep ids, times and every field', async () => {
    let r = await api('GET', `/1.2/rtm/conversations/${group}`);
    assert.equal(r.status, 200);
    const g = r.body;
    assert.equal(g.objectId, group);
    assert.equal(g.createdAt, iso(T0));
    assert.equal(g.updatedAt, iso(T0 + 10));
    assert.deepEqual(g.lm, date(T0 + 9000));
    assert.deepEqual(g.m, [A, B, C].sort());
    assert.deepEqual([g.name, g.c, g.mu, g.attr, g.color, g.tr, g.sys, g.unique], ['friends', A, [C], { topic: 'x' }, 'red', false, false, false]);
    r = await api('GET', `/1.2/rtm/conversations/${pair}`);
    assert.equal(r.body.uniqueId, '6c7b0e5afcae9aa1139a0afa25833dec', 'the cloud\'s uniqueId stays visible');
    assert.equal(r.body.unique, true);
    r = await api('GET', `/1.2/rtm/chatrooms/${room}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.tr, true);
    r = await api('GET', `/1.2/rtm/service-conversations/${svc}`);
    assert.equal(r.body.sys, true);
    r = await api('GET', `/1.2/rtm/conversations/${encodeURIComponent(temp)}`);
    assert.equal(r.status, 200, 'a temporary conversation is reachable by its id');
    assert.equal(r.body.temp, true);
  });

  it('history: ids, timestamps, contents, edit and recall state, mentions; ties keep the source order', async () => {
    const h = await allHistory('conversations', group, 3);
    assert.deepEqual(h.map((m) => m['msg-id']), msgs.map((m) => m['msg-id']));
    for (const [i, m] of msgs.entries()) {
      const got = h[i];
      assert.equal(got.timestamp, m.timestamp);
      assert.equal(got.from, m.from);
      assert.equal(got.data, m.data);
      assert.equal(got.bin, !!m.bin);
      assert.equal(got['patch-timestamp'], m['patch-timestamp']);
      assert.equal(got.recall, m.recalled, `recall of ${i}`);
      assert.equal(got['mention-all'], m['mention-all']);
      assert.deepEqual(got['mention-pids'], m['mention-pids']);
    }
    const [rm] = await allHistory('chatrooms', room);
    assert.equal(rm.data, TEXT('in the room'));
    const [sm] = await allHistory('service-conversations', svc);
    assert.equal(sm.data, TEXT('broadcast'));
  });

  it('REST history pages bounded by imported ids (msgid + timestamp, till_msgid + till_timestamp)', async () => {
    const [m3, m4, m5] = [msgs[3], msgs[4], msgs[5]];
    const q = `msgid=${m5['msg-id']}&timestamp=${m5.timestamp}&till_msgid=${m3['msg-id']}&till_timestamp=${m3.timestamp}`;
    let r = await api('GET', `/1.2/rtm/conversations/${group}/messages?${q}`);
    assert.deepEqual(r.body.map((m) => m['msg-id']), [m4['msg-id']], 'between the two, both excluded');
    r = await api('GET', `/1.2/rtm/conversations/${group}/messages?${q}&include_start=true&include_stop=true`);
    assert.deepEqual(r.body.map((m) => m['msg-id']), [m5, m4, m3].map((m) => m['msg-id']));
    // the two messages of the same millisecond tell apart by id, not by time
    r = await api('GET', `/1.2/rtm/conversations/${group}/messages?msgid=${msgs[1]['msg-id']}&timestamp=${msgs[1].timestamp}`);
    assert.deepEqual(r.body.map((m) => m['msg-id']), [msgs[0]['msg-id']]);
    // app-wide history takes them too
    r = await api('GET', `/1.2/rtm/clients/${A}/messages?msgid=${msgs[6]['msg-id']}&timestamp=${msgs[6].timestamp}&limit=1`);
    assert.deepEqual(r.body.map((m) => m['msg-id']), [msgs[4]['msg-id']]);
  });

  it('roles, shut-ups, blacklists, subscribers, installations and files', async () => {
    let r = await api('GET', `/1.2/rtm/conversations/${group}/member-infos`);
    assert.deepEqual(r.body.results.map((x) => [x.clientId, x.role]).sort(), [[B, 'Manager'], [C, 'Member']]);
    r = await api('GET', `/1.2/rtm/conversations/${group}/permanent-silenceds`);
    assert.deepEqual(r.body.client_ids, [C]);
    r = await api('GET', `/1.2/rtm/conversations/${group}/blacklists`);
    assert.deepEqual(r.body.client_ids, ['mallory']);
    r = await api('GET', `/1.2/rtm/service-conversations/${svc}/subscribers`);
    assert.deepEqual(r.body.map((x) => x.subscriber), [S1, S2].sort());
    const inst = records.find((x) => x.type === 'installation');
    r = await api('GET', `/1.1/classes/_Installation/${inst.objectId}`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { objectId: inst.objectId, deviceType: 'ios', deviceToken: inst.deviceToken, channels: [A], badge: 2,
      createdAt: iso(T0), updatedAt: iso(T0 + 1) });
    r = await api('GET', `/1.1/classes/_File/${file}`);
    assert.deepEqual(r.body, { objectId: file, name: 'y.png', url: 'https://x/y.png', mime_type: 'image/png', metaData: { size: 4 },
      createdAt: iso(T0), updatedAt: iso(T0) });
    // rehosting: the bytes arrive under the same objectId and its URL is tern's
    const put = () => api('PUT', `/1.2/import/files/${file}`, { raw: png, type: 'image/png' });
    r = await put();
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.objectId, file);
    assert.equal(r.body.url, `${server.httpUrl}/files/${file}/y.png`, 'the name comes from the file record');
    const got = await fetch(r.body.url);
    assert.equal(got.status, 200);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), png);
    const meta = (await api('GET', `/1.1/files/${file}`)).body;
    assert.equal(meta.createdAt, iso(T0), 'and its time');
    assert.deepEqual([meta.metaData.width, meta.metaData.height, meta.metaData.size], [2, 3, png.length]);
    assert.deepEqual(await put(), r, 'a second PUT answers the same');
    assert.deepEqual(await postOk([records.at(-1)]), { applied: 0, unchanged: 1, skipped: [] }, 'the external record no longer replaces it');
  });

  it('the JS SDK: history identical, unique lookup finds the imported id, new messages sort after', async () => {
    const a = await env.login(A);
    const conv = await a.getConversation(group);
    const pages = [];
    const iter = conv.createMessagesIterator({ limit: 3 });
    for (;;) { /* pages walk back in time, each oldest first; it pages by the imported ids */
      const { value, done } = await iter.next();
      pages.push(value);
      if (done) break;
      assert.ok(pages.length < 4, 'the iterator ends after three pages');
    }
    const seen = pages.reverse().flat();
    assert.deepEqual(seen.map((m) => m.id), msgs.map((m) => m['msg-id']));
    assert.deepEqual(seen.map((m) => m.timestamp.getTime()), msgs.map((m) => m.timestamp));
    assert.equal(seen[0].text, 'hello');
    assert.equal(seen[5].type, -127, 'a recalled message is a RecalledMessage');
    assert.equal(seen[4].updatedAt.getTime(), T0 + 5000, 'the edit time');
    assert.equal(seen[6].mentionedAll, true);
    assert.deepEqual(seen[6].mentionList, [B]);

    const unique = await a.createConversation({ members: [B], unique: true });
    assert.equal(unique.id, pair, 'createConversation({unique}) of the same members returns the imported id');

    const b = await env.login(B);
    const bconv = await b.getConversation(group);
    const got = waitFor(b, 'message', (m, c) => c && c.id === group);
    const sent = await conv.send(new a.sdk.TextMessage('new, after the import'));
    const [m] = await got;
    assert.equal(m.id, sent.id);
    const [newest] = await bconv.queryMessages({ limit: 1 });
    assert.equal(newest.id, sent.id, 'the new message sorts after every imported one');
    const older = await bconv.queryMessages({ limit: 2, startMessageId: sent.id, startTime: sent.timestamp });
    assert.deepEqual(older.map((x) => x.id), msgs.slice(-2).map((x) => x['msg-id']));
  });

  it('a unique start of the imported members answers the conversation\'s own uniqueId (LeanCloud\'s)', async () => {
    const a = await env.login(A);
    // the SDK drops uniqueId from the conv/started reply it builds the Conversation from,
    // so the raw reply is taken where the SDK receives it (IMClient._send's answer)
    const replies = [];
    const send = a._send.bind(a);
    a._send = async (...args) => {
      const res = await send(...args);
      replies.push(res);
      return res;
    };
    const conv = await a.createConversation({ members: [B], unique: true });
    a._send = send;
    assert.equal(conv.id, pair);
    const started = replies.find((x) => x?.convMessage?.cid === pair);
    assert.ok(started, 'the conv/started reply');
    assert.equal(started.convMessage.uniqueId, '6c7b0e5afcae9aa1139a0afa25833dec', 'the imported uniqueId, not tern\'s hash');
    await conv.fetch();
    assert.equal(conv.get('uniqueId'), '6c7b0e5afcae9aa1139a0afa25833dec', 'the Conversation, fetched, says the same');
    // the REST start of the same members too
    const r = await api('POST', '/1.2/rtm/conversations', { body: { m: [A, B], c: A, unique: true } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.objectId, r.body.uniqueId], [pair, '6c7b0e5afcae9aa1139a0afa25833dec']);
    // a unique conversation tern created itself still answers its own (the hash it is found by)
    const C2 = uid('c2');
    const mine = await a.createConversation({ members: [C2], unique: true });
    replies.length = 0;
    a._send = async (...args) => { const res = await send(...args); replies.push(res); return res; };
    const again = await a.createConversation({ members: [C2], unique: true });
    a._send = send;
    assert.equal(again.id, mine.id);
    const r2 = await api('GET', `/1.2/rtm/conversations/${mine.id}`);
    assert.match(r2.body.uniqueId, /^[0-9a-f]{32}$/);
    assert.equal(replies.find((x) => x?.convMessage?.cid === mine.id).convMessage.uniqueId, r2.body.uniqueId);
  });
});

describe('edits and recalls of imported messages', () => {
  it('over WebSocket (the SDK) and REST: found by their imported ids, members told', async () => {
    const A = uid('a'), B = uid('b'), cid = hex24();
    const ms = [0, 1, 2, 3].map((i) => ({ type: 'message', cid, 'msg-id': lcId(), timestamp: T0 + i, from: A, data: TEXT(`m${i}`) }));
    await postOk([{ type: 'conversation', objectId: cid, m: [A, B], c: A }, ...ms]);
    const a = await env.login(A);
    const b = await env.login(B);
    const conv = await a.getConversation(cid);
    const ref = (i) => ({ id: ms[i]['msg-id'], timestamp: new Date(ms[i].timestamp) });
    const upd = waitFor(b, 'messageupdate', (m) => m.id === ms[0]['msg-id']);
    await conv.update(ref(0), new a.sdk.TextMessage('m0 edited'));
    const [edited] = await upd;
    assert.equal(edited.text, 'm0 edited');
    const rec = waitFor(b, 'messagerecall', (m) => m.id === ms[1]['msg-id']);
    await conv.recall(ref(1));
    await rec;
    // REST
    let r = await api('PUT', `/1.2/rtm/conversations/${cid}/messages/${encodeURIComponent(ms[2]['msg-id'])}`,
      { body: { from_client: A, message: TEXT('m2 edited over REST'), timestamp: ms[2].timestamp } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    r = await api('PUT', `/1.2/rtm/conversations/${cid}/messages/${encodeURIComponent(ms[3]['msg-id'])}/recall`,
      { body: { from_client: A, timestamp: ms[3].timestamp } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const h = await allHistory('conversations', cid);
    assert.deepEqual(h.map((m) => JSON.parse(m.data)), [{ _lctype: -1, _lctext: 'm0 edited' }, { _lctype: -127 },
      { _lctype: -1, _lctext: 'm2 edited over REST' }, { _lctype: -127 }]);
    assert.deepEqual(h.map((m) => !!m.recall), [false, true, false, true]);
    r = await api('DELETE', `/1.2/rtm/conversations/${cid}/messages/${encodeURIComponent(ms[0]['msg-id'])}?from_client=${A}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await allHistory('conversations', cid)).length, 3, 'REST delete found it');
    // a re-import does not bring back what was deleted, nor undo the edits
    const again = await postOk(ms);
    assert.deepEqual(again, { applied: 0, unchanged: 4, skipped: [] });
  });

  it('records without times take the import\'s once, and a replay of them changes nothing', async () => {
    const recs = [{ type: 'conversation', objectId: hex24(), m: ['x'] },
      { type: 'installation', objectId: `i${hex24()}`, deviceType: 'android', installationId: `iid-${hex24()}`, channels: ['x'] },
      { type: 'file', objectId: hex24(), name: 'f.txt', url: 'https://example.com/f.txt' }];
    assert.deepEqual(await postOk(recs), { applied: 3, unchanged: 0, skipped: [] });
    const conv = (await api('GET', `/1.2/rtm/conversations/${recs[0].objectId}`)).body;
    assert.ok(Math.abs(Date.parse(conv.createdAt) - Date.now()) < 60000, 'the time of the import');
    assert.deepEqual(await postOk(recs), { applied: 0, unchanged: 3, skipped: [] });
    assert.equal((await api('GET', `/1.2/rtm/conversations/${recs[0].objectId}`)).body.updatedAt, conv.updatedAt);
  });

  it('a delta: a newer patch-timestamp replaces the content, an older or equal one changes nothing', async () => {
    const A = uid('a'), cid = hex24(), mid = lcId();
    const base = { type: 'message', cid, 'msg-id': mid, timestamp: T0, from: A, data: TEXT('v1') };
    await postOk([{ type: 'conversation', objectId: cid, m: [A], c: A }, base]);
    assert.deepEqual(await postOk([{ ...base, data: TEXT('v2'), 'patch-timestamp': T0 + 10 }]), { applied: 1, unchanged: 0, skipped: [] });
    assert.deepEqual(await postOk([{ ...base, data: TEXT('stale'), 'patch-timestamp': T0 + 5 }]), { applied: 0, unchanged: 1, skipped: [] });
    assert.deepEqual(await postOk([{ ...base, data: '{"_lctype":-127}', 'patch-timestamp': T0 + 20, recalled: true }]),
      { applied: 1, unchanged: 0, skipped: [] });
    const [m] = await allHistory('conversations', cid);
    assert.deepEqual([m.data, m['patch-timestamp'], m.recall], ['{"_lctype":-127}', T0 + 20, true]);
    // the conversation changes too: name and members replaced
    assert.deepEqual(await postOk([{ type: 'conversation', objectId: cid, m: [A, 'zed'], c: A, name: 'renamed' }]).then((x) => x.applied), 1);
    const conv = (await api('GET', `/1.2/rtm/conversations/${cid}`)).body;
    assert.deepEqual([conv.name, conv.m], ['renamed', [A, 'zed']]);
    // mutes: a record of their own too (the conversation's mu), replacing the list
    assert.deepEqual(await postOk([{ type: 'mutes', cid, clients: ['zed', A] }]), { applied: 1, unchanged: 0, skipped: [] });
    assert.deepEqual(await postOk([{ type: 'mutes', cid, clients: [A, 'zed'] }]), { applied: 0, unchanged: 1, skipped: [] });
    assert.deepEqual((await api('GET', `/1.2/rtm/conversations/${cid}/mutes`)).body.result, [A, 'zed'].sort());
  });
});

describe('a conversation deleted and imported again', () => {
  it('gets its messages again: the mappings went with the old one (its row id is reused)', async () => {
    const cid = hex24(), mid = lcId();
    const recs = [{ type: 'conversation', objectId: cid, m: ['x'], c: 'x' }, { type: 'message', cid, 'msg-id': mid, timestamp: T0, from: 'x', data: 'once' }];
    assert.equal((await postOk(recs)).applied, 2);
    assert.equal((await api('DELETE', `/1.2/rtm/conversations/${cid}`)).status, 200);
    assert.deepEqual(await postOk(recs), { applied: 2, unchanged: 0, skipped: [] });
    assert.deepEqual((await allHistory('conversations', cid)).map((m) => m['msg-id']), [mid]);
  });
});

describe('ack and read of imported messages (raw frames)', () => {
  // An id whose base64 decodes to a timestamp far in the future: read as one of tern's own
  // ids, acking or reading it would move the position past every message to come.
  const FAR = 'zzzzzzzzzzzzzzzzzzzzzw';

  it('ack: the position is the imported message, so later messages still reach an offline client', async () => {
    const A = uid('a'), B = uid('b'), cid = hex24();
    await postOk([{ type: 'conversation', objectId: cid, m: [A, B], c: A },
      { type: 'message', cid, 'msg-id': FAR, timestamp: T0, from: A, data: TEXT('old') }]);
    let b = await session(server, B, { subprotocol: 'lc.protobuf2.1' });
    b.send({ cmd: 'ack', peerId: B, ackMessage: { cid, mid: FAR } });
    await b.echo();
    await b.close();
    const a = await session(server, A);
    await a.request({ cmd: 'direct', directMessage: { cid, msg: TEXT('new') } });
    b = await session(server, B, { subprotocol: 'lc.protobuf2.1' });
    const off = await b.next((c) => c.cmd === 'direct' && c.directMessage?.offline);
    assert.equal(off.directMessage.msg, TEXT('new'));
  });

  it('read: the position is the imported message, so a later message is unread', async () => {
    const A = uid('a'), B = uid('b'), cid = hex24();
    await postOk([{ type: 'conversation', objectId: cid, m: [A, B], c: A },
      { type: 'message', cid, 'msg-id': FAR, timestamp: T0, from: A, data: TEXT('old') }]);
    let b = await session(server, B);
    b.send({ cmd: 'read', peerId: B, readMessage: { convs: [{ cid, mid: FAR, timestamp: T0 }] } });
    await b.echo();
    await b.close();
    const a = await session(server, A);
    const rcp = a.next((c) => c.cmd === 'rcp');
    b = await session(server, B);
    b.send({ cmd: 'read', peerId: B, readMessage: { convs: [{ cid, mid: FAR, timestamp: T0 }] } });
    const r = await rcp;
    assert.equal(r.rcpMessage.t, T0, 'the other side hears the imported message\'s time');
    await b.close();
    await a.request({ cmd: 'direct', directMessage: { cid, msg: TEXT('new') } });
    b = await session(server, B);
    const u = await b.nextCmd('unread');
    const t = u.unreadMessage.convs.find((x) => x.cid === cid);
    assert.equal(t?.unread, 1, JSON.stringify(u));
  });

  it('imported conversations start read: no unread count for imported messages', async () => {
    const A = uid('a'), B = uid('b'), cid = hex24();
    await postOk([{ type: 'conversation', objectId: cid, m: [A, B], c: A },
      ...[1, 2, 3].map((i) => ({ type: 'message', cid, 'msg-id': lcId(), timestamp: T0 + i, from: A, data: TEXT(`${i}`) }))]);
    const b = await session(server, B);
    const mark = b.mark();
    await b.echo();
    assert.equal(b.since(mark).filter((c) => c.cmd === 'unread' && c.unreadMessage.convs.some((x) => x.cid === cid && x.unread)).length, 0);
  });
});

describe('the idle sweep', () => {
  it('counts an imported conversation\'s idle time from its import, not from the cloud\'s old times', async () => {
    const srv = await startServer({ env: { TERN_CONV_IDLE_TTL: '10', TERN_SWEEP_INTERVAL: '1' } });
    try {
      const call = (method, path, body) => fetch(srv.httpUrl + path, {
        method, body, headers: { 'X-LC-Id': srv.appId, 'X-LC-Key': `${srv.masterKey},master`, 'Content-Type': 'application/json' },
      }).then((r) => r.status);
      const control = hex24(), old = hex24();
      // the control conversation is idle from now; the imported one was idle for years already
      assert.equal(await call('POST', '/1.2/import/records', JSON.stringify({ type: 'conversation', objectId: control, m: ['x'] })), 200);
      await new Promise((r) => setTimeout(r, 3000));
      const rec = { type: 'conversation', objectId: old, m: ['x'], createdAt: iso(T0 - 700 * DAY), updatedAt: iso(T0 - 700 * DAY), lm: date(T0 - 700 * DAY) };
      assert.equal(await call('POST', '/1.2/import/records', JSON.stringify(rec)), 200);
      const end = Date.now() + 20000;
      while (await call('GET', `/1.2/rtm/conversations/${control}`) === 200) {
        assert.ok(Date.now() < end, 'the control conversation is swept');
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(await call('GET', `/1.2/rtm/conversations/${old}`), 200, 'imported 3 s later: still there when the control goes');
    } finally {
      await srv.stop();
    }
  });
});

describe('bad input', () => {
  it('skips what cannot be imported, with line, id and reason; the rest applies', async () => {
    const cid = hex24();
    const r = await postOk([
      { type: 'conversation', objectId: cid, m: ['x'], c: 'x' },
      'not json',
      '',
      { type: 'nonsense' },
      { type: 'message', cid: hex24(), 'msg-id': 'lost', timestamp: T0, from: 'x', data: 'x' },
      { type: 'message', cid, 'msg-id': 'big', timestamp: T0, from: 'x', data: 'x'.repeat(6000) },
      { type: 'message', cid, 'msg-id': 'ok1', timestamp: T0, from: 'x', data: 'fine' },
      { type: 'conversation', objectId: `_tmp:${hex24()}`, temporary: true, expireAt: Date.now() - 1000, m: ['x'] },
      { type: 'subscribers', cid, clients: ['y'] },
      { type: 'shutup', cid, clients: Array.from({ length: 501 }, (_, i) => `c${i}`) },
      { type: 'conversation', objectId: cid, tr: true },
    ]);
    assert.equal(r.applied, 2);
    assert.deepEqual(r.skipped.map((s) => [s.line, s.id]),
      [[2, ''], [4, ''], [5, 'lost'], [6, 'big'], [8, r.skipped[4].id], [9, cid], [10, cid], [11, cid]]);
    assert.deepEqual(r.skipped.map((s) => s.reason), ['not a JSON object', 'unknown type', 'unknown conversation',
      'content larger than max_message', 'a temporary conversation needs an expireAt in the future',
      'subscribers are for service conversations', r.skipped[6].reason,
      'the conversation exists as another kind (normal, chat room, service, temporary)']);
    assert.match(r.skipped[6].reason, /more client ids than allowed/);
  });

  it('an empty body applies nothing', async () => {
    assert.deepEqual(await postOk([]), { applied: 0, unchanged: 0, skipped: [] });
  });

  it('401 without keys, 403 with the app key, 413 past the limits (nothing applied)', async () => {
    const rec = [{ type: 'conversation', objectId: hex24(), m: ['x'] }];
    assert.equal((await post(rec, {})).status, 401);
    assert.equal((await post(rec, { 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey })).status, 403);
    assert.equal((await api('PUT', `/1.2/import/files/${hex24()}`, { raw: 'x', headers: { 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey } })).status, 403);
    const cid = hex24();
    const many = Array.from({ length: 20001 }, (_, i) => ({ type: 'conversation', objectId: i ? hex24() : cid, m: ['x'] }));
    const r = await post(many);
    assert.equal(r.status, 413);
    assert.equal((await api('GET', `/1.2/rtm/conversations/${cid}`)).status, 404, 'nothing of it applied');
    // the limit is decided from the head, before any byte of the body is read
    const wrong = { 'X-LC-Id': server.appId, 'X-LC-Key': 'wrong,master' };
    // a wrong key is refused from the head, before any body byte is read (rest_authorize)
    assert.equal(await headStatus('/1.2/import/records', wrong, 2 * 1024 * 1024), 401, 'without the master key: refused from the head');
    const forged = { 'X-LC-Id': server.appId, 'X-LC-Sign': `${'0'.repeat(32)},${Date.now()},master` };
    assert.equal(await headStatus('/1.2/import/records', forged, 2 * 1024 * 1024), 401, 'nor with a signature that does not verify');
    assert.equal(await headStatus('/1.2/import/records', MASTER(), 16 * 1024 * 1024 + 1), 413, 'past 16 MiB');
    assert.equal(await headStatus('/1.2/import/records', MASTER(), 16 * 1024 * 1024, true), 100, 'up to 16 MiB it reads on');
  });
});

describe('bulk', () => {
  it('20,000 messages in four bodies: every one stored, none twice', async () => {
    const convs = [hex24(), hex24()];
    const N = 20000, BATCH = 5000;
    const first = await postOk(convs.map((cid) => ({ type: 'conversation', objectId: cid, m: ['u1', 'u2'], c: 'u1' })));
    assert.equal(first.applied, 2);
    let applied = 0;
    for (let k = 0; k < N; k += BATCH) {
      const body = [];
      for (let i = k; i < k + BATCH; i++) {
        body.push({ type: 'message', cid: convs[i % 2], 'msg-id': `bulk-${i}`, timestamp: T0 + Math.floor(i / 3), from: i % 3 ? 'u1' : 'u2', data: TEXT(`#${i}`) });
      }
      const r = await postOk(body);
      assert.deepEqual(r.skipped, []);
      applied += r.applied;
    }
    assert.equal(applied, N);
    let total = 0;
    for (const [j, cid] of convs.entries()) {
      const h = await allHistory('conversations', cid);
      const want = Array.from({ length: N / 2 }, (_, i) => `bulk-${2 * i + j}`);
      assert.deepEqual(h.map((m) => m['msg-id']), want, 'all of them, in the order sent');
      total += h.length;
    }
    assert.equal(total, N);
  });

  it('bench/import.mjs (make bench\'s driver) imports 20,000 messages and reports none lost', async () => {
    const out = execFileSync(process.execPath, [join(root, 'bench', 'import.mjs'), '--url', server.httpUrl, '--app-id', server.appId,
      '--master-key', server.masterKey, '--messages', '20000', '--convs', '20', '--batch', '5000', '--json'], { encoding: 'utf8' });
    const r = JSON.parse(out);
    assert.deepEqual([r.scenario, r.messages, r.applied, r.skipped, r.lost], ['import', 20000, 20000, 0, 0]);
    assert.ok(r.msgs_per_s > 0);
    const convs = await api('GET', `/1.1/classes/_Conversation?count=1&limit=0&where=${encodeURIComponent(JSON.stringify({ name: { $regex: '^conversation ' } }))}`);
    assert.equal(convs.body.count, 20);
  });
});

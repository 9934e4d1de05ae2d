// The end-to-end import between two real ternds: seeding a source with everything the
// issue lists, and comparing source and target through the REST API. Used by
// tests/integration/import.test.mjs and import-faults.test.mjs.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { masterHeaders } from './files-util.mjs';

export async function rest(server, method, path, body, headers = {}) {
  const res = await fetch(`${server.httpUrl}${path}`, {
    method,
    headers: masterHeaders(server, body === undefined ? headers : { 'Content-Type': 'application/json', ...headers }),
    body: body === undefined ? undefined : typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = text; }
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return json;
}

const KINDS = { conversation: 'conversations', room: 'chatrooms', service: 'service-conversations' };
export const kindOf = (c) => (c.tr ? 'chatrooms' : c.sys ? 'service-conversations' : 'conversations');

/** Every _Conversation of a ternd, by objectId. */
export async function allConversations(server) {
  const out = [];
  let after;
  for (;;) {
    const where = after ? `&where=${encodeURIComponent(JSON.stringify({ objectId: { $gt: after } }))}` : '';
    const page = await rest(server, 'GET', `/1.1/classes/_Conversation?order=objectId&limit=1000${where}`);
    out.push(...page.results);
    if (page.results.length < 1000) return out;
    after = page.results.at(-1).objectId;
  }
}

/** A conversation's whole history, oldest first, as the REST API pages it (100 a page,
 *  newest first, from each page's oldest). Every page is kept too. */
export async function history(server, c) {
  const pages = [];
  let q = '';
  for (;;) {
    const page = await rest(server, 'GET', `/1.2/rtm/${kindOf(c)}/${c.objectId}/messages?limit=100${q}`);
    pages.push(page);
    if (page.length < 100) break;
    const last = page.at(-1);
    q = `&msgid=${encodeURIComponent(last['msg-id'])}&timestamp=${last.timestamp}`;
  }
  return { items: pages.flat().reverse(), pages };
}

async function listAll(server, path, key) {
  const out = [];
  let next;
  for (;;) {
    const page = await rest(server, 'GET', `${path}?limit=500${next ? `&next=${encodeURIComponent(next)}` : ''}`);
    out.push(...page[key]);
    if (!page.next) return out.sort();
    next = page.next;
  }
}

/** What the import must carry for one conversation, read through REST. */
export async function conversationView(server, c) {
  const base = `/1.2/rtm/${kindOf(c)}/${c.objectId}`;
  const v = {};
  if (!c.sys) {
    v.roles = (await rest(server, 'GET', `${base}/member-infos?limit=1000`)).results
      .map((r) => `${r.clientId}:${r.role}`).sort();
    v.shutup = await listAll(server, `${base}/permanent-silenceds`, 'client_ids');
  }
  v.blacklist = await listAll(server, `${base}/blacklists`, 'client_ids');
  if (c.sys) {
    const subs = [];
    let after = '';
    for (;;) {
      const page = await rest(server, 'GET', `${base}/subscribers?limit=50${after ? `&client_id=${encodeURIComponent(after)}` : ''}`);
      subs.push(...page.map((s) => s.subscriber));
      if (page.length < 50) break;
      after = page.at(-1).subscriber;
    }
    v.subscribers = subs.sort();
  }
  return v;
}

const FIELDS = ['objectId', 'name', 'c', 'attr', 'tr', 'sys', 'unique', 'uniqueId', 'createdAt', 'updatedAt'];
const pick = (o, keys) => Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]]));
const msgView = (it, urlMap) => ({
  'msg-id': it['msg-id'], timestamp: it.timestamp, from: it.from, bin: !!it.bin,
  data: urlMap ? urlMap(it.data) : it.data, 'patch-timestamp': it['patch-timestamp'],
  'mention-all': !!it['mention-all'], 'mention-pids': [...(it['mention-pids'] || [])].sort(),
});

/** Compares every conversation (fields, members, sets) and every history page of source
 *  and target. urlMap rewrites a source message's content (rehosted file URLs). */
/** targetOnly: ids of messages sent to the target after the switch, which a later delta
 *  must keep: the histories are then compared without them, as whole lists. */
export async function compareServers(source, target, { urlMap, targetOnly = new Set() } = {}) {
  const a = await allConversations(source);
  const b = await allConversations(target);
  assert.deepEqual(b.map((c) => c.objectId), a.map((c) => c.objectId), 'the same conversations');
  for (let i = 0; i < a.length; i++) {
    const [s, t] = [a[i], b[i]];
    assert.deepEqual(pick(t, FIELDS), pick(s, FIELDS), `fields of ${s.objectId}`);
    for (const k of Object.keys(s)) {
      if (['lm', 'ACL'].includes(k)) continue;
      assert.deepEqual(t[k] && Array.isArray(t[k]) ? [...t[k]].sort() : t[k], s[k] && Array.isArray(s[k]) ? [...s[k]].sort() : s[k], `${s.objectId}.${k}`);
    }
    assert.deepEqual(await conversationView(target, t), await conversationView(source, s), `roles, shut-ups, blacklist, subscribers of ${s.objectId}`);
    const hs = await history(source, s);
    const ht = await history(target, t);
    const own = ht.pages.flat().filter((x) => targetOnly.has(x['msg-id']));
    if (!own.length) {
      assert.equal(ht.pages.length, hs.pages.length, `history pages of ${s.objectId}`);
      for (let p = 0; p < hs.pages.length; p++) {
        assert.deepEqual(ht.pages[p].map((x) => msgView(x)), hs.pages[p].map((x) => msgView(x, urlMap)), `history page ${p} of ${s.objectId}`);
      }
    } else {
      assert.deepEqual(ht.pages.flat().filter((x) => !targetOnly.has(x['msg-id'])).map((x) => msgView(x)),
        hs.pages.flat().map((x) => msgView(x, urlMap)), `history of ${s.objectId} beside what was sent to the target`);
    }
  }
  const inst = async (srv) => (await rest(srv, 'GET', '/1.1/classes/_Installation?order=objectId&limit=1000')).results
    .map((o) => pick(o, ['objectId', 'deviceType', 'deviceToken', 'installationId', 'channels', 'badge']));
  assert.deepEqual(await inst(target), await inst(source), 'installations');
  const files = async (srv) => (await rest(srv, 'GET', '/1.1/classes/_File?order=objectId&limit=1000')).results
    .map((o) => ({ objectId: o.objectId, name: o.name, mime_type: o.mime_type, size: o.metaData?.size }));
  assert.deepEqual(await files(target), await files(source), 'files');
  return { conversations: a.length };
}

/** A REST send; returns {msg-id, timestamp}. */
export const send = (server, kind, cid, from, message, extra = {}) =>
  rest(server, 'POST', `/1.2/rtm/${kind}/${cid}/messages`, { from_client: from, message, ...extra });

/** Seeds `server` with every kind of conversation and message the issue names (the REST
 *  half; the caller adds the SDK-sent ones). Returns the ids. */
export async function seedRest(server, tag) {
  const ids = {};
  const conv = await rest(server, 'POST', '/1.2/rtm/conversations', { name: `group ${tag}`, m: [`${tag}a`, `${tag}b`, `${tag}c`, `${tag}d`], attr: { topic: 'x', n: 1 }, color: 'red' });
  ids.group = conv.objectId;
  const room = await rest(server, 'POST', '/1.2/rtm/chatrooms', { name: `room ${tag}` });
  ids.room = room.objectId;
  const svc = await rest(server, 'POST', '/1.2/rtm/service-conversations', { name: `svc ${tag}` });
  ids.service = svc.objectId;
  for (const s of [`${tag}s1`, `${tag}s2`, `${tag}s3`]) await rest(server, 'POST', `/1.2/rtm/service-conversations/${ids.service}/subscribers`, { client_id: s });
  const g = `/1.2/rtm/conversations/${ids.group}`;
  await rest(server, 'POST', `${g}/mutes`, { client_ids: [`${tag}b`] });
  await rest(server, 'POST', `${g}/member-infos`, { clientId: `${tag}b`, role: 'Manager' });
  await rest(server, 'POST', `${g}/permanent-silenceds`, { client_ids: [`${tag}c`] });
  await rest(server, 'POST', `${g}/blacklists`, { client_ids: [`${tag}x`] });
  await rest(server, 'POST', `/1.2/rtm/chatrooms/${ids.room}/blacklists`, { client_ids: [`${tag}y`] });
  await rest(server, 'POST', `/1.2/rtm/service-conversations/${ids.service}/blacklists`, { client_ids: [`${tag}z`] });
  ids.msgs = [];
  for (let i = 0; i < 250; i++) ids.msgs.push(await send(server, 'conversations', ids.group, `${tag}${'abcd'[i % 4]}`, `plain ${i}`));
  ids.mention = await send(server, 'conversations', ids.group, `${tag}a`, '@b', { mention_client_ids: [`${tag}b`] });
  ids.mentionAll = await send(server, 'conversations', ids.group, `${tag}a`, '@all', { mention_all: true });
  ids.edited = await send(server, 'conversations', ids.group, `${tag}a`, 'before edit');
  await rest(server, 'PUT', `${g}/messages/${ids.edited['msg-id']}`, { from_client: `${tag}a`, message: 'after edit', timestamp: ids.edited.timestamp });
  ids.recalled = await send(server, 'conversations', ids.group, `${tag}b`, 'to be recalled');
  await rest(server, 'PUT', `${g}/messages/${ids.recalled['msg-id']}/recall`, { from_client: `${tag}b`, timestamp: ids.recalled.timestamp });
  await send(server, 'chatrooms', ids.room, `${tag}a`, 'in the room');
  await rest(server, 'POST', `/1.2/rtm/service-conversations/${ids.service}/broadcasts`, { from_client: 'sys', message: 'to all' });
  await rest(server, 'POST', '/1.1/installations', { deviceType: 'ios', deviceToken: `${'ab'.repeat(32)}`, channels: [`${tag}a`], badge: 2 });
  await rest(server, 'POST', '/1.1/installations', { deviceType: 'android', installationId: `inst-${tag}`, channels: [`${tag}b`, 'news'] });
  return ids;
}

/** Starts `tern` (the importer) in the background. `exited` resolves {code, signal}; it is
 *  set up at once, so a child that finishes on its own before the test kills it is never
 *  waited for a second time (a once('exit') registered after the exit never fires: that
 *  hung import-faults for the whole test timeout). stderr is kept for diagnostics. */
export function spawnTern(bin, args, env = {}) {
  const child = spawn(bin, args, { env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err = (err + d).slice(-20000); });
  // a spawn that fails (ENOENT, EACCES while the binary is being relinked) emits 'error'
  // and never 'exit': answer that too, or a test would wait for good
  const exited = new Promise((r) => {
    child.once('exit', (code, signal) => r({ code, signal }));
    child.once('error', (error) => r({ code: null, signal: null, error }));
  });
  let failed = false;
  exited.then((x) => { failed = !!x.error; });
  return { child, exited, stderr: () => err, running: () => !failed && child.exitCode === null && child.signalCode === null };
}

/** Polls `reached()` (async) until it is true, then sends p `signal` (SIGKILL) and waits
 *  for it; resolves {code, signal}. Fails at once, saying why and with `diag()` and p's
 *  stderr, when p exits before that point (it was not stopped mid-run) or `reached` stays
 *  false for deadlineMs. */
export async function killWhen(p, reached, { deadlineMs = 90000, diag = async () => '', signal: sig = 'SIGKILL' } = {}) {
  const t0 = Date.now();
  for (;;) {
    if (!p.running()) {
      const { code, signal, error } = await p.exited;
      throw new Error(`the importer ${error ? `did not start (${error.message})` : `exited (${code ?? signal})`} before the kill point: ${await diag()}\n${p.stderr().slice(-3000)}`);
    }
    if (await reached()) break;
    if (Date.now() - t0 > deadlineMs) {
      p.child.kill('SIGKILL');
      await p.exited;
      throw new Error(`no kill point within ${deadlineMs} ms: ${await diag()}\n${p.stderr().slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  p.child.kill(sig);
  const res = await p.exited;
  if (sig === 'SIGKILL') assert.equal(res.signal, 'SIGKILL', `killed mid-run: ${await diag()}`);
  return res;
}

/** How many messages a ternd holds in these conversations (REST history, 1,000 a page). */
export async function countMessages(server, cids, kind = 'conversations') {
  let n = 0;
  for (const cid of cids) {
    let q = '';
    for (;;) {
      const page = await rest(server, 'GET', `/1.2/rtm/${kind}/${cid}/messages?limit=1000${q}`).catch(() => []);
      n += page.length;
      if (page.length < 1000) break;
      const last = page.at(-1);
      q = `&msgid=${encodeURIComponent(last['msg-id'])}&timestamp=${last.timestamp}`;
    }
  }
  return n;
}

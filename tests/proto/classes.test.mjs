// tern as a LeanCloud-shaped export source (issue #12, docs/rest.md): the storage API's reads
// of _Conversation, _Installation and _File with the master key, as an importer pulls them —
// LeanCloud's shapes, where on updatedAt / objectId / tr / sys, order, limit, skip, count,
// one object by id; 401 without keys and 403 with the app key. The data is made through
// the ordinary APIs (REST, WebSocket, installations, uploads) of a ternd of this file's own,
// so every count is exact.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { closeAll, session, startConv, sendMsg, uid, ISO_RE } from '../lib/proto-client.mjs';

let server;
const MASTER = () => ({ 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master` });
const APP = () => ({ 'X-LC-Id': server.appId, 'X-LC-Key': server.appKey });

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

const q = (o) => Object.entries(o).map(([k, v]) => `${k}=${encodeURIComponent(typeof v === 'string' ? v : JSON.stringify(v))}`).join('&');
const get = async (path, params = {}) => {
  const r = await api('GET', `${path}?${q(params)}`);
  assert.equal(r.status, 200, `${path} ${JSON.stringify(params)}: ${JSON.stringify(r.body)}`);
  return r.body;
};
const date = (iso) => ({ __type: 'Date', iso });

const A = uid('a'), B = uid('b'), C = uid('c');
const made = {}; // name → objectId
let cutoff; // an updatedAt between the first conversations and the later ones

before(async () => {
  server = await startServer({ env: { TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0' } });
  const post = async (path, body) => {
    const r = await api('POST', path, { body });
    assert.ok(r.status === 201 || r.status === 200, JSON.stringify(r.body));
    return r.body.objectId;
  };
  made.group = await post('/1.2/rtm/conversations', { name: 'group', m: [A, B, C], c: A, color: 'red' });
  made.pair = await post('/1.2/rtm/conversations', { m: [A, B], unique: true });
  made.room = await post('/1.2/rtm/chatrooms', { name: 'lobby' });
  await new Promise((r) => setTimeout(r, 20));
  cutoff = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 20));
  made.svc = await post('/1.2/rtm/service-conversations', { name: 'news' });
  const a = await session(server, A);
  made.temp = (await startConv(a, [B], { tempConv: true })).cid;
  made.live = (await startConv(a, [C], { attr: { data: JSON.stringify({ topic: 'x' }) } })).cid;
  await sendMsg(a, made.live, 'hi');
  await a.close();
  for (const i of [1, 2, 3]) {
    const r = await api('POST', '/1.1/installations', { headers: APP(), body: { deviceType: 'ios', deviceToken: `tok${i}${'0'.repeat(30)}`, channels: [A], badge: i } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    made[`inst${i}`] = r.body.objectId;
  }
  for (const n of ['one.txt', 'two.txt', 'three.txt']) {
    const r = await api('POST', `/1.1/files/${n}`, { raw: `contents of ${n}`, type: 'text/plain', headers: APP() });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    made[n] = r.body;
  }
});
after(async () => {
  await closeAll();
  await server.stop();
});

describe('_Conversation', () => {
  it('lists every conversation but temporary ones, in LeanCloud\'s shape', async () => {
    const body = await get('/1.1/classes/_Conversation', { count: 1, order: 'createdAt' });
    const ids = body.results.map((c) => c.objectId);
    assert.equal(body.count, 5);
    assert.deepEqual(new Set(ids), new Set([made.group, made.pair, made.room, made.svc, made.live]));
    assert.ok(!ids.includes(made.temp), 'temporary conversations are not in _Conversation');
    const g = body.results.find((c) => c.objectId === made.group);
    assert.deepEqual({ ...g, createdAt: 0, updatedAt: 0 },
      { objectId: made.group, name: 'group', m: [A, B, C].sort(), c: A, color: 'red', mu: [], tr: false, sys: false, unique: false,
        createdAt: 0, updatedAt: 0 });
    assert.match(g.createdAt, ISO_RE);
    assert.match(g.updatedAt, ISO_RE);
    const live = body.results.find((c) => c.objectId === made.live);
    assert.equal(live.lm.__type, 'Date', 'lm is a Date object');
    assert.match(live.lm.iso, ISO_RE);
    assert.equal(live.topic, 'x');
    const pair = body.results.find((c) => c.objectId === made.pair);
    assert.equal(pair.unique, true);
    assert.match(pair.uniqueId, /^[0-9a-f]{32}$/);
    assert.equal(body.results.find((c) => c.objectId === made.room).tr, true);
    assert.equal(body.results.find((c) => c.objectId === made.svc).sys, true);
    for (const c of body.results) assert.equal(c.conv_type, undefined, 'no tern-only fields');
  });

  it('where on updatedAt, objectId, tr and sys', async () => {
    let r = await get('/1.1/classes/_Conversation', { where: { updatedAt: { $gt: date(cutoff) } } });
    assert.deepEqual(new Set(r.results.map((c) => c.objectId)), new Set([made.svc, made.live]));
    r = await get('/1.1/classes/_Conversation', { where: { tr: true } });
    assert.deepEqual(r.results.map((c) => c.objectId), [made.room]);
    r = await get('/1.1/classes/_Conversation', { where: { sys: true } });
    assert.deepEqual(r.results.map((c) => c.objectId), [made.svc]);
    const all = (await get('/1.1/classes/_Conversation', { order: 'objectId' })).results.map((c) => c.objectId);
    assert.deepEqual(all, [...all].sort());
    r = await get('/1.1/classes/_Conversation', { where: { objectId: { $gt: all[1] } }, order: 'objectId' });
    assert.deepEqual(r.results.map((c) => c.objectId), all.slice(2));
  });

  it('order, limit, skip and count page through all exactly once', async () => {
    const all = (await get('/1.1/classes/_Conversation', { order: '-updatedAt' })).results;
    for (let i = 1; i < all.length; i++) assert.ok(all[i - 1].updatedAt >= all[i].updatedAt, '-updatedAt is descending');
    const paged = [];
    for (let skip = 0; ; skip += 2) {
      const r = await get('/1.1/classes/_Conversation', { order: '-updatedAt', limit: 2, skip });
      paged.push(...r.results.map((c) => c.objectId));
      if (r.results.length < 2) break;
    }
    assert.deepEqual(paged, all.map((c) => c.objectId));
    const counted = await get('/1.1/classes/_Conversation', { count: 1, limit: 0 });
    assert.deepEqual(counted, { results: [], count: 5 });
    assert.equal((await get('/1.1/classes/_Conversation', {})).results.length, 5, 'limit defaults to 100');
  });

  it('one by id; 404 for temporary and unknown ones; 400 for bad where or order', async () => {
    const one = await get(`/1.1/classes/_Conversation/${made.group}`);
    assert.equal(one.objectId, made.group);
    assert.deepEqual(one.m, [A, B, C].sort());
    for (const id of [made.temp, 'ffffffffffffffffffffffff']) {
      const r = await api('GET', `/1.1/classes/_Conversation/${encodeURIComponent(id)}`);
      assert.deepEqual([r.status, r.body.code], [404, 101]);
    }
    assert.equal((await api('GET', `/1.1/classes/_Conversation?${q({ where: '[1' })}`)).status, 400);
    assert.equal((await api('GET', `/1.1/classes/_Conversation?${q({ where: { $bogus: 1 } })}`)).status, 400);
    assert.equal((await api('GET', `/1.1/classes/_Conversation?${q({ order: 'm' })}`)).status, 400);
  });

  it('where is held to 64 levels before it is parsed, as every JSON a peer sends (jsonlim.h)', async () => {
    // a value 65 levels deep: jansson alone takes it (2,048), the capped loader does not
    const deep = (levels) => `{"name":${'['.repeat(levels - 1)}1${']'.repeat(levels - 1)}}`;
    for (const cls of ['_Conversation', '_Installation', '_File']) {
      const r = await api('GET', `/1.1/classes/${cls}?where=${encodeURIComponent(deep(65))}`);
      assert.deepEqual([r.status, r.body.error], [400, 'where must be a JSON object'], cls);
    }
    // 64 levels are read (and then refused by the query language: operands nest 16 at most)
    const r = await api('GET', `/1.1/classes/_Conversation?where=${encodeURIComponent(deep(64))}`);
    assert.deepEqual([r.status, r.body.error], [400, 'name: value nested deeper than 16 levels']);
  });
});

describe('_Installation', () => {
  it('lists installations with count, where, order, and one by id; /1.1/installations too', async () => {
    const body = await get('/1.1/classes/_Installation', { count: 1 });
    assert.equal(body.count, 3);
    const i1 = body.results.find((x) => x.objectId === made.inst1);
    assert.deepEqual({ ...i1, createdAt: 0, updatedAt: 0 },
      { objectId: made.inst1, deviceType: 'ios', deviceToken: `tok1${'0'.repeat(30)}`, channels: [A], badge: 1, createdAt: 0, updatedAt: 0 });
    assert.match(i1.updatedAt, ISO_RE);
    const alt = await get('/1.1/installations', { count: 1 });
    assert.deepEqual(alt, body);
    const byId = (await get('/1.1/classes/_Installation', { order: 'objectId' })).results.map((x) => x.objectId);
    assert.deepEqual(byId, [made.inst1, made.inst2, made.inst3].sort());
    let r = await get('/1.1/classes/_Installation', { where: { objectId: { $gt: byId[0] } }, order: 'objectId', count: 1 });
    assert.deepEqual([r.results.map((x) => x.objectId), r.count], [byId.slice(1), 2]);
    r = await get('/1.1/classes/_Installation', { where: { updatedAt: { $gte: date(i1.updatedAt) } }, order: 'updatedAt' });
    assert.equal(r.results[0].objectId, made.inst1);
    r = await get('/1.1/classes/_Installation', { where: { badge: { $gte: 2 }, channels: A, deviceType: 'ios' }, order: '-createdAt' });
    assert.deepEqual(new Set(r.results.map((x) => x.objectId)), new Set([made.inst2, made.inst3]));
    r = await get('/1.1/classes/_Installation', { where: { badge: { $in: [1, 3] } } });
    assert.deepEqual(new Set(r.results.map((x) => x.objectId)), new Set([made.inst1, made.inst3]));
    assert.deepEqual(await get(`/1.1/classes/_Installation/${made.inst2}`), body.results.find((x) => x.objectId === made.inst2));
    assert.equal((await api('GET', '/1.1/classes/_Installation/nope')).status, 404);
    assert.equal((await api('GET', `/1.1/classes/_Installation?${q({ where: { $or: [] } })}`)).status, 400);
    assert.equal((await api('GET', `/1.1/classes/_Installation?${q({ order: 'badge' })}`)).status, 400);
  });
});

describe('_File', () => {
  it('lists files with their download URLs; pages by objectId; where on createdAt; /1.1/files too', async () => {
    const body = await get('/1.1/classes/_File', { count: 1 });
    assert.equal(body.count, 3);
    for (const n of ['one.txt', 'two.txt', 'three.txt']) {
      const f = body.results.find((x) => x.objectId === made[n].objectId);
      assert.equal(f.name, n);
      assert.equal(f.url, made[n].url);
      assert.equal(f.mime_type, 'text/plain');
      assert.equal(f.metaData.size, `contents of ${n}`.length);
      assert.match(f.createdAt, ISO_RE);
      assert.equal(f.updatedAt, f.createdAt);
      assert.equal(await (await fetch(f.url)).text(), `contents of ${n}`);
    }
    assert.deepEqual(await get('/1.1/files', { count: 1 }), body);
    const ids = body.results.map((x) => x.objectId).sort();
    let r = await get('/1.1/classes/_File', { where: { objectId: { $gt: ids[0] } }, order: 'objectId', limit: 1, count: 1 });
    assert.deepEqual([r.results.map((x) => x.objectId), r.count], [[ids[1]], 2]);
    r = await get('/1.1/classes/_File', { order: '-objectId', skip: 1, limit: 5 });
    assert.deepEqual(r.results.map((x) => x.objectId), ids.slice().reverse().slice(1));
    const newest = body.results.map((x) => x.createdAt).sort().at(-1);
    r = await get('/1.1/classes/_File', { where: { createdAt: { $gte: date(newest) } }, order: '-createdAt' });
    assert.ok(r.results.length >= 1 && r.results.every((x) => x.createdAt === newest));
    r = await get('/1.1/classes/_File', { where: { name: 'two.txt' } });
    assert.deepEqual(r.results.map((x) => x.objectId), [made['two.txt'].objectId]);
    assert.equal((await get(`/1.1/classes/_File/${made['one.txt'].objectId}`)).name, 'one.txt');
    assert.equal((await api('GET', '/1.1/classes/_File/ffffffffffffffffffffffff')).status, 404);
  });
});

describe('auth', () => {
  it('401 without keys or with a wrong one, 403 with the app key', async () => {
    for (const p of ['/1.1/classes/_Conversation', `/1.1/classes/_Conversation/${made.group}`, '/1.1/classes/_Installation',
      '/1.1/installations', '/1.1/classes/_File', '/1.1/files']) {
      assert.equal((await api('GET', p, { headers: {} })).status, 401, p);
      assert.equal((await api('GET', p, { headers: { 'X-LC-Id': server.appId, 'X-LC-Key': 'wrong,master' } })).status, 401, p);
      const r = await api('GET', p, { headers: APP() });
      assert.equal(r.status, 403, p);
      assert.equal(typeof r.body.error, 'string');
    }
  });
});

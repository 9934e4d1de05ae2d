// Test doubles for `tern admin import leancloud`, for the parts a real ternd cannot play:
//
// fakeLeanCloud — LeanCloud's REST API as documented (storage class queries with where /
//   order / limit / skip / count, the IM REST API's member-infos, permanent-silenceds,
//   blacklists, subscribers, per-conversation and app-wide history), serving data the test
//   holds in memory, and misbehaving on request: 429 with Retry-After, 500, and connections
//   cut in the middle of an answer. The end-to-end test uses a real ternd as the source;
//   this one exists to simulate LeanCloud's failures and the shapes tern never produces.
// fakeTarget — the import contract's receiving side (POST /1.2/import/records,
//   PUT /1.2/import/files/{id}) keyed like the contract says (a message by cid + msg-id,
//   replaced only by a newer patch-timestamp), counting how often each line arrived, so a
//   test can tell "resent once after a kill" from "lost" or "doubled".
import http from 'node:http';

const json = (res, code, body, headers = {}) => {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
};

const listen = (server) => new Promise((r) => server.listen(0, '127.0.0.1', () => r(server.address().port)));

/** data: {classes: {_Conversation: [], _Installation: [], _File: []}, extras: {cid: {member_infos,
 *  permanent_silenceds, blacklists, subscribers}}, messages: {cid: [items oldest first]},
 *  files: {objectId: Buffer}}; faults: {p429, p500, pDrop} probabilities per request. */
export async function fakeLeanCloud({ appId, masterKey, data, faults = {} }) {
  const stats = { requests: 0, r429: 0, r500: 0, drops: 0, byPath: {} };
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    stats.requests++;
    const key = u.pathname.replace(/\/[0-9a-f]{24}|\/_tmp:[^/]+/g, '/:id');
    stats.byPath[key] = (stats.byPath[key] || 0) + 1;
    if (u.pathname.startsWith('/files/')) {
      const f = data.files?.[decodeURIComponent(u.pathname.slice(7))];
      if (!f) return json(res, 404, { code: 404, error: 'no file' });
      res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': f.length });
      return res.end(f);
    }
    if (req.headers['x-lc-id'] !== appId || req.headers['x-lc-key'] !== `${masterKey},master`) {
      return json(res, 401, { code: 401, error: 'Unauthorized.' });
    }
    const r = Math.random();
    if (r < (faults.p429 || 0)) {
      stats.r429++;
      return json(res, 429, { code: 429, error: 'Too many requests.' }, { 'Retry-After': String(faults.retryAfter ?? 0) });
    }
    if (r < (faults.p429 || 0) + (faults.p500 || 0)) {
      stats.r500++;
      return json(res, 500, { code: 1, error: 'Internal server error.' });
    }
    const drop = Math.random() < (faults.pDrop || 0);
    const answer = (code, body) => {
      if (!drop) return json(res, code, body);
      stats.drops++;
      const text = JSON.stringify(body);
      res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
      res.write(text.slice(0, Math.floor(text.length / 2)));
      setImmediate(() => res.socket.destroy());
    };
    try {
      route(u, answer);
    } catch (e) {
      json(res, 400, { code: 107, error: String(e) });
    }
  });
  const num = (u, k, d) => (u.searchParams.has(k) ? Number(u.searchParams.get(k)) : d);
  const iso = (v) => (typeof v === 'string' ? v : v?.iso);

  function route(u, answer) {
    let m;
    if ((m = /^\/1\.1\/classes\/(\w+)$/.exec(u.pathname))) {
      let rows = [...(data.classes[m[1]] || [])];
      const where = JSON.parse(u.searchParams.get('where') || '{}');
      if (where.objectId?.$gt) rows = rows.filter((o) => o.objectId > where.objectId.$gt);
      if (where.updatedAt?.$gte) rows = rows.filter((o) => iso(o.updatedAt) >= where.updatedAt.$gte.iso);
      const order = u.searchParams.get('order') || 'createdAt';
      rows.sort((a, b) => (String(a[order]) < String(b[order]) ? -1 : String(a[order]) > String(b[order]) ? 1 :
        a.objectId < b.objectId ? -1 : 1));
      const limit = Math.min(num(u, 'limit', 100), 1000);
      const out = { results: rows.slice(num(u, 'skip', 0), num(u, 'skip', 0) + limit) };
      if (u.searchParams.get('count') === '1') out.count = (data.classes[m[1]] || []).length;
      return answer(200, out);
    }
    if ((m = /^\/1\.2\/rtm\/(conversations|chatrooms|service-conversations)\/([^/]+)\/(member-infos|permanent-silenceds|blacklists|subscribers|messages)$/.exec(u.pathname))) {
      const cid = decodeURIComponent(m[2]);
      const ex = data.extras[cid] || {};
      if (m[3] === 'member-infos') {
        const all = ex.member_infos || [];
        const skip = num(u, 'skip', 0);
        return answer(200, { results: all.slice(skip, skip + Math.min(num(u, 'limit', 100), 1000)) });
      }
      if (m[3] === 'permanent-silenceds' || m[3] === 'blacklists') {
        const all = ex[m[3] === 'blacklists' ? 'blacklists' : 'permanent_silenceds'] || [];
        const start = u.searchParams.has('next') ? all.indexOf(u.searchParams.get('next')) + 1 : 0;
        const limit = Math.min(num(u, 'limit', 10), 500);
        const page = all.slice(start, start + limit);
        return answer(200, start + limit < all.length ? { client_ids: page, next: page.at(-1) } : { client_ids: page });
      }
      if (m[3] === 'subscribers') {
        const all = [...(ex.subscribers || [])].sort();
        const after = u.searchParams.get('client_id');
        const rows = all.filter((c) => !after || c > after).slice(0, Math.min(num(u, 'limit', 50), 50));
        return answer(200, rows.map((c) => ({ timestamp: 1491467841116, subscriber: c, conv_id: cid })));
      }
      return answer(200, history(data.messages[cid] || [], u));
    }
    if (u.pathname === '/1.2/rtm/messages') {
      const all = Object.values(data.messages).flat().sort((a, b) => a.timestamp - b.timestamp || (a['msg-id'] < b['msg-id'] ? -1 : 1));
      return answer(200, history(all, u));
    }
    return answer(404, { code: 404, error: `no route ${u.pathname}` });
  }

  // reversed=true only (what the importer asks): oldest first after (timestamp, msgid)
  function history(items, u) {
    if (u.searchParams.get('reversed') !== 'true') throw new Error('the fake serves reversed=true only');
    const ts = num(u, 'timestamp', 0);
    const mid = u.searchParams.get('msgid');
    let start = 0;
    if (mid) {
      const i = items.findIndex((x) => x['msg-id'] === mid && x.timestamp === ts);
      start = i >= 0 ? i + 1 : items.findIndex((x) => x.timestamp > ts);
    } else if (ts) {
      start = items.findIndex((x) => x.timestamp >= ts);
    }
    if (start < 0) return [];
    return items.slice(start, start + Math.min(num(u, 'limit', 100), 1000));
  }

  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}`, stats, data, faults, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

/** The target side of the contract, in memory. */
export async function fakeTarget({ appId, masterKey, failLine } = {}) {
  const t = {
    convs: new Map(), msgs: new Map(), sets: new Map(), installations: new Map(), files: new Map(),
    lineCounts: new Map(), posts: 0, puts: 0, bodies: [],
  };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      if (req.headers['x-lc-id'] !== appId || req.headers['x-lc-key'] !== `${masterKey},master`) {
        return json(res, 401, { code: 401, error: 'Unauthorized.' });
      }
      const body = Buffer.concat(chunks);
      const u = new URL(req.url, 'http://x');
      let m;
      if (req.method === 'PUT' && (m = /^\/1\.2\/import\/files\/(.+)$/.exec(u.pathname))) {
        const id = decodeURIComponent(m[1]);
        t.puts++;
        t.files.set(id, { bytes: body, name: decodeURIComponent(req.headers['x-tern-file-name'] || ''),
          type: req.headers['content-type'], meta: req.headers['x-tern-meta'], createdAt: req.headers['x-tern-created-at'] });
        return json(res, 200, { objectId: id, url: `${t.url}/files/${id}/${req.headers['x-tern-file-name'] || ''}` });
      }
      if (req.method !== 'POST' || u.pathname !== '/1.2/import/records') return json(res, 404, { code: 404, error: 'no route' });
      if (!/application\/x-ndjson/.test(req.headers['content-type'] || '')) return json(res, 400, { code: 107, error: 'ndjson' });
      t.posts++;
      const lines = body.toString('utf8').split('\n').filter(Boolean);
      t.bodies.push(lines.length);
      let applied = 0, unchanged = 0;
      const skipped = [];
      lines.forEach((line, i) => {
        const r = JSON.parse(line);
        const k = r.type === 'message' ? `m:${r.cid}:${r['msg-id']}` : `${r.type}:${r.objectId || r.cid}`;
        t.lineCounts.set(k, (t.lineCounts.get(k) || 0) + 1);
        if (failLine && failLine(r)) return skipped.push({ line: i + 1, id: r['msg-id'] || r.objectId || r.cid, reason: 'refused by the test' });
        const put = (map, key, val) => {
          const old = map.get(key);
          if (old && JSON.stringify(old) === JSON.stringify(val)) unchanged++;
          else { map.set(key, val); applied++; }
        };
        if (r.type === 'conversation') return put(t.convs, r.objectId, r);
        if (['member_roles', 'shutup', 'blacklist'].includes(r.type)) return put(t.sets, `${r.type}:${r.cid}`, r);
        if (r.type === 'subscribers') {
          const key = `subscribers:${r.cid}`;
          const cur = r.replace ? [] : [...(t.sets.get(key)?.clients || [])];
          return put(t.sets, key, { ...r, clients: [...new Set([...cur, ...r.clients])] });
        }
        if (r.type === 'installation') return put(t.installations, r.objectId, r);
        if (r.type === 'file') return put(t.files, r.objectId, r);
        if (r.type === 'message') {
          if (!t.convs.has(r.cid)) return skipped.push({ line: i + 1, id: r['msg-id'], reason: 'unknown conversation' });
          const key = `${r.cid}/${r['msg-id']}`;
          const old = t.msgs.get(key);
          if (old && (old['patch-timestamp'] || 0) >= (r['patch-timestamp'] || 0)) return unchanged++;
          t.msgs.set(key, r);
          return applied++;
        }
        skipped.push({ line: i + 1, id: '', reason: `unknown type ${r.type}` });
      });
      json(res, 200, { applied, unchanged, skipped });
    });
  });
  const port = await listen(server);
  t.url = `http://127.0.0.1:${port}`;
  t.close = () => new Promise((r) => { server.closeAllConnections(); server.close(r); });
  return t;
}

/** A LeanCloud history item as the IM REST API documents it. */
export function lcItem(cid, ts, mid, from, data, extra = {}) {
  return { timestamp: ts, 'conv-id': '219946ef32e40c515d33ae6975a5c593', data, from, 'msg-id': mid, 'is-conv': true,
    'is-room': false, to: cid, bin: false, 'from-ip': '202.117.15.217', ...extra };
}

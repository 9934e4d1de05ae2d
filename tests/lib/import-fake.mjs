// Test doubles for `tern admin import leancloud`, for the part a real ternd cannot play:
//
// fakeLeanCloud — LeanCloud's REST API as documented (storage class queries with where /
//   order / limit / skip / count, the IM REST API's member-infos, permanent-silenceds,
//   blacklists, subscribers, per-conversation and app-wide history), serving data the test
//   holds in memory, and misbehaving on request: 429 with Retry-After, 500, and connections
//   cut in the middle of an answer. LeanCloud itself cannot run here; the end-to-end test
//   (import.test.mjs) uses a real ternd as the source, this one serves the shapes tern never
//   produces (tests/fixtures/leancloud/) and LeanCloud's failures.
// importTap — not a double: a counting pass-through in front of the real ternd the import
//   writes into (the target is always a real ternd).
import http from 'node:http';

const json = (res, code, body, headers = {}) => {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
};

const listen = (server) => new Promise((r) => server.listen(0, '127.0.0.1', () => r(server.address().port)));

/** data: {classes: {_Conversation: [], _Installation: [], _File: []}, extras: {cid: {member_infos,
 *  permanent_silenceds, blacklists, subscribers}}, messages: {cid: [items oldest first]},
 *  files: {objectId: Buffer}, pageCap: the most a permanent-silenceds / blacklists page holds
 *  (500)}; faults: {p429, p500} probabilities per request, pDrop the share of the other
 *  answers cut half way (every 1/pDrop-th). */
export async function fakeLeanCloud({ appId, masterKey, data, faults = {} }) {
  const stats = { requests: 0, r429: 0, r500: 0, drops: 0, byPath: {} };
  let dropSeq = 0;
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
    if (faults.endless?.test(u.pathname)) { // a source that never stops answering
      res.writeHead(200, { 'Content-Type': 'application/json' }); // chunked: no length to stop at
      const chunk = Buffer.alloc(1 << 20, 0x20);
      res.write('{"results": [');
      const more = () => { while (!res.destroyed && res.write(chunk)); if (!res.destroyed) res.once('drain', more); };
      res.on('close', () => res.removeAllListeners('drain'));
      return more();
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
    // every (1/pDrop)th answer that is not a 429 or 500 is cut: at that rate, and surely
    // some in a run (a random draw left a run of a hundred requests without any, now and then)
    const drop = !!faults.pDrop && ++dropSeq % Math.round(1 / faults.pDrop) === 0;
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
        const limit = Math.min(num(u, 'limit', 10), data.pageCap ?? 500); // a page may hold fewer than asked
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

/** A pass-through in front of a real ternd, the import's target: every request goes to
 *  ternd and ternd's answer comes back unchanged. It only counts what the importer sends
 *  to POST /1.2/import/records — lines per body, how often each record arrived (a message
 *  by cid + msg-id, others by type + objectId or cid), and the message records ternd
 *  answered 200 for — and how often each file was PUT to /1.2/import/files/{id}, which
 *  ternd's own reads cannot tell (a record or file sent twice reads the same as one sent
 *  once). delayFilesMs holds ternd's answers to file PUTs that long (what a slow upload
 *  looks like to the importer), so work that should wait for them shows if it does not;
 *  delayRecordsMs holds each records body that long before ternd gets it, so bodies the
 *  importer sends at once are in flight together: maxInFlight is the most that were, and
 *  conflicts lists each conversation two bodies in flight together both held such that
 *  the order ternd applies them in matters (the conversation's own records in either, or
 *  messages over overlapping times: ties, edits). */
export async function importTap(target, { delayFilesMs = 0, delayRecordsMs = 0 } = {}) {
  const t = { posts: 0, bodies: [], lineCounts: new Map(), acked: new Set(), filePuts: new Map(), maxInFlight: 0, conflicts: [] };
  const live = new Set(); // what each records body now in flight holds, by conversation
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const path = new URL(req.url, 'http://x').pathname;
      const records = req.method === 'POST' && path === '/1.2/import/records';
      const file = req.method === 'PUT' && path.startsWith('/1.2/import/files/') ? decodeURIComponent(path.slice(18)) : null;
      if (file) t.filePuts.set(file, (t.filePuts.get(file) || 0) + 1);
      const lines = records ? body.toString('utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
      let mine = null;
      if (records) {
        // per conversation: conversation-level records (conv), its messages' time span
        mine = new Map();
        for (const r of lines) {
          const cid = r.type === 'conversation' ? r.objectId : r.cid;
          if (!cid) continue;
          const m = mine.get(cid) || { conv: false, min: Infinity, max: -Infinity };
          if (r.type === 'message') m.min = Math.min(m.min, r.timestamp), m.max = Math.max(m.max, r.timestamp);
          else m.conv = true;
          mine.set(cid, m);
        }
        for (const other of live) {
          for (const [cid, m] of mine) {
            const o = other.get(cid);
            if (o && (o.conv || m.conv || (o.min <= m.max && m.min <= o.max))) t.conflicts.push(cid);
          }
        }
        live.add(mine);
        t.maxInFlight = Math.max(t.maxInFlight, live.size);
      }
      setTimeout(() => forward(body, records, file, lines, mine), records ? delayRecordsMs : 0);
    });
    const forward = (body, records, file, lines, mine) => {
      const up = http.request({ host: '127.0.0.1', port: target.port, method: req.method, path: req.url,
        headers: { ...req.headers, 'content-length': body.length } }, (ur) => {
        const out = [];
        ur.on('data', (c) => out.push(c));
        ur.on('end', () => {
          const answer = Buffer.concat(out);
          if (records) {
            t.posts++;
            t.bodies.push(lines.length);
            for (const r of lines) {
              const k = r.type === 'message' ? `m:${r.cid}:${r['msg-id']}` : `${r.type}:${r.objectId || r.cid}`;
              t.lineCounts.set(k, (t.lineCounts.get(k) || 0) + 1);
              if (ur.statusCode === 200 && r.type === 'message') t.acked.add(k);
            }
          }
          const h = { ...ur.headers, 'content-length': answer.length };
          delete h['transfer-encoding'];
          setTimeout(() => {
            if (mine) live.delete(mine);
            res.writeHead(ur.statusCode, h);
            res.end(answer);
          }, file ? delayFilesMs : 0);
        });
      });
      up.on('error', () => { if (mine) live.delete(mine); res.socket.destroy(); });
      up.end(body);
    };
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

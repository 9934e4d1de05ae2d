// Load with exact records for the cluster failure tests (tests/cluster/failover.test.mjs,
// restart.test.mjs): raw protocol clients (proto-client.mjs, lc.protobuf2.3 like the JS SDK)
// that send continuously and record every answer to every send and every frame they get,
// reconnect the way the SDKs do (/v1/route, `session open` with r:true and the session token
// `st`), resend what was never acked (same content and the same `dt`, the JS SDK's local
// message id: after a reconnect ternd answers a resend of a stored message with its ack,
// docs/protocol-map.md "dt"), and catch up by
// history (`logs`), so a test can check, by message id, that every acked message is stored
// once and reached every member.
import assert from 'node:assert/strict';
import { connect, login } from './proto-client.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value; fails with what() after timeoutMs. */
export async function until(fn, what, timeoutMs = 20000, stepMs = 50) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) assert.fail(`timed out after ${timeoutMs} ms: ${typeof what === 'function' ? what() : what}`);
    await sleep(stepMs);
  }
}

const master = (s) => ({ 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master` });

/** A metric's value on s (undefined when absent). */
export async function metric(s, name) {
  const res = await fetch(`${s.httpUrl}/metrics`, { headers: master(s) });
  const m = new RegExp(`^${name} (\\d+(?:\\.\\d+)?)$`, 'm').exec(await res.text());
  return m ? Number(m[1]) : undefined;
}

/** Every message the store holds for cid, oldest first, paged through REST history (as s answers). */
export async function storedHistory(s, cid) {
  const all = [];
  let q = '';
  for (;;) {
    const res = await fetch(`${s.httpUrl}/1.2/rtm/conversations/${cid}/messages?limit=1000${q}`, { headers: master(s) });
    assert.equal(res.status, 200, `history of ${cid}: ${res.status}`);
    const page = await res.json();
    all.push(...page);
    if (page.length < 1000) break;
    const last = page[page.length - 1];
    q = `&timestamp=${last.timestamp}&msgid=${encodeURIComponent(last['msg-id'])}`;
  }
  return all.reverse().map((m) => ({ id: m['msg-id'], ts: m.timestamp, from: m.from, data: m.data }));
}

/**
 * One recording client. `convs` are the conversation ids it sends into (round robin), at
 * most `window` sends in flight, one new send per `periodMs`.
 */
export class LoadClient {
  constructor(id, node) {
    this.id = id;
    this.node = node; // the node it is on now
    this.conns = []; // every ProtoClient it used, in order
    this.convs = [];
    this.k = 0; // next message number
    this.acked = new Map(); // text -> {id, t, cid, n: its place in the order of the acks}
    this.refused = []; // {text, code} answers that were errors (resent)
    this.inDoubt = new Set(); // texts whose answer was lost at least once (connection died)
    this.errors = [];
    this.resend = []; // {text, cid} to send again
    this.inflight = 0;
    this.sending = false;
    this.sent = 0;
    this.disconnects = 0;
    this.synced = []; // {cid, id, ts, from, data} got through logs
  }

  get conn() { return this.conns[this.conns.length - 1]; }

  async open(node = this.node) {
    const c = await connect(node);
    const extra = this.st ? { r: true, st: this.st } : {};
    const r = await login(c, this.id, extra);
    if (r.sessionMessage?.st) this.st = r.sessionMessage.st;
    this.node = node;
    this.conns.push(c);
    c.closed.then(() => { if (!this.closing) this.disconnects += 1; });
    return c;
  }

  /** Every `direct` push this client got live, on any of its connections, in arrival order. */
  live() {
    const out = [];
    for (const c of this.conns) {
      for (const x of c.received) {
        if (x.cmd === 'direct' && !x.i && x.directMessage) {
          const d = x.directMessage;
          out.push({ cid: d.cid, id: d.id, ts: d.timestamp, from: d.fromPeerId, data: d.msg });
        }
      }
    }
    return out;
  }

  sendOne(text, cid) {
    const c = this.conn;
    this.inflight += 1;
    this.sent += 1;
    // dt: the JS SDK's `dt: message.id`, the same on a resend of the same message object
    c.request({ cmd: 'direct', directMessage: { cid, msg: text, dt: `dt-${text}` } }, 15000).then((r) => {
      if (r.cmd === 'ack' && r.ackMessage?.uid && !r.ackMessage.code) {
        if (this.acked.has(text)) this.errors.push(`${text} acked twice`);
        // resent: an answer to it was lost before (a node died): the ack may name the copy
        // the dead node stored, whose live delivery may have died with it
        this.acked.set(text, { id: r.ackMessage.uid, t: r.ackMessage.t, cid, n: this.acked.size, resent: this.inDoubt.has(text) });
      } else {
        this.refused.push({ text, code: r.errorMessage?.code ?? r.ackMessage?.code,
          reason: r.errorMessage?.reason ?? r.ackMessage?.reason, detail: r.errorMessage?.detail });
        this.resend.push({ text, cid });
      }
    }, () => { // the connection went (or no answer): maybe stored, never acked
      this.inDoubt.add(text);
      this.resend.push({ text, cid });
    }).finally(() => { this.inflight -= 1; });
  }

  /** Starts the send loop: what was not acked first (same text), then new messages. */
  start({ window = 3, periodMs = 25 } = {}) {
    this.sending = true;
    this.loop = (async () => {
      while (this.sending) {
        if (this.paused || this.conn.isClosed) { await sleep(periodMs); continue; }
        if (this.inflight < window) {
          const again = this.resend.shift();
          if (again) this.sendOne(again.text, again.cid);
          else if (this.convs.length) {
            const cid = this.convs[this.k % this.convs.length];
            this.sendOne(`${this.id}#${this.k++}`, cid);
          }
        }
        await sleep(periodMs);
      }
    })();
  }

  /** Stops making new messages; resolves once every resend was answered with an ack. */
  async drain(timeoutMs = 30000) {
    this.sending = false;
    await this.loop;
    await until(async () => {
      if (this.inflight) return false;
      const again = this.resend.shift();
      if (again) { this.sendOne(again.text, again.cid); return false; }
      return true;
    }, () => `${this.id}: ${this.inflight} in flight, ${this.resend.length} to resend, last refusals ${JSON.stringify(this.refused.slice(-3))}`, timeoutMs);
  }

  /**
   * Catch-up as an app does after a reconnect: each conversation's history (`logs`, NEW
   * from the beginning, 100 a page), kept in `synced`; the SDKs' merge is by message id.
   */
  async sync() {
    for (const cid of this.allConvs) {
      let t = 1;
      let mid;
      for (;;) {
        const lm = { cid, l: 100, direction: 'NEW', t };
        if (mid) lm.mid = mid;
        // a worker's reader reconnects on its first use after its backoff (≤ 5 s,
        // docs/cluster.md): just after PostgreSQL came back a read may still fail with
        // 4311, and the app asks again, as here (for up to 10 s)
        let r;
        for (const t0 = Date.now(); ;) {
          r = await this.conn.request({ cmd: 'logs', logsMessage: lm }, 15000);
          if (r.cmd !== 'error' || r.errorMessage?.code !== 4311 || Date.now() - t0 > 10000) break;
          this.readRetries = (this.readRetries || 0) + 1;
          await sleep(100);
        }
        assert.equal(r.cmd, 'logs', `${this.id} logs ${cid}: ${JSON.stringify(r)}`);
        const logs = r.logsMessage?.logs || [];
        for (const x of logs) this.synced.push({ cid, id: x.msgId, ts: x.timestamp, from: x.from, data: x.data });
        if (logs.length < 100) break;
        t = logs[logs.length - 1].timestamp;
        mid = logs[logs.length - 1].msgId;
      }
    }
  }

  async close() {
    this.closing = true;
    this.sending = false;
    for (const c of this.conns) await c.close().catch(() => {});
  }
}

/** /v1/route as s answers it: the WebSocket URL it names. */
export async function route(s) {
  const res = await fetch(`${s.httpUrl}/v1/route?appId=${s.appId}`);
  assert.equal(res.status, 200);
  return (await res.json()).server;
}

/**
 * Reconnects c the way an SDK does after its node died: asks the router (`router`, a live
 * node) until it names a node that accepts the connection and the `st` login, retrying
 * every 200 ms. nodes: every node, to map the URL back. Resolves with the time it took.
 */
export async function reconnect(c, router, nodes, timeoutMs = 15000) {
  const t0 = Date.now();
  let last = '';
  for (;;) {
    const url = await route(router);
    const node = nodes.find((s) => s.wsUrl === url || url === `ws://127.0.0.1:${s.port}/`);
    if (node) {
      try {
        await c.open(node);
        return { ms: Date.now() - t0, node };
      } catch (e) {
        last = `${url}: ${e.message}`;
      }
    } else last = `route named ${url}, no node of ours`;
    if (Date.now() - t0 > timeoutMs) assert.fail(`${c.id} could not reconnect within ${timeoutMs} ms (last: ${last})`);
    await sleep(200);
  }
}

/** Creates a conversation started by clients[0] with the others as members; its cid. */
export async function makeConv(clients) {
  const [owner, ...rest] = clients;
  const r = await owner.conn.request({ cmd: 'conv', op: 'start', convMessage: { m: rest.map((c) => c.id) } });
  assert.equal(r.op, 'started', JSON.stringify(r));
  const cid = r.convMessage.cid;
  for (const c of clients) {
    c.convs.push(cid);
    (c.allConvs ||= []).push(cid);
  }
  return { cid, members: clients.map((c) => c.id) };
}

/**
 * The checks every failure test makes once the senders are drained and every client synced:
 * the store (REST history from `reader`) holds every acked message exactly once and no id
 * twice; nothing was delivered that is not stored; no client got the same id twice live;
 * every acked message reached every other member live or by its catch-up; texts stored
 * twice only where an attempt was refused (a commit whose answer was lost is reported
 * failed, and the resend on the same session is not compared: docs/cluster.md) — and,
 * unless strictResends, where one was in doubt (its answer lost with its node). With
 * strictResends a text whose answer was lost and that was resent after the reconnect is
 * stored once (the `dt` dedupe). Where liveRequired(recipient, sender, ack) holds, the
 * acked message must have come live (not only by the catch-up). Returns counts for the
 * test's diagnostics.
 */
export async function checkAll({ reader, convs, clients, liveRequired = () => false, strictResends = false }) {
  const byId = new Map(clients.map((c) => [c.id, c]));
  const stats = { acked: 0, stored: 0, live: 0, viaSync: 0, doubleStoredInDoubt: 0, inDoubt: 0 };
  const storedIds = new Set();
  for (const conv of convs) {
    const h = await storedHistory(reader, conv.cid);
    const ids = h.map((m) => m.id);
    assert.equal(new Set(ids).size, ids.length, `${conv.cid}: a message id stored twice`);
    for (const id of ids) storedIds.add(id);
    stats.stored += ids.length;
    const texts = new Map();
    for (const m of h) texts.set(m.data, (texts.get(m.data) || 0) + 1);
    for (const [text, n] of texts) {
      if (n === 1) continue;
      const sender = byId.get(text.split('#')[0]);
      assert.ok((!strictResends && sender?.inDoubt.has(text)) || sender?.refused.some((r) => r.text === text),
        strictResends ? `${text} stored ${n} times in ${conv.cid}${sender?.inDoubt.has(text) ? ': resent after its answer was lost, and not deduped on its dt' : ', and its sender was never refused'}`
          : `${text} stored ${n} times in ${conv.cid}, and its sender never lost an answer to it nor was refused`);
      stats.doubleStoredInDoubt += 1;
    }
    conv.history = h;
  }
  for (const c of clients) {
    assert.deepEqual(c.errors, [], `${c.id}`);
    stats.inDoubt += c.inDoubt.size;
    const live = c.live();
    stats.live += live.length;
    const liveIds = live.map((m) => m.id);
    const dup = liveIds.filter((id, i) => liveIds.indexOf(id) !== i);
    assert.deepEqual(dup, [], `${c.id} got the same message live twice`);
    for (const m of live) assert.ok(storedIds.has(m.id), `${c.id} got ${m.id} (${m.data}) live, and the store does not hold it`);
    const seen = new Set([...liveIds, ...c.synced.map((m) => m.id)]); // the SDKs' merge: by id
    const liveSet = new Set(liveIds);
    for (const conv of convs) {
      if (!conv.members.includes(c.id)) continue;
      for (const other of conv.members) {
        if (other === c.id) continue;
        for (const [text, a] of byId.get(other).acked) {
          if (a.cid !== conv.cid) continue;
          assert.ok(seen.has(a.id), `${c.id} never got ${text} (${a.id}) from ${other}, acked on ${conv.cid}`);
          if (!liveSet.has(a.id)) stats.viaSync += 1;
          if (liveRequired(c, byId.get(other), a)) {
            assert.ok(liveSet.has(a.id), `${c.id} stayed connected and never got ${text} (${a.id}) from ${other} live`);
          }
        }
      }
    }
  }
  for (const c of clients) {
    for (const [text, a] of c.acked) {
      stats.acked += 1;
      assert.ok(storedIds.has(a.id), `${text}, acked to ${c.id} as ${a.id}, is not stored`);
      const conv = convs.find((x) => x.cid === a.cid);
      assert.equal(conv.history.filter((m) => m.id === a.id).length, 1);
      const copy = conv.history.find((m) => m.id === a.id);
      assert.equal(copy.data, text, `${a.id} stored with other content`);
    }
  }
  return stats;
}

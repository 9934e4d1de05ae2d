// Helpers for the issue #3 JS SDK suites (tests/interop/conv-*.test.mjs,
// advanced-*.test.mjs): an event recorder that keeps, per IMClient, every conversation and
// message event in the order the SDK emitted it (name, conversation and the payload
// reduced to comparable fields), and a check that a member who was offline finds nothing
// queued for a conversation when it logs in (asserted on the wire, through the proxy, and
// on the SDK's events).
import assert from 'node:assert/strict';
import { freshSdk } from './sdk.mjs';
import { startProxy } from './interop-proxy.mjs';

const CONV_EVENTS = {
  invited: (p) => ({ by: p.invitedBy }),
  kicked: (p) => ({ by: p.kickedBy }),
  membersjoined: (p) => ({ by: p.invitedBy, members: [...p.members].sort() }),
  membersleft: (p) => ({ by: p.kickedBy, members: [...p.members].sort() }),
  memberinfoupdated: (p) => ({ by: p.updatedBy, member: p.member, role: p.memberInfo && p.memberInfo.role }),
  blocked: (p) => ({ by: p.blockedBy }),
  unblocked: (p) => ({ by: p.unblockedBy }),
  membersblocked: (p) => ({ by: p.blockedBy, members: [...p.members].sort() }),
  membersunblocked: (p) => ({ by: p.unblockedBy, members: [...p.members].sort() }),
  muted: (p) => ({ by: p.mutedBy }),
  unmuted: (p) => ({ by: p.unmutedBy }),
  membersmuted: (p) => ({ by: p.mutedBy, members: [...p.members].sort() }),
  membersunmuted: (p) => ({ by: p.unmutedBy, members: [...p.members].sort() }),
  conversationinfoupdated: (p) => ({ by: p.updatedBy, attributes: p.attributes }),
};
const MESSAGE_EVENTS = ['message', 'messageupdate', 'messagerecall'];

/**
 * Records the IM events of `client`. `events` holds {e, cid, ...fields} in emission order;
 * until(pred) resolves with the first recorded event matching pred (past or future).
 */
export function recordEvents(client) {
  const events = [];
  const waiters = [];
  const push = (ev) => {
    events.push(ev);
    for (const w of [...waiters]) {
      if (w.pred(ev)) {
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(ev);
      }
    }
  };
  const handlers = [];
  for (const [name, map] of Object.entries(CONV_EVENTS)) {
    const h = (payload, conv) => push({ e: name, cid: conv && conv.id, ...map(payload) });
    client.on(name, h);
    handlers.push([name, h]);
  }
  for (const name of MESSAGE_EVENTS) {
    const h = (m, conv) => push({ e: name, cid: conv && conv.id, id: m.id, from: m.from, type: m.type, text: m.text, message: m });
    client.on(name, h);
    handlers.push([name, h]);
  }
  return {
    events,
    /** events about cid, optionally of some names only, without the message object */
    of(cid, names) {
      return events.filter((x) => x.cid === cid && (!names || names.includes(x.e))).map(({ message, ...rest }) => rest);
    },
    until(pred, timeoutMs = 8000) {
      const hit = events.find(pred);
      if (hit) return Promise.resolve(hit);
      return new Promise((resolve, reject) => {
        const w = { pred, resolve };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`${client.id}: event not seen within ${timeoutMs} ms; got ${JSON.stringify(events.map(({ message, ...r }) => r))}`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
    stop() {
      for (const [n, h] of handlers) client.removeListener(n, h);
    },
  };
}

/** Waits until recorder has `n` events about cid (of the given names). */
export async function eventsUntil(rec, cid, n, names, timeoutMs = 8000) {
  const end = Date.now() + timeoutMs;
  while (rec.of(cid, names).length < n) {
    if (Date.now() > end) throw new Error(`only ${rec.of(cid, names).length} of ${n} events for ${cid}: ${JSON.stringify(rec.of(cid, names))}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return rec.of(cid, names);
}

const decodeCmd = (() => {
  let d;
  return (data) => {
    if (!d) {
      const { Protocols } = freshSdk(5);
      d = (x) => Protocols.GenericCommand.decode(x);
    }
    return d(data);
  };
})();

const names = (() => {
  let m;
  return () => {
    if (!m) {
      const { Protocols } = freshSdk(5);
      m = { cmd: Protocols.CommandType, op: Protocols.OpType };
    }
    return m;
  };
})();

const keyOf = (enumObj, v) => Object.keys(enumObj).find((k) => enumObj[k] === v) ?? String(v);

/** The commands the server pushed (no i) through proxy log, as `cmd/op` with the cid. */
export function wirePushes(log, conn) {
  const { cmd, op } = names();
  return log
    .filter((e) => e.dir === 'S->C' && e.cmd && !e.cmd.i && (conn === undefined || e.conn === conn))
    .map((e) => {
      const c = e.cmd;
      const cid = c.convMessage?.cid ?? c.directMessage?.cid ?? c.blacklistMessage?.srcCid
        ?? c.patchMessage?.patches?.[0]?.cid ?? null;
      return { name: `${keyOf(cmd, c.cmd)}/${keyOf(op, c.op)}`, cid, peerId: c.peerId, cmd: c };
    });
}

const proxies = new Set();

/** A proxy whose frames are decoded; closed by closeProxies() (call it after closeAll). */
export async function decodingProxy(server) {
  const proxy = await startProxy(server.port, { decode: decodeCmd });
  proxies.add(proxy);
  return proxy;
}

export async function closeProxies() {
  const all = [...proxies];
  proxies.clear();
  await Promise.all(all.map((p) => p.close()));
}

/**
 * Logs `id` in through a fresh proxy (so its frames can be inspected), waits for a round
 * trip after the login, and asserts that neither the wire nor the SDK brought anything about
 * `cid`: nothing was queued for this member while it was offline. Returns {client, conv}.
 */
export async function assertOfflineMemberGetsNothing(env, server, id, cid, opts = {}) {
  const proxy = await decodingProxy(server);
  const via = { ...server, wsUrl: proxy.wsUrl, httpUrl: proxy.httpUrl };
  const client = await env.login(id, { target: via, ...opts });
  const rec = recordEvents(client);
  // round trips: whatever the server queued at login is ahead of these replies on the socket
  const found = await client.getQuery().equalTo('objectId', cid).find();
  await client.getQuery().equalTo('objectId', cid).limit(2).find();
  const about = wirePushes(proxy.log).filter((p) => p.cid === cid);
  assert.deepEqual(about.map((p) => p.name), [], `${id}: nothing about ${cid} pushed at login`);
  assert.deepEqual(rec.of(cid), [], `${id}: no SDK event about ${cid}`);
  rec.stop();
  return { client, conv: found[0], proxy };
}

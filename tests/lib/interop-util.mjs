// Shared helpers for the official-JS-SDK interoperability suite (tests/interop/).
//
// * waitFor / collect: await SDK events instead of sleeping.
// * Clients: a per-test registry of Realtime instances and IMClients that are all closed in
//   teardown, so no test leaks a socket or a reconnect timer.
// * messageClasses: the typed message classes (-2 … -6 and a custom positive type) built
//   with the SDK's own messageType/messageField decorators.
// * MODES: the transport modes every suite is parametrised over; modeSuite: the hooks of
//   one such suite (its ternd, a Clients per test). In cluster mode (TERN_TEST_CLUSTER,
//   cluster-mode.mjs) the suite's server is a cluster and a test's clients go to its nodes
//   in turn.
import assert from 'node:assert/strict';
import { before, after, beforeEach, afterEach } from 'node:test';
import { realtime, freshSdk } from './sdk.mjs';
import { startInteropServer } from './cluster-mode.mjs';

export const MODES = [
  { name: 'binary', noBinary: false },
  { name: 'base64', noBinary: true },
];

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The hooks of a per-mode suite, for use inside its describe(): a ternd for the suite, a
// fresh Clients per test (opts.clients: more Clients defaults, e.g. {major: 4}) closed
// after it, then opts.cleanup(). Tests read suite.server and suite.env when they run.
export function modeSuite(mode, { clients = {}, cleanup } = {}) {
  const suite = { server: null, env: null };
  before(async () => { suite.server = await startInteropServer(); });
  after(async () => { if (suite.server) await suite.server.stop(); });
  beforeEach(() => { suite.env = new Clients(suite.server, { ...clients, noBinary: mode.noBinary }); });
  afterEach(async () => {
    await suite.env.closeAll();
    if (cleanup) await cleanup();
  });
  return suite;
}

// Resolves with the event's argument list the first time `event` fires on `emitter` with
// arguments accepted by `predicate`; rejects after timeoutMs.
export function waitFor(emitter, event, predicate = () => true, timeoutMs = 8000) {
  return new Promise((resolve, reject) => {
    const onEvent = (...args) => {
      let ok;
      try {
        ok = predicate(...args);
      } catch (e) {
        cleanup();
        reject(e);
        return;
      }
      if (ok) {
        cleanup();
        resolve(args);
      }
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      emitter.removeListener(event, onEvent);
    };
    emitter.on(event, onEvent);
  });
}

// Records every emission of `event` (argument lists) until stop(). until(n) waits for the
// n-th emission (events that already arrived count).
export function collect(emitter, event, map = (...a) => a) {
  const items = [];
  const waiters = [];
  const onEvent = (...args) => {
    items.push(map(...args));
    for (const w of [...waiters]) {
      if (items.length >= w.n) {
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve(items.slice());
      }
    }
  };
  emitter.on(event, onEvent);
  return {
    items,
    stop: () => emitter.removeListener(event, onEvent),
    until(n, timeoutMs = 8000) {
      if (items.length >= n) return Promise.resolve(items.slice());
      return new Promise((resolve, reject) => {
        const w = { n, resolve };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`timed out after ${timeoutMs} ms: got ${items.length} of ${n} '${event}' events`));
        }, timeoutMs);
        waiters.push(w);
      });
    },
  };
}

// Rejects with a clear message if `promise` takes longer than ms.
export function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]);
}

// Every Realtime and IMClient a test creates, closed together in teardown.
export class Clients {
  constructor(server, defaults = {}) {
    this.server = server;
    this.defaults = defaults;
    this.realtimes = [];
    this.clients = [];
    this.turn = 0; // cluster mode: the node the next Realtime goes to
  }

  // A fresh Realtime (own SDK module instance, own WebSocket). opts.target replaces the
  // server it points at (e.g. a proxy: {...server, wsUrl, httpUrl}); opts.major 4 or 5,
  // opts.noBinary, opts.pushOfflineMessages (v4) override the defaults; opts.classes(sdk)
  // replaces messageClasses (e.g. the real typed-messages plugin's). A cluster target
  // (cluster-mode.mjs) stands for its nodes: each Realtime goes to the next one in turn, so
  // a test's first client is on node 1, its second on node 2, …
  realtime(opts = {}) {
    let target = opts.target || this.server;
    if (target.nodes) target = target.nodes[this.turn++ % target.nodes.length];
    const o = { ...this.defaults, ...opts };
    const { sdk, realtime: rt } = (o.major ?? 5) === 4 ? realtimeV4(target, o) : realtime(target, o);
    const entry = { sdk, rt, major: opts.major ?? this.defaults.major ?? 5 };
    entry.classes = (o.classes ?? messageClasses)(sdk);
    rt.register(Object.values(entry.classes));
    this.realtimes.push(entry);
    return entry;
  }

  // Logs `id` in on a new Realtime; returns the IMClient with .sdk / .rt attached.
  async login(id, opts = {}) {
    const entry = this.realtime(opts);
    return this.loginOn(entry, id, opts.clientOptions);
  }

  // Logs `id` in on an existing Realtime entry (several clients on one socket).
  async loginOn(entry, id, clientOptions) {
    const client = await entry.rt.createIMClient(id, clientOptions);
    this.clients.push(client);
    client.ternServer = this.server; // cluster mode: createConversationSeen's barrier
    client.sdk = entry.sdk;
    client.rt = entry.rt;
    client.classes = entry.classes;
    return client;
  }

  async closeAll() {
    const clients = this.clients.splice(0);
    await Promise.allSettled(clients.map((c) => within(c.close(), 5000, `closing ${c.id}`)));
    for (const { rt } of this.realtimes.splice(0)) {
      // Internal, but unavoidable for cleanup: a Realtime whose clients failed to log in (or
      // that is stuck reconnecting) keeps its socket and timers until _close().
      try {
        rt._close();
      } catch {
        /* already closed */
      }
    }
  }
}

// 4.3.1 with `server` set to the local host:port. lib/sdk.mjs leaves it out, and then
// v4's REST calls (the notification sync after every reconnect) go to
// https://app-router.leancloud.cn with a 20 s timeout: an outbound request from the test
// machine, and a timer that keeps the process alive long after the test. With `server`
// they go to https://127.0.0.1:PORT (v4 forces https) and fail at once against ternd's
// plain HTTP, which is what an app pointed at tern with v4 gets too (interop.md Q2).
function realtimeV4(target, { noBinary = false, pushOfflineMessages, plugins } = {}) {
  const sdk = freshSdk(4);
  const opts = {
    appId: target.appId,
    appKey: target.appKey,
    RTMServers: [target.wsUrl],
    server: new URL(target.httpUrl).host,
    noBinary,
  };
  if (plugins) opts.plugins = plugins;
  if (pushOfflineMessages) opts.pushOfflineMessages = true;
  return { sdk, realtime: new sdk.Realtime(opts) };
}

// Typed message classes equivalent to leancloud-realtime-plugin-typed-messages, without
// its need for saved AV.File objects (tests/interop/files.test.mjs uses the plugin itself
// with leancloud-storage). They carry the same payload fields: `_lcfile` {url, objId, metaData} for -2/-3/-4/-6, `_lcloc` for -5.
// Built with the SDK's public messageType/messageField decorators and registered per
// Realtime, which is exactly how an app defines its own types.
export const CUSTOM_TYPE = 1001;

export function messageClasses(sdk) {
  const make = (name, type, fields) => {
    const C = {
      [name]: class extends sdk.TypedMessage {
        constructor(payload = {}) {
          super();
          Object.assign(this, payload);
        }
      },
    }[name];
    sdk.messageType(type)(C);
    if (fields) sdk.messageField(fields)(C);
    return C;
  };
  return {
    ImageMessage: make('ImageMessage', -2, ['_lcfile']),
    AudioMessage: make('AudioMessage', -3, ['_lcfile']),
    VideoMessage: make('VideoMessage', -4, ['_lcfile']),
    LocationMessage: make('LocationMessage', -5, ['_lcloc']),
    FileMessage: make('FileMessage', -6, ['_lcfile']),
    PokeMessage: make('PokeMessage', CUSTOM_TYPE, ['pokes', 'target']),
  };
}

// creator.createConversation(options), resolved once every client in `others` has been
// told (INVITED) and so has the conversation in its cache. Messages pushed for a
// conversation the SDK has not cached yet make it look the conversation up first, and
// those lookups can finish out of order: waiting here keeps delivery order observable.
// (In cluster mode it no longer waits for every node to see `others` online first: a
// login's answer now leaves once the other nodes have it queued, docs/cluster.md, "The
// window, closed".)
export async function createConversationSeen(creator, options, others) {
  const seen = others.map((c) => waitFor(c, 'invited', (_, conv) => conv && conv.members.includes(c.id)));
  const conv = await creator.createConversation(options);
  const results = await Promise.all(seen);
  results.forEach(([, c]) => assert.equal(c.id, conv.id, 'INVITED for the new conversation'));
  return conv;
}

// Resolves when `client` has reconnected and re-opened its session (Realtime 'disconnect'
// and 'reconnect', then IMClient 'reconnect'); rejects on IMClient 'reconnecterror' or
// after timeoutMs (15 s). `order` records the Realtime's connection events as they came.
export function reconnection(client, timeoutMs = 15000) {
  const order = [];
  let finish;
  const done = new Promise((resolve, reject) => {
    let clientBack = false;
    const check = () => {
      if (clientBack && order.includes('disconnect') && order.includes('reconnect')) finish(null);
    };
    const onDisconnect = () => order.push('disconnect');
    const onReconnect = () => {
      order.push('reconnect');
      check();
    };
    const onClientReconnect = () => {
      clientBack = true;
      check();
    };
    const onError = (err) => finish(new Error(`${client.id}: IMClient reconnecterror: ${err && err.message}`));
    const timer = setTimeout(() => finish(new Error(`${client.id}: no reconnect within ${timeoutMs / 1000} s (saw ${order})`)), timeoutMs);
    client.rt.on('disconnect', onDisconnect);
    client.rt.on('reconnect', onReconnect);
    client.on('reconnect', onClientReconnect);
    client.on('reconnecterror', onError);
    finish = (err) => {
      clearTimeout(timer);
      client.rt.removeListener('disconnect', onDisconnect);
      client.rt.removeListener('reconnect', onReconnect);
      client.removeListener('reconnect', onClientReconnect);
      client.removeListener('reconnecterror', onError);
      if (err) reject(err);
      else resolve();
    };
  });
  return { order, done };
}

// A message's content as it travels (the SDK's own serialisation), for comparing sent and
// received messages field by field.
export const payloadOf = (m) => JSON.parse(JSON.stringify(m.getPayload()));

let seq = 0;
// Client ids unique per test run, so that tests sharing one server never see each other's
// conversations, unread counts or online state.
export function uid(prefix) {
  seq += 1;
  return `${prefix}-${process.pid.toString(36)}${seq.toString(36)}`;
}

// Cluster mode: resolves once `peer`'s node delivers to `device`, a session that has just
// logged in on another node for a client already online there (a second device). Its
// login's answer waits for the other nodes to have it queued, but a send that finds one of
// the recipient's sessions does not look again (docs/cluster.md, "What is left"), so peer's
// node may push to the first device only. An echo: peer sends a transient message in conv
// (not stored, never unread) until device gets one; a push peer's node fans out to device
// after that finds it. Returns at once on one node.
export async function deviceSeen(peer, conv, device, timeoutMs = 8000) {
  if (!peer.ternServer?.nodes) return;
  const tag = uid('echo');
  let seen = false;
  const got = waitFor(device, 'message', (m) => typeof m.text === 'string' && m.text.startsWith(tag), timeoutMs);
  got.then(() => { seen = true; }, () => {});
  for (let k = 0; !seen; k += 1) {
    await conv.send(new peer.sdk.TextMessage(`${tag} ${k}`), { transient: true });
    await Promise.race([got, sleep(200)]);
  }
  await got;
}

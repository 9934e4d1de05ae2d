// Official JS SDK 5.0.0-rc.8 against ternd: reconnecting (issue #2 point 11), once per
// transport. A TCP proxy (tests/lib/interop-proxy.mjs) sits between the SDK and ternd so a
// test can kill the connection without a WebSocket close frame, make the server
// unreachable for a while, or move it to a restarted ternd on another port. The proxy also
// decodes the frames it forwards, so the tests check what the SDK sent on reconnect: a
// session/open with r:true and the session token (st) it was given before.
import { describe, it, before, after, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { startInteropServer, clusterSkip } from '../lib/cluster-mode.mjs';
import { freshSdk } from '../lib/sdk.mjs';
import { startProxy, sessionOpens } from '../lib/interop-proxy.mjs';
import { MODES, Clients, waitFor, uid, createConversationSeen, reconnection } from '../lib/interop-util.mjs';

const decode = (() => {
  const { Protocols } = freshSdk(5);
  return (data) => Protocols.GenericCommand.decode(data);
})();

// Asserts the log holds, for `peerId`, a first login and then (after it) exactly one
// reconnect login with r:true and the token the first login was given, which the server
// accepted.
function assertResumed(log, peerId) {
  const opens = sessionOpens(log, peerId);
  assert.ok(opens.length >= 2, `${peerId}: expected a login and a reconnect login, saw ${opens.length}`);
  const [first, ...later] = opens;
  assert.equal(first.r, false);
  assert.equal(first.reply, 'opened');
  assert.ok(first.issued, 'the first login was given a session token');
  assert.equal(later.length, 1, `${peerId}: one reconnect login, saw ${JSON.stringify(later)}`);
  const [again] = later;
  assert.notEqual(again.conn, first.conn, 'the reconnect login came on a new connection');
  assert.equal(again.r, true, 'reconnect login has r:true');
  assert.equal(again.st, first.issued, 'reconnect login carries the old session token');
  assert.equal(again.reply, 'opened', `reconnect login accepted (got ${again.reply} ${again.code ?? ''})`);
}

async function exchange(tom, tconv, jerry, jconv, tag) {
  const toJerry = waitFor(jerry, 'message', (m) => m.text === `tom ${tag}`);
  const sent = await tconv.send(new tom.sdk.TextMessage(`tom ${tag}`));
  const [m] = await toJerry;
  assert.equal(m.id, sent.id);
  const toTom = waitFor(tom, 'message', (x) => x.text === `jerry ${tag}`);
  const reply = await jconv.send(new jerry.sdk.TextMessage(`jerry ${tag}`));
  const [r] = await toTom;
  assert.equal(r.id, reply.id);
  return [sent, reply];
}

for (const mode of MODES) {
  describe(`reconnect [${mode.name}]`, () => {
    let server;
    let proxy;
    let env;
    before(async () => {
      server = await startInteropServer();
    });
    after(async () => {
      if (server) await server.stop();
    });
    beforeEach(async () => {
      env = new Clients(server, { noBinary: mode.noBinary });
      proxy = await startProxy(server.port, { decode });
    });
    afterEach(async () => {
      await env.closeAll();
      await proxy.close();
    });

    it('TCP drop: disconnect then reconnect, session resumed with r:true + st, messages flow again', async () => {
      const via = { ...server, wsUrl: proxy.wsUrl, httpUrl: proxy.httpUrl };
      const tom = await env.login(uid('tom'), { target: via });
      const jerry = await env.login(uid('jerry'), { target: via });
      const tconv = await createConversationSeen(tom, { members: [jerry.id], name: 'drop' }, [jerry]);
      const jconv = await jerry.getConversation(tconv.id);
      await exchange(tom, tconv, jerry, jconv, 'before');

      const rt = reconnection(tom);
      const rj = reconnection(jerry);
      proxy.dropAll();
      await Promise.all([rt.done, rj.done]);
      assert.deepEqual(rt.order, ['disconnect', 'reconnect']);
      assert.deepEqual(rj.order, ['disconnect', 'reconnect']);
      assertResumed(proxy.log, tom.id);
      assertResumed(proxy.log, jerry.id);
      const [again] = await exchange(tom, tconv, jerry, jconv, 'after');
      // every frame both ways, on both connections, decoded, in the negotiated format
      const want = mode.noBinary ? 1 : 2;
      assert.deepEqual(proxy.log.filter((e) => e.error), [], 'undecodable frames');
      const formats = new Set(proxy.log.map((e) => `${e.dir} ${e.opcode}`));
      assert.deepEqual([...formats].sort(), [`C->S ${want}`, `S->C ${want}`]);
      const history = await jconv.queryMessages({ limit: 10 });
      assert.deepEqual(history.map((m) => m.text), ['tom before', 'jerry before', 'tom after', 'jerry after']);
      assert.equal(history[2].id, again.id);
    });

    it('messages sent while a client was cut off arrive as unread after it reconnects', async () => {
      const via = { ...server, wsUrl: proxy.wsUrl, httpUrl: proxy.httpUrl };
      const tom = await env.login(uid('tom')); // direct, stays online
      const jerry = await env.login(uid('jerry'), { target: via });
      const tconv = await createConversationSeen(tom, { members: [jerry.id], name: 'outage' }, [jerry]);
      const jconv = await jerry.getConversation(tconv.id);
      const [first, firstReply] = await exchange(tom, tconv, jerry, jconv, 'before');

      const rj = reconnection(jerry);
      const down = waitFor(jerry.rt, 'disconnect');
      proxy.refuse(true);
      proxy.dropAll();
      await down;
      const whileAway = [];
      whileAway.push(await tconv.send(new tom.sdk.TextMessage('while away 1')));
      whileAway.push(await tconv.send(new tom.sdk.TextMessage('while away 2')));
      const unread = waitFor(jerry, 'unreadmessagescountupdate', (cs) => cs.some((c) => c.id === tconv.id), 15000);
      proxy.refuse(false);
      await rj.done;
      const [convs] = await unread;
      const c = convs.find((x) => x.id === tconv.id);
      // never read: the message before the outage and the two during it
      assert.equal(c.unreadMessagesCount, 3);
      assert.equal(c.lastMessage.id, whileAway[1].id);
      assert.equal(c.lastMessage.text, 'while away 2');
      const history = await jconv.queryMessages({ limit: 10 });
      assert.deepEqual(history.map((m) => m.id), [first.id, firstReply.id, ...whileAway.map((m) => m.id)]);
      assertResumed(proxy.log, jerry.id);
      await exchange(tom, tconv, jerry, jconv, 'after');
    });
  });

  // single-node by nature: one server stopped and started again on its data directory
  describe(`server restart on the same data directory [${mode.name}]`, clusterSkip('a server restarted on the same data directory'), () => {
    let dataDir;
    let servers;
    let proxy;
    let env;
    beforeEach(() => {
      dataDir = mkdtempSync(join(tmpdir(), 'tern-interop-restart-'));
      servers = [];
      env = undefined;
      proxy = undefined;
    });
    afterEach(async () => {
      try {
        if (env) await env.closeAll();
        if (proxy) await proxy.close();
        for (const s of servers) await s.stop();
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    });

    async function restartScenario({ masterKey2 }) {
      const first = await startServer({ dataDir });
      servers.push(first);
      proxy = await startProxy(first.port, { decode });
      const via = { ...first, wsUrl: proxy.wsUrl, httpUrl: proxy.httpUrl };
      env = new Clients(first, { noBinary: mode.noBinary });
      const tom = await env.login(uid('tom'), { target: via });
      const jerry = await env.login(uid('jerry'), { target: via });
      const tconv = await createConversationSeen(tom, { members: [jerry.id], name: 'restart' }, [jerry]);
      const jconv = await jerry.getConversation(tconv.id);
      const before = await exchange(tom, tconv, jerry, jconv, 'before');

      // 30 s, not 15: the clock runs through the stop (the old server drains up to
      // drain_timeout, 3 s, refusing the SDK's reconnects meanwhile) and the new server's
      // start, while the SDK's retry delay doubles (1, 2, 4, 8 s …): on a loaded machine one
      // single-node run in four passed 15 s
      const rt = reconnection(tom, 30000);
      const rj = reconnection(jerry, 30000);
      const gone = Promise.all([waitFor(tom.rt, 'disconnect'), waitFor(jerry.rt, 'disconnect')]);
      await first.stop({ keepData: true });
      servers.splice(servers.indexOf(first), 1);
      await gone;
      const second = await startServer({ dataDir, env: masterKey2 ? { TERN_MASTER_KEY: masterKey2 } : {} });
      servers.push(second);
      proxy.setTarget(second.port);
      await Promise.all([rt.done, rj.done]);
      assert.deepEqual(rt.order, ['disconnect', 'reconnect']);
      return { tom, jerry, tconv, jconv, before, via };
    }

    it('clients resume with their old session token; history and conversations survive', async () => {
      const { tom, jerry, tconv, jconv, before, via } = await restartScenario({});
      assertResumed(proxy.log, tom.id);
      assertResumed(proxy.log, jerry.id);
      const history = await jconv.queryMessages({ limit: 10 });
      assert.deepEqual(history.map((m) => m.id), before.map((m) => m.id));
      await exchange(tom, tconv, jerry, jconv, 'after');
      const all = await tconv.queryMessages({ limit: 10 });
      assert.deepEqual(all.map((m) => m.text), ['tom before', 'jerry before', 'tom after', 'jerry after']);
      // the conversation itself was reloaded from disk
      const fresh = await env.login(uid('spike'), { target: via });
      const seen = await fresh.getConversation(tconv.id);
      assert.equal(seen.name, 'restart');
      assert.deepEqual([...seen.members].sort(), [tom.id, jerry.id].sort());
    });

    it('a token the restarted server cannot verify is refused (4112) and the SDK logs in afresh', async () => {
      const { tom, jerry, tconv, jconv } = await restartScenario({ masterKey2: 'anotherMasterKey00000000' });
      for (const id of [tom.id, jerry.id]) {
        const opens = sessionOpens(proxy.log, id);
        const [first, ...later] = opens;
        assert.equal(first.reply, 'opened');
        // r:true + old st → refused with SESSION_TOKEN_EXPIRED, then r:true without st → opened
        assert.equal(later.length, 2, `${id}: ${JSON.stringify(later)}`);
        assert.equal(later[0].r, true);
        assert.equal(later[0].st, first.issued);
        assert.ok(['error', 'closed'].includes(later[0].reply), `old token refused, got ${later[0].reply}`);
        assert.equal(later[0].code, 4112);
        assert.equal(later[1].r, true);
        assert.equal(later[1].st, null);
        assert.equal(later[1].reply, 'opened');
        assert.ok(later[1].issued && later[1].issued !== first.issued, 'a new token');
      }
      await exchange(tom, tconv, jerry, jconv, 'after');
    });
  });
}

// A login's unread counts are exact against the live pushes on one node (docs/cluster.md, "A
// login's counts"; issue #14): messages sent into a conversation by a client on another
// connection (2 workers) while the recipient logs in reach the login once each — counted
// (the counts' last message and every one before it) or pushed live after the counts —
// never both (a push of a message the counts already include is not sent), never neither.
// Before, the counts were read after the session was registered, so a message committed
// just before the read whose fan-out found the new session was counted and pushed.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer } from '../lib/server.mjs';
import { closeAll, connect, login, session, startConv, uid } from '../lib/proto-client.mjs';
import { raceLogin } from '../lib/unread-exact.mjs';

const ROUNDS = Number(process.env.UNREAD_ROUNDS || 40);
const N = 40;

describe('one node: a login racing sends is told each message once', () => {
  let server;
  before(async () => { server = await startServer({ env: { TERN_WORKERS: '2' } }); });
  after(async () => {
    await closeAll(server);
    if (server) await server.stop();
  });

  test(`sends from another connection spread over the login, counted or live, never both (${ROUNDS} rounds of ${N})`, async () => {
    let dups = 0, missing = 0, bad = [];
    let counted = 0, live = 0;
    for (let k = 0; k < ROUNDS; k++) {
      const sender = await session(server, uid('s'));
      const xid = uid('x');
      const { cid } = await startConv(sender, [xid]);
      const r = await raceLogin({
        sender, cid, n: N, before: 4 + (k % 8) * 4,
        loginX: async () => { const x = await connect(server); await login(x, xid); return x; },
      });
      assert.equal(r.extra, 0);
      assert.ok(r.order, `round ${k}: session/opened, then the counts, then the live pushes`);
      dups += r.dup;
      missing += r.missing;
      counted += r.counted;
      live += r.live;
      if (r.dup || r.missing || r.counted + r.live !== N || r.counted !== r.countedKeys) bad.push({ k, counted: r.counted, upToLast: r.countedKeys, live: r.live, dup: r.dup, missing: r.missing });
      await r.x.close();
      await sender.close();
    }
    assert.deepEqual(bad, [], `rounds where counted + live != ${N} (dup ${dups}, missing ${missing})`);
    // both paths were met: some messages counted, some live
    assert.ok(counted > 0 && live > 0, `counted ${counted}, live ${live}`);
  });

  test('lc.protobuf2.1: offline messages pushed at login are not pushed again live', async () => {
    let bad = [];
    for (let k = 0; k < 10; k++) {
      const sender = await session(server, uid('s'));
      const xid = uid('x');
      const { cid } = await startConv(sender, [xid]);
      const acks = [];
      let xp;
      for (let i = 0; i < N; i++) {
        if (i === 10 + k) xp = (async () => { const x = await connect(server, { subprotocol: 'lc.protobuf2.1' }); await login(x, xid); return x; })();
        acks.push(sender.request({ cmd: 'direct', directMessage: { cid, msg: `v1 ${i}` } }, 20000));
      }
      const ids = (await Promise.all(acks)).map((a) => a.ackMessage.uid);
      const x = await xp;
      const marker = await sender.request({ cmd: 'direct', directMessage: { cid, msg: 'marker' } });
      await x.next((c) => c.cmd === 'direct' && c.directMessage?.id === marker.ackMessage.uid, 20000);
      const got = x.received.filter((c) => c.cmd === 'direct' && c.directMessage.id !== marker.ackMessage.uid).map((c) => c.directMessage.id);
      const seen = new Set(got);
      const dup = got.length - seen.size;
      const miss = ids.filter((id) => !seen.has(id)).length;
      if (dup || miss) bad.push({ k, dup, miss, got: got.length });
      await x.close();
      await sender.close();
    }
    assert.deepEqual(bad, [], 'each message once: offline at login or live');
  });
});

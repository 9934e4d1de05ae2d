// Official JS SDK 5.0.0-rc.8 against ternd: a message whose ack was lost with its connection,
// sent again by the app after the SDK reconnected, is stored and delivered once (issue #14;
// docs/protocol-map.md "dt"). The SDK sends `dt: message.id` (its local uuid until the ack
// replaces it); the send whose ack never came fails (COMMAND_TIMEOUT, 20 s) and leaves the
// message FAILED with its local id, so `conv.send(message)` again carries the same dt — on
// the new connection, after the SDK's own session/open r:true. A TCP proxy
// (tests/lib/interop-proxy.mjs) kills tom's connection just before the server's ack reaches
// it: the message is committed and delivered, the ack is lost.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { freshSdk } from '../lib/sdk.mjs';
import { startProxy, sessionOpens } from '../lib/interop-proxy.mjs';
import { Clients, waitFor, uid, createConversationSeen, reconnection } from '../lib/interop-util.mjs';

const decode = (() => {
  const { Protocols } = freshSdk(5);
  return (data) => Protocols.GenericCommand.decode(data);
})();
const ACK = 3; // CommandType.ack
const DIRECT = 2;

describe('JS SDK: a message resent after its ack was lost is stored once', () => {
  let server;
  let proxy;
  let env;
  before(async () => {
    server = await startServer();
    proxy = await startProxy(server.port, { decode });
    env = new Clients(server);
  });
  after(async () => {
    await env?.closeAll();
    await proxy?.close();
    await server?.stop();
  });

  it('the ack is lost, the SDK reconnects (r:true), conv.send(message) again: the first id, one copy stored and delivered', { timeout: 90000 }, async () => {
    const via = { ...server, wsUrl: proxy.wsUrl, httpUrl: proxy.httpUrl };
    const tom = await env.login(uid('tom'), { target: via });
    const jerry = await env.login(uid('jerry')); // direct, stays connected
    const tconv = await createConversationSeen(tom, { members: [jerry.id], name: 'lost ack' }, [jerry]);
    const jconv = await jerry.getConversation(tconv.id);
    const got = [];
    jerry.on('message', (m) => { if (m.cid === tconv.id) got.push(m); });

    const message = new tom.sdk.TextMessage('only once');
    const localId = message.id;
    const rt = reconnection(tom);
    proxy.dropBefore((c) => c.cmd === ACK && c.ackMessage?.uid);
    const first = waitFor(jerry, 'message', (m) => m.text === 'only once', 10000);
    const sending = tconv.send(message).then(() => null, (e) => e);
    const [delivered] = await first; // committed and delivered; the ack died on the way
    await rt.done; // the SDK reconnected by itself and resumed (r:true + st)
    const opens = sessionOpens(proxy.log, tom.id);
    assert.equal(opens.at(-1).r, true, 'the SDK reconnected with r:true');
    const failed = await sending; // the lost ack: the send times out (20 s)
    assert.ok(failed, 'the send whose ack was lost failed');
    assert.equal(message.id, localId, 'the failed message keeps its local id, its dt');
    // the app sends it again, as the SDK leaves it to do
    const again = await tconv.send(message);
    assert.equal(again.id, delivered.id, 'the resend is answered with the stored message\'s id');
    assert.equal(again.timestamp.getTime(), delivered.timestamp.getTime());
    // on the wire: the same dt both times
    const dts = proxy.log.filter((e) => e.dir === 'C->S' && e.cmd?.cmd === DIRECT && e.cmd.directMessage?.msg?.includes('only once'))
      .map((e) => e.cmd.directMessage.dt);
    assert.deepEqual(dts, [localId, localId]);
    // a barrier: tom's next message reaches jerry after anything the resend could have caused
    const next = waitFor(jerry, 'message', (m) => m.text === 'after', 10000);
    await tconv.send(new tom.sdk.TextMessage('after'));
    await next;
    assert.deepEqual(got.map((m) => m.text), ['only once', 'after'], 'jerry got it once');
    const history = await jconv.queryMessages({ limit: 10 });
    assert.deepEqual(history.map((m) => m.text), ['only once', 'after']);
    assert.equal(history[0].id, delivered.id);
  });
});

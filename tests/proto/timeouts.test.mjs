// Server-side timers: idle connections (4107 READ_TIMEOUT), connections that never log in
// (4108 LOGIN_TIMEOUT), and what keeps a connection alive. One server with short timers
// (TERN_IDLE_TIMEOUT=2, TERN_LOGIN_TIMEOUT=1); the rows run concurrently.
// protocol.md §1.2, §3.2, §6.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startServer } from '../lib/server.mjs';
import { assertHealthy, closeAll, connect, login, uid, withServer } from '../lib/proto-client.mjs';

let server;
before(async () => { server = await startServer({ env: { TERN_IDLE_TIMEOUT: '2', TERN_LOGIN_TIMEOUT: '1' } }); });
after(async () => { await closeAll(); await server.stop(); });

/** Keeps a client busy with `what` every 700 ms until stop() is called. */
function keepBusy(c, what) {
  const t = setInterval(() => {
    if (c.isClosed) return;
    if (what === 'echo') c.send({ cmd: 'echo', i: null });
    else c.ping(Buffer.from('k'));
  }, 700);
  return () => clearInterval(t);
}

const within = (p, ms, what) => Promise.race([
  p, new Promise((_, rej) => setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms)),
]);

describe('timeouts', { concurrency: true }, () => {
  test('§1.2 4107 a silent logged-in connection is closed READ_TIMEOUT after idle_timeout (2 s)', async () => {
    const c = await connect(server);
    await login(c, uid('idle'));
    const quietSince = Date.now();
    const info = await within(c.closed, 5000, 'idle close');
    const elapsed = Date.now() - quietSince;
    assert.deepEqual(info, { code: 4107, reason: 'READ_TIMEOUT' });
    assert.ok(elapsed >= 1900 && elapsed <= 4500, `closed after ${elapsed} ms`);
  });

  test('§1.2 4108 a connection that never opens a session is closed LOGIN_TIMEOUT (1 s)', async () => {
    const opened = Date.now();
    const c = await connect(server);
    const info = await within(c.closed, 4000, 'login timeout close');
    const elapsed = Date.now() - opened;
    assert.deepEqual(info, { code: 4108, reason: 'LOGIN_TIMEOUT' });
    assert.ok(elapsed >= 900 && elapsed <= 3500, `closed after ${elapsed} ms`);
  });

  test('§1.2 4108 echo without a session does not count as logging in', async () => {
    const c = await connect(server);
    const stop = keepBusy(c, 'echo');
    try {
      assert.deepEqual(await within(c.closed, 4000, 'login timeout close'), { code: 4108, reason: 'LOGIN_TIMEOUT' });
    } finally {
      stop();
    }
  });

  for (const what of ['echo', 'ping']) {
    test(`§1.2 a logged-in connection sending ${what} every 0.7 s outlives idle_timeout, then idles out`, async () => {
      const c = await connect(server);
      await login(c, uid(`busy-${what}`));
      const stop = keepBusy(c, what);
      const alive = await Promise.race([
        c.closed.then((i) => `closed ${i.code}`),
        new Promise((r) => setTimeout(() => r('alive'), 4500)),
      ]);
      stop();
      assert.equal(alive, 'alive');
      await c.echo();
      assert.deepEqual(await within(c.closed, 5000, 'idle close after going quiet'), { code: 4107, reason: 'READ_TIMEOUT' });
    });
  }

  test('§3.2 closing the last session keeps the socket open; the login timer starts again (TERN_LOGIN_TIMEOUT=2)', () =>
    withServer({ TERN_LOGIN_TIMEOUT: '2' }, async (srv) => {
      // "The server keeps the socket open (other clients may share it)": a socket older than
      // login_timeout whose last session closes is not a socket that never logged in.
      const c = await connect(srv);
      await login(c, uid('last'));
      const stop = keepBusy(c, 'echo');
      try {
        await new Promise((r) => setTimeout(r, 2600)); // the socket is now older than login_timeout
        const r = await c.request({ cmd: 'session', op: 'close' });
        assert.equal(r.op, 'closed');
        const closedAt = Date.now();
        const early = await Promise.race([
          c.closed.then((i) => `closed ${i.code} ${i.reason} after ${Date.now() - closedAt} ms`),
          new Promise((res) => setTimeout(() => res('open'), 1500)),
        ]);
        assert.equal(early, 'open', 'socket dropped right after its last session closed');
        assert.deepEqual(await within(c.closed, 3000, 'login timeout after the session closed'), { code: 4108, reason: 'LOGIN_TIMEOUT' });
      } finally {
        stop();
      }
    }));

  test('§1.2 an HTTP connection that never finishes its request is dropped after login_timeout', async () => {
    const sock = net.connect(server.port, '127.0.0.1');
    await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
    sock.write('GET /v1/route HTTP/1.1\r\nHost: x\r\n'); // no blank line: slowloris
    const start = Date.now();
    await within(new Promise((r) => sock.once('close', r)), 4000, 'slow HTTP client dropped');
    assert.ok(Date.now() - start >= 900);
  });
});

test('§1.2 the server is healthy after the timeouts', async () => {
  await assertHealthy(server);
});

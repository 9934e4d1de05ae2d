// Sessions per IP address (max_sessions_per_ip): max_sessions_per_conn (64) holds per
// connection and max_conns_per_ip (1,000) per address, so one address could hold 64,000
// logins — each in the online index, and in a cluster published to Redis and kept by every
// node. Past the address's budget the extra `session open` gets 4113 APP_QUOTA_EXCEEDED as
// past max_sessions_per_conn; other addresses log in as before, and a session that ends
// gives its place back. Addresses come from X-Forwarded-For through a trusted proxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertError, connect, login, uid, withServer } from '../lib/proto-client.mjs';

const from = (srv, ip) => connect(srv, { headers: { 'X-Forwarded-For': ip } });

test('§6 4113 max_sessions_per_ip=5: the sixth login from one address is refused, over all its connections; another address is not', () =>
  withServer({ TERN_MAX_SESSIONS_PER_IP: '5', TERN_TRUSTED_PROXIES: '127.0.0.1' }, async (srv) => {
    const a1 = await from(srv, '10.9.0.1');
    const a2 = await from(srv, '10.9.0.1');
    const mine = [];
    for (let k = 0; k < 3; k++) mine.push((await login(a1, uid('a1'))).peerId);
    for (let k = 0; k < 2; k++) await login(a2, uid('a2'));
    // a re-open of a session the connection holds is no new session
    const again = await a1.request({ cmd: 'session', op: 'open', appId: srv.appId, peerId: mine[0], sessionMessage: { ua: 't' } });
    assert.equal(again.op, 'opened', JSON.stringify(again));
    const a3 = await from(srv, '10.9.0.1');
    const r = await a3.request({ cmd: 'session', op: 'open', i: 77, appId: srv.appId, peerId: uid('a3'), sessionMessage: { ua: 't' } });
    assertError(r, 77, 4113, 'APP_QUOTA_EXCEEDED');
    assert.equal(r.errorMessage.detail, 'too many clients from this address');
    const r2 = await a1.request({ cmd: 'session', op: 'open', i: 78, appId: srv.appId, peerId: uid('a1'), sessionMessage: { ua: 't' } });
    assertError(r2, 78, 4113, 'APP_QUOTA_EXCEEDED');
    // a bystander at another address
    const b = await from(srv, '10.9.0.2');
    await login(b, uid('b'));
    await b.echo();
    // a session that ends gives its place back: a logout, then a closed connection
    const bye = await a1.request({ cmd: 'session', op: 'close', peerId: mine[1] });
    assert.equal(bye.op, 'closed', JSON.stringify(bye));
    await login(a3, uid('a3')); // a1 2, a2 2, a3 1
    await a2.close();
    // the server drops a2's sessions when it sees the close: until then a login may still
    // find the address full (a bounded wait for that, not a sleep)
    for (const t0 = Date.now(); ;) {
      const x = await a3.request({ cmd: 'session', op: 'open', appId: srv.appId, peerId: uid('a3'), sessionMessage: { ua: 't' } });
      if (x.op === 'opened') break;
      assertError(x, x.i, 4113, 'APP_QUOTA_EXCEEDED');
      assert.ok(Date.now() - t0 < 3000, 'a2\'s sessions were never given back');
      await new Promise((res) => setTimeout(res, 20));
    }
    await login(a3, uid('a3')); // a1 2, a3 3: full again
    const r3 = await a3.request({ cmd: 'session', op: 'open', i: 79, appId: srv.appId, peerId: uid('a3'), sessionMessage: { ua: 't' } });
    assertError(r3, 79, 4113, 'APP_QUOTA_EXCEEDED');
  }));

// Will messages (protocol.md §3.6) are kept in memory with their session until it ends: 16 a
// session of up to max_message each, so 80 KB a session, and with 10,000 sessions an address
// 800 MB. They are also budgeted per IP address (will_limit_ip) and per server
// (will_limit_total), in bytes (content and mentioned ids): past either the will gets
// {cmd: error} 4116 and is not kept, the session and its earlier wills stay, and wills given
// up (a logout) free their bytes. Addresses come from X-Forwarded-For via a trusted proxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertError, connect, login, startConv, uid, withServer } from '../lib/proto-client.mjs';

const BODY = JSON.stringify({ _lctype: -1, _lctext: 'w'.repeat(4950) }); // ~4.98 KB a will

test('§3.6 4116: wills past will_limit_ip=20000 (one address) and will_limit_total=35000 (the server) are refused; a logout gives their bytes back', () =>
  withServer({ TERN_WILL_LIMIT_IP: '20000', TERN_WILL_LIMIT_TOTAL: '35000', TERN_TRUSTED_PROXIES: '127.0.0.1', TERN_MAX_CLIENT_RATE: '0' }, async (srv) => {
    const at = async (ip) => {
      const c = await connect(srv, { headers: { 'X-Forwarded-For': ip } });
      await login(c, uid('w'));
      return c;
    };
    const A1 = await at('10.7.0.1');
    const A2 = await at('10.7.0.1');
    const B1 = await at('10.7.0.2');
    const { cid } = await startConv(A1, [A2.peer, B1.peer]);
    const will = (c, i) => c.request({ cmd: 'direct', i, directMessage: { cid, msg: BODY, will: true } });
    const kept = async (c, i) => assert.equal((await will(c, i)).cmd, 'ack');
    for (let k = 0; k < 3; k++) await kept(A1, 10 + k); // address A ~14.9 KB
    await kept(A2, 20); // ~19.9 KB
    let r = assertError(await will(A2, 21), 21, 4116, 'MESSAGE_SENT_QUOTA_EXCEEDED');
    assert.equal(r.errorMessage.detail, 'too many will messages from this address');
    // another address is not held to A's budget: 3 more (the server ~34.9 KB), then the server's
    for (let k = 0; k < 3; k++) await kept(B1, 30 + k);
    r = assertError(await will(B1, 33), 33, 4116, 'MESSAGE_SENT_QUOTA_EXCEEDED');
    assert.equal(r.errorMessage.detail, 'too many will messages on this server');
    // the refused sessions go on: an ordinary message is delivered
    assert.equal((await A2.request({ cmd: 'direct', directMessage: { cid, msg: BODY } })).cmd, 'ack');
    // A1 logs out: its wills are given up (not sent) and their bytes freed
    const bye = await A1.request({ cmd: 'session', op: 'close' });
    assert.equal(bye.op, 'closed', JSON.stringify(bye));
    await kept(A2, 22);
    await kept(B1, 34);
  }));

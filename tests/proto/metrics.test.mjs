// /metrics: the registry of src/server/base/metrics.c — connections and sessions by protocol,
// logins by result, messages in and out, fan-out, send→ack and commit latency histograms,
// and errors by code — in Prometheus text format. The console's dashboard reads these.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { closeAll, connect, login, sendMsg, session, startConv, uid } from '../lib/proto-client.mjs';
import { scrape, scrapeUntil, value } from '../lib/metrics.mjs';

let server;
before(async () => { server = await startServer(); });
afterEach(() => closeAll(server));
after(async () => { await server.stop(); });

/** Every histogram in the scrape: buckets cumulative, +Inf equal to _count, le ascending. */
function checkHistogram(m, name) {
  assert.equal(m.type.get(name), 'histogram');
  const buckets = [...m.series].filter(([k]) => k.startsWith(`${name}_bucket{`));
  assert.ok(buckets.length >= 10, `${name}: ${buckets.length} buckets`);
  let prevLe = -1;
  let prev = 0;
  for (const [k, v] of buckets) {
    const le = /le="([^"]+)"/.exec(k)[1];
    const bound = le === '+Inf' ? Infinity : Number(le);
    assert.ok(bound > prevLe, `${name}: le not ascending at ${k}`);
    assert.ok(v >= prev, `${name}: buckets not cumulative at ${k}`);
    prevLe = bound;
    prev = v;
  }
  assert.equal(buckets.at(-1)[0], `${name}_bucket{le="+Inf"}`);
  assert.equal(prev, value(m, `${name}_count`));
  assert.ok(m.series.has(`${name}_sum`));
  return prev;
}

test('every family has HELP and TYPE, and the histograms are well formed', async () => {
  const m = await scrape(server);
  for (const fam of ['tern_ws_connections', 'tern_sessions', 'tern_logins_total', 'tern_messages_in_total',
    'tern_messages_out_total', 'tern_fanout_deliveries_total', 'tern_send_ack_seconds', 'tern_store_commit_seconds',
    'tern_errors_total', 'tern_connections', 'tern_clients_online']) {
    assert.ok(m.help.get(fam), `no HELP for ${fam}`);
    assert.ok(m.type.get(fam), `no TYPE for ${fam}`);
  }
  checkHistogram(m, 'tern_send_ack_seconds');
  checkHistogram(m, 'tern_store_commit_seconds');
});

test('connections and sessions are counted by protocol and go back down when they close', async () => {
  const before = await scrape(server);
  const a = await session(server, uid('pb'));
  const b = await session(server, uid('b64'), { subprotocol: 'lc.proto2base64.3' });
  const b2 = await login(b, uid('b64second')); // two sessions on one base64 socket
  assert.ok(b2);
  const m = await scrape(server);
  const d = (k) => value(m, k) - value(before, k);
  assert.equal(d('tern_ws_connections{protocol="protobuf"}'), 1);
  assert.equal(d('tern_ws_connections{protocol="base64"}'), 1);
  assert.equal(d('tern_sessions{protocol="protobuf"}'), 1);
  assert.equal(d('tern_sessions{protocol="base64"}'), 2);
  assert.equal(d('tern_logins_total{result="ok"}'), 3);
  await a.close();
  await b.close();
  await scrapeUntil(server, (x) => value(x, 'tern_sessions{protocol="base64"}') === value(before, 'tern_sessions{protocol="base64"}')
    && value(x, 'tern_sessions{protocol="protobuf"}') === value(before, 'tern_sessions{protocol="protobuf"}')
    && value(x, 'tern_ws_connections{protocol="base64"}') === value(before, 'tern_ws_connections{protocol="base64"}')
    && value(x, 'tern_ws_connections{protocol="protobuf"}') === value(before, 'tern_ws_connections{protocol="protobuf"}'),
  'sessions and connections back to where they were');
});

test('logins by result: refused (client id too long) and bad_token (a forged session token)', async () => {
  const before = await scrape(server);
  const c = await connect(server);
  const r1 = await c.request({ cmd: 'session', op: 'open', appId: server.appId, peerId: 'x'.repeat(65), sessionMessage: {} });
  assert.equal(r1.cmd, 'error'); // a refused open is {cmd: error} (docs/protocol-map.md)
  const r2 = await c.request({ cmd: 'session', op: 'open', appId: server.appId, peerId: uid('tok'), sessionMessage: { r: true, st: 'forged' } });
  assert.equal(r2.cmd, 'error');
  const m = await scrape(server);
  assert.equal(value(m, 'tern_logins_total{result="refused"}') - value(before, 'tern_logins_total{result="refused"}'), 1);
  assert.equal(value(m, 'tern_logins_total{result="bad_token"}') - value(before, 'tern_logins_total{result="bad_token"}'), 1);
  assert.equal(value(m, 'tern_errors_total{code="4112",reason="SESSION_TOKEN_EXPIRED"}')
    - value(before, 'tern_errors_total{code="4112",reason="SESSION_TOKEN_EXPIRED"}'), 1);
});

test('messages in, messages out, fan-out, and the send→ack and commit histograms count a group message', async () => {
  const [x, y, z] = [uid('x'), uid('y'), uid('z')];
  const cx = await session(server, x);
  const cy = await session(server, y);
  const cz = await session(server, z);
  const conv = await startConv(cx, [y, z]); // membership pushes: fan-out but not messages
  await cy.next((p) => p.cmd === 'conv' && p.op === 'joined');
  await cz.next((p) => p.cmd === 'conv' && p.op === 'joined');
  const before = await scrape(server);
  for (let i = 0; i < 5; i++) await sendMsg(cx, conv.cid, `hello ${i}`);
  for (let i = 0; i < 5; i++) {
    await cy.next((p) => p.cmd === 'direct');
    await cz.next((p) => p.cmd === 'direct');
  }
  const m = await scrape(server);
  const d = (k) => value(m, k) - value(before, k);
  assert.equal(d('tern_messages_in_total{kind="stored"}'), 5);
  assert.equal(d('tern_messages_out_total{kind="stored"}'), 10); // two receivers each
  assert.equal(d('tern_messages_in_total{kind="transient"}'), 0);
  assert.equal(d('tern_delivery_seconds_count'), 5);
  assert.ok(d('tern_store_commit_batch_size_count') >= 1, 'a batch size was recorded');
  checkHistogram(m, 'tern_delivery_seconds');
  assert.equal(d('tern_fanout_deliveries_total'), 10);
  assert.equal(d('tern_send_ack_seconds_count'), 5);
  assert.ok(d('tern_send_ack_seconds_sum') > 0);
  assert.ok(d('tern_store_commit_seconds_count') >= 1, 'a commit was timed');
  checkHistogram(m, 'tern_send_ack_seconds');
  // a renamed conversation is a notification: fan-out without a message
  const mark = await scrape(server);
  const u = await cy.request({ cmd: 'conv', op: 'update', convMessage: { cid: conv.cid, attr: { data: JSON.stringify({ name: 'renamed' }) } } });
  assert.equal(u.op, 'updated', JSON.stringify(u));
  await cx.next((p) => p.cmd === 'conv' && p.op === 'updated');
  await cz.next((p) => p.cmd === 'conv' && p.op === 'updated');
  const after = await scrape(server);
  assert.ok(value(after, 'tern_fanout_deliveries_total') - value(mark, 'tern_fanout_deliveries_total') >= 2);
  assert.equal(value(after, 'tern_messages_out_total{kind="stored"}'), value(mark, 'tern_messages_out_total{kind="stored"}'));
  // a transient message counts as kind="transient", in and out
  const t0 = await scrape(server);
  cx.send({ cmd: 'direct', i: null, directMessage: { cid: conv.cid, msg: 'typing', transient: true } });
  await cy.next((p) => p.cmd === 'direct' && p.directMessage?.transient);
  await cz.next((p) => p.cmd === 'direct' && p.directMessage?.transient);
  const t1 = await scrape(server);
  assert.equal(value(t1, 'tern_messages_in_total{kind="transient"}') - value(t0, 'tern_messages_in_total{kind="transient"}'), 1);
  assert.equal(value(t1, 'tern_messages_out_total{kind="transient"}') - value(t0, 'tern_messages_out_total{kind="transient"}'), 2);
  assert.equal(value(t1, 'tern_messages_in_total{kind="stored"}'), value(t0, 'tern_messages_in_total{kind="stored"}'));
});

test('errors by code: a message to an unknown conversation counts 4401 once', async () => {
  const c = await session(server, uid('err'));
  const before = await scrape(server);
  const r = await c.request({ cmd: 'direct', directMessage: { cid: 'ffffffffffffffffffffffff', msg: 'x' } });
  assert.equal(r.cmd, 'error');
  const code = r.errorMessage.code;
  const m = await scrape(server);
  const key = `tern_errors_total{code="${code}",reason="${r.errorMessage.reason}"}`;
  assert.equal(value(m, key) - value(before, key), 1, key);
});

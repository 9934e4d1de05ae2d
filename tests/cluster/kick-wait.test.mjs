// The app's kick (REST POST /1.2/rtm/clients/:client_id/kick) of a client whose session is on
// another node: the answering node sends that node the kick (im_bus_kick), which ends the
// session there and publishes the end; the answer waits until the answering node's replica
// no longer lists the session (im_session.c, kick_remote_*; docs/cluster.md "Sessions across
// nodes"). Before, it answered once the kick was sent: the app, asking the same node next
// (check-online), was told the kicked client was still online.
//
// Made deterministic with the test hook TERN_TEST_STALL_HOME_MS on node 1: its home worker,
// which reads the bus (the kick arrives there), is blocked while node 2 is asked, so the
// session cannot have ended before node 2 answers unless node 2 waits for it.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { closeAll, session, uid } from '../lib/proto-client.mjs';
import { startRedis } from '../lib/redis.mjs';
import { startNodes } from '../lib/server.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const STALL_MS = 1000; // well within the kick's 2 s wait (KICK_REMOTE_WAIT_MS)

const master = (s) => ({ 'X-LC-Id': s.appId, 'X-LC-Key': `${s.masterKey},master`, 'Content-Type': 'application/json' });
const post = async (s, path, body) => {
  const res = await fetch(`${s.httpUrl}${path}`, { method: 'POST', headers: master(s), body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
};
const online = async (s, x) => (await post(s, '/1.2/rtm/clients/check-online', { client_ids: [x] })).body.results;
const metric = async (s, re) => Number(re.exec(await (await fetch(`${s.httpUrl}/metrics`, { headers: master(s) })).text())?.[1]);
const SEEN = /^tern_kick_remote_waits_total\{outcome="seen"\} (\d+)$/m;
// how many times the node's home worker has logged that it blocks (bus_redis.c on_stall)
const stalls = (s) => s.stderr().split("test hook: blocking the home worker's loop").length - 1;

describe('cluster: the app\'s kick is answered once the other nodes\' sessions of the client have ended', () => {
  let redis, nodes;
  before(async () => {
    redis = await startRedis();
    nodes = await startNodes(2, redis, { envs: [{ TERN_TEST_STALL_HOME_MS: String(STALL_MS) }, {}] });
  });
  after(async () => {
    for (const s of nodes || []) await closeAll(s);
    await Promise.all((nodes || []).map((s) => s.stop()));
    if (redis) await redis.stop();
  });

  test('a client on node 1 kicked through node 2: at node 2\'s 200, node 2 says it is offline, and it has its 4115', async () => {
    const [n1, n2] = nodes;
    const x = uid('kickwait');
    const a = await session(n1, x);
    assert.deepEqual(await online(n2, x), [x]); // answered after the fence: node 2 has the login
    const seen0 = await metric(n2, SEEN);
    const closed = a.next((c) => c.cmd === 'session' && c.op === 'closed', STALL_MS + 10000);
    // node 1's home worker blocked: the kick waits in its subscriber socket meanwhile
    const stalls0 = stalls(n1);
    process.kill(n1.child.pid, 'SIGUSR2');
    for (const t = Date.now(); stalls(n1) === stalls0; await sleep(10)) assert.ok(Date.now() - t < 5000, 'node 1 never blocked');
    const t0 = Date.now();
    const r = await post(n2, `/1.2/rtm/clients/${x}/kick`, { reason: 'wait' });
    const took = Date.now() - t0;
    assert.equal(r.status, 200, JSON.stringify(r));
    assert.deepEqual(await online(n2, x), [], `node 2 answered the kick (after ${took} ms) while it still listed the client online`);
    const c = await closed;
    assert.equal(c.sessionMessage?.code, 4115, JSON.stringify(c));
    assert.equal(await metric(n2, SEEN), seen0 + 1, 'the kick did not wait for the end to reach the replica');
    await a.close();
  });

  // One id may hold any number of sessions: every one on the other node is kicked and
  // awaited (the kick took the first 64 before, and left the rest connected)
  test('a client on 70 sessions on node 1 kicked through node 2: every one gets 4115, none listed', async () => {
    const [n1, n2] = nodes;
    const x = uid('kickmany');
    const many = [];
    for (let i = 0; i < 70; i++) many.push(await session(n1, x));
    // no wait for node 2 to hear of them: the kick's presence fence covers logins answered before it
    const ends = many.map((a) => a.next((c) => c.cmd === 'session' && c.op === 'closed', 10000));
    const r = await post(n2, `/1.2/rtm/clients/${x}/kick`, {});
    assert.equal(r.status, 200, JSON.stringify(r));
    for (const e of ends) assert.equal((await e).sessionMessage?.code, 4115);
    assert.deepEqual(await online(n2, x), []);
    assert.deepEqual(await online(n1, x), []);
    await Promise.all(many.map((a) => a.close()));
  });

  test('a client with no session elsewhere: the kick answers without waiting', async () => {
    const [, n2] = nodes;
    const x = uid('kickhere');
    const a = await session(n2, x);
    const seen0 = await metric(n2, SEEN);
    const closed = a.next((c) => c.cmd === 'session' && c.op === 'closed', 10000);
    const r = await post(n2, `/1.2/rtm/clients/${x}/kick`, {});
    assert.equal(r.status, 200, JSON.stringify(r));
    assert.equal((await closed).sessionMessage?.code, 4115);
    assert.deepEqual(await online(n2, x), []);
    assert.equal(await metric(n2, SEEN), seen0, 'a kick with nothing on other nodes counted a wait');
    await a.close();
  });
});

// The wait is bounded: a node that does not end the session in time (here its home worker is
// blocked past the 2 s) does not hold the answer longer; the kick is answered anyway, counted
// as a timeout, and the session still ends when that node reads the kick.
describe('cluster: the app\'s kick waits at most 2 s for the other nodes', () => {
  const LONG_STALL_MS = 4500;
  let redis, nodes;
  before(async () => {
    redis = await startRedis();
    nodes = await startNodes(2, redis, { envs: [{ TERN_TEST_STALL_HOME_MS: String(LONG_STALL_MS) }, {}] });
  });
  after(async () => {
    for (const s of nodes || []) await closeAll(s);
    await Promise.all((nodes || []).map((s) => s.stop()));
    if (redis) await redis.stop();
  });

  test('a kick whose session on node 1 cannot end for 4.5 s is answered after about 2 s, counted as a timeout', async () => {
    const [n1, n2] = nodes;
    const TIMEOUT = /^tern_kick_remote_waits_total\{outcome="timeout"\} (\d+)$/m;
    const x = uid('kickslow');
    const a = await session(n1, x);
    assert.deepEqual(await online(n2, x), [x]);
    const timeouts0 = await metric(n2, TIMEOUT);
    const closed = a.next((c) => c.cmd === 'session' && c.op === 'closed', LONG_STALL_MS + 10000);
    const stalls0 = stalls(n1);
    process.kill(n1.child.pid, 'SIGUSR2');
    for (const t = Date.now(); stalls(n1) === stalls0; await sleep(10)) assert.ok(Date.now() - t < 5000, 'node 1 never blocked');
    const t0 = Date.now();
    const r = await post(n2, `/1.2/rtm/clients/${x}/kick`, {});
    const took = Date.now() - t0;
    assert.equal(r.status, 200, JSON.stringify(r));
    assert.ok(took >= 1900 && took < LONG_STALL_MS - 500, `answered after ${took} ms, not at the 2 s bound`);
    assert.equal(await metric(n2, TIMEOUT), timeouts0 + 1);
    assert.match(n2.stderr(), /kick: 1 session\(s\) of kickslow-\S+ on other nodes not seen ended within 2000 ms/);
    assert.equal((await closed).sessionMessage?.code, 4115); // once node 1 reads the kick
    for (const t = Date.now(); (await online(n2, x)).length; await sleep(20)) assert.ok(Date.now() - t < 5000, 'node 2 never saw the end');
    await a.close();
  });
});

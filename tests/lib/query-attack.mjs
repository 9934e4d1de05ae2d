// The harness of the costly-query attacks (tests/attack/query-cost.test.mjs, conversation
// queries; tests/attack/class-read-cost.test.mjs, class reads): conversations a backtracking
// `$regex` is slow on, attackers that keep the query threads busy, and a bystander pair on
// the same worker whose echo and send round trips must stay fast meanwhile.
import assert from 'node:assert/strict';
import { session, startConv, uid } from './proto-client.mjs';
import { TEXT, sleep } from './issue4-util.mjs';

/** A pattern built to backtrack on a run of a's with no b. */
export const HOSTILE = '(*NO_START_OPT)(a|aa)*b';

/** n conversations of `owner`, the k-th with attributes { s, k }. */
export async function plant(owner, n, s) {
  const is = [];
  for (let k = 0; k < n; k++) {
    is.push(owner.send({ cmd: 'conv', op: 'start', convMessage: { m: [`peer${k}`], attr: { data: JSON.stringify({ s, k }) } } }));
  }
  const rs = await Promise.all(is.map((i) => owner.reply(i, 60000)));
  assert.ok(rs.every((r) => r.op === 'started'), 'all created');
}

export function p99(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))];
}

/** A chatting pair (A sends to B in a conversation of theirs): made before the attack. */
export async function bystanderPair(srv) {
  const [a, b] = [uid('byA'), uid('byB')];
  const A = await session(srv, a);
  const B = await session(srv, b);
  const { cid } = await startConv(A, [b]);
  return { A, B, cid };
}

/**
 * Runs each of `attacks` over and over while the pair does echo and send rounds for 4 s;
 * once the rounds end, waits for the attacks' last runs. The rounds' times in ms.
 */
export async function roundsUnderAttack({ A, B, cid }, attacks) {
  let stop = false;
  const loops = attacks.map(async (attack) => {
    while (!stop) await attack();
  });
  const echo = [];
  const send = [];
  const end = Date.now() + 4000;
  let n = 0;
  while (Date.now() < end) {
    let s0 = Date.now();
    const e = await A.request({ cmd: 'echo' }, 10000);
    echo.push(Date.now() - s0);
    assert.equal(e.cmd, 'echo');
    s0 = Date.now();
    const text = TEXT(`by ${n++}`);
    const got = B.next((p) => p.cmd === 'direct' && p.directMessage?.msg === text, 10000);
    const ack = await A.request({ cmd: 'direct', directMessage: { cid, msg: text } }, 10000);
    assert.equal(ack.cmd, 'ack');
    await got;
    send.push(Date.now() - s0);
    B.pushes.length = 0;
    await sleep(10);
  }
  stop = true;
  await Promise.all(loops);
  return { echo, send };
}

/** The bystander kept up: at least 20 rounds, echo and send under 100 ms p99. */
export function assertBystanderFast({ echo, send }) {
  assert.ok(echo.length >= 20, `${echo.length} bystander rounds`);
  assert.ok(p99(echo) < 100, `bystander echo p99 ${p99(echo)} ms (max ${Math.max(...echo)})`);
  assert.ok(p99(send) < 100, `bystander send p99 ${p99(send)} ms (max ${Math.max(...send)})`);
}

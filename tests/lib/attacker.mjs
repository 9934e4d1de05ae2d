// The hostile side of tests/integration/bystander.test.mjs, in a process of its own so that
// its work does not delay the bystander's measurements in the test's process. Started with
// fork(); argv[2] is JSON {server: {port, appId, appKey, masterKey}}. It sets up every attack,
// sends {ready: true}, attacks until it gets 'stop', then sends {stats} and exits.
//
// The attacks (issue #11 points 3, 4, 7, 8 and 11, each within what one client may do):
//   attr    — two small updates at a time of a conversation document at its size cap
//   regex   — backtracking $regex queries over 300 conversations from three clients
//   fds     — as many TCP connections as it can hold, churned so accept() keeps hitting EMFILE
//   uploads — keyless near-10 MiB POSTs (refused from their heads), and keyed uploads that
//             trickle their bodies to hold upload slots
//   deaf    — 100 members of a group that never read, while a sender floods the group with
//             20 KB messages, 10 a second
import net from 'node:net';
import { session, startConv, uid } from './proto-client.mjs';
import { TEXT, sleep } from './issue4-util.mjs';

const cfg = JSON.parse(process.argv[2]);
const { port } = cfg.server;
const server = { ...cfg.server, wsUrl: `ws://127.0.0.1:${port}/`, httpUrl: `http://127.0.0.1:${port}` };
const stats = { attrAcked: 0, attrRefused: 0, queries: 0, queryRefused: 0, fdOpened: 0, fdFailed: 0,
  uploadsRefused: 0, uploadsHeld: 0, floodSent: 0, floodRefused: 0, errors: [] };
let stopping = false;
const loops = [];

const note = (e) => { if (stats.errors.length < 20) stats.errors.push(String(e?.message ?? e)); };
const loop = (fn) => loops.push((async () => { while (!stopping) { try { await fn(); } catch (e) { note(e); await sleep(50); } } })());

// ---- 3: a document at the cap, updated 2 bytes at a time
async function attrAttack() {
  const c = await session(server, uid('attr'));
  const big = 'x'.repeat(60 * 1024);
  const { cid } = await startConv(c, [uid('attrPeer')], { attr: { data: JSON.stringify({ big }) } });
  let k = 0;
  loop(async () => {
    const rs = await Promise.all(Array.from({ length: 2 }, () => c.request(
      { cmd: 'conv', op: 'update', convMessage: { cid, attr: { data: JSON.stringify({ 'attr.n': k++ % 100 }) } } }, 20000)));
    for (const r of rs) if (r.cmd === 'conv') stats.attrAcked++; else stats.attrRefused++;
  });
}

// ---- 4: backtracking regular expressions
async function regexAttack() {
  const owner = await session(server, uid('rxOwner'));
  const hostile = await Promise.all([1, 2, 3].map((k) => session(server, uid(`rx${k}`))));
  const members = hostile.map((h) => h.peer);
  const is = [];
  for (let k = 0; k < 300; k++) {
    is.push(owner.send({ cmd: 'conv', op: 'start', convMessage: { m: members, attr: { data: JSON.stringify({ s: 'a'.repeat(24), k }) } } }));
  }
  await Promise.all(is.map((i) => owner.reply(i, 60000)));
  const where = JSON.stringify({ s: { $regex: '(*NO_START_OPT)(a|aa)*b' } });
  for (const h of hostile) {
    loop(async () => {
      const r = await h.request({ cmd: 'conv', op: 'query', convMessage: { where: { data: where }, limit: 1000 } }, 20000);
      stats.queries++;
      if (r.cmd === 'error') stats.queryRefused++;
    });
  }
}

// ---- 7: descriptors
function fdAttack() {
  const held = [];
  loop(async () => {
    while (held.length < 800 && !stopping) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => { stats.fdFailed++; });
      s.on('connect', () => { stats.fdOpened++; });
      held.push(s);
      if (held.length % 50 === 0) await sleep(10);
    }
    await sleep(500);
    for (const s of held.splice(0, 40)) s.destroy(); // churn: accept() fails, rests, resumes
  });
  loops.push((async () => { while (!stopping) await sleep(100); for (const s of held) s.destroy(); })());
}

// ---- 8: uploads
function uploadAttack() {
  const head = (key) => `POST /1.1/files/big.bin HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n`
    + `Content-Length: ${10 * 1024 * 1024 - 1}\r\n${key ? `X-LC-Id: ${server.appId}\r\nX-LC-Key: ${server.appKey}\r\n` : ''}\r\n`;
  const one = (key) => new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let answer = '';
    const trickle = setInterval(() => { if (!s.destroyed) s.write(Buffer.alloc(64 * 1024, 1)); }, 200);
    s.on('connect', () => s.write(head(key)));
    s.on('data', (d) => { answer += d; });
    s.on('error', () => {});
    s.on('close', () => {
      clearInterval(trickle);
      if (/^HTTP\/1\.1 (401|403|429|503)/.test(answer)) stats.uploadsRefused++;
      resolve();
    });
    const stopper = setInterval(() => { if (stopping) { clearInterval(stopper); s.destroy(); } }, 100);
  });
  for (let k = 0; k < 40; k++) loop(() => one(false));
  for (let k = 0; k < 10; k++) loop(async () => { stats.uploadsHeld++; await one(true); });
}

// ---- 11: readers that never read
async function deafAttack() {
  const F = await session(server, uid('flood'), { extra: { configBitmap: 8 } });
  const deaf = [];
  for (let k = 0; k < 100; k++) deaf.push(await session(server, uid(`deaf${k}`)));
  const { cid } = await startConv(F, deaf.map((d) => d.peer));
  for (const d of deaf) d.ws._socket.pause();
  const pad = 'f'.repeat(20 * 1024);
  let k = 0;
  loop(async () => {
    const r = await F.request({ cmd: 'direct', directMessage: { cid, msg: TEXT(`${k++} ${pad}`), transient: true } }, 20000);
    if (r.cmd === 'ack') stats.floodSent++; else stats.floodRefused++;
    await sleep(100); // 10 a second: 2 MB of fan-out each, what output_limit_total is for
  });
}

process.on('message', async (m) => {
  if (m !== 'stop') return;
  stopping = true;
  await Promise.race([Promise.allSettled(loops), sleep(15000)]);
  process.send({ stats }, () => process.exit(0));
});

const want = new Set(cfg.attacks ?? ['deaf', 'regex', 'attr', 'uploads', 'fds']);
if (want.has('deaf')) await deafAttack();
if (want.has('regex')) await regexAttack();
if (want.has('attr')) await attrAttack();
if (want.has('uploads')) uploadAttack();
if (want.has('fds')) fdAttack();
await sleep(1000); // every attack is under way
process.send({ ready: true });

#!/usr/bin/env node
// bench/import.mjs — the import rate (issue #12 §4): how fast the bulk path of
// docs/migrate-api.md takes a LeanCloud history into an empty ternd.
//
// It generates --convs conversations and --messages messages (LeanCloud-shaped: 22-character
// ids, typed-message JSON around 100 bytes, in timestamp order, one conversation after
// another as an importer walks them), builds every NDJSON body first so generating costs
// nothing while the clock runs, then posts them to POST /1.2/import/records keeping
// --inflight requests outstanding (a real importer overlaps its next request with the
// server's commit of the last one). The clock runs from the first message body to the last
// answer: every answer comes after its commit, so the rate is of durable messages. It
// checks that every message was applied (none skipped, none lost) and prints one line, or
// one JSON object with --json (scripts/bench.sh adds it to make bench's results).
//
//   node bench/import.mjs --url http://127.0.0.1:8080 --app-id ID --master-key KEY \
//        [--messages 1000000] [--convs 1000] [--batch 5000] [--inflight 2] [--json]
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

const opts = { url: 'http://127.0.0.1:8080', 'app-id': '', 'master-key': '', messages: 1000000, convs: 1000, batch: 5000, inflight: 2, json: false, 'server-pid': 0 };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--json') { opts.json = true; continue; }
  const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
  if (!m || !(m[1] in opts)) { console.error(`import.mjs: unknown option ${a}`); process.exit(2); }
  opts[m[1]] = m[2] ?? process.argv[++i];
}
for (const k of ['messages', 'convs', 'batch', 'inflight', 'server-pid']) opts[k] = Number(opts[k]);
if (!opts['app-id'] || !opts['master-key']) { console.error('import.mjs: --app-id and --master-key are required'); process.exit(2); }

const headers = { 'X-LC-Id': opts['app-id'], 'X-LC-Key': `${opts['master-key']},master`, 'Content-Type': 'application/x-ndjson' };
const hex = (n) => randomBytes(n).toString('hex');
const lcId = () => randomBytes(16).toString('base64url');
const T0 = Date.parse('2025-01-01T00:00:00.000Z');

// ---- the data, all of it before the clock starts
const convs = Array.from({ length: opts.convs }, (_, i) => ({ cid: hex(12), m: [`user${i}`, `user${i + 1}`, `user${i + 2}`] }));
const convBody = convs.map((c, i) => JSON.stringify({
  type: 'conversation', objectId: c.cid, name: `conversation ${i}`, m: c.m, c: c.m[0], mu: [], tr: false, sys: false, unique: false,
  createdAt: new Date(T0).toISOString(), updatedAt: new Date(T0).toISOString(),
})).join('\n');
const bodies = [];
let lines = [];
const perConv = Math.ceil(opts.messages / opts.convs);
for (let n = 0; n < opts.messages; n++) {
  const c = convs[Math.floor(n / perConv)];
  const k = n % perConv;
  lines.push(JSON.stringify({
    type: 'message', cid: c.cid, 'msg-id': lcId(), timestamp: T0 + k * 1000 + (k % 7 === 0 ? 0 : 1), from: c.m[k % 3],
    data: JSON.stringify({ _lctype: -1, _lctext: `message ${k} of the conversation, about a hundred bytes long: ${hex(8)}` }),
  }));
  if (lines.length === opts.batch || n === opts.messages - 1) {
    bodies.push(Buffer.from(lines.join('\n')));
    lines = [];
  }
}

async function post(body) {
  for (let attempt = 0; ; attempt++) {
    const res = await fetch(`${opts.url}/1.2/import/records`, { method: 'POST', headers, body });
    const text = await res.text();
    if (res.status === 429 && attempt < 100) { await new Promise((r) => setTimeout(r, 10)); continue; }
    if (res.status !== 200) throw new Error(`import: HTTP ${res.status}: ${text.slice(0, 300)}`);
    return JSON.parse(text);
  }
}

function cpuTicks(pid) { // utime + stime of a process, in clock ticks (0 when unknown)
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch { return 0; }
}

const first = await post(convBody);
if (first.applied !== opts.convs) throw new Error(`conversations: ${JSON.stringify(first).slice(0, 300)}`);
let applied = 0, unchanged = 0, skipped = 0, next = 0;
const cpu0 = cpuTicks(opts['server-pid']);
const t0 = process.hrtime.bigint();
async function lane() {
  while (next < bodies.length) {
    const r = await post(bodies[next++]);
    applied += r.applied;
    unchanged += r.unchanged;
    skipped += r.skipped.length;
  }
}
await Promise.all(Array.from({ length: opts.inflight }, lane));
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = (cpuTicks(opts['server-pid']) - cpu0) / 100; // USER_HZ is 100 on Linux
const rate = opts.messages / seconds;
const report = {
  scenario: 'import', messages: opts.messages, conversations: opts.convs, batch: opts.batch, inflight: opts.inflight,
  bytes: bodies.reduce((s, b) => s + b.length, 0), seconds: Number(seconds.toFixed(3)), msgs_per_s: Math.round(rate),
  applied, unchanged, skipped, lost: opts.messages - applied,
};
if (opts['server-pid']) report.server_cpu_s = Number(cpu.toFixed(2));
if (opts.json) console.log(JSON.stringify(report));
else console.log(`import: ${opts.messages} messages in ${seconds.toFixed(2)} s = ${Math.round(rate)} msgs/s (applied ${applied}, skipped ${skipped}, lost ${report.lost})`);
process.exit(report.lost || skipped ? 1 : 0);

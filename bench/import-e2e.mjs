#!/usr/bin/env node
// bench/import-e2e.mjs — the importer end to end (issue #12 §4): `tern admin import
// leancloud` copying a whole app from a source ternd (which answers LeanCloud's storage
// and IM REST reads, as LeanCloud would) into an empty ternd, timed from start to exit.
//
// make bench seeds the source through its own import API first (bench/import.mjs: 1,000
// conversations, 1,000,000 messages), so this measures the copy alone: listing
// _Conversation, each conversation's member-infos / shut-ups / blacklist, its history in
// pages of 1,000 (GET /1.2/rtm/conversations/{cid}/messages?reversed=true), the records
// built and posted to the target in NDJSON bodies, every body committed before the run
// ends. It checks the summary (complete, nothing skipped, every message sent and applied)
// and the target's count of a sample of conversations, then prints one line, or one JSON
// object with --json (scripts/bench.sh adds it to make bench's results), with the CPU
// seconds each of the three processes used, and how busy the machine was and what
// everything else on it used meanwhile: all three share its cores, so on a machine other
// jobs are using the rate says as much about them as about the importer.
//
//   node bench/import-e2e.mjs --tern build/src/cli/tern --source http://127.0.0.1:P1 \
//        --target http://127.0.0.1:P2 --app-id ID --master-key KEY [--messages 1000000] \
//        [--source-pid N] [--target-pid N] [--json] [-- extra importer flags]
import { spawn } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const opts = { tern: 'build/src/cli/tern', source: '', target: '', 'app-id': '', 'master-key': '', messages: 1000000,
  'source-pid': 0, 'target-pid': 0, json: false };
const extra = [];
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--') { extra.push(...process.argv.slice(i + 1)); break; }
  if (a === '--json') { opts.json = true; continue; }
  const m = /^--([a-z-]+)(?:=(.*))?$/.exec(a);
  if (!m || !(m[1] in opts)) { console.error(`import-e2e.mjs: unknown option ${a}`); process.exit(2); }
  opts[m[1]] = m[2] ?? process.argv[++i];
}
for (const k of ['messages', 'source-pid', 'target-pid']) opts[k] = Number(opts[k]);
if (!opts.source || !opts.target || !opts['app-id'] || !opts['master-key']) {
  console.error('import-e2e.mjs: --source, --target, --app-id and --master-key are required');
  process.exit(2);
}

const stat = (pid) => { try { return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ').map(Number); } catch { return null; } };
const ticks = (pid) => { const f = stat(pid); return f ? f[11] + f[12] : 0; }; // utime + stime, clock ticks (USER_HZ 100)
const childTicks = () => { const f = stat('self'); return f ? f[13] + f[14] : 0; }; // cutime + cstime: reaped children
// the whole machine: busy and total jiffies over every core (user … steal, idle + iowait)
const machine = () => {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  return { busy: f.reduce((a, b) => a + b, 0) - idle, total: f.reduce((a, b) => a + b, 0) };
};
const headers = { 'X-LC-Id': opts['app-id'], 'X-LC-Key': `${opts['master-key']},master` };
const get = async (base, path) => {
  const res = await fetch(base + path, { headers });
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  return res.json();
};

const dir = mkdtempSync(join(tmpdir(), 'tern-import-e2e-'));
const src0 = ticks(opts['source-pid']), dst0 = ticks(opts['target-pid']), imp0 = childTicks(), m0 = machine();
const t0 = process.hrtime.bigint();
const child = spawn(opts.tern, ['admin', 'import', 'leancloud', '--from', opts.source, '--from-master-key', opts['master-key'],
  '--server', opts.target, '--app-id', opts['app-id'], '--master-key', opts['master-key'], '--rate', '0',
  '--state', join(dir, 'state.json'), '--json', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
let out = '', err = '', peakRss = 0;
child.stdout.on('data', (d) => { out += d; });
child.stderr.on('data', (d) => { err = (err + d).slice(-8000); });
const sampler = setInterval(() => { // the importer's resident memory, sampled
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))[1]);
    if (kb > peakRss) peakRss = kb;
  } catch { /* gone */ }
}, 200);
const code = await new Promise((resolve) => child.on('exit', (c, sig) => resolve(c ?? sig)));
clearInterval(sampler);
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const importerCpu = (childTicks() - imp0) / 100; // the importer, reaped
const m1 = machine();
const srcCpu = opts['source-pid'] ? (ticks(opts['source-pid']) - src0) / 100 : null;
const dstCpu = opts['target-pid'] ? (ticks(opts['target-pid']) - dst0) / 100 : null;
rmSync(dir, { recursive: true, force: true });
const lines = out.trim().split('\n');
let sum;
try { sum = JSON.parse(lines.at(-1)); } catch { sum = null; }
if (code !== 0 || !sum || !sum.complete || sum.skipped.length || sum.messages !== opts.messages || sum.applied < opts.messages) {
  console.error(`import-e2e: the import failed (exit ${code}): ${lines.at(-1)?.slice(0, 2000)}\n${err}`);
  process.exit(1);
}
// the target holds them: a sample of conversations, each counted whole
const convs = (await get(opts.target, '/1.1/classes/_Conversation?order=objectId&limit=1000&count=1'));
const srcConvs = (await get(opts.source, '/1.1/classes/_Conversation?limit=0&count=1')).count;
if (convs.count !== srcConvs) throw new Error(`conversations: ${convs.count} in the target, ${srcConvs} in the source`);
const count = async (base, cid) => {
  let n = 0, q = '';
  for (;;) {
    const page = await get(base, `/1.2/rtm/conversations/${cid}/messages?limit=1000${q}`);
    n += page.length;
    if (page.length < 1000) return n;
    q = `&msgid=${encodeURIComponent(page.at(-1)['msg-id'])}&timestamp=${page.at(-1).timestamp}`;
  }
};
for (const c of convs.results.filter((_, i) => i % 100 === 0)) {
  const [a, b] = [await count(opts.source, c.objectId), await count(opts.target, c.objectId)];
  if (a !== b) throw new Error(`${c.objectId}: ${a} messages in the source, ${b} in the target`);
}
const cores = (m1.total - m0.total) / 100 / seconds; // jiffies of every core over the run
const busy = (m1.busy - m0.busy) / 100; // core-seconds the machine was busy
const report = {
  scenario: 'import-e2e', messages: sum.messages, conversations: sum.conversations, seconds: Number(seconds.toFixed(3)),
  msgs_per_s: Math.round(sum.messages / seconds), requests: sum.requests, retries: sum.retries,
  importer_cpu_s: Number(importerCpu.toFixed(2)), importer_peak_rss_kb: peakRss,
  machine_cpu_busy: Number((busy / (cores * seconds)).toFixed(2)),
};
if (srcCpu !== null) report.source_cpu_s = Number(srcCpu.toFixed(2));
if (dstCpu !== null) report.target_cpu_s = Number(dstCpu.toFixed(2));
// what everything else on the machine used meanwhile (other jobs, this script, the kernel)
if (srcCpu !== null && dstCpu !== null) report.others_cpu_s = Number(Math.max(0, busy - srcCpu - dstCpu - importerCpu).toFixed(2));
if (opts.json) console.log(JSON.stringify(report));
else console.log(`import-e2e: ${sum.messages} messages, ${sum.conversations} conversations in ${seconds.toFixed(2)} s = ${report.msgs_per_s} msgs/s`
  + ` (${sum.requests} requests, ${sum.retries} retries; CPU s: source ${report.source_cpu_s ?? '?'}, importer ${report.importer_cpu_s},`
  + ` target ${report.target_cpu_s ?? '?'}, everything else ${report.others_cpu_s ?? '?'}; machine ${Math.round(report.machine_cpu_busy * 100)}% busy)`);

// bench/paced-summary.mjs OUT RATE WINDOW — the per-message breakdown of one bench/paced.sh run:
// tern-bench's report (OUT.json), perf stat per thread (OUT.perf), two /metrics scrapes
// (OUT.m0, OUT.m1) taken around the perf window. Prints a small table; --json for one object.
import { readFileSync } from 'node:fs';

const [out, rateArg, windowArg] = process.argv.slice(2);
const rate = Number(rateArg);
const msgs = rate * Number(windowArg); // sent on schedule during the perf window
const rep = JSON.parse(readFileSync(`${out}.json`, 'utf8'));

// perf stat -x, --per-thread: "comm-tid,value,unit,event,..."
const threads = new Map();
for (const line of readFileSync(`${out}.perf`, 'utf8').split('\n')) {
  const f = line.split(',');
  if (f.length < 4 || line.startsWith('#')) continue;
  const v = Number(f[1]);
  if (!Number.isFinite(v)) continue;
  const name = f[0].replace(/-\d+$/, '');
  const ev = f[3].replace(/^syscalls:sys_enter_/, '').replace(/^raw_syscalls:sys_enter$/, 'syscalls');
  const t = threads.get(name) ?? {};
  t[ev] = (t[ev] ?? 0) + v;
  threads.set(name, t);
}
const total = {};
for (const t of threads.values()) for (const [k, v] of Object.entries(t)) total[k] = (total[k] ?? 0) + v;

function scrape(file) {
  const m = new Map();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const k = line.lastIndexOf(' ');
    m.set(line.slice(0, k), Number(line.slice(k + 1)));
  }
  return m;
}
const [m0, m1] = [scrape(`${out}.m0`), scrape(`${out}.m1`)];
const d = (k) => (m1.get(k) ?? 0) - (m0.get(k) ?? 0);
const stored = d('tern_messages_in_total{kind="stored"}');
const stages = {};
for (const k of m1.keys()) {
  const s = /^tern_stage_seconds_total\{stage="(\w+)"\}$/.exec(k);
  if (s) stages[s[1]] = +(d(k) / stored * 1e6).toFixed(2);
}
const hist = {};
for (const h of ['tern_store_queue_wait_seconds', 'tern_store_commit_seconds', 'tern_worker_inbox_wait_seconds',
  'tern_store_checkpoint_seconds', 'tern_store_checkpoint_hold_seconds', 'tern_store_fsync_seconds', 'tern_send_ack_seconds']) {
  const n = d(`${h}_count`);
  if (!n) continue;
  const over = (le) => +(1 - d(`${h}_bucket{le="${le}"}`) / n).toFixed(4);
  hist[h.replace(/^tern_/, '').replace(/_seconds$/, '')] =
    { n, mean_us: Math.round(d(`${h}_sum`) / n * 1e6), over_1ms: over('0.001'), over_10ms: over('0.01'), over_50ms: over('0.05') };
}
const commits = d('tern_store_commit_batch_size_count');
const per = (t) => Object.fromEntries(Object.entries(t).map(([k, v]) => [k === 'task-clock' ? 'cpu_us' : k,
  +(k === 'task-clock' ? v * 1e3 / msgs : v / msgs).toFixed(k === 'task-clock' ? 1 : 3)]));
const res = {
  rate, sent_per_s: Math.round(rep.throughput.sent_per_s), lost: rep.lost, duplicated: rep.duplicated,
  latency_us: rep.latency_us, ack_latency_us: rep.ack_latency_us, machine_cpu_busy: rep.machine_cpu_busy,
  per_msg: per(total), per_thread: Object.fromEntries([...threads].map(([n, t]) => [n, per(t)])),
  stage_us_per_msg: stages, jobs_per_commit: +(d('tern_store_commit_batch_size_sum') / commits).toFixed(1),
  writer_wakeups_per_commit: +(d('tern_store_writer_wakeups_total') / commits).toFixed(2), histograms: hist,
  wal_pages_per_commit: +(d('tern_store_wal_frames_total') / commits).toFixed(2),
  wal_pages_per_msg: +(d('tern_store_wal_frames_total') / stored).toFixed(3),
};
// When were the slow messages sent? The timeline's 100 ms bins (by send time) against the
// writer's checkpoint holds the poller saw (a hold between two polls, ~100 ms apart).
const bins = readFileSync(`${out}.timeline.tsv`, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'))
  .map((l) => l.split('\t').map(Number)).filter((r) => r[2] === 1)
  .map(([t, unix, , n, p50, p99, max]) => ({ t, unix, n, p50, p99, max }));
const polls = readFileSync(`${out}.poll`, 'utf8').split('\n').filter(Boolean).map((l) => l.split('\t').map(Number));
const holds = [];
for (let k = 1; k < polls.length; k++)
  if (polls[k][1] > polls[k - 1][1]) holds.push({ from: polls[k - 1][0], to: polls[k][0], ms: (polls[k][2] - polls[k - 1][2]) * 1e3 });
const inPoll = bins.filter((b) => polls.length && b.unix >= polls[0][0] && b.unix <= polls[polls.length - 1][0]);
const nearHold = (b) => holds.find((h) => b.unix >= h.from - 0.25 && b.unix <= h.to + 0.05);
const worst = [...inPoll].sort((x, y) => y.p99 - x.p99).slice(0, Math.max(1, Math.floor(inPoll.length / 20)));
// What the machine did while a bin's messages were sent ([unix, unix + 0.1 s], the polls
// around it): busy share of both cores, and the CPU (in cores) of ternd, its writer and the
// generator (bench/paced-sampler.mjs; absent from an older poll file).
const around = (b) => {
  const a = polls.filter((p) => p[0] <= b.unix).pop();
  const z = polls.find((p) => p[0] >= b.unix + 0.1);
  if (!a || !z || a.length < 9 || z[0] <= a[0]) return null;
  const s = z[0] - a[0];
  const cores = (i) => +((z[i] - a[i]) / 1e9 / s).toFixed(2);
  return { busy: +((z[4] - a[4]) / Math.max(1, z[5] - a[5])).toFixed(2), ternd: cores(6), writer: cores(7), gen: cores(8) };
};
const median = (v) => (v.length ? [...v].sort((x, y) => x - y)[v.length >> 1] : 0);
const ctx = inPoll.map(around).filter(Boolean);
res.timeline = {
  bins: inPoll.length, holds: holds.length,
  hold_ms: holds.map((h) => +h.ms.toFixed(1)),
  median_bin_p99_us: inPoll.length ? [...inPoll].sort((x, y) => x.p99 - y.p99)[inPoll.length >> 1].p99 : 0,
  share_of_bins_near_a_hold: inPoll.length ? +(inPoll.filter(nearHold).length / inPoll.length).toFixed(2) : 0,
  worst_5pct: worst.map((b) => ({ t: b.t, p99_us: b.p99, max_us: b.max, hold_ms: nearHold(b) ? +nearHold(b).ms.toFixed(1) : 0, ...around(b) })),
  median_bin: ctx.length ? Object.fromEntries(['busy', 'ternd', 'writer', 'gen'].map((k) => [k, median(ctx.map((c) => c[k]))])) : null,
};

if (process.argv.includes('--json')) {
  console.log(JSON.stringify(res));
} else {
  const L = rep.latency_us;
  console.log(`rate ${rate}: sent ${res.sent_per_s}/s, lost ${res.lost}, dup ${res.duplicated}; latency p50 ${Math.round(L.p50)} ` +
    `p99 ${Math.round(L.p99)} p99.9 ${Math.round(L.p999)} max ${Math.round(L.max)} us; machine busy ${(res.machine_cpu_busy * 100).toFixed(0)}%`);
  const fmt = (o) => Object.entries(o).filter(([, v]) => v).map(([k, v]) => `${k}=${v}`).join(' ');
  console.log(`per message (perf): ${fmt(res.per_msg)}`);
  for (const [n, t] of Object.entries(res.per_thread)) if (t.cpu_us) console.log(`  ${n.padEnd(12)} ${fmt(t)}`);
  console.log(`stage time per message (/metrics, wall µs): ${fmt(stages)}`);
  console.log(`jobs per commit ${res.jobs_per_commit}, writer wake-ups per commit ${res.writer_wakeups_per_commit}, ` +
    `WAL pages per commit ${res.wal_pages_per_commit} (${res.wal_pages_per_msg} per message)`);
  for (const [h, v] of Object.entries(hist)) console.log(`  ${h}: ${fmt(v)}`);
  const T = res.timeline;
  console.log(`timeline: ${T.bins} bins of 100 ms, median p99 ${T.median_bin_p99_us} us; ${T.holds} writer holds ` +
    `(${T.hold_ms.join(', ')} ms), ${Math.round(T.share_of_bins_near_a_hold * 100)}% of bins near one`);
  console.log(`  slowest 5% of bins: ${T.worst_5pct.filter((b) => b.hold_ms).length} of ${T.worst_5pct.length} near a hold: ` +
    T.worst_5pct.map((b) => `t=${b.t}s p99 ${b.p99_us}${b.hold_ms ? ` [hold ${b.hold_ms} ms]` : ''}` +
      (b.busy !== undefined ? ` (busy ${Math.round(b.busy * 100)}%, ternd ${b.ternd}, writer ${b.writer}, generator ${b.gen} cores)` : '')).join('; '));
  if (T.median_bin) console.log(`  the median bin: busy ${Math.round(T.median_bin.busy * 100)}%, ternd ${T.median_bin.ternd}, ` +
    `writer ${T.median_bin.writer}, generator ${T.median_bin.gen} cores`);
}

// Prints the table of a bench/cluster.sh results file (bench/README.md, "Cluster"):
//   node bench/cluster-table.mjs bench/results/<date>-<commit>-cluster.json
// One row per run. Rates and latencies are tern-bench's measured window; CPU per operation:
// ternd's over the measured window (all nodes summed), PostgreSQL's (postmaster and
// backends) and Redis's over the whole run (setup and drain too) divided by every message
// or login of the run, so those two are a little high. "wait/run": for ternd's and
// PostgreSQL's threads over the whole run, the seconds they waited for a core while runnable
// per second they ran (/proc schedstat): near 0 on a quiet machine; past 1, queueing for
// the shared cores is most of every latency.
import { readFileSync } from 'node:fs';

const res = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const ms = (us) => (us / 1000).toFixed(us < 10000 ? 2 : 0);
const k = (v) => (v >= 10000 ? `${(v / 1000).toFixed(1)}k` : Math.round(v).toString());
const rows = [['set-up', 'run', 'sent/s', 'deliv/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'ack p99', 'lost/dup',
  'ternd µs', 'PG µs', 'Redis µs', 'wait/run', 'busy']];
for (const r of res.runs) {
  if (r.error) {
    rows.push([r.setup, r.run, 'FAILED', r.error.slice(0, 60)]);
    continue;
  }
  const idle = r.scenario === 'idle';
  const login = r.scenario === 'login-storm';
  const ops = login ? r.delivered : r.sent; // the whole run's messages (or logins)
  const per = (s) => (ops ? (s * 1e6 / ops).toFixed(1) : '-');
  const l = r.latency_us;
  rows.push([
    r.setup, r.run,
    idle ? `${r.sessions_held} held` : k(r.throughput.sent_per_s),
    idle ? `${Math.round(r.server_rss_per_session_bytes)} B/sess` : k(r.throughput.delivered_per_s),
    idle ? '-' : ms(l.p50), idle ? '-' : ms(l.p99), idle ? '-' : ms(l.p999),
    r.ack_latency_us ? ms(r.ack_latency_us.p99) : '-',
    `${r.lost}/${r.duplicated}${r.errors ? ` (${r.errors} refused)` : ""}`,
    idle ? '-' : (r.server.cpu_us_per_op ?? 0).toFixed(1),
    idle ? '-' : per(r.pg_cpu_s), idle ? '-' : per(r.redis_cpu_s),
    ((r.ternd_run_wait_s + r.pg_wait_s) / (r.ternd_run_cpu_s + r.pg_cpu_s || 1)).toFixed(1),
    `${Math.round(100 * r.machine_cpu_busy)}%`,
  ]);
}
const w = rows[0].map((_, c) => Math.max(...rows.map((row) => String(row[c] ?? '').length)));
console.log(`tern cluster set, ${res.date}, ${res.commit}, ${res.machine.nproc} cores, load ${res.machine.loadavg}`);
console.log('(login storm: sent/s and deliv/s are logins/s; CPU columns are per message, or per login)');
for (const row of rows) console.log(row.map((v, c) => String(v ?? '').padEnd(w[c])).join('  '));

// Prints the pairs runs of a scripts/bench.sh results file, one line each, ternd's (lc) and
// mosquitto's (mqtt) side by side in the order they ran (bench/README.md, "The mosquitto
// reference"):  node bench/pairs-table.mjs bench/results/<date>-<commit>-mosquitto.json
// Latencies in ms, timed from each message's schedule; "lag" is how late the generator
// sent (in every latency); CPU is µs per message sent, the server's and the generator's.
import { readFileSync } from 'node:fs';

const res = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const ms = (us) => (us / 1000).toFixed(2);
const rows = [['server', 'rate', 'sent/s', 'p50', 'p99', 'p99.9', 'lag p50', 'lag p99', 'server µs', 'gen µs', 'busy', 'lost/dup']];
for (const r of res.runs) {
  if (r.scenario !== 'pairs') continue;
  if (r.error) {
    rows.push([r.protocol ?? '?', '', 'FAILED', r.error.slice(0, 60)]);
    continue;
  }
  const l = r.latency_us, g = r.send_lag_us ?? {};
  rows.push([r.protocol === 'mqtt' ? 'mosquitto' : 'ternd', r.params.rate || 'flat out', Math.round(r.throughput.sent_per_s),
    ms(l.p50), ms(l.p99), ms(l.p999), g.p50 ? ms(g.p50) : '-', g.p99 ? ms(g.p99) : '-',
    r.server.cpu_us_per_op.toFixed(1), r.generator.cpu_us_per_op.toFixed(1),
    `${Math.round(100 * r.machine_cpu_busy)}%`, `${r.lost}/${r.duplicated}`]);
}
const w = rows[0].map((_, c) => Math.max(...rows.map((row) => String(row[c] ?? '').length)));
console.log(`${res.date}, ${res.commit}, ${res.machine.nproc} cores`);
for (const row of rows) console.log(row.map((v, c) => String(v ?? '').padStart(w[c])).join('  '));

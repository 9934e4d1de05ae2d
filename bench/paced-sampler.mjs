// bench/paced.sh's poller: every 100 ms, one tab-separated line into OUT —
//   unix time, checkpoint holds, seconds held, commits (the store's counters so far),
//   the machine's busy and total CPU jiffies (/proc/stat), and the CPU ns so far of ternd,
//   of its writer thread and of the generator
// so that bench/paced-summary.mjs can say what each slow 100 ms bin of the timeline shared:
// a writer hold, a busy machine, a busy server or generator. No forks (bench/sample.mjs).
//
//   node bench/paced-sampler.mjs OUT APP_ID MASTER_KEY URL TERND_PID BENCH_PID
// runs until killed.
import fs from 'node:fs';
import { every, machineJiffies, metric, runNs, scrape, threadsNs } from './sample.mjs';

const [out, appId, masterKey, url, terndPid, benchPid] = process.argv.slice(2);
const fd = fs.openSync(out, 'a');
await every(100, async () => {
  const m = await scrape(url, appId, masterKey);
  if (!m) return;
  const t = threadsNs(terndPid);
  const [busy, total] = machineJiffies();
  const row = [
    (Date.now() / 1000).toFixed(3),
    metric(m, 'tern_store_checkpoint_hold_seconds_count'),
    metric(m, 'tern_store_checkpoint_hold_seconds_sum'),
    metric(m, 'tern_store_commit_seconds_count'),
    busy,
    total,
    t.reduce((s, x) => s + x.ns, 0),
    t.filter((x) => x.name === 'tern-writer').reduce((s, x) => s + x.ns, 0),
    runNs(benchPid),
  ];
  fs.writeSync(fd, `${row.join('\t')}\n`);
});

// bench/cluster.sh's sampler: every half second, one line into OUT —
//   "ROUND_TRIPS COMMITS MESSAGES PG_RUN_NS NODES_RUN_NS"
// the PostgreSQL writers' round trips, group commits and messages stored, summed over the
// nodes' /metrics, then the CPU time PostgreSQL (the postmaster and its children) and the
// nodes have used so far. One process, no forks (bench/sample.mjs): the shell loop it
// replaced started ~80 processes a second (curl, sed, pgrep ...), ~0.2 of a core on this VM,
// taken from the run it measured.
//
//   node bench/cluster-sampler.mjs OUT APP_ID MASTER_KEY PG_PID NODE_PIDS URLS
// NODE_PIDS and URLS comma-separated (ws://host:port/ as tern-bench takes them); runs until
// killed.
import fs from 'node:fs';
import { children, every, metric, runNs, scrape } from './sample.mjs';

const [out, appId, masterKey, pgPid, nodePids, urls] = process.argv.slice(2);
const nodes = nodePids.split(',').filter(Boolean);
const hosts = urls.split(',').filter(Boolean);
let pgKids = []; // the postmaster's children (its backends come and go): looked up every 2 s
let kidsAt = 0;
const fd = fs.openSync(out, 'a');
await every(500, async () => {
  let trips = 0;
  let commits = 0;
  let msgs = 0;
  for (const m of await Promise.all(hosts.map((u) => scrape(u, appId, masterKey)))) {
    trips += metric(m, 'tern_store_round_trips_total');
    commits += metric(m, 'tern_store_commit_seconds_count');
    msgs += metric(m, 'tern_messages_in_total\\{kind="stored"\\}');
  }
  if (Date.now() - kidsAt > 2000) (pgKids = children(pgPid)), (kidsAt = Date.now());
  const pg = [pgPid, ...pgKids].reduce((s, p) => s + runNs(p), 0);
  const nd = nodes.reduce((s, p) => s + runNs(p), 0);
  fs.writeSync(fd, `${trips} ${commits} ${msgs} ${pg} ${nd}\n`);
});

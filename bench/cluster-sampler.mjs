// bench/cluster.sh's sampler: every half second, one line into OUT —
//   "ROUND_TRIPS COMMITS MESSAGES PG_RUN_NS NODES_RUN_NS"
// the PostgreSQL writers' round trips, group commits and messages stored, summed over the
// nodes' /metrics, then the CPU time PostgreSQL (the postmaster and its children) and the
// nodes have used so far (/proc/PID/task/*/schedstat). One process, no forks: the shell loop
// it replaces started ~80 processes a second (curl, sed, pgrep ...), ~0.2 of a core on this
// VM, taken from the run it measured.
//
//   node bench/cluster-sampler.mjs OUT APP_ID MASTER_KEY PG_PID NODE_PIDS URLS
// NODE_PIDS and URLS comma-separated (ws://host:port/ as tern-bench takes them); runs until
// killed.
import fs from "node:fs";
import http from "node:http";

const [out, appId, masterKey, pgPid, nodePids, urls] = process.argv.slice(2);
const nodes = nodePids.split(",").filter(Boolean);
const hosts = urls.split(",").filter(Boolean).map((u) => new URL(u.replace(/^ws/, "http")));
const agent = new http.Agent({ keepAlive: true });
const metric = (text, name) => {
  const m = text.match(new RegExp(`^${name} (\\d+)$`, "m"));
  return m ? Number(m[1]) : 0;
};
const get = (u) =>
  new Promise((resolve) => {
    const req = http.get(
      { host: u.hostname, port: u.port, path: "/metrics", agent, headers: { "X-LC-Id": appId, "X-LC-Key": `${masterKey},master` } },
      (res) => {
        let b = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (b += d));
        res.on("end", () => resolve(b));
      },
    );
    req.on("error", () => resolve(""));
  });
const runNs = (pid) => {
  let sum = 0;
  let tasks = [];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  for (const t of tasks) {
    try {
      sum += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, "utf8").split(" ")[0]);
    } catch {} // a thread or a backend that ended meanwhile
  }
  return sum;
};
// the postmaster's children (its backends come and go): looked up again every 2 s
let pgKids = [];
let kidsAt = 0;
const children = (ppid) => {
  const kids = [];
  for (const p of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const st = fs.readFileSync(`/proc/${p}/stat`, "utf8");
      if (st.slice(st.lastIndexOf(")") + 2).split(" ")[1] === ppid) kids.push(p);
    } catch {}
  }
  return kids;
};

const fd = fs.openSync(out, "a");
for (;;) {
  const t0 = Date.now();
  let trips = 0;
  let commits = 0;
  let msgs = 0;
  for (const m of await Promise.all(hosts.map(get))) {
    trips += metric(m, "tern_store_round_trips_total");
    commits += metric(m, "tern_store_commit_seconds_count");
    msgs += metric(m, 'tern_messages_in_total\\{kind="stored"\\}');
  }
  if (t0 - kidsAt > 2000) (pgKids = children(pgPid)), (kidsAt = t0);
  const pg = [pgPid, ...pgKids].reduce((s, p) => s + runNs(p), 0);
  const nd = nodes.reduce((s, p) => s + runNs(p), 0);
  fs.writeSync(fd, `${trips} ${commits} ${msgs} ${pg} ${nd}\n`);
  await new Promise((r) => setTimeout(r, Math.max(0, 500 - (Date.now() - t0))));
}

// What bench/cluster-sampler.mjs and bench/paced-sampler.mjs read every tick, without
// starting a process (a fork and exec is dear on this VM, and a sampler's cost is taken from
// the run it measures).
import fs from 'node:fs';
import http from 'node:http';

const agent = new http.Agent({ keepAlive: true });

// The value of one sample line of a Prometheus text (`name value`), 0 when absent.
export const metric = (text, name) => {
  const m = text.match(new RegExp(`^${name} ([0-9.e+-]+)$`, 'm'));
  return m ? Number(m[1]) : 0;
};

// GET /metrics of a ternd (its ws:// or http:// URL) with the master key: its text, '' on error.
export const scrape = (url, appId, masterKey) =>
  new Promise((resolve) => {
    const u = new URL(url.replace(/^ws/, 'http'));
    const req = http.get(
      { host: u.hostname, port: u.port, path: '/metrics', agent, headers: { 'X-LC-Id': appId, 'X-LC-Key': `${masterKey},master` } },
      (res) => {
        let b = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (b += d));
        res.on('end', () => resolve(b));
      },
    );
    req.on('error', () => resolve(''));
  });

// CPU time so far of each thread of pid, in ns, by thread id and (names: the default) name
// (/proc/PID/task/*).
export const threadsNs = (pid, names = true) => {
  const out = [];
  let tasks = [];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      const ns = Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
      const name = names ? fs.readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim() : '';
      out.push({ tid: t, name, ns });
    } catch {} // a thread that ended meanwhile
  }
  return out;
};

// The CPU time so far of all of pid's threads, in ns (their names not read: a read less per
// thread each tick, for every PostgreSQL backend).
export const runNs = (pid) => threadsNs(pid, false).reduce((s, t) => s + t.ns, 0);

// The processes whose parent is ppid (a scan of /proc).
export const children = (ppid) => {
  const kids = [];
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const st = fs.readFileSync(`/proc/${p}/stat`, 'utf8');
      if (st.slice(st.lastIndexOf(')') + 2).split(' ')[1] === String(ppid)) kids.push(p);
    } catch {}
  }
  return kids;
};

// The machine's CPU time so far, in jiffies: [busy, total] (/proc/stat's first line).
export const machineJiffies = () => {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] || 0); // idle and iowait
  const total = f.reduce((s, v) => s + v, 0);
  return [total - idle, total];
};

// Calls fn every ms milliseconds (the next call ms after the previous one began) until killed.
export const every = async (ms, fn) => {
  for (;;) {
    const t0 = Date.now();
    await fn();
    await new Promise((r) => setTimeout(r, Math.max(0, ms - (Date.now() - t0))));
  }
};

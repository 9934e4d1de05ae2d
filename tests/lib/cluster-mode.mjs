// Cluster mode for the interop suite (issue #14: "the official-JS-SDK interop suite runs
// once with its clients spread over 3 nodes"). With TERN_TEST_CLUSTER=n (n ≥ 2) in the
// environment, startInteropServer() starts n ternd nodes on ONE PostgreSQL (a fresh
// database per call) and ONE Redis (a fresh redis-server per call), instead of one ternd on
// SQLite, and returns a stand-in for the server the tests use:
//
// * appId, appKey, masterKey: the same on every node;
// * port, wsUrl, httpUrl: getters that name the next node at each read, so REST calls a
//   test makes rotate over the nodes (a spread `{...server}` takes one of each);
// * nodes (not enumerable, so a spread copy such as `{...server, wsUrl: proxy.wsUrl}` is a
//   plain one-node target): the node servers. Clients (interop-util.mjs) sends each
//   Realtime it makes to the next of them, so a test's clients sit on node 1, 2, 3, 1, … in
//   the order they are made;
// * stop(): every node, then Redis, the shared files directory and the database.
//
// The PostgreSQL is TERN_TEST_PG when set (scripts/test.sh starts one for the run),
// otherwise one started by this test file's process on first use (tests/lib/pg.mjs, stopped
// at exit). Without TERN_TEST_CLUSTER, startInteropServer is startServer.
//
// clusterSkip(reason): test options that skip a test in cluster mode only, for the few
// tests that are single-node by nature (docs/cluster.md lists them).
import { execFileSync } from 'node:child_process';
import { after, before } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNodes, startServer, waitNodes } from './server.mjs';
import { closeAll } from './proto-client.mjs';
import { startRedis } from './redis.mjs';
import { startPg } from './pg.mjs';

export const CLUSTER_NODES = Number(process.env.TERN_TEST_CLUSTER || 0) >= 2 ? Number(process.env.TERN_TEST_CLUSTER) : 0;

export function clusterSkip(reason) {
  return CLUSTER_NODES ? { skip: `single-node test in cluster mode: ${reason}` } : {};
}

const PSQL = '/usr/lib/postgresql/15/bin/psql';
let pg; // this process's PostgreSQL access: { createDatabase(), dropDatabase(uri) }
let dbSeq = 0;

function pgAccess() {
  if (pg) return pg;
  if (process.env.TERN_TEST_PG) {
    const uri = process.env.TERN_TEST_PG;
    const sql = (text) => execFileSync(PSQL, [uri, '-tAc', text], { encoding: 'utf8' });
    pg = {
      createDatabase() {
        dbSeq += 1;
        const name = `interop_${process.pid}_${dbSeq}`;
        sql(`CREATE DATABASE ${name}`);
        return { name, uri: uri.replace(/\/[^/?]*(\?.*)?$/, `/${name}$1`).replace(/undefined$/, '') };
      },
      dropDatabase(name) { sql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`); },
    };
  } else {
    const own = startPg(); // stopped when this process exits
    pg = {
      createDatabase() {
        const uri = own.createDatabase('interop');
        return { name: uri.replace(/^.*\/([^/?]+)(\?.*)?$/, '$1'), uri };
      },
      dropDatabase(name) { own.sql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`); },
    };
  }
  return pg;
}

// A cluster of CLUSTER_NODES nodes standing in for one server (see above). opts as
// startServer's: env for every node (args too); dataDir is refused (one directory cannot
// hold several nodes: such tests opt out with clusterSkip).
export async function startCluster(n = CLUSTER_NODES || 3, { env = {}, args = [], dataDir } = {}) {
  if (dataDir) throw new Error('startCluster: a shared data directory is single-node (use clusterSkip)');
  const db = pgAccess().createDatabase();
  // uploaded files: one directory for every node (in a deployment, shared storage such as
  // NFS: docs/cluster.md), so a file uploaded to one node downloads from any
  const filesDir = mkdtempSync(join(tmpdir(), 'tern-cluster-files-'));
  const redis = await startRedis();
  const onExit = () => {
    try { process.kill(redis.pid); } catch { /* gone */ }
    rmSync(filesDir, { recursive: true, force: true });
  };
  process.on('exit', onExit);
  let nodes;
  try {
    // startNodes' work, but a node that started is stopped again when another did not or the
    // bus never joined them (no ternd left running after a failed suite)
    const started = await Promise.allSettled(Array.from({ length: n }, (_, i) => startServer({
      env: { TERN_BUS: redis.url, TERN_NODE_ID: `node${i + 1}`, TERN_STORE: db.uri, TERN_FILES_DIR: filesDir, ...env },
      args,
    })));
    const up = started.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    try {
      const failed = started.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      await Promise.all(up.map((s) => waitNodes(s, n)));
    } catch (e) {
      await Promise.allSettled(up.map((s) => s.kill()));
      throw e;
    }
    nodes = up;
  } catch (e) {
    process.removeListener('exit', onExit);
    onExit();
    await redis.stop();
    pg.dropDatabase(db.name);
    throw e;
  }
  const next = { port: 0, ws: 0, http: 0 };
  const rot = (k) => nodes[next[k]++ % nodes.length];
  const cluster = {
    appId: nodes[0].appId,
    appKey: nodes[0].appKey,
    masterKey: nodes[0].masterKey,
    get port() { return rot('port').port; },
    get wsUrl() { return rot('ws').wsUrl; },
    get httpUrl() { return rot('http').httpUrl; },
    stderr: () => nodes.map((s, i) => `--- node${i + 1}\n${s.stderr()}`).join('\n'),
    async stop() {
      const results = await Promise.allSettled(nodes.map((s) => s.stop()));
      process.removeListener('exit', onExit);
      await redis.stop();
      rmSync(filesDir, { recursive: true, force: true });
      try { pg.dropDatabase(db.name); } catch { /* the server went with the process */ }
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
  };
  Object.defineProperty(cluster, 'nodes', { value: nodes, enumerable: false });
  Object.defineProperty(cluster, 'redis', { value: redis, enumerable: false });
  return cluster;
}

// The interop suite's server: a cluster in cluster mode, else one ternd.
export function startInteropServer(opts = {}) {
  return CLUSTER_NODES ? startCluster(CLUSTER_NODES, opts) : startServer(opts);
}

/** Inside a describe of tests/cluster: before it, a Redis (and with pg, a PostgreSQL and a
 *  fresh database for the nodes' store) and n nodes on them, started by startNodes with env;
 *  after it, every proto client closed and everything stopped. Returns the holder: its
 *  `nodes`, `redis` and `pg` are set once `before` ran. */
export function useNodes(n, { pg = false, env = {} } = {}) {
  const c = {};
  before(async () => {
    if (pg) c.pg = startPg();
    if (pg) c.db = c.pg.createDatabase(); /* the nodes' store, for a test's own psql (lockTable) */
    c.redis = await startRedis();
    c.nodes = await startNodes(n, c.redis, { env: { ...(c.db ? { TERN_STORE: c.db } : {}), ...env } });
  });
  after(async () => {
    for (const s of c.nodes || []) await closeAll(s);
    await Promise.all((c.nodes || []).map((s) => s.stop()));
    if (c.redis) await c.redis.stop();
    c.pg?.stop();
  });
  return c;
}

// A real PostgreSQL for a test: scripts/pg.sh starts a throwaway server (the Debian
// package's binaries, fsync on, a free loopback port, a temporary directory) and this
// wraps it: a fresh database per call of createDatabase, pause()/resume() to stop and
// restart the server under a running ternd (same port, same data), stop() to remove it.
// Each test file starts its own, so stopping it never disturbs another file's tests.
import { execFileSync, spawn } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const script = join(root, 'scripts', 'pg.sh');
const PSQL = '/usr/lib/postgresql/15/bin/psql';

export function startPg() {
  const out = execFileSync(script, ['start'], { encoding: 'utf8' }).trim().split('\n');
  const [uri, dir] = out;
  let n = 0;
  const pg = {
    uri,
    dir,
    // A new empty database; its URI.
    createDatabase(prefix = 'tern') {
      n += 1;
      const name = `${prefix}_${process.pid}_${n}`;
      pg.sql(`CREATE DATABASE ${name}`);
      return uri.replace(/\/[^/?]*(\?.*)?$/, `/${name}$1`).replace(/undefined$/, '');
    },
    // Runs SQL as the superuser (in database db, default postgres); its output, unaligned.
    sql(text, db) {
      const target = db ? uri.replace(/\/[^/?]*$/, `/${db}`) : uri;
      return execFileSync(PSQL, [target, '-tAc', text], { encoding: 'utf8' }).trim();
    },
    pause() { execFileSync(script, ['pause', dir]); },
    resume() { execFileSync(script, ['resume', dir]); },
    stop() {
      if (stopped) return;
      stopped = true;
      execFileSync(script, ['stop', dir]);
    },
  };
  let stopped = false;
  // a test file that dies before its teardown leaves no server behind
  process.on('exit', () => {
    try {
      pg.stop();
    } catch {
      /* gone already */
    }
  });
  return pg;
}

/** Another PostgreSQL session holding `table` in ACCESS EXCLUSIVE mode: reads of it wait
 * until commit(); close() ends the session (and the lock, if still held) and waits for it. */
export async function lockTable(db, table) {
  return holdLock(db, `LOCK TABLE ${table} IN ACCESS EXCLUSIVE MODE`);
}

/** The same for the rows of `table` that `where` selects, locked FOR UPDATE: writes of them
 * wait until commit(), reads do not. */
export async function lockRows(db, table, where) {
  return holdLock(db, `SELECT 1 FROM ${table} WHERE ${where} FOR UPDATE`);
}

async function holdLock(db, sql) {
  const p = spawn('/usr/lib/postgresql/15/bin/psql', [db, '-tA', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  const locked = new Promise((resolve) => p.stdout.on('data', (d) => { out += d; if (out.includes('locked')) resolve(); }));
  p.stdin.write(`BEGIN; ${sql}; SELECT 'locked';\n`);
  await locked;
  return {
    commit() { p.stdin.write('COMMIT;\n'); p.stdin.end(); },
    async close() {
      p.stdin.end();
      await new Promise((resolve) => (p.exitCode !== null ? resolve() : p.on('exit', resolve)));
    },
  };
}

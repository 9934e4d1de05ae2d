// Holding a store's writer from another process (tests/proto/dedupe.test.mjs,
// chatroom-rules.test.mjs).
import { spawn } from 'node:child_process';

/** Another process holds what the store's writer needs before it can commit: on SQLite the
 * database's write lock (the sqlite3 CLI in BEGIN IMMEDIATE; ternd's writer waits for it,
 * busy_timeout 10 s), on PostgreSQL the conversation's order lock (the advisory lock
 * pg_writer.c takes, held to COMMIT: PS_ORDER_LOCK). Resolves once it is held; release()
 * lets the writer go on. Reads are not blocked (WAL; an advisory lock). */
export async function holdWriter(cmd, args, lockSql, unlockSql) {
  const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  const held = new Promise((resolve, reject) => {
    p.stdout.on('data', (d) => {
      out += d;
      if (out.includes('held-now')) resolve();
    });
    p.on('exit', (code) => reject(new Error(`${cmd} exited (${code}) before the lock was held: ${out}`)));
  });
  const exited = new Promise((resolve) => p.on('exit', resolve));
  p.stdin.write(`${lockSql}\nSELECT 'held-now';\n`);
  await held;
  return {
    async release() {
      p.stdin.end(`${unlockSql}\n`);
      await exited;
    },
  };
}

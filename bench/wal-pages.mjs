#!/usr/bin/env node
// bench/wal-pages.mjs — which tables' pages the commits in a WAL wrote (issue #17 point 3).
//
//   node bench/wal-pages.mjs DB [WAL]      WAL defaults to DB-wal
//
// Reads the WAL's frames that belong to its current generation (their salts match the
// header's), groups them into commits (a frame with a non-zero "database size" ends one),
// and names each frame's page with SQLite's dbstat table of DB (the sqlite3 shell, which
// opens DB with its WAL). Prints the commits, the frames per commit, and per table (or
// index) the frames per commit and the share of all frames. Take copies of a live ternd's
// files (cp DB DB-wal /tmp/x/, in that order): the WAL may end in a torn frame, which is
// ignored. Never part of make test.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const [db, walPath = `${process.argv[2]}-wal`] = process.argv.slice(2);
if (!db) {
  console.error('usage: node bench/wal-pages.mjs DB [WAL]');
  process.exit(2);
}
const wal = readFileSync(walPath);
if (wal.length < 32) throw new Error(`${walPath}: no WAL header`);
const pageSize = wal.readUInt32BE(8);
const salt1 = wal.readUInt32BE(16), salt2 = wal.readUInt32BE(20);

const owner = new Map(); // page number → table or index name
const out = execFileSync('sqlite3', ['-readonly', db, 'SELECT pageno, name FROM dbstat'], {
  maxBuffer: 1 << 30,
}).toString();
for (const line of out.split('\n')) {
  const bar = line.indexOf('|');
  if (bar > 0) owner.set(Number(line.slice(0, bar)), line.slice(bar + 1));
}

const commits = []; // each: Map name → frames
let cur = new Map();
for (let off = 32; off + 24 + pageSize <= wal.length; off += 24 + pageSize) {
  if (wal.readUInt32BE(off + 8) !== salt1 || wal.readUInt32BE(off + 12) !== salt2) break;
  const page = wal.readUInt32BE(off);
  const name = owner.get(page) ?? '(free or new page)';
  cur.set(name, (cur.get(name) ?? 0) + 1);
  if (wal.readUInt32BE(off + 4) !== 0) {
    commits.push(cur);
    cur = new Map();
  }
}
const total = new Map();
let frames = 0;
for (const c of commits)
  for (const [name, n] of c) {
    total.set(name, (total.get(name) ?? 0) + n);
    frames += n;
  }
console.log(`page size ${pageSize}; ${commits.length} commits, ${frames} frames: ${(frames / commits.length).toFixed(2)} per commit`);
for (const [name, n] of [...total].sort((a, b) => b[1] - a[1]))
  console.log(`  ${name.padEnd(28)} ${(n / commits.length).toFixed(2).padStart(7)} per commit  ${((100 * n) / frames).toFixed(1).padStart(5)}%`);

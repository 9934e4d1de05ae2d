#!/usr/bin/env node
// Checks the "test" column of docs/security.md "Limits and their defaults": every test it
// cites ("name" after a `file`, a name ending in "…" cited by its beginning) exists in that
// file, so a renamed test cannot leave the table pointing at nothing. Run from anywhere:
//   node scripts/check-limits-doc.mjs
// Exits 1 and lists what it could not find. Static: it reads the test sources (names given
// to test(), it() and describe(); a template literal's ${…} parts match any text whose
// pieces occur in the file) and runs nothing.
import { readFileSync, existsSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const md = readFileSync(join(root, 'docs', 'security.md'), 'utf8');
const section = md.split(/^## /m).find((s) => s.startsWith('Limits and their defaults'));
if (!section) throw new Error('docs/security.md has no "Limits and their defaults" section');

const alias = {
  LT: 'tests/proto/limits-table.test.mjs',
  LIM: 'tests/proto/limits.test.mjs',
};

/** tests/**: every file by its base name, to resolve a cell's short `x.test.mjs`. */
const byBase = new Map();
(function walk(dir) {
  for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === 'fixtures') continue;
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) walk(rel);
    else byBase.set(e.name, [...(byBase.get(e.name) || []), rel]);
  }
}('tests'));

function resolve(ref) {
  if (alias[ref]) return alias[ref];
  if (ref.includes('/')) return existsSync(join(root, ref)) ? ref : null;
  const hits = byBase.get(ref) || [];
  return hits.length === 1 ? hits[0] : null;
}

const names = new Map(); // file -> [{literal, template}]
function testNames(file) {
  if (names.has(file)) return names.get(file);
  const src = readFileSync(join(root, file), 'utf8');
  const out = [];
  const re = /\b(?:test|it|describe)\(\s*(['"`])((?:\\.|(?!\1)[^\\])*)\1/g;
  for (let m; (m = re.exec(src));) {
    const text = m[2].replace(/\\(['"`\\])/g, '$1');
    out.push({ text, template: m[1] === '`' && text.includes('${') });
  }
  names.set(file, { list: out, src });
  return names.get(file);
}

const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Does `cited` (the beginning of a name) fit this template literal? */
function fitsTemplate(tpl, cited, src) {
  const parts = tpl.split(/\$\{[^}]*\}/);
  // the template cut after each of its literal characters: cited must match one cut whole
  for (let p = 0; p < parts.length; p++) {
    for (let k = parts[p].length; k >= 0; k--) {
      const head = parts.slice(0, p).map(esc).join('(.*?)') + (p ? '(.*?)' : '') + esc(parts[p].slice(0, k));
      const m = new RegExp(`^${head}${k === parts[p].length && p < parts.length - 1 ? '(.*)' : ''}$`).exec(cited);
      if (!m) continue;
      // what the ${…} parts stood for must be text of the file (a case table's values)
      if (m.slice(1).every((g) => !g.trim() || src.includes(g.trim()))) return true;
    }
  }
  return false;
}

const problems = [];
let checked = 0;
for (const line of section.split('\n')) {
  if (!line.startsWith('| ') || line.startsWith('| what') || line.startsWith('|---')) continue;
  const cells = line.split(' | ');
  const cell = cells[cells.length - 1].replace(/ \|$/, '');
  let file = null;
  const tokens = /`([^`]+)`|"([^"]+)"/g;
  for (let m; (m = tokens.exec(cell));) {
    if (m[1] !== undefined) {
      if (/^(LT|LIM)$|\.mjs$|(^|\/)test_\w+\.c$/.test(m[1])) {
        file = resolve(m[1]);
        if (!file) problems.push(`${m[1]}: no such test file (row "${cells[0].slice(2, 60)}")`);
      } else if (file && file.endsWith('.c') && /^test_\w+$/.test(m[1])) {
        checked++;
        if (!new RegExp(`static void ${m[1]}\\(`).test(readFileSync(join(root, file), 'utf8'))) problems.push(`${file}: no ${m[1]}`);
      }
      continue;
    }
    if (!file) continue;
    const cited = m[2].replace(/\s*…$/, '');
    const { list, src } = testNames(file);
    checked++;
    const ok = list.some((n) => (n.template ? fitsTemplate(n.text, cited, src) : n.text.startsWith(cited)));
    if (!ok) problems.push(`${file}: no test named "${m[2]}"`);
  }
}
if (problems.length) {
  console.error(problems.join('\n'));
  console.error(`${problems.length} of ${checked} cited tests not found`);
  process.exit(1);
}
console.log(`all ${checked} tests cited in docs/security.md "Limits and their defaults" exist`);

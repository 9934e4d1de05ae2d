// Builds the console and the chat into OUT (default dist/): one bundled script, one
// stylesheet and the page for each. Everything comes from web/ and node_modules pinned by
// package-lock.json; esbuild's output depends only on those, so the bundle is reproducible.
//   node build.mjs OUT
import { build } from 'esbuild';
import { mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] || join(here, 'dist'));

const pages = [
  { name: 'console', entry: 'console/main.js', css: ['node_modules/uplot/dist/uPlot.min.css', 'console/console.css'] },
  { name: 'chat', entry: 'chat/chat.js', css: ['chat/chat.css'] },
];

for (const p of pages) {
  const dir = join(out, p.name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await build({
    entryPoints: [join(here, p.entry)],
    outfile: join(dir, `${p.name}.js`),
    bundle: true,
    minify: true,
    format: 'iife',
    platform: 'browser',
    target: ['chrome100', 'firefox100', 'safari15'],
    legalComments: 'eof',
    logLevel: 'warning',
    // the SDKs read process.env in places; in a page there is none
    define: { 'process.env.NODE_ENV': '"production"', 'process.env.RTM_SERVER_NAME': 'undefined' },
  });
  writeFileSync(join(dir, `${p.name}.css`), p.css.map((f) => readFileSync(join(here, f), 'utf8')).join('\n'));
  for (const f of ['index.html', 'favicon.svg']) writeFileSync(join(dir, f), readFileSync(join(here, p.name, f)));
}
console.log(`web: built console and chat into ${out}`);

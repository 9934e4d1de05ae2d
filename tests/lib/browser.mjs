// Driving Debian's chromium headless with playwright-core (from web/node_modules, pinned in
// web/package-lock.json) for the console and chat tests. Every page is watched: a console
// error, an uncaught exception, a failed request or a request to anything but the ternd
// under test is recorded, and checkPage() fails the test on any of them.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const require = createRequire(join(root, 'web', 'package.json'));
const { chromium } = require('playwright-core');

export const OUT = join(root, 'tests', 'browser', 'out');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** The web assets of the build under test (TERN_BUILD/web), what ternd serves by default. */
export const webRoot = () => join(process.env.TERN_BUILD || join(root, 'build-asan'), 'web');

// launch() gives Chromium a fresh --user-data-dir of its own (a temporary profile).
export async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-dev-shm-usage'],
  });
}

/**
 * A new context and page for `server`, with a watch on what it does: page.problems lists
 * console errors, page errors, failed requests and requests outside the server's origin.
 * `allowErrors` are regexps of console messages a test provokes on purpose (a 401 it asked for).
 */
export async function openPage(browser, server, { viewport = { width: 1280, height: 800 }, allowErrors = [] } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const origin = server.httpUrl;
  const ws = `ws://127.0.0.1:${server.port}/`;
  page.problems = [];
  page.requests = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    if (!allowErrors.some((re) => re.test(text))) page.problems.push(`console error: ${text}`);
  });
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('request', (req) => {
    const url = req.url();
    page.requests.push(url);
    if (!(url.startsWith(`${origin}/`) || url === origin || url.startsWith(ws) || url.startsWith('data:') || url.startsWith('blob:'))) {
      page.problems.push(`request outside ternd: ${url}`);
    }
  });
  page.on('response', (res) => {
    if (res.status() >= 400) page.problems.push(`HTTP ${res.status()}: ${res.request().method()} ${res.url()}`);
  });
  page.on('requestfailed', (req) => {
    const f = req.failure()?.errorText || '';
    if (!/ERR_ABORTED/.test(f)) page.problems.push(`request failed: ${req.url()} ${f}`);
  });
  page.on('websocket', (s) => {
    page.requests.push(s.url());
    if (!s.url().startsWith(ws)) page.problems.push(`WebSocket outside ternd: ${s.url()}`);
  });
  return page;
}

/** Fails when the page had console errors or reached beyond ternd. */
export function checkPage(page, what) {
  assert.deepEqual(page.problems, [], `${what}: ${page.problems.join('\n')}`);
}

export async function screenshot(page, name) {
  mkdirSync(OUT, { recursive: true });
  const path = join(OUT, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}

// /console in a real browser: a wrong master key is refused, the key lives in session
// storage only, the dashboard shows a live message rate while tern-bench sends, a
// conversation is found by an attribute, a kick from the console reaches a client signed in
// to /chat in another browser context, and every page loads without console errors or
// requests outside ternd. Screenshots of each page go to tests/browser/out/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startServer } from '../lib/server.mjs';
import { benchBin, spawnBench } from '../lib/bench.mjs';
import { launch, openPage, checkPage, screenshot, webRoot } from '../lib/browser.mjs';

let server;
let browser;
before(async () => {
  assert.ok(existsSync(benchBin), `${benchBin} is missing: build the tern-bench target`);
  server = await startServer({ env: { TERN_WEB_ROOT: webRoot() } });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

async function rest(method, path, body) {
  const res = await fetch(`${server.httpUrl}${path}`, {
    method,
    headers: { 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(res.ok, `${method} ${path}: ${res.status}`);
  return res.json();
}

async function signIn(page, masterKey = server.masterKey) {
  await page.goto(`${server.httpUrl}/console/`);
  await page.fill('input[name=appId]', server.appId);
  await page.fill('input[name=masterKey]', masterKey);
  await page.click('#login button');
}

test('a wrong master key is refused, and the right one stays in session storage only', async () => {
  const page = await openPage(browser, server, { allowErrors: [/status of 401/] });
  await signIn(page, 'not-the-master-key');
  await page.waitForFunction(() => document.getElementById('login-error').textContent !== '');
  assert.equal(await page.textContent('#login-error'), 'Wrong app id or master key.');
  assert.equal(await page.isVisible('#shell'), false);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused key is not kept');
  page.problems = page.problems.filter((p) => !/HTTP 401: GET .*\/1\.2\/rtm\/stats$/.test(p)); // the refusal itself

  await signIn(page);
  await page.waitForSelector('#shell:not([hidden])');
  const stored = await page.evaluate(() => JSON.parse(sessionStorage.getItem('tern-console')));
  assert.deepEqual(stored, { appId: server.appId, masterKey: server.masterKey });
  assert.equal(await page.evaluate(() => document.cookie), '');
  assert.equal(await page.evaluate(() => localStorage.length), 0);
  assert.ok(!page.requests.some((u) => u.includes(server.masterKey)), 'the key never travels in a URL');
  assert.ok(!page.url().includes(server.masterKey));
  // a new tab of the same browser is a new session: signed out
  const other = await page.context().newPage();
  await other.goto(`${server.httpUrl}/console/`);
  await other.waitForSelector('#login:not([hidden])');
  await other.close();
  await page.click('#logout');
  await page.waitForSelector('#login:not([hidden])');
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  checkPage(page, 'console sign-in');
  await page.context().close();
});

test('the dashboard shows a live message rate while tern-bench sends', async () => {
  const page = await openPage(browser, server);
  await signIn(page);
  await page.waitForSelector('#chart-messages .uplot');
  const bench = spawnBench(['--url', server.wsUrl, '--app-id', server.appId, '--scenario', 'pairs', '--clients', '10',
    '--rate', '300', '--duration', '8', '--warmup', '0.5', '--drain', '10', '--json']);
  try {
    await page.waitForFunction(() => Number(document.querySelector('#tile-in .v').textContent) > 0, null, { timeout: 20000 });
    await page.waitForFunction(() => Number(document.querySelector('#tile-out .v').textContent) > 0, null, { timeout: 10000 });
    await page.waitForFunction(() => Number(document.querySelector('#tile-sessions .v').textContent) >= 10, null, { timeout: 10000 });
    await page.waitForFunction(() => document.querySelector('#tile-ack .v').textContent !== '–', null, { timeout: 10000 });
    await new Promise((r) => setTimeout(r, 3000)); // a few seconds of curve for the picture
    await screenshot(page, 'console-dashboard');
  } finally {
    const r = await bench.done;
    assert.equal(r.code, 0, `tern-bench: ${r.stderr}`);
  }
  checkPage(page, 'dashboard');
  await page.context().close();
});

test('conversations: find one by an attribute, open it, see its members and messages', async () => {
  const topic = `cats-${Date.now()}`;
  const target = await rest('POST', '/1.2/rtm/conversations', { name: 'Cat lovers', m: ['Ann', 'Bob'], attr: { topic } });
  await rest('POST', '/1.2/rtm/conversations', { name: 'Dog lovers', m: ['Ann'], attr: { topic: 'dogs' } });
  await rest('POST', `/1.2/rtm/conversations/${target.objectId}/messages`,
    { from_client: 'Ann', message: JSON.stringify({ _lctype: -1, _lctext: 'meow' }) });
  const page = await openPage(browser, server);
  await signIn(page);
  await page.waitForSelector('#shell:not([hidden])');
  await page.click('#nav a[href="#/conversations"]');
  await page.fill('#conv-search input[name=attrKey]', 'topic');
  await page.fill('#conv-search input[name=attrValue]', topic);
  await page.click('#conv-search button');
  await page.waitForFunction((id) => {
    const rows = [...document.querySelectorAll('#conv-results tbody tr')];
    return rows.length === 1 && rows[0].textContent.includes(id);
  }, target.objectId);
  await screenshot(page, 'console-conversations');
  await page.click(`#conv-results a:text("${target.objectId}")`);
  await page.waitForSelector('#members tbody tr');
  assert.deepEqual(await page.$$eval('#members tbody tr td:first-child', (tds) => tds.map((t) => t.textContent)), ['Ann', 'Bob']);
  await page.locator('#history li .content', { hasText: 'meow' }).waitFor();
  // send as a client from the console; it shows in the history
  await page.fill('#send-form input[name=from]', 'Bob');
  await page.fill('#send-form input[name=text]', 'purr');
  await page.click('#send-form button');
  await page.locator('#history li .content', { hasText: 'purr' }).waitFor();
  await screenshot(page, 'console-conversation');
  checkPage(page, 'conversations');
  await page.context().close();
});

test('a kick from the console signs out a client in another browser', async () => {
  const chat = await openPage(browser, server);
  await chat.goto(`${server.httpUrl}/chat/`);
  await chat.fill('input[name=appId]', server.appId);
  await chat.fill('input[name=appKey]', server.appKey);
  await chat.fill('input[name=clientId]', 'Spike');
  await chat.click('#login button');
  await chat.waitForSelector('#app:not([hidden])');

  const page = await openPage(browser, server);
  await signIn(page);
  await page.waitForSelector('#shell:not([hidden])');
  await page.click('#nav a[href="#/clients"]');
  await page.fill('#client-check input[name=ids]', 'Spike, Nobody');
  await page.click('#client-check button');
  await page.waitForSelector('#client-results tbody tr');
  const rows = await page.$$eval('#client-results tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent)));
  assert.deepEqual(rows.map((r) => r.slice(0, 3)), [['Spike', 'online', '0'], ['Nobody', 'offline', '0']]);
  await screenshot(page, 'console-clients');
  await page.click('#client-results tbody tr button:text("kick")');
  await chat.waitForSelector('#banner:not([hidden])');
  assert.match(await chat.textContent('#banner'), /Signed out by the server: .*\(4115\)/);
  await page.waitForFunction(() => document.querySelector('#client-results tbody tr td:nth-child(2)')?.textContent === 'offline');
  checkPage(page, 'clients');
  checkPage(chat, 'the kicked chat');
  await Promise.all([page.context().close(), chat.context().close()]);
});

test('every page loads without errors and fits a 360 px screen; Push and Files list what the server holds', async () => {
  const inst = await rest('POST', '/1.1/installations', { deviceType: 'android', registrationId: 'console-phone-1', channels: ['Spike'] });
  const upload = await fetch(`${server.httpUrl}/1.1/files/console-note.txt`, {
    method: 'POST',
    headers: { 'X-LC-Id': server.appId, 'X-LC-Key': `${server.masterKey},master`, 'Content-Type': 'text/plain' },
    body: 'a file the Files page lists',
  });
  assert.equal(upload.status, 201, await upload.clone().text());
  const file = await upload.json();
  const page = await openPage(browser, server);
  await signIn(page);
  await page.waitForSelector('#shell:not([hidden])');
  for (const name of ['service', 'push', 'files', 'hooks']) {
    await page.click(`#nav a[href="#/${name}"]`);
    await page.waitForSelector('#view h2');
    await page.waitForLoadState('networkidle');
    await screenshot(page, `console-${name}`);
    const cells = await page.$$eval('#view table:first-of-type tbody td', (tds) => tds.map((td) => td.textContent));
    if (name === 'push') assert.ok(cells.includes(inst.objectId) && cells.includes('android'), `Push lists the installation: ${cells}`);
    if (name === 'files') assert.ok(cells.includes(file.objectId) && cells.includes('console-note.txt'), `Files lists the upload: ${cells}`);
  }
  await page.setViewportSize({ width: 360, height: 740 });
  for (const name of ['dashboard', 'conversations', 'clients', 'push']) {
    await page.click(`#nav a[href="#/${name}"]`);
    await page.waitForSelector('#view h2');
    await page.waitForLoadState('networkidle');
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 360, `${name} at 360 px: page is ${width} px wide`);
    if (name === 'dashboard') await screenshot(page, 'console-360px');
  }
  checkPage(page, 'every console page');
  await page.context().close();
});

// /chat in a real browser: two Chromium contexts sign in through the official JS SDK bundled
// into the page (leancloud-realtime 5, leancloud-storage 4, the typed-messages plugin) and
// chat through ternd: typing indicator, text, read receipt, an uploaded image the other side
// displays, edit, recall, and the reconnect banner. Each page must log no console error and
// make no request outside ternd (tests/lib/browser.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../lib/server.mjs';
import { png } from '../lib/files-util.mjs';
import { launch, openPage, checkPage, screenshot, webRoot } from '../lib/browser.mjs';

let server;
let browser;
before(async () => {
  server = await startServer({ env: { TERN_WEB_ROOT: webRoot() } });
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

async function signIn(page, clientId) {
  await page.goto(`${server.httpUrl}/chat/`);
  await page.fill('input[name=appId]', server.appId);
  await page.fill('input[name=appKey]', server.appKey);
  await page.fill('input[name=clientId]', clientId);
  await page.click('#login button');
  await page.waitForSelector('#app:not([hidden])');
  assert.equal(await page.textContent('#me'), clientId);
}

const message = (page, text) => page.locator('#messages li', { hasText: text });

test('two browsers chat through /chat: typing, text, read receipt, image, edit, recall', async () => {
  const tom = await openPage(browser, server);
  const jerry = await openPage(browser, server);
  await signIn(tom, 'Tom');
  await signIn(jerry, 'Jerry');

  // Tom starts the 1:1; Jerry is invited and opens it from the list
  await tom.fill('input[name=who]', 'Jerry');
  await tom.click('#new-conv button[value=chat]');
  await tom.waitForSelector('#conv:not([hidden])');
  await jerry.click('#convs li');
  await jerry.waitForSelector('#conv:not([hidden])');
  assert.equal(await jerry.textContent('#conv-members'), 'Jerry, Tom');
  assert.equal(await jerry.textContent('#convs li'), 'Tom', 'the list shows the other member, no badge once open');

  // typing: the first keystroke sends a transient TypingMessage
  await tom.locator('#text').pressSequentially('hello Jerry', { delay: 10 });
  await jerry.waitForFunction(() => document.getElementById('typing').textContent === 'Tom is typing…');
  await tom.press('#text', 'Enter');
  await message(jerry, 'hello Jerry').waitFor();
  assert.equal(await jerry.textContent('#typing'), '', 'the message ends the typing notice');
  // Jerry has the conversation open, so he has read it: Tom's message shows the read mark
  await message(tom, 'hello Jerry').locator('.mark', { hasText: '✓✓ read' }).waitFor();

  // an image: AV.File.save() from the page (fileTokens, PUT, fileCallback), then an ImageMessage
  await tom.setInputFiles('#image', { name: 'cat.png', mimeType: 'image/png', buffer: png(40, 30) });
  const img = jerry.locator('#messages li img');
  await img.waitFor();
  await jerry.waitForFunction(() => {
    const i = document.querySelector('#messages li img');
    return i && i.complete && i.naturalWidth === 40 && i.naturalHeight === 30;
  });
  assert.match(await img.getAttribute('src'), new RegExp(`^${server.httpUrl}/files/`));

  // edit: Tom corrects a message, Jerry sees the new text
  await tom.fill('#text', 'see you at 5');
  await tom.press('#text', 'Enter');
  await message(jerry, 'see you at 5').waitFor();
  await message(tom, 'see you at 5').locator('button', { hasText: 'edit' }).click();
  await tom.fill('#text', 'see you at 6');
  await tom.click('#send');
  await message(jerry, 'see you at 6').waitFor();
  assert.equal(await message(jerry, 'see you at 5').count(), 0);

  await screenshot(tom, 'chat-tom');
  await screenshot(jerry, 'chat-jerry');

  // recall: the first message turns into "message recalled" on both sides
  await message(tom, 'hello Jerry').locator('button', { hasText: 'recall' }).click();
  await message(jerry, 'message recalled').waitFor();
  assert.equal(await message(jerry, 'hello Jerry').count(), 0);
  await message(tom, 'message recalled').waitFor();

  // history: a fresh sign-in pages the conversation back from the server
  const jerry2 = await openPage(browser, server);
  await signIn(jerry2, 'Jerry');
  await jerry2.click('#convs li');
  await message(jerry2, 'see you at 6').waitFor();
  await message(jerry2, 'message recalled').waitFor();
  assert.equal(await jerry2.locator('#messages li img').count(), 1);

  checkPage(tom, 'Tom\'s chat');
  checkPage(jerry, 'Jerry\'s chat');
  checkPage(jerry2, 'Jerry\'s second chat');
  await Promise.all([tom, jerry, jerry2].map((p) => p.context().close()));
});

test('at 360 px the chat shows one pane at a time, and a lost connection shows the reconnect banner', async () => {
  const page = await openPage(browser, server, { viewport: { width: 360, height: 740 }, allowErrors: [/WebSocket/] });
  await signIn(page, 'Narrow');
  await page.fill('input[name=who]', 'Wide');
  await page.click('#new-conv button[value=chat]');
  await page.waitForSelector('#conv:not([hidden])');
  assert.equal(await page.isVisible('.side'), false, 'the list gives way to the conversation');
  const box = await page.locator('#compose').boundingBox();
  assert.ok(box.width <= 360 && box.x >= 0, `compose fits: ${JSON.stringify(box)}`);
  const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(scrollWidth <= 360, `no horizontal scrolling (${scrollWidth})`);
  await page.fill('#text', 'from a phone');
  await page.press('#text', 'Enter');
  await message(page, 'from a phone').waitFor();
  await screenshot(page, 'chat-360px');
  await page.click('#back');
  assert.equal(await page.isVisible('.side'), true);

  // the network goes away: the SDK notices and says so, then comes back by itself
  await page.context().setOffline(true);
  await page.evaluate(() => window.dispatchEvent(new Event('offline')));
  await page.waitForSelector('#banner:not([hidden])', { timeout: 20000 });
  assert.match(await page.textContent('#banner'), /Connection lost|Reconnecting/);
  await page.context().setOffline(false);
  await page.evaluate(() => window.dispatchEvent(new Event('online')));
  await page.waitForFunction(() => document.getElementById('banner').hidden, null, { timeout: 30000 });
  checkPage(page, 'the narrow chat');
  await page.context().close();
});

// The web chat by keyboard only, in headless Chromium against the
// in-memory fake cluster: a nickname, Tab, a room, Enter, then a message and
// Enter lands in the room (not in the Room field); after a join the focus is
// in the message box; the room list is one Tab stop, arrows move between
// rooms, and one Tab from it reaches the message box.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeCluster } from './lib/fake-cluster.mjs';
import { launchBrowser, ChatPage, outDir } from './lib/browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const webRoot = path.resolve(here, '..', '..', 'web');

let fake;
let gw;
let browser;

before(async () => {
  fake = new FakeCluster({ webRoot });
  gw = await fake.startGateway({ id: 'kb1' });
  browser = await launchBrowser();
}, { timeout: 40000 });

after(async () => {
  await browser?.close();
  await fake?.close();
});

const focused = (p) => p.page.evaluate(() => {
  const el = document.activeElement;
  return el ? (el.id || `${el.tagName.toLowerCase()}.${el.className}[${el.dataset.room || ''}]`) : null;
});

test('nickname, Tab, room, Enter, message, Enter: the message is sent; focus follows', { timeout: 30000 }, async () => {
  const p = await ChatPage.open(browser, gw.http);
  try {
    assert.equal(await focused(p), 'nickname', 'the page starts in the nickname field');
    await p.page.keyboard.type('kim');
    await p.page.keyboard.press('Tab');
    assert.equal(await focused(p), 'room');
    await p.page.keyboard.type('keys');
    await p.page.keyboard.press('Enter');
    // Typed at once, as a person would: no waiting for the join.
    await p.page.keyboard.type('hello by keyboard');
    await p.page.keyboard.press('Enter');
    await p.waitJoined('keys');
    await p.waitTexts('keys', ['hello by keyboard']);
    assert.equal(await p.page.inputValue('#room'), '', 'nothing landed in the Room field');
    assert.equal(await p.page.textContent('#join-error'), '', 'and no room-name error');
    assert.equal(await focused(p), 'input', 'the focus is in the message box');

    // A second room; then the room list is one tab stop, with arrows.
    await p.page.focus('#room');
    await p.page.keyboard.type('more');
    await p.page.keyboard.press('Enter');
    await p.waitJoined('more');
    assert.equal(await focused(p), 'input');
    await p.page.focus('.tab[aria-selected="true"]');
    await p.page.keyboard.press('ArrowUp');
    assert.equal(await p.page.getAttribute('.tab[aria-selected="true"]', 'data-room'), 'keys', 'arrows switch rooms');
    assert.equal(await focused(p), 'button.tab[keys]');
    await p.page.keyboard.press('Tab');
    assert.equal(await focused(p), 'input', 'one Tab from the room list reaches the message box');
    await p.page.keyboard.type('second line');
    await p.page.keyboard.press('Enter');
    await p.waitTexts('keys', ['hello by keyboard', 'second line']);
    // Shift+Tab goes back to the room list in one step too.
    await p.page.keyboard.press('Shift+Tab');
    assert.equal(await focused(p), 'button.tab[keys]');
    await p.screenshot(path.join(outDir, 'keyboard.png'));
    assert.deepEqual(p.pageErrors, []);
  } finally {
    await p.close();
  }
});

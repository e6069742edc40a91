// The classic page as the article opens it: from a file (so Chromium sends
// `Origin: null`), connecting to the gateway's /chatservice, against
// gateways with DEFAULT flags (no --allowed-origins). Two classic users on
// two gateways chat; a classic user and a web-chat user (the page served
// by the gateway, chat.v1 at /ws) chat in one room, each seeing the other's
// lines once and the classic page nothing it cannot render.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, teardown } from '../integration/lib/harness.mjs';
import { launchBrowser, ChatPage, sleep } from '../browser/lib/browser.mjs';
import { openClassic as openClassicIn, waitLine } from './lib.mjs';

let cl;
let browser;

before(async () => {
  cl = await startCluster({ gateways: 2, workers: 1 }); // default flags: no origin list
  browser = await launchBrowser();
}, { timeout: 60000 });

after(async () => {
  await browser?.close();
  await teardown();
});

const chatservice = (gw) => `ws://127.0.0.1:${gw.port}/chatservice`;

const openClassic = (wsUrl, nickname, room) => openClassicIn(browser, wsUrl, nickname, room);

test('two classic pages opened from files, on two gateways, at /chatservice: they chat', { timeout: 60000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = 'article';
  const ann = await openClassic(chatservice(gw1), 'ann', room);
  const ben = await openClassic(chatservice(gw2), 'ben', room);
  assert.equal(await ann.page.evaluate(() => window.origin), 'null', 'a file page: Origin null');
  await ann.say('hello from a file');
  await waitLine(ann, 'ann@article said hello from a file');
  await ben.say('hello back');
  await waitLine(ann, 'ben@article said hello back');
  await waitLine(ben, 'ben@article said hello back');
  await ann.say('bye');
  await waitLine(ben, 'ann@article said bye');
  await sleep(500);
  assert.deepEqual(await ann.lines(), [
    'ann@article said hello from a file', 'ben@article said hello back', 'ann@article said bye',
  ]);
  assert.deepEqual(await ben.lines(), ['ben@article said hello back', 'ann@article said bye']);
  for (const p of [ann, ben]) {
    assert.deepEqual(p.dialogs, []);
    await p.page.close();
  }
});

test('a classic page from a file and the web chat in one room', { timeout: 60000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = 'mixed';
  const web = await ChatPage.open(browser, gw2.http);
  const cleo = await openClassic(chatservice(gw1), 'cleo', room);
  try {
    await web.join(room, 'wes');
    await cleo.say('classic says hi');
    await web.waitTexts(room, ['classic says hi']);
    await web.waitMembers(room, ['cleo', 'wes']);
    await web.send('web says hi');
    await waitLine(cleo, 'wes@mixed said web says hi');
    await sleep(500);
    assert.deepEqual(await cleo.lines(), ['cleo@mixed said classic says hi', 'wes@mixed said web says hi'],
      'the classic page sees both lines once, and no frame it cannot render');
    const ms = await web.messages(room);
    assert.deepEqual(ms.map((m) => [m.nick, m.text]), [['cleo', 'classic says hi'], ['wes', 'web says hi']]);
    assert.deepEqual(web.pageErrors, []);
    assert.deepEqual(cleo.dialogs, []);
  } finally {
    await cleo.page.close();
    await web.close();
  }
});

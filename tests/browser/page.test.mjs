// The chat page's own behaviour, in headless Chromium, against an in-memory
// fake of the cluster (lib/fake-cluster.mjs) that can be made to do what the
// real one does only rarely: answer with errors, drain, lose its history,
// drop a connection mid-send. The same page against the real cluster is
// tested in chat.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeCluster } from './lib/fake-cluster.mjs';
import { startProxy } from './lib/tcp-proxy.mjs';
import { launchBrowser, PageSet, until, sleep, duplicates, outDir } from './lib/browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const webRoot = path.resolve(here, '..', '..', 'web');

let fake;
let gws;
let proxy;
let browser;
const pages = new PageSet(); // every test closes what it opened, pass or fail
const open = (url, opts) => pages.open(browser, url, opts);
const closePages = () => pages.closeAll();

before(async () => {
  fake = new FakeCluster({ webRoot });
  gws = [await fake.startGateway({ id: 'fake1' }), await fake.startGateway({ id: 'fake2' })];
  proxy = await startProxy(gws);
  browser = await launchBrowser();
}, { timeout: 40000 });

after(async () => {
  await closePages();
  await browser?.close();
  await proxy?.close();
  await fake?.close();
});

test('a sent message is shown once, from the broadcast, and marked by its ack', { timeout: 30000 }, async (t) => {
  t.after(closePages);
  const a = await open(gws[0].http);
  await a.join('once', 'alice');
  await a.send('first line');
  await a.waitTexts('once', ['first line']);
  await sleep(300);
  const ms = await a.messages('once');
  assert.deepEqual(ms.map((m) => m.text), ['first line']);
  assert.equal(ms[0].acked, true, 'the ack marks the broadcast copy');
  assert.equal(ms[0].mine, true);
  assert.match(ms[0].time, /\d/, 'a time is shown');
  assert.equal(await a.page.inputValue('#input'), '', 'the box is cleared');
  // Shift+Enter is a new line, not a send.
  await a.page.fill('#input', 'two');
  await a.page.press('#input', 'Shift+Enter');
  await a.page.type('#input', 'lines');
  await a.page.press('#input', 'Enter');
  await a.waitTexts('once', ['two\nlines']);
});

test('server errors are shown in words and the draft comes back', { timeout: 30000 }, async (t) => {
  t.after(closePages);
  const a = await open(gws[0].http);
  await a.join('errors', 'alice');
  // rate_limited is no longer an error the person has to act on (issue 15):
  // the message goes back into the queue and out as the limit allows, and
  // the page says so. The other codes still bring the draft back.
  fake.failNextMessage('rate_limited');
  await a.send('try rate_limited');
  const told = await until(() => a.alertText(), { what: 'a word about sending too fast' });
  assert.match(told, /too fast/i, 'rate_limited is explained');
  assert.doesNotMatch(told, /_/, 'no raw error code');
  await a.waitTexts('errors', ['try rate_limited']);
  assert.equal(await a.page.inputValue('#input'), '', 'nothing to type again: it was sent');
  const cases = [
    ['too_large', /too long/i],
    ['unavailable', /temporarily unavailable/i],
  ];
  for (const [code, words] of cases) {
    fake.failNextMessage(code);
    await a.send(`try ${code}`);
    const text = await until(() => a.alertText(), { what: `an alert for ${code}` });
    assert.match(text, words, `${code} is explained`);
    assert.doesNotMatch(text, /_/, 'no raw error code');
    assert.equal(await a.page.inputValue('#input'), `try ${code}`, 'the draft is back in the box');
    await a.page.fill('#input', '');
  }
  assert.deepEqual(await a.texts('errors'), ['try rate_limited'], 'nothing was rendered for refused messages');
  // Over the limit from `welcome`: explained before anything is sent.
  await a.send('x'.repeat(5000));
  assert.match(await until(() => a.alertText()), /too long.*4096/i);
});

test('several rooms at once, with unread counts', { timeout: 30000 }, async (t) => {
  t.after(closePages);
  const a = await open(gws[0].http);
  await a.join('red', 'alice');
  await a.join('blue', 'alice');
  fake.publish('red', 'bob', 'one for red');
  fake.publish('red', 'bob', 'two for red');
  fake.publish('blue', 'bob', 'one for blue');
  await until(async () => (await a.unread('red')) === 2, { what: 'unread badge 2 on #red' });
  assert.equal(await a.unread('blue'), 0, 'the open room has no unread badge');
  assert.match(await a.page.title(), /^\(2\)/, 'the title counts unread messages');
  await a.switchTo('red');
  assert.deepEqual(await a.texts('red'), ['one for red', 'two for red']);
  assert.equal(await a.unread('red'), 0, 'opening the room clears it');
  assert.deepEqual(await a.texts('blue'), ['one for blue'], 'rooms keep separate lists');
});

test('"load older" pages back through history in seq order', { timeout: 30000 }, async (t) => {
  t.after(closePages);
  for (let i = 1; i <= 120; i++) fake.publish('long', 'bob', `old ${i}`);
  const a = await open(gws[0].http);
  await a.join('long', 'alice');
  const seqs = async () => (await a.messages('long')).map((m) => m.seq);
  assert.deepEqual(await seqs(), range(71, 120), 'the join shows the latest 50');
  for (const from of [21, 1]) {
    await a.page.click('.room-view[data-room="long"] .older');
    await until(async () => (await seqs())[0] === from, { what: `history back to seq ${from}` });
    assert.deepEqual(await seqs(), range(from, 120));
  }
  await until(() => a.page.isHidden('.room-view[data-room="long"] .older'), { what: 'no more "load older"' });
});

test('a draining gateway: the page follows `reconnect` to another gateway, nothing lost or doubled',
  { timeout: 30000 }, async (t) => {
    t.after(closePages);
    const a = await open(proxy.http);
    await a.join('drain', 'alice');
    fake.publish('drain', 'bob', 'before drain');
    await a.waitTexts('drain', ['before drain']);
    const first = await a.gateway();
    const gw = gws.find((g) => g.id === first);
    await gw.drain(300);
    fake.publish('drain', 'bob', 'during drain');
    assert.match(await until(() => a.alertText(), { what: 'the restart notice' }), /restarting/i);
    await until(async () => (await a.connState()) === 'open' && (await a.gateway()) !== first,
      { what: 'a connection to the other gateway' });
    await a.waitJoined('drain');
    fake.publish('drain', 'bob', 'after drain');
    const texts = await a.waitTexts('drain', ['before drain', 'during drain', 'after drain']);
    await sleep(300);
    assert.deepEqual(await a.texts('drain'), texts, 'nothing arrives twice');
    assert.deepEqual(duplicates(await a.messages('drain')), []);
  });

test('recovered:false (history lost) resets the list to what the server has', { timeout: 30000 }, async (t) => {
  t.after(closePages);
  const a = await open(proxy.http);
  await a.join('amnesia', 'alice');
  for (const m of ['old 1', 'old 2', 'old 3']) fake.publish('amnesia', 'bob', m);
  await a.waitTexts('amnesia', ['old 1', 'old 2', 'old 3']);
  proxy.setRefusing(true);
  const gw = gws.find((g) => g.conns.size > 0 && [...g.conns].some((c) => c.rooms.has('amnesia')));
  gw.kill();
  await until(async () => (await a.connState()) === 'waiting', { what: 'the page to notice' });
  fake.loseHistory('amnesia'); // new epoch, seq starts again at 1
  fake.publish('amnesia', 'bob', 'new 1');
  fake.publish('amnesia', 'bob', 'new 2');
  proxy.setRefusing(false);
  // seq 1 and 2 again: deduping by seq alone would wrongly hide these.
  await until(async () => JSON.stringify(await a.texts('amnesia')) === '["new 1","new 2"]',
    { timeoutMs: 20000, what: 'the list reset to the new history' });
  const notices = await a.notices('amnesia');
  assert.ok(notices.some((n) => /could not be recovered/.test(n)), `a notice explains it: ${notices}`);
  gws = [...fake.gateways];
  if (gws.length < 2) gws.push(await fake.startGateway({ id: 'fake3' }));
  proxy.targets = gws;
});

test('a message whose connection died unacked comes back into the box', { timeout: 30000 }, async (t) => {
  t.after(closePages);
  const a = await open(gws[0].http);
  await a.join('lost', 'alice');
  fake.failNextMessage('drop');
  await a.send('did this arrive?');
  await until(async () => (await a.page.inputValue('#input')) === 'did this arrive?',
    { timeoutMs: 20000, what: 'the unsent text back in the box' });
  assert.match(await a.alertText(), /before your last message was delivered/);
  assert.deepEqual(await a.texts('lost'), []);
});

test('presence: joins and leaves with reasons, member list kept live', { timeout: 30000 }, async (t) => {
  t.after(closePages);
  const extra = await fake.startGateway({ id: 'doomed' });
  const a = await open(gws[0].http);
  const b = await open(gws[1].http);
  const c = await open(extra.http);
  await a.join('people', 'alice');
  await b.join('people', 'bob');
  await c.join('people', 'carol');
  await a.waitMembers('people', ['alice', 'bob', 'carol']);
  await b.close();
  await a.waitMembers('people', ['alice', 'carol']);
  extra.kill();
  await a.waitMembers('people', ['alice']);
  const notices = (await a.notices('people')).join('\n');
  assert.match(notices, /bob joined/);
  assert.match(notices, /carol joined/);
  assert.match(notices, /bob left \(closed the chat\)/);
  assert.match(notices, /carol dropped out \(the server they were connected to went away\)/);
});

test('a nickname taken over elsewhere: the page says so and offers to rejoin', { timeout: 30000 }, async (t) => {
  t.after(closePages);
  const first = await open(gws[0].http);
  const second = await open(gws[1].http);
  await first.join('takeover', 'sam');
  await second.join('takeover', 'sam');
  await first.page.waitForSelector('.room-view[data-room="takeover"][data-joined="false"]',
    { state: 'attached', timeout: 5000 });
  assert.ok((await first.notices('takeover')).some((n) => /from somewhere else/.test(n)));
  assert.match(await first.page.textContent('#banner'), /no longer in this room/);
  assert.equal(await first.page.isDisabled('#input'), true, 'cannot send while replaced');
  await first.page.click('#banner-action');
  await first.waitJoined('takeover');
  await second.page.waitForSelector('.room-view[data-room="takeover"][data-joined="false"]',
    { state: 'attached', timeout: 5000 });
  await first.send('mine again');
  await first.waitTexts('takeover', ['mine again']);
});

test('phone width: one column, long words wrap, members behind a button', { timeout: 30000 }, async (t) => {
  t.after(closePages);
  const a = await open(gws[0].http, { viewport: { width: 375, height: 740 } });
  await a.join('phone', 'alice');
  fake.publish('phone', 'bob', `a long word: ${'x'.repeat(400)} and a long line of many ordinary words that has to wrap onto several lines`);
  await a.send('short one');
  await a.waitTexts('phone', ['short one']);
  const overflow = await a.page.evaluate(() => {
    const wide = [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > innerWidth + 1
      && !e.closest('.members') && !e.closest('.room-tabs'));
    return { scroll: document.documentElement.scrollWidth, wide: wide.map((e) => e.className) };
  });
  assert.ok(overflow.scroll <= 375, `no horizontal scroll (${overflow.scroll}px)`);
  assert.deepEqual(overflow.wide, [], 'nothing sticks out to the right');
  assert.equal(await a.page.isVisible('#members-panel .member'), false, 'members hidden by default');
  await a.page.click('#members-toggle');
  await a.page.waitForSelector('#members-panel .member[data-nick="alice"]', { state: 'visible', timeout: 5000 });
  await sleep(300); // the panel slides in
  await a.screenshot(path.join(outDir, 'phone-members.png'));
  await a.page.click('#members-close');
  await sleep(300);
  await a.screenshot(path.join(outDir, 'phone.png'));
});

function range(from, to) {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

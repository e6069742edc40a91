// The web chat in headless Chromium against the real cluster (Redis, three
// gateways, a worker, a TCP balancer), for what issue 15 asked of it:
// - a reload, or a new window after the last one closed, keeps your rooms,
//   recovers what was missed (since/epoch) below a divider that counts it,
//   and the others see no leave/join flap (join.grace_ms);
// - after a failover the divider counts exactly the recovered messages and
//   sits right above them, and after a second outage it moves down: one
//   divider, never a stale count above messages it does not count;
// - a nickname taken over from a second tab: the first still shows the
//   room's members (the nickname is still there, elsewhere);
// - an 80-message burst is sent in full, paced by welcome.limits, with the
//   user told, and nothing refused as too fast;
// - a text over message_bytes cannot be sent: the button is disabled.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startCluster, connect, teardown, fetchMetrics } from '../integration/lib/harness.mjs';
import { startProxy } from './lib/tcp-proxy.mjs';
import { launchBrowser, PageSet, until, sleep, duplicates, seqsAscending, outDir } from './lib/browser.mjs';

const GRACE_MS = 4000; // web/connection.js

let cl;
let proxy;
let browser;
const pages = new PageSet(); // every test closes what it opened, pass or fail
const open = (url, opts) => pages.open(browser, url, opts);
const closePages = () => pages.closeAll();

// The room's list as a person reads it: messages and notices in order.
function listing(page, room) {
  return page.page.evaluate((r) => [...document.querySelectorAll(`.room-view[data-room="${r}"] .messages > li`)]
    .map((li) => (li.classList.contains('msg')
      ? { msg: li.querySelector('.text').textContent, seq: Number(li.dataset.seq) }
      : { notice: li.textContent, divider: li.classList.contains('divider') })), room);
}

// What follows the divider, up to the next notice: the messages it counts.
async function belowDivider(page, room) {
  const items = await listing(page, room);
  const dividers = items.filter((i) => i.divider);
  assert.equal(dividers.length, 1, `one divider in #${room}: ${JSON.stringify(items)}`);
  const at = items.findIndex((i) => i.divider);
  const below = [];
  for (const i of items.slice(at + 1)) {
    if (!i.msg) break;
    below.push(i.msg);
  }
  return { text: dividers[0].notice, below, above: items.slice(0, at).filter((i) => i.msg).map((i) => i.msg) };
}

const presenceOf = (room, nick) => (f) => f.type === 'presence' && f.room === room && f.nickname === nick;

before(async () => {
  cl = await startCluster({ gateways: 3, workers: 1 });
  proxy = await startProxy(cl.gateways);
  browser = await launchBrowser();
}, { timeout: 60000 });

after(async () => {
  await closePages();
  await browser?.close();
  await proxy?.close();
  await teardown();
});

test('reload (F5): the rooms come back, what was missed below a divider, and nobody sees a leave or join',
  { timeout: 60000 }, async (t) => {
    t.after(closePages);
    const gw = cl.gateways[0];
    const obs = await connect(cl.gateways[1].url);
    await obs.join('reload', 'obs');
    const rita = await open(gw.http);
    await rita.join('other', 'rita');
    await rita.join('reload', 'rita');
    await obs.next(presenceOf('reload', 'rita'));
    await obs.say('reload', 'before the reload');
    await rita.waitTexts('reload', ['before the reload']);

    // F5: the same rooms, the same room on screen, and no flap (below).
    await rita.page.reload({ timeout: 10000 });
    await rita.waitConnected();
    await rita.waitJoined('reload');
    await rita.waitJoined('other');
    assert.equal(await rita.page.getAttribute('#app', 'data-session'), 'restored');
    assert.deepEqual(await rita.waitTexts('reload', ['before the reload']), ['before the reload']);

    // Away for a moment (the page unloaded, its socket closed), messages
    // sent meanwhile, back: they are recovered below the divider.
    await rita.page.goto('about:blank');
    const missed = ['while reloading 1', 'while reloading 2', 'while reloading 3'];
    for (const m of missed) await obs.say('reload', m);
    await rita.page.goto(gw.http, { timeout: 10000 });
    await rita.waitConnected();
    await rita.waitJoined('reload');
    await rita.waitJoined('other');
    const texts = await rita.waitTexts('reload', ['before the reload', ...missed]);
    assert.deepEqual(texts, ['before the reload', ...missed], 'the context above, the missed below, once each');
    const d = await belowDivider(rita, 'reload');
    assert.equal(d.text, '3 new messages while you were away');
    assert.deepEqual(d.below, missed);
    assert.deepEqual(d.above, ['before the reload']);
    assert.equal(await rita.page.getAttribute('.tab[aria-selected="true"]', 'data-room'), 'reload',
      'the room that was on screen is on screen again');
    assert.equal(await rita.page.inputValue('#nickname'), 'rita');
    await rita.screenshot(path.join(outDir, 'after-reload.png'));

    // Past the grace and a worker's turn: obs never heard rita leave or join.
    assert.equal(await obs.quiet(presenceOf('reload', 'rita'), GRACE_MS + 2000), null, 'no presence flap');
    const members = await obs.request({ type: 'members', room: 'reload' });
    assert.deepEqual(members.members.map((m) => m.nickname).sort(), ['obs', 'rita']);
    await rita.send('rita is still here');
    await obs.next((f) => f.type === 'message' && f.message === 'rita is still here');
    assert.deepEqual(rita.pageErrors, []);
  });

test('a new window after the last one closed (a browser restart) rejoins the rooms and recovers',
  { timeout: 60000 }, async (t) => {
    t.after(closePages);
    const gw = cl.gateways[2];
    const obs = await connect(cl.gateways[1].url);
    await obs.join('restart', 'obs');
    const first = await open(gw.http);
    await first.join('restart', 'rob');
    await obs.say('restart', 'seen');
    await first.waitTexts('restart', ['seen']);
    await pages.close(first);
    await obs.say('restart', 'while closed');
    const again = await open(gw.http);
    await again.waitJoined('restart');
    assert.deepEqual(await again.waitTexts('restart', ['seen', 'while closed']), ['seen', 'while closed']);
    const d = await belowDivider(again, 'restart');
    assert.equal(d.text, '1 new message while you were away');
    assert.deepEqual(d.below, ['while closed']);
  });

test('a second window does not take the first one\'s rooms over', { timeout: 30000 }, async (t) => {
  t.after(closePages);
  const gw = cl.gateways[2];
  const one = await open(gw.http);
  await one.join('twowin', 'una');
  const two = await open(gw.http);
  await two.page.waitForSelector('#app[data-session]', { state: 'attached', timeout: 5000 });
  assert.equal(await two.page.getAttribute('#app', 'data-session'), 'second-window');
  assert.equal(await two.page.locator('.tab').count(), 0, 'the second window starts empty');
  assert.equal(await one.page.getAttribute('.room-view[data-room="twowin"]', 'data-joined'), 'true');
});

test('failover: the divider counts exactly the recovered messages and sits right above them',
  { timeout: 60000 }, async (t) => {
    t.after(closePages);
    const room = 'divider';
    const fay = await open(proxy.http);
    const doomedId = await fay.gateway();
    const doomed = cl.gateways.find((g) => g.id === doomedId);
    const other = await connect(cl.gateways.find((g) => g !== doomed && g.running).url);
    await fay.join(room, 'fay');
    await other.join(room, 'gus');
    await other.say(room, 'seen 1');
    await other.say(room, 'seen 2');
    await fay.waitTexts(room, ['seen 1', 'seen 2']);
    proxy.setRefusing(true);
    doomed.kill('SIGKILL');
    await doomed.waitExit(5000);
    await until(async () => (await fay.connState()) === 'waiting', { what: 'the page to notice' });
    const missed = ['away 1', 'away 2', 'away 3', 'away 4', 'away 5'];
    for (const m of missed) await other.say(room, m);
    proxy.setRefusing(false);
    await until(async () => (await fay.connState()) === 'open', { timeoutMs: 20000, what: 'reconnected' });
    await fay.waitJoined(room);
    await fay.waitTexts(room, missed);
    const d = await belowDivider(fay, room);
    assert.equal(d.text, '5 new messages while you were away');
    assert.deepEqual(d.below, missed);
    assert.deepEqual(d.above, ['seen 1', 'seen 2']);

    // A second outage (the network, this time): still one divider, moved
    // down to what was missed since and counting only that. (The old page
    // kept the first divider too, so its stale count sat above messages it
    // did not count.)
    proxy.setRefusing(true);
    proxy.dropAll();
    await until(async () => (await fay.connState()) === 'waiting', { what: 'the page to notice the cut' });
    const again = ['later 1', 'later 2'];
    for (const m of again) await other.say(room, m);
    proxy.setRefusing(false);
    await until(async () => (await fay.connState()) === 'open', { timeoutMs: 20000, what: 'reconnected again' });
    await fay.waitTexts(room, again);
    const d2 = await belowDivider(fay, room);
    assert.equal(d2.text, '2 new messages while you were away');
    assert.deepEqual(d2.below, again);
    const ms = await fay.messages(room);
    assert.deepEqual(duplicates(ms), []);
    assert.ok(seqsAscending(ms));
  });

test('takeover from a second tab: the first says it left, and still shows the room\'s members',
  { timeout: 30000 }, async (t) => {
    t.after(closePages);
    const live = cl.gateways.filter((g) => g.running);
    const bob = await connect(live[0].url);
    await bob.join('takeover', 'bob');
    const first = await open(live[0].http);
    const second = await open(live[1].http);
    await first.join('takeover', 'sam');
    await first.waitMembers('takeover', ['bob', 'sam']);
    await second.join('takeover', 'sam');
    await first.page.waitForSelector('.room-view[data-room="takeover"][data-joined="false"]', { state: 'attached' });
    assert.match(await first.page.textContent('#banner'), /no longer in this room/);
    assert.match(await first.page.textContent('#room-sub'), /2 members online/);
    assert.deepEqual(await first.members('takeover'), ['bob', 'sam'], 'sam is still a member, elsewhere');
    assert.match(await first.page.textContent('.member[data-nick="sam"] .you'), /elsewhere/);
    assert.match(await second.page.textContent('#room-sub'), /2 members online/);
    await first.screenshot(path.join(outDir, 'takeover.png'));
  });

test('an 80-message paste burst: all sent, in order, once, paced by welcome.limits, the user told',
  { timeout: 60000 }, async (t) => {
    t.after(closePages);
    const gw = cl.gateways.filter((g) => g.running)[0];
    const before = await fetchMetrics(gw.http);
    const key = 'chat_gateway_errors_total{code="rate_limited"}';
    const paste = await open(gw.http);
    await paste.join('burst', 'pat');
    const texts = Array.from({ length: 80 }, (_, i) => `line ${i + 1}`);
    // As fast as a script can press Enter: far over the 20/s (burst 40) limit.
    await paste.page.evaluate((lines) => {
      const input = document.getElementById('input');
      for (const line of lines) {
        input.value = line;
        input.dispatchEvent(new Event('input'));
        input.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true, cancelable: true }));
      }
    }, texts);
    const hint = await until(async () => {
      const h = await paste.page.textContent('#composer-hint');
      return /waiting/.test(h) && h;
    }, { timeoutMs: 5000, what: 'the composer to say messages are waiting' });
    assert.match(hint, /\d+ messages waiting, sent at 20 a second/);
    await paste.screenshot(path.join(outDir, 'burst-waiting.png'));
    assert.equal(await paste.page.inputValue('#input'), '', 'the box is free for the next line');
    await paste.waitTexts('burst', texts, 20000);
    const ms = await paste.messages('burst');
    assert.deepEqual(ms.map((m) => m.text), texts, 'all 80, in the order typed');
    assert.deepEqual(duplicates(ms), []);
    await until(async () => (await paste.page.textContent('#composer-hint')) === '', { what: 'the hint to clear' });
    const afterM = await fetchMetrics(gw.http);
    assert.equal(afterM.get(key) - before.get(key), 0, 'the gateway refused none as too fast');
    assert.equal(await paste.alertText(), '', 'no error shown');
  });

test('a message over message_bytes cannot be sent: the button is disabled and the box says why',
  { timeout: 30000 }, async (t) => {
    t.after(closePages);
    const gw = cl.gateways.filter((g) => g.running)[0];
    const p = await open(gw.http);
    await p.join('big', 'bea');
    await p.page.fill('#input', 'x'.repeat(4096));
    assert.equal(await p.page.isDisabled('#send-btn'), false, 'exactly the limit can be sent');
    await p.page.fill('#input', 'x'.repeat(4097));
    assert.equal(await p.page.isDisabled('#send-btn'), true, 'one byte over: disabled');
    assert.match(await p.page.textContent('#composer-hint'), /4097 \/ 4096 bytes: too long/);
    await p.page.fill('#input', 'é'.repeat(2049)); // 4098 bytes in 2049 characters
    assert.equal(await p.page.isDisabled('#send-btn'), true, 'bytes, not characters');
    await p.screenshot(path.join(outDir, 'over-limit.png'));
    await p.page.press('#input', 'Enter');
    assert.match(await until(() => p.alertText()), /too long/);
    assert.equal(await p.page.inputValue('#input'), 'é'.repeat(2049), 'the text stays');
    await p.page.fill('#input', 'short');
    assert.equal(await p.page.isDisabled('#send-btn'), false);
    await p.page.click('#send-btn');
    await p.waitTexts('big', ['short']);
    assert.deepEqual(await p.texts('big'), ['short']);
  });

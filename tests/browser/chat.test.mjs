// The web chat page in headless Chromium against the real cluster: Redis,
// three chat-gateway processes serving web/, one chat-worker, and a tiny TCP
// load balancer (lib/tcp-proxy.mjs) in front of the gateways. Everything
// listens on 127.0.0.1 only and is torn down by PID (lib/cluster.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCluster, connect, teardown, FAST } from '../integration/lib/harness.mjs';
import { startProxy } from './lib/tcp-proxy.mjs';
import { launchBrowser, PageSet, until, sleep, duplicates, seqsAscending, outDir } from './lib/browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const docsShot = path.resolve(here, '..', '..', 'docs', 'screenshot.png');

let cl;
let proxy;
let browser;
const pages = new PageSet(); // every test closes what it opened, pass or fail
const open = (url, opts) => pages.open(browser, url, opts);
const closePages = () => pages.closeAll();

const gatewayById = (id) => cl.gateways.find((g) => g.id === id);

// Waits a little longer, then checks that each text is there exactly once
// and seqs only go up: a duplicate would typically arrive late.
async function assertOnce(page, room, texts) {
  await page.waitTexts(room, texts);
  await sleep(500);
  const ms = await page.messages(room);
  assert.deepEqual(duplicates(ms), [], `no message shown twice in #${room}`);
  assert.ok(seqsAscending(ms), `#${room} in seq order: ${ms.map((m) => m.seq)}`);
  for (const t of texts) assert.equal(ms.filter((m) => m.text === t).length, 1, `${JSON.stringify(t)} once`);
  return ms;
}

before(async () => {
  cl = await startCluster({ gateways: 3, workers: 1, gatewayArgs: FAST });
  proxy = await startProxy(cl.gateways);
  browser = await launchBrowser();
}, { timeout: 60000 });

after(async () => {
  await closePages();
  await browser?.close();
  await proxy?.close();
  await teardown();
});

test('two pages on two gateways chat; each sees the other once; a late joiner gets history; '
  + 'members follow presence', { timeout: 60000 }, async (t) => {
  t.after(closePages);
  const [gw1, gw2, gw3] = cl.gateways;
  const room = 'lobby';
  const alice = await open(gw1.http);
  const bob = await open(gw2.http);
  assert.equal(await alice.gateway(), gw1.id);
  assert.equal(await bob.gateway(), gw2.id);

  await alice.join(room, 'alice');
  await bob.join(room, 'bob');
  await alice.waitMembers(room, ['alice', 'bob']);
  await bob.waitMembers(room, ['alice', 'bob']);

  await alice.send('Hi Bob, alice here');
  await bob.waitTexts(room, ['Hi Bob, alice here']);
  await bob.send('Hey alice!');
  const texts = ['Hi Bob, alice here', 'Hey alice!'];
  for (const p of [alice, bob]) {
    const ms = await assertOnce(p, room, texts);
    assert.deepEqual(ms.map((m) => m.text), texts);
    assert.deepEqual(ms.map((m) => m.nick), ['alice', 'bob']);
    assert.ok(ms.every((m) => /\d/.test(m.time)), 'every message shows its time');
  }
  const mine = (await alice.messages(room)).find((m) => m.text === texts[0]);
  assert.equal(mine.acked, true, "alice's own message is matched to its ack");

  // A third page, joining later on the third gateway, sees the history.
  const carol = await open(gw3.http);
  await carol.join(room, 'carol');
  assert.deepEqual(await carol.texts(room), texts, 'history on join');
  await alice.waitMembers(room, ['alice', 'bob', 'carol']);
  await bob.waitMembers(room, ['alice', 'bob', 'carol']);

  // Closing a page takes carol out of everyone's member list.
  await carol.close();
  await alice.waitMembers(room, ['alice', 'bob']);
  await bob.waitMembers(room, ['alice', 'bob']);
  const notices = (await alice.notices(room)).join('\n');
  assert.match(notices, /carol joined/);
  assert.match(notices, /carol left/);
  assert.deepEqual([...alice.pageErrors, ...bob.pageErrors], [], 'no script errors');
});

test('markup in messages and nicknames renders as text', { timeout: 30000 }, async (t) => {
  t.after(closePages);
  const [gw1, gw2] = cl.gateways;
  const room = 'xss';
  const alice = await open(gw1.http);
  const bob = await open(gw2.http);
  await alice.join(room, 'alice');
  await bob.join(room, 'bob');
  const evil = '<img src=x onerror=alert(1)>';
  await bob.send(evil);
  const eve = await connect(gw2.url);
  await eve.join(room, '<b>eve</b>');
  await eve.say(room, '<script>alert(2)</script>');
  const ms = await assertOnce(alice, room, [evil, '<script>alert(2)</script>']);
  assert.equal(ms.find((m) => m.text === evil).nick, 'bob');
  assert.equal(ms.find((m) => m.nick === '<b>eve</b>').text, '<script>alert(2)</script>');
  for (const p of [alice, bob]) {
    const found = await p.page.evaluate(() => ({
      imgs: document.querySelectorAll('img').length,
      scripts: document.querySelectorAll('body script').length,
      bold: document.querySelectorAll('.msg b, .member b, .notice b').length,
    }));
    assert.deepEqual(found, { imgs: 0, scripts: 0, bold: 0 }, 'no element was created from user text');
    assert.deepEqual(p.dialogs, [], 'no alert dialog opened');
  }
  assert.ok((await alice.members(room)).includes('<b>eve</b>'));
  eve.close();
});

test('screenshot: two rooms, several messages, members', { timeout: 60000 }, async (t) => {
  t.after(closePages);
  const live = cl.gateways.filter((g) => g.running);
  const others = {};
  for (const [i, nick] of ['maya', 'jon', 'priya'].entries()) {
    others[nick] = await connect(live[i % live.length].url);
  }
  const say = (nick, room, text) => others[nick].say(room, text);
  for (const nick of ['maya', 'jon', 'priya']) await others[nick].join('general', nick);
  await others.maya.join('random', 'maya');
  await others.jon.join('random', 'jon');

  await say('priya', 'general', 'Release notes for 0.4 are in the shared folder.');
  await say('jon', 'general', 'Thanks! The reconnect section reads well.');
  await say('maya', 'general', 'Morning all! Is the deploy still on for today?');
  await say('jon', 'general', 'Yes, after lunch. I will post the checklist here.');
  await say('jon', 'general', 'Gateways first, then the workers. Redis stays as it is.');

  const me = await open(proxy.http);
  await me.join('random', 'alex');
  await me.join('general', 'alex');
  await say('priya', 'general', 'Sounds good. Long links wrap nicely now, by the way: '
    + 'https://example.com/some/really/long/path/that/would/otherwise/push/the/layout/sideways?with=query&and=more');
  await me.send('Great, I can watch the dashboards while it rolls out.');
  await say('maya', 'general', 'Thanks Alex!');
  await say('maya', 'random', 'Anyone up for lunch at the new ramen place?');
  await say('jon', 'random', 'Count me in!');
  await me.waitTexts('general', ['Thanks Alex!']);
  await until(async () => (await me.unread('random')) === 2, { what: 'unread badge on #random' });
  await me.waitMembers('general', ['alex', 'jon', 'maya', 'priya']);
  await sleep(300);

  const shot = path.join(outDir, 'chat.png');
  await me.screenshot(shot);
  // The README's picture is refreshed only on request, so a test run
  // leaves the checkout as it found it.
  if (process.env.CHAT_UPDATE_SCREENSHOT === '1') fs.copyFileSync(shot, docsShot);

  // The same conversation at phone width.
  await me.page.setViewportSize({ width: 375, height: 740 });
  await sleep(300);
  const scrollWidth = await me.page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(scrollWidth <= 375, `no horizontal scroll at 375px (${scrollWidth}px)`);
  await me.screenshot(path.join(outDir, 'chat-phone.png'));
  for (const c of Object.values(others)) c.close();
});

test('the gateway a page is on is killed: it reconnects through the balancer, shows what it missed once, '
  + 'and can send again', { timeout: 60000 }, async (t) => {
  t.after(closePages);
  const room = 'failover';
  const dave = await open(proxy.http);
  const doomedId = await dave.gateway();
  const doomed = gatewayById(doomedId);
  assert.ok(doomed, `dave is on a known gateway (${doomedId})`);
  const survivor = cl.gateways.find((g) => g !== doomed && g.running);
  const erin = await open(survivor.http);
  await dave.join(room, 'dave');
  await erin.join(room, 'erin');
  await erin.send('before the crash');
  await dave.waitTexts(room, ['before the crash']);

  // The balancer refuses while we send, so these land while dave is away.
  proxy.setRefusing(true);
  doomed.kill('SIGKILL');
  await doomed.waitExit(5000);
  await until(async () => (await dave.connState()) === 'waiting', { what: 'dave to notice the lost connection' });
  const missed = ['sent while you were away 1', 'sent while you were away 2', 'sent while you were away 3'];
  for (const m of missed) await erin.send(m);
  await erin.waitTexts(room, missed);
  proxy.setRefusing(false);

  await until(async () => (await dave.connState()) === 'open', { timeoutMs: 20000, what: 'dave to reconnect' });
  const now = await dave.gateway();
  assert.notEqual(now, doomedId, 'reconnected to another gateway');
  await dave.waitJoined(room);
  const ms = await assertOnce(dave, room, ['before the crash', ...missed]);
  assert.deepEqual(ms.map((m) => m.seq), ms.map((_, i) => ms[0].seq + i), 'no gap in seqs');
  const notices = (await dave.notices(room)).join('\n');
  assert.match(notices, /3 new messages while you were away/);

  await dave.send('dave is back');
  await assertOnce(erin, room, ['dave is back']);
  await assertOnce(dave, room, ['dave is back']);
  assert.deepEqual(dave.pageErrors, []);
});

// The web chat in a big room (issue 13), in headless Chromium against the
// real cluster: Redis, two gateways that page members by 5 and batch
// presence above 5 members, a worker. The room is filled by raw chat.v1
// clients. The page shows the room's true member count, lists a first
// page of members, loads the next pages as the list is scrolled until
// every member is listed exactly once, and follows joins and leaves that
// come as presence_diff, in the list and in the count.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { startCluster, connect, teardown, FAST } from '../integration/lib/harness.mjs';
import { BIG_ROOM_ARGS, fill, pageHttp, uniq } from '../integration/big_room_helpers.mjs';
import { launchBrowser, PageSet, until, sleep, outDir } from './lib/browser.mjs';

const N = 30;          // members, the page's included: six pages of five
const MAX_SCROLLS = 40; // a bound on the scrolling loop

let cl;
let browser;
const pages = new PageSet();

before(async () => {
  cl = await startCluster({ gateways: 2, workers: 1, gatewayArgs: [...BIG_ROOM_ARGS, ...FAST] });
  // Short enough that the member panel holds about ten rows.
  browser = await launchBrowser({ viewport: { width: 1280, height: 560 } });
}, { timeout: 60000 });

after(async () => {
  await pages.closeAll();
  await browser?.close();
  await teardown();
});

// What the member panel shows: the nicknames listed (in order), the count
// in its heading and the header, and whether it is loading or has more.
function panel(p, room) {
  return p.page.evaluate((r) => {
    const more = document.querySelector(`.member-pane[data-room="${r}"] .members-more`);
    return {
      nicks: [...document.querySelectorAll(`.member-list[data-room="${r}"] .member`)].map((li) => li.dataset.nick),
      count: document.getElementById('members-count').textContent,
      sub: document.getElementById('room-sub').textContent,
      more: Boolean(more && !more.hidden),
      busy: document.querySelector(`.member-list[data-room="${r}"]`)?.getAttribute('aria-busy') === 'true',
    };
  }, room);
}

// The panel once nothing has changed for a while (no page on its way).
async function settled(p, room) {
  let last = '';
  let since = Date.now();
  return until(async () => {
    const s = await panel(p, room);
    const key = JSON.stringify(s);
    if (key !== last) {
      last = key;
      since = Date.now();
      return null;
    }
    return !s.busy && Date.now() - since >= 700 && s;
  }, { what: 'the member panel to settle' });
}

const truth = async (room) => {
  const t = await pageHttp(cl.gateways[1], room);
  return { names: uniq(t.names), count: t.count };
};

test('count, a first page, more pages as the list scrolls, then diffs applied live', { timeout: 90000 }, async (t) => {
  t.after(() => pages.closeAll());
  const room = 'crowd';
  const raws = await fill(cl.gateways, room, 'guest', N - 1);
  const p = await pages.open(browser, cl.gateways[0].http);
  await p.join(room, 'me');

  // The count is the room's, from the start; the list is a page or a few
  // (as many as fill the panel), not everyone.
  let want = await truth(room);
  assert.equal(want.count, N);
  let s = await settled(p, room);
  assert.equal(s.count, String(N), 'the panel heading shows the true count');
  assert.match(s.sub, new RegExp(`· ${N} members online`), 'so does the room header');
  assert.ok(s.nicks.length >= 5 && s.nicks.length < N, `a first part of the list is shown (${s.nicks.length})`);
  assert.equal(new Set(s.nicks).size, s.nicks.length, 'nobody twice');
  assert.equal(s.nicks[0], 'me', 'yourself first');
  assert.ok(s.more, 'a "show more" control at the end of the list');
  await p.screenshot(path.join(outDir, 'big-room-first-page.png'));

  // Scrolling the list to its end loads the next pages, until all are there.
  let scrolls = 0;
  while (s.more) {
    assert.ok(++scrolls <= MAX_SCROLLS, `the list is whole after ${MAX_SCROLLS} scrolls (${s.nicks.length} shown)`);
    const before = s.nicks.length;
    await p.page.evaluate(() => {
      const sc = document.getElementById('member-lists');
      sc.scrollTop = sc.scrollHeight;
    });
    s = await until(async () => {
      const now = await panel(p, room);
      return (now.nicks.length > before || !now.more) && now;
    }, { what: `more than ${before} members after scrolling` });
  }
  assert.ok(scrolls >= 1, 'scrolling loaded pages');
  s = await settled(p, room);
  assert.deepEqual([...s.nicks].sort(), want.names, 'every member is listed');
  assert.equal(new Set(s.nicks).size, s.nicks.length, 'each exactly once');
  assert.equal(s.count, String(N));
  assert.equal(s.more, false, 'nothing more to load');

  // Joins and leaves now come as presence_diff (the room is above the
  // threshold): the list and the count follow them.
  const watcher = raws[N - 2];
  watcher.take(() => true);
  const newcomers = await fill(cl.gateways, room, 'late', 3);
  raws[0].send({ type: 'leave', room });
  await raws[1].close();
  raws[2].terminate();
  // (Pages read while a member leaves may still list it: wait for pages
  // that agree with the count and name none of the three.)
  const gone = ['guest1', 'guest2', 'guest3'];
  want = await until(async () => {
    const w = await truth(room);
    return w.count === N && w.names.length === N && !gone.some((n) => w.names.includes(n)) && w;
  }, { what: 'the cluster to have the joins and leaves' });
  await until(async () => {
    s = await panel(p, room);
    return JSON.stringify([...s.nicks].sort()) === JSON.stringify(want.names) && s.count === String(want.count);
  }, { what: 'the panel to follow the joins and leaves' }).catch((e) => {
    throw new Error(`${e.message}: shown ${s.nicks.join()} (${s.count}), want ${want.names.join()} (${want.count})`);
  });
  for (const n of ['late1', 'late2', 'late3']) assert.ok(s.nicks.includes(n), `${n} listed`);
  for (const n of gone) assert.ok(!s.nicks.includes(n), `${n} gone`);
  const diffs = watcher.frames.filter((f) => f.type === 'presence_diff' && f.room === room);
  assert.ok(diffs.length > 0, 'the room\'s presence came as diffs');
  assert.equal(watcher.frames.filter((f) => f.type === 'presence' && f.room === room).length, 0, 'and only as diffs');

  // A newcomer joining the page's room a second later is also shown, and
  // the count follows it.
  const one = await connect(cl.gateways[1].url);
  await one.join(room, 'latest');
  await until(async () => {
    s = await panel(p, room);
    return s.nicks.includes('latest') && s.count === String(N + 1);
  }, { what: 'latest in the list, and the count one up' });
  await sleep(300);
  s = await panel(p, room);
  assert.equal(new Set(s.nicks).size, s.nicks.length, 'still nobody twice');
  await p.screenshot(path.join(outDir, 'big-room-all.png'));
  assert.deepEqual(p.pageErrors, [], 'no script errors');
  for (const c of [...newcomers, one]) c.terminate();
});

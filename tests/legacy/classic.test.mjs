// The classic WCF chat page (classic.html: plain WebSocket, no subprotocol,
// sends {nickname, room, message}, renders every frame as
// "nickname@room said message") works against the cluster unchanged: two
// such pages on two gateways see each other's lines, and never a frame they
// cannot render (welcome, joined, ack, presence would show up as
// "undefined@undefined said undefined").
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, FAST } from '../integration/lib/harness.mjs';
import { launchBrowser, sleep } from '../browser/lib/browser.mjs';
import { openClassic as openClassicIn, waitLine } from './lib.mjs';

let cl;
let browser;

before(async () => {
  // The page is opened from a file (Origin: null), not from the gateway, as a
  // classic page hosted elsewhere would be: such deployments list their
  // page's origin in --allowed-origins; '*' stands for that here.
  cl = await startCluster({ gateways: 2, workers: 1, gatewayArgs: [...FAST, '--allowed-origins', '*'] });
  browser = await launchBrowser();
}, { timeout: 60000 });

after(async () => {
  await browser?.close();
  await teardown();
});

const openClassic = (wsUrl, nickname, room) => openClassicIn(browser, wsUrl, nickname, room);

test('two classic pages on two gateways see each other, and nothing else', { timeout: 60000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = 'classic';
  const ann = await openClassic(gw1.url, 'ann', room);
  const ben = await openClassic(gw2.url, 'ben', room);
  await sleep(300);
  assert.deepEqual(await ann.lines(), [], 'nothing is sent to a classic page before it speaks (no welcome)');

  // The first message also joins the room, as the classic service did.
  await ann.say('hello from ann');
  await waitLine(ann, 'ann@classic said hello from ann');
  await ben.say('hello from ben');
  await waitLine(ben, 'ben@classic said hello from ben');
  await waitLine(ann, 'ben@classic said hello from ben');

  // A chat.v1 member comes and goes: its message reaches the classic pages,
  // its presence frames do not.
  const carl = await connect(gw2.url);
  await carl.join(room, 'carl');
  await carl.say(room, 'carl here');
  await carl.request({ type: 'leave', room });
  carl.close();

  await ann.say('bye from ann');
  await waitLine(ben, 'ann@classic said bye from ann');
  await sleep(1000); // anything unexpected would have arrived by now

  assert.deepEqual(await ann.lines(), [
    'ann@classic said hello from ann',
    'ben@classic said hello from ben',
    'carl@classic said carl here',
    'ann@classic said bye from ann',
  ]);
  assert.deepEqual(await ben.lines(), [
    'ben@classic said hello from ben',
    'carl@classic said carl here',
    'ann@classic said bye from ann',
  ]);
  for (const p of [ann, ben]) {
    assert.ok((await p.lines()).every((l) => !l.includes('undefined')), 'no unrenderable frame');
    assert.deepEqual(p.dialogs, []);
    await p.page.close();
  }
});

// join's grace_ms (docs/PROTOCOL.md, additions): a membership outlives its
// connection by that long. A client back within it (a reloaded page) that
// joins with the same nickname takes the member over silently: the others
// see no leave and no join, and it recovers what it missed with since/epoch.
// One that does not come back leaves with the connection's reason once the
// grace is over; an explicit leave, and a join without grace_ms, are
// immediate as before.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom } from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 1 });
}, { timeout: 20000 });
after(teardown);

const presence = (room) => (f) => f.type === 'presence' && f.room === room;

test('back within the grace on another connection: no presence flap, missed messages recovered',
  { timeout: 20000 }, async () => {
    const [gw1, gw2] = cl.gateways;
    const room = uniqueRoom('grace');
    const obs = await connect(gw2.url);
    await obs.join(room, 'obs');
    const page = await connect(gw1.url);
    const j = await page.join(room, 'ann', { grace_ms: 3000 });
    await obs.next((f) => presence(room)(f) && f.event === 'join' && f.nickname === 'ann');
    await obs.say(room, 'seen');
    const seen = await page.next({ type: 'message', room });

    // The page reloads: the socket closes, a message arrives meanwhile, and
    // the new page joins with since/epoch a moment later.
    page.close();
    await page.waitClosed();
    await obs.say(room, 'missed while reloading');
    const again = await connect(gw1.url);
    const rj = await again.join(room, 'ann', { since: seen.seq, epoch: j.epoch, grace_ms: 3000 });
    assert.equal(rj.recovered, true);
    assert.deepEqual(rj.history.map((m) => m.message), ['missed while reloading']);
    assert.ok(rj.members.some((m) => m.nickname === 'ann'));

    // Past the grace (and a worker's turn): still nothing for the observer.
    assert.equal(await obs.quiet((f) => presence(room)(f) && f.nickname === 'ann', 4500), null,
      'no presence leave or join for a member back within its grace');
    const members = await obs.request({ type: 'members', room });
    assert.deepEqual(members.members.map((m) => m.nickname).sort(), ['ann', 'obs']);
  });

test('not back within the grace: the leave comes once it is over, with the close reason',
  { timeout: 20000 }, async () => {
    const [gw1, gw2] = cl.gateways;
    const room = uniqueRoom('grace');
    const obs = await connect(gw2.url);
    await obs.join(room, 'obs');
    const page = await connect(gw1.url);
    await page.join(room, 'bea', { grace_ms: 1500 });
    const t0 = Date.now();
    page.close();
    const leave = await obs.next((f) => presence(room)(f) && f.event === 'leave' && f.nickname === 'bea', 8000);
    const took = Date.now() - t0;
    assert.equal(leave.reason, 'closed');
    assert.ok(took >= 1400, `the leave waited for the grace (${took} ms)`);
    assert.ok(took < 1500 + 3000, `and not much longer (${took} ms)`);
  });

test('an explicit leave and a join without grace_ms are not held back', { timeout: 20000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('grace');
  const obs = await connect(gw2.url);
  await obs.join(room, 'obs');
  const a = await connect(gw1.url);
  await a.join(room, 'cat', { grace_ms: 10000 });
  const t0 = Date.now();
  await a.request({ type: 'leave', room });
  await obs.next((f) => presence(room)(f) && f.event === 'leave' && f.nickname === 'cat', 3000);
  const b = await connect(gw1.url);
  await b.join(room, 'dan');
  b.close();
  const l = await obs.next((f) => presence(room)(f) && f.event === 'leave' && f.nickname === 'dan', 3000);
  assert.equal(l.reason, 'closed');
  assert.ok(Date.now() - t0 < 3000);
});

test('grace_ms is checked: 0..10000', { timeout: 10000 }, async () => {
  const c = await connect(cl.gateways[0].url);
  for (const bad of [-1, 10001, 1.5, '100']) {
    const r = await c.request({ type: 'join', room: uniqueRoom('g'), nickname: 'x', grace_ms: bad });
    assert.equal(r.type, 'error', `grace_ms ${JSON.stringify(bad)}`);
    assert.equal(r.code, 'bad_request');
  }
  const ok = await c.request({ type: 'join', room: uniqueRoom('g'), nickname: 'x', grace_ms: 10000 });
  assert.equal(ok.type, 'joined');
});

test('a draining gateway emits the held leaves before it exits', { timeout: 20000 }, async () => {
  const gw = cl.gateways[0];
  const room = uniqueRoom('grace');
  const obs = await connect(cl.gateways[1].url);
  await obs.join(room, 'obs');
  const a = await connect(gw.url);
  await a.join(room, 'eve', { grace_ms: 10000 });
  a.close();
  await a.waitClosed();
  const t0 = Date.now();
  gw.kill('SIGTERM');
  await gw.waitExit(10000);
  const l = await obs.next((f) => presence(room)(f) && f.event === 'leave' && f.nickname === 'eve', 5000);
  assert.equal(l.reason, 'closed');
  assert.ok(Date.now() - t0 < 8000, 'well before the 10 s grace would have ended');
});

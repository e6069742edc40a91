// join with `since` (and `epoch`): recovered true with exactly the later
// messages when they are all there; recovered false with the most recent
// messages when they were trimmed (--history-max) or the epoch is wrong.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, range, FAST } from './lib/harness.mjs';

after(teardown);

async function roomWith(gwUrl, n) {
  const room = uniqueRoom('since');
  const w = await connect(gwUrl);
  const j = await w.join(room, 'writer');
  await w.sayMany(room, range(1, n).map((i) => `s${i}`));
  return { room, epoch: j.epoch, writer: w };
}

test('since within history: recovered true, later messages only, then live', { timeout: 30000 }, async () => {
  const cl = await startCluster({ gateways: 2, workers: 0, gatewayArgs: FAST });
  const [gw1, gw2] = cl.gateways;
  const { room, epoch, writer } = await roomWith(gw1.url, 5);

  const b = await connect(gw2.url);
  const j = await b.join(room, 'b', { since: 2, epoch });
  assert.equal(j.recovered, true);
  assert.equal(j.seq, 5);
  assert.deepEqual(j.history.map((m) => m.seq), [3, 4, 5]);
  assert.deepEqual(j.history.map((m) => m.message), ['s3', 's4', 's5']);
  await writer.say(room, 's6');
  const live = await b.next({ type: 'message', room });
  assert.equal(live.seq, 6, 'live continues after history, no duplicate');

  const c = await connect(gw2.url);
  const jc = await c.join(room, 'c', { since: 6, epoch });
  assert.equal(jc.recovered, true, 'since = latest seq');
  assert.deepEqual(jc.history, []);

  const d = await connect(gw1.url);
  const jd = await d.join(room, 'd', { since: 4 });
  assert.equal(jd.recovered, true, 'no epoch: the current epoch is assumed');
  assert.deepEqual(jd.history.map((m) => m.seq), [5, 6]);

  const e = await connect(gw1.url);
  const je = await e.join(room, 'e', { since: 0, epoch });
  assert.equal(je.recovered, true, 'since 0: everything');
  assert.deepEqual(je.history.map((m) => m.seq), range(1, 6));
});

test('since with a wrong epoch: recovered false, most recent history', { timeout: 30000 }, async () => {
  const cl = await startCluster({ gateways: 1, workers: 0, gatewayArgs: FAST });
  const { room, epoch } = await roomWith(cl.gateways[0].url, 8);
  const c = await connect(cl.gateways[0].url);
  const j = await c.join(room, 'c', { since: 2, epoch: `${epoch}-not-it`, history: 3 });
  assert.equal(j.recovered, false);
  assert.equal(j.epoch, epoch, 'joined tells the current epoch');
  assert.deepEqual(j.history.map((m) => m.seq), [6, 7, 8], 'the most recent `history` messages instead');

  const d = await connect(cl.gateways[0].url);
  const jd = await d.join(room, 'd', { since: 2, epoch: 'never-an-epoch' });
  assert.equal(jd.recovered, false);
  assert.deepEqual(jd.history.map((m) => m.seq), range(1, 8), 'default history count');
});

test('since older than what history keeps: recovered false', { timeout: 30000 }, async () => {
  const cl = await startCluster({ gateways: 1, workers: 0, gatewayArgs: [...FAST, '--history-max', '5'] });
  const url = cl.gateways[0].url;
  const { room, epoch } = await roomWith(url, 12); // history keeps 8..12

  const a = await connect(url);
  const ja = await a.join(room, 'a', { since: 2, epoch });
  assert.equal(ja.recovered, false, 'seq 3..7 were trimmed');
  assert.deepEqual(ja.history.map((m) => m.seq), range(8, 12), 'the most recent messages instead');

  const b = await connect(url);
  const jb = await b.join(room, 'b', { since: 6, epoch });
  assert.equal(jb.recovered, false, 'seq 7 was trimmed');

  const c = await connect(url);
  const jc = await c.join(room, 'c', { since: 7, epoch });
  assert.equal(jc.recovered, true, 'seq 8..12 are all kept');
  assert.deepEqual(jc.history.map((m) => m.seq), range(8, 12));

  const d = await connect(url);
  const jd = await d.join(room, 'd', { history: 50 });
  assert.deepEqual(jd.history.map((m) => m.seq), range(8, 12), 'history is capped at --history-max');
});

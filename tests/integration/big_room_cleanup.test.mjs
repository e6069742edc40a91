// Takeover, gateway-crash cleanup and recovery with `since` in a room
// bigger than --presence-batch-above (issue 13), where members get presence
// as presence_diff: a takeover still tells the old session `left`
// (replaced) with no leave in any diff and no change of count; a gateway
// killed with -9 has its members removed with reason gateway_lost, seen in
// the diffs with the right count; and its clients re-join elsewhere with
// `since` and recover every message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, waitFor } from './lib/harness.mjs';
import { BIG_ROOM_ARGS, THRESHOLD, fill, pageHttp, uniq, MemberView } from './big_room_helpers.mjs';

const TIMEOUT_MS = 2000;

let cl;
before(async () => {
  cl = await startCluster({
    gateways: 2,
    workers: 2,
    gatewayArgs: BIG_ROOM_ARGS,
    workerArgs: ['--gateway-timeout-ms', String(TIMEOUT_MS), '--sweep-ms', '100'],
  });
}, { timeout: 30000 });
after(teardown);

// Feeds the view from the client until pred holds; bounded in time.
async function until(view, client, room, pred, what, timeoutMs = 5000) {
  await waitFor(() => {
    view.drain(client, room);
    return pred();
  }, { timeoutMs, intervalMs: 50, what }).catch((e) => {
    throw new Error(`${e.message}: view ${view.names().join()} (${view.count})`);
  });
}

test('takeover in a big room: left (replaced), no leave in any diff, count unchanged', { timeout: 30000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('bigtake');
  const watcher = await connect(gw1.url);
  const view = new MemberView(await watcher.join(room, 'watcher'));
  const members = await fill(cl.gateways, room, 'b', THRESHOLD + 3);
  const n = THRESHOLD + 4;
  await until(view, watcher, room, () => view.count === n && view.set.size === n, `${n} members`);

  const old = members[0]; // b1
  const neu = await connect(gw2.url);
  const j = await neu.join(room, 'b1');
  assert.equal(j.count, n, 'a takeover adds nobody');
  const left = await old.next({ type: 'left', room }, 3000);
  assert.equal(left.reason, 'replaced');
  // The old session's close must not remove the new owner: a later
  // member's leave, seen in a diff, is the barrier.
  await old.close();
  const z = await connect(gw2.url);
  await z.join(room, 'zed');
  await until(view, watcher, room, () => view.set.has('zed'), 'zed joined');
  await z.close();
  await until(view, watcher, room, () => !view.set.has('zed'), 'zed gone');
  assert.equal(view.count, n);
  const diffs = watcher.frames.filter((f) => f.type === 'presence_diff');
  assert.ok(diffs.length > 0);
  assert.ok(diffs.every((f) => !f.leaves.some((l) => l.nickname === 'b1')), 'no leave of b1');
  assert.equal(watcher.frames.filter((f) => f.type === 'presence' && f.count > THRESHOLD).length, 0,
    'no single presence frame in a big room');
  const truth = await pageHttp(gw1, room);
  assert.equal(truth.count, n);
  assert.ok(uniq(truth.names).includes('b1'));
  await neu.say(room, 'still mine');
});

test('kill -9 of a gateway in a big room: gateway_lost in the diffs, count right, since recovers', { timeout: 40000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('bigkill');
  const watcher = await connect(gw1.url);
  const view = new MemberView(await watcher.join(room, 'watcher'));
  const stay = [];
  for (let i = 1; i <= 3; i++) {
    const c = await connect(gw1.url);
    await c.join(room, `s${i}`);
    stay.push(c);
  }
  const doomed = [];
  for (let i = 1; i <= THRESHOLD + 2; i++) {
    const c = await connect(gw2.url);
    await c.join(room, `d${i}`);
    doomed.push(c);
  }
  const n = 1 + 3 + THRESHOLD + 2;
  await until(view, watcher, room, () => view.count === n && view.set.size === n, `${n} members`);
  const ack = await stay[0].say(room, 'before the crash');

  const t0 = Date.now();
  gw2.kill('SIGKILL');
  await until(view, watcher, room, () => view.count === 4 && view.set.size === 4,
    'the dead gateway\'s members to be gone', TIMEOUT_MS + 5000);
  assert.ok(Date.now() - t0 < TIMEOUT_MS + 4000, `within the gateway timeout (${Date.now() - t0} ms)`);
  assert.deepEqual(view.names(), ['s1', 's2', 's3', 'watcher']);
  // Leaves in a room above the threshold come in diffs; the last ones, at
  // or below it, one by one.
  const lost = [
    ...watcher.frames.filter((f) => f.type === 'presence_diff').flatMap((f) => f.leaves),
    ...watcher.frames.filter((f) => f.type === 'presence' && f.event === 'leave'),
  ];
  assert.deepEqual(uniq(lost.map((l) => l.nickname)), doomed.map((_, i) => `d${i + 1}`).sort());
  assert.equal(lost.length, THRESHOLD + 2, JSON.stringify(lost));
  assert.ok(watcher.frames.filter((f) => f.type === 'presence_diff').some((f) => f.leaves.length > 0));
  assert.ok(lost.every((l) => l.reason === 'gateway_lost'), JSON.stringify(lost));
  const truth = await pageHttp(gw1, room);
  assert.equal(truth.count, 4);
  assert.deepEqual(uniq(truth.names), ['s1', 's2', 's3', 'watcher']);

  // A client of the dead gateway re-joins through the live one with since.
  await stay[1].say(room, 'during the outage');
  const back = await connect(gw1.url);
  const j = await back.join(room, 'd1', { since: ack.seq - 1 });
  assert.equal(j.recovered, true);
  assert.deepEqual(j.history.map((m) => m.message), ['before the crash', 'during the outage']);
  assert.equal(j.count, 5);
  await until(view, watcher, room, () => view.set.has('d1') && view.count === 5, 'd1 back');
});

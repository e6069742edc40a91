// Batched presence (issue 13). In a room of more members than
// --presence-batch-above, every chat.v1 member gets joins and leaves as one
// presence_diff per room per tick, carrying the room's member count; a
// member that joined with "presence":"diff" gets diffs in any room, and one
// that joined with "presence":"count" only presence_count. Applied
// in order, diffs and presence frames add up to the true member list and
// count. Below the threshold a client that did not ask gets one presence
// frame per event, as before (now with the count).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, waitFor } from './lib/harness.mjs';
import { BIG_ROOM_ARGS, THRESHOLD, fill, pageHttp, uniq, MemberView } from './big_room_helpers.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 1, gatewayArgs: BIG_ROOM_ARGS });
}, { timeout: 20000 });
after(teardown);

// Waits until the view, fed from the client's inbox, holds the true list
// and count (read page by page over HTTP).
async function converge(view, client, room) {
  let truth;
  await waitFor(async () => {
    view.drain(client, room);
    truth = await pageHttp(cl.gateways[0], room);
    return view.names().join() === uniq(truth.names).join() && view.count === truth.count;
  }, { timeoutMs: 8000, intervalMs: 100, what: 'the view to match the member list' }).catch((e) => {
    throw new Error(`${e.message}: view ${view.names().join()} (${view.count}), ` +
      `truth ${uniq(truth.names).join()} (${truth.count})`);
  });
  return truth;
}

test('diffs add up to the true member list, across the threshold both ways', { timeout: 60000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('diff');
  const old = await connect(gw1.url);
  const oldView = new MemberView(await old.join(room, 'old'));
  const asked = await connect(gw2.url);
  const askedView = new MemberView(await asked.join(room, 'asked', { presence: 'diff' }));
  const counter = await connect(gw1.url);
  const cj = await counter.join(room, 'counter', { presence: 'count' });
  assert.deepEqual([cj.members, cj.count, cj.members_cursor], [[], 3, undefined], 'the count, no list');
  const lastCount = () => counter.frames.filter((f) => f.type === 'presence_count').at(-1)?.count;

  // 12 join at once, over both gateways: 15 members, well above 5.
  const joiners = await Promise.all(Array.from({ length: 12 }, (_, i) =>
    connect(cl.gateways[i % 2].url).then(async (c) => {
      await c.join(room, `j${i + 1}`);
      return c;
    })));
  let truth = await converge(oldView, old, room);
  assert.equal(truth.count, 15);
  await converge(askedView, asked, room);
  await waitFor(() => lastCount() === 15, { timeoutMs: 5000, what: 'presence_count 15' });

  // 10 go (leave, close, reset): down to 5, at the threshold again.
  for (let i = 0; i < 10; i++) {
    const c = joiners[i];
    if (i % 3 === 0) c.send({ type: 'leave', room });
    else if (i % 3 === 1) c.close();
    else c.terminate();
  }
  truth = await converge(oldView, old, room);
  assert.equal(truth.count, 5);
  await converge(askedView, asked, room);
  await waitFor(() => lastCount() === 5, { timeoutMs: 5000, what: 'presence_count 5' });
  assert.deepEqual(counter.frames.filter((f) => f.type === 'presence' || f.type === 'presence_diff'), [],
    'the count only, no names');

  // The client that did not ask got diffs for the events of the big room
  // only: every single presence frame it got was of a room at or below the
  // threshold, and carried the count.
  const oldSingles = old.frames.filter((f) => f.type === 'presence');
  assert.ok(oldView.diffs > 0, 'diffs while the room was big');
  for (const f of oldSingles) {
    assert.equal(typeof f.count, 'number', JSON.stringify(f));
    assert.ok(f.count <= THRESHOLD, `a single frame in a big room: ${JSON.stringify(f)}`);
  }
  // The client that asked got nothing but diffs, fewer than the events.
  assert.equal(asked.frames.filter((f) => f.type === 'presence').length, 0);
  assert.ok(askedView.diffs > 0 && askedView.diffs < 13 + 10,
    `batched: ${askedView.diffs} diffs for 23 joins and leaves`);
  for (const f of asked.frames.filter((x) => x.type === 'presence_diff')) {
    assert.equal(f.room, room);
    assert.ok(f.joins.length + f.leaves.length > 0, 'no empty diff');
    for (const j of f.joins) assert.equal(typeof j.since, 'number');
    for (const l of f.leaves) assert.ok(['left', 'closed', 'faulted'].includes(l.reason), JSON.stringify(l));
  }
});

test('below the threshold a client that did not ask is served as before', { timeout: 30000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('small');
  const old = await connect(gw1.url);
  const j = await old.join(room, 'old');
  assert.deepEqual(j.members.map((m) => m.nickname), ['old']);
  assert.equal(j.members_cursor, undefined);
  const asked = await connect(gw1.url);
  await asked.join(room, 'asked', { presence: 'diff' });
  const others = await fill([gw2], room, 'p', 2); // 4 members

  await old.next({ type: 'presence', room, event: 'join', nickname: 'p1', count: 3 });
  await old.next({ type: 'presence', room, event: 'join', nickname: 'p2', count: 4 });
  others[0].send({ type: 'leave', room });
  const leave = await old.next({ type: 'presence', room, event: 'leave', nickname: 'p1' });
  assert.equal(leave.reason, 'left');
  assert.equal(leave.count, 3);
  // Each event on its own, in the shape of docs/PROTOCOL.md, count added.
  for (const f of old.frames.filter((x) => x.type === 'presence')) {
    assert.deepEqual(Object.keys(f).sort(),
      f.event === 'join' ? ['count', 'event', 'nickname', 'room', 'ts', 'type']
        : ['count', 'event', 'nickname', 'reason', 'room', 'ts', 'type']);
  }
  assert.equal(old.frames.filter((f) => f.type === 'presence_diff').length, 0, 'no diff to who did not ask');

  // The one that asked gets the same as diffs.
  const view = new MemberView({ members: [{ nickname: 'old' }], count: 1 });
  await converge(view, asked, room);
  assert.equal(asked.frames.filter((f) => f.type === 'presence').length, 0);
  assert.ok(view.diffs > 0);
});

test('presence must be "events", "diff" or "count"', { timeout: 10000 }, async () => {
  const c = await connect(cl.gateways[0].url);
  const f = await c.request({ type: 'join', room: uniqueRoom('bad'), nickname: 'x', presence: 'all' });
  assert.equal(f.type, 'error');
  assert.equal(f.code, 'bad_request');
});

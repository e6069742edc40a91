// Presence: members see a presence join when someone joins (the joiner sees
// its own), and a presence leave — published by the worker within 2 s —
// with reason "left" after a leave, "closed" after a clean close, and
// "faulted" after a TCP reset. The member list follows.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, waitFor, httpGet } from './lib/harness.mjs';

const LEAVE_WITHIN_MS = 2000;

let cl;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 1 });
}, { timeout: 20000 });
after(teardown);

async function memberNames(gw, room) {
  const r = await httpGet(`${gw.http}/api/rooms/${room}/members`);
  return r.json().members.map((m) => m.nickname).sort();
}

async function expectLeave(watcher, room, nickname, reason) {
  const t0 = Date.now();
  const p = await watcher.next({ type: 'presence', room, event: 'leave', nickname }, LEAVE_WITHIN_MS)
    .catch((e) => {
      throw new Error(`no presence leave of ${nickname} (${reason}) within ${LEAVE_WITHIN_MS} ms: ${e.message}`);
    });
  assert.equal(p.reason, reason, `presence leave reason for ${nickname}`);
  assert.equal(typeof p.ts, 'number');
  return Date.now() - t0;
}

test('join: others and the joiner see a presence join', { timeout: 15000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('pj');
  const alice = await connect(gw1.url);
  await alice.join(room, 'alice');
  const bob = await connect(gw2.url);
  await bob.join(room, 'bob');
  const seen = await alice.next({ type: 'presence', room, event: 'join', nickname: 'bob' });
  assert.equal(typeof seen.ts, 'number');
  assert.equal(seen.reason, undefined, 'a join has no reason');
  await bob.next({ type: 'presence', room, event: 'join', nickname: 'bob' });
});

test('leave: presence leave with reason "left"; members follow', { timeout: 15000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('pl');
  const alice = await connect(gw1.url);
  await alice.join(room, 'alice');
  const bob = await connect(gw2.url);
  await bob.join(room, 'bob');
  assert.deepEqual(await memberNames(gw1, room), ['alice', 'bob']);
  bob.send({ type: 'leave', room, id: 'l' });
  await bob.next({ type: 'left', id: 'l' });
  await expectLeave(alice, room, 'bob', 'left');
  await waitFor(async () => (await memberNames(gw1, room)).join() === 'alice',
    { timeoutMs: LEAVE_WITHIN_MS, what: 'bob gone from members' });
});

test('clean close: presence leave with reason "closed"', { timeout: 15000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('pc');
  const alice = await connect(gw1.url);
  await alice.join(room, 'alice');
  const carol = await connect(gw2.url);
  await carol.join(room, 'carol');
  await alice.next({ type: 'presence', room, event: 'join', nickname: 'carol' });
  await carol.close(1000, 'bye');
  await expectLeave(alice, room, 'carol', 'closed');
  await waitFor(async () => (await memberNames(gw2, room)).join() === 'alice',
    { timeoutMs: LEAVE_WITHIN_MS, what: 'carol gone from members' });
});

test('close of a member of two rooms: a leave in each', { timeout: 15000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const r1 = uniqueRoom('pc2a');
  const r2 = uniqueRoom('pc2b');
  const alice = await connect(gw1.url);
  await alice.join(r1, 'alice');
  await alice.join(r2, 'alice');
  const eve = await connect(gw2.url);
  await eve.join(r1, 'eve-1');
  await eve.join(r2, 'eve-2');
  await eve.close();
  await expectLeave(alice, r1, 'eve-1', 'closed');
  await expectLeave(alice, r2, 'eve-2', 'closed');
});

test('TCP reset: presence leave with reason "faulted"', { timeout: 15000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('pf');
  const alice = await connect(gw1.url);
  await alice.join(room, 'alice');
  const dave = await connect(gw2.url);
  await dave.join(room, 'dave');
  await alice.next({ type: 'presence', room, event: 'join', nickname: 'dave' });
  dave.ws._socket.resetAndDestroy();
  await expectLeave(alice, room, 'dave', 'faulted');
});

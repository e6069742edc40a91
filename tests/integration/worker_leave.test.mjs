// Leave events on chat:events: the worker removes the member only if the
// event's membership id still owns the nickname, publishes the presence
// leave with the event's reason, drops the gateway's registry entry, and
// acknowledges the entry. Joins and malformed entries are acknowledged too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startWorker, teardown, uniqueRoom, sleep, waitFor } from './lib/harness.mjs';
import {
  FAST, addMember, addEvent, membersKey, registryKey, channel, workerMetrics, waitAllAcked,
  presenceFrames, EVENTS,
} from './worker_helpers.mjs';

let redis;
let worker;
let c;
before(async () => {
  redis = await startRedis();
  worker = await startWorker({ redisUrl: redis.url, extraArgs: FAST });
  c = await redis.client();
}, { timeout: 20000 });
after(async () => {
  c?.close();
  await teardown();
});

test('a leave removes the member and publishes presence leave with its reason', { timeout: 15000 }, async () => {
  const room = uniqueRoom('leave');
  const sub = await redis.client();
  try {
    await sub.subscribe(channel(room));
    await addMember(c, { room, nickname: 'alice', mid: 'sa.1', gateway: 'gwL' });
    await addMember(c, { room, nickname: 'bob', mid: 'sb.1', gateway: 'gwL' });
    await addEvent(c, { room, nickname: 'alice', mid: 'sa.1', gateway: 'gwL', reason: 'faulted' });

    const m = await sub.nextMessage((x) => x.channel === channel(room), 5000);
    const f = JSON.parse(m.data);
    assert.equal(f.type, 'presence');
    assert.equal(f.room, room);
    assert.equal(f.event, 'leave');
    assert.equal(f.nickname, 'alice');
    assert.equal(f.reason, 'faulted');
    assert.equal(typeof f.ts, 'number');

    await waitAllAcked(c);
    assert.equal(await c.command('HEXISTS', membersKey(room), 'alice'), 0, 'alice removed');
    assert.equal(await c.command('HEXISTS', membersKey(room), 'bob'), 1, 'bob untouched');
    assert.equal(await c.command('HEXISTS', registryKey('gwL'), 'sa.1'), 0, 'registry entry dropped');
    assert.equal(await c.command('HEXISTS', registryKey('gwL'), 'sb.1'), 1, 'other registry entry kept');
  } finally {
    sub.close();
  }
});

test('every leave reason reaches the presence frame', { timeout: 15000 }, async () => {
  const room = uniqueRoom('reasons');
  const sub = await redis.client();
  const reasons = ['left', 'closed', 'faulted', 'timeout'];
  try {
    await sub.subscribe(channel(room));
    for (const [i, reason] of reasons.entries()) {
      await addMember(c, { room, nickname: `n${i}`, mid: `s${i}.1`, gateway: 'gwR' });
      await addEvent(c, { room, nickname: `n${i}`, mid: `s${i}.1`, gateway: 'gwR', reason });
    }
    await waitAllAcked(c);
    await waitFor(() => presenceFrames(sub, room).length === reasons.length, { what: 'four presence frames' });
    assert.deepEqual(presenceFrames(sub, room).map((f) => [f.nickname, f.reason]),
      reasons.map((r, i) => [`n${i}`, r]));
    assert.equal(await c.command('HLEN', membersKey(room)), 0);
  } finally {
    sub.close();
  }
});

test('a leave with a stale mid changes nothing and publishes nothing', { timeout: 15000 }, async () => {
  const room = uniqueRoom('stale');
  const sub = await redis.client();
  try {
    await sub.subscribe(channel(room));
    // carol rejoined (mid sc.2); the late leave is for her earlier join.
    await addMember(c, { room, nickname: 'carol', mid: 'sc.2', gateway: 'gwS' });
    const before = await c.command('HGET', membersKey(room), 'carol');
    await addEvent(c, { room, nickname: 'carol', mid: 'sc.1', gateway: 'gwS', reason: 'closed' });
    // And a "replaced" leave of another session that once held the nickname.
    await addEvent(c, { room, nickname: 'carol', mid: 'sx.1', gateway: 'gwS', reason: 'replaced' });
    await waitAllAcked(c);
    await sleep(200); // a publish, if any, would have arrived by now
    assert.equal(await c.command('HGET', membersKey(room), 'carol'), before, 'carol still owns her nickname');
    assert.deepEqual(presenceFrames(sub, room), [], 'no presence frame');
    assert.equal(await c.command('HEXISTS', registryKey('gwS'), 'sc.2'), 1, 'live registry entry kept');
  } finally {
    sub.close();
  }
});

test('applying the same leave twice is harmless', { timeout: 15000 }, async () => {
  const room = uniqueRoom('twice');
  const sub = await redis.client();
  try {
    await sub.subscribe(channel(room));
    await addMember(c, { room, nickname: 'dan', mid: 'sd.1', gateway: 'gwT' });
    await addEvent(c, { room, nickname: 'dan', mid: 'sd.1', gateway: 'gwT' });
    await addEvent(c, { room, nickname: 'dan', mid: 'sd.1', gateway: 'gwT' });
    await waitAllAcked(c);
    await sleep(200);
    assert.equal(presenceFrames(sub, room).length, 1, 'one presence leave');
    assert.equal(await c.command('HEXISTS', membersKey(room), 'dan'), 0);
  } finally {
    sub.close();
  }
});

test('joins and malformed entries are acknowledged and counted', { timeout: 15000 }, async () => {
  const before = await workerMetrics(worker);
  const room = uniqueRoom('join');
  await addMember(c, { room, nickname: 'erin', mid: 'se.1', gateway: 'gwJ' });
  await addEvent(c, { type: 'join', room, nickname: 'erin', mid: 'se.1', gateway: 'gwJ' });
  await c.command('XADD', EVENTS, '*', 'type', 'bogus');
  await c.command('XADD', EVENTS, '*', 'type', 'leave', 'room', 'no spaces allowed', 'nickname', 'x',
    'mid', 'm.1', 'gateway', 'g', 'reason', 'left');
  await c.command('XADD', EVENTS, '*', 'nothing', 'useful');
  await waitAllAcked(c);
  assert.equal(await c.command('HEXISTS', membersKey(room), 'erin'), 1, 'a join changes nothing');
  const after = await workerMetrics(worker);
  const d = (k) => after.get(k) - (before.get(k) || 0);
  assert.equal(d('chat_worker_events_total{type="join"}'), 1);
  assert.equal(d('chat_worker_events_invalid_total'), 3);
  assert.match(worker.stderr, /malformed/);
});

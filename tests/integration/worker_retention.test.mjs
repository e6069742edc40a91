// History retention by age (--history-ttl-s): an idle room with no members
// loses all its keys; a live room loses only the history entries older
// than the limit; nothing else is deleted.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startWorker, teardown, uniqueRoom, waitFor } from './lib/harness.mjs';
import { FAST, metaKey, historyKey, membersKey, workerMetrics } from './worker_helpers.mjs';

const TTL_S = 60;

let redis;
let c;
before(async () => {
  redis = await startRedis();
  c = await redis.client();
}, { timeout: 20000 });
after(async () => {
  c?.close();
  await teardown();
});

// Writes what the publish script writes for messages with these ages (ms).
async function seedRoom(room, agesMs, { members = [] } = {}) {
  const now = Date.now();
  let seq = 0;
  for (const age of agesMs) {
    seq++;
    const ts = now - age;
    const envelope = `{"type":"message","seq":${seq},"ts":${ts},"room":"${room}","nickname":"n","message":"m${seq} \\"ts\\":1"}`;
    await c.command('ZADD', historyKey(room), seq, envelope);
  }
  const last = agesMs.length ? now - agesMs[agesMs.length - 1] : null;
  await c.command('HSET', metaKey(room), 'seq', seq, 'epoch', 'e1', ...(last ? ['last_ms', last] : []));
  for (const nick of members) {
    await c.command('HSET', membersKey(room), nick, JSON.stringify({ session: 's', mid: 's.1', gateway: 'g', since: now }));
  }
}

const OLD = 2 * TTL_S * 1000;

test('idle empty rooms expire; live rooms are trimmed by age only', { timeout: 30000 }, async () => {
  const idle = uniqueRoom('idle');
  const occupied = uniqueRoom('occupied');
  const busy = uniqueRoom('busy');
  const fresh = uniqueRoom('fresh');
  await seedRoom(idle, [OLD + 3000, OLD + 2000, OLD]);
  await seedRoom(occupied, [OLD + 1000, OLD], { members: ['stays'] });
  await seedRoom(busy, [OLD + 2000, OLD + 1000, 1000, 500]);
  await seedRoom(fresh, [5000]);
  await c.command('SET', `unrelated-${process.pid}`, 'x');

  const w = await startWorker({ redisUrl: redis.url, extraArgs: [...FAST, '--history-ttl-s', String(TTL_S)] });
  await waitFor(async () => (await c.command('EXISTS', metaKey(idle))) === 0,
    { timeoutMs: 10000, what: 'the idle room to expire' });
  await waitFor(async () => (await c.command('ZCARD', historyKey(busy))) === 2,
    { timeoutMs: 10000, what: 'the busy room to be trimmed' });
  await waitFor(async () => (await c.command('ZCARD', historyKey(occupied))) === 0,
    { timeoutMs: 10000, what: 'the occupied room to be trimmed' });

  assert.equal(await c.command('EXISTS', historyKey(idle)), 0);
  assert.equal(await c.command('EXISTS', membersKey(idle)), 0);

  const kept = await c.command('ZRANGE', historyKey(busy), 0, -1, 'WITHSCORES');
  assert.deepEqual(kept.filter((_, i) => i % 2 === 1), ['3', '4'], 'the fresh entries stay');
  assert.equal(await c.command('HGET', metaKey(busy), 'seq'), '4', 'meta untouched');

  // A room with members is never deleted, however old its traffic.
  assert.equal(await c.command('EXISTS', metaKey(occupied)), 1);
  assert.equal(await c.command('HEXISTS', membersKey(occupied), 'stays'), 1);
  assert.equal(await c.command('HGET', metaKey(occupied), 'epoch'), 'e1');

  assert.equal(await c.command('ZCARD', historyKey(fresh)), 1);
  assert.equal(await c.command('EXISTS', metaKey(fresh)), 1);
  assert.equal(await c.command('GET', `unrelated-${process.pid}`), 'x');

  const m = await workerMetrics(w);
  assert.ok(m.get('chat_worker_rooms_expired_total') >= 1);
  assert.ok(m.get('chat_worker_history_trimmed_total') >= 4);
  assert.match(w.stderr, new RegExp(`room ${idle}: expired`));
  await w.stop();
});

test('a room that never had a message expires one age limit after it is first seen empty', { timeout: 30000 }, async () => {
  const room = uniqueRoom('quiet');
  await c.command('HSET', metaKey(room), 'epoch', 'e1');
  const w = await startWorker({ redisUrl: redis.url, extraArgs: [...FAST, '--history-ttl-s', '2'] });
  await waitFor(async () => (await c.command('HGET', metaKey(room), 'idle_since_ms')) !== null,
    { timeoutMs: 5000, what: 'the worker to note when it found the room' });
  const t0 = Date.now();
  await waitFor(async () => (await c.command('EXISTS', metaKey(room))) === 0,
    { timeoutMs: 10000, what: 'the quiet room to expire' });
  assert.ok(Date.now() - t0 >= 1500, 'not before the age limit');
  await w.stop();
});

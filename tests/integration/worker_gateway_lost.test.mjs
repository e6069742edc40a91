// Gateway liveness: a gateway whose heartbeat in chat:gateways is older
// than --gateway-timeout-ms is claimed by one worker, every session in its
// registry is removed with reason gateway_lost (presence leaves published),
// and its registry and claim are deleted. Live gateways are left alone; a
// cleanup left unfinished by a dead worker is taken over.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startWorker, teardown, uniqueRoom, waitFor, sleep } from './lib/harness.mjs';
import {
  FAST, addMember, membersKey, registryKey, channel, workerMetrics, presenceFrames,
} from './worker_helpers.mjs';

let redis;
let workers;
let c;
before(async () => {
  redis = await startRedis();
  // Two workers: a dead gateway must still be cleaned up exactly once.
  workers = await Promise.all([1, 2].map(() => startWorker({ redisUrl: redis.url, extraArgs: FAST })));
  c = await redis.client();
}, { timeout: 20000 });
after(async () => {
  c?.close();
  await teardown();
});

async function deadTotal() {
  let n = 0;
  for (const w of workers) n += (await workerMetrics(w)).get('chat_worker_gateways_dead_total');
  return n;
}

test('a silent gateway loses its sessions with reason gateway_lost', { timeout: 20000 }, async () => {
  const room1 = uniqueRoom('lost1');
  const room2 = uniqueRoom('lost2');
  const dead = `gwdead-${process.pid}`;
  const live = `gwlive-${process.pid}`;
  const sub = await redis.client();
  const before = await deadTotal();
  const beat = setInterval(() => c.command('ZADD', 'chat:gateways', Date.now(), live).catch(() => {}), 200);
  try {
    await sub.subscribe([channel(room1), channel(room2)]);
    await addMember(c, { room: room1, nickname: 'ann', mid: 'g1.1', gateway: dead });
    await addMember(c, { room: room2, nickname: 'ann', mid: 'g1.2', gateway: dead });
    await addMember(c, { room: room1, nickname: 'ben', mid: 'g2.1', gateway: dead });
    await addMember(c, { room: room1, nickname: 'cat', mid: 'g3.1', gateway: live });
    // ben was taken over by a session on the live gateway: his old entry in
    // the dead gateway's registry must not remove the new owner.
    await c.command('HSET', membersKey(room1), 'ben',
      JSON.stringify({ session: 'g9', mid: 'g9.1', gateway: live, since: Date.now() }));
    await c.command('ZADD', 'chat:gateways', Date.now(), live);
    await c.command('ZADD', 'chat:gateways', Date.now() - 60000, dead);

    await waitFor(async () => (await c.command('EXISTS', registryKey(dead))) === 0,
      { timeoutMs: 10000, what: 'the dead gateway registry to be deleted' });
    await sleep(200);

    assert.equal(await c.command('HEXISTS', membersKey(room1), 'ann'), 0);
    assert.equal(await c.command('HEXISTS', membersKey(room2), 'ann'), 0);
    assert.equal(JSON.parse(await c.command('HGET', membersKey(room1), 'ben')).mid, 'g9.1', 'new owner kept');
    assert.equal(await c.command('HEXISTS', membersKey(room1), 'cat'), 1, 'live gateway member kept');
    assert.equal(await c.command('EXISTS', registryKey(live)), 1, 'live registry kept');
    assert.equal(await c.command('ZSCORE', 'chat:gateways', dead), null);
    assert.equal(await c.command('ZSCORE', 'chat:gateways:dead', dead), null, 'claim removed');
    assert.notEqual(await c.command('ZSCORE', 'chat:gateways', live), null);

    const frames = [...presenceFrames(sub, room1), ...presenceFrames(sub, room2)];
    assert.deepEqual(frames.map((f) => [f.room, f.nickname, f.event, f.reason]).sort(), [
      [room1, 'ann', 'leave', 'gateway_lost'],
      [room2, 'ann', 'leave', 'gateway_lost'],
    ].sort());
    assert.equal(await deadTotal() - before, 1, 'declared dead once, by one worker');
    const logs = workers.map((w) => w.stderr).join('');
    assert.equal(logs.split(`gateway ${dead}: declared dead`).length - 1, 1);
  } finally {
    clearInterval(beat);
    sub.close();
  }
});

test('an unfinished cleanup of a dead worker is taken over', { timeout: 20000 }, async () => {
  const room = uniqueRoom('orphan');
  const gw = `gworphan-${process.pid}`;
  const sub = await redis.client();
  try {
    await sub.subscribe(channel(room));
    await addMember(c, { room, nickname: 'dora', mid: 'o1.1', gateway: gw });
    // Claimed a minute ago by a worker that never finished.
    await c.command('ZADD', 'chat:gateways:dead', Date.now() - 60000, gw);
    await waitFor(async () => (await c.command('EXISTS', registryKey(gw))) === 0,
      { timeoutMs: 10000, what: 'the orphaned registry to be deleted' });
    assert.equal(await c.command('HEXISTS', membersKey(room), 'dora'), 0);
    assert.equal(await c.command('ZSCORE', 'chat:gateways:dead', gw), null);
    const m = JSON.parse((await sub.nextMessage((x) => x.channel === channel(room), 3000)).data);
    assert.equal(m.reason, 'gateway_lost');
  } finally {
    sub.close();
  }
});

test('a gateway that heartbeats is never claimed', { timeout: 20000 }, async () => {
  const room = uniqueRoom('alive');
  const gw = `gwalive-${process.pid}`;
  await addMember(c, { room, nickname: 'eve', mid: 'a1.1', gateway: gw });
  const beat = setInterval(() => c.command('ZADD', 'chat:gateways', Date.now(), gw).catch(() => {}), 200);
  try {
    await c.command('ZADD', 'chat:gateways', Date.now(), gw);
    await sleep(3000); // past the 2000 ms timeout, with heartbeats
    assert.equal(await c.command('HEXISTS', membersKey(room), 'eve'), 1);
    assert.equal(await c.command('EXISTS', registryKey(gw)), 1);
  } finally {
    clearInterval(beat);
  }
});

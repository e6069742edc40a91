// Workers on a real Redis Cluster (3 primaries, 1 replica each), with two
// gateways, all started with --redis-cluster (issue: Redis Cluster):
// - the flag contract: --redis and --redis-cluster together is a usage error;
// - a member that closes its connection is seen leaving and is gone from the
//   member list, in rooms on every primary (so on several event partitions);
// - a drained gateway (SIGTERM) leaves no member, registry or heartbeat;
// - kill -9 of a gateway: one worker claims it (the liveness keys share the
//   {gateways} slot), its members leave with gateway_lost within the usual
//   bound, and its registry and claim are gone;
// - retention expires an idle empty room on every primary (SCAN is per node);
// - a leave sent while its shard fails over (kill -9 of the primary) still
//   takes effect: no ghost member.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  teardown, connect, startGateway, startWorker, runToExit, workerBin, httpGet,
  RedisClient, waitFor, FAST,
} from './lib/harness.mjs';
import { startRedisCluster, keySlot, roomIn } from './lib/rediscluster.mjs';

const TIMEOUT_MS = 2000; // --gateway-timeout-ms, as in worker_gateway_kill9
const PARTITIONS = 16; // the default of both binaries
const WORKER_ARGS = ['--sweep-ms', '100', '--claim-idle-ms', '1000', '--gateway-timeout-ms',
  String(TIMEOUT_MS), '--history-ttl-s', '2'];

let rc;
let primaries;
let gw1;
let gw2;
let workers;

// A fresh room whose slot a given primary serves.
const roomOn = (primary, prefix) => roomIn(primary.slots, prefix);

// Two rooms per primary.
const roomsEverywhere = (prefix) => primaries.flatMap((p) => [roomOn(p, prefix), roomOn(p, prefix)]);

// The events partition of a room (cm_key_events_partition: crc16 % N).
const partitionOf = (room) => keySlot(`{${room}}`) % PARTITIONS;

// One command on the primary that owns key.
async function cmdAt(key, ...args) {
  const owner = await rc.ownerOf(keySlot(key));
  const c = await RedisClient.connect(owner.port);
  try {
    return await c.command(...args);
  } finally {
    c.close();
  }
}

// In every room: a watcher on gw1 and `nickname` on gw. Resolves with
// [room, watcher] pairs.
async function watched(rooms, gw, nickname) {
  const out = [];
  for (const room of rooms) {
    const w = await connect(gw1.url);
    await w.join(room, 'watcher');
    const m = await connect(gw.url);
    await m.join(room, nickname);
    await w.next({ type: 'presence', room, event: 'join', nickname });
    out.push([room, w, m]);
  }
  return out;
}

async function membersOf(room) {
  const r = await httpGet(`${gw1.http}/api/rooms/${room}/members`);
  assert.equal(r.status, 200);
  return r.json().members.map((m) => m.nickname).sort();
}

before(async () => {
  rc = await startRedisCluster({ primaries: 3, replicas: 1 });
  primaries = (await rc.topology()).filter((n) => n.flags.includes('master'));
  gw1 = await startGateway({ redisCluster: rc.seeds, extraArgs: FAST });
  gw2 = await startGateway({ redisCluster: rc.seeds, extraArgs: FAST });
  workers = await Promise.all([1, 2].map(() => startWorker({ redisCluster: rc.seeds, extraArgs: WORKER_ARGS })));
}, { timeout: 90000 });
after(teardown);

test('--redis and --redis-cluster together is a usage error', { timeout: 15000 }, () => {
  const both = runToExit(workerBin, ['--redis', 'redis://127.0.0.1:1', '--redis-cluster', '127.0.0.1:2']);
  assert.equal(both.status, 2, both.stderr);
  assert.match(both.stderr, /--redis-cluster/);
  assert.equal(runToExit(workerBin, ['--redis-cluster', '127.0.0.1:1,,127.0.0.1:2']).status, 2);
  assert.equal(runToExit(workerBin, ['--event-partitions', '0']).status, 2);
});

test('a member that closes is seen leaving, in rooms on every primary', { timeout: 60000 }, async () => {
  const rooms = roomsEverywhere('close');
  assert.ok(new Set(rooms.map(partitionOf)).size >= 3, 'the rooms span several partitions');
  const watchers = await watched(rooms, gw2, 'leaver');
  for (const [, , leaver] of watchers) leaver.close();
  for (const [room, w] of watchers) {
    const p = await w.next({ type: 'presence', room, event: 'leave', nickname: 'leaver' }, 10000);
    assert.equal(p.reason, 'closed');
    assert.deepEqual(await membersOf(room), ['watcher'], `${room}: the leaver is gone`);
    // Its event went through the room's own partition, and was acknowledged.
    const stream = `chat:events:{${partitionOf(room)}}`;
    await waitFor(async () => (await cmdAt(stream, 'XPENDING', stream, 'workers'))[0] === 0,
      { what: `${stream}: nothing pending` });
    w.close();
  }
  await waitFor(async () => (await cmdAt(`chat:gw:${gw2.id}:sessions`, 'HLEN', `chat:gw:${gw2.id}:sessions`)) === 0,
    { what: 'the leavers gone from the registry' });
});

test('a drained gateway leaves nothing behind', { timeout: 60000 }, async () => {
  const gw3 = await startGateway({ redisCluster: rc.seeds, extraArgs: [...FAST, '--drain-grace-ms', '100'] });
  const rooms = roomsEverywhere('drain');
  const watchers = await watched(rooms, gw3, 'drained');
  assert.notEqual(await cmdAt('chat:{gateways}', 'ZSCORE', 'chat:{gateways}', gw3.id), null, 'it beats under {gateways}');
  gw3.kill('SIGTERM');
  const { code } = await gw3.waitExit(10000);
  assert.equal(code, 0);
  for (const [room, w] of watchers) {
    const p = await w.next({ type: 'presence', room, event: 'leave', nickname: 'drained' }, 10000);
    assert.equal(p.reason, 'closed');
    assert.deepEqual(await membersOf(room), ['watcher']);
    w.close();
  }
  const registry = `chat:gw:${gw3.id}:sessions`;
  await waitFor(async () => (await cmdAt(registry, 'EXISTS', registry)) === 0, { what: 'its registry emptied' });
  assert.equal(await cmdAt('chat:{gateways}', 'ZSCORE', 'chat:{gateways}', gw3.id), null);
  assert.ok(!workers.some((w) => w.stderr.includes(`gateway ${gw3.id}: declared dead`)), 'not taken for dead');
});

test('kill -9 of a gateway: its members leave with gateway_lost, its keys go', { timeout: 60000 }, async () => {
  const rooms = roomsEverywhere('kill9');
  const watchers = await watched(rooms, gw2, 'doomed');
  const t0 = Date.now();
  gw2.kill('SIGKILL');
  await Promise.all(watchers.map(async ([room, w]) => {
    const p = await w.next({ type: 'presence', room, event: 'leave', nickname: 'doomed' }, TIMEOUT_MS + 8000);
    assert.equal(p.reason, 'gateway_lost');
  }));
  const took = Date.now() - t0;
  assert.ok(took < TIMEOUT_MS + 3000, `leaves within the timeout (took ${took} ms)`);
  for (const [room, w] of watchers) {
    assert.deepEqual(await membersOf(room), ['watcher']);
    w.close();
  }
  const registry = `chat:gw:${gw2.id}:sessions`;
  await waitFor(async () => (await cmdAt(registry, 'EXISTS', registry)) === 0,
    { what: 'the dead gateway registry to be deleted' });
  await waitFor(async () => (await cmdAt('chat:{gateways}', 'ZSCORE', 'chat:{gateways}:dead', gw2.id)) === null,
    { what: 'the claim to be removed' });
  assert.equal(await cmdAt('chat:{gateways}', 'ZSCORE', 'chat:{gateways}', gw2.id), null);
  const declared = workers.map((w) => w.stderr).join('').split(`gateway ${gw2.id}: declared dead`).length - 1;
  assert.equal(declared, 1, 'exactly one worker declared it dead');
});

test('retention expires an idle empty room on every primary', { timeout: 60000 }, async () => {
  const rooms = primaries.map((p) => roomOn(p, 'idle'));
  for (const room of rooms) await cmdAt(`chat:{${room}}:meta`, 'HSET', `chat:{${room}}:meta`, 'epoch', 'e1');
  for (const room of rooms) {
    await waitFor(async () => (await cmdAt(`chat:{${room}}:meta`, 'EXISTS', `chat:{${room}}:meta`)) === 0,
      { timeoutMs: 15000, what: `${room} to expire` });
  }
  const logs = workers.map((w) => w.stderr).join('');
  for (const room of rooms) assert.match(logs, new RegExp(`room ${room}: expired`));
});

// Last: it kills a primary. A leave sent while the shard of its room and
// partition fails over is retried, not dropped: no ghost member stays.
test('kill -9 of a primary: a leave sent meanwhile still takes effect', { timeout: 60000 }, async () => {
  const gw4 = await startGateway({ redisCluster: rc.seeds, extraArgs: FAST });
  // A room whose events partition is on the same primary as the room.
  let room;
  let owner;
  for (const p of primaries) {
    room = [0, 1, 2, 3, 4, 5, 6, 7].map(() => roomOn(p, 'failover'))
      .find((r) => p.slots.some(([a, b]) => {
        const s = keySlot(`chat:events:{${partitionOf(r)}}`);
        return s >= a && s <= b;
      }));
    if (room) {
      owner = p;
      break;
    }
  }
  assert.ok(room, 'a room and its partition on one primary');
  const [[, w, leaver]] = await watched([room], gw4, 'leaver');
  rc.nodes.find((n) => n.port === owner.port).kill('SIGKILL');
  leaver.close();
  await waitFor(async () => {
    const r = await httpGet(`${gw1.http}/api/rooms/${room}/members`);
    return r.status === 200 && JSON.stringify(r.json().members.map((m) => m.nickname)) === '["watcher"]';
  }, { timeoutMs: 30000, intervalMs: 200, what: 'the leave applied on the promoted replica' });
  w.close();
});

// Faults under load: chat-bench storm (clients dropping and rejoining with
// `since` while others send) against two gateways and a worker, while
//   - a gateway is paused past --gateway-timeout-ms, then resumed;
//   - Redis is killed (-9) and restarted from its append-only file.
// (A Redis pause under this load: integration/redis_stall_events and
// worker_redis_stall test what it broke, one thing at a time.)
// What must hold whatever the timing: every acked message reaches every
// member exactly once and in order, every client recovers, a message
// answered `unavailable` is not delivered (except the in-doubt publishes of
// a Redis crash), and once the clients have gone no member and no registry
// entry is left behind in Redis (what a lost cleanup looks like). No
// performance assertions.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, teardown, waitFor, sleep } from '../integration/lib/harness.mjs';
import { runBench } from './lib.mjs';

const TIMEOUT_MS = 2000;
const CLIENTS = 600;
const ROOMS = 12;

let cl;
before(async () => {
  cl = await startCluster({
    gateways: 2,
    workers: 1,
    persist: true,
    gatewayArgs: ['--rate-per-sec', '100000', '--rate-burst', '100000', '--redis-timeout-ms', '1500'],
    workerArgs: ['--gateway-timeout-ms', String(TIMEOUT_MS), '--sweep-ms', '200'],
  });
}, { timeout: 30000 });
after(teardown); // stop() sends SIGCONT too: nothing is left paused

async function countLeft(pattern) {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await cl.redis.command('SCAN', cursor, 'MATCH', pattern, 'COUNT', '1000');
    for (const k of keys) n += await cl.redis.command('HLEN', k);
    cursor = next;
  } while (cursor !== '0');
  return n;
}

// Starts chat-bench storm in the background; resolves with its result.
function storm(storms) {
  return runBench(['storm', '--url', cl.gateways.map((g) => g.url).join(','),
    '--clients', String(CLIENTS), '--rooms', String(ROOMS), '--senders', String(ROOMS),
    '--rate', '150', '--storms', String(storms), '--duration', '4', '--quiet'], 90000);
}

// Rooms whose history a gateway found gone back behind what it had handed
// out, so that it started a new epoch (docs/PROTOCOL.md, epochs): a crash
// can lose the last write a member already got live.
function roomsReset() {
  const rooms = new Set();
  for (const g of cl.gateways)
    for (const m of g.stderr.matchAll(/room (\S+): (?:seq went back|epoch changed)/g)) rooms.add(m[1]);
  return rooms;
}

// What must hold in every run; returns the JSON line. Every rejoin is
// recovered, but those into a room whose epoch changed under it: they are
// told recovered: false, which is the truth.
function assertDelivery(r, storms) {
  const context = `${r.stdout}\n--- stderr ---\n${r.stderr.slice(-3000)}`;
  assert.ok(r.json, `no JSON line from chat-bench: ${context}`);
  const j = r.json;
  assert.deepEqual({ loss: j.loss, duplicates: j.duplicates, seq_gaps: j.seq_gaps },
    { loss: 0, duplicates: 0, seq_gaps: 0 }, context);
  const reset = roomsReset();
  assert.equal(j.recovered + j.not_recovered, CLIENTS * storms, context);
  assert.ok(j.not_recovered <= reset.size * (CLIENTS / ROOMS) * storms,
    `${j.not_recovered} rejoins not recovered, ${reset.size} room(s) with a new epoch: ${context}`);
  assert.equal(j.recovery_gaps, 0, context);
  assert.ok(j.acked > 0, context);
  return { j, context };
}

// Once the clients have gone, their leaves (or a dead gateway's cleanup)
// leave nothing behind.
async function assertNothingLeft() {
  await waitFor(async () => (await countLeft('chat:{*}:members')) === 0,
    { timeoutMs: 15000, what: 'every member to be removed' });
  await waitFor(async () => (await countLeft('chat:gw:*:sessions')) === 0,
    { timeoutMs: 15000, what: 'every registry entry to be removed' });
  for (const g of cl.gateways) assert.notEqual(await cl.redis.command('ZSCORE', 'chat:gateways', g.id), null);
}

test('a gateway paused past the timeout, under storm load', { timeout: 90000 }, async () => {
  const [, gw2] = cl.gateways;
  const bench = storm(2);
  await sleep(4000);
  gw2.kill('SIGSTOP');
  await sleep(TIMEOUT_MS + 1500);
  gw2.kill('SIGCONT');

  const r = await bench;
  const { j, context } = assertDelivery(r, 2);
  // Every message answered `unavailable` stays unsent.
  assert.equal(j.unexpected, 0, `delivered without an ack: ${context}`);
  assert.equal(r.code, 0, `chat-bench exit ${r.code} (${j.problem}): ${context}`);
  await assertNothingLeft();
  assert.match(cl.workers[0].stderr, new RegExp(`gateway ${gw2.id}: declared dead`));
});

test('Redis killed (-9) and restarted from its append-only file, under storm load', { timeout: 90000 }, async () => {
  const bench = storm(2);
  await sleep(4000);
  cl.redis.kill('SIGKILL');
  await sleep(TIMEOUT_MS + 500);
  await cl.redis.start();

  const r = await bench;
  const { j, context } = assertDelivery(r, 2);
  // The one thing a crash leaves in doubt: a publish Redis ran but died
  // before answering is told `unavailable`, and is still delivered
  // (docs/PROTOCOL.md). Only a crash's last moment can do that: at most a
  // few messages, each to one room's members. Seen here too: such a
  // message delivered live and then missing after the restart, which the
  // gateways answer with a new epoch for its room (roomsReset above).
  assert.ok(j.unexpected <= 3 * (CLIENTS / ROOMS), `delivered without an ack: ${j.unexpected}: ${context}`);
  await assertNothingLeft();
});

// The worker's HTTP endpoints: /healthz, /readyz (503 while Redis is down,
// 200 again once the worker has reconnected and found its group), /metrics
// in Prometheus text format; anything else 404.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startRedis, startWorker, teardown, httpGet, httpRequest, waitHttpStatus, freePort, uniqueRoom, waitFor,
} from './lib/harness.mjs';
import { FAST, addMember, addEvent, workerMetrics, waitAllAcked } from './worker_helpers.mjs';

let redis;
let worker;
before(async () => {
  redis = await startRedis();
  worker = await startWorker({ redisUrl: redis.url, extraArgs: FAST });
}, { timeout: 20000 });
after(teardown);

const NAMES = [
  'chat_worker_events_total{type="join"}',
  'chat_worker_events_total{type="leave"}',
  'chat_worker_events_claimed_total',
  'chat_worker_pending',
  'chat_worker_sweeps_total',
  'chat_worker_gateways_dead_total',
  'chat_worker_stall_graces_total',
  'chat_worker_rooms_expired_total',
  'chat_worker_history_trimmed_total',
  'chat_worker_lag_ms',
  'chat_worker_redis_connected',
];

test('/healthz, /readyz, 404 and 405', { timeout: 10000 }, async () => {
  const h = await httpGet(`${worker.http}/healthz`);
  assert.equal(h.status, 200);
  assert.equal(h.body.trim(), 'ok');
  assert.equal((await httpGet(`${worker.http}/readyz`)).status, 200);
  assert.equal((await httpGet(`${worker.http}/nope`)).status, 404);
  assert.equal((await httpGet(`${worker.http}/`)).status, 404);
  assert.equal((await httpRequest(`${worker.http}/metrics`, { method: 'POST', body: 'x' })).status, 405);
});

test('/metrics: every series, counting events and sweeps', { timeout: 15000 }, async () => {
  const r = await httpGet(`${worker.http}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const before = await workerMetrics(worker);
  for (const n of NAMES) assert.ok(before.has(n), `metrics has ${n}`);
  assert.equal(before.get('chat_worker_redis_connected'), 1);

  const c = await redis.client();
  try {
    const room = uniqueRoom('metrics');
    await addMember(c, { room, nickname: 'm', mid: 'mm.1', gateway: 'gwM' });
    await addEvent(c, { type: 'join', room, nickname: 'm', mid: 'mm.1', gateway: 'gwM' });
    await addEvent(c, { room, nickname: 'm', mid: 'mm.1', gateway: 'gwM' });
    await waitAllAcked(c);
  } finally {
    c.close();
  }
  await waitFor(async () => (await workerMetrics(worker)).get('chat_worker_sweeps_total') >
    before.get('chat_worker_sweeps_total'), { timeoutMs: 5000, what: 'a sweep' });
  const after = await workerMetrics(worker);
  assert.equal(after.get('chat_worker_events_total{type="join"}') - before.get('chat_worker_events_total{type="join"}'), 1);
  assert.equal(after.get('chat_worker_events_total{type="leave"}') - before.get('chat_worker_events_total{type="leave"}'), 1);
  assert.equal(after.get('chat_worker_pending'), 0);
  assert.ok(after.get('chat_worker_lag_ms') >= 0);
});

test('/readyz is 503 while Redis is down and 200 after it is back', { timeout: 30000 }, async () => {
  await redis.stop();
  await waitHttpStatus(`${worker.http}/readyz`, 503, { timeoutMs: 5000, proc: worker });
  assert.equal((await workerMetrics(worker)).get('chat_worker_redis_connected'), 0);
  assert.equal((await httpGet(`${worker.http}/healthz`)).status, 200, 'still alive');
  await redis.start();
  // The reconnect backoff is capped at 5 s.
  await waitHttpStatus(`${worker.http}/readyz`, 200, { timeoutMs: 15000, proc: worker });

  // And it works again: the group was created anew on the empty Redis.
  const c = await redis.client();
  try {
    const room = uniqueRoom('back');
    await addMember(c, { room, nickname: 'r', mid: 'rr.1', gateway: 'gwB' });
    await addEvent(c, { room, nickname: 'r', mid: 'rr.1', gateway: 'gwB' });
    await waitAllAcked(c);
    assert.equal(await c.command('HLEN', `chat:{${room}}:members`), 0);
  } finally {
    c.close();
  }
});

test('/readyz is 503 when Redis was never reachable', { timeout: 15000 }, async () => {
  const dead = await freePort();
  const w = await startWorker({ redisUrl: `redis://127.0.0.1:${dead}`, waitReady: false });
  assert.equal((await httpGet(`${w.http}/readyz`)).status, 503);
  assert.equal((await httpGet(`${w.http}/healthz`)).status, 200);
  await w.stop();
});

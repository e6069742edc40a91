// The client's outgoing queue is paced by welcome.limits (rate_per_sec,
// rate_burst): a burst far over the gateway's rate limit is sent in full,
// in order, as the limit allows, and the gateway refuses none of it as too
// fast; the queue's state is reported while it waits.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, teardown, uniqueRoom, fetchMetrics } from '../integration/lib/harness.mjs';
import { newClient, closeClients, events, emitted, until } from './lib/util.mjs';

const RATE = 10;
const BURST = 10;
let cl;
before(async () => {
  cl = await startCluster({
    gateways: 1, workers: 0, gatewayArgs: ['--rate-per-sec', String(RATE), '--rate-burst', String(BURST)],
  });
}, { timeout: 30000 });
afterEach(closeClients);
after(teardown);

function rateLimited(m) {
  const key = 'chat_gateway_errors_total{code="rate_limited"}';
  assert.ok(m.has(key), `${key} is exported`);
  return m.get(key);
}

test('40 messages at once against 10/s, burst 10: all stored, in order, none refused as too fast',
  { timeout: 30000 }, async () => {
    const gw = cl.gateways[0];
    const room = uniqueRoom('pace');
    const c = newClient([gw.url]).connect();
    await c.join(room, 'ann');
    assert.equal(c.limits.rate_per_sec, RATE, 'limits from welcome');
    const texts = Array.from({ length: 40 }, (_, i) => `burst ${i + 1}`);
    const t0 = Date.now();
    const acks = await Promise.all(texts.map((t) => c.send(room, t)));
    const took = Date.now() - t0;
    assert.deepEqual(acks.map((a) => a.seq), acks.map((_, i) => acks[0].seq + i), 'stored in send order');
    await until(() => emitted(c, room).length === 40);
    assert.deepEqual(emitted(c, room).map((m) => m.message), texts);
    assert.equal(events(c, 'paced').length, 0, 'the gateway refused nothing as too fast');
    const m = await fetchMetrics(gw.http);
    assert.equal(rateLimited(m), 0, 'chat_gateway_errors_total{code="rate_limited"} stayed 0');
    // (40 - burst) at the rate takes about 3 s; pacing under it, a little more.
    assert.ok(took >= 2500 && took < 8000, `took ${took} ms`);
    const q = events(c, 'queue').map((x) => x.e);
    assert.ok(q.some((s) => s.paced && s.waiting > 0), 'the wait was reported as pacing');
    assert.deepEqual(c.queueStatus(), { waiting: 0, inFlight: 0, paced: false, ratePerSec: RATE });
  });

test('a refusal as too fast anyway (the client guessed the limits wrong) is sent again, not lost',
  { timeout: 30000 }, async () => {
    const gw = cl.gateways[0];
    const room = uniqueRoom('pace2');
    const c = newClient([gw.url], { paceMargin: 3 }).connect(); // paces at 3x the real rate
    await c.join(room, 'ann');
    const texts = Array.from({ length: 30 }, (_, i) => `fast ${i + 1}`);
    const acks = await Promise.all(texts.map((t) => c.send(room, t)));
    assert.equal(acks.length, 30);
    await until(() => emitted(c, room).length === 30);
    assert.deepEqual(emitted(c, room).map((m) => m.message), texts, 'in order, each once');
    assert.ok(events(c, 'paced').length > 0, 'some were refused and queued again');
  });

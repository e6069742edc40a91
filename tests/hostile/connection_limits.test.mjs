// Connection limits at the upgrade: --max-conns-per-ip (2,000 connections
// from one address with a limit of 1,000: exactly the extra 1,000 get HTTP
// 429, plain HTTP still answers, another address is not affected, and a
// closed connection frees its slot), --max-connections (past it: 503), and
// the default of no per-IP limit (a TCP balancer is every client's peer).
// Each refusal is counted in chat_gateway_refused_total{reason}, and each
// limit is exported as chat_gateway_limit{name}.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, startGateway, connect, teardown, rawUpgrade, httpGet, metrics, refused, waitFor,
  raiseFdLimit, assertServes, assertMaxConnections,
} from './lib.mjs';

const PER_IP = 1000;
const TOTAL = 2000;
const BATCH = 100;

// Raised before any server starts, so the gateways inherit it too.
const fdLimit = raiseFdLimit(8192);

let cl;
before(async () => {
  cl = await startCluster({ gateways: 0, workers: 0 });
}, { timeout: 20000 });
after(teardown);

// Opens n upgrades in batches; resolves with the results in order.
async function openMany(port, n, opts = {}) {
  const out = [];
  for (let i = 0; i < n; i += BATCH) {
    const batch = await Promise.all(Array.from({ length: Math.min(BATCH, n - i) },
      () => rawUpgrade(port, { keep: true, timeoutMs: 10000, ...opts })));
    out.push(...batch);
  }
  return out;
}

function tally(results) {
  const byStatus = {};
  for (const r of results) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
  return byStatus;
}

test(`${TOTAL} connections from one address, --max-conns-per-ip ${PER_IP}: exactly the extra ones get 429`, { timeout: 150000 }, async (t) => {
  if (fdLimit < TOTAL * 2 + 200) {
    t.skip(`RLIMIT_NOFILE is ${fdLimit} and cannot be raised (prlimit): need ${TOTAL * 2 + 200}`);
    return;
  }
  const gw = await startGateway({ redisUrl: cl.redis.url, extraArgs: ['--max-conns-per-ip', String(PER_IP)] });
  const m0 = await metrics(gw);
  assert.equal(m0.get('chat_gateway_limit{name="max_conns_per_ip"}'), PER_IP);
  const refused0 = refused(m0, 'per_ip');

  const t0 = Date.now();
  const results = await openMany(gw.port, TOTAL);
  const counts = tally(results);
  t.diagnostic(`opened ${TOTAL} in ${Date.now() - t0} ms: ${JSON.stringify(counts)}`);
  try {
    assert.deepEqual(counts, { 101: PER_IP, 429: TOTAL - PER_IP }, 'exactly the connections past the limit are refused');
    // The first PER_IP of them were the ones accepted (connections were
    // opened in batches, so only the batch that crossed the limit may mix).
    const firstRefused = results.findIndex((r) => r.status === 429);
    assert.ok(firstRefused >= PER_IP - BATCH, `first refusal at #${firstRefused}`);

    const m1 = await metrics(gw);
    assert.equal(m1.get('chat_gateway_connections'), PER_IP);
    assert.equal(refused(m1, 'per_ip') - refused0, TOTAL - PER_IP, 'refusals counted with reason per_ip');

    // Plain HTTP from the same address still answers (monitoring, history).
    assert.equal((await httpGet(`${gw.http}/healthz`)).status, 200);
    // A library client at the limit is refused too.
    await assert.rejects(connect(gw.url), /429/);
    // Another address is its own count.
    assert.equal((await rawUpgrade(gw.port, { localAddress: '127.0.0.2' })).status, 101, 'a client from 127.0.0.2 is accepted');

    // Closing connections frees their slots, exactly.
    for (const r of results.filter((x) => x.status === 101).slice(0, 10)) r.socket.destroy();
    await waitFor(async () => (await metrics(gw)).get('chat_gateway_connections') <= PER_IP - 10,
      { timeoutMs: 5000, what: 'the gateway to see 10 connections close' });
    const again = [];
    for (let i = 0; i < 11; i++) again.push(await rawUpgrade(gw.port, { keep: true }));
    assert.deepEqual(again.map((r) => r.status), [...Array(10).fill(101), 429]);
    for (const r of again) r.socket.destroy();
  } finally {
    for (const r of results) r.socket?.destroy();
  }
  await waitFor(async () => (await metrics(gw)).get('chat_gateway_connections') === 0,
    { timeoutMs: 10000, what: 'every connection to be gone' });
  await assertServes(gw.url, 'after the per-IP flood');
});

test('--max-connections 50: the 51st upgrade gets 503; HTTP still answers', { timeout: 60000 }, async () => {
  const gw = await startGateway({ redisUrl: cl.redis.url, extraArgs: ['--max-connections', '50'] });
  const m0 = await metrics(gw);
  assert.equal(m0.get('chat_gateway_limit{name="max_connections"}'), 50);
  const results = await openMany(gw.port, 60);
  try {
    assert.deepEqual(tally(results), { 101: 50, 503: 10 });
    const m1 = await metrics(gw);
    assert.equal(refused(m1, 'max_connections') - refused(m0, 'max_connections'), 10);
    assert.equal(refused(m1, 'per_ip'), 0, 'these were not per-IP refusals');
    assert.equal((await httpGet(`${gw.http}/healthz`)).status, 200);
    assert.equal((await httpGet(`${gw.http}/readyz`)).status, 200, 'a full gateway is still ready');
    await assert.rejects(connect(gw.url), /503/);
  } finally {
    for (const r of results) r.socket?.destroy();
  }
  await waitFor(async () => (await metrics(gw)).get('chat_gateway_connections') === 0,
    { timeoutMs: 10000, what: 'every connection to be gone' });
  await assertServes(gw.url, 'once connections were closed');
});

test('default: no per-IP limit (1,200 connections from one address are all accepted)', { timeout: 90000 }, async (t) => {
  if (fdLimit < 3000) {
    t.skip(`RLIMIT_NOFILE is ${fdLimit} and cannot be raised (prlimit): need 3000`);
    return;
  }
  const gw = await startGateway({ redisUrl: cl.redis.url });
  const m0 = await metrics(gw);
  assert.equal(m0.get('chat_gateway_limit{name="max_conns_per_ip"}'), 0, 'default 0 = off');
  assertMaxConnections(gw, m0.get('chat_gateway_limit{name="max_connections"}'), 100000);
  const results = await openMany(gw.port, 1200);
  try {
    assert.deepEqual(tally(results), { 101: 1200 });
  } finally {
    for (const r of results) r.socket?.destroy();
  }
});

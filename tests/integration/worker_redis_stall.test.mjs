// A stalled Redis is not a dead fleet. While Redis is paused (SIGSTOP, as a
// failover or a slow restart would), no gateway can heartbeat, so when it
// answers again every heartbeat is older than --gateway-timeout-ms. The
// worker must not declare the gateways dead for that: after a stall it
// gives them one timeout to beat again. A gateway that does not come back
// is still declared dead, once that grace is over.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startWorker, teardown, uniqueRoom, waitFor, sleep } from './lib/harness.mjs';
import { addMember, membersKey, registryKey, workerMetrics } from './worker_helpers.mjs';

const TIMEOUT_MS = 1500; // the stall limit is half of it: 750 ms
const PAUSE_MS = 2500;

let redis;
let worker;
let c;
before(async () => {
  redis = await startRedis();
  worker = await startWorker({
    redisUrl: redis.url,
    extraArgs: ['--sweep-ms', '100', '--gateway-timeout-ms', String(TIMEOUT_MS)],
  });
  c = await redis.client();
}, { timeout: 20000 });
after(async () => {
  c?.close();
  redis?.kill('SIGCONT');
  await teardown();
});

test('after a Redis stall, gateways get one timeout to beat again', { timeout: 30000 }, async () => {
  const room = uniqueRoom('stall');
  const back = `gwback-${process.pid}`;
  const gone = `gwgone-${process.pid}`;
  await addMember(c, { room, nickname: 'stays', mid: 'b1.1', gateway: back });
  await addMember(c, { room, nickname: 'goes', mid: 'g1.1', gateway: gone });
  const beatOnce = (ids) => Promise.all(ids.map((id) => c.command('ZADD', 'chat:gateways', Date.now(), id)));
  await beatOnce([back, gone]);
  let beating = [back, gone];
  const beat = setInterval(() => beatOnce(beating).catch(() => {}), 200);
  try {
    await sleep(600); // sweeps run; nobody is stale
    assert.equal((await workerMetrics(worker)).get('chat_worker_stall_graces_total'), 0);

    // Redis stops answering; the heartbeats stop with it.
    beating = [];
    redis.kill('SIGSTOP');
    await sleep(PAUSE_MS);
    redis.kill('SIGCONT');
    const resumed = Date.now();
    // One gateway reconnects and beats again a little later; the other
    // never comes back.
    await sleep(500);
    beating = [back];

    await waitFor(async () => (await c.command('HEXISTS', membersKey(room), 'goes')) === 0,
      { timeoutMs: 10000, what: 'the gateway that did not come back to be declared dead' });
    const took = Date.now() - resumed;
    assert.ok(took >= TIMEOUT_MS - 100, `not declared dead within the grace (took ${took} ms)`);
    await waitFor(async () => (await c.command('EXISTS', registryKey(gone))) === 0,
      { what: 'its cleanup to finish' });

    assert.equal(await c.command('HEXISTS', membersKey(room), 'stays'), 1, 'the returning gateway kept its member');
    assert.notEqual(await c.command('ZSCORE', 'chat:gateways', back), null);
    assert.equal(await c.command('EXISTS', registryKey(back)), 1);
    const m = await workerMetrics(worker);
    assert.equal(m.get('chat_worker_stall_graces_total'), 1);
    assert.equal(m.get('chat_worker_gateways_dead_total'), 1, `only ${gone} declared dead`);
    assert.match(worker.stderr, /no sweep ran for \d+ ms/);
    assert.ok(!worker.stderr.includes(`gateway ${back}: declared dead`));
  } finally {
    clearInterval(beat);
  }
});

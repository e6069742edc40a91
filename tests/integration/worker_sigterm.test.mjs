// The worker's command line and shutdown: --help and --version exit 0, a
// bad flag exits 2 with a message; SIGTERM and SIGINT stop it promptly with
// exit 0, also while events flow, leaving nothing it read unacknowledged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startWorker, teardown, runToExit, workerBin, uniqueRoom, sleep } from './lib/harness.mjs';
import { FAST, addMember, addEvent, waitAllAcked, EVENTS, GROUP } from './worker_helpers.mjs';

let redis;
before(async () => {
  redis = await startRedis();
}, { timeout: 20000 });
after(teardown);

test('--help, --version and bad flags', { timeout: 15000 }, () => {
  const help = runToExit(workerBin, ['--help']);
  assert.equal(help.status, 0);
  for (const flag of ['--redis', '--id', '--listen', '--history-ttl-s', '--gateway-timeout-ms',
    '--claim-idle-ms', '--sweep-ms', '--log-level']) {
    assert.ok(help.stdout.includes(flag), `--help lists ${flag}`);
  }
  assert.equal(runToExit(workerBin, ['--version']).status, 0);
  for (const args of [['--redis', 'http://x'], ['--sweep-ms', '0'], ['--listen', 'nope'],
    ['--id', 'bad id'], ['--log-level', 'loud'], ['--no-such-flag'], ['extra']]) {
    const r = runToExit(workerBin, args);
    assert.equal(r.status, 2, `${args.join(' ')} exits 2`);
    assert.match(r.stderr, /error/, `${args.join(' ')} says why`);
  }
  const env = runToExit(workerBin, [], { env: { CHAT_SWEEP_MS: 'soon' } });
  assert.equal(env.status, 2, 'a bad environment variable exits 2');
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  test(`${sig}: exit 0 within the drain bound`, { timeout: 15000 }, async () => {
    const w = await startWorker({ redisUrl: redis.url, extraArgs: FAST });
    const t0 = Date.now();
    w.kill(sig);
    const { code, signal } = await w.waitExit(5000);
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, w.stderr.slice(-2000));
    assert.ok(Date.now() - t0 < 3500, `stopped in ${Date.now() - t0} ms`);
    assert.match(w.stderr, /shutting down/);
  });
}

test('SIGTERM while events flow: exit 0, every event read is acknowledged', { timeout: 30000 }, async () => {
  const c = await redis.client();
  try {
    const room = uniqueRoom('drain');
    const n = 300;
    for (let i = 0; i < n; i++) await addMember(c, { room, nickname: `d${i}`, mid: `d${i}.1`, gateway: 'gwD' });
    const w = await startWorker({ redisUrl: redis.url, id: `drainer-${process.pid}`, extraArgs: FAST });
    const pipeline = [];
    for (let i = 0; i < n; i++) {
      pipeline.push(addEvent(c, { room, nickname: `d${i}`, mid: `d${i}.1`, gateway: 'gwD' }));
      if (i === n / 2) {
        await sleep(5);
        w.kill('SIGTERM');
      }
    }
    await Promise.all(pipeline);
    const { code, signal } = await w.waitExit(5000);
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, w.stderr.slice(-2000));
    const [pending] = await c.command('XPENDING', EVENTS, GROUP);
    assert.equal(pending, 0, 'the worker acknowledged everything it had read');

    // What it did not read, the next worker does.
    await startWorker({ redisUrl: redis.url, extraArgs: FAST });
    await waitAllAcked(c);
    assert.equal(await c.command('HLEN', `chat:{${room}}:members`), 0);
  } finally {
    c.close();
  }
});

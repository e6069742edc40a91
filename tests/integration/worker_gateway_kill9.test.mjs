// End to end with real gateways: kill -9 of a gateway. Members on the other
// gateway see a presence leave with reason gateway_lost for each member the
// dead gateway held, within the gateway timeout (plus a sweep), and the
// member list no longer holds them; the dead gateway's keys are gone. And a
// gateway that dies the moment its client is told `joined` leaves no member
// behind: the registry entry is in Redis before the membership is.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, waitFor, httpGet } from './lib/harness.mjs';
import { membersKey, registryKey } from './worker_helpers.mjs';

const TIMEOUT_MS = 2000;

let cl;
before(async () => {
  cl = await startCluster({
    gateways: 2,
    workers: 2,
    workerArgs: ['--gateway-timeout-ms', String(TIMEOUT_MS), '--sweep-ms', '100'],
  });
}, { timeout: 30000 });
after(teardown);

test('kill -9 of a gateway: gateway_lost to the members on the other one', { timeout: 30000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('kill9');
  const watcher = await connect(gw1.url);
  await watcher.join(room, 'watcher');
  const doomed = [];
  for (const nick of ['x1', 'x2']) {
    const c = await connect(gw2.url);
    await c.join(room, nick);
    doomed.push(c);
  }
  // No wait: a member told `joined` is already in the registry.
  assert.equal(await cl.redis.command('HLEN', registryKey(gw2.id)), 2);

  const t0 = Date.now();
  gw2.kill('SIGKILL');
  const reasons = {};
  for (const nick of ['x1', 'x2']) {
    const p = await watcher.next({ type: 'presence', room, event: 'leave', nickname: nick }, TIMEOUT_MS + 5000);
    reasons[nick] = p.reason;
  }
  const took = Date.now() - t0;
  assert.deepEqual(reasons, { x1: 'gateway_lost', x2: 'gateway_lost' });
  assert.ok(took < TIMEOUT_MS + 3000, `leaves within the timeout (took ${took} ms)`);

  const r = await httpGet(`${gw1.http}/api/rooms/${room}/members`);
  assert.deepEqual(r.json().members.map((m) => m.nickname), ['watcher']);
  await waitFor(async () => (await cl.redis.command('EXISTS', registryKey(gw2.id))) === 0,
    { what: 'the dead gateway registry to be deleted' });
  assert.equal(await cl.redis.command('ZSCORE', 'chat:gateways', gw2.id), null);
  assert.equal(await cl.redis.command('ZSCORE', 'chat:gateways:dead', gw2.id), null);
  const declared = cl.workers.map((w) => w.stderr).join('').split(`gateway ${gw2.id}: declared dead`).length - 1;
  assert.equal(declared, 1, 'exactly one worker declared it dead');
});

// Keyspace notifications arrive in the order Redis applied the writes: the
// registry's HSET must come before the join script's HSET of the member, or
// a gateway dying between the two would leave a member no sweep removes.
test('the registry entry is written before the membership', { timeout: 30000 }, async () => {
  const gw1 = cl.gateways[0];
  const room = uniqueRoom('regfirst');
  const sub = await cl.redis.client();
  try {
    await cl.redis.command('CONFIG', 'SET', 'notify-keyspace-events', 'Kh');
    const prefix = '__keyspace@0__:';
    await sub.subscribe([prefix + registryKey(gw1.id), prefix + membersKey(room)]);
    const c = await connect(gw1.url);
    await c.join(room, 'early');
    const first = await sub.nextMessage(() => true);
    const second = await sub.nextMessage(() => true);
    assert.deepEqual([first.channel, second.channel],
      [prefix + registryKey(gw1.id), prefix + membersKey(room)]);
    assert.deepEqual([first.data, second.data], ['hset', 'hset']);
    c.close();
  } finally {
    await cl.redis.command('CONFIG', 'SET', 'notify-keyspace-events', '');
    sub.close();
  }
});

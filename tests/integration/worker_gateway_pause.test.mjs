// A gateway paused (SIGSTOP) past the gateway timeout is declared dead and
// its members are removed with gateway_lost; once resumed, it notices, and
// re-asserts the memberships it still serves, so presence ends correct: the
// members are listed again, and the worker's cleanup does not undo that.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, waitFor, httpGet, sleep } from './lib/harness.mjs';

const TIMEOUT_MS = 1500;

let cl;
before(async () => {
  cl = await startCluster({
    gateways: 2,
    workers: 1,
    workerArgs: ['--gateway-timeout-ms', String(TIMEOUT_MS), '--sweep-ms', '100'],
  });
}, { timeout: 30000 });
after(teardown);

async function members(gw, room) {
  const r = await httpGet(`${gw.http}/api/rooms/${room}/members`);
  return r.json().members.map((m) => m.nickname).sort();
}

test('SIGSTOP past the timeout, then SIGCONT: presence ends correct', { timeout: 30000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('pause');
  const watcher = await connect(gw1.url);
  await watcher.join(room, 'watcher');
  const paused = await connect(gw2.url);
  await paused.join(room, 'sleeper');

  gw2.kill('SIGSTOP');
  const lost = await watcher.next({ type: 'presence', room, event: 'leave', nickname: 'sleeper' }, TIMEOUT_MS + 5000);
  assert.equal(lost.reason, 'gateway_lost');
  await waitFor(async () => (await cl.redis.command('ZSCORE', 'chat:gateways:dead', gw2.id)) === null,
    { what: 'the cleanup to finish' });
  assert.deepEqual(await members(gw1, room), ['watcher']);

  gw2.kill('SIGCONT');
  await waitFor(async () => (await members(gw1, room)).includes('sleeper'),
    { timeoutMs: 10000, what: 'the resumed gateway to re-assert its member' });
  // Stays correct: a few more sweeps change nothing.
  await sleep(TIMEOUT_MS + 500);
  assert.deepEqual(await members(gw1, room), ['sleeper', 'watcher']);
  assert.notEqual(await cl.redis.command('ZSCORE', 'chat:gateways', gw2.id), null);
  // Its registry holds the membership again, so a real death later is
  // cleaned up too.
  const registry = await cl.redis.command('HGETALL', `chat:gw:${gw2.id}:sessions`);
  assert.equal(registry.length, 2, `one registry entry: ${JSON.stringify(registry)}`);
  assert.equal(JSON.parse(registry[1]).nickname, 'sleeper');
  // And the resumed member is live: a message reaches the watcher.
  await paused.say(room, 'back');
  await watcher.next({ type: 'message', room, nickname: 'sleeper', message: 'back' });
});

// Redis stopped and restarted mid-test: /readyz goes 503 and back to 200
// (/healthz stays 200), every message sent while Redis is down gets error
// `unavailable` (never silence) and the connection stays open, and after
// the restart messages flow across gateways again with seq continuing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, waitHttpStatus, httpGet } from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 0, persist: true });
}, { timeout: 20000 });
after(teardown);

test('gateways survive a Redis restart', { timeout: 60000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('restart');
  const alice = await connect(gw1.url);
  const bob = await connect(gw2.url);
  const ja = await alice.join(room, 'alice');
  await bob.join(room, 'bob');
  const a1 = await alice.say(room, 'before');
  assert.equal((await bob.next({ type: 'message', room, message: 'before' })).seq, a1.seq);

  await cl.redis.stop();
  for (const gw of [gw1, gw2]) {
    await waitHttpStatus(`${gw.http}/readyz`, 503, { timeoutMs: 10000 });
    assert.equal((await httpGet(`${gw.http}/healthz`)).status, 200, 'healthz stays 200 while Redis is down');
  }

  alice.send({ type: 'message', room, message: 'while down', id: 'down-1' });
  const e1 = await alice.next({ id: 'down-1' }, 5000);
  assert.deepEqual({ type: e1.type, code: e1.code }, { type: 'error', code: 'unavailable' });
  bob.send({ type: 'message', room, message: 'while down too', id: 'down-2' });
  const e2 = await bob.next({ id: 'down-2' }, 5000);
  assert.deepEqual({ type: e2.type, code: e2.code }, { type: 'error', code: 'unavailable' });
  const carol = await connect(gw2.url);
  carol.send({ type: 'join', room, nickname: 'carol', id: 'down-join' });
  const e3 = await carol.next({ id: 'down-join' }, 5000);
  assert.deepEqual({ type: e3.type, code: e3.code }, { type: 'error', code: 'unavailable' }, 'join while down');
  alice.send({ type: 'ping', id: 'alive' });
  await alice.next({ type: 'pong', id: 'alive' });
  assert.equal(alice.closeInfo, null, 'connections stay open while Redis is down');

  await cl.redis.restart();
  for (const gw of [gw1, gw2]) await waitHttpStatus(`${gw.http}/readyz`, 200, { timeoutMs: 15000 });

  const a2 = await alice.say(room, 'after', 'up-1', 5000);
  assert.equal(a2.seq, a1.seq + 1, 'seq continues: state survived and nothing was stored while down');
  assert.equal((await bob.next({ type: 'message', room, message: 'after' }, 5000)).seq, a2.seq);
  const b2 = await bob.say(room, 'after from bob');
  assert.equal((await alice.next({ type: 'message', room, message: 'after from bob' }, 5000)).seq, b2.seq);

  for (const c of [alice, bob]) {
    assert.ok(!c.frames.some((f) => f.type === 'message' && /while down/.test(f.message)),
      'nothing sent while down was delivered');
  }
  const jc = await carol.join(room, 'carol', { history: 10 });
  assert.equal(jc.epoch, ja.epoch, 'the epoch survived the restart');
  assert.deepEqual(jc.history.map((m) => m.message), ['before', 'after', 'after from bob']);
});

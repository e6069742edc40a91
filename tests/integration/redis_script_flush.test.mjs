// The script cache flushed under the cluster (SCRIPT FLUSH, as after a
// restart or a failover to a replica that never saw SCRIPT LOAD): the
// gateway and the worker send the script's source instead (EVAL) and go
// on, so no client sees `unavailable` for it and no leave is lost. Both
// binaries get this from one link layer (common/cm_link).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, redisCommand } from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 1, workers: 1 });
}, { timeout: 20000 });
after(teardown);

test('publish, join and the worker\'s leave all survive SCRIPT FLUSH', { timeout: 30000 }, async () => {
  const [gw] = cl.gateways;
  const room = uniqueRoom('flush');
  const alice = await connect(gw.url);
  const bob = await connect(gw.url);
  await alice.join(room, 'alice');
  await bob.join(room, 'bob');

  assert.equal(await redisCommand(cl.redis.port, 'SCRIPT', 'FLUSH'), 'OK');
  const ack = await alice.say(room, 'after the flush');
  assert.equal(ack.type, 'ack', `the publish after SCRIPT FLUSH: ${JSON.stringify(ack)}`);
  assert.equal((await bob.next({ type: 'message', room, message: 'after the flush' })).seq, ack.seq);

  assert.equal(await redisCommand(cl.redis.port, 'SCRIPT', 'FLUSH'), 'OK');
  const carol = await connect(gw.url);
  const joined = await carol.join(room, 'carol');
  assert.equal(joined.type, 'joined', `the join after SCRIPT FLUSH: ${JSON.stringify(joined)}`);

  assert.equal(await redisCommand(cl.redis.port, 'SCRIPT', 'FLUSH'), 'OK');
  bob.close();
  const left = await alice.next({ type: 'presence', room, event: 'leave', nickname: 'bob' }, 5000);
  assert.equal(left.reason, 'closed', 'the worker ran its leave script after the flush');
  const members = await redisCommand(cl.redis.port, 'HKEYS', `chat:{${room}}:members`);
  assert.deepEqual(members.sort(), ['alice', 'carol']);
});

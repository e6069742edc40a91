// What Debian 12's Redis (7.0.15) does in cluster mode, pinned down where
// the cluster design leans on it (issue: Redis Cluster), on a real
// 3-primary, 3-replica cluster started by lib/rediscluster.mjs:
// - a shard channel lives on its slot's primary: SSUBSCRIBE elsewhere is
//   MOVED, SPUBLISH there reaches the shard's subscribers;
// - during a slot migration, a command on keys already moved is ASKed to
//   the target;
// - when the migration ends, the old owner drops its shard subscribers of
//   that slot with a `sunsubscribe` they did not ask for;
// - WAIT counts only the writes of the connection that calls it.
// If a Redis upgrade changes one of these, this test says which.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { teardown, uniqueRoom, RedisClient } from './lib/harness.mjs';
import { startRedisCluster, keySlot } from './lib/rediscluster.mjs';

let rc;
before(async () => {
  rc = await startRedisCluster({ primaries: 3, replicas: 1 });
}, { timeout: 60000 });
after(teardown);

async function cmd(port, ...args) {
  const c = await RedisClient.connect(port);
  try {
    return await c.command(...args);
  } finally {
    c.close();
  }
}

async function errorOf(port, ...args) {
  try {
    await cmd(port, ...args);
  } catch (e) {
    return e.message;
  }
  return null;
}

test('the harness makes 3 primaries with a replica each, every slot served', { timeout: 10000 }, async () => {
  const top = await rc.topology();
  const primaries = top.filter((n) => n.flags.includes('master'));
  assert.equal(primaries.length, 3);
  assert.equal(top.filter((n) => n.flags.includes('slave')).length, 3);
  const covered = primaries.flatMap((p) => p.slots).reduce((s, [a, b]) => s + b - a + 1, 0);
  assert.equal(covered, 16384);
});

test('a shard channel lives on its primary; a slot move drops its subscribers', { timeout: 30000 }, async () => {
  const room = uniqueRoom('facts');
  const channel = `chat:{${room}}`;
  const slot = keySlot(channel);
  const src = await rc.ownerOf(slot);
  const dst = (await rc.topology()).find((n) => n.flags.includes('master') && n.id !== src.id);

  assert.match(await errorOf(dst.port, 'SSUBSCRIBE', channel), /^MOVED \d+ /);

  const sub = await RedisClient.connect(src.port);
  try {
    await sub.subscribe(channel, { sharded: true });
    assert.equal(await cmd(src.port, 'SPUBLISH', channel, 'hello'), 1);
    const m = await sub.nextMessage((x) => x.kind === 'smessage');
    assert.deepEqual([m.channel, m.data], [channel, 'hello']);

    // A key of the room, moved by hand as redis-cli --cluster reshard does.
    await cmd(src.port, 'HSET', `chat:{${room}}:meta`, 'seq', '1');
    assert.equal(await cmd(dst.port, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', src.id), 'OK');
    assert.equal(await cmd(src.port, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', dst.id), 'OK');
    assert.equal(await cmd(src.port, 'MIGRATE', '127.0.0.1', dst.port, '', 0, 5000, 'KEYS',
      `chat:{${room}}:meta`), 'OK');
    assert.match(await errorOf(src.port, 'EVAL', 'return redis.call("HGET", KEYS[1], "seq")', 1,
      `chat:{${room}}:meta`), /^ASK \d+ /, 'a script on moved keys is ASKed to the target');
    assert.equal(sub.messages.length, 0, 'the subscription holds during the migration');

    for (const node of [dst, src]) {
      assert.equal(await cmd(node.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', dst.id), 'OK');
    }
    const gone = await sub.nextMessage((x) => x.kind === 'sunsubscribe', 5000);
    assert.equal(gone.channel, channel, 'the old owner unsubscribed us by itself');
    assert.match(await errorOf(src.port, 'SPUBLISH', channel, 'late'), /^MOVED \d+ /);
  } finally {
    sub.close();
  }
});

test('WAIT counts only the writes of the connection that calls it', { timeout: 30000 }, async () => {
  const key = `chat:{${uniqueRoom('wait')}}:meta`;
  const primary = await rc.ownerOf(keySlot(key));
  const replica = (await rc.topology()).find((n) => n.primary === primary.id);
  const node = rc.nodes.find((x) => x.port === replica.port);
  const writer = await RedisClient.connect(primary.port);
  const other = await RedisClient.connect(primary.port);
  node.proc.kill('SIGSTOP');
  try {
    await writer.command('HSET', key, 'seq', '1');
    assert.equal(await writer.command('WAIT', 1, 300), 0, 'a stopped replica does not hold our write');
    assert.equal(await other.command('WAIT', 1, 300), 1,
      'another connection, with no write of its own, is told a replica has everything');
  } finally {
    node.proc.kill('SIGCONT');
    writer.close();
    other.close();
  }
});

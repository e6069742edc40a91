// A primary of the Redis Cluster dies (kill -9) under chat (issue: Redis
// Cluster). Its replica is promoted; the gateways follow within seconds:
// - rooms on the other shards are not disturbed: every message sent there
//   meanwhile is acked and delivered, in order;
// - a room on the failed shard answers `unavailable` meanwhile (never a
//   silent loss), then works again on the promoted replica, and its
//   members resync from history with no hole and no duplicate;
// - /readyz is 503 while slots have no reachable primary, 200 once every
//   slot has one again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  teardown, connect, seqProblem, httpGet, waitFor, sleep, FAST,
} from './lib/harness.mjs';
import { startClusterWithGateways, roomIn } from './lib/rediscluster.mjs';

let rc;
let gw1;
let gw2;

before(async () => {
  ({ rc, gateways: [gw1, gw2] } = await startClusterWithGateways({ gatewayArgs: FAST }));
}, { timeout: 90000 });
after(teardown);

test('kill -9 of a primary: other shards undisturbed, its rooms come back whole', { timeout: 90000 }, async () => {
  const primaries = (await rc.topology()).filter((n) => n.flags.includes('master'));
  const victim = primaries[0];
  const calmRoom = roomIn(primaries[1].slots, 'calm');
  const hitRoom = roomIn(victim.slots, 'hit');
  const a = await connect(gw1.url);
  const b = await connect(gw2.url);
  for (const room of [calmRoom, hitRoom]) {
    await a.join(room, 'a');
    await b.join(room, 'b');
  }
  const before = await a.say(hitRoom, 'before');

  // Chat on the calm shard all through the failover: nothing may fail.
  let stop = false;
  const calmAcks = [];
  const calmErrors = [];
  const talker = (async () => {
    for (let i = 0; i < 1000 && !stop; i++) {
      try {
        calmAcks.push((await a.say(calmRoom, `calm ${i}`)).seq);
      } catch (e) {
        calmErrors.push(e.message);
      }
      await sleep(10);
    }
  })();

  await sleep(300);
  rc.nodes.find((n) => n.port === victim.port).kill('SIGKILL');

  // The failed shard's room: `unavailable` at first, never a silent loss;
  // then the promoted replica serves it.
  const hitAcks = [before.seq];
  let sawUnavailable = false;
  await waitFor(async () => {
    try {
      hitAcks.push((await b.say(hitRoom, `hit ${hitAcks.length}`, undefined, 8000)).seq);
      return hitAcks.length > 3;
    } catch (e) {
      assert.match(e.message, /unavailable/);
      sawUnavailable = true;
      await sleep(100);
      return false;
    }
  }, { timeoutMs: 30000, what: 'the failed shard serves again' });
  assert.ok(sawUnavailable, 'the room answered unavailable while its shard failed over');
  await waitFor(async () => (await httpGet(`${gw1.http}/readyz`)).status === 200,
    { timeoutMs: 15000, what: 'readyz 200 again' });
  stop = true;
  await talker;

  assert.deepEqual(calmErrors, [], 'no message on another shard failed');
  assert.ok(calmAcks.length > 50, `the calm room kept chatting (${calmAcks.length})`);
  for (const [name, c] of [['a', a], ['b', b]]) {
    const calm = await c.messages(calmRoom, calmAcks.length, 15000);
    assert.deepEqual(calm.map((m) => m.seq), calmAcks, `${name}: calm room in order, whole`);
    const hit = await c.messages(hitRoom, hitAcks.length, 15000).catch((e) => {
      throw new Error(`${name}: acked ${hitAcks}: ${e.message}`);
    });
    const seqs = hit.map((m) => m.seq);
    assert.equal(seqProblem(seqs, seqs[0]), null, `${name}: failed shard's room: no gap, no duplicate`);
    for (const s of hitAcks) assert.ok(seqs.includes(s), `${name}: acked ${s} delivered`);
  }
  a.close();
  b.close();
});

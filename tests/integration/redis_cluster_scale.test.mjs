// The Redis Cluster grows and heals under the gateways (issue: Redis
// Cluster), with no restart of theirs:
// - a primary added with `redis-cli --cluster add-node` and a rebalance
//   (slots MIGRATEd onto it while members chat): the gateways learn the
//   new node, rooms whose slots moved keep every message, once, in order,
//   and new rooms land on the new node;
// - a primary killed (-9) and then restarted: it comes back as a replica
//   of its promoted replica, and that shard's acks wait for it again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  teardown, connect, uniqueRoom, seqProblem, waitFor, sleep, FAST,
} from './lib/harness.mjs';
import { startClusterWithGateways, keySlot, roomIn } from './lib/rediscluster.mjs';

let rc;
let gw1;
let gw2;

before(async () => {
  ({ rc, gateways: [gw1, gw2] } = await startClusterWithGateways({
    gatewayArgs: [...FAST, '--ack-timeout-ms', '300'],
  }));
}, { timeout: 90000 });
after(teardown);

test('an added primary and a rebalance under chat: picked up, nothing lost', { timeout: 120000 }, async () => {
  // Rooms all over the slot space, each with a member on each gateway.
  const rooms = Array.from({ length: 12 }, () => uniqueRoom('grow'));
  const pairs = [];
  for (const room of rooms) {
    const a = await connect(gw1.url);
    const b = await connect(gw2.url);
    await a.join(room, 'a');
    await b.join(room, 'b');
    pairs.push({ room, a, b, acked: [] });
  }
  let stop = false;
  const talk = Promise.all(pairs.map(async (p) => {
    for (let i = 0; i < 2000 && !stop; i++) {
      try {
        p.acked.push((await p.a.say(p.room, `m${i}`)).seq);
      } catch {
        // unavailable while a slot moves is allowed; acks are what count
      }
      await sleep(50);
    }
  }));
  const added = await rc.addPrimary();
  await sleep(1000);
  stop = true;
  await talk;

  const top = await rc.topology();
  const fresh = top.find((n) => n.port === added.port);
  assert.ok(fresh.slots.length > 0, 'the rebalance gave the new primary slots');
  const moved = pairs.filter((p) => fresh.slots.some(([x, y]) => {
    const s = keySlot(`chat:{${p.room}}`);
    return s >= x && s <= y;
  }));
  for (const p of pairs) {
    assert.ok(p.acked.length > 5, `${p.room}: chatted (${p.acked.length})`);
    const last = Math.max(...p.acked);
    for (const [name, c] of [['a', p.a], ['b', p.b]]) {
      const got = await c.messages(p.room, last, 15000);
      const seqs = got.map((m) => m.seq);
      assert.equal(seqProblem(seqs, 1), null, `${p.room} ${name}: no gap, no duplicate`);
    }
  }
  assert.ok(moved.length > 0, 'some rooms moved to the new primary');
  // A new room on the new node works from both gateways.
  const room = roomIn(fresh.slots, 'newnode');
  const a = await connect(gw1.url);
  const b = await connect(gw2.url);
  await a.join(room, 'a');
  await b.join(room, 'b');
  const ack = await b.say(room, 'on the new node');
  assert.equal((await a.next({ type: 'message', room, message: 'on the new node' })).seq, ack.seq);
  for (const gw of [gw1, gw2]) assert.match(gw.stderr, new RegExp(`node 127\\.0\\.0\\.1:${added.port}`));
});

test('a killed primary restarted: it rejoins as a replica and acks wait for it again', { timeout: 90000 }, async () => {
  const top = await rc.topology();
  const victim = top.find((n) => n.flags.includes('master') && n.slots.length &&
    top.some((r) => r.primary === n.id));
  const node = rc.nodes.find((n) => n.port === victim.port);
  const room = roomIn(victim.slots, 'restart');
  const a = await connect(gw1.url);
  // Just after the rebalance the gateway may not have the slot's owner
  // ready yet (unavailable): a client joins again, as a page would.
  await waitFor(async () => {
    try {
      await a.join(room, 'a');
      return true;
    } catch (e) {
      if (!/unavailable/.test(e.message)) throw e;
      return false;
    }
  }, { timeoutMs: 15000, intervalMs: 200, what: 'the join to be served' });
  assert.equal((await a.say(room, 'before')).replicated, undefined);
  node.kill('SIGKILL');
  await node.proc.waitExit(5000);
  // The replica takes over; with no replica left, acks do not wait.
  await waitFor(async () => {
    try {
      return (await a.say(room, 'meanwhile', undefined, 3000)).replicated === undefined;
    } catch {
      return false;
    }
  }, { timeoutMs: 30000, intervalMs: 200, what: 'the shard served again' });
  await node.start();
  // Back as a replica of the promoted one: the shard has a replica again,
  // so acks wait for it (a stopped replica would now make them say so).
  await waitFor(async () => {
    const t = await rc.topology();
    const me = t.find((n) => n.port === victim.port);
    return me && me.flags.includes('slave') && !me.flags.includes('fail');
  }, { timeoutMs: 30000, what: 'the old primary back as a replica' });
  await sleep(5500); // a slot-map refresh (every 5 s) sees the replica
  node.kill('SIGSTOP');
  try {
    const late = await a.say(room, 'waits for the restarted replica');
    assert.equal(late.replicated, false);
  } finally {
    node.kill('SIGCONT');
  }
  a.close();
});

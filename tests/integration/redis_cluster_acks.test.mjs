// An ack in a Redis Cluster means a replica holds the message (issue:
// Redis Cluster). The gateway waits for it with a grouped WAIT:
// - with its replica answering, an ack comes with no `replicated` field;
// - with its replica stopped (SIGSTOP), the ack comes after
//   --ack-timeout-ms and says "replicated":false, and the message is still
//   delivered (it is stored on the primary);
// - the hard way: with the replica stopped, a burst far larger than the
//   replication socket buffers, then kill -9 of the primary and the replica
//   resumed and promoted: every message acked without "replicated":false is
//   in the room's history afterwards. (With --ack-replicas 0 the same run
//   loses acked messages, which is what the WAIT is for.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  teardown, connect, startGateway, waitFor, sleep, httpGet, FAST,
} from './lib/harness.mjs';
import { startRedisCluster, roomIn } from './lib/rediscluster.mjs';

let rc;
let gw;


// The primary of shard i and its replica, as nodes of rc.
async function shard(i) {
  const top = await rc.topology();
  const primary = top.filter((n) => n.flags.includes('master') && !n.flags.includes('fail'))[i];
  const replica = top.find((n) => n.flags.includes('slave') && n.primary === primary.id);
  return { primary, replica, replicaNode: rc.nodes.find((n) => n.port === replica.port) };
}

before(async () => {
  rc = await startRedisCluster({ primaries: 3, replicas: 1 });
  gw = await startGateway({
    redisCluster: rc.seeds,
    extraArgs: [...FAST, '--ack-timeout-ms', '300', '--message-bytes', '16384', '--history-max', '100000'],
  });
}, { timeout: 90000 });
after(teardown);

test('an ack waits for the replica; a stopped replica gives replicated:false', { timeout: 30000 }, async () => {
  const { primary, replicaNode } = await shard(0);
  const room = roomIn(primary.slots, 'ack');
  const a = await connect(gw.url);
  await a.join(room, 'a');
  const ok = await a.say(room, 'replicated');
  assert.equal(ok.replicated, undefined, 'a confirmed ack has no replicated field');

  replicaNode.kill('SIGSTOP');
  try {
    const t0 = Date.now();
    const late = await a.say(room, 'not confirmed');
    assert.equal(late.replicated, false);
    assert.ok(Date.now() - t0 >= 250, 'it waited for the replica first');
    const m = await a.next({ type: 'message', room, message: 'not confirmed' });
    assert.equal(m.seq, late.seq, 'stored and delivered all the same');
  } finally {
    replicaNode.kill('SIGCONT');
  }
  await waitFor(async () => (await a.say(room, 'again')).replicated === undefined,
    { timeoutMs: 5000, what: 'acks confirmed again' });
  a.close();
});

test('kill -9 of the primary right after its acks: no acked message is lost', { timeout: 90000 }, async () => {
  const { primary, replicaNode } = await shard(1);
  const room = roomIn(primary.slots, 'hard');
  const a = await connect(gw.url);
  const joined = await a.join(room, 'a');
  const acks = [];
  for (let i = 0; i < 5; i++) acks.push(await a.say(room, `before ${i}`));

  // The replica stops reading; a burst fills the primary's replication
  // buffers and its socket to the replica, so the tail of it exists only on
  // the primary when the primary dies.
  replicaNode.kill('SIGSTOP');
  const big = 'x'.repeat(16000);
  const burst = [];
  for (let i = 0; i < 2500; i++) burst.push(`${i} ${big}`);
  acks.push(...await a.sayMany(room, burst, { window: 200, timeoutMs: 60000 }));
  rc.nodes.find((n) => n.port === primary.port).kill('SIGKILL');
  replicaNode.kill('SIGCONT');

  // The gateway follows the promoted replica; read the room's history
  // from it over HTTP.
  const historyPage = async (before) => {
    const q = before ? `&before=${before}` : '';
    const res = await httpGet(`${gw.http}/api/rooms/${room}/history?limit=500${q}`);
    return res.status === 200 ? JSON.parse(res.body).messages : null;
  };
  await sleep(500); // past the kill: the gateway has seen its links drop
  await waitFor(async () => (await historyPage(0)) !== null,
    { timeoutMs: 30000, intervalMs: 200, what: 'the replica promoted and the gateway following' });
  const seen = new Set();
  let before = 0;
  for (let page = 0; page < 100; page++) {
    const messages = await historyPage(before);
    assert.ok(messages, 'history readable');
    for (const m of messages) seen.add(m.seq);
    if (messages.length < 500) break;
    before = messages[0].seq;
  }
  const confirmed = acks.filter((k) => k.replicated !== false).map((k) => k.seq);
  const lost = confirmed.filter((s) => !seen.has(s));
  assert.deepEqual(lost.slice(0, 10), [], `${lost.length} acked (confirmed) messages lost of ${confirmed.length}`);
  // And the test did what it means to: the burst outran the replica, so
  // some of it was lost with the primary and said so in its acks.
  assert.ok(acks.some((k) => !seen.has(k.seq)), 'part of the burst died with the primary');

  // `a` was handed seqs the new primary never had, and would hand out
  // again with other text: the gateway starts a new epoch and closes `a`
  // with 1012, so that it rejoins afresh instead of taking a new message
  // for one it has seen.
  const lastSeen = Math.max(...acks.map((k) => k.seq));
  const closed = await a.waitClosed(15000);
  assert.equal(closed.code, 1012);
  const a2 = await connect(gw.url);
  const j = await a2.join(room, 'a', { since: lastSeen, epoch: joined.epoch });
  assert.equal(j.recovered, false);
  assert.notEqual(j.epoch, joined.epoch, 'a new epoch');
  const ack = await a2.say(room, 'after the failover');
  const m = await a2.next({ type: 'message', room, message: 'after the failover' });
  assert.equal(m.seq, ack.seq);
  a2.close();
});

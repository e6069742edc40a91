// Chat across two gateways: every member, on either gateway, receives every
// message of the room exactly once, in seq order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, seqProblem, FAST } from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 0, gatewayArgs: FAST });
}, { timeout: 20000 });
after(teardown);

test('members on two gateways get each message exactly once', { timeout: 30000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('cross');
  const alice = await connect(gw1.url);
  const bob = await connect(gw2.url);
  const carol = await connect(gw1.url);
  await alice.join(room, 'alice');
  await bob.join(room, 'bob');
  const jc = await carol.join(room, 'carol');
  assert.deepEqual(jc.members.map((m) => m.nickname).sort(), ['alice', 'bob', 'carol'],
    'members across gateways');

  const sent = [];
  for (let i = 0; i < 20; i++) {
    sent.push(`alice ${i}`);
    await alice.say(room, `alice ${i}`);
    sent.push(`bob ${i}`);
    await bob.say(room, `bob ${i}`);
  }
  for (const [name, c] of [['alice', alice], ['bob', bob], ['carol', carol]]) {
    const got = await c.messages(room, 40, 10000);
    assert.equal(seqProblem(got.map((m) => m.seq), 1), null, `${name}: seq order`);
    assert.deepEqual(got.map((m) => m.message), sent, `${name}: every message once, in order`);
    assert.equal(await c.quiet((f) => f.type === 'message' && f.room === room, 300), null,
      `${name}: no duplicate arrives afterwards`);
  }
});

test('a message from a gateway with no other local member reaches the other gateway', { timeout: 20000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('lonely');
  const a = await connect(gw1.url);
  const b = await connect(gw2.url);
  await a.join(room, 'a');
  await b.join(room, 'b');
  const ack = await b.say(room, 'from gw2');
  const m = await a.next({ type: 'message', room });
  assert.equal(m.message, 'from gw2');
  assert.equal(m.seq, ack.seq);
  const m2 = await b.next({ type: 'message', room });
  assert.equal(m2.seq, ack.seq);
});

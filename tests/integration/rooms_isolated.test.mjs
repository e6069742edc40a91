// Rooms are isolated: a member gets only the rooms it joined; one
// connection can be in several rooms with a different nickname in each; seq
// is per room.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom } from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 0 });
}, { timeout: 20000 });
after(teardown);

test('messages stay in their room, on one gateway and across two', { timeout: 20000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const r1 = uniqueRoom('iso1');
  const r2 = uniqueRoom('iso2');
  const alice = await connect(gw1.url); // r1
  const bob = await connect(gw1.url); // r2, same gateway as alice
  const carol = await connect(gw2.url); // r2, other gateway
  const dave = await connect(gw2.url); // both rooms, two nicknames
  await alice.join(r1, 'alice');
  await bob.join(r2, 'bob');
  await carol.join(r2, 'carol');
  const jd1 = await dave.join(r1, 'dave-in-1');
  const jd2 = await dave.join(r2, 'dave-in-2');
  assert.deepEqual(jd1.members.map((m) => m.nickname).sort(), ['alice', 'dave-in-1']);
  assert.deepEqual(jd2.members.map((m) => m.nickname).sort(), ['bob', 'carol', 'dave-in-2']);

  const a1 = await alice.say(r1, 'only for room 1');
  const b1 = await bob.say(r2, 'only for room 2');
  assert.equal(a1.seq, 1, 'seq is per room');
  assert.equal(b1.seq, 1, 'seq is per room');
  const dm1 = await dave.next({ type: 'message', room: r1 });
  const dm2 = await dave.next({ type: 'message', room: r2 });
  assert.equal(dm1.message, 'only for room 1');
  assert.equal(dm2.message, 'only for room 2');

  // Barrier: each member's own later message arrives after anything that
  // was published before it, so a leak would be in its frames by then.
  await dave.say(r1, 'dave speaks in 1');
  await dave.say(r2, 'dave speaks in 2');
  await alice.next({ type: 'message', room: r1, message: 'dave speaks in 1' });
  await bob.next({ type: 'message', room: r2, message: 'dave speaks in 2' });
  await carol.next({ type: 'message', room: r2, message: 'dave speaks in 2' });
  const dm3 = await dave.next({ type: 'message', room: r1, message: 'dave speaks in 1' });
  assert.equal(dm3.nickname, 'dave-in-1', 'the nickname is the one used in that room');
  const dm4 = await dave.next({ type: 'message', room: r2, message: 'dave speaks in 2' });
  assert.equal(dm4.nickname, 'dave-in-2');

  for (const [name, c, mine] of [['alice', alice, r1], ['bob', bob, r2], ['carol', carol, r2]]) {
    assert.equal(await c.quiet((f) => f.room && f.room !== mine, 200), null, `${name} sees only ${mine}`);
    assert.deepEqual(c.frames.filter((f) => f.room && f.room !== mine), [], `${name} got no frame of another room`);
  }
});

test('the same nickname can be used in two rooms by different people', { timeout: 20000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const r1 = uniqueRoom('nick1');
  const r2 = uniqueRoom('nick2');
  const a = await connect(gw1.url);
  const b = await connect(gw2.url);
  await a.join(r1, 'sam');
  await b.join(r2, 'sam');
  await a.say(r1, 'sam one');
  await b.say(r2, 'sam two');
  assert.equal((await a.next({ type: 'message', room: r1 })).message, 'sam one');
  assert.equal((await b.next({ type: 'message', room: r2 })).message, 'sam two');
  assert.equal(a.frames.filter((f) => f.type === 'left').length, 0, 'no takeover across rooms');
  assert.equal(b.frames.filter((f) => f.type === 'left').length, 0, 'no takeover across rooms');
});

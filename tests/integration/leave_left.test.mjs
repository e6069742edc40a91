// leave → left (reason "left", id echoed); afterwards the room's frames
// stop, frames for it get not_joined, and the connection can join again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom } from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 0 });
}, { timeout: 20000 });
after(teardown);

test('leave answers left and stops delivery', { timeout: 15000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('leave');
  const side = uniqueRoom('side');
  const alice = await connect(gw1.url);
  const bob = await connect(gw2.url);
  await alice.join(room, 'alice');
  await alice.join(side, 'alice');
  await bob.join(room, 'bob');

  alice.send({ type: 'leave', room, id: 'bye' });
  const left = await alice.next({ type: 'left' });
  assert.deepEqual({ room: left.room, reason: left.reason, id: left.id }, { room, reason: 'left', id: 'bye' });

  await bob.say(room, 'are you there?');
  // Barrier: alice's own later message in another room arrives after
  // anything published before it.
  await alice.say(side, 'elsewhere');
  await alice.next({ type: 'message', room: side });
  assert.equal(await alice.quiet({ type: 'message', room }, 300), null, 'no message of a room left');

  alice.send({ type: 'message', room, message: 'x', id: 'after-leave' });
  const err = await alice.next({ type: 'error', id: 'after-leave' });
  assert.equal(err.code, 'not_joined');
  alice.send({ type: 'leave', room, id: 'again' });
  assert.equal((await alice.next({ type: 'error', id: 'again' })).code, 'not_joined');

  const j = await alice.join(room, 'alice');
  assert.ok(j.members.some((m) => m.nickname === 'alice'));
  await bob.say(room, 'welcome back');
  assert.equal((await alice.next({ type: 'message', room })).message, 'welcome back');
});

test('leave without id gets left without id', { timeout: 10000 }, async () => {
  const room = uniqueRoom('leave');
  const c = await connect(cl.gateways[0].url);
  await c.join(room, 'c');
  c.send({ type: 'leave', room });
  const left = await c.next({ type: 'left' });
  assert.equal(left.id, undefined);
  assert.equal(left.reason, 'left');
});

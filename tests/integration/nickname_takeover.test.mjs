// One nickname per room: a second session joining with a nickname already
// present takes it over; the old session gets left (reason "replaced"), no
// presence event is sent, and the old session's later close does not
// remove the new owner.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, httpGet } from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 1 });
}, { timeout: 20000 });
after(teardown);

test('takeover across gateways', { timeout: 20000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('takeover');
  const obs = await connect(gw1.url);
  await obs.join(room, 'obs');
  const old = await connect(gw1.url);
  await old.join(room, 'bob');
  await obs.next({ type: 'presence', room, event: 'join', nickname: 'bob' });

  const neu = await connect(gw2.url);
  const j = await neu.join(room, 'bob');
  assert.deepEqual(j.members.map((m) => m.nickname).sort(), ['bob', 'obs'], 'bob is listed once');
  const left = await old.next({ type: 'left', room }, 3000);
  assert.equal(left.reason, 'replaced');

  old.send({ type: 'message', room, message: 'am I here?', id: 'old-1' });
  assert.equal((await old.next({ type: 'error', id: 'old-1' })).code, 'not_joined');

  await neu.say(room, 'new bob speaks');
  await obs.next({ type: 'message', room, message: 'new bob speaks' });
  const bobPresence = obs.frames.filter((f) => f.type === 'presence' && f.nickname === 'bob');
  assert.equal(bobPresence.length, 1, `only the first join: ${JSON.stringify(bobPresence)}`);

  // The old session closes; its leave must not remove the new owner.
  await old.close();
  // Barrier: a later member's close is seen by obs, so the worker has
  // handled the old session's close by then.
  const zed = await connect(gw2.url);
  await zed.join(room, 'zed');
  await zed.close();
  await obs.next({ type: 'presence', room, event: 'leave', nickname: 'zed' }, 3000);
  assert.equal(obs.frames.filter((f) => f.type === 'presence' && f.event === 'leave' && f.nickname === 'bob').length, 0,
    'no presence leave for bob');
  const members = (await httpGet(`${gw1.http}/api/rooms/${room}/members`)).json().members;
  assert.deepEqual(members.map((m) => m.nickname).sort(), ['bob', 'obs']);
  await neu.say(room, 'still mine');
});

test('the same session joining again with its own nickname is not a takeover', { timeout: 15000 }, async () => {
  // PROTOCOL.md does not say whether a repeated join is answered with joined
  // or an error; either way it must not evict the session from the room.
  const room = uniqueRoom('rejoin');
  const c = await connect(cl.gateways[0].url);
  await c.join(room, 'me');
  const reply = await c.request({ type: 'join', room, nickname: 'me' });
  if (reply.type === 'joined') assert.deepEqual(reply.members.map((m) => m.nickname), ['me']);
  else assert.equal(reply.type, 'error');
  assert.equal(c.frames.filter((f) => f.type === 'left').length, 0);
  await c.say(room, 'fine');
});

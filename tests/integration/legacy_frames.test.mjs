// Legacy frames: a plain WebSocket (no subprotocol) that sends
// {nickname, room, message} joins and speaks, and is sent only `message`
// frames — never welcome, joined, ack or presence — so the classic page
// that renders every frame as "nickname@room said message" still works.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom } from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 0 });
}, { timeout: 20000 });
after(teardown);

test('a legacy page chats with chat.v1 members and sees only message frames', { timeout: 20000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('legacy');
  const obs = await connect(gw2.url);
  await obs.join(room, 'obs');

  const old = await connect(gw1.url, { protocol: null });
  assert.equal(old.protocol, '', 'no subprotocol negotiated');
  old.send({ nickname: 'old', room, message: 'hello from 2010' });

  const own = await old.next({ type: 'message', room, message: 'hello from 2010' });
  assert.equal(own.nickname, 'old');
  assert.equal(typeof own.seq, 'number');
  const pj = await obs.next({ type: 'presence', room, event: 'join', nickname: 'old' });
  assert.ok(pj, 'the legacy sender joined the room');
  const seen = await obs.next({ type: 'message', room, message: 'hello from 2010' });
  assert.equal(seen.nickname, 'old');
  assert.equal(seen.seq, own.seq);

  await obs.say(room, 'hi old timer');
  const got = await old.next({ type: 'message', room, message: 'hi old timer' });
  assert.equal(got.nickname, 'obs');

  // A second legacy frame: already joined, so no second presence join.
  old.send({ nickname: 'old', room, message: 'still here' });
  await old.next({ type: 'message', room, message: 'still here' });
  await obs.next({ type: 'message', room, message: 'still here' });
  const joins = obs.frames.filter((f) => f.type === 'presence' && f.event === 'join' && f.nickname === 'old');
  assert.equal(joins.length, 1, 'exactly one presence join for the legacy member');

  for (const f of old.frames) {
    assert.equal(f.type, 'message', `legacy connection got a non-message frame: ${JSON.stringify(f)}`);
    assert.equal(typeof f.nickname, 'string');
    assert.equal(typeof f.room, 'string');
    assert.equal(typeof f.message, 'string');
  }
  assert.equal(old.frames.length, 3, 'the three messages of the room, nothing else');
});

test('a legacy page can speak in two rooms', { timeout: 20000 }, async () => {
  const [gw1] = cl.gateways;
  const r1 = uniqueRoom('legacy-a');
  const r2 = uniqueRoom('legacy-b');
  const old = await connect(gw1.url, { protocol: null });
  old.send({ nickname: 'x', room: r1, message: 'one' });
  old.send({ nickname: 'y', room: r2, message: 'two' });
  const m1 = await old.next({ type: 'message', room: r1 });
  const m2 = await old.next({ type: 'message', room: r2 });
  assert.equal(m1.nickname, 'x');
  assert.equal(m2.nickname, 'y');
  assert.ok(old.frames.every((f) => f.type === 'message'));
});

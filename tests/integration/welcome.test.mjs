// welcome: sent first on every chat.v1 connection with session, gateway and
// limits; never sent to a connection that offered no subprotocol.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, startGateway, ChatClient, connect, track, teardown } from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 1, workers: 0 });
}, { timeout: 20000 });
after(teardown);

test('chat.v1 connections get welcome first, with default limits', { timeout: 10000 }, async () => {
  const gw = cl.gateways[0];
  const a = track(await ChatClient.connect(gw.url, { protocol: 'chat.v1' }));
  assert.equal(a.protocol, 'chat.v1', 'the subprotocol is accepted');
  const w = await a.next(() => true);
  assert.equal(w.type, 'welcome', `first frame: ${JSON.stringify(w)}`);
  assert.equal(typeof w.session, 'string');
  assert.ok(w.session.length > 0);
  assert.equal(w.gateway, gw.id);
  assert.equal(w.limits.message_bytes, 4096);
  assert.equal(w.limits.frame_bytes, 65536);
  assert.equal(typeof w.limits.rate_per_sec, 'number');
  assert.equal(typeof w.limits.rooms, 'number');

  const b = await connect(gw.url);
  assert.notEqual(b.welcome.session, w.session, 'each connection has its own session');
});

test('welcome.limits reflect the flags', { timeout: 20000 }, async () => {
  const gw = await startGateway({
    redisUrl: cl.redis.url,
    id: 'gw-limits',
    extraArgs: ['--message-bytes', '1000', '--frame-bytes', '8192', '--rate-per-sec', '77', '--rooms', '9'],
  });
  const c = await connect(gw.url);
  assert.equal(c.welcome.gateway, 'gw-limits');
  const { message_bytes, frame_bytes, rate_per_sec, rooms } = c.welcome.limits;
  assert.deepEqual({ message_bytes, frame_bytes, rate_per_sec, rooms },
    { message_bytes: 1000, frame_bytes: 8192, rate_per_sec: 77, rooms: 9 });
});

test('no welcome without a subprotocol', { timeout: 10000 }, async () => {
  const gw = cl.gateways[0];
  const c = await connect(gw.url, { protocol: null });
  c.send({ type: 'ping', id: 'first' });
  const pong = await c.next({ type: 'pong', id: 'first' });
  assert.ok(pong);
  assert.equal(c.frames[0].type, 'pong', `the first frame must be the pong, got ${JSON.stringify(c.frames[0])}`);
  assert.equal(c.frames.filter((f) => f.type === 'welcome').length, 0);
});

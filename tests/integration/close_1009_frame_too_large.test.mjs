// A whole frame over the frame limit (--frame-bytes, default 65536) closes
// the connection with 1009; a frame within it whose message is too long
// gets too_large and the connection stays open.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, startGateway, connect, teardown, uniqueRoom } from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 1, workers: 0 });
}, { timeout: 20000 });
after(teardown);

// A message frame of exactly `bytes` bytes.
function frameOfSize(room, bytes, id) {
  const skeleton = JSON.stringify({ type: 'message', room, message: '', id });
  return JSON.stringify({ type: 'message', room, message: 'x'.repeat(bytes - skeleton.length), id });
}

test('default limit: a 70000-byte frame closes with 1009', { timeout: 15000 }, async () => {
  const room = uniqueRoom('big');
  const c = await connect(cl.gateways[0].url);
  await c.join(room, 'c');
  c.send(frameOfSize(room, 70000, 'huge'));
  const closed = await c.waitClosed(5000);
  assert.equal(closed.code, 1009, `close: ${JSON.stringify(closed)}`);
});

test('default limit: a 60000-byte frame is too_large, not a close', { timeout: 15000 }, async () => {
  const room = uniqueRoom('big');
  const c = await connect(cl.gateways[0].url);
  await c.join(room, 'c');
  c.send(frameOfSize(room, 60000, 'large'));
  const err = await c.next({ type: 'error', id: 'large' });
  assert.equal(err.code, 'too_large');
  c.send({ type: 'ping', id: 'after' });
  await c.next({ type: 'pong', id: 'after' });
});

test('--frame-bytes 4096: exactly 4096 passes, 4097 closes with 1009', { timeout: 20000 }, async () => {
  const gw = await startGateway({ redisUrl: cl.redis.url, extraArgs: ['--frame-bytes', '4096'] });
  const room = uniqueRoom('edge');
  const c = await connect(gw.url);
  assert.equal(c.welcome.limits.frame_bytes, 4096);
  await c.join(room, 'c');
  const exact = frameOfSize(room, 4096, 'exact');
  assert.equal(Buffer.byteLength(exact), 4096);
  c.send(exact);
  const ack = await c.next({ type: 'ack', id: 'exact' });
  assert.equal(ack.room, room);
  c.send(frameOfSize(room, 4097, 'over'));
  const closed = await c.waitClosed(5000);
  assert.equal(closed.code, 1009, `close: ${JSON.stringify(closed)}`);
});

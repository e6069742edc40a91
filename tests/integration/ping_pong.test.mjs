// ping → pong (with id echoed when given), before and after joining, and
// WebSocket-level pings are answered too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom } from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 1, workers: 0 });
}, { timeout: 20000 });
after(teardown);

test('ping with id gets pong with the same id', { timeout: 10000 }, async () => {
  const c = await connect(cl.gateways[0].url);
  c.send({ type: 'ping', id: 'p-1' });
  const p = await c.next({ type: 'pong' });
  assert.equal(p.id, 'p-1');
});

test('ping without id gets pong without id', { timeout: 10000 }, async () => {
  const c = await connect(cl.gateways[0].url);
  c.send({ type: 'ping' });
  const p = await c.next({ type: 'pong' });
  assert.equal(p.id, undefined);
});

test('pings interleaved with chat keep their order', { timeout: 10000 }, async () => {
  const c = await connect(cl.gateways[0].url);
  const room = uniqueRoom('pp');
  await c.join(room, 'p');
  for (let i = 0; i < 10; i++) c.send({ type: 'ping', id: `seq-${i}` });
  for (let i = 0; i < 10; i++) {
    const p = await c.next({ type: 'pong' });
    assert.equal(p.id, `seq-${i}`);
  }
});

test('a WebSocket ping control frame gets a pong control frame', { timeout: 10000 }, async () => {
  const c = await connect(cl.gateways[0].url);
  const got = new Promise((resolve) => c.ws.once('pong', (data) => resolve(data.toString())));
  c.ws.ping('hello');
  let timer;
  const data = await Promise.race([got, new Promise((_, rej) => {
    timer = setTimeout(() => rej(new Error('no pong control frame within 3 s')), 3000);
  })]);
  clearTimeout(timer);
  assert.equal(data, 'hello');
});

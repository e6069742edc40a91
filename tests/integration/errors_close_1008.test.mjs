// A connection that keeps sending bad frames is closed with 1008; a bad
// frame now and then, with good frames between, is not (default
// --max-bad-frames 5: five bad frames in a row close).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, startGateway, connect, teardown } from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 1, workers: 0 });
}, { timeout: 20000 });
after(teardown);

async function ping(c, id) {
  c.send({ type: 'ping', id });
  return c.next({ type: 'pong', id });
}

test('default: 4 bad frames in a row are tolerated, 5 close with 1008', { timeout: 15000 }, async () => {
  const c = await connect(cl.gateways[0].url);
  for (let i = 0; i < 4; i++) c.send('garbage');
  await ping(c, 'still-open');
  assert.equal(c.frames.filter((f) => f.type === 'error' && f.code === 'bad_json').length, 4,
    'each bad frame got its own error');
  for (let i = 0; i < 5; i++) c.send('garbage');
  const closed = await c.waitClosed(5000);
  assert.equal(closed.code, 1008, `close code: ${JSON.stringify(closed)}`);
  assert.ok(c.frames.filter((f) => f.type === 'error').length >= 8, 'errors were sent before the close');
});

test('good frames in between reset the count', { timeout: 15000 }, async () => {
  const c = await connect(cl.gateways[0].url);
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 4; i++) c.send('{');
    await ping(c, `reset-${round}`);
  }
  assert.equal(c.closeInfo, null, 'still open after 16 bad frames in runs of 4');
});

test('--max-bad-frames 2', { timeout: 20000 }, async () => {
  const gw = await startGateway({ redisUrl: cl.redis.url, extraArgs: ['--max-bad-frames', '2'] });
  const c = await connect(gw.url);
  c.send('garbage');
  await ping(c, 'one-bad');
  c.send('garbage');
  c.send('garbage');
  const closed = await c.waitClosed(5000);
  assert.equal(closed.code, 1008);
});

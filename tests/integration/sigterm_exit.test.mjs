// SIGTERM and SIGINT stop the gateway cleanly: connected clients are told
// to reconnect and closed with 1001, and the process exits 0.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startGateway, connect, teardown, uniqueRoom, waitHttpStatus, sanitizerReports } from './lib/harness.mjs';

let redis;
before(async () => {
  redis = await startRedis();
}, { timeout: 20000 });
after(teardown);

test('SIGTERM with no clients: exit 0', { timeout: 20000 }, async () => {
  const gw = await startGateway({ redisUrl: redis.url, extraArgs: ['--drain-ms', '200'] });
  gw.kill('SIGTERM');
  const { code, signal } = await gw.waitExit(10000);
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, gw.stderr.slice(-2000));
});

test('SIGINT: exit 0', { timeout: 20000 }, async () => {
  const gw = await startGateway({ redisUrl: redis.url, extraArgs: ['--drain-ms', '200'] });
  gw.kill('SIGINT');
  const { code, signal } = await gw.waitExit(10000);
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, gw.stderr.slice(-2000));
});

test('SIGTERM with clients: reconnect, close 1001, exit 0', { timeout: 20000 }, async () => {
  const gw = await startGateway({ redisUrl: redis.url, extraArgs: ['--drain-ms', '300'] });
  const room = uniqueRoom('drain');
  const a = await connect(gw.url);
  const b = await connect(gw.url, { protocol: null });
  await a.join(room, 'a');
  b.send({ nickname: 'legacy', room, message: 'hi' });
  await b.next({ type: 'message', room });
  gw.kill('SIGTERM');
  const closedA = await a.waitClosed(10000);
  const closedB = await b.waitClosed(10000);
  const { code, signal } = await gw.waitExit(10000);
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, gw.stderr.slice(-2000));
  assert.equal(closedA.code, 1001, 'going away');
  assert.equal(closedB.code, 1001, 'going away');
  const rc = a.frames.find((f) => f.type === 'reconnect');
  assert.ok(rc, 'chat.v1 client got a reconnect frame before the close');
  assert.equal(rc.reason, 'shutdown');
  assert.equal(typeof rc.after_ms, 'number');
  assert.ok(b.frames.every((f) => f.type === 'message'), 'the legacy client gets only message frames, even now');
});

test('SIGTERM while Redis is down: exit 0, no sanitizer report', { timeout: 30000 }, async () => {
  const own = await startRedis();
  const gw = await startGateway({ redisUrl: own.url, extraArgs: ['--drain-ms', '200'] });
  const room = uniqueRoom('down');
  const a = await connect(gw.url);
  await a.join(room, 'a');
  await a.say(room, 'hello');
  await own.stop();
  await waitHttpStatus(`${gw.http}/readyz`, 503, { timeoutMs: 10000 });
  gw.kill('SIGTERM');
  const { code, signal } = await gw.waitExit(10000);
  assert.deepEqual(sanitizerReports().filter((r) => r.name === gw.describe()), []);
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, gw.stderr.slice(-2000));
});

// Every flag can come from CHAT_<FLAG> in the environment, and a flag on
// the command line wins over the environment.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startGateway, connect, teardown } from './lib/harness.mjs';

let redis;
before(async () => {
  redis = await startRedis();
}, { timeout: 20000 });
after(teardown);

test('CHAT_* variables configure the gateway; flags win', { timeout: 20000 }, async () => {
  const gw = await startGateway({
    redisUrl: redis.url,
    id: 'gw-env-flag',
    env: { CHAT_MESSAGE_BYTES: '123', CHAT_FRAME_BYTES: '5000', CHAT_RATE_PER_SEC: '31', CHAT_ID: 'gw-from-env' },
    extraArgs: ['--frame-bytes', '6000'],
  });
  const c = await connect(gw.url);
  assert.equal(c.welcome.gateway, 'gw-env-flag', '--id wins over CHAT_ID');
  assert.equal(c.welcome.limits.message_bytes, 123, 'CHAT_MESSAGE_BYTES');
  assert.equal(c.welcome.limits.rate_per_sec, 31, 'CHAT_RATE_PER_SEC');
  assert.equal(c.welcome.limits.frame_bytes, 6000, '--frame-bytes wins over CHAT_FRAME_BYTES');
});

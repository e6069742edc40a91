// Events survive a stalled Redis. While Redis is paused (SIGSTOP) it stops
// reading; once the kernel's buffers are full, what the gateway sends stays
// in hiredis's buffer, and dropping the link (--redis-timeout-ms) throws it
// away. A leave event caught there must be sent again on the next link, or
// the member who left stays listed for ever.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, waitFor, sleep } from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({
    gateways: 1,
    workers: 1,
    gatewayArgs: ['--redis-timeout-ms', '1000', '--message-bytes', '60000',
      '--rate-per-sec', '100000', '--rate-burst', '100000', '--send-queue-bytes', '67108864'],
  });
}, { timeout: 30000 });
after(teardown); // stop() sends SIGCONT too

test('a leave sent into a stalled Redis is sent again after the reconnect', { timeout: 40000 }, async () => {
  const gw = cl.gateways[0];
  const room = uniqueRoom('stall-leave');
  const flood = uniqueRoom('stall-flood');
  const leaver = await connect(gw.url);
  await leaver.join(room, 'leaver');
  const flooder = await connect(gw.url);
  await flooder.join(flood, 'flooder');
  const registry = `chat:gw:${gw.id}:sessions`;
  assert.equal(await cl.redis.command('HLEN', registry), 2);

  cl.redis.kill('SIGSTOP');
  // 12 MB of publishes fill the socket buffers between the gateway and the
  // paused Redis; what follows waits in hiredis's own buffer.
  const text = 'x'.repeat(59000);
  for (let i = 0; i < 200; i++) flooder.send({ type: 'message', room: flood, message: text, id: `f${i}` });
  await sleep(500);
  leaver.close();
  await leaver.waitClosed();
  await sleep(1500); // past --redis-timeout-ms: the link is dropped
  cl.redis.kill('SIGCONT');

  await waitFor(async () => (await cl.redis.command('HEXISTS', `chat:{${room}}:members`, 'leaver')) === 0,
    { timeoutMs: 15000, what: 'the member who left to be removed' });
  await waitFor(async () => (await cl.redis.command('HLEN', registry)) === 1,
    { timeoutMs: 15000, what: "the leaver's registry entry to be removed" });
  flooder.close();
});

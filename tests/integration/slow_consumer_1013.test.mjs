// The receiver is the boss: a client that stops reading while its room is
// busy is closed (1013) once its bounded send queue overflows, instead of
// being buffered without bound, and the other members are not held back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, range, FAST } from './lib/harness.mjs';

const QUEUE_BYTES = 262144;
const MESSAGES = 3000; // 3000 x ~4 KB = ~12 MB: far more than queue + socket buffers
const TEXT = 'y'.repeat(4000);
const WINDOW = 10; // ~40 KB in flight: a reader that keeps reading never nears the queue limit

let cl;
before(async () => {
  cl = await startCluster({
    gateways: 1, workers: 0, gatewayArgs: [...FAST, '--send-queue-bytes', String(QUEUE_BYTES)],
  });
}, { timeout: 20000 });
after(teardown);

test('a reader that stops reading is closed with 1013; others keep up', { timeout: 60000 }, async (t) => {
  const url = cl.gateways[0].url;
  const room = uniqueRoom('slow');
  const writer = await connect(url);
  const fast = await connect(url);
  const slow = await connect(url);
  await writer.join(room, 'writer');
  await fast.join(room, 'fast');
  await slow.join(room, 'slow');
  slow.ws._socket.pause(); // stop reading: the kernel buffers fill, then the gateway's queue

  await writer.sayMany(room, range(1, MESSAGES).map(() => TEXT), { window: WINDOW, timeoutMs: 20000 });
  const got = await fast.messages(room, MESSAGES, 30000);
  assert.equal(got.at(-1).seq - got[0].seq, MESSAGES - 1, 'the fast reader got everything');

  slow.ws._socket.resume();
  const closed = await slow.waitClosed(15000);
  const delivered = slow.frames.filter((f) => f.type === 'message').length;
  assert.ok(delivered < MESSAGES, `the slow reader was cut off (it got ${delivered} of ${MESSAGES})`);
  t.diagnostic(`slow reader closed with ${closed.code} after ${delivered} messages`);
  assert.equal(closed.code, 1013, 'too slow to keep up');
});

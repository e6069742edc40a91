// A reader that stalls and then catches up gets every frame intact and in
// order. While it stalls, the gateway's writes are taken only in part by
// the kernel (chat_gateway_short_writes_total), the rest of a frame cut
// there is finished by lws before anything else, and a keepalive ping goes
// out in the middle of it all: a ping or a frame written inside another
// frame would break the stream, and the ws library would fail it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, connect, teardown, uniqueRoom, range, sleep, waitFor, fetchMetrics, FAST,
} from './lib/harness.mjs';

// Header lengths 2 and 4, so writes are cut at many offsets.
const SIZES = [4000, 1, 125, 126, 3000, 65535 - 200];
const BATCH = 300; // ~3.6 MB
const MAX_BATCHES = 30; // how much loopback buffers is up to the kernel (tcp_rmem): send until it refuses

let cl;
let gw;
before(async () => {
  cl = await startCluster({
    gateways: 1, workers: 0,
    gatewayArgs: [...FAST, '--send-queue-bytes', String(64 * 1024 * 1024), '--message-bytes', '65535',
      '--frame-bytes', '131072', '--ping-interval-s', '1', '--ping-timeout-s', '30'],
  });
  gw = cl.gateways[0];
}, { timeout: 20000 });
after(teardown);

const metric = async (name) => (await fetchMetrics(gw.http)).get(name);

test('a stalled reader catches up with every frame intact, in order, a ping among them', { timeout: 90000 }, async (t) => {
  const room = uniqueRoom('stall');
  const writer = await connect(gw.url);
  const reader = await connect(gw.url);
  await writer.join(room, 'writer');
  const joined = await reader.join(room, 'reader');
  const pings = [];
  reader.ws.on('ping', () => pings.push(Date.now()));
  const shortBefore = await metric('chat_gateway_short_writes_total');

  reader.ws._socket.pause(); // stop reading: the kernel buffers fill, then writes come up short
  const texts = [];
  const sayBatch = async () => {
    const batch = range(texts.length + 1, texts.length + BATCH)
      .map((i) => `${i}:`.padEnd(SIZES[i % SIZES.length], String.fromCharCode(97 + (i % 26))));
    texts.push(...batch);
    await writer.sayMany(room, batch, { window: 50, timeoutMs: 30000 });
  };
  let short = false;
  for (let b = 0; b < MAX_BATCHES && !short; b++) {
    await sayBatch();
    short = await waitFor(async () => (await metric('chat_gateway_short_writes_total')) > shortBefore,
      { timeoutMs: 500, what: 'a short write' }).catch(() => false);
  }
  assert.ok(short, `a short write after ${texts.length} messages`);
  await sayBatch(); // more behind it, in the gateway's queue
  await sleep(1500); // silent past the ping interval: a ping is written behind what lws holds

  reader.ws._socket.resume();
  const got = await reader.messages(room, texts.length, 60000);
  assert.equal(reader.closeInfo, null, `the stream stayed valid (${reader.lastError?.message ?? 'no error'})`);
  assert.deepEqual(got.map((m) => m.seq), range(joined.seq + 1, joined.seq + texts.length), 'every seq, in order');
  assert.deepEqual(got.map((m) => m.message), texts, 'every text intact');
  assert.ok(pings.length >= 1, 'the reader was pinged while it stalled');
  t.diagnostic(`${texts.length} messages; short writes: ` +
    `${(await metric('chat_gateway_short_writes_total')) - shortBefore}, pings: ${pings.length}`);
});

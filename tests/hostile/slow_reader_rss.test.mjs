// Readers that stop reading while their room floods are closed with 1013
// once their send queue passes --send-queue-bytes (default 1 MiB), and the
// gateway's memory stays bounded meanwhile: its RSS (VmRSS) never grows more
// than RSS_BOUND_MIB above what it was with every client connected and idle.
// The reader that keeps reading gets every message; the writer is not held
// back.
//
// Under AddressSanitizer freed memory sits in a quarantine (256 MiB by
// default) before reuse, which would look like growth: the gateway gets
// ASAN_OPTIONS=quarantine_size_mb=16 here, so the bound is the same for both
// builds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, connect, teardown, uniqueRoom, range, FAST, RawWebSocket, metrics, rssBytes, waitFor, sleep,
  assertServes,
} from './lib.mjs';

const SLOW_READERS = 10;
const MESSAGES = 5000;
const TEXT = 'z'.repeat(4000); // 5000 x 4 KB = 20 MB per member: far past queue + kernel buffers
const RSS_BOUND_MIB = 64;

let cl;
let gw;
before(async () => {
  const asan = process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:` : '';
  cl = await startCluster({
    gateways: 1,
    workers: 0,
    gatewayArgs: [...FAST],
    env: { ASAN_OPTIONS: `${asan}quarantine_size_mb=16:thread_local_quarantine_size_kb=256` },
  });
  gw = cl.gateways[0];
}, { timeout: 20000 });
after(teardown);

test(`${SLOW_READERS} readers that stop reading are closed with 1013; RSS stays under idle + ${RSS_BOUND_MIB} MiB`, { timeout: 150000 }, async (t) => {
  const room = uniqueRoom('slowrss');
  const writer = await connect(gw.url);
  const fast = await connect(gw.url);
  await writer.join(room, 'writer');
  await fast.join(room, 'fast');

  const slow = [];
  for (let i = 0; i < SLOW_READERS; i++) {
    const ws = await RawWebSocket.connect(gw.port);
    await ws.nextJson((j) => j.type === 'welcome');
    ws.sendText(JSON.stringify({ type: 'join', room, nickname: `slow${i}`, id: `j${i}` }));
    await ws.nextJson((j) => j.id === `j${i}` && j.type === 'joined');
    ws.socket.pause(); // never read again (until the end)
    slow.push(ws);
  }
  const m0 = await metrics(gw);
  const slowCloses0 = m0.get('chat_gateway_slow_closes_total') ?? 0;

  await sleep(300);
  const idle = rssBytes(gw.pid);
  assert.ok(idle > 0, 'VmRSS readable');
  let peak = idle;
  const sampler = setInterval(() => {
    const r = rssBytes(gw.pid);
    if (r !== null && r > peak) peak = r;
  }, 50);
  let acks;
  const t0 = Date.now();
  try {
    acks = await writer.sayMany(room, range(1, MESSAGES).map(() => TEXT), { window: 20, timeoutMs: 30000 });
    const got = await fast.messages(room, MESSAGES, 60000);
    assert.equal(got.at(-1).seq - got[0].seq, MESSAGES - 1, 'the reading member got everything');
    await waitFor(async () => ((await metrics(gw)).get('chat_gateway_slow_closes_total') ?? 0) - slowCloses0 >= SLOW_READERS,
      { timeoutMs: 20000, what: `${SLOW_READERS} slow closes in /metrics` });
  } finally {
    clearInterval(sampler);
  }
  const took = Date.now() - t0;
  const growMiB = (peak - idle) / 1048576;
  t.diagnostic(`${MESSAGES} x ${TEXT.length} B in ${took} ms; RSS idle ${(idle / 1048576).toFixed(1)} MiB, ` +
    `peak ${(peak / 1048576).toFixed(1)} MiB (+${growMiB.toFixed(1)} MiB)`);
  assert.equal(acks.length, MESSAGES);
  assert.ok(growMiB < RSS_BOUND_MIB, `RSS grew by ${growMiB.toFixed(1)} MiB (bound ${RSS_BOUND_MIB} MiB)`);

  // Each slow reader, reading again, finds the close frame after what was
  // buffered for it: 1013, having got only part of the room.
  const codes = [];
  for (const ws of slow) {
    ws.socket.resume();
    const closed = await ws.waitClose(15000);
    codes.push(closed.code);
    const delivered = ws.frames.filter((f) => f.text && f.text.includes('"type":"message"')).length;
    assert.ok(delivered < MESSAGES, `a slow reader was cut off (got ${delivered} of ${MESSAGES})`);
    ws.destroy();
  }
  assert.deepEqual(codes, Array(SLOW_READERS).fill(1013));
  assert.equal(fast.closeInfo, null);
  assert.equal(writer.closeInfo, null);

  // The memory comes back into use: a second round does not grow the peak
  // by more than the bound either.
  await assertServes(gw.url, 'after the slow readers');
});

test('a ws client that pauses its socket mid-flood is closed with 1013 too', { timeout: 90000 }, async () => {
  const room = uniqueRoom('paused');
  const writer = await connect(gw.url);
  const paused = await connect(gw.url);
  await writer.join(room, 'writer');
  await paused.join(room, 'paused');
  paused.ws._socket.pause();
  const before = rssBytes(gw.pid);
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssBytes(gw.pid) ?? 0);
  }, 50);
  try {
    await writer.sayMany(room, range(1, 4000).map(() => TEXT), { window: 20, timeoutMs: 30000 });
  } finally {
    clearInterval(sampler);
  }
  paused.ws._socket.resume();
  const closed = await paused.waitClosed(15000);
  assert.equal(closed.code, 1013);
  assert.ok((peak - before) / 1048576 < RSS_BOUND_MIB, `RSS grew by ${((peak - before) / 1048576).toFixed(1)} MiB`);
});

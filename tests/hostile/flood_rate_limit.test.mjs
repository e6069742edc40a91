// Floods: connections sending chat messages at 10x the rate limit are
// throttled by their token bucket (--rate-per-sec 20, --rate-burst 40):
// every frame gets an answer (ack or `rate_limited`), at most burst + rate x
// seconds are acked and delivered, nothing refused is delivered, and the
// flooder stays connected (a well-formed frame over the rate is not a "bad
// frame"). Meanwhile another room on the same gateway keeps its latency
// (p99 under 50 ms; 100 ms for an ASan build). Legacy frames are held to the same rate, and join
// frames to --joins-per-sec.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, startGateway, connect, teardown, uniqueRoom, newId, sleep, percentile, waitFor, metrics,
  assertServes, isAsanBinary, gatewayBin,
} from './lib.mjs';

const RATE = 20;
const BURST = 40;
const FLOOD_FACTOR = 10;
const FLOOD_SECONDS = 5;
const FLOODERS = 5;
// Another room's round trip (say → hear) during the flood. AddressSanitizer
// makes the gateway 2-3x slower: its bound is doubled.
const P99_BOUND_MS = isAsanBinary(gatewayBin) ? 100 : 50;

let cl;
let gw;
before(async () => {
  cl = await startCluster({ gateways: 1, workers: 0 }); // default limits: rate 20, burst 40
  gw = cl.gateways[0];
}, { timeout: 20000 });
after(teardown);

// Sends `perSec` messages per second for `seconds` into room, paced in 10 ms
// ticks. Resolves with {sent, ids} once the sending is over.
async function flood(c, room, perSec, seconds, tag) {
  const ids = [];
  const total = perSec * seconds;
  const t0 = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * perSec) + 1);
    for (; sent < due; sent++) {
      const id = `${tag}-${sent}`;
      ids.push(id);
      c.send({ type: 'message', room, message: `flood ${id}`, id });
    }
    await sleep(10);
  }
  return { sent, ids, ms: performance.now() - t0 };
}

// Probe pairs in their own rooms: one says, the other hears; round-trip
// times in ms. Each probe stays well under the rate limit (10/s).
async function startProbes(n, perSec = 10) {
  const pairs = [];
  for (let i = 0; i < n; i++) {
    const room = uniqueRoom('quiet');
    const a = await connect(gw.url);
    const b = await connect(gw.url);
    await a.join(room, 'a');
    await b.join(room, 'b');
    pairs.push({ a, b, room });
  }
  const rtts = [];
  let running = true;
  let failure = null;
  const loops = pairs.map(async ({ a, b, room }) => {
    while (running && !failure) {
      const text = newId('probe');
      const t0 = performance.now();
      a.send({ type: 'message', room, message: text, id: text });
      try {
        await b.next({ type: 'message', room, message: text }, 3000);
        const ack = await a.next({ id: text }, 3000);
        assert.equal(ack.type, 'ack', `probe got ${JSON.stringify(ack)}`);
      } catch (e) {
        failure = e;
        return;
      }
      rtts.push(performance.now() - t0);
      await sleep(1000 / perSec);
    }
  });
  return {
    rtts,
    async stop() {
      running = false;
      await Promise.all(loops);
      if (failure) throw failure;
      return rtts;
    },
  };
}

test(`${FLOODERS} connections at ${FLOOD_FACTOR}x the rate are throttled; another room keeps p99 < ${P99_BOUND_MS} ms`, { timeout: 90000 }, async (t) => {
  // Baseline latency, no flood.
  const base = await startProbes(5);
  await sleep(2000);
  const baseRtts = await base.stop();

  const room = uniqueRoom('flood');
  const reader = await connect(gw.url);
  await reader.join(room, 'reader');
  const flooders = [];
  for (let i = 0; i < FLOODERS; i++) {
    const c = await connect(gw.url);
    await c.join(room, `flooder${i}`);
    flooders.push(c);
  }
  const probes = await startProbes(5);
  await sleep(200);
  const results = await Promise.all(flooders.map((c, i) => flood(c, room, RATE * FLOOD_FACTOR, FLOOD_SECONDS, `f${i}`)));
  await sleep(500);
  const rtts = await probes.stop();

  let totalAcked = 0;
  for (let i = 0; i < FLOODERS; i++) {
    const c = flooders[i];
    const { ids, ms } = results[i];
    // Every frame is answered, ack or rate_limited, and nothing else.
    await waitFor(() => ids.every((id) => c.frames.some((f) => f.id === id)),
      { timeoutMs: 10000, what: `answers to all ${ids.length} frames of flooder ${i}` });
    const answers = ids.map((id) => c.frames.find((f) => f.id === id));
    const acked = answers.filter((f) => f.type === 'ack').length;
    const limited = answers.filter((f) => f.type === 'error' && f.code === 'rate_limited').length;
    const other = answers.filter((f) => !(f.type === 'ack' || (f.type === 'error' && f.code === 'rate_limited')));
    assert.deepEqual(other, [], 'answers are acks or rate_limited errors');
    const max = BURST + RATE * (ms / 1000) + 10;
    const min = Math.floor(RATE * (ms / 1000) * 0.8); // throttled, not shut out
    t.diagnostic(`flooder ${i}: sent ${ids.length} in ${ms.toFixed(0)} ms, acked ${acked} (bound ${min}..${max.toFixed(0)}), rate_limited ${limited}`);
    assert.ok(acked <= max, `flooder ${i}: ${acked} acked, at most ${max.toFixed(0)} allowed`);
    assert.ok(acked >= min, `flooder ${i}: only ${acked} acked; the rate should still let ~${RATE}/s through`);
    assert.equal(acked + limited, ids.length);
    assert.equal(c.closeInfo, null, `flooder ${i} stays connected (rate_limited is not a bad frame)`);
    totalAcked += acked;
  }

  // The reader got exactly the acked messages, in seq order, no gaps.
  const got = await reader.messages(room, totalAcked, 10000);
  const seqs = got.map((m) => m.seq);
  for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, 'no gap in the flooded room');
  assert.equal(await reader.quiet({ type: 'message', room }, 500), null, 'no rate-limited message was delivered');

  const fmt = (a) => `p50 ${percentile(a, 50).toFixed(1)} p99 ${percentile(a, 99).toFixed(1)} max ${Math.max(...a).toFixed(1)} ms (n=${a.length})`;
  t.diagnostic(`other rooms, no flood: ${fmt(baseRtts)}; during the flood: ${fmt(rtts)}`);
  assert.ok(rtts.length >= 100, `enough probe samples (${rtts.length})`);

  let p99 = percentile(rtts, 99);
  if (p99 >= P99_BOUND_MS) {
    // One stall of the machine (another process, a compile on a shared
    // runner) shows up in every probe at once. A flood that delays other
    // rooms does so every time: measure once more and judge that.
    t.diagnostic(`p99 ${p99.toFixed(1)} ms over the bound: measuring a second flood`);
    const again = await startProbes(5);
    await sleep(200);
    await Promise.all(flooders.map((c, i) => flood(c, room, RATE * FLOOD_FACTOR, FLOOD_SECONDS, `g${i}`)));
    await sleep(500);
    const rtts2 = await again.stop();
    t.diagnostic(`second flood: ${fmt(rtts2)}`);
    p99 = percentile(rtts2, 99);
  }
  assert.ok(p99 < P99_BOUND_MS, `p99 of another room during the flood: ${p99.toFixed(1)} ms (bound ${P99_BOUND_MS})`);

  const m = await metrics(gw);
  assert.ok((m.get('chat_gateway_errors_total{code="rate_limited"}') ?? 0) >= FLOODERS * 500,
    'rate_limited errors are counted');
  await assertServes(gw.url, 'after the flood');
});

test('the bucket refills: after a pause the flooder sends at the rate again', { timeout: 30000 }, async () => {
  const room = uniqueRoom('refill');
  const c = await connect(gw.url);
  await c.join(room, 'refill');
  // Drain the bucket: BURST + 20 at once.
  const first = [];
  for (let i = 0; i < BURST + 20; i++) {
    const id = `a${i}`;
    first.push(id);
    c.send({ type: 'message', room, message: id, id });
  }
  await waitFor(() => first.every((id) => c.frames.some((f) => f.id === id)), { timeoutMs: 5000, what: 'answers' });
  const acked1 = first.filter((id) => c.frames.find((f) => f.id === id).type === 'ack').length;
  assert.ok(acked1 >= BURST && acked1 <= BURST + 2, `a burst of ${BURST} passes at once (${acked1})`);
  await sleep(1000);
  // One second refilled ~RATE tokens.
  const second = [];
  for (let i = 0; i < RATE * 2; i++) {
    const id = `b${i}`;
    second.push(id);
    c.send({ type: 'message', room, message: id, id });
  }
  await waitFor(() => second.every((id) => c.frames.some((f) => f.id === id)), { timeoutMs: 5000, what: 'answers' });
  const acked2 = second.filter((id) => c.frames.find((f) => f.id === id).type === 'ack').length;
  assert.ok(acked2 >= RATE * 0.9 && acked2 <= RATE * 1.3, `after 1 s, ~${RATE} pass (${acked2})`);
});

test('legacy frames are held to the same rate (and get no error frames)', { timeout: 30000 }, async () => {
  const room = uniqueRoom('legacyflood');
  const reader = await connect(gw.url);
  await reader.join(room, 'reader');
  const legacy = await connect(gw.url, { protocol: null });
  const t0 = performance.now();
  const total = RATE * FLOOD_FACTOR * 2; // 2 s at 10x
  for (let i = 0; i < total; i++) {
    legacy.send({ nickname: 'old', room, message: `legacy ${i}` });
    if (i % 4 === 3) await sleep(10);
  }
  const secs = (performance.now() - t0) / 1000;
  await sleep(1000);
  const delivered = reader.take({ type: 'message', room }).length;
  const max = BURST + RATE * (secs + 1) + 5;
  assert.ok(delivered <= max, `legacy flood: ${delivered} of ${total} delivered, at most ${max.toFixed(0)} allowed`);
  assert.ok(delivered >= BURST, `legacy flood: ${delivered} delivered, at least the burst`);
  assert.equal(legacy.frames.filter((f) => f.type !== 'message').length, 0, 'a legacy connection gets only message frames');
  assert.equal(legacy.closeInfo, null);
});

test('--joins-per-sec: join frames over the rate get rate_limited', { timeout: 30000 }, async () => {
  const g = await startGateway({ redisUrl: cl.redis.url, extraArgs: ['--joins-per-sec', '5', '--rooms', '1000'] });
  const c = await connect(g.url);
  assert.equal(c.welcome.limits.joins_per_sec, 5);
  const ids = [];
  for (let i = 0; i < 40; i++) {
    const id = `j${i}`;
    ids.push(id);
    c.send({ type: 'join', room: uniqueRoom('jr'), nickname: 'joiner', id });
  }
  await waitFor(() => ids.every((id) => c.frames.some((f) => f.id === id && f.type !== 'presence')),
    { timeoutMs: 10000, what: 'answers to 40 joins' });
  const answers = ids.map((id) => c.frames.find((f) => f.id === id && f.type !== 'presence'));
  const joined = answers.filter((f) => f.type === 'joined').length;
  const limited = answers.filter((f) => f.type === 'error' && f.code === 'rate_limited').length;
  assert.equal(joined + limited, 40, `answers: ${JSON.stringify(answers.filter((f) => f.type !== 'joined' && f.code !== 'rate_limited'))}`);
  assert.ok(joined >= 1 && joined <= 10, `40 joins at once with --joins-per-sec 5: ${joined} joined`);
  assert.equal(c.closeInfo, null);
  // And refills.
  await sleep(1100);
  await c.join(uniqueRoom('jr'), 'joiner');
  // Default: 10 per second.
  const d = await connect(gw.url);
  assert.equal(d.welcome.limits.joins_per_sec, 10);
});

// No hole and no duplicate between a join's history and the live messages
// that follow it, even when the join lands in the middle of a busy stream,
// with and without `since`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, range, seqProblem, waitFor, FAST } from './lib/harness.mjs';

const TOTAL = 150;

let cl;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 0, gatewayArgs: FAST });
}, { timeout: 20000 });
after(teardown);

test('joins during a stream see every seq exactly once', { timeout: 30000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('seam');
  const writer = await connect(gw1.url);
  await writer.join(room, 'writer');
  let acked = 0;
  const sending = (async () => {
    for (let i = 1; i <= TOTAL; i++) {
      const a = await writer.say(room, `m${i}`);
      acked = a.seq;
    }
  })();

  const readers = [];
  const plan = [
    { at: 20, gw: gw2, opts: { history: 500 } },
    { at: 50, gw: gw1, opts: { history: 500 } },
    { at: 80, gw: gw2, opts: { since: 10 } },
    { at: 110, gw: gw1, opts: { since: 100 } },
  ];
  for (const [k, p] of plan.entries()) {
    await waitFor(() => acked >= p.at, { timeoutMs: 20000, what: `seq ${p.at} acked` });
    const c = await connect(p.gw.url);
    const j = await c.join(room, `reader${k}`, p.opts);
    readers.push({ c, j, p, name: `reader${k} (joined at ~${p.at}, ${JSON.stringify(p.opts)})` });
  }
  await sending;

  for (const { c, j, p, name } of readers) {
    const first = p.opts.since !== undefined ? p.opts.since + 1 : 1;
    if (p.opts.since !== undefined) assert.equal(j.recovered, true, `${name}: recovered`);
    const hist = j.history.map((m) => m.seq);
    const liveCount = TOTAL - j.seq;
    const live = await c.messages(room, liveCount, 10000);
    const all = [...hist, ...live.map((m) => m.seq)];
    assert.equal(seqProblem(all, first), null, `${name}: history ${hist[0]}..${hist.at(-1)} then live`);
    assert.equal(all.at(-1), TOTAL, `${name}: reaches the last seq`);
    assert.equal(hist.at(-1) ?? first - 1, j.seq, `${name}: history ends at joined.seq`);
    const idxJoined = c.frames.indexOf(j);
    const idxFirstLive = c.frames.findIndex((f) => f.type === 'message' && f.room === room);
    assert.ok(idxFirstLive === -1 || idxFirstLive > idxJoined, `${name}: no live message before joined`);
    assert.equal(await c.quiet((f) => f.type === 'message' && f.room === room, 200), null,
      `${name}: nothing after the last seq`);
  }
});

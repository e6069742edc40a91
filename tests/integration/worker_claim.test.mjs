// No event is lost when a worker dies: kill -9 one of two workers while
// events flow, at a moment it holds delivered but unacknowledged entries;
// the other claims them with XAUTOCLAIM after --claim-idle-ms and applies
// them. Every member gets exactly one presence leave.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startWorker, teardown, uniqueRoom, waitFor, sleep } from './lib/harness.mjs';
import {
  FAST, addMember, addEvent, membersKey, channel, workerMetrics, waitAllAcked, presenceFrames,
  EVENTS, GROUP,
} from './worker_helpers.mjs';

const N = 400;

let redis;
let c;
before(async () => {
  redis = await startRedis();
  c = await redis.client();
}, { timeout: 20000 });
after(async () => {
  c?.close();
  await teardown();
});

// Pending entries per consumer, from XPENDING's summary form.
async function pendingOf(name) {
  const [, , , consumers] = await c.command('XPENDING', EVENTS, GROUP);
  const row = (consumers || []).find(([n]) => n === name);
  return row ? Number(row[1]) : 0;
}

test('kill -9 of one of two workers while events flow loses no event', { timeout: 60000 }, async () => {
  const room = uniqueRoom('claim');
  const gw = `gwc-${process.pid}`;
  for (let i = 0; i < N; i++) await addMember(c, { room, nickname: `u${i}`, mid: `c${i}.1`, gateway: gw });
  const sub = await redis.client();
  try {
    await sub.subscribe(channel(room));
    const victim = await startWorker({ redisUrl: redis.url, id: `victim-${process.pid}`, extraArgs: FAST });
    const survivor = await startWorker({ redisUrl: redis.url, id: `survivor-${process.pid}`, extraArgs: FAST });

    let sent = 0;
    const send = async (upto) => {
      for (; sent < upto; sent++) {
        await addEvent(c, { room, nickname: `u${sent}`, mid: `c${sent}.1`, gateway: gw, reason: 'closed' });
        if (sent % 10 === 9) await sleep(2);
      }
    };
    await send(N / 4);
    // Freeze the victim so that what Redis delivers to it stays unacked,
    // keep the events flowing until it holds some, then kill it.
    victim.kill('SIGSTOP');
    while (sent < N && (await pendingOf(victim.id)) === 0) await send(sent + 5);
    assert.ok((await pendingOf(victim.id)) > 0, 'the victim holds unacknowledged entries');
    victim.kill('SIGKILL');
    await victim.waitExit(5000);
    await send(N);

    await waitAllAcked(c, 20000);
    await waitFor(async () => (await c.command('HLEN', membersKey(room))) === 0,
      { timeoutMs: 10000, what: 'every member removed' });
    await waitFor(() => presenceFrames(sub, room).length >= N, { timeoutMs: 5000, what: `${N} presence leaves` });
    await sleep(200);
    const frames = presenceFrames(sub, room);
    assert.equal(frames.length, N, 'exactly one presence leave per member');
    assert.equal(new Set(frames.map((f) => f.nickname)).size, N);

    const m = await workerMetrics(survivor);
    assert.ok(m.get('chat_worker_events_claimed_total') >= 1, 'the survivor claimed entries');
    assert.match(survivor.stderr, /claimed \d+ entries/);
  } finally {
    sub.close();
  }
});

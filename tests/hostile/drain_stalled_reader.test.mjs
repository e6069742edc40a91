// A drain (SIGTERM) with a member that never reads: a raw chat.v1 member on
// the draining gateway stops reading after its join, keeps talking, and has
// megabytes of room traffic waiting for it, so neither `reconnect` nor the
// 1001 close can ever be written to it. Its leave (closed) still reaches a
// member on another gateway within 2 s of the 1001 close being decided
// (--drain-grace-ms, then 1 s after `reconnect`), the connection is cut by
// the close deadline, and the gateway exits 0 within --drain-ms plus a
// small bound. Its RSS stays bounded and the other members get every
// message, in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startRedis, startGateway, startWorker, teardownRaw, uniqueRoom, range, FAST, keepTalking,
  presenceLeave, assertAllInOrder, watchRss, rssAsanEnv, CLOSE_TIMEOUT_MS, SLACK_MS, LEAVE_MS,
  roomWithRawMember,
} from './lib.mjs';

const MESSAGES = 2000;
const TEXT = 'd'.repeat(4000); // 8 MB: the stalled member's socket fills, its queue holds the rest
const DRAIN_MS = 8000;
const GRACE_MS = 500;
const TELL_MS = 1000; // gateway/main.c: from `reconnect` to the 1001 close
const EXIT_BOUND_MS = 1500; // what the exit may take past --drain-ms
const RSS_BOUND_MIB = 64;

let draining;
let other;
before(async () => {
  const redis = await startRedis();
  draining = await startGateway({
    redisUrl: redis.url,
    extraArgs: [...FAST, '--drain-ms', String(DRAIN_MS), '--drain-grace-ms', String(GRACE_MS),
      '--send-queue-bytes', String(64 << 20)], // no 1013 before the drain: this is about the drain
    env: rssAsanEnv(),
  });
  other = await startGateway({ redisUrl: redis.url, extraArgs: [...FAST] });
  await startWorker({ redisUrl: redis.url });
}, { timeout: 30000 });
after(teardownRaw);

test('a drain with a member that never reads: leave at once, cut, exit within --drain-ms',
  { timeout: 60000 }, async (t) => {
    const room = uniqueRoom('drain-stall');
    const { writer, watcher, peer: staller } = await roomWithRawMember(other.url, draining.port, room, 'staller');
    staller.socket.pause(); // never reads again
    const stopTalking = keepTalking(staller);
    const rss = watchRss(draining.pid);
    try {
      await writer.sayMany(room, range(1, MESSAGES).map(() => TEXT), { window: 20, timeoutMs: 30000 });
      assertAllInOrder(await watcher.messages(room, MESSAGES, 30000), MESSAGES, 'writer');

      const t0 = Date.now();
      draining.kill('SIGTERM');
      const closeDecided = GRACE_MS + TELL_MS;
      const tLeave = await presenceLeave(watcher, room, 'staller', DRAIN_MS + 5000, 'closed');
      const { code, signal } = await draining.waitExit(DRAIN_MS + EXIT_BOUND_MS + 5000);
      const tExit = Date.now();
      t.diagnostic(`leave ${tLeave - t0} ms, exit ${tExit - t0} ms after SIGTERM`);
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, draining.stderr.slice(-2000));
      assert.ok(tLeave - t0 <= closeDecided + LEAVE_MS,
        `leave seen ${tLeave - t0} ms after SIGTERM (bound ${closeDecided + LEAVE_MS} ms)`);
      assert.ok(tExit - t0 <= DRAIN_MS + EXIT_BOUND_MS, `exit ${tExit - t0} ms after SIGTERM (--drain-ms ${DRAIN_MS})`);
      // The cut ends the last session, so the drain need not wait for --drain-ms.
      assert.ok(tExit - t0 <= closeDecided + CLOSE_TIMEOUT_MS + SLACK_MS,
        `the stalled member was cut by the close deadline (exit ${tExit - t0} ms after SIGTERM)`);

      // The room goes on without it.
      await writer.say(room, 'after the drain');
      const last = await watcher.next({ type: 'message', room, message: 'after the drain' });
      assert.equal(last.seq, MESSAGES + 1, 'no hole after the drain');
    } finally {
      stopTalking();
    }
    const { growMiB } = rss.stop();
    assert.ok(growMiB < RSS_BOUND_MIB, `RSS grew by ${growMiB.toFixed(1)} MiB (bound ${RSS_BOUND_MIB} MiB)`);

    // Reading again, it finds the connection over: cut, or (had there been
    // room for it) closed 1001.
    staller.socket.resume();
    const closed = await staller.waitClose(10000);
    assert.ok(closed.code === 1006 || closed.code === 1001, `cut, or closed 1001 (got ${closed.code})`);
  });

// A peer that never answers our close frame. A raw chat.v1 member that
// reads everything sends bad frames until the gateway closes it with 1008,
// then goes on talking (an app-level ping every 200 ms, a message, a join)
// and never sends its close. Its leave (faulted) reaches another member
// within 2 s of the close frame, nothing it sends after the close takes
// effect, and the connection is cut within the close deadline (5 s). The
// gateway's RSS stays bounded and the members who read get every message,
// in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, teardownRaw, uniqueRoom, range, FAST, keepTalking, presenceLeave,
  closeFrameSeen, socketGone, assertAllInOrder, watchRss, rssAsanEnv, CLOSE_TIMEOUT_MS, SLACK_MS, LEAVE_MS,
  roomWithRawMember,
} from './lib.mjs';

const MESSAGES = 300;
const BAD_FRAMES = 5; // --max-bad-frames
const RSS_BOUND_MIB = 64;

let gw;
before(async () => {
  const cl = await startCluster({
    gateways: 1, workers: 1, gatewayArgs: [...FAST, '--max-bad-frames', String(BAD_FRAMES)], env: rssAsanEnv(),
  });
  gw = cl.gateways[0];
}, { timeout: 20000 });
after(teardownRaw);

test('a peer that never answers our close frame leaves at once and is cut within the close deadline',
  { timeout: 60000 }, async (t) => {
    const room = uniqueRoom('mute-close');
    const { writer, watcher, peer } = await roomWithRawMember(gw.url, gw.port, room, 'deaf');
    const rss = watchRss(gw.pid);
    const stopTalking = keepTalking(peer);
    try {
      // Traffic all along, so that the others' order is checked across it.
      const acks = writer.sayMany(room, range(1, MESSAGES).map((i) => `m${i}`), { window: 5, timeoutMs: 20000 });
      for (let i = 0; i < BAD_FRAMES; i++) peer.sendText('not json');
      const tClose = await closeFrameSeen(peer, 5000);
      assert.equal(peer.closeFrame.code, 1008, 'closed for too many bad frames');

      // Not answered; what it sends now must not be acted on.
      peer.sendText(JSON.stringify({ type: 'message', room, message: 'after the close', id: 'late' }));
      peer.sendText(JSON.stringify({ type: 'join', room: uniqueRoom('late'), nickname: 'deaf', id: 'late-join' }));

      const tLeave = await presenceLeave(watcher, room, 'deaf', LEAVE_MS + 5000, 'faulted');
      const tGone = await socketGone(peer, CLOSE_TIMEOUT_MS + 10000);
      t.diagnostic(`leave ${tLeave - tClose} ms, cut ${tGone - tClose} ms after the close frame`);
      assert.ok(tLeave - tClose <= LEAVE_MS, `leave seen ${tLeave - tClose} ms after the close frame`);
      assert.ok(tGone - tClose <= CLOSE_TIMEOUT_MS + SLACK_MS,
        `cut ${tGone - tClose} ms after the close frame (bound ${CLOSE_TIMEOUT_MS} ms)`);
      assert.equal(peer.frames.filter((f) => f.opcode === 0x8).length, 1, 'one close frame, ours');
      assert.ok(!peer.frames.some((f) => f.text && /"(ack|joined)"/.test(f.text) && f.text.includes('late')),
        'no answer to what it sent after the close');

      assert.equal((await acks).length, MESSAGES);
      assertAllInOrder(await watcher.messages(room, MESSAGES, 20000), MESSAGES, 'writer');
    } finally {
      stopTalking();
    }
    const { growMiB } = rss.stop();
    assert.ok(growMiB < RSS_BOUND_MIB, `RSS grew by ${growMiB.toFixed(1)} MiB (bound ${RSS_BOUND_MIB} MiB)`);
    assert.equal(await watcher.quiet((f) => f.type === 'message' && f.nickname === 'deaf', 300), null);
    assert.equal(watcher.closeInfo, null);
  });

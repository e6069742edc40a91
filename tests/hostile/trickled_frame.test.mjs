// A peer that sends slowly forever: a raw chat.v1 member starts a 2,000-byte
// text frame and trickles its payload one byte every 100 ms (it would take
// 200 s; every byte would count as a sign of life). A message must arrive
// whole within 10 s of its first byte: the gateway closes it with 1008 then,
// its leave (faulted) reaches another member within 2 s, and since a peer
// stuck mid-frame cannot answer the close, the connection is cut within the
// close deadline (5 s) after that. The gateway's RSS stays bounded and the
// members who read get every message, in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, teardownRaw, uniqueRoom, range, FAST, presenceLeave, closeFrameSeen,
  socketGone, assertAllInOrder, watchRss, rssAsanEnv, encodeFrame, OP, CLOSE_TIMEOUT_MS, FRAME_TIMEOUT_MS,
  SLACK_MS, LEAVE_MS,
  roomWithRawMember,
} from './lib.mjs';

const MESSAGES = 300;
const RSS_BOUND_MIB = 64;
const TRICKLE_EVERY_MS = 100;
const HEADER_BYTES = 8; // 2 + a 16-bit length + the mask key

let gw;
before(async () => {
  const cl = await startCluster({ gateways: 1, workers: 1, gatewayArgs: [...FAST], env: rssAsanEnv() });
  gw = cl.gateways[0];
}, { timeout: 20000 });
after(teardownRaw);

test('a frame trickled a byte at a time is closed 1008 after 10 s and cut within the close deadline',
  { timeout: 60000 }, async (t) => {
    const room = uniqueRoom('trickle');
    const { writer, watcher, peer } = await roomWithRawMember(gw.url, gw.port, room, 'trickler');
    const rss = watchRss(gw.pid);

    const text = JSON.stringify({ type: 'message', room, message: 't'.repeat(1950) });
    const frame = encodeFrame(OP.TEXT, text);
    assert.equal(frame.length, HEADER_BYTES + Buffer.byteLength(text));
    peer.socket.write(frame.subarray(0, HEADER_BYTES + 1)); // the header and the first payload byte
    const tFirst = Date.now();
    let sent = HEADER_BYTES + 1;
    const trickle = setInterval(() => {
      if (peer.socket.destroyed || sent >= frame.length - 1) return clearInterval(trickle);
      peer.socket.write(frame.subarray(sent, sent + 1));
      sent++;
    }, TRICKLE_EVERY_MS);
    try {
      const acks = writer.sayMany(room, range(1, MESSAGES).map((i) => `m${i}`), { window: 5, timeoutMs: 20000 });
      const tClose = await closeFrameSeen(peer, FRAME_TIMEOUT_MS + 10000);
      assert.equal(peer.closeFrame.code, 1008, 'closed: the message took too long');
      const tLeave = await presenceLeave(watcher, room, 'trickler', LEAVE_MS + 5000, 'faulted');
      const tGone = await socketGone(peer, CLOSE_TIMEOUT_MS + 10000);
      t.diagnostic(`close frame ${tClose - tFirst} ms, leave ${tLeave - tFirst} ms, cut ${tGone - tFirst} ms ` +
        `after the first byte (${sent - HEADER_BYTES} of ${frame.length - HEADER_BYTES} bytes sent)`);
      assert.ok(tClose - tFirst >= FRAME_TIMEOUT_MS - 100 && tClose - tFirst <= FRAME_TIMEOUT_MS + SLACK_MS,
        `close frame ${tClose - tFirst} ms after the first byte (bound ${FRAME_TIMEOUT_MS} ms)`);
      assert.ok(tLeave - tClose <= LEAVE_MS, `leave seen ${tLeave - tClose} ms after the close frame`);
      assert.ok(tGone - tClose <= CLOSE_TIMEOUT_MS + SLACK_MS,
        `cut ${tGone - tClose} ms after the close frame (bound ${CLOSE_TIMEOUT_MS} ms)`);

      assert.equal((await acks).length, MESSAGES);
      assertAllInOrder(await watcher.messages(room, MESSAGES, 20000), MESSAGES, 'writer');
    } finally {
      clearInterval(trickle);
    }
    const { growMiB } = rss.stop();
    assert.ok(growMiB < RSS_BOUND_MIB, `RSS grew by ${growMiB.toFixed(1)} MiB (bound ${RSS_BOUND_MIB} MiB)`);
    assert.equal(await watcher.quiet((f) => f.type === 'message' && f.nickname === 'trickler', 300), null);
    assert.equal(watcher.closeInfo, null);
  });

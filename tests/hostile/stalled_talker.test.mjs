// A member that stops reading but keeps talking (an app-level ping every
// 200 ms) while its room floods. Once its send queue overflows the gateway
// is done with it: its leave goes out at once (reason faulted, seen by
// another member within 2 s), what it sends afterwards is not acted on (a
// message is not published, a join does not join), and since its full
// socket cannot take the 1013 close frame, the TCP connection is cut within
// the close deadline (5 s) however much it talks. The gateway's RSS stays
// bounded and the members who read get every message, in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, connect, teardownRaw, uniqueRoom, range, FAST, httpGet, rawMember, keepTalking, waitMetric,
  presenceLeave, assertAllInOrder, metrics, watchRss, rssAsanEnv, CLOSE_TIMEOUT_MS, SLACK_MS, LEAVE_MS, socketGone, OP,
  roomWithRawMember,
} from './lib.mjs';

const MESSAGES = 4000;
const TEXT = 's'.repeat(4000); // 4000 x 4 KB = 16 MB: far past the queue and the socket buffers
const RSS_BOUND_MIB = 64;

let cl;
let gw;
before(async () => {
  cl = await startCluster({ gateways: 1, workers: 1, gatewayArgs: [...FAST], env: rssAsanEnv() });
  gw = cl.gateways[0];
}, { timeout: 20000 });
after(teardownRaw);

test('a member that stops reading but keeps talking leaves at once and is cut within the close deadline',
  { timeout: 90000 }, async (t) => {
    const room = uniqueRoom('talker');
    const other = uniqueRoom('talker-other');
    const { writer, watcher, peer: staller } = await roomWithRawMember(gw.url, gw.port, room, 'staller');
    staller.socket.pause(); // never reads again
    const stopTalking = keepTalking(staller);
    await waitMetric(gw, 'chat_gateway_connections', (v) => v === 3);
    const slowBase = (await metrics(gw)).get('chat_gateway_slow_closes_total') ?? 0;
    const rss = watchRss(gw.pid);

    try {
      // The flood, and meanwhile the moment the gateway gives up on the staller.
      const overflowed = waitMetric(gw, 'chat_gateway_slow_closes_total', (v) => v > slowBase,
        { timeoutMs: 30000, what: 'the staller\'s 1013' });
      const acks = writer.sayMany(room, range(1, MESSAGES).map(() => TEXT), { window: 20, timeoutMs: 30000 });
      const tOverflow = await overflowed;

      // What it sends from now on is not acted on.
      staller.sendText(JSON.stringify({ type: 'message', room, message: 'after the overflow', id: 'late' }));
      staller.sendText(JSON.stringify({ type: 'join', room: other, nickname: 'staller' }));

      const tLeave = await presenceLeave(watcher, room, 'staller', LEAVE_MS + 3000, 'faulted');
      const tCut = await waitMetric(gw, 'chat_gateway_connections', (v) => v < 3,
        { timeoutMs: CLOSE_TIMEOUT_MS + 20000, what: 'the staller\'s connection to be cut' });
      t.diagnostic(`leave ${tLeave - tOverflow} ms, cut ${tCut - tOverflow} ms after the overflow`);
      assert.ok(tLeave - tOverflow <= LEAVE_MS, `leave seen ${tLeave - tOverflow} ms after the overflow`);
      assert.ok(tCut - tOverflow <= CLOSE_TIMEOUT_MS + SLACK_MS,
        `connection cut ${tCut - tOverflow} ms after the overflow (bound ${CLOSE_TIMEOUT_MS} ms)`);

      assert.equal((await acks).length, MESSAGES);
      const got = await watcher.messages(room, MESSAGES, 60000);
      assertAllInOrder(got, MESSAGES, 'writer', got[0].seq);
    } finally {
      stopTalking();
    }
    const { idle, peak, growMiB } = rss.stop();
    t.diagnostic(`RSS idle ${(idle / 1048576).toFixed(1)} MiB, peak ${(peak / 1048576).toFixed(1)} MiB`);
    assert.ok(growMiB < RSS_BOUND_MIB, `RSS grew by ${growMiB.toFixed(1)} MiB (bound ${RSS_BOUND_MIB} MiB)`);

    // Nothing it sent after the overflow took effect.
    assert.equal(await watcher.quiet((f) => f.type === 'message' && f.nickname === 'staller', 300), null);
    const members = await httpGet(`${gw.http}/api/rooms/${other}/members`);
    assert.equal(members.status, 200);
    assert.deepEqual(members.json().members, [], 'the late join joined nothing');
    const roomMembers = (await httpGet(`${gw.http}/api/rooms/${room}/members`)).json().members.map((m) => m.nickname);
    assert.deepEqual(roomMembers.sort(), ['watcher', 'writer']);

    // Reading again, it finds the connection over: no close frame could be
    // written into its full socket (one that did arrive would say 1013).
    staller.socket.resume();
    const closed = await staller.waitClose(10000);
    assert.ok(closed.code === 1006 || closed.code === 1013, `cut, or closed 1013 (got ${closed.code})`);
    staller.destroy();
    assert.equal(watcher.closeInfo, null);
    assert.equal(writer.closeInfo, null);
  });

test('one that reads again before the deadline finds 1013 after its data, and one close frame only',
  { timeout: 60000 }, async (t) => {
    const room = uniqueRoom('talker-back');
    const writer = await connect(gw.url);
    await writer.join(room, 'writer');
    const staller = await rawMember(gw.port, room, 'comeback');
    staller.socket.pause();
    const stopTalking = keepTalking(staller);
    const slowBase = (await metrics(gw)).get('chat_gateway_slow_closes_total') ?? 0;
    try {
      const overflowed = waitMetric(gw, 'chat_gateway_slow_closes_total', (v) => v > slowBase,
        { timeoutMs: 30000, what: 'the staller\'s 1013' });
      await writer.sayMany(room, range(1, MESSAGES).map(() => TEXT), { window: 20, timeoutMs: 30000 });
      const tOverflow = await overflowed;
      staller.socket.resume(); // well within the close deadline
      const closed = await staller.waitClose(CLOSE_TIMEOUT_MS);
      t.diagnostic(`read again ${Date.now() - tOverflow} ms after the overflow`);
      assert.equal(closed.code, 1013, 'too slow');
      await socketGone(staller, CLOSE_TIMEOUT_MS + SLACK_MS); // our answer ends it at once
      const closes = staller.frames.filter((f) => f.opcode === OP.CLOSE).map((f) => f.payload.readUInt16BE(0));
      // lws, which does not see our close frame go out, used to answer the
      // peer's close with one of its own (1013 turned into 1002).
      assert.deepEqual(closes, [1013], 'one close frame');
      const delivered = staller.frames.filter((f) => f.text && f.text.includes('"type":"message"')).length;
      assert.ok(delivered < MESSAGES, `cut off (got ${delivered} of ${MESSAGES})`);
    } finally {
      stopTalking();
    }
  });

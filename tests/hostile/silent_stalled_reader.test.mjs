// A member that stops reading and falls silent, with less waiting for it
// than --send-queue-bytes: nothing overflows, so keepalive is what ends it.
// Its socket is full and libwebsockets holds the rest of a frame for it, yet
// it is hung up --ping-timeout-s after it last spoke (2 s here), not once a
// flush that can never happen times out. Its leave (timeout) reaches another
// member, the gateway's RSS stays bounded, and the member who reads gets
// every message, in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, teardownRaw, uniqueRoom, range, FAST, presenceLeave, waitMetric,
  assertAllInOrder, watchRss, rssAsanEnv, SLACK_MS, LEAVE_MS,
  roomWithRawMember,
} from './lib.mjs';

const MESSAGES = 2000;
const TEXT = 'q'.repeat(4000); // 8 MB: fills its socket, and the queue holds the rest
const PING_TIMEOUT_S = 2;
const RSS_BOUND_MIB = 64;

let gw;
before(async () => {
  const cl = await startCluster({
    gateways: 1,
    workers: 1,
    gatewayArgs: [...FAST, '--ping-interval-s', '1', '--ping-timeout-s', String(PING_TIMEOUT_S),
      '--send-queue-bytes', String(64 << 20)],
    env: rssAsanEnv(),
  });
  gw = cl.gateways[0];
}, { timeout: 20000 });
after(teardownRaw);

test('a member that stops reading and falls silent is hung up after --ping-timeout-s', { timeout: 60000 },
  async (t) => {
    const room = uniqueRoom('silent');
    const { writer, watcher, peer: silent } = await roomWithRawMember(gw.url, gw.port, room, 'silent');
    silent.socket.pause(); // never reads, never speaks again
    const tSilent = Date.now();
    const rss = watchRss(gw.pid);

    const acks = writer.sayMany(room, range(1, MESSAGES).map(() => TEXT), { window: 20, timeoutMs: 30000 });
    const tLeave = await presenceLeave(watcher, room, 'silent', PING_TIMEOUT_S * 1000 + LEAVE_MS + 10000, 'timeout');
    const tCut = await waitMetric(gw, 'chat_gateway_connections', (v) => v < 3,
      { timeoutMs: 15000, what: 'the silent member\'s connection to be cut' });
    t.diagnostic(`leave ${tLeave - tSilent} ms, cut ${tCut - tSilent} ms after it fell silent`);
    assert.ok(tCut - tSilent <= PING_TIMEOUT_S * 1000 + SLACK_MS,
      `cut ${tCut - tSilent} ms after it fell silent (bound --ping-timeout-s ${PING_TIMEOUT_S} s)`);
    assert.ok(tLeave - tSilent <= PING_TIMEOUT_S * 1000 + LEAVE_MS,
      `leave seen ${tLeave - tSilent} ms after it fell silent`);

    assert.equal((await acks).length, MESSAGES);
    assertAllInOrder(await watcher.messages(room, MESSAGES, 30000), MESSAGES, 'writer');
    const { growMiB } = rss.stop();
    assert.ok(growMiB < RSS_BOUND_MIB, `RSS grew by ${growMiB.toFixed(1)} MiB (bound ${RSS_BOUND_MIB} MiB)`);
    assert.equal(watcher.closeInfo, null);
  });

// Keepalive (gateway/keepalive.c): a WebSocket silent for --ping-interval-s
// gets a ping control frame; one silent for --ping-timeout-s is hung up and
// its rooms see it leave with reason "timeout". Anything the client sends
// counts as not silent: a pong, or any frame.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, connect, teardown, uniqueRoom, RawWebSocket, OP, sleep,
} from './lib/harness.mjs';

const PING_S = 1;
const HANGUP_S = 3;

let cl;
let gw;
before(async () => {
  cl = await startCluster({
    gateways: 1, workers: 1,
    gatewayArgs: ['--ping-interval-s', String(PING_S), '--ping-timeout-s', String(HANGUP_S)],
  });
  gw = cl.gateways[0];
}, { timeout: 20000 });
after(teardown);

// Joins room as nickname over a raw socket that answers nothing by itself.
async function rawMember(room, nickname) {
  const ws = await RawWebSocket.connect(gw.port);
  await ws.nextJson((f) => f.type === 'welcome');
  ws.sendText(JSON.stringify({ type: 'join', room, nickname, id: 'j' }));
  await ws.nextJson((f) => f.type === 'joined');
  return ws;
}

test('a client that answers pings is pinged every interval and kept past the hang-up time', { timeout: 20000 }, async () => {
  const c = await connect(gw.url); // the ws library answers pings with pongs
  const pings = [];
  c.ws.on('ping', () => pings.push(Date.now()));
  const t0 = Date.now();
  await sleep((HANGUP_S + 2) * 1000);
  assert.equal(c.closeInfo, null, 'still connected');
  assert.ok(pings.length >= HANGUP_S + 1 && pings.length <= HANGUP_S + 3,
    `${pings.length} pings in ${HANGUP_S + 2} s with a ${PING_S} s interval`);
  assert.ok(pings[0] - t0 >= PING_S * 1000 - 300, 'the first ping comes after the interval, not at once');
  const r = await c.request({ type: 'ping' });
  assert.equal(r.type, 'pong', 'and it still works');
});

test('a client that sends frames but never answers pings is not silent, so it stays', { timeout: 20000 }, async () => {
  const ws = await RawWebSocket.connect(gw.port);
  await ws.nextJson((f) => f.type === 'welcome');
  const until = Date.now() + (HANGUP_S + 2) * 1000;
  let n = 0;
  while (Date.now() < until) {
    ws.sendText(JSON.stringify({ type: 'ping', id: `p${n++}` }));
    await ws.nextJson((f) => f.type === 'pong');
    await sleep(400);
  }
  assert.ok(!ws.closeFrame && !ws.socket.destroyed, 'still connected');
  assert.equal(ws.frames.filter((f) => f.opcode === OP.PING).length, 0,
    'never pinged: it was never silent for the interval');
  ws.socket.destroy();
});

test('a member that stops answering is pinged, hung up after the timeout, and leaves with reason timeout', { timeout: 20000 }, async () => {
  const room = uniqueRoom('ka');
  const watcher = await connect(gw.url);
  await watcher.join(room, 'watcher');
  const mute = await rawMember(room, 'mute');
  const t0 = Date.now();
  const closed = await mute.waitClose(HANGUP_S * 1000 + 3000);
  const took = Date.now() - t0;
  const pings = mute.frames.filter((f) => f.opcode === OP.PING);
  mute.socket.destroy();
  assert.equal(closed.code, 1006, 'no close frame for a peer that stopped answering');
  assert.ok(pings.length >= 1, 'it was pinged first');
  assert.ok(pings.every((f) => f.payload.length > 0), 'pings carry a payload, so their pongs are reported');
  assert.ok(took >= HANGUP_S * 1000 - 500 && took <= HANGUP_S * 1000 + 1500,
    `hung up after ${took} ms (timeout ${HANGUP_S} s)`);
  const leave = await watcher.next({ type: 'presence', room, event: 'leave', nickname: 'mute' }, 3000);
  assert.equal(leave.reason, 'timeout');
});

test('a client that answers pings with pongs only (no frames) stays', { timeout: 20000 }, async () => {
  const ws = await RawWebSocket.connect(gw.port);
  await ws.nextJson((f) => f.type === 'welcome');
  let answered = 0;
  const until = Date.now() + (HANGUP_S + 2) * 1000;
  while (Date.now() < until) {
    for (const f of ws.frames) {
      if (f.opcode === OP.PING && !f.answered) {
        f.answered = true;
        ws.sendFrame(OP.PONG, f.payload);
        answered++;
      }
    }
    await sleep(100);
  }
  assert.ok(!ws.closeFrame && !ws.socket.destroyed, 'still connected: the pongs counted');
  assert.ok(answered >= HANGUP_S, `${answered} pings answered`);
  ws.socket.destroy();
});

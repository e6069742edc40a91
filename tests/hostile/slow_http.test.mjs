// Clients that hold a connection open without finishing anything: a TCP
// connection that never speaks, an upgrade request that never ends, a
// slowloris request trickling its headers one byte per second, a POST whose
// body trickles, an idle keep-alive HTTP connection, and a WebSocket that
// upgraded and then went silent (it never answers pings). Each is closed
// within the gateway's timeouts (10 s for handshakes and slow HTTP, the ping
// timeout for a silent WebSocket), and while they hang on, other clients
// chat with no added delay.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, startGateway, connect, teardown, uniqueRoom, newId, tcpConnect, socketEnded, rawUpgrade,
  assertServes, percentile, sleep, RawWebSocket,
} from './lib.mjs';

const HANDSHAKE_TIMEOUT_S = 10; // lws timeout_secs in the gateway
const CLOSE_WITHIN_MS = (HANDSHAKE_TIMEOUT_S + 5) * 1000;

let cl;
let gw;
before(async () => {
  cl = await startCluster({
    gateways: 1, workers: 0, gatewayArgs: ['--ping-interval-s', '1', '--ping-timeout-s', '3'],
    env: { CHAT_API_KEY: 'k' }, // the POST endpoint, so that a trickled body reaches it
  });
  gw = cl.gateways[0];
}, { timeout: 30000 });
after(teardown);

// Chats on gw every 100 ms until stop() and reports round-trip times.
async function startChatter() {
  const room = uniqueRoom('chatter');
  const a = await connect(gw.url);
  const b = await connect(gw.url);
  await a.join(room, 'a');
  await b.join(room, 'b');
  const rtts = [];
  let running = true;
  let failure = null;
  const loop = (async () => {
    while (running) {
      const text = newId('t');
      const t0 = performance.now();
      try {
        a.send({ type: 'message', room, message: text, id: text });
        await b.next({ type: 'message', room, message: text }, 2000);
        rtts.push(performance.now() - t0);
      } catch (e) {
        failure = e;
        return;
      }
      await sleep(100);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      a.terminate();
      b.terminate();
      if (failure) throw new Error(`chat stalled while slow clients held connections: ${failure.message}`);
      return rtts;
    },
  };
}

// Writes text one byte per second until the peer closes or `maxBytes` went.
function trickle(socket, text, intervalMs = 1000) {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) {
      clearInterval(timer);
      return;
    }
    socket.write(text[i++]);
  }, intervalMs);
  socket.once('close', () => clearInterval(timer));
  return () => clearInterval(timer);
}

test('silent, half-sent and trickling connections are closed within the timeouts; others chat meanwhile', { timeout: 90000 }, async (t) => {
  const chatter = await startChatter();
  const waits = [];
  const sockets = [];

  // 1. TCP connections that never send a byte (200 of them).
  for (let i = 0; i < 200; i++) {
    const s = await tcpConnect(gw.port);
    sockets.push(s);
    waits.push(['silent TCP', socketEnded(s, CLOSE_WITHIN_MS)]);
  }

  // 2. An upgrade request that stops before the blank line.
  for (let i = 0; i < 20; i++) {
    const s = await tcpConnect(gw.port);
    sockets.push(s);
    s.write(`GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`);
    waits.push(['half an upgrade', socketEnded(s, CLOSE_WITHIN_MS)]);
  }

  // 3. Slowloris: the headers of an upgrade, one byte per second.
  for (let i = 0; i < 20; i++) {
    const s = await tcpConnect(gw.port);
    sockets.push(s);
    trickle(s, `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Version: 13\r\nX-Padding: ${'p'.repeat(200)}\r\n\r\n`);
    waits.push(['slowloris upgrade', socketEnded(s, CLOSE_WITHIN_MS)]);
  }

  // 4. Slowloris on plain HTTP: GET /healthz, one byte per second.
  for (let i = 0; i < 5; i++) {
    const s = await tcpConnect(gw.port);
    sockets.push(s);
    trickle(s, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ${'p'.repeat(200)}\r\n\r\n`);
    waits.push(['slowloris GET', socketEnded(s, CLOSE_WITHIN_MS)]);
  }

  // 5. A POST whose headers came whole and whose body trickles.
  for (let i = 0; i < 5; i++) {
    const s = await tcpConnect(gw.port);
    sockets.push(s);
    const body = JSON.stringify({ nickname: 'slow', message: 'x'.repeat(300) });
    s.write(`POST /api/rooms/${uniqueRoom('slowpost')}/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n` +
      `Authorization: Bearer k\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    trickle(s, body);
    waits.push(['trickled POST body', socketEnded(s, CLOSE_WITHIN_MS)]);
  }

  // 5b. The same on a path that does not exist (answered at once; the body
  // still trickles afterwards and must not keep the connection forever).
  for (let i = 0; i < 2; i++) {
    const s = await tcpConnect(gw.port);
    sockets.push(s);
    const body = 'x'.repeat(300);
    s.write(`POST /no/such/path HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${body.length}\r\n\r\n`);
    trickle(s, body);
    waits.push(['trickled POST body to an unknown path', socketEnded(s, CLOSE_WITHIN_MS)]);
  }

  // 6. A keep-alive HTTP connection that goes idle after one request.
  for (let i = 0; i < 5; i++) {
    const s = await tcpConnect(gw.port);
    sockets.push(s);
    s.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n');
    waits.push(['idle keep-alive HTTP', socketEnded(s, CLOSE_WITHIN_MS + 5000)]);
  }

  const t0 = Date.now();
  const results = await Promise.allSettled(waits.map(([, p]) => p));
  const slowest = {};
  const failures = [];
  results.forEach((r, i) => {
    const what = waits[i][0];
    if (r.status === 'rejected') failures.push(`${what}: ${r.reason.message}`);
    else slowest[what] = Math.max(slowest[what] ?? 0, r.value);
  });
  for (const s of sockets) s.destroy();
  t.diagnostic(`closed after (ms, slowest of each kind): ${JSON.stringify(slowest)}; all within ${Date.now() - t0} ms`);
  const rtts = await chatter.stop();
  t.diagnostic(`chat meanwhile: ${rtts.length} round trips, p50 ${percentile(rtts, 50).toFixed(1)} ms, ` +
    `p99 ${percentile(rtts, 99).toFixed(1)} ms, max ${Math.max(...rtts).toFixed(1)} ms`);
  assert.deepEqual(failures, [], 'every slow client was closed within the timeout');
  assert.ok(rtts.length >= 50, `the chat kept going (${rtts.length} round trips)`);
  assert.ok(percentile(rtts, 99) < 200, `chat p99 ${percentile(rtts, 99).toFixed(1)} ms while slow clients hung on`);
  await assertServes(gw.url, 'after the slow clients');
});

test('an upgraded WebSocket that never answers pings is closed after the ping timeout', { timeout: 30000 }, async () => {
  const ws = await RawWebSocket.connect(gw.port); // reads, but answers nothing
  const t0 = Date.now();
  const closed = await ws.waitClose(15000);
  const took = Date.now() - t0;
  ws.destroy();
  assert.ok(took <= 3000 + 4000, `closed after ${took} ms (ping timeout 3 s), code ${closed.code}`);
  await assertServes(gw.url, 'after a silent WebSocket');
});

test('a completed upgrade whose client sends nothing on a default gateway stays open, pinged (not a hang)', { timeout: 30000 }, async () => {
  // With the default keepalive (ping after 25 s) a silent but alive client
  // is legitimate: it is kept. Only the handshake itself is timed.
  const g = await startGateway({ redisUrl: cl.redis.url });
  const r = await rawUpgrade(g.port, { keep: true });
  assert.equal(r.status, 101);
  await sleep((HANDSHAKE_TIMEOUT_S + 2) * 1000);
  assert.ok(!r.socket.destroyed, 'an established WebSocket is not cut by the handshake timeout');
  r.socket.destroy();
});

// TLS served directly: --tls-cert and --tls-key with a self-signed
// certificate made here with openssl (CN and subjectAltName 127.0.0.1).
// wss:// chat works with the certificate verified (ca set) and is refused by
// a client that does not trust it; https:// serves /healthz, /readyz,
// /metrics and the API; nothing is served in plaintext on that port;
// garbage and silent connections on the TLS port are closed and the gateway
// keeps serving. A missing certificate is a startup error, not a plaintext
// fallback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import WebSocket from 'ws';
import {
  startRedis, teardown, uniqueRoom, ServerProcess, freePort, makeTmpDir, gatewayBin, webRoot, waitFor,
  ChatClient, track, httpGet, tcpConnect, socketEnded, runToExit, rawUpgrade, makeSelfSignedCert, parseMetrics,
} from './lib.mjs';

let redis;
let dir;
let cert;
let key;
let ca;
let gw; // {proc, port, https, wss}

// trust: false leaves out our CA (the system's CAs only).
function httpsGet(url, { trust = true, rejectUnauthorized = true, timeoutMs = 3000 } = {}) {
  return new Promise((resolve, reject) => {
    const opts = { rejectUnauthorized, agent: false, timeout: timeoutMs, ...(trust ? { ca } : {}) };
    const req = https.get(url, opts, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

async function startTlsGateway(extraArgs = []) {
  const port = await freePort();
  const proc = new ServerProcess(`gateway tls:${port}`, gatewayBin, [
    '--listen', `127.0.0.1:${port}`, '--redis', redis.url, '--id', `tls-${port}`, '--web-root', webRoot,
    '--tls-cert', cert, '--tls-key', key, ...extraArgs,
  ]);
  const base = `https://127.0.0.1:${port}`;
  await waitFor(async () => {
    if (!proc.running) throw new Error(`gateway exited (${proc.exitCode}): ${proc.stderr.slice(-2000)}`);
    return (await httpsGet(`${base}/readyz`, { timeoutMs: 1000 })).status === 200;
  }, { timeoutMs: 15000, what: `${base}/readyz to answer 200` }).catch((e) => {
    throw new Error(`${e.message}\n--- stderr ---\n${proc.stderr.slice(-3000)}`);
  });
  return { proc, port, https: base, wss: `wss://127.0.0.1:${port}/ws` };
}

function connectWss(url, opts = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['chat.v1'], { perMessageDeflate: false, handshakeTimeout: 5000, ...opts });
    const c = new ChatClient(ws, url);
    ws.once('open', async () => {
      try {
        c.welcome = await c.next({ type: 'welcome' });
        resolve(track(c));
      } catch (e) {
        reject(e);
      }
    });
    ws.once('unexpected-response', (req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

before(async () => {
  dir = makeTmpDir('chat-tls-');
  ({ cert, key } = makeSelfSignedCert(dir));
  ca = fs.readFileSync(cert);
  redis = await startRedis();
  gw = await startTlsGateway();
}, { timeout: 40000 });
after(teardown);

test('wss:// chat with the certificate verified', { timeout: 20000 }, async () => {
  const room = uniqueRoom('tls');
  const a = await connectWss(gw.wss, { ca });
  const b = await connectWss(gw.wss, { ca });
  await a.join(room, 'alice');
  await b.join(room, 'bob');
  const ack = await a.say(room, 'over TLS');
  assert.equal((await b.next({ type: 'message', room, message: 'over TLS' })).seq, ack.seq);
  assert.equal(a.welcome.type, 'welcome');
  // A big message crosses TLS record boundaries intact.
  const big = 'é'.repeat(2000);
  await a.say(room, big);
  assert.equal((await b.next({ type: 'message', room, message: big })).message, big);
});

test('a wss:// reader that stalls and catches up gets every frame intact and in order', { timeout: 60000 }, async (t) => {
  // Its own gateway: no rate limit, room for what piles up meanwhile.
  const g = await startTlsGateway(['--rate-per-sec', '1000000', '--rate-burst', '1000000',
    '--send-queue-bytes', String(64 * 1024 * 1024), '--message-bytes', '65535', '--frame-bytes', '131072']);
  const shortWrites = async () => {
    const m = await httpsGet(`${g.https}/metrics`);
    return parseMetrics(m.body).get('chat_gateway_short_writes_total');
  };
  const room = uniqueRoom('tls-stall');
  const writer = await connectWss(g.wss, { ca });
  const reader = await connectWss(g.wss, { ca, maxPayload: 1 << 20 });
  await writer.join(room, 'writer');
  const joined = await reader.join(room, 'reader');
  const before = await shortWrites();
  reader.ws._socket.pause(); // the TLS socket stops reading: SSL_write meets a full socket
  const sizes = [60000, 1, 125, 126, 3000, 40000];
  const texts = Array.from({ length: 600 }, (_, i) => `${i}:`.padEnd(sizes[i % sizes.length], 'xyz'[i % 3]));
  await writer.sayMany(room, texts, { window: 50, timeoutMs: 30000 });
  const shorts = (await shortWrites()) - before;
  reader.ws._socket.resume();
  const got = await reader.messages(room, texts.length, 30000);
  assert.equal(reader.closeInfo, null);
  assert.deepEqual(got.map((m) => m.seq), texts.map((_, i) => joined.seq + 1 + i), 'every seq, in order');
  assert.ok(got.every((m, i) => m.message === texts[i]), 'every text intact');
  assert.ok(shorts > 0, 'lws had to hold a write back while the reader stalled');
  t.diagnostic(`${shorts} writes held back by lws`);
  await g.proc.stop();
});

test('a client that does not trust the certificate is refused by its own check', { timeout: 20000 }, async () => {
  await assert.rejects(connectWss(gw.wss), /self[- ]signed|certificate/i);
  await assert.rejects(httpsGet(`${gw.https}/healthz`, { trust: false }), /self[- ]signed|certificate/i);
  // rejectUnauthorized: false works (the certificate is the only issue).
  const c = await connectWss(gw.wss, { rejectUnauthorized: false });
  await c.join(uniqueRoom('tls'), 'trusting');
});

test('https:// serves health, metrics and the API', { timeout: 20000 }, async () => {
  assert.equal((await httpsGet(`${gw.https}/healthz`)).status, 200);
  assert.equal((await httpsGet(`${gw.https}/readyz`)).status, 200);
  const m = await httpsGet(`${gw.https}/metrics`);
  assert.equal(m.status, 200);
  assert.match(m.body, /chat_gateway_connections/);
  const h = await httpsGet(`${gw.https}/api/rooms/${uniqueRoom('h')}/history`);
  assert.equal(h.status, 200);
  assert.deepEqual(JSON.parse(h.body).messages, []);
  assert.equal((await httpsGet(`${gw.https}/`)).status, 200, 'the web client over https');
});

test('nothing is served in plaintext on the TLS port', { timeout: 20000 }, async () => {
  const plain = await httpGet(`http://127.0.0.1:${gw.port}/healthz`, { timeoutMs: 3000 }).then((r) => r.status, () => 'refused');
  assert.notEqual(plain, 200, 'plain http /healthz must not be served');
  const up = await rawUpgrade(gw.port, { timeoutMs: 3000 });
  assert.notEqual(up.status, 101, 'a plaintext ws:// upgrade must not succeed');
});

test('garbage and silence on the TLS port are closed; the gateway keeps serving', { timeout: 40000 }, async () => {
  const garbage = [];
  for (let i = 0; i < 10; i++) {
    const s = await tcpConnect(gw.port);
    s.write(Buffer.from([0x16, 0x03, 0x01, 0xff, 0xff, ...Array(64).fill(0x41)])); // a bogus ClientHello
    garbage.push(socketEnded(s, 15000));
  }
  const random = await tcpConnect(gw.port);
  random.write(Buffer.alloc(4096, 0x5a));
  garbage.push(socketEnded(random, 15000));
  const silent = await tcpConnect(gw.port); // never says hello
  const silentClosed = socketEnded(silent, 16000);
  await Promise.all(garbage);
  await silentClosed;
  const c = await connectWss(gw.wss, { ca });
  await c.join(uniqueRoom('after'), 'still-here');
  assert.ok(gw.proc.running);
});

test('a missing certificate or key is a startup error', { timeout: 20000 }, async () => {
  const port = await freePort();
  const base = ['--listen', `127.0.0.1:${port}`, '--redis', redis.url, '--web-root', webRoot];
  const missing = runToExit(gatewayBin, [...base, '--tls-cert', path.join(dir, 'nope.pem'), '--tls-key', key]);
  assert.notEqual(missing.status, 0, 'a missing certificate file must not start');
  assert.equal(missing.signal, null, `killed by ${missing.signal} (it kept running or crashed): ${missing.stderr}`);
  const garbageCert = path.join(dir, 'garbage.pem');
  fs.writeFileSync(garbageCert, 'not a certificate\n');
  const bad = runToExit(gatewayBin, [...base, '--tls-cert', garbageCert, '--tls-key', key]);
  assert.notEqual(bad.status, 0, 'a garbage certificate must not start');
  assert.equal(bad.signal, null);
  const half = runToExit(gatewayBin, [...base, '--tls-cert', cert]);
  assert.notEqual(half.status, 0, '--tls-cert without --tls-key must not start');
  assert.equal(half.signal, null);
});

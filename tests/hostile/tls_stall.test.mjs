// TLS connections that stall mid-record (--tls-cert/--tls-key, a
// self-signed certificate made here, as in tls.test.mjs):
// - a wss:// member stops reading while its room floods, so the gateway's
//   TLS records stop mid-record in its full socket, and keeps talking: once
//   its queue overflows its leave (faulted) goes out at once and the
//   connection is cut within the close deadline (5 s);
// - a wss:// member sends half of a TLS record and never the rest: nothing
//   decrypts, so it is silent, and keepalive hangs up on it after
//   --ping-timeout-s (3 s here) with its leave (timeout).
// Each time the gateway's RSS stays bounded and the members who read get
// every message, in order.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { Duplex } from 'node:stream';
import {
  startRedis, startWorker, teardownRaw, uniqueRoom, range, FAST, ServerProcess, freePort, makeTmpDir, gatewayBin,
  webRoot, waitFor, makeSelfSignedCert, parseMetrics, connect, rawMember, keepTalking, waitMetric, presenceLeave,
  socketGone, assertAllInOrder, watchRss, rssAsanEnv, CLOSE_TIMEOUT_MS, SLACK_MS, LEAVE_MS,
} from './lib.mjs';

const MESSAGES = 4000;
const TEXT = 'e'.repeat(4000); // 16 MB: far past the queue and the socket buffers
const PING_TIMEOUT_S = 3;
const RSS_BOUND_MIB = 64;

let ca;
let gw; // {proc, pid, port, https, wss}

function httpsGet(url, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
const tlsMetrics = async () => parseMetrics((await httpsGet(`${gw.https}/metrics`)).body);

before(async () => {
  const dir = makeTmpDir('chat-tls-stall-');
  const { cert, key } = makeSelfSignedCert(dir);
  ca = fs.readFileSync(cert);
  const redis = await startRedis();
  await startWorker({ redisUrl: redis.url });
  const port = await freePort();
  const proc = new ServerProcess(`gateway tls:${port}`, gatewayBin, [
    '--listen', `127.0.0.1:${port}`, '--redis', redis.url, '--id', `tls-${port}`, '--web-root', webRoot,
    '--tls-cert', cert, '--tls-key', key, ...FAST, '--ping-interval-s', '1', '--ping-timeout-s', String(PING_TIMEOUT_S),
  ], { env: rssAsanEnv() });
  gw = { proc, pid: proc.pid, port, https: `https://127.0.0.1:${port}`, url: `wss://127.0.0.1:${port}/ws` };
  await waitFor(async () => {
    if (!proc.running) throw new Error(`gateway exited (${proc.exitCode}): ${proc.stderr.slice(-2000)}`);
    return (await httpsGet(`${gw.https}/readyz`, 1000)).status === 200;
  }, { timeoutMs: 15000, what: `${gw.https}/readyz to answer 200` });
}, { timeout: 40000 });
after(teardownRaw);

const member = async (room, nickname) => {
  const c = await connect(gw.url, { wsOptions: { ca } });
  await c.join(room, nickname);
  return c;
};

test('wss: a member that stops reading mid-record but keeps talking leaves at once and is cut within 5 s',
  { timeout: 90000 }, async (t) => {
    const room = uniqueRoom('tls-talker');
    const writer = await member(room, 'writer');
    const watcher = await member(room, 'watcher');
    const staller = await rawMember(gw.port, room, 'staller', { tlsOptions: { ca } });
    await watcher.next({ type: 'presence', event: 'join', nickname: 'staller' });
    staller.socket.pause();
    const stopTalking = keepTalking(staller);
    await waitMetric(tlsMetrics, 'chat_gateway_connections', (v) => v === 3);
    const slowBase = (await tlsMetrics()).get('chat_gateway_slow_closes_total') ?? 0;
    const rss = watchRss(gw.pid);
    try {
      const overflowed = waitMetric(tlsMetrics, 'chat_gateway_slow_closes_total', (v) => v > slowBase,
        { timeoutMs: 60000, what: 'the staller\'s 1013' });
      const acks = writer.sayMany(room, range(1, MESSAGES).map(() => TEXT), { window: 20, timeoutMs: 30000 });
      const tOverflow = await overflowed;
      const tLeave = await presenceLeave(watcher, room, 'staller', LEAVE_MS + 3000, 'faulted');
      const tCut = await waitMetric(tlsMetrics, 'chat_gateway_connections', (v) => v < 3,
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
    const { growMiB } = rss.stop();
    assert.ok(growMiB < RSS_BOUND_MIB, `RSS grew by ${growMiB.toFixed(1)} MiB (bound ${RSS_BOUND_MIB} MiB)`);
    assert.equal(watcher.closeInfo, null);
  });

// A TCP socket that the TLS client writes through; after stall(), the next
// chunk (one TLS record) goes out only in half, and nothing after it.
class RecordGate extends Duplex {
  constructor(tcp) {
    super();
    this.tcp = tcp;
    this.stalled = false;
    this.cutShort = false;
    tcp.on('data', (d) => this.push(d));
    tcp.on('end', () => this.push(null));
    tcp.on('close', () => this.destroy());
    tcp.on('error', () => {});
  }

  _read() {}

  _write(chunk, enc, cb) {
    if (!this.stalled) return this.tcp.write(chunk, cb);
    if (!this.cutShort) {
      this.cutShort = true;
      this.heldBytes = chunk.length - (chunk.length >> 1);
      return this.tcp.write(chunk.subarray(0, chunk.length >> 1), cb);
    }
    return cb(); // held back for good
  }

  _destroy(err, cb) {
    this.tcp.destroy();
    cb(err);
  }
}

test('wss: a member that sends half a TLS record and stalls is hung up after --ping-timeout-s',
  { timeout: 60000 }, async (t) => {
    const room = uniqueRoom('tls-half');
    const writer = await member(room, 'writer');
    const watcher = await member(room, 'watcher');
    const tcp = net.connect({ port: gw.port, host: '127.0.0.1' });
    await new Promise((resolve, reject) => tcp.once('connect', resolve).once('error', reject));
    const gate = new RecordGate(tcp);
    const half = await rawMember(gw.port, room, 'half', { tlsOptions: { ca, socket: gate } });
    await watcher.next({ type: 'presence', event: 'join', nickname: 'half' });
    const rss = watchRss(gw.pid);

    gate.stalled = true;
    half.sendText(JSON.stringify({ type: 'message', room, message: 'never whole' }));
    const tStall = Date.now();
    await waitFor(() => gate.cutShort, { timeoutMs: 2000, what: 'half a record on the wire' });
    const acks = writer.sayMany(room, range(1, 300).map((i) => `m${i}`), { window: 5, timeoutMs: 20000 });
    const tLeave = await presenceLeave(watcher, room, 'half', PING_TIMEOUT_S * 1000 + LEAVE_MS + 5000, 'timeout');
    const tGone = await socketGone(half, 10000);
    t.diagnostic(`held ${gate.heldBytes} bytes of the record; leave ${tLeave - tStall} ms, ` +
      `cut ${tGone - tStall} ms after the stall`);
    assert.ok(tGone - tStall <= PING_TIMEOUT_S * 1000 + SLACK_MS,
      `cut ${tGone - tStall} ms after the stall (bound --ping-timeout-s ${PING_TIMEOUT_S} s)`);
    assert.ok(tLeave - tGone <= LEAVE_MS, `leave seen ${tLeave - tGone} ms after the cut`);
    assert.equal((await acks).length, 300);
    assertAllInOrder(await watcher.messages(room, 300, 20000), 300, 'writer');
    assert.equal(await watcher.quiet((f) => f.type === 'message' && f.nickname === 'half', 300), null);
    const { growMiB } = rss.stop();
    assert.ok(growMiB < RSS_BOUND_MIB, `RSS grew by ${growMiB.toFixed(1)} MiB (bound ${RSS_BOUND_MIB} MiB)`);
  });

// Helpers shared by the hostile-client suite. Everything the integration
// harness offers (servers, clients, raw WebSocket, teardown by PID) comes
// from ../integration/lib/harness.mjs; this file adds what hostile tests
// need on top: raw HTTP upgrades that report the status, HS256 tokens,
// Prometheus parsing, RSS of a process, fd-limit raising, a bystander check
// ("does the gateway still serve others?") and latency statistics.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import {
  connect, fetchMetrics, newId, uniqueRoom, gatewayBin, RawWebSocket, seqProblem, sleep, teardown, waitFor,
} from '../integration/lib/harness.mjs';
import { tcpConnect as connectTcp, upgradeRequest } from '../integration/lib/tcp.mjs';

export * from '../integration/lib/harness.mjs';

// ---------------------------------------------------------------------------
// Raw HTTP.

// Writes one WebSocket upgrade request for `path` on 127.0.0.1:port, with
// extra header lines, and resolves with {status, head, socket} as soon as
// the response head arrives (or {status: 0, error} when the connection
// ended without one). keep: true leaves the socket open (the caller
// destroys it); otherwise it is destroyed at once. localAddress picks the
// client's address (127.0.0.2 is another client IP).
export function rawUpgrade(port, {
  path = '/ws', headers = {}, protocol = 'chat.v1', host = `127.0.0.1:${port}`, keep = false, timeoutMs = 5000,
  localAddress,
} = {}) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress });
    let acc = Buffer.alloc(0);
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.removeAllListeners('data');
      if (!keep || r.status !== 101) s.destroy();
      resolve({ ...r, socket: s });
    };
    const timer = setTimeout(() => finish({ status: 0, error: 'timeout' }), timeoutMs);
    s.on('error', (e) => finish({ status: 0, error: e.message }));
    s.on('close', () => finish({ status: 0, error: 'closed' }));
    s.on('connect', () => {
      const key = crypto.randomBytes(16).toString('base64');
      s.write(upgradeRequest({ path, host, key, protocol, headers }));
    });
    s.on('data', (d) => {
      acc = Buffer.concat([acc, d]);
      const end = acc.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = acc.subarray(0, end).toString('latin1');
      finish({ status: Number(head.split(' ')[1]), head });
    });
  });
}

// Resolves once the peer ends the TCP connection (or it errors); rejects
// after timeoutMs. Resolves with the ms it took from the call. Whatever the
// peer sends meanwhile is read and dropped (a paused socket never sees the
// end of a stream that still holds unread data).
export function socketEnded(socket, timeoutMs) {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    if (socket.destroyed || socket.readyState === 'closed') return resolve(0);
    socket.resume();
    const timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs} ms`)), timeoutMs);
    const done = () => {
      clearTimeout(timer);
      resolve(Date.now() - t0);
    };
    socket.once('close', done);
    socket.once('end', done);
  });
}

// Opens a plain TCP connection to 127.0.0.1:port; errors after the connect
// are ignored (hostile tests watch for the close instead).
export async function tcpConnect(port, timeoutMs = 3000) {
  const s = await connectTcp(port, { timeoutMs });
  s.on('error', () => {});
  return s;
}

// ---------------------------------------------------------------------------
// Tokens.

export const b64url = (buf) => Buffer.from(buf).toString('base64url');

// Builds a JWT. header defaults to HS256; sign: false leaves the signature
// empty (alg none); signWith overrides the key.
export function makeJwt(claims, secret, { header = { alg: 'HS256', typ: 'JWT' }, signature } = {}) {
  const h = b64url(JSON.stringify(header));
  const p = b64url(JSON.stringify(claims));
  const sig = signature !== undefined
    ? signature
    : b64url(crypto.createHmac('sha256', secret).update(`${h}.${p}`).digest());
  return `${h}.${p}.${sig}`;
}

export const nowS = () => Math.floor(Date.now() / 1000);

// ---------------------------------------------------------------------------
// Metrics.

export const metrics = (gw) => fetchMetrics(gw.http);

// The value of chat_gateway_refused_total{reason="..."}; a series not
// (yet) exported counts as 0.
export function refused(m, reason) {
  return m.get(`chat_gateway_refused_total{reason="${reason}"}`) ?? 0;
}

// ---------------------------------------------------------------------------
// Processes.

// VmRSS of pid in bytes (null if the process is gone).
export function rssBytes(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(s);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

// The soft RLIMIT_NOFILE of a running process (Infinity for unlimited).
export function nofileOf(pid) {
  const m = /^Max open files\s+(\S+)/m.exec(fs.readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

// Checks a gateway's effective --max-connections against the configured
// value: the gateway keeps it under its open-files limit (a few hundred
// descriptors spare) and says so on stderr when it lowers it.
export function assertMaxConnections(gw, actual, configured) {
  if (actual === configured) return;
  const nofile = nofileOf(gw.pid);
  assert.ok(actual < configured && actual < nofile && actual >= nofile - 4096,
    `max_connections ${actual}: expected ${configured}, or just under the open-files limit ${nofile}`);
  assert.match(gw.stderr, /max-connections/, 'lowering --max-connections is logged');
}

// True when the binary is linked against AddressSanitizer.
export function isAsanBinary(file) {
  const r = spawnSync('ldd', [file], { encoding: 'utf8' });
  if (/libasan/.test(r.stdout || '')) return true;
  // Statically linked runtime (clang): look for the runtime's symbols.
  try {
    return fs.readFileSync(file).includes('__asan_init');
  } catch {
    return false;
  }
}

// Soft (and, as root, hard) RLIMIT_NOFILE of this process raised to at
// least `want` with prlimit(1), so that the servers spawned afterwards
// (which inherit it) and this process can hold that many sockets. Returns
// the soft limit in force afterwards.
export function raiseFdLimit(want) {
  const read = () => {
    const r = spawnSync('prlimit', ['--pid', String(process.pid), '--nofile', '--raw', '--noheadings'],
      { encoding: 'utf8' });
    const f = (r.stdout || '').trim().split(/\s+/);
    return { soft: Number(f[1]), hard: f[2] === 'unlimited' ? Infinity : Number(f[2]) };
  };
  let { soft, hard } = read();
  if (soft >= want) return soft;
  const target = process.getuid?.() === 0 ? Math.max(want, soft) : Math.min(want, hard);
  const newHard = process.getuid?.() === 0 ? Math.max(target, hard === Infinity ? target : hard) : hard;
  spawnSync('prlimit', ['--pid', String(process.pid),
    `--nofile=${target}:${newHard === Infinity ? 'unlimited' : newHard}`]);
  ({ soft } = read());
  return soft;
}

// ---------------------------------------------------------------------------
// "The gateway still serves others": a fresh pair of clients joins a fresh
// room on `url` and one message goes from one to the other within 3 s.
export async function assertServes(url, what = '') {
  const room = uniqueRoom('bystander');
  const a = await connect(url).catch((e) => {
    throw new Error(`gateway no longer accepts connections ${what}: ${e.message}`);
  });
  const b = await connect(url);
  try {
    await a.join(room, 'bystander-a');
    await b.join(room, 'bystander-b');
    const text = `still serving ${newId('s')}`;
    const ack = await a.say(room, text);
    const got = await b.next({ type: 'message', room, message: text }, 3000);
    assert.equal(got.seq, ack.seq);
  } catch (e) {
    throw new Error(`gateway stopped serving others ${what}: ${e.message}`);
  } finally {
    a.terminate();
    b.terminate();
  }
}

// ---------------------------------------------------------------------------
// Numbers.

export function percentile(values, p) {
  if (!values.length) return NaN;
  const s = [...values].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

// ---------------------------------------------------------------------------
// Connections that are done but would stay ("closing but alive",
// docs/SECURITY.md): clients that stop reading, never answer a close, trickle
// a frame.

// The gateway's bounds (gateway/gw_server.h): a close that has begun is cut
// this long after, and a message must arrive whole within this.
export const CLOSE_TIMEOUT_MS = 5000;
export const FRAME_TIMEOUT_MS = 10000;
// What a measured time may exceed a bound by: the gateway's 250 ms tick,
// metrics polling, a busy machine; doubled for an ASan build.
export const SLACK_MS = (isAsanBinary(gatewayBin) ? 2 : 1) * 1000;
// ASAN_OPTIONS for a gateway whose RSS is measured: freed memory would sit
// in ASan's quarantine (256 MiB by default) and look like growth.
export function rssAsanEnv() {
  const asan = process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:` : '';
  return { ASAN_OPTIONS: `${asan}quarantine_size_mb=16:thread_local_quarantine_size_kb=256` };
}

// Samples VmRSS of pid every 50 ms from now; stop() returns {idle, peak,
// growMiB}, idle being the first sample.
export function watchRss(pid) {
  const idle = rssBytes(pid);
  let peak = idle;
  const timer = setInterval(() => {
    const r = rssBytes(pid);
    if (r !== null && r > peak) peak = r;
  }, 50);
  timer.unref(); // a test that fails before stop() still ends
  return {
    stop() {
      clearInterval(timer);
      return { idle, peak, growMiB: (peak - idle) / 1048576 };
    },
  };
}

const rawSockets = new Set();

// Destroys every raw client made by rawMember (a paused socket would never
// see its server go and would keep the test process alive), then runs the
// harness's teardown. For after() in files that use rawMember.
export async function teardownRaw() {
  for (const ws of rawSockets) ws.destroy();
  rawSockets.clear();
  await teardown();
}

// A raw chat.v1 client that has taken its welcome and joined room as
// nickname (destroyed by teardownRaw). opts go to RawWebSocket.connect
// (tlsOptions for wss://).
export async function rawMember(port, room, nickname, opts = {}) {
  const ws = await RawWebSocket.connect(port, opts);
  rawSockets.add(ws);
  await ws.nextJson((j) => j.type === 'welcome');
  ws.sendText(JSON.stringify({ type: 'join', room, nickname, id: `join-${nickname}` }));
  await ws.nextJson((j) => j.id === `join-${nickname}` && j.type === 'joined');
  return ws;
}

// The room every closing-but-alive test starts from: a writer and a watcher
// (chat.v1 clients on wsUrl) and a raw member on rawPort that the watcher
// has seen join. Returns {writer, watcher, peer}.
export async function roomWithRawMember(wsUrl, rawPort, room, nickname, opts = {}) {
  const writer = await connect(wsUrl);
  const watcher = await connect(wsUrl);
  await writer.join(room, 'writer');
  await watcher.join(room, 'watcher');
  const peer = await rawMember(rawPort, room, nickname, opts);
  await watcher.next({ type: 'presence', event: 'join', nickname });
  return { writer, watcher, peer };
}

// Makes a raw client keep talking (an app-level ping every everyMs) until
// stop() or its socket closes, for at most maxMs. Writes after the gateway
// cut the connection are what lets a paused socket notice the cut.
export function keepTalking(ws, { everyMs = 200, maxMs = 60000 } = {}) {
  const t0 = Date.now();
  const timer = setInterval(() => {
    if (ws.socket.destroyed || Date.now() - t0 > maxMs) {
      clearInterval(timer);
      return;
    }
    ws.sendText('{"type":"ping"}');
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

// Polls metric `name` of gw every 50 ms until pred(value) holds; resolves
// with Date.now() at that moment. A series not exported yet counts as 0.
// gw is a gateway (its /metrics over http) or a function resolving with
// parsed metrics (e.g. over https).
export async function waitMetric(gw, name, pred, { timeoutMs = 10000, what = name } = {}) {
  const get = typeof gw === 'function' ? gw : () => fetchMetrics(gw.http);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = (await get()).get(name) ?? 0;
    if (pred(v)) return Date.now();
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last ${v})`);
    await sleep(50);
  }
}

// Resolves with the time a raw client got the server's close frame, which
// it does not answer (RawWebSocket.waitClose would).
export async function closeFrameSeen(ws, timeoutMs) {
  await waitFor(() => ws.closeFrame, { timeoutMs, intervalMs: 10, what: 'the server\'s close frame' });
  return Date.now();
}

// Resolves with the time a raw client's TCP connection ended; rejects
// after timeoutMs.
export async function socketGone(ws, timeoutMs) {
  let timer;
  await Promise.race([ws.ended, new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
  })]).finally(() => clearTimeout(timer));
  return Date.now();
}

// The presence leave of a closed connection: PROTOCOL.md's "within 2 s",
// with half the slack.
export const LEAVE_MS = 2000 + SLACK_MS / 2;

// Resolves with the time the watcher (a ChatClient) sees nickname's
// presence leave in room; checks its reason when given.
export async function presenceLeave(watcher, room, nickname, timeoutMs, reason) {
  const f = await watcher.next((x) => x.type === 'presence' && x.event === 'leave' && x.room === room &&
    x.nickname === nickname, timeoutMs);
  if (reason) assert.equal(f.reason, reason, `${nickname}'s leave has reason ${reason}`);
  return Date.now();
}

// Asserts that msgs (message frames of one room) are `count` messages from
// `from`, in seq order with no hole, starting at seq `first` when given.
export function assertAllInOrder(msgs, count, from, first) {
  assert.equal(msgs.length, count, `${count} messages received`);
  assert.equal(seqProblem(msgs.map((m) => m.seq), first), null, 'in seq order, no hole');
  assert.ok(msgs.every((m) => m.nickname === from), `every message is from ${from}`);
}

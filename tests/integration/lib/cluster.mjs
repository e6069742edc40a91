// Integration-test harness: starts real redis-server, chat-gateway and
// chat-worker processes on free loopback ports, waits for them to say they
// are ready (never a fixed sleep), and tears everything down by PID.
//
// Every spawned process is registered. cleanup() — call it from after() —
// sends SIGTERM, gives each process 2 s, then SIGKILL, and finally fails if
// any server's stderr holds a sanitizer report. A reaper child (reaper.cjs)
// kills leftovers even if this test process itself is SIGKILLed.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RedisClient } from './redis.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..', '..');
export const binDir = process.env.CHAT_BIN_DIR || path.join(repoRoot, 'build', 'bin');
export const webRoot = path.join(repoRoot, 'web');
export const gatewayBin = path.join(binDir, 'chat-gateway');
export const workerBin = path.join(binDir, 'chat-worker');
export const redisServerBin = process.env.CHAT_REDIS_SERVER || 'redis-server';
const verbose = !!process.env.CHAT_TEST_VERBOSE;

const SANITIZER_PATTERNS = [
  'ERROR: AddressSanitizer',
  'ERROR: LeakSanitizer',
  'runtime error:',
  'WARNING: ThreadSanitizer',
];
const STDERR_CAP = 8 * 1024 * 1024; // keep at most this much text per process

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Resolves with a TCP port that was free on 127.0.0.1 a moment ago.
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Polls fn every intervalMs until it returns a truthy value (which is
// returned) or timeoutMs passes (then throws, naming what was awaited).
export async function waitFor(fn, { timeoutMs = 10000, intervalMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastErr = null;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
        (lastErr ? ` (last error: ${lastErr.message})` : ''));
    }
    await sleep(intervalMs);
  }
}

// One plain HTTP request with no connection pooling. Resolves with
// {status, headers, body, json()}; rejects on a network error or timeout.
export function httpRequest(url, { method = 'GET', headers = {}, body = null, timeoutMs = 3000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode,
          headers: res.headers,
          body: text,
          json: () => JSON.parse(text),
        });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`HTTP ${method} ${url}: timeout`)));
    req.on('error', reject);
    if (body !== null) req.write(body);
    req.end();
  });
}

export async function httpGet(url, opts = {}) {
  return httpRequest(url, { ...opts, method: 'GET' });
}

// Parses Prometheus text into Map("name{labels}" -> number) after checking
// every line's shape.
export function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)(?:\s+\d+)?$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${JSON.stringify(line)}`);
    const v = Number(m[2] === '+Inf' ? Infinity : m[2]);
    assert.ok(!Number.isNaN(v) || m[2] === 'NaN', `bad value in ${line}`);
    out.set(m[1].replace(/\s/g, ''), v);
  }
  return out;
}

// GETs base/metrics (a gateway's or worker's `http`) and parses it.
export async function fetchMetrics(base) {
  const r = await httpGet(`${base}/metrics`);
  assert.equal(r.status, 200, `${base}/metrics answers 200`);
  return parseMetrics(r.body);
}

// ---------------------------------------------------------------------------
// Process registry and teardown.

const procs = new Set(); // every ServerProcess ever started by this test file
const tmpDirs = new Set();
let reaper = null;

function reaperWrite(line) {
  if (!reaper) {
    reaper = spawn(process.execPath, [path.join(here, 'reaper.cjs')], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    reaper.unref();
    reaper.stdin.on('error', () => {});
    reaper.stdin.unref?.();
    if (reaper.stdin._handle?.unref) reaper.stdin._handle.unref();
  }
  try {
    reaper.stdin.write(line + '\n');
  } catch {
    // the reaper is gone; the exit handler below still covers normal exits
  }
}

function killAllNow() {
  for (const p of procs) {
    if (p.running && p.child.pid) {
      try {
        process.kill(-p.child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
}
process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAllNow();
    process.exit(128 + (os.constants.signals[sig] || 1));
  });
}

export function makeTmpDir(prefix = 'chat-it-') {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.add(d);
  reaperWrite(`D${d}`);
  return d;
}

// Makes a self-signed certificate for 127.0.0.1 and localhost in dir with
// openssl (scripts/deps.sh installs it); returns {cert, key} file paths.
export function makeSelfSignedCert(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
  { encoding: 'utf8', timeout: 30000 });
  if (r.status !== 0) throw new Error(`openssl failed (apt-get install openssl): ${r.stderr || r.error}`);
  return { cert, key };
}

// A spawned server: captures stdout/stderr as text, records its exit.
export class ServerProcess {
  constructor(name, file, args, { env = {}, cwd } = {}) {
    this.name = name;
    this.file = file;
    this.args = args;
    this.stderr = '';
    this.stdout = '';
    this.exitCode = undefined; // number, or null if killed by a signal
    this.signal = null;
    const child = spawn(file, args, {
      env: { ...process.env, ...env },
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group, so a kill reaches any child it forks
    });
    this.child = child;
    this.pid = child.pid;
    // Resolves once the process has exited and its stderr has been read to
    // the end (so a sanitizer report printed at exit is captured) — or 500
    // ms after the exit if a grandchild still holds the pipes, which are
    // then closed on our side so they cannot keep this test process alive.
    this.exited = new Promise((resolve) => {
      let stdioClosed = false;
      child.on('close', () => {
        stdioClosed = true;
      });
      child.on('exit', (code, signal) => {
        this.exitCode = code;
        this.signal = signal;
        if (this.pid) reaperWrite(`-${this.pid}`);
        const done = () => resolve({ code, signal });
        if (stdioClosed) return done();
        const timer = setTimeout(() => {
          child.stdout.destroy();
          child.stderr.destroy();
          done();
        }, 500);
        child.once('close', () => {
          clearTimeout(timer);
          done();
        });
      });
      child.on('error', (err) => {
        this.spawnError = err;
        this.exitCode = this.exitCode ?? -1;
        resolve({ code: -1, signal: null, error: err });
      });
    });
    const append = (key, prefix) => (d) => {
      const s = d.toString('utf8');
      if (this[key].length < STDERR_CAP) this[key] += s;
      if (verbose) process.stderr.write(s.replace(/^/gm, `[${this.name}${prefix}] `));
    };
    child.stdout.on('data', append('stdout', ':out'));
    child.stderr.on('data', append('stderr', ''));
    procs.add(this);
    if (child.pid) reaperWrite(`+${child.pid}`);
  }

  get running() {
    return this.exitCode === undefined;
  }

  // Signals the process (and, with group: true, its whole process group).
  kill(sig = 'SIGTERM', { group = false } = {}) {
    if (this.running && this.child.pid) {
      try {
        process.kill(group ? -this.child.pid : this.child.pid, sig);
      } catch {
        // already gone
      }
    }
  }

  // Resolves with {code, signal} once the process has exited; rejects if it
  // has not within timeoutMs.
  async waitExit(timeoutMs = 10000) {
    let timer;
    const t = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.name} (pid ${this.pid}) did not exit within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, t]);
    } finally {
      clearTimeout(timer);
    }
  }

  // SIGTERM, then SIGKILL after graceMs. SIGCONT too: a test that failed
  // while the process was paused (SIGSTOP) still gets a clean exit.
  async stop(graceMs = 2000) {
    if (!this.running) return this.exited;
    this.kill('SIGTERM');
    this.kill('SIGCONT');
    try {
      return await this.waitExit(graceMs);
    } catch {
      this.neededSigkill = true;
      process.stderr.write(`note: ${this.name} (pid ${this.pid}) ignored SIGTERM for ${graceMs} ms; sending SIGKILL\n`);
      this.kill('SIGKILL', { group: true });
      return this.waitExit(5000);
    } finally {
      // Anything the server forked goes with it.
      try {
        process.kill(-this.child.pid, 'SIGKILL');
      } catch {
        // no such process group left
      }
    }
  }

  describe() {
    return `${this.name} (pid ${this.pid}): ${this.file} ${this.args.join(' ')}`;
  }
}

// Returns the sanitizer reports found in the captured stderr of every
// process started so far, as [{name, report}].
export function sanitizerReports() {
  const out = [];
  for (const p of procs) {
    const i = Math.min(...SANITIZER_PATTERNS.map((pat) => {
      const k = p.stderr.indexOf(pat);
      return k < 0 ? Infinity : k;
    }));
    if (i !== Infinity) {
      const start = p.stderr.lastIndexOf('\n', i) + 1;
      out.push({ name: p.describe(), report: p.stderr.slice(start, start + 20000) });
    }
  }
  return out;
}

// Stops every registered process (SIGTERM, 2 s grace, SIGKILL), removes the
// temporary directories, then throws if any server printed a sanitizer
// report. Call it from after(); calling it twice is harmless.
export async function cleanup() {
  // Gateways and workers first, while Redis still answers, so each shuts
  // down along its normal path; then Redis.
  const isRedis = (p) => p.name.startsWith('redis:');
  await Promise.all([...procs].filter((p) => !isRedis(p)).map((p) => p.stop(2000).catch(() => {})));
  await Promise.all([...procs].filter(isRedis).map((p) => p.stop(2000).catch(() => {})));
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
  tmpDirs.clear();
  if (reaper) {
    reaper.stdin.end();
    reaper = null;
  }
  const reports = sanitizerReports();
  if (reports.length) {
    for (const r of reports) process.stderr.write(`\n==== sanitizer report from ${r.name}\n${r.report}\n`);
    throw new Error(`sanitizer report in the stderr of: ${reports.map((r) => r.name).join('; ')}`);
  }
}

function earlyExitError(p, what) {
  return new Error(`${what}: ${p.describe()} exited (code ${p.exitCode}, signal ${p.signal}) ` +
    `before it was ready.\n--- stderr ---\n${p.stderr.slice(-4000)}`);
}

// Polls an HTTP URL every 50 ms until it answers `status`, failing early if
// proc exits.
export async function waitHttpStatus(url, status, { timeoutMs = 10000, proc = null } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (;;) {
    if (proc && !proc.running) throw earlyExitError(proc, `waiting for ${url} to answer ${status}`);
    try {
      const r = await httpGet(url, { timeoutMs: 1000 });
      if (r.status === status) return r;
      last = `status ${r.status}`;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${url} to answer ${status} (last: ${last})` +
        (proc ? `\n--- ${proc.name} stderr ---\n${proc.stderr.slice(-4000)}` : ''));
    }
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------
// Redis.

// Starts redis-server on a free port (or `port`), waits until it answers
// PING. With persist: true it keeps an append-only file in a temporary data
// dir, so restart() brings the same state back on the same port.
export async function startRedis({ port, persist = false, extraArgs = [] } = {}) {
  port = port || (await freePort());
  const dir = makeTmpDir('chat-it-redis-');
  const args = [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--protected-mode', 'no',
    '--dir', dir, '--daemonize', 'no',
    ...(persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
    ...extraArgs,
  ];
  const r = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    proc: null,
    get pid() {
      return this.proc?.pid;
    },
    async start() {
      this.proc = new ServerProcess(`redis:${port}`, redisServerBin, args);
      await waitRedisPing(port, this.proc);
      return this;
    },
    // SIGTERM: Redis flushes its AOF and exits.
    async stop() {
      await this.proc.stop(5000);
    },
    kill(sig = 'SIGKILL') {
      this.proc.kill(sig);
    },
    async restart() {
      if (this.proc?.running) await this.stop();
      return this.start();
    },
    // A fresh client connection; the caller closes it.
    client() {
      return RedisClient.connect(port);
    },
    async command(...a) {
      const c = await RedisClient.connect(port);
      try {
        return await c.command(...a);
      } finally {
        c.close();
      }
    },
  };
  return r.start();
}

async function waitRedisPing(port, proc, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (!proc.running) throw earlyExitError(proc, 'starting redis-server');
    try {
      const c = await RedisClient.connect(port, { timeoutMs: 500 });
      try {
        const pong = await Promise.race([c.command('PING'), sleep(1000).then(() => 'timeout')]);
        if (pong === 'PONG') return;
        last = String(pong);
      } finally {
        c.close();
      }
    } catch (e) {
      last = e.message;
    }
    if (Date.now() >= deadline) {
      throw new Error(`redis on port ${port} did not answer PING within ${timeoutMs} ms (${last})\n${proc.stderr}`);
    }
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------
// Gateways and workers.

function assertBinary(file) {
  if (!fs.existsSync(file)) {
    throw new Error(`${file} does not exist: build first (cmake --build build) or set CHAT_BIN_DIR`);
  }
}

const LISTEN_FAILURE = /address already in use|EADDRINUSE|cannot bind|could not bind|bind\(\)|failed to listen|listen failed/i;

// Spawns a server that listens on a fresh free port and waits for its
// /readyz to answer 200 (unless waitReady is false). Retries on a new port
// if the first one was taken meanwhile.
async function startListening(name, file, argsFor, { env, waitReady = true, readyTimeoutMs = 10000 }) {
  assertBinary(file);
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const p = new ServerProcess(`${name}:${port}`, file, argsFor(port), { env });
    p.port = port;
    p.http = `http://127.0.0.1:${port}`;
    if (!waitReady) {
      await waitHttpStatusAny(p.http + '/healthz', p, readyTimeoutMs);
      return p;
    }
    try {
      await waitHttpStatus(p.http + '/readyz', 200, { timeoutMs: readyTimeoutMs, proc: p });
      return p;
    } catch (e) {
      if (!p.running && attempt < 2 && LISTEN_FAILURE.test(p.stderr)) continue;
      await p.stop(500);
      throw e;
    }
  }
}

// Waits until the server answers anything on url (it is listening).
async function waitHttpStatusAny(url, proc, timeoutMs) {
  await waitFor(async () => {
    if (!proc.running) throw earlyExitError(proc, `waiting for ${url}`);
    await httpGet(url, { timeoutMs: 1000 });
    return true;
  }, { timeoutMs, what: `${url} to answer` }).catch((e) => {
    if (!proc.running) throw earlyExitError(proc, `waiting for ${url}`);
    throw e;
  });
}

let gatewayCounter = 0;
let workerCounter = 0;

// Starts a chat-gateway and waits for GET /readyz 200. Resolves with the
// ServerProcess, which also carries port, url (the ws:// URL of /ws), http.
// redisCluster: seed nodes (--redis-cluster) instead of redisUrl.
export async function startGateway({ redisUrl, redisCluster, id, extraArgs = [], env = {}, waitReady = true } = {}) {
  id = id || `gw${++gatewayCounter}`;
  const redis = redisCluster ? ['--redis-cluster', redisCluster] : ['--redis', redisUrl];
  const p = await startListening(`gateway ${id}`, gatewayBin, (port) => [
    '--listen', `127.0.0.1:${port}`, ...redis, '--id', id, '--web-root', webRoot,
    ...extraArgs,
  ], { env, waitReady });
  p.id = id;
  p.url = `ws://127.0.0.1:${p.port}/ws`;
  return p;
}

// Starts a chat-worker and waits for its GET /readyz 200.
// redisCluster: seed nodes (--redis-cluster) instead of redisUrl.
export async function startWorker({ redisUrl, redisCluster, id, extraArgs = [], env = {}, waitReady = true } = {}) {
  id = id || `w${++workerCounter}`;
  const redis = redisCluster ? ['--redis-cluster', redisCluster] : ['--redis', redisUrl];
  const p = await startListening(`worker ${id}`, workerBin, (port) => [
    ...redis, '--id', id, '--listen', `127.0.0.1:${port}`, ...extraArgs,
  ], { env, waitReady });
  p.id = id;
  return p;
}

// Starts Redis, `gateways` gateways and `workers` workers. gatewayArgs and
// workerArgs are passed to every one of them.
export async function startCluster({
  gateways = 2, workers = 1, persist = false, gatewayArgs = [], workerArgs = [], env = {},
} = {}) {
  const redis = await startRedis({ persist });
  const tag = Math.random().toString(36).slice(2, 6);
  const gws = await Promise.all(Array.from({ length: gateways }, (_, i) =>
    startGateway({ redisUrl: redis.url, id: `gw${i + 1}-${tag}`, extraArgs: gatewayArgs, env })));
  const wks = await Promise.all(Array.from({ length: workers }, (_, i) =>
    startWorker({ redisUrl: redis.url, id: `w${i + 1}-${tag}`, extraArgs: workerArgs, env })));
  return { redis, gateways: gws, workers: wks };
}

// Runs a binary to completion (for --help and bad-flag checks).
export function runToExit(file, args, { timeoutMs = 10000, env = {} } = {}) {
  assertBinary(file);
  const r = spawnSync(file, args, {
    env: { ...process.env, ...env },
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    encoding: 'utf8',
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout || '', stderr: r.stderr || '', error: r.error };
}

// A room name unique to this run, so tests never see each other's rooms.
let roomCounter = 0;
export function uniqueRoom(prefix = 'room') {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++roomCounter}`;
}

// Helpers for the deploy tests, on top of the integration harness
// (../../integration/lib): haproxy on loopback made from the shared
// configuration (deploy/haproxy/local-cfg.sh), its runtime API, gateways on
// a chosen port (to restart one where haproxy expects it), and `Member`, a
// chat client that keeps sending, follows `reconnect`/1001 through haproxy,
// re-joins with `since` + `epoch`, and checks every seq it is given.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import {
  ServerProcess, gatewayBin, webRoot, repoRoot, makeTmpDir, waitHttpStatus, waitFor, sleep, httpGet,
} from '../../integration/lib/harness.mjs';

export { repoRoot };
export const haproxyBin = process.env.CHAT_HAPROXY || '/usr/sbin/haproxy';
export const sharedCfg = path.join(repoRoot, 'deploy', 'haproxy', 'haproxy.cfg');
export const localCfgScript = path.join(repoRoot, 'deploy', 'haproxy', 'local-cfg.sh');

// Runs deploy/haproxy/local-cfg.sh; returns the configuration text.
export function localCfg({ bind, servers, statsSocket }) {
  const args = [localCfgScript, '--bind', bind];
  if (statsSocket) args.push('--stats-socket', statsSocket);
  const r = spawnSync('bash', [...args, ...servers], { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) throw new Error(`local-cfg.sh failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

// `haproxy -c -f file`: resolves {ok, output}.
export function haproxyCheck(file) {
  const r = spawnSync(haproxyBin, ['-c', '-f', file], { encoding: 'utf8', timeout: 10000 });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}`.trim(), status: r.status };
}

// The arguments of the shared configuration's default-server line, so a
// server added at run time (`add server`, which does not inherit
// default-server) gets the same checks.
export function defaultServerArgs(cfgText = fs.readFileSync(sharedCfg, 'utf8')) {
  const line = cfgText.split('\n').find((l) => /^\s*default-server\s/.test(l));
  if (!line) throw new Error('no default-server line in the haproxy configuration');
  return line.replace(/#.*/, '').trim().split(/\s+/).slice(1);
}

// One command on haproxy's runtime API (a unix stats socket); resolves with
// the answer text.
export function haproxyCommand(socketPath, cmd, timeoutMs = 3000) {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socketPath);
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`haproxy runtime API: "${cmd}" timed out`));
    }, timeoutMs);
    s.setEncoding('utf8');
    s.on('connect', () => s.write(`${cmd}\n`));
    s.on('data', (d) => {
      out += d;
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
  });
}

// `show stat` as {svname: {status, scur, ...}} for one backend.
export async function haproxyServers(socketPath, backend = 'gateways') {
  const text = await haproxyCommand(socketPath, 'show stat');
  const lines = text.split('\n').filter(Boolean);
  const head = lines[0].replace(/^# /, '').split(',');
  const out = {};
  for (const l of lines.slice(1)) {
    const f = l.split(',');
    const row = Object.fromEntries(head.map((h, i) => [h, f[i]]));
    if (row.pxname === backend && row.svname !== 'BACKEND') out[row.svname] = row;
  }
  return out;
}

// Waits until haproxy reports server `name` with a status starting with
// `status` ('UP', 'DOWN'); resolves with the time that took, in ms.
export async function waitServerStatus(socketPath, name, status, timeoutMs = 10000) {
  const t0 = Date.now();
  await waitFor(async () => {
    const s = (await haproxyServers(socketPath))[name];
    return s && s.status.startsWith(status);
  }, { timeoutMs, intervalMs: 50, what: `haproxy to report ${name} ${status}` });
  return Date.now() - t0;
}

// Starts haproxy (master-worker, foreground) on loopback in front of the
// given gateway addresses, with the shared settings and a runtime API
// socket. Resolves once its frontend answers /healthz through a gateway.
export async function startHaproxy({ port, servers }) {
  const dir = makeTmpDir('chat-deploy-haproxy-');
  const socket = path.join(dir, 'admin.sock');
  const cfgFile = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(cfgFile, localCfg({ bind: `127.0.0.1:${port}`, servers, statsSocket: socket }));
  const proc = new ServerProcess(`haproxy:${port}`, haproxyBin, ['-W', '-db', '-f', cfgFile]);
  await waitHttpStatus(`http://127.0.0.1:${port}/healthz`, 200, { timeoutMs: 10000, proc });
  await waitFor(() => fs.existsSync(socket), { timeoutMs: 5000, what: 'the haproxy stats socket' });
  return { proc, port, socket, cfgFile, url: `ws://127.0.0.1:${port}/ws`, http: `http://127.0.0.1:${port}` };
}

// Starts a chat-gateway listening on `port` (the harness picks free ports;
// a restarted gateway must come back where haproxy expects it) and waits
// for /readyz 200. Resolves with the ServerProcess (port, id, http set).
export async function startGatewayOn(port, { redisUrl, id, extraArgs = [] }) {
  const p = new ServerProcess(`gateway ${id}:${port}`, gatewayBin, [
    '--listen', `127.0.0.1:${port}`, '--redis', redisUrl, '--id', id, '--web-root', webRoot, ...extraArgs,
  ]);
  p.port = port;
  p.id = id;
  p.http = `http://127.0.0.1:${port}`;
  await waitHttpStatus(`${p.http}/readyz`, 200, { timeoutMs: 10000, proc: p });
  return p;
}

// The value of one Prometheus metric (no labels) from a /metrics URL.
export async function metric(httpBase, name) {
  const r = await httpGet(`${httpBase}/metrics`, { timeoutMs: 2000 });
  const m = r.body.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : undefined;
}

// ---------------------------------------------------------------------------

// A chat member that lives through gateway restarts. It joins `room` as
// `nickname` through `url`, then (between startSending and stopSending)
// sends one message every `everyMs`. On `reconnect` + close 1001 it waits
// after_ms, connects again through `url` and re-joins with since + epoch.
// Every message frame must carry the seq after the last one it saw: a seq
// at or below it is a duplicate, above it a gap; both are recorded in
// `problems`, as is any error frame or any other close than the planned
// 1001. `delivered` holds the seqs it got after its first join.
export class Member {
  constructor({ url, room, nickname, everyMs = 100 }) {
    Object.assign(this, { url, room, nickname, everyMs });
    this.problems = [];
    this.delivered = new Set();
    this.acked = new Map(); // message id -> seq
    this.pending = new Map(); // message id -> sent at (ms)
    this.unacked = 0; // sent, connection closed before its ack came
    this.baseline = null; // the room's seq at the first join
    this.lastSeq = null;
    this.epoch = null;
    this.gateways = []; // gateway id of each connection, in order
    this.plannedReconnects = 0;
    this.connectFailures = 0;
    this.sent = 0;
    this.state = 'idle';
    this.stopped = false;
    this.counter = 0;
    this.joinWaiters = [];
  }

  problem(what) {
    this.problems.push(`${this.nickname}@${this.room}: ${what}`);
  }

  // Connects and joins; resolves once joined.
  start() {
    this.connect();
    return this.joined(10000);
  }

  // Resolves when the member is (again) joined; rejects after timeoutMs.
  joined(timeoutMs = 10000) {
    if (this.state === 'joined') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const w = { resolve, timer: null };
      w.timer = setTimeout(() => {
        this.joinWaiters.splice(this.joinWaiters.indexOf(w), 1);
        reject(new Error(`${this.nickname}: not joined within ${timeoutMs} ms (state ${this.state}); ` +
          `problems: ${this.problems.join('; ')}`));
      }, timeoutMs);
      this.joinWaiters.push(w);
    });
  }

  connect() {
    if (this.stopped) return;
    this.state = 'connecting';
    this.reconnectFrame = null;
    this.opened = false;
    const ws = new WebSocket(this.url, ['chat.v1'], { perMessageDeflate: false, handshakeTimeout: 5000 });
    this.ws = ws;
    ws.on('open', () => {
      this.opened = true;
    });
    ws.on('message', (data) => this.onFrame(data.toString('utf8')));
    ws.on('error', (e) => {
      this.lastError = e.message;
    });
    ws.on('close', (code) => this.onClose(code));
  }

  onFrame(text) {
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      this.problem(`unparsable frame ${text.slice(0, 100)}`);
      return;
    }
    switch (f.type) {
      case 'welcome':
        this.gateways.push(f.gateway);
        this.sendJoin();
        break;
      case 'joined':
        this.onJoined(f);
        break;
      case 'message':
        if (f.room === this.room) this.deliver(f.seq);
        break;
      case 'ack':
        if (this.pending.delete(f.id)) this.acked.set(f.id, f.seq);
        break;
      case 'reconnect':
        this.reconnectFrame = f;
        break;
      case 'presence':
      case 'pong':
        break;
      default:
        this.problem(`unexpected frame ${text.slice(0, 200)}`);
    }
  }

  sendJoin() {
    const join = { type: 'join', room: this.room, nickname: this.nickname, id: `join-${++this.counter}` };
    if (this.lastSeq !== null) Object.assign(join, { since: this.lastSeq, epoch: this.epoch, history: 500 });
    else join.history = 0;
    this.ws.send(JSON.stringify(join));
  }

  onJoined(f) {
    if (this.lastSeq === null) {
      this.baseline = f.seq;
      this.lastSeq = f.seq;
      this.epoch = f.epoch;
    } else {
      if (f.epoch !== this.epoch) this.problem(`epoch changed ${this.epoch} -> ${f.epoch}`);
      if (f.recovered !== true) this.problem(`re-join since ${this.lastSeq}: recovered ${f.recovered}`);
      for (const m of f.history || []) this.deliver(m.seq);
    }
    this.state = 'joined';
    for (const w of this.joinWaiters.splice(0)) {
      clearTimeout(w.timer);
      w.resolve();
    }
  }

  deliver(seq) {
    if (this.lastSeq === null) return; // before the first joined: not ours to check
    if (seq <= this.lastSeq) {
      this.problem(`duplicate seq ${seq} (last ${this.lastSeq})`);
      return;
    }
    if (seq !== this.lastSeq + 1) this.problem(`gap: seq ${seq} after ${this.lastSeq}`);
    this.lastSeq = seq;
    this.delivered.add(seq);
  }

  onClose(code) {
    const wasOpen = this.opened;
    this.state = 'closed';
    this.unacked += this.pending.size;
    this.pending.clear();
    if (this.stopped) return;
    let delay;
    if (!wasOpen) {
      this.connectFailures++;
      this.problem(`connection through haproxy failed (${this.lastError || code})`);
      delay = 200;
    } else if (code === 1001 && this.reconnectFrame) {
      this.plannedReconnects++;
      delay = this.reconnectFrame.after_ms;
    } else {
      this.problem(`closed with ${code}${code === 1001 ? ' without a reconnect frame' : ''}`);
      delay = 200;
    }
    this.timer = setTimeout(() => this.connect(), delay);
  }

  startSending() {
    this.sendTimer = setInterval(() => {
      if (this.state !== 'joined' || this.ws.readyState !== WebSocket.OPEN) return;
      const id = `${this.nickname}-m${++this.counter}`;
      this.pending.set(id, Date.now());
      this.sent++;
      this.ws.send(JSON.stringify({ type: 'message', room: this.room, message: `${this.nickname} ${this.counter}`, id }));
    }, this.everyMs);
  }

  stopSending() {
    clearInterval(this.sendTimer);
  }

  // Resolves once no sent message waits for its ack (or timeoutMs passes).
  async settle(timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (this.pending.size && Date.now() < deadline) await sleep(20);
  }

  stop() {
    this.stopped = true;
    this.stopSending();
    clearTimeout(this.timer);
    if (this.ws && this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate();
  }
}

// Checks a set of members after traffic stopped: waits (bounded) until each
// has seen its room's last seq (read from Redis), then returns a list of
// problems: each member's own, and any acked seq of its room after its
// first join that it never got. An empty list means nothing was lost,
// duplicated or out of order.
export async function verifyMembers(members, redis, { timeoutMs = 10000 } = {}) {
  const rooms = [...new Set(members.map((m) => m.room))];
  const finalSeq = {};
  for (const r of rooms) finalSeq[r] = Number(await redis.command('HGET', `chat:{${r}}:meta`, 'seq'));
  await waitFor(() => members.every((m) => m.lastSeq >= finalSeq[m.room]), {
    timeoutMs, what: 'every member to reach its room\'s last seq',
  }).catch(() => {});
  const problems = members.flatMap((m) => m.problems);
  for (const m of members) {
    if (m.lastSeq !== finalSeq[m.room]) {
      problems.push(`${m.nickname}@${m.room}: last seq ${m.lastSeq}, room is at ${finalSeq[m.room]}`);
    }
    const ackedInRoom = members.filter((o) => o.room === m.room).flatMap((o) => [...o.acked.values()]);
    const missing = ackedInRoom.filter((s) => s > m.baseline && !m.delivered.has(s));
    if (missing.length) problems.push(`${m.nickname}@${m.room}: ${missing.length} acked messages never delivered (${missing.slice(0, 5)})`);
    if (m.delivered.size !== m.lastSeq - m.baseline) {
      problems.push(`${m.nickname}@${m.room}: ${m.delivered.size} delivered for seqs ${m.baseline + 1}..${m.lastSeq}`);
    }
  }
  return { problems, finalSeq };
}

// Counts members per gateway id (of their current connection).
export function spread(members) {
  const out = {};
  for (const m of members) {
    const g = m.gateways[m.gateways.length - 1];
    out[g] = (out[g] || 0) + 1;
  }
  return out;
}

// A bounded measurement of one gateway, for deploy/README.md's sizing
// numbers (not a test; tools/bench is the full load tool). Starts Redis,
// one worker and one gateway on loopback (the integration harness), then:
//
//  1. holds: opens CONNS WebSocket connections (chat.v1), each joining one
//     of ROOMS rooms, and reads the gateway's RSS (VmRSS in
//     /proc/<pid>/status) and Redis's used_memory before and after;
//  2. fan-out: SENDERS members (one per room) send as fast as their window
//     of unacknowledged messages allows, for SECONDS; reports acked
//     messages/s and frames written to clients/s (the gateway's
//     chat_gateway_publishes_total and chat_gateway_frames_out_total), and
//     the CPU the gateway and Redis used (utime+stime from /proc);
//  3. publish: the same with one member per room (no fan-out), which
//     measures the publish path itself (one EVALSHA per message).
//
//   node tests/deploy/bench/capacity.mjs [CONNS] [ROOMS] [SENDERS] [SECONDS]
//   (defaults 10000 100 20 10; CHAT_BIN_DIR as for the tests)
//
// Client and servers share the machine: the numbers are lower bounds of
// what a gateway does with a core to itself.
import fs from 'node:fs';
import os from 'node:os';
import WebSocket from 'ws';
import {
  startRedis, startWorker, startGateway, teardown, httpGet, sleep,
} from '../../integration/lib/harness.mjs';

const [CONNS, ROOMS, SENDERS, SECONDS] = [10000, 100, 20, 10].map((d, i) => Number(process.argv[2 + i] || d));
const WINDOW = 20;
const hardDeadline = setTimeout(() => {
  console.error('capacity.mjs: over its 10-minute limit, giving up');
  process.exit(3);
}, 10 * 60000);
hardDeadline.unref();

const kib = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const cpuTicks = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const p = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(p[11]) + Number(p[12]); // utime + stime, in clock ticks (100/s)
};
async function metrics(http) {
  const body = (await httpGet(`${http}/metrics`, { timeoutMs: 5000 })).body;
  return (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(body)?.[1]);
}

function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['chat.v1'], { perMessageDeflate: false, handshakeTimeout: 10000 });
    ws.frames = 0;
    ws.waiters = new Map();
    ws.on('message', (d) => {
      ws.frames++;
      // Only replies we wait for are parsed: ack/joined carry "id".
      if (ws.waiters.size && d.includes('"id"')) {
        const f = JSON.parse(d);
        const w = ws.waiters.get(f.id);
        if (w) {
          ws.waiters.delete(f.id);
          w(f);
        }
      }
    });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}
function request(ws, frame, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no reply to ${frame.type} ${frame.id}`)), timeoutMs);
    ws.waiters.set(frame.id, (f) => {
      clearTimeout(t);
      resolve(f);
    });
    ws.send(JSON.stringify(frame));
  });
}

async function blast(senders, seconds) {
  let acked = 0;
  let n = 0;
  const end = Date.now() + seconds * 1000;
  await Promise.all(senders.map(async ({ ws, room }) => {
    const inflight = new Set();
    while (Date.now() < end) {
      while (inflight.size < WINDOW) {
        const id = `m${++n}`;
        const p = request(ws, { type: 'message', room, message: `load ${n} ${'x'.repeat(64)}`, id })
          .then((f) => {
            if (f.type === 'ack') acked++;
            inflight.delete(p);
          }, () => inflight.delete(p));
        inflight.add(p);
      }
      await Promise.race(inflight);
    }
    await Promise.allSettled([...inflight]);
  }));
  return acked;
}

async function measure(label, gw, redis, fn) {
  const m0 = await metrics(gw.http);
  const g0 = cpuTicks(gw.pid);
  const r0 = cpuTicks(redis.pid);
  const t0 = Date.now();
  const acked = await fn();
  const secs = (Date.now() - t0) / 1000;
  const m1 = await metrics(gw.http);
  const out = {
    label,
    seconds: +secs.toFixed(1),
    acked_per_s: Math.round(acked / secs),
    publishes_per_s: Math.round((m1('chat_gateway_publishes_total') - m0('chat_gateway_publishes_total')) / secs),
    frames_out_per_s: Math.round((m1('chat_gateway_frames_out_total') - m0('chat_gateway_frames_out_total')) / secs),
    gateway_cpu_pct: Math.round((cpuTicks(gw.pid) - g0) / secs),
    redis_cpu_pct: Math.round((cpuTicks(redis.pid) - r0) / secs),
  };
  console.log(JSON.stringify(out));
  return out;
}

async function main() {
  console.log(`# ${os.cpus().length} cpus (${os.cpus()[0].model}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ` +
    `node ${process.version}; conns=${CONNS} rooms=${ROOMS} senders=${SENDERS} seconds=${SECONDS}`);
  const redis = await startRedis();
  await startWorker({ redisUrl: redis.url });
  const gw = await startGateway({ redisUrl: redis.url,
    extraArgs: ['--rate-per-sec', '1000000', '--rate-burst', '1000000', '--joins-per-sec', '1000000'] });
  const usedMemory = async () => Number(/used_memory:(\d+)/.exec(await redis.command('INFO', 'memory'))[1]);
  await sleep(500);
  const rss0 = kib(gw.pid);
  const redis0 = await usedMemory();

  // 1. Hold CONNS connections, each in one room.
  const socks = [];
  const t0 = Date.now();
  for (let i = 0; i < CONNS; i += 200) {
    const batch = await Promise.all(Array.from({ length: Math.min(200, CONNS - i) }, async (_, k) => {
      const ws = await open(gw.url);
      const j = i + k;
      ws.room = `cap-${process.pid}-${j % ROOMS}`;
      const f = await request(ws, { type: 'join', room: ws.room, nickname: `u${j}`, history: 0, id: `j${j}` });
      if (f.type !== 'joined') throw new Error(`join: ${JSON.stringify(f)}`);
      return ws;
    }));
    socks.push(...batch);
  }
  const connectSecs = (Date.now() - t0) / 1000;
  await sleep(2000); // presence fan-out of the joins settles
  const m = await metrics(gw.http);
  const rss1 = kib(gw.pid);
  const redis1 = await usedMemory();
  console.log(JSON.stringify({
    label: 'hold', connections: m('chat_gateway_connections'), rooms: m('chat_gateway_rooms'),
    connect_and_join_per_s: Math.round(CONNS / connectSecs),
    gateway_rss_mib_before: +(rss0 / 1024).toFixed(1), gateway_rss_mib_after: +(rss1 / 1024).toFixed(1),
    gateway_kib_per_connection: +((rss1 - rss0) / CONNS).toFixed(1),
    redis_bytes_per_member: Math.round((redis1 - redis0) / CONNS),
  }));

  // 2. Fan-out: one sender per room, every member of the room receives.
  const byRoom = new Map();
  for (const ws of socks) if (!byRoom.has(ws.room)) byRoom.set(ws.room, ws);
  const senders = [...byRoom.entries()].slice(0, SENDERS).map(([room, ws]) => ({ room, ws }));
  await measure(`fanout: ${SENDERS} senders, rooms of ${Math.round(CONNS / ROOMS)}`, gw, redis,
    () => blast(senders, SECONDS));

  // 3. Publish path: rooms with one member.
  for (const ws of socks) ws.terminate();
  await sleep(2000);
  const solo = [];
  for (let i = 0; i < SENDERS; i++) {
    const ws = await open(gw.url);
    const room = `solo-${process.pid}-${i}`;
    await request(ws, { type: 'join', room, nickname: `s${i}`, history: 0, id: `sj${i}` });
    solo.push({ ws, room });
  }
  await measure(`publish: ${SENDERS} senders, rooms of 1`, gw, redis, () => blast(solo, SECONDS));
  for (const { ws } of solo) ws.terminate();
}

main().then(() => teardown(), async (e) => {
  console.error(e);
  await teardown();
  process.exitCode = 1;
});

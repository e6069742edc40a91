// Smoke test of chat-bench (tools/bench/): each mode for a couple of seconds
// against a real cluster (Redis, two gateways, one worker), and once against
// a scripted server that sends what our gateway never does (fragments with
// a ping between them, 64-bit lengths, a server-initiated close). No
// performance assertions: only that every run ends by itself with exit 0
// and a JSON line whose checks hold (loss 0, duplicates 0 for fanout).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { startCluster, teardown } from '../integration/lib/harness.mjs';
import { benchBin, runBench } from './lib.mjs';

// A page of 10 members: storm's check of the member lists reads several.
const GATEWAY_ARGS = ['--rate-per-sec', '1000000', '--rate-burst', '1000000', '--members-page', '10'];
const SANITIZER = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:/;

let cluster;
let urls;
let pids;

before(async () => {
  assert.ok(fs.existsSync(benchBin), `${benchBin} does not exist: build first`);
  cluster = await startCluster({ gateways: 2, workers: 1, gatewayArgs: GATEWAY_ARGS });
  urls = cluster.gateways.map((g) => g.url).join(',');
  pids = [
    ...cluster.gateways.map((g, i) => `gw${i + 1}=${g.pid}`),
    `worker=${cluster.workers[0].pid}`,
    `redis=${cluster.redis.pid}`,
  ].join(',');
});
after(teardown);

function assertRun(r, what) {
  const context = `${what}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr.slice(-3000)}`;
  assert.doesNotMatch(r.stderr, SANITIZER, `sanitizer report from chat-bench: ${context}`);
  assert.ok(r.json, `the last line of stdout is not JSON: ${context}`);
  assert.equal(r.code, 0, `exit status ${r.code} (${r.json?.problem}): ${context}`);
  assert.equal(r.json.ok, true, context);
  return r.json;
}

test('--help lists the modes; bad flags exit 2 with a reason', async () => {
  const help = await runBench(['--help']);
  assert.equal(help.code, 0);
  for (const mode of ['fanout', 'idle', 'connect', 'storm']) assert.match(help.stdout, new RegExp(mode));
  const bad = await runBench(['fanout', '--rate', '-3']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--rate must be/);
  const misplaced = await runBench(['idle', '--churn-per-sec', '5']);
  assert.equal(misplaced.code, 2);
  assert.match(misplaced.stderr, /--churn-per-sec goes with fanout/);
  const none = await runBench([]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /MODE/);
});

test('fanout: every acked message reaches every member, no duplicates', async () => {
  const r = await runBench(['fanout', '--url', urls, '--clients', '40', '--rooms', '4',
    '--senders', '4', '--rate', '100', '--duration', '2', '--pids', pids, '--quiet']);
  const j = assertRun(r, 'fanout');
  assert.equal(j.loss, 0);
  assert.equal(j.duplicates, 0);
  assert.equal(j.seq_gaps, 0);
  assert.ok(j.acked > 0 && j.received === j.expected && j.expected === j.acked * 10, JSON.stringify(j));
  assert.ok(j.latency_us.count === j.received && j.latency_us.p50 > 0);
  assert.equal(j.servers.length, 4);
  assert.ok(j.servers.every((s) => s.alive && s.rss_kib > 0));
});

test('fanout --churn-per-sec: members join and leave while the others chat', async () => {
  const r = await runBench(['fanout', '--url', urls, '--clients', '30', '--rooms', '1',
    '--senders', '2', '--rate', '20', '--duration', '2', '--presence', 'count',
    '--churn-per-sec', '20', '--churn-hold', '0.3', '--quiet']);
  const j = assertRun(r, 'fanout with churn');
  assert.equal(j.loss, 0);
  assert.equal(j.duplicates, 0);
  assert.equal(j.seq_gaps, 0);
  assert.equal(j.latency_us.count, j.received, 'latency counts the measured clients only');
  const c = j.churn;
  assert.ok(c.joined >= 20 && c.left >= 10 && c.started >= c.joined, JSON.stringify(c));
  assert.equal(c.failed, 0);
  assert.equal(c.duplicates, 0);
  assert.equal(c.seq_gaps, 0);
  assert.ok(j.connects_ok >= 30 + c.joined, JSON.stringify(j));
});

test('idle: connections are held for the whole duration', async () => {
  const r = await runBench(['idle', '--url', urls, '--clients', '200', '--rooms', '20',
    '--duration', '1', '--pids', `gw1=${cluster.gateways[0].pid}`, '--quiet']);
  const j = assertRun(r, 'idle');
  assert.equal(j.established, 200);
  assert.equal(j.held, 200);
  assert.equal(j.memory.length, 1);
});

test('connect: connections per second, each closed cleanly', async () => {
  const r = await runBench(['connect', '--url', urls, '--clients', '5', '--rooms', '2',
    '--duration', '2', '--quiet']);
  const j = assertRun(r, 'connect');
  assert.ok(j.completed > 0 && j.connections_per_s > 0);
  assert.equal(j.connect_failures, 0);
});

test('storm: every client rejoins with since and recovers', async () => {
  const r = await runBench(['storm', '--url', urls, '--clients', '100', '--rooms', '5',
    '--senders', '2', '--rate', '50', '--duration', '1', '--pids', pids, '--quiet']);
  const j = assertRun(r, 'storm');
  assert.equal(j.storms[0].rejoined, 100);
  // The member lists, read over HTTP page by page, hold exactly the new
  // memberships within --presence-within (10 s) and still do at the end.
  assert.ok(j.storms[0].presence_right_s >= 0 && j.storms[0].presence_right_s < 10, JSON.stringify(j.storms));
  assert.ok(j.storms[0].presence_looks >= 2 && j.storms[0].presence_still_right === true, JSON.stringify(j.storms));
  assert.equal(j.recovered, 100);
  assert.equal(j.loss, 0);
  assert.equal(j.duplicates, 0);
});

// ---- the scripted server ----

// A WebSocket server that speaks just enough chat.v1 for one fanout client
// in one room, framing its replies in every way RFC 6455 allows.
function scriptedServer() {
  const seen = { pongs: 0, unmasked: 0, messages: 0, badPong: 0 };
  const server = net.createServer((sock) => {
    let buf = Buffer.alloc(0);
    let upgraded = false;
    let seq = 0;
    let room = '';
    const frame = (op, payload, fin = true) => {
      const data = Buffer.from(payload);
      let head;
      if (data.length < 126) head = Buffer.from([(fin ? 0x80 : 0) | op, data.length]);
      else if (data.length < 65536) {
        head = Buffer.from([(fin ? 0x80 : 0) | op, 126, 0, 0]);
        head.writeUInt16BE(data.length, 2);
      } else {
        head = Buffer.alloc(10);
        head[0] = (fin ? 0x80 : 0) | op;
        head[1] = 127;
        head.writeBigUInt64BE(BigInt(data.length), 2);
      }
      return Buffer.concat([head, data]);
    };
    const onText = (text) => {
      const f = JSON.parse(text);
      if (f.type === 'join') {
        room = f.room;
        // Over 64 KiB: the 64-bit length form.
        const members = Array.from({ length: 3000 }, (_, i) => ({ nickname: `m${i}-padding-padding`, since: 0 }));
        sock.write(frame(1, JSON.stringify({ type: 'joined', id: f.id, room, nickname: f.nickname,
          seq: 0, epoch: '0123456789abcdef', members, history: [] })));
        return;
      }
      if (f.type !== 'message') return;
      seen.messages++;
      seq++;
      sock.write(frame(1, JSON.stringify({ type: 'ack', id: f.id, room, seq })));
      // Fields in another order than our gateway writes them: the slow path.
      const envelope = seq % 3 === 0
        ? JSON.stringify({ room, type: 'message', message: f.message, seq, ts: Date.now(), nickname: 'x' })
        : `{"type":"message","seq":${seq},"ts":${Date.now()},"room":"${room}","nickname":"x","message":"${f.message}"}`;
      const b = Buffer.from(envelope);
      if (seq % 2 === 0) {
        // Three fragments with a ping between the first two.
        sock.write(Buffer.concat([frame(1, b.subarray(0, 10), false), frame(9, `p${seq}`),
          frame(0, b.subarray(10, 200), false), frame(0, b.subarray(200), true)]));
      } else {
        sock.write(frame(1, b));
      }
    };
    const parse = () => {
      for (;;) {
        if (buf.length < 2) return;
        const op = buf[0] & 0x0f;
        const masked = (buf[1] & 0x80) !== 0;
        let len = buf[1] & 0x7f;
        let off = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
        else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
        if (!masked) seen.unmasked++;
        const need = off + (masked ? 4 : 0) + len;
        if (buf.length < need) return;
        const key = masked ? buf.subarray(off, off + 4) : Buffer.alloc(4);
        const data = Buffer.from(buf.subarray(off + (masked ? 4 : 0), need));
        for (let i = 0; i < data.length; i++) data[i] ^= key[i & 3];
        buf = buf.subarray(need);
        if (op === 1) onText(data.toString('utf8'));
        else if (op === 0xa) {
          seen.pongs++;
          if (!/^p\d+$/.test(data.toString())) seen.badPong++;
        } else if (op === 8) {
          sock.end(frame(8, data.subarray(0, 2)));
          return;
        }
      }
    };
    sock.on('error', () => {});
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString();
        buf = buf.subarray(end + 4);
        const key = /sec-websocket-key: *(\S+)/i.exec(head)[1];
        const accept = crypto.createHash('sha1')
          .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
        // The welcome follows the 101 in the same write, as a real server may.
        sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: chat.v1\r\n\r\n`);
        sock.write(frame(1, '{"type":"welcome","session":"s","gateway":"fake","limits":{}}'));
        upgraded = true;
      }
      parse();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, seen })));
}

test('framing: fragments, interleaved pings, 16- and 64-bit lengths, other field orders', async () => {
  const { server, seen } = await scriptedServer();
  try {
    const url = `ws://127.0.0.1:${server.address().port}/ws`;
    const r = await runBench(['fanout', '--url', url, '--clients', '1', '--rooms', '1',
      '--rate', '20', '--size', '300', '--duration', '1', '--quiet']);
    const j = assertRun(r, 'fanout against the scripted server');
    assert.ok(j.sent >= 10 && j.received === j.sent && j.loss === 0, JSON.stringify(j));
    assert.equal(j.protocol_errors, 0);
    assert.equal(seen.unmasked, 0, 'every client frame is masked');
    assert.ok(seen.pongs >= Math.floor(j.sent / 2) && seen.badPong === 0, JSON.stringify(seen));
  } finally {
    server.close();
  }
});

// Every limit is configurable (flag or CHAT_* variable), announced in
// welcome.limits and exported in /metrics as chat_gateway_limit{name}, with
// the refusal counters chat_gateway_refused_total{reason}. Defaults as
// docs/SECURITY.md lists them. The rooms-per-connection limit answers one
// join too many with bad_request.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, startGateway, connect, teardown, uniqueRoom, metrics, httpGet, assertMaxConnections,
} from './lib.mjs';

const DEFAULTS = {
  message_bytes: 4096,
  frame_bytes: 65536,
  rate_per_sec: 20,
  rate_burst: 40,
  rooms: 100,
  joins_per_sec: 10,
  send_queue_bytes: 1048576,
  max_conns_per_ip: 0,
  max_connections: 100000,
};
const FLAGS = {
  message_bytes: ['--message-bytes', 1000],
  frame_bytes: ['--frame-bytes', 8192],
  rate_per_sec: ['--rate-per-sec', 7],
  rate_burst: ['--rate-burst', 9],
  rooms: ['--rooms', 3],
  joins_per_sec: ['--joins-per-sec', 50],
  send_queue_bytes: ['--send-queue-bytes', 65536],
  max_conns_per_ip: ['--max-conns-per-ip', 11],
  max_connections: ['--max-connections', 222],
};
const REASONS = ['per_ip', 'max_connections', 'origin', 'auth'];

let cl;
before(async () => {
  cl = await startCluster({ gateways: 1, workers: 0 });
}, { timeout: 20000 });
after(teardown);

function limitsIn(welcome) {
  return Object.fromEntries(Object.keys(DEFAULTS).map((k) => [k, welcome.limits[k]]));
}
function limitsInMetrics(m) {
  return Object.fromEntries(Object.keys(DEFAULTS).map((k) => [k, m.get(`chat_gateway_limit{name="${k}"}`)]));
}

test('defaults in welcome.limits and /metrics', { timeout: 20000 }, async () => {
  const gw = cl.gateways[0];
  const c = await connect(gw.url);
  // --max-connections is kept under the open-files limit: with a low
  // `ulimit -n` the default 100000 becomes what the process can hold.
  const effective = c.welcome.limits.max_connections;
  assertMaxConnections(gw, effective, DEFAULTS.max_connections);
  const want = { ...DEFAULTS, max_connections: effective };
  assert.deepEqual(limitsIn(c.welcome), want);
  const m = await metrics(gw);
  assert.deepEqual(limitsInMetrics(m), want);
  const text = (await httpGet(`${gw.http}/metrics`)).body;
  assert.match(text, /^# TYPE chat_gateway_limit gauge$/m);
  assert.match(text, /^# TYPE chat_gateway_refused_total counter$/m);
  for (const reason of REASONS) {
    assert.equal(m.get(`chat_gateway_refused_total{reason="${reason}"}`), 0, `refused_total{reason="${reason}"} exported, 0`);
  }
});

test('flags change every limit', { timeout: 20000 }, async () => {
  const args = Object.values(FLAGS).flatMap(([f, v]) => [f, String(v)]);
  const gw = await startGateway({ redisUrl: cl.redis.url, extraArgs: args });
  const want = Object.fromEntries(Object.entries(FLAGS).map(([k, [, v]]) => [k, v]));
  const c = await connect(gw.url);
  assert.deepEqual(limitsIn(c.welcome), want);
  assert.deepEqual(limitsInMetrics(await metrics(gw)), want);
});

test('CHAT_* variables change them too', { timeout: 20000 }, async () => {
  const env = {};
  for (const [k, [flag, v]] of Object.entries(FLAGS)) {
    env[`CHAT_${flag.slice(2).toUpperCase().replace(/-/g, '_')}`] = String(v + 1);
    void k;
  }
  const gw = await startGateway({ redisUrl: cl.redis.url, env });
  const want = Object.fromEntries(Object.entries(FLAGS).map(([k, [, v]]) => [k, v + 1]));
  const c = await connect(gw.url);
  assert.deepEqual(limitsIn(c.welcome), want);
});

test('--rooms 3: the fourth join gets bad_request; leaving frees a slot', { timeout: 20000 }, async () => {
  const gw = await startGateway({ redisUrl: cl.redis.url, extraArgs: ['--rooms', '3'] });
  const c = await connect(gw.url);
  const rooms = [uniqueRoom('r'), uniqueRoom('r'), uniqueRoom('r')];
  for (const r of rooms) await c.join(r, 'n');
  const extra = uniqueRoom('r');
  c.send({ type: 'join', room: extra, nickname: 'n', id: 'fourth' });
  const e = await c.next({ id: 'fourth' });
  assert.deepEqual({ type: e.type, code: e.code }, { type: 'error', code: 'bad_request' });
  const left = await c.request({ type: 'leave', room: rooms[0] });
  assert.equal(left.type, 'left');
  await c.join(extra, 'n');
  // The default, 100: the 101st join is refused.
  const d = await connect(cl.gateways[0].url);
  for (let i = 0; i < 100; i += 10) {
    await Promise.all(Array.from({ length: 10 }, (_, k) => d.join(`hundred-${process.pid}-${i + k}`, 'n')));
    await new Promise((r) => setTimeout(r, 1000)); // --joins-per-sec 10
  }
  d.send({ type: 'join', room: `hundred-${process.pid}-100`, nickname: 'n', id: 'j101' });
  const e2 = await d.next({ id: 'j101' });
  assert.deepEqual({ type: e2.type, code: e2.code }, { type: 'error', code: 'bad_request' });
});

test('out-of-range values are startup errors', { timeout: 20000 }, async () => {
  const { runToExit, gatewayBin } = await import('./lib.mjs');
  for (const args of [['--max-conns-per-ip', '-1'], ['--max-connections', '-1'], ['--joins-per-sec', '-1'],
    ['--redis-timeout-ms', '-1'], ['--rate-burst', 'x'], ['--auth-skew-s', '-5'], ['--send-queue-bytes', '1x']]) {
    const r = runToExit(gatewayBin, ['--listen', '127.0.0.1:1', ...args]);
    assert.ok(r.status !== 0 && r.status !== null, `${args.join(' ')}: exit ${r.status} ${r.stderr}`);
    assert.match(r.stderr, new RegExp(args[0]), 'the error names the flag');
  }
});

// /healthz 200, /readyz 200 when connected, /metrics in Prometheus text
// format with connections, publishes and errors by code; unknown paths 404.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, connect, teardown, uniqueRoom, httpGet, waitFor, parseMetrics,
} from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 1, workers: 0 });
}, { timeout: 20000 });
after(teardown);

async function metrics() {
  const r = await httpGet(`${cl.gateways[0].http}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'] || '', /^text\/plain/);
  return { text: r.body, m: parseMetrics(r.body) };
}

test('/healthz and /readyz answer 200', { timeout: 10000 }, async () => {
  const gw = cl.gateways[0];
  assert.equal((await httpGet(`${gw.http}/healthz`)).status, 200);
  assert.equal((await httpGet(`${gw.http}/readyz`)).status, 200);
});

test('unknown paths answer 404', { timeout: 10000 }, async () => {
  const gw = cl.gateways[0];
  assert.equal((await httpGet(`${gw.http}/no/such/thing`)).status, 404);
});

test('/metrics: connections, publishes, errors by code', { timeout: 15000 }, async () => {
  const first = await metrics();
  for (const name of ['chat_gateway_connections', 'chat_gateway_publishes_total', 'chat_gateway_errors_total']) {
    assert.ok(first.text.includes(name), `metrics mention ${name}`);
  }
  assert.match(first.text, /^# TYPE chat_gateway_connections gauge$/m);
  assert.match(first.text, /^# TYPE chat_gateway_publishes_total counter$/m);
  const conns0 = first.m.get('chat_gateway_connections');
  assert.equal(typeof conns0, 'number');
  assert.equal(typeof first.m.get('chat_gateway_publishes_total'), 'number');

  const room = uniqueRoom('metrics');
  const a = await connect(cl.gateways[0].url);
  const b = await connect(cl.gateways[0].url);
  await a.join(room, 'a');
  await b.join(room, 'b');
  const mid = await metrics();
  assert.equal(mid.m.get('chat_gateway_connections'), conns0 + 2, 'two more connections');
  const pubs0 = mid.m.get('chat_gateway_publishes_total');
  const badJson0 = mid.m.get('chat_gateway_errors_total{code="bad_json"}') ?? 0;

  for (let i = 0; i < 3; i++) await a.say(room, `m${i}`);
  a.send('not json');
  await a.next({ type: 'error', code: 'bad_json' });

  const second = await metrics();
  assert.equal(second.m.get('chat_gateway_publishes_total'), pubs0 + 3, 'three chat messages published');
  assert.equal(second.m.get('chat_gateway_errors_total{code="bad_json"}'), badJson0 + 1, 'one bad_json error');

  await b.close();
  await waitFor(async () => (await metrics()).m.get('chat_gateway_connections') === conns0 + 1,
    { timeoutMs: 3000, what: 'connections gauge to drop after a close' });
});

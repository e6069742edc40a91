// Cross-site WebSocket hijacking: the Origin header is checked at the
// upgrade. Default: same host only (the Origin's host:port equals the Host
// header); a request with no Origin (not a browser) is allowed.
// --allowed-origins takes exact origins, or `*`. A rejected Origin gets HTTP
// 403 and is counted in chat_gateway_refused_total{reason="origin"}.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, startGateway, connect, teardown, uniqueRoom, rawUpgrade, metrics, refused, httpGet,
} from './lib.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 0, workers: 0 });
}, { timeout: 20000 });
after(teardown);

async function status(gw, origin, host) {
  const headers = origin === undefined ? {} : { Origin: origin };
  return (await rawUpgrade(gw.port, { headers, ...(host ? { host } : {}) })).status;
}

async function expectStatuses(gw, cases) {
  const got = [];
  for (const [origin, want, host] of cases) got.push({ origin, host, status: await status(gw, origin, host), want });
  const wrong = got.filter((g) => g.status !== g.want);
  assert.deepEqual(wrong, [], 'every Origin gets the expected answer');
}

test('default: same host only; no Origin is fine', { timeout: 20000 }, async () => {
  const gw = await startGateway({ redisUrl: cl.redis.url });
  const self = `http://127.0.0.1:${gw.port}`;
  const m0 = await metrics(gw);
  await expectStatuses(gw, [
    [undefined, 101],
    [self, 101],
    [`http://localhost:${gw.port}`, 101, `localhost:${gw.port}`],
    ['http://evil.example', 403],
    ['https://evil.example', 403],
    [`http://evil.example:${gw.port}`, 403],
    ['http://127.0.0.1', 403],
    [`http://127.0.0.1:${gw.port + 1}`, 403],
    [`http://127.0.0.1:${gw.port}.evil.example`, 403],
    [`http://evil.example/127.0.0.1:${gw.port}`, 403],
    [`http://localhost:${gw.port}`, 403], // Host says 127.0.0.1
    ['null', 403],
    ['*', 403],
  ]);
  const m1 = await metrics(gw);
  assert.equal(refused(m1, 'origin') - refused(m0, 'origin'), 10, 'refusals counted as reason="origin"');
  // The same through a library client.
  await assert.rejects(connect(gw.url, { headers: { Origin: 'http://evil.example' } }), /403/);
  const ok = await connect(gw.url, { headers: { Origin: self } });
  await ok.join(uniqueRoom('o'), 'same-origin');
  // Plain HTTP is not subject to the WebSocket origin check.
  assert.equal((await httpGet(`${gw.http}/healthz`, { headers: { Origin: 'http://evil.example' } })).status, 200);
});

test('--allowed-origins: exact origins only', { timeout: 20000 }, async () => {
  const gw = await startGateway({
    redisUrl: cl.redis.url, extraArgs: ['--allowed-origins', 'https://chat.example.com,http://127.0.0.1:8080'],
  });
  await expectStatuses(gw, [
    [undefined, 101],
    ['https://chat.example.com', 101],
    ['http://127.0.0.1:8080', 101],
    ['http://chat.example.com', 403], // scheme differs
    ['https://chat.example.com.evil.example', 403],
    ['https://evil.chat.example.com', 403],
    ['https://chat.example.co', 403],
    ['https://chat.example.com:8443', 403],
    ['http://127.0.0.1:808', 403],
    ['http://127.0.0.1:80800', 403],
    ['https://chat.example.com,http://127.0.0.1:8080', 403],
    ['null', 403],
  ]);
});

test('--allowed-origins "*": any Origin', { timeout: 20000 }, async () => {
  const gw = await startGateway({ redisUrl: cl.redis.url, extraArgs: ['--allowed-origins', '*'] });
  await expectStatuses(gw, [
    [undefined, 101],
    ['http://evil.example', 101],
    ['null', 101],
    [`http://127.0.0.1:${gw.port}`, 101],
  ]);
  const m = await metrics(gw);
  assert.equal(refused(m, 'origin'), 0);
});

test('CHAT_ALLOWED_ORIGINS works like the flag', { timeout: 20000 }, async () => {
  const gw = await startGateway({ redisUrl: cl.redis.url, env: { CHAT_ALLOWED_ORIGINS: 'https://only.example' } });
  await expectStatuses(gw, [['https://only.example', 101], ['https://other.example', 403]]);
});

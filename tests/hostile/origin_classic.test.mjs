// The classic page's path, /chatservice, and the Origin it sends when opened
// as a local file ("null"). With default flags the gateway answers
// WebSocket at /chatservice as at /ws, and there admits Origin: null as well
// as the same host; /ws keeps its same-host rule (origin.test.mjs), and
// --allowed-origins (strict mode) governs both paths: null only if listed.
// docs/SECURITY.md, "Origin check", has the reasoning.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, startGateway, connect, teardown, uniqueRoom, rawUpgrade, metrics, refused } from './lib.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 0, workers: 0 });
}, { timeout: 20000 });
after(teardown);

async function statuses(gw, cases) {
  const got = [];
  for (const [path, origin, want, protocol] of cases) {
    const headers = origin === undefined ? {} : { Origin: origin };
    const r = await rawUpgrade(gw.port, { path, headers, ...(protocol !== undefined ? { protocol } : {}) });
    got.push({ path, origin, status: r.status, want });
  }
  assert.deepEqual(got.filter((g) => g.status !== g.want), [], 'every upgrade gets the expected answer');
}

test('default flags: /chatservice answers WebSocket and admits a local file page', { timeout: 20000 }, async () => {
  const gw = await startGateway({ redisUrl: cl.redis.url });
  const self = `http://127.0.0.1:${gw.port}`;
  const m0 = await metrics(gw);
  await statuses(gw, [
    ['/chatservice', undefined, 101],
    ['/chatservice', 'null', 101],
    ['/chatservice', 'null', 101, null], // the classic page offers no subprotocol
    ['/chatservice', self, 101],
    ['/chatservice', 'http://evil.example', 403],
    ['/chatservice', 'NULL', 403],
    ['/chatservice', 'null, http://evil.example', 403],
    ['/ws', 'null', 403],
    ['/chatservice/', 'null', 404],
    ['/chatservicex', 'null', 404],
    ['/classic', 'null', 404],
  ]);
  const m1 = await metrics(gw);
  assert.equal(refused(m1, 'origin') - refused(m0, 'origin'), 4, 'refusals counted as reason="origin"');

  // A classic (legacy) connection at /chatservice with Origin: null chats
  // with a chat.v1 member at /ws.
  const room = uniqueRoom('classic');
  const v1 = await connect(gw.url);
  await v1.join(room, 'modern');
  const classic = await connect(`ws://127.0.0.1:${gw.port}/chatservice`, { protocol: null, headers: { Origin: 'null' } });
  classic.send({ nickname: 'classic', room, message: 'hello from a file page' });
  const got = await classic.next({ type: 'message', room });
  assert.equal(got.message, 'hello from a file page');
  assert.equal((await v1.next({ type: 'message', room })).nickname, 'classic');
  await v1.say(room, 'hello back');
  assert.equal((await classic.next({ type: 'message', room })).message, 'hello back');
});

test('--allowed-origins stays strict on both paths: null only when listed', { timeout: 20000 }, async () => {
  const strict = await startGateway({ redisUrl: cl.redis.url, extraArgs: ['--allowed-origins', 'https://chat.example.com'] });
  await statuses(strict, [
    ['/chatservice', 'null', 403],
    ['/chatservice', `http://127.0.0.1:${strict.port}`, 403],
    ['/chatservice', 'https://chat.example.com', 101],
    ['/chatservice', undefined, 101],
  ]);
  const listed = await startGateway({ redisUrl: cl.redis.url, extraArgs: ['--allowed-origins', 'null,https://chat.example.com'] });
  await statuses(listed, [
    ['/chatservice', 'null', 101],
    ['/ws', 'null', 101],
    ['/ws', 'https://evil.example', 403],
  ]);
});

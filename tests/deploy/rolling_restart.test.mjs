// Rolling restart behind haproxy: three gateways on loopback behind haproxy
// (the shared deploy/haproxy settings), one worker, Redis. Twenty members in
// three rooms, connected through haproxy, each send a message every 100 ms
// while the gateways are restarted one by one (SIGTERM, exit 0, a new one on
// the same port, ready, back in haproxy). Members told to reconnect come
// back through haproxy and re-join with since + epoch. In the end every
// acked message reached every member, with no duplicate and no gap, and
// nothing but the planned reconnects happened to any of them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startRedis, startWorker, freePort, teardown, uniqueRoom, sleep,
} from '../integration/lib/harness.mjs';
import {
  startHaproxy, startGatewayOn, waitServerStatus, Member, verifyMembers, spread,
} from './lib/deploy.mjs';

const MEMBERS = 20;
// As deployed (docker-compose.yml, deploy/systemd, deploy/k8s): /readyz fails
// this long before clients are told to go, which must outlast haproxy's
// time to notice (inter 500ms + fastinter 250ms, fall 2).
const GATEWAY_ARGS = ['--drain-grace-ms', '2000'];
const DRAIN_GRACE_MS = 2000;
let redis;
let haproxy;
const gateways = [];
const members = [];

before(async () => {
  redis = await startRedis();
  await startWorker({ redisUrl: redis.url });
  const ports = [await freePort(), await freePort(), await freePort()];
  for (const [i, port] of ports.entries()) {
    gateways.push(await startGatewayOn(port, { redisUrl: redis.url, id: `gw${i + 1}`, extraArgs: GATEWAY_ARGS }));
  }
  haproxy = await startHaproxy({ port: await freePort(), servers: ports.map((p) => `127.0.0.1:${p}`) });
}, { timeout: 30000 });

after(async () => {
  for (const m of members) m.stop();
  await teardown();
});

test('gateways restarted one by one under traffic: nothing lost, duplicated or out of order', { timeout: 60000 }, async (t) => {
  const rooms = [uniqueRoom('roll-a'), uniqueRoom('roll-b'), uniqueRoom('roll-c')];
  for (let i = 0; i < MEMBERS; i++) {
    const m = new Member({ url: haproxy.url, room: rooms[i % rooms.length], nickname: `m${i}`, everyMs: 100 });
    members.push(m);
    await m.start();
  }
  const before = spread(members);
  t.diagnostic(`members per gateway before: ${JSON.stringify(before)}`);
  assert.equal(Object.keys(before).length, 3, 'leastconn spreads the members over all three gateways');
  assert.ok(Object.values(before).every((n) => n >= 5), `evenly enough: ${JSON.stringify(before)}`);

  const t0 = Date.now();
  for (const m of members) m.startSending();
  await sleep(2000);

  for (let i = 0; i < gateways.length; i++) {
    const old = gateways[i];
    const name = `gw${i + 1}`; // haproxy's name for the server slot
    const termAt = Date.now();
    old.kill('SIGTERM');
    const down = waitServerStatus(haproxy.socket, name, 'DOWN', 10000);
    const { code, signal } = await old.waitExit(15000);
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, `${old.id} exits 0 after draining`);
    const downMs = await down;
    const exitMs = Date.now() - termAt;
    const fresh = await startGatewayOn(old.port, { redisUrl: redis.url, id: `${name}-r${i + 1}`, extraArgs: GATEWAY_ARGS });
    gateways[i] = fresh;
    const upMs = await waitServerStatus(haproxy.socket, name, 'UP', 10000);
    t.diagnostic(`${old.id}: haproxy saw it down ${downMs} ms after SIGTERM (limit: the drain grace), ` +
      `it exited after ${exitMs} ms; ${fresh.id} up in haproxy ${upMs} ms after it was ready`);
    assert.ok(downMs < DRAIN_GRACE_MS,
      `haproxy marks a draining gateway down within its drain grace (took ${downMs} ms)`);
    await sleep(1000);
  }
  await sleep(1000);
  for (const m of members) m.stopSending();
  for (const m of members) await m.settle(5000);
  const elapsed = Date.now() - t0;

  const { problems, finalSeq } = await verifyMembers(members, redis);
  const sent = members.reduce((n, m) => n + m.sent, 0);
  const acked = members.reduce((n, m) => n + m.acked.size, 0);
  const unacked = members.reduce((n, m) => n + m.unacked, 0);
  const reconnects = members.reduce((n, m) => n + m.plannedReconnects, 0);
  t.diagnostic(`${elapsed} ms of traffic: ${sent} sent, ${acked} acked, ${unacked} unacked at a close; ` +
    `${reconnects} planned reconnects; rooms at ${JSON.stringify(Object.values(finalSeq))}; ` +
    `members per gateway after: ${JSON.stringify(spread(members))}`);
  assert.deepEqual(problems.slice(0, 20), [], `${problems.length} problems`);
  assert.ok(acked > MEMBERS * 50, `traffic flowed throughout (${acked} acked)`);
  assert.ok(reconnects >= MEMBERS, `every member was moved at least once (${reconnects} reconnects)`);
  assert.ok(members.every((m) => m.plannedReconnects >= 1), 'each member reconnected at least once');
  assert.equal(members.reduce((n, m) => n + m.connectFailures, 0), 0, 'no connection through haproxy failed');
  assert.ok(elapsed <= 30000, `bounded run: ${elapsed} ms`);
});

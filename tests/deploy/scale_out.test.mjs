// Scale out under load: three gateways behind haproxy carry twelve members
// who keep sending; a fourth gateway is started and added to haproxy at run
// time (runtime API `add server`, with the shared default-server settings,
// no reload). Once its slow start is over, new members land on it (its
// connections gauge), and
// messages flow both ways between its members and those on the others —
// every acked message reaches every member, no duplicate, no gap.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startRedis, startWorker, freePort, teardown, uniqueRoom, sleep,
} from '../integration/lib/harness.mjs';
import {
  startHaproxy, startGatewayOn, haproxyCommand, defaultServerArgs, waitServerStatus, metric,
  Member, verifyMembers, spread,
} from './lib/deploy.mjs';

function parseDuration(s) {
  const m = /^(\d+)(ms|s)?$/.exec(s);
  return m ? Number(m[1]) * (m[2] === 's' ? 1000 : 1) : 0;
}

let redis;
let haproxy;
const gateways = [];
const members = [];

before(async () => {
  redis = await startRedis();
  await startWorker({ redisUrl: redis.url });
  for (let i = 1; i <= 3; i++) {
    gateways.push(await startGatewayOn(await freePort(), { redisUrl: redis.url, id: `gw${i}` }));
  }
  haproxy = await startHaproxy({ port: await freePort(), servers: gateways.map((g) => `127.0.0.1:${g.port}`) });
}, { timeout: 30000 });

after(async () => {
  for (const m of members) m.stop();
  await teardown();
});

test('a fourth gateway added while traffic flows takes new connections and delivers across gateways', { timeout: 60000 }, async (t) => {
  const rooms = [uniqueRoom('scale-a'), uniqueRoom('scale-b')];
  const join = async (i) => {
    const m = new Member({ url: haproxy.url, room: rooms[i % rooms.length], nickname: `m${i}`, everyMs: 100 });
    members.push(m);
    await m.start();
    m.startSending();
    return m;
  };
  for (let i = 0; i < 12; i++) await join(i);
  await sleep(1500);

  const gw4 = await startGatewayOn(await freePort(), { redisUrl: redis.url, id: 'gw4' });
  const add = `add server gateways/gw4 127.0.0.1:${gw4.port} ${defaultServerArgs().join(' ')}`;
  assert.match(await haproxyCommand(haproxy.socket, add), /New server registered/, add);
  await haproxyCommand(haproxy.socket, 'enable health gateways/gw4');
  await haproxyCommand(haproxy.socket, 'enable server gateways/gw4');
  await waitServerStatus(haproxy.socket, 'gw4', 'UP', 10000);
  // The shared settings ramp a new server's weight up over `slowstart`
  // (so a fresh gateway is not handed a whole reconnect storm at once).
  const args = defaultServerArgs();
  const slowstart = args.includes('slowstart') ? parseDuration(args[args.indexOf('slowstart') + 1]) : 0;
  await sleep(slowstart + 200);

  const late = [];
  for (let i = 12; i < 18; i++) late.push(await join(i));
  const onGw4 = late.filter((m) => m.gateways.at(-1) === 'gw4');
  t.diagnostic(`members per gateway: ${JSON.stringify(spread(members))}`);
  assert.ok(onGw4.length >= 3, `leastconn sends most new connections to the empty gateway (${onGw4.length} of 6)`);
  const gauge = await metric(gw4.http, 'chat_gateway_connections');
  assert.ok(gauge > 0, `gw4's chat_gateway_connections is ${gauge}`);

  await sleep(2000);
  for (const m of members) m.stopSending();
  for (const m of members) await m.settle(5000);

  const { problems } = await verifyMembers(members, redis);
  assert.deepEqual(problems.slice(0, 20), [], `${problems.length} problems`);
  // Explicitly both ways: what gw4's members said reached members on the
  // other gateways, and what those said reached gw4's.
  for (const room of rooms) {
    const here = members.filter((m) => m.room === room && m.gateways.at(-1) === 'gw4');
    const there = members.filter((m) => m.room === room && m.gateways.at(-1) !== 'gw4');
    if (!here.length) continue;
    const fromHere = here.flatMap((m) => [...m.acked.values()]);
    const fromThere = there.flatMap((m) => [...m.acked.values()]).filter((s) => s > Math.max(...here.map((m) => m.baseline)));
    assert.ok(fromHere.length > 0 && fromThere.length > 0, `${room}: both sides sent`);
    for (const m of there) assert.ok(fromHere.every((s) => m.delivered.has(s)), `${m.nickname} (other gateway) got gw4's messages`);
    for (const m of here) assert.ok(fromThere.every((s) => m.delivered.has(s)), `${m.nickname} (gw4) got the others' messages`);
  }
  assert.equal(members.reduce((n, m) => n + m.connectFailures, 0), 0, 'no connection through haproxy failed');
});

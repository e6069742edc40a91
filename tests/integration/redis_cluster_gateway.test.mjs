// Gateways on a real Redis Cluster (3 primaries, 1 replica each), started
// with --redis-cluster (issue: Redis Cluster):
// - the flag contract: --redis and --redis-cluster together is a usage error;
// - rooms spread over every primary; chat across two gateways seeded on
//   different nodes delivers every message once, in order, with history and
//   recovery with `since`, and presence joins with the room's count;
// - a nickname taken over from the other gateway: the old session is told
//   `replaced` over the gateway's control channel (classic pub/sub, which a
//   cluster carries to every node), in rooms on every primary;
// - room traffic is sharded pub/sub: a classic SUBSCRIBE sees none of it;
// - the seed a gateway was given can die: it learnt every node at start-up;
// - a live slot migration of a busy room (redis-cli --cluster reshard of
//   its slot): the gateways follow the move, members keep receiving, and
//   nothing is lost or delivered twice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  teardown, connect, seqProblem, startGateway, runToExit, gatewayBin, httpGet,
  RedisClient, waitFor, sleep, FAST,
} from './lib/harness.mjs';
import { startRedisCluster, keySlot, roomIn } from './lib/rediscluster.mjs';

let rc;
let gw1;
let gw2;
let primaries;

before(async () => {
  rc = await startRedisCluster({ primaries: 3, replicas: 1 });
  const top = await rc.topology();
  primaries = top.filter((n) => n.flags.includes('master'));
  const replicas = top.filter((n) => n.flags.includes('slave'));
  // gw1 knows only a replica, gw2 only a primary: one seed is enough.
  gw1 = await startGateway({ redisCluster: `127.0.0.1:${replicas[0].port}`, extraArgs: FAST });
  gw2 = await startGateway({ redisCluster: `redis://127.0.0.1:${primaries[1].port}`, extraArgs: FAST });
}, { timeout: 90000 });
after(teardown);

test('--redis and --redis-cluster together, or a bad seed list, is a usage error', { timeout: 15000 }, async () => {
  const both = runToExit(gatewayBin, ['--redis', 'redis://127.0.0.1:1', '--redis-cluster', '127.0.0.1:2']);
  assert.equal(both.status, 2, both.stderr);
  assert.match(both.stderr, /--redis-cluster/);
  for (const bad of ['', '127.0.0.1:1,,127.0.0.1:2', 'redis://127.0.0.1:1/3', 'nohost:']) {
    const t0 = Date.now();
    const r = runToExit(gatewayBin, ['--redis-cluster', bad]);
    assert.equal(r.status, 2, `${JSON.stringify(bad)}: ${r.stderr}`);
    assert.ok(Date.now() - t0 < 3000, `${JSON.stringify(bad)}: exits at once`);
  }
});

test('chat across gateways in rooms on every primary: each message once, in order', { timeout: 60000 }, async () => {
  for (const p of primaries) {
    const room = roomIn(p.slots, 'spread');
    const a = await connect(gw1.url);
    const b = await connect(gw2.url);
    await a.join(room, 'a');
    const jb = await b.join(room, 'b');
    assert.equal(jb.count, 2, 'count');
    const pj = await a.next({ type: 'presence', room, nickname: 'b' });
    assert.equal(pj.nickname, 'b');
    assert.equal(pj.count, 2);
    const sent = [];
    for (let i = 0; i < 10; i++) {
      sent.push(`a${i}`, `b${i}`);
      await a.say(room, `a${i}`);
      await b.say(room, `b${i}`);
    }
    for (const c of [a, b]) {
      const got = await c.messages(room, 20, 10000);
      assert.equal(seqProblem(got.map((m) => m.seq), 1), null, `${room}: seq order`);
      assert.deepEqual(got.map((m) => m.message), sent, `${room}: every message once`);
    }
    // History and recovery with since, from the room's own shard.
    const late = await connect(gw1.url);
    const jl = await late.join(room, 'late', { since: 15 });
    assert.equal(jl.recovered, true);
    assert.deepEqual(jl.history.map((m) => m.seq), [16, 17, 18, 19, 20]);
    for (const c of [a, b, late]) c.close();
  }
});

test('takeover across gateways, in rooms on every primary', { timeout: 30000 }, async () => {
  for (const p of primaries) {
    const room = roomIn(p.slots, 'takeover');
    const obs = await connect(gw2.url);
    await obs.join(room, 'obs');
    const old = await connect(gw1.url);
    await old.join(room, 'bob');
    const neu = await connect(gw2.url);
    const j = await neu.join(room, 'bob');
    assert.deepEqual(j.members.map((m) => m.nickname).sort(), ['bob', 'obs'], 'bob is listed once');
    assert.equal((await old.next({ type: 'left', room }, 5000)).reason, 'replaced');
    await neu.say(room, 'new bob');
    assert.equal((await obs.next({ type: 'message', room, message: 'new bob' })).nickname, 'bob');
    for (const c of [obs, old, neu]) c.close();
  }
});

test('room traffic is sharded pub/sub: a classic subscriber hears nothing', { timeout: 30000 }, async () => {
  const owner = primaries[2];
  const room = roomIn(owner.slots, 'sharded');
  const channel = `chat:{${room}}`;
  const classic = await RedisClient.connect(primaries[0].port);
  const sharded = await RedisClient.connect(owner.port);
  try {
    await classic.subscribe(channel);
    await sharded.subscribe(channel, { sharded: true });
    const a = await connect(gw1.url);
    await a.join(room, 'a');
    await a.say(room, 'hello');
    const m = await sharded.nextMessage((x) => String(x.data).includes('hello'));
    assert.equal(m.channel, channel);
    await assert.rejects(classic.nextMessage(() => true, 500), /no pub\/sub message/,
      'no classic PUBLISH of a room channel');
    a.close();
  } finally {
    classic.close();
    sharded.close();
  }
});

test('the seed can die: the gateway learnt every node at start-up', { timeout: 30000 }, async () => {
  const top = await rc.topology();
  const seed = top.find((n) => n.port === Number(gw1.args[gw1.args.indexOf('--redis-cluster') + 1].split(':')[1]));
  assert.ok(seed && seed.flags.includes('slave'), 'gw1 was seeded with a replica');
  rc.nodes.find((n) => n.port === seed.port).kill('SIGKILL');
  await sleep(1500);
  const res = await httpGet(`${gw1.http}/readyz`);
  assert.equal(res.status, 200);
  for (const p of primaries) {
    const room = roomIn(p.slots, 'seedless');
    const a = await connect(gw1.url);
    const b = await connect(gw2.url);
    await a.join(room, 'a');
    await b.join(room, 'b');
    const ack = await a.say(room, 'still here');
    const m = await b.next({ type: 'message', room });
    assert.equal(m.seq, ack.seq);
    a.close();
    b.close();
  }
});

test('a live slot migration of a busy room: members follow, nothing lost or doubled', { timeout: 90000 }, async () => {
  const src = primaries[0];
  const dst = primaries[1];
  const room = roomIn(src.slots, 'migrate');
  const slot = keySlot(`chat:{${room}}`);
  const a = await connect(gw1.url);
  const b = await connect(gw2.url);
  await a.join(room, 'a');
  await b.join(room, 'b');

  // Chat steadily while the slot moves; every ack is a message that must
  // reach both members exactly once.
  let stop = false;
  const acked = [];
  const talker = (async () => {
    for (let i = 0; i < 400 && !stop; i++) {
      try {
        const ack = await a.say(room, `m${i}`);
        acked.push(ack.seq);
      } catch {
        // unavailable during the move is allowed; lost acks are not
      }
      await sleep(20);
    }
  })();
  await sleep(500);
  const c = await RedisClient.connect(src.port);
  const d = await RedisClient.connect(dst.port);
  try {
    await d.command('CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', src.id);
    await c.command('CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', dst.id);
    for (;;) {
      const keys = await c.command('CLUSTER', 'GETKEYSINSLOT', String(slot), '100');
      if (!keys.length) break;
      await c.command('MIGRATE', '127.0.0.1', String(dst.port), '', '0', '5000', 'KEYS', ...keys);
    }
    await d.command('CLUSTER', 'SETSLOT', String(slot), 'NODE', dst.id);
    await c.command('CLUSTER', 'SETSLOT', String(slot), 'NODE', dst.id);
  } finally {
    c.close();
    d.close();
  }
  // Both gateways saw the cluster end their subscription and followed it.
  for (const gw of [gw1, gw2])
    await waitFor(() => gw.stderr.includes(`gave up channel chat:{${room}}`), { what: `${gw.id} follows the move` });
  await sleep(1000);
  stop = true;
  await talker;
  assert.ok(acked.length > 20, `messages were acked (${acked.length})`);
  const last = Math.max(...acked);
  for (const [name, cl] of [['a', a], ['b', b]]) {
    const got = await cl.messages(room, last, 15000);
    const seqs = got.map((m) => m.seq);
    assert.equal(seqProblem(seqs, 1), null, `${name}: no gap, no duplicate`);
    for (const s of acked) assert.ok(seqs.includes(s), `${name}: acked seq ${s} delivered`);
  }
  // And the room keeps working on its new owner.
  const ack = await b.say(room, 'after the move');
  const m = await a.next({ type: 'message', room, message: 'after the move' });
  assert.equal(m.seq, ack.seq);
  a.close();
  b.close();
});

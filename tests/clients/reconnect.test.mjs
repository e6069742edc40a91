// The client library against a real cluster: connecting through a URL list,
// reconnecting with backoff after a gateway is killed, rejoining every room
// with since/epoch, recovering what was missed once and in order, and
// reporting when it cannot (recovered: false). Also the reload path:
// snapshot() + join(since, epoch) + graceMs, with no presence flap.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, FAST } from '../integration/lib/harness.mjs';
import { newClient, closeClients, events, emitted, until, waitState } from './lib/util.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 1, gatewayArgs: FAST });
}, { timeout: 30000 });
afterEach(closeClients);
after(teardown);

test('a gateway killed: reconnect to the next URL, rejoin every room with since, missed messages once, in order',
  { timeout: 40000 }, async () => {
    const [gw1, gw2] = cl.gateways;
    const rooms = [uniqueRoom('fo-a'), uniqueRoom('fo-b')];
    const c = newClient([gw1.url, gw2.url]).connect();
    await waitState(c, 'open');
    assert.equal(c.gateway, gw1.id, 'the first URL first');
    for (const r of rooms) await c.join(r, 'ann');
    const other = await connect(gw2.url);
    for (const r of rooms) await other.join(r, 'bob');
    await other.say(rooms[0], 'before');
    await until(() => emitted(c, rooms[0]).length === 1, { what: 'the first message' });

    gw1.kill('SIGKILL');
    await gw1.waitExit(5000);
    await waitState(c, 'waiting', 5000);
    for (let i = 1; i <= 5; i++) await other.say(rooms[0], `missed ${i}`);
    await other.say(rooms[1], 'missed in b');

    await until(() => c.state === 'open' && c.rooms.get(rooms[1])?.joined && c.rooms.get(rooms[0])?.joined,
      { timeoutMs: 20000, what: 'back in both rooms' });
    assert.equal(c.gateway, gw2.id, 'now on the surviving gateway');
    const rec = events(c, 'recovered').map((x) => x.e);
    assert.deepEqual(rec.map((r) => [r.room, r.recovered, r.missed]).sort(),
      [[rooms[0], true, 5], [rooms[1], true, 1]].sort());
    await other.say(rooms[0], 'after');
    await until(() => emitted(c, rooms[0]).length === 7, { what: 'the live message after recovery' });
    const ms = emitted(c, rooms[0]);
    assert.deepEqual(ms.map((m) => m.message), ['before', 'missed 1', 'missed 2', 'missed 3', 'missed 4', 'missed 5', 'after']);
    assert.deepEqual(ms.map((m) => m.source), ['live', 'history', 'history', 'history', 'history', 'history', 'live']);
    assert.deepEqual(ms.map((m) => m.seq), ms.map((_, i) => ms[0].seq + i), 'no hole, no duplicate');
    const states = events(c, 'state').map((x) => x.e.state);
    assert.deepEqual(states.slice(0, 2), ['connecting', 'open']);
    assert.ok(states.includes('waiting'), 'the drop was reported');
    // Sending works again, on the new connection.
    const ack = await c.send(rooms[1], 'ann is back');
    assert.ok(ack.seq > 0);
  });

test('backoff with jitter: attempts against a dead URL slow down', { timeout: 20000 }, async () => {
  const c = newClient(['ws://127.0.0.1:9/ws'], { backoff: { baseMs: 100, capMs: 800 } }).connect();
  await until(() => events(c, 'state').filter((x) => x.e.state === 'waiting').length >= 4, { what: 'four attempts' });
  const delays = events(c, 'state').filter((x) => x.e.state === 'waiting').map((x) => x.e.retryInMs);
  assert.ok(delays[0] >= 50 && delays[0] <= 100, `first ${delays[0]}`);
  assert.ok(delays[3] >= 400 && delays[3] <= 800, `fourth ${delays[3]} (capped, half of it random)`);
  c.close();
  assert.equal(c.state, 'closed');
});

test('recovered: false when the epoch is not the room\'s: the room is reset, the latest messages emitted',
  { timeout: 20000 }, async () => {
    const gw = cl.gateways[1];
    const room = uniqueRoom('epoch');
    const w = await connect(gw.url);
    await w.join(room, 'w');
    for (const t of ['one', 'two', 'three']) await w.say(room, t);
    const c = newClient([gw.url]).connect();
    const j = await c.join(room, 'ann', { since: 2, epoch: 'ffffffffffffffff' });
    assert.equal(j.rejoin, true);
    assert.equal(j.recovered, false);
    assert.equal(j.reset, true);
    assert.deepEqual(emitted(c, room).map((m) => m.message), ['one', 'two', 'three']);
    assert.deepEqual(events(c, 'recovered').map((x) => x.e.recovered), [false]);
  });

test('reload: snapshot(), a new client joins with since/epoch within graceMs; others see no leave or join',
  { timeout: 30000 }, async () => {
    // The first test killed gateway 1: both pages use gateway 2 then.
    const [gw1, gw2] = cl.gateways[0].running ? cl.gateways : [cl.gateways[1], cl.gateways[1]];
    const room = uniqueRoom('reload');
    const obs = await connect(gw2.url);
    await obs.join(room, 'obs');
    const first = newClient([gw1.url], { graceMs: 4000 }).connect();
    await first.join(room, 'ann');
    await obs.next((f) => f.type === 'presence' && f.nickname === 'ann' && f.event === 'join');
    await obs.say(room, 'seen before the reload');
    await until(() => emitted(first, room).length === 1);
    const saved = first.snapshot();
    assert.deepEqual(saved.map((s) => [s.room, s.nickname]), [[room, 'ann']]);
    first.close(); // the page goes away
    await obs.say(room, 'sent during the reload');

    const second = newClient([gw1.url], { graceMs: 4000 }).connect();
    for (const s of saved) await second.join(s.room, s.nickname, { since: s.since, epoch: s.epoch });
    assert.deepEqual(emitted(second, room).map((m) => [m.message, m.source]), [['sent during the reload', 'history']]);
    assert.deepEqual(events(second, 'recovered').map((x) => [x.e.recovered, x.e.missed]), [[true, 1]]);
    assert.equal(await obs.quiet((f) => f.type === 'presence' && f.nickname === 'ann', 5000), null,
      'no presence frame about ann: no flap');
  });

// GET /api/rooms/{room}/history?limit=&before= and /members on the
// gateway's HTTP port: JSON {"room","messages"} and {"room","members"},
// from any gateway.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, range, httpGet, FAST } from './lib/harness.mjs';

let cl;
let room;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 0, gatewayArgs: FAST });
  room = uniqueRoom('http');
  const alice = await connect(cl.gateways[0].url);
  const bob = await connect(cl.gateways[1].url);
  await alice.join(room, 'alice');
  await bob.join(room, 'bob');
  await alice.sayMany(room, range(1, 12).map((i) => `h${i}`));
}, { timeout: 30000 });
after(teardown);

async function getJson(path, gw = cl.gateways[1]) {
  const r = await httpGet(gw.http + path);
  assert.equal(r.status, 200, `GET ${path}: ${r.status} ${r.body}`);
  assert.match(r.headers['content-type'] || '', /application\/json/, `GET ${path}: content-type`);
  return r.json();
}

test('history over HTTP: default, limit, before', { timeout: 10000 }, async () => {
  const all = await getJson(`/api/rooms/${room}/history`);
  assert.equal(all.room, room);
  assert.deepEqual(all.messages.map((m) => m.seq), range(1, 12));
  assert.deepEqual(all.messages.map((m) => m.message), range(1, 12).map((i) => `h${i}`));
  assert.ok(all.messages.every((m) => m.type === 'message' && m.nickname === 'alice' && typeof m.ts === 'number'));

  const last5 = await getJson(`/api/rooms/${room}/history?limit=5`);
  assert.deepEqual(last5.messages.map((m) => m.seq), range(8, 12));
  const page2 = await getJson(`/api/rooms/${room}/history?limit=5&before=8`);
  assert.deepEqual(page2.messages.map((m) => m.seq), range(3, 7));
  const page3 = await getJson(`/api/rooms/${room}/history?before=3&limit=5`, cl.gateways[0]);
  assert.deepEqual(page3.messages.map((m) => m.seq), [1, 2]);
  const none = await getJson(`/api/rooms/${room}/history?before=1`);
  assert.deepEqual(none.messages, []);
});

test('members over HTTP', { timeout: 10000 }, async () => {
  for (const gw of cl.gateways) {
    const m = await getJson(`/api/rooms/${room}/members`, gw);
    assert.equal(m.room, room);
    assert.deepEqual(m.members.map((x) => x.nickname).sort(), ['alice', 'bob']);
    assert.ok(m.members.every((x) => typeof x.since === 'number'), 'each member has a numeric since');
  }
});

test('a room nobody used has empty history and members', { timeout: 10000 }, async () => {
  const r = uniqueRoom('empty');
  assert.deepEqual(await getJson(`/api/rooms/${r}/history`), { room: r, messages: [] });
  // count is an addition of issue 13 (docs/PROTOCOL.md): the room's member count.
  assert.deepEqual(await getJson(`/api/rooms/${r}/members`), { room: r, members: [], count: 0 });
});

test('bad room names and bad numbers are client errors', { timeout: 10000 }, async () => {
  const gw = cl.gateways[0];
  for (const path of [
    `/api/rooms/${'x'.repeat(65)}/history`,
    '/api/rooms/bad%20room/history',
    '/api/rooms/bad%7Broom/members',
    `/api/rooms/${room}/history?limit=abc`,
    `/api/rooms/${room}/history?limit=501`,
    `/api/rooms/${room}/history?before=-3`,
  ]) {
    const r = await httpGet(gw.http + path);
    assert.ok(r.status >= 400 && r.status < 500, `GET ${path}: expected 4xx, got ${r.status} ${r.body}`);
  }
});

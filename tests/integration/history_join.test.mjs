// History on join: `history` asks for the N most recent messages (default
// 50, max 500), oldest first, as message frames; joined.seq is the room's
// latest seq.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, range, FAST } from './lib/harness.mjs';

let cl;
let room;
let epoch;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 0, gatewayArgs: FAST });
  room = uniqueRoom('hist');
  const w = await connect(cl.gateways[0].url);
  epoch = (await w.join(room, 'writer')).epoch;
  await w.sayMany(room, range(1, 60).map((i) => `text ${i}`));
}, { timeout: 30000 });
after(teardown);

function checkHistory(h, from, to) {
  assert.deepEqual(h.map((m) => m.seq), range(from, to), `history holds seq ${from}..${to}, oldest first`);
  for (const m of h) {
    assert.equal(m.type, 'message');
    assert.equal(m.room, room);
    assert.equal(m.nickname, 'writer');
    assert.equal(m.message, `text ${m.seq}`);
    assert.equal(typeof m.ts, 'number');
  }
}

test('join with history: 3 returns the 3 most recent', { timeout: 10000 }, async () => {
  const c = await connect(cl.gateways[1].url);
  const j = await c.join(room, 'reader3', { history: 3 });
  assert.equal(j.seq, 60);
  assert.equal(j.epoch, epoch);
  checkHistory(j.history, 58, 60);
  assert.equal(j.recovered, undefined);
});

test('join without history returns the 50 most recent', { timeout: 10000 }, async () => {
  const c = await connect(cl.gateways[1].url);
  const j = await c.join(room, 'reader-default');
  checkHistory(j.history, 11, 60);
});

test('join with history: 0 returns none', { timeout: 10000 }, async () => {
  const c = await connect(cl.gateways[0].url);
  const j = await c.join(room, 'reader0', { history: 0 });
  assert.deepEqual(j.history, []);
  assert.equal(j.seq, 60);
});

test('join with history: 500 returns all 60', { timeout: 10000 }, async () => {
  const c = await connect(cl.gateways[0].url);
  const j = await c.join(room, 'reader500', { history: 500 });
  checkHistory(j.history, 1, 60);
});

test('live messages after joined continue right after joined.seq', { timeout: 10000 }, async () => {
  const c = await connect(cl.gateways[1].url);
  const j = await c.join(room, 'reader-live', { history: 1 });
  const w = await connect(cl.gateways[0].url);
  await w.join(room, 'writer2');
  const ack = await w.say(room, 'after join');
  const m = await c.next({ type: 'message', room, message: 'after join' });
  assert.equal(m.seq, ack.seq);
  assert.ok(m.seq > j.seq);
  const firstLive = c.frames.find((f) => f.type === 'message' && f.room === room);
  assert.equal(firstLive.seq, j.seq + 1, 'the first live frame follows joined.seq with no gap');
});

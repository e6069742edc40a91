// Chat within one gateway: members of a room get every message, the sender
// included, with seq from 1 and a cluster timestamp; the sender gets an ack.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom } from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 1, workers: 0 });
}, { timeout: 20000 });
after(teardown);

test('two members on one gateway chat, each message reaches both', { timeout: 20000 }, async () => {
  const url = cl.gateways[0].url;
  const room = uniqueRoom('single');
  const alice = await connect(url);
  const bob = await connect(url);

  const ja = await alice.join(room, 'alice');
  assert.equal(ja.type, 'joined');
  assert.equal(ja.room, room);
  assert.equal(ja.nickname, 'alice');
  assert.equal(ja.seq, 0, 'a new room starts at seq 0');
  assert.equal(typeof ja.epoch, 'string');
  assert.ok(ja.epoch.length > 0, 'epoch is a non-empty string');
  assert.deepEqual(ja.history, []);
  assert.deepEqual(ja.members.map((m) => m.nickname), ['alice'], 'joined.members includes the joiner');
  assert.equal(ja.recovered, undefined, 'no recovered field without since');
  const jb = await bob.join(room, 'bob');
  assert.deepEqual(jb.members.map((m) => m.nickname).sort(), ['alice', 'bob']);
  assert.equal(jb.epoch, ja.epoch);

  const before = Date.now();
  const ack = await alice.say(room, 'hello', 'm-1');
  assert.deepEqual({ type: ack.type, id: ack.id, room: ack.room, seq: ack.seq },
    { type: 'ack', id: 'm-1', room, seq: 1 });
  for (const c of [alice, bob]) {
    const m = await c.next({ type: 'message', room, seq: 1 });
    assert.equal(m.nickname, 'alice');
    assert.equal(m.message, 'hello');
    assert.equal(typeof m.ts, 'number');
    assert.ok(Math.abs(m.ts - before) < 60000, `ts ${m.ts} is near now (${before})`);
  }

  const ack2 = await bob.say(room, 'hi alice', 'm-2');
  assert.equal(ack2.seq, 2);
  for (const c of [alice, bob]) {
    const m = await c.next({ type: 'message', room, seq: 2 });
    assert.equal(m.nickname, 'bob');
    assert.equal(m.message, 'hi alice');
  }
});

test('message text round-trips exactly (unicode, quotes, escapes)', { timeout: 20000 }, async () => {
  const url = cl.gateways[0].url;
  const room = uniqueRoom('text');
  const a = await connect(url);
  const b = await connect(url);
  await a.join(room, 'Zoë 🐱');
  await b.join(room, 'b');
  const texts = ['héllo 🌍', 'quote " backslash \\ slash /', 'line1\nline2\ttab', '<b>not html</b>', '{"json":"inside"}'];
  for (const t of texts) await a.say(room, t);
  const got = await b.messages(room, texts.length);
  assert.deepEqual(got.map((m) => m.message), texts);
  assert.ok(got.every((m) => m.nickname === 'Zoë 🐱'));
});

test('a message without id is delivered and gets no ack', { timeout: 20000 }, async () => {
  const url = cl.gateways[0].url;
  const room = uniqueRoom('noid');
  const a = await connect(url);
  await a.join(room, 'a');
  a.send({ type: 'message', room, message: 'no id here' });
  const m = await a.next({ type: 'message', room });
  assert.equal(m.message, 'no id here');
  // A second message with an id: its ack must be the first ack we see.
  const ack = await a.say(room, 'with id', 'x1');
  assert.equal(ack.seq, m.seq + 1);
  assert.deepEqual(a.frames.filter((f) => f.type === 'ack').map((f) => f.id), ['x1'],
    'ack only for the message that had an id');
});

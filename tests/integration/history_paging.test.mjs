// The `history` frame: the most recent `limit` messages (default 50, max
// 500), or those before `before`, oldest first; paging back with `before`
// walks the whole history without a hole or an overlap.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, range, FAST } from './lib/harness.mjs';

let cl;
let room;
let reader;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 0, gatewayArgs: FAST });
  room = uniqueRoom('paging');
  const w = await connect(cl.gateways[0].url);
  await w.join(room, 'writer');
  await w.sayMany(room, range(1, 30).map((i) => `p${i}`));
  reader = await connect(cl.gateways[1].url);
  await reader.join(room, 'reader', { history: 0 });
}, { timeout: 30000 });
after(teardown);

async function history(fields) {
  const f = await reader.request({ type: 'history', room, ...fields });
  assert.equal(f.type, 'history', `reply to history ${JSON.stringify(fields)}: ${JSON.stringify(f)}`);
  assert.equal(f.room, room);
  assert.ok(Array.isArray(f.messages));
  return f.messages;
}

test('limit returns the most recent, oldest first, with id echoed', { timeout: 10000 }, async () => {
  reader.send({ type: 'history', room, limit: 10, id: 'h-1' });
  const f = await reader.next({ type: 'history', id: 'h-1' });
  assert.deepEqual(f.messages.map((m) => m.seq), range(21, 30));
  assert.deepEqual(f.messages.map((m) => m.message), range(21, 30).map((i) => `p${i}`));
  assert.ok(f.messages.every((m) => m.type === 'message' && m.room === room && m.nickname === 'writer'));
});

test('before pages back', { timeout: 10000 }, async () => {
  assert.deepEqual((await history({ before: 21, limit: 10 })).map((m) => m.seq), range(11, 20));
  assert.deepEqual((await history({ before: 11, limit: 10 })).map((m) => m.seq), range(1, 10));
  assert.deepEqual((await history({ before: 5, limit: 10 })).map((m) => m.seq), range(1, 4));
  assert.deepEqual(await history({ before: 1, limit: 10 }), []);
  assert.deepEqual((await history({ before: 1000 })).map((m) => m.seq), range(1, 30));
});

test('default limit is 50; limit 500 is allowed', { timeout: 10000 }, async () => {
  assert.deepEqual((await history({})).map((m) => m.seq), range(1, 30));
  assert.deepEqual((await history({ limit: 500 })).map((m) => m.seq), range(1, 30));
  assert.deepEqual((await history({ limit: 1 })).map((m) => m.seq), [30]);
});

test('paging with before walks everything exactly once', { timeout: 10000 }, async () => {
  const seen = [];
  let page = await history({ limit: 7 });
  for (let guard = 0; page.length && guard < 20; guard++) {
    seen.unshift(...page.map((m) => m.seq));
    page = await history({ before: page[0].seq, limit: 7 });
  }
  assert.deepEqual(seen, range(1, 30));
});

// The members frame lists every member of a room, across gateways, as
// {nickname, since}; joined.members includes the joiner.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom } from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 0 });
}, { timeout: 20000 });
after(teardown);

test('members across two gateways, with id echoed', { timeout: 10000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('members');
  const alice = await connect(gw1.url);
  const bob = await connect(gw2.url);
  const ja = await alice.join(room, 'alice');
  assert.deepEqual(ja.members.map((m) => m.nickname), ['alice']);
  const jb = await bob.join(room, 'bob');
  assert.deepEqual(jb.members.map((m) => m.nickname).sort(), ['alice', 'bob']);

  for (const c of [alice, bob]) {
    c.send({ type: 'members', room, id: 'mem-1' });
    const f = await c.next({ type: 'members', id: 'mem-1' });
    assert.equal(f.room, room);
    assert.deepEqual(f.members.map((m) => m.nickname).sort(), ['alice', 'bob']);
    for (const m of f.members) {
      assert.equal(typeof m.since, 'number', `since of ${m.nickname}`);
      assert.equal(m.session, undefined, 'no internal fields leak');
      assert.equal(m.gateway, undefined, 'no internal fields leak');
    }
  }
  const since = (f, n) => f.members.find((m) => m.nickname === n).since;
  const again = await alice.request({ type: 'members', room });
  assert.ok(since(again, 'alice') <= since(again, 'bob'), 'alice joined first');
});

test('members without id', { timeout: 10000 }, async () => {
  const room = uniqueRoom('members');
  const c = await connect(cl.gateways[0].url);
  await c.join(room, 'solo');
  c.send({ type: 'members', room });
  const f = await c.next({ type: 'members' });
  assert.equal(f.id, undefined);
  assert.deepEqual(f.members.map((m) => m.nickname), ['solo']);
});

// The client library's delivery guarantees against a real cluster, with a
// frame-level proxy (lib/ws-proxy.mjs) in between to make the rare cases
// happen: a frame delivered twice (dropped by seq), a frame lost (the hole
// is fetched and filled in order), a message whose answer never came
// (resolved from the recovered history if it was stored, rejected with
// not_delivered if not), and `ack` / `unavailable` (Redis paused).
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom } from '../integration/lib/harness.mjs';
import { startWsProxy } from './lib/ws-proxy.mjs';
import { newClient, closeClients, emitted, until, waitState } from './lib/util.mjs';

let cl;
let proxy;
before(async () => {
  cl = await startCluster({ gateways: 1, workers: 1, gatewayArgs: ['--redis-timeout-ms', '1000'] });
  proxy = await startWsProxy(cl.gateways[0].url);
}, { timeout: 30000 });
afterEach(() => {
  closeClients();
  proxy.toClient = null;
  proxy.toServer = null;
});
after(async () => {
  await proxy?.close();
  await teardown();
});

test('duplicates are dropped by seq, and a lost frame is fetched: each message once, in order',
  { timeout: 20000 }, async () => {
    const room = uniqueRoom('dedup');
    const c = newClient([proxy.url]).connect();
    await c.join(room, 'ann');
    const bob = await connect(cl.gateways[0].url);
    await bob.join(room, 'bob');
    let n = 0;
    proxy.toClient = (f, pair) => {
      if (!f || f.type !== 'message' || f.room !== room) return true;
      n += 1;
      if (n === 2) {
        pair.down.send(JSON.stringify(f)); // twice
        return true;
      }
      if (n === 4) return false; // lost on the way
      return true;
    };
    const texts = ['m1', 'm2', 'm3', 'm4', 'm5', 'm6'];
    for (const t of texts) await bob.say(room, t);
    proxy.inject({ type: 'message', room, nickname: 'bob', message: 'm1', seq: 1, ts: Date.now() }); // an old one again
    await until(() => emitted(c, room).length === 6, { what: 'six messages' });
    await new Promise((r) => setTimeout(r, 300));
    const ms = emitted(c, room);
    assert.deepEqual(ms.map((m) => m.message), texts);
    assert.deepEqual(ms.map((m) => m.seq), [1, 2, 3, 4, 5, 6]);
    assert.equal(ms[3].source, 'gap', 'the lost one came from a history fetch');
  });

test('send resolves with the seq of its ack; errors reject with their code', { timeout: 20000 }, async () => {
  const room = uniqueRoom('ack');
  const c = newClient([cl.gateways[0].url]).connect();
  await c.join(room, 'ann');
  const p = c.send(room, 'hello');
  assert.match(p.id, /^m\d+$/, 'the id is there at once');
  const ack = await p;
  assert.deepEqual(Object.keys(ack).sort(), ['id', 'room', 'seq']);
  assert.equal(ack.id, p.id);
  assert.equal(emitted(c, room).find((m) => m.seq === ack.seq)?.message, 'hello');
  await assert.rejects(c.send(room, 'x'.repeat(5000)), { code: 'too_large' });
  await assert.rejects(c.send('never-joined', 'x'), { code: 'not_joined' });
  await assert.rejects(c.join('bad room', 'ann'), { code: 'invalid_room' });
});

test('Redis paused: send rejects with unavailable; after it resumes, sends resolve again', { timeout: 30000 }, async () => {
  const room = uniqueRoom('unavail');
  const c = newClient([cl.gateways[0].url]).connect();
  await c.join(room, 'ann');
  cl.redis.kill('SIGSTOP');
  try {
    const t0 = Date.now();
    await assert.rejects(c.send(room, 'into the void'), { code: 'unavailable' });
    assert.ok(Date.now() - t0 < 5000, 'answered within the redis timeout');
  } finally {
    cl.redis.kill('SIGCONT');
  }
  await waitState(c, 'open');
  const ack = await until(() => c.send(room, 'after the pause').catch(() => null), { timeoutMs: 15000, what: 'an ack again' });
  assert.ok(ack.seq > 0);
  const history = await c.history(room, {});
  assert.ok(!history.some((m) => m.message === 'into the void'), 'a message answered unavailable is not stored');
});

test('a connection cut before the answer: stored -> resolved from history; not stored -> not_delivered',
  { timeout: 30000 }, async () => {
    const room = uniqueRoom('inflight');
    const c = newClient([proxy.url]).connect();
    await c.join(room, 'ann');
    // 1: the gateway stores it, but its answers never reach the client.
    proxy.toClient = (f, pair) => {
      if (f && (f.type === 'ack' || (f.type === 'message' && f.room === room))) {
        setImmediate(() => { pair.down.terminate(); pair.up.terminate(); });
        return false;
      }
      return true;
    };
    const stored = c.send(room, 'stored, answer lost');
    await waitState(c, 'waiting');
    proxy.toClient = null;
    const ack = await stored;
    assert.ok(ack.seq > 0, 'resolved with the seq found in the recovered history');
    // 2: the frame never reaches the gateway.
    await waitState(c, 'open');
    await until(() => c.rooms.get(room)?.joined);
    proxy.toServer = (f, pair) => {
      if (f && f.type === 'message') {
        setImmediate(() => { pair.down.terminate(); pair.up.terminate(); });
        return false;
      }
      return true;
    };
    const lost = c.send(room, 'never arrived');
    await waitState(c, 'waiting');
    proxy.toServer = null;
    await assert.rejects(lost, { code: 'not_delivered' });
    const after = await c.send(room, 'next one');
    assert.equal(after.seq, ack.seq + 1, 'nothing else was stored');
    assert.deepEqual(emitted(c, room).map((m) => m.message), ['stored, answer lost', 'next one']);
  });

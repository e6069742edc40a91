// Redis answers, but refuses writes for a while: what a failover looks
// like from a gateway still talking to the old primary (READONLY), a
// primary that lost its replicas under min-replicas-to-write (NOREPLICAS),
// or one out of memory (OOM). A member that leaves meanwhile must not stay
// listed for ever:
//   - the gateway keeps the refused leave event in its outbox and sends it
//     again until Redis takes it (chat_gateway_event_outbox_retries_total);
//   - the worker does not acknowledge a leave whose script was refused: the
//     entry stays pending and is claimed again once writes are allowed.
// Either way, once Redis takes writes again the room's watcher sees the
// presence leave and the member is gone from GET /api/rooms/{room}/members.
// A draining gateway waits, within --drain-ms, for the refused leaves too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, startGateway, connect, teardown, uniqueRoom, httpGet, waitFor, freePort, metrics, waitMetric,
  presenceLeave, FAST,
} from './lib.mjs';

let cl;
before(async () => {
  cl = await startCluster({
    gateways: 1, workers: 1,
    gatewayArgs: FAST,
    workerArgs: ['--sweep-ms', '100', '--claim-idle-ms', '500'],
  });
}, { timeout: 30000 });
after(teardown);

const membersKey = (room) => `chat:{${room}}:members`;
const pendingCount = async () => (await cl.redis.command('XPENDING', 'chat:events', 'workers'))[0];

async function memberNames(gw, room) {
  const r = await httpGet(`${gw.http}/api/rooms/${room}/members`);
  assert.equal(r.status, 200, `members: ${r.status} ${r.body}`);
  return r.json().members.map((m) => m.nickname).sort();
}

// A watcher and `n` leavers (leaver, leaver2, ...) in a fresh room on the
// gateway.
async function roomWithLeavers(prefix, n = 1) {
  const gw = cl.gateways[0];
  const room = uniqueRoom(prefix);
  const watcher = await connect(gw.url);
  await watcher.join(room, 'watcher');
  const names = Array.from({ length: n }, (_, i) => (i ? `leaver${i + 1}` : 'leaver'));
  const leavers = [];
  for (const name of names) {
    const c = await connect(gw.url);
    await c.join(room, name);
    leavers.push(c);
  }
  assert.deepEqual(await memberNames(gw, room), [...names, 'watcher'].sort());
  return { gw, room, watcher, leavers, names, leaver: leavers[0] };
}

// Once writes are allowed again: the watcher sees every leave, the member
// list has only the watcher, and the gateway's outbox is empty.
async function assertLeft({ gw, room, watcher, names = ['leaver'] }) {
  for (const name of names) await presenceLeave(watcher, room, name, 15000, 'closed');
  assert.deepEqual(await memberNames(gw, room), ['watcher']);
  await waitMetric(gw, 'chat_gateway_event_outbox', (v) => v === 0, { timeoutMs: 5000, what: 'an empty outbox' });
  watcher.close();
}

const RETRIES = 'chat_gateway_event_outbox_retries_total';
const retries = async (gw) => (await metrics(gw)).get(RETRIES) ?? 0;

// Closes the leavers at once while Redis refuses writes with `code` (set
// up by refuse(), undone by allow()): the leaves get through once writes
// are allowed, after at least `refusals` refusals counted by the gateway.
// With pipelined: true, Redis is paused (well within --redis-timeout-ms)
// while they close, so that all their leaves are in flight together when
// the first is refused: those behind it must go again after it.
async function leaveWhileRefused(t, {
  prefix, code, refuse, allow, refusals = 1, leavers = 1, pipelined = false,
}) {
  const s = await roomWithLeavers(prefix, leavers);
  const before = await retries(s.gw);
  const logged = s.gw.stderr.length;
  await refuse();
  try {
    if (pipelined) cl.redis.kill('SIGSTOP');
    for (const c of s.leavers) c.close();
    await Promise.all(s.leavers.map((c) => c.waitClosed()));
    if (pipelined) {
      await waitMetric(s.gw, 'chat_gateway_event_outbox', (v) => v >= leavers,
        { timeoutMs: 2000, what: 'every leave in the outbox' });
      await metrics(s.gw); // one more loop turn: the leaves are written out
      cl.redis.kill('SIGCONT');
    }
    await waitFor(() => s.gw.stderr.slice(logged).includes(code),
      { timeoutMs: 5000, what: `the gateway to log ${code}` });
    if (refusals > 1) {
      // Refused again and again: the backoff goes on, nothing is dropped.
      await waitMetric(s.gw, RETRIES, (v) => v >= before + refusals,
        { timeoutMs: 10000, what: `${refusals} refusals of the leave` });
    }
    assert.equal(await cl.redis.command('HLEN', membersKey(s.room)), leavers + 1,
      'no leave has taken effect while writes are refused');
  } finally {
    if (pipelined) cl.redis.kill('SIGCONT');
    await allow();
  }
  await assertLeft(s);
  const n = await retries(s.gw) - before;
  const behind = Number(/with the (\d+) sent after it/.exec(s.gw.stderr.slice(logged))?.[1] ?? 0);
  t.diagnostic(`refusals: ${n}; pipelined behind the first: ${behind}`);
  if (pipelined) assert.ok(behind >= 1, 'leaves were in flight behind the refused one');
  assert.ok(n >= refusals, `${RETRIES} counted the refusals (${n})`);
}

test('a leave refused with NOREPLICAS is sent again once Redis takes writes', { timeout: 40000 }, async (t) => {
  await leaveWhileRefused(t, {
    prefix: 'noreplicas', code: 'NOREPLICAS', refusals: 3,
    refuse: () => cl.redis.command('CONFIG', 'SET', 'min-replicas-to-write', '1'),
    allow: () => cl.redis.command('CONFIG', 'SET', 'min-replicas-to-write', '0'),
  });
});

test('a leave refused with READONLY (a demoted primary) is sent again once it is primary again', { timeout: 40000 }, async (t) => {
  const nowhere = await freePort(); // a primary that never answers: the dataset is kept
  const keys = await cl.redis.command('DBSIZE');
  await leaveWhileRefused(t, {
    prefix: 'readonly', code: 'READONLY',
    refuse: () => cl.redis.command('REPLICAOF', '127.0.0.1', String(nowhere)),
    allow: () => cl.redis.command('REPLICAOF', 'NO', 'ONE'),
  });
  assert.ok(await cl.redis.command('DBSIZE') >= keys - 1, 'the dataset survived the demotion');
});

test('leaves refused with OOM while pipelined are all sent again once Redis has memory', { timeout: 40000 }, async (t) => {
  await leaveWhileRefused(t, {
    prefix: 'oom', code: 'OOM', leavers: 4, pipelined: true,
    refuse: () => cl.redis.command('CONFIG', 'SET', 'maxmemory', '1'),
    allow: () => cl.redis.command('CONFIG', 'SET', 'maxmemory', '0'),
  });
});

// The worker's side: the gateway's event got in, the worker read it, and
// then Redis refused the leave script. The entry must stay pending (no
// XACK) and be applied when it is claimed again.
test('a leave the worker read but Redis refused is applied once writes are allowed', { timeout: 40000 }, async () => {
  const s = await roomWithLeavers('worker-refused');
  const worker = cl.workers[0];
  // The worker waits in XREADGROUP ... BLOCK, 2 s at a time. Wake it with
  // an event of no consequence (a join, acknowledged as it is), so that the
  // block it goes back into is fresh, and stop it there: Redis hands it the
  // leave, which it reads only after writes are refused.
  const wake = await cl.redis.command('XADD', 'chat:events', '*', 'type', 'join', 'session', 'wake',
    'mid', 'wake.1', 'gateway', 'nobody', 'room', s.room, 'nickname', 'nobody', 'ts', String(Date.now()));
  await waitFor(async () => {
    const groups = await cl.redis.command('XINFO', 'GROUPS', 'chat:events');
    const g = groups.find((x) => x[x.indexOf('name') + 1] === 'workers');
    return g[g.indexOf('last-delivered-id') + 1] === wake && await pendingCount() === 0 &&
      (await cl.redis.command('CLIENT', 'LIST')).split('\n')
        .some((c) => /\bflags=b\b/.test(c) && /\bcmd=xreadgroup\b/.test(c));
  }, { timeoutMs: 5000, intervalMs: 10, what: 'the worker to block in XREADGROUP again' });
  worker.kill('SIGSTOP');
  const logged = worker.stderr.length;
  try {
    s.leaver.close();
    await s.leaver.waitClosed();
    await waitFor(async () => await pendingCount() === 1,
      { timeoutMs: 5000, what: 'the leave to be delivered to the stopped worker' });
    await cl.redis.command('CONFIG', 'SET', 'min-replicas-to-write', '1');
    worker.kill('SIGCONT');
    await waitFor(() => /leave script failed: NOREPLICAS/.test(worker.stderr.slice(logged)),
      { timeoutMs: 5000, what: 'the worker to be refused the leave script' });
    assert.equal(await cl.redis.command('HEXISTS', membersKey(s.room), 'leaver'), 1,
      'the leave has not taken effect while writes are refused');
    assert.equal(await pendingCount(), 1,
      'the refused entry stays pending');
  } finally {
    worker.kill('SIGCONT');
    await cl.redis.command('CONFIG', 'SET', 'min-replicas-to-write', '0');
  }
  await assertLeft(s);
});

// A draining gateway (SIGTERM) closes its members and emits their leaves;
// if Redis refuses them, it keeps sending them, within --drain-ms, instead
// of exiting with them unsent. Under OOM that matters most: the ZREM that
// takes the gateway off chat:gateways goes through, so no worker would
// ever clean up after it.
test('a draining gateway waits for Redis to take the leaves it refused', { timeout: 40000 }, async () => {
  const gw = cl.gateways[0];
  const drained = await startGateway({
    redisUrl: cl.redis.url, extraArgs: [...FAST, '--drain-grace-ms', '0', '--drain-ms', '20000'],
  });
  const room = uniqueRoom('drain');
  const watcher = await connect(gw.url);
  await watcher.join(room, 'watcher');
  const leaver = await connect(drained.url);
  await leaver.join(room, 'leaver');
  await cl.redis.command('CONFIG', 'SET', 'maxmemory', '1');
  try {
    drained.kill('SIGTERM');
    await leaver.waitClosed(10000);
    await waitFor(async () => !drained.running || await retries(drained).catch(() => 0) >= 2,
      { timeoutMs: 10000, what: 'the leave to be refused twice' });
    assert.ok(drained.running, 'the gateway did not exit with the leave unsent');
    assert.equal(await cl.redis.command('HEXISTS', membersKey(room), 'leaver'), 1);
  } finally {
    await cl.redis.command('CONFIG', 'SET', 'maxmemory', '0');
  }
  const { code, signal } = await drained.waitExit(10000);
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, drained.stderr.slice(-2000));
  assert.doesNotMatch(drained.stderr, /not sent to Redis/, 'nothing was left in the outbox');
  await presenceLeave(watcher, room, 'leaver', 15000, 'closed');
  assert.deepEqual(await memberNames(gw, room), ['watcher']);
  watcher.close();
});

// Redis URLs with credentials and a database: redis://:pass@host:port/db
// (requirepass) and redis://user:pass@host:port/db (an ACL user). Gateways
// and workers both connect, chat works end to end (the worker's presence
// leave included), and every key lands in the chosen database. A wrong
// password leaves the gateway alive but not ready, answering `unavailable`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startRedis, startGateway, startWorker, connect, teardown, uniqueRoom, httpGet, RedisClient, sleep,
  waitHttpStatus,
} from './lib.mjs';

const PASS = 'p4ss-w0rd';
const ODD_PASS = 'o:d@d/p%w'; // for percent-encoding (RFC 3986)
const ACL_USER = 'chatuser';
const ACL_PASS = 'acl-secret';

let redis;
// Runs commands as the default user (which has a password from now on).
async function admin(...cmds) {
  const c = await RedisClient.connect(redis.port);
  try {
    await c.command('AUTH', PASS);
    const out = [];
    for (const cmd of cmds) out.push(await c.command(...cmd));
    return out;
  } finally {
    c.close();
  }
}

before(async () => {
  redis = await startRedis();
  // Started without a password (the harness pings it), then locked.
  await redis.command('CONFIG', 'SET', 'requirepass', PASS);
  await admin(['ACL', 'SETUSER', ACL_USER, 'on', `>${ACL_PASS}`, '~*', '&*', '+@all']);
  await admin(['ACL', 'SETUSER', 'odd', 'on', `>${ODD_PASS}`, '~*', '&*', '+@all']);
}, { timeout: 20000 });
after(teardown);

const enc = encodeURIComponent;

async function chatAndLeave(gw, room) {
  const a = await connect(gw.url);
  const b = await connect(gw.url);
  await a.join(room, 'alice');
  await b.join(room, 'bob');
  const ack = await a.say(room, 'hello through auth');
  assert.equal((await b.next({ type: 'message', room, message: 'hello through auth' })).seq, ack.seq);
  b.close();
  // The worker turns the close into a presence leave: it reads the same db.
  const p = await a.next({ type: 'presence', room, event: 'leave', nickname: 'bob' }, 5000);
  assert.equal(p.reason, 'closed');
  a.close();
}

async function dbsize(db) {
  const [, n] = await admin(['SELECT', String(db)], ['DBSIZE']);
  return n;
}

test('redis://:password@host:port/db (requirepass): gateway and worker work in that db', { timeout: 30000 }, async () => {
  const url = `redis://:${enc(PASS)}@127.0.0.1:${redis.port}/5`;
  const before0 = await dbsize(0);
  const gw = await startGateway({ redisUrl: url });
  await startWorker({ redisUrl: url });
  await chatAndLeave(gw, uniqueRoom('pw'));
  assert.ok((await dbsize(5)) > 0, 'keys are in db 5');
  assert.equal(await dbsize(0), before0, 'nothing was written to db 0');
});

test('redis://user:password@host:port/db (ACL user)', { timeout: 30000 }, async () => {
  const url = `redis://${ACL_USER}:${enc(ACL_PASS)}@127.0.0.1:${redis.port}/7`;
  const gw = await startGateway({ redisUrl: url });
  await startWorker({ redisUrl: url });
  await chatAndLeave(gw, uniqueRoom('acl'));
  assert.ok((await dbsize(7)) > 0, 'keys are in db 7');
  const [clients] = await admin(['CLIENT', 'LIST']);
  assert.match(clients, new RegExp(`user=${ACL_USER}\\b`), 'connections authenticate as the ACL user');
});

test('a password with reserved characters, percent-encoded', { timeout: 30000 }, async () => {
  const url = `redis://odd:${enc(ODD_PASS)}@127.0.0.1:${redis.port}/9`;
  const gw = await startGateway({ redisUrl: url });
  await startWorker({ redisUrl: url });
  await chatAndLeave(gw, uniqueRoom('odd'));
  assert.ok((await dbsize(9)) > 0, 'keys are in db 9');
});

test('a wrong password: the gateway stays up, not ready, and answers unavailable', { timeout: 30000 }, async () => {
  const url = `redis://:wrong@127.0.0.1:${redis.port}/5`;
  const gw = await startGateway({ redisUrl: url, waitReady: false });
  await sleep(1500);
  assert.equal((await httpGet(`${gw.http}/healthz`)).status, 200);
  assert.equal((await httpGet(`${gw.http}/readyz`)).status, 503);
  const c = await connect(gw.url);
  c.send({ type: 'join', room: uniqueRoom('wrong'), nickname: 'n', id: 'j' });
  const f = await c.next({ id: 'j' }, 5000);
  assert.deepEqual({ type: f.type, code: f.code }, { type: 'error', code: 'unavailable' });
  assert.ok(gw.running, 'the gateway did not exit');
  // No tight reconnect loop hammering Redis: the error is logged, but not
  // thousands of times.
  const lines = gw.stderr.split('\n').length;
  assert.ok(lines < 200, `${lines} lines of stderr in 1.5 s`);
});

test('an ACL user without rights to the scripts: not ready, no crash', { timeout: 30000 }, async () => {
  await admin(['ACL', 'SETUSER', 'weak', 'on', '>weak', '~*', '+ping', '+auth', '+select', '+hello']);
  const gw = await startGateway({ redisUrl: `redis://weak:weak@127.0.0.1:${redis.port}/0`, waitReady: false });
  await sleep(1500);
  assert.ok(gw.running, 'the gateway did not exit');
  const c = await connect(gw.url);
  c.send({ type: 'join', room: uniqueRoom('weak'), nickname: 'n', id: 'j' });
  const f = await c.next({ id: 'j' }, 5000);
  assert.equal(f.type, 'error', JSON.stringify(f));
  assert.ok(['unavailable', 'internal'].includes(f.code), JSON.stringify(f));
  await waitHttpStatus(`${gw.http}/healthz`, 200);
});

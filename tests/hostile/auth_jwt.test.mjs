// Authentication with --auth-secret: an HS256 JWT on every WebSocket, as
// ?token= or Authorization: Bearer. Refused at the upgrade with HTTP 401:
// no token, a bad signature, a tampered payload, alg none / RS256 / HS512,
// an expired token (past exp + --auth-skew-s), malformed tokens. Accepted:
// a good token either way, one expired by less than the skew. Claims: `sub`
// is the only nickname (join, legacy frames: `forbidden`), `rooms` limits
// joins to exact names and `prefix-*` patterns. A token that expires during
// the connection: the next frame closes it with 4001. Refusals are counted
// in chat_gateway_refused_total{reason="auth"}.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, startGateway, connect, teardown, uniqueRoom, rawUpgrade, makeJwt, nowS, b64url, metrics,
  refused, httpGet, sleep, ChatClient, track,
} from './lib.mjs';

const SECRET = 'test-secret-0123456789abcdef';

let cl;
let gw;
before(async () => {
  cl = await startCluster({ gateways: 0, workers: 1 });
  gw = await startGateway({ redisUrl: cl.redis.url, extraArgs: ['--auth-secret', SECRET] });
}, { timeout: 20000 });
after(teardown);

const tok = (claims, opts) => makeJwt({ exp: nowS() + 600, ...claims }, SECRET, opts);
const withToken = (url, token) => `${url}?token=${encodeURIComponent(token)}`;

async function statusFor({ token, header, path = '/ws', g = gw } = {}) {
  const headers = {};
  if (header !== undefined) headers.Authorization = header;
  const p = token !== undefined ? `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : path;
  const r = await rawUpgrade(g.port, { path: p, headers });
  return r.status;
}

test('accepted: a good token as ?token= and as Authorization: Bearer', { timeout: 20000 }, async () => {
  const room = uniqueRoom('auth');
  const a = await connect(withToken(gw.url, tok({ sub: 'alice' })));
  const b = await connect(gw.url, { headers: { Authorization: `Bearer ${tok({ sub: 'bob' })}` } });
  await a.join(room, 'alice');
  await b.join(room, 'bob');
  const ack = await a.say(room, 'signed hello');
  assert.equal((await b.next({ type: 'message', room, message: 'signed hello' })).seq, ack.seq);
  // Among other query parameters too.
  assert.equal(await statusFor({ path: '/ws?x=1', token: tok({ sub: 'carol' }) }), 101);
  // A token expired by less than the skew (default 30 s) is still good.
  assert.equal(await statusFor({ token: tok({ sub: 'dave', exp: nowS() - 10 }) }), 101);
});

test('refused with 401 at the upgrade, and counted', { timeout: 30000 }, async () => {
  const m0 = await metrics(gw);
  const good = tok({ sub: 'eve' });
  const [h, p] = good.split('.');
  const otherSecret = makeJwt({ sub: 'eve', exp: nowS() + 600 }, 'not-the-secret');
  const tampered = `${h}.${b64url(JSON.stringify({ sub: 'admin', exp: nowS() + 600 }))}.${good.split('.')[2]}`;
  const claims = { sub: 'eve', exp: nowS() + 600 };
  const cases = [
    ['no token', {}],
    ['empty ?token=', { token: '' }],
    ['a bad signature', { token: otherSecret }],
    ['a tampered payload', { token: tampered }],
    ['a truncated signature', { token: good.slice(0, -4) }],
    ['no signature', { token: `${h}.${p}.` }],
    ['alg none, no signature', { token: makeJwt(claims, SECRET, { header: { alg: 'none', typ: 'JWT' }, signature: '' }) }],
    ['alg none, with an HMAC', { token: makeJwt(claims, SECRET, { header: { alg: 'none', typ: 'JWT' } }) }],
    ['alg RS256, HMAC-signed with the secret', { token: makeJwt(claims, SECRET, { header: { alg: 'RS256', typ: 'JWT' } }) }],
    ['alg HS512', { token: makeJwt(claims, SECRET, { header: { alg: 'HS512', typ: 'JWT' } }) }],
    ['alg hs256 (case matters)', { token: makeJwt(claims, SECRET, { header: { alg: 'hs256', typ: 'JWT' } }) }],
    ['no alg', { token: makeJwt(claims, SECRET, { header: { typ: 'JWT' } }) }],
    ['expired past the skew', { token: tok({ sub: 'eve', exp: nowS() - 60 }) }],
    ['no sub', { token: makeJwt({ exp: nowS() + 600 }, SECRET) }],
    ['a payload that is not an object', { token: makeJwt([1, 2], SECRET) }],
    ['a header that is not JSON', { token: (() => {
      const hh = b64url('not json');
      const pp = b64url(JSON.stringify(claims));
      return `${hh}.${pp}.${good.split('.')[2]}`;
    })() }],
    ['garbage', { token: 'garbage' }],
    ['two parts', { token: 'a.b' }],
    ['four parts', { token: `${good}.x` }],
    ['dots only', { token: '..' }],
    ['not base64url', { token: '!!!.@@@.###' }],
    ['Bearer with a bad token', { header: `Bearer ${otherSecret}` }],
    ['Basic instead of Bearer', { header: `Basic ${Buffer.from('a:b').toString('base64')}` }],
    ['Bearer with nothing', { header: 'Bearer ' }],
    ['the good token under another scheme', { header: `Token ${good}` }],
  ];
  const results = [];
  for (const [name, opts] of cases) results.push([name, await statusFor(opts)]);
  const wrong = results.filter(([, s]) => s !== 401);
  assert.deepEqual(wrong, [], 'every one of these is refused with 401');
  const m1 = await metrics(gw);
  assert.equal(refused(m1, 'auth') - refused(m0, 'auth'), cases.length, 'refusals counted as reason="auth"');
  // A token too big for the request head: refused one way or another (401,
  // or libwebsockets' limit on headers: 4xx or a dropped connection), never
  // accepted.
  const huge = await statusFor({ token: `${h}.${b64url('x'.repeat(6000))}.${good.split('.')[2]}` });
  assert.ok([0, 400, 401, 413, 414, 431].includes(huge), `a 8 KB token: ${huge}`);
  const hugeHeader = (await rawUpgrade(gw.port, { headers: { Authorization: `Bearer ${h}.${b64url('y'.repeat(6000))}.x` } })).status;
  assert.ok([0, 400, 401, 413, 431].includes(hugeHeader), `a 8 KB Authorization header: ${hugeHeader}`);
  // The library client sees the 401 too.
  await assert.rejects(connect(gw.url), /401/);
  // HTTP health endpoints need no token (balancers probe them).
  assert.equal((await httpGet(`${gw.http}/healthz`)).status, 200);
  assert.equal((await httpGet(`${gw.http}/readyz`)).status, 200);
  const ok = await connect(withToken(gw.url, good));
  await ok.join(uniqueRoom('after'), 'eve');
});

test('sub is the only nickname: join and legacy frames with another one get forbidden', { timeout: 20000 }, async () => {
  const room = uniqueRoom('sub');
  const c = await connect(withToken(gw.url, tok({ sub: 'frank' })));
  c.send({ type: 'join', room, nickname: 'notfrank', id: 'j1' });
  const e = await c.next({ id: 'j1' });
  assert.deepEqual({ type: e.type, code: e.code }, { type: 'error', code: 'forbidden' });
  assert.equal(c.closeInfo, null, 'forbidden does not close');
  await c.join(room, 'frank');
  // A legacy-shaped frame on a chat.v1 connection names its nickname too:
  // for a room not joined yet (it would join as that nickname)...
  const room2 = uniqueRoom('sub2');
  c.send({ nickname: 'impostor', room: room2, message: 'legacy spoof', id: 'l1' });
  const e2 = await c.next({ id: 'l1' });
  assert.deepEqual({ type: e2.type, code: e2.code }, { type: 'error', code: 'forbidden' }, 'legacy join as another nickname');
  // ...and for a room already joined as sub: the frame still names another
  // nickname, so it is refused too, not sent as sub.
  c.send({ nickname: 'impostor', room, message: 'legacy spoof 2', id: 'l2' });
  const e3 = await c.next({ id: 'l2' });
  assert.deepEqual({ type: e3.type, code: e3.code }, { type: 'error', code: 'forbidden' },
    'legacy frame naming another nickname in a joined room');
  c.send({ nickname: 'frank', room, message: 'legacy as sub', id: 'l3' });
  assert.equal((await c.next({ id: 'l3' })).type, 'ack');
  const mine = await c.next({ type: 'message', room }, 3000);
  assert.deepEqual([mine.nickname, mine.message], ['frank', 'legacy as sub'],
    'the refused frame was not delivered; the next one, naming sub, was');
  // A legacy connection (no subprotocol): it gets no error frames, but its
  // spoofed message must not reach the room.
  const watcher = await connect(withToken(gw.url, tok({ sub: 'watcher' })));
  const wroom = uniqueRoom('legacy');
  await watcher.join(wroom, 'watcher');
  const legacy = track(await ChatClient.connect(withToken(gw.url, tok({ sub: 'grace' })), { protocol: null }));
  legacy.send({ nickname: 'mallory', room: wroom, message: 'spoofed legacy' });
  legacy.send({ nickname: 'grace', room: wroom, message: 'honest legacy' });
  const got = await watcher.next({ type: 'message', room: wroom }, 5000);
  assert.equal(got.message, 'honest legacy', 'the spoofed legacy message was not delivered');
  assert.equal(got.nickname, 'grace');
  assert.equal(legacy.frames.filter((f) => f.type === 'error').length, 0, 'legacy connections get no error frames');
});

test('the rooms claim: exact names and prefix-* patterns', { timeout: 20000 }, async () => {
  const c = await connect(withToken(gw.url, tok({ sub: 'henry', rooms: ['lobby', 'team-*', 'ops:alerts'] })));
  for (const ok of ['lobby', 'team-red', 'team-blue.2', 'ops:alerts']) {
    const j = await c.join(ok, 'henry');
    assert.equal(j.room, ok);
  }
  for (const bad of ['lobby2', 'lobb', 'team', 'teamx', 'xteam-red', 'ops:alerts2', 'other', 'Lobby', 'TEAM-red']) {
    const id = `f-${bad}`;
    c.send({ type: 'join', room: bad, nickname: 'henry', id });
    const e = await c.next({ id });
    assert.deepEqual({ room: bad, type: e.type, code: e.code }, { room: bad, type: 'error', code: 'forbidden' });
  }
  // A message to a room it may not join: it is not a member, so not_joined
  // (or forbidden); never delivered.
  c.send({ type: 'message', room: 'other', message: 'x', id: 'm-other' });
  const e = await c.next({ id: 'm-other' });
  assert.ok(['not_joined', 'forbidden'].includes(e.code), JSON.stringify(e));
  // Without a rooms claim: every room.
  const d = await connect(withToken(gw.url, tok({ sub: 'ivy' })));
  await d.join(uniqueRoom('any'), 'ivy');
});

test('a token that expires during the connection: the next frame closes with 4001', { timeout: 30000 }, async () => {
  const SKEW = 1;
  const g = await startGateway({ redisUrl: cl.redis.url, extraArgs: ['--auth-secret', SECRET, '--auth-skew-s', String(SKEW)] });
  const exp = nowS() + 2;
  const c = await connect(withToken(g.url, makeJwt({ sub: 'jack', exp }, SECRET)));
  const room = uniqueRoom('exp');
  await c.join(room, 'jack');
  await c.say(room, 'while valid');
  // Wait until past exp + skew (whole seconds), then one more frame.
  while (Date.now() / 1000 <= exp + SKEW + 1) await sleep(100);
  c.send({ type: 'ping', id: 'late' });
  const closed = await c.waitClosed(5000);
  assert.equal(closed.code, 4001, `close ${JSON.stringify(closed)}`);
  assert.equal(c.frames.filter((f) => f.type === 'pong').length, 0, 'the late frame was not served');
  // The same token is now refused at the upgrade.
  assert.equal(await statusFor({ g, token: makeJwt({ sub: 'jack', exp }, SECRET) }), 401);
});

test('without --auth-secret the gateway is open (tokens are ignored)', { timeout: 20000 }, async () => {
  const open = await startGateway({ redisUrl: cl.redis.url });
  const c = await connect(open.url);
  await c.join(uniqueRoom('open'), 'anyone');
  const d = await connect(withToken(open.url, 'garbage'));
  await d.join(uniqueRoom('open'), 'someone');
  const m = await metrics(open);
  assert.equal(refused(m, 'auth'), 0);
});

test('the room API takes what joining takes: a token allowing the room (401/403 otherwise)', { timeout: 20000 }, async () => {
  const room = uniqueRoom('team');
  const url = (r) => `${gw.http}/api/rooms/${r}/history`;
  const bearer = (t) => ({ headers: { Authorization: `Bearer ${t}` } });
  assert.equal((await httpGet(url(room))).status, 401, 'no token');
  assert.equal((await httpGet(url(room), bearer(makeJwt({ sub: 'x' }, 'wrong')))).status, 401);
  assert.equal((await httpGet(url(room), bearer(tok({ sub: 'x', rooms: ['other'] })))).status, 403);
  assert.equal((await httpGet(url(room), bearer(tok({ sub: 'x', rooms: ['team*'] })))).status, 200);
  assert.equal((await httpGet(`${gw.http}/api/rooms/${room}/members?token=${tok({ sub: 'x' })}`)).status, 200);
  // Health and readiness stay open for balancers and probes.
  assert.equal((await httpGet(`${gw.http}/healthz`)).status, 200);
});

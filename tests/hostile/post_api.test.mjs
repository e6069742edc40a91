// Server push: POST /api/rooms/{room}/messages with Authorization: Bearer
// <--api-key>, body {"nickname","message"} → 200 {"room","seq"}, and the
// message reaches the room's members like any other (same seq sequence,
// in history). Validated like a join's nickname and a message frame's text:
// 400 with {"error": code}. A wrong or missing key: 401. No --api-key: 404.
// Redis down: 503. Hostile bodies do not hurt the gateway.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  startCluster, startGateway, connect, teardown, uniqueRoom, httpRequest, httpGet, waitHttpStatus,
  assertServes,
} from './lib.mjs';

const KEY = 'k3y-0123456789-abcdef';

let cl;
let gw;
before(async () => {
  cl = await startCluster({ gateways: 0, workers: 0 });
  gw = await startGateway({ redisUrl: cl.redis.url, extraArgs: ['--api-key', KEY] });
}, { timeout: 20000 });
after(teardown);

function post(room, body, { key = KEY, headers = {}, g = gw, raw = false } = {}) {
  const data = Buffer.from(raw ? body : JSON.stringify(body), 'utf8');
  const h = { 'Content-Type': 'application/json', 'Content-Length': String(data.length), ...headers };
  if (key !== null) h.Authorization = `Bearer ${key}`;
  return httpRequest(`${g.http}/api/rooms/${room}/messages`, { method: 'POST', headers: h, body: data });
}

const json = (r) => {
  try {
    return r.json();
  } catch {
    return { unparsed: r.body };
  }
};

test('a push is stored, answered with its seq and delivered to members', { timeout: 20000 }, async () => {
  const room = uniqueRoom('push');
  const member = await connect(gw.url);
  await member.join(room, 'member');
  const legacy = await connect(gw.url, { protocol: null });
  legacy.send({ nickname: 'oldpage', room, message: 'hi from the old page' });
  const first = await member.next({ type: 'message', room, message: 'hi from the old page' });

  const r = await post(room, { nickname: 'deploy-bot', message: 'build 42 is green ✅' });
  assert.equal(r.status, 200, r.body);
  assert.match(r.headers['content-type'] || '', /application\/json/);
  const body = r.json();
  assert.deepEqual(body, { room, seq: first.seq + 1 });
  const m = await member.next({ type: 'message', room, message: 'build 42 is green ✅' });
  assert.equal(m.seq, body.seq);
  assert.equal(m.nickname, 'deploy-bot');
  assert.equal(typeof m.ts, 'number');
  // The legacy page gets it too, as a plain message frame.
  const lm = await legacy.next({ type: 'message', room, message: 'build 42 is green ✅' });
  assert.equal(lm.nickname, 'deploy-bot');
  // In history, in order.
  const h = (await httpGet(`${gw.http}/api/rooms/${room}/history`)).json();
  assert.deepEqual(h.messages.map((x) => x.message), ['hi from the old page', 'build 42 is green ✅']);
  // A push to a room nobody is in is stored too.
  const empty = uniqueRoom('empty');
  const r2 = await post(empty, { nickname: 'bot', message: 'anyone?' });
  assert.equal(r2.status, 200);
  assert.equal(r2.json().seq, 1);
});

test('a wrong or missing key: 401', { timeout: 20000 }, async () => {
  const room = uniqueRoom('nokey');
  const member = await connect(gw.url);
  await member.join(room, 'member');
  const cases = [
    ['no Authorization', { key: null }],
    ['a wrong key', { key: 'wrong' }],
    ['the key plus one character', { key: `${KEY}x` }],
    ['the key minus its last character', { key: KEY.slice(0, -1) }],
    ['an empty key', { key: '' }],
    ['Basic auth', { key: null, headers: { Authorization: `Basic ${Buffer.from(`x:${KEY}`).toString('base64')}` } }],
    ['the key without Bearer', { key: null, headers: { Authorization: KEY } }],
  ];
  for (const [name, opts] of cases) {
    const r = await post(room, { nickname: 'x', message: `should not arrive: ${name}` }, opts);
    assert.equal(r.status, 401, `${name}: ${r.status} ${r.body}`);
  }
  assert.equal(await member.quiet({ type: 'message', room }, 300), null, 'nothing unauthorised was delivered');
  const h = (await httpGet(`${gw.http}/api/rooms/${room}/history`)).json();
  assert.deepEqual(h.messages, []);
});

test('validation: 400 with the error code, nothing stored', { timeout: 20000 }, async () => {
  const room = uniqueRoom('valid');
  const cases = [
    ['invalid_nickname', { nickname: '', message: 'x' }],
    ['invalid_nickname', { nickname: ' lead', message: 'x' }],
    ['invalid_nickname', { nickname: 'x'.repeat(33), message: 'x' }],
    ['invalid_nickname', { nickname: 'bell\u0007', message: 'x' }],
    ['too_large', { nickname: 'bot', message: 'x'.repeat(4097) }],
    ['bad_json', 'not json'],
    ['bad_json', '{"nickname":"bot","message":"x"'],
  ];
  for (const [code, body] of cases) {
    const r = await post(room, body, { raw: typeof body === 'string' });
    assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 60)}: ${r.status} ${r.body}`);
    assert.equal(json(r).error, code, `${JSON.stringify(body).slice(0, 60)}: ${r.body}`);
  }
  // Wrong shapes: 400 with some code (bad_request or the field's own).
  for (const body of [{ nickname: 'bot' }, { message: 'x' }, { nickname: 'bot', message: '' },
    { nickname: 'bot', message: 42 }, { nickname: ['bot'], message: 'x' }, [1, 2], 'null',
    { nickname: 'bot', message: 'a\u0000b' }]) {
    const r = await post(room, body, { raw: typeof body === 'string' });
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.status} ${r.body}`);
    assert.equal(typeof json(r).error, 'string', r.body);
  }
  // An invalid room: 404 (PROTOCOL.md: "404 (unknown path or invalid room)") or 400.
  const bad = await post('bad%20room', { nickname: 'bot', message: 'x' });
  assert.ok([400, 404].includes(bad.status), `invalid room: ${bad.status}`);
  // The exact limit passes.
  assert.equal((await post(room, { nickname: 'bot', message: 'x'.repeat(4096) })).status, 200);
  const h = (await httpGet(`${gw.http}/api/rooms/${room}/history`)).json();
  assert.equal(h.messages.length, 1, 'only the valid push was stored');
});

test('hostile bodies: huge, wrong length, wrong method; the gateway keeps serving', { timeout: 30000 }, async () => {
  const room = uniqueRoom('hostile');
  // 2 MB of JSON: refused (400/413) or the connection dropped, never stored.
  const huge = await post(room, { nickname: 'bot', message: 'x'.repeat(2 * 1024 * 1024) })
    .then((r) => r.status, (e) => `dropped (${e.message})`);
  assert.ok([400, 413].includes(huge) || String(huge).startsWith('dropped'), `2 MB body: ${huge}`);
  // Content-Length larger than the body, then close.
  await new Promise((resolve) => {
    const s = net.connect({ port: gw.port, host: '127.0.0.1' }, () => {
      s.end(`POST /api/rooms/${room}/messages HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n` +
        'Content-Length: 100000\r\n\r\n{"nickname":"bot","message":"cut');
    });
    s.on('error', () => resolve());
    s.on('close', resolve);
    s.resume();
  });
  // Wrong method on the push path.
  const g = await httpRequest(`${gw.http}/api/rooms/${room}/messages`, { headers: { Authorization: `Bearer ${KEY}` } });
  assert.ok([404, 405].includes(g.status), `GET on the push path: ${g.status}`);
  const h = (await httpGet(`${gw.http}/api/rooms/${room}/history`)).json();
  assert.deepEqual(h.messages, [], 'nothing was stored');
  await assertServes(gw.url, 'after hostile pushes');
  assert.equal((await post(room, { nickname: 'bot', message: 'fine' })).status, 200);
});

test('a chunked body (no Content-Length) is served or refused at once, not left hanging', { timeout: 20000 }, async () => {
  const room = uniqueRoom('chunked');
  // node's http client sends Transfer-Encoding: chunked when no length is set.
  const t0 = Date.now();
  const r = await httpRequest(`${gw.http}/api/rooms/${room}/messages`, {
    method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ nickname: 'bot', message: 'chunked' }), timeoutMs: 5000,
  }).then((x) => x.status, (e) => `no answer (${e.message})`);
  assert.ok([200, 400, 411, 501].includes(r), `chunked POST: ${r} after ${Date.now() - t0} ms`);
});

test('an empty body (Content-Length: 0): 400 bad_json', { timeout: 20000 }, async () => {
  // On its own gateway: an empty body is the input most likely to pass a
  // NULL buffer along (memcpy(dst, NULL, 0) is undefined; UBSan aborts), and
  // such a crash should not take the other tests down with it.
  const g = await startGateway({ redisUrl: cl.redis.url, extraArgs: ['--api-key', KEY] });
  const r = await post(uniqueRoom('empty'), '', { g, raw: true });
  assert.equal(r.status, 400, r.body);
  assert.equal(json(r).error, 'bad_json');
  await assertServes(g.url, 'after an empty push');
});

test('no --api-key: 404', { timeout: 20000 }, async () => {
  const plain = await startGateway({ redisUrl: cl.redis.url });
  const r = await post(uniqueRoom('off'), { nickname: 'bot', message: 'x' }, { g: plain });
  assert.equal(r.status, 404);
  const r2 = await post(uniqueRoom('off'), { nickname: 'bot', message: 'x' }, { g: plain, key: null });
  assert.equal(r2.status, 404);
});

test('Redis down: 503', { timeout: 30000 }, async () => {
  await cl.redis.stop();
  await waitHttpStatus(`${gw.http}/readyz`, 503, { timeoutMs: 10000 });
  const r = await post(uniqueRoom('down'), { nickname: 'bot', message: 'x' });
  assert.equal(r.status, 503, r.body);
  assert.equal(typeof json(r).error, 'string');
  // Still 401 for a wrong key, whatever Redis does.
  assert.equal((await post(uniqueRoom('down'), { nickname: 'bot', message: 'x' }, { key: 'wrong' })).status, 401);
});

// Memcheck of a short session: chat-gateway and chat-worker of this build
// run under valgrind (--leak-check=full, definite and indirect leaks count
// as errors, --error-exitcode=99). With authentication on, a few clients
// join, chat, read history and members, leave and close, a server push
// arrives — with some of the bad input the hostile suite sends (refused
// upgrades: no token, a bad signature, a foreign Origin; bad JSON, a binary
// frame, a forbidden nickname, invalid UTF-8, an oversize frame) so that
// the error paths are checked too — then both get SIGTERM and must exit 0
// with "ERROR SUMMARY: 0 errors". A TLS gateway gets the same for wss://.
// Suppressions for false positives inside system libraries (none needed so
// far) go in valgrind.supp next to this file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import https from 'node:https';
import WebSocket from 'ws';
import {
  startRedis, teardown, ServerProcess, freePort, gatewayBin, workerBin, webRoot, waitFor, httpGet, connect,
  uniqueRoom, RawWebSocket, sleep, makeTmpDir, ChatClient, track, makeSelfSignedCert,
} from '../integration/lib/harness.mjs';
import { makeJwt } from '../hostile/lib.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SUPPRESSIONS = path.join(here, 'valgrind.supp');
const hasValgrind = spawnSync('valgrind', ['--version']).status === 0;
const asanBuild = (() => {
  const r = spawnSync('ldd', [gatewayBin], { encoding: 'utf8' });
  return /libasan/.test(r.stdout || '');
})();
const skip = !hasValgrind ? 'valgrind is not installed (apt-get install valgrind)'
  : asanBuild ? `${gatewayBin} is an ASan build: valgrind cannot run it` : false;

const SECRET = 'valgrind-secret';
const jwt = (claims, secret = SECRET) => makeJwt(claims, secret);

const VALGRIND_ARGS = [
  '--leak-check=full', '--errors-for-leak-kinds=definite,indirect', '--show-leak-kinds=definite,indirect',
  '--error-exitcode=99', '--num-callers=30', '--track-origins=no',
  ...(fs.existsSync(SUPPRESSIONS) ? [`--suppressions=${SUPPRESSIONS}`] : []),
];

let redis;
before(async () => {
  if (!skip) redis = await startRedis();
}, { timeout: 20000 });
after(teardown);

async function startUnderValgrind(name, bin, argsFor, { ready } = {}) {
  const port = await freePort();
  const p = new ServerProcess(`${name}:${port} (valgrind)`, 'valgrind', [...VALGRIND_ARGS, bin, ...argsFor(port)]);
  p.port = port;
  p.http = `http://127.0.0.1:${port}`;
  const isReady = ready || (async () => (await httpGet(`${p.http}/readyz`, { timeoutMs: 2000 })).status === 200);
  await waitFor(async () => {
    if (!p.running) throw new Error(`${name} exited (${p.exitCode}) under valgrind:\n${p.stderr.slice(-5000)}`);
    return isReady(p);
  }, { timeoutMs: 60000, intervalMs: 200, what: `${name} under valgrind to be ready` });
  return p;
}

// SIGTERM, then: exit 0, no signal, valgrind's "0 errors".
async function stopClean(t, procs) {
  for (const p of procs) p.kill('SIGTERM');
  const exits = await Promise.all(procs.map((p) => p.waitExit(60000)));
  procs.forEach((p, i) => {
    const e = exits[i];
    const line = p.stderr.split('\n').find((l) => /ERROR SUMMARY/.test(l)) ?? '(no summary)';
    t.diagnostic(`${p.name}: exit ${e.code}; ${line}`);
    const report = () => `\n--- ${p.name} valgrind output (tail) ---\n${p.stderr.slice(-12000)}`;
    assert.equal(e.signal, null, `${p.name} was killed by ${e.signal}${report()}`);
    assert.notEqual(e.code, 99, `valgrind found errors in ${p.name}${report()}`);
    assert.equal(e.code, 0, `${p.name} exit code${report()}`);
    assert.match(p.stderr, /ERROR SUMMARY: 0 errors/, `valgrind's summary for ${p.name}${report()}`);
  });
}

test('a short session under valgrind: no invalid access, no leak, exit 0', { skip, timeout: 200000 }, async (t) => {
  const gw = await startUnderValgrind('gateway', gatewayBin, (port) => [
    '--listen', `127.0.0.1:${port}`, '--redis', redis.url, '--id', 'vg-gw', '--web-root', webRoot,
    '--drain-ms', '2000', '--drain-grace-ms', '0', '--api-key', 'vg-key', '--auth-secret', SECRET,
  ]);
  const wk = await startUnderValgrind('worker', workerBin, (port) => [
    '--redis', redis.url, '--id', 'vg-w', '--listen', `127.0.0.1:${port}`,
  ]);
  const base = `ws://127.0.0.1:${gw.port}/ws`;
  const as = (sub) => `${base}?token=${jwt({ sub, exp: Math.floor(Date.now() / 1000) + 600 })}`;
  const url = as('alice');
  const room = uniqueRoom('vg');
  const opts = { timeoutMs: 20000 };

  // Refused upgrades: no token, a bad signature, a foreign Origin.
  await assert.rejects(connect(base, opts), /401/);
  await assert.rejects(connect(`${base}?token=${jwt({ sub: 'x' }, 'wrong')}`, opts), /401/);
  await assert.rejects(connect(url, { ...opts, headers: { Origin: 'http://evil.example' } }), /403/);

  const a = await connect(url, opts);
  const b = await connect(as('bob'), opts);
  await a.join(room, 'alice', {}, 20000);
  await b.join(room, 'bob', {}, 20000);
  for (let i = 0; i < 5; i++) await a.say(room, `hello ${i}`, `m${i}`, 20000);
  await b.messages(room, 5, 20000);
  const h = await b.request({ type: 'history', room, limit: 10 }, 20000);
  assert.equal(h.messages.length, 5);
  const m = await b.request({ type: 'members', room }, 20000);
  assert.equal(m.type, 'members');
  // Bad input on a live connection: errors, not closes.
  b.send('not json');
  b.send(Buffer.from([1, 2, 3]));
  b.send({ type: 'message', room, message: 'x'.repeat(5000), id: 'big' });
  await b.next({ id: 'big' }, 20000);
  // A legacy page.
  const legacy = await connect(as('old'), { ...opts, protocol: null });
  legacy.send({ nickname: 'old', room, message: 'legacy hello' });
  await a.next({ type: 'message', room, message: 'legacy hello' }, 20000);
  // Closes with 1007 and 1009.
  const raw = await RawWebSocket.connect(gw.port, { timeoutMs: 20000, path: `/ws?token=${jwt({ sub: 'raw' })}` });
  raw.sendText(Buffer.from([0x7b, 0xc0, 0xaf, 0x7d]));
  assert.equal((await raw.waitClose(20000)).code, 1007);
  raw.destroy();
  const big = await connect(url, opts);
  big.send('y'.repeat(70000));
  assert.equal((await big.waitClosed(20000)).code, 1009);
  // A join with since, a leave, a server push, HTTP endpoints.
  // Another nickname than the token's: forbidden.
  a.send({ type: 'join', room: uniqueRoom('vg'), nickname: 'mallory', id: 'forbidden' });
  assert.equal((await a.next({ id: 'forbidden' }, 20000)).code, 'forbidden');
  const c = await connect(as('carol'), opts);
  const j = await c.join(room, 'carol', { since: 2 }, 20000);
  assert.equal(j.recovered, true);
  assert.equal((await c.request({ type: 'leave', room }, 20000)).type, 'left');
  const push = await fetch(`${gw.http}/api/rooms/${room}/messages`, {
    method: 'POST', headers: { Authorization: 'Bearer vg-key', 'Content-Type': 'application/json' },
    body: JSON.stringify({ nickname: 'bot', message: 'pushed' }),
  });
  assert.equal(push.status, 200);
  for (const p of ['/metrics', `/api/rooms/${room}/history?limit=3`, `/api/rooms/${room}/members`, '/', '/nope']) {
    await httpGet(`${gw.http}${p}`, { timeoutMs: 20000 });
  }
  await httpGet(`http://127.0.0.1:${wk.port}/metrics`, { timeoutMs: 20000 });
  // A close the worker turns into a presence leave.
  b.close();
  await a.next({ type: 'presence', room, event: 'leave', nickname: 'bob' }, 30000);
  a.close();
  legacy.close();
  c.terminate(); // faulted, not closed
  await sleep(500);

  // SIGTERM: both drain and exit; valgrind then prints its leak check.
  await stopClean(t, [gw, wk]);
});

test('TLS: a wss:// session under valgrind', { skip, timeout: 120000 }, async (t) => {
  const { cert, key } = makeSelfSignedCert(makeTmpDir('chat-vg-tls-'));
  const ca = fs.readFileSync(cert);
  const httpsStatus = (url) => new Promise((resolve) => {
    https.get(url, { ca, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode);
    }).on('error', () => resolve(0));
  });
  const gw = await startUnderValgrind('gateway-tls', gatewayBin, (port) => [
    '--listen', `127.0.0.1:${port}`, '--redis', redis.url, '--id', 'vg-tls', '--web-root', webRoot,
    '--drain-ms', '2000', '--drain-grace-ms', '0', '--tls-cert', cert, '--tls-key', key,
  ], { ready: async (p) => (await httpsStatus(`https://127.0.0.1:${p.port}/readyz`)) === 200 });
  const room = uniqueRoom('vgtls');
  const clients = [];
  for (const nick of ['tls-a', 'tls-b']) {
    const ws = new WebSocket(`wss://127.0.0.1:${gw.port}/ws`, ['chat.v1'], { ca, perMessageDeflate: false });
    const c = track(new ChatClient(ws, 'wss'));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    await c.next({ type: 'welcome' }, 20000);
    await c.join(room, nick, {}, 20000);
    clients.push(c);
  }
  await clients[0].say(room, 'secure hello', 'tls1', 20000);
  await clients[1].next({ type: 'message', room, message: 'secure hello' }, 20000);
  clients[0].close();
  clients[1].terminate();
  await sleep(300);
  await stopClean(t, [gw]);
});

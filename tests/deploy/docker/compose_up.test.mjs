// `docker compose up` for real, with no image registry: starts a private
// dockerd (--bridge=none --iptables=false, data and sockets in a temporary
// directory), makes a Debian 12 base image with debootstrap from this
// machine's apt mirror, builds the project's image (Dockerfile, BASE = that
// base) and Redis and haproxy images from Debian's packages
// (deploy/docker/*.Dockerfile), and brings docker-compose.yml up with
// deploy/docker/host-network.yml, so all traffic stays on 127.0.0.1. Two
// clients chat through haproxy, on different gateways; one gateway is
// stopped (docker drains it: reconnect, 1001, exit 0) and its client carries
// on through haproxy with since. Then everything goes: compose down, dockerd,
// the directory (tests/deploy/docker/cleanup.sh, which scripts/docker-test.sh
// also runs if this process dies).
//
// Takes minutes; not part of CTest. Run: scripts/docker-test.sh (installs
// docker.io, docker-compose and debootstrap first).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import {
  ServerProcess, freePort, connect, teardown, uniqueRoom, waitFor, httpGet, repoRoot,
} from '../../integration/lib/harness.mjs';
import { localCfg } from '../lib/deploy.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const cleanupScript = path.join(here, 'cleanup.sh');
const dir = process.env.CHAT_DOCKER_TEST_DIR || fs.mkdtempSync('/tmp/chat-docker-test.');
fs.mkdirSync(dir, { recursive: true });
const project = `chatdt${process.pid}`;
const TAG = 'test';
let dockerd = null;
let composeUp = false;

const which = (...cands) => cands.find((c) => (c.includes('/') ? fs.existsSync(c)
  : spawnSync('sh', ['-c', `command -v ${c}`]).status === 0));
const dockerdBin = which('/usr/sbin/dockerd', '/usr/bin/dockerd');
const dockerBin = which('/usr/bin/docker', 'docker'); // Debian's client, matching its daemon
const composeCmd = which('/usr/bin/docker-compose', 'docker-compose') ? ['docker-compose']
  : (dockerBin && spawnSync(dockerBin, ['compose', 'version']).status === 0 ? [dockerBin, 'compose'] : null);
const debootstrapBin = which('/usr/sbin/debootstrap', 'debootstrap');

const env = {
  ...process.env,
  DOCKER_HOST: `unix://${dir}/docker.sock`,
  DOCKER_CONFIG: path.join(dir, 'client-config'), // not the user's (credential helpers)
  DOCKER_BUILDKIT: '0',
  COMPOSE_PROJECT_NAME: project,
};

const log = (t, s) => {
  t.diagnostic(s);
  process.stderr.write(`[docker test] ${s}\n`);
};

// Commands in flight (each leads its own process group): killed with us,
// however this process ends (a debootstrap must not outlive the test).
const inFlight = new Set();
const killInFlight = () => {
  for (const pid of inFlight) {
    try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
  }
};
process.on('exit', killInFlight);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.prependListener(sig, killInFlight);

// Runs a command to completion, bounded: resolves {code, out}; kills its
// process group on timeout and rejects.
function run(cmd, args, { timeoutMs, input, extraEnv = {}, cwd = repoRoot } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...env, ...extraEnv }, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
    if (child.pid) inFlight.add(child.pid);
    child.on('exit', () => inFlight.delete(child.pid));
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
      reject(new Error(`${cmd} ${args.join(' ')}: no result within ${timeoutMs} ms\n${out.slice(-3000)}`));
    }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, out }); });
    if (input) child.stdin.end(input); else child.stdin.end();
  });
}

async function must(what, cmd, args, opts) {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}):\n${r.out.slice(-4000)}`);
  return r.out;
}

const docker = (args, opts = {}) => must(`docker ${args[0]}`, dockerBin, args, { timeoutMs: 60000, ...opts });
const composeFiles = ['-f', 'docker-compose.yml', '-f', 'deploy/docker/host-network.yml'];
let composeEnv = {};
const compose = (args, opts = {}) => must(`${composeCmd.join(' ')} ${args[0]}`, composeCmd[0],
  [...composeCmd.slice(1), '-p', project, ...composeFiles, ...args], { timeoutMs: 120000, extraEnv: composeEnv, ...opts });

// The Debian archive and security URIs this machine's apt uses (deb822
// .sources or one-line .list files); CHAT_DEBIAN_MIRROR overrides.
function aptMirrors() {
  const entries = [];
  const files = ['/etc/apt/sources.list', ...(fs.existsSync('/etc/apt/sources.list.d')
    ? fs.readdirSync('/etc/apt/sources.list.d').map((f) => `/etc/apt/sources.list.d/${f}`) : [])];
  for (const f of files) {
    if (!fs.existsSync(f)) continue;
    const text = fs.readFileSync(f, 'utf8');
    if (f.endsWith('.sources')) {
      for (const block of text.split(/\n\s*\n/)) {
        const field = (k) => (new RegExp(`^${k}:\\s*(.+)$`, 'mi').exec(block)?.[1] || '').trim().split(/\s+/);
        if (!field('Types').includes('deb')) continue;
        for (const uri of field('URIs')) entries.push({ uri, suites: field('Suites') });
      }
    } else {
      for (const l of text.split('\n')) {
        const m = /^\s*deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(l);
        if (m) entries.push({ uri: m[2], suites: [m[3]] });
      }
    }
  }
  const archive = process.env.CHAT_DEBIAN_MIRROR
    || entries.find((e) => e.suites.includes('bookworm') && /\/debian\/?$/.test(e.uri))?.uri;
  const security = entries.find((e) => e.suites.includes('bookworm-security'))?.uri;
  return { archive, security };
}

function openFilesHardLimit() {
  const m = /^Max open files\s+\S+\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? 1048576 : Number(m[1]);
}

after(async () => {
  if (composeUp) {
    await run(composeCmd[0], [...composeCmd.slice(1), '-p', project, ...composeFiles, 'down', '-v', '-t', '20'],
      { timeoutMs: 120000, extraEnv: composeEnv }).catch((e) => process.stderr.write(`compose down: ${e.message}\n`));
  }
  if (dockerd?.running) {
    dockerd.kill('SIGTERM');
    await dockerd.waitExit(30000).catch(() => {});
  }
  // Whatever is left (a shim, a mount), and the directory itself.
  const c = spawnSync('bash', [cleanupScript, dir], { encoding: 'utf8', timeout: 120000 });
  if (c.status !== 0) process.stderr.write(`cleanup.sh: ${c.stdout}${c.stderr}\n`);
  await teardown();
});

test('docker compose up: two clients chat through haproxy; a gateway stops by draining', { timeout: 25 * 60000 }, async (t) => {
  const t0 = Date.now();
  const step = (s) => log(t, `${((Date.now() - t0) / 1000).toFixed(1)} s: ${s}`);
  assert.equal(process.getuid(), 0, 'dockerd and debootstrap need root');
  const missing = [['dockerd (docker.io)', dockerdBin], ['docker client (docker.io)', dockerBin],
    ['docker-compose or docker compose', composeCmd], ['debootstrap', debootstrapBin]].filter(([, v]) => !v);
  assert.deepEqual(missing.map(([n]) => n), [], 'missing tools: run scripts/docker-test.sh, which installs them');
  const { archive, security } = aptMirrors();
  assert.ok(archive, 'no Debian bookworm mirror found in /etc/apt (set CHAT_DEBIAN_MIRROR)');
  step(`dir ${dir}; compose: ${composeCmd.join(' ')}; mirror ${archive}`);

  // 1. A private dockerd: no bridge, no iptables, everything under dir.
  dockerd = new ServerProcess('dockerd', dockerdBin, [
    '--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-masq=false',
    '--data-root', `${dir}/data`, '--exec-root', `${dir}/exec`, '--pidfile', `${dir}/docker.pid`,
    '--host', `unix://${dir}/docker.sock`,
  ], { env: { DOCKER_CONFIG: env.DOCKER_CONFIG } });
  try {
    await waitFor(async () => {
      if (!dockerd.running) throw new Error('dockerd exited');
      return (await run(dockerBin, ['version', '--format', '{{.Server.Version}}'], { timeoutMs: 5000 })).code === 0;
    }, { timeoutMs: 60000, intervalMs: 250, what: 'dockerd to answer' });
  } catch (e) {
    throw new Error(`dockerd could not start on this machine (${e.message}); its log:\n${dockerd.stderr.slice(-4000)}`);
  }
  step(`dockerd up (pid ${dockerd.pid}), server ${(await docker(['version', '--format', '{{.Server.Version}}'])).trim()}`);

  // 2. The base image: debootstrap's minbase of bookworm, imported.
  const rootfs = path.join(dir, 'rootfs');
  await must('debootstrap', debootstrapBin, ['--variant=minbase', 'bookworm', rootfs, archive], { timeoutMs: 15 * 60000 });
  fs.writeFileSync(path.join(rootfs, 'etc/apt/sources.list'), [
    `deb ${archive} bookworm main`, `deb ${archive} bookworm-updates main`,
    ...(security ? [`deb ${security} bookworm-security main`] : []), ''].join('\n'));
  fs.rmSync(path.join(rootfs, 'var/cache/apt/archives'), { recursive: true, force: true });
  fs.mkdirSync(path.join(rootfs, 'var/cache/apt/archives/partial'), { recursive: true });
  await must('docker import', 'bash', ['-o', 'pipefail', '-c',
    `tar -C '${rootfs}' --exclude=./dev/* --exclude=./proc/* --exclude=./sys/* -c . | '${dockerBin}' import - chat-base:bookworm`],
  { timeoutMs: 5 * 60000 });
  fs.rmSync(rootfs, { recursive: true, force: true });
  step('base image chat-base:bookworm imported');

  // 3. The images. Builds use the host's network (there is no bridge).
  const build = (file, tag, ctx) => docker(['build', '--network', 'host', '--build-arg', 'BASE=chat-base:bookworm',
    '-f', file, '-t', tag, ctx], { timeoutMs: 20 * 60000 });
  await build('Dockerfile', `chat:${TAG}`, '.');
  step(`chat:${TAG} built`);
  await build('deploy/docker/redis.Dockerfile', `chat-redis:${TAG}`, 'deploy/docker');
  await build('deploy/docker/haproxy.Dockerfile', `chat-haproxy:${TAG}`, 'deploy/docker');
  step(`chat-redis:${TAG} and chat-haproxy:${TAG} built`);
  const sizes = await docker(['images', '--format', '{{.Repository}}:{{.Tag}} {{.Size}}']);
  t.diagnostic(`images: ${sizes.trim().split('\n').join(', ')}`);

  // 4. The compose files as compose reads them: the base file alone (the
  //    bridge network and docker DNS, which this daemon has no bridge for)
  //    and with the host-network override.
  await must('compose config (docker-compose.yml)', composeCmd[0],
    [...composeCmd.slice(1), '-f', 'docker-compose.yml', 'config', '-q'], { timeoutMs: 60000 });
  step('docker-compose.yml validated by compose');

  // 5. Compose up on the host network.
  const ports = {};
  for (const k of ['CHAT_HTTP_PORT', 'CHAT_GW1_PORT', 'CHAT_GW2_PORT', 'CHAT_W1_PORT', 'CHAT_W2_PORT', 'CHAT_REDIS_PORT']) {
    let p;
    do p = await freePort(); while (Object.values(ports).includes(p));
    ports[k] = p;
  }
  const cfgFile = path.join(dir, 'haproxy-host.cfg');
  fs.writeFileSync(cfgFile, localCfg({ bind: `127.0.0.1:${ports.CHAT_HTTP_PORT}`,
    servers: [`127.0.0.1:${ports.CHAT_GW1_PORT}`, `127.0.0.1:${ports.CHAT_GW2_PORT}`] }));
  fs.chmodSync(cfgFile, 0o644);
  composeEnv = {
    ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
    CHAT_IMAGE: `chat:${TAG}`, CHAT_REDIS_IMAGE: `chat-redis:${TAG}`, CHAT_HAPROXY_IMAGE: `chat-haproxy:${TAG}`,
    CHAT_HAPROXY_CFG: cfgFile,
    // Docker can raise a container's limit only as far as its own.
    CHAT_NOFILE: String(Math.min(262144, openFilesHardLimit())),
  };
  composeUp = true;
  await compose(['up', '-d', '--no-build'], { timeoutMs: 5 * 60000 });
  const ids = (await compose(['ps', '-q'])).trim().split('\n').filter(Boolean);
  assert.equal(ids.length, 6, 'redis, two workers, two gateways, haproxy');
  const inspect = async (id, fmt) => (await docker(['inspect', '--format', fmt, id])).trim();
  const names = {};
  for (const id of ids) names[id] = (await inspect(id, '{{.Name}}')).replace(/^\//, '');
  await waitFor(async () => {
    for (const id of ids) if (await inspect(id, '{{.State.Health.Status}}') !== 'healthy') return false;
    return true;
  }, { timeoutMs: 120000, intervalMs: 500, what: 'every container to be healthy' });
  step(`compose up: ${Object.values(names).sort().join(', ')} all healthy`);

  // 6. What the containers are.
  const byService = (s) => ids.find((id) => new RegExp(`_${s}_1$|-${s}-1$`).test(names[id]));
  const gw1 = byService('gateway');
  assert.ok(gw1, 'the gateway container');
  assert.equal((await docker(['exec', gw1, 'id', '-u'])).trim(), '10001', 'gateways run as the unprivileged user');
  assert.equal((await docker(['exec', byService('worker'), 'id', '-u'])).trim(), '10001');
  const aof = await docker(['exec', byService('redis'), 'redis-cli', '-p', String(ports.CHAT_REDIS_PORT),
    'config', 'get', 'appendonly']);
  assert.match(aof, /appendonly\s+yes/, 'Redis keeps an append-only file');
  const http = `http://127.0.0.1:${ports.CHAT_HTTP_PORT}`;
  const page = await httpGet(`${http}/`);
  assert.equal(page.status, 200);
  assert.match(page.body, /<html/i, 'the web client, installed in the image, through haproxy');

  // 7. Two clients chat through haproxy.
  const url = `ws://127.0.0.1:${ports.CHAT_HTTP_PORT}/ws`;
  const ada = await connect(url);
  const bob = await connect(url);
  assert.deepEqual([ada.welcome.gateway, bob.welcome.gateway].sort(), ['gw1', 'gw2'],
    'leastconn puts them on the two gateways');
  const room = uniqueRoom('docker');
  const ja = await ada.join(room, 'ada');
  await bob.join(room, 'bob');
  await ada.next({ type: 'presence', event: 'join', nickname: 'bob' }, 5000);
  const a1 = await ada.say(room, 'hello from ada');
  assert.equal((await bob.next({ type: 'message', room }, 5000)).seq, a1.seq);
  const b1 = await bob.say(room, 'hello from bob');
  const seenByAda = await ada.messages(room, 2, 5000);
  assert.deepEqual(seenByAda.map((m) => m.seq), [a1.seq, b1.seq]);
  assert.equal(seenByAda[1].message, 'hello from bob');
  step('two clients chatted through haproxy across both gateways');

  // 8. Stop the gateway one of them is on: docker sends SIGTERM, the
  //    gateway drains; that client comes back through haproxy with since.
  const [onGw1, other] = ada.welcome.gateway === 'gw1' ? [ada, bob] : [bob, ada];
  const name1 = onGw1 === ada ? 'ada' : 'bob';
  const stopping = compose(['stop', '-t', '20', 'gateway'], { timeoutMs: 60000 });
  const closed = await onGw1.waitClosed(20000);
  assert.equal(closed.code, 1001, 'drained: closed with 1001');
  const rc = onGw1.frames.find((f) => f.type === 'reconnect');
  assert.ok(rc, 'told to reconnect first');
  await stopping;
  assert.equal(await inspect(gw1, '{{.State.ExitCode}}'), '0', 'the gateway exits 0 after draining');
  const lastSeen = Math.max(...onGw1.frames.filter((f) => f.type === 'message').map((f) => f.seq));
  const back = await connect(url);
  assert.equal(back.welcome.gateway, 'gw2', 'haproxy sends it to the gateway still up');
  const again = await back.join(room, name1, { since: lastSeen, epoch: ja.epoch });
  assert.equal(again.recovered, true);
  const o1 = await other.say(room, 'still here?');
  assert.equal((await back.next({ type: 'message', room }, 5000)).seq, o1.seq);
  step('gateway stopped by docker drained its client, which carried on through haproxy');

  // 9. Down: containers, volume; then dockerd. (Clients first: haproxy
  //    stops softly, waiting for its connections to end.)
  await Promise.all([other.close(), back.close()]);
  await compose(['down', '-v', '-t', '20'], { timeoutMs: 120000 });
  composeUp = false;
  assert.equal((await docker(['ps', '-aq'])).trim(), '', 'no container left');
  dockerd.kill('SIGTERM');
  const { code } = await dockerd.waitExit(30000);
  step(`compose down, dockerd exited (${code})`);
});

// scripts/cluster.sh, the README's way to run a local cluster without
// Docker: it starts Redis, two workers, three gateways and haproxy on
// loopback, prints haproxy's URL, two people chat through it (landing on
// different gateways), and SIGINT (Ctrl-C) stops everything — gateways by
// draining — leaving no process and no listening port behind. A gateway or
// worker killed with -9 is restarted with growing backoff and the terminal
// says so, while the rest keeps running: only Ctrl-C stops the cluster.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  ServerProcess, binDir, makeTmpDir, connect, teardown, uniqueRoom, waitFor, httpGet,
} from '../integration/lib/harness.mjs';
import { repoRoot } from './lib/deploy.mjs';

const children = new Set(); // pids the script started, killed here if it could not

after(async () => {
  for (const pid of children) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone, as it should be
    }
  }
  await teardown();
});

function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

// A base port P with P, P+1..P+3, P+101, P+102 and P+200 all free.
async function freeBase() {
  for (let i = 0; i < 50; i++) {
    const p = 20000 + Math.floor(Math.random() * 30000);
    const ports = [p, p + 1, p + 2, p + 3, p + 101, p + 102, p + 200];
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return { base: p, ports };
  }
  throw new Error('no free base port found');
}

function childPids(pid) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

function listening(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

test('cluster.sh: up, chat through haproxy, Ctrl-C stops everything', { timeout: 60000 }, async (t) => {
  const { base, ports } = await freeBase();
  const state = makeTmpDir('chat-deploy-cluster-');
  const script = new ServerProcess('cluster.sh', 'bash', [path.join(repoRoot, 'scripts', 'cluster.sh'),
    '--bin-dir', binDir, '--base-port', String(base), '--state-dir', state], { cwd: repoRoot });
  await waitFor(() => {
    if (!script.running) throw new Error(`cluster.sh exited (${script.exitCode}):\n${script.stdout}\n${script.stderr}`);
    return /Ctrl-C stops everything/.test(script.stdout);
  }, { timeoutMs: 30000, what: 'cluster.sh to say the cluster is up' });
  for (const pid of childPids(script.pid)) children.add(pid);
  t.diagnostic(script.stdout.trim().split('\n').slice(-6).join(' | '));

  assert.match(script.stdout, new RegExp(`web chat: +http://127\\.0\\.0\\.1:${base}/`), 'prints haproxy\'s URL');
  assert.equal(children.size, 1 + 2 + 3 + 1, 'Redis, two workers, three gateways, haproxy');
  const page = await httpGet(`http://127.0.0.1:${base}/`);
  assert.equal(page.status, 200);
  assert.match(page.body, /<html/i, 'the web chat, through haproxy');

  const url = `ws://127.0.0.1:${base}/ws`;
  const ada = await connect(url);
  const bob = await connect(url);
  assert.notEqual(ada.welcome.gateway, bob.welcome.gateway, 'leastconn puts them on different gateways');
  const room = uniqueRoom('local');
  await ada.join(room, 'ada');
  await bob.join(room, 'bob');
  const ack = await ada.say(room, 'hello bob');
  const got = await bob.next({ type: 'message', room });
  assert.equal(got.message, 'hello bob');
  assert.equal(got.seq, ack.seq);

  script.kill('SIGINT');
  const closed = await ada.waitClosed(15000);
  assert.equal(closed.code, 1001, 'the gateway drained its client (reconnect, 1001)');
  assert.ok(ada.frames.some((f) => f.type === 'reconnect'));
  const { code } = await script.waitExit(30000);
  assert.equal(code, 0, `cluster.sh exits 0 on Ctrl-C\n${script.stdout}\n${script.stderr}`);
  assert.match(script.stdout, /stopped\./);
  for (const pid of children) {
    assert.ok(!fs.existsSync(`/proc/${pid}`) || /\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')),
      `process ${pid} is gone`);
  }
  for (const p of ports) assert.equal(await listening(p), false, `nothing listens on ${p} any more`);
  for (let i = 1; i <= 3; i++) {
    const log = fs.readFileSync(path.join(state, `gateway${i}.log`), 'utf8');
    assert.match(log, /draining/, `gateway ${i} drained`);
    assert.match(log, /stopped/, `gateway ${i} stopped cleanly`);
  }
});

// The state dir's pids file: "gateway gw2 1234" -> { 'gateway gw2': 1234 }.
function readPids(state) {
  const out = {};
  for (const line of fs.readFileSync(path.join(state, 'pids'), 'utf8').trim().split('\n')) {
    const parts = line.split(' ');
    out[parts.slice(0, -1).join(' ')] = Number(parts.at(-1));
  }
  return out;
}

const alive = (pid) => fs.existsSync(`/proc/${pid}`) && !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));

test('cluster.sh: a gateway or worker killed with -9 is restarted with backoff and the terminal says so; '
  + 'only Ctrl-C stops everything', { timeout: 90000 }, async (t) => {
  const { base, ports } = await freeBase();
  const state = makeTmpDir('chat-deploy-cluster-');
  const script = new ServerProcess('cluster.sh', 'bash', [path.join(repoRoot, 'scripts', 'cluster.sh'),
    '--bin-dir', binDir, '--base-port', String(base), '--state-dir', state], { cwd: repoRoot });
  const remember = () => {
    for (const pid of childPids(script.pid)) children.add(pid);
  };
  await waitFor(() => {
    if (!script.running) throw new Error(`cluster.sh exited (${script.exitCode}):\n${script.stdout}\n${script.stderr}`);
    return /Ctrl-C stops everything/.test(script.stdout);
  }, { timeoutMs: 30000, what: 'cluster.sh to say the cluster is up' });
  remember();
  assert.match(script.stdout, /failover: +kill -9 a gateway/, 'it says how to try a failover');
  const first = readPids(state);
  assert.deepEqual(Object.keys(first).sort(),
    ['gateway gw1', 'gateway gw2', 'gateway gw3', 'haproxy', 'redis', 'worker w1', 'worker w2']);
  for (const pid of Object.values(first)) assert.ok(children.has(pid), `pid ${pid} is the script's child`);

  // A page's view: two clients through haproxy, one of them on gw2.
  const url = `ws://127.0.0.1:${base}/ws`;
  const room = uniqueRoom('restart');
  const ada = await connect(url);
  const bob = await connect(url);
  await ada.join(room, 'ada');
  await bob.join(room, 'bob');

  const backAgain = async (name, oldPid, restartN, delay) => {
    const re = new RegExp(`${name} \\(pid ${oldPid}\\) exited \\(killed by signal 9\\); restarting in ${delay} s `
      + `\\(restart ${restartN}\\)`);
    await waitFor(() => re.test(script.stdout), { timeoutMs: 10000, what: `"${re.source}"` });
    await waitFor(() => new RegExp(`${name} is back \\(pid \\d+\\)`).test(script.stdout.split(re)[1] || ''),
      { timeoutMs: 20000, what: `${name} back` });
    remember();
    const now = readPids(state)[name];
    assert.notEqual(now, oldPid, `${name} has a new process`);
    assert.ok(alive(now));
    return now;
  };

  process.kill(first['gateway gw2'], 'SIGKILL');
  const gw2b = await backAgain('gateway gw2', first['gateway gw2'], 1, '0.500');
  assert.equal((await httpGet(`http://127.0.0.1:${base + 2}/readyz`)).status, 200, 'gw2 ready again');
  // Killed again at once: the backoff has grown.
  process.kill(gw2b, 'SIGKILL');
  await backAgain('gateway gw2', gw2b, 2, '1.000');
  process.kill(first['worker w1'], 'SIGKILL');
  await backAgain('worker w1', first['worker w1'], 1, '0.500');
  assert.equal((await httpGet(`http://127.0.0.1:${base + 101}/readyz`)).status, 200, 'w1 ready again');

  for (const name of ['redis', 'haproxy', 'gateway gw1', 'gateway gw3', 'worker w2']) {
    assert.equal(readPids(state)[name], first[name], `${name} was left alone`);
    assert.ok(alive(first[name]), `${name} still runs`);
  }
  assert.ok(script.running, 'the script is still running');
  // Through haproxy, chat still works (clients on gw2 reconnect, as a page would).
  const cy = await connect(url);
  await cy.join(room, 'cy');
  const ack = await cy.say(room, 'still here');
  assert.ok(ack.seq > 0);
  t.diagnostic(script.stdout.trim().split('\n').slice(-6).join(' | '));

  script.kill('SIGINT');
  const { code } = await script.waitExit(30000);
  assert.equal(code, 0, `cluster.sh exits 0 on Ctrl-C\n${script.stdout}\n${script.stderr}`);
  assert.match(script.stdout, /stopped\./);
  for (const pid of children) assert.ok(!alive(pid), `process ${pid} is gone`);
  for (const p of ports) assert.equal(await listening(p), false, `nothing listens on ${p} any more`);
});

test('cluster.sh --redis-cluster: a 6-node Redis Cluster behind it; a primary killed fails over and '
  + 'comes back as a replica', { timeout: 120000 }, async (t) => {
  let base;
  for (let i = 0; i < 50 && !base; i++) {
    const p = 20000 + Math.floor(Math.random() * 30000);
    const ports = [p, p + 1, p + 2, p + 3, p + 101, p + 102];
    for (let k = 0; k < 6; k++) ports.push(p + 200 + k, p + 10200 + k);
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) base = p;
  }
  assert.ok(base, 'a free base port');
  const state = makeTmpDir('chat-deploy-cluster-');
  const script = new ServerProcess('cluster.sh', 'bash', [path.join(repoRoot, 'scripts', 'cluster.sh'),
    '--bin-dir', binDir, '--base-port', String(base), '--state-dir', state, '--redis-cluster'],
  { cwd: repoRoot });
  await waitFor(() => {
    if (!script.running) throw new Error(`cluster.sh exited (${script.exitCode}):\n${script.stdout}\n${script.stderr}`);
    return /Ctrl-C stops everything/.test(script.stdout);
  }, { timeoutMs: 60000, what: 'cluster.sh to say the cluster is up' });
  for (const pid of childPids(script.pid)) children.add(pid);
  assert.match(script.stdout, /a Redis Cluster on 127\.0\.0\.1:\d+-\d+ \(3 primaries, 3 replicas\)/);
  const pids = readPids(state);
  const nodes = Object.keys(pids).filter((k) => k.startsWith('redis '));
  assert.equal(nodes.length, 6, 'six Redis nodes');

  const url = `ws://127.0.0.1:${base}/ws`;
  const room = uniqueRoom('rcluster');
  const ada = await connect(url);
  const bob = await connect(url);
  await ada.join(room, 'ada');
  await bob.join(room, 'bob');
  const ack = await ada.say(room, 'on the cluster');
  assert.equal((await bob.next({ type: 'message', room })).seq, ack.seq);
  // A leave goes through the workers' partitioned events.
  bob.close();
  assert.equal((await ada.next({ type: 'presence', room, event: 'leave', nickname: 'bob' }, 10000)).reason, 'closed');

  // kill -9 the primary of the first node's slots: its replica takes over,
  // and the script restarts the old one, which rejoins as a replica.
  const victim = nodes[0];
  process.kill(pids[victim], 'SIGKILL');
  await waitFor(() => new RegExp(`${victim} is back`).test(script.stdout),
    { timeoutMs: 30000, what: `${victim} restarted` });
  await waitFor(async () => (await httpGet(`http://127.0.0.1:${base}/readyz`)).status === 200,
    { timeoutMs: 30000, what: 'ready again through haproxy' });
  const cy = await connect(url);
  const room2 = uniqueRoom('rcluster');
  await cy.join(room2, 'cy');
  assert.ok((await cy.say(room2, 'after the failover')).seq > 0);
  t.diagnostic(script.stdout.trim().split('\n').slice(-4).join(' | '));

  script.kill('SIGINT');
  const { code } = await script.waitExit(30000);
  assert.equal(code, 0, `cluster.sh exits 0 on Ctrl-C\n${script.stdout}\n${script.stderr}`);
  for (const pid of childPids(script.pid)) assert.ok(!alive(pid));
});

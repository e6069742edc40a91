// scripts/cluster.sh, the README's way to run a local cluster without
// Docker: it starts Redis, two workers, three gateways and haproxy on
// loopback, prints haproxy's URL, two people chat through it (landing on
// different gateways), and SIGINT (Ctrl-C) stops everything — gateways by
// draining — leaving no process and no listening port behind.
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

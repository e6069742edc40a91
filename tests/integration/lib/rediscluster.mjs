// A real Redis Cluster on loopback for tests: `primaries` redis-server
// processes with `replicas` replicas each, all --cluster-enabled, joined by
// `redis-cli --cluster create ... --cluster-yes`. A short node timeout makes
// failovers quick, and cluster-require-full-coverage no keeps the other
// shards serving while one fails over (with the default, every shard stops
// for about a second). Every node is a ServerProcess (lib/cluster.mjs), so
// teardown() stops it by PID even when a test fails.
import { spawnSync } from 'node:child_process';
import { startRedis, startGateway, sleep, uniqueRoom } from './cluster.mjs';
import { RedisClient } from './redis.mjs';

const NODE_TIMEOUT_MS = 1000;

// CRC16/XMODEM, as Redis Cluster uses it (keys hash to crc16 % 16384).
function crc16(buf) {
  let crc = 0;
  for (const b of buf) {
    crc ^= b << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

// The slot of a key or shard channel, honouring a {hash tag}.
export function keySlot(key) {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(Buffer.from(key, 'utf8')) % 16384;
}

// CLUSTER NODES as [{id, port, flags[], primary (id or null), slots: [[from, to]...]}].
// A fresh room (uniqueRoom(prefix)) whose channel's slot is among slots,
// a node's [[from, to], ...] as parseNodes gives them.
export function roomIn(slots, prefix) {
  for (let i = 0; i < 10000; i++) {
    const room = uniqueRoom(prefix);
    const slot = keySlot(`chat:{${room}}`);
    if (slots.some(([a, b]) => slot >= a && slot <= b)) return room;
  }
  throw new Error('no room found in those slots');
}

export function parseNodes(text) {
  return text.trim().split('\n').map((line) => {
    const f = line.split(' ');
    const slots = f.slice(8).filter((s) => !s.startsWith('[')).map((s) => {
      const [a, b] = s.split('-').map(Number);
      return [a, b ?? a];
    });
    return {
      id: f[0], port: Number(f[1].split(':')[1].split('@')[0]), flags: f[2].split(','),
      primary: f[3] === '-' ? null : f[3], slots,
    };
  });
}

async function clusterInfo(port) {
  const text = await cmdOn(port, 'CLUSTER', 'INFO');
  return Object.fromEntries(text.trim().split('\r\n').map((l) => l.split(':')));
}

// Waits until every listed node says cluster_state:ok and knows `known` nodes.
export async function waitClusterOk(ports, { known = ports.length, timeoutMs = 20000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const infos = await Promise.all(ports.map(clusterInfo));
      if (infos.every((i) => i.cluster_state === 'ok' && Number(i.cluster_known_nodes) >= known)) return;
      last = JSON.stringify(infos.map((i) => [i.cluster_state, i.cluster_known_nodes]));
    } catch (e) {
      last = e.message;
    }
    if (Date.now() >= deadline) throw new Error(`redis cluster not ok within ${timeoutMs} ms: ${last}`);
    await sleep(100);
  }
}

// Waits until every primary has `replicas` replicas in state online (done
// with their first sync): until then WAIT counts none of them.
export async function waitReplicasOnline(ports, replicas, { timeoutMs = 20000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const tops = parseNodes(await cmdOn(ports[0], 'CLUSTER', 'NODES'));
    const primaries = tops.filter((n) => n.flags.includes('master') && n.slots.length);
    const infos = await Promise.all(primaries.map((n) => cmdOn(n.port, 'INFO', 'replication')));
    const online = infos.map((t) => (t.match(/state=online/g) || []).length);
    if (online.every((k) => k >= replicas)) return;
    last = JSON.stringify(online);
    if (Date.now() >= deadline) throw new Error(`replicas not online within ${timeoutMs} ms: ${last}`);
    await sleep(100);
  }
}

async function cmdOn(port, ...args) {
  const c = await RedisClient.connect(port, { timeoutMs: 1000 });
  try {
    return await c.command(...args);
  } finally {
    c.close();
  }
}

const CLUSTER_ARGS = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
  '--cluster-node-timeout', String(NODE_TIMEOUT_MS), '--cluster-require-full-coverage', 'no',
  '--appendonly', 'no'];

function redisCli(args, what) {
  const r = spawnSync('redis-cli', args, { encoding: 'utf8', timeout: 60000 });
  if (r.status !== 0) throw new Error(`redis-cli ${what} failed (${r.status}): ${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

// A 3+3 cluster and `gateways` gateways seeded with every node of it, each
// with gatewayArgs: { rc, gateways }.
export async function startClusterWithGateways({ gateways = 2, gatewayArgs = [] } = {}) {
  const rc = await startRedisCluster({ primaries: 3, replicas: 1 });
  const gws = [];
  for (let i = 0; i < gateways; i++) gws.push(await startGateway({ redisCluster: rc.seeds, extraArgs: gatewayArgs }));
  return { rc, gateways: gws };
}

export async function startRedisCluster({ primaries = 3, replicas = 1 } = {}) {
  const n = primaries * (1 + replicas);
  const nodes = await Promise.all(Array.from({ length: n }, () => startRedis({ extraArgs: CLUSTER_ARGS })));
  const ports = nodes.map((r) => r.port);
  redisCli(['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`),
    '--cluster-replicas', String(replicas), '--cluster-yes'], 'create');
  await waitClusterOk(ports);
  await waitReplicasOnline(ports, replicas);
  return {
    nodes,
    ports,
    seeds: ports.map((p) => `127.0.0.1:${p}`).join(','),
    async topology() {
      const port = nodes.find((x) => x.proc.running).port;
      return parseNodes(await cmdOn(port, 'CLUSTER', 'NODES'));
    },
    // A new, empty primary joined with redis-cli --cluster add-node; with
    // rebalance, slots are moved onto it (redis-cli --cluster rebalance
    // --cluster-use-empty-masters, MIGRATE under the hood).
    async addPrimary({ rebalance = true } = {}) {
      const node = await startRedis({ extraArgs: CLUSTER_ARGS });
      const seed = `127.0.0.1:${nodes.find((x) => x.proc.running).port}`;
      redisCli(['--cluster', 'add-node', `127.0.0.1:${node.port}`, seed], 'add-node');
      nodes.push(node);
      const up = nodes.filter((x) => x.proc.running).map((x) => x.port);
      await waitClusterOk(up, { known: up.length });
      if (rebalance)
        redisCli(['--cluster', 'rebalance', seed, '--cluster-use-empty-masters', '--cluster-yes'], 'rebalance');
      return node;
    },
    // The node (from nodes) that serves slot as primary.
    async ownerOf(slot) {
      const top = await this.topology();
      const owner = top.find((x) => x.flags.includes('master') && !x.flags.includes('fail') &&
        x.slots.some(([a, b]) => slot >= a && slot <= b));
      return owner && { ...owner, node: nodes.find((x) => x.port === owner.port) };
    },
  };
}

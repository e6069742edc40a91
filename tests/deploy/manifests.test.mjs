// The deployment files say what the issue asks, checked without a cluster:
// the Kubernetes manifests (deploy/k8s), the compose file and its
// host-network override, and the Dockerfile. YAML is parsed by Debian's
// python3-yaml; the docker test (tests/deploy/docker) runs compose for real.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { binDir } from '../integration/lib/harness.mjs';
import { repoRoot } from './lib/deploy.mjs';

const python = ['/usr/bin/python3', '/bin/python3'].find((f) => fs.existsSync(f)) || 'python3';

// Parses YAML files (every document of each) with python3-yaml; returns
// {file: [documents]}.
function loadYaml(files) {
  const r = spawnSync(python, ['-c', `
import json, sys
try:
    import yaml
except ImportError:
    sys.exit("python3-yaml is missing: apt-get install python3-yaml")
print(json.dumps({f: [d for d in yaml.safe_load_all(open(f)) if d is not None] for f in sys.argv[1:]}))
`, ...files], { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, `YAML parse failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const k8sDir = path.join(repoRoot, 'deploy', 'k8s');
const k8sFiles = fs.readdirSync(k8sDir).filter((f) => f.endsWith('.yaml')).map((f) => path.join(k8sDir, f));
const k8s = loadYaml(k8sFiles);
const objects = Object.values(k8s).flat();
const find = (kind, name) => objects.find((o) => o.kind === kind && o.metadata?.name === name);

const gatewayEnv = fs.readFileSync(path.join(repoRoot, 'deploy', 'systemd', 'gateway.env'), 'utf8');
const dockerfile = fs.readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
const dockerUid = Number(/^USER (\d+)(:\d+)?$/m.exec(dockerfile)?.[1]);

test('k8s: every file is valid YAML with apiVersion, kind and name, and kustomization lists them all', () => {
  for (const [f, docs] of Object.entries(k8s)) {
    assert.ok(docs.length >= 1, `${f}: a document`);
    for (const d of docs) {
      assert.ok(d.apiVersion && d.kind, `${f}: apiVersion and kind`);
      if (d.kind !== 'Kustomization') assert.ok(d.metadata?.name, `${f}: metadata.name`);
    }
  }
  const kust = objects.find((o) => o.kind === 'Kustomization');
  const listed = new Set(kust.resources);
  for (const f of k8sFiles.map((x) => path.basename(x)).filter((x) => x !== 'kustomization.yaml')) {
    assert.ok(listed.has(f), `kustomization.yaml lists ${f}`);
  }
});

for (const name of ['chat-gateway', 'chat-worker']) {
  test(`k8s: ${name} Deployment: probes, resources, non-root`, () => {
    const d = find('Deployment', name);
    assert.ok(d, `a Deployment ${name}`);
    const pod = d.spec.template.spec;
    assert.deepEqual(d.spec.selector.matchLabels, Object.fromEntries(
      Object.entries(d.spec.template.metadata.labels).filter(([k]) => k in d.spec.selector.matchLabels)));
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.runAsUser, dockerUid, 'the Dockerfile\'s USER');
    assert.equal(pod.containers.length, 1);
    const c = pod.containers[0];
    assert.equal(c.args[0], name, 'runs its binary');
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    assert.ok(c.resources.requests.cpu && c.resources.requests.memory, 'requests');
    assert.ok(c.resources.limits.memory, 'a memory limit');
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
    const env = Object.fromEntries((c.env || []).filter((e) => 'value' in e).map((e) => [e.name, e.value]));
    const port = Number(env.CHAT_LISTEN.split(':').pop());
    assert.equal(c.ports[0].containerPort, port, 'CHAT_LISTEN and the container port agree');
  });
}

test('k8s: gateway shutdown fits the drain (preStop + grace + drain < terminationGracePeriodSeconds)', () => {
  const pod = find('Deployment', 'chat-gateway').spec.template.spec;
  const c = pod.containers[0];
  const env = Object.fromEntries(c.env.filter((e) => 'value' in e).map((e) => [e.name, Number(e.value)]));
  assert.ok(env.CHAT_DRAIN_GRACE_MS >= 1000 && env.CHAT_DRAIN_MS > 0, 'drain times set');
  const pre = c.lifecycle.preStop.exec.command;
  assert.equal(pre[0], 'sleep');
  const total = Number(pre[1]) + (env.CHAT_DRAIN_GRACE_MS + env.CHAT_DRAIN_MS) / 1000;
  assert.ok(pod.terminationGracePeriodSeconds >= total + 5,
    `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} >= preStop + grace + drain (${total}) + 5`);
  assert.ok(c.readinessProbe.periodSeconds * c.readinessProbe.failureThreshold <= env.CHAT_DRAIN_GRACE_MS / 1000,
    'the readiness probe notices a drain within its grace');
  const d = find('Deployment', 'chat-gateway');
  assert.equal(d.spec.strategy.rollingUpdate.maxUnavailable, 0, 'rolling update never drops below the count');
  assert.match(gatewayEnv, new RegExp(`CHAT_DRAIN_GRACE_MS=${env.CHAT_DRAIN_GRACE_MS}\\b`), 'same grace as systemd');
});

test('k8s: the Service reaches the gateway pods; the HPA scales the gateway Deployment', () => {
  const svc = find('Service', 'chat-gateway');
  const gw = find('Deployment', 'chat-gateway');
  for (const [k, v] of Object.entries(svc.spec.selector)) assert.equal(gw.spec.template.metadata.labels[k], v);
  const portNames = gw.spec.template.spec.containers[0].ports.map((p) => p.name);
  assert.ok(portNames.includes(svc.spec.ports[0].targetPort), 'targetPort names a container port');
  assert.ok(!svc.spec.sessionAffinity || svc.spec.sessionAffinity === 'None', 'no sticky sessions needed');
  const hpa = find('HorizontalPodAutoscaler', 'chat-gateway');
  assert.equal(hpa.apiVersion, 'autoscaling/v2');
  assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'chat-gateway' });
  assert.ok(hpa.spec.minReplicas >= 2 && hpa.spec.maxReplicas > hpa.spec.minReplicas);
  assert.ok(hpa.spec.metrics.length >= 1);
  assert.ok(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds >= 300, 'scales down slowly');
  assert.ok(gw.spec.template.spec.containers[0].resources.requests.cpu, 'utilization needs a cpu request');
});

// ---------------------------------------------------------------------------

const compose = loadYaml([path.join(repoRoot, 'docker-compose.yml'),
  path.join(repoRoot, 'deploy', 'docker', 'host-network.yml')]);
const base = Object.values(compose)[0][0];
const hostOverride = Object.values(compose)[1][0];

test('compose: redis with AOF, a named volume and a healthcheck; every service health checked', () => {
  const s = base.services;
  assert.deepEqual(Object.keys(s).sort(), ['gateway', 'haproxy', 'redis', 'worker']);
  const cmd = s.redis.command.join(' ');
  assert.match(cmd, /--appendonly yes/);
  assert.ok(s.redis.volumes.some((v) => v.startsWith('redis-data:')), 'named volume');
  assert.ok('redis-data' in base.volumes);
  for (const [name, svc] of Object.entries(s)) assert.ok(svc.healthcheck?.test, `${name} has a healthcheck`);
  assert.equal(s.worker.scale, 2, 'two workers');
  assert.ok(!('ports' in s.gateway), 'gateways publish nothing, so --scale works');
  assert.equal(s.haproxy.ports.length, 1, 'haproxy publishes one port');
  assert.match(s.haproxy.volumes[0], /^\.\/deploy\/haproxy\/haproxy\.cfg:/);
  assert.equal(s.gateway.depends_on.redis.condition, 'service_healthy');
  assert.equal(s.worker.depends_on.redis.condition, 'service_healthy');
  assert.equal(s.haproxy.depends_on.gateway.condition, 'service_healthy');
  assert.match(s.redis.image, /\$\{CHAT_REDIS_IMAGE:-/);
  assert.match(s.haproxy.image, /\$\{CHAT_HAPROXY_IMAGE:-/);
  assert.match(s.gateway.image, /\$\{CHAT_IMAGE:-/);
  assert.match(s.gateway.build.args.BASE, /\$\{CHAT_BASE_IMAGE:-debian:bookworm-slim\}/);
  assert.ok(Number(String(s.gateway.stop_grace_period).replace(/s$/, '')) * 1000 >=
    Number(/CHAT_DRAIN_GRACE_MS:-(\d+)/.exec(s.gateway.environment.CHAT_DRAIN_GRACE_MS)[1]) +
    Number(/CHAT_DRAIN_MS:-(\d+)/.exec(s.gateway.environment.CHAT_DRAIN_MS)[1]) + 5000,
  'stop_grace_period outlasts the drain');
});

test('compose host-network override: every running service on the host network, each with its own port', () => {
  const s = hostOverride.services;
  const running = Object.entries(s).filter(([, v]) => !v.profiles);
  for (const [name, svc] of running) assert.equal(svc.network_mode, 'host', `${name} on the host network`);
  assert.ok(s.haproxy.profiles, 'the port-publishing haproxy is parked in a profile');
  const listens = running.map(([, v]) => v.environment?.CHAT_LISTEN).filter(Boolean);
  assert.equal(new Set(listens).size, listens.length, `distinct listen addresses: ${listens}`);
  assert.ok(listens.every((l) => l.startsWith('127.0.0.1:')), 'loopback only');
  assert.equal(hostOverride.networks.default.external, true, 'no network of compose\'s');
});

// ---------------------------------------------------------------------------

test('Dockerfile: multi-stage from BASE, non-root, HEALTHCHECK on /healthz', () => {
  assert.match(dockerfile, /^ARG BASE=debian:bookworm-slim$/m);
  assert.equal(dockerfile.match(/^FROM \$\{BASE\}/gm).length, 2, 'build and runtime stages from BASE');
  assert.ok(dockerUid > 0, 'USER is a numeric non-root uid');
  assert.match(dockerfile, /^HEALTHCHECK [^]*\/healthz/m);
  const ignore = fs.readFileSync(path.join(repoRoot, '.dockerignore'), 'utf8');
  assert.match(ignore, /^\*$/m, '.dockerignore keeps the build context to what the build needs');
});

test('Dockerfile: the runtime stage installs the packages of every library the binaries load', (t) => {
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('FROM ${BASE}'));
  const pkgs = /--no-install-recommends([^&]+)&&/.exec(runtime)[1].replace(/\\\n/g, ' ').trim().split(/\s+/);
  t.diagnostic(`runtime packages: ${pkgs.join(' ')}`);
  for (const want of ['libwebsockets17', 'libwebsockets-evlib-uv', 'libuv1', 'libhiredis0.14', 'libevent-2.1-7',
    'libcjson1', 'curl']) assert.ok(pkgs.includes(want), `installs ${want}`);
  assert.ok(!pkgs.some((p) => p.endsWith('-dev')), 'no -dev package at run time');
  // What apt would install for them (recursively), on this Debian 12.
  const deps = spawnSync('apt-cache', ['depends', '--recurse', '--no-recommends', '--no-suggests',
    '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances', ...pkgs], { encoding: 'utf8', timeout: 30000 });
  assert.equal(deps.status, 0, deps.stderr);
  const closure = new Set(deps.stdout.split('\n').map((l) => l.replace(/^\s*(\|?(Pre)?Depends: )?/, '').replace(/:any$/, '').trim())
    .filter((l) => l && !l.startsWith('<')));
  for (const b of ['chat-gateway', 'chat-worker']) {
    const bin = path.join(binDir, b);
    assert.ok(fs.existsSync(bin), `${bin}: build first or set CHAT_BIN_DIR`);
    const ldd = spawnSync('ldd', [bin], { encoding: 'utf8', timeout: 10000 });
    const libs = [...ldd.stdout.matchAll(/=> (\/\S+)/g)].map((m) => fs.realpathSync(m[1]));
    for (const lib of libs) {
      const owner = spawnSync('dpkg', ['-S', lib], { encoding: 'utf8', timeout: 10000 });
      if (owner.status !== 0) continue; // e.g. a sanitizer runtime outside dpkg
      const pkg = owner.stdout.split(':')[0];
      assert.ok(closure.has(pkg), `${b} loads ${lib} from ${pkg}, which the runtime stage does not bring`);
    }
  }
  // lws loads its libuv event loop at run time (not in ldd): the plugin's package.
  assert.ok(pkgs.includes('libwebsockets-evlib-uv'));
});

// The haproxy configurations are valid (`haproxy -c`) and share their
// settings: deploy/haproxy/haproxy.cfg as docker compose runs it, the one
// scripts/cluster.sh generates for the local cluster, and the loopback one
// the docker test and the other deploy tests use (both made by
// deploy/haproxy/local-cfg.sh). And the settings are the ones the issue
// asks for: TCP, leastconn, /readyz checks, long timeouts, no session kill
// when a server goes down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { makeTmpDir, cleanup } from '../integration/lib/harness.mjs';
import { repoRoot, sharedCfg, localCfg, haproxyCheck, defaultServerArgs } from './lib/deploy.mjs';

test.after(cleanup);

const shared = fs.readFileSync(sharedCfg, 'utf8');

// Lines that carry settings: comments and blank lines dropped.
function settings(text) {
  return text.split('\n').map((l) => l.replace(/#.*/, '').trimEnd()).filter((l) => l.trim());
}

// What the loopback variants must keep of the shared file: everything but
// the lines they replace (@bind, @servers) and the compose-only tail.
function sharedPart(text) {
  const head = text.slice(0, text.indexOf('# @compose-only'));
  return settings(head.split('\n').filter((l) => !/# @(bind|servers)/.test(l)).join('\n'));
}

test('deploy/haproxy/haproxy.cfg (docker compose) passes haproxy -c', () => {
  const r = haproxyCheck(sharedCfg);
  assert.ok(r.ok, r.output);
});

test('the settings the deployment relies on are there', () => {
  const s = settings(shared).map((l) => l.trim().replace(/\s+/g, ' '));
  for (const want of ['mode tcp', 'balance leastconn', 'option httpchk GET /readyz', 'http-check expect status 200',
    'timeout tunnel 1h', 'timeout client 1h', 'timeout server 1h', 'option redispatch 1']) {
    assert.ok(s.includes(want), `has "${want}"`);
  }
  assert.ok(!/on-marked-down|shutdown-sessions|on-marked-up/.test(settings(shared).join('\n')),
    'a server marked down keeps its sessions (the gateway drains them)');
  const ds = defaultServerArgs(shared);
  assert.ok(ds.includes('check'), 'servers are health checked');
  const inter = ds[ds.indexOf('inter') + 1];
  assert.match(inter, /^\d+ms$/, 'inter in ms');
  assert.ok(parseInt(inter, 10) <= 1000, 'checked often enough to notice a drain within the drain grace');
  assert.match(shared, /server-template gw \d+-\d+ gateway:8080 .*resolvers docker .*init-addr none/,
    'compose: every gateway replica through docker DNS, starting before they resolve');
  assert.match(shared, /^resolvers docker$/m);
});

test('local-cfg.sh output passes haproxy -c and keeps every shared setting', () => {
  const dir = makeTmpDir('chat-deploy-cfg-');
  const text = localCfg({ bind: '127.0.0.1:18000', servers: ['127.0.0.1:18001', '127.0.0.1:18002'],
    statsSocket: path.join(dir, 'admin.sock') });
  const file = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(file, text);
  const r = haproxyCheck(file);
  assert.ok(r.ok, r.output);
  const got = settings(text);
  assert.ok(got.includes('    bind 127.0.0.1:18000'));
  assert.ok(got.includes('    server gw1 127.0.0.1:18001'));
  assert.ok(got.includes('    server gw2 127.0.0.1:18002'));
  assert.ok(got.some((l) => l.includes(`stats socket ${dir}/admin.sock`)));
  assert.ok(!got.some((l) => /resolvers|server-template|bind :8080/.test(l)), 'nothing of compose left');
  const kept = got.filter((l) => !/^\s*(bind|server|stats socket) /.test(l));
  assert.deepEqual(kept, sharedPart(shared), 'every other setting line, in order, as in haproxy.cfg');
});

test('scripts/cluster.sh --print-haproxy-cfg passes haproxy -c and matches local-cfg.sh', () => {
  const dir = makeTmpDir('chat-deploy-cluster-cfg-');
  const r = spawnSync('bash', [path.join(repoRoot, 'scripts', 'cluster.sh'), '--print-haproxy-cfg',
    '--gateways', '3', '--base-port', '19000', '--state-dir', dir], { encoding: 'utf8', timeout: 10000 });
  assert.equal(r.status, 0, r.stderr);
  const file = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(file, r.stdout);
  const c = haproxyCheck(file);
  assert.ok(c.ok, c.output);
  const servers = settings(r.stdout).filter((l) => /^\s*server /.test(l)).map((l) => l.trim());
  assert.deepEqual(servers, ['server gw1 127.0.0.1:19001', 'server gw2 127.0.0.1:19002', 'server gw3 127.0.0.1:19003']);
  assert.ok(settings(r.stdout).includes('    bind 127.0.0.1:19000'), 'haproxy on the base port');
  assert.equal(r.stdout, localCfg({ bind: '127.0.0.1:19000',
    servers: ['127.0.0.1:19001', '127.0.0.1:19002', '127.0.0.1:19003'],
    statsSocket: path.join(fs.realpathSync(dir), 'haproxy.sock') }));
});

test('local-cfg.sh refuses a source without its markers', () => {
  const dir = makeTmpDir('chat-deploy-cfg-bad-');
  const src = path.join(dir, 'bad.cfg');
  fs.writeFileSync(src, shared.replaceAll('# @servers', ''));
  const r = spawnSync('bash', [path.join(repoRoot, 'deploy', 'haproxy', 'local-cfg.sh'), '--source', src,
    '--bind', '127.0.0.1:1', '127.0.0.1:2'], { encoding: 'utf8', timeout: 10000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /marker/);
});

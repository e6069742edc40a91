// deploy/README.md names metrics and flags: every one of them exists, so
// the sizing guide cannot drift from the binaries. Metric names are looked
// up in a running gateway's and worker's /metrics, flags in --help.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  startRedis, startGateway, startWorker, teardown, httpGet, runToExit, gatewayBin, workerBin, binDir,
} from '../integration/lib/harness.mjs';
import { repoRoot } from './lib/deploy.mjs';

const benchBin = path.join(binDir, 'chat-bench');
const readme = fs.readFileSync(path.join(repoRoot, 'deploy', 'README.md'), 'utf8');
let gw;
let wk;

before(async () => {
  const redis = await startRedis();
  gw = await startGateway({ redisUrl: redis.url });
  wk = await startWorker({ redisUrl: redis.url });
}, { timeout: 20000 });
after(teardown);

test('every metric deploy/README.md names is exported', async () => {
  const names = [...new Set(readme.match(/\bchat_(gateway|worker)_[a-z_]+/g))];
  assert.ok(names.length >= 10, `names found: ${names}`);
  const exported = (await httpGet(`${gw.http}/metrics`)).body + (await httpGet(`${wk.http}/metrics`)).body;
  const missing = names.filter((n) => !new RegExp(`^# TYPE ${n} `, 'm').test(exported));
  assert.deepEqual(missing, [], 'metrics named in deploy/README.md but not exported');
});

test('every flag deploy/README.md names exists', () => {
  const flags = [...new Set(readme.match(/(?<![\w-])--[a-z][a-z-]+[a-z]/g))];
  const help = [gatewayBin, workerBin, benchBin].map((bin) => runToExit(bin, ['--help']).stdout).join('');
  // Flags of other programs the README shows (scripts, docker, debootstrap, redis-cli).
  const others = new Set(['--gateways', '--workers', '--base-port', '--bin-dir', '--build-arg', '--variant',
    '--scale', '--build', '--network', '--print-haproxy-cfg', '--state-dir', '--cluster']);
  const missing = flags.filter((f) => !others.has(f) && !help.includes(`${f} `));
  assert.deepEqual(missing, [], 'flags named in deploy/README.md that no binary has');
});

// deploy/systemd: both units pass `systemd-analyze verify` (on a copy whose
// ExecStart names this build's binary, since verify insists that the binary
// exists) and `systemd-analyze security --offline`, carry the sandboxing
// the issue asks for, and give a gateway longer to stop than its drain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { binDir, makeTmpDir, cleanup } from '../integration/lib/harness.mjs';
import { repoRoot } from './lib/deploy.mjs';

test.after(cleanup);

const unitDir = path.join(repoRoot, 'deploy', 'systemd');
const analyze = ['/usr/bin/systemd-analyze', '/bin/systemd-analyze'].find((f) => fs.existsSync(f));

// {Section: {Key: [values]}} of a unit file.
function parseUnit(text) {
  const out = {};
  let section = null;
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (!l || l.startsWith('#') || l.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(l);
    if (s) {
      section = s[1];
      out[section] ??= {};
      continue;
    }
    const i = l.indexOf('=');
    const k = l.slice(0, i);
    (out[section][k] ??= []).push(l.slice(i + 1));
  }
  return out;
}

function envFile(file) {
  return Object.fromEntries(fs.readFileSync(file, 'utf8').split('\n')
    .filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

function seconds(v) {
  const m = /^(\d+)(ms|s|min)?$/.exec(v);
  assert.ok(m, `a duration: ${v}`);
  return Number(m[1]) * ({ ms: 0.001, s: 1, min: 60 }[m[2] || 's']);
}

for (const kind of ['gateway', 'worker']) {
  const unitFile = path.join(unitDir, `chat-${kind}.service`);
  const envPath = path.join(unitDir, `${kind}.env`);

  test(`chat-${kind}.service: sandboxing, signals and limits`, () => {
    const u = parseUnit(fs.readFileSync(unitFile, 'utf8'));
    const svc = u.Service;
    const one = (k) => svc[k]?.at(-1);
    assert.equal(one('ExecStart'), `/usr/local/bin/chat-${kind}`);
    assert.equal(one('EnvironmentFile'), `/etc/chat/${kind}.env`);
    assert.equal(one('KillSignal'), 'SIGTERM');
    assert.ok(one('DynamicUser') === 'yes' || one('User'), 'not root: DynamicUser or User');
    for (const [k, v] of Object.entries({
      NoNewPrivileges: 'yes', ProtectSystem: 'strict', ProtectHome: 'yes', PrivateTmp: 'yes',
      MemoryDenyWriteExecute: 'yes', SystemCallFilter: '@system-service',
    })) assert.equal(one(k), v, `${k}=${v}`);
    assert.deepEqual(one('RestrictAddressFamilies').split(/\s+/).sort(), ['AF_INET', 'AF_INET6', 'AF_UNIX']);
    assert.ok(Number(one('LimitNOFILE')) >= 65536, 'many open files');
    assert.ok(fs.existsSync(envPath), `${kind}.env, the example EnvironmentFile`);
    if (kind === 'gateway') {
      const env = envFile(envPath);
      const drain = (Number(env.CHAT_DRAIN_GRACE_MS) + Number(env.CHAT_DRAIN_MS)) / 1000;
      assert.ok(drain > 0, 'gateway.env sets the drain times');
      assert.ok(seconds(one('TimeoutStopSec')) >= drain + 5,
        `TimeoutStopSec ${one('TimeoutStopSec')} outlasts the drain (${drain} s) with room to spare`);
      assert.ok(Number(env.CHAT_DRAIN_GRACE_MS) >= 1000, 'drain grace longer than haproxy needs to notice');
    }
  });

  test(`chat-${kind}.service: systemd-analyze verify and security`, (t) => {
    assert.ok(analyze, 'systemd-analyze not found: apt-get install systemd');
    const dir = makeTmpDir('chat-deploy-systemd-');
    const bin = path.join(binDir, `chat-${kind}`);
    assert.ok(fs.existsSync(bin), `${bin}: build first or set CHAT_BIN_DIR`);
    const text = fs.readFileSync(unitFile, 'utf8')
      .replace(`ExecStart=/usr/local/bin/chat-${kind}`, `ExecStart=${bin}`)
      .replace(`EnvironmentFile=/etc/chat/${kind}.env`, `EnvironmentFile=${envPath}`);
    const copy = path.join(dir, `chat-${kind}.service`);
    fs.writeFileSync(copy, text);
    const v = spawnSync(analyze, ['verify', '--man=no', copy], { encoding: 'utf8', timeout: 30000 });
    assert.equal(v.status, 0, `systemd-analyze verify:\n${v.stdout}${v.stderr}`);
    assert.equal(`${v.stdout}${v.stderr}`.trim(), '', 'no warnings');
    const s = spawnSync(analyze, ['security', '--offline=yes', '--no-pager', copy], { encoding: 'utf8', timeout: 30000 });
    const m = /Overall exposure level for \S+: ([\d.]+)/.exec(s.stdout);
    assert.ok(m, `systemd-analyze security:\n${s.stdout}${s.stderr}`);
    t.diagnostic(`systemd-analyze security: exposure ${m[1]} (0 = most locked down, 10 = unprotected)`);
    assert.ok(Number(m[1]) <= 2.0, `exposure level ${m[1]} stays low`);
  });
}

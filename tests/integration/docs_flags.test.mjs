// README.md documents every flag once, in a table per binary; this checks the
// tables against what each binary's --help prints: the same flags, and the
// same defaults wherever --help states one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { gatewayBin, workerBin, runToExit } from './lib/harness.mjs';

const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');

// The rows of the table under "### <name>": flag -> default column text.
function readmeFlags(name) {
  const section = readme.split(`### ${name}\n`)[1];
  assert.ok(section, `README has a "### ${name}" section`);
  const rows = new Map();
  for (const line of section.split('\n## ')[0].split('\n### ')[0].split('\n')) {
    const m = line.match(/^\| `--([a-z-]+)[^`]*` \| ([^|]*) \|/);
    if (m) rows.set(m[1], m[2].trim().replace(/`/g, ''));
  }
  return rows;
}

// --help lines: "  --flag META   help" then "  [CHAT_FLAG, default X]".
function helpFlags(bin) {
  const r = runToExit(bin, ['--help'], { timeoutMs: 10000 });
  assert.equal(r.status, 0, r.stderr);
  const flags = new Map();
  let last = null;
  for (const line of r.stdout.split('\n')) {
    const flag = line.match(/^ {2}--([a-z-]+)/);
    if (flag) {
      last = flag[1];
      if (!['help', 'version'].includes(last)) flags.set(last, null);
      continue;
    }
    const def = line.match(/\[CHAT_[A-Z_]+, default (.*)\]$/);
    if (def && last && flags.has(last)) flags.set(last, def[1]);
  }
  return flags;
}

for (const [name, bin] of [['chat-gateway', gatewayBin], ['chat-worker', workerBin]]) {
  test(`README's ${name} flags match its --help`, { timeout: 15000 }, () => {
    const documented = readmeFlags(name);
    const actual = helpFlags(bin);
    assert.deepEqual([...documented.keys()].sort(), [...actual.keys()].sort());
    for (const [flag, def] of actual) {
      if (def !== null)
        assert.equal(documented.get(flag), def, `default of --${flag}`);
    }
  });
}

// The gateway's command line: --help and --version exit 0; a bad flag, a
// bad value or a bad --redis URL exits non-zero with a message on stderr
// (and never reaches the point of listening).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gatewayBin, runToExit } from './lib/harness.mjs';

const SANITIZER = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:/;
const base = ['--listen', '127.0.0.1:1', '--redis', 'redis://127.0.0.1:1', '--id', 'cli'];

function run(args, env) {
  const r = runToExit(gatewayBin, args, { timeoutMs: 10000, env });
  assert.ok(!SANITIZER.test(r.stderr), `sanitizer report:\n${r.stderr}`);
  assert.equal(r.signal, null, `killed by ${r.signal} (a hang or a crash)`);
  return r;
}

test('--help exits 0 and lists --listen, --redis, --id', { timeout: 15000 }, () => {
  const r = run(['--help']);
  assert.equal(r.status, 0, r.stderr);
  for (const flag of ['--listen', '--redis', '--id', '--web-root', '--history-max', '--message-bytes',
    '--frame-bytes', '--max-bad-frames', '--drain-ms']) {
    assert.ok(r.stdout.includes(flag), `--help mentions ${flag}`);
  }
});

test('--version exits 0 and prints a version', { timeout: 15000 }, () => {
  const r = run(['--version']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\d+\.\d+/);
});

for (const [what, args] of [
  ['an unknown flag', [...base, '--no-such-flag']],
  ['a flag missing its value', ['--listen', '127.0.0.1:1', '--id', 'cli', '--redis']],
  ['a --redis URL of another scheme', ['--listen', '127.0.0.1:1', '--id', 'cli', '--redis', 'http://127.0.0.1:6379']],
  ['a --redis URL that is not a URL', ['--listen', '127.0.0.1:1', '--id', 'cli', '--redis', 'not a url']],
  ['a --redis URL with a bad port', ['--listen', '127.0.0.1:1', '--id', 'cli', '--redis', 'redis://127.0.0.1:99999']],
  ['a bad --listen', ['--listen', 'nowhere', '--redis', 'redis://127.0.0.1:1', '--id', 'cli']],
  ['a non-numeric --history-max', [...base, '--history-max', 'lots']],
  ['a negative --message-bytes', [...base, '--message-bytes', '-5']],
  ['a bad --id', ['--listen', '127.0.0.1:1', '--redis', 'redis://127.0.0.1:1', '--id', 'has space']],
]) {
  test(`${what} exits non-zero with a message`, { timeout: 15000 }, () => {
    const r = run(args);
    assert.notEqual(r.status, 0, `exit status for ${args.join(' ')}`);
    assert.ok(r.stderr.trim().length > 0, 'a message on stderr');
  });
}

test('a bad value from the environment is rejected too', { timeout: 15000 }, () => {
  const r = run(['--listen', '127.0.0.1:1', '--id', 'cli'], { CHAT_REDIS: 'bogus://x' });
  assert.notEqual(r.status, 0);
  assert.ok(r.stderr.trim().length > 0);
});

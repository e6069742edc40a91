// The library's surface as documented: every export of src/index.js is
// declared in the hand-written index.d.ts (and nothing declared is missing
// from the code), every ChatClient method the .d.ts names exists, and the
// README's example runs as printed against a real cluster.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startCluster, teardown } from '../integration/lib/harness.mjs';
import * as lib from '../../clients/js/src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.resolve(here, '..', '..', 'clients', 'js');
const dts = fs.readFileSync(path.join(pkg, 'index.d.ts'), 'utf8');
after(teardown);

test('index.d.ts declares exactly what src/index.js exports', () => {
  const declared = [...dts.matchAll(/^export (?:class|function|const) (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(declared, Object.keys(lib).sort());
});

test('every ChatClient method in index.d.ts exists', () => {
  const body = dts.slice(dts.indexOf('export class ChatClient'));
  const methods = [...body.slice(0, body.indexOf('\n}')).matchAll(/^ {2}(\w+)(?:<[^>]*>)?\(/gm)].map((m) => m[1]);
  assert.ok(methods.length >= 10, `methods found: ${methods}`);
  for (const m of methods) assert.equal(typeof lib.ChatClient.prototype[m], 'function', `ChatClient.${m}`);
  const pkgJson = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8'));
  assert.equal(pkgJson.type, 'module');
  assert.equal(pkgJson.types, './index.d.ts');
  assert.deepEqual(pkgJson.dependencies ?? {}, {}, 'no dependencies');
});

test('the README example runs as printed (about 15 lines)', { timeout: 30000 }, async () => {
  const cl = await startCluster({ gateways: 2, workers: 0 });
  const readme = fs.readFileSync(path.join(pkg, 'README.md'), 'utf8');
  const code = readme.split('## Example')[1].split('```js\n')[1].split('```')[0];
  const lines = code.trim().split('\n').length;
  assert.ok(lines >= 12 && lines <= 18, `${lines} lines`);
  const wsEntry = pathToFileURL(path.resolve(here, '..', 'node_modules', 'ws', 'wrapper.mjs')).href;
  const runnable = code
    .replace("from 'ws'", `from '${wsEntry}'`)
    .replace("from 'chat-cluster-client'", `from '${pathToFileURL(path.join(pkg, 'src', 'index.js')).href}'`)
    .replace(/\['ws:\/\/127\.0\.0\.1:8000\/ws', 'ws:\/\/127\.0\.0\.1:8001\/ws'\]/, JSON.stringify(cl.gateways.map((g) => g.url)))
    + '\nchat.close();\n';
  assert.notEqual(runnable.indexOf(cl.gateways[0].url), -1, 'the example\'s URLs were found and replaced');
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'chat-readme-')), 'example.mjs');
  fs.writeFileSync(file, runnable);
  const r = spawnSync(process.execPath, [file], { timeout: 15000, killSignal: 'SIGKILL', encoding: 'utf8' });
  fs.rmSync(path.dirname(file), { recursive: true, force: true });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /connection: open gw1/);
  assert.match(r.stdout, /#lobby ada joined|#lobby ada join/);
  assert.match(r.stdout, /#lobby ada: hello/);
  assert.match(r.stdout, /stored as seq 1/);
});

// What the chat-bench tests share: the binary, and running it by PID.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { binDir } from '../integration/lib/harness.mjs';

export const benchBin = path.join(binDir, 'chat-bench');

// Runs chat-bench to completion (SIGKILL after timeoutMs, by PID). Resolves
// with its exit code, output and the parsed last line of stdout (null if
// that is not JSON: the caller's assertion reports it).
export function runBench(args, timeoutMs = 60000) {
  return new Promise((resolve) => {
    const child = spawn(benchBin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let json = null;
      try {
        json = JSON.parse(stdout.trim().split('\n').pop() || '');
      } catch {
        // reported by the caller
      }
      resolve({ code, signal, stdout, stderr, json });
    });
  });
}

// The guard that outlives a test process killed without warning (a CTest
// timeout, SIGKILL): the harness writes "+PID" / "-PID" lines to our stdin as
// it spawns and reaps servers (each leads its own process group). When stdin
// reaches EOF — the test process is gone, however it died — every process
// group still registered gets SIGKILL. "D/path" lines name temporary
// directories, removed then too.
'use strict';

const fs = require('node:fs');

const pids = new Set();
const dirs = new Set(); // "D/path" lines: temporary directories to remove
let pending = '';

process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  pending += chunk;
  let nl;
  while ((nl = pending.indexOf('\n')) >= 0) {
    const line = pending.slice(0, nl).trim();
    pending = pending.slice(nl + 1);
    if (line[0] === 'D') {
      dirs.add(line.slice(1));
      continue;
    }
    const pid = Number(line.slice(1));
    if (!Number.isInteger(pid) || pid <= 0) continue;
    if (line[0] === '+') pids.add(pid);
    else if (line[0] === '-') pids.delete(pid);
  }
});

function reap() {
  for (const pid of pids) {
    for (const target of [-pid, pid]) {
      try {
        process.kill(target, 'SIGKILL'); // its process group, then itself
      } catch {
        // already gone
      }
    }
  }
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  process.exit(0);
}

process.stdin.on('end', reap);
process.stdin.on('error', reap);
process.on('SIGTERM', reap);
process.on('SIGINT', reap);
process.on('SIGHUP', reap);

// One import for test files: the cluster harness, the clients, and the
// teardown every test file registers with after(teardown).
import { cleanup } from './cluster.mjs';
import { closeAll } from './client.mjs';

export * from './cluster.mjs';
export * from './client.mjs';
export { RedisClient, redisCommand } from './redis.mjs';
export { RawWebSocket, OP, encodeFrame } from './rawws.mjs';

// Closes every tracked client, stops every server (SIGTERM, 2 s, SIGKILL)
// and fails if a server's stderr holds a sanitizer report.
export async function teardown() {
  await closeAll();
  await cleanup();
}

// Gateway flags for tests that send many messages quickly: a rate limit
// high enough never to be the thing under test (a client awaiting each ack
// on loopback sends thousands per second).
export const FAST = ['--rate-per-sec', '1000000'];

// Asserts that seqs are contiguous ascending integers (each previous + 1),
// starting at `from` when given. Returns a description of the first
// violation, or null.
export function seqProblem(seqs, from) {
  if (from !== undefined && seqs.length && seqs[0] !== from) return `first seq ${seqs[0]}, expected ${from}`;
  for (let i = 1; i < seqs.length; i++) {
    if (seqs[i] !== seqs[i - 1] + 1) return `seq ${seqs[i]} follows ${seqs[i - 1]} at index ${i}`;
  }
  return null;
}

export function range(from, to) {
  const out = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}

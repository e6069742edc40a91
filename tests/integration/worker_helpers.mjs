// Helpers shared by the worker_*.test.mjs files: they drive chat-worker at
// the Redis level, writing what a gateway would write (members, the
// gateway's session registry, events on chat:events, heartbeats) and
// checking what the worker does with it. Key shapes: docs/ARCHITECTURE.md.
import { fetchMetrics, waitFor } from './lib/harness.mjs';

export const EVENTS = 'chat:events';
export const GROUP = 'workers';

export const membersKey = (room) => `chat:{${room}}:members`;
export const metaKey = (room) => `chat:{${room}}:meta`;
export const historyKey = (room) => `chat:{${room}}:history`;
export const channel = (room) => `chat:{${room}}`;
export const registryKey = (gw) => `chat:gw:${gw}:sessions`;

// Flags that make a worker's periodic work run in test time.
export const FAST = ['--sweep-ms', '100', '--claim-idle-ms', '1000', '--gateway-timeout-ms', '2000'];

// What the gateway's join script and registry write for one membership.
export async function addMember(c, { room, nickname, mid, session = mid.split('.')[0], gateway }) {
  await c.command('HSET', membersKey(room), nickname,
    JSON.stringify({ session, mid, gateway, since: Date.now() }));
  await c.command('HSET', registryKey(gateway), mid,
    JSON.stringify({ room, nickname, mid, session }));
}

// XADDs one event as the gateway does; resolves with the entry id.
export function addEvent(c, { type = 'leave', room, nickname, mid, gateway, reason = 'closed',
  session = mid.split('.')[0] }) {
  const fields = ['type', type, 'session', session, 'mid', mid, 'gateway', gateway, 'room', room,
    'nickname', nickname];
  if (type === 'leave') fields.push('reason', reason);
  fields.push('ts', String(Date.now()));
  return c.command('XADD', EVENTS, 'MAXLEN', '~', '100000', '*', ...fields);
}

export const workerMetrics = (worker) => fetchMetrics(worker.http);

// Resolves once the group has no pending entry (everything acknowledged).
export async function waitNoPending(c, timeoutMs = 10000) {
  await waitFor(async () => {
    const [count] = await c.command('XPENDING', EVENTS, GROUP);
    return count === 0;
  }, { timeoutMs, what: 'no pending entries in the workers group' });
}

// Resolves once every entry in the stream has been delivered to the group
// and acknowledged: the group's last-delivered id is the stream's last id
// and nothing is pending.
export async function waitAllAcked(c, timeoutMs = 10000) {
  await waitFor(async () => {
    const [count] = await c.command('XPENDING', EVENTS, GROUP);
    if (count !== 0) return false;
    const info = await c.command('XINFO', 'STREAM', EVENTS);
    const groups = await c.command('XINFO', 'GROUPS', EVENTS);
    const last = info[info.indexOf('last-generated-id') + 1];
    const g = groups.find((x) => x[x.indexOf('name') + 1] === GROUP);
    return g && g[g.indexOf('last-delivered-id') + 1] === last;
  }, { timeoutMs, what: 'every event delivered and acknowledged' });
}

// Collects the presence frames published on a room channel.
export function presenceFrames(sub, room) {
  return sub.messages
    .filter((m) => m.channel === channel(room))
    .map((m) => JSON.parse(m.data))
    .filter((f) => f.type === 'presence');
}

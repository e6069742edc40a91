// Helpers for the client library's tests: a ChatClient wired to `ws`,
// closed by after(closeClients) whatever happened, and an event recorder.
import WebSocket from 'ws';
import { ChatClient } from '../../../clients/js/src/index.js';

const clients = new Set();

export function newClient(urls, opts = {}) {
  const c = new ChatClient({ urls, WebSocket, backoff: { baseMs: 100, capMs: 1000 }, ...opts });
  c.log = [];
  for (const type of ['state', 'joined', 'recovered', 'message', 'presence', 'presence_diff', 'members', 'left', 'queue', 'paced', 'gap', 'error']) {
    c.on(type, (e, meta) => c.log.push({ type, e, meta }));
  }
  clients.add(c);
  return c;
}

export function closeClients() {
  for (const c of clients) c.close();
  clients.clear();
}

export function events(c, type) {
  return c.log.filter((x) => x.type === type);
}

// Messages the client emitted for room, in emission order.
export function emitted(c, room) {
  return events(c, 'message').filter((x) => x.e.room === room).map((x) => ({ ...x.e, source: x.meta.source }));
}

export async function until(fn, { timeoutMs = 10000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function waitState(c, state, timeoutMs = 10000) {
  return until(() => c.state === state, { timeoutMs, what: `state ${state}` });
}

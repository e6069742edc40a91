// The page's connection: one ChatClient (chat-client/, the library in
// clients/js) to whichever gateway the host (usually a load balancer) hands
// us, and what the page remembers across a reload or a browser restart.
//
// A reload closes the socket, and a closed connection's memberships end.
// The page therefore joins with a grace (join.grace_ms, PROTOCOL.md): the
// gateway keeps the membership that long after the socket closes, and the
// reloaded page, joining with the same nickname and since/epoch, takes it
// over silently. The others see no leave and no join; the page gets what
// it missed. A page closed for good leaves the room when the grace ends.

import { ChatClient } from './chat-client/index.js';
import { socketUrl } from './protocol.js';

export const GRACE_MS = 4000;
const SAVE_KEY = 'chat.session';
const LOCK_NAME = 'chat.session';
const LOCK_WAIT_MS = 1500;

export const conn = new ChatClient({ urls: [socketUrl(location)], graceMs: GRACE_MS });

// ---------------------------------------------------------------- saved session

// Only one window owns the saved session: the one that holds the lock. A
// second window (another tab) starts empty instead of taking every room
// over from the first; a reload gets the lock back once the old page is
// gone. Browsers without Web Locks (plain http off localhost) restore always.
let owner = false;

export async function claimSession() {
  if (!navigator.locks) {
    owner = true;
    return true;
  }
  const got = await new Promise((resolve) => {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), LOCK_WAIT_MS);
    navigator.locks.request(LOCK_NAME, { signal: ctl.signal }, () => {
      clearTimeout(timer);
      resolve(true);
      return new Promise(() => {}); // held for the page's whole life
    }).catch(() => resolve(false));
  });
  owner = got;
  return got;
}

export function savedSession() {
  try {
    const s = JSON.parse(localStorage.getItem(SAVE_KEY) || 'null');
    if (!s || !Array.isArray(s.rooms)) return null;
    return s;
  } catch {
    return null;
  }
}

export function saveSession(active) {
  if (!owner) return;
  try {
    localStorage.setItem(SAVE_KEY, JSON.stringify({ v: 1, active, rooms: conn.snapshot(), at: Date.now() }));
  } catch {
    // private mode or full: a reload then starts empty, nothing worse
  }
}

export function remember(key, value) {
  try { localStorage.setItem(key, value); } catch { /* private mode: fine */ }
}

export function recall(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}

// The page's words and formats for the chat.v1 protocol (docs/PROTOCOL.md):
// no DOM and no shared state. The protocol's rules themselves (names,
// sizes, retries, pacing) live in the client library (chat-client/).

import { DEFAULT_LIMITS, isValidRoom } from './chat-client/index.js';

export const HISTORY_PAGE = 50;
// C0, DEL and C1 control characters are not allowed in nicknames.
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

// The gateway that served the page is reached through the same host (often a
// load balancer), so a reconnect may land on any gateway behind it.
export function socketUrl(loc) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${loc.host}/ws`;
}

// Client-side checks mirror the server's, so people get an answer before a
// round trip; the server still has the last word.
export function roomProblem(room) {
  if (!room) return 'Enter a room name.';
  if (!isValidRoom(room)) return 'Room names use letters, digits and . _ : - (at most 64).';
  return null;
}

export function nicknameProblem(nick) {
  if (!nick) return 'Enter a nickname.';
  if ([...nick].length > 32) return 'Nicknames are at most 32 characters.';
  if (CONTROL_RE.test(nick)) return 'Nicknames cannot contain control characters.';
  if (nick.trim() !== nick) return 'Nicknames cannot start or end with a space.';
  return null;
}

const ERROR_TEXT = {
  bad_json: 'The server could not read what this page sent.',
  bad_request: 'The server rejected a malformed request.',
  unknown_type: 'The server did not understand a request from this page.',
  invalid_room: 'That room name is not valid. Use letters, digits and . _ : - (at most 64).',
  invalid_nickname: 'That nickname is not valid: 1–32 characters, no control characters, no leading or trailing spaces.',
  not_joined: 'You are not in that room (any more). Join it again to continue.',
  rate_limited: 'You are sending messages too fast. Wait a moment and try again.',
  not_delivered: 'The connection dropped before your message was delivered.',
  in_doubt: 'The connection dropped; your message may not have been delivered.',
  queue_full: 'Too many messages are waiting to be sent. Wait a moment.',
  disconnected: 'The connection dropped. Try again once it is back.',
  forbidden: 'You are not allowed to join that room.',
  unauthorized: 'You are not signed in, or your sign-in has expired.',
  unavailable: 'The chat service is temporarily unavailable, so your message was not sent. Try again shortly.',
  internal: 'Something went wrong on the server. Try again.',
};

export function describeError(code, limits = DEFAULT_LIMITS) {
  if (code === 'too_large') {
    return `That message is too long (the limit is ${limits.message_bytes} bytes).`;
  }
  return ERROR_TEXT[code] || `The server reported an error (${code || 'unknown'}).`;
}

// Words for the presence `reason` of a leave. Faults and lost gateways are
// spelled out because people otherwise assume the other person left on purpose.
const LEAVE_TEXT = {
  left: 'left the room',
  closed: 'left (closed the chat)',
  faulted: 'dropped out (their connection failed)',
  timeout: 'dropped out (their connection timed out)',
  gateway_lost: 'dropped out (the server they were connected to went away)',
  replaced: 'rejoined from somewhere else',
};

export function describeLeave(reason) {
  return LEAVE_TEXT[reason] || (reason ? `left (${reason})` : 'left');
}

const CLOSE_TEXT = {
  1001: 'the server is restarting',
  1008: 'the server closed the connection after bad requests',
  1009: 'a message was too big for the server',
  1011: 'the server hit an error',
  1013: 'the connection could not keep up',
  4001: 'not authorised',
};

// Why the socket closed, in words, or null when it just dropped (1006).
export function describeClose(code) {
  return CLOSE_TEXT[code] || null;
}

// "14:05" for today, "Mon 3 Jun 14:05" otherwise; the full date goes into the
// element's title so it is one hover away.
export function formatTime(ts, now = new Date()) {
  const d = new Date(ts);
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === now.toDateString()) return time;
  const day = d.toLocaleDateString([], { weekday: 'short', day: 'numeric', month: 'short' });
  return `${day} ${time}`;
}

export function formatFullTime(ts) {
  return new Date(ts).toLocaleString([], { dateStyle: 'full', timeStyle: 'medium' });
}

// Stable colour per nickname, so people are recognisable at a glance.
export function nicknameHue(nick) {
  let h = 0;
  for (const ch of nick) h = (h * 31 + ch.codePointAt(0)) >>> 0;
  return h % 360;
}

export function initials(nick) {
  const first = [...nick.trim()][0] || '?';
  return first.toUpperCase();
}

// Items in a room's list are ordered by [seq, n]: messages are [seq, 0];
// notices are [last seq seen when they happened, running number], so a notice
// stays between the messages it happened between, whatever arrives later.
export function compareKeys(a, b) {
  return a[0] - b[0] || a[1] - b[1];
}

// Index at which `key` goes into `items` (sorted by .key) to keep them sorted.
export function insertionIndex(items, key) {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareKeys(items[mid].key, key) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

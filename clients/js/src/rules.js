// The protocol's rules that a client checks before a round trip (names,
// sizes) and the timing rules it follows (backoff, pacing). Pure functions
// and one small class; no I/O, no DOM.

const ROOM_RE = /^[A-Za-z0-9._:-]{1,64}$/;
// C0, DEL and C1 control characters are not allowed in nicknames.
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;

export const SUBPROTOCOL = 'chat.v1';

// What a gateway announces in welcome.limits; used until a welcome arrives.
export const DEFAULT_LIMITS = Object.freeze({
  message_bytes: 4096, frame_bytes: 65536, rate_per_sec: 20, rate_burst: 40, joins_per_sec: 10, rooms: 100,
});

export function isValidRoom(room) {
  return typeof room === 'string' && ROOM_RE.test(room);
}

export function isValidNickname(nick) {
  return typeof nick === 'string' && nick.length > 0 && [...nick].length <= 32
    && !CONTROL_RE.test(nick) && nick.trim() === nick;
}

export function utf8Length(text) {
  return new TextEncoder().encode(text).length;
}

// Exponential backoff with "equal jitter": half of each step is fixed and
// half random. When a gateway dies, all of its clients lose their connection
// at the same instant; the random half spreads them out so they do not
// stampede the surviving gateways together, and the fixed half keeps anyone
// from retrying in a tight loop.
export function backoffDelay(attempt, { baseMs = 500, capMs = 15000, random = Math.random } = {}) {
  const step = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 20));
  return Math.round(step / 2 + random() * (step / 2));
}

// A draining gateway names a delay (`reconnect.after_ms`); wait at least
// that long and add jitter for the same reason as above.
export function hintedDelay(afterMs, random = Math.random) {
  const base = Math.max(0, Number(afterMs) || 0);
  return Math.round(base + random() * Math.min(2000, base / 2 + 250));
}

// A token bucket that mirrors the gateway's (--rate-per-sec, --rate-burst),
// a little under it: a frame the client sends when the bucket allows
// arrives after the network's jitter, and must still find a token there.
export class Pacer {
  constructor({ perSec, burst, margin = 0.9, now = () => Date.now() }) {
    this.now = now;
    this.reset({ perSec, burst, margin });
  }

  // Called on every welcome: a new connection starts with a full bucket.
  reset({ perSec, burst, margin = 0.9 }) {
    this.perSec = perSec > 0 ? perSec * margin : Infinity;
    this.burst = Math.max(1, Math.floor((burst > 0 ? burst : perSec || 1) * margin));
    this.tokens = this.burst;
    this.at = this.now();
  }

  refill() {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.at) / 1000) * this.perSec);
    this.at = t;
  }

  // Takes a token if there is one.
  take() {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  // Milliseconds until the next token (0 if one is there).
  waitMs() {
    this.refill();
    if (this.tokens >= 1) return 0;
    return Math.ceil(((1 - this.tokens) / this.perSec) * 1000);
  }

  // The gateway refused one anyway: assume its bucket is empty now.
  drain() {
    this.tokens = 0;
    this.at = this.now();
  }
}

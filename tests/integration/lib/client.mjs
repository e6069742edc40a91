// A WebSocket chat client for tests, over the `ws` package. It records every
// frame it receives (`frames`), keeps the ones no test has taken yet in an
// inbox, and lets a test wait for the next frame matching a predicate.
import WebSocket from 'ws';

let idCounter = 0;
export function newId(prefix = 'c') {
  return `${prefix}${++idCounter}`;
}

// A predicate: a function, or an object whose every key must equal the
// frame's (shallow).
function toPredicate(p) {
  if (typeof p === 'function') return p;
  if (p == null) return () => true;
  return (f) => f && Object.entries(p).every(([k, v]) => f[k] === v);
}

function brief(frame) {
  const s = JSON.stringify(frame);
  return s.length > 300 ? s.slice(0, 300) + '…' : s;
}

export class ChatClient {
  constructor(ws, url) {
    this.ws = ws;
    this.url = url;
    this.frames = []; // every frame received, parsed (raw text kept if not JSON)
    this.inbox = []; // frames not yet taken by next()
    this.waiters = [];
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    ws.on('close', (code, reason) => {
      this.closeInfo = { code, reason: reason.toString('utf8') };
      for (const w of this.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(new Error(`connection closed (${code} ${this.closeInfo.reason}) while waiting for ` +
          `${w.what}; unmatched inbox: ${this.inbox.map(brief).join(' ')}`));
      }
      this.resolveClosed(this.closeInfo);
    });
    ws.on('error', (e) => {
      this.lastError = e;
    });
  }

  // Opens a connection. protocol: 'chat.v1' (default) or null for none.
  // Resolves once open; welcome (if any) stays in the inbox.
  // wsOptions go to the ws package as they are (e.g. {ca} for wss://).
  static connect(url, { protocol = 'chat.v1', timeoutMs = 5000, headers = {}, wsOptions = {} } = {}) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, protocol ? [protocol] : [], {
        perMessageDeflate: false,
        handshakeTimeout: timeoutMs,
        maxPayload: 64 * 1024 * 1024,
        headers,
        ...wsOptions,
      });
      const c = new ChatClient(ws, url);
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`connect ${url}: timeout`));
      }, timeoutMs);
      ws.once('open', () => {
        clearTimeout(timer);
        c.protocol = ws.protocol;
        resolve(c);
      });
      ws.once('unexpected-response', (req, res) => {
        clearTimeout(timer);
        reject(new Error(`connect ${url}: HTTP ${res.statusCode}`));
        ws.terminate();
      });
      ws.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  // Connects with chat.v1 and waits for (and takes) the welcome frame.
  static async connectV1(url, opts = {}) {
    const c = await ChatClient.connect(url, { ...opts, protocol: 'chat.v1' });
    c.welcome = await c.next({ type: 'welcome' }, opts.timeoutMs || 5000);
    return c;
  }

  onFrame(data, isBinary) {
    let f;
    if (isBinary) {
      f = { binary: true, data };
    } else {
      const text = data.toString('utf8');
      try {
        f = JSON.parse(text);
      } catch {
        f = { unparsed: text };
      }
    }
    this.frames.push(f);
    const i = this.waiters.findIndex((w) => w.pred(f));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      clearTimeout(w.timer);
      w.resolve(f);
    } else {
      this.inbox.push(f);
    }
  }

  // Sends an object (as JSON text), a string (text frame) or a Buffer
  // (binary frame, or a text frame of these exact bytes with {binary:false}).
  send(data, { binary } = {}) {
    if (Buffer.isBuffer(data)) {
      this.ws.send(data, { binary: binary ?? true });
    } else if (typeof data === 'string') {
      this.ws.send(data, { binary: false });
    } else {
      this.ws.send(JSON.stringify(data), { binary: false });
    }
  }

  // Resolves with the first frame (inbox first, then new ones) matching
  // pred, taking it out of the inbox; rejects after timeoutMs or on close.
  next(pred, timeoutMs = 3000) {
    const match = toPredicate(pred);
    const what = typeof pred === 'function' ? (pred.name || 'a frame matching a predicate') : brief(pred);
    const i = this.inbox.findIndex(match);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]);
    if (this.closeInfo) {
      return Promise.reject(new Error(`connection already closed (${this.closeInfo.code}) ` +
        `while waiting for ${what}; unmatched inbox: ${this.inbox.map(brief).join(' ')}`));
    }
    return new Promise((resolve, reject) => {
      const w = { pred: match, resolve, reject, what, timer: null };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no frame matching ${what} within ${timeoutMs} ms; ` +
          `unmatched inbox: ${this.inbox.map(brief).join(' ') || '(empty)'}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  // Takes and returns every inbox frame matching pred (no waiting).
  take(pred) {
    const match = toPredicate(pred);
    const out = this.inbox.filter(match);
    this.inbox = this.inbox.filter((f) => !match(f));
    return out;
  }

  // Sends a frame with a fresh id and waits for the reply carrying that id
  // (an `error` reply resolves too: callers check type).
  async request(frame, timeoutMs = 3000) {
    const id = frame.id ?? newId('r');
    this.send({ ...frame, id });
    return this.next((f) => f.id === id, timeoutMs);
  }

  // Joins room as nickname; resolves with the `joined` frame, throws on an
  // `error` reply. opts: since, epoch, history, id (and any extra field).
  async join(room, nickname, opts = {}, timeoutMs = 5000) {
    const id = opts.id ?? newId('j');
    this.send({ type: 'join', room, nickname, ...opts, id });
    const f = await this.next((x) => x.id === id && (x.type === 'joined' || x.type === 'error'), timeoutMs);
    if (f.type === 'error') throw new Error(`join ${room} as ${nickname}: error ${brief(f)}`);
    return f;
  }

  // Sends a chat message; resolves with the `ack`, throws on an `error`.
  async say(room, text, id = newId('m'), timeoutMs = 5000) {
    this.send({ type: 'message', room, message: text, id });
    const f = await this.next((x) => x.id === id && (x.type === 'ack' || x.type === 'error'), timeoutMs);
    if (f.type === 'error') throw new Error(`say in ${room}: error ${brief(f)}`);
    return f;
  }

  // Sends every text in order, keeping at most `window` unacknowledged;
  // resolves with the acks in send order.
  async sayMany(room, texts, { window = 20, timeoutMs = 10000 } = {}) {
    const acks = new Array(texts.length);
    const inflight = [];
    let failure = null;
    for (let i = 0; i < texts.length && !failure; i++) {
      // Every promise gets a handler at once, so a failure while we wait on
      // an earlier one is never an unhandled rejection.
      inflight.push(this.say(room, texts[i], newId('m'), timeoutMs).then((a) => {
        acks[i] = a;
      }, (e) => {
        failure ??= e;
      }));
      if (inflight.length >= window) await inflight.shift();
    }
    await Promise.all(inflight);
    if (failure) throw failure;
    return acks;
  }

  // Waits for `count` message frames of room (taking them), in arrival order.
  async messages(room, count, timeoutMs = 5000) {
    const out = [];
    const deadline = Date.now() + timeoutMs;
    while (out.length < count) {
      const left = Math.max(1, deadline - Date.now());
      try {
        out.push(await this.next((f) => f.type === 'message' && f.room === room, left));
      } catch (e) {
        throw new Error(`got ${out.length} of ${count} messages in ${room}: ${e.message}`);
      }
    }
    return out;
  }

  // Waits ms for a frame matching pred (the inbox included) and resolves
  // with it, taking it; resolves null if none came. Only for checking that
  // something does NOT happen: assert.equal(await c.quiet(pred), null).
  async quiet(pred, ms = 300) {
    try {
      return await this.next(pred, ms);
    } catch (e) {
      if (this.closeInfo || !/within/.test(e.message)) throw e;
      return null;
    }
  }

  close(code = 1000, reason = '') {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close(code, reason);
    }
    return this.closed;
  }

  terminate() {
    this.ws.terminate();
    return this.closed;
  }

  // Resolves with {code, reason} once closed; rejects after timeoutMs.
  waitClosed(timeoutMs = 5000) {
    let timer;
    return Promise.race([
      this.closed.finally(() => clearTimeout(timer)),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`connection not closed within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  }
}

// Every open client created through track() is closed by closeAll().
const tracked = new Set();
export function track(c) {
  tracked.add(c);
  return c;
}
export async function closeAll() {
  await Promise.all([...tracked].map((c) => {
    if (c.closeInfo) return null;
    c.terminate();
    return c.closed;
  }));
  tracked.clear();
}

// Convenience: connect (chat.v1 by default, taking the welcome) and track.
export async function connect(url, opts = {}) {
  const protocol = opts.protocol === undefined ? 'chat.v1' : opts.protocol;
  const c = protocol === 'chat.v1'
    ? await ChatClient.connectV1(url, opts)
    : await ChatClient.connect(url, { ...opts, protocol });
  return track(c);
}

// A minimal RESP2 client over net.Socket: enough for tests to run commands
// against the real redis-server and to watch pub/sub channels. Every wait
// has a timeout; nothing here retries on its own.
import { tcpConnect } from './tcp.mjs';

export class RedisError extends Error {}

// Parses one RESP2 value from buf at offset. Returns [value, nextOffset], or
// null when buf does not yet hold the whole value.
function parseReply(buf, off) {
  if (off >= buf.length) return null;
  const eol = buf.indexOf('\r\n', off);
  if (eol < 0) return null;
  const kind = String.fromCharCode(buf[off]);
  const line = buf.toString('utf8', off + 1, eol);
  const after = eol + 2;
  switch (kind) {
    case '+':
      return [line, after];
    case '-':
      return [new RedisError(line), after];
    case ':':
      return [Number(line), after];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, after];
      if (buf.length < after + n + 2) return null;
      return [buf.toString('utf8', after, after + n), after + n + 2];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, after];
      const out = [];
      let pos = after;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, pos);
        if (!r) return null;
        out.push(r[0]);
        pos = r[1];
      }
      return [out, pos];
    }
    default:
      throw new Error(`RESP: unexpected type byte ${JSON.stringify(kind)}`);
  }
}

function encodeCommand(args) {
  const parts = [`*${args.length}\r\n`];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), 'utf8');
    parts.push(`$${b.length}\r\n`, b, '\r\n');
  }
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
}

export class RedisClient {
  constructor(socket) {
    this.socket = socket;
    this.buf = Buffer.alloc(0);
    this.pending = []; // {resolve, reject} in command order
    this.messages = []; // pub/sub messages not yet taken by nextMessage()
    this.waiters = []; // {pred, resolve, reject, timer}
    this.subscribed = false;
    this.closedError = null;
    socket.on('data', (d) => this.onData(d));
    socket.on('error', (e) => this.fail(e));
    socket.on('close', () => this.fail(new Error('redis connection closed')));
  }

  // Connects to 127.0.0.1:port; rejects after timeoutMs.
  static async connect(port, { host = '127.0.0.1', timeoutMs = 2000 } = {}) {
    const s = await tcpConnect(port, { host, timeoutMs, what: `redis connect ${host}:${port}` });
    s.setNoDelay(true);
    return new RedisClient(s);
  }


  fail(err) {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of this.pending.splice(0)) p.reject(err);
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  onData(d) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    let off = 0;
    for (;;) {
      const r = parseReply(this.buf, off);
      if (!r) break;
      off = r[1];
      this.dispatch(r[0]);
    }
    this.buf = this.buf.subarray(off);
  }

  dispatch(v) {
    // Pushes: messages, and (sharded pub/sub, Redis 7) a `sunsubscribe` the
    // server sends by itself when the channel's slot moves away; one we
    // asked for is answered as a reply instead.
    const push = this.subscribed && Array.isArray(v) &&
      (['message', 'pmessage', 'smessage'].includes(v[0]) ||
        (v[0] === 'sunsubscribe' && this.pending.length === 0));
    if (push) {
      const m = v[0] === 'pmessage'
        ? { kind: v[0], pattern: v[1], channel: v[2], data: v[3] }
        : { kind: v[0], channel: v[1], data: v[2] };
      const i = this.waiters.findIndex((w) => w.pred(m));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        clearTimeout(w.timer);
        w.resolve(m);
      } else {
        this.messages.push(m);
      }
      return;
    }
    const p = this.pending.shift();
    if (!p) return; // e.g. a subscribe confirmation we did not wait for
    if (v instanceof RedisError) p.reject(v);
    else p.resolve(v);
  }

  // Sends one command; resolves with its reply (errors reject).
  command(...args) {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.socket.write(encodeCommand(args.flat()));
    });
  }

  // Subscribes to channels (or patterns, with pattern: true; shard channels
  // with sharded: true, where a wrong node answers MOVED). Each
  // confirmation is one reply; resolves when all have arrived.
  async subscribe(channels, { pattern = false, sharded = false } = {}) {
    const list = Array.isArray(channels) ? channels : [channels];
    this.subscribed = true;
    const cmd = pattern ? 'PSUBSCRIBE' : sharded ? 'SSUBSCRIBE' : 'SUBSCRIBE';
    const confirmations = list.map(
      () => new Promise((resolve, reject) => this.pending.push({ resolve, reject })),
    );
    this.socket.write(encodeCommand([cmd, ...list]));
    return Promise.all(confirmations);
  }

  // Resolves with the next pub/sub message {kind, channel, data} matching pred,
  // taking it out of the buffer; rejects after timeoutMs.
  nextMessage(pred = () => true, timeoutMs = 3000) {
    const i = this.messages.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.messages.splice(i, 1)[0]);
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, reject, timer: null };
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`redis: no pub/sub message matched within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  close() {
    this.socket.destroy();
  }
}

// Runs one command on a fresh connection and closes it.
export async function redisCommand(port, ...args) {
  const c = await RedisClient.connect(port);
  try {
    return await c.command(...args);
  } finally {
    c.close();
  }
}

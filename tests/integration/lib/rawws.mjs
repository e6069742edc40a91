// A tiny hand-rolled WebSocket client on a raw TCP socket, for frames that a
// well-behaved library will not send: invalid UTF-8, odd fragmentation,
// exact byte layouts. It does the opening handshake, writes masked frames
// exactly as asked, and parses what the server sends back (including the
// close frame's status code).
import crypto from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { upgradeRequest } from './tcp.mjs';

export const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa };

// Encodes one client frame: masked, with the given opcode and FIN bit.
export function encodeFrame(opcode, payload, { fin = true, mask = true } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  const len = data.length;
  let header;
  if (len < 126) {
    header = Buffer.alloc(2);
    header[1] = len;
  } else if (len < 65536) {
    header = Buffer.alloc(4);
    header[1] = 126;
    header.writeUInt16BE(len, 2);
  } else {
    header = Buffer.alloc(10);
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(len), 2);
  }
  header[0] = (fin ? 0x80 : 0) | opcode;
  if (!mask) return Buffer.concat([header, data]);
  header[1] |= 0x80;
  const key = crypto.randomBytes(4);
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = data[i] ^ key[i & 3];
  return Buffer.concat([header, key, body]);
}

export class RawWebSocket {
  constructor(socket, rest) {
    this.socket = socket;
    this.buf = rest;
    this.frames = []; // {opcode, fin, payload: Buffer, text?}
    this.closeFrame = null; // {code, reason} once the server sent close
    this.waiters = [];
    this.ended = new Promise((resolve) => {
      socket.on('close', () => {
        resolve();
        this.wake();
      });
    });
    socket.on('error', () => {});
    socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.parse();
    });
    this.parse();
  }

  // Opens ws://127.0.0.1:port/path with an optional subprotocol; resolves
  // after the server's 101 response. tlsOptions (node:tls connect options,
  // e.g. {ca}) make it wss:// instead.
  static connect(port, { path = '/ws', protocol = 'chat.v1', timeoutMs = 5000, tlsOptions = null } = {}) {
    return new Promise((resolve, reject) => {
      const key = crypto.randomBytes(16).toString('base64');
      const s = tlsOptions
        ? tls.connect({ port, host: '127.0.0.1', servername: '127.0.0.1', ...tlsOptions })
        : net.connect({ port, host: '127.0.0.1' });
      let acc = Buffer.alloc(0);
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error('raw websocket handshake: timeout'));
      }, timeoutMs);
      s.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      s.on(tlsOptions ? 'secureConnect' : 'connect', () => {
        s.write(upgradeRequest({ path, host: `127.0.0.1:${port}`, key, protocol }));
      });
      const onData = (d) => {
        acc = Buffer.concat([acc, d]);
        const end = acc.indexOf('\r\n\r\n');
        if (end < 0) return;
        clearTimeout(timer);
        s.removeListener('data', onData);
        const head = acc.subarray(0, end).toString('latin1');
        const status = Number(head.split(' ')[1]);
        const want = crypto.createHash('sha1')
          .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
        if (status !== 101 || !head.toLowerCase().includes(want.toLowerCase())) {
          s.destroy();
          reject(new Error(`raw websocket handshake failed: ${head.split('\r\n')[0]}`));
          return;
        }
        resolve(new RawWebSocket(s, acc.subarray(end + 4)));
      };
      s.on('data', onData);
    });
  }

  parse() {
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      const masked = (b[1] & 0x80) !== 0;
      let len = b[1] & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      let key = null;
      if (masked) {
        if (b.length < off + 4) return;
        key = b.subarray(off, off + 4);
        off += 4;
      }
      if (b.length < off + len) return;
      let payload = Buffer.from(b.subarray(off, off + len));
      if (key) for (let i = 0; i < len; i++) payload[i] ^= key[i & 3];
      this.buf = b.subarray(off + len);
      const f = { opcode, fin, payload };
      if (opcode === OP.TEXT) f.text = payload.toString('utf8');
      if (opcode === OP.CLOSE) {
        this.closeFrame = {
          code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005,
          reason: payload.subarray(2).toString('utf8'),
        };
      }
      this.frames.push(f);
      this.wake();
    }
  }

  wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  sendFrame(opcode, payload, opts) {
    this.socket.write(encodeFrame(opcode, payload, opts));
  }

  sendText(payload, opts) {
    this.sendFrame(OP.TEXT, payload, opts);
  }

  // Waits until the server's close frame arrives or the TCP connection ends.
  // Resolves with {code, reason}; code 1006 when the TCP connection ended
  // with no close frame.
  async waitClose(timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    while (!this.closeFrame && !this.socket.destroyed && this.socket.readyState !== 'closed') {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`raw websocket: no close within ${timeoutMs} ms`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    if (this.closeFrame) {
      // Answer the close handshake as a client should.
      try {
        this.sendFrame(OP.CLOSE, Buffer.from([this.closeFrame.code >> 8, this.closeFrame.code & 0xff]));
      } catch {
        // socket already gone
      }
      return this.closeFrame;
    }
    return { code: 1006, reason: '' };
  }

  // Resolves with the next text frame's parsed JSON matching pred.
  async nextJson(pred = () => true, timeoutMs = 3000) {
    const deadline = Date.now() + timeoutMs;
    let seen = 0;
    for (;;) {
      for (; seen < this.frames.length; seen++) {
        const f = this.frames[seen];
        if (f.opcode !== OP.TEXT || f.taken) continue;
        let j;
        try {
          j = JSON.parse(f.text);
        } catch {
          continue;
        }
        if (pred(j)) {
          f.taken = true;
          return j;
        }
      }
      if (this.closeFrame || this.socket.destroyed) throw new Error('raw websocket closed while waiting for a frame');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`raw websocket: no matching frame within ${timeoutMs} ms`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 100));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  destroy() {
    this.socket.destroy();
  }
}

// An in-memory stand-in for the chat cluster, speaking chat.v1 (PROTOCOL.md)
// over the `ws` package and serving web/ like a gateway does. Used by the
// page tests that need server behaviour the real cluster only shows rarely
// (an epoch change, a draining gateway, rate limiting), and handy while
// working on the page. Several fake gateways share one FakeCluster, so the
// presence and cross-gateway rules hold as they do in the real thing.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { WebSocketServer } from 'ws';

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
};

const ROOM_RE = /^[A-Za-z0-9._:-]{1,64}$/;

export class FakeCluster {
  constructor({ webRoot, historyMax = 1000, messageBytes = 4096 } = {}) {
    this.webRoot = webRoot;
    this.historyMax = historyMax;
    this.messageBytes = messageBytes;
    this.rooms = new Map();
    this.gateways = new Set();
    this.nextSession = 1;
    this.failures = []; // error codes to answer the next `message` frames with
    this.log = [];      // every client frame received: [gatewayId, frame]
  }

  room(name) {
    let r = this.rooms.get(name);
    if (!r) {
      r = { name, seq: 0, epoch: 'e1', history: [], members: new Map() };
      this.rooms.set(name, r);
    }
    return r;
  }

  // Answers the next `message` frame with error `code` instead of storing
  // it; 'drop' instead cuts the sender's connection before storing.
  failNextMessage(code) {
    this.failures.push(code);
  }

  // Forgets a room's history, as a broker restart without persistence would:
  // the epoch changes, so re-joins get recovered:false.
  loseHistory(name) {
    const r = this.room(name);
    r.history = [];
    r.seq = 0;
    r.epoch = `e${Number(r.epoch.slice(1)) + 1}`;
  }

  // Publishes as if another member (or the HTTP API) had sent it.
  publish(roomName, nickname, message) {
    const r = this.room(roomName);
    r.seq += 1;
    const env = { type: 'message', seq: r.seq, ts: Date.now(), room: r.name, nickname, message };
    r.history.push(env);
    if (r.history.length > this.historyMax) r.history.shift();
    for (const m of r.members.values()) m.conn.send(env);
    return env;
  }

  presence(r, event, nickname, reason) {
    const f = { type: 'presence', room: r.name, event, nickname, ts: Date.now() };
    if (reason) f.reason = reason;
    for (const m of r.members.values()) m.conn.send(f);
  }

  removeMember(r, nickname, conn, reason) {
    const m = r.members.get(nickname);
    if (!m || m.conn !== conn) return; // taken over meanwhile: nothing to do
    r.members.delete(nickname);
    this.presence(r, 'leave', nickname, reason);
  }

  async startGateway({ id = `fake${this.gateways.size + 1}` } = {}) {
    const gw = new FakeGateway(this, id);
    await gw.listen();
    this.gateways.add(gw);
    return gw;
  }

  async close() {
    await Promise.all([...this.gateways].map((g) => g.close()));
  }
}

class FakeConn {
  constructor(gw, ws, legacy) {
    this.gw = gw;
    this.ws = ws;
    this.v1 = !legacy;
    this.legacy = null; // decided by the first frame when no subprotocol
    this.session = `s${gw.cluster.nextSession++}`;
    this.rooms = new Map(); // room -> nickname
  }

  send(frame) {
    // A legacy page only ever gets message frames.
    if (this.legacy && frame.type !== 'message') return;
    if (this.ws.readyState === 1) this.ws.send(JSON.stringify(frame));
  }
}

class FakeGateway {
  constructor(cluster, id) {
    this.cluster = cluster;
    this.id = id;
    this.conns = new Set();
    this.server = http.createServer((req, res) => this.serveStatic(req, res));
    this.wss = new WebSocketServer({
      noServer: true,
      handleProtocols: (protocols) => (protocols.has('chat.v1') ? 'chat.v1' : false),
    });
    this.server.on('upgrade', (req, socket, head) => {
      if (!req.url.startsWith('/ws')) {
        socket.destroy();
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
    });
  }

  listen() {
    return new Promise((resolve) => {
      this.server.listen(0, '127.0.0.1', () => {
        this.port = this.server.address().port;
        this.http = `http://127.0.0.1:${this.port}`;
        this.url = `ws://127.0.0.1:${this.port}/ws`;
        resolve();
      });
    });
  }

  serveStatic(req, res) {
    const urlPath = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (urlPath === '/healthz' || urlPath === '/readyz') {
      res.end('ok\n');
      return;
    }
    const rel = urlPath === '/' ? 'index.html' : urlPath.slice(1);
    const file = path.join(this.cluster.webRoot, rel);
    if (!file.startsWith(this.cluster.webRoot) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) {
      res.writeHead(404);
      res.end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': MIME[path.extname(file)] || 'application/octet-stream' });
    res.end(fs.readFileSync(file));
  }

  accept(ws) {
    const c = new FakeConn(this, ws, ws.protocol !== 'chat.v1');
    this.conns.add(c);
    if (c.v1) {
      c.send({
        type: 'welcome', session: c.session, gateway: this.id,
        limits: { message_bytes: this.cluster.messageBytes, frame_bytes: 65536, rate_per_sec: 20, rooms: 100 },
      });
    }
    ws.on('message', (data) => this.onFrame(c, data.toString('utf8')));
    ws.on('close', () => this.onClose(c, 'closed'));
  }

  onFrame(c, text) {
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      c.send({ type: 'error', code: 'bad_json', message: 'bad json' });
      return;
    }
    this.cluster.log.push([this.id, f]);
    if (c.legacy === null) c.legacy = !c.v1 && f.type === undefined;
    const reply = (frame) => c.send(f.id !== undefined ? { ...frame, id: f.id } : frame);
    const error = (code) => reply({ type: 'error', code, message: code });
    if (f.type === undefined && f.nickname && f.room && f.message) {
      if (!c.rooms.has(f.room)) this.join(c, { room: f.room, nickname: f.nickname }, () => {}, () => {});
      this.say(c, f.room, f.message, () => {}, () => {});
      return;
    }
    switch (f.type) {
      case 'join': return this.join(c, f, reply, error);
      case 'message':
        if (!c.rooms.has(f.room)) return error('not_joined');
        return this.say(c, f.room, f.message, reply, error, f.id !== undefined);
      case 'leave': {
        if (!c.rooms.has(f.room)) return error('not_joined');
        const nick = c.rooms.get(f.room);
        c.rooms.delete(f.room);
        this.cluster.removeMember(this.cluster.room(f.room), nick, c, 'left');
        return reply({ type: 'left', room: f.room, reason: 'left' });
      }
      case 'history': {
        if (!c.rooms.has(f.room)) return error('not_joined');
        const r = this.cluster.room(f.room);
        const limit = Math.min(500, f.limit || 50);
        const before = f.before ?? Infinity;
        const msgs = r.history.filter((m) => m.seq < before).slice(-limit);
        return reply({ type: 'history', room: f.room, messages: msgs });
      }
      case 'members': {
        if (!c.rooms.has(f.room)) return error('not_joined');
        return reply({ type: 'members', room: f.room, members: this.memberList(this.cluster.room(f.room)) });
      }
      case 'ping': return reply({ type: 'pong' });
      default: return error('unknown_type');
    }
  }

  memberList(r) {
    return [...r.members.entries()].map(([nickname, m]) => ({ nickname, since: m.since }));
  }

  join(c, f, reply, error) {
    if (!ROOM_RE.test(f.room || '')) return error('invalid_room');
    if (typeof f.nickname !== 'string' || !f.nickname || f.nickname.trim() !== f.nickname) {
      return error('invalid_nickname');
    }
    const r = this.cluster.room(f.room);
    const old = r.members.get(f.nickname);
    r.members.set(f.nickname, { conn: c, since: Date.now() });
    c.rooms.set(f.room, f.nickname);
    if (old && old.conn !== c) {
      old.conn.rooms.delete(f.room);
      old.conn.send({ type: 'left', room: f.room, reason: 'replaced' });
    } else if (!old) {
      this.cluster.presence(r, 'join', f.nickname);
    }
    const joined = { type: 'joined', room: r.name, nickname: f.nickname, seq: r.seq, epoch: r.epoch,
      members: this.memberList(r) };
    if (f.since !== undefined) {
      const oldest = r.history.length ? r.history[0].seq : r.seq + 1;
      const ok = (f.epoch === undefined || f.epoch === r.epoch) && f.since >= oldest - 1;
      joined.recovered = ok;
      joined.history = ok ? r.history.filter((m) => m.seq > f.since) : r.history.slice(-50);
    } else {
      joined.history = r.history.slice(-Math.min(500, f.history ?? 50));
    }
    reply(joined);
  }

  say(c, room, message, reply, error, wantAck = true) {
    if (typeof message !== 'string' || !message) return error('bad_request');
    if (Buffer.byteLength(message) > this.cluster.messageBytes) return error('too_large');
    const failure = this.cluster.failures.shift();
    if (failure === 'drop') {
      c.ws.terminate(); // the connection dies before the message is stored
      return undefined;
    }
    if (failure) return error(failure);
    const env = this.cluster.publish(room, c.rooms.get(room), message);
    if (wantAck) reply({ type: 'ack', room, seq: env.seq });
  }

  onClose(c, reason) {
    if (!this.conns.delete(c)) return;
    for (const [room, nick] of c.rooms) this.cluster.removeMember(this.cluster.room(room), nick, c, reason);
    c.rooms.clear();
  }

  // Sends `reconnect` to every connection, then closes them with 1001.
  async drain(afterMs = 200) {
    for (const c of this.conns) c.send({ type: 'reconnect', reason: 'shutdown', after_ms: afterMs });
    await new Promise((r) => setTimeout(r, 50));
    for (const c of [...this.conns]) c.ws.close(1001, 'draining');
  }

  // Like SIGKILL: sockets vanish without a close frame; the members are
  // removed later with reason gateway_lost, as the worker's sweep would.
  kill({ sweepAfterMs = 300 } = {}) {
    const held = [...this.conns];
    this.conns.clear();
    for (const c of held) c.ws.terminate();
    this.server.close();
    this.server.closeAllConnections();
    this.cluster.gateways.delete(this);
    setTimeout(() => {
      for (const c of held) {
        for (const [room, nick] of c.rooms) this.cluster.removeMember(this.cluster.room(room), nick, c, 'gateway_lost');
      }
    }, sweepAfterMs);
  }

  close() {
    for (const c of this.conns) c.ws.terminate();
    this.conns.clear();
    this.cluster.gateways.delete(this);
    const closed = new Promise((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections(); // idle keep-alive HTTP connections too
    return closed;
  }
}

// A tiny TCP load balancer for tests, on 127.0.0.1 only: each new client
// connection is forwarded to the next gateway in round-robin order that
// accepts a TCP connection, skipping dead ones, like haproxy in mode tcp
// with health checks. No stickiness: a reconnect may land anywhere.
import net from 'node:net';

const CONNECT_TIMEOUT_MS = 1000;

export async function startProxy(targets) {
  const proxy = new TcpProxy(targets);
  await proxy.listen();
  return proxy;
}

export class TcpProxy {
  // targets: [{ port }, ...] (gateway ServerProcess objects fit)
  constructor(targets) {
    this.targets = [...targets];
    this.next = 0;
    this.refusing = false;
    this.pairs = new Set();
    this.server = net.createServer((client) => this.onClient(client));
  }

  listen() {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.port = this.server.address().port;
        this.http = `http://127.0.0.1:${this.port}`;
        this.url = `ws://127.0.0.1:${this.port}/ws`;
        resolve(this);
      });
    });
  }

  // While refusing, new connections are dropped at once, as if every
  // gateway were down; existing ones are untouched.
  setRefusing(on) {
    this.refusing = on;
  }

  // Cuts every connection it carries, as a network outage would; with
  // setRefusing(true) first, the clients cannot come straight back.
  dropAll() {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  async onClient(client) {
    client.pause(); // hold the client's bytes until an upstream is connected
    client.on('error', () => {});
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = await this.connectAny();
    if (!upstream || client.destroyed) {
      upstream?.destroy();
      client.destroy();
      return;
    }
    const pair = { client, upstream };
    this.pairs.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    // Either side going away ends both, so a killed gateway shows up at the
    // browser as a dropped connection right away.
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  }

  // Tries each target once, starting at the round-robin position.
  async connectAny() {
    for (let i = 0; i < this.targets.length; i++) {
      const target = this.targets[this.next % this.targets.length];
      this.next += 1;
      const sock = await tryConnect(target.port);
      if (sock) return sock;
    }
    return null;
  }

  close() {
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function tryConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(null);
    }, CONNECT_TIMEOUT_MS);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.on('error', () => {}); // real handlers come with the pair
      resolve(sock);
    });
    sock.once('error', () => {
      clearTimeout(timer);
      resolve(null);
    });
  });
}

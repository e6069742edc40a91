// A WebSocket proxy between a client and a gateway, frame by frame, that a
// test can make misbehave the ways a network or a buggy server could:
// deliver a frame twice, lose one, swallow a client's frame, cut the
// connection. Loopback only; close() ends every connection.
import http from 'node:http';
import WebSocket, { WebSocketServer } from 'ws';

export async function startWsProxy(target) {
  const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
  const wss = new WebSocketServer({
    server,
    handleProtocols: (protocols) => (protocols.has('chat.v1') ? 'chat.v1' : false),
  });
  const pairs = new Set();
  const proxy = {
    target,
    pairs,
    // Hooks: return false to drop the frame. f is the parsed JSON.
    toClient: null,
    toServer: null,
    get url() {
      return `ws://127.0.0.1:${server.address().port}/ws`;
    },
    // Sends a frame to every client as if the gateway had sent it.
    inject(frame) {
      for (const p of pairs) p.down.send(JSON.stringify(frame));
    },
    cutAll() {
      for (const p of pairs) {
        p.down.terminate();
        p.up.terminate();
      }
    },
    async close() {
      proxy.cutAll();
      wss.close();
      await new Promise((r) => server.close(() => r()));
      server.closeAllConnections?.();
    },
  };
  wss.on('connection', (down, req) => {
    const up = new WebSocket(proxy.target, down.protocol ? [down.protocol] : [], { perMessageDeflate: false });
    const pair = { down, up, early: [] };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      if (down.readyState <= 1) down.terminate();
      if (up.readyState <= 1) up.terminate();
    };
    up.on('open', () => {
      for (const m of pair.early.splice(0)) up.send(m);
    });
    up.on('message', (data) => {
      const text = data.toString('utf8');
      let f = null;
      try { f = JSON.parse(text); } catch { /* pass through */ }
      if (proxy.toClient && proxy.toClient(f, pair) === false) return;
      if (down.readyState === 1) down.send(text);
    });
    down.on('message', (data) => {
      const text = data.toString('utf8');
      let f = null;
      try { f = JSON.parse(text); } catch { /* pass through */ }
      if (proxy.toServer && proxy.toServer(f, pair) === false) return;
      if (up.readyState === 1) up.send(text);
      else pair.early.push(text);
    });
    up.on('close', end);
    down.on('close', end);
    up.on('error', end);
    down.on('error', end);
    void req;
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return proxy;
}

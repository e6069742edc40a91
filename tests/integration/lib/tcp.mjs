// Plain TCP helpers shared by the test clients that talk to a server below
// the WebSocket library: the RESP client, the raw WebSocket and the hostile
// suite's hand-made upgrades.
import net from 'node:net';

// Opens a TCP connection; resolves with the socket once connected, rejects
// on an error or after timeoutMs (the socket is destroyed then).
export function tcpConnect(port, { host = '127.0.0.1', timeoutMs = 3000, what = 'tcp connect' } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`${what}: timeout`));
    }, timeoutMs);
    const onError = (e) => {
      clearTimeout(timer);
      reject(e);
    };
    s.once('error', onError);
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeListener('error', onError); // the caller handles errors from now on
      resolve(s);
    });
  });
}

// The text of a WebSocket upgrade request (RFC 6455 §4.1), headers included.
export function upgradeRequest({ path = '/ws', host, key, protocol = 'chat.v1', headers = {} }) {
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: ${host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${key}`,
    'Sec-WebSocket-Version: 13',
  ];
  if (protocol) lines.push(`Sec-WebSocket-Protocol: ${protocol}`);
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return lines.join('\r\n') + '\r\n\r\n';
}

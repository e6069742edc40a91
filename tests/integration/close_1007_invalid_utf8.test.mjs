// Invalid UTF-8 in a text frame closes the connection with 1007, whether it
// comes whole, split over fragments, or as an overlong or surrogate
// encoding. Raw frames are written by hand (lib/rawws.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, sleep, RawWebSocket, OP } from './lib/harness.mjs';

let cl;
before(async () => {
  cl = await startCluster({ gateways: 1, workers: 0 });
}, { timeout: 20000 });
after(teardown);

const prefix = Buffer.from('{"type":"ping","id":"', 'utf8');
const suffix = Buffer.from('"}', 'utf8');
const frame = (bad) => Buffer.concat([prefix, Buffer.from(bad), suffix]);

test('ws client: bytes 0xff 0xfe in a text frame close with 1007', { timeout: 10000 }, async () => {
  const c = await connect(cl.gateways[0].url);
  c.send(frame([0xff, 0xfe]), { binary: false });
  const closed = await c.waitClosed(5000);
  assert.equal(closed.code, 1007, `close: ${JSON.stringify(closed)}`);
});

test('no subprotocol: invalid UTF-8 closes with 1007 too', { timeout: 10000 }, async () => {
  const c = await connect(cl.gateways[0].url, { protocol: null });
  c.send(frame([0xc3, 0x28]), { binary: false });
  const closed = await c.waitClosed(5000);
  assert.equal(closed.code, 1007);
});

for (const [name, bytes] of [
  ['truncated sequence', [0xc3, 0x28]],
  ['overlong encoding of /', [0xc0, 0xaf]],
  ['UTF-16 surrogate', [0xed, 0xa0, 0x80]],
  ['beyond U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
]) {
  test(`raw frame: ${name} closes with 1007`, { timeout: 10000 }, async () => {
    const ws = await RawWebSocket.connect(cl.gateways[0].port);
    try {
      const welcome = await ws.nextJson((j) => j.type === 'welcome');
      assert.ok(welcome.session);
      ws.sendText(frame(bytes));
      const closed = await ws.waitClose(5000);
      assert.equal(closed.code, 1007, `close: ${JSON.stringify(closed)}`);
    } finally {
      ws.destroy();
    }
  });
}

test('raw frames: invalid UTF-8 in a continuation fragment closes with 1007', { timeout: 10000 }, async () => {
  const ws = await RawWebSocket.connect(cl.gateways[0].port);
  try {
    await ws.nextJson((j) => j.type === 'welcome');
    // A valid fragmented ping first: the gateway reassembles it.
    ws.sendFrame(OP.TEXT, '{"type":"pi', { fin: false });
    ws.sendFrame(OP.CONT, 'ng","id":"frag"}', { fin: true });
    const pong = await ws.nextJson((j) => j.type === 'pong');
    assert.equal(pong.id, 'frag');
    ws.sendFrame(OP.TEXT, prefix, { fin: false });
    ws.sendFrame(OP.CONT, Buffer.concat([Buffer.from([0xe2, 0x82]), Buffer.from('x'), suffix]), { fin: true });
    const closed = await ws.waitClose(5000);
    assert.equal(closed.code, 1007, `close: ${JSON.stringify(closed)}`);
  } finally {
    ws.destroy();
  }
});

test('valid multi-byte UTF-8 split across fragments is fine', { timeout: 10000 }, async () => {
  const ws = await RawWebSocket.connect(cl.gateways[0].port);
  try {
    await ws.nextJson((j) => j.type === 'welcome');
    const euro = Buffer.from('€', 'utf8'); // e2 82 ac
    ws.sendFrame(OP.TEXT, Buffer.concat([prefix, euro.subarray(0, 2)]), { fin: false });
    ws.sendFrame(OP.CONT, Buffer.concat([euro.subarray(2), suffix]), { fin: true });
    const pong = await ws.nextJson((j) => j.type === 'pong');
    assert.equal(pong.id, '€');
  } finally {
    ws.destroy();
  }
});

// RFC 6455 5.5.1: nothing follows a close frame. lws writes the 1007 itself
// and then waits (seconds) for the client's answering close; room traffic
// arriving meanwhile must not be written after it.
test('room traffic is not written after the 1007 close frame', { timeout: 15000 }, async () => {
  const room = uniqueRoom('after1007');
  const ws = await RawWebSocket.connect(cl.gateways[0].port);
  const talker = await connect(cl.gateways[0].url);
  try {
    await ws.nextJson((j) => j.type === 'welcome');
    ws.sendText(JSON.stringify({ type: 'join', room, nickname: 'bad', id: 'j' }));
    await ws.nextJson((j) => j.type === 'joined');
    await talker.join(room, 'talker');
    ws.sendText(frame([0xff, 0xfe]));
    for (let i = 0; i < 50 && !ws.closeFrame; i++) await sleep(20);
    assert.equal(ws.closeFrame?.code, 1007, 'lws sent its close frame');
    // Not answered: the gateway keeps the connection while it waits.
    await talker.sayMany(room, ['one', 'two', 'three']);
    await sleep(300);
    const at = ws.frames.findIndex((f) => f.opcode === OP.CLOSE);
    const after = ws.frames.slice(at + 1).map((f) => f.text ?? `opcode ${f.opcode}`);
    assert.deepEqual(after, [], 'frames written after the close frame');
  } finally {
    ws.destroy();
    talker.close();
  }
});

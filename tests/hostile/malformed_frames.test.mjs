// Every class of malformed client frame gets the answer PROTOCOL.md names —
// an `error` frame with the right code (the connection stays open after a
// first offence), or a close with the named code for what cannot be parsed
// as WebSocket text at all (1007 invalid UTF-8, 1009 too large, 1002-ish for
// broken framing) — and after each class the gateway still serves others:
// a fresh pair of clients chats, and a pair that was connected all along
// still receives every message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startCluster, startGateway, connect, teardown, uniqueRoom, newId, RawWebSocket, OP, encodeFrame,
  assertServes,
} from './lib.mjs';

let cl;
let gw; // default limits
let gwBig; // --frame-bytes 1 MiB, so that deep nesting reaches the JSON parser
let watchers; // {a, b, room}: connected from the start, chat after every class
before(async () => {
  cl = await startCluster({ gateways: 1, workers: 0 });
  gw = cl.gateways[0];
  gwBig = await startGateway({ redisUrl: cl.redis.url, extraArgs: ['--frame-bytes', String(1 << 20)] });
  const room = uniqueRoom('watch');
  const a = await connect(gw.url);
  const b = await connect(gw.url);
  await a.join(room, 'watch-a');
  await b.join(room, 'watch-b');
  watchers = { a, b, room };
}, { timeout: 30000 });
after(teardown);

// After every class: fresh clients chat on both gateways, and the pair
// connected since the start still talks.
async function stillServing(what) {
  await assertServes(gw.url, `after ${what}`);
  await assertServes(gwBig.url, `after ${what} (big-frame gateway)`);
  const { a, b, room } = watchers;
  assert.equal(a.closeInfo, null, `a bystander connection was closed after ${what}`);
  const text = `after ${what} ${newId('w')}`;
  const ack = await a.say(room, text);
  assert.equal((await b.next({ type: 'message', room, message: text }, 3000)).seq, ack.seq);
}

// Sends one frame (a string, or a Buffer sent as a text frame unless
// binary), expects exactly one `error` whose code is in `codes`, with `id`
// echoed when expectId is given, then proves the connection still works.
async function expectError(c, frame, codes, { expectId, binary = false } = {}) {
  codes = [codes].flat();
  const shown = Buffer.isBuffer(frame) || frame.length > 200
    ? `<${frame.length} bytes: ${String(frame).slice(0, 60)}…>` : JSON.stringify(frame);
  const errorsBefore = c.frames.filter((f) => f.type === 'error').length;
  c.send(frame, { binary });
  const err = await c.next({ type: 'error' }, 5000).catch((e) => {
    throw new Error(`no error frame for ${shown}: ${e.message} (close ${JSON.stringify(c.closeInfo)})`);
  });
  assert.ok(codes.includes(err.code), `${shown}: expected error ${codes.join('|')}, got ${JSON.stringify(err)}`);
  assert.equal(typeof err.message, 'string');
  if (expectId !== undefined) assert.equal(err.id, expectId, `${shown}: the error echoes id`);
  const pingId = newId('alive');
  c.send({ type: 'ping', id: pingId });
  await c.next({ type: 'pong', id: pingId }, 5000).catch((e) => {
    throw new Error(`connection unusable after ${shown} (close ${JSON.stringify(c.closeInfo)}): ${e.message}`);
  });
  assert.equal(c.frames.filter((f) => f.type === 'error').length, errorsBefore + 1, `${shown}: exactly one error`);
  return err;
}

async function joined(url = gw.url) {
  const c = await connect(url);
  const room = uniqueRoom('m');
  await c.join(room, newId('n'));
  return { c, room };
}

test('not JSON: bad_json, connection stays open', { timeout: 30000 }, async () => {
  const { c } = await joined();
  for (const raw of ['not json', '{', '{"type":"ping"', '}{', '[1,2,3]', '"str"', '42', 'null', 'true', '',
    ' ', '{"type":"ping",}', "{'type':'ping'}", '{"type":"ping"}{"type":"ping"}', '{"type":"ping"} x',
'{"type":"ping","id":"\\x41"}', '{"type":"ping","id":"\\u12"}',
'NaN', '{"type":"ping","n":NaN}', '{"type":"ping","n":Infinity}']) {
    await expectError(c, raw, ['bad_json', 'bad_request']);
  }
  // The textbook case: exactly bad_json.
  await expectError(c, 'not json', 'bad_json');
  await stillServing('not-JSON frames');
});

test('wrong types: bad_request (or the field\'s own code), id echoed', { timeout: 30000 }, async () => {
  const { c, room } = await joined();
  const cases = [
    [{ type: 'join', room: 5, nickname: 'n' }, ['bad_request', 'invalid_room']],
    [{ type: 'join', room: null, nickname: 'n' }, ['bad_request', 'invalid_room']],
    [{ type: 'join', room: { r: 1 }, nickname: 'n' }, ['bad_request', 'invalid_room']],
    [{ type: 'join', room: uniqueRoom('t'), nickname: ['n'] }, ['bad_request', 'invalid_nickname']],
    [{ type: 'join', room: uniqueRoom('t'), nickname: true }, ['bad_request', 'invalid_nickname']],
    [{ type: 'join', room: uniqueRoom('t'), nickname: 'n', since: '5' }, 'bad_request'],
    [{ type: 'join', room: uniqueRoom('t'), nickname: 'n', since: 3, epoch: 7 }, 'bad_request'],
    [{ type: 'join', room: uniqueRoom('t'), nickname: 'n', history: [] }, 'bad_request'],
    [{ type: 'message', room, message: 42 }, 'bad_request'],
    [{ type: 'message', room, message: null }, 'bad_request'],
    [{ type: 'message', room, message: ['a'] }, 'bad_request'],
    [{ type: 'message', room, message: false }, 'bad_request'],
    [{ type: 'history', room, limit: '10' }, 'bad_request'],
    [{ type: 'history', room, before: {} }, 'bad_request'],
    [{ type: 7 }, ['bad_request', 'unknown_type']],
    [{ type: null }, ['bad_request', 'unknown_type']],
    [{ type: ['ping'] }, ['bad_request', 'unknown_type']],
  ];
  for (const [frame, codes] of cases) {
    const id = newId('wt');
    await expectError(c, JSON.stringify({ ...frame, id }), codes, { expectId: id });
  }
  // A non-string id cannot be echoed; it is still an error, not a close.
  for (const id of [5, { x: 1 }, ['a'], null, true]) {
    await expectError(c, JSON.stringify({ type: 'ping', id }), 'bad_request');
  }
  await stillServing('wrong-type frames');
});

test('huge numbers: bad_request, never a crash or a wrapped value', { timeout: 30000 }, async () => {
  const { c, room } = await joined();
  const r = uniqueRoom('h');
  const digits = '9'.repeat(20000);
  const raws = [
    `{"type":"join","room":"${r}","nickname":"n","since":1e400,"id":"h1"}`,
    `{"type":"join","room":"${r}","nickname":"n","since":-1e400,"id":"h2"}`,
    `{"type":"join","room":"${r}","nickname":"n","since":99999999999999999999999999,"id":"h3"}`,
    `{"type":"join","room":"${r}","nickname":"n","since":9223372036854775808,"id":"h4"}`,
    `{"type":"join","room":"${r}","nickname":"n","since":18446744073709551617,"id":"h5"}`,
    `{"type":"join","room":"${r}","nickname":"n","history":4294967297,"id":"h6"}`,
    `{"type":"join","room":"${r}","nickname":"n","since":${digits},"id":"h8"}`,
    `{"type":"history","room":"${room}","limit":1e20,"id":"h9"}`,
    `{"type":"history","room":"${room}","limit":-9223372036854775809,"id":"h10"}`,
    `{"type":"history","room":"${room}","before":9007199254740993,"id":"h11"}`,
    `{"type":"history","room":"${room}","before":1e308,"id":"h12"}`,
  ];
  for (const raw of raws) {
    const id = /"id":"(h\d+)"/.exec(raw)[1];
    // (1e-400 is not here: it underflows to 0 in every JSON parser that
    // reads doubles, and 0 is a fine value for history.)
    await expectError(c, raw, 'bad_request', { expectId: id });
  }
  // A huge number in an unknown field is just ignored.
  c.send(`{"type":"ping","id":"hn","junk":1e999999,"more":-${digits}}`);
  await c.next({ type: 'pong', id: 'hn' }, 3000);
  // Nothing got stored in the room the joins named.
  const j = await c.join(r, 'n');
  assert.equal(j.history.length, 0);
  await stillServing('huge numbers');
});

test('deep nesting: 100k \'[\' and similar are refused without harm', { timeout: 60000 }, async () => {
  // On the default gateway a 100 KB frame is over --frame-bytes: 1009.
  const c0 = await connect(gw.url);
  c0.send('['.repeat(100000));
  assert.equal((await c0.waitClosed(5000)).code, 1009);

  // On a gateway with 1 MiB frames the nesting reaches the JSON parser.
  const { c, room } = await joined(gwBig.url);
  const n = 100000;
  const cases = [
    '['.repeat(n),
    '{"a":'.repeat(n),
    `{"type":"ping","id":"deep","x":${'['.repeat(n)}${']'.repeat(n)}}`,
    `{"type":"ping","id":"deep2","x":${'{"a":'.repeat(n)}1${'}'.repeat(n)}}`,
    `{"type":"message","room":"${room}","message":${'['.repeat(n)}"x"${']'.repeat(n)}}`,
  ];
  for (const raw of cases) {
    c.send(raw);
    // Either an error (bad_json: too deep; bad_request) or, for a parser
    // that copes, a pong — never a close or silence.
    const f = await c.next((x) => x.type === 'error' || x.type === 'pong', 10000).catch((e) => {
      throw new Error(`no answer to ${raw.length} bytes of nesting: ${e.message}`);
    });
    if (f.type === 'error') assert.ok(['bad_json', 'bad_request'].includes(f.code), JSON.stringify(f));
    const id = newId('alive');
    c.send({ type: 'ping', id });
    await c.next({ type: 'pong', id }, 5000);
  }
  assert.equal(c.closeInfo, null);
  await stillServing('deep nesting');
});

test('NUL bytes, raw and escaped: bad_request/bad_json/name errors', { timeout: 30000 }, async () => {
  const { c, room } = await joined();
  await expectError(c, JSON.stringify({ type: 'message', room, message: 'a\u0000b', id: 'n1' }), 'bad_request', { expectId: 'n1' });
  await expectError(c, JSON.stringify({ type: 'message', room, message: '\u0000', id: 'n2' }), 'bad_request', { expectId: 'n2' });
  await expectError(c, JSON.stringify({ type: 'join', room: 'ro\u0000om', nickname: 'n', id: 'n3' }), ['invalid_room', 'bad_request'], { expectId: 'n3' });
  await expectError(c, JSON.stringify({ type: 'join', room: uniqueRoom('z'), nickname: 'ni\u0000ck', id: 'n4' }), ['invalid_nickname', 'bad_request'], { expectId: 'n4' });
  await expectError(c, JSON.stringify({ type: 'pi\u0000ng', id: 'n5' }), ['unknown_type', 'bad_request'], { expectId: 'n5' });
  await expectError(c, JSON.stringify({ type: 'ping', id: 'a\u0000b' }), 'bad_request');
  // Raw NUL bytes inside and outside strings, and a lone NUL frame.
  for (const raw of [
    Buffer.from(`{"type":"message","room":"${room}","message":"a\u0000b","id":"r1"}`),
    Buffer.from(`{"type":"ping","id":"r2"}\u0000`),
    Buffer.from(`\u0000{"type":"ping","id":"r3"}`),
    Buffer.from([0]),
    Buffer.alloc(1000, 0),
  ]) {
    await expectError(c, raw, ['bad_json', 'bad_request'], { binary: false });
  }
  // Nothing with a NUL reached the room.
  const h = await c.request({ type: 'history', room });
  assert.equal(h.type, 'history');
  assert.equal(h.messages.length, 0, `stored: ${JSON.stringify(h.messages)}`);
  // Escaped lone surrogates cannot become invalid UTF-8 on the wire.
  await expectError(c, `{"type":"message","room":"${room}","message":"\\ud800","id":"s1"}`, ['bad_json', 'bad_request'], { expectId: undefined });
  await expectError(c, `{"type":"message","room":"${room}","message":"x\\udc00y","id":"s2"}`, ['bad_json', 'bad_request'], { expectId: undefined });
  await stillServing('NUL bytes');
});

test('overlong and other invalid UTF-8: close 1007', { timeout: 30000 }, async () => {
  for (const bytes of [[0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xf0, 0x80, 0x80, 0xaf], [0xc1, 0xbf],
    [0xf8, 0x88, 0x80, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xff], [0x80]]) {
    const ws = await RawWebSocket.connect(gw.port);
    try {
      await ws.nextJson((j) => j.type === 'welcome');
      ws.sendText(Buffer.concat([Buffer.from('{"type":"ping","id":"'), Buffer.from(bytes), Buffer.from('"}')]));
      const closed = await ws.waitClose(5000);
      assert.equal(closed.code, 1007, `bytes ${Buffer.from(bytes).toString('hex')}: ${JSON.stringify(closed)}`);
    } finally {
      ws.destroy();
    }
  }
  await stillServing('invalid UTF-8');
});

test('invalid names: invalid_room / invalid_nickname', { timeout: 30000 }, async () => {
  const { c } = await joined();
  for (const room of ['', ' ', 'a b', 'x'.repeat(65), 'x'.repeat(10000), '../etc/passwd', 'a/b', 'room\n', 'ä',
    '<script>', '%00', '*', 'team-*', 'a\u202eb']) {
    const id = newId('ir');
    await expectError(c, JSON.stringify({ type: 'join', room, nickname: 'n', id }), 'invalid_room', { expectId: id });
  }
  for (const nickname of ['', ' ', ' x', 'x ', 'x'.repeat(33), '\u0001', 'a\nb', 'a\rb', '\u007f', '\u0085x',
    'x'.repeat(5000)]) {
    const id = newId('in');
    await expectError(c, JSON.stringify({ type: 'join', room: uniqueRoom('n'), nickname, id }), 'invalid_nickname', { expectId: id });
  }
  await stillServing('invalid names');
});

test('oversize message: too_large; oversize frame: close 1009', { timeout: 30000 }, async () => {
  const { c, room } = await joined();
  await expectError(c, JSON.stringify({ type: 'message', room, message: 'x'.repeat(4097), id: 'big' }), 'too_large', { expectId: 'big' });
  await expectError(c, JSON.stringify({ type: 'message', room, message: '€'.repeat(1366), id: 'big2' }), 'too_large', { expectId: 'big2' });
  await c.say(room, 'x'.repeat(4096)); // the limit itself is fine

  // A frame over 64 KiB, whole.
  const c2 = await connect(gw.url);
  c2.send(JSON.stringify({ type: 'ping', id: 'x', pad: 'y'.repeat(65536) }));
  assert.equal((await c2.waitClosed(5000)).code, 1009);

  // Over 64 KiB in fragments of 8 KiB each.
  const ws = await RawWebSocket.connect(gw.port);
  try {
    await ws.nextJson((j) => j.type === 'welcome');
    ws.sendFrame(OP.TEXT, '{"type":"ping","pad":"', { fin: false });
    for (let i = 0; i < 10; i++) ws.sendFrame(OP.CONT, 'z'.repeat(8192), { fin: false });
    const closed = await ws.waitClose(5000);
    assert.equal(closed.code, 1009, JSON.stringify(closed));
  } finally {
    ws.destroy();
  }

  // A header announcing 2^40 bytes: refused on the announcement or once
  // 64 KiB arrived, not buffered.
  const ws2 = await RawWebSocket.connect(gw.port);
  try {
    await ws2.nextJson((j) => j.type === 'welcome');
    const head = Buffer.alloc(14);
    head[0] = 0x81;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(1n << 40n, 2);
    ws2.socket.write(head); // mask key zero: payload goes as is
    for (let i = 0; i < 10 && !ws2.closeFrame && !ws2.socket.destroyed; i++) {
      ws2.socket.write(Buffer.alloc(8192, 0x61));
    }
    const closed = await ws2.waitClose(5000);
    assert.ok([1009, 1002].includes(closed.code), `close ${JSON.stringify(closed)}`);
  } finally {
    ws2.destroy();
  }
  await stillServing('oversize frames');
});

test('unknown fields are ignored', { timeout: 30000 }, async () => {
  const { c, room } = await joined();
  const reader = await connect(gw.url);
  await reader.join(room, 'reader');
  c.send('{"type":"ping","id":"u1","extra":{"a":[1,2,{"b":null}]},"__proto__":{"polluted":true},"constructor":1}');
  await c.next({ type: 'pong', id: 'u1' });
  c.send(JSON.stringify({ type: 'message', room, message: 'hello', id: 'u2', nickname: 'spoofed', seq: 999999, ts: 1, admin: true }));
  const ack = await c.next({ type: 'ack', id: 'u2' });
  const m = await reader.next({ type: 'message', room, message: 'hello' });
  assert.equal(m.seq, ack.seq, 'the seq is the cluster\'s, not the client\'s');
  assert.notEqual(m.nickname, 'spoofed', 'the nickname is the member\'s, not a field of the frame');
  assert.notEqual(m.ts, 1);
  assert.equal(m.admin, undefined, 'unknown fields are not forwarded');
  const r2 = uniqueRoom('u');
  const j = await c.join(r2, 'n', { colour: 'blue', rooms: ['*'] });
  assert.equal(j.type, 'joined');
  assert.equal(({}).polluted, undefined);
  // Many unknown keys in one frame (within the frame limit).
  const many = { type: 'ping', id: 'u3' };
  for (let i = 0; i < 3000; i++) many[`k${i}`] = i;
  c.send(many);
  await c.next({ type: 'pong', id: 'u3' });
  await stillServing('unknown fields');
});

test('binary frames: bad_request, connection stays open', { timeout: 30000 }, async () => {
  const { c } = await joined();
  await expectError(c, Buffer.from('{"type":"ping","id":"b"}'), 'bad_request', { binary: true });
  await expectError(c, Buffer.alloc(0), 'bad_request', { binary: true });
  await expectError(c, Buffer.from([0xff, 0x00, 0xc0, 0xaf]), 'bad_request', { binary: true });
  await expectError(c, Buffer.alloc(60000, 7), 'bad_request', { binary: true });
  // A binary message in fragments, raw.
  const ws = await RawWebSocket.connect(gw.port);
  try {
    await ws.nextJson((j) => j.type === 'welcome');
    ws.sendFrame(OP.BINARY, Buffer.from([1, 2]), { fin: false });
    ws.sendFrame(OP.CONT, Buffer.from([3, 4]), { fin: true });
    const e = await ws.nextJson((j) => j.type === 'error');
    assert.equal(e.code, 'bad_request');
    ws.sendText('{"type":"ping","id":"after-bin"}');
    await ws.nextJson((j) => j.type === 'pong' && j.id === 'after-bin');
  } finally {
    ws.destroy();
  }
  await stillServing('binary frames');
});

// Framing errors are caught by libwebsockets: 1002 (protocol error) is the
// RFC's answer; 1007/1008 are accepted as "the same thing, named
// differently", and a bare TCP close (1006) only for the cases marked so.
const FRAMING_CLOSE = [1002, 1007, 1008];
const framingCases = [
  ['a continuation with no start', (ws) => ws.sendFrame(OP.CONT, '{"type":"ping"}', { fin: true })],
  ['a new text frame in the middle of a fragmented one', (ws) => {
    ws.sendFrame(OP.TEXT, '{"type":"pi', { fin: false });
    ws.sendFrame(OP.TEXT, '{"type":"ping","id":"x"}', { fin: true });
  }],
  ['a binary frame in the middle of a fragmented text one', (ws) => {
    ws.sendFrame(OP.TEXT, '{"type":"pi', { fin: false });
    ws.sendFrame(OP.BINARY, 'ng"}', { fin: true });
  }],
  ['a fragmented ping (control frames must not be fragmented)', (ws) => {
    ws.sendFrame(OP.PING, 'ab', { fin: false });
  }],
  ['a ping with 126 bytes (control frames carry at most 125)', (ws) => {
    ws.sendFrame(OP.PING, Buffer.alloc(126, 1));
  }, { tcpCloseOk: true }], // libwebsockets drops the connection without a close frame
  ['a reserved opcode (0x3)', (ws) => ws.sendFrame(0x3, 'x')],
  ['a reserved control opcode (0xB)', (ws) => ws.sendFrame(0xb, 'x')],
  ['RSV1 set with no extension negotiated', (ws) => {
    const f = encodeFrame(OP.TEXT, '{"type":"ping"}');
    f[0] |= 0x40;
    ws.socket.write(f);
  }],
];

for (const [name, act, { tcpCloseOk = false } = {}] of framingCases) {
  test(`bad framing: ${name} closes the connection (1002-ish)`, { timeout: 20000 }, async (t) => {
    const ws = await RawWebSocket.connect(gw.port);
    try {
      await ws.nextJson((j) => j.type === 'welcome');
      act(ws);
      const closed = await ws.waitClose(12000);
      t.diagnostic(`closed with ${closed.code}${closed.reason ? ` (${closed.reason})` : ''}`);
      assert.ok(FRAMING_CLOSE.includes(closed.code) || (tcpCloseOk && closed.code === 1006),
        `close code ${closed.code} (${closed.reason}), expected one of ${FRAMING_CLOSE.join(', ')}` +
        (tcpCloseOk ? ' or a bare TCP close' : ''));
    } finally {
      ws.destroy();
    }
    await stillServing(name);
  });
}

// RFC 6455 says a server MUST close on an unmasked client frame, but
// libwebsockets 4.1 does not check the mask bit on the server side and reads
// the frame as if masked with a zero key. Harmless (masking protects
// intermediaries, not the server); asserted here: either a 1002 close or
// the frame is served, and the gateway keeps serving others either way.
test('an unmasked client frame: closed with 1002, or served harmlessly', { timeout: 20000 }, async (t) => {
  const ws = await RawWebSocket.connect(gw.port);
  try {
    await ws.nextJson((j) => j.type === 'welcome');
    ws.sendFrame(OP.TEXT, '{"type":"ping","id":"unmasked"}', { mask: false });
    const pong = await ws.nextJson((j) => j.type === 'pong', 3000).catch(() => null);
    if (pong) {
      assert.equal(pong.id, 'unmasked');
      t.diagnostic('unmasked client frame served (libwebsockets does not enforce masking)');
    } else {
      const closed = await ws.waitClose(5000);
      assert.ok(FRAMING_CLOSE.includes(closed.code), `close ${JSON.stringify(closed)}`);
    }
  } finally {
    ws.destroy();
  }
  await stillServing('an unmasked frame');
});

test('valid fragmentation still works: one byte per fragment, pings in between', { timeout: 20000 }, async () => {
  const ws = await RawWebSocket.connect(gw.port);
  try {
    await ws.nextJson((j) => j.type === 'welcome');
    const text = '{"type":"ping","id":"tiny-fragments"}';
    for (let i = 0; i < text.length; i++) {
      ws.sendFrame(i === 0 ? OP.TEXT : OP.CONT, text[i], { fin: i === text.length - 1 });
      if (i === 5) ws.sendFrame(OP.PING, 'hi'); // control frames may interleave
    }
    const pong = await ws.nextJson((j) => j.type === 'pong');
    assert.equal(pong.id, 'tiny-fragments');
  } finally {
    ws.destroy();
  }
});

test('a stream of bad frames closes with 1008; the gateway keeps serving', { timeout: 20000 }, async () => {
  const c = await connect(gw.url);
  for (let i = 0; i < 1000 && !c.closeInfo; i++) c.send(i % 2 ? 'garbage' : Buffer.from([i & 0xff]));
  const closed = await c.waitClosed(5000);
  assert.equal(closed.code, 1008);
  const errors = c.frames.filter((f) => f.type === 'error').length;
  assert.ok(errors >= 4 && errors <= 10, `errors before the close: ${errors}`);
  await stillServing('a stream of bad frames');
});

// Every error code a client can provoke with a bad frame: bad_json,
// bad_request (binary frame, wrong types, bad numbers, NUL), unknown_type,
// invalid_room, invalid_nickname, too_large, not_joined. Each error echoes
// the frame's `id` when it had one, and a first bad frame never closes the
// connection (a ping after each one still gets its pong).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, newId } from './lib/harness.mjs';

const MESSAGE_BYTES = 100;

let cl;
let room;
before(async () => {
  cl = await startCluster({ gateways: 1, workers: 0, gatewayArgs: ['--message-bytes', String(MESSAGE_BYTES)] });
  room = uniqueRoom('errors');
}, { timeout: 20000 });
after(teardown);

async function joinedClient() {
  const c = await connect(cl.gateways[0].url);
  await c.join(room, newId('member'));
  return c;
}

// Sends a bad frame; expects an error whose code is `code` (or one of the
// codes in an array), with `id` echoed when expectId is set; then proves the
// connection is open with a ping.
async function expectError(c, frame, code, { expectId, binary } = {}) {
  const codes = Array.isArray(code) ? code : [code];
  const shown = Buffer.isBuffer(frame) ? `<${frame.length} bytes>` : JSON.stringify(frame);
  const errorsBefore = c.frames.filter((f) => f.type === 'error').length;
  if (binary !== undefined) c.send(frame, { binary });
  else c.send(frame);
  const err = await c.next({ type: 'error' }, 3000).catch((e) => {
    throw new Error(`no error for ${shown}: ${e.message}`);
  });
  assert.ok(codes.includes(err.code), `${shown}: expected error ${codes.join('|')}, got ${JSON.stringify(err)}`);
  assert.equal(typeof err.message, 'string', `${shown}: error.message is text for people`);
  if (expectId !== undefined) assert.equal(err.id, expectId, `${shown}: error echoes id`);
  const pingId = newId('alive');
  c.send({ type: 'ping', id: pingId });
  await c.next({ type: 'pong', id: pingId }, 3000).catch((e) => {
    throw new Error(`connection unusable after ${shown} (close ${JSON.stringify(c.closeInfo)}): ${e.message}`);
  });
  assert.equal(c.frames.filter((f) => f.type === 'error').length, errorsBefore + 1, `${shown}: exactly one error`);
  return err;
}

test('bad_json: not JSON, not an object', { timeout: 10000 }, async () => {
  const c = await joinedClient();
  for (const raw of ['not json', '{"type":"ping"', '[1,2,3]', '"a string"', '42', 'null', '']) {
    await expectError(c, raw, 'bad_json');
  }
});

test('bad_request: a binary frame', { timeout: 10000 }, async () => {
  const c = await joinedClient();
  await expectError(c, Buffer.from(JSON.stringify({ type: 'ping', id: 'bin' })), 'bad_request', { binary: true });
});

test('bad_request: fields of the wrong type', { timeout: 10000 }, async () => {
  const c = await joinedClient();
  await expectError(c, { type: 'join', room, nickname: 'n1', history: 'ten', id: 'w1' }, 'bad_request', { expectId: 'w1' });
  await expectError(c, { type: 'join', room, nickname: 'n1', since: '3', id: 'w2' }, 'bad_request', { expectId: 'w2' });
  await expectError(c, { type: 'message', room, message: 42, id: 'w3' }, 'bad_request', { expectId: 'w3' });
  await expectError(c, { type: 'message', room, message: { text: 'x' }, id: 'w4' }, 'bad_request', { expectId: 'w4' });
  await expectError(c, { type: 'history', room, limit: '5', id: 'w5' }, 'bad_request', { expectId: 'w5' });
  await expectError(c, { type: 'history', room, before: true, id: 'w6' }, 'bad_request', { expectId: 'w6' });
  await expectError(c, { type: 'ping', id: 5 }, 'bad_request');
  await expectError(c, { type: 'ping', id: 'x'.repeat(65) }, 'bad_request');
  await expectError(c, { type: 'message', room, id: 'w7' }, 'bad_request', { expectId: 'w7' });
  await expectError(c, { type: 'message', room, message: '', id: 'w8' }, 'bad_request', { expectId: 'w8' });
  // Codes where either reading of PROTOCOL.md is defensible.
  await expectError(c, { type: 'join', room: ['r'], nickname: 'n1', id: 'w9' }, ['bad_request', 'invalid_room'], { expectId: 'w9' });
  await expectError(c, { type: 'join', room, id: 'w10' }, ['bad_request', 'invalid_nickname'], { expectId: 'w10' });
  await expectError(c, { type: 5, id: 'w11' }, ['bad_request', 'unknown_type'], { expectId: 'w11' });
});

test('bad_request: numbers out of range or not integers', { timeout: 10000 }, async () => {
  const c = await joinedClient();
  const r2 = uniqueRoom('nums');
  const cases = [
    { type: 'join', room: r2, nickname: 'n', since: -1 },
    { type: 'join', room: r2, nickname: 'n', since: 1.5 },
    { type: 'join', room: r2, nickname: 'n', since: 1e300 },
    { type: 'join', room: r2, nickname: 'n', history: 501 },
    { type: 'join', room: r2, nickname: 'n', history: -1 },
    { type: 'history', room, limit: 0 },
    { type: 'history', room, limit: 501 },
    { type: 'history', room, before: -5 },
    { type: 'history', room, before: 2.5 },
  ];
  for (const frame of cases) {
    const id = newId('num');
    await expectError(c, { ...frame, id }, 'bad_request', { expectId: id });
  }
});

test('bad_request: NUL, escaped or raw', { timeout: 10000 }, async () => {
  const c = await joinedClient();
  await expectError(c, { type: 'message', room, message: 'a\u0000b', id: 'nul1' }, 'bad_request', { expectId: 'nul1' });
  const raw = Buffer.from(`{"type":"message","room":"${room}","message":"a\u0000b","id":"nul2"}`, 'utf8');
  assert.ok(raw.includes(0), 'the frame holds a raw NUL byte');
  await expectError(c, raw, ['bad_request', 'bad_json'], { binary: false });
});

test('unknown_type', { timeout: 10000 }, async () => {
  const c = await joinedClient();
  await expectError(c, { type: 'dance', id: 'u1' }, 'unknown_type', { expectId: 'u1' });
  await expectError(c, { type: '', id: 'u2' }, 'unknown_type', { expectId: 'u2' });
  await expectError(c, { type: 'JOIN', room, nickname: 'n', id: 'u3' }, 'unknown_type', { expectId: 'u3' });
});

test('invalid_room', { timeout: 10000 }, async () => {
  const c = await joinedClient();
  for (const bad of ['', 'has space', 'x'.repeat(65), 'slash/room', 'brace{x}', 'ümlaut', 'tab\troom', 'star*']) {
    const id = newId('room');
    await expectError(c, { type: 'join', room: bad, nickname: 'n', id }, 'invalid_room', { expectId: id });
  }
  await expectError(c, { type: 'message', room: 'bad room', message: 'x', id: 'ir-m' }, 'invalid_room', { expectId: 'ir-m' });
  // The boundaries are valid.
  await c.join('x'.repeat(64), 'n');
  await c.join('AZaz09._:-', 'n');
});

test('invalid_nickname', { timeout: 10000 }, async () => {
  const c = await joinedClient();
  for (const bad of ['', ' lead', 'trail ', 'x'.repeat(33), 'bell\u0007', 'tab\there', 'line\nbreak', 'del\u007f', ' ']) {
    const id = newId('nick');
    await expectError(c, { type: 'join', room: uniqueRoom('n'), nickname: bad, id }, 'invalid_nickname', { expectId: id });
  }
  // The boundaries are valid: 32 characters (of 2 bytes each), inner spaces, emoji.
  await c.join(uniqueRoom('n'), 'é'.repeat(32));
  await c.join(uniqueRoom('n'), 'x'.repeat(32));
  await c.join(uniqueRoom('n'), 'two words');
  await c.join(uniqueRoom('n'), 'cat 🐱');
});

test('too_large: message over --message-bytes', { timeout: 10000 }, async () => {
  const c = await joinedClient();
  await expectError(c, { type: 'message', room, message: 'x'.repeat(MESSAGE_BYTES + 1), id: 'big1' }, 'too_large', { expectId: 'big1' });
  await expectError(c, { type: 'message', room, message: 'é'.repeat(MESSAGE_BYTES / 2 + 1), id: 'big2' }, 'too_large', { expectId: 'big2' });
  // Exactly the limit, in bytes, is allowed.
  await c.say(room, 'x'.repeat(MESSAGE_BYTES));
  await c.say(room, 'é'.repeat(MESSAGE_BYTES / 2));
  // Legacy frames are held to the same limit (a chat.v1 connection gets the error).
});

test('not_joined: message, leave, history, members on a room not joined', { timeout: 10000 }, async () => {
  const c = await joinedClient();
  const other = uniqueRoom('other');
  await expectError(c, { type: 'message', room: other, message: 'x', id: 'nj1' }, 'not_joined', { expectId: 'nj1' });
  await expectError(c, { type: 'leave', room: other, id: 'nj2' }, 'not_joined', { expectId: 'nj2' });
  await expectError(c, { type: 'history', room: other, id: 'nj3' }, 'not_joined', { expectId: 'nj3' });
  await expectError(c, { type: 'members', room: other, id: 'nj4' }, 'not_joined', { expectId: 'nj4' });
});

test('errors without id carry no id', { timeout: 10000 }, async () => {
  const c = await joinedClient();
  const err = await expectError(c, { type: 'dance' }, 'unknown_type');
  assert.equal(err.id, undefined);
});

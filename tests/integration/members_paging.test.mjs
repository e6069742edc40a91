// Big rooms (issue 13): a room of more members than --members-page gets
// `joined` with its member count and a first page, and the rest through
// `members` with a cursor; GET /api/rooms/{room}/members pages the same
// way. Pages put together hold every member, and a room of at most a page
// is listed whole with no cursor, as before.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, httpGet } from './lib/harness.mjs';
import { BIG_ROOM_ARGS, PAGE, THRESHOLD, TICK_MS, fill, pageWs, pageHttp, uniq } from './big_room_helpers.mjs';

const N = 23;

let cl;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 1, gatewayArgs: BIG_ROOM_ARGS });
}, { timeout: 20000 });
after(teardown);

const names = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`).sort();

test('welcome announces the page size and the presence threshold and tick', { timeout: 10000 }, async () => {
  const c = await connect(cl.gateways[0].url);
  assert.equal(c.welcome.limits.members_page, PAGE);
  assert.equal(c.welcome.limits.presence_batch_above, THRESHOLD);
  assert.equal(c.welcome.limits.presence_tick_ms, TICK_MS);
});

test('joined in a big room: the count and a first page; members pages hold the rest', { timeout: 30000 }, async () => {
  const room = uniqueRoom('paged');
  await fill(cl.gateways, room, 'm', N - 1);
  const last = await connect(cl.gateways[0].url);
  const j = await last.join(room, `m${N}`);
  assert.equal(j.count, N, 'joined carries the member count');
  assert.ok(j.members.length < N, `joined holds a page, not all ${N} (${j.members.length})`);
  assert.match(j.members_cursor, /^[0-9]+$/, 'and the cursor of the next page');

  // From the joined page on, with its cursor.
  const rest = await pageWs(last, room, j.members_cursor);
  assert.equal(rest.count, N);
  assert.deepEqual(uniq([...j.members.map((m) => m.nickname), ...rest.names]), names('m', N));

  // From the start, without a cursor: the first page, then the others.
  const all = await pageWs(last, room);
  assert.ok(all.pages > 1, `more than one page (${all.pages})`);
  assert.deepEqual(uniq(all.names), names('m', N));
  for (const m of (await last.request({ type: 'members', room })).members) {
    assert.deepEqual(Object.keys(m).sort(), ['nickname', 'since'], 'no internal fields leak');
  }
});

test('HTTP members pages the same way', { timeout: 30000 }, async () => {
  const room = uniqueRoom('paged-http');
  await fill(cl.gateways, room, 'h', N);
  const first = (await httpGet(`${cl.gateways[1].http}/api/rooms/${room}/members`)).json();
  assert.equal(first.count, N);
  assert.ok(first.members.length < N, 'the first page is a page');
  assert.match(first.cursor, /^[0-9]+$/);
  const all = await pageHttp(cl.gateways[1], room);
  assert.ok(all.pages > 1);
  assert.equal(all.count, N);
  assert.deepEqual(uniq(all.names), names('h', N));
  for (const q of ['cursor=', 'cursor=x', 'cursor=-1', 'cursor=123456789012345678901']) {
    const r = await httpGet(`${cl.gateways[1].http}/api/rooms/${room}/members?${q}`);
    assert.equal(r.status, 400, q);
  }
});

test('a room of at most a page is listed whole, with no cursor', { timeout: 20000 }, async () => {
  const room = uniqueRoom('small');
  await fill(cl.gateways, room, 's', PAGE - 1);
  const c = await connect(cl.gateways[0].url);
  const j = await c.join(room, `s${PAGE}`);
  assert.deepEqual(j.members.map((m) => m.nickname).sort(), names('s', PAGE));
  assert.equal(j.count, PAGE);
  assert.equal(j.members_cursor, undefined);
  const m = await c.request({ type: 'members', room });
  assert.deepEqual(m.members.map((x) => x.nickname).sort(), names('s', PAGE));
  assert.equal(m.cursor, undefined);
  const h = (await httpGet(`${cl.gateways[0].http}/api/rooms/${room}/members`)).json();
  assert.equal(h.cursor, undefined);
  assert.deepEqual(h.members.map((x) => x.nickname).sort(), names('s', PAGE));
});

// The HSCAN guarantee docs/PROTOCOL.md passes on: a member present for the
// whole paging is on some page, however many join and leave meanwhile.
test('paging while members come and go lists every member that stayed', { timeout: 40000 }, async () => {
  const room = uniqueRoom('churn');
  await fill(cl.gateways, room, 'stay', N);
  const reader = await connect(cl.gateways[0].url);
  await reader.join(room, 'reader');
  let stop = false;
  let churned = 0;
  const churn = (async () => {
    for (let i = 0; i < 200 && !stop; i++, churned++) { // bounded
      const c = await connect(cl.gateways[i % 2].url);
      await c.join(room, `come${i}`);
      if (i % 2) c.send({ type: 'leave', room });
      else c.terminate();
    }
  })();
  try {
    // Page again and again until 40 have come and gone meanwhile (bounded).
    for (let round = 0; round < 100 && churned < 40; round++) {
      const ws = await pageWs(reader, room);
      const http = await pageHttp(cl.gateways[1], room);
      for (const got of [ws.names, http.names]) {
        const stayed = uniq(got).filter((n) => n.startsWith('stay'));
        assert.deepEqual(stayed, names('stay', N), `round ${round}`);
      }
    }
  } finally {
    stop = true;
    await churn;
  }
  assert.ok(churned >= 40, `members came and went while paging (${churned})`);
});

test('a bad cursor is bad_request', { timeout: 10000 }, async () => {
  const room = uniqueRoom('badcursor');
  const c = await connect(cl.gateways[0].url);
  await c.join(room, 'x');
  for (const cursor of [5, '', 'abc', '1'.repeat(21)]) {
    const f = await c.request({ type: 'members', room, cursor });
    assert.equal(f.type, 'error', JSON.stringify(cursor));
    assert.equal(f.code, 'bad_request');
  }
});

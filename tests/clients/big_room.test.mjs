// Big rooms (issue 13) through the library, against a real cluster whose
// gateways page members by 5 and batch presence above 5 members: the
// member count from joined, presence, presence_diff and members answers;
// the member list paged with loadMoreMembers() until it is whole; diffs
// applied to it; presence received after a members request was sent wins
// over what the answer's page says; and a room of at most a page behaves
// as before (the whole list in joined, one presence event at a time).
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom } from '../integration/lib/harness.mjs';
import { BIG_ROOM_ARGS, PAGE, fill, pageHttp, uniq } from '../integration/big_room_helpers.mjs';
import { startWsProxy } from './lib/ws-proxy.mjs';
import { newClient, closeClients, events, until } from './lib/util.mjs';

const MAX_PAGES = 100; // a bound on every paging loop

let cl;
let proxy;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 1, gatewayArgs: BIG_ROOM_ARGS });
  proxy = await startWsProxy(cl.gateways[0].url);
}, { timeout: 30000 });
afterEach(() => {
  closeClients();
  proxy.toClient = null;
});
after(async () => {
  await proxy?.close();
  await teardown();
});

const names = (c, room) => c.roomMembers(room).members.map((m) => m.nickname).sort();
const truth = async (room) => {
  const t = await pageHttp(cl.gateways[1], room);
  return { names: uniq(t.names), count: t.count };
};

// Holds back the next frame of this type and room on its way to the
// client: await frame() for it, then release() lets it go on.
function holdNext(type, room) {
  let held = null;
  proxy.toClient = (f, pair) => {
    if (held || !f || f.type !== type || f.room !== room) return true;
    held = { f, pair };
    return false;
  };
  return {
    frame: () => until(() => held?.f, { what: `a ${type} frame of ${room}, held` }),
    release: () => {
      proxy.toClient = null;
      held.pair.down.send(JSON.stringify(held.f));
    },
  };
}

// Waits until the client's list and count are the room's, as HTTP pages it.
async function converge(c, room) {
  let want;
  await until(async () => {
    want = await truth(room);
    return names(c, room).join() === want.names.join() && c.count(room) === want.count;
  }, { timeoutMs: 8000, what: 'the list and count to be the room\'s' }).catch((e) => {
    throw new Error(`${e.message}: have ${names(c, room).join()} (${c.count(room)}), want ${want.names.join()} (${want.count})`);
  });
  return want;
}

test('a room of at most a page: the whole list and the count in joined, presence one event at a time',
  { timeout: 20000 }, async () => {
    const room = uniqueRoom('small');
    const raws = await fill(cl.gateways, room, 's', 2);
    const c = newClient([cl.gateways[0].url]).connect();
    const j = await c.join(room, 'me');
    assert.deepEqual(j.members.map((m) => m.nickname).sort(), ['me', 's1', 's2']);
    assert.equal(j.count, 3);
    assert.equal(j.more, false);
    assert.deepEqual(await c.loadMoreMembers(room), { added: [], more: false, count: 3 }, 'nothing to page');
    const late = await connect(cl.gateways[1].url);
    await late.join(room, 'late');
    await until(() => c.count(room) === 4, { what: 'count 4' });
    await raws[0].close();
    await converge(c, room);
    assert.equal(c.count(room), 3);
    assert.ok(events(c, 'presence').some((x) => x.e.nickname === 'late' && x.e.event === 'join' && x.e.count === 4),
      'a presence frame per event, with the count');
    assert.equal(events(c, 'presence_diff').length, 0, 'no diffs in a small room');
    assert.deepEqual((await c.members(room)).map((m) => m.nickname).sort(), ['late', 'me', 's2']);
    assert.equal(events(c, 'members').at(-1).e.more, false);
  });

test('a big room: a first page and the count, more pages until every member is listed once, then diffs',
  { timeout: 40000 }, async () => {
    const room = uniqueRoom('big');
    const N = 18;
    const raws = await fill(cl.gateways, room, 'b', N - 1);
    const c = newClient([cl.gateways[0].url]).connect();
    const j = await c.join(room, 'me');
    assert.equal(j.count, N);
    assert.equal(j.more, true, 'more members than the first page');
    assert.ok(j.members.length < N, `a page, not all ${N} (${j.members.length})`);
    assert.deepEqual(c.roomMembers(room).more, true);

    // Pages until none is left; concurrent calls share one request.
    let pages = 0;
    let more = true;
    const seen = j.members.map((m) => m.nickname); // and `me` may come in a diff
    while (more) {
      assert.ok(++pages <= MAX_PAGES, 'paging ends');
      const [a, b] = [c.loadMoreMembers(room), c.loadMoreMembers(room)];
      assert.equal(a, b, 'one page on its way at a time');
      const p = await a;
      assert.equal(p.count, N);
      seen.push(...p.added.map((m) => m.nickname));
      more = p.more;
    }
    assert.ok(pages >= 2, `paged more than once (${pages})`);
    const want = await truth(room);
    assert.deepEqual(names(c, room), want.names, 'every member');
    assert.equal(new Set(seen).size, seen.length, `nobody added twice: ${seen}`);
    assert.deepEqual(await c.loadMoreMembers(room), { added: [], more: false, count: N });

    // Joins and leaves now come as presence_diff, and keep list and count true.
    const diffsBefore = events(c, 'presence_diff').length;
    const newcomers = await fill(cl.gateways, room, 'n', 3);
    raws[0].send({ type: 'leave', room });
    await raws[1].close();
    raws[2].terminate();
    await converge(c, room);
    assert.equal(c.count(room), N + 3 - 3);
    const diffs = events(c, 'presence_diff').slice(diffsBefore).map((x) => x.e);
    assert.ok(diffs.length > 0, 'diffs were applied');
    assert.ok(diffs.every((d) => typeof d.count === 'number' && Array.isArray(d.joins) && Array.isArray(d.leaves)));
    assert.equal(events(c, 'members').at(-1).e.count, c.count(room), 'members events carry the count');
    for (const n of newcomers) n.terminate();
  });

test('presence received after a members request was sent wins over the answer\'s page',
  { timeout: 30000 }, async () => {
    // Small room: the answer lists everyone and replaces the list, except
    // what presence said after the request went out.
    const room = uniqueRoom('merge');
    const raws = await fill(cl.gateways, room, 'r', 3);
    const c = newClient([proxy.url]).connect();
    await c.join(room, 'me');
    await until(() => c.count(room) === 4, { what: 'count 4' });
    const hold = holdNext('members', room);
    const answer = c.membersPage(room);
    assert.deepEqual((await hold.frame()).members.map((m) => m.nickname).sort(), ['me', 'r1', 'r2', 'r3']);
    raws[0].send({ type: 'leave', room });
    const late = await connect(cl.gateways[1].url);
    await late.join(room, 'late');
    await until(() => c.roomMembers(room).members.some((m) => m.nickname === 'late')
      && !c.roomMembers(room).members.some((m) => m.nickname === 'r1'), { what: 'r1 to leave and late to join' });
    hold.release();
    const page = await answer;
    assert.equal(page.count, 4, 'the answer was read before both events');
    assert.deepEqual(names(c, room), ['late', 'me', 'r2', 'r3'], 'r1 stays gone, late stays');
    assert.equal(c.count(room), 4, 'the count from presence, not the older answer\'s');
    late.terminate();

    // Big room: a member on the held page leaves before the page arrives.
    const big = uniqueRoom('merge-big');
    const many = await fill(cl.gateways, big, 'm', 2 * PAGE + 2);
    await c.join(big, 'me');
    // Pages are held until one names somebody (an HSCAN step may be empty).
    let next;
    let held;
    let onPage = [];
    for (let i = 0; i < MAX_PAGES && onPage.length === 0; i++) {
      held = holdNext('members', big);
      next = c.loadMoreMembers(big);
      const page = await held.frame();
      onPage = page.members.map((m) => m.nickname).filter((n) => n !== 'me' && !names(c, big).includes(n));
      if (onPage.length === 0) {
        held.release();
        assert.ok((await next).more, 'a page naming somebody new comes before the last');
      }
    }
    assert.ok(onPage.length > 0, 'a page named somebody new');
    const gone = onPage[0];
    await many[Number(gone.slice(1)) - 1].close();
    await until(() => events(c, 'presence_diff').some((x) => x.e.room === big
      && x.e.leaves.some((l) => l.nickname === gone)), { what: `a diff with ${gone}'s leave` });
    held.release();
    await next;
    assert.ok(!names(c, big).includes(gone), `${gone} left after the request: the page does not bring it back`);
    for (let i = 0; i < MAX_PAGES && (await c.loadMoreMembers(big)).more; i++);
    await converge(c, big);
  });

test('joined is a page too: presence that comes before it, after the join was sent, wins', { timeout: 20000 }, async () => {
  const room = uniqueRoom('before-joined');
  const raws = await fill(cl.gateways, room, 'p', 3);
  const hold = holdNext('joined', room);
  const c = newClient([proxy.url]).connect();
  const joined = c.join(room, 'me');
  assert.deepEqual((await hold.frame()).members.map((m) => m.nickname).sort(), ['me', 'p1', 'p2', 'p3']);
  await raws[0].close();
  await until(() => events(c, 'presence').some((x) => x.e.nickname === 'p1' && x.e.event === 'leave'),
    { what: 'p1\'s leave, before joined' });
  hold.release();
  const j = await joined;
  assert.deepEqual(j.members.map((m) => m.nickname).sort(), ['me', 'p2', 'p3'], 'p1 left after the join was sent');
  assert.equal(j.count, 3, 'the count from presence, not the older joined\'s');
  await converge(c, room);
});

// Helpers of the big-room tests (issue 13): gateways with a small page and
// threshold, the whole member list read page by page over WebSocket or
// HTTP, and a client's member list rebuilt from what it was sent.
import assert from 'node:assert/strict';
import { connect, httpGet } from './lib/harness.mjs';

export const PAGE = 5;
export const THRESHOLD = 5;
export const TICK_MS = 250;
export const BIG_ROOM_ARGS = [
  '--members-page', String(PAGE), '--presence-batch-above', String(THRESHOLD),
  '--presence-tick-ms', String(TICK_MS), '--joins-per-sec', '1000',
];
const MAX_PAGES = 200; // a bound on every paging loop

// Joins n clients as `${prefix}1`..`${prefix}n`, spread over the gateways.
export async function fill(gateways, room, prefix, n, opts = {}) {
  const out = [];
  for (let i = 1; i <= n; i++) {
    const c = await connect(gateways[i % gateways.length].url);
    await c.join(room, `${prefix}${i}`, opts);
    out.push(c);
  }
  return out;
}

// Every member, through `members` frames with the cursor of each page,
// starting from `cursor` ("0": the start). Returns {names, pages, count}.
export async function pageWs(client, room, cursor = '0') {
  const names = [];
  let pages = 0;
  let count;
  for (;;) {
    assert.ok(++pages <= MAX_PAGES, 'paging ends');
    const f = await client.request({ type: 'members', room, cursor });
    assert.equal(f.type, 'members', JSON.stringify(f));
    assert.equal(typeof f.count, 'number');
    count = f.count;
    names.push(...f.members.map((m) => m.nickname));
    if (f.cursor === undefined) break;
    assert.match(f.cursor, /^[0-9]{1,20}$/);
    cursor = f.cursor;
  }
  return { names, pages, count };
}

// The same over GET /api/rooms/{room}/members?cursor=.
export async function pageHttp(gw, room) {
  const names = [];
  let pages = 0;
  let count;
  let cursor = null;
  for (;;) {
    assert.ok(++pages <= MAX_PAGES, 'paging ends');
    const q = cursor === null ? '' : `?cursor=${cursor}`;
    const r = await httpGet(`${gw.http}/api/rooms/${room}/members${q}`);
    assert.equal(r.status, 200, r.body);
    const j = r.json();
    count = j.count;
    names.push(...j.members.map((m) => m.nickname));
    if (j.cursor === undefined) break;
    cursor = j.cursor;
  }
  return { names, pages, count };
}

export const uniq = (names) => [...new Set(names)].sort();

// A member list kept the way a client keeps it: a joined page, more pages,
// then presence frames and presence_diffs applied in order as "set
// present" and "set absent".
export class MemberView {
  constructor(joined) {
    this.set = new Set(joined.members.map((m) => m.nickname));
    this.count = joined.count;
    this.diffs = 0;
    this.events = 0;
  }

  addPage(names) {
    for (const n of names) this.set.add(n);
  }

  apply(f) {
    if (f.type === 'presence') {
      this.events++;
      if (f.event === 'join') this.set.add(f.nickname);
      else this.set.delete(f.nickname);
      if (f.count !== undefined) this.count = f.count;
    } else if (f.type === 'presence_diff') {
      this.diffs++;
      for (const l of f.leaves) this.set.delete(l.nickname);
      for (const j of f.joins) this.set.add(j.nickname);
      this.count = f.count;
    }
  }

  // Applies every presence frame the client has in its inbox, in order.
  drain(client, room) {
    for (const f of client.take((x) => x.room === room && (x.type === 'presence' || x.type === 'presence_diff'))) {
      this.apply(f);
    }
  }

  names() {
    return [...this.set].sort();
  }
}

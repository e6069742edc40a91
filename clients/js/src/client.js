// ChatClient: one WebSocket to a chat cluster (docs/PROTOCOL.md, chat.v1),
// many rooms on it, kept alive across drops and gateway failures. No DOM:
// it needs only a WebSocket class (the browser's, or the `ws` package's in
// Node) and timers.
//
// What it promises its user:
// - every message of a joined room is emitted once, in seq order, also
//   across reconnects (rejoin with since/epoch), or the room is reported
//   reset (`recovered: false`) and starts again from what the cluster has;
// - every send() settles: resolved with the seq the cluster stored it at,
//   or rejected with a ChatError whose code says why (PROTOCOL.md's codes,
//   plus a few of its own, see ChatError below); a message refused as too
//   fast is not rejected but sent again when the gateway's rate allows.

import {
  SUBPROTOCOL, DEFAULT_LIMITS, isValidRoom, isValidNickname, utf8Length, backoffDelay, hintedDelay, Pacer,
} from './rules.js';

// Codes the client uses besides the protocol's own:
// - not_delivered: the connection dropped before the gateway answered, and
//   the room's recovered history shows the message was not stored;
// - in_doubt: the connection dropped before the answer and the history
//   could not be recovered, so it may or may not be stored;
// - queue_full: more than maxQueue messages waiting;
// - disconnected: a history/members request whose connection dropped;
// - closed: the client was closed.
export class ChatError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = 'ChatError';
    this.code = code;
    Object.assign(this, extra);
  }
}

// Tiny event emitter, so the library needs nothing from the platform.
class Emitter {
  constructor() {
    this.handlers = new Map();
  }

  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) {
    this.handlers.get(type)?.delete(fn);
  }

  once(type, fn) {
    const off = this.on(type, (...args) => {
      off();
      fn(...args);
    });
    return off;
  }

  emit(type, ...args) {
    for (const fn of [...(this.handlers.get(type) || [])]) {
      try {
        fn(...args);
      } catch (e) {
        // A listener's bug must not break the connection's bookkeeping.
        queueMicrotask(() => { throw e; });
      }
    }
  }
}

const OPEN = 1;
const GAP_WAIT_MS = 3000;     // a gap fetch that does not answer: deliver what we hold
const RETRY_JOIN_MS = 1000;   // a rejoin refused as unavailable or too fast is tried again
const MAX_RATE_RETRIES = 8;   // one message refused as too fast this often is given up
const PRESENCE_MODES = ['events', 'diff', 'count'];

export class ChatClient extends Emitter {
  constructor(options = {}) {
    super();
    const urls = Array.isArray(options.urls) ? options.urls : [options.urls ?? options.url];
    if (!urls.length || urls.some((u) => typeof u !== 'string' || !u)) {
      throw new TypeError('ChatClient: urls must be a WebSocket URL or a list of them');
    }
    this.urls = [...urls];
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    if (typeof this.WebSocket !== 'function') {
      throw new TypeError('ChatClient: no WebSocket class (in Node, pass the `ws` package: { WebSocket })');
    }
    this.opts = {
      graceMs: 0, historyPage: 50, pingEveryMs: 20000, pongTimeoutMs: 10000, stableMs: 10000,
      maxQueue: 1000, paceMargin: 0.9, random: Math.random, backoff: {}, ...options,
    };
    this.state = 'idle';       // idle | connecting | open | waiting | closed
    this.limits = { ...DEFAULT_LIMITS };
    this.gateway = null;
    this.session = null;
    this.rooms = new Map();    // name -> RoomState (see room())
    this.queue = [];           // outgoing messages, oldest first
    this.pending = new Map();  // frame id -> request waiting for its reply
    this.attempt = 0;
    this.urlIndex = 0;
    this.nextId = 1;
    this.ws = null;
    this.retryTimer = null;
    this.retryAt = 0;
    this.closeCode = 0;
    this.hintMs = null;
    this.flushTimer = null;
    this.tickTimer = null;
    this.pacer = new Pacer({ perSec: this.limits.rate_per_sec, burst: this.limits.rate_burst, margin: this.opts.paceMargin });
    this.joinPacer = new Pacer({ perSec: this.limits.joins_per_sec, burst: this.limits.joins_per_sec, margin: this.opts.paceMargin });
    this.lastQueueReport = '';
  }

  // ------------------------------------------------------------ public API

  connect() {
    if (this.state === 'closed') throw new ChatError('closed', 'this client was closed');
    if (this.state === 'idle') this.open();
    return this;
  }

  // Closes the connection for good: every waiting promise is rejected.
  close() {
    if (this.state === 'closed') return;
    clearTimeout(this.retryTimer);
    clearTimeout(this.flushTimer);
    this.stopSocket();
    this.setState('closed');
    const err = () => new ChatError('closed', 'the client was closed');
    for (const item of this.queue.splice(0)) item.reject(err());
    for (const req of this.pending.values()) req.reject?.(err());
    this.pending.clear();
    for (const room of this.rooms.values()) {
      clearTimeout(room.gapTimer);
      clearTimeout(room.retryTimer);
      if (room.joinWaiter) room.joinWaiter.reject(err());
    }
  }

  // Reconnects now if a retry is scheduled (e.g. the network came back).
  retryNow() {
    if (this.state === 'waiting') this.open();
  }

  // Joins a room, and rejoins it after every reconnect until leave(). Pass
  // since/epoch (from a previous session, see snapshot()) to continue where
  // that left off: the join then recovers what was missed. Resolves with the
  // first `joined` (see the 'joined' event); rejects with a ChatError.
  // presence ('events', 'diff' or 'count') is sent as join.presence: how
  // the room's joins and leaves come (PROTOCOL.md, big rooms); by default
  // the gateway's choice, one event at a time in rooms up to its threshold.
  join(room, nickname, { since, epoch, history, presence } = {}) {
    if (presence !== undefined && !PRESENCE_MODES.includes(presence)) {
      return Promise.reject(new ChatError('bad_request', `presence is one of ${PRESENCE_MODES.join(', ')}`));
    }
    if (!isValidRoom(room)) return Promise.reject(new ChatError('invalid_room', `invalid room ${room}`));
    if (!isValidNickname(nickname)) return Promise.reject(new ChatError('invalid_nickname', 'invalid nickname'));
    const existing = this.rooms.get(room);
    if (existing && existing.nickname !== nickname && (existing.joined || existing.joinWaiter)) {
      return Promise.reject(new ChatError('bad_request', `already in ${room} as ${existing.nickname}; leave it first`));
    }
    if (existing && existing.nickname === nickname && (existing.joined || existing.joinWaiter)) {
      return existing.joinWaiter ? existing.joinWaiter.promise : Promise.resolve(existing.info);
    }
    const r = existing || this.room(room, nickname);
    r.nickname = nickname;
    r.replaced = false;
    if (Number.isInteger(since) && since >= 0 && typeof epoch === 'string' && r.epoch === null) {
      r.epoch = epoch;
      r.lastSeq = since;
    }
    r.history = history ?? this.opts.historyPage;
    r.presence = presence ?? null;
    r.joinWaiter = deferred();
    const { promise } = r.joinWaiter;
    this.sendJoin(r);
    return promise;
  }

  // Leaves a room: no rejoin, its waiting messages are rejected.
  leave(room) {
    const r = this.rooms.get(room);
    if (!r) return;
    if (r.joined && this.isOpen()) this.sendFrame({ type: 'leave', room });
    this.forget(r, new ChatError('not_joined', `left ${room}`));
  }

  // Queues a message; resolves with {id, room, seq} once stored. Messages go
  // out in order, paced by the gateway's announced rate, and wait while the
  // connection is down. The promise also carries the id at once (.id).
  send(room, text) {
    const r = this.rooms.get(room);
    let error = null;
    if (!r || r.replaced) error = new ChatError('not_joined', `not in ${room}`);
    else if (typeof text !== 'string' || text.length === 0) error = new ChatError('bad_request', 'empty message');
    else if (utf8Length(text) > this.limits.message_bytes) {
      error = new ChatError('too_large', `over ${this.limits.message_bytes} bytes`, { limit: this.limits.message_bytes });
    } else if (this.queue.length >= this.opts.maxQueue) error = new ChatError('queue_full', 'too many messages waiting');
    const id = `m${this.nextId++}`;
    if (error) {
      const p = Promise.reject(error);
      p.catch(() => {}); // settled for whoever awaits it; never "unhandled"
      p.id = id;
      return p;
    }
    const d = deferred();
    const item = {
      id, room, text, state: 'queued', retries: 0, sinceSeq: 0, resolve: d.resolve, reject: d.reject,
    };
    this.queue.push(item);
    d.promise.id = id;
    this.flush();
    return d.promise;
  }

  // Older messages (before seq, at most limit), oldest first. Needs the room joined.
  history(room, { before, limit = this.opts.historyPage } = {}) {
    const frame = { type: 'history', room, limit };
    if (Number.isInteger(before)) frame.before = before;
    return this.request(frame, 'history').then((f) => (Array.isArray(f.messages) ? f.messages : []));
  }

  // The room's member list as the cluster has it now: in a room of more
  // than a page of members (limits.members_page), its first page; see
  // membersPage() and loadMoreMembers() for the rest.
  members(room) {
    return this.membersPage(room).then((p) => p.members);
  }

  // One page of the room's members, from the start or from `cursor` (a
  // page's `cursor`). Resolves {members, count, cursor, more}: cursor is
  // where the next page starts, null after the last. The page is merged
  // into the room's member list (see roomMembers()), keyed by nickname; a
  // nickname whose presence arrived after this request was sent keeps what
  // that presence said.
  membersPage(room, { cursor } = {}) {
    if (cursor !== undefined && cursor !== null && !/^[0-9]{1,20}$/.test(String(cursor))) {
      return Promise.reject(new ChatError('bad_request', 'a members cursor is 1-20 digits'));
    }
    const frame = { type: 'members', room };
    if (cursor !== undefined && cursor !== null && String(cursor) !== '0') frame.cursor = String(cursor);
    const r = this.rooms.get(room);
    return this.request(frame, 'members', r ? { mark: r.presenceN, cursor: frame.cursor ?? null } : {})
      .then((f) => ({
        members: Array.isArray(f.members) ? f.members : [],
        count: typeof f.count === 'number' ? f.count : null,
        cursor: typeof f.cursor === 'string' ? f.cursor : null,
        more: typeof f.cursor === 'string',
      }));
  }

  // The next page of the room's member list, after `joined` and the pages
  // loaded so far. Resolves {added, more, count}: the members the page
  // added, whether another page follows, the room's count. With no page
  // left it resolves at once (more: false). A page may add nobody and still
  // have more after it. Calls made while one is on its way share it.
  loadMoreMembers(room) {
    const r = this.rooms.get(room);
    if (!r) return Promise.reject(new ChatError('not_joined', `not in ${room}`));
    if (r.moreWaiter) return r.moreWaiter;
    if (r.membersCursor === null) return Promise.resolve({ added: [], more: false, count: this.count(room) });
    const before = new Set(r.members.keys());
    r.moreWaiter = this.membersPage(room, { cursor: r.membersCursor }).then((p) => ({
      added: p.members.filter((m) => !before.has(m.nickname) && r.members.has(m.nickname)),
      more: r.membersCursor !== null,
      count: this.count(room),
    })).finally(() => { r.moreWaiter = null; });
    return r.moreWaiter;
  }

  // The room's member count as the cluster last said (joined, presence,
  // presence_diff, presence_count, a members page), or, from a gateway that
  // does not send one, the size of a complete member list; null if unknown.
  count(room) {
    const r = this.rooms.get(room);
    if (!r) return null;
    if (r.count !== null) return r.count;
    return r.membersCursor === null && r.presence !== 'count' ? r.members.size : null;
  }

  // The room's member list as this client holds it: joined's members, the
  // pages loaded since, and the presence that followed. `more`: pages are
  // left to load (loadMoreMembers), so `members` is not the whole room.
  roomMembers(room) {
    const r = this.rooms.get(room);
    if (!r) return null;
    return { members: [...r.members.values()], count: this.count(room), more: r.membersCursor !== null };
  }

  // What to save to continue later (a page reload): each room's nickname,
  // epoch and last seq seen. Pass these back to join().
  snapshot() {
    return [...this.rooms.values()].filter((r) => !r.replaced).map((r) => ({
      room: r.name, nickname: r.nickname, epoch: r.epoch, since: r.lastSeq,
    }));
  }

  isOpen() {
    return this.ws !== null && this.ws.readyState === OPEN && this.state === 'open';
  }

  // How many messages wait to be sent, and whether it is the rate that holds them.
  queueStatus() {
    const waiting = this.queue.filter((i) => i.state === 'queued').length;
    const inFlight = this.queue.length - waiting;
    return { waiting, inFlight, paced: waiting > 0 && this.isOpen() && this.flushTimer !== null,
      ratePerSec: this.limits.rate_per_sec };
  }

  // ------------------------------------------------------------ connection

  open() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const url = this.urls[this.urlIndex % this.urls.length];
    this.setState('connecting', { url });
    let ws;
    try {
      ws = new this.WebSocket(url, SUBPROTOCOL);
    } catch {
      this.lost(0);
      return;
    }
    this.ws = ws;
    this.openedAt = 0;
    this.welcomed = false;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.openedAt = Date.now();
      this.lastHeard = Date.now();
    };
    ws.onmessage = (ev) => { if (ws === this.ws) this.onData(ev.data); };
    ws.onclose = (ev) => { if (ws === this.ws) this.lost(ev.code); };
    ws.onerror = () => {}; // a close event always follows
    this.tickTimer = setInterval(() => this.keepalive(), 1000);
    this.tickTimer.unref?.();
  }

  stopSocket() {
    const ws = this.ws;
    this.ws = null;
    clearInterval(this.tickTimer);
    this.tickTimer = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try { ws.close(); } catch { /* already closed */ }
    }
  }

  // The socket is gone (or we gave up on it): settle what depended on it and
  // schedule the next attempt.
  lost(code) {
    const wasOpen = this.welcomed;
    this.closeCode = code;
    this.stopSocket();
    if (this.state === 'closed') return;
    if (this.openedAt && Date.now() - this.openedAt > this.opts.stableMs) this.attempt = 0;
    // A failed attempt tries the next URL; a connection that worked is
    // tried again first (a balancer address usually heads the list).
    if (!wasOpen) this.urlIndex += 1;
    clearTimeout(this.flushTimer);
    this.flushTimer = null;
    for (const [id, req] of this.pending) {
      if (req.kind === 'message') continue; // settled after the rejoin
      this.pending.delete(id);
      if (req.kind === 'request') req.reject(new ChatError('disconnected', 'the connection dropped'));
    }
    for (const item of this.queue) {
      if (item.state === 'sent') item.state = 'unconfirmed';
    }
    this.pending.clear();
    for (const r of this.rooms.values()) {
      r.joined = false;
      r.joining = false;
      clearTimeout(r.gapTimer);
      r.gapFetch = false;
      r.held.clear();
      r.listing = 0;
      r.touched.clear();
      r.moreWaiter = null;
    }
    this.gateway = null;
    const delay = this.hintMs ?? backoffDelay(this.attempt, { ...this.opts.backoff, random: this.opts.random });
    this.hintMs = null;
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => this.open(), delay);
    this.setState('waiting', { retryInMs: delay, closeCode: code });
    this.reportQueue();
  }

  // Half-open TCP (a gateway host that vanished) can take minutes to be
  // noticed: ping after silence, give the socket up if nothing answers.
  keepalive() {
    if (!this.ws || this.ws.readyState !== OPEN) return;
    const quiet = Date.now() - this.lastHeard;
    if (this.awaitingPong && quiet > this.opts.pingEveryMs + this.opts.pongTimeoutMs) {
      this.lost(0);
    } else if (!this.awaitingPong && quiet > this.opts.pingEveryMs) {
      this.awaitingPong = this.sendFrame({ type: 'ping' });
    }
  }

  setState(state, extra = {}) {
    this.state = state;
    this.emit('state', {
      state, attempt: this.attempt, gateway: this.gateway, closeCode: this.closeCode, retryAt: this.retryAt, ...extra,
    });
  }

  sendFrame(frame) {
    if (!this.ws || this.ws.readyState !== OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  request(frame, what, extra = {}) {
    const r = this.rooms.get(frame.room);
    if (!r || !r.joined || !this.isOpen()) {
      return Promise.reject(new ChatError(this.isOpen() ? 'not_joined' : 'disconnected', `cannot ask ${what} now`));
    }
    const id = `q${this.nextId++}`;
    const d = deferred();
    this.pending.set(id, { kind: 'request', what, room: frame.room, resolve: d.resolve, reject: d.reject, ...extra });
    if (what === 'members') r.listing += 1; // see endListing
    this.sendFrame({ ...frame, id });
    return d.promise;
  }

  // A members request (or a join: joined lists members too) was answered or
  // failed: once none is on its way, the presence seen meanwhile need not
  // be remembered.
  endListing(req) {
    const r = this.rooms.get(req.room);
    if (!r || (req.what !== 'members' && req.kind !== 'join') || r.listing === 0) return;
    r.listing -= 1;
    if (r.listing === 0) r.touched.clear();
  }

  // ------------------------------------------------------------ incoming

  onData(data) {
    this.lastHeard = Date.now();
    this.awaitingPong = false;
    let f;
    try {
      f = JSON.parse(typeof data === 'string' ? data : String(data));
    } catch {
      return;
    }
    if (!f || typeof f !== 'object') return;
    const req = typeof f.id === 'string' ? this.pending.get(f.id) : undefined;
    switch (f.type) {
      case 'welcome': return this.onWelcome(f);
      case 'joined': return this.onJoined(f, req);
      case 'message': return this.onLive(f);
      case 'ack': return this.onAck(f, req);
      case 'error': return this.onError(f, req);
      case 'history':
      case 'members':
        if (req && req.kind === 'request') {
          this.pending.delete(f.id);
          if (f.type === 'members') {
            this.onMembersPage(this.rooms.get(req.room), f, req);
            this.endListing(req);
          }
          req.resolve(f);
        } else if (req && req.kind === 'gap') {
          this.pending.delete(f.id);
          this.onGapHistory(f);
        }
        return undefined;
      case 'presence': return this.onPresence(f);
      case 'presence_diff': return this.onPresenceDiff(f);
      case 'presence_count': return this.onPresenceCount(f);
      case 'left': return this.onLeft(f);
      case 'reconnect':
        // The gateway is draining and will close with 1001: come back after
        // the delay it names, not at once (it would only refuse us).
        this.hintMs = hintedDelay(f.after_ms, this.opts.random);
        this.emit('reconnect', { afterMs: f.after_ms });
        return undefined;
      default: return undefined;
    }
  }

  onWelcome(f) {
    this.welcomed = true;
    this.gateway = typeof f.gateway === 'string' ? f.gateway : null;
    this.session = f.session ?? null;
    if (f.limits && typeof f.limits === 'object') this.limits = { ...DEFAULT_LIMITS, ...f.limits };
    const l = this.limits;
    // The gateway's buckets start full on a new connection; so do ours.
    this.pacer.reset({ perSec: l.rate_per_sec, burst: l.rate_burst ?? l.rate_per_sec, margin: this.opts.paceMargin });
    this.joinPacer.reset({ perSec: l.joins_per_sec, burst: l.joins_per_sec, margin: this.opts.paceMargin });
    this.setState('open', { url: this.urls[this.urlIndex % this.urls.length] });
    this.emit('welcome', f);
    for (const r of this.rooms.values()) if (!r.replaced) this.sendJoin(r);
  }

  sendJoin(r) {
    if (!this.welcomed || !this.ws || r.joining || r.joined) return;
    clearTimeout(r.retryTimer);
    const wait = this.joinPacer.waitMs();
    if (wait > 0 || !this.joinPacer.take()) {
      r.retryTimer = setTimeout(() => this.sendJoin(r), Math.max(wait, 50));
      return;
    }
    const id = `j${this.nextId++}`;
    const frame = { type: 'join', id, room: r.name, nickname: r.nickname };
    if (r.presence) frame.presence = r.presence;
    if (this.opts.graceMs > 0) frame.grace_ms = Math.min(10000, Math.round(this.opts.graceMs));
    if (r.epoch !== null) {
      // Everything after the last message we saw, in the epoch we saw it in;
      // the gateway says so if it cannot fill the gap.
      frame.since = r.lastSeq;
      frame.epoch = r.epoch;
    } else {
      frame.history = r.history;
    }
    r.joining = true;
    this.pending.set(id, { kind: 'join', room: r.name, mark: r.presenceN });
    r.listing += 1;
    this.sendFrame(frame);
  }

  onJoined(f, req) {
    if (req) this.pending.delete(f.id);
    const r = this.rooms.get(f.room);
    if (!r || !req || req.kind !== 'join') return;
    const rejoin = r.epoch !== null;
    const seenBefore = r.lastSeq;
    const reset = rejoin && (f.recovered === false || String(f.epoch) !== r.epoch);
    r.joining = false;
    r.joined = true;
    r.replaced = false;
    r.epoch = String(f.epoch);
    if (reset) r.lastSeq = 0;
    // joined's members are a page answered to the join: what presence said
    // since the join was sent stands (the joiner's own join may come first).
    this.mergePage(r, f.members, req, { whole: true });
    if (r.countN <= req.mark || r.count === null) r.count = typeof f.count === 'number' ? f.count : null;
    r.membersCursor = typeof f.members_cursor === 'string' ? f.members_cursor : null;
    this.endListing(req);
    const history = (Array.isArray(f.history) ? f.history : [])
      .filter((m) => isMessage(m) && m.seq > r.lastSeq)
      .sort((a, b) => a.seq - b.seq);
    const info = {
      room: r.name, nickname: r.nickname, seq: f.seq, epoch: r.epoch, members: [...r.members.values()],
      count: this.count(r.name), more: r.membersCursor !== null, rejoin, recovered: rejoin ? !reset : null, reset,
    };
    r.info = info;
    this.emit('joined', info);
    for (const m of history) this.deliver(r, m, 'history');
    r.lastSeq = Math.max(r.lastSeq, Number(f.seq) || 0);
    if (rejoin) {
      this.emit('recovered', { room: r.name, recovered: !reset, missed: history.length, afterSeq: reset ? 0 : seenBefore });
    }
    this.emitMembers(r);
    this.settleUnconfirmed(r, history, reset);
    if (r.joinWaiter) {
      r.joinWaiter.resolve(info);
      r.joinWaiter = null;
    }
    this.flush();
  }

  // Messages that were on the wire when the connection dropped: stored (in
  // the recovered history) or not. Matched by our nickname and text, in
  // order, each history message at most once.
  settleUnconfirmed(r, history, reset) {
    const claimed = new Set();
    for (const item of [...this.queue]) {
      if (item.room !== r.name || item.state !== 'unconfirmed') continue;
      this.unqueue(item);
      if (reset) {
        item.reject(new ChatError('in_doubt', 'the connection dropped and the history could not be recovered'));
        continue;
      }
      const hit = history.find((m) => !claimed.has(m.seq) && m.seq > item.sinceSeq
        && m.nickname === r.nickname && m.message === item.text);
      if (hit) {
        claimed.add(hit.seq);
        item.resolve({ id: item.id, room: r.name, seq: hit.seq });
      } else {
        item.reject(new ChatError('not_delivered', 'the connection dropped before the message was stored'));
      }
    }
    this.reportQueue();
  }

  onLive(f) {
    const r = this.rooms.get(f.room);
    if (!r || !r.joined || !isMessage(f)) return;
    this.deliver(r, f, 'live');
  }

  // Emits m unless seen (dedup by seq); holds it back behind a hole and
  // fetches the hole (seqs have no holes, so a jump means something missed).
  deliver(r, m, source) {
    if (m.seq <= r.lastSeq) return;
    if (source === 'live' && m.seq > r.lastSeq + 1 && r.lastSeq > 0) {
      r.held.set(m.seq, m);
      this.fetchGap(r);
      return;
    }
    r.lastSeq = m.seq;
    this.emit('message', m, { source });
    this.releaseHeld(r);
  }

  releaseHeld(r) {
    while (r.held.has(r.lastSeq + 1)) {
      const next = r.held.get(r.lastSeq + 1);
      r.held.delete(next.seq);
      r.lastSeq = next.seq;
      this.emit('message', next, { source: 'live' });
    }
    for (const seq of r.held.keys()) if (seq <= r.lastSeq) r.held.delete(seq);
    if (r.held.size === 0) {
      clearTimeout(r.gapTimer);
      r.gapFetch = false;
    }
  }

  fetchGap(r) {
    if (r.gapFetch) return;
    const first = Math.min(...r.held.keys());
    const id = `g${this.nextId++}`;
    r.gapFetch = true;
    this.pending.set(id, { kind: 'gap', room: r.name });
    this.sendFrame({ type: 'history', id, room: r.name, before: first, limit: Math.min(500, first - r.lastSeq - 1) });
    // If the answer never comes, or cannot fill the hole (trimmed), what we
    // hold is delivered anyway, with the hole reported.
    r.gapTimer = setTimeout(() => this.giveUpGap(r), GAP_WAIT_MS);
  }

  onGapHistory(f) {
    const r = this.rooms.get(f.room);
    if (!r) return;
    for (const m of (f.messages || []).filter(isMessage).sort((a, b) => a.seq - b.seq)) {
      if (m.seq === r.lastSeq + 1) {
        r.lastSeq = m.seq;
        this.emit('message', m, { source: 'gap' });
      }
    }
    this.releaseHeld(r);
    if (r.held.size) this.giveUpGap(r);
  }

  giveUpGap(r) {
    clearTimeout(r.gapTimer);
    r.gapFetch = false;
    const seqs = [...r.held.keys()].sort((a, b) => a - b);
    if (!seqs.length) return;
    this.emit('gap', { room: r.name, from: r.lastSeq + 1, to: seqs[0] - 1 });
    r.lastSeq = seqs[0] - 1;
    this.releaseHeld(r);
  }

  onAck(f, req) {
    if (!req || req.kind !== 'message') return;
    this.pending.delete(f.id);
    const item = req.item;
    this.unqueue(item);
    item.resolve({ id: item.id, room: f.room, seq: f.seq });
    this.emit('ack', { id: item.id, room: f.room, seq: f.seq });
    this.reportQueue();
  }

  onError(f, req) {
    const code = typeof f.code === 'string' ? f.code : 'internal';
    if (!req) {
      this.emit('error', new ChatError(code, f.message));
      return;
    }
    this.pending.delete(f.id);
    const err = new ChatError(code, f.message);
    if (req.kind === 'message') {
      const item = req.item;
      if (code === 'rate_limited' && item.retries < MAX_RATE_RETRIES) {
        // Our pacing and the gateway's bucket disagree (timing, another
        // client's guess of the limits): back into the queue, in order.
        item.retries += 1;
        item.state = 'queued';
        this.pacer.drain();
        this.emit('paced', { id: item.id, room: item.room });
        this.flush();
        return;
      }
      this.unqueue(item);
      item.reject(err);
      this.reportQueue();
    } else if (req.kind === 'join') {
      this.endListing(req);
      this.onJoinError(this.rooms.get(req.room), err);
    } else if (req.kind === 'request') {
      this.endListing(req);
      req.reject(err);
    } else if (req.kind === 'gap') {
      this.giveUpGap(this.rooms.get(req.room) || { held: new Map() });
    }
  }

  onJoinError(r, err) {
    if (!r) return;
    r.joining = false;
    if (err.code === 'rate_limited' || err.code === 'unavailable') {
      this.joinPacer.drain();
      r.retryTimer = setTimeout(() => this.sendJoin(r), RETRY_JOIN_MS);
      return;
    }
    if (r.epoch === null) {
      // Never got in: the room goes away and the caller hears why.
      this.forget(r, err);
      return;
    }
    // A rejoin refused (forbidden, an expired token...): out of the room.
    r.joined = false;
    this.emit('left', { room: r.name, reason: err.code, error: err });
  }

  onPresence(f) {
    const r = this.rooms.get(f.room);
    if (!r || typeof f.nickname !== 'string') return;
    if (f.event === 'join') this.present(r, f.nickname, f.ts);
    else if (f.event === 'leave') this.absent(r, f.nickname);
    this.presenceCount(r, f.count);
    this.emit('presence', f);
    this.emitMembers(r);
  }

  // One tick's joins and leaves of a big room (or of a room joined with
  // presence 'diff'): a nickname is in one list at most, so order does not
  // matter.
  onPresenceDiff(f) {
    const r = this.rooms.get(f.room);
    if (!r) return;
    const leaves = Array.isArray(f.leaves) ? f.leaves.filter((l) => l && typeof l.nickname === 'string') : [];
    const joins = Array.isArray(f.joins) ? f.joins.filter((j) => j && typeof j.nickname === 'string') : [];
    for (const l of leaves) this.absent(r, l.nickname);
    for (const j of joins) this.present(r, j.nickname, j.since);
    this.presenceCount(r, f.count);
    this.emit('presence_diff', { room: r.name, count: this.count(r.name), joins, leaves });
    this.emitMembers(r);
  }

  onPresenceCount(f) {
    const r = this.rooms.get(f.room);
    if (!r || typeof f.count !== 'number') return;
    this.presenceCount(r, f.count);
    this.emitMembers(r);
  }

  // Presence is applied in the order it comes; while a members request is
  // on its way, each nickname it names is remembered with the event's
  // number, so that the answer's page cannot undo it (PROTOCOL.md).
  present(r, nickname, since) {
    r.members.set(nickname, { nickname, since });
    this.touch(r, nickname);
  }

  absent(r, nickname) {
    r.members.delete(nickname);
    this.touch(r, nickname);
  }

  touch(r, nickname) {
    r.presenceN += 1;
    if (r.listing > 0) r.touched.set(nickname, r.presenceN);
  }

  presenceCount(r, count) {
    r.presenceN += 1;
    r.countN = r.presenceN;
    // A gateway that sends no count: the size of the list, if it is whole.
    r.count = typeof count === 'number' ? count : null;
  }

  // A members answer, into the room's list. From the start with no cursor
  // after it, the page is the whole room and replaces the list; any other
  // page adds to it (presence keeps the rest up to date). Either way a
  // nickname touched by presence after the request was sent is left as
  // presence put it, and so is the count.
  onMembersPage(r, f, req) {
    if (!r || req.mark === undefined) return;
    const next = typeof f.cursor === 'string' ? f.cursor : null;
    this.mergePage(r, f.members, req, { whole: req.cursor === null && next === null });
    // The page continues the listing this client keeps (or starts it anew).
    if (req.cursor === null || req.cursor === r.membersCursor) r.membersCursor = next;
    if (typeof f.count === 'number' && r.countN <= req.mark) r.count = f.count;
    this.emitMembers(r);
  }

  emitMembers(r) {
    this.emit('members', {
      room: r.name, members: [...r.members.values()], count: this.count(r.name), more: r.membersCursor !== null,
    });
  }

  onLeft(f) {
    const r = this.rooms.get(f.room);
    if (!r || f.reason !== 'replaced') return;
    // Our nickname joined this room from another session: it is still a
    // member there, so the member list stays as it was.
    r.joined = false;
    r.replaced = true;
    for (const item of [...this.queue]) {
      if (item.room === r.name && item.state === 'queued') {
        this.unqueue(item);
        item.reject(new ChatError('not_joined', 'the nickname was taken over'));
      }
    }
    this.emit('left', { room: r.name, reason: 'replaced' });
    this.reportQueue();
  }

  // ------------------------------------------------------------ outgoing queue

  // Sends what may go now, in order; per room, a message never overtakes an
  // earlier one. Waits for the pacer when the rate is used up.
  flush() {
    clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (!this.isOpen()) {
      this.reportQueue();
      return;
    }
    const blocked = new Set();
    for (const item of this.queue) {
      if (item.state !== 'queued') {
        if (item.state === 'unconfirmed') blocked.add(item.room);
        continue;
      }
      const r = this.rooms.get(item.room);
      if (blocked.has(item.room) || !r || !r.joined) {
        blocked.add(item.room);
        continue;
      }
      if (!this.pacer.take()) {
        this.flushTimer = setTimeout(() => this.flush(), Math.max(10, this.pacer.waitMs()));
        break;
      }
      item.state = 'sent';
      item.sinceSeq = r.lastSeq;
      this.pending.set(item.id, { kind: 'message', room: item.room, item });
      this.sendFrame({ type: 'message', id: item.id, room: item.room, message: item.text });
    }
    this.reportQueue();
  }

  unqueue(item) {
    const i = this.queue.indexOf(item);
    if (i >= 0) this.queue.splice(i, 1);
    this.pending.delete(item.id);
  }

  reportQueue() {
    const s = this.queueStatus();
    const key = `${s.waiting}/${s.inFlight}/${s.paced}`;
    if (key === this.lastQueueReport) return;
    this.lastQueueReport = key;
    this.emit('queue', s);
  }

  // ------------------------------------------------------------ rooms

  room(name, nickname) {
    const r = {
      name, nickname, epoch: null, lastSeq: 0, joined: false, joining: false, replaced: false,
      members: new Map(), held: new Map(), gapFetch: false, gapTimer: null, retryTimer: null,
      joinWaiter: null, history: this.opts.historyPage, info: null, presence: null,
      // Big rooms (PROTOCOL.md): the count, where the next page of members
      // starts (null: the list is whole), and for the merge rule a running
      // number of presence events, the one that last set the count, the
      // members requests on their way and the nicknames presence named
      // while they were.
      count: null, membersCursor: null, presenceN: 0, countN: 0, listing: 0, touched: new Map(), moreWaiter: null,
    };
    this.rooms.set(name, r);
    return r;
  }

  forget(r, err) {
    clearTimeout(r.gapTimer);
    clearTimeout(r.retryTimer);
    this.rooms.delete(r.name);
    for (const item of [...this.queue]) {
      if (item.room === r.name) {
        this.unqueue(item);
        item.reject(err);
      }
    }
    for (const [id, req] of this.pending) if (req.room === r.name && req.kind !== 'message') this.pending.delete(id);
    if (r.joinWaiter) {
      r.joinWaiter.reject(err);
      r.joinWaiter = null;
    }
    this.reportQueue();
  }

  // A page of members into the list, by nickname: a whole list replaces it,
  // another page adds to it; a nickname that presence named after the
  // request (req.mark) keeps what presence said.
  mergePage(r, list, req, { whole }) {
    const after = (nick) => (r.touched.get(nick) ?? -1) > req.mark;
    const page = (Array.isArray(list) ? list : []).filter((m) => m && typeof m.nickname === 'string');
    if (whole) {
      const listed = new Set(page.map((m) => m.nickname));
      for (const nick of [...r.members.keys()]) if (!listed.has(nick) && !after(nick)) r.members.delete(nick);
    }
    for (const m of page) if (!after(m.nickname)) r.members.set(m.nickname, { nickname: m.nickname, since: m.since });
  }
}

function isMessage(m) {
  return m && Number.isInteger(m.seq) && m.seq > 0 && typeof m.nickname === 'string';
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A rejection nobody awaits (a fire-and-forget send) must not crash Node.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

// The web chat client. One WebSocket to whichever gateway the host (usually
// a load balancer) hands us, many rooms on it. Everything the server says is
// rendered from frames; nothing is shown optimistically, so what people see
// is what the cluster stored, once, in seq order.
//
// Safety rule for this file: user data (nicknames, room names, messages) only
// ever reaches the page through textContent / Node.append(string), never
// through innerHTML, so no member can inject markup into anyone's page.

import {
  SUBPROTOCOL, HISTORY_PAGE, DEFAULT_LIMITS, socketUrl, roomProblem, nicknameProblem,
  utf8Length, backoffDelay, hintedDelay, describeError, describeLeave, describeClose,
  formatTime, formatFullTime, nicknameHue, initials, insertionIndex,
} from './protocol.js';

const PING_EVERY_MS = 20000;     // send an app-level ping after this much silence
const PONG_TIMEOUT_MS = 10000;   // ...and give the socket up if nothing comes back
const STABLE_MS = 10000;         // a connection that lived this long resets the backoff
const GROUP_GAP_MS = 5 * 60 * 1000;
const NEAR_BOTTOM_PX = 80;
const ACK_GRACE_MS = 3000;       // an acked seq whose broadcast is this late gets fetched
const ALERT_MS = 8000;

// ---------------------------------------------------------------- DOM helpers

const $ = (id) => document.getElementById(id);

const ui = {
  app: $('app'),
  conn: $('conn'), connText: $('conn-text'),
  joinForm: $('join-form'), nickname: $('nickname'), room: $('room'), joinError: $('join-error'),
  tabs: $('room-tabs'), noRooms: $('no-rooms'),
  header: $('room-header'), roomName: $('room-name'), roomSub: $('room-sub'),
  leaveBtn: $('leave-btn'), membersToggle: $('members-toggle'), membersToggleCount: $('members-toggle-count'),
  banner: $('banner'), bannerText: $('banner-text'), bannerAction: $('banner-action'),
  views: $('views'), empty: $('empty'), alert: $('alert'),
  composer: $('composer'), input: $('input'), sendBtn: $('send-btn'), hint: $('composer-hint'),
  membersCount: $('members-count'), memberLists: $('member-lists'), membersClose: $('members-close'),
};

// h('li', {class: 'x'}, 'text', child): strings become text nodes, never HTML.
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'style') for (const [p, v] of Object.entries(value)) node.style.setProperty(p, v);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

// ---------------------------------------------------------------- state

const state = {
  rooms: new Map(),       // name -> room (see createRoom)
  active: null,           // name of the room on screen
  pending: new Map(),     // frame id -> { kind, room, text } for replies we wait for
  nextId: 1,
  limits: { ...DEFAULT_LIMITS },
  gateway: null,
  alertTimer: null,
};

const activeRoom = () => state.rooms.get(state.active) || null;
const newId = (prefix) => `${prefix}${state.nextId++}`;

// ---------------------------------------------------------------- connection

// Owns the socket: opening, app-level keepalive, and reconnecting with
// backoff. It knows nothing about rooms; app code re-joins in onOpen.
class Connection {
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.ws = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.keepaliveTimer = null;
    this.hintMs = null;      // delay requested by a `reconnect` frame
    this.state = 'idle';
    this.retryAt = 0;
    this.closeCode = 0;
  }

  isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  send(frame) {
    if (!this.isOpen()) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  open() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.setState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url, SUBPROTOCOL);
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    this.openedAt = 0;
    ws.onopen = () => this.onOpen(ws);
    ws.onmessage = (ev) => this.onMessage(ev);
    ws.onclose = (ev) => this.onClose(ws, ev.code);
    ws.onerror = () => {}; // a close event always follows; handled there
  }

  onOpen(ws) {
    if (ws !== this.ws) return;
    this.openedAt = Date.now();
    this.lastHeard = Date.now();
    this.awaitingPong = false;
    this.keepaliveTimer = setInterval(() => this.keepalive(), 2500);
    this.setState('open');
    this.handlers.onOpen();
  }

  onMessage(ev) {
    this.lastHeard = Date.now();
    this.awaitingPong = false;
    let frame;
    try {
      frame = JSON.parse(ev.data);
    } catch {
      return; // not ours to render; the server only sends JSON
    }
    if (!frame || typeof frame !== 'object') return;
    // The gateway is draining and will close with 1001: come back after the
    // delay it asks for, not at once (it would only refuse us).
    if (frame.type === 'reconnect') {
      this.hintMs = hintedDelay(frame.after_ms);
      // It promised to close; if it does not, leave anyway.
      const ws = this.ws;
      setTimeout(() => { if (this.ws === ws) this.drop(); }, (Number(frame.after_ms) || 0) + 5000);
    }
    this.handlers.onFrame(frame);
  }

  onClose(ws, code) {
    if (ws !== this.ws) return; // a socket we already gave up on
    this.closeCode = code;
    this.drop();
  }

  // Browsers can take minutes to notice a half-open TCP connection (a
  // gateway host that vanished), so we ping when it has been quiet and give
  // up on the socket ourselves if nothing answers.
  keepalive() {
    const quiet = Date.now() - this.lastHeard;
    if (this.awaitingPong && quiet > PING_EVERY_MS + PONG_TIMEOUT_MS) {
      this.closeCode = 0;
      this.drop();
    } else if (!this.awaitingPong && quiet > PING_EVERY_MS) {
      this.awaitingPong = this.send({ type: 'ping' });
    }
  }

  drop() {
    const ws = this.ws;
    this.ws = null;
    clearInterval(this.keepaliveTimer);
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try { ws.close(); } catch { /* already closed */ }
    }
    if (this.openedAt && Date.now() - this.openedAt > STABLE_MS) this.attempt = 0;
    this.handlers.onLost(this.closeCode);
    this.scheduleRetry();
  }

  scheduleRetry() {
    const delay = this.hintMs ?? backoffDelay(this.attempt);
    this.attempt += 1;
    this.hintMs = null;
    this.retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => this.open(), delay);
    this.setState('waiting');
  }

  retryNow() {
    if (this.retryTimer) this.open();
  }

  setState(s) {
    this.state = s;
    this.handlers.onState(s);
  }
}

const conn = new Connection(socketUrl(location), {
  onOpen: rejoinAll,
  onFrame: handleFrame,
  onLost: connectionLost,
  onState: renderConnection,
});

// ---------------------------------------------------------------- rooms

function createRoom(name, nickname) {
  const room = {
    name,
    nickname,
    epoch: null,         // set by the first `joined`; from then on we re-join with `since`
    lastSeq: 0,          // highest seq seen (or the room's seq when we joined)
    oldestSeq: 0,        // lowest seq shown, for "load older"
    joined: false,
    replaced: false,     // our nickname was taken over by another session
    noOlder: false,
    loadingOlder: false,
    items: [],           // [{key, el, msg}] sorted by key, mirrors the DOM list
    bySeq: new Map(),    // seq -> item: the dedupe index
    acked: new Set(),    // seqs the server acked to us in this room
    members: new Map(),  // nickname -> since (ms)
    unread: 0,
    noticeN: 0,
    unconfirmed: [],     // texts sent but not acked when the connection dropped
    stick: true,         // keep the view scrolled to the newest message
    view: null,
  };
  room.view = buildRoomView(room);
  room.tab = buildTab(room);
  room.memberList = h('ul', { class: 'member-list', dataset: { room: name }, hidden: true });
  ui.views.append(room.view.section);
  ui.tabs.append(room.tab.item);
  ui.memberLists.append(room.memberList);
  state.rooms.set(name, room);
  return room;
}

function removeRoom(room) {
  room.view.section.remove();
  room.tab.item.remove();
  room.memberList.remove();
  state.rooms.delete(room.name);
  for (const [id, req] of state.pending) if (req.room === room.name) state.pending.delete(id);
  if (state.active === room.name) {
    const next = [...state.rooms.keys()].pop();
    activate(next || null);
  }
  renderAll();
}

// recovered:false (history trimmed or the room's epoch changed): what we
// show can no longer be stitched to what the server has, so start over.
function resetRoom(room) {
  for (const item of room.items) item.el.remove();
  room.items = [];
  room.bySeq.clear();
  room.acked.clear();
  room.lastSeq = 0;
  room.oldestSeq = 0;
  room.noOlder = false;
}

function activate(name) {
  state.active = name;
  const room = activeRoom();
  for (const r of state.rooms.values()) {
    const on = r === room;
    r.view.section.hidden = !on;
    r.memberList.hidden = !on;
    r.tab.button.setAttribute('aria-selected', String(on));
    r.tab.item.classList.toggle('active', on);
  }
  if (room) {
    room.unread = 0;
    if (room.stick) scrollToBottom(room);
  }
  hideAlert();
  renderAll();
  if (room && !matchMedia('(pointer: coarse)').matches) ui.input.focus();
}

// ---------------------------------------------------------------- protocol: outgoing

function sendJoin(room) {
  const frame = { type: 'join', id: newId('j'), room: room.name, nickname: room.nickname };
  // Re-joining: ask for everything after the last message we saw, in the
  // epoch we saw it in, so the server can tell us if it cannot fill the gap.
  if (room.epoch !== null) {
    frame.since = room.lastSeq;
    frame.epoch = room.epoch;
  } else {
    frame.history = HISTORY_PAGE;
  }
  if (conn.send(frame)) state.pending.set(frame.id, { kind: 'join', room: room.name });
}

function rejoinAll() {
  for (const room of state.rooms.values()) if (!room.replaced) sendJoin(room);
  renderAll();
}

function sendMessage() {
  const room = activeRoom();
  const text = ui.input.value.replace(/\s+$/, '');
  if (!room || !room.joined || !text.trim()) return;
  if (utf8Length(text) > state.limits.message_bytes) {
    showAlert(describeError('too_large', state.limits));
    return;
  }
  const id = newId('m');
  if (!conn.send({ type: 'message', id, room: room.name, message: text })) return;
  hideAlert(); // an old error is about an old attempt
  // Not rendered here: the message appears when the cluster broadcasts it
  // back with its seq, so it shows exactly once and in the right place.
  state.pending.set(id, { kind: 'message', room: room.name, text, at: Date.now() });
  ui.input.value = '';
  autosize();
  room.stick = true;
  renderComposer();
}

function loadOlder(room) {
  if (room.loadingOlder || !room.joined || !room.oldestSeq) return;
  const id = newId('h');
  const frame = { type: 'history', id, room: room.name, before: room.oldestSeq, limit: HISTORY_PAGE };
  if (!conn.send(frame)) return;
  state.pending.set(id, { kind: 'older', room: room.name, limit: HISTORY_PAGE });
  room.loadingOlder = true;
  renderOlder(room);
}

// Seqs have no holes, so a jump means we missed something: fetch it.
function fetchGap(room, afterSeq, beforeSeq) {
  const limit = Math.min(500, beforeSeq - afterSeq - 1);
  if (limit < 1) return;
  const id = newId('g');
  if (conn.send({ type: 'history', id, room: room.name, before: beforeSeq, limit })) {
    state.pending.set(id, { kind: 'gap', room: room.name });
  }
}

function leaveRoom(room) {
  if (room.joined) conn.send({ type: 'leave', room: room.name });
  removeRoom(room);
}

// ---------------------------------------------------------------- protocol: incoming

const FRAME_HANDLERS = {
  welcome: onWelcome,
  joined: onJoined,
  message: onLiveMessage,
  ack: onAck,
  history: onHistory,
  members: onMembers,
  presence: onPresence,
  left: onLeft,
  error: onError,
  reconnect: onReconnectHint,
  pong: () => {},
};

function handleFrame(frame) {
  const req = frame.id !== undefined ? state.pending.get(frame.id) : undefined;
  if (req && frame.type !== 'ack') state.pending.delete(frame.id);
  const handler = FRAME_HANDLERS[frame.type];
  if (handler) handler(frame, req);
}

function onWelcome(f) {
  state.gateway = typeof f.gateway === 'string' ? f.gateway : null;
  if (f.limits && typeof f.limits === 'object') state.limits = { ...DEFAULT_LIMITS, ...f.limits };
  renderConnection(conn.state);
}

function onJoined(f) {
  const room = state.rooms.get(f.room);
  if (!room) return; // left while the join was in flight
  const rejoin = room.epoch !== null;
  const history = Array.isArray(f.history) ? f.history : [];
  const lost = rejoin && (f.recovered === false || String(f.epoch) !== room.epoch);
  const seenBefore = room.lastSeq;

  room.joined = true;
  room.replaced = false;
  if (lost) resetRoom(room);
  room.epoch = String(f.epoch);

  const added = addMessages(room, history, { counted: rejoin });
  room.lastSeq = Math.max(room.lastSeq, Number(f.seq) || 0);
  if (!rejoin && history.length < HISTORY_PAGE) room.noOlder = true;
  setMembers(room, f.members);

  if (!rejoin) {
    addNotice(room, 'info', 'You joined ', h('strong', {}, `#${room.name}`),
      ' as ', h('strong', {}, room.nickname), '.');
  } else if (lost) {
    addNotice(room, 'warn', 'Some messages sent while you were away could not be recovered. Showing the latest ones.');
  } else if (added > 0) {
    // Keyed at the last seq we had seen, so it sits right above the missed messages.
    addNoticeAt(room, seenBefore, 'divider', `${added} new message${added === 1 ? '' : 's'} while you were away`);
  }
  settleUnconfirmed(room, lost ? 0 : seenBefore);
  renderAll();
}

function onLiveMessage(f) {
  const room = state.rooms.get(f.room);
  if (!room || !room.joined || !Number.isInteger(f.seq)) return;
  if (f.seq > room.lastSeq + 1) fetchGap(room, room.lastSeq, f.seq);
  addMessages(room, [f], { counted: true });
  renderTabs();
}

function onAck(f, req) {
  if (!req) return;
  state.pending.delete(f.id);
  const room = state.rooms.get(f.room);
  if (room && Number.isInteger(f.seq)) {
    room.acked.add(f.seq);
    const item = room.bySeq.get(f.seq);
    if (item) {
      markAcked(item.el);
    } else {
      // The broadcast normally arrives around the ack; if it got lost, fetch
      // it by seq rather than render our own copy.
      setTimeout(() => {
        if (room.joined && !room.bySeq.has(f.seq)) fetchGap(room, f.seq - 1, f.seq + 1);
      }, ACK_GRACE_MS);
    }
  }
  renderComposer();
}

function onHistory(f, req) {
  const room = state.rooms.get(f.room);
  if (!room) return;
  const messages = Array.isArray(f.messages) ? f.messages : [];
  if (req && req.kind === 'gap') {
    addMessages(room, messages, { counted: true });
  } else {
    room.loadingOlder = false;
    if (messages.length < (req ? req.limit : HISTORY_PAGE)) room.noOlder = true;
    addMessages(room, messages, { older: true });
  }
  renderOlder(room);
}

function onMembers(f) {
  const room = state.rooms.get(f.room);
  if (room) setMembers(room, f.members);
  renderHeader();
}

function onPresence(f) {
  const room = state.rooms.get(f.room);
  if (!room || typeof f.nickname !== 'string') return;
  const self = f.nickname === room.nickname;
  if (f.event === 'join') {
    const isNew = !room.members.has(f.nickname);
    room.members.set(f.nickname, f.ts);
    if (isNew && !self) addNotice(room, 'presence', h('strong', {}, f.nickname), ' joined');
  } else if (f.event === 'leave') {
    room.members.delete(f.nickname);
    if (!self) {
      const kind = f.reason === 'left' || f.reason === 'closed' ? 'presence' : 'presence warn';
      addNotice(room, kind, h('strong', {}, f.nickname), ` ${describeLeave(f.reason)}`);
    }
  }
  renderMembers(room);
  renderHeader();
}

// `left` with reason `left` answers our own leave: the room is already gone
// from the page (and a room of the same name may have been joined again
// since), so only a takeover needs handling.
function onLeft(f) {
  const room = state.rooms.get(f.room);
  if (!room || f.reason !== 'replaced') return;
  // Someone (probably us, in another tab) joined with the same nickname and
  // took it over. Do not fight over it on reconnect; offer a button instead.
  room.joined = false;
  room.replaced = true;
  room.members.delete(room.nickname);
  addNotice(room, 'warn', `Your nickname ${room.nickname} joined this room from somewhere else, so this window left it.`);
  renderMembers(room);
  renderAll();
}

function onError(f, req) {
  const text = describeError(f.code, state.limits);
  const room = req ? state.rooms.get(req.room) : null;
  if (req && req.kind === 'join' && room) {
    if (room.epoch === null) {
      removeRoom(room); // never got in: take the tab away, explain at the form
      ui.joinError.textContent = text;
      return;
    }
  }
  if (req && req.kind === 'message' && room) restoreDraft(room, req.text);
  // The server no longer counts us in: say so, and offer to rejoin (banner).
  if (f.code === 'not_joined' && room) room.joined = false;
  if (req && req.kind === 'older' && room) {
    room.loadingOlder = false;
    renderOlder(room);
  }
  showAlert(text);
  renderAll();
}

function onReconnectHint() {
  showAlert('The server is restarting; reconnecting you to another one…', 'info');
}

// ---------------------------------------------------------------- connection events

function connectionLost() {
  for (const [, req] of state.pending) {
    const room = state.rooms.get(req.room);
    // Sent but never acked: maybe stored, maybe not. Decide after re-joining.
    if (room && req.kind === 'message') room.unconfirmed.push(req.text);
    if (room && req.kind === 'older') room.loadingOlder = false;
  }
  state.pending.clear();
  for (const room of state.rooms.values()) room.joined = false;
  state.gateway = null;
  renderAll();
}

// After a re-join, each text that was in flight when the connection dropped
// is either in the history we got back (it was stored) or it is not (it was
// lost): then it goes back into the box so the person can resend it.
function settleUnconfirmed(room, afterSeq) {
  const texts = room.unconfirmed;
  room.unconfirmed = [];
  for (const text of texts) {
    const stored = room.items.some((it) => it.msg && it.msg.seq > afterSeq
      && it.msg.nickname === room.nickname && it.msg.message === text);
    if (!stored) {
      restoreDraft(room, text);
      showAlert('The connection dropped before your last message was delivered. It is back in the box; send it again.');
    }
  }
}

function restoreDraft(room, text) {
  if (room === activeRoom() && !ui.input.value) {
    ui.input.value = text;
    autosize();
  }
}

// ---------------------------------------------------------------- message list

function buildRoomView(room) {
  const older = h('button', { class: 'btn small older', type: 'button', hidden: true, onclick: () => loadOlder(room) },
    'Load older messages');
  const list = h('ol', { class: 'messages' });
  const scroller = h('div', { class: 'scroller', role: 'log', 'aria-label': `Messages in #${room.name}` }, older, list);
  const jump = h('button', { class: 'btn small jump', type: 'button', hidden: true, onclick: () => scrollToBottom(room) },
    'New messages ↓');
  const section = h('section', { class: 'room-view', dataset: { room: room.name }, role: 'tabpanel', hidden: true },
    scroller, jump);
  scroller.addEventListener('scroll', () => {
    room.stick = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < NEAR_BOTTOM_PX;
    if (room.stick) jump.hidden = true;
  });
  // A phone keyboard opening or a rotation shrinks the view: stay on the newest message.
  new ResizeObserver(() => { if (room.stick) scrollToBottom(room); }).observe(scroller);
  return { section, scroller, list, older, jump };
}

function isMessageFrame(m) {
  return m && Number.isInteger(m.seq) && m.seq > 0 && typeof m.nickname === 'string';
}

// Adds messages (any order, any overlap) and keeps the reader's place.
function addMessages(room, messages, { counted = false, older = false } = {}) {
  const sc = room.view.scroller;
  const fromBottom = sc.scrollHeight - sc.scrollTop;
  let added = 0;
  for (const m of messages) if (addMessage(room, m, counted)) added += 1;
  if (older) sc.scrollTop = sc.scrollHeight - fromBottom; // what was on screen stays on screen
  else if (room.stick) scrollToBottom(room);
  else if (added > 0) room.view.jump.hidden = false;
  renderOlder(room);
  return added;
}

function addMessage(room, m, counted) {
  // Dedupe by seq: the same message can come from history, from recovery
  // after a reconnect, from a gap fetch and live; it is shown once.
  if (!isMessageFrame(m) || room.bySeq.has(m.seq)) return false;
  const item = insertItem(room, [m.seq, 0], renderMessage(room, m), m);
  room.bySeq.set(m.seq, item);
  room.lastSeq = Math.max(room.lastSeq, m.seq);
  room.oldestSeq = room.oldestSeq ? Math.min(room.oldestSeq, m.seq) : m.seq;
  const mine = m.nickname === room.nickname;
  if (counted && !mine && (room !== activeRoom() || document.hidden)) room.unread += 1;
  return true;
}

function renderMessage(room, m) {
  const ts = Number.isFinite(m.ts) ? m.ts : Date.now();
  const mine = m.nickname === room.nickname;
  const el = h('li', {
    class: mine ? 'msg mine' : 'msg',
    dataset: { seq: String(m.seq), nick: m.nickname },
    style: { '--hue': String(nicknameHue(m.nickname)) },
  },
  h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(m.nickname)),
  h('div', { class: 'bubble' },
    h('span', { class: 'nick' }, m.nickname),
    h('p', { class: 'text' }, String(m.message ?? '')),
    h('time', { datetime: new Date(ts).toISOString(), title: formatFullTime(ts) }, formatTime(ts))));
  if (room.acked.has(m.seq)) markAcked(el);
  return el;
}

function markAcked(el) {
  el.dataset.acked = 'true';
}

function addNotice(room, kind, ...parts) {
  addNoticeAt(room, room.lastSeq, kind, ...parts);
}

function addNoticeAt(room, afterSeq, kind, ...parts) {
  room.noticeN += 1;
  const el = h('li', { class: `notice ${kind}`, role: 'note' }, h('span', {}, ...parts));
  insertItem(room, [afterSeq, room.noticeN], el, null);
  if (room.stick) scrollToBottom(room);
}

function insertItem(room, key, el, msg) {
  const i = insertionIndex(room.items, key);
  const next = room.items[i];
  room.view.list.insertBefore(el, next ? next.el : null);
  const item = { key, el, msg };
  room.items.splice(i, 0, item);
  regroup(room, i);
  regroup(room, i + 1);
  return item;
}

// Consecutive messages from one person within a few minutes are drawn as
// one group (name and avatar once), like chat apps people know.
function regroup(room, i) {
  const item = room.items[i];
  if (!item || !item.msg) return;
  const prev = room.items[i - 1];
  const cont = Boolean(prev && prev.msg && prev.msg.nickname === item.msg.nickname
    && Math.abs(item.msg.ts - prev.msg.ts) < GROUP_GAP_MS);
  item.el.classList.toggle('cont', cont);
}

function scrollToBottom(room) {
  const sc = room.view.scroller;
  sc.scrollTop = sc.scrollHeight;
  room.stick = true;
  room.view.jump.hidden = true;
}

function renderOlder(room) {
  const btn = room.view.older;
  btn.hidden = room.noOlder || room.oldestSeq <= 1;
  btn.disabled = room.loadingOlder || !room.joined;
  btn.textContent = room.loadingOlder ? 'Loading…' : 'Load older messages';
}

// ---------------------------------------------------------------- members

function setMembers(room, list) {
  room.members = new Map();
  if (Array.isArray(list)) {
    for (const m of list) if (m && typeof m.nickname === 'string') room.members.set(m.nickname, m.since);
  }
  renderMembers(room);
}

function renderMembers(room) {
  const names = [...room.members.keys()].sort((a, b) => {
    if (a === room.nickname) return -1; // yourself first
    if (b === room.nickname) return 1;
    return a.localeCompare(b);
  });
  const rows = names.map((nick) => {
    const since = room.members.get(nick);
    return h('li', {
      class: nick === room.nickname ? 'member me' : 'member',
      dataset: { nick },
      title: Number.isFinite(since) ? `Here since ${formatFullTime(since)}` : null,
      style: { '--hue': String(nicknameHue(nick)) },
    },
    h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(nick)),
    h('span', { class: 'member-name' }, nick),
    nick === room.nickname ? h('span', { class: 'you' }, 'you') : null);
  });
  room.memberList.replaceChildren(...rows);
}

// ---------------------------------------------------------------- tabs

function buildTab(room) {
  const badge = h('span', { class: 'badge', hidden: true });
  const button = h('button', {
    class: 'tab', type: 'button', role: 'tab', 'aria-selected': 'false', dataset: { room: room.name },
    onclick: () => activate(room.name),
  }, h('span', { class: 'hash', 'aria-hidden': 'true' }, '#'), h('span', { class: 'tab-name' }, room.name), badge);
  const close = h('button', {
    class: 'tab-close', type: 'button', title: `Leave #${room.name}`, 'aria-label': `Leave #${room.name}`,
    onclick: () => leaveRoom(room),
  }, '×');
  const item = h('li', { class: 'tab-item', dataset: { room: room.name } }, button, close);
  return { item, button, badge };
}

function renderTabs() {
  let total = 0;
  for (const room of state.rooms.values()) {
    const { badge, item } = room.tab;
    badge.hidden = room.unread === 0;
    badge.textContent = room.unread > 99 ? '99+' : String(room.unread);
    item.classList.toggle('offline', !room.joined);
    room.view.section.dataset.joined = String(room.joined);
    item.classList.toggle('unread', room.unread > 0);
    total += room.unread;
  }
  ui.noRooms.hidden = state.rooms.size > 0;
  document.title = total > 0 ? `(${total}) Chat` : 'Chat';
}

// ---------------------------------------------------------------- header, banner, composer

function renderHeader() {
  const room = activeRoom();
  ui.header.hidden = !room;
  ui.empty.hidden = Boolean(room);
  ui.composer.hidden = !room;
  if (!room) return;
  const n = room.members.size;
  ui.roomName.textContent = `#${room.name}`;
  ui.roomSub.textContent = `as ${room.nickname} · ${n} member${n === 1 ? '' : 's'} online`;
  ui.membersToggleCount.textContent = String(n);
  ui.membersCount.textContent = String(n);
}

function renderBanner() {
  const room = activeRoom();
  let text = '';
  let action = null;
  if (conn.state === 'waiting') {
    const secs = Math.max(0, Math.ceil((conn.retryAt - Date.now()) / 1000));
    const why = describeClose(conn.closeCode);
    text = `Connection lost${why ? ` (${why})` : ''}. Reconnecting in ${secs} s…`;
    action = { label: 'Retry now', run: () => conn.retryNow() };
  } else if (room && conn.isOpen() && !room.joined && !joinPending(room)) {
    // Replaced by another session, or a re-join the server refused.
    text = 'You are no longer in this room.';
    action = { label: 'Rejoin', run: () => { sendJoin(room); renderAll(); } };
  }
  ui.banner.hidden = !text;
  ui.bannerText.textContent = text;
  ui.bannerAction.hidden = !action;
  if (action) {
    ui.bannerAction.textContent = action.label;
    ui.bannerAction.onclick = action.run;
  }
}

function joinPending(room) {
  return [...state.pending.values()].some((r) => r.kind === 'join' && r.room === room.name);
}

function renderComposer() {
  const room = activeRoom();
  const ready = Boolean(room && room.joined && conn.isOpen());
  ui.input.disabled = !ready;
  ui.sendBtn.disabled = !ready;
  if (!room) return;
  if (ready) ui.input.placeholder = `Message #${room.name}`;
  else if (room.replaced) ui.input.placeholder = 'You left this room';
  else if (conn.isOpen()) ui.input.placeholder = 'Joining…';
  else ui.input.placeholder = 'Waiting for the connection…';
  const sending = [...state.pending.values()].some((r) => r.kind === 'message' && r.room === room.name);
  const bytes = utf8Length(ui.input.value);
  const limit = state.limits.message_bytes;
  if (bytes > limit * 0.8) ui.hint.textContent = `${bytes} / ${limit} bytes`;
  else ui.hint.textContent = sending ? 'Sending…' : '';
  ui.hint.classList.toggle('over', bytes > limit);
}

function renderConnection(s) {
  const labels = { idle: 'Offline', connecting: 'Connecting…', open: 'Connected', waiting: 'Reconnecting…' };
  ui.conn.dataset.state = s;
  ui.conn.dataset.gateway = s === 'open' && state.gateway ? state.gateway : '';
  ui.connText.textContent = labels[s] || s;
  ui.conn.title = s === 'open' && state.gateway ? `Connected via gateway ${state.gateway}` : '';
  if (s === 'waiting') {
    const secs = Math.max(0, Math.ceil((conn.retryAt - Date.now()) / 1000));
    ui.connText.textContent = `Reconnecting in ${secs} s`;
  }
  renderBanner();
  renderComposer();
  renderTabs();
}

function renderAll() {
  renderTabs();
  renderHeader();
  renderBanner();
  renderComposer();
  const room = activeRoom();
  if (room) renderOlder(room);
}

function showAlert(text, kind = 'error') {
  ui.alert.textContent = text;
  ui.alert.dataset.kind = kind;
  ui.alert.hidden = false;
  clearTimeout(state.alertTimer);
  state.alertTimer = setTimeout(hideAlert, ALERT_MS);
}

function hideAlert() {
  ui.alert.hidden = true;
}

// ---------------------------------------------------------------- page events

function onJoinSubmit(ev) {
  ev.preventDefault();
  const nickname = ui.nickname.value.trim();
  const name = ui.room.value.trim().replace(/^#/, '');
  const problem = nicknameProblem(nickname) || roomProblem(name);
  ui.joinError.textContent = problem || '';
  if (problem) return;
  remember('chat.nickname', nickname);
  ui.room.value = '';
  const existing = state.rooms.get(name);
  if (existing) {
    activate(name);
    return;
  }
  const room = createRoom(name, nickname);
  activate(name);
  if (conn.isOpen()) sendJoin(room);
  renderAll();
}

function onInputKey(ev) {
  // Enter sends; Shift+Enter is a new line; never interrupt IME composition.
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    sendMessage();
  }
}

function autosize() {
  ui.input.style.height = 'auto';
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 160)}px`;
}

function setMembersOpen(open) {
  ui.app.dataset.membersOpen = String(open);
  ui.membersToggle.setAttribute('aria-expanded', String(open));
}

function remember(key, value) {
  try { localStorage.setItem(key, value); } catch { /* private mode: fine */ }
}

function recall(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}

function init() {
  ui.nickname.value = recall('chat.nickname') || '';
  (ui.nickname.value ? ui.room : ui.nickname).focus();
  ui.joinForm.addEventListener('submit', onJoinSubmit);
  ui.composer.addEventListener('submit', (ev) => { ev.preventDefault(); sendMessage(); });
  ui.input.addEventListener('keydown', onInputKey);
  ui.input.addEventListener('input', () => { autosize(); renderComposer(); });
  ui.leaveBtn.addEventListener('click', () => { const r = activeRoom(); if (r) leaveRoom(r); });
  ui.membersToggle.addEventListener('click', () => setMembersOpen(ui.app.dataset.membersOpen !== 'true'));
  ui.membersClose.addEventListener('click', () => setMembersOpen(false));
  document.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') setMembersOpen(false); });
  // A tap outside the slide-over members panel closes it.
  document.addEventListener('click', (ev) => {
    if (ui.app.dataset.membersOpen === 'true' && !ev.target.closest('#members-panel, #members-toggle')) {
      setMembersOpen(false);
    }
  });
  document.addEventListener('visibilitychange', () => {
    const room = activeRoom();
    if (!document.hidden && room) { room.unread = 0; renderTabs(); }
  });
  window.addEventListener('online', () => conn.retryNow());
  // Keep the "reconnecting in N s" countdown honest.
  setInterval(() => { if (conn.state === 'waiting') renderConnection('waiting'); }, 1000);
  renderAll();
  conn.open();
}

init();

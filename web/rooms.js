// The rooms on this page: what each shows (messages in seq order, notices,
// members, unread counts), fed by the ChatClient's events. Nothing is shown
// optimistically: a message appears when the cluster delivers it, once, in
// seq order, so what people see is what the cluster stored.

import { HISTORY_PAGE, describeError, describeLeave } from './protocol.js';
import { utf8Length } from './chat-client/index.js';
import { conn, saveSession } from './connection.js';
import {
  ui, h, buildRoomView, buildTab, renderMessage, markAcked, noticeElement, insertItem, removeItem, keepPlace,
  scrollToBottom, renderOlder, buildMemberPane, renderMembers, watchMoreMembers, renderTabs, renderHeader, renderAll,
  renderComposer, showAlert, hideAlert, autosize, focusComposer,
} from './view.js';

export const state = {
  rooms: new Map(),   // name -> room (see createRoom)
  active: null,       // name of the room on screen
  queue: { waiting: 0, inFlight: 0, paced: false, ratePerSec: 0 },
};

export const activeRoom = () => state.rooms.get(state.active) || null;

// ---------------------------------------------------------------- the model

function createRoom(name, nickname) {
  const room = {
    name,
    nickname,
    joined: false,
    replaced: false,     // our nickname was taken over by another session
    lastSeq: 0,          // highest seq shown
    oldestSeq: 0,        // lowest seq shown, for "load older"
    noOlder: false,
    loadingOlder: false,
    items: [],           // [{key, el, msg}] sorted by key, mirrors the DOM list
    bySeq: new Map(),    // seq -> item
    acked: new Set(),    // seqs the server acked to us in this room
    members: new Map(),  // nickname -> since (ms): the members known, in a big room those paged so far
    count: null,         // the room's member count as the cluster says (null: not known, use members.size)
    moreMembers: false,  // a big room: pages of members are left to load
    loadingMembers: false,
    unread: 0,
    counting: false,     // whether recovered history counts as unread (rejoins do)
    noticeN: 0,
    divider: null,       // the "N new messages while you were away" item
    stick: true,         // keep the view scrolled to the newest message
    view: null,
  };
  room.view = buildRoomView(room);
  room.view.section.id = `room-${name}`;
  room.tab = buildTab(room, { onSelect: activate, onLeave: leaveRoom });
  room.memberPane = buildMemberPane(room, { onMore: loadMoreMembers });
  ui.views.append(room.view.section);
  ui.tabs.append(room.tab.item);
  ui.memberLists.append(room.memberPane.pane);
  state.rooms.set(name, room);
  return room;
}

function removeRoom(room) {
  room.view.section.remove();
  room.tab.item.remove();
  room.memberPane.pane.remove();
  watchMoreMembers(room, false);
  state.rooms.delete(room.name);
  if (state.active === room.name) activate([...state.rooms.keys()].pop() || null);
  saveSession(state.active);
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
  room.divider = null;
}

export function activate(name, { focus = true } = {}) {
  state.active = name;
  const room = activeRoom();
  for (const r of state.rooms.values()) {
    const on = r === room;
    r.view.section.hidden = !on;
    r.memberPane.pane.hidden = !on;
    if (on) ui.memberLists.prepend(r.memberPane.pane); // the list on screen comes first
    r.tab.button.setAttribute('aria-selected', String(on));
    r.tab.item.classList.toggle('active', on);
  }
  if (room) {
    room.unread = 0;
    if (room.stick) scrollToBottom(room);
  }
  hideAlert();
  renderAll();
  if (room && focus) focusComposer();
  saveSession(state.active);
}

// ---------------------------------------------------------------- list items

function addMessage(room, m, counted) {
  // Dedupe by seq: history, recovery, a gap fetch and live never show one twice.
  if (room.bySeq.has(m.seq)) return false;
  const item = insertItem(room, [m.seq, 0], renderMessage(room, m), m);
  room.bySeq.set(m.seq, item);
  room.lastSeq = Math.max(room.lastSeq, m.seq);
  room.oldestSeq = room.oldestSeq ? Math.min(room.oldestSeq, m.seq) : m.seq;
  const mine = m.nickname === room.nickname;
  if (counted && !mine && (room !== activeRoom() || document.hidden)) room.unread += 1;
  return true;
}

function addMessages(room, messages, opts = {}) {
  return keepPlace(room, () => {
    let added = 0;
    for (const m of messages) if (addMessage(room, m, opts.counted)) added += 1;
    return added;
  }, opts);
}

// Notices are keyed [last seq seen when they happened, running number], so
// a notice stays between the messages it happened between.
function addNotice(room, kind, ...parts) {
  return addNoticeAt(room, room.lastSeq, kind, ...parts);
}

function addNoticeAt(room, afterSeq, kind, ...parts) {
  room.noticeN += 1;
  const item = insertItem(room, [afterSeq, room.noticeN], noticeElement(kind, parts), null);
  if (room.stick) scrollToBottom(room);
  return item;
}

// One divider per room, right above the first message missed: moved (and
// recounted) by every recovery, so it always says how many messages lie
// below it that arrived while the page was away.
function placeDivider(room, afterSeq) {
  if (room.divider) removeItem(room, room.divider);
  room.divider = null;
  const missed = room.items.filter((it) => it.msg && it.msg.seq > afterSeq).length;
  if (missed === 0) return;
  room.divider = addNoticeAt(room, afterSeq, 'divider',
    `${missed} new message${missed === 1 ? '' : 's'} while you were away`);
}

// ---------------------------------------------------------------- user actions

export function joinRoom(name, nickname, saved = null) {
  const existing = state.rooms.get(name);
  if (existing && !saved) {
    activate(name);
    return;
  }
  const room = existing || createRoom(name, nickname);
  if (!state.active || !saved) activate(name);
  const opts = saved && saved.epoch ? { since: saved.since, epoch: saved.epoch } : { history: HISTORY_PAGE };
  conn.join(name, nickname, opts).then(() => {
    if (room === activeRoom() && !saved) focusComposer();
  }, (err) => {
    if (!state.rooms.has(name)) return; // left meanwhile
    removeRoom(room); // never got in: take the tab away, explain at the form
    ui.joinError.textContent = describeError(err.code, conn.limits);
  });
  renderAll();
}

export function rejoinRoom(room) {
  room.replaced = false;
  conn.join(room.name, room.nickname).catch((err) => showAlert(describeError(err.code, conn.limits)));
  renderAll();
}

export function leaveRoom(room) {
  conn.leave(room.name);
  removeRoom(room);
}

// Sends what is in the box: it goes into the client's queue at once (the
// box empties, ready for the next), and out as the server's rate allows.
export function sendMessage() {
  const room = activeRoom();
  const text = ui.input.value.replace(/\s+$/, '');
  if (!room || room.replaced || !text.trim()) return;
  if (utf8Length(text) > conn.limits.message_bytes) {
    // The send button is disabled already; Enter explains why.
    showAlert(describeError('too_large', conn.limits));
    return;
  }
  conn.send(room.name, text).then((ack) => onSent(room, ack), (err) => onSendFailed(room, text, err));
  hideAlert(); // an old error is about an old attempt
  ui.input.value = '';
  autosize();
  room.stick = true;
  renderComposer();
}

function onSent(room, ack) {
  room.acked.add(ack.seq);
  const item = room.bySeq.get(ack.seq);
  if (item) markAcked(item.el);
}

function onSendFailed(room, text, err) {
  if (!state.rooms.has(room.name)) return;
  if (err.code === 'not_delivered' || err.code === 'in_doubt') {
    showAlert(err.code === 'not_delivered'
      ? 'The connection dropped before your last message was delivered. It is back in the box; send it again.'
      : 'The connection dropped; your last message may not have been delivered. It is back in the box.');
  } else if (err.code !== 'closed') {
    showAlert(describeError(err.code, conn.limits));
  }
  restoreDraft(room, text);
  renderComposer();
}

function restoreDraft(room, text) {
  if (room === activeRoom() && !ui.input.value) {
    ui.input.value = text;
    autosize();
  }
}

// The next page of a big room's member list: asked for when the end of the
// list scrolls into view (view.js watches it) or its button is pressed.
export function loadMoreMembers(room) {
  if (room.loadingMembers || !room.moreMembers || !room.joined || !state.rooms.has(room.name)) return;
  room.loadingMembers = true;
  renderMembers(room);
  conn.loadMoreMembers(room.name).catch(() => {}).finally(() => {
    room.loadingMembers = false;
    if (!state.rooms.has(room.name)) return;
    renderMembers(room); // and if the end of the list is still in view, the next page
  });
}

export function loadOlder(room) {
  if (room.loadingOlder || !room.joined || !room.oldestSeq) return;
  room.loadingOlder = true;
  renderOlder(room);
  conn.history(room.name, { before: room.oldestSeq, limit: HISTORY_PAGE }).then((messages) => {
    if (messages.length < HISTORY_PAGE) room.noOlder = true;
    addMessages(room, messages, { older: true });
  }, () => {}).finally(() => {
    room.loadingOlder = false;
    renderOlder(room);
  });
}

// ---------------------------------------------------------------- client events

conn.on('joined', (e) => {
  const room = state.rooms.get(e.room);
  if (!room) return;
  room.joined = true;
  room.replaced = false;
  room.counting = e.rejoin;
  if (e.reset) {
    resetRoom(room);
    addNotice(room, 'warn', 'Some messages sent while you were away could not be recovered. Showing the latest ones.');
  } else if (!e.rejoin) {
    addNotice(room, 'info', 'You joined ', h('strong', {}, `#${room.name}`), ' as ', h('strong', {}, room.nickname), '.');
  }
  setMembers(room, e);
  renderAll();
});

conn.on('message', (m, { source }) => {
  const room = state.rooms.get(m.room);
  if (!room) return;
  addMessages(room, [m], { counted: source !== 'history' || room.counting });
  renderTabs();
  scheduleSave();
});

conn.on('recovered', (e) => {
  const room = state.rooms.get(e.room);
  if (!room) return;
  if (e.recovered && e.missed > 0) placeDivider(room, e.afterSeq);
  // A page restored from a saved session shows nothing older than what it
  // missed: fetch the page of messages above, for context.
  const first = room.items.find((it) => it.msg);
  if (e.recovered && (!first || first.msg.seq > e.afterSeq) && e.afterSeq > 0) {
    conn.history(room.name, { before: e.afterSeq + 1, limit: HISTORY_PAGE }).then((messages) => {
      if (messages.length < HISTORY_PAGE) room.noOlder = true;
      addMessages(room, messages, { older: !room.stick });
    }, () => {});
  }
  renderAll();
  saveSession(state.active);
});

// One notice per join or leave, as presence frames come in a room of up to
// presence_batch_above members. A bigger room's joins and leaves come as
// diffs, several a tick: they update the member list and count, not the
// conversation.
conn.on('presence', (f) => {
  const room = state.rooms.get(f.room);
  if (!room || !room.joined) return;
  const self = f.nickname === room.nickname;
  if (f.event === 'join') {
    const isNew = !room.members.has(f.nickname);
    if (isNew && !self) addNotice(room, 'presence', h('strong', {}, f.nickname), ' joined');
  } else if (f.event === 'leave' && !self) {
    const kind = f.reason === 'left' || f.reason === 'closed' ? 'presence' : 'presence warn';
    addNotice(room, kind, h('strong', {}, f.nickname), ` ${describeLeave(f.reason)}`);
  }
});

conn.on('members', (e) => {
  const room = state.rooms.get(e.room);
  if (!room || room.replaced) return; // after a takeover the list stays as it was
  setMembers(room, e);
  renderHeader();
});

conn.on('left', (e) => {
  const room = state.rooms.get(e.room);
  if (!room) return;
  room.joined = false;
  if (e.reason === 'replaced') {
    // Someone (probably us, in another tab) joined with the same nickname
    // and took it over. It is still a member, so the member count stays;
    // do not fight over it on reconnect, offer a button instead.
    room.replaced = true;
    addNotice(room, 'warn', `Your nickname ${room.nickname} joined this room from somewhere else, so this window left it.`);
    renderMembers(room);
  } else {
    showAlert(describeError(e.reason, conn.limits));
  }
  saveSession(state.active);
  renderAll();
});

conn.on('queue', (q) => {
  state.queue = q;
  renderComposer();
});

// The gateway refused a message as too fast although we paced it (its
// limits differ from what it announced, or timing): it waits in the queue.
conn.on('paced', () => {
  showAlert('You are sending messages too fast for the server: they wait here and go out as fast as it allows.', 'info');
});

conn.on('reconnect', () => {
  showAlert('The server is restarting; reconnecting you to another one…', 'info');
});

conn.on('error', (err) => showAlert(describeError(err.code, conn.limits)));

conn.on('state', () => {
  if (conn.state === 'waiting') {
    for (const room of state.rooms.values()) room.joined = false;
  }
});

// From a joined or members event: the members known, the count, whether
// pages are left.
function setMembers(room, { members, count, more }) {
  room.members = new Map();
  for (const m of members || []) room.members.set(m.nickname, m.since);
  room.count = Number.isFinite(count) ? count : null;
  room.moreMembers = Boolean(more);
  renderMembers(room);
}

// Saving after every message would write localStorage hundreds of times a
// second in a busy room; once a second is plenty (and pagehide saves too).
let saveTimer = null;
function scheduleSave() {
  if (saveTimer) return;
  saveTimer = setTimeout(() => {
    saveTimer = null;
    saveSession(state.active);
  }, 1000);
}

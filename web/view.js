// The page: DOM references, element builders and every render function.
// It reads the page's state (rooms.js) and the connection (connection.js)
// and writes the DOM; it never talks to the server.
//
// Safety rule for this file: user data (nicknames, room names, messages) only
// ever reaches the page through textContent / Node.append(string), never
// through innerHTML, so no member can inject markup into anyone's page.

import { utf8Length } from './chat-client/index.js';
import {
  describeClose, formatTime, formatFullTime, nicknameHue, initials, insertionIndex,
} from './protocol.js';
import { state, activeRoom, loadOlder, rejoinRoom } from './rooms.js';
import { conn } from './connection.js';

const GROUP_GAP_MS = 5 * 60 * 1000;
const NEAR_BOTTOM_PX = 80;
const ALERT_MS = 8000;
// The next page of members is asked for while the end of the list is
// within this distance of the panel's bottom edge.
const MORE_MEMBERS_MARGIN_PX = 200;

const $ = (id) => document.getElementById(id);

export const ui = {
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

let alertTimer = null;

// h('li', {class: 'x'}, 'text', child): strings become text nodes, never HTML.
export function h(tag, attrs = {}, ...children) {
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

// ---------------------------------------------------------------- room views

export function buildRoomView(room) {
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

export function renderMessage(room, m) {
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

export function markAcked(el) {
  el.dataset.acked = 'true';
}

export function noticeElement(kind, parts) {
  return h('li', { class: `notice ${kind}`, role: 'note' }, h('span', {}, ...parts));
}

// Puts el into the room's list at key ([seq, n]) and keeps items sorted.
export function insertItem(room, key, el, msg) {
  const i = insertionIndex(room.items, key);
  const next = room.items[i];
  room.view.list.insertBefore(el, next ? next.el : null);
  const item = { key, el, msg };
  room.items.splice(i, 0, item);
  regroup(room, i);
  regroup(room, i + 1);
  return item;
}

export function removeItem(room, item) {
  const i = room.items.indexOf(item);
  if (i < 0) return;
  room.items.splice(i, 1);
  item.el.remove();
  regroup(room, i);
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

// Keeps the reader's place after the list changed above or below.
export function keepPlace(room, change, { older = false } = {}) {
  const sc = room.view.scroller;
  const fromBottom = sc.scrollHeight - sc.scrollTop;
  const added = change();
  if (older) sc.scrollTop = sc.scrollHeight - fromBottom; // what was on screen stays on screen
  else if (room.stick) scrollToBottom(room);
  else if (added > 0) room.view.jump.hidden = false;
  renderOlder(room);
  return added;
}

export function scrollToBottom(room) {
  const sc = room.view.scroller;
  sc.scrollTop = sc.scrollHeight;
  room.stick = true;
  room.view.jump.hidden = true;
}

export function renderOlder(room) {
  const btn = room.view.older;
  btn.hidden = room.noOlder || room.oldestSeq <= 1;
  btn.disabled = room.loadingOlder || !room.joined;
  btn.textContent = room.loadingOlder ? 'Loading…' : 'Load older messages';
}

// ---------------------------------------------------------------- members

// A room's member pane: the list, then the button that loads the next page
// of a big room's members. Scrolling the button into view presses it (an
// IntersectionObserver on the panel); it stays a button for keyboards.
export function buildMemberPane(room, { onMore }) {
  const list = h('ul', { class: 'member-list', dataset: { room: room.name } });
  const more = h('button', {
    class: 'btn small members-more', type: 'button', hidden: true, dataset: { room: room.name },
    onclick: () => onMore(room),
  }, 'Show more members');
  const pane = h('div', { class: 'member-pane', dataset: { room: room.name }, hidden: true }, list, more);
  return { pane, list, more, onMore, rows: new Map() }; // rows: nickname -> {li, key}
}

let moreObserver = null;

// Starts (or stops) watching a room's "more" button. Watching anew makes
// the observer report at once whether the button is in view, so every
// render asks for the next page while the end of the list is in view (a
// page came and did not fill the panel, a rejoin started the list over).
export function watchMoreMembers(room, on) {
  moreObserver ??= new IntersectionObserver((entries) => {
    for (const e of entries) {
      const r = state.rooms.get(e.target.dataset.room);
      if (e.isIntersecting && r) r.memberPane.onMore(r);
    }
  }, { root: ui.memberLists, rootMargin: `0px 0px ${MORE_MEMBERS_MARGIN_PX}px 0px` });
  moreObserver.unobserve(room.memberPane.more);
  if (on) moreObserver.observe(room.memberPane.more);
}

const byName = new Intl.Collator(undefined, { numeric: true }).compare; // guest2 before guest10

function memberRow(room, nick, since, me) {
  return h('li', {
    class: me ? 'member me' : 'member',
    dataset: { nick },
    title: Number.isFinite(since) ? `Here since ${formatFullTime(since)}` : null,
    style: { '--hue': String(nicknameHue(nick)) },
  },
  h('span', { class: 'avatar', 'aria-hidden': 'true' }, initials(nick)),
  h('span', { class: 'member-name' }, nick),
  // After a takeover the nickname is still a member, in another window.
  me ? h('span', { class: 'you' }, room.replaced ? 'you, elsewhere' : 'you') : null);
}

// Brings the list in line with room.members: rows of members gone are
// removed, new ones made, the rest kept and put in order (yourself first,
// then by name). A big room's list changes every presence tick; keeping the
// rows keeps the reader's scroll position and focus.
export function renderMembers(room) {
  const { list, more, rows } = room.memberPane;
  for (const [nick, row] of rows) {
    if (!room.members.has(nick)) {
      row.li.remove();
      rows.delete(nick);
    }
  }
  const names = [...room.members.keys()].sort((a, b) => {
    if (a === room.nickname) return -1;
    if (b === room.nickname) return 1;
    return byName(a, b);
  });
  let prev = null;
  for (const nick of names) {
    const since = room.members.get(nick);
    const me = nick === room.nickname;
    const key = `${since}|${me ? room.replaced : ''}`;
    let row = rows.get(nick);
    if (!row || row.key !== key) {
      row?.li.remove();
      row = { li: memberRow(room, nick, since, me), key };
      rows.set(nick, row);
    }
    const at = prev ? prev.nextSibling : list.firstChild;
    if (at !== row.li) list.insertBefore(row.li, at);
    prev = row.li;
  }
  // Pages may be left when every member is listed already (the count is
  // exact, and presence keeps the list): nothing more to show then.
  more.hidden = !room.moreMembers || room.members.size >= memberCount(room);
  more.disabled = !room.joined; // not while loading: a disabled button would lose the focus
  more.textContent = room.loadingMembers ? 'Loading members…'
    : `Show more members (${formatCount(room.members.size)} of ${formatCount(memberCount(room))} shown)`;
  list.setAttribute('aria-busy', String(room.loadingMembers));
  watchMoreMembers(room, !more.hidden);
}

// The room's member count: what the cluster says, else the members known.
export function memberCount(room) {
  return room.count ?? room.members.size;
}

const countFormat = new Intl.NumberFormat();
export const formatCount = (n) => countFormat.format(n);

// ---------------------------------------------------------------- tabs

// The room list is one tab stop (ARIA tabs: arrows move between rooms), so
// Tab from it goes straight on to the message box. Leaving a room by
// keyboard: Delete on its tab, or the Leave button.
export function buildTab(room, { onSelect, onLeave }) {
  const badge = h('span', { class: 'badge', hidden: true });
  const button = h('button', {
    class: 'tab', type: 'button', role: 'tab', 'aria-selected': 'false', tabindex: '-1', dataset: { room: room.name },
    'aria-controls': `room-${room.name}`, onclick: () => onSelect(room.name),
  }, h('span', { class: 'hash', 'aria-hidden': 'true' }, '#'), h('span', { class: 'tab-name' }, room.name), badge);
  const close = h('button', {
    class: 'tab-close', type: 'button', title: `Leave #${room.name}`, 'aria-label': `Leave #${room.name}`,
    tabindex: '-1', onclick: () => onLeave(room),
  }, '×');
  const item = h('li', { class: 'tab-item', role: 'presentation', dataset: { room: room.name } }, button, close);
  return { item, button, badge };
}

export function renderTabs() {
  let total = 0;
  for (const room of state.rooms.values()) {
    const { badge, item, button } = room.tab;
    badge.hidden = room.unread === 0;
    badge.textContent = room.unread > 99 ? '99+' : String(room.unread);
    item.classList.toggle('offline', !room.joined);
    room.view.section.dataset.joined = String(room.joined);
    item.classList.toggle('unread', room.unread > 0);
    button.tabIndex = room.name === state.active ? 0 : -1;
    total += room.unread;
  }
  ui.noRooms.hidden = state.rooms.size > 0;
  document.title = total > 0 ? `(${total}) Chat` : 'Chat';
}

// ---------------------------------------------------------------- header, banner, composer

export function renderHeader() {
  const room = activeRoom();
  ui.header.hidden = !room;
  ui.empty.hidden = Boolean(room);
  ui.composer.hidden = !room;
  if (!room) return;
  const n = memberCount(room);
  ui.roomName.textContent = `#${room.name}`;
  ui.roomSub.textContent = `as ${room.nickname} · ${formatCount(n)} member${n === 1 ? '' : 's'} online`;
  ui.membersToggleCount.textContent = formatCount(n);
  ui.membersCount.textContent = formatCount(n);
}

export function renderBanner() {
  const room = activeRoom();
  let text = '';
  let action = null;
  if (conn.state === 'waiting') {
    const secs = Math.max(0, Math.ceil((conn.retryAt - Date.now()) / 1000));
    const why = describeClose(conn.closeCode);
    text = `Connection lost${why ? ` (${why})` : ''}. Reconnecting in ${secs} s…`;
    action = { label: 'Retry now', run: () => conn.retryNow() };
  } else if (room && conn.isOpen() && room.replaced) {
    text = 'You are no longer in this room.';
    action = { label: 'Rejoin', run: () => rejoinRoom(room) };
  }
  ui.banner.hidden = !text;
  ui.bannerText.textContent = text;
  ui.bannerAction.hidden = !action;
  if (action) {
    ui.bannerAction.textContent = action.label;
    ui.bannerAction.onclick = action.run;
  }
}

// The message box stays usable while joining or reconnecting: what is sent
// then waits in the queue. Only a room that was taken over, or a text over
// the size limit, cannot be sent.
export function renderComposer() {
  const room = activeRoom();
  const usable = Boolean(room && !room.replaced);
  ui.input.disabled = !usable;
  if (!room) return;
  const bytes = utf8Length(ui.input.value);
  const limit = conn.limits.message_bytes;
  const over = bytes > limit;
  ui.sendBtn.disabled = !usable || over || !ui.input.value.trim();
  if (room.replaced) ui.input.placeholder = 'You left this room';
  else ui.input.placeholder = `Message #${room.name}`;
  ui.hint.textContent = composerHint(room, bytes, limit);
  ui.hint.classList.toggle('over', over);
  ui.composer.dataset.over = String(over);
}

function composerHint(room, bytes, limit) {
  if (bytes > limit) return `${bytes} / ${limit} bytes: too long to send. Shorten it a little.`;
  if (bytes > limit * 0.8) return `${bytes} / ${limit} bytes`;
  const q = state.queue;
  if (q.waiting > 0 && !conn.isOpen()) {
    return `${plural(q.waiting, 'message')} will be sent when the connection is back.`;
  }
  if (q.waiting > 0 && q.paced) {
    return `Sending fast: ${plural(q.waiting, 'message')} waiting, sent at ${q.ratePerSec} a second as the server allows.`;
  }
  if (q.waiting > 0) return `${plural(q.waiting, 'message')} waiting to be sent…`;
  if (q.inFlight > 0) return 'Sending…';
  return room.joined || room.replaced ? '' : 'Joining… what you send now goes out once you are in.';
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

export function renderConnection() {
  const s = conn.state;
  const labels = { idle: 'Offline', connecting: 'Connecting…', open: 'Connected', waiting: 'Reconnecting…', closed: 'Offline' };
  ui.conn.dataset.state = s;
  ui.conn.dataset.gateway = s === 'open' && conn.gateway ? conn.gateway : '';
  ui.connText.textContent = labels[s] || s;
  ui.conn.title = s === 'open' && conn.gateway ? `Connected via gateway ${conn.gateway}` : '';
  if (s === 'waiting') {
    const secs = Math.max(0, Math.ceil((conn.retryAt - Date.now()) / 1000));
    ui.connText.textContent = `Reconnecting in ${secs} s`;
  }
  renderBanner();
  renderComposer();
  renderTabs();
}

export function renderAll() {
  renderTabs();
  renderHeader();
  renderBanner();
  renderComposer();
  const room = activeRoom();
  if (room) renderOlder(room);
}

export function showAlert(text, kind = 'error') {
  ui.alert.textContent = text;
  ui.alert.dataset.kind = kind;
  ui.alert.hidden = false;
  clearTimeout(alertTimer);
  alertTimer = setTimeout(hideAlert, ALERT_MS);
}

export function hideAlert() {
  ui.alert.hidden = true;
}

export function autosize() {
  ui.input.style.height = 'auto';
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 160)}px`;
}

export function setMembersOpen(open) {
  ui.app.dataset.membersOpen = String(open);
  ui.membersToggle.setAttribute('aria-expanded', String(open));
}

// Focus goes to the message box, except on touch screens, where it would
// pop the keyboard up over the conversation.
export function focusComposer() {
  if (!ui.input.disabled && !matchMedia('(pointer: coarse)').matches) ui.input.focus();
}

// The web chat client: the page's entry point. Three modules do the work,
// on top of the client library (chat-client/, from clients/js):
//   connection.js  the ChatClient, and the session saved across reloads;
//   rooms.js       what each room shows, fed by the client's events;
//   view.js        the DOM: builders and render functions.
// This file wires the page's own events (forms, keys, clicks) to them and
// starts everything.

import { roomProblem, nicknameProblem } from './protocol.js';
import { conn, claimSession, savedSession, saveSession, remember, recall } from './connection.js';
import { state, activeRoom, activate, joinRoom, leaveRoom, sendMessage } from './rooms.js';
import {
  ui, renderAll, renderConnection, renderComposer, renderTabs, autosize, setMembersOpen, focusComposer,
} from './view.js';

function onJoinSubmit(ev) {
  ev.preventDefault();
  const nickname = ui.nickname.value.trim();
  const name = ui.room.value.trim().replace(/^#/, '');
  const problem = nicknameProblem(nickname) || roomProblem(name);
  ui.joinError.textContent = problem || '';
  if (problem) return;
  remember('chat.nickname', nickname);
  ui.room.value = '';
  joinRoom(name, nickname);
  // Straight on to the message box: what is typed there before the join
  // completes waits in the queue.
  focusComposer();
}

function onInputKey(ev) {
  // Enter sends; Shift+Enter is a new line; never interrupt IME composition.
  if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    sendMessage();
  }
}

// The room list behaves as ARIA tabs: arrows move between rooms (and show
// them), Home/End jump, Delete leaves the room; Tab leaves the list.
function onTabsKey(ev) {
  const names = [...state.rooms.keys()];
  const i = names.indexOf(state.active);
  if (i < 0 || !ev.target.closest('.tab')) return;
  const moves = { ArrowDown: i + 1, ArrowRight: i + 1, ArrowUp: i - 1, ArrowLeft: i - 1, Home: 0, End: names.length - 1 };
  if (ev.key in moves) {
    ev.preventDefault();
    const next = names[(moves[ev.key] + names.length) % names.length];
    activate(next, { focus: false });
    state.rooms.get(next).tab.button.focus();
  } else if (ev.key === 'Delete') {
    ev.preventDefault();
    leaveRoom(activeRoom());
    activeRoom()?.tab.button.focus();
  }
}

// A saved session (this window's before a reload, or the browser's before
// a restart) comes back: every room rejoined from where it was left.
async function restore() {
  // data-session says what happened (and tells tests when it has).
  if (!(await claimSession())) {
    ui.app.dataset.session = 'second-window';
    return;
  }
  const saved = savedSession();
  ui.app.dataset.session = saved && saved.rooms.length ? 'restored' : 'new';
  if (!saved) return;
  for (const r of saved.rooms) {
    if (r && typeof r.room === 'string' && typeof r.nickname === 'string' && !state.rooms.has(r.room)) {
      joinRoom(r.room, r.nickname, r);
    }
  }
  if (saved.active && state.rooms.has(saved.active)) activate(saved.active);
  else if (state.rooms.size) activate([...state.rooms.keys()][0]);
}

function init() {
  ui.nickname.value = recall('chat.nickname') || '';
  (ui.nickname.value ? ui.room : ui.nickname).focus();
  ui.joinForm.addEventListener('submit', onJoinSubmit);
  ui.composer.addEventListener('submit', (ev) => { ev.preventDefault(); sendMessage(); });
  ui.input.addEventListener('keydown', onInputKey);
  ui.input.addEventListener('input', () => { autosize(); renderComposer(); });
  ui.tabs.addEventListener('keydown', onTabsKey);
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
  window.addEventListener('pagehide', () => saveSession(state.active));
  conn.on('state', renderConnection);
  conn.on('welcome', renderConnection);
  // Keep the "reconnecting in N s" countdown honest.
  setInterval(() => { if (conn.state === 'waiting') renderConnection(); }, 1000);
  renderAll();
  conn.connect();
  restore();
}

init();

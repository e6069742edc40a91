// Headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core,
// plus a small page object for the chat page. Each launch gets a fresh
// temporary profile; the browser's PID is handed to the integration
// harness's reaper, so it dies with the test process however that ends.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const outDir = path.resolve(here, '..', 'out');
export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const REAPER = path.resolve(here, '..', '..', 'integration', 'lib', 'reaper.cjs');

const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// Every wait in these tests is bounded; this is the default bound.
export const WAIT_MS = 10000;

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Polls fn until it returns a truthy value or timeoutMs passes; the error
// names what was awaited and the last value seen.
export async function until(fn, { timeoutMs = WAIT_MS, intervalMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${seen})`);
    }
    await sleep(intervalMs);
  }
}

// PIDs of the main browser process(es) using this profile directory: the
// renderer, GPU and utility children exit when their parent does.
function browserPids(profileDir) {
  const pids = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmd;
    try {
      cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (cmd.includes(`--user-data-dir=${profileDir}`) && !cmd.some((a) => a.startsWith('--type='))) {
      pids.push(Number(entry));
    }
  }
  return pids;
}

function startReaper(pids) {
  if (!fs.existsSync(REAPER) || pids.length === 0) return null;
  const r = spawn(process.execPath, [REAPER], { stdio: ['pipe', 'ignore', 'ignore'] });
  r.unref();
  r.stdin.on('error', () => {});
  r.stdin.write(pids.map((p) => `+${p}\n`).join(''));
  r.stdin._handle?.unref?.();
  return r;
}

export async function launchBrowser({ viewport = { width: 1280, height: 800 } } = {}) {
  if (!fs.existsSync(chromiumPath)) {
    throw new Error(`${chromiumPath} not found: apt-get install -y chromium (or set CHROMIUM)`);
  }
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'chat-browser-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath, headless: true, args: ARGS, viewport, timeout: 30000,
    });
  } catch (e) {
    fs.rmSync(profile, { recursive: true, force: true });
    throw e;
  }
  const pids = browserPids(profile);
  const reaper = startReaper(pids);
  const killNow = () => {
    for (const pid of pids) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  };
  process.on('exit', killNow);
  return {
    context,
    pids,
    async close() {
      // Bounded: if Chromium hangs on close, kill it by PID.
      let timer;
      await Promise.race([
        context.close().catch(() => {}),
        new Promise((resolve) => { timer = setTimeout(resolve, 10000); }),
      ]);
      clearTimeout(timer);
      killNow();
      process.off('exit', killNow);
      if (reaper) reaper.stdin.end();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

const sel = (room) => `[data-room="${room}"]`;

// A page object for one open chat page.
export class ChatPage {
  constructor(page) {
    this.page = page;
    this.dialogs = [];
    this.pageErrors = [];
    page.on('dialog', (d) => {
      this.dialogs.push(d.message());
      d.dismiss().catch(() => {});
    });
    page.on('pageerror', (e) => this.pageErrors.push(e.message));
  }

  static async open(browser, url, { viewport } = {}) {
    const page = await browser.context.newPage();
    if (viewport) await page.setViewportSize(viewport);
    const cp = new ChatPage(page);
    await page.goto(url, { timeout: WAIT_MS });
    await cp.waitConnected();
    return cp;
  }

  async waitConnected(timeout = WAIT_MS) {
    await this.page.waitForSelector('#conn[data-state="open"]', { timeout });
  }

  connState() {
    return this.page.getAttribute('#conn', 'data-state');
  }

  // The gateway id from the welcome frame.
  async gateway() {
    await this.page.waitForSelector('#conn[data-gateway]:not([data-gateway=""])', { timeout: WAIT_MS });
    return this.page.getAttribute('#conn', 'data-gateway');
  }

  async join(room, nickname) {
    await this.page.fill('#nickname', nickname);
    await this.page.fill('#room', room);
    await this.page.click('#join-btn');
    await this.waitJoined(room);
  }

  async waitJoined(room, timeout = WAIT_MS) {
    await this.page.waitForSelector(`.room-view${sel(room)}[data-joined="true"]`, { state: 'attached', timeout });
  }

  async switchTo(room) {
    await this.page.click(`.tab${sel(room)}`);
  }

  // Types into the composer and presses Enter, as a person would.
  async send(text) {
    await this.page.fill('#input', text);
    await this.page.press('#input', 'Enter');
  }

  messages(room) {
    return this.page.evaluate((r) => [...document.querySelectorAll(`.room-view[data-room="${r}"] .msg`)]
      .map((li) => ({
        seq: Number(li.dataset.seq),
        nick: li.querySelector('.nick').textContent,
        text: li.querySelector('.text').textContent,
        time: li.querySelector('time').textContent,
        acked: li.dataset.acked === 'true',
        mine: li.classList.contains('mine'),
      })), room);
  }

  texts(room) {
    return this.messages(room).then((ms) => ms.map((m) => m.text));
  }

  notices(room) {
    return this.page.evaluate((r) => [...document.querySelectorAll(`.room-view[data-room="${r}"] .notice`)]
      .map((li) => li.textContent), room);
  }

  members(room) {
    return this.page.evaluate((r) => [...document.querySelectorAll(`.member-list[data-room="${r}"] .member`)]
      .map((li) => li.dataset.nick).sort(), room);
  }

  alertText() {
    return this.page.evaluate(() => {
      const a = document.getElementById('alert');
      return a.hidden ? '' : a.textContent;
    });
  }

  unread(room) {
    return this.page.evaluate((r) => {
      const b = document.querySelector(`.tab[data-room="${r}"] .badge`);
      return b && !b.hidden ? Number(b.textContent) : 0;
    }, room);
  }

  // Waits until every text in `wanted` is shown in the room.
  async waitTexts(room, wanted, timeoutMs = WAIT_MS) {
    return until(async () => {
      const texts = await this.texts(room);
      return wanted.every((t) => texts.includes(t)) && texts;
    }, { timeoutMs, what: `${JSON.stringify(wanted)} in #${room}` });
  }

  async waitMembers(room, names, timeoutMs = WAIT_MS) {
    const want = [...names].sort();
    return until(async () => {
      const got = await this.members(room);
      return JSON.stringify(got) === JSON.stringify(want) && got;
    }, { timeoutMs, what: `members of #${room} to be ${want.join(', ')}` });
  }

  async screenshot(file) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    await this.page.screenshot({ path: file });
  }

  close() {
    return this.page.close();
  }
}

// Asserts that no text appears twice and seqs strictly increase.
// The pages a test file opened, so that each test can close its own even
// when an assertion failed: open(browser, url, opts), close(page) and
// closeAll().
export class PageSet {
  constructor() {
    this.pages = [];
  }

  async open(browser, url, opts) {
    const p = await ChatPage.open(browser, url, opts);
    this.pages.push(p);
    return p;
  }

  // Closes one page now (a window the user closes mid-test).
  async close(p) {
    this.pages.splice(this.pages.indexOf(p), 1);
    await p.close();
  }

  async closeAll() {
    for (const p of this.pages.splice(0)) await p.close().catch(() => {});
  }
}

export function duplicates(messages) {
  const seen = new Map();
  for (const m of messages) seen.set(m.text, (seen.get(m.text) || 0) + 1);
  return [...seen].filter(([, n]) => n > 1).map(([t, n]) => `${JSON.stringify(t)} x${n}`);
}

export function seqsAscending(messages) {
  return messages.every((m, i) => i === 0 || m.seq > messages[i - 1].seq);
}

// The classic page (classic.html) driven in Chromium, for the legacy tests:
// opened from its file, as the article opens it, pointed at wsUrl.
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { until } from '../browser/lib/browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const classicPage = pathToFileURL(path.join(here, 'classic.html')).href;

// Opens the page with nickname and room filled in, once its socket is open.
// Records the alerts it shows and the WebSocket URLs it opens.
export async function openClassic(browser, wsUrl, nickname, room) {
  const page = await browser.context.newPage();
  const dialogs = [];
  const origins = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('websocket', (ws) => origins.push(ws.url()));
  await page.goto(`${classicPage}?ws=${encodeURIComponent(wsUrl)}`, { timeout: 10000 });
  assert.equal(new URL(page.url()).protocol, 'file:', 'opened as a file');
  await page.waitForSelector('#status:text("open")', { timeout: 10000 });
  await page.fill('#nickname', nickname);
  await page.fill('#room', room);
  return {
    page,
    dialogs,
    origins,
    async say(text) {
      await page.fill('#message', text);
      await page.click('#send');
    },
    lines: () => page.$$eval('#lines li', (lis) => lis.map((li) => li.textContent)),
  };
}

export async function waitLine(p, line) {
  await until(async () => (await p.lines()).includes(line), { what: `"${line}"` });
}

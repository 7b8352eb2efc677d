// Two players chat: a second page (another origin spelling, so another guest) and the
// main page. The main page picks a display name in the header, posts a message holding
// markup, and the other page shows it as text under that name (no element made, no
// script run); the other page answers; posting faster than the chat rate shows the plain
// sentence under the box and the page stays connected.

import { check, info } from './harness.mjs';

const chatLines = (page) => page.evaluate(() => [...document.querySelectorAll('#chat-list .chat-line')].map((li) => ({
  name: li.querySelector('.chat-name')?.textContent,
  text: li.querySelector('.chat-text')?.textContent,
  elements: li.querySelectorAll('.chat-text *').length,
  mine: li.classList.contains('mine'),
})));

async function waitForLine(page, wanted, timeoutMs = 5_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const line = (await chatLines(page)).find(wanted);
    if (line || Date.now() > until) return line ?? null;
    await page.waitForTimeout(50);
  }
}

async function post(page, text) {
  await page.locator('#chat-input').fill(text);
  await page.locator('#chat-input').press('Enter');
}

/** `context` is the browser's, `page` the main page (online), `base` the server's URL. */
export async function checkChat(context, page, base, shot) {
  const other = await context.newPage();
  // Another host spelling is another origin: its own localStorage, so its own guest.
  await other.goto(base.replace('127.0.0.1', 'localhost'), { waitUntil: 'domcontentloaded', timeout: 10_000 });
  await other.waitForFunction(() => document.getElementById('conn').dataset.state === 'online', null, { timeout: 10_000 });

  const name = `Pilot${Math.floor(1000 + Math.random() * 9000)}`;
  await page.locator('#name-edit').click();
  await page.locator('#name-input').fill(name);
  await page.locator('#name-input').press('Enter');
  await page.waitForFunction((n) => document.getElementById('player').textContent === n, name, { timeout: 5_000 })
    .catch(() => {});
  const shown = await page.locator('#player').textContent();
  check('a picked name shows in the header', shown === name, `header "${shown}"`);

  const markup = '<script>window.__chatInjected = 1</script><img src=x onerror="window.__chatInjected = 2">hello';
  await post(page, markup);
  const seen = await waitForLine(other, (l) => l.text === markup);
  const injected = await other.evaluate(() => window.__chatInjected ?? null);
  check('a message reaches the other player as text under the name', seen?.name === name && seen.elements === 0 && injected === null,
    `line ${JSON.stringify(seen)}, injected ${injected}`);
  const own = await waitForLine(page, (l) => l.text === markup);
  check('the sender sees its own message marked as its own', own?.mine === true, JSON.stringify(own));

  await post(other, 'hi back');
  const answer = await waitForLine(page, (l) => l.text === 'hi back');
  check('the other player\'s answer reaches the main page', answer != null && answer.name.startsWith('guest-'), JSON.stringify(answer));
  if (shot) await shot(other, '08-chat.png');

  // Faster than the chat rate (a burst of 5, then one a second): twelve posts in a few
  // seconds are over it however slow the machine is, and one is refused in words.
  for (let index = 0; index < 12; index++) await post(page, `quick ${index}`);
  await page.waitForFunction(() => document.getElementById('chat-status').textContent !== '', null, { timeout: 5_000 }).catch(() => {});
  const status = await page.locator('#chat-status').textContent();
  const online = await page.evaluate(() => document.getElementById('conn').dataset.state);
  check('posting too fast is refused in plain words, still online', /too fast/i.test(status) && online === 'online', `"${status}", ${online}`);
  info('chat: checked with two pages');
  await other.close();
}

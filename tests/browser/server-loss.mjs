// A server lost under the player's bet, for play.mjs (issue 13): a server of the
// test's own is killed while the page holds a bet in flight (placed with the space bar
// on the focused panel, bet 2). The page must say
// "Reconnecting…" with its next try, turn its panels off ("Cash out" not lit), and once
// the server is back (it aborted the round and refunded the stake at start) drop the
// banner and announce the refund in words, the round marked cancelled in the chips.

import path from 'node:path';
import { check, info, left, ownServer, waitUntil } from './harness.mjs';

/** Rounds tried for a bet still flying when the server is killed, at most. */
const ROUNDS_TRIED_MAX = 4;
/** The panel the scenario bets with: the second, so Space shows it plays the focused one. */
const SLOT = 1;
const PANEL = `.bet-panel[data-slot="${SLOT}"]`;

const view = (page) => page.evaluate((selector) => {
  const panel = document.querySelector(selector);
  const action = panel.querySelector('.action');
  const g = window.aloft?.game;
  return {
    conn: document.getElementById('conn').dataset.state,
    phase: document.body.dataset.phase,
    round: g?.round ?? null,
    bettingLeft: g && g.phase === 'betting' ? g.endsAt - window.aloft.conn.serverNow() : null,
    balance: document.getElementById('balance').dataset.cents === '' ? null : Number(document.getElementById('balance').dataset.cents),
    slot: panel.dataset.state,
    slotRound: panel.dataset.round ? Number(panel.dataset.round) : null,
    action: { kind: action.dataset.kind, disabled: action.disabled, text: action.innerText.replace(/\s+/g, ' ').trim() },
    inputsOff: [...panel.querySelectorAll('.panel-inputs input, .step, [data-quick]')].every((el) => el.disabled),
    banner: document.getElementById('conn-banner').hidden ? null : document.getElementById('conn-banner').innerText.replace(/\s+/g, ' ').trim(),
    status: panel.querySelector('.panel-status').textContent,
    toasts: [...document.querySelectorAll('#toasts .toast')].map((t) => t.dataset.text),
    chips: [...document.querySelectorAll('#history .chip')].map((c) => ({ round: Number(c.dataset.round), status: c.dataset.status })),
  };
}, PANEL);

const describe = (s) => `conn ${s.conn}, phase ${s.phase}, slot ${s.slot}, banner ${JSON.stringify(s.banner)}`;
const waitFor = (page, what, predicate, ms) => waitUntil(page, view, what, predicate, ms, describe);

/** Bets $1.00 with Space on bet 2's focused panel and returns once it flies: {round,
 *  before} (the balance before the stake), or null if no round could be caught flying. */
async function betInFlight(page) {
  for (let attempt = 1; attempt <= ROUNDS_TRIED_MAX && left() > 40_000; attempt++) {
    let s = await view(page);
    if (!(s.phase === 'betting' && s.bettingLeft > 1000)) {
      if (s.phase === 'betting') await waitFor(page, 'end of betting', (x) => x.phase !== 'betting', 10_000);
      s = await waitFor(page, 'betting', (x) => x.phase === 'betting' && x.bettingLeft > 800, 30_000);
    }
    const before = s.balance;
    const panel = page.locator(PANEL);
    await panel.locator('.amount').fill('1.00');
    await panel.locator('.auto-on').setChecked(false);
    await panel.focus();
    await page.keyboard.press('Space');
    s = await waitFor(page, 'the bet flying', (x) => ['active', 'lost', 'idle'].includes(x.slot), 15_000);
    if (attempt === 1) check('Space bets on the focused panel (bet 2)', s.slotRound != null, `bet 2 ${s.slot} in round ${s.slotRound}`);
    if (s.slot === 'active') return { round: s.slotRound, before };
    info(`round ${s.round} ended before the kill (slot ${s.slot}); another round`);
  }
  return null;
}

/** The scenario, on a page of `context` and a server of the test's own. */
export async function checkServerLoss(context, shotsDir) {
  const server = await ownServer();
  await server.start();
  const page = await context.newPage();
  await page.setViewportSize({ width: 1280, height: 800 });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  try {
    await page.goto(`${server.url}/`, { waitUntil: 'domcontentloaded', timeout: 10_000 });
    await waitFor(page, 'online', (x) => x.conn === 'online' && x.balance != null && x.phase !== 'idle', 15_000);
    const bet = await betInFlight(page);
    check('a bet in flight on the server the test owns', bet != null, bet ? `round ${bet.round}` : 'no round flew long enough');
    if (!bet) return;
    await server.kill('SIGKILL');
    let s = await waitFor(page, 'the banner', (x) => x.banner != null, 5_000).catch(() => view(page));
    check('"Reconnecting…" banner with the next try', /^Reconnecting…/.test(s.banner ?? '') && /Next try in \d+ s|Trying now/.test(s.banner ?? ''), JSON.stringify(s.banner));
    check('panels off while disconnected ("Cash out" not lit)', s.action.kind === 'cashout' && s.action.disabled && s.inputsOff,
      `button "${s.action.text}" disabled ${s.action.disabled}, inputs off ${s.inputsOff}`);
    await page.screenshot({ path: path.join(shotsDir, '08-reconnecting.png') });
    info('screenshot target/screenshots/08-reconnecting.png');
    await server.start();
    s = await waitFor(page, 'online again', (x) => x.conn === 'online', 15_000).catch(() => view(page));
    check('the banner goes once reconnected', s.conn === 'online' && s.banner == null, describe(s));
    const sentence = `Round ${bet.round} was cancelled: your $1.00 bet was refunded.`;
    s = await waitFor(page, 'the refund announced', (x) => x.toasts.includes(sentence), 8_000).catch(() => view(page));
    check('the refund announced in words', s.toasts.includes(sentence), `toasts ${JSON.stringify(s.toasts)}, panel "${s.status}"`);
    check('the stake is back', s.balance === bet.before, `${bet.before} before the bet, ${s.balance} now`);
    const chip = s.chips.find((c) => c.round === bet.round);
    check('the cancelled round marked in the chips', chip?.status === 'aborted', JSON.stringify(chip ?? s.chips.slice(0, 3)));
    await page.waitForTimeout(400); // the toast fades in
    await page.screenshot({ path: path.join(shotsDir, '09-refunded.png') });
    info('screenshot target/screenshots/09-refunded.png');
    check('no page errors (server lost)', pageErrors.length === 0, pageErrors.slice(0, 3).join(' | '));
  } finally {
    await page.close();
    await server.kill('SIGTERM');
    server.remove();
  }
}

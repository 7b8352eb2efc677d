#!/usr/bin/env node
// Auto bet and the history chips' round dialog in a real (headless) chromium.
//
//   node tests/browser/autobet.mjs http://127.0.0.1:18080
//
// First the pure rules (web-client/autobet-rules.js, imported here under Node). Then,
// in one page, both panels run an auto bet at once with an auto cash out no round
// reaches (10000x), so every bet loses: bet 1 ($0.10, back to base on a loss, stop at a
// loss of $0.30) must place exactly three bets and stop on its loss limit; bet 2 (40% of
// the balance, the stake doubled on a loss) must place one bet and stop before the
// second, which the balance cannot cover, without sending it; a run whose base stake is
// above the balance must not start. Then a history chip opens its round (crash point,
// hash, a verify link), Escape closes it and gives the focus back, and the verify page
// the link opens verifies that round. A run also keeps going across a dropped
// connection, settling the bet it held from GET /api/me/bets. axe-core and screenshots
// at 1280 and 375 px.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { check, finish, info, launch, left, serverUrl, waitUntil } from './harness.mjs';
import { checkAccessibility } from './page-checks.mjs';
import {
  parseAutoBetSettings, roundsLeft, settle, startRun, stopReason,
} from '../../web-client/autobet-rules.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const shotsDir = path.resolve(here, '../../target/screenshots');
const base = serverUrl('usage: node tests/browser/autobet.mjs http://127.0.0.1:PORT');
/** An auto cash out no round reaches in practice (the highest the server takes). */
const AUTO_CASHOUT_UNREACHED = '10000.00';

/** The rules alone: stakes after wins and losses, and when a run stops. */
function checkRules() {
  const { settings } = parseAutoBetSettings({ rounds: '', profitStop: '', lossStop: '0.30', onWin: 'base', onLoss: 'base' });
  let run = startRun(settings, 10);
  for (let i = 0; i < 2; i++) run = settle(run, { kind: 'lost' });
  const beforeLimit = stopReason(run);
  run = settle(run, { kind: 'refunded' });
  run = settle(run, { kind: 'lost' });
  check('rules: back to base, stop at the loss limit (a refund does not count)',
    beforeLimit == null && run.played === 3 && run.profit === -30 && run.stake === 10 && /loss of \$0\.30/.test(stopReason(run) ?? ''),
    `played ${run.played}, profit ${run.profit}, stake ${run.stake}: ${stopReason(run)}`);
  const martingale = parseAutoBetSettings({ rounds: '3', profitStop: '1.00', lossStop: '', onWin: 'base', onLoss: 'multiply', lossFactor: '2.5' }).settings;
  run = settle(settle(startRun(martingale, 33), { kind: 'lost' }), { kind: 'lost' });
  const afterLosses = run.stake;
  run = settle(run, { kind: 'won', win: 412 });
  check('rules: multiply on loss (rounded down to the cent), base after a win, rounds and profit stops',
    afterLosses === 205 && run.stake === 33 && run.profit === 412 - 33 - 82 - 205 && roundsLeft(run) === 0 && /finished: 3 rounds/.test(stopReason(run) ?? ''),
    `stake after two losses ${afterLosses}, then ${run.stake}, profit ${run.profit}: ${stopReason(run)}`);
  const bad = parseAutoBetSettings({ rounds: '2.5', onWin: 'base', onLoss: 'multiply', lossFactor: '0.5' }).problem;
  const badFactor = parseAutoBetSettings({ rounds: '', onWin: 'multiply', winFactor: '500', onLoss: 'base' }).problem;
  check('rules: bad settings explained', /^Rounds must be a whole number/.test(bad ?? '') && /^On win, multiply the stake by a number from 1\.00x to 100\.00x/.test(badFactor ?? ''),
    `${bad} | ${badFactor}`);
}

/** Both panels' auto bet forms and the page's phase. */
const view = (page) => page.evaluate(() => {
  const panel = (slot) => {
    const p = document.querySelector(`.bet-panel[data-slot="${slot}"]`);
    const form = p.querySelector('.autobet');
    const value = (selector) => form.querySelector(selector).dataset.value;
    return {
      state: p.dataset.state,
      running: form.dataset.running === 'true',
      played: Number(value('.autobet-played')),
      profit: Number(value('.autobet-result')),
      stake: value('.autobet-stake') === '' ? null : Number(value('.autobet-stake')),
      counters: form.querySelector('.autobet-counters').innerText.replace(/\s+/g, ' ').trim(),
      message: form.querySelector('.autobet-message').textContent,
      action: p.querySelector('.action').innerText.replace(/\s+/g, ' ').trim(),
      locked: [...p.querySelectorAll('.amount, .auto-on, .auto-value, .autobet-fields input, .autobet-fields select')].every((el) => el.disabled),
    };
  };
  const g = window.aloft.game;
  return {
    conn: document.getElementById('conn').dataset.state,
    phase: g.phase,
    round: g.round,
    balance: g.balance,
    panels: [panel(0), panel(1)],
    toasts: [...document.querySelectorAll('#toasts .toast')].map((t) => t.dataset.text),
  };
});

const describe = (v) => `phase ${v.phase}, panels ${v.panels.map((p) => `${p.state}/${p.running ? 'on' : 'off'}/${p.played}`).join(' ')}`;
const waitFor = (page, what, predicate, ms) => waitUntil(page, view, what, predicate, ms, describe);

/** Fills panel `slot`'s stake, auto cash out and auto bet form; opens the form. */
async function setUp(page, slot, { amount, rounds = '', profitStop = '', lossStop = '', onLoss = 'base', lossFactor = '2.00' }) {
  const panel = page.locator(`.bet-panel[data-slot="${slot}"]`);
  await panel.locator('.amount').fill(amount);
  await panel.locator('.auto-on').setChecked(true);
  await panel.locator('.auto-value').fill(AUTO_CASHOUT_UNREACHED);
  const form = panel.locator('.autobet');
  if (!(await form.evaluate((d) => d.open))) await form.locator('summary').click();
  await form.locator('.autobet-rounds').fill(rounds);
  await form.locator('.autobet-profit').fill(profitStop);
  await form.locator('.autobet-loss').fill(lossStop);
  await form.locator('.autobet-on-win').selectOption('base');
  await form.locator('.autobet-on-loss').selectOption(onLoss);
  if (onLoss === 'multiply') await form.locator('.autobet-loss-factor').fill(lossFactor);
  return form;
}

const cents = (n) => `${Math.floor(n / 100)}.${String(n % 100).padStart(2, '0')}`;

/** The two runs at once: bet 1 to its loss limit, bet 2 to a stake the balance cannot
 *  cover. `bets` lists the bet frames the page sent. */
async function checkRuns(page, bets) {
  let v = await waitFor(page, 'online', (x) => x.conn === 'online' && x.balance != null && x.phase !== 'idle', 15_000);
  if (v.phase === 'betting') v = await waitFor(page, 'the end of betting', (x) => x.phase !== 'betting', 15_000);
  const balance = v.balance;
  const bigStake = Math.floor((balance * 4) / 10);
  const first = await setUp(page, 0, { amount: '0.10', lossStop: '0.30' });
  const second = await setUp(page, 1, { amount: cents(bigStake), onLoss: 'multiply', lossFactor: '2.00' });
  // Both started in one task, so each run's first bet is in the same round.
  await page.evaluate(() => { for (const b of document.querySelectorAll('.autobet-toggle')) b.click(); });
  v = await view(page);
  check('a running panel locks its inputs and offers no manual bet', v.panels.every((p) => p.running && p.locked
    && (/^Auto bet on/i.test(p.action) || ['pending', 'placed'].includes(p.state))), v.panels.map((p) => `${p.state} "${p.action}" locked ${p.locked}`).join(', '));
  v = await waitFor(page, 'the first auto bets', (x) => x.panels.every((p) => ['placed', 'active', 'lost'].includes(p.state)), 20_000);
  await page.screenshot({ path: path.join(shotsDir, '10-autobet.png'), fullPage: true });
  info('screenshot target/screenshots/10-autobet.png');
  v = await waitFor(page, 'both runs to stop', (x) => x.panels.every((p) => !p.running), Math.min(90_000, left() - 30_000));
  const [lossRun, fundsRun] = v.panels;
  const sent = (slot) => bets.filter((b) => b.slot === slot);
  check('auto bet placed exactly 3 bets, then stopped at its loss limit', sent(0).length === 3 && sent(0).every((b) => b.amount === 10 && b.auto === 1_000_000),
    `${sent(0).length} bets: ${JSON.stringify(sent(0).map((b) => b.amount))}`);
  check('its counters: 3 rounds played, profit -$0.30, stake $0.10', lossRun.played === 3 && lossRun.profit === -30 && lossRun.stake === 10,
    lossRun.counters);
  check('it says why it stopped', lossRun.message === 'Auto bet stopped: the loss of $0.30 reached your $0.30 limit.', JSON.stringify(lossRun.message));
  const doubled = bigStake * 2;
  check('a stake the balance cannot cover stops the run before it is sent', sent(1).length === 1 && sent(1)[0].amount === bigStake && !bets.some((b) => b.amount === doubled),
    `${sent(1).length} bets: ${JSON.stringify(sent(1).map((b) => b.amount))}`);
  check('with a plain message', /^Auto bet stopped before its \$[\d,.]+ bet\. Not enough balance: you have \$[\d,.]+\.$/.test(fundsRun.message) && fundsRun.stake === doubled,
    `${JSON.stringify(fundsRun.message)} (${fundsRun.counters})`);
  check('the stop is announced in a toast too', v.toasts.includes(fundsRun.message) || v.toasts.includes(lossRun.message), JSON.stringify(v.toasts));
  await page.waitForTimeout(1000);
  check('no bet after the runs stopped', bets.length === 4, `${bets.length} bet frames`);
  await page.screenshot({ path: path.join(shotsDir, '11-autobet-stopped.png'), fullPage: true });
  info('screenshot target/screenshots/11-autobet-stopped.png');
}

/** A run whose base stake is above the balance does not start, and says why. */
async function checkNoStart(page, bets) {
  const { balance } = await view(page);
  const form = await setUp(page, 1, { amount: cents(balance + 100) });
  await form.locator('.autobet-toggle').click({ force: true });
  const v = await view(page);
  check('a base stake above the balance: the run does not start, no bet sent', !v.panels[1].running && /^Auto bet not started\. Not enough balance/.test(v.panels[1].message)
    && !bets.some((b) => b.amount === balance + 100), JSON.stringify(v.panels[1].message));
  await page.locator('.bet-panel[data-slot="1"] .amount').fill('1.00');
}

/** A run keeps going across a lost connection: a bet open while the page was away is
 *  settled from GET /api/me/bets, and no round gets two bets. */
async function checkReconnect(page, bets, meBetsRequests) {
  let v = await view(page);
  if (v.phase === 'betting') v = await waitFor(page, 'the end of betting', (x) => x.phase !== 'betting', 15_000);
  const form = await setUp(page, 0, { amount: '0.10', rounds: '2' });
  const sentBefore = bets.length;
  const asked = meBetsRequests.length;
  await form.locator('.autobet-toggle').click();
  v = await waitFor(page, 'the first bet flying', (x) => x.panels[0].state === 'active' || x.panels[0].state === 'lost', 20_000);
  await page.evaluate(() => window.aloft.conn.ws.close());
  v = await waitFor(page, 'the run to finish', (x) => !x.panels[0].running, Math.min(60_000, left() - 25_000));
  const runBets = bets.slice(sentBefore).filter((b) => b.slot === 0);
  check('auto bet keeps running across a reconnect: 2 rounds, one bet each', runBets.length === 2 && v.panels[0].played === 2 && v.panels[0].profit === -20
    && v.panels[0].message === 'Auto bet finished: 2 rounds played.', `${runBets.length} bets, ${v.panels[0].counters}, ${JSON.stringify(v.panels[0].message)}`);
  check('the bet open across the reconnect settled from GET /api/me/bets', meBetsRequests.length > asked, `${meBetsRequests.length - asked} request(s)`);
}

const dialogView = (page) => page.evaluate(() => {
  const dialog = document.getElementById('round-dialog');
  const labelled = document.getElementById(dialog.getAttribute('aria-labelledby'));
  const facts = Object.fromEntries([...dialog.querySelectorAll('.round-facts div')].map((row) => [row.querySelector('dt').textContent, row.querySelector('dd')]));
  return {
    open: dialog.open,
    modal: dialog.matches(':modal') && dialog.getAttribute('aria-modal') === 'true',
    title: labelled?.textContent,
    crash: facts['Crash point']?.textContent,
    crashM: facts['Crash point'] ? Number(facts['Crash point'].dataset.m) : null,
    hash: facts['Round hash']?.textContent,
    staked: facts.Staked?.textContent,
    verify: document.getElementById('round-verify').getAttribute('href'),
    status: document.getElementById('round-dialog-status').textContent,
    focused: document.activeElement?.dataset?.round ?? document.activeElement?.id ?? null,
  };
});

/** A chip opens its round; Escape closes it; the verify link verifies the round. */
async function checkRoundDialog(context, page) {
  const newest = page.locator('#history .chip[data-status="crashed"]').first();
  const round = Number(await newest.getAttribute('data-round'));
  const m = Number(await newest.getAttribute('data-m'));
  // By its round: a crash meanwhile redraws the chips and puts another one first.
  await page.locator(`#history .chip[data-round="${round}"]`).click();
  const until = Date.now() + 5_000;
  let d = await dialogView(page);
  while ((d.status !== '' || !d.staked) && Date.now() < until) { await page.waitForTimeout(50); d = await dialogView(page); }
  const multiplier = `${Math.floor(m / 100)}.${String(m % 100).padStart(2, '0')}x`;
  check('a chip opens its round in a modal dialog', d.open && d.modal && d.title === `Round #${round}`, `${d.title}, open ${d.open}, modal ${d.modal}`);
  check('the dialog shows the crash point, hash and totals', d.crash === multiplier && d.crashM === m && /^[0-9a-f]{64}$/.test(d.hash ?? '') && /^\$/.test(d.staked ?? ''),
    `${d.crash}, hash ${d.hash?.slice(0, 12)}…, staked ${d.staked}`);
  const link = new URL(d.verify, base);
  check('its verify link names the round and its hash', link.pathname === '/verify.html' && link.searchParams.get('round') === String(round) && link.searchParams.get('hash') === d.hash, d.verify);
  await checkAccessibility(page, 1280, path.join(shotsDir, '12-round-dialog.png'));
  await checkAccessibility(page, 375, path.join(shotsDir, '13-round-dialog-phone.png'));
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.keyboard.press('Escape');
  // The focus goes back on the dialog's `close` event, a task after Escape.
  d = await waitUntil(page, dialogView, 'the focus back on the chip', (x) => !x.open && x.focused === String(round), 2_000, (x) => `focus on ${x.focused}`)
    .catch(() => dialogView(page));
  check('Escape closes it and the focus goes back to the chip', !d.open && d.focused === String(round), `open ${d.open}, focus on ${d.focused}`);
  await page.keyboard.press('Enter');
  d = await dialogView(page);
  check('Enter on the chip opens it again', d.open && d.title === `Round #${round}`, d.title);
  await page.locator('#round-dialog-close').click();
  const strip = await page.evaluate(() => ({
    stops: document.querySelectorAll('#history .chip[tabindex="0"]').length,
    next: document.activeElement?.nextElementSibling?.dataset.round,
  }));
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('Enter');
  const next = await dialogView(page);
  check('the strip is one Tab stop; an arrow key moves to the next chip, Enter opens it', strip.stops === 1 && next.open && next.title === `Round #${strip.next}`,
    `${strip.stops} Tab stop(s), then "${next.title}"`);
  await page.keyboard.press('Escape');

  const verify = await context.newPage();
  await verify.goto(new URL(d.verify, base).href, { waitUntil: 'domcontentloaded', timeout: 10_000 });
  await verify.waitForSelector('body[data-ready]', { timeout: Math.max(1000, Math.min(10_000, left() - 1000)) });
  const result = await verify.evaluate(() => ({
    ok: document.getElementById('result-verdict')?.dataset.ok,
    crash: document.getElementById('result-crash')?.textContent,
    round: document.getElementById('round-input').value,
  }));
  check('the verify page the link opens verifies that round', result.ok === 'true' && result.crash === multiplier && result.round === String(round), JSON.stringify(result));
  await verify.close();
}

async function main() {
  checkRules();
  const context = await launch({ width: 1280, height: 800 });
  const page = context.pages()[0] ?? await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
  const bets = [];
  page.on('websocket', (ws) => ws.on('framesent', (f) => {
    if (typeof f.payload !== 'string') return;
    const msg = JSON.parse(f.payload);
    if (msg.t === 'bet') bets.push(msg);
  }));
  const meBetsRequests = [];
  page.on('request', (r) => { if (new URL(r.url()).pathname === '/api/me/bets') meBetsRequests.push(r.url()); });
  await page.goto(`${base}/`, { waitUntil: 'domcontentloaded', timeout: 10_000 });
  await checkRuns(page, bets);
  await checkReconnect(page, bets, meBetsRequests);
  await checkAccessibility(page, 375, path.join(shotsDir, '14-autobet-phone.png'));
  await page.setViewportSize({ width: 1280, height: 800 });
  await checkNoStart(page, bets);
  await checkRoundDialog(context, page);
  check('no page errors', pageErrors.length === 0, pageErrors.slice(0, 3).join(' | '));
}

await finish(main);

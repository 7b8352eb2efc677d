#!/usr/bin/env node
// End-to-end browser test of the aloft web client.
//
//   node tests/browser/play.mjs http://127.0.0.1:18080
//
// Launches Debian's headless chromium through playwright-core, plays one round on the
// page like a person would (bet in slot 0 during Betting, cash out while Flying),
// checks the balance moves consistently, that the history chips grow after a crash,
// that a dropped connection resumes from the page's last event (`recovered`), that a
// bet can be cancelled before take-off (cancel.mjs), that two players chat under a
// picked name with markup shown as text (chat.mjs), that the rules dialog shows the
// house edge and the live list's tabs filter and order it (rules-tabs.mjs), and that
// /verify.html verifies the crashed round. Then the page's honest states and
// accessibility (page-checks.mjs: Tab, focus, plain words, contrast, axe-core, sound)
// and a server of its own killed under a bet (server-loss.mjs). Screenshots go to
// target/screenshots/, the README's to docs/img/. Prints PASS/FAIL lines; exits
// non-zero on any failure; the whole run is bounded to 150 s.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { check, fail, finish, info, launch, left, pass, serverUrl, waitUntil } from './harness.mjs';
import { checkAccessibility, checkContrast, checkEveryCodeWorded, checkPlainWords, checkSound, checkTabOrder, countAudioContexts } from './page-checks.mjs';
import { checkCancel } from './cancel.mjs';
import { checkChat } from './chat.mjs';
import { checkRulesAndTabs } from './rules-tabs.mjs';
import { checkServerLoss } from './server-loss.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const shotsDir = path.resolve(here, '../../target/screenshots');
const docsImages = path.resolve(here, '../../docs/img');
const base = serverUrl('usage: node tests/browser/play.mjs http://127.0.0.1:PORT');

/** Typed view of the page state (DOM attributes first; the debug hook for timing). */
async function state(page) {
  return page.evaluate(() => {
    const panel = document.querySelector('.bet-panel[data-slot="0"]');
    const chips = [...document.querySelectorAll('#history .chip')];
    const g = window.aloft?.game;
    return {
      conn: document.getElementById('conn').dataset.state,
      phase: document.body.dataset.phase,
      round: g?.round ?? null,
      balance: document.getElementById('balance').dataset.cents === '' ? null : Number(document.getElementById('balance').dataset.cents),
      m: Number(document.getElementById('multiplier').dataset.m || 100),
      bettingLeft: g && g.phase === 'betting' ? g.endsAt - window.aloft.conn.serverNow() : null,
      slot: { state: panel?.dataset.state, win: panel?.dataset.win ? Number(panel.dataset.win) : null, m: panel?.dataset.m ? Number(panel.dataset.m) : null, round: panel?.dataset.round ? Number(panel.dataset.round) : null },
      chips: chips.length,
      firstChip: chips[0] ? { round: Number(chips[0].dataset.round), m: Number(chips[0].dataset.m) } : null,
      action: panel?.querySelector('.action')?.innerText.replace(/\s+/g, ' ').trim(),
      totals: g?.totals ?? null,
      betsCount: Number(document.getElementById('bets-count').dataset.count || 0),
      ownRow: Boolean(document.querySelector('#bets .bet-row.mine')),
    };
  });
}

function waitFor(page, description, predicate, timeoutMs) {
  const describe = (s) => `phase=${s.phase}, slot=${s.slot.state}, m=${s.m}`;
  return waitUntil(page, state, description, predicate, timeoutMs, describe);
}

async function shot(page, name, fullPage = false) {
  const file = path.join(shotsDir, name);
  await page.screenshot({ path: file, fullPage });
  info(`screenshot ${path.relative(process.cwd(), file)}`);
}

async function main() {
  fs.mkdirSync(shotsDir, { recursive: true });
  const context = await launch({ width: 1280, height: 800 });
  await countAudioContexts(context);
  const page = context.pages()[0] ?? await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });
  const frames = { sent: [], received: 0 };
  // Each socket the page opened: its URL, its first frame and its first frame with a
  // `seq` (a public event or a snapshot; pongs and replies carry none).
  const sockets = [];
  page.on('websocket', (ws) => {
    const socket = { url: ws.url(), first: null, firstWithSeq: null };
    sockets.push(socket);
    ws.on('framesent', (f) => { if (typeof f.payload === 'string' && !f.payload.includes('"ping"')) frames.sent.push(f.payload); });
    ws.on('framereceived', (f) => {
      frames.received++;
      if (typeof f.payload !== 'string') return;
      const msg = JSON.parse(f.payload);
      socket.first ??= msg;
      if (typeof msg.seq === 'number') socket.firstWithSeq ??= msg;
    });
  });

  // 1. Load, connect, balance.
  await page.goto(`${base}/`, { waitUntil: 'domcontentloaded', timeout: 10_000 });
  let s = await waitFor(page, 'connection', (x) => x.conn === 'online', 15_000);
  pass('connected', `websocket online`);
  s = await waitFor(page, 'balance', (x) => x.balance != null && x.phase !== 'idle', 10_000);
  pass('balance shown', `${s.balance} cents, phase ${s.phase}, round ${s.round}`);
  const chipsAtStart = { count: s.chips, first: s.firstChip?.round ?? 0 };
  await shot(page, '01-connected.png');
  await checkTabOrder(page);

  // 2. Bet in slot 0 during Betting (wait for a betting phase with time to spare).
  let outcome = null;
  for (let attempt = 1; attempt <= 3 && !outcome; attempt++) {
    s = await state(page);
    if (!(s.phase === 'betting' && s.bettingLeft > 1200)) {
      info(`waiting for the next betting phase (now ${s.phase})`);
      if (s.phase === 'betting') await waitFor(page, 'end of betting', (x) => x.phase !== 'betting', 15_000);
      s = await waitFor(page, 'betting phase', (x) => x.phase === 'betting' && x.bettingLeft > 800, 60_000);
    }
    const round = s.round;
    const before = s.balance;
    const panel = page.locator('.bet-panel[data-slot="0"]');
    await panel.locator('.amount').fill('1.00');
    await panel.locator('.auto-on').setChecked(false);
    if (attempt === 1) await checkContrast(page, '.bet-panel[data-slot="0"] .action[data-kind="bet"]', 'BET button');
    await panel.locator('.action').click();
    s = await waitFor(page, 'bet accepted', (x) => ['placed', 'active'].includes(x.slot.state) || x.slot.state === 'idle', 5_000);
    check('bet accepted', ['placed', 'active'].includes(s.slot.state), `slot 0 ${s.slot.state}, round ${round}`);
    const betFrame = frames.sent.map((f) => JSON.parse(f)).find((f) => f.t === 'bet');
    check('bet frame is integer cents', betFrame && betFrame.amount === 100 && Number.isInteger(betFrame.amount) && typeof betFrame.req === 'string' && betFrame.slot === 0,
      JSON.stringify(betFrame));
    s = await waitFor(page, 'stake debited', (x) => x.balance === before - 100, 3_000).catch(() => state(page));
    check('stake debited', s.balance === before - 100, `${before} → ${s.balance}`);
    // The round's totals come with the next tick; the list is drawn on the next frame.
    s = await waitFor(page, 'round totals', (x) => x.totals != null && x.betsCount >= 1 && x.ownRow, 5_000).catch(() => state(page));
    check('round totals shown', s.ownRow && s.totals?.bets >= 1 && s.totals?.staked >= 100 && s.betsCount >= s.totals?.bets,
      `totals ${JSON.stringify(s.totals)}, summary ${s.betsCount} bets, own row ${s.ownRow}`);
    await shot(page, '02-bet-placed.png');

    // 3. Flying: cash out as soon as the multiplier moves.
    s = await waitFor(page, 'take-off', (x) => x.phase !== 'betting', 30_000);
    s = await waitFor(page, 'multiplier ≥ 1.01x or crash', (x) => x.phase === 'crashed' || x.slot.state === 'lost' || x.m >= 101, 10_000);
    if (s.phase === 'flying' && s.slot.state === 'active') {
      pass('flying', `${(s.m / 100).toFixed(2)}x, button "${s.action}"`);
      await page.locator('.bet-panel[data-slot="0"] .action').click();
      await shot(page, '03-flying.png');
    }
    s = await waitFor(page, 'cash-out outcome', (x) => x.slot.state === 'won' || x.slot.state === 'lost', 10_000);
    if (s.slot.state === 'won') {
      const expected = before - 100 + s.slot.win;
      s = await waitFor(page, 'payout credited', (x) => x.balance === expected, 3_000).catch(() => state(page));
      check('cashed out', s.slot.m >= 100 && s.slot.win === Math.floor((100 * s.slot.m) / 100), `at ${(s.slot.m / 100).toFixed(2)}x, win ${s.slot.win} cents`);
      check('balance consistent', s.balance === expected, `${before} − 100 + ${s.slot.win} = ${expected}, shown ${s.balance}`);
      await shot(page, '04-cashed-out.png');
      outcome = 'won';
    } else {
      check('balance consistent (bust)', s.balance === before - 100, `round crashed before the cash out; ${before} − 100 = ${s.balance}`);
      if (left() < 45_000) { outcome = 'lost'; break; }
      info('round crashed before the cash out could land; trying another round');
    }
  }
  if (outcome !== 'won') fail('cash out', 'no round could be cashed out within the time budget');

  // 4. Crash: the history chips grow.
  s = await waitFor(page, 'crash', (x) => x.phase === 'crashed' || x.phase === 'betting', left() - 14_000).catch((e) => { fail('crash', e.message); return null; });
  if (s) {
    if (s.phase === 'crashed') await shot(page, '05-crashed.png');
    s = await state(page);
    const grew = s.firstChip && s.firstChip.round > chipsAtStart.first && s.chips >= chipsAtStart.count;
    check('history chips grew', grew, `${chipsAtStart.count} chips (newest #${chipsAtStart.first}) → ${s.chips} (newest #${s.firstChip?.round} at ${(s.firstChip?.m / 100).toFixed(2)}x)`);
  }

  // 5. A dropped connection resumes from the page's last event: the server replays what
  // the page missed (hello says `recovered`) instead of sending a snapshot.
  const openedBefore = sockets.length;
  await page.evaluate(() => window.aloft.conn.ws.close());
  const resumed = await (async () => {
    const until = Date.now() + Math.min(10_000, left() - 15_000);
    // The hello, then the first replayed or live event (Betting lasts 3 s).
    while (Date.now() < until && (sockets.length === openedBefore || !sockets.at(-1).firstWithSeq)) {
      await page.waitForTimeout(25);
    }
    return sockets.length > openedBefore ? sockets.at(-1) : null;
  })();
  if (!resumed) {
    fail('reconnect resumes', 'the page did not reconnect');
  } else {
    const query = new URL(resumed.url).searchParams;
    const since = Number(query.get('since'));
    const { first: hello, firstWithSeq: next } = resumed;
    check('reconnect resumes', query.has('epoch') && Number.isInteger(since) && hello?.t === 'hello' && hello.recovered === true,
      `since=${query.get('since')} epoch=${query.get('epoch')}, hello.recovered=${hello?.recovered}`);
    check('replay continues the page\'s events', next && next.t !== 'snapshot' && next.seq === since + 1,
      next ? `${next.t} seq ${next.seq} after since=${since}` : 'no frame after hello');
    s = await waitFor(page, 'online again', (x) => x.conn === 'online', 5_000).catch(() => state(page));
    check('online again', s.conn === 'online', `conn ${s.conn}`);
  }

  // 6. A bet taken back before take-off.
  await checkCancel(page, frames.sent);

  // 7. Two players chat, one under a picked name.
  await checkChat(context, page, base, shot);

  // 8. The rules dialog and the live list's All / My / Top tabs.
  await checkRulesAndTabs(context, page, base, shotsDir);

  // 9. Plain words, accessibility at 1280 and 375 px (the README's screenshots), sound.
  await checkEveryCodeWorded(page);
  await checkPlainWords(page, frames.sent);
  await checkAccessibility(page, 1280, path.join(docsImages, 'player.png'));
  await checkAccessibility(page, 375, path.join(docsImages, 'player-phone.png'));
  await page.screenshot({ path: path.join(shotsDir, '07-mobile.png'), fullPage: true });
  info('screenshot target/screenshots/07-mobile.png');
  await page.setViewportSize({ width: 1280, height: 800 });
  await checkSound(context, page, base);

  // 10. The verifier recomputes the crashed round.
  // The round the page saw crash; if the flight outlasted the budget, the newest
  // finished round the server lists.
  let crashed = s?.phase === 'crashed' || s?.phase === 'betting' ? s?.firstChip?.round : null;
  if (!crashed) {
    const listed = await page.evaluate(() => fetch('/api/rounds?limit=1').then((r) => r.json())).catch(() => []);
    crashed = listed[0]?.round;
    info(`no crash seen in time; verifying the newest listed round #${crashed}`);
  }
  const verify = await context.newPage();
  verify.on('pageerror', (e) => pageErrors.push(`verify: ${e.message}`));
  await verify.goto(`${base}/verify.html${crashed ? `?round=${crashed}` : ''}`, { waitUntil: 'domcontentloaded', timeout: 10_000 });
  await verify.waitForSelector('body[data-ready]', { timeout: Math.max(1000, Math.min(10_000, left() - 1000)) });
  const v = await verify.evaluate((round) => {
    const rows = [...document.querySelectorAll('#rounds tr')];
    const row = rows.find((r) => r.dataset.round === String(round));
    return {
      ready: document.body.dataset.ready,
      rows: rows.length,
      bad: rows.filter((r) => r.dataset.ok !== 'true').map((r) => r.dataset.round),
      row: row ? { ok: row.dataset.ok, text: [...row.cells].map((c, i) => (i === 0 ? `#${row.dataset.round}` : c.textContent.trim())).join(' | ') } : null,
      verdict: document.getElementById('result-verdict')?.dataset.ok,
      crash: document.getElementById('result-crash')?.textContent,
    };
  }, crashed);
  check('verify page loaded', v.ready === 'true', `${v.rows} rounds listed`);
  check('crashed round verifies ✓', v.row?.ok === 'true' && v.verdict === 'true', v.row ? `${v.row.text} · detail ${v.crash}` : `round ${crashed} not listed`);
  check('all listed rounds verify', v.rows > 0 && v.bad.length === 0, v.bad.length ? `failed: ${v.bad.join(', ')}` : `${v.rows} ✓`);
  await verify.setViewportSize({ width: 1200, height: 900 });
  await shot(verify, '06-verify.png', true);

  check('no page errors', pageErrors.length === 0, pageErrors.slice(0, 3).join(' | '));
  info(`${frames.received} frames received, ${frames.sent.length} requests sent`);

  // 11. The server lost under a bet: the banner, the panels off, the refund announced.
  await checkServerLoss(context, shotsDir);
}

await finish(main);

// The rules dialog and the live list's All / My / Top tabs, for play.mjs (before its
// accessibility checks, so axe covers them). The dialog opens from the header, shows the
// room's house edge as /api/fair gives it, Escape closes it and the focus goes back to
// the button. Then a second player (another origin spelling, so another guest) bets
// $5.00 and the main page $1.00 in one round: All lists the own bet first, My only the
// own, Top the larger stake first and, once the own bet is cashed out, the own first;
// the arrow keys move between the tabs, and the choice is kept for the next page.

import path from 'node:path';
import { check, info, waitUntil } from './harness.mjs';
import { checkAccessibility } from './page-checks.mjs';

const OWN_STAKE = 100;
const OTHER_STAKE = 500;

const dialogView = (page) => page.evaluate(() => ({
  open: document.getElementById('rules-dialog').open,
  edge: document.getElementById('rules-edge').textContent,
  focused: document.activeElement?.id ?? null,
}));

/** Opens the rules, checks the house edge against /api/fair and axe-core on the open
 *  dialog (screenshot in `shotsDir`), closes them with Escape. */
async function checkRulesDialog(page, shotsDir) {
  const bp = await page.evaluate(() => fetch('/api/fair').then((r) => r.json()).then((f) => f.house_edge_bp));
  const percent = `${Math.floor(bp / 100)}.${String(bp % 100).padStart(2, '0')}%`;
  await page.locator('#rules-open').click();
  const describe = (v) => `open ${v.open}, edge "${v.edge}"`;
  let v = await waitUntil(page, dialogView, 'the house edge in the rules', (x) => x.open && x.edge.includes('%'), 5_000, describe)
    .catch(() => dialogView(page));
  check('the rules dialog shows the house edge of /api/fair', v.open && v.edge.includes(percent), `${describe(v)}; house_edge_bp ${bp} → ${percent}`);
  await checkAccessibility(page, 1280, path.join(shotsDir, '08b-rules.png'), ' with the rules open');
  await page.keyboard.press('Escape');
  v = await dialogView(page);
  check('Escape closes the rules, the focus back on their button', !v.open && v.focused === 'rules-open', `open ${v.open}, focus on #${v.focused}`);
}

const listView = (page) => page.evaluate(() => {
  const g = window.aloft.game;
  return {
    phase: g.phase,
    bettingLeft: g.phase === 'betting' ? g.endsAt - window.aloft.conn.serverNow() : null,
    tab: document.querySelector('#bets-tabs [aria-selected="true"]')?.dataset.tab,
    focused: document.activeElement?.dataset?.tab ?? null,
    rows: [...document.querySelectorAll('#bets .bet-row')].map((li) => ({
      mine: li.classList.contains('mine'), cashed: li.classList.contains('cashed'), bet: li.children[1].textContent,
    })),
    empty: document.getElementById('bets-empty').hidden ? null : document.getElementById('bets-empty').textContent,
    slot: document.querySelector('.bet-panel[data-slot="0"]').dataset.state,
  };
});

const describeList = (v) => `tab ${v.tab}, rows ${JSON.stringify(v.rows)}, empty "${v.empty}", slot 0 ${v.slot}`;
const waitList = (page, description, predicate, timeoutMs) =>
  waitUntil(page, listView, description, predicate, timeoutMs, describeList);

async function bet(page, cents) {
  const panel = page.locator('.bet-panel[data-slot="0"]');
  await panel.locator('.amount').fill(`${cents / 100}.00`);
  await panel.locator('.auto-on').setChecked(false);
  await panel.locator('.action').click();
}

/** `context` is the browser's, `page` the main page (online), `base` the server's URL,
 *  `shotsDir` where screenshots go. */
export async function checkRulesAndTabs(context, page, base, shotsDir) {
  await checkRulesDialog(page, shotsDir);
  await page.locator('#bets-tab-my').click();
  let v = await listView(page);
  const before = v.rows.filter((r) => r.mine).length;
  check('My says in words when the player has no bet', before > 0 || v.empty === 'You have no bet in this round.', describeList(v));

  const other = await context.newPage();
  await other.goto(base.replace('127.0.0.1', 'localhost'), { waitUntil: 'domcontentloaded', timeout: 10_000 });
  await other.waitForFunction(() => document.getElementById('conn').dataset.state === 'online', null, { timeout: 10_000 });
  await page.locator('#bets-tab-all').click();
  v = await listView(page);
  if (!(v.phase === 'betting' && v.bettingLeft > 1500)) {
    info('tabs: waiting for a betting phase with time left');
    if (v.phase === 'betting') await waitList(page, 'end of betting', (x) => x.phase !== 'betting', 15_000);
    await waitList(page, 'betting phase', (x) => x.phase === 'betting' && x.bettingLeft > 1500, 30_000);
  }
  await Promise.all([bet(other, OTHER_STAKE), bet(page, OWN_STAKE)]);
  v = await waitList(page, 'both bets listed', (x) => x.rows.length >= 2 && x.rows.some((r) => r.mine), 5_000).catch(() => listView(page));
  check('All lists every bet, the own first', v.rows.length >= 2 && v.rows[0].mine && v.rows.some((r) => !r.mine), describeList(v));

  // The keyboard: one Tab stop, the arrows and Home / End move and select.
  await page.locator('#bets-tab-all').focus();
  await page.keyboard.press('ArrowRight');
  v = await listView(page);
  check('My lists only the own bets (arrow key)', v.tab === 'my' && v.focused === 'my' && v.rows.length >= 1 && v.rows.every((r) => r.mine), describeList(v));
  await page.keyboard.press('End');
  v = await listView(page);
  check('Top lists the largest stake first before any cash out', v.tab === 'top' && v.focused === 'top' && !v.rows[0]?.mine && v.rows.length >= 2, describeList(v));
  await checkTopAfterCashout(page);

  await page.locator('#bets-tab-top').focus();
  await page.keyboard.press('ArrowLeft');
  const kept = await context.newPage();
  await kept.goto(`${base}/`, { waitUntil: 'domcontentloaded', timeout: 10_000 });
  const keptTab = await kept.evaluate(() => document.querySelector('#bets-tabs [aria-selected="true"]')?.dataset.tab);
  check('the tab chosen is kept for the next page', keptTab === 'my', `next page opens on ${keptTab}`);
  await Promise.all([kept.close(), other.close()]);
  await page.keyboard.press('Home');
  v = await listView(page);
  check('Home goes back to All', v.tab === 'all', describeList(v));
}

/** Cashes out the own bet as soon as the round flies: Top then lists it first. */
async function checkTopAfterCashout(page) {
  let v = await waitList(page, 'take-off', (x) => x.slot === 'active' || x.slot === 'lost', 30_000).catch(() => listView(page));
  if (v.slot === 'active') await page.locator('.bet-panel[data-slot="0"] .action').click();
  v = await waitList(page, 'the own bet settled', (x) => x.slot === 'won' || x.slot === 'lost', 10_000).catch(() => listView(page));
  if (v.slot !== 'won') {
    info(`tabs: the round crashed before the cash out (${describeList(v)}); Top after a cash out not checked`);
    return;
  }
  v = await waitList(page, 'the cash out listed', (x) => x.rows[0]?.cashed, 3_000).catch(() => listView(page));
  check('Top lists the cashed out bet first', v.tab === 'top' && v.rows[0]?.mine && v.rows[0]?.cashed && v.rows.length >= 2, describeList(v));
}

// The player takes back a bet before take-off: the panel's button turns into "Cancel
// bet" once the bet is placed, a click sends `cancel`, the stake comes back, the panel
// says so, the live list drops the bet and "My bets" shows it refunded.

import { check, info, waitUntil } from './harness.mjs';

const SLOT = 1;

const view = (page) => page.evaluate((slot) => {
  const panel = document.querySelector(`.bet-panel[data-slot="${slot}"]`);
  const g = window.aloft.game;
  return {
    phase: g.phase,
    bettingLeft: g.phase === 'betting' ? g.endsAt - window.aloft.conn.serverNow() : null,
    balance: g.balance,
    state: panel.dataset.state,
    action: panel.querySelector('.action').innerText.replace(/\s+/g, ' ').trim(),
    status: panel.querySelector('.panel-status').textContent,
    listed: g.me != null && g.bets.has(`${g.me}:${slot}`),
  };
}, SLOT);

const waitFor = (page, description, predicate, timeoutMs) =>
  waitUntil(page, view, description, predicate, timeoutMs, (v) => `phase=${v.phase}, slot ${SLOT} ${v.state}`);

/** Bets 1.00 in the second panel during a betting phase with time left, then cancels
 *  it; `sent` lists the frames the page sent. */
export async function checkCancel(page, sent) {
  let v = await view(page);
  if (!(v.phase === 'betting' && v.bettingLeft > 1500)) {
    info('cancel: waiting for a betting phase with time left');
    if (v.phase === 'betting') await waitFor(page, 'end of betting', (x) => x.phase !== 'betting', 15_000);
    v = await waitFor(page, 'betting phase', (x) => x.phase === 'betting' && x.bettingLeft > 1500, 60_000);
  }
  const before = v.balance;
  const panel = page.locator(`.bet-panel[data-slot="${SLOT}"]`);
  await panel.locator('.amount').fill('1.00');
  await panel.locator('.auto-on').setChecked(false);
  await panel.locator('.action').click();
  v = await waitFor(page, 'bet placed', (x) => x.state === 'placed' && x.listed, 3_000).catch(() => view(page));
  check('placed bet offers "Cancel bet"', v.state === 'placed' && /^cancel bet/i.test(v.action), `slot ${SLOT} ${v.state}: "${v.action}"`);
  await panel.locator('.action').click();
  v = await waitFor(page, 'bet cancelled', (x) => x.state === 'cancelled', 3_000).catch(() => view(page));
  const frame = sent.map((f) => JSON.parse(f)).findLast((f) => f.t === 'cancel');
  check('cancel before take-off refunds the stake', v.state === 'cancelled' && v.balance === before && frame?.slot === SLOT,
    `balance ${before} → ${v.balance}, panel "${v.status}", frame ${JSON.stringify(frame)}`);
  check('cancelled bet leaves the live list', !v.listed, `listed ${v.listed}`);
  await checkMyBets(page);
}

/** "My bets" lists the cancelled bet, newest first, refunded. */
async function checkMyBets(page) {
  const round = await page.evaluate(() => window.aloft.game.round);
  await page.locator('#my-bets summary').click();
  const row = async () => page.evaluate(() => {
    const first = document.querySelector('#my-bets-rows tr');
    return first ? { round: Number(first.dataset.round), state: first.dataset.state, text: first.innerText.replace(/\s+/g, ' ') } : null;
  });
  const until = Date.now() + 5_000;
  let first = await row();
  while ((!first || first.round !== round) && Date.now() < until) {
    await page.waitForTimeout(50);
    first = await row();
  }
  check('"My bets" lists the cancelled bet as refunded', first?.round === round && first?.state === 'refunded', JSON.stringify(first));
  await page.locator('#my-bets summary').click();
}

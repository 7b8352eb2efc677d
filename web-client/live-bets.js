// The live list of this round's bets. The public feed is bounded: ticks list only the
// largest bets and cashouts and carry the round's totals. The list shows those (at most
// BETS_KEPT_MAX of other players) and the player's own bets, which come from its private
// replies, as the tab chosen says (bets-tabs.js): all of them, the player's own, or the
// top wins. Changes mark the list dirty; the animation frame redraws it once.

import { betsTab } from './bets-tabs.js';
import { $ } from './dom.js';
import { formatMoney, formatMult, shortPlayer } from './format.js';
import { BETS_KEPT_MAX, betKey, game } from './state.js';

/** Rows drawn, at most; the rest are summed up in one line. */
const BETS_SHOWN_MAX = 100;

let betsDirty = false;

export function markBetsDirty() {
  betsDirty = true;
}

/** Bounds the remembered bets: the player's own, and the largest of the others. */
export function keepLargestBets() {
  const others = [...game.bets.values()].filter((b) => b.player !== game.me);
  if (others.length <= BETS_KEPT_MAX) return;
  others.sort((a, b) => b.amount - a.amount);
  for (const b of others.slice(BETS_KEPT_MAX)) game.bets.delete(betKey(b));
}

/** Redraws the list if anything changed since the last call. */
export function renderBetsIfDirty() {
  if (betsDirty) renderBets();
}

/** What each tab says when it has no row. */
const EMPTY_TEXT = {
  all: 'No bets yet this round.',
  my: 'You have no bet in this round.',
  top: 'No bets yet this round.',
};

/** The bets the chosen tab lists, in its order. */
function tabRows(all) {
  const tab = betsTab();
  if (tab === 'my') return all.filter((b) => b.player === game.me).sort((a, b) => a.slot - b.slot);
  if (tab === 'top') {
    // Cashed out first, the largest win first; then the rest, the largest stake first.
    return all.sort((a, b) => (b.win != null) - (a.win != null) || (b.win ?? 0) - (a.win ?? 0) || b.amount - a.amount);
  }
  return all.sort((a, b) => (b.player === game.me) - (a.player === game.me) || b.amount - a.amount || a.slot - b.slot);
}

export function renderBets() {
  betsDirty = false;
  const all = [...game.bets.values()];
  // The server's totals count every bet; own bets may be acknowledged a tick before
  // the totals that include them arrive.
  let listedStake = 0;
  for (const b of all) listedStake += b.amount;
  const totals = game.totals ?? { bets: 0, staked: 0, cashouts: 0, won: 0 };
  const count = Math.max(totals.bets, all.length);
  $('bets-count').textContent = count.toLocaleString('en-US');
  $('bets-count').dataset.count = String(count);
  $('bets-noun').textContent = count === 1 ? 'bet' : 'bets';
  $('bets-total').textContent = formatMoney(Math.max(totals.staked, listedStake));
  $('bets-won').textContent = formatMoney(totals.won);
  $('bets-cashouts').textContent = totals.cashouts.toLocaleString('en-US');
  const listed = tabRows(all);
  $('bets-empty').textContent = EMPTY_TEXT[betsTab()];
  $('bets-empty').hidden = listed.length > 0;
  const rows = listed.slice(0, BETS_SHOWN_MAX).map(betRow);
  const unlisted = count - Math.min(all.length, BETS_SHOWN_MAX);
  if (unlisted > 0 && betsTab() !== 'my') {
    const li = document.createElement('li');
    li.className = 'bet-more';
    li.textContent = `+ ${unlisted.toLocaleString('en-US')} more ${unlisted === 1 ? 'bet' : 'bets'} · largest shown`;
    rows.push(li);
  }
  $('bets').replaceChildren(...rows);
}

function betRow(b) {
  const li = document.createElement('li');
  const mine = b.player === game.me;
  li.className = `bet-row${mine ? ' mine' : ''}${b.m != null ? ' cashed' : ''}${b.lost ? ' lost' : ''}`;
  li.dataset.player = b.player;
  li.dataset.slot = String(b.slot);
  // The name may be cut short; the panel tag "(2)" never is.
  const who = document.createElement('span');
  who.className = 'who';
  who.title = b.player;
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = mine ? 'You' : b.name || shortPlayer(b.player);
  who.append(name);
  if (b.slot) {
    const tag = document.createElement('span');
    tag.className = 'slot-tag';
    tag.textContent = '(2)';
    who.append(tag);
  }
  const amount = document.createElement('span');
  amount.textContent = formatMoney(b.amount);
  const m = document.createElement('span');
  m.className = 'm';
  if (b.m != null) m.textContent = formatMult(b.m);
  else if (b.auto) {
    const tag = document.createElement('small');
    tag.textContent = 'auto';
    m.append(tag, formatMult(b.auto));
    m.title = 'Auto cash out target';
  }
  const win = document.createElement('span');
  win.className = 'win';
  win.textContent = b.win != null ? formatMoney(b.win) : b.lost ? '—' : '';
  li.append(who, amount, m, win);
  return li;
}

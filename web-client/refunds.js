// Rounds cancelled (aborted: the server stopped before their crash, every open stake
// refunded) and the player's bets in them. A `balance` frame with `refund` names the
// bet while the page is connected; a snapshot's history lists crashed rounds only, so
// after every snapshot the page asks `GET /api/rounds` (which lists aborted rounds, `m`
// 0), marks them in the history chips, and announces a bet it held in one while away:
// "Round 1234 was cancelled: your $5.00 bet was refunded".

import { toast } from './dom.js';
import { formatMoney } from './format.js';
import { renderHistory } from './history.js';
import { renderPanels } from './panels.js';
import { fetchPastRounds } from './past-rounds.js';
import { HISTORY_MAX, game, slots } from './state.js';

/** Slot states of a bet whose outcome the page has not seen yet. */
export const OPEN_STATES = ['placed', 'active', 'cashing'];

/** Says the bet of slot `s` in `round` was refunded, on its panel and in a toast. */
export function announceRefund(s, round, amount) {
  Object.assign(s, { state: 'refunded', round, amount, win: null, m: null });
  toast(`Round ${round} was cancelled: your ${formatMoney(amount)} bet was refunded.`, 'notice');
  addCancelledRound(round);
  renderPanels();
}

function addCancelledRound(round) {
  if (game.history.some((h) => h.round === round)) return;
  mergeHistory([{ round, m: 0, hash: '' }]);
}

/** The player's open bets of rounds other than `round` (a snapshot's): their outcome
 *  happened while the page was away. */
export function betsLeftIn(round) {
  return slots.filter((s) => OPEN_STATES.includes(s.state) && s.round != null && s.round !== round)
    .map((s) => ({ slot: s.slot, round: s.round, amount: s.amount }));
}

/**
 * After a snapshot: the room's last rounds with their status, the cancelled ones put
 * in the history chips, and each of `away` (bets the page held when it lost the
 * connection) that was in a cancelled round announced refunded.
 */
export async function reconcileRounds(away) {
  let rounds;
  try {
    rounds = await fetchPastRounds(HISTORY_MAX);
  } catch (error) {
    console.warn('[aloft] rounds not loaded', error);
    return;
  }
  const cancelled = rounds.filter((r) => r.status === 'aborted');
  mergeHistory(cancelled.map((r) => ({ round: r.round, m: 0, hash: r.hash })));
  for (const bet of away) {
    const s = slots[bet.slot];
    const busy = s.state !== 'idle' || (s.round != null && s.round !== bet.round);
    if (!busy && cancelled.some((r) => r.round === bet.round)) announceRefund(s, bet.round, bet.amount);
  }
}

/** Adds past rounds to the history chips (newest first, at most HISTORY_MAX). */
function mergeHistory(past) {
  const known = new Set(game.history.map((h) => h.round));
  const added = past.filter((h) => !known.has(h.round));
  if (added.length === 0) return;
  game.history = [...game.history, ...added].sort((a, b) => b.round - a.round).slice(0, HISTORY_MAX);
  renderHistory();
}

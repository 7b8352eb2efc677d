// A past round in a dialog, opened from its history chip: the crash point (or that it
// was cancelled), the revealed hash, the stakes and payouts, when it ended, and a link
// that opens the verify page on it. The facts come from GET /api/rounds; what the chip
// already knows shows at once. A modal <dialog>: Escape and Close shut it, and the
// focus goes back to the round's chip.

import { $ } from './dom.js';
import { formatMoney, formatMult } from './format.js';
import { fetchPastRounds } from './past-rounds.js';
import { game } from './state.js';

/** Rounds asked for to find the one opened: the chips show at most 40 of them. */
const ROUNDS_LOOKED_UP_MAX = 100;

/** The round the dialog shows (a newer opening wins over a slower answer). */
let shownRound = null;

export function wireRoundDialog() {
  const dialog = $('round-dialog');
  $('round-dialog-close').addEventListener('click', () => dialog.close());
  // A click on the backdrop lands on the dialog element itself.
  dialog.addEventListener('click', (e) => { if (e.target === dialog) dialog.close(); });
  dialog.addEventListener('close', () => {
    const chip = document.querySelector(`#history .chip[data-round="${shownRound}"]`);
    chip?.focus();
  });
}

/** Opens the dialog on history entry `h` ({round, m, hash}). */
export async function openRoundDialog(h) {
  shownRound = h.round;
  $('round-dialog-title').textContent = `Round #${h.round}`;
  showFacts({ round: h.round, m: h.m, hash: h.hash, status: h.m >= 100 ? 'crashed' : 'aborted' });
  $('round-dialog-status').textContent = 'Loading the round…';
  const dialog = $('round-dialog');
  if (!dialog.open) dialog.showModal();
  let listed = null;
  try {
    listed = (await fetchPastRounds(ROUNDS_LOOKED_UP_MAX)).find((r) => r.round === h.round) ?? null;
  } catch (error) {
    console.warn('[aloft] round not loaded', error);
  }
  if (shownRound !== h.round) return;
  if (listed) showFacts(listed);
  $('round-dialog-status').textContent = listed ? '' : 'More about this round could not be loaded.';
}

/** Fills the facts and the verify link from a round ({round, m, hash, status, …}). */
function showFacts(r) {
  const aborted = r.status === 'aborted';
  const facts = [['Crash point', aborted ? 'Cancelled: no crash, every bet refunded' : formatMult(r.m)]];
  if (r.bets_total != null) facts.push(['Staked', formatMoney(r.bets_total)], ['Paid out', formatMoney(r.payouts_total)]);
  if (r.ended_at) facts.push(['Ended', new Date(r.ended_at).toLocaleTimeString()]);
  if (r.hash) facts.push(['Round hash', r.hash]);
  $('round-facts').replaceChildren(...facts.map(([term, value]) => {
    const row = document.createElement('div');
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    dd.textContent = value;
    if (term === 'Round hash') dd.className = 'mono';
    if (term === 'Crash point') dd.dataset.m = String(aborted ? 0 : r.m);
    row.append(dt, dd);
    return row;
  }));
  const query = new URLSearchParams({ round: String(r.round) });
  if (r.hash) query.set('hash', r.hash);
  if (game.room) query.set('room', game.room);
  $('round-verify').href = `/verify.html?${query}`;
}

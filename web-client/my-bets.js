// "My bets": the player's own latest bets, from GET /api/me/bets (the token in a
// header, never in the URL), loaded when the list is opened and again after each round,
// cancel and cash out while it is open.

import { $ } from './dom.js';
import { formatMoney, formatMult } from './format.js';
import { TOKEN_KEY } from './net.js';
import { game } from './state.js';

let loading = false;

export function wireMyBets() {
  const box = $('my-bets');
  box.addEventListener('toggle', () => { if (box.open) refreshMyBets(); });
}

/** Reloads the list if it is open. */
export async function refreshMyBets() {
  const box = $('my-bets');
  if (!box.open || loading || !localStorage.getItem(TOKEN_KEY)) return;
  loading = true;
  const status = $('my-bets-status');
  try {
    renderMyBets(await fetchMyBets());
    status.textContent = '';
  } catch (error) {
    console.warn('[aloft] my bets not loaded', error);
    status.textContent = 'Your bets could not be loaded. Try again in a moment.';
  } finally {
    loading = false;
  }
}

/** The player's latest bets, newest first (GET /api/me/bets); throws when not loaded. */
export async function fetchMyBets() {
  const token = localStorage.getItem(TOKEN_KEY);
  if (!token) throw new Error('no token yet');
  const response = await fetch('/api/me/bets', { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return (await response.json()).bets;
}

/** What a bet came to: its cash out, its profit, and a word for its row. */
function outcomeOf(bet) {
  const o = bet.outcome;
  if (o.kind === 'paid_out') return { cashout: formatMult(o.multiplier_hundredths), profit: o.payout_minor - bet.stake_minor, state: 'won' };
  if (o.kind === 'refunded') return { cashout: 'refunded', profit: 0, state: 'refunded' };
  const playing = bet.room === game.room && bet.round === game.round && game.phase !== 'crashed';
  return playing ? { cashout: 'in play', profit: null, state: 'playing' } : { cashout: '—', profit: -bet.stake_minor, state: 'lost' };
}

function renderMyBets(bets) {
  const rows = bets.map((bet) => {
    const { cashout, profit, state } = outcomeOf(bet);
    const tr = document.createElement('tr');
    tr.dataset.state = state;
    tr.dataset.round = String(bet.round);
    const cells = [`#${bet.round}`, formatMoney(bet.stake_minor), cashout, profit == null ? '' : formatMoney(profit)];
    for (const text of cells) {
      const td = document.createElement('td');
      td.textContent = text;
      tr.append(td);
    }
    return tr;
  });
  $('my-bets-rows').replaceChildren(...rows);
  $('my-bets-empty').hidden = rows.length > 0;
}

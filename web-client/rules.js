// The rules dialog, opened from the header's "Rules" button: how a round works, the
// player's two bets, the room's stake limits and max-profit cap (with their figures once
// a `limits` event told the page), the house edge (GET /api/fair), fairness and chat. A
// modal <dialog>: Escape and Close shut it, and the focus goes back to the button.

import { $ } from './dom.js';
import { formatBasisPoints, formatMoney } from './format.js';
import { game } from './state.js';

export function wireRules() {
  const dialog = $('rules-dialog');
  $('rules-open').addEventListener('click', openRules);
  $('rules-dialog-close').addEventListener('click', () => dialog.close());
  // A click on the backdrop lands on the dialog element itself.
  dialog.addEventListener('click', (e) => { if (e.target === dialog) dialog.close(); });
  dialog.addEventListener('close', () => $('rules-open').focus());
}

async function openRules() {
  showLimits();
  const query = new URLSearchParams(game.room ? { room: game.room } : {});
  $('rules-verify').href = `/verify.html${game.room ? `?${query}` : ''}`;
  const dialog = $('rules-dialog');
  if (!dialog.open) dialog.showModal();
  const edge = await fetchHouseEdge(query);
  if (edge != null) $('rules-edge').textContent = `The house edge is ${formatBasisPoints(edge)}: on average the house keeps that share of what is staked.`;
}

/** The room's figures where the page knows them; otherwise the sentences say they apply. */
function showLimits() {
  const { min, max, cap } = game.limits;
  if (min != null && max != null) $('rules-stakes').textContent = `Each bet is from ${formatMoney(min)} to ${formatMoney(max)}.`;
  if (cap != null) {
    $('rules-cap').textContent = `If the players' total profit in a round would pass ${formatMoney(cap)}, everyone still in is cashed out at that moment.`;
  }
}

/** The room's house edge in basis points, or null when it could not be loaded. */
async function fetchHouseEdge(query) {
  try {
    const response = await fetch(`/api/fair?${query}`);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const fair = await response.json();
    return Number.isInteger(fair.house_edge_bp) ? fair.house_edge_bp : null;
  } catch (error) {
    console.warn('[aloft] house edge not loaded', error);
    return null;
  }
}

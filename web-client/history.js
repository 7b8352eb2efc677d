// The history chips: the last crash points, each a link to its verification; a round
// cancelled before its crash (m 0, bets refunded) is marked as such.

import { $ } from './dom.js';
import { formatMult, multClass } from './format.js';
import { game } from './state.js';

export function renderHistory(animateFirst = false) {
  $('history').replaceChildren(...game.history.map((h, i) => {
    const a = document.createElement('a');
    const cancelled = !(h.m >= 100);
    a.className = `chip ${cancelled ? 'aborted' : multClass(h.m)}${animateFirst && i === 0 ? ' new' : ''}`;
    a.textContent = cancelled ? 'void' : formatMult(h.m);
    a.dataset.round = String(h.round);
    a.dataset.m = String(h.m);
    a.dataset.status = cancelled ? 'aborted' : 'crashed';
    a.href = `/verify.html?round=${h.round}${h.hash ? `&hash=${h.hash}` : ''}`;
    const label = cancelled ? `Round ${h.round}: void, cancelled and bets refunded` : `Round ${h.round}: crashed at ${formatMult(h.m)}, verify`;
    a.title = label;
    a.setAttribute('aria-label', label);
    return a;
  }));
}

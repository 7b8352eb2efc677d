// The history chips: the last crash points, each a link to its verification.

import { $ } from './dom.js';
import { formatMult, multClass } from './format.js';
import { game } from './state.js';

export function renderHistory(animateFirst = false) {
  $('history').replaceChildren(...game.history.map((h, i) => {
    const a = document.createElement('a');
    const aborted = !(h.m >= 100);
    a.className = `chip ${aborted ? 'aborted' : multClass(h.m)}${animateFirst && i === 0 ? ' new' : ''}`;
    a.textContent = aborted ? 'void' : formatMult(h.m);
    a.dataset.round = String(h.round);
    a.dataset.m = String(h.m);
    a.href = `/verify.html?round=${h.round}${h.hash ? `&hash=${h.hash}` : ''}`;
    a.title = aborted ? `Round ${h.round} was aborted — bets refunded` : `Round ${h.round} — verify`;
    return a;
  }));
}

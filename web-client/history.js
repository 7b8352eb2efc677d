// The history chips: the last crash points, each a button that opens its round
// (round-dialog.js); a round cancelled before its crash (m 0, bets refunded) is marked
// as such.

import { $ } from './dom.js';
import { formatMult, multClass } from './format.js';
import { openRoundDialog } from './round-dialog.js';
import { game } from './state.js';

export function renderHistory(animateFirst = false) {
  $('history').replaceChildren(...game.history.map((h, i) => {
    const chip = document.createElement('button');
    chip.type = 'button';
    const cancelled = !(h.m >= 100);
    chip.className = `chip ${cancelled ? 'aborted' : multClass(h.m)}${animateFirst && i === 0 ? ' new' : ''}`;
    chip.textContent = cancelled ? 'void' : formatMult(h.m);
    chip.dataset.round = String(h.round);
    chip.dataset.m = String(h.m);
    chip.dataset.status = cancelled ? 'aborted' : 'crashed';
    const label = cancelled ? `Round ${h.round}: void, cancelled and bets refunded` : `Round ${h.round}: crashed at ${formatMult(h.m)}`;
    chip.title = `${label}. Open the round`;
    chip.setAttribute('aria-label', `${label}. Open the round`);
    chip.setAttribute('aria-haspopup', 'dialog');
    chip.addEventListener('click', () => openRoundDialog(h));
    return chip;
  }));
}

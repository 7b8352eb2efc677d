// The history chips: the last crash points, each a button that opens its round
// (round-dialog.js); a round cancelled before its crash (m 0, bets refunded) is marked
// as such. The strip is one stop of the Tab order (a toolbar with a roving tabindex:
// the arrow keys, Home and End move between chips), and a chip that had the focus keeps
// it when a crash redraws the strip.

import { $ } from './dom.js';
import { formatMult, multClass } from './format.js';
import { openRoundDialog } from './round-dialog.js';
import { game } from './state.js';

/** The round whose chip is the strip's Tab stop (null: the newest). */
let tabStopRound = null;

export function renderHistory(animateFirst = false) {
  const strip = $('history');
  const hadFocus = strip.contains(document.activeElement);
  // The newest chip, unless the player is on the strip (or the dialog of a chip).
  const kept = (hadFocus || $('round-dialog').open) && game.history.some((h) => h.round === tabStopRound);
  if (!kept) tabStopRound = game.history[0]?.round ?? null;
  strip.replaceChildren(...game.history.map((h, i) => chip(h, animateFirst && i === 0)));
  if (hadFocus) strip.querySelector('[tabindex="0"]')?.focus({ preventScroll: true });
}

function chip(h, isNew) {
  const el = document.createElement('button');
  el.type = 'button';
  const cancelled = !(h.m >= 100);
  el.className = `chip ${cancelled ? 'aborted' : multClass(h.m)}${isNew ? ' new' : ''}`;
  el.textContent = cancelled ? 'void' : formatMult(h.m);
  el.dataset.round = String(h.round);
  el.dataset.m = String(h.m);
  el.dataset.status = cancelled ? 'aborted' : 'crashed';
  el.tabIndex = h.round === tabStopRound ? 0 : -1;
  const label = cancelled ? `Round ${h.round}: void, cancelled and bets refunded` : `Round ${h.round}: crashed at ${formatMult(h.m)}`;
  el.title = `${label}. Open the round`;
  el.setAttribute('aria-label', `${label}. Open the round`);
  el.setAttribute('aria-haspopup', 'dialog');
  el.addEventListener('click', () => openRoundDialog(h));
  el.addEventListener('focus', () => moveTabStop(el));
  return el;
}

/** Makes `el` the strip's one Tab stop. */
function moveTabStop(el) {
  tabStopRound = Number(el.dataset.round);
  for (const other of $('history').children) other.tabIndex = other === el ? 0 : -1;
}

/** Arrow keys, Home and End move the focus along the strip. */
export function wireHistoryKeys() {
  $('history').addEventListener('keydown', (e) => {
    const chips = [...$('history').children];
    const at = chips.indexOf(document.activeElement);
    if (at < 0) return;
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: chips.length - 1 }[e.key];
    if (to == null) return;
    e.preventDefault();
    chips[Math.max(0, Math.min(chips.length - 1, to))].focus();
  });
}

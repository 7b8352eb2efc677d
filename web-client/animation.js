// The animation loop (chart glue): once per display frame, draws the flight chart, the
// multiplier or countdown and the phase label, the live wins of the cash-out buttons,
// and the live list when it changed.

import { $ } from './dom.js';
import { displayElapsed } from './flight.js';
import { curveAt, formatMult, msForMult } from './format.js';
import { renderBetsIfDirty } from './live-bets.js';
import { renderLiveWins } from './panels.js';
import { conn, game } from './state.js';

let lastMultText = '';
let lastPhaseText = '';

/** Starts drawing on `chart` (a FlightChart) every animation frame. */
export function startAnimation(chart) {
  const frame = (now) => {
    drawFrame(chart, now);
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}

function drawFrame(chart, now) {
  let m = 100;
  let elapsed = 0;
  if (game.phase === 'flying') {
    elapsed = displayElapsed();
    m = curveAt(elapsed);
  } else if (game.phase === 'crashed') {
    m = game.crashM ?? 100;
    elapsed = msForMult(m);
  }
  chart.draw({ phase: game.phase, elapsed, m, now, sinceCrash: now - game.crashPerf });
  drawLabels(m);
  if (game.phase === 'flying') renderLiveWins(m);
  renderBetsIfDirty();
}

/** The multiplier (or betting countdown) and the phase label over the chart. */
function drawLabels(m) {
  let phaseText = '';
  let multText = formatMult(m);
  if (game.phase === 'betting') {
    const left = Math.max(0, game.endsAt - conn.serverNow());
    phaseText = 'Place your bets';
    multText = `${(left / 1000).toFixed(1)}s`;
    $('countdown').hidden = false;
    $('countdown-text').textContent = left > 0 ? 'Take-off in' : 'Taking off…';
    $('countdown-bar').style.transform = `scaleX(${Math.min(1, left / game.bettingTotal)})`;
  } else {
    $('countdown').hidden = true;
    if (game.phase === 'crashed') phaseText = 'Flew away!';
    else if (game.phase !== 'flying') phaseText = conn.open ? 'Waiting for the next round…' : 'Waiting for the server…';
    if (game.phase === 'idle') multText = '—';
  }
  if (!conn.open && game.phase !== 'idle') phaseText = 'Connection lost — reconnecting…';
  if (multText !== lastMultText) {
    const multEl = $('multiplier');
    multEl.textContent = multText;
    multEl.dataset.m = String(m);
    lastMultText = multText;
  }
  if (phaseText !== lastPhaseText) {
    $('phase-label').textContent = phaseText;
    lastPhaseText = phaseText;
  }
}

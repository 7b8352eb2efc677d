// The page's header and stage labels: connection status, balance, phase and round,
// round trip.

import { $ } from './dom.js';
import { formatMoney } from './format.js';
import { renderPanels } from './panels.js';
import { conn, game } from './state.js';

const STATUS_LABELS = { connecting: 'Connecting…', online: 'Online', reconnecting: 'Reconnecting', offline: 'Offline' };

/** The connection's state changed (`Connection` handler). */
export function onStatus(state, detail) {
  $('conn').dataset.state = state;
  document.body.dataset.conn = state;
  const label = STATUS_LABELS[state];
  $('conn-label').textContent = detail && state !== 'online' ? `${label} · ${detail}` : label;
  if (state !== 'online') renderPanels();
}

export function setBalance(cents) {
  if (typeof cents !== 'number') return;
  const el = $('balance');
  const prev = game.balance;
  game.balance = cents;
  el.textContent = formatMoney(cents);
  el.dataset.cents = String(cents);
  if (prev != null && prev !== cents) {
    el.classList.remove('up', 'down');
    void el.offsetWidth; // restart the flash animation
    el.classList.add(cents > prev ? 'up' : 'down');
  }
}

/** Publishes the phase and round to the DOM (styles and tests read the attributes). */
export function setPhaseAttr() {
  document.body.dataset.phase = game.phase;
  $('stage').dataset.phase = game.phase;
  $('stage').dataset.round = game.round ?? '';
  $('round-tag').textContent = game.round != null ? `Round #${game.round}` : 'Round —';
}

export function renderLag() {
  if (conn.rtt != null) $('lag-tag').textContent = `${conn.rtt} ms`;
}

// The page's header and stage labels: connection status and the "Reconnecting…"
// banner, balance, phase and round, round trip.

import { $ } from './dom.js';
import { formatMoney } from './format.js';
import { renderPanels } from './panels.js';
import { conn, game } from './state.js';

const STATUS_LABELS = { connecting: 'Connecting…', online: 'Online', reconnecting: 'Reconnecting', offline: 'Offline' };

/** Counts down to the next connection attempt on the banner. */
let retryTimer = null;

/** The connection's state changed (`Connection` handler): `why` it was lost, `retryAt`
 *  the next attempt. While it is lost the banner says so and the panels are off. */
export function onStatus(state, why, retryAt) {
  $('conn').dataset.state = state;
  document.body.dataset.conn = state;
  $('conn-label').textContent = STATUS_LABELS[state];
  const lost = state === 'reconnecting' || state === 'offline';
  $('conn-banner').hidden = !lost;
  clearInterval(retryTimer);
  if (lost) {
    const head = state === 'offline' ? 'You are offline. Reconnecting…' : 'Reconnecting…';
    $('conn-banner-text').textContent = why ? `${head} (${why})` : head;
    const showRetry = () => {
      const left = retryAt == null ? 0 : Math.ceil(Math.max(0, retryAt - Date.now()) / 1000);
      $('conn-banner-retry').textContent = left > 0 ? `Next try in ${left} s` : 'Trying now';
    };
    showRetry();
    retryTimer = setInterval(showRetry, 250);
  }
  renderPanels();
}

export function setBalance(cents) {
  if (typeof cents !== 'number') return;
  const el = $('balance');
  const prev = game.balance;
  game.balance = cents;
  el.textContent = formatMoney(cents);
  el.dataset.cents = String(cents);
  renderPanels(); // the stake check reads the balance
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

// The operator console's entry: the login form or the live console, the operator socket,
// and where each frame goes (rooms.js for rooms, panels.js for house and warnings,
// cluster.js for the cluster and traffic).
// Test hook: window.aloftConsole (frames seen, by type).

import { setGrowth } from '../format.js';
import { refreshAudit, wirePlayerLookup } from './admin.js';
import { renderCluster, renderTraffic } from './cluster.js';
import { addWarning, renderHouse, renderWarnings } from './panels.js';
import { RoomCards, setServerTime } from './rooms.js';
import { checkSession, login, logout } from './session.js';
import { OperatorSocket } from './socket.js';

const $ = (id) => document.getElementById(id);
const seen = {};
window.aloftConsole = { seen };

const CONNECTION_LABELS = {
  offline: 'Not connected',
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
};

let rooms = null;

function show(view, message = '') {
  document.body.dataset.view = view;
  $('login').hidden = view !== 'login' && view !== 'disabled';
  $('console').hidden = view !== 'console';
  $('logout').hidden = view !== 'console';
  $('login-form').hidden = view === 'disabled';
  $('login-error').textContent = message;
  if (view === 'login') $($('operator').value ? 'token' : 'operator').focus();
}

function onFrame(frame) {
  seen[frame.t] = (seen[frame.t] || 0) + 1;
  switch (frame.t) {
    case 'snapshot':
      setServerTime(frame.server_time_ms);
      setGrowth(frame.growth_per_ms_millionths);
      rooms.snapshot(frame.rooms);
      renderHouse(frame.house);
      renderTraffic(frame.traffic);
      renderCluster(frame.cluster);
      renderWarnings(frame.warnings);
      break;
    case 'house':
      renderHouse(frame.house);
      break;
    case 'traffic':
      renderTraffic(frame);
      break;
    case 'cluster':
      renderCluster(frame);
      break;
    case 'warning':
      addWarning(frame);
      break;
    case 'paused':
      rooms.frame(frame);
      refreshAudit();
      break;
    default:
      rooms.frame(frame);
  }
}

function onState(state, detail) {
  $('conn').dataset.state = state;
  $('conn-label').textContent = CONNECTION_LABELS[state] ?? state;
  if (state === 'reconnecting' && detail) {
    const seconds = (detail.delay / 1000).toFixed(1);
    addWarning({ at_ms: Date.now(), room: null, message: `operator socket lost (code ${detail.code}); reconnecting in ${seconds} s` });
  }
}

const socket = new OperatorSocket({
  onFrame,
  onState,
  onLoggedOut: (message) => show('login', message || 'Your session ended: log in again.'),
});

function startConsole() {
  show('console');
  if (!rooms) {
    rooms = new RoomCards($('rooms'), refreshAudit);
    wirePlayerLookup(refreshAudit);
  }
  socket.start();
  refreshAudit();
}

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const button = $('login-submit');
  button.disabled = true;
  const operator = $('operator').value.trim();
  const error = await login($('token').value, operator).catch(() => 'The server could not be reached.');
  button.disabled = false;
  $('token').value = '';
  if (error) {
    show('login', error);
    return;
  }
  startConsole();
});

$('logout').addEventListener('click', async () => {
  socket.stop();
  await logout().catch(() => {});
  show('login');
});

const session = await checkSession().catch(() => ({ state: 'none', message: 'The server could not be reached.' }));
if (session.state === 'valid') startConsole();
else if (session.state === 'disabled') show('disabled', session.message);
else show('login');

// The console's admin controls, through the admin API (/api/admin/..., the session
// cookie): a room's Pause / Resume and its next-round limits, a player's lookup with
// Kick / Ban / Unban / Mute / Unmute, and the audit trail (newest first, fetched again after each action).
// Errors are told in plain words next to the control that failed.

import { formatCents, formatMult } from '../format.js';

/** Audit entries listed, at most. */
const AUDIT_SHOWN_MAX = 30;
/** Bets listed in a player's lookup, at most (the server sends the last 50). */
const PLAYER_BETS_SHOWN_MAX = 20;

const $ = (id) => document.getElementById(id);

/** Plain words for the admin API's error codes. */
const ERROR_TEXT = {
  operator_auth_required: 'Your session ended: log in again.',
  operator_session_expired: 'Your session expired: log in again.',
  operator_session_invalid: 'Your session is no longer valid: log in again.',
  unknown_room: 'No such room.',
  unknown_player: 'No player with this id has money or bets here.',
  bad_player: 'A player id is 1–64 letters, digits, "_", "-" or ".".',
  already_paused: 'The room is paused already.',
  not_paused: 'The room is not paused.',
  invalid_limits: 'These limits cannot work: the smallest stake must be at least 1 and at most the largest, and the cap at least the largest stake.',
  no_answer: 'No engine answered for this room in time: it may have no leader right now. Check the room before trying again.',
  bus_unavailable: 'The message bus is unavailable: nothing changed. Try again shortly.',
  ledger_unavailable: 'The database is unavailable: nothing changed. Try again shortly.',
  bans_full: 'Too many players are banned: lift some bans first.',
  mutes_full: 'Too many players are muted: lift some mutes first.',
  origin: 'This page is not allowed to make changes (origin refused).',
};

/** Calls the admin API; resolves to the JSON answer or throws an Error with plain words. */
async function call(method, path, body) {
  const init = { method, credentials: 'same-origin', cache: 'no-store', headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new Error('The server could not be reached.');
  }
  const answer = await response.json().catch(() => ({}));
  if (response.ok) return answer;
  throw new Error(ERROR_TEXT[answer.code] || answer.message || `The request failed (HTTP ${response.status}).`);
}

function say(element, text, ok = false) {
  element.textContent = text;
  element.dataset.ok = ok ? 'true' : 'false';
}

/** The room card's controls: Pause, Resume and the limits form. */
export function wireRoomControls(card, room, onDone) {
  const status = card.querySelector('.control-status');
  const act = async (button, method, path, body, done) => {
    button.disabled = true;
    try {
      const outcome = await call(method, path, body);
      say(status, done(outcome), true);
      card.dataset.paused = String(outcome.after.paused);
    } catch (error) {
      say(status, error.message);
    } finally {
      button.disabled = false;
      onDone();
    }
  };
  const base = `/api/admin/rooms/${encodeURIComponent(room)}`;
  const pause = card.querySelector('.pause');
  const resume = card.querySelector('.resume');
  pause.addEventListener('click', () =>
    act(pause, 'POST', `${base}/pause`, undefined, (o) => `Paused: round ${o.from_round - 1} is the last until resumed.`));
  resume.addEventListener('click', () =>
    act(resume, 'POST', `${base}/resume`, undefined, () => 'Resumed: betting opens.'));
  const form = card.querySelector('.limits');
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = (name) => form.elements[name].value.trim();
    const names = ['bet_amount_min_minor', 'bet_amount_max_minor', 'round_profit_max_minor'];
    if (!names.every((name) => /^\d{1,15}$/.test(value(name)))) {
      say(status, 'Each limit is a whole number of minor units (cents).');
      return;
    }
    const limits = Object.fromEntries(names.map((name) => [name, Number(value(name))]));
    act(form.querySelector('button'), 'PUT', `${base}/limits`, limits,
      (o) => `New limits from round ${o.from_round}: stake ${formatCents(o.after.limits.bet_amount_min_minor)}–${formatCents(o.after.limits.bet_amount_max_minor)}, cap ${formatCents(o.after.limits.round_profit_max_minor)}.`);
  });
}

function betRow(bet) {
  const tr = document.createElement('tr');
  const outcome = bet.outcome.kind === 'paid_out'
    ? `won ${formatCents(bet.outcome.payout_minor)} at ${formatMult(bet.outcome.multiplier_hundredths)}`
    : bet.outcome.kind === 'refunded' ? `refunded ${formatCents(bet.outcome.refund_minor)}` : 'lost or in play';
  for (const text of [`${bet.room} #${bet.round}`, formatCents(bet.stake_minor), outcome]) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}

function showPlayer(record) {
  $('player-result').hidden = false;
  $('player-name').textContent = record.player;
  $('player-balance').textContent = formatCents(record.balance_minor);
  $('player-state').textContent = record.banned ? 'banned' : 'allowed';
  $('player-result').dataset.banned = String(record.banned);
  $('player-chat').textContent = record.muted ? 'muted' : 'allowed';
  $('player-result').dataset.muted = String(record.muted);
  $('player-bets').tBodies[0].replaceChildren(...record.bets.slice(0, PLAYER_BETS_SHOWN_MAX).map(betRow));
}

/** The player lookup and its Kick / Ban / Unban / Mute / Unmute buttons. */
export function wirePlayerLookup(onDone) {
  const status = $('player-status');
  let current = null;
  const lookUp = async (player) => {
    const record = await call('GET', `/api/admin/players/${encodeURIComponent(player)}`);
    current = record.player;
    showPlayer(record);
  };
  $('player-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const player = $('player-id').value.trim();
    if (!player) return;
    try {
      await lookUp(player);
      say(status, '', true);
    } catch (error) {
      $('player-result').hidden = true;
      say(status, error.message);
    }
  });
  const actions = [
    ['player-kick', 'POST', 'kick', (o) => `Kicked: ${o.gateways} gateway(s) closed the player's sockets.`],
    ['player-ban', 'POST', 'ban', () => 'Banned: sockets closed, token refused from now on.'],
    ['player-unban', 'DELETE', 'ban', () => 'Unbanned: the player may connect again.'],
    ['player-mute', 'POST', 'mute', () => 'Muted: the player keeps playing, its chat is refused from now on.'],
    ['player-unmute', 'DELETE', 'mute', () => 'Unmuted: the player may chat again.'],
  ];
  for (const [id, method, action, done] of actions) {
    $(id).addEventListener('click', async () => {
      if (!current) return;
      $(id).disabled = true;
      try {
        const outcome = await call(method, `/api/admin/players/${encodeURIComponent(current)}/${action}`);
        say(status, done(outcome), true);
        await lookUp(current).catch(() => {});
      } catch (error) {
        say(status, error.message);
      } finally {
        $(id).disabled = false;
        onDone();
      }
    });
  }
}

function describe(entry) {
  const after = entry.after || {};
  switch (entry.action) {
    case 'pause_room': return `paused ${entry.target}`;
    case 'resume_room': return `resumed ${entry.target}`;
    case 'set_room_limits': {
      const l = after.limits || {};
      return `set ${entry.target} limits: stake ${formatCents(l.bet_amount_min_minor)}–${formatCents(l.bet_amount_max_minor)}, cap ${formatCents(l.round_profit_max_minor)}`;
    }
    case 'kick_player': return `kicked ${entry.target}`;
    case 'ban_player': return `banned ${entry.target}`;
    case 'unban_player': return `unbanned ${entry.target}`;
    case 'mute_player': return `muted ${entry.target}`;
    case 'unmute_player': return `unmuted ${entry.target}`;
    default: return `${entry.action} ${entry.target}`;
  }
}

/** Fetches the audit trail and lists it, newest first. */
export async function refreshAudit() {
  const list = $('audit');
  try {
    const entries = await call('GET', `/api/admin/audit?limit=${AUDIT_SHOWN_MAX}`);
    list.replaceChildren(...entries.map((entry) => {
      const li = document.createElement('li');
      li.dataset.action = entry.action;
      const time = document.createElement('time');
      time.dateTime = new Date(entry.at_ms).toISOString();
      time.textContent = new Date(entry.at_ms).toLocaleTimeString();
      const who = document.createElement('strong');
      who.textContent = entry.operator;
      li.append(time, ' ', who, ` ${describe(entry)}`);
      return li;
    }));
    $('audit-status').textContent = '';
  } catch (error) {
    $('audit-status').textContent = error.message;
  }
}

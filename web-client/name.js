// The player's display name: shown in the header (the default `guest-…` until the
// player picks one), changed with the header's "Name" form through the `name` message,
// and learnt at start from GET /api/me/bets (its `name`). Others see it in the live
// bets and the chat.

import { $, toast } from './dom.js';
import { refusalSentence } from './messages.js';
import { newRequestId } from './format.js';
import { TOKEN_KEY } from './net.js';
import { conn, game } from './state.js';

/** The `name` request awaiting its answer, if any. */
let asked = null;

export function wireName() {
  const form = $('name-form');
  $('name-edit').addEventListener('click', () => openForm(form.hidden));
  $('name-cancel').addEventListener('click', () => openForm(false));
  form.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') openForm(false);
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('name-input').value.trim();
    const length = [...name].length;
    if (length < 3 || length > 16) {
      $('name-status').textContent = refusalSentence({ code: 'invalid_name' });
      return;
    }
    asked = { t: 'name', req: newRequestId(), name };
    if (!conn.send(asked)) {
      asked = null;
      $('name-status').textContent = 'Not connected: try again when the connection is back.';
    }
  });
}

/** Learns the player's name once per page (the hello of each connection calls it). */
export async function loadMyName() {
  const token = localStorage.getItem(TOKEN_KEY);
  if (game.myName != null || !token) return;
  try {
    const response = await fetch('/api/me/bets', { headers: { authorization: `Bearer ${token}` }, cache: 'no-store' });
    if (response.ok) showName((await response.json()).name);
  } catch (error) {
    console.warn('[aloft] display name not loaded', error);
  }
}

export function onNameOk(msg) {
  if (asked?.req !== msg.req) return;
  asked = null;
  showName(msg.name);
  openForm(false);
  toast(`Others now see you as ${msg.name}.`, 'info');
}

export function onNameErr(msg) {
  if (asked?.req !== msg.req) return;
  asked = null;
  $('name-status').textContent = refusalSentence(msg, 'name');
}

function showName(name) {
  if (typeof name !== 'string') return;
  game.myName = name;
  $('player').textContent = name;
  $('player').title = `Your name for other players (id ${game.me ?? ''})`;
}

function openForm(open) {
  const form = $('name-form');
  form.hidden = !open;
  $('name-edit').setAttribute('aria-expanded', String(open));
  $('name-status').textContent = '';
  if (open) {
    $('name-input').value = game.myName?.startsWith('guest-') ? '' : game.myName ?? '';
    $('name-input').focus();
  } else {
    $('name-edit').focus();
  }
}

// Room chat: the room's messages (the snapshot's last 50, then each `chat` event) and
// the box to post one. Text is always shown as text (textContent), never as markup.
// The server checks everything again; the page checks length first so a player sees
// why before sending. Refusals (`chat_rate_limited`, `muted`) show under the box.

import { $ } from './dom.js';
import { refusalSentence } from './messages.js';
import { conn, game } from './state.js';

/** Most characters of a message (docs/protocol.md). */
export const CHAT_TEXT_CHARS_MAX = 200;
/** Messages kept on the page; older ones are dropped from the top. */
const CHAT_LINES_KEPT_MAX = 100;
/** The `error` codes that answer a chat message. */
const CHAT_CODES = new Set(['chat_rate_limited', 'muted']);

const charCount = (text) => [...text].length;

export function wireChat() {
  const form = $('chat-form');
  const input = $('chat-input');
  input.addEventListener('input', renderCount);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || charCount(text) > CHAT_TEXT_CHARS_MAX || !conn.open) return;
    conn.send({ t: 'chat', text });
    input.value = '';
    setStatus('');
    renderCount();
  });
  renderCount();
}

/** Replaces the list with a snapshot's last messages (oldest first). */
export function loadChat(lines) {
  $('chat-list').replaceChildren(...(lines ?? []).map(chatRow));
  scrollToNewest(true);
}

/** A `chat` event: appended, the list kept bounded. */
export function onChat(msg) {
  const list = $('chat-list');
  const follow = list.scrollTop + list.clientHeight >= list.scrollHeight - 8;
  list.append(chatRow(msg));
  while (list.childElementCount > CHAT_LINES_KEPT_MAX) list.firstElementChild.remove();
  scrollToNewest(follow);
}

/** Shows an `error` frame that answers a chat message under the box; false for others. */
export function onChatRefused(msg) {
  if (!CHAT_CODES.has(msg.code)) return false;
  setStatus(refusalSentence(msg));
  return true;
}

/** Whether the box can send: only while connected. */
export function renderChatEnabled() {
  const off = !conn.open;
  $('chat-input').disabled = off;
  $('chat-send').disabled = off || !$('chat-input').value.trim() || charCount($('chat-input').value.trim()) > CHAT_TEXT_CHARS_MAX;
}

function chatRow(line) {
  const li = document.createElement('li');
  li.className = line.player === game.me ? 'chat-line mine' : 'chat-line';
  li.dataset.player = line.player;
  const name = document.createElement('strong');
  name.className = 'chat-name';
  name.textContent = line.name;
  const text = document.createElement('span');
  text.className = 'chat-text';
  text.textContent = line.text;
  li.title = new Date(line.at).toLocaleTimeString();
  li.append(name, text);
  return li;
}

function renderCount() {
  const used = charCount($('chat-input').value.trim());
  const counter = $('chat-count');
  counter.textContent = `${used}/${CHAT_TEXT_CHARS_MAX}`;
  counter.dataset.over = String(used > CHAT_TEXT_CHARS_MAX);
  renderChatEnabled();
}

function setStatus(text) {
  $('chat-status').textContent = text;
}

function scrollToNewest(follow) {
  const list = $('chat-list');
  if (follow) list.scrollTop = list.scrollHeight;
}

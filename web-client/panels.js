// The two bet panels: their DOM (built from #panel-template), the inputs the player
// types (kept in localStorage), and how each slot's state is drawn: its button, its
// status line and, inline, why the typed bet cannot be sent (stake-check.js). What a
// click does is decided by the caller of `buildPanels` (requests.js). Focus never
// changes a panel's state; the panel focused last is the one Space plays. While an auto
// bet runs on a panel (autobet.js) its inputs are locked and it takes no manual bet.

import { $ } from './dom.js';
import { displayMult } from './flight.js';
import { formatCents, formatMoney, formatMult, parseMoney, parseMultiplier, payout } from './format.js';
import { AUTO_CASHOUT_MIN_HUNDREDTHS, checkBet } from './stake-check.js';
import { conn, game, slots } from './state.js';

/** Smallest stake the +/− buttons step down to, in cents. */
const STEP_AMOUNT_MIN_CENTS = 10;

/** The slot whose panel held the focus last (Space bets or cashes out there). */
let focusedSlot = 0;

export function currentSlot() {
  return slots[focusedSlot];
}

/** Builds both panels; `onAction(slot)` runs on the main button (and Enter). */
export function buildPanels(onAction) {
  const template = $('panel-template');
  for (const s of slots) {
    const el = template.content.firstElementChild.cloneNode(true);
    el.dataset.slot = String(s.slot);
    el.querySelector('.panel-title').textContent = `Bet ${s.slot + 1}`;
    s.el = el;
    el.querySelector('.panel-note').id = `panel-note-${s.slot}`;
    el.querySelector('.action').setAttribute('aria-describedby', `panel-note-${s.slot}`);
    el.setAttribute('aria-label', `Bet ${s.slot + 1}`);
    el.addEventListener('focusin', () => { focusedSlot = s.slot; markFocusedPanel(); });
    restoreInputs(s);
    wireAmount(s);
    wireAuto(s);
    for (const input of [el.querySelector('.amount'), el.querySelector('.auto-value')]) {
      input.addEventListener('keydown', (e) => { if (e.key === 'Enter') { input.blur(); onAction(s); } });
    }
    el.querySelector('.action').addEventListener('click', () => onAction(s));
    $('panels').append(el);
  }
  markFocusedPanel();
}

function markFocusedPanel() {
  for (const s of slots) s.el.classList.toggle('current', s.slot === focusedSlot);
}

function restoreInputs(s) {
  const el = s.el;
  const saved = JSON.parse(localStorage.getItem(`aloft.slot${s.slot}`) || 'null');
  el.querySelector('.amount').value = saved?.amount ?? (s.slot === 0 ? '1.00' : '2.00');
  el.querySelector('.auto-on').checked = saved?.autoOn ?? s.slot === 1;
  el.querySelector('.auto-value').value = saved?.auto ?? '2.00';
}

function wireAmount(s) {
  const el = s.el;
  const amount = el.querySelector('.amount');
  el.querySelector('.amount-field').addEventListener('click', () => amount.focus());
  for (const b of el.querySelectorAll('.step')) {
    b.addEventListener('click', () => {
      const cur = parseMoney(amount.value) ?? 0;
      const step = cur >= 10000 ? 1000 : cur >= 1000 ? 100 : cur >= 200 ? 50 : 10;
      amount.value = formatPlain(Math.max(STEP_AMOUNT_MIN_CENTS, cur + Number(b.dataset.step) * step));
      saveInputs(s);
      renderPanels();
    });
  }
  for (const b of el.querySelectorAll('[data-quick]')) {
    b.addEventListener('click', () => {
      amount.value = formatPlain(Number(b.dataset.quick));
      saveInputs(s);
      renderPanels();
    });
  }
  amount.addEventListener('input', () => { el.classList.toggle('invalid-amount', parseMoney(amount.value) == null); renderPanels(); });
  amount.addEventListener('blur', () => { const v = parseMoney(amount.value); if (v != null) amount.value = formatPlain(v); saveInputs(s); });
}

function wireAuto(s) {
  const el = s.el;
  const autoOn = el.querySelector('.auto-on');
  const autoValue = el.querySelector('.auto-value');
  autoValue.addEventListener('input', () => { el.classList.toggle('invalid-auto', autoOn.checked && !((parseMultiplier(autoValue.value) ?? 0) >= AUTO_CASHOUT_MIN_HUNDREDTHS)); renderPanels(); });
  autoValue.addEventListener('blur', () => { const v = parseMultiplier(autoValue.value); if (v != null) autoValue.value = (v / 100).toFixed(2); saveInputs(s); });
  // No focus handler: tabbing into the field must not tick the box (issue 13).
  autoOn.addEventListener('change', () => { el.classList.toggle('auto-enabled', autoOn.checked); saveInputs(s); renderPanels(); });
  el.classList.toggle('auto-enabled', autoOn.checked);
}

function formatPlain(cents) {
  return formatCents(cents).replace(/,/g, '');
}

function saveInputs(s) {
  const el = s.el;
  localStorage.setItem(`aloft.slot${s.slot}`, JSON.stringify({
    amount: el.querySelector('.amount').value,
    autoOn: el.querySelector('.auto-on').checked,
    auto: el.querySelector('.auto-value').value,
  }));
}

/** The bet the panel's inputs describe, as typed: {amount, auto, problem}. */
export function typedBet(s) {
  const el = s.el;
  return checkBet(el.querySelector('.amount').value, el.querySelector('.auto-on').checked, el.querySelector('.auto-value').value);
}

/** The bet the panel's inputs describe, {amount, auto}; null (the panel says why) if it
 *  cannot be sent. */
export function readInputs(s) {
  const bet = typedBet(s);
  if (bet.problem) {
    renderPanel(s);
    return null;
  }
  saveInputs(s);
  return { amount: bet.amount, auto: bet.auto };
}

export function renderPanels() {
  for (const s of slots) renderPanel(s);
}

/** Draws slot `s`'s panel from its state, the connection and the typed bet. */
function renderPanel(s) {
  const el = s.el;
  if (!el) return;
  el.dataset.state = s.state;
  el.dataset.round = s.round ?? '';
  el.dataset.win = s.win ?? '';
  el.dataset.m = s.m ?? '';
  el.dataset.amount = s.amount ?? '';
  const editable = ['idle', 'won', 'lost', 'refunded'].includes(s.state) && !s.autoBetting;
  el.dataset.online = String(conn.open);
  for (const input of el.querySelectorAll('.panel-inputs input, .step, [data-quick]')) input.disabled = !editable || !conn.open;
  const bet = typedBet(s);
  const look = panelLook(s, bet.amount);
  if (editable && bet.problem) look.disabled = true;
  if (!conn.open) look.disabled = true;
  const note = el.querySelector('.panel-note');
  const noteText = editable && bet.problem ? bet.problem : '';
  if (note.textContent !== noteText) note.textContent = noteText;
  el.querySelector('.action-main').textContent = look.main;
  el.querySelector('.action-sub').textContent = look.sub;
  const status = el.querySelector('.panel-status');
  status.textContent = look.status;
  status.className = look.statusClass ? `panel-status ${look.statusClass}` : 'panel-status';
  const action = el.querySelector('.action');
  action.dataset.kind = look.kind;
  action.disabled = look.disabled;
}

/** What a slot's panel shows: button labels, its kind and state, the status line. */
function panelLook(s, typed) {
  const look = { main: '', sub: '', kind: 'bet', disabled: false, status: '', statusClass: '' };
  const auto = s.auto ? ` · auto ${formatMult(s.auto)}` : '';
  switch (s.state) {
    case 'idle':
    case 'won':
    case 'lost':
    case 'refunded':
      look.main = game.phase === 'betting' ? 'Bet' : 'Bet next round';
      look.sub = typed != null ? formatMoney(typed) : '';
      if (game.phase !== 'betting') look.kind = 'queue';
      if (s.state === 'won') Object.assign(look, { status: `Won ${formatMoney(s.win)} @ ${formatMult(s.m)}`, statusClass: 'won' });
      else if (s.state === 'lost') Object.assign(look, { status: `Lost ${formatMoney(s.amount)}`, statusClass: 'lost' });
      else if (s.state === 'refunded') Object.assign(look, { status: `Round ${s.round} cancelled · ${formatMoney(s.amount)} refunded`, statusClass: 'refunded' });
      break;
    case 'queued':
      Object.assign(look, { main: 'Cancel', sub: `waiting for next round · ${formatMoney(s.queued?.amount)}`, kind: 'cancel' });
      break;
    case 'pending':
      Object.assign(look, { main: 'Placing…', sub: formatMoney(s.amount), disabled: true, kind: 'waiting' });
      break;
    case 'placed':
      if (game.phase === 'betting') {
        Object.assign(look, { main: 'Cancel bet', sub: `${formatMoney(s.amount)}${auto} · before take-off`, kind: 'cancel', status: 'Bet placed', statusClass: 'placed' });
      } else {
        Object.assign(look, { main: 'Waiting for take-off', sub: `${formatMoney(s.amount)}${auto}`, disabled: true, kind: 'waiting', status: 'Bet placed', statusClass: 'placed' });
      }
      break;
    case 'cancelling':
      Object.assign(look, { main: 'Cancelling…', sub: formatMoney(s.amount), disabled: true, kind: 'waiting', status: 'Bet placed', statusClass: 'placed' });
      break;
    case 'cancelled':
      Object.assign(look, {
        main: 'Bet next round',
        sub: typed != null ? formatMoney(typed) : '',
        kind: 'queue',
        status: `Bet cancelled · ${formatMoney(s.amount)} refunded`,
        statusClass: 'refunded',
      });
      break;
    case 'active':
    case 'cashing':
      Object.assign(look, {
        main: s.state === 'cashing' ? 'Cashing out…' : 'Cash out',
        sub: formatMoney(payout(s.amount, displayMult())),
        kind: 'cashout',
        disabled: s.state === 'cashing',
        status: `${formatMoney(s.amount)} in play${auto}`,
        statusClass: 'placed',
      });
      break;
    default:
  }
  if (s.autoBetting && (look.kind === 'bet' || look.kind === 'queue')) {
    Object.assign(look, { main: 'Auto bet on', sub: 'stop it to bet by hand', kind: 'waiting', disabled: true });
  }
  return look;
}

/** Live update of the cash-out buttons' potential win (every frame while flying). */
export function renderLiveWins(m) {
  for (const s of slots) {
    if (s.state !== 'active' && s.state !== 'cashing') continue;
    const text = formatMoney(payout(s.amount, m));
    const sub = s.el.querySelector('.action-sub');
    if (sub.textContent !== text) sub.textContent = text;
  }
}

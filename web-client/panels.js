// The two bet panels: their DOM (built from #panel-template), the inputs the player
// types (kept in localStorage), and how each slot's state is drawn. What a click does is
// decided by the caller of `buildPanels` (requests.js).

import { $, toast } from './dom.js';
import { displayMult } from './flight.js';
import { formatCents, formatMoney, formatMult, parseMoney, parseMultiplier, payout } from './format.js';
import { conn, game, slots } from './state.js';

/** Smallest stake the +/− buttons step down to, in cents. */
const STEP_AMOUNT_MIN_CENTS = 10;
/** Smallest auto cash out the panel accepts, in hundredths. */
const AUTO_CASHOUT_MIN_HUNDREDTHS = 101;

/** Builds both panels; `onAction(slot)` runs on the main button (and Enter). */
export function buildPanels(onAction) {
  const template = $('panel-template');
  for (const s of slots) {
    const el = template.content.firstElementChild.cloneNode(true);
    el.dataset.slot = String(s.slot);
    el.querySelector('.panel-title').textContent = `Bet ${s.slot + 1}`;
    s.el = el;
    restoreInputs(s);
    wireAmount(s);
    wireAuto(s);
    for (const input of [el.querySelector('.amount'), el.querySelector('.auto-value')]) {
      input.addEventListener('keydown', (e) => { if (e.key === 'Enter') { input.blur(); onAction(s); } });
    }
    el.querySelector('.action').addEventListener('click', () => onAction(s));
    $('panels').append(el);
  }
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
  autoValue.addEventListener('input', () => el.classList.toggle('invalid-auto', autoOn.checked && !((parseMultiplier(autoValue.value) ?? 0) >= AUTO_CASHOUT_MIN_HUNDREDTHS)));
  autoValue.addEventListener('blur', () => { const v = parseMultiplier(autoValue.value); if (v != null) autoValue.value = (v / 100).toFixed(2); saveInputs(s); });
  autoValue.addEventListener('focus', () => { autoOn.checked = true; el.classList.add('auto-enabled'); });
  autoOn.addEventListener('change', () => { el.classList.toggle('auto-enabled', autoOn.checked); saveInputs(s); });
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

/** The bet the panel's inputs describe, {amount, auto}; null (with a toast) if invalid. */
export function readInputs(s) {
  const el = s.el;
  const amount = parseMoney(el.querySelector('.amount').value);
  if (amount == null || amount <= 0) {
    toast('Enter a bet amount, e.g. 1.00');
    el.querySelector('.amount').focus();
    return null;
  }
  let auto = null;
  if (el.querySelector('.auto-on').checked) {
    auto = parseMultiplier(el.querySelector('.auto-value').value);
    if (auto == null || auto < AUTO_CASHOUT_MIN_HUNDREDTHS) {
      toast('Auto cash out must be at least 1.01x');
      el.querySelector('.auto-value').focus();
      return null;
    }
  }
  if (game.balance != null && amount > game.balance) {
    toast(`Insufficient balance: ${formatMoney(game.balance)}`);
    return null;
  }
  saveInputs(s);
  return { amount, auto };
}

export function renderPanels() {
  for (const s of slots) renderPanel(s);
}

function renderPanel(s) {
  const el = s.el;
  if (!el) return;
  el.dataset.state = s.state;
  el.dataset.round = s.round ?? '';
  el.dataset.win = s.win ?? '';
  el.dataset.m = s.m ?? '';
  el.dataset.amount = s.amount ?? '';
  const locked = !['idle', 'won', 'lost'].includes(s.state);
  for (const input of el.querySelectorAll('input, .step, [data-quick]')) input.disabled = locked;
  const look = panelLook(s, parseMoney(el.querySelector('.amount').value));
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
      look.main = game.phase === 'betting' ? 'Bet' : 'Bet next round';
      look.sub = typed != null ? formatMoney(typed) : '';
      if (game.phase !== 'betting') look.kind = 'queue';
      look.disabled = !conn.open && game.phase === 'idle';
      if (s.state === 'won') Object.assign(look, { status: `Won ${formatMoney(s.win)} @ ${formatMult(s.m)}`, statusClass: 'won' });
      else if (s.state === 'lost') Object.assign(look, { status: `Lost ${formatMoney(s.amount)}`, statusClass: 'lost' });
      break;
    case 'queued':
      Object.assign(look, { main: 'Cancel', sub: `waiting for next round · ${formatMoney(s.queued?.amount)}`, kind: 'cancel' });
      break;
    case 'pending':
      Object.assign(look, { main: 'Placing…', sub: formatMoney(s.amount), disabled: true, kind: 'waiting' });
      break;
    case 'placed':
      Object.assign(look, { main: 'Waiting for take-off', sub: `${formatMoney(s.amount)}${auto}`, disabled: true, kind: 'waiting', status: 'Bet placed', statusClass: 'placed' });
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

// aloft player page: game state from the wire protocol v1, bet panels, live bets,
// history chips, and the animation loop. See docs/protocol.md / src/protocol.rs.
//
// The public feed is bounded: ticks list only the largest bets and cashouts and carry the
// round's totals. The live list shows those (at most BETS_KEPT_MAX of other players) and
// the player's own bets, which come from its private replies (bet_ok, cashout_ok, and
// balance frames naming an auto-cashout).

import { Connection } from './net.js';
import { FlightChart } from './chart.js';
import {
  curveAt, formatCents, msForMult, setGrowth, formatMoney, formatMult, multClass, newRequestId, parseMoney,
  parseMultiplier, payout, shortPlayer,
} from './format.js';

const $ = (id) => document.getElementById(id);
const HISTORY_MAX = 40;
const BETS_SHOWN_MAX = 100;
// Other players' bets remembered per round: the largest the ticks listed.
const BETS_KEPT_MAX = 100;
const REQUEST_TIMEOUT_MS = 8000;

const params = new URLSearchParams(location.search);
const room = params.get('room') || '';

// ---------------------------------------------------------------- state

const game = {
  me: null,
  balance: null,
  seq: null,
  epoch: null, // the numbering `seq` belongs to (a string, from the snapshot)
  round: null,
  phase: 'idle', // 'idle' | 'betting' | 'flying' | 'crashed'
  endsAt: null, // server ms
  bettingTotal: 5000,
  startedAt: null, // server ms
  origin: null, // performance.now() at elapsed 0, corrected by ticks
  lastTick: null, // { m, ms }
  tickInterval: 100, // ms, EMA of the gap between ticks
  crashM: null,
  crashPerf: 0,
  history: [], // [{round, m, hash}] newest first
  bets: new Map(), // `${player}:${slot}` -> {player, slot, amount, auto, m, win}
  totals: null, // {bets, staked, cashouts, won} of the round, from the latest event
};

/** Per-slot state of the two bet panels. */
const slots = [0, 1].map((slot) => ({
  slot,
  state: 'idle', // idle | queued | pending | placed | active | cashing | won | lost
  round: null,
  amount: 0,
  auto: null,
  win: null,
  m: null,
  req: null, // request in flight
  reqKind: null,
  reqSentAt: 0,
  queued: null, // {amount, auto} to send when the next betting phase opens
  el: null,
}));

const pending = new Map(); // req -> {slot, kind, message, sentAt}

// Resume from the last event applied: the server then replays what was missed.
const position = () => (game.seq != null && game.epoch != null ? { seq: game.seq, epoch: game.epoch } : null);
const conn = new Connection({ room, onFrame, onStatus, position });
const chart = new FlightChart($('chart'));

// ---------------------------------------------------------------- status & toasts

function onStatus(state, detail) {
  const el = $('conn');
  el.dataset.state = state;
  document.body.dataset.conn = state;
  const labels = { connecting: 'Connecting…', online: 'Online', reconnecting: 'Reconnecting', offline: 'Offline' };
  $('conn-label').textContent = detail && state !== 'online' ? `${labels[state]} · ${detail}` : labels[state];
  if (state !== 'online') renderPanels();
}

function toast(message, kind = 'error') {
  const el = document.createElement('div');
  el.className = `toast toast-${kind}`;
  el.textContent = message;
  $('toasts').append(el);
  requestAnimationFrame(() => el.classList.add('show'));
  setTimeout(() => {
    el.classList.remove('show');
    setTimeout(() => el.remove(), 300);
  }, kind === 'error' ? 4500 : 3000);
  while ($('toasts').children.length > 5) $('toasts').firstElementChild.remove();
}

// ---------------------------------------------------------------- frames

function onFrame(msg) {
  // Public events carry `seq`: drop what a snapshot already included.
  if (typeof msg.seq === 'number' && msg.t !== 'snapshot') {
    if (game.seq != null && msg.seq <= game.seq) return;
    if (game.seq != null && msg.seq !== game.seq + 1 && msg.t !== 'tick') {
      console.warn(`[aloft] event gap: ${game.seq} -> ${msg.seq}`);
    }
    game.seq = msg.seq;
  }
  switch (msg.t) {
    case 'hello': return onHello(msg);
    case 'snapshot': return onSnapshot(msg);
    case 'betting': return onBetting(msg);
    case 'flying': return onFlying(msg);
    case 'tick': return onTick(msg);
    case 'crash': return onCrash(msg);
    case 'bet_ok': return onBetOk(msg);
    case 'bet_err': return onBetErr(msg);
    case 'cashout_ok': return onCashoutOk(msg);
    case 'cashout_err': return onCashoutErr(msg);
    case 'balance': return onBalance(msg);
    case 'error': return toast(msg.message || msg.code || 'Server error');
    case 'pong': return renderLag();
    default: return undefined;
  }
}

function onHello(msg) {
  setGrowth(msg.growth);
  game.me = msg.player;
  $('player').textContent = shortPlayer(msg.player);
  $('player').title = `Guest ${msg.player}`;
  setBalance(msg.balance);
  // Recovered: the missed events follow and continue from game.seq. Otherwise the
  // snapshot that follows sets the position.
  if (msg.recovered !== true) {
    game.seq = null;
    game.epoch = null;
  }
  // Requests that got no reply before the connection dropped: resend with the same
  // `req`; the server returns the first outcome if it already handled them.
  for (const p of pending.values()) {
    p.sentAt = performance.now();
    conn.send(p.message);
  }
}

function onSnapshot(msg) {
  game.seq = msg.seq;
  game.epoch = msg.epoch ?? null;
  game.round = msg.round;
  game.history = [...(msg.history || [])].sort((a, b) => b.round - a.round).slice(0, HISTORY_MAX);
  renderHistory();
  game.bets.clear();
  for (const b of msg.bets || []) {
    game.bets.set(key(b), { player: b.player, slot: b.slot, amount: b.amount, auto: b.auto, m: b.cashed_out ?? null, win: b.win ?? null });
  }
  game.totals = msg.totals ?? null;
  const phase = msg.phase;
  game.crashM = null;
  if (phase === 'betting') {
    enterBetting(msg.round, msg.ends_at ?? conn.serverNow(), false);
  } else if (phase === 'flying') {
    enterFlying(msg.round, msg.started_at ?? conn.serverNow());
    if (typeof msg.m === 'number' && msg.started_at != null) {
      game.lastTick = { m: msg.m, ms: Math.max(0, conn.serverNow() - msg.started_at) };
    }
  } else if (phase === 'crashed') {
    game.phase = 'crashed';
    game.startedAt = msg.started_at ?? null;
    game.crashM = msg.m;
    game.crashPerf = performance.now() - 5000; // the plane is long gone
    game.origin = null;
  }
  // Restore our own bets of this round (reconnect, reload).
  for (const s of slots) {
    const mine = game.me != null ? game.bets.get(`${game.me}:${s.slot}`) : null;
    if (mine) {
      s.round = msg.round;
      s.amount = mine.amount;
      s.auto = mine.auto ?? null;
      if (mine.m != null) {
        Object.assign(s, { state: 'won', m: mine.m, win: mine.win });
      } else if (phase === 'betting') {
        s.state = 'placed';
      } else if (phase === 'flying') {
        s.state = s.state === 'cashing' ? 'cashing' : 'active';
      } else {
        s.state = 'lost';
      }
    } else if (s.state !== 'pending' && s.state !== 'queued' && !(s.state === 'cashing' && s.reqKind === 'cashout')) {
      if (['placed', 'active', 'won', 'lost', 'cashing'].includes(s.state)) s.state = 'idle';
    }
  }
  setPhaseAttr();
  markBetsDirty();
  renderPanels();
}

function enterBetting(round, endsAt, fromEvent) {
  game.round = round;
  game.phase = 'betting';
  game.endsAt = endsAt;
  const left = endsAt - conn.serverNow();
  game.bettingTotal = fromEvent ? Math.max(1000, left) : Math.max(5000, left);
  game.startedAt = null;
  game.origin = null;
  game.lastTick = null;
  game.crashM = null;
  setPhaseAttr();
}

function onBetting(msg) {
  enterBetting(msg.round, msg.ends_at, true);
  game.bets.clear();
  game.totals = null;
  markBetsDirty();
  for (const s of slots) {
    if (['won', 'lost', 'placed', 'active', 'cashing'].includes(s.state)) {
      Object.assign(s, { state: 'idle', round: null, win: null, m: null });
    }
    if (s.state === 'queued' && s.queued) {
      const { amount, auto } = s.queued;
      s.queued = null;
      sendBet(s, amount, auto);
    }
  }
  renderPanels();
}

function enterFlying(round, startedAt) {
  game.round = round;
  game.phase = 'flying';
  game.startedAt = startedAt;
  game.origin = performance.now() - Math.max(0, conn.serverNow() - startedAt);
  game.lastTick = { m: 100, ms: 0 };
  game.ticksSeen = 0;
  game.crashM = null;
  setPhaseAttr();
}

function onFlying(msg) {
  enterFlying(msg.round, msg.started_at);
  for (const s of slots) if (s.state === 'placed' && s.round === msg.round) s.state = 'active';
  renderPanels();
}

function onTick(msg) {
  if (msg.bets) {
    for (const b of msg.bets) game.bets.set(key(b), { player: b.player, slot: b.slot, amount: b.amount, auto: b.auto, m: null, win: null });
    markBetsDirty();
  }
  if (msg.cashouts) applyCashouts(msg.cashouts);
  applyTotals(msg);
  if (game.phase === 'betting' && msg.m === 100 && msg.ms === 0) return;
  if (game.phase !== 'flying') {
    // A tick of a flight we did not see start (e.g. a missed `flying`).
    if (game.phase === 'crashed' && msg.round === game.round) return;
    enterFlying(msg.round, conn.serverNow() - msg.ms);
  }
  const now = performance.now();
  const candidate = now - msg.ms;
  if (game.lastTick && msg.ms > game.lastTick.ms) {
    const gap = msg.ms - game.lastTick.ms;
    if (gap < 2000) game.tickInterval += (gap - game.tickInterval) * 0.2;
  }
  // Tick-derived origin lags real time by the one-way latency: that keeps the
  // animation just behind the server, which is where it should be.
  if (!game.ticksSeen) game.origin = candidate;
  else game.origin += (candidate - game.origin) * 0.3;
  game.ticksSeen = (game.ticksSeen || 0) + 1;
  game.lastTick = { m: msg.m, ms: msg.ms };
}

function onCrash(msg) {
  if (msg.cashouts) applyCashouts(msg.cashouts);
  applyTotals(msg);
  game.round = msg.round;
  game.phase = 'crashed';
  game.crashM = msg.m;
  game.crashPerf = performance.now();
  if (!game.startedAt) game.startedAt = msg.at - msForMult(msg.m);
  for (const b of game.bets.values()) if (b.m == null) b.lost = true;
  if (!game.history.some((h) => h.round === msg.round)) {
    game.history.unshift({ round: msg.round, m: msg.m, hash: msg.hash });
    game.history.length = Math.min(game.history.length, HISTORY_MAX);
  }
  renderHistory(true);
  for (const s of slots) {
    if ((s.state === 'active' || s.state === 'cashing' || s.state === 'placed') && s.round === msg.round) s.state = 'lost';
  }
  setPhaseAttr();
  markBetsDirty();
  renderPanels();
}

function applyCashouts(list) {
  for (const c of list) {
    const b = game.bets.get(key(c));
    if (b) Object.assign(b, { m: c.m, win: c.win });
    else game.bets.set(key(c), { player: c.player, slot: c.slot, amount: Math.round((c.win * 100) / c.m), m: c.m, win: c.win });
  }
  markBetsDirty();
}

/** Round totals are absolute: the newest event's replace the previous ones. */
function applyTotals(msg) {
  if (msg.totals) game.totals = msg.totals;
  keepLargestBets();
  markBetsDirty();
}

/** Bounds the remembered bets: the player's own, and the largest of the others. */
function keepLargestBets() {
  const others = [...game.bets.values()].filter((b) => b.player !== game.me);
  if (others.length <= BETS_KEPT_MAX) return;
  others.sort((a, b) => b.amount - a.amount);
  for (const b of others.slice(BETS_KEPT_MAX)) game.bets.delete(key(b));
}

/** Marks one of the player's own bets cashed out (from a private frame). */
function ownCashout(slot, round, m, win) {
  const s = slots[slot];
  // 'lost' too: the report of a cashout decided at the crash follows the crash itself.
  const cashed = s && s.round === round && ['active', 'cashing', 'placed', 'lost'].includes(s.state);
  if (cashed) Object.assign(s, { state: 'won', m, win });
  const b = game.me && round === game.round && game.bets.get(`${game.me}:${slot}`);
  if (b) { Object.assign(b, { m, win, lost: false }); markBetsDirty(); }
  return cashed;
}

/** A balance change outside a request: a refund, or a cashout the server made for us
 *  (auto cash out, or the round's max profit). */
function onBalance(msg) {
  setBalance(msg.balance);
  const c = msg.cashout;
  if (!c) return;
  if (ownCashout(c.slot, c.round, c.m, c.win)) {
    toast(`Auto cashed out at ${formatMult(c.m)} — won ${formatMoney(c.win)}`, 'win');
    renderPanels();
  }
}

/** Takes an answered request off `pending`, applies its balance and frees its slot's
 *  request; returns the slot it was for (if any). */
function settleRequest(msg) {
  const p = pending.get(msg.req);
  pending.delete(msg.req);
  setBalance(msg.balance);
  const s = slots[msg.slot] ?? (p && slots[p.slot]);
  if (s && s.req === msg.req) { s.req = null; s.reqKind = null; }
  return s;
}

function onBetOk(msg) {
  const s = settleRequest(msg);
  if (!s) return;
  Object.assign(s, { round: msg.round, amount: msg.amount, auto: msg.auto ?? null, win: null, m: null });
  if (msg.round === game.round && game.phase === 'flying') s.state = 'active';
  else if (msg.round === game.round && game.phase === 'crashed') s.state = 'lost';
  else s.state = 'placed';
  if (game.me) {
    const k = `${game.me}:${msg.slot}`;
    if (!game.bets.has(k) && msg.round === game.round) {
      game.bets.set(k, { player: game.me, slot: msg.slot, amount: msg.amount, auto: msg.auto, m: null, win: null });
      markBetsDirty();
    }
  }
  renderPanels();
}

function onBetErr(msg) {
  const p = pending.get(msg.req);
  pending.delete(msg.req);
  toast(`Bet refused: ${msg.message || msg.code}`);
  const s = p ? slots[p.slot] : slots.find((x) => x.req === msg.req);
  if (s && s.req === msg.req) {
    s.req = null;
    s.reqKind = null;
    s.state = 'idle';
  }
  renderPanels();
}

function onCashoutOk(msg) {
  const s = settleRequest(msg);
  if (!s) return;
  ownCashout(msg.slot, msg.round, msg.m, msg.win);
  Object.assign(s, { state: 'won', m: msg.m, win: msg.win });
  toast(`Cashed out at ${formatMult(msg.m)} — won ${formatMoney(msg.win)}`, 'win');
  renderPanels();
}

function onCashoutErr(msg) {
  const p = pending.get(msg.req);
  pending.delete(msg.req);
  toast(`Cash out failed: ${msg.message || msg.code}`);
  const s = p ? slots[p.slot] : slots.find((x) => x.req === msg.req);
  if (s && s.req === msg.req) {
    s.req = null;
    s.reqKind = null;
    if (s.state === 'cashing') s.state = game.phase === 'flying' ? 'active' : 'lost';
  }
  renderPanels();
}

// ---------------------------------------------------------------- requests

function request(s, kind, message) {
  s.req = message.req;
  s.reqKind = kind;
  pending.set(message.req, { slot: s.slot, kind, message, sentAt: performance.now() });
  if (!conn.send(message)) toast('Not connected — will send when back online', 'info');
}

function sendBet(s, amount, auto) {
  const message = { t: 'bet', req: newRequestId(), amount, slot: s.slot };
  if (auto != null) message.auto = auto;
  s.state = 'pending';
  s.amount = amount;
  s.auto = auto;
  request(s, 'bet', message);
  renderPanels();
}

function sendCashout(s) {
  s.state = 'cashing';
  request(s, 'cashout', { t: 'cashout', req: newRequestId(), slot: s.slot });
  renderPanels();
}

// Requests without a reply for too long: give up on them (a reconnect resends).
setInterval(() => {
  const now = performance.now();
  for (const [req, p] of pending) {
    if (now - p.sentAt < REQUEST_TIMEOUT_MS) continue;
    pending.delete(req);
    const s = slots[p.slot];
    if (s.req !== req) continue;
    s.req = null;
    s.reqKind = null;
    if (p.kind === 'bet' && s.state === 'pending') s.state = 'idle';
    if (p.kind === 'cashout' && s.state === 'cashing') s.state = game.phase === 'flying' ? 'active' : 'lost';
    toast(`No answer from the server to your ${p.kind === 'bet' ? 'bet' : 'cash out'}`);
    renderPanels();
  }
}, 1000);

// ---------------------------------------------------------------- bet panels

function readInputs(s) {
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
    if (auto == null || auto < 101) {
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

function onAction(s) {
  switch (s.state) {
    case 'idle':
    case 'won':
    case 'lost': {
      const inputs = readInputs(s);
      if (!inputs) return;
      if (game.phase === 'betting' && conn.open) sendBet(s, inputs.amount, inputs.auto);
      else {
        s.queued = inputs;
        s.state = 'queued';
        renderPanels();
      }
      return;
    }
    case 'queued':
      s.queued = null;
      s.state = 'idle';
      renderPanels();
      return;
    case 'active':
      if (conn.open) sendCashout(s);
      else toast('Not connected');
      return;
    default:
  }
}

function buildPanels() {
  const template = $('panel-template');
  for (const s of slots) {
    const el = template.content.firstElementChild.cloneNode(true);
    el.dataset.slot = String(s.slot);
    el.querySelector('.panel-title').textContent = `Bet ${s.slot + 1}`;
    const amount = el.querySelector('.amount');
    const autoOn = el.querySelector('.auto-on');
    const autoValue = el.querySelector('.auto-value');
    const saved = JSON.parse(localStorage.getItem(`aloft.slot${s.slot}`) || 'null');
    amount.value = saved?.amount ?? (s.slot === 0 ? '1.00' : '2.00');
    autoOn.checked = saved?.autoOn ?? s.slot === 1;
    autoValue.value = saved?.auto ?? '2.00';
    el.querySelector('.amount-field').addEventListener('click', () => amount.focus());
    for (const b of el.querySelectorAll('.step')) {
      b.addEventListener('click', () => {
        const cur = parseMoney(amount.value) ?? 0;
        const step = cur >= 10000 ? 1000 : cur >= 1000 ? 100 : cur >= 200 ? 50 : 10;
        amount.value = formatPlain(Math.max(10, cur + Number(b.dataset.step) * step));
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
    autoValue.addEventListener('input', () => el.classList.toggle('invalid-auto', autoOn.checked && !((parseMultiplier(autoValue.value) ?? 0) >= 101)));
    autoValue.addEventListener('blur', () => { const v = parseMultiplier(autoValue.value); if (v != null) autoValue.value = (v / 100).toFixed(2); saveInputs(s); });
    autoValue.addEventListener('focus', () => { autoOn.checked = true; el.classList.add('auto-enabled'); });
    autoOn.addEventListener('change', () => { el.classList.toggle('auto-enabled', autoOn.checked); saveInputs(s); });
    el.classList.toggle('auto-enabled', autoOn.checked);
    for (const input of [amount, autoValue]) {
      input.addEventListener('keydown', (e) => { if (e.key === 'Enter') { input.blur(); onAction(s); } });
    }
    el.querySelector('.action').addEventListener('click', () => onAction(s));
    s.el = el;
    $('panels').append(el);
  }
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

function renderPanels() {
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
  const action = el.querySelector('.action');
  const main = el.querySelector('.action-main');
  const sub = el.querySelector('.action-sub');
  const status = el.querySelector('.panel-status');
  const typed = parseMoney(el.querySelector('.amount').value);
  let kind = 'bet';
  let disabled = false;
  status.textContent = '';
  status.className = 'panel-status';
  switch (s.state) {
    case 'idle':
    case 'won':
    case 'lost':
      if (game.phase === 'betting') {
        main.textContent = 'Bet';
        sub.textContent = typed != null ? formatMoney(typed) : '';
      } else {
        main.textContent = 'Bet next round';
        sub.textContent = typed != null ? formatMoney(typed) : '';
        kind = 'queue';
      }
      disabled = !conn.open && game.phase === 'idle';
      if (s.state === 'won') {
        status.textContent = `Won ${formatMoney(s.win)} @ ${formatMult(s.m)}`;
        status.classList.add('won');
      } else if (s.state === 'lost') {
        status.textContent = `Lost ${formatMoney(s.amount)}`;
        status.classList.add('lost');
      }
      break;
    case 'queued':
      main.textContent = 'Cancel';
      sub.textContent = `waiting for next round · ${formatMoney(s.queued?.amount)}`;
      kind = 'cancel';
      break;
    case 'pending':
      main.textContent = 'Placing…';
      sub.textContent = formatMoney(s.amount);
      disabled = true;
      kind = 'waiting';
      break;
    case 'placed':
      main.textContent = 'Waiting for take-off';
      sub.textContent = `${formatMoney(s.amount)}${s.auto ? ` · auto ${formatMult(s.auto)}` : ''}`;
      disabled = true;
      kind = 'waiting';
      status.textContent = 'Bet placed';
      status.classList.add('placed');
      break;
    case 'active':
    case 'cashing': {
      const m = displayMult();
      main.textContent = s.state === 'cashing' ? 'Cashing out…' : 'Cash out';
      sub.textContent = formatMoney(payout(s.amount, m));
      kind = 'cashout';
      disabled = s.state === 'cashing';
      status.textContent = `${formatMoney(s.amount)} in play${s.auto ? ` · auto ${formatMult(s.auto)}` : ''}`;
      status.classList.add('placed');
      break;
    }
    default:
  }
  action.dataset.kind = kind;
  action.disabled = disabled;
}

/** Live update of the cash-out buttons' potential win (every frame while flying). */
function renderLiveWins(m) {
  for (const s of slots) {
    if (s.state !== 'active' && s.state !== 'cashing') continue;
    const text = formatMoney(payout(s.amount, m));
    const sub = s.el.querySelector('.action-sub');
    if (sub.textContent !== text) sub.textContent = text;
  }
}

// ---------------------------------------------------------------- balance, history, bets

function setBalance(cents) {
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

function renderHistory(animateFirst = false) {
  const box = $('history');
  box.replaceChildren(...game.history.map((h, i) => {
    const a = document.createElement('a');
    const aborted = !(h.m >= 100);
    a.className = `chip ${aborted ? 'aborted' : multClass(h.m)}${animateFirst && i === 0 ? ' new' : ''}`;
    a.textContent = aborted ? 'void' : formatMult(h.m);
    a.dataset.round = String(h.round);
    a.dataset.m = String(h.m);
    a.href = `/verify.html?round=${h.round}${h.hash ? `&hash=${h.hash}` : ''}`;
    a.title = aborted ? `Round ${h.round} was aborted — bets refunded` : `Round ${h.round} — verify`;
    return a;
  }));
}

let betsDirty = false;
function markBetsDirty() { betsDirty = true; }

function renderBets() {
  betsDirty = false;
  const all = [...game.bets.values()];
  all.sort((a, b) => (b.player === game.me) - (a.player === game.me) || b.amount - a.amount || a.slot - b.slot);
  // The server's totals count every bet; own bets may be acknowledged a tick before
  // the totals that include them arrive.
  let listedStake = 0;
  for (const b of all) listedStake += b.amount;
  const totals = game.totals ?? { bets: 0, staked: 0, cashouts: 0, won: 0 };
  const count = Math.max(totals.bets, all.length);
  $('bets-count').textContent = count.toLocaleString('en-US');
  $('bets-count').dataset.count = String(count);
  $('bets-noun').textContent = count === 1 ? 'bet' : 'bets';
  $('bets-total').textContent = formatMoney(Math.max(totals.staked, listedStake));
  $('bets-won').textContent = formatMoney(totals.won);
  $('bets-cashouts').textContent = totals.cashouts.toLocaleString('en-US');
  $('bets-empty').hidden = all.length > 0;
  const rows = all.slice(0, BETS_SHOWN_MAX).map((b) => {
    const li = document.createElement('li');
    const mine = b.player === game.me;
    li.className = `bet-row${mine ? ' mine' : ''}${b.m != null ? ' cashed' : ''}${b.lost ? ' lost' : ''}`;
    li.dataset.player = b.player;
    li.dataset.slot = String(b.slot);
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = mine ? `You${b.slot ? ' (2)' : ''}` : `${shortPlayer(b.player)}${b.slot ? ' (2)' : ''}`;
    who.title = b.player;
    const amount = document.createElement('span');
    amount.textContent = formatMoney(b.amount);
    const m = document.createElement('span');
    m.className = 'm';
    if (b.m != null) m.textContent = formatMult(b.m);
    else if (b.auto) {
      const tag = document.createElement('small');
      tag.textContent = 'auto';
      m.append(tag, formatMult(b.auto));
      m.title = 'Auto cash out target';
    }
    const win = document.createElement('span');
    win.className = 'win';
    win.textContent = b.win != null ? formatMoney(b.win) : b.lost ? '—' : '';
    li.append(who, amount, m, win);
    return li;
  });
  const unlisted = count - Math.min(all.length, BETS_SHOWN_MAX);
  if (unlisted > 0) {
    const li = document.createElement('li');
    li.className = 'bet-more';
    li.textContent = `+ ${unlisted.toLocaleString('en-US')} more ${unlisted === 1 ? 'bet' : 'bets'} · largest shown`;
    rows.push(li);
  }
  $('bets').replaceChildren(...rows);
}

function key(b) { return `${b.player}:${b.slot}`; }

function setPhaseAttr() {
  document.body.dataset.phase = game.phase;
  $('stage').dataset.phase = game.phase;
  $('stage').dataset.round = game.round ?? '';
  $('round-tag').textContent = game.round != null ? `Round #${game.round}` : 'Round —';
}

function renderLag() {
  if (conn.rtt != null) $('lag-tag').textContent = `${conn.rtt} ms`;
}

// ---------------------------------------------------------------- animation

/** Multiplier to display now, in hundredths (interpolated between ticks). */
function displayMult() {
  if (game.phase === 'crashed') return game.crashM ?? 100;
  if (game.phase !== 'flying') return 100;
  return curveAt(displayElapsed());
}

function displayElapsed() {
  if (game.phase !== 'flying' || game.origin == null) return 0;
  let elapsed = performance.now() - game.origin;
  // Never run more than ~one tick ahead of what the server last said: if ticks stop
  // (network stall, crash on its way) the display waits rather than overshooting.
  if (game.lastTick) elapsed = Math.min(elapsed, game.lastTick.ms + Math.min(250, game.tickInterval * 1.2));
  return Math.max(0, elapsed);
}

let lastMultText = '';
let lastPhaseText = '';
function frame(now) {
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

  const multEl = $('multiplier');
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
    if (game.phase === 'flying') phaseText = '';
    else if (game.phase === 'crashed') phaseText = 'Flew away!';
    else phaseText = conn.open ? 'Waiting for the next round…' : 'Waiting for the server…';
    if (game.phase === 'idle') multText = '—';
  }
  if (!conn.open && game.phase !== 'idle') phaseText = 'Connection lost — reconnecting…';
  if (multText !== lastMultText) {
    multEl.textContent = multText;
    multEl.dataset.m = String(m);
    lastMultText = multText;
  }
  if (phaseText !== lastPhaseText) {
    $('phase-label').textContent = phaseText;
    lastPhaseText = phaseText;
  }
  if (game.phase === 'flying') renderLiveWins(m);
  if (betsDirty) renderBets();
  requestAnimationFrame(frame);
}

// Keyboard: Space triggers bet 1's button when not typing.
document.addEventListener('keydown', (e) => {
  if (e.code !== 'Space' || e.repeat) return;
  if (e.target instanceof HTMLInputElement || e.target instanceof HTMLButtonElement) return;
  e.preventDefault();
  onAction(slots[0]);
});

buildPanels();
renderPanels();
renderBets();
conn.start();
requestAnimationFrame(frame);

// Test/debug hook (read-only view of the state).
window.aloft = { game, slots, conn };

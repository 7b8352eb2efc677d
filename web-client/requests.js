// The player's own requests (bet, cancel, cash out) and the private frames that answer
// them: what the main button of a panel does, each request's `req` and its timeout, and
// the replies (bet_ok, bet_err, cancel_ok, cancel_err, cashout_ok, cashout_err, balance
// naming a cashout the server made).

import { toast } from './dom.js';
import { formatMoney, formatMult, newRequestId } from './format.js';
import { setBalance } from './hud.js';
import { markBetsDirty } from './live-bets.js';
import { refusalSentence } from './messages.js';
import { readInputs, renderPanels } from './panels.js';
import { OPEN_STATES, announceRefund } from './refunds.js';
import { playSound } from './sound.js';
import { conn, game, pending, slots } from './state.js';

/** A request without an answer for this long is given up (a reconnect resends it). */
const REQUEST_TIMEOUT_MS = 8000;

/** The main button of slot `s` (or Space for bet 1): bet, queue, cancel or cash out. */
export function onAction(s) {
  switch (s.state) {
    case 'cancelled': {
      // The slot is spent for this round (the server keeps it): the next round's bet.
      const inputs = readInputs(s);
      if (!inputs) return;
      Object.assign(s, { queued: inputs, state: 'queued' });
      renderPanels();
      return;
    }
    case 'idle':
    case 'won':
    case 'lost':
    case 'refunded': {
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
    case 'placed':
      if (conn.open && game.phase === 'betting') sendCancel(s);
      return;
    case 'active':
      if (conn.open) sendCashout(s);
      return;
    default:
  }
}

function request(s, kind, message) {
  s.req = message.req;
  s.reqKind = kind;
  pending.set(message.req, { slot: s.slot, kind, message, sentAt: performance.now() });
  if (conn.send(message)) return;
  // A bet waits for no reconnect (see resendPending); a cashout or cancel does.
  if (kind === 'bet') {
    giveUpBet(message.req);
    renderPanels();
    return;
  }
  toast('Not connected: your request goes out when the connection is back.', 'info');
}

export function sendBet(s, amount, auto) {
  const message = { t: 'bet', req: newRequestId(), amount, slot: s.slot };
  if (auto != null) message.auto = auto;
  s.state = 'pending';
  s.amount = amount;
  s.auto = auto;
  request(s, 'bet', message);
  renderPanels();
}

function sendCancel(s) {
  s.state = 'cancelling';
  request(s, 'cancel', { t: 'cancel', req: newRequestId(), slot: s.slot });
  renderPanels();
}

function sendCashout(s) {
  s.state = 'cashing';
  request(s, 'cashout', { t: 'cashout', req: newRequestId(), slot: s.slot });
  renderPanels();
}

/** Requests that got no reply before the connection dropped. A cashout or a cancel is
 *  resent with the same `req`: the server answers one it handled with its first answer
 *  and refuses one whose round is over. A bet is not: the room may be in another round
 *  by now, where the same `req` would be a new bet the player never chose there; its
 *  panel goes back to idle and the player is asked to check. */
export function resendPending() {
  for (const [req, p] of pending) {
    if (p.kind === 'bet') {
      giveUpBet(req);
      continue;
    }
    p.sentAt = performance.now();
    conn.send(p.message);
  }
  renderPanels();
}

/** Forgets the unanswered bet `req`: its panel goes back to idle, the player is told. */
function giveUpBet(req) {
  const p = pending.get(req);
  pending.delete(req);
  const s = slots[p.slot];
  if (s.req === req) {
    s.req = null;
    s.reqKind = null;
    if (s.state === 'pending') s.state = 'idle';
  }
  toast('Not connected: your bet was not confirmed. Check "My bets" before betting again.', 'notice');
}

/** Gives up on requests without a reply for too long (checked every second). */
export function startRequestTimeouts() {
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
      if (p.kind === 'cancel' && s.state === 'cancelling') s.state = inRoundState();
      const what = { bet: 'bet', cancel: 'cancel', cashout: 'cash out' }[p.kind];
      toast(`The server did not answer your ${what}. Check your balance before trying again.`);
      renderPanels();
    }
  }, 1000);
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

/** A balance change outside a request: a refund of the bet it names (its round was
 *  cancelled), or a cashout the server made for us (auto cash out, or the round's max
 *  profit). */
export function onBalance(msg) {
  setBalance(msg.balance);
  const r = msg.refund;
  if (r) {
    const s = slots[r.slot];
    if (s && s.round === r.round && OPEN_STATES.includes(s.state)) announceRefund(s, r.round, r.amount);
    return;
  }
  const c = msg.cashout;
  if (!c) return;
  if (ownCashout(c.slot, c.round, c.m, c.win)) {
    playSound('cashout');
    toast(`Auto cashed out at ${formatMult(c.m)}: won ${formatMoney(c.win)}`, 'win');
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

/** Takes a refused request off `pending`; returns its slot if the slot still awaits it. */
function refuseRequest(msg) {
  const p = pending.get(msg.req);
  pending.delete(msg.req);
  const s = p ? slots[p.slot] : slots.find((x) => x.req === msg.req);
  if (!s || s.req !== msg.req) return null;
  s.req = null;
  s.reqKind = null;
  return s;
}

export function onBetOk(msg) {
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

export function onBetErr(msg) {
  toast(refusalSentence(msg, 'bet', pending.get(msg.req)?.message));
  const s = refuseRequest(msg);
  if (s) s.state = 'idle';
  renderPanels();
}

/** Where a bet that stays in the round stands now (a cancel refused or unanswered). */
function inRoundState() {
  if (game.phase === 'flying') return 'active';
  return game.phase === 'crashed' ? 'lost' : 'placed';
}

export function onCancelOk(msg) {
  const s = settleRequest(msg);
  if (!s) return;
  Object.assign(s, { state: 'cancelled', round: msg.round, amount: msg.amount });
  if (game.me && game.bets.delete(`${game.me}:${msg.slot}`)) markBetsDirty();
  toast(`Bet cancelled: ${formatMoney(msg.amount)} is back in your balance.`, 'info');
  renderPanels();
}

export function onCancelErr(msg) {
  toast(refusalSentence(msg, 'cancel'));
  const s = refuseRequest(msg);
  if (s && s.state === 'cancelling') s.state = inRoundState();
  renderPanels();
}

export function onCashoutOk(msg) {
  const s = settleRequest(msg);
  if (!s) return;
  ownCashout(msg.slot, msg.round, msg.m, msg.win);
  Object.assign(s, { state: 'won', m: msg.m, win: msg.win });
  playSound('cashout');
  toast(`Cashed out at ${formatMult(msg.m)}: won ${formatMoney(msg.win)}`, 'win');
  renderPanels();
}

export function onCashoutErr(msg) {
  toast(refusalSentence(msg, 'cashout'));
  const s = refuseRequest(msg);
  if (s && s.state === 'cashing') s.state = game.phase === 'flying' ? 'active' : 'lost';
  renderPanels();
}

// The room's public events applied to the game state: hello, snapshot, betting,
// flying, tick, crash. Bets queued for the next round go out when betting opens.

import { setGrowth, shortPlayer, msForMult } from './format.js';
import { renderHistory } from './history.js';
import { $ } from './dom.js';
import { setBalance, setPhaseAttr } from './hud.js';
import { keepLargestBets, markBetsDirty } from './live-bets.js';
import { renderPanels } from './panels.js';
import { betsLeftIn, reconcileRounds } from './refunds.js';
import { resendPending, sendBet } from './requests.js';
import { playSound } from './sound.js';
import { applyLimitsFor } from './stake-check.js';
import { HISTORY_MAX, betKey, conn, game, ownBet, slots } from './state.js';

/** A tick gap longer than this (ms) does not count in the tick interval's average. */
const TICK_GAP_COUNTED_MS_MAX = 2000;

export function onHello(msg) {
  setGrowth(msg.growth);
  game.me = msg.player;
  game.room = msg.room ?? null;
  // The display name, once name.js learnt it; the id until then.
  $('player').textContent = game.myName ?? shortPlayer(msg.player);
  setBalance(msg.balance);
  // Recovered: the missed events follow and continue from game.seq. Otherwise the
  // snapshot that follows sets the position.
  if (msg.recovered !== true) {
    game.seq = null;
    game.epoch = null;
  }
  resendPending();
}

export function onSnapshot(msg) {
  const away = betsLeftIn(msg.round);
  game.seq = msg.seq;
  game.epoch = msg.epoch ?? null;
  game.round = msg.round;
  game.history = [...(msg.history || [])].sort((a, b) => b.round - a.round).slice(0, HISTORY_MAX);
  renderHistory();
  game.bets.clear();
  for (const b of msg.bets || []) {
    game.bets.set(betKey(b), { player: b.player, name: b.name, slot: b.slot, amount: b.amount, auto: b.auto, m: b.cashed_out ?? null, win: b.win ?? null });
  }
  game.totals = msg.totals ?? null;
  game.crashM = null;
  enterSnapshotPhase(msg);
  restoreOwnBets(msg.round, msg.phase);
  setPhaseAttr();
  markBetsDirty();
  renderPanels();
  reconcileRounds(away);
}

function enterSnapshotPhase(msg) {
  if (msg.phase === 'betting') {
    enterBetting(msg.round, msg.ends_at ?? conn.serverNow(), false);
  } else if (msg.phase === 'flying') {
    enterFlying(msg.round, msg.started_at ?? conn.serverNow());
    if (typeof msg.m === 'number' && msg.started_at != null) {
      game.lastTick = { m: msg.m, ms: Math.max(0, conn.serverNow() - msg.started_at) };
    }
  } else if (msg.phase === 'crashed') {
    game.phase = 'crashed';
    game.startedAt = msg.started_at ?? null;
    game.crashM = msg.m;
    game.crashPerf = performance.now() - 5000; // the plane is long gone
    game.origin = null;
  }
}

/** The slots of the player's own bets in a snapshot's round (reconnect, reload). */
function restoreOwnBets(round, phase) {
  for (const s of slots) {
    const mine = ownBet(s.slot);
    if (mine) {
      s.round = round;
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
      if (['placed', 'active', 'won', 'lost', 'cashing', 'refunded', 'cancelled'].includes(s.state)) s.state = 'idle';
    }
  }
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
  applyLimitsFor(round);
  setPhaseAttr();
}

export function onBetting(msg) {
  enterBetting(msg.round, msg.ends_at, true);
  game.bets.clear();
  game.totals = null;
  markBetsDirty();
  for (const s of slots) {
    if (['won', 'lost', 'refunded', 'cancelled', 'placed', 'active', 'cashing'].includes(s.state)) {
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

/** Another player's (or our own) bet taken back while betting was open. */
export function onBetCancelled(msg) {
  if (game.bets.delete(`${msg.player}:${msg.slot}`)) markBetsDirty();
  game.totals = msg.totals ?? null;
}

export function onFlying(msg) {
  enterFlying(msg.round, msg.started_at);
  playSound('takeoff');
  for (const s of slots) if (s.state === 'placed' && s.round === msg.round) s.state = 'active';
  renderPanels();
}

export function onTick(msg) {
  if (msg.bets) {
    for (const b of msg.bets) game.bets.set(betKey(b), { player: b.player, name: b.name, slot: b.slot, amount: b.amount, auto: b.auto, m: null, win: null });
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
  const candidate = performance.now() - msg.ms;
  if (game.lastTick && msg.ms > game.lastTick.ms) {
    const gap = msg.ms - game.lastTick.ms;
    if (gap < TICK_GAP_COUNTED_MS_MAX) game.tickInterval += (gap - game.tickInterval) * 0.2;
  }
  // Tick-derived origin lags real time by the one-way latency: that keeps the
  // animation just behind the server, which is where it should be.
  if (!game.ticksSeen) game.origin = candidate;
  else game.origin += (candidate - game.origin) * 0.3;
  game.ticksSeen = (game.ticksSeen || 0) + 1;
  game.lastTick = { m: msg.m, ms: msg.ms };
}

export function onCrash(msg) {
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
  playSound('crash');
  for (const s of slots) {
    if ((s.state === 'active' || s.state === 'cashing' || s.state === 'placed') && s.round === msg.round) s.state = 'lost';
  }
  setPhaseAttr();
  markBetsDirty();
  renderPanels();
}

function applyCashouts(list) {
  for (const c of list) {
    const b = game.bets.get(betKey(c));
    if (b) Object.assign(b, { m: c.m, win: c.win });
    else game.bets.set(betKey(c), { player: c.player, slot: c.slot, amount: Math.round((c.win * 100) / c.m), m: c.m, win: c.win });
  }
  markBetsDirty();
}

/** Round totals are absolute: the newest event's replace the previous ones. */
function applyTotals(msg) {
  if (msg.totals) game.totals = msg.totals;
  keepLargestBets();
  markBetsDirty();
}

// What the player page knows: the game as the server's frames describe it, the two bet
// slots, the requests awaiting an answer, and the one connection (which resumes from
// the game's position). Every other module reads and changes these; none owns a copy.

import { Connection } from './net.js';

/** Past rounds shown as history chips, at most. */
export const HISTORY_MAX = 40;
/** Other players' bets remembered per round: the largest the ticks listed. */
export const BETS_KEPT_MAX = 100;

export const game = {
  me: null,
  myName: null, // the player's display name, once known (name.js)
  room: null, // the room's name, from hello
  balance: null,
  // The room's stake limits and max-profit cap (minor units) and highest auto cash out
  // (hundredths) as far as the page learnt them (a `limits` event, or a refusal naming
  // them); null unknown.
  limits: { min: null, max: null, cap: null, autoMax: null },
  nextLimits: null, // a `limits` event's {min, max, cap, from_round} not in force yet
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
  history: [], // [{round, m, hash}] newest first; m 0 for a round cancelled (aborted)
  bets: new Map(), // `${player}:${slot}` -> {player, slot, amount, auto, m, win}
  totals: null, // {bets, staked, cashouts, won} of the round, from the latest event
};

/** Per-slot state of the two bet panels. */
export const slots = [0, 1].map((slot) => ({
  slot,
  state: 'idle', // idle | queued | pending | placed | active | cashing | won | lost | refunded
  round: null,
  amount: 0,
  auto: null,
  win: null,
  m: null,
  req: null, // request in flight
  reqKind: null,
  reqSentAt: 0,
  queued: null, // {amount, auto} to send when the next betting phase opens
  autoBetting: false, // an auto bet runs on this panel (autobet.js): no manual bet
  el: null,
}));

/** Requests sent and not answered yet: req -> {slot, kind, message, sentAt}. */
export const pending = new Map();

/** The key of a bet in `game.bets`. */
export function betKey(b) {
  return `${b.player}:${b.slot}`;
}

/** The player's own bet in `slot` of the current round, if listed. */
export function ownBet(slot) {
  return game.me != null ? game.bets.get(`${game.me}:${slot}`) : undefined;
}

const room = new URLSearchParams(location.search).get('room') || '';

// Resume from the last event applied: the server then replays what was missed.
const position = () => (game.seq != null && game.epoch != null ? { seq: game.seq, epoch: game.epoch } : null);

export const conn = new Connection({ room, position });

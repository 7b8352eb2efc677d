// What a panel's inputs may send: the stake against the balance and the room's limits,
// the auto cash out against its range, checked before anything is sent. The sentence
// explains the problem; the panel shows it inline and disables its button.

import { formatMoney, formatMult, parseMoney, parseMultiplier } from './format.js';
import { game } from './state.js';

/** Smallest auto cash out the server takes, in hundredths (docs/protocol.md). */
export const AUTO_CASHOUT_MIN_HUNDREDTHS = 101;

/** A `limits` event: the room's stakes and cap from `from_round` on (docs/protocol.md). */
export function onLimits(msg) {
  game.nextLimits = { min: msg.min, max: msg.max, cap: msg.cap, from_round: msg.from_round };
  applyLimitsFor(game.round);
}

/** Puts the announced limits in force once betting is for their first round. */
export function applyLimitsFor(round) {
  const next = game.nextLimits;
  if (!next || round == null || round < next.from_round) return;
  game.limits.min = next.min;
  game.limits.max = next.max;
  game.limits.cap = next.cap;
  game.nextLimits = null;
}

/**
 * The bet a panel's texts describe: `{ amount, auto, problem }`, `problem` the sentence
 * saying why it cannot be sent (null when it can).
 */
export function checkBet(amountText, autoOn, autoText) {
  const amount = parseMoney(amountText);
  const auto = autoOn ? parseMultiplier(autoText) : null;
  return { amount, auto, problem: stakeProblem(amount) ?? autoProblem(autoOn, auto) };
}

/** Why a stake of `amount` cents would be refused, in words; null when it would not. */
export function stakeProblem(amount) {
  const { min, max } = game.limits;
  if (amount == null || amount <= 0) return 'Enter a bet amount, e.g. 1.00.';
  if (min != null && amount < min) return `Minimum bet is ${formatMoney(min)}.`;
  if (max != null && amount > max) return `Maximum bet is ${formatMoney(max)}.`;
  if (game.balance != null && amount > game.balance) return `Not enough balance: you have ${formatMoney(game.balance)}.`;
  return null;
}

function autoProblem(autoOn, auto) {
  if (!autoOn) return null;
  const autoMax = game.limits.autoMax;
  if (auto == null || auto < AUTO_CASHOUT_MIN_HUNDREDTHS) return `Auto cash out must be at least ${formatMult(AUTO_CASHOUT_MIN_HUNDREDTHS)}.`;
  if (autoMax != null && auto > autoMax) return `Auto cash out can be at most ${formatMult(autoMax)}.`;
  return null;
}

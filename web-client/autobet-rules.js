// Auto bet's rules, pure (no DOM, no state; format.js only, so Node can import it):
// the settings a panel's auto bet form describes, a run's counters after each settled
// bet (rounds played, profit, the next stake) and when a run stops by itself. Money is
// integer cents throughout; a stake multiplied is rounded down to the cent.

import { formatMoney, formatMult, parseMoney, parseMultiplier } from './format.js';

/** Rounds a run may be set to play, at most (empty: until stopped). */
export const AUTO_BET_ROUNDS_MAX = 10_000;
/** Largest "multiply the stake by" factor, in hundredths (100.00x). */
export const STAKE_FACTOR_MAX_HUNDREDTHS = 10_000;
/** Smallest factor, in hundredths: 1.00x keeps the stake. */
const STAKE_FACTOR_MIN_HUNDREDTHS = 100;

/**
 * The settings of a form's texts `{rounds, profitStop, lossStop, onWin, winFactor,
 * onLoss, lossFactor}` (`onWin`/`onLoss` 'base' or 'multiply'): `{settings, problem}`,
 * `problem` the sentence saying what to fix (null when none). An empty rounds, profit
 * or loss text means no such limit.
 */
export function parseAutoBetSettings(texts) {
  const rounds = optional(texts.rounds, parseRounds);
  const profitStop = optional(texts.profitStop, parseMoney);
  const lossStop = optional(texts.lossStop, parseMoney);
  const onWin = parseReaction(texts.onWin, texts.winFactor);
  const onLoss = parseReaction(texts.onLoss, texts.lossFactor);
  const problem = (rounds === undefined && `Rounds must be a whole number from 1 to ${AUTO_BET_ROUNDS_MAX.toLocaleString('en-US')}, or empty to play until stopped.`)
    || (profitStop === undefined && 'Stop at profit must be an amount, e.g. 5.00, or empty.')
    || (lossStop === undefined && 'Stop at loss must be an amount, e.g. 5.00, or empty.')
    || (onWin === undefined && factorProblem('win'))
    || (onLoss === undefined && factorProblem('loss'))
    || null;
  return { settings: problem ? null : { rounds, profitStop, lossStop, onWin, onLoss }, problem };
}

/** null for an empty text, the parsed value, or undefined when it does not parse. */
function optional(text, parse) {
  const trimmed = String(text ?? '').trim();
  if (trimmed === '') return null;
  const value = parse(trimmed);
  return value == null || value <= 0 ? undefined : value;
}

function parseRounds(text) {
  return /^\d{1,5}$/.test(text) && Number(text) <= AUTO_BET_ROUNDS_MAX ? Number(text) : null;
}

/** 'base' → {factor: null}; 'multiply' with a factor in range → {factor}; else undefined. */
function parseReaction(mode, factorText) {
  if (mode !== 'multiply') return { factor: null };
  const factor = parseMultiplier(factorText);
  const inRange = factor != null && factor >= STAKE_FACTOR_MIN_HUNDREDTHS && factor <= STAKE_FACTOR_MAX_HUNDREDTHS;
  return inRange ? { factor } : undefined;
}

function factorProblem(what) {
  return `On ${what}, multiply the stake by a number from ${formatMult(STAKE_FACTOR_MIN_HUNDREDTHS)} to ${formatMult(STAKE_FACTOR_MAX_HUNDREDTHS)}.`;
}

/** A new run of `settings` from `baseStake` cents: nothing played yet. */
export function startRun(settings, baseStake) {
  return { settings, base: baseStake, stake: baseStake, played: 0, profit: 0 };
}

/**
 * The run after its current bet settled: `outcome` is {kind: 'won', win} (the payout,
 * cents), {kind: 'lost'} or {kind: 'refunded'} (a cancelled round or bet: it does not
 * count and the stake stays).
 */
export function settle(run, outcome) {
  if (outcome.kind === 'refunded') return run;
  const won = outcome.kind === 'won';
  const reaction = won ? run.settings.onWin : run.settings.onLoss;
  return {
    ...run,
    played: run.played + 1,
    profit: run.profit + (won ? outcome.win - run.stake : -run.stake),
    stake: reaction.factor == null ? run.base : Math.floor((run.stake * reaction.factor) / 100),
  };
}

/** Why the run stops by itself before its next bet, in words; null while it goes on. */
export function stopReason(run) {
  const { rounds, profitStop, lossStop } = run.settings;
  if (rounds != null && run.played >= rounds) return `Auto bet finished: ${rounds} ${rounds === 1 ? 'round' : 'rounds'} played.`;
  if (profitStop != null && run.profit >= profitStop) {
    return `Auto bet stopped: the profit of ${formatMoney(run.profit)} reached your ${formatMoney(profitStop)} target.`;
  }
  if (lossStop != null && -run.profit >= lossStop) {
    return `Auto bet stopped: the loss of ${formatMoney(-run.profit)} reached your ${formatMoney(lossStop)} limit.`;
  }
  return null;
}

/** Rounds still to play, or null for a run until stopped. */
export function roundsLeft(run) {
  return run.settings.rounds == null ? null : Math.max(0, run.settings.rounds - run.played);
}

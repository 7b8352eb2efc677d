// Plain words: what the server's error codes and close codes mean to a player. Every
// code of docs/protocol.md has a sentence here; a code this page does not know gets a
// generic sentence, never the server's developer text (which stays in the console).

import { formatMoney, formatMult } from './format.js';
import { game } from './state.js';

/** Sentences for the codes of `error`, `bet_err`, `cancel_err`, `cashout_err` and `name_err`
 *  (docs/protocol.md); by request kind where the code means different things. */
const SENTENCES = {
  bad_json: 'The page sent something the server could not read. Reload the page.',
  unknown_type: 'The page and the server do not understand each other. Reload the page.',
  invalid_field: 'That request was not valid.',
  wrong_phase: {
    bet: 'Bets are taken only before take-off. Try again in the next round.',
    cashout: 'You can cash out only while the plane is flying.',
    cancel: 'A bet can be cancelled only before take-off.',
  },
  insufficient_funds: 'Not enough balance for this bet.',
  slot_taken: 'This panel already has a bet in this round.',
  no_active_bet: {
    cashout: 'There is no bet to cash out in this panel.',
    cancel: 'There is no confirmed bet to cancel in this panel.',
  },
  too_late: {
    cashout: 'Too late: the plane flew away before your cash out arrived.',
    cancel: 'Too late: betting had closed, so your bet is in this round.',
  },
  rate_limited: 'You are clicking too fast. Wait a moment and try again.',
  overloaded: 'The game is very busy right now. Try again in a moment.',
  internal: 'Something went wrong on our side; nothing was charged. Try again.',
  unavailable: 'The game cannot take this right now; nothing was charged. Try again in a few seconds.',
  invalid_limits: 'Those room limits cannot be used.',
  already_paused: 'The room is already paused.',
  not_paused: 'The room is not paused.',
  chat_rate_limited: 'You are sending messages too fast. Wait a few seconds.',
  muted: 'An operator has silenced you in the chat: your messages are not shown to others.',
  invalid_name: 'A name has 3 to 16 letters, digits, spaces, dots, dashes or underscores, and cannot look like the house, the staff or a guest.',
  name_taken: 'Another player already has that name (or one too like it). Pick another.',
};

const GENERIC = 'Something went wrong. Try again in a moment.';

/** The stake range the server names in an `invalid_field` refusal of a stake. */
const STAKE_RANGE = /(\d+)\.\.=(\d+) minor units/;
/** The auto cash out range the server names in an `invalid_field` refusal. */
const AUTO_RANGE = /auto must be (\d+)\.\.=(\d+) hundredths/;

/**
 * The sentence for a refusal `msg` ({code, message}) of a request `kind` ('bet',
 * 'cancel', 'cashout' or undefined) that carried `sent` (the request's frame, if known).
 */
export function refusalSentence(msg, kind, sent) {
  if (msg.code === 'invalid_field' && kind === 'bet') return invalidBetSentence(msg.message, sent);
  const entry = SENTENCES[msg.code];
  if (entry == null) {
    console.warn('[aloft] unknown error code', msg.code, msg.message);
    return GENERIC;
  }
  if (typeof entry === 'string') return entry;
  // A code told apart by kind, for a frame of no request (`error`): its first sentence.
  return entry[kind] ?? Object.values(entry)[0];
}

/** A stake or auto cash out out of range: the room's limit in words (learnt from the
 *  refusal when no `limits` event told the page before). */
function invalidBetSentence(text, sent) {
  const stake = STAKE_RANGE.exec(text ?? '');
  if (stake) {
    game.limits.min = Number(stake[1]);
    game.limits.max = Number(stake[2]);
    const amount = sent?.amount;
    if (amount != null && amount > game.limits.max) return `Maximum bet is ${formatMoney(game.limits.max)}.`;
    return `Minimum bet is ${formatMoney(game.limits.min)}.`;
  }
  const auto = AUTO_RANGE.exec(text ?? '');
  if (auto) {
    game.limits.autoMax = Number(auto[2]);
    return `Auto cash out must be between ${formatMult(Number(auto[1]))} and ${formatMult(game.limits.autoMax)}.`;
  }
  return 'This bet is not allowed in this room.';
}

/** Why a socket closed, in words, from its close code (docs/protocol.md). */
export function closeSentence(code) {
  switch (code) {
    case 1001: return 'the server is restarting';
    case 1008: return 'too many messages were sent';
    case 1011: return 'the server could not read your balance';
    case 4001: return 'the connection was too slow';
    case 4002: return 'the connection was idle';
    case 4003: return 'the server did not accept this session';
    default: return 'connection lost';
  }
}

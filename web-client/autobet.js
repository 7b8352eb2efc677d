// Auto bet, per panel (as Bustabit's and Aviator's): the panel's amount is the base
// stake and its auto cash out where every bet cashes out; the form says how many rounds,
// when to stop (profit, loss) and what a win or a loss does to the stake
// (autobet-rules.js). Each bet goes out when a betting phase opens, through the same
// request path as a manual bet (requests.js). A run follows its bet on the panel's slot:
// a win or a refund counts as soon as the panel shows it, a loss when the next betting
// phase opens (a cashout decided at the crash is reported just after it). It stops by
// itself on any refusal, and before a bet that the stake check (stake-check.js) says
// would be refused. It keeps running across reconnects (as Bustabit's scripts do), never
// bets twice in a round, and settles a bet whose result it may have missed while away
// from GET /api/me/bets. The form's texts are kept in localStorage per panel.

import { parseAutoBetSettings, roundsLeft, settle, startRun, stopReason } from './autobet-rules.js';
import { toast } from './dom.js';
import { formatMoney } from './format.js';
import { refusalSentence } from './messages.js';
import { fetchMyBets } from './my-bets.js';
import { renderPanels, typedBet } from './panels.js';
import { sendBet } from './requests.js';
import { stakeProblem } from './stake-check.js';
import { conn, game, slots } from './state.js';

/** A run started with less of the betting phase left than this (ms) waits for the next. */
const BETTING_LEFT_MIN_MS = 500;
/** Slot states in which a new bet may go out. */
const FREE_STATES = ['idle', 'won', 'lost', 'refunded'];
/** The form's fields: the setting each holds → its selector in the panel. */
const FIELDS = {
  rounds: '.autobet-rounds',
  profitStop: '.autobet-profit',
  lossStop: '.autobet-loss',
  onWin: '.autobet-on-win',
  winFactor: '.autobet-win-factor',
  onLoss: '.autobet-on-loss',
  lossFactor: '.autobet-loss-factor',
};

/** Per slot, the latest run: {running, run, auto, open, lastRound, message}; null
 *  before the first start. `open` is the bet placed and not settled yet. */
const autoBets = [null, null];

/** Wires each panel's auto bet form (after buildPanels). */
export function buildAutoBets() {
  for (const s of slots) {
    const form = s.el.querySelector('.autobet');
    restoreForm(s.slot, form);
    for (const field of form.querySelectorAll('input, select')) {
      field.addEventListener('change', () => { saveForm(s.slot, form); render(s); });
    }
    form.querySelector('.autobet-toggle').addEventListener('click', () => {
      if (autoBets[s.slot]?.running) stop(s, autoBets[s.slot], 'Auto bet stopped.', false);
      else start(s);
    });
    render(s);
  }
}

function readForm(form) {
  return Object.fromEntries(Object.entries(FIELDS).map(([name, selector]) => [name, form.querySelector(selector).value]));
}

function restoreForm(slot, form) {
  const saved = JSON.parse(localStorage.getItem(`aloft.autobet${slot}`) || 'null') ?? {};
  for (const [name, selector] of Object.entries(FIELDS)) {
    if (saved[name] != null) form.querySelector(selector).value = saved[name];
  }
}

function saveForm(slot, form) {
  localStorage.setItem(`aloft.autobet${slot}`, JSON.stringify(readForm(form)));
}

/** Starts slot `s`'s run from its form and panel, or says why it cannot. */
function start(s) {
  const { settings, problem } = parseAutoBetSettings(readForm(s.el.querySelector('.autobet')));
  const bet = typedBet(s);
  const why = problem ?? bet.problem ?? (bet.auto == null ? 'Turn on the auto cash out above: every auto bet cashes out there.' : null);
  if (why) {
    autoBets[s.slot] = { ...autoBets[s.slot], running: false, message: `Auto bet not started. ${why}` };
    render(s);
    return;
  }
  if (s.state === 'queued') Object.assign(s, { state: 'idle', queued: null });
  const a = { running: true, run: startRun(settings, bet.amount), auto: bet.auto, open: null, lastRound: null, message: '' };
  autoBets[s.slot] = a;
  s.autoBetting = true;
  placeNext(s, a);
  renderPanels();
  render(s);
}

/** Ends slot `s`'s run with `message` (a toast too when it stopped by itself); a bet
 *  in play still settles into its counters. */
function stop(s, a, message, announce = true) {
  Object.assign(a, { running: false, message });
  s.autoBetting = false;
  if (announce) toast(message, 'notice');
  renderPanels();
  render(s);
}

/** Follows every frame after the page applied it (app.js): the runs' bets and the
 *  betting phases they bet in. */
export function afterFrame(msg) {
  for (const s of slots) {
    const a = autoBets[s.slot];
    if (!a?.run) continue;
    if (a.open) followOpenBet(s, a, msg);
    if (a.running && !a.open && bettingOpened(msg)) placeNext(s, a);
    render(s);
  }
}

/** A betting phase the page just entered: its event, or a snapshot taken during one. */
function bettingOpened(msg) {
  return msg.t === 'betting' || (msg.t === 'snapshot' && game.phase === 'betting');
}

function followOpenBet(s, a, msg) {
  const open = a.open;
  if (open.checking) return;
  if (msg.t === 'bet_err' && msg.req === open.req) {
    a.open = null;
    stop(s, a, `Auto bet stopped. ${refusalSentence(msg, 'bet', { amount: open.stake })}`);
    return;
  }
  if (msg.t === 'bet_ok' && msg.req === open.req) Object.assign(open, { confirmed: true, round: msg.round });
  // Private frames sent while the page was away are lost: a loss seen since may have
  // been a cashout the page never heard of.
  if (msg.t === 'hello') open.uncertain = true;
  open.outcome = outcomeOnPanel(s, open) ?? open.outcome;
  if (open.outcome && open.outcome.kind !== 'lost') {
    settleOpen(s, a, open.outcome);
  } else if (bettingOpened(msg) && game.round > open.round) {
    if (open.outcome && !open.uncertain) settleOpen(s, a, open.outcome);
    else settleFromServer(s, a, open);
  }
}

/** What slot `s` shows of the open bet's round: won, lost, refunded, or null. */
function outcomeOnPanel(s, open) {
  if (s.round !== open.round || !open.confirmed) return null;
  if (s.state === 'won') return { kind: 'won', win: s.win };
  if (s.state === 'lost') return { kind: 'lost' };
  if (s.state === 'refunded' || s.state === 'cancelled') return { kind: 'refunded' };
  return null;
}

function settleOpen(s, a, outcome) {
  a.open = null;
  a.run = settle(a.run, outcome);
  const reason = stopReason(a.run);
  if (reason && a.running) stop(s, a, reason);
}

/** The open bet's result as the ledger recorded it (the page may have missed it). */
async function settleFromServer(s, a, open) {
  open.checking = true;
  let outcome = null;
  try {
    const bets = await fetchMyBets();
    const found = bets.find((b) => b.round === open.round && b.slot === s.slot && (game.room == null || b.room === game.room));
    outcome = found ? recordedOutcome(found) : null;
  } catch (error) {
    console.warn('[aloft] auto bet: bets not loaded', error);
  }
  if (a.open !== open) return;
  if (!outcome) {
    a.open = null;
    const why = open.confirmed ? `the result of round ${open.round} could not be checked after the connection was lost (see My bets)` : 'the server did not answer its bet';
    stop(s, a, `Auto bet stopped: ${why}.`);
    return;
  }
  settleOpen(s, a, outcome);
  if (a.running && game.phase === 'betting') placeNext(s, a);
  render(s);
}

/** A bet of GET /api/me/bets as a run's outcome (its round is over: unsettled is lost). */
function recordedOutcome(bet) {
  if (bet.outcome.kind === 'paid_out') return { kind: 'won', win: bet.outcome.payout_minor };
  if (bet.outcome.kind === 'refunded') return { kind: 'refunded' };
  return { kind: 'lost' };
}

/** The run's next bet in this betting phase (if it has time left, and the slot has no
 *  bet in it yet), unless it must stop first. */
function placeNext(s, a) {
  const bettingLeft = game.phase === 'betting' ? game.endsAt - conn.serverNow() : 0;
  if (bettingLeft < BETTING_LEFT_MIN_MS || (a.lastRound != null && game.round <= a.lastRound)) return;
  if (!FREE_STATES.includes(s.state)) return;
  const problem = stakeProblem(a.run.stake);
  const reason = stopReason(a.run) ?? (problem && `Auto bet stopped before its ${formatMoney(a.run.stake)} bet. ${problem}`);
  if (reason) {
    stop(s, a, reason);
    return;
  }
  sendBet(s, a.run.stake, a.auto);
  a.open = { req: s.req, stake: a.run.stake, round: game.round, confirmed: false, outcome: null, uncertain: false };
  a.lastRound = game.round;
}

/** Draws slot `s`'s form: its counters, its button, its message. */
function render(s) {
  const a = autoBets[s.slot];
  const form = s.el.querySelector('.autobet');
  const running = Boolean(a?.running);
  form.dataset.running = String(running);
  for (const field of form.querySelectorAll('input, select')) field.disabled = running;
  // A factor matters only when its reaction multiplies the stake.
  for (const on of ['win', 'loss']) {
    if (form.querySelector(`.autobet-on-${on}`).value !== 'multiply') form.querySelector(`.autobet-${on}-factor`).disabled = true;
  }
  const toggle = form.querySelector('.autobet-toggle');
  toggle.textContent = running ? 'Stop auto bet' : 'Start auto bet';
  toggle.dataset.kind = running ? 'stop' : 'start';
  const run = a?.run;
  const left = run ? roundsLeft(run) : null;
  setCounter(form, '.autobet-played', run?.played ?? 0, run ? `${run.played}${left == null ? '' : ` · ${left} left`}` : '0');
  const profit = run?.profit ?? 0;
  setCounter(form, '.autobet-result', profit, `${profit > 0 ? '+' : ''}${formatMoney(profit)}`);
  form.querySelector('.autobet-result').dataset.sign = profit > 0 ? 'up' : profit < 0 ? 'down' : 'even';
  setCounter(form, '.autobet-stake', run?.stake ?? '', run ? formatMoney(run.stake) : '—');
  const message = form.querySelector('.autobet-message');
  if (message.textContent !== (a?.message ?? '')) message.textContent = a?.message ?? '';
  form.querySelector('.autobet-summary-state').textContent = running ? ' · on' : '';
}

function setCounter(form, selector, value, text) {
  const el = form.querySelector(selector);
  el.dataset.value = String(value);
  if (el.textContent !== text) el.textContent = text;
}

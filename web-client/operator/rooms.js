// One card per room: phase, the live multiplier curve (the player page's FlightChart),
// the round's stakes, the stake at risk against the max-profit cap, cashouts as they
// happen and the last crash points. Frames update the cards' state; one animation loop
// draws every card's curve between ticks.

import { FlightChart } from '../chart.js';
import { curveAt, formatCents, formatMult, msForMult, multClass, shortPlayer } from '../format.js';
import { wireRoomControls } from './admin.js';

/** Cashouts listed per card, at most. */
const CASHOUTS_SHOWN_MAX = 20;
/** Crash points listed per card, at most. */
const CRASHES_SHOWN_MAX = 12;
/** How far past the last tick the drawn multiplier may run, in ms. */
const AHEAD_OF_TICK_MS_MAX = 300;

/** Server time minus local time, in ms (from the snapshot). */
let clockOffsetMs = 0;
export function setServerTime(serverTimeMs) {
  clockOffsetMs = serverTimeMs - Date.now();
}
const serverNow = () => Date.now() + clockOffsetMs;

class RoomCard {
  constructor(report, container, onAction) {
    const fragment = document.getElementById('room-template').content.cloneNode(true);
    this.el = fragment.querySelector('.room');
    this.el.dataset.room = report.room;
    this.el.querySelector('.room-name').textContent = report.room;
    wireRoomControls(this.el, report.room, onAction);
    container.append(fragment);
    this.chart = new FlightChart(this.el.querySelector('.curve'));
    this.lastTick = null;
    this.crashedAt = null;
    this.apply(report);
  }

  q(selector) {
    return this.el.querySelector(selector);
  }

  /** A room's whole state (snapshot). */
  apply(report) {
    this.round = report.round;
    this.startedAt = report.started_at_ms;
    this.el.dataset.paused = String(report.paused);
    this.setPhase(report.phase, report.multiplier_hundredths);
    this.setRisk(report.risk);
    this.q('.cashouts').replaceChildren();
    for (const cashout of [...report.cashouts].reverse()) this.addCashout(cashout);
    this.q('.crashes').replaceChildren();
    for (const m of [...report.crash_points_hundredths].reverse()) this.addCrash(m);
  }

  setPhase(phase, m) {
    this.phase = phase;
    this.m = m;
    this.el.dataset.phase = phase;
    this.q('.phase').textContent = phase;
    this.q('.round').textContent = `round ${this.round}`;
    if (phase === 'betting') {
      this.lastTick = null;
      this.crashedAt = null;
      this.q('.cashouts').replaceChildren();
    }
    if (phase === 'crashed') this.crashedAt = performance.now();
    this.showMultiplier(m);
  }

  showMultiplier(m) {
    const out = this.q('.multiplier');
    out.dataset.m = String(m);
    out.textContent = formatMult(m);
  }

  setRisk(risk) {
    this.q('.bets').textContent = String(risk.bets);
    this.q('.staked').textContent = formatCents(risk.staked_minor);
    this.q('.at-risk').textContent = formatCents(risk.at_risk_minor);
    this.q('.paid').textContent = formatCents(risk.paid_minor);
    const exposure = Math.max(0, risk.exposure_minor);
    const percent = risk.cap_minor > 0 ? Math.min(100, Math.floor((exposure * 100) / risk.cap_minor)) : 0;
    this.q('.cap-text').textContent = `${formatCents(exposure)} / ${formatCents(risk.cap_minor)}`;
    const bar = this.q('.bar');
    bar.setAttribute('aria-valuenow', String(percent));
    bar.dataset.level = percent >= 90 ? 'high' : percent >= 60 ? 'mid' : 'low';
    this.q('.bar-fill').style.width = `${percent}%`;
  }

  addCashout(cashout) {
    const li = document.createElement('li');
    li.dataset.kind = cashout.kind;
    li.dataset.player = cashout.player;
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = shortPlayer(cashout.player);
    who.title = cashout.player;
    const what = document.createElement('span');
    what.textContent = `${formatMult(cashout.multiplier_hundredths)} → ${formatCents(cashout.win_minor)}`;
    const kind = document.createElement('span');
    kind.className = 'kind';
    kind.textContent = cashout.kind;
    li.append(who, what, kind);
    const list = this.q('.cashouts');
    list.prepend(li);
    while (list.children.length > CASHOUTS_SHOWN_MAX) list.lastElementChild.remove();
  }

  addCrash(m) {
    const li = document.createElement('li');
    li.className = `chip ${multClass(m)}`;
    li.dataset.m = String(m);
    li.textContent = formatMult(m);
    const list = this.q('.crashes');
    list.prepend(li);
    while (list.children.length > CRASHES_SHOWN_MAX) list.lastElementChild.remove();
  }

  frame(frame) {
    this.round = frame.round;
    switch (frame.t) {
      case 'phase':
        this.startedAt = frame.started_at_ms;
        this.setPhase(frame.phase, frame.multiplier_hundredths);
        break;
      case 'tick':
        this.m = frame.multiplier_hundredths;
        this.lastTick = { ms: frame.elapsed_ms, at: performance.now() };
        this.setRisk(frame.risk);
        if (this.phase !== 'flying') this.showMultiplier(this.m);
        break;
      case 'bet':
        this.el.dataset.lastBet = frame.player;
        break;
      case 'bet_cancelled':
        this.setRisk(frame.risk);
        break;
      case 'paused':
        this.el.dataset.paused = String(frame.paused);
        break;
      case 'cashout':
        this.addCashout(frame);
        break;
      case 'crash':
        this.setPhase('crashed', frame.multiplier_hundredths);
        this.setRisk(frame.risk);
        this.addCrash(frame.multiplier_hundredths);
        break;
      default:
    }
  }

  /** Milliseconds since take-off to draw now, never far past the last tick. */
  elapsed() {
    if (this.startedAt == null) return 0;
    let elapsed = serverNow() - this.startedAt;
    if (this.lastTick) {
      const sinceTick = performance.now() - this.lastTick.at;
      elapsed = Math.min(elapsed, this.lastTick.ms + Math.min(sinceTick, AHEAD_OF_TICK_MS_MAX));
    }
    return Math.max(0, elapsed);
  }

  draw(now) {
    const flying = this.phase === 'flying';
    // A crashed round's curve ends where it crashed.
    const elapsed = flying ? this.elapsed() : this.phase === 'crashed' ? msForMult(this.m) : 0;
    const m = flying ? Math.max(this.m, curveAt(elapsed)) : this.m;
    if (flying) this.showMultiplier(m);
    this.chart.draw({
      phase: this.phase,
      elapsed,
      m,
      now,
      sinceCrash: this.crashedAt == null ? 0 : now - this.crashedAt,
    });
  }
}

/** Every room's card, by room name. */
export class RoomCards {
  constructor(container, onAction) {
    this.container = container;
    this.onAction = onAction;
    this.cards = new Map();
    const loop = (now) => {
      for (const card of this.cards.values()) card.draw(now);
      requestAnimationFrame(loop);
    };
    requestAnimationFrame(loop);
  }

  /** The rooms of a snapshot: cards made or brought up to date. */
  snapshot(reports) {
    for (const report of reports) {
      const card = this.cards.get(report.room);
      if (card) card.apply(report);
      else this.cards.set(report.room, new RoomCard(report, this.container, this.onAction));
    }
  }

  frame(frame) {
    this.cards.get(frame.room)?.frame(frame);
  }
}

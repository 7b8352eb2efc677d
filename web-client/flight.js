// Where the plane is now: the multiplier and elapsed time to display, interpolated
// between the server's ticks from the game state.

import { curveAt } from './format.js';
import { game } from './state.js';

/** How far past the last tick the display may run, in ms, at most. */
const AHEAD_OF_TICK_MS_MAX = 250;

/** Milliseconds since take-off to display now (0 unless flying). */
export function displayElapsed() {
  if (game.phase !== 'flying' || game.origin == null) return 0;
  let elapsed = performance.now() - game.origin;
  // Never run more than ~one tick ahead of what the server last said: if ticks stop
  // (network stall, crash on its way) the display waits rather than overshooting.
  if (game.lastTick) elapsed = Math.min(elapsed, game.lastTick.ms + Math.min(AHEAD_OF_TICK_MS_MAX, game.tickInterval * 1.2));
  return Math.max(0, elapsed);
}

/** Multiplier to display now, in hundredths (interpolated between ticks). */
export function displayMult() {
  if (game.phase === 'crashed') return game.crashM ?? 100;
  if (game.phase !== 'flying') return 100;
  return curveAt(displayElapsed());
}

// The room's finished rounds as GET /api/rounds lists them (newest first, aborted ones
// with `m` 0 and status "aborted", each with its revealed hash and totals): read by the
// history chips' round dialog and the cancelled-rounds check after a snapshot.

import { game } from './state.js';

/** The room's last `limit` finished rounds; throws when they cannot be loaded. */
export async function fetchPastRounds(limit) {
  const room = game.room ? `&room=${encodeURIComponent(game.room)}` : '';
  const response = await fetch(`/api/rounds?limit=${limit}${room}`, { cache: 'no-store' });
  if (!response.ok) throw new Error(`/api/rounds: HTTP ${response.status}`);
  return response.json();
}

// aloft player page, the entry module: routes each frame of the wire protocol v1 (see
// docs/protocol.md / src/protocol.rs) to the module that owns it, and starts the page.
//
//   state.js     what the page knows (game, slots, pending requests, the connection)
//   round.js     public events: hello, snapshot, betting, bet_cancelled, flying, tick, crash
//   requests.js  the player's bets, cancels and cashouts and their private replies
//   panels.js    the two bet panels;  live-bets.js  the live list;  history.js  the chips
//   hud.js       header and stage labels;  animation.js  the per-frame drawing (chart.js)
//   flight.js    the multiplier to display between ticks;  dom.js  $ and toasts
//   messages.js  error and close codes in plain words;  stake-check.js  a bet's checks
//   refunds.js   cancelled rounds and refunds;  sound.js  the sound effects
//   my-bets.js   the player's own latest bets (GET /api/me/bets)
//   chat.js      the room's chat;  name.js  the player's display name
//   autobet.js   auto bet per panel (autobet-rules.js);  round-dialog.js  a chip's round
//   rules.js     the rules dialog;  bets-tabs.js  the live list's All / My / Top tabs

import { afterFrame, buildAutoBets } from './autobet.js';
import { wireBetsTabs } from './bets-tabs.js';
import { FlightChart } from './chart.js';
import { $, toast } from './dom.js';
import { startAnimation } from './animation.js';
import { wireHistoryKeys } from './history.js';
import { onStatus, renderLag } from './hud.js';
import { renderBets } from './live-bets.js';
import { refusalSentence } from './messages.js';
import { buildPanels, currentSlot, renderPanels } from './panels.js';
import {
  onAction, onBalance, onBetErr, onBetOk, onCancelErr, onCancelOk, onCashoutErr, onCashoutOk, startRequestTimeouts,
} from './requests.js';
import { onBetCancelled, onBetting, onCrash, onFlying, onHello, onSnapshot, onTick } from './round.js';
import { refreshMyBets, wireMyBets } from './my-bets.js';
import { wireRoundDialog } from './round-dialog.js';
import { wireRules } from './rules.js';
import { buildSoundToggle } from './sound.js';
import { loadChat, onChat, onChatRefused, renderChatEnabled, wireChat } from './chat.js';
import { loadMyName, onNameErr, onNameOk, wireName } from './name.js';
import { onLimits } from './stake-check.js';
import { conn, game, slots } from './state.js';

function onFrame(msg) {
  // Public events carry `seq`: drop what a snapshot already included.
  if (typeof msg.seq === 'number' && msg.t !== 'snapshot') {
    if (game.seq != null && msg.seq <= game.seq) return;
    if (game.seq != null && msg.seq !== game.seq + 1 && msg.t !== 'tick') {
      console.warn(`[aloft] event gap: ${game.seq} -> ${msg.seq}`);
    }
    game.seq = msg.seq;
  }
  switch (msg.t) {
    case 'hello': onHello(msg); return loadMyName();
    case 'snapshot': onSnapshot(msg); return loadChat(msg.chat);
    case 'chat': return onChat(msg);
    case 'name_ok': return onNameOk(msg);
    case 'name_err': return onNameErr(msg);
    case 'betting': return onBetting(msg);
    case 'flying': return onFlying(msg);
    case 'tick': return onTick(msg);
    case 'crash': onCrash(msg); return refreshMyBets();
    case 'bet_cancelled': return onBetCancelled(msg);
    case 'bet_ok': return onBetOk(msg);
    case 'bet_err': return onBetErr(msg);
    case 'cancel_ok': onCancelOk(msg); return refreshMyBets();
    case 'cancel_err': return onCancelErr(msg);
    case 'cashout_ok': onCashoutOk(msg); return refreshMyBets();
    case 'cashout_err': return onCashoutErr(msg);
    case 'balance': return onBalance(msg);
    case 'limits': return onLimits(msg);
    case 'error': return onChatRefused(msg) || toast(refusalSentence(msg));
    case 'pong': return renderLag();
    default: return undefined;
  }
}

// Keyboard: Space bets or cashes out on the panel focused last (bet 1 at first), unless
// the focus is on a control of its own (a field, a button, a link, the auto bet form's
// summary) or in the round dialog.
document.addEventListener('keydown', (e) => {
  if (e.code !== 'Space' || e.repeat) return;
  if (e.target instanceof Element && e.target.closest('input, button, a, textarea, select, summary, dialog')) return;
  e.preventDefault();
  const s = currentSlot();
  if (!s.el.querySelector('.action').disabled) onAction(s);
});

buildPanels(onAction);
buildAutoBets();
wireRoundDialog();
wireRules();
wireBetsTabs(renderBets);
wireHistoryKeys();
buildSoundToggle();
wireMyBets();
wireChat();
wireName();
renderPanels();
renderBets();
startRequestTimeouts();
// Auto bet acts once the page applied a frame (a replayed frame changes nothing there).
conn.start({
  onFrame: (msg) => {
    onFrame(msg);
    afterFrame(msg);
  },
  onStatus: (...status) => {
    onStatus(...status);
    renderChatEnabled();
  },
});
startAnimation(new FlightChart($('chart')));

// Test/debug hook (read-only view of the state).
window.aloft = { game, slots, conn };

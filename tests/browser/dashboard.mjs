#!/usr/bin/env node
// End-to-end browser test of the operator console.
//
//   ALOFT_OPERATOR__TOKEN=... node tests/browser/dashboard.mjs http://127.0.0.1:18080
//
// The server must run with the same ALOFT_OPERATOR__TOKEN. Launches Debian's headless
// chromium through playwright-core, opens /dashboard, is refused with a wrong token, logs
// in with the right one, watches live rounds (phase changes, the multiplier climbing),
// sees a bet placed by a player in a second page (a guest's WebSocket) show up in the
// console, checks the house, traffic and cluster (the engine leading the room) panels,
// saves screenshots at 1280 px and 375 px to docs/img/dashboard.png and
// docs/img/dashboard-phone.png, presses Pause on the room and sees betting stop after
// the round, then Resume, with both in the audit list, looks up the bettor and mutes
// then unmutes it (the player panel's Chat line, both in the audit list), and logs out. Prints PASS/FAIL
// lines; exits non-zero on any failure; bounded to 150 s.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { check, finish, info, launch, pass, serverUrl, waitUntil } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const imgDir = path.resolve(here, '../../docs/img');
const token = process.env.ALOFT_OPERATOR__TOKEN || '';
const usage = 'usage: ALOFT_OPERATOR__TOKEN=<the server\'s, 32+ bytes> node tests/browser/dashboard.mjs http://127.0.0.1:PORT';
const base = serverUrl(usage, token.length >= 32);

/** What the console shows, from the DOM attributes it keeps. */
async function state(page) {
  return page.evaluate(() => {
    const room = document.querySelector('.room[data-room="main"]');
    const cell = (selector) => room?.querySelector(selector)?.textContent ?? null;
    return {
      view: document.body.dataset.view,
      conn: document.getElementById('conn').dataset.state,
      loginError: document.getElementById('login-error').textContent,
      phase: room?.dataset.phase ?? null,
      round: room ? Number(cell('.round')?.replace(/\D/g, '')) : null,
      m: room ? Number(room.querySelector('.multiplier').dataset.m) : null,
      lastBet: room?.dataset.lastBet ?? null,
      bets: room ? Number(cell('.bets')) : null,
      staked: cell('.staked'),
      cashoutPlayers: room ? [...room.querySelectorAll('.cashouts li')].map((li) => li.dataset.player) : [],
      crashes: room ? room.querySelectorAll('.crashes li').length : 0,
      houseRows: document.querySelectorAll('#house tbody tr').length,
      trafficAt: document.getElementById('traffic').dataset.at ?? null,
      connections: document.getElementById('traffic-connections').textContent,
      mainLeader: document.querySelector('#cluster-rooms li[data-room="main"]')?.dataset.leader ?? null,
      aliveEngines: [...document.querySelectorAll('#cluster-engines li[data-alive="true"]')].map((li) => li.dataset.engine),
      aliveGateways: document.querySelectorAll('#cluster-gateways li[data-alive="true"]').length,
      paused: room?.dataset.paused ?? null,
      controlStatus: cell('.control-status'),
      audit: [...document.querySelectorAll('#audit li')].map((li) => li.dataset.action),
      auditText: document.querySelector('#audit li')?.textContent ?? '',
      playerChat: document.getElementById('player-chat').textContent,
      playerStatus: document.getElementById('player-status').textContent,
      seen: window.aloftConsole?.seen ?? {},
    };
  });
}

function waitFor(page, description, predicate, timeoutMs) {
  const describe = (s) => `view=${s.view}, conn=${s.conn}, phase=${s.phase}, m=${s.m}`;
  return waitUntil(page, state, description, predicate, timeoutMs, describe);
}

/** A guest in its own page: a WebSocket authenticated by its first message, that bets
 * `amount` cents with an auto-cashout at 1.01x in the next betting phase. Resolves to
 * the player id and the bet_ok frame. */
async function betFromAnotherPage(playerPage, amount) {
  return playerPage.evaluate(async (amountCents) => {
    const guest = await (await fetch('/api/guest', { method: 'POST' })).json();
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    window.playerSocket = ws;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no bet_ok in 40 s')), 40_000);
      let sent = false;
      ws.onopen = () => ws.send(JSON.stringify({ t: 'auth', token: guest.token }));
      ws.onmessage = (message) => {
        const frame = JSON.parse(message.data);
        const betting = frame.t === 'betting' || (frame.t === 'snapshot' && frame.phase === 'betting');
        if (betting && !sent) {
          sent = true;
          ws.send(JSON.stringify({ t: 'bet', req: 'console-test', amount: amountCents, auto: 101, slot: 0 }));
        }
        if (frame.t === 'bet_ok' || frame.t === 'bet_err') {
          clearTimeout(timer);
          resolve({ player: guest.player, reply: frame });
        }
      };
    });
  }, amount);
}

async function main() {
  fs.mkdirSync(imgDir, { recursive: true });
  const context = await launch({ width: 1280, height: 900 });
  const page = context.pages()[0] ?? await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().includes('401')) pageErrors.push(`console: ${m.text()}`); });
  const socketUrls = [];
  page.on('websocket', (ws) => socketUrls.push(ws.url()));

  // 1. The login form (a name, the token), then a wrong token, then the right one.
  await page.goto(`${base}/dashboard`, { waitUntil: 'domcontentloaded', timeout: 10_000 });
  let s = await waitFor(page, 'login form', (x) => x.view === 'login', 10_000);
  check('login form shown', await page.isVisible('#token') && await page.isVisible('#operator'), `input type=${await page.getAttribute('#token', 'type')}`);
  check('token input is a password field', (await page.getAttribute('#token', 'type')) === 'password');
  await page.fill('#operator', 'browser-test');
  await page.fill('#token', `${token}-wrong`);
  await page.click('#login-submit');
  s = await waitFor(page, 'refusal', (x) => x.loginError !== '', 10_000);
  check('wrong token refused', s.view === 'login' && /wrong/i.test(s.loginError), s.loginError);
  await page.fill('#token', token);
  await page.press('#token', 'Enter');
  s = await waitFor(page, 'live console', (x) => x.view === 'console' && x.conn === 'live' && x.phase != null, 15_000);
  pass('logged in, operator socket live', `room main ${s.phase}, round ${s.round}`);
  // The cookie's Path is /api: ask for the cookies an /api request would carry.
  const apiUrl = `${base}/api/operator/session`;
  const session = (await context.cookies(apiUrl)).find((c) => c.name === 'aloft_operator');
  check('session cookie is HttpOnly and SameSite=Strict', session?.httpOnly === true && session?.sameSite === 'Strict', session ? `path ${session.path}` : 'no cookie');
  check('no token in any socket URL', socketUrls.length > 0 && socketUrls.every((u) => !u.includes('token')), socketUrls.join(' '));

  // 2. Live rounds: a phase change, then the multiplier climbing in flight.
  const firstPhase = s.phase;
  s = await waitFor(page, 'a phase change', (x) => x.phase !== firstPhase, 20_000);
  pass('phase changes live', `${firstPhase} → ${s.phase}`);
  s = await waitFor(page, 'flying', (x) => x.phase === 'flying', 20_000);
  const m0 = s.m;
  s = await waitFor(page, 'the multiplier to move', (x) => x.phase !== 'flying' || x.m > m0, 10_000);
  check('multiplier moves while flying', s.m > m0 || s.phase === 'crashed', `${m0} → ${s.m} (${s.phase})`);

  // 3. A bet from another page shows up in the console.
  const playerPage = await context.newPage();
  playerPage.on('pageerror', (e) => pageErrors.push(`player: ${e.message}`));
  await playerPage.goto(`${base}/verify.html`, { waitUntil: 'domcontentloaded', timeout: 10_000 });
  const { player, reply } = await betFromAnotherPage(playerPage, 500);
  check('the player\'s bet accepted', reply.t === 'bet_ok', `${player}: ${JSON.stringify(reply)}`);
  s = await waitFor(page, 'the bet in the console', (x) => x.lastBet === player, 10_000);
  check('bet shown in the console', s.lastBet === player && s.bets >= 1, `bets ${s.bets}, staked ${s.staked}`);
  const betRound = s.round;
  // Its auto-cashout at 1.01x shows as it happens, unless the round crashes below 1.01x.
  s = await waitFor(page, 'the cashout or the crash', (x) => x.cashoutPlayers.includes(player) || (x.round === betRound && x.phase === 'crashed') || x.round > betRound, 30_000);
  if (s.cashoutPlayers.includes(player)) pass('auto cashout shown as it happened', `${player} in round ${betRound}`);
  else info(`round ${betRound} crashed below 1.01x: no cashout to show`);
  s = await waitFor(page, 'house figures', (x) => x.houseRows >= 2, 10_000);
  await waitFor(page, 'a flight to show', (x) => x.phase === 'flying' && x.m > 105, 25_000);
  await shot(page, 'dashboard.png');
  check('house panel filled', s.houseRows >= 2, `${s.houseRows} rows`);
  s = await waitFor(page, 'traffic', (x) => x.trafficAt != null, 5_000);
  check('traffic panel counts the player socket', Number(s.connections) >= 1, `connections ${s.connections}`);
  s = await waitFor(page, 'the cluster panel', (x) => !!x.mainLeader, 5_000);
  check('cluster panel shows the engine leading main', s.aliveEngines.length === 1 && s.aliveEngines[0] === s.mainLeader, `leader ${s.mainLeader}, engines ${s.aliveEngines}`);
  check('cluster panel shows the gateway', s.aliveGateways === 1, `${s.aliveGateways} gateways alive`);
  check('crash points listed', s.crashes >= 1, `${s.crashes}`);

  // 4. On a phone.
  await page.setViewportSize({ width: 375, height: 812 });
  await waitFor(page, 'a flight to show', (x) => x.phase === 'flying' && x.m > 105, 25_000);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check('no horizontal scroll at 375 px', overflow <= 0, `${overflow} px too wide`);
  await shot(page, 'dashboard-phone.png', true);

  // 5. Pause: the round in flight finishes, no betting opens; then Resume.
  await page.setViewportSize({ width: 1280, height: 900 });
  await pauseAndResume(page);
  await muteAndUnmute(page, player);

  // 6. Logout.
  await page.click('#logout');
  s = await waitFor(page, 'login form again', (x) => x.view === 'login', 5_000);
  const after = (await context.cookies(apiUrl)).find((c) => c.name === 'aloft_operator');
  check('logout ends the session', s.view === 'login' && !after, after ? 'cookie still set' : 'cookie gone');

  check('no page errors', pageErrors.length === 0, pageErrors.slice(0, 3).join(' | '));
  info(`frames seen: ${JSON.stringify(s.seen)}`);
}

/** A round's time without its flight, in ms: betting (3 s in scripts/test) and the
 * crashed phase (1 s), with a margin. */
const ROUND_GAPS_MS = 6_000;

async function pauseAndResume(page) {
  const room = '.room[data-room="main"]';
  await page.click(`${room} .pause`);
  let s = await waitFor(page, 'the room paused', (x) => x.paused === 'true', 10_000);
  pass('pause accepted', s.controlStatus);
  const pausedRound = s.round;
  s = await waitFor(page, 'the round in flight to end', (x) => x.phase === 'crashed', 30_000);
  const lastRound = s.round;
  check('the round in play finishes', lastRound >= pausedRound, `round ${lastRound} crashed`);
  const opened = await waitFor(page, 'no betting phase', (x) => x.phase === 'betting', ROUND_GAPS_MS).catch(() => null);
  check('no betting phase opens while paused', opened === null, opened ? `round ${opened.round} opened` : `quiet for ${ROUND_GAPS_MS} ms`);
  await shot(page, 'dashboard-paused.png');
  await page.click(`${room} .resume`);
  s = await waitFor(page, 'betting after the resume', (x) => x.paused === 'false' && x.phase === 'betting', 10_000);
  check('resume opens betting', s.round === lastRound + 1, `round ${s.round}`);
  s = await waitFor(page, 'both actions in the audit', (x) => x.audit[0] === 'resume_room' && x.audit[1] === 'pause_room', 10_000);
  check('the audit lists the pause and the resume, newest first', /browser-test/.test(s.auditText), `${s.audit.slice(0, 2).join(', ')}: ${s.auditText}`);
}

/** Looks `player` up in the player panel, mutes it and unmutes it. */
async function muteAndUnmute(page, player) {
  await page.fill('#player-id', player);
  await page.click('#player-form button[type="submit"]');
  let s = await waitFor(page, 'the player looked up', (x) => x.playerChat === 'allowed', 10_000);
  check('the lookup shows the player may chat', await page.isVisible('#player-mute') && !(await page.isVisible('#player-unmute')));
  await page.click('#player-mute');
  s = await waitFor(page, 'the mute', (x) => x.playerChat === 'muted' && x.audit[0] === 'mute_player', 10_000);
  check('mute shown and audited', await page.isVisible('#player-unmute'), `${s.playerStatus} | ${s.auditText}`);
  await page.click('#player-unmute');
  s = await waitFor(page, 'the unmute', (x) => x.playerChat === 'allowed' && x.audit[0] === 'unmute_player', 10_000);
  check('unmute shown and audited, newest first', s.audit[1] === 'mute_player', `${s.playerStatus} | ${s.auditText}`);
}

async function shot(page, name, fullPage = false) {
  const file = path.join(imgDir, name);
  await page.screenshot({ path: file, fullPage });
  info(`screenshot ${path.relative(process.cwd(), file)}`);
}

await finish(main);

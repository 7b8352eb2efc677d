// Provably-fair checker page: reads /api/fair and /api/rounds and recomputes crash
// points and chain links in the browser (fair.js).

import { crashPoint, isHash, sha256Hex, usingWebCrypto } from './fair.js';
import { formatMult } from './format.js';

const $ = (id) => document.getElementById(id);
const ROUNDS_LIMIT = 50;

let fair = null; // { salt, commitment, house_edge_bp, chain_length }
let rounds = []; // newest first
const byRound = new Map();

function toast(message) {
  const el = document.createElement('div');
  el.className = 'toast toast-error show';
  el.textContent = message;
  $('toasts').append(el);
  setTimeout(() => el.remove(), 5000);
}

/** The round that uses the first hash of the published chain (older servers: 1). */
function firstRound() {
  return Number.isInteger(fair?.first_round) && fair.first_round >= 1 ? fair.first_round : 1;
}

const room = new URLSearchParams(location.search).get('room');
const roomQuery = room ? `room=${encodeURIComponent(room)}` : '';

async function getJson(url) {
  const response = await fetch(url, { headers: { accept: 'application/json' }, cache: 'no-store' });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

async function loadFair() {
  fair = await getJson(`/api/fair${roomQuery ? `?${roomQuery}` : ''}`);
  $('salt').textContent = fair.salt;
  $('commitment').textContent = fair.commitment;
  $('edge').textContent = `${(fair.house_edge_bp / 100).toFixed(2)}% · RTP ${((10000 - fair.house_edge_bp) / 100).toFixed(2)}%`;
  $('edge').title = `${fair.house_edge_bp} basis points`;
  $('chain-length').textContent = fair.chain_length != null
    ? `${Number(fair.chain_length).toLocaleString('en-US')} rounds from #${firstRound().toLocaleString('en-US')}`
    : '—';
}

/** Checks one round: recomputed crash point and the chain link to round - 1. */
async function checkRound(round, hash, serverM) {
  const computed = await crashPoint(hash, fair.salt, fair.house_edge_bp);
  const next = await sha256Hex(hash);
  let link = null; // true / false / null (unknown)
  let linkNote = '';
  const prev = round != null ? byRound.get(round - 1) : null;
  const first = firstRound();
  if (round === first) {
    link = next === fair.commitment;
    linkNote = link ? 'SHA-256(hash) = commitment' : 'SHA-256(hash) ≠ commitment';
  } else if (round != null && round < first && !prev) {
    linkNote = `round ${round} belongs to an earlier chain (the current one starts at round ${first})`;
  } else if (prev) {
    link = next === prev.hash;
    linkNote = link ? `SHA-256(hash) = hash of round ${round - 1}` : `SHA-256(hash) ≠ hash of round ${round - 1}`;
  } else {
    linkNote = round != null ? `round ${round - 1} not loaded` : 'round number unknown';
    if (next === fair.commitment) { link = true; linkNote = `SHA-256(hash) = commitment (round ${first})`; }
    else {
      for (const r of rounds) if (r.hash === next) { link = true; linkNote = `SHA-256(hash) = hash of round ${r.round}`; }
    }
  }
  const crashOk = serverM == null ? null : computed === serverM;
  return { computed, next, link, linkNote, crashOk, ok: crashOk !== false && link !== false };
}

function isAborted(r) {
  return (r.status != null && r.status !== 'crashed') || !(r.m >= 100);
}

async function loadRounds() {
  const limit = ROUNDS_LIMIT;
  rounds = await getJson(`/api/rounds?limit=${limit}${roomQuery ? `&${roomQuery}` : ''}`);
  byRound.clear();
  for (const r of rounds) byRound.set(r.round, r);
  const body = $('rounds');
  body.replaceChildren();
  $('rounds-empty').hidden = rounds.length > 0;
  let good = 0;
  let bad = 0;
  for (const r of rounds) {
    // A round the server aborted (e.g. a restart mid-flight; its bets were refunded)
    // has no crash point to compare; its revealed hash must still link the chain.
    const aborted = isAborted(r);
    const res = await checkRound(r.round, r.hash, aborted ? null : r.m);
    if (res.ok) good++; else bad++;
    const tr = document.createElement('tr');
    tr.dataset.round = String(r.round);
    tr.dataset.ok = String(res.ok);
    tr.dataset.status = aborted ? 'aborted' : 'crashed';
    tr.className = `${res.ok ? 'ok' : 'bad'}${aborted ? ' aborted' : ''}`;
    const when = r.ended_at ? new Date(r.ended_at).toLocaleTimeString() : '';
    tr.innerHTML = `
      <td><span class="round-no">#${r.round}</span><span class="muted when">${when}</span></td>
      <td class="num"></td>
      <td class="num"></td>
      <td class="link"></td>
      <td class="mono hash"><button type="button" class="hash-button"></button></td>
      <td class="verdict"></td>`;
    const cells = tr.children;
    cells[1].textContent = aborted ? 'aborted' : formatMult(r.m);
    if (aborted) {
      cells[1].classList.add('muted');
      cells[1].title = 'The round was aborted before its crash and every bet refunded';
    }
    cells[2].textContent = formatMult(res.computed);
    cells[2].classList.add(res.crashOk === true ? 'good' : res.crashOk === false ? 'bad' : 'muted');
    cells[3].textContent = res.link === true ? '✓ linked' : res.link === false ? '✗ broken' : '—';
    cells[3].title = res.linkNote;
    cells[3].classList.add(res.link === true ? 'good' : res.link === false ? 'bad' : 'muted');
    const hashButton = cells[4].firstElementChild;
    hashButton.textContent = `${r.hash.slice(0, 10)}…${r.hash.slice(-6)}`;
    hashButton.title = `${r.hash}\n(click to check this round)`;
    hashButton.addEventListener('click', () => {
      $('hash-input').value = r.hash;
      $('round-input').value = String(r.round);
      runCheck();
      $('check-form').scrollIntoView({ behavior: 'smooth', block: 'center' });
    });
    cells[5].textContent = res.ok ? '✓' : '✗';
    cells[5].title = res.ok ? 'Crash point and chain verified' : `${res.crashOk === false ? 'crash point differs; ' : ''}${res.link === false ? 'chain broken' : ''}`;
    body.append(tr);
  }
  $('rounds-summary').textContent = rounds.length
    ? `${good} of ${rounds.length} verified${bad ? ` · ${bad} failed` : ''}`
    : '';
  $('rounds-summary').className = bad ? 'bad' : 'good';
}

async function runCheck() {
  const hash = $('hash-input').value.trim().toLowerCase();
  const roundText = $('round-input').value.trim();
  const round = roundText ? Number(roundText) : null;
  if (!isHash(hash)) {
    toast('A round hash is 64 hexadecimal characters.');
    return;
  }
  if (roundText && (!Number.isInteger(round) || round < 1)) {
    toast('Round numbers start at 1.');
    return;
  }
  const known = round != null ? byRound.get(round) : rounds.find((r) => r.hash === hash);
  const roundNo = round ?? known?.round ?? null;
  const serverM = known && known.hash === hash && !isAborted(known) ? known.m : null;
  const res = await checkRound(roundNo, hash, serverM);
  $('result').hidden = false;
  $('result-crash').textContent = formatMult(res.computed);
  const verdict = $('result-verdict');
  verdict.className = `result-verdict ${res.ok ? 'good' : 'bad'}`;
  verdict.dataset.ok = String(res.ok);
  verdict.textContent = res.ok
    ? (serverM != null || res.link ? '✓ Verified' : '✓ Computed')
    : '✗ Does not match';
  const lines = [
    ['HMAC-SHA256(hash, salt) → crash point', formatMult(res.computed), null],
  ];
  if (serverM != null) lines.push([`Server reported for round ${roundNo}`, formatMult(serverM), res.crashOk]);
  else if (known && known.hash === hash) lines.push([`Round ${roundNo} was aborted`, 'bets refunded, no crash point', null]);
  else if (known && known.hash !== hash) lines.push([`Round ${roundNo} has a different hash on the server`, `${known.hash.slice(0, 16)}…`, false]);
  lines.push(['SHA-256(hash)', `${res.next.slice(0, 24)}…`, null]);
  lines.push(['Chain link', res.linkNote, res.link]);
  $('result-lines').replaceChildren(...lines.map(([label, value, ok]) => {
    const li = document.createElement('li');
    const a = document.createElement('span');
    a.textContent = label;
    const b = document.createElement('span');
    b.className = `mono ${ok === true ? 'good' : ok === false ? 'bad' : ''}`;
    b.textContent = `${ok === true ? '✓ ' : ok === false ? '✗ ' : ''}${value}`;
    li.append(a, b);
    return li;
  }));
  const steps = roundNo != null ? roundNo - firstRound() + 1 : 0;
  $('walk').hidden = steps < 1;
  $('walk-status').textContent = '';
  walkTarget = steps >= 1 ? { hash, steps } : null;
  if (steps >= 1) $('walk-button').textContent = `Hash it ${steps.toLocaleString('en-US')} time${steps === 1 ? '' : 's'} to reach the commitment`;
}

let walkTarget = null;
let walking = false;
async function walk() {
  if (!walkTarget || walking) return;
  walking = true;
  const { hash, steps: round } = walkTarget;
  const status = $('walk-status');
  let h = hash;
  const started = performance.now();
  for (let i = 1; i <= round; i++) {
    h = await sha256Hex(h);
    if (i % 2000 === 0) {
      status.textContent = `${i.toLocaleString('en-US')} / ${round.toLocaleString('en-US')}…`;
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }
  const ok = h === fair.commitment;
  status.className = ok ? 'good' : 'bad';
  status.textContent = ok
    ? `✓ reached the commitment after ${round.toLocaleString('en-US')} hashes (${Math.round(performance.now() - started)} ms)`
    : `✗ after ${round.toLocaleString('en-US')} hashes: ${h.slice(0, 16)}… ≠ commitment`;
  walking = false;
}

async function main() {
  $('engine-note').textContent = usingWebCrypto
    ? 'Hashes computed with WebCrypto in your browser.'
    : 'Hashes computed in JavaScript (this origin is not secure, so WebCrypto is unavailable).';
  $('check-form').addEventListener('submit', (e) => { e.preventDefault(); runCheck(); });
  $('walk-button').addEventListener('click', walk);
  $('reload').addEventListener('click', () => loadRounds().catch((e) => toast(String(e.message || e))));
  try {
    await loadFair();
    await loadRounds();
  } catch (error) {
    toast(`Could not load fairness data: ${error.message || error}`);
    document.body.dataset.ready = 'error';
    return;
  }
  const params = new URLSearchParams(location.search);
  const hash = params.get('hash');
  const round = params.get('round');
  if (round) $('round-input').value = round;
  if (hash) $('hash-input').value = hash;
  else if (round && byRound.get(Number(round))) $('hash-input').value = byRound.get(Number(round)).hash;
  if ($('hash-input').value) await runCheck();
  document.body.dataset.ready = 'true';
}

main();

// The console's side panels: the house's figures and the
// recent warnings (cluster.js: the cluster and traffic panels) (the server's and the page's own, such as socket reconnects).

import { formatCents } from '../format.js';

/** Warnings listed at once, at most. */
const WARNINGS_SHOWN_MAX = 50;

const $ = (id) => document.getElementById(id);

/** Basis points as a percentage with two decimals, by integer arithmetic: 9712 -> "97.12%". */
export function formatBasisPoints(bp) {
  if (bp == null) return '—';
  const negative = bp < 0;
  const abs = Math.abs(Math.trunc(bp));
  return `${negative ? '-' : ''}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, '0')}%`;
}

/** The house table's columns: the header's labels, repeated on each cell for the phone layout. */
const HOUSE_COLUMNS = ['Window', 'Rounds', 'Wagered', 'Paid', 'Profit', 'RTP', 'Target'];

function cell(column, text, className = '') {
  const td = document.createElement('td');
  td.textContent = text;
  td.dataset.label = HOUSE_COLUMNS[column];
  if (className) td.className = className;
  return td;
}

export function renderHouse(house) {
  const body = $('house').tBodies[0];
  const rows = [];
  for (const figures of house) {
    for (const [label, window] of [['last 100', figures.last_100], ['last 1,000', figures.last_1000]]) {
      const tr = document.createElement('tr');
      tr.dataset.room = figures.room;
      tr.dataset.window = label;
      const profitClass = window.profit_minor < 0 ? 'negative' : 'positive';
      tr.append(
        cell(0, `${figures.room} · ${label}`, 'window'),
        cell(1, String(window.rounds)),
        cell(2, formatCents(window.wagered_minor)),
        cell(3, formatCents(window.paid_out_minor)),
        cell(4, formatCents(window.profit_minor), profitClass),
        cell(5, formatBasisPoints(window.rtp_bp)),
        cell(6, formatBasisPoints(figures.target_rtp_bp)),
      );
      rows.push(tr);
    }
  }
  body.replaceChildren(...rows);
}

function warningItem(warning) {
  const li = document.createElement('li');
  const time = document.createElement('time');
  const at = new Date(warning.at_ms);
  time.dateTime = at.toISOString();
  time.textContent = at.toLocaleTimeString();
  const text = document.createElement('span');
  text.textContent = warning.room ? `${warning.room}: ${warning.message}` : warning.message;
  li.append(time, ' ', text);
  return li;
}

/** Replaces the list with `warnings` (newest first). */
export function renderWarnings(warnings) {
  $('warnings').replaceChildren(...warnings.slice(0, WARNINGS_SHOWN_MAX).map(warningItem));
}

/** Adds one warning at the top. */
export function addWarning(warning) {
  const list = $('warnings');
  list.prepend(warningItem(warning));
  while (list.children.length > WARNINGS_SHOWN_MAX) list.lastElementChild.remove();
}

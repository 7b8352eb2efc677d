// The All / My / Top tabs above the live bets list: which of the round's bets it shows.
// A tablist (arrow keys, Home and End move and select, one Tab stop), the choice kept in
// localStorage. live-bets.js reads `betsTab()` when it draws the list.

import { $ } from './dom.js';

const STORAGE_KEY = 'aloft.betsTab';
const TABS = ['all', 'my', 'top'];

let selected = TABS.includes(localStorage.getItem(STORAGE_KEY)) ? localStorage.getItem(STORAGE_KEY) : 'all';

/** The tab chosen: 'all', 'my' or 'top'. */
export function betsTab() {
  return selected;
}

/** Wires the tabs; `onChange` redraws the list after a choice. */
export function wireBetsTabs(onChange) {
  const tabs = [...$('bets-tabs').querySelectorAll('[role="tab"]')];
  const choose = (tab, focus) => {
    selected = tab.dataset.tab;
    localStorage.setItem(STORAGE_KEY, selected);
    showSelected(tabs);
    if (focus) tab.focus();
    onChange();
  };
  for (const tab of tabs) tab.addEventListener('click', () => choose(tab, false));
  $('bets-tabs').addEventListener('keydown', (e) => {
    const at = tabs.findIndex((tab) => tab.dataset.tab === selected);
    const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (next == null) return;
    e.preventDefault();
    choose(tabs[(next + tabs.length) % tabs.length], true);
  });
  showSelected(tabs);
}

function showSelected(tabs) {
  for (const tab of tabs) {
    const on = tab.dataset.tab === selected;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    if (on) $('bets-view').setAttribute('aria-labelledby', tab.id);
  }
}

// Small DOM helpers shared by the player page's modules: element lookup and toasts.

/** Toasts on screen at once, at most: older ones go first. */
const TOASTS_MAX = 5;

export const $ = (id) => document.getElementById(id);

/** A short message in the corner; `kind` is 'error', 'info' or 'win'. */
export function toast(message, kind = 'error') {
  const el = document.createElement('div');
  el.className = `toast toast-${kind}`;
  el.textContent = message;
  $('toasts').append(el);
  requestAnimationFrame(() => el.classList.add('show'));
  setTimeout(() => {
    el.classList.remove('show');
    setTimeout(() => el.remove(), 300);
  }, kind === 'error' ? 4500 : 3000);
  while ($('toasts').children.length > TOASTS_MAX) $('toasts').firstElementChild.remove();
}

// Small DOM helpers shared by the player page's modules: element lookup and toasts.
// Toasts expire by the clock (a sweep, also when a hidden tab comes back, since timers
// of hidden tabs are throttled), the same message is never shown twice at once, and at
// most TOASTS_MAX are up.

/** Toasts on screen at once, at most: older ones go first. */
const TOASTS_MAX = 3;
/** How long a toast stays up, by kind, in ms. */
const TOAST_LIFETIME_MS = { error: 5000, info: 4000, win: 3000, notice: 9000 };
/** How often expired toasts are looked for, in ms. */
const TOAST_SWEEP_MS = 250;

export const $ = (id) => document.getElementById(id);

/** A short message in the corner; `kind` is 'error', 'info', 'win' or 'notice'. */
export function toast(message, kind = 'error') {
  const box = $('toasts');
  const same = [...box.children].find((el) => el.dataset.text === message);
  const el = same ?? document.createElement('div');
  el.dataset.expiresAt = String(Date.now() + (TOAST_LIFETIME_MS[kind] ?? TOAST_LIFETIME_MS.error));
  if (same) return;
  el.className = `toast toast-${kind}`;
  el.dataset.text = message;
  const text = document.createElement('span');
  text.textContent = message;
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'toast-close';
  close.setAttribute('aria-label', 'Dismiss');
  close.textContent = '×';
  close.addEventListener('click', () => el.remove());
  el.append(text, close);
  box.append(el);
  requestAnimationFrame(() => el.classList.add('show'));
  while (box.children.length > TOASTS_MAX) box.firstElementChild.remove();
}

function sweepToasts() {
  const now = Date.now();
  for (const el of [...$('toasts').children]) if (Number(el.dataset.expiresAt) <= now) el.remove();
}

setInterval(sweepToasts, TOAST_SWEEP_MS);
document.addEventListener('visibilitychange', sweepToasts);

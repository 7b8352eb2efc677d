// Money and multiplier formatting/parsing. Money is integer minor units (cents) and
// multipliers integer hundredths on the wire; user text is parsed with string
// arithmetic so that no float ever reaches a request.

/** "12.5" / "12,50" / "12" -> 1250 cents, or null if not a valid amount. */
export function parseMoney(text) {
  const s = String(text ?? '').trim().replace(',', '.');
  const match = /^(\d{1,9})(?:\.(\d{0,2}))?$/.exec(s);
  if (!match) return null;
  const cents = (match[2] ?? '').padEnd(2, '0');
  return Number(match[1]) * 100 + Number(cents);
}

/** "2" / "2.5x" / "2.57" -> 257 hundredths, or null if not valid. */
export function parseMultiplier(text) {
  const s = String(text ?? '').trim().replace(',', '.').replace(/x$/i, '');
  const match = /^(\d{1,7})(?:\.(\d{0,2}))?$/.exec(s);
  if (!match) return null;
  return Number(match[1]) * 100 + Number((match[2] ?? '').padEnd(2, '0'));
}

/** 123456 -> "1,234.56" (integer arithmetic, handles negatives). */
export function formatCents(cents) {
  if (cents == null || !Number.isFinite(cents)) return '—';
  const negative = cents < 0;
  const abs = Math.abs(Math.trunc(cents));
  const units = Math.floor(abs / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const frac = String(abs % 100).padStart(2, '0');
  return `${negative ? '-' : ''}${units}.${frac}`;
}

/** 1234.56 dollars with the currency sign. */
export function formatMoney(cents) {
  if (cents == null) return '—';
  return (cents < 0 ? '-$' : '$') + formatCents(Math.abs(cents));
}

/** 257 -> "2.57x" */
export function formatMult(hundredths) {
  if (hundredths == null) return '—';
  const h = Math.trunc(hundredths);
  return `${Math.floor(h / 100)}.${String(h % 100).padStart(2, '0')}x`;
}

/** Payout of a stake at a multiplier, rounded down as the server does. */
export function payout(amountCents, mult) {
  return Math.floor((amountCents * mult) / 100);
}

/** Growth rate of the multiplier per ms; the server announces it in `hello.growth`. */
let growthPerMs = 0.00006;

/** Sets the curve's growth from `hello.growth` (millionths per ms). */
export function setGrowth(millionthsPerMs) {
  if (Number.isInteger(millionthsPerMs) && millionthsPerMs > 0) growthPerMs = millionthsPerMs / 1e6;
}

/** The curve m(t) = 100 · e^(growth · t_ms), in (fractional) hundredths, for drawing. */
export function curveExact(ms) {
  return 100 * Math.exp(growthPerMs * Math.max(0, ms));
}

/** The multiplier curve m(t) = floor(100 · e^(growth · t_ms)) in hundredths. */
export function curveAt(ms) {
  return Math.floor(curveExact(ms));
}
/** Inverse of the curve: elapsed ms at which the multiplier reaches `m` hundredths. */
export function msForMult(m) {
  return Math.log(Math.max(100, m) / 100) / growthPerMs;
}

/** Colour class of a crash point chip. */
export function multClass(m) {
  if (m < 200) return 'low';
  if (m < 1000) return 'mid';
  return 'high';
}

export function shortPlayer(id) {
  const s = String(id ?? '');
  return s.length > 12 ? `${s.slice(0, 5)}…${s.slice(-4)}` : s;
}

export function newRequestId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** 100 basis points -> "1.00%" (integer arithmetic). */
export function formatBasisPoints(bp) {
  return `${Math.floor(bp / 100)}.${String(bp % 100).padStart(2, '0')}%`;
}

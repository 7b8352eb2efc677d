// The player page's honest states and accessibility, checked in the browser for
// play.mjs (issue 13): the Tab order changes nothing and shows its focus, errors in
// plain words, the stake checked before sending, the BET button's contrast, axe-core,
// the sound toggle. A server lost under a bet is server-loss.mjs.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { check, info, waitUntil } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const axeSource = fs.readFileSync(path.join(here, 'node_modules/axe-core/axe.min.js'), 'utf8');
/** Presses of Tab after which the walk through the page's controls stops, at most. */
const TAB_PRESSES_MAX = 90;
/** WCAG AA contrast for normal text. */
const CONTRAST_MIN = 4.5;

/** What Tab must not change: each panel's state, its inputs and the sound toggle. */
function inputsState(page) {
  return page.evaluate(() => JSON.stringify({
    panels: [...document.querySelectorAll('.bet-panel')].map((p) => ({
      state: p.dataset.state,
      auto: p.querySelector('.auto-on').checked,
      autoShown: p.classList.contains('auto-enabled'),
      amount: p.querySelector('.amount').value,
      autoValue: p.querySelector('.auto-value').value,
    })),
    sound: document.getElementById('sound-toggle').getAttribute('aria-pressed'),
  }));
}

/** Tabs through every control: none changes state (the auto cash out field does not
 *  tick its box), and each shows a visible focus outline. */
export async function checkTabOrder(page) {
  const autoOn = page.locator('.bet-panel[data-slot="0"] .auto-on');
  if (await autoOn.isChecked()) await autoOn.uncheck();
  const before = await inputsState(page);
  await page.evaluate(() => document.activeElement?.blur());
  const seen = [];
  for (let i = 0; i < TAB_PRESSES_MAX; i++) {
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return null;
      const style = getComputedStyle(el);
      const panel = el.closest('.bet-panel');
      return {
        name: `${panel ? `panel ${panel.dataset.slot} ` : ''}${el.tagName.toLowerCase()}.${[...el.classList].join('.') || el.id}`,
        visible: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 1,
      };
    });
    if (!focused) break;
    if (seen.length && focused.name === seen[0].name) break;
    seen.push(focused);
  }
  const after = await inputsState(page);
  const names = seen.map((f) => f.name);
  check('Tab reaches the auto cash out field', names.includes('panel 0 input.auto-value'), `${seen.length} stops`);
  check('Tab changes no state (auto box stays unticked)', before === after, before === after ? '' : `${before} → ${after}`);
  const hidden = seen.filter((f) => !f.visible).map((f) => f.name);
  check('every control shows its focus', seen.length > 10 && hidden.length === 0, hidden.length ? `no outline: ${hidden.join(', ')}` : `${seen.length} controls`);
}

/** The contrast of `selector`'s text on its (solid) background, computed from styles. */
export async function checkContrast(page, selector, name) {
  const result = await page.evaluate((sel) => {
    const el = document.querySelector(sel);
    const style = getComputedStyle(el);
    const rgb = (text) => text.match(/[\d.]+/g).slice(0, 3).map(Number);
    const luminance = (c) => {
      const [r, g, b] = c.map((v) => v / 255).map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4));
      return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const [hi, lo] = [luminance(rgb(style.color)), luminance(rgb(style.backgroundColor))].sort((a, b) => b - a);
    return { ratio: (hi + 0.05) / (lo + 0.05), solid: style.backgroundImage === 'none', color: style.color, background: style.backgroundColor };
  }, selector);
  check(`${name} contrast ≥ ${CONTRAST_MIN}:1`, result.solid && result.ratio >= CONTRAST_MIN,
    `${result.ratio.toFixed(2)}:1 (${result.color} on ${result.background}${result.solid ? '' : ', not a solid fill'})`);
}

/** The error codes docs/protocol.md lists (the first cell of its "Error codes" table). */
function documentedErrorCodes() {
  const doc = fs.readFileSync(path.join(here, '../../docs/protocol.md'), 'utf8');
  const table = doc.split('## Error codes')[1].split('\n## ')[0];
  const rows = table.split('\n').filter((line) => line.startsWith('| `'));
  return rows.flatMap((row) => [...row.split('|')[1].matchAll(/`([a-z_]+)`/g)].map((m) => m[1]));
}

/** Every documented error code has its own sentence, with no code or developer text in
 *  it; a code the page does not know gets the generic sentence. */
export async function checkEveryCodeWorded(page) {
  const codes = documentedErrorCodes();
  const worded = await page.evaluate(async (list) => {
    const { refusalSentence } = await import('/messages.js');
    const say = (code) => refusalSentence({ code, message: 'developer text' }, 'cashout');
    return { generic: say('no_such_code'), sentences: Object.fromEntries(list.map((code) => [code, say(code)])) };
  }, codes);
  const bad = Object.entries(worded.sentences).filter(([code, text]) => text === worded.generic || text.includes(code) || text.includes('developer text'));
  check('every documented error code in plain words', codes.length >= 15 && bad.length === 0,
    bad.length ? `not worded: ${bad.map(([code]) => code).join(', ')}` : `${codes.length} codes; unknown → "${worded.generic}"`);
}

const panelView = (page, slot) => page.evaluate((n) => {
  const p = document.querySelector(`.bet-panel[data-slot="${n}"]`);
  return {
    note: p.querySelector('.panel-note').textContent,
    disabled: p.querySelector('.action').disabled,
    toasts: [...document.querySelectorAll('#toasts .toast')].map((t) => t.dataset.text),
    conn: document.getElementById('conn').dataset.state,
  };
}, slot);

/**
 * A stake below the room's minimum: refused in a plain sentence, then checked inline
 * (button off, the sentence under it); the toast expires; a stake above the balance is
 * stopped before sending. `sent` lists the frames the page sent.
 */
export async function checkPlainWords(page, sent) {
  const slot = 1;
  const panel = page.locator(`.bet-panel[data-slot="${slot}"]`);
  await panel.locator('.amount').fill('0.05');
  await panel.locator('.action').click();
  const sentence = 'Minimum bet is $0.10.';
  const view = (s) => `note "${s.note}", toasts ${JSON.stringify(s.toasts)}`;
  let s = await waitUntil(page, (p) => panelView(p, slot), 'the refusal in words', (x) => x.toasts.includes(sentence), 15_000, view)
    .catch(() => panelView(page, slot));
  check('a refusal in plain words', s.toasts.includes(sentence), view(s));
  check('no developer text shown', !s.toasts.some((t) => /minor units|\.\.=|_/.test(t)), view(s));
  check('the minimum then checked before sending', s.note === sentence && s.disabled, `${view(s)}, button disabled ${s.disabled}`);
  s = await waitUntil(page, (p) => panelView(p, slot), 'the toast to expire', (x) => !x.toasts.includes(sentence), 8_000, view)
    .catch(() => panelView(page, slot));
  check('the toast expires', !s.toasts.includes(sentence), view(s));
  const balance = await page.evaluate(() => Number(document.getElementById('balance').dataset.cents));
  const tooMuch = balance + 100;
  await panel.locator('.amount').fill(`${Math.floor(tooMuch / 100)}.${String(tooMuch % 100).padStart(2, '0')}`);
  await panel.locator('.action').click({ force: true }).catch(() => {});
  await page.waitForTimeout(300);
  s = await panelView(page, slot);
  const sentTooMuch = sent.some((f) => f.includes('"bet"') && JSON.parse(f).amount === tooMuch);
  check('a stake above the balance is stopped inline', s.disabled && s.note.startsWith('Not enough balance') && !sentTooMuch,
    `${view(s)}, button disabled ${s.disabled}, sent ${sentTooMuch}`);
  await panel.locator('.amount').fill('2.00');
}

/** axe-core on the page at `width` px: no serious or critical violation, no sideways
 *  scrolling. Saves a screenshot to `shot`; `what` names what is open, if anything. */
export async function checkAccessibility(page, width, shot, what = '') {
  await page.setViewportSize({ width, height: width < 600 ? 900 : 800 });
  await page.waitForTimeout(400);
  // Evaluated through DevTools: the page's CSP (script-src 'self') refuses an injected
  // <script> tag, and the check must run against the page as served.
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  const bad = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  check(`axe-core at ${width} px${what}: no serious or critical violation`, bad.length === 0,
    bad.length ? JSON.stringify(bad) : `${violations.length} minor (${violations.map((v) => v.id).join(', ') || 'none'})`);
  const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  check(`usable at ${width} px${what} (no sideways scrolling)`, scrollWidth <= width, `page ${scrollWidth} px wide`);
  await page.screenshot({ path: shot });
  info(`screenshot ${path.relative(process.cwd(), shot)}`);
}

/** Counts AudioContexts created (a context init script: before any page loads). */
export function countAudioContexts(context) {
  return context.addInitScript(() => {
    window.audioContextsCreated = 0;
    const Original = window.AudioContext;
    window.AudioContext = class extends Original {
      constructor(...args) {
        super(...args);
        window.audioContextsCreated += 1;
      }
    };
  });
}

const soundView = (page) => page.evaluate(() => ({
  pressed: document.getElementById('sound-toggle').getAttribute('aria-pressed'),
  stored: localStorage.getItem('aloft.sound'),
  contexts: window.audioContextsCreated,
}));

/** Sound: off by default with no AudioContext on `page` (which saw rounds fly and
 *  crash); the toggle turns it on, and the choice survives a reload (another tab). */
export async function checkSound(context, page, base) {
  let s = await soundView(page);
  check('sound off by default: no AudioContext created', s.pressed === 'false' && s.contexts === 0, JSON.stringify(s));
  const other = await context.newPage();
  await other.goto(`${base}/`, { waitUntil: 'domcontentloaded', timeout: 10_000 });
  await other.locator('#sound-toggle').click();
  s = await soundView(other);
  check('the sound toggle turns sound on', s.pressed === 'true' && s.stored === 'on' && s.contexts >= 1, JSON.stringify(s));
  await other.reload({ waitUntil: 'domcontentloaded' });
  s = await soundView(other);
  check('sound stays on after a reload', s.pressed === 'true', JSON.stringify(s));
  await other.locator('#sound-toggle').click();
  await other.reload({ waitUntil: 'domcontentloaded' });
  s = await soundView(other);
  check('sound stays off after a reload', s.pressed === 'false' && s.stored === 'off' && s.contexts === 0, JSON.stringify(s));
  await other.close();
}

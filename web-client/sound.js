// Sound effects, off by default: take-off, cash out and crash, made with WebAudio (no
// audio files). The choice is remembered in localStorage; while sound is off no
// AudioContext exists (it is created when the player turns sound on: a click, which
// browsers require before audio may play).

import { $ } from './dom.js';

const SOUND_KEY = 'aloft.sound';
/** Loudness of every effect (0..1 of the output). */
const VOLUME = 0.18;

let enabled = localStorage.getItem(SOUND_KEY) === 'on';
let audio = null;

/** Wires the header's toggle and draws its state. */
export function buildSoundToggle() {
  $('sound-toggle').addEventListener('click', () => setSound(!enabled));
  renderToggle();
}

function setSound(on) {
  enabled = on;
  localStorage.setItem(SOUND_KEY, on ? 'on' : 'off');
  if (on) context();
  renderToggle();
}

function renderToggle() {
  const toggle = $('sound-toggle');
  toggle.setAttribute('aria-pressed', String(enabled));
  toggle.title = `Sound effects (take-off, cash out, crash): ${enabled ? 'on' : 'off'}`;
}

function context() {
  audio ??= new AudioContext();
  if (audio.state === 'suspended') audio.resume().catch(() => {});
  return audio;
}

/** One tone from `from` to `to` Hz over `seconds`, starting `delay` s from now. */
function tone(ctx, { type, from, to, seconds, delay = 0 }) {
  const start = ctx.currentTime + delay;
  const osc = ctx.createOscillator();
  const gain = ctx.createGain();
  osc.type = type;
  osc.frequency.setValueAtTime(from, start);
  osc.frequency.exponentialRampToValueAtTime(to, start + seconds);
  gain.gain.setValueAtTime(0.0001, start);
  gain.gain.exponentialRampToValueAtTime(VOLUME, start + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, start + seconds);
  osc.connect(gain).connect(ctx.destination);
  osc.start(start);
  osc.stop(start + seconds + 0.05);
}

const EFFECTS = {
  takeoff: [{ type: 'sawtooth', from: 160, to: 640, seconds: 0.6 }],
  cashout: [{ type: 'sine', from: 880, to: 880, seconds: 0.12 }, { type: 'sine', from: 1320, to: 1320, seconds: 0.25, delay: 0.1 }],
  crash: [{ type: 'square', from: 420, to: 50, seconds: 0.7 }],
};

/** Plays effect `name` ('takeoff', 'cashout', 'crash') if sound is on. */
export function playSound(name) {
  if (!enabled || document.visibilityState === 'hidden') return;
  const ctx = context();
  for (const part of EFFECTS[name] ?? []) tone(ctx, part);
}

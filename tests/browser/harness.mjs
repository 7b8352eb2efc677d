// What the browser tests share: their time budget, PASS/FAIL lines, Debian's chromium
// launched headless through playwright-core with a fresh profile, the wait for a state
// of the page, a server of the test's own (to stop and start again), and the end of a
// run (cleanup, summary line, exit code).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

/** A run's whole budget, in ms: the watchdog fails it past this. */
export const TOTAL_BUDGET_MS = 150_000;
/** How long a server of the test's own may take to answer /readyz, in ms. */
const SERVER_READY_TIMEOUT_MS = 10_000;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The servers the test started itself (stopped by `finish`). */
const ownServers = new Set();
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const started = Date.now();
let failures = 0;
let context = null;
let userDataDir = null;

export const left = () => TOTAL_BUDGET_MS - (Date.now() - started);
export const t = () => `${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s`;
export const pass = (name, detail = '') => console.log(`PASS ${t()} ${name}${detail ? ` — ${detail}` : ''}`);
export const fail = (name, detail = '') => { failures++; console.log(`FAIL ${t()} ${name}${detail ? ` — ${detail}` : ''}`); };
export const info = (text) => console.log(`     ${t()} ${text}`);
export const check = (name, ok, detail = '') => (ok ? pass(name, detail) : fail(name, detail));

/** The server URL from argv[2] (or ALOFT_URL); exits 2 with `usage` when it or the browser is missing. */
export function serverUrl(usage, ready = true) {
  const base = (process.argv[2] || process.env.ALOFT_URL || '').replace(/\/+$/, '');
  if (!/^https?:\/\//.test(base) || !ready) {
    console.error(usage);
    process.exit(2);
  }
  if (!fs.existsSync(executablePath)) {
    console.error(`FAIL chromium not found at ${executablePath} (apt-get install -y chromium, or set CHROMIUM=)`);
    process.exit(2);
  }
  return base;
}

async function cleanup() {
  try { await context?.close(); } catch { /* ignore */ }
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  for (const server of ownServers) server.remove();
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });
}

/**
 * A server of the test's own (`ALOFT_BIN`, default target/release/aloft) on a free port
 * with a fresh data directory, configured as scripts/test configures its servers:
 * `start()` (resolves once /readyz answers), `kill(signal)` (resolves once it exited),
 * `remove()`; `url`, its log in `log()`. Starting again keeps the port and the data.
 */
export async function ownServer() {
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aloft-browser-server-'));
  const binary = process.env.ALOFT_BIN || path.join(repoRoot, 'target/release/aloft');
  const url = `http://127.0.0.1:${port}`;
  let child = null;
  let output = '';
  // Not ALOFT_BIN: the server reads every ALOFT_* variable as its configuration.
  const { ALOFT_BIN: _binary, ...inherited } = process.env;
  const env = {
    ...inherited,
    ALOFT_ENGINE__BETTING_DURATION_MS: '3000',
    ALOFT_ENGINE__CRASHED_DURATION_MS: '1000',
    ALOFT_ENGINE__GROWTH_RATE_PER_MS_MILLIONTHS: '300',
    ALOFT_METRICS_LISTEN: '127.0.0.1:0',
    ALOFT_LIMITS__EXEMPT_NETWORKS: '127.0.0.0/8',
  };
  const server = {
    url,
    log: () => output,
    async start() {
      child = spawn(binary, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      const keep = (chunk) => { output = (output + chunk).slice(-20_000); };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      const until = Date.now() + SERVER_READY_TIMEOUT_MS;
      while (Date.now() < until) {
        const ready = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
        if (ready) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      // The head says why (a backtrace may follow it).
      throw new Error(`own server did not become ready: ${output.slice(0, 2000)}`);
    },
    kill(signal = 'SIGKILL') {
      const running = child;
      child = null;
      if (!running || running.exitCode != null) return Promise.resolve();
      return new Promise((resolve) => { running.once('exit', resolve); running.kill(signal); });
    },
    remove() {
      child?.kill('SIGKILL');
      child = null;
      ownServers.delete(server);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  ownServers.add(server);
  return server;
}

const watchdog = setTimeout(async () => {
  fail('time budget', `test did not finish within ${TOTAL_BUDGET_MS / 1000}s`);
  await Promise.race([cleanup(), new Promise((r) => setTimeout(r, 1500))]);
  process.exit(1);
}, TOTAL_BUDGET_MS);

/** Chromium, headless, with a fresh profile: the browser context (closed by `finish`). */
export async function launch(viewport) {
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aloft-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport,
    timeout: 20_000,
  });
  return context;
}

/**
 * Polls `state(page)` until `predicate` holds; throws after `timeoutMs` (or when the
 * budget runs out) naming `description` and what `describe(state)` says.
 */
export async function waitUntil(page, state, description, predicate, timeoutMs, describe) {
  const until = Date.now() + Math.max(0, Math.min(timeoutMs, left() - 2000));
  let s = await state(page);
  while (!predicate(s)) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${description} (${describe(s)})`);
    await page.waitForTimeout(25);
    s = await state(page);
  }
  return s;
}

/** Runs `main`, then cleans up, prints the summary and exits non-zero on any failure. */
export async function finish(main) {
  try {
    await main();
  } catch (error) {
    fail('unexpected error', error.stack?.split('\n').slice(0, 3).join(' ') || String(error));
  }
  clearTimeout(watchdog);
  await cleanup();
  console.log(failures ? `FAIL ${failures} check(s) failed in ${t().trim()}` : `PASS all checks in ${t().trim()}`);
  process.exit(failures ? 1 : 0);
}

// The operator socket: /api/operator/ws, authenticated by the session cookie at the
// handshake. Reconnects with exponential backoff (with jitter) while the session is
// valid; a socket refused or closed for its session hands the page back to the login.

import { checkSession } from './session.js';

const BACKOFF_MS_MIN = 500;
const BACKOFF_MS_MAX = 15_000;
/** Close code of an expired session (`protocol::close_code::AUTH_FAILED`). */
const CLOSE_SESSION_EXPIRED = 4003;

export class OperatorSocket {
  /**
   * @param {object} hooks
   *   onFrame(frame), onState('connecting' | 'live' | 'reconnecting' | 'offline', detail),
   *   onLoggedOut(message)
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this.attempt = 0;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.ws?.close(1000, 'logout');
    this.ws = null;
    this.hooks.onState('offline');
  }

  open() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    this.hooks.onState(this.attempt === 0 ? 'connecting' : 'reconnecting');
    const ws = new WebSocket(`${scheme}://${location.host}/api/operator/ws`);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.hooks.onState('live');
    };
    ws.onmessage = (message) => {
      try {
        this.hooks.onFrame(JSON.parse(message.data));
      } catch (error) {
        console.error('bad operator frame', error);
      }
    };
    ws.onclose = (event) => {
      if (this.ws !== ws || this.stopped) return;
      this.ws = null;
      this.afterClose(opened, event.code);
    };
  }

  async afterClose(opened, code) {
    // A refused handshake shows no status to scripts: ask whether the session still holds.
    if (code === CLOSE_SESSION_EXPIRED || !opened) {
      const session = await checkSession().catch(() => ({ state: 'unknown' }));
      if (this.stopped) return;
      if (session.state === 'none' || session.state === 'disabled') {
        this.stopped = true;
        this.hooks.onState('offline');
        this.hooks.onLoggedOut(session.message);
        return;
      }
    }
    this.attempt += 1;
    const ceiling = Math.min(BACKOFF_MS_MAX, BACKOFF_MS_MIN * 2 ** Math.min(this.attempt, 8));
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.hooks.onState('reconnecting', { delay, code, attempt: this.attempt });
    this.timer = setTimeout(() => this.open(), delay);
  }
}

// Connection to the aloft server: guest token, WebSocket, reconnect with backoff (resuming
// from the app's last event, `?since=&epoch=`), clock offset, keepalive pings. Emits
// decoded frames to the app, and the connection's state in words (messages.js).

import { closeSentence } from './messages.js';

export const TOKEN_KEY = 'aloft.token';
const PLAYER_KEY = 'aloft.player';
const PING_EVERY_MS = 10_000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15_000;

export class Connection {
  /**
   * @param {object} options
   *   room              the room to join ('' = the server's first)
   *   position()        {seq, epoch} of the last event applied, or null: sent on
   *                     reconnect so the server replays what was missed
   */
  constructor({ room, position }) {
    this.room = room;
    this.position = position;
    this.onFrame = null;
    this.onStatus = null;
    this.ws = null;
    this.helloSeen = false;
    this.attempt = 0;
    this.timer = null;
    this.pingTimer = null;
    // Server clock = Date.now() + offset. Refined by ping/pong, keeping the sample
    // with the smallest round trip.
    this.offset = 0;
    this.bestRtt = Infinity;
    this.pingSentAt = 0;
    this.rtt = null;
    this.lastForgetAt = 0;
    this.lostWhy = null; // why the last connection was lost, until the next hello
  }

  serverNow() {
    return Date.now() + this.offset;
  }

  get open() {
    return this.ws?.readyState === WebSocket.OPEN && this.helloSeen;
  }

  /**
   * Connects, and keeps reconnecting.
   * @param {object} handlers
   *   onFrame(msg)      every decoded frame
   *   onStatus(state, why, retryAt)  state 'connecting' | 'online' | 'reconnecting' |
   *                     'offline'; why the connection was lost (words); retryAt the
   *                     Date.now() of the next attempt (null while one is under way)
   */
  start({ onFrame, onStatus }) {
    this.onFrame = onFrame;
    this.onStatus = onStatus;
    this.connect();
    window.addEventListener('online', () => this.reconnectNow());
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && !this.ws) this.reconnectNow();
    });
  }

  reconnectNow() {
    if (this.ws) return;
    clearTimeout(this.timer);
    this.attempt = 0;
    this.connect();
  }

  async token() {
    const cached = localStorage.getItem(TOKEN_KEY);
    if (cached) return cached;
    const response = await fetch('/api/guest', { method: 'POST', headers: { accept: 'application/json' } });
    if (!response.ok) throw new Error(`guest login failed: HTTP ${response.status}`);
    const body = await response.json();
    if (!body.token) throw new Error('guest login returned no token');
    localStorage.setItem(TOKEN_KEY, body.token);
    if (body.player) localStorage.setItem(PLAYER_KEY, body.player);
    return body.token;
  }

  async serverReachable() {
    try {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), 3000);
      await fetch('/healthz', { cache: 'no-store', signal: controller.signal });
      clearTimeout(timer);
      return true; // any HTTP answer means the server is up
    } catch {
      return false;
    }
  }

  forgetToken() {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(PLAYER_KEY);
  }

  async connect() {
    clearTimeout(this.timer);
    this.onStatus(this.attempt === 0 ? 'connecting' : 'reconnecting', this.lostWhy ?? '', null);
    let token;
    try {
      token = await this.token();
    } catch (error) {
      console.warn('[aloft]', error);
      this.scheduleReconnect('the server cannot be reached');
      return;
    }
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    // The token goes as the first message, not in the URL (URLs end up in proxy logs).
    const params = new URLSearchParams();
    if (this.room) params.set('room', this.room);
    const resume = this.position?.();
    if (resume) {
      params.set('since', String(resume.seq));
      params.set('epoch', resume.epoch);
    }
    const ws = new WebSocket(`${scheme}//${location.host}/ws?${params}`);
    this.ws = ws;
    this.helloSeen = false;
    const openedAt = Date.now();

    ws.onopen = () => ws.send(JSON.stringify({ t: 'auth', token }));
    ws.onmessage = (event) => {
      if (typeof event.data !== 'string') return;
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch {
        console.warn('[aloft] undecodable frame', event.data);
        return;
      }
      if (msg.t === 'hello') {
        this.helloSeen = true;
        this.attempt = 0;
        // First estimate: half the connection time as the one-way delay.
        const now = Date.now();
        this.offset = msg.server_time - now + Math.min((now - openedAt) / 2, 250);
        this.bestRtt = Infinity;
        this.lostWhy = null;
        this.onStatus('online', '', null);
        this.startPings();
      } else if (msg.t === 'pong') {
        this.onPong(msg);
      }
      this.onFrame(msg);
    };

    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopPings();
      if (event.code && event.code !== 1006) console.warn(`[aloft] socket closed ${event.code} ${event.reason}`);
      const why = closeSentence(event.code);
      if (this.helloSeen) {
        this.scheduleReconnect(why);
        return;
      }
      // Closed before hello: the token was refused (4003), the upgrade was refused or
      // the server is down. If the server answers HTTP, the token is the likely
      // cause: fetch a new guest token next time. A server that is down keeps the
      // token (and with it the player's balance) for when it comes back. A token
      // is not replaced twice within 30 s, so a refusal for another reason
      // (origin, capacity) does not mint guests in a loop: at most one new guest
      // per 30 s.
      this.serverReachable().then((reachable) => {
        if (reachable && Date.now() - this.lastForgetAt > 30_000) {
          this.lastForgetAt = Date.now();
          this.forgetToken();
        }
        this.scheduleReconnect(reachable ? closeSentence(4003) : 'the server cannot be reached');
      });
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  scheduleReconnect(why) {
    clearTimeout(this.timer);
    this.lostWhy = why;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    this.attempt += 1;
    const retryAt = Date.now() + delay;
    this.onStatus(navigator.onLine === false ? 'offline' : 'reconnecting', why, retryAt);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  startPings() {
    this.stopPings();
    const ping = () => {
      this.pingSentAt = Date.now();
      this.send({ t: 'ping' });
    };
    ping();
    this.pingTimer = setInterval(ping, PING_EVERY_MS);
  }

  stopPings() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  onPong(msg) {
    if (!this.pingSentAt || typeof msg.server_time !== 'number') return;
    const now = Date.now();
    const rtt = now - this.pingSentAt;
    this.rtt = rtt;
    this.pingSentAt = 0;
    if (rtt <= this.bestRtt * 1.5) {
      this.bestRtt = Math.min(this.bestRtt, rtt);
      this.offset = msg.server_time - (now - rtt / 2);
    }
  }

  send(message) {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }
}

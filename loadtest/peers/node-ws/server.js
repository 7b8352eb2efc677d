// Fan-out benchmark peer: Node `ws` (+ bufferutil). Every 1/hz s one tick frame
// {"t":"tick","seq":N,"at":<unix ms>,"pad":"xx.."} padded to --payload-bytes, encoded
// once per tick, sent to every open socket with `client.send` (the textbook broadcast
// of ws's README: ws has no public pre-framed send). Stops itself after --duration.
'use strict';
const { WebSocketServer, WebSocket } = require('ws');

function args() {
  const out = { port: 0, hz: 20, payloadBytes: 64, duration: 600 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const value = Number(argv[i + 1]);
    if (argv[i] === '--port') out.port = value;
    else if (argv[i] === '--hz') out.hz = value;
    else if (argv[i] === '--payload-bytes') out.payloadBytes = value;
    else if (argv[i] === '--duration') out.duration = value;
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!(out.port > 0 && out.hz > 0 && out.duration > 0)) throw new Error('need --port, --hz, --duration > 0');
  return out;
}

// Calls tick() every periodMs on an absolute schedule (a plain setInterval drifts by
// each call's own run time); when a call ends more than a period late the missed ticks
// are skipped, not burst (as the floor's tokio interval does).
function every(periodMs, tick) {
  let due = performance.now() + periodMs;
  const run = () => {
    tick();
    due += periodMs;
    const now = performance.now();
    while (due <= now) due += periodMs;
    setTimeout(run, due - now);
  };
  setTimeout(run, periodMs);
}

function tickPayload(seq, atMs, payloadBytes) {
  const bare = `{"t":"tick","seq":${seq},"at":${atMs},"pad":""}`;
  const pad = 'x'.repeat(Math.max(0, payloadBytes - bare.length));
  return `{"t":"tick","seq":${seq},"at":${atMs},"pad":"${pad}"}`;
}

const opts = args();
const wss = new WebSocketServer({ host: '127.0.0.1', port: opts.port, perMessageDeflate: false, clientTracking: true });
wss.on('connection', (socket) => socket.on('error', () => {}));
let seq = 0;
every(1000 / opts.hz, () => {
  seq += 1;
  const frame = Buffer.from(tickPayload(seq, Date.now(), opts.payloadBytes));
  for (const client of wss.clients) {
    if (client.readyState === WebSocket.OPEN) client.send(frame, { binary: false });
  }
});
setTimeout(() => process.exit(0), opts.duration * 1000);
console.log(`node-ws listening on 127.0.0.1:${opts.port}, ws ${require('ws/package.json').version}, bufferutil ${require('bufferutil/package.json').version}`);

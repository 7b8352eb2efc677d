// Fan-out benchmark peer: uWebSockets.js (the npm build @trufflesuite/uws-js-unofficial).
// Every socket subscribes to one topic; every 1/hz s one tick frame
// {"t":"tick","seq":N,"at":<unix ms>,"pad":"xx.."} padded to --payload-bytes is built
// once and fanned out with `app.publish(topic, msg)` (uWS's idiomatic broadcast).
// Loads the native binary itself: the package silently falls back to a pure-JS (ws)
// implementation when its binary does not load, which must never be measured as uWS.
// Stops itself after --duration.
'use strict';
const path = require('path');

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

const pkg = path.dirname(require.resolve('@trufflesuite/uws-js-unofficial/package.json'));
const binary = path.join(pkg, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
const uWS = require(binary);
const opts = args();
const TOPIC = 'tick';
const app = uWS.App().ws('/*', {
  compression: uWS.DISABLED,
  maxPayloadLength: 16 * 1024,
  open: (ws) => ws.subscribe(TOPIC),
});
app.listen('127.0.0.1', opts.port, (token) => {
  if (!token) {
    console.error(`uws: cannot listen on 127.0.0.1:${opts.port}`);
    process.exit(1);
  }
  console.log(`uws listening on 127.0.0.1:${opts.port}, ${path.basename(binary)}, ${require(path.join(pkg, 'package.json')).version}`);
});
let seq = 0;
every(1000 / opts.hz, () => {
  seq += 1;
  app.publish(TOPIC, tickPayload(seq, Date.now(), opts.payloadBytes), false);
});
setTimeout(() => process.exit(0), opts.duration * 1000);

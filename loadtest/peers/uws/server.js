// Fan-out benchmark peer: uWebSockets.js (the npm build @trufflesuite/uws-js-unofficial).
// Every socket subscribes to one topic; every 1/hz s one tick frame
// {"t":"tick","seq":N,"at":<unix ms>,"pad":"xx.."} padded to --payload-bytes is built
// once and fanned out with `app.publish(topic, msg)` (uWS's idiomatic broadcast).
// Loads the native binary itself: the package silently falls back to a pure-JS (ws)
// implementation when its binary does not load, which must never be measured as uWS.
// Stops itself after --duration.
'use strict';
const path = require('path');
const { parseArgs, every, tickPayload } = require('../node-common/tick.js');

const pkg = path.dirname(require.resolve('@trufflesuite/uws-js-unofficial/package.json'));
const binary = path.join(pkg, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
const uWS = require(binary);
const opts = parseArgs();
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

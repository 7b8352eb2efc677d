// Fan-out benchmark peer: Node `ws` (+ bufferutil). Every 1/hz s one tick frame
// {"t":"tick","seq":N,"at":<unix ms>,"pad":"xx.."} padded to --payload-bytes, encoded
// once per tick, sent to every open socket with `client.send` (the textbook broadcast
// of ws's README: ws has no public pre-framed send). Stops itself after --duration.
'use strict';
const { WebSocketServer, WebSocket } = require('ws');
const { parseArgs, every, tickPayload } = require('../node-common/tick.js');

const opts = parseArgs();
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

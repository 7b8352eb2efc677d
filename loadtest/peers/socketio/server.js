// Fan-out benchmark peer: Socket.IO 4 with @socket.io/redis-adapter, as a Socket.IO
// deployment of more than one node would run. It starts its own redis-server on
// --redis-port (no persistence) and stops it when it ends. Every 1/hz s it broadcasts
// one tick {"t":"tick","seq":N,"at":<unix ms>,"pad":"xx.."} with
// `io.emit("tick", tick)` (encoded once per broadcast by the adapter, which also
// publishes it to Redis for the other nodes). Clients get the engine.io packet
// `42["tick",{...}]`, padded to --payload-bytes envelope included. WebSocket transport
// only, no compression, and a ping interval longer than the run (the benchmark's
// counting sockets do not answer engine.io pings). Stops itself after --duration.
'use strict';
const { spawn } = require('child_process');
const http = require('http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');
const { parseArgs, every, tickPad } = require('../node-common/tick.js');

// The engine.io packet `42["tick",` + tick + `]` is padded to payloadBytes, so the
// frame on the wire is as long as every other server's.
const ENVELOPE_BYTES = '42["tick",]'.length;

// redis-server under a shell that kills it when this process's end closes its stdin
// (also when this process is killed), and in any case after the run's lifetime.
function startRedis(port, lifetimeSeconds) {
  const script =
    `timeout -k 2 ${lifetimeSeconds + 5} redis-server --port ${port} --bind 127.0.0.1 ` +
    `--save "" --appendonly no --loglevel warning & pid=$!; cat >/dev/null; kill $pid; wait`;
  const child = spawn('sh', ['-c', script], { stdio: ['pipe', 'inherit', 'inherit'] });
  child.on('exit', (code) => console.log(`redis-server stopped (${code})`));
  return child;
}

async function connectRedis(port) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const client = createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: false } });
    client.on('error', () => {});
    try {
      await client.connect();
      return client;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function main() {
  const opts = parseArgs(['--redis-port']);
  opts.redisPort = opts.extra['--redis-port'];
  setTimeout(() => process.exit(0), opts.duration * 1000);
  const redis = startRedis(opts.redisPort, opts.duration);
  process.on('exit', () => redis.stdin.end());
  const pubClient = await connectRedis(opts.redisPort);
  const subClient = pubClient.duplicate();
  subClient.on('error', () => {});
  await subClient.connect();
  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(pubClient, subClient),
    transports: ['websocket'],
    perMessageDeflate: false,
    serveClient: false,
    pingInterval: (opts.duration + 60) * 1000,
    pingTimeout: 60_000,
  });
  io.on('connection', () => {});
  let seq = 0;
  every(1000 / opts.hz, () => {
    seq += 1;
    const at = Date.now();
    io.emit('tick', { t: 'tick', seq, at, pad: tickPad(seq, at, opts.payloadBytes, ENVELOPE_BYTES) });
  });
  // Listen last: the benchmark's readiness probe is a TCP connect to this port.
  httpServer.listen(opts.port, '127.0.0.1', () => {
    console.log(`socketio listening on 127.0.0.1:${opts.port}, redis on ${opts.redisPort}, ` +
      `socket.io ${require('socket.io/package.json').version}`);
  });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

// Shared by the Node fan-out peers (node-ws, uws, socketio): their command line, the
// drift-free tick schedule and the tick payload, so every Node peer sends exactly the
// floor's frame on exactly the floor's schedule.
'use strict';

// Parses `--port --hz --payload-bytes --duration` plus the peer's `extra` numeric flags
// (e.g. ['--redis-port']); every flag named in `required` must be > 0.
function parseArgs(extra = [], required = ['--port', '--hz', '--duration']) {
  const values = { '--port': 0, '--hz': 20, '--payload-bytes': 64, '--duration': 600 };
  for (const name of extra) values[name] = 0;
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    if (!(argv[i] in values)) throw new Error(`unknown argument ${argv[i]}`);
    values[argv[i]] = Number(argv[i + 1]);
  }
  for (const name of [...required, ...extra]) {
    if (!(values[name] > 0)) throw new Error(`need ${name} > 0`);
  }
  return {
    port: values['--port'],
    hz: values['--hz'],
    payloadBytes: values['--payload-bytes'],
    duration: values['--duration'],
    extra: values,
  };
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

// The padding that makes `{"t":"tick","seq":..,"at":..,"pad":"<pad>"}` plus
// `envelopeBytes` of framing around it exactly `payloadBytes` long.
function tickPad(seq, atMs, payloadBytes, envelopeBytes = 0) {
  const bare = `{"t":"tick","seq":${seq},"at":${atMs},"pad":""}`;
  return 'x'.repeat(Math.max(0, payloadBytes - envelopeBytes - bare.length));
}

// The floor's tick payload.
function tickPayload(seq, atMs, payloadBytes) {
  return `{"t":"tick","seq":${seq},"at":${atMs},"pad":"${tickPad(seq, atMs, payloadBytes)}"}`;
}

module.exports = { parseArgs, every, tickPad, tickPayload };

// The Cluster and Traffic panels, from the processes' status reports as the server sums
// them: which engine leads each room (epoch, fencing token, ack latency), the engines and
// gateways (alive or gone), the failovers, and the deployment's traffic.

/** Failovers listed at once, at most (the server keeps 50). */
const FAILOVERS_SHOWN_MAX = 50;

const $ = (id) => document.getElementById(id);

/** Microseconds (a bucket's upper bound) as milliseconds, by integer arithmetic: 250 -> "≤0.25 ms". */
export function formatAckMicros(us) {
  if (us == null) return '—';
  const ms = Math.floor(us / 1000);
  const rest = us % 1000;
  const fraction = rest === 0 ? '' : `.${String(rest).padStart(3, '0').replace(/0+$/, '')}`;
  return `≤${ms}${fraction} ms`;
}

function clock(ms) {
  return ms == null ? '—' : new Date(ms).toLocaleTimeString();
}

function span(className, text, label) {
  const el = document.createElement('span');
  el.className = className;
  el.textContent = text;
  if (label) el.dataset.label = label;
  return el;
}

function row(attributes, ...cells) {
  const li = document.createElement('li');
  Object.assign(li.dataset, attributes);
  li.append(...cells);
  return li;
}

function roomRow(room) {
  const leader = room.engine ?? 'no leader';
  return row(
    { room: room.room, leader: room.engine ?? '' },
    span('name', room.room),
    span(room.engine ? 'leader' : 'leader none', leader, 'leader'),
    span('mono', room.epoch ?? '—', 'epoch'),
    span('mono', room.fencing_token == null ? '—' : String(room.fencing_token), 'token'),
    span('mono', clock(room.leading_since_ms), 'since'),
    span('mono', `${formatAckMicros(room.ack_p50_us)} / ${formatAckMicros(room.ack_p99_us)}`, 'ack p50/p99'),
  );
}

function processState(process, atMs) {
  const seconds = Math.max(0, Math.round((atMs - process.last_seen_ms) / 1000));
  return process.alive ? `alive · ${seconds} s ago` : `gone · ${seconds} s ago`;
}

function engineRow(engine, atMs) {
  const rooms = engine.rooms.length ? engine.rooms.join(', ') : 'none (standby)';
  return row(
    { engine: engine.engine, alive: String(engine.alive) },
    span('name', engine.engine),
    span('state', processState(engine, atMs)),
    span('mono', rooms, 'leads'),
  );
}

function gatewayRow(gateway, atMs) {
  const shards = gateway.connections_per_shard;
  const total = shards.reduce((a, b) => a + b, 0);
  return row(
    { gateway: gateway.gateway, alive: String(gateway.alive) },
    span('name', gateway.gateway),
    span('state', processState(gateway, atMs)),
    span('mono', `${total} (${shards.join(' · ')})`, 'sockets (per shard)'),
    span('mono', String(gateway.frames_per_second), 'frames/s'),
    span('mono', String(gateway.bets_per_second), 'bets/s'),
  );
}

function failoverRow(failover) {
  return row(
    { room: failover.room },
    span('mono', clock(failover.at_ms)),
    span('name', failover.room),
    span('mono', `${failover.from_engine} (${failover.from_epoch}) → ${failover.to_engine} (${failover.to_epoch})`),
    span('mono', `${failover.leaderless_ms} ms without a leader`),
  );
}

export function renderCluster(cluster) {
  if (!cluster) return;
  const at = cluster.at_ms;
  $('cluster-rooms').replaceChildren(...cluster.rooms.map(roomRow));
  $('cluster-engines').replaceChildren(...cluster.engines.map((e) => engineRow(e, at)));
  $('cluster-gateways').replaceChildren(...cluster.gateways.map((g) => gatewayRow(g, at)));
  const failovers = cluster.failovers.slice(0, FAILOVERS_SHOWN_MAX);
  $('cluster-failovers').replaceChildren(...failovers.map(failoverRow));
  const alive = (list) => list.filter((p) => p.alive).length;
  $('cluster-summary').textContent =
    `${alive(cluster.engines)} engines · ${alive(cluster.gateways)} gateways alive`;
  $('cluster').dataset.at = String(at);
}

export function renderTraffic(traffic) {
  if (!traffic) return;
  $('traffic-gateways').textContent = String(traffic.gateways);
  $('traffic-connections').textContent = String(traffic.connections);
  $('traffic-frames').textContent = String(traffic.frames_per_second);
  $('traffic-bets').textContent = String(traffic.bets_per_second);
  $('traffic-ack-p50').textContent = formatAckMicros(traffic.ack_p50_us);
  $('traffic-ack-p99').textContent = formatAckMicros(traffic.ack_p99_us);
  $('traffic-slow').textContent = String(traffic.slow_consumer_closes);
  $('traffic').dataset.at = String(traffic.at_ms);
}

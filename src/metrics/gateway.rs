//! The gateway's series: per shard ([`ShardMetrics`]) and per room and shard
//! ([`RoomShardMetrics`]), handles made once when a shard starts, so the fan-out of a
//! frame adds its counts once per batch; the closes and refusals, counted where they
//! happen (rare events) by their reason.

use metrics::{Counter, Gauge, Histogram};

use super::families::*;
use crate::protocol::RoomEvent;

/// The `reason` labels of [`UPGRADES_REFUSED`]: the codes of `/ws`'s refusals
/// (`http::ws`), `version` for a WebSocket version other than 13.
pub const UPGRADE_REFUSAL_REASONS: [&str; 11] = [
    "not_websocket",
    "version",
    "origin",
    "bad_token",
    "unknown_room",
    "bad_since",
    "ip_connections_max",
    "player_connections_max",
    "banned",
    "full",
    "busy",
];

/// The `reason` labels of [`ADMISSION_REFUSED`] (`admission::Refusal::code` and the guest
/// rate).
const ADMISSION_REFUSAL_REASONS: [&str; 4] = [
    "ip_connections_max",
    "player_connections_max",
    "banned",
    "guests_per_ip",
];

/// Why the gateway closed a socket: the `reason` label of [`SOCKET_CLOSES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum CloseReason {
    /// Its outbound queue was full (4001).
    SlowConsumer,
    /// It kept sending past the rate limit (1008).
    RateLimit,
    /// It was silent for `gateway.idle_timeout_ms` (4002).
    IdleTimeout,
    /// It sent no valid `auth` message in time (4003).
    AuthTimeout,
}

/// Counts a socket closed for `reason`.
pub fn socket_closed(reason: CloseReason) {
    let reason: &'static str = reason.into();
    metrics::counter!(SOCKET_CLOSES, "reason" => reason).increment(1);
}

/// Counts a `/ws` handshake refused with `reason` (one of [`UPGRADE_REFUSAL_REASONS`]).
pub fn upgrade_refused(reason: &'static str) {
    metrics::counter!(UPGRADES_REFUSED, "reason" => reason).increment(1);
}

/// The `path` labels of [`GATEWAY_BUS_ERRORS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum BusErrorPath {
    /// The room's retained events, read at start.
    Retained,
    /// The history read that fills a gap.
    GapFill,
    /// An event that is not JSON of a `RoomEvent`.
    Undecodable,
}

/// Counts an event the gateway could not read from the bus.
pub fn bus_error(path: BusErrorPath) {
    let path: &'static str = path.into();
    metrics::counter!(GATEWAY_BUS_ERRORS, "path" => path).increment(1);
}

/// Seconds from the engine time `at_ms` (unix ms) to now; 0 if the clocks disagree.
pub fn seconds_since(at_ms: u64) -> f64 {
    crate::clock::unix_now_ms().saturating_sub(at_ms) as f64 / 1_000.0
}

/// The histogram of the ticks of `room` received from the bus.
pub fn bus_receive_lag(room: &str) -> Histogram {
    metrics::histogram!(BUS_RECEIVE_LAG_SECONDS, "room" => room.to_owned())
}

/// Registers at 0 the gateway series of `rooms` over `shards` (and the room-less ones).
pub fn register(rooms: &[String], shards: usize) {
    use strum::IntoEnumIterator;
    for shard in 0..shards {
        ShardMetrics::new(shard);
        for room in rooms {
            RoomShardMetrics::new(room, shard);
        }
    }
    for room in rooms {
        // Making a handle registers its series.
        let _registered = bus_receive_lag(room);
    }
    for reason in UPGRADE_REFUSAL_REASONS {
        metrics::counter!(UPGRADES_REFUSED, "reason" => reason).increment(0);
    }
    for reason in ADMISSION_REFUSAL_REASONS {
        metrics::counter!(ADMISSION_REFUSED, "reason" => reason).increment(0);
    }
    for reason in CloseReason::iter() {
        let reason: &'static str = reason.into();
        metrics::counter!(SOCKET_CLOSES, "reason" => reason).increment(0);
    }
    for path in BusErrorPath::iter() {
        let path: &'static str = path.into();
        metrics::counter!(GATEWAY_BUS_ERRORS, "path" => path).increment(0);
    }
    for result in ["recovered", "snapshot"] {
        metrics::counter!(RECOVERIES, "result" => result).increment(0);
    }
    for name in [
        SHARD_QUEUE_DROPPED,
        DUPLICATE_REPLIES_DROPPED,
        REQUESTS_TIMED_OUT,
        GUESTS,
        GUESTS_EXPIRED,
    ] {
        metrics::counter!(name).increment(0);
    }
}

/// The series of one shard.
pub struct ShardMetrics {
    /// Open player sockets on the shard.
    pub connections: Gauge,
}

impl ShardMetrics {
    pub fn new(shard: usize) -> ShardMetrics {
        ShardMetrics {
            connections: metrics::gauge!(CONNECTIONS, "shard" => shard.to_string()),
        }
    }
}

/// The series of one room on one shard.
pub struct RoomShardMetrics {
    frames_sent: Counter,
    frames_queued: Counter,
    frames_dropped: Counter,
    ticks_conflated: Counter,
    pub ticks_skipped: Counter,
    pub event_gaps: Counter,
    /// Recorded once per tick fanned out to at least one socket.
    tick_lag_seconds: Histogram,
}

impl RoomShardMetrics {
    pub fn new(room: &str, shard: usize) -> RoomShardMetrics {
        let labels = [("room", room.to_owned()), ("shard", shard.to_string())];
        let counter = |name: &'static str| metrics::counter!(name, &labels);
        RoomShardMetrics {
            frames_sent: counter(FRAMES_SENT),
            frames_queued: counter(FRAMES_QUEUED),
            frames_dropped: counter(FRAMES_DROPPED),
            ticks_conflated: counter(TICKS_CONFLATED),
            ticks_skipped: counter(TICKS_SKIPPED),
            event_gaps: counter(EVENT_GAPS),
            tick_lag_seconds: metrics::histogram!(TICK_LAG_SECONDS, &labels),
        }
    }

    /// Counts one fan-out of a frame: the sockets it was handed to, of which those it
    /// waits in the queue of (`conflated` of them replacing an older tick), and those
    /// that dropped it.
    pub fn fanned_out(&self, delivered: u64, queued: u64, conflated: u64, dropped: u64) {
        self.frames_sent.increment(delivered);
        self.frames_queued.increment(queued);
        self.ticks_conflated.increment(conflated);
        self.frames_dropped.increment(dropped);
    }

    /// Records the lag of `event` if it is a tick, as it is fanned out to the sockets.
    pub fn delivering(&self, event: &RoomEvent) {
        if let RoomEvent::Tick { at, .. } = event {
            self.tick_lag_seconds.record(seconds_since(*at));
        }
    }
}

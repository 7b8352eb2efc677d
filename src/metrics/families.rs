//! Every metric family aloft exports: its name (`aloft_*`, units in the name), type,
//! labels, side (engine or gateway) and HELP text, in [`FAMILIES`]. docs/operations.md
//! lists the same table; `tests/metrics/` holds the two and `/metrics` to each other.

use metrics::Unit;

/// Upper bounds of the latency histograms, in seconds: 1 ms to 5 s.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Upper bounds of the ledger batch sizes, in transfers.
const BATCH_BUCKETS_TRANSFERS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0,
];

/// The Prometheus type of a family; histograms carry their bucket bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

impl Kind {
    /// The name on the family's `# TYPE` line.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram(_) => "histogram",
        }
    }
}

/// Which part of aloft exports a family: the engine (`aloft engine`, `aloft serve`) or
/// the gateway (`aloft gateway`, `aloft serve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Engine,
    Gateway,
}

/// One metric family.
#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub side: Side,
    /// Labels besides `role`, which every family has.
    pub labels: &'static [&'static str],
    pub unit: Unit,
    pub help: &'static str,
}

/// Gauge per `shard`: open player sockets.
pub const CONNECTIONS: &str = "aloft_connections";
/// Counter per `reason`: `/ws` handshakes refused before the upgrade.
pub const UPGRADES_REFUSED: &str = "aloft_upgrades_refused_total";
/// Counter per `reason`: requests refused by an admission limit.
pub const ADMISSION_REFUSED: &str = "aloft_admission_refused_total";
/// Counter per `reason`: sockets the gateway closed for their behaviour.
pub const SOCKET_CLOSES: &str = "aloft_socket_closes_total";
/// Counter per `room`, `shard`: public frames handed to sockets (written or queued).
pub const FRAMES_SENT: &str = "aloft_frames_sent_total";
/// Counter per `room`, `shard`: public frames that had to wait in a socket queue.
pub const FRAMES_QUEUED: &str = "aloft_frames_queued_total";
/// Counter per `room`, `shard`: public frames dropped for closing or overflowing sockets.
pub const FRAMES_DROPPED: &str = "aloft_frames_dropped_total";
/// Counter per `room`, `shard`: ticks that replaced an older tick in a socket queue.
pub const TICKS_CONFLATED: &str = "aloft_ticks_conflated_total";
/// Counter per `room`, `shard`: ticks a lagging shard skipped for a newer one.
pub const TICKS_SKIPPED: &str = "aloft_ticks_skipped_total";
/// Counter per `room`, `shard`: sequence gaps (each answered with fresh snapshots).
pub const EVENT_GAPS: &str = "aloft_event_gaps_total";
/// Counter: events a stalled shard's full queue could not take.
pub const SHARD_QUEUE_DROPPED: &str = "aloft_shard_queue_dropped_total";
/// Counter per `result`: sockets that asked to resume.
pub const RECOVERIES: &str = "aloft_recoveries_total";
/// Histogram per `room`, `shard`: engine tick time to the tick's fan-out, in seconds.
pub const TICK_LAG_SECONDS: &str = "aloft_tick_lag_seconds";
/// Histogram per `room`: engine tick time to the gateway's receipt from the bus.
pub const BUS_RECEIVE_LAG_SECONDS: &str = "aloft_bus_receive_lag_seconds";
/// Counter per `path`: what the gateway could not read from the bus.
pub const GATEWAY_BUS_ERRORS: &str = "aloft_gateway_bus_errors_total";
/// Counter: second answers to a request, dropped by the gateway.
pub const DUPLICATE_REPLIES_DROPPED: &str = "aloft_duplicate_replies_dropped_total";
/// Counter: requests answered `unavailable` by the gateway after `request_timeout_ms`.
pub const REQUESTS_TIMED_OUT: &str = "aloft_requests_timed_out_total";
/// Counter: guest accounts created.
pub const GUESTS: &str = "aloft_guests_total";
/// Counter: unused guests removed by the expiry sweep.
pub const GUESTS_EXPIRED: &str = "aloft_guests_expired_total";

/// Counter per `room`: stakes the ledger took.
pub const BETS_ACCEPTED: &str = "aloft_bets_accepted_total";
/// Counter per `room`, `code`: bets refused.
pub const BETS_REFUSED: &str = "aloft_bets_refused_total";
/// Counter per `room`, `kind`: cashouts paid.
pub const CASHOUTS: &str = "aloft_cashouts_total";
/// Counter per `room`, `code`: cashouts refused.
pub const CASHOUTS_REFUSED: &str = "aloft_cashouts_refused_total";
/// Counter per `room`: bets their players cancelled while betting was open.
pub const BETS_CANCELLED: &str = "aloft_bets_cancelled_total";
/// Counter per `room` and `result` (`posted`, `rate_limited`): players' chat messages.
pub const CHAT_MESSAGES: &str = "aloft_chat_messages_total";
/// Counter per `room`: stakes refunded.
pub const REFUNDS: &str = "aloft_refunds_total";
/// Counter per `room`: minor units staked.
pub const WAGERED_MINOR: &str = "aloft_wagered_minor_total";
/// Counter per `room`: minor units paid out (stakes included).
pub const PAID_OUT_MINOR: &str = "aloft_paid_out_minor_total";
/// Counter per `room`: minor units refunded.
pub const REFUNDED_MINOR: &str = "aloft_refunded_minor_total";
/// Gauge per `room`: stakes of the round's active bets.
pub const STAKE_AT_RISK_MINOR: &str = "aloft_stake_at_risk_minor";
/// Gauge per `room`: the players' realized profit in the round.
pub const ROUND_PROFIT_MINOR: &str = "aloft_round_profit_minor";
/// Gauge per `room`: the round's max-profit cap.
pub const ROUND_PROFIT_MAX_MINOR: &str = "aloft_round_profit_max_minor";
/// Counter per `room`: rounds crashed.
pub const ROUNDS: &str = "aloft_rounds_total";
/// Gauge per `room`, `phase`: 1 for the room's current phase.
pub const ROOM_PHASE: &str = "aloft_room_phase";
/// Gauge per `room`: 1 while this process leads the room.
pub const LEASE_HELD: &str = "aloft_lease_held";
/// Counter per `room`: leases this engine won.
pub const LEASE_TAKEOVERS: &str = "aloft_lease_takeovers_total";
/// Histogram per `room`: bet command received to reply published, in seconds.
pub const BET_ACK_SECONDS: &str = "aloft_bet_ack_seconds";
/// Histogram per `room`: ledger batch commit time, in seconds.
pub const LEDGER_BATCH_SECONDS: &str = "aloft_ledger_batch_seconds";
/// Histogram per `room`: transfers per ledger batch.
pub const LEDGER_BATCH_TRANSFERS: &str = "aloft_ledger_batch_transfers";
/// Counter per `room`, `op`: failed ledger writes.
pub const LEDGER_ERRORS: &str = "aloft_ledger_errors_total";
/// Gauge per `room`: 1 while the room's ledger circuit breaker is open.
pub const LEDGER_BREAKER_OPEN: &str = "aloft_ledger_breaker_open";
/// Counter per `path`: events or replies the engine could not put on the bus.
pub const ENGINE_BUS_ERRORS: &str = "aloft_engine_bus_errors_total";

const fn family(
    name: &'static str,
    kind: Kind,
    side: Side,
    labels: &'static [&'static str],
    unit: Unit,
    help: &'static str,
) -> Family {
    Family {
        name,
        kind,
        side,
        labels,
        unit,
        help,
    }
}

use Kind::{Counter, Gauge, Histogram};
use Side::{Engine, Gateway};

/// Every family, gateway's first. The HELP text is what `/metrics` shows.
pub const FAMILIES: &[Family] = &[
    family(
        CONNECTIONS,
        Gauge,
        Gateway,
        &["shard"],
        Unit::Count,
        "Open player sockets on the shard.",
    ),
    family(
        UPGRADES_REFUSED,
        Counter,
        Gateway,
        &["reason"],
        Unit::Count,
        "/ws handshakes refused before the upgrade, by the code of the HTTP answer.",
    ),
    family(
        ADMISSION_REFUSED,
        Counter,
        Gateway,
        &["reason"],
        Unit::Count,
        "Requests refused by an admission limit (/ws, first-message auth, /api/guest).",
    ),
    family(
        SOCKET_CLOSES,
        Counter,
        Gateway,
        &["reason"],
        Unit::Count,
        "Sockets the gateway closed: slow_consumer (4001), rate_limit (1008), idle_timeout (4002), auth_timeout (4003).",
    ),
    family(
        FRAMES_SENT,
        Counter,
        Gateway,
        &["room", "shard"],
        Unit::Count,
        "Public frames handed to sockets (written at once or queued).",
    ),
    family(
        FRAMES_QUEUED,
        Counter,
        Gateway,
        &["room", "shard"],
        Unit::Count,
        "Public frames that had to wait in a socket queue.",
    ),
    family(
        FRAMES_DROPPED,
        Counter,
        Gateway,
        &["room", "shard"],
        Unit::Count,
        "Public frames dropped for closing, failed or overflowing sockets.",
    ),
    family(
        TICKS_CONFLATED,
        Counter,
        Gateway,
        &["room", "shard"],
        Unit::Count,
        "Ticks that replaced an older tick still queued for a socket.",
    ),
    family(
        TICKS_SKIPPED,
        Counter,
        Gateway,
        &["room", "shard"],
        Unit::Count,
        "Ticks a lagging shard skipped because a newer one was already queued to it.",
    ),
    family(
        EVENT_GAPS,
        Counter,
        Gateway,
        &["room", "shard"],
        Unit::Count,
        "Sequence gaps or new epochs seen by a shard, each answered with fresh snapshots.",
    ),
    family(
        SHARD_QUEUE_DROPPED,
        Counter,
        Gateway,
        &[],
        Unit::Count,
        "Events a stalled shard's full queue could not take (the shard resyncs from the gap).",
    ),
    family(
        RECOVERIES,
        Counter,
        Gateway,
        &["result"],
        Unit::Count,
        "Sockets that asked to resume: recovered (sent what they missed) or snapshot.",
    ),
    family(
        TICK_LAG_SECONDS,
        Histogram(LATENCY_BUCKETS_SECONDS),
        Gateway,
        &["room", "shard"],
        Unit::Seconds,
        "Engine tick time to its fan-out to the shard's sockets, once per tick and shard.",
    ),
    family(
        BUS_RECEIVE_LAG_SECONDS,
        Histogram(LATENCY_BUCKETS_SECONDS),
        Gateway,
        &["room"],
        Unit::Seconds,
        "Engine tick time to the gateway's receipt of the tick from the bus (publish to receive).",
    ),
    family(
        GATEWAY_BUS_ERRORS,
        Counter,
        Gateway,
        &["path"],
        Unit::Count,
        "Events the gateway could not read: retained (history at start), gap_fill, undecodable.",
    ),
    family(
        DUPLICATE_REPLIES_DROPPED,
        Counter,
        Gateway,
        &[],
        Unit::Count,
        "Second answers to a request (a new engine leader answering again), dropped.",
    ),
    family(
        REQUESTS_TIMED_OUT,
        Counter,
        Gateway,
        &[],
        Unit::Count,
        "Requests the engine did not answer within gateway.request_timeout_ms, answered unavailable.",
    ),
    family(
        GUESTS,
        Counter,
        Gateway,
        &[],
        Unit::Count,
        "Guest accounts created.",
    ),
    family(
        GUESTS_EXPIRED,
        Counter,
        Gateway,
        &[],
        Unit::Count,
        "Unused guests removed by the expiry sweep.",
    ),
    family(
        BETS_ACCEPTED,
        Counter,
        Engine,
        &["room"],
        Unit::Count,
        "Bets whose stake the ledger took.",
    ),
    family(
        BETS_REFUSED,
        Counter,
        Engine,
        &["room", "code"],
        Unit::Count,
        "Bets refused, by the refusal code sent to the player.",
    ),
    family(
        CASHOUTS,
        Counter,
        Engine,
        &["room", "kind"],
        Unit::Count,
        "Cashouts paid: manual (a request), auto (the bet's target), cap (the round's max profit).",
    ),
    family(
        CASHOUTS_REFUSED,
        Counter,
        Engine,
        &["room", "code"],
        Unit::Count,
        "Cashout requests refused, by the refusal code sent to the player.",
    ),
    family(
        BETS_CANCELLED,
        Counter,
        Engine,
        &["room"],
        Unit::Count,
        "Bets cancelled by their players while betting was open (each also a refund).",
    ),
    family(
        CHAT_MESSAGES,
        Counter,
        Engine,
        &["room", "result"],
        Unit::Count,
        "Players' chat messages: posted to the room, or refused over the player's chat rate.",
    ),
    family(
        REFUNDS,
        Counter,
        Engine,
        &["room"],
        Unit::Count,
        "Stakes refunded (a round aborted, or a bet its player cancelled).",
    ),
    family(
        WAGERED_MINOR,
        Counter,
        Engine,
        &["room"],
        Unit::Count,
        "Minor units staked (stakes the ledger took).",
    ),
    family(
        PAID_OUT_MINOR,
        Counter,
        Engine,
        &["room"],
        Unit::Count,
        "Minor units paid out to players by cashouts, stakes included.",
    ),
    family(
        REFUNDED_MINOR,
        Counter,
        Engine,
        &["room"],
        Unit::Count,
        "Minor units refunded.",
    ),
    family(
        STAKE_AT_RISK_MINOR,
        Gauge,
        Engine,
        &["room"],
        Unit::Count,
        "Stakes of the round's active bets now, in minor units.",
    ),
    family(
        ROUND_PROFIT_MINOR,
        Gauge,
        Engine,
        &["room"],
        Unit::Count,
        "Players' realized profit in the round so far (payouts minus their stakes), in minor units.",
    ),
    family(
        ROUND_PROFIT_MAX_MINOR,
        Gauge,
        Engine,
        &["room"],
        Unit::Count,
        "The round's max-profit cap (engine.round_profit_max_minor), in minor units.",
    ),
    family(
        ROUNDS,
        Counter,
        Engine,
        &["room"],
        Unit::Count,
        "Rounds crashed.",
    ),
    family(
        ROOM_PHASE,
        Gauge,
        Engine,
        &["room", "phase"],
        Unit::Count,
        "1 for the room's current phase (betting, flying, crashed, stopped), 0 for the others.",
    ),
    family(
        LEASE_HELD,
        Gauge,
        Engine,
        &["room"],
        Unit::Count,
        "1 while this process leads the room (aloft engine: holds its lease; aloft serve: always).",
    ),
    family(
        LEASE_TAKEOVERS,
        Counter,
        Engine,
        &["room"],
        Unit::Count,
        "Leases of the room this engine won (each starts its leadership of the room).",
    ),
    family(
        BET_ACK_SECONDS,
        Histogram(LATENCY_BUCKETS_SECONDS),
        Engine,
        &["room"],
        Unit::Seconds,
        "Bet command received by the engine to its reply published.",
    ),
    family(
        LEDGER_BATCH_SECONDS,
        Histogram(LATENCY_BUCKETS_SECONDS),
        Engine,
        &["room"],
        Unit::Seconds,
        "Ledger batch commit time (group commit of a wake's transfers).",
    ),
    family(
        LEDGER_BATCH_TRANSFERS,
        Histogram(BATCH_BUCKETS_TRANSFERS),
        Engine,
        &["room"],
        Unit::Count,
        "Transfers per ledger batch.",
    ),
    family(
        LEDGER_ERRORS,
        Counter,
        Engine,
        &["room", "op"],
        Unit::Count,
        "Failed ledger writes: batch (transfers) or journal (round records).",
    ),
    family(
        LEDGER_BREAKER_OPEN,
        Gauge,
        Engine,
        &["room"],
        Unit::Count,
        "1 while the room's ledger circuit breaker is open (bets refused unavailable).",
    ),
    family(
        ENGINE_BUS_ERRORS,
        Counter,
        Engine,
        &["path"],
        Unit::Count,
        "Events (publish) or replies (reply) the engine could not put on the bus.",
    ),
];

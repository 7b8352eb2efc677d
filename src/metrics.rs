//! Prometheus metrics: the names (all `aloft_*`), the process-wide recorder, and the
//! [`MetricsListener`] that serves `/metrics` on `metrics_listen`, apart from the player
//! port, in every role. Hot paths count per batch (one increment per fan-out of a frame,
//! not per socket).

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

/// Gauge: open player sockets.
pub const CONNECTIONS: &str = "aloft_connections";
/// Counter: public frames handed to sockets (written or queued).
pub const FRAMES_SENT: &str = "aloft_frames_sent_total";
/// Counter: public frames that had to wait in a socket queue.
pub const FRAMES_QUEUED: &str = "aloft_frames_queued_total";
/// Counter: public frames dropped for closing or overflowing sockets.
pub const FRAMES_DROPPED: &str = "aloft_frames_dropped_total";
/// Counter: ticks a lagging shard skipped because a newer one was already queued.
pub const TICKS_SKIPPED: &str = "aloft_ticks_skipped_total";
/// Counter: shard queue overflows (a stalled shard).
pub const SHARD_QUEUE_DROPPED: &str = "aloft_shard_queue_dropped_total";
/// Counter: sequence gaps seen by shards (each answered with fresh snapshots).
pub const EVENT_GAPS: &str = "aloft_event_gaps_total";
/// Counter: sockets that asked to resume (`/ws?since=&epoch=`), by `result`: `recovered`
/// (sent the events they missed) or `snapshot` (out of the window, another epoch, or
/// ahead of the room).
pub const RECOVERIES: &str = "aloft_recoveries_total";
/// Counter: bets accepted by the engines.
pub const BETS_ACCEPTED: &str = "aloft_bets_accepted_total";
/// Counter: bets refused by the ledger (insufficient funds, faults), by `code`.
pub const BETS_REFUSED: &str = "aloft_bets_refused_total";
/// Counter: payouts and refunds committed, by `kind`.
pub const CREDITS: &str = "aloft_credits_total";
/// Counter: events or replies the engine could not put on the bus, by `path`.
pub const ENGINE_BUS_ERRORS: &str = "aloft_engine_bus_errors_total";
/// Counter: rounds finished.
pub const ROUNDS: &str = "aloft_rounds_total";
/// Histogram: ledger batch commit time, in seconds.
pub const LEDGER_BATCH_SECONDS: &str = "aloft_ledger_batch_seconds";
/// Counter: answers to a request the connection no longer awaited (a new engine leader
/// answering a command its predecessor had answered), dropped by the gateway.
pub const DUPLICATE_REPLIES_DROPPED: &str = "aloft_duplicate_replies_dropped_total";
/// Counter: requests the engine did not answer within `gateway.request_timeout_ms`,
/// answered `unavailable` by the gateway.
pub const REQUESTS_TIMED_OUT: &str = "aloft_requests_timed_out_total";
/// Gauge per `room`: 1 while the room's ledger circuit breaker is open (bets refused
/// `unavailable` because ledger batches failed or were slow), else 0.
pub const LEDGER_BREAKER_OPEN: &str = "aloft_ledger_breaker_open";
/// Counter: guest accounts created.
pub const GUESTS: &str = "aloft_guests_total";
/// Counter: requests refused by an admission limit, by `reason`: `ip_connections_max`,
/// `player_connections_max` (`/ws`, 503) or `guests_per_ip` (`/api/guest`, 429).
pub const ADMISSION_REFUSED: &str = "aloft_admission_refused_total";
/// Counter: unused guests removed by the expiry sweep (`limits.guest_unused_expiry_seconds`).
pub const GUESTS_EXPIRED: &str = "aloft_guests_expired_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once; later calls return the same handle (tests
/// start several servers in one process).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder was installed first (an embedding
            // program's); its metrics then go there and /metrics shows ours as empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Why the metrics listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address is taken or not local: set another `metrics_listen`
    /// (`ALOFT_METRICS_LISTEN`), or port 0 for a free one.
    #[error("metrics_listen: cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// `/metrics` in Prometheus text format on its own listener; other paths are 404.
pub struct MetricsListener {
    pub local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsListener {
    /// Binds `addr` and serves until `shutdown` fires.
    pub async fn start(
        addr: SocketAddr,
        shutdown: CancellationToken,
    ) -> Result<MetricsListener, MetricsError> {
        let listen_error = |source| MetricsError::Listen { addr, source };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        let handle = install();
        let router = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    handle.render(),
                )
                    .into_response()
            }),
        );
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::error!(%error, "metrics listener failed");
            }
        });
        tracing::info!("metrics at http://{local_addr}/metrics");
        Ok(MetricsListener { local_addr, task })
    }

    /// Waits for the listener to finish after its shutdown token fired.
    pub async fn join(self) {
        if let Err(error) = self.task.await {
            tracing::error!(%error, "metrics listener panicked");
        }
    }
}

//! [`MetricsListener`]: `/metrics` in Prometheus text format on `metrics_listen`, apart
//! from the player port, in every role.

use std::net::SocketAddr;

use axum::http::header;
use axum::response::IntoResponse;
use tokio_util::sync::CancellationToken;

use super::{Exported, install, register};

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
    /// Installs the recorder for `exported.role`, registers its series at 0, binds
    /// `addr` and serves until `shutdown` fires.
    pub async fn start(
        addr: SocketAddr,
        exported: Exported<'_>,
        shutdown: CancellationToken,
    ) -> Result<MetricsListener, MetricsError> {
        let listen_error = |source| MetricsError::Listen { addr, source };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        let handle = install(exported.role);
        register(exported);
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

//! A bot's connections after the first: taking a lost one back on the next gateway in
//! turn with `since` and `epoch` (re-sending unanswered requests), and the final
//! reconnection whose `hello.balance`, read from the ledger, must equal the own ledger;
//! both retry as a client would when the server answers 503.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use aloft::protocol::ServerMessage;
use futures_util::StreamExt;
use rand::Rng;
use rand::rngs::SmallRng;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::bots::bot::{Bot, RunContext};
use crate::bots::connection::{self, Incoming, Resume, Socket};
use crate::bots::verify::Check;

/// Frames read on the final connection while waiting for `hello`, at most.
const FRAMES_BEFORE_HELLO_MAX: usize = 16;
/// First and longest wait before retrying a reconnection the server refused with 503
/// (`full`/`busy`), in milliseconds; the wait doubles, with jitter, in between.
const RECONNECT_RETRY_DELAY_MS_MIN: u64 = 100;
const RECONNECT_RETRY_DELAY_MS_MAX: u64 = 1_600;

impl Bot {
    /// Opens a connection again after losing one for `why`: to the next gateway in turn,
    /// resuming after the last event followed, trying until `context.reconnect_ms_max`
    /// has passed. Unanswered requests go out again with their `req`. Without
    /// `reconnect_ms_max`, or when no gateway takes the connection in time, the loss is
    /// reported and `None` returned.
    pub(super) async fn reconnect(
        &mut self,
        token: &str,
        source: Ipv4Addr,
        why: String,
    ) -> Option<Socket> {
        let Some(reconnect_ms_max) = self.context.reconnect_ms_max else {
            self.fail(Check::Disconnected, why);
            return None;
        };
        let deadline = (Instant::now() + Duration::from_millis(reconnect_ms_max))
            .min(self.context.stop_deadline);
        let resume =
            (self.epoch.zip(self.stream.last_seq())).map(|(epoch, since)| Resume { since, epoch });
        let mut delay_ms = RECONNECT_RETRY_DELAY_MS_MIN;
        let mut last_error = why;
        while Instant::now() < deadline {
            self.server = (self.server + 1) % self.context.servers.len();
            let server = self.context.servers[self.server];
            let attempt = connection::open(server, source, token, &self.context.room, resume);
            match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(socket)) => {
                    self.resumed(resume.is_some());
                    return Some(socket);
                }
                Ok(Err(error)) => last_error = format!("{server}: {error:#}"),
                Err(_) => break,
            }
            let jittered_ms = self.rng.random_range(delay_ms / 2..=delay_ms);
            tokio::time::sleep_until(
                deadline.min(Instant::now() + Duration::from_millis(jittered_ms)),
            )
            .await;
            delay_ms = (delay_ms * 2).min(RECONNECT_RETRY_DELAY_MS_MAX);
        }
        let message = format!(
            "no gateway took the connection back within {reconnect_ms_max} ms: {last_error}"
        );
        self.fail(Check::ReconnectFailed, message);
        None
    }

    /// A new connection replaces a lost one.
    fn resumed(&mut self, sent_position: bool) {
        let stats = &self.context.stats;
        stats
            .reconnects
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.resuming = sent_position;
        self.rebase_pending = true;
        for bet in self.slots.iter_mut().flatten() {
            bet.report_may_be_lost = true;
        }
        for request in &mut self.pending {
            request.resent = true;
            self.outbox.push(request.message.clone());
        }
    }

    /// Reconnects once and compares `hello.balance`, read from the ledger, with the
    /// bot's own ledger.
    pub(super) async fn final_check(&mut self, token: &str, source: Ipv4Addr) {
        let budget = self
            .context
            .stop_deadline
            .saturating_duration_since(Instant::now());
        let context = self.context.clone();
        let server = context.servers[self.server];
        let retrying = read_hello_retrying(&context, server, token, source, &mut self.rng);
        let hello = tokio::time::timeout(budget, retrying).await;
        let expected = self.expected_minor;
        match hello {
            // Not re-based since a reconnection: nothing to compare the ledger with.
            Ok(Ok(_)) if self.rebase_pending => {}
            Ok(Ok(balance)) if Some(balance) == expected => {}
            Ok(Ok(balance)) => {
                let message = format!(
                    "ledger says {balance}, own ledger {expected:?}, last balance frame {}",
                    self.last_balance_minor
                );
                self.fail(Check::FinalBalance, message);
            }
            Ok(Err(error)) => self.fail(Check::ReconnectFailed, format!("{error:#}")),
            Err(_) => self.fail(
                Check::ReconnectFailed,
                format!("no hello within {} ms", budget.as_millis()),
            ),
        }
    }
}

/// [`read_hello`], tried again as a client would when the server answers 503 (`full` or
/// `busy`: docs/protocol.md asks to retry later) — thousands of bots reconnect at the
/// same crash at the end of a run. The caller bounds the time.
async fn read_hello_retrying(
    context: &RunContext,
    server: SocketAddr,
    token: &str,
    source: Ipv4Addr,
    rng: &mut SmallRng,
) -> anyhow::Result<i64> {
    let mut delay_ms = RECONNECT_RETRY_DELAY_MS_MIN;
    loop {
        match read_hello(context, server, token, source).await {
            Err(error) if is_retry_later(&error) => {
                context
                    .stats
                    .final_reconnect_retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let jittered_ms = rng.random_range(delay_ms / 2..=delay_ms);
                tokio::time::sleep(Duration::from_millis(jittered_ms)).await;
                delay_ms = (delay_ms * 2).min(RECONNECT_RETRY_DELAY_MS_MAX);
            }
            outcome => return outcome,
        }
    }
}

/// Whether the server refused the WebSocket handshake with 503.
fn is_retry_later(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<WsError>(),
            Some(WsError::Http(response)) if response.status().as_u16() == 503
        )
    })
}

/// Opens a new connection to `server` with `token` and returns the balance of its `hello`.
async fn read_hello(
    context: &RunContext,
    server: SocketAddr,
    token: &str,
    source: Ipv4Addr,
) -> anyhow::Result<i64> {
    let mut socket = connection::open(server, source, token, &context.room, None).await?;
    let mut balance = None;
    for _ in 0..FRAMES_BEFORE_HELLO_MAX {
        let Some(frame) = socket.next().await else {
            break;
        };
        if let Message::Text(text) = frame?
            && let Ok(Incoming::Private(ServerMessage::Hello {
                balance: hello_balance,
                ..
            })) = connection::decode(text.as_str())
        {
            balance = Some(hello_balance);
            break;
        }
    }
    // The check is done; a failed close frame changes nothing.
    let _ = socket.close(None).await;
    balance.ok_or_else(|| anyhow::anyhow!("no hello in the first {FRAMES_BEFORE_HELLO_MAX} frames"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use tokio_tungstenite::tungstenite::http::Response;

    fn refused(status: u16) -> anyhow::Error {
        let response = Response::builder().status(status).body(None).unwrap();
        Err::<(), _>(WsError::Http(Box::new(response)))
            .context("WebSocket handshake")
            .unwrap_err()
    }

    #[test]
    fn only_a_503_handshake_is_retried() {
        assert!(is_retry_later(&refused(503)));
        assert!(!is_retry_later(&refused(401)));
        assert!(!is_retry_later(&anyhow::anyhow!("connection refused")));
    }
}

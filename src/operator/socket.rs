//! The operator socket, `GET /api/operator/ws`: authenticated at the handshake by the
//! session cookie (a browser sends it with the upgrade; a token is never taken in the
//! URL or from a message), from an allowed Origin. It sends the feed's snapshot, then
//! every frame the feed broadcasts. Bounded like a player's socket: a socket more than
//! `operator.queue_frames_max` frames behind is closed with 4001, one whose peer does not
//! take a frame within [`WRITE_TIMEOUT_MS`] is dropped, and it is closed (4003) when its
//! session expires.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::sync::broadcast::error::RecvError;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, Utf8Bytes};

use super::OperatorConsole;
use super::guard::{self, Accepts};
use crate::protocol::close_code;

/// Longest wait for the peer to take one frame, in milliseconds.
pub const WRITE_TIMEOUT_MS: u64 = 10_000;

/// Reads what the handshake needs and hands the upgraded socket to its task.
pub async fn upgrade(
    State(console): State<Arc<OperatorConsole>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
) -> Response {
    let headers = request.headers();
    let expires_at_seconds = match guard::authorize(&console, headers, peer.ip(), Accepts::Cookie) {
        Ok(session) => session.expires_at_seconds,
        Err(refused) => return refused.into_response(),
    };
    let key = match crate::http::ws::websocket_key_checked(headers, &console.allowed_origins) {
        Ok(key) => key,
        Err(refused) => return refused.into_response(),
    };
    let Some(on_upgrade) = request
        .extensions_mut()
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return crate::http::api_error(
            axum::http::StatusCode::BAD_REQUEST,
            "not_websocket",
            "connection cannot be upgraded",
        );
    };
    let task_console = console.clone();
    console.sockets.spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(task_console.inbound_message_bytes_max))
            .max_frame_size(Some(task_console.inbound_message_bytes_max));
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        run(socket, &task_console, expires_at_seconds).await;
    });
    crate::http::ws::switching_protocols(tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// Why the server ends an operator socket.
enum Ending {
    /// With a close frame: code and reason.
    Close(u16, &'static str),
    /// The peer left or stopped reading: nothing more is written.
    Gone,
}

async fn run<S>(mut socket: WebSocketStream<S>, console: &OperatorConsole, expires_at_seconds: u64)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (snapshot, mut frames) = console.feed.subscribe();
    let session_left_ms = (expires_at_seconds * 1000).saturating_sub(crate::clock::unix_now_ms());
    let expiry = tokio::time::sleep(Duration::from_millis(session_left_ms));
    tokio::pin!(expiry);
    let mut next = Some(snapshot);
    let ending = loop {
        if let Some(frame) = next.take()
            && !send(&mut socket, frame).await
        {
            break Ending::Gone;
        }
        tokio::select! {
            _ = console.shutdown.cancelled() => {
                break Ending::Close(close_code::GOING_AWAY, "server shutting down");
            }
            _ = &mut expiry => break Ending::Close(close_code::AUTH_FAILED, "session expired"),
            received = frames.recv() => match received {
                Ok(frame) => next = Some(frame),
                Err(RecvError::Lagged(_)) => {
                    break Ending::Close(close_code::SLOW_CONSUMER, "slow consumer");
                }
                Err(RecvError::Closed) => {
                    break Ending::Close(close_code::GOING_AWAY, "server shutting down");
                }
            },
            // The operator sends nothing but control frames (answered by tungstenite).
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break Ending::Gone,
                Some(Ok(_)) => {}
            },
        }
    };
    if let Ending::Close(code, reason) = ending {
        let close = CloseFrame {
            code: CloseCode::from(code),
            reason: Utf8Bytes::from_static(reason),
        };
        let write = socket.close(Some(close));
        let _ = tokio::time::timeout(Duration::from_millis(WRITE_TIMEOUT_MS), write).await;
    }
}

/// Writes one frame; false when the peer is gone or did not take it in time.
async fn send<S>(socket: &mut WebSocketStream<S>, frame: Utf8Bytes) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let write = socket.send(Message::Text(frame));
    matches!(
        tokio::time::timeout(Duration::from_millis(WRITE_TIMEOUT_MS), write).await,
        Ok(Ok(()))
    )
}

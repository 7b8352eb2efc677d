//! A bot's WebSocket: opening it from a chosen loopback source address with small
//! buffers, and telling the two kinds of server frames apart (public room events, which
//! carry `seq`, and private messages) so each is decoded into its `aloft::protocol` type.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use aloft::protocol::{RoomEvent, ServerMessage};
use anyhow::Context;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A bot's connection.
pub type Socket = WebSocketStream<TcpStream>;

/// Time allowed for the TCP connect plus the WebSocket handshake, in milliseconds.
const OPEN_TIMEOUT_MS: u64 = 10_000;
/// tungstenite read buffer, in bytes: frames are ticks of a few hundred bytes.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Outgoing bytes buffered before a socket write fails (requests are tiny), in bytes.
const WRITE_BUFFER_BYTES_MAX: usize = 64 * 1024;
/// Largest accepted message, in bytes: a snapshot lists at most 10,000 bets (the ceiling
/// of `gateway.snapshot_bets_max`) of about 100 bytes each.
const MESSAGE_BYTES_MAX: usize = 2 * 1024 * 1024;

/// A frame from the server.
#[derive(Debug)]
pub enum Incoming {
    Event(RoomEvent),
    Private(ServerMessage),
}

/// Where a reconnecting client resumes: the `seq` of the last public event it applied
/// and the `epoch` that numbering belongs to (sent as `since` and `epoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    pub since: u64,
    pub epoch: u64,
}

/// Opens `ws://server/ws?token=...&room=...[&since=...&epoch=...]` from `source` (port
/// chosen by the kernel).
pub async fn open(
    server: SocketAddr,
    source: Ipv4Addr,
    token: &str,
    room: &str,
    resume: Option<Resume>,
) -> anyhow::Result<Socket> {
    let open = async {
        let socket = TcpSocket::new_v4().context("creating a socket")?;
        socket
            .bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))
            .with_context(|| format!("binding to {source}"))?;
        let stream = socket
            .connect(server)
            .await
            .with_context(|| format!("connecting to {server}"))?;
        stream.set_nodelay(true).context("setting TCP_NODELAY")?;
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(0)
            .max_write_buffer_size(WRITE_BUFFER_BYTES_MAX)
            .max_message_size(Some(MESSAGE_BYTES_MAX))
            .max_frame_size(Some(MESSAGE_BYTES_MAX));
        let position = resume.map_or_else(String::new, |Resume { since, epoch }| {
            format!("&since={since}&epoch={epoch}")
        });
        let url = format!("ws://{server}/ws?token={token}&room={room}{position}");
        let (socket, _response) =
            tokio_tungstenite::client_async_with_config(url, stream, Some(config))
                .await
                .context("WebSocket handshake")?;
        anyhow::Ok(socket)
    };
    tokio::time::timeout(Duration::from_millis(OPEN_TIMEOUT_MS), open)
        .await
        .with_context(|| format!("opening the WebSocket timed out after {OPEN_TIMEOUT_MS} ms"))?
}

/// Decodes a server text frame. The type tag `t` comes first in every frame aloft
/// writes, so it is read directly; a frame with the tag elsewhere is tried both ways.
pub fn decode(text: &str) -> Result<Incoming, serde_json::Error> {
    let tag = text
        .strip_prefix(r#"{"t":""#)
        .and_then(|rest| rest.split_once('"'))
        .map(|(tag, _)| tag);
    match tag {
        Some("betting" | "flying" | "tick" | "crash") => {
            serde_json::from_str(text).map(Incoming::Event)
        }
        Some(_) => serde_json::from_str(text).map(Incoming::Private),
        None => serde_json::from_str(text)
            .map(Incoming::Event)
            .or_else(|_| serde_json::from_str(text).map(Incoming::Private)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_private_frames_are_told_apart() {
        let tick = r#"{"t":"tick","seq":7,"round":3,"m":257,"ms":15000,"at":1}"#;
        assert!(matches!(
            decode(tick),
            Ok(Incoming::Event(RoomEvent::Tick { seq: 7, .. }))
        ));
        let balance = r#"{"t":"balance","balance":5}"#;
        assert!(matches!(
            decode(balance),
            Ok(Incoming::Private(ServerMessage::Balance { balance: 5, .. }))
        ));
        let reordered = r#"{"balance":5,"t":"balance"}"#;
        assert!(matches!(
            decode(reordered),
            Ok(Incoming::Private(ServerMessage::Balance { balance: 5, .. }))
        ));
        assert!(decode(r#"{"t":"tick","seq":1}"#).is_err());
        assert!(decode("not json").is_err());
    }
}

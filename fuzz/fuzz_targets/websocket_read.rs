//! The gateway's WebSocket read path: bytes from a client go through tungstenite's
//! `WebSocketContext` configured exactly as a shard configures it
//! (`gateway::shard::websocket_config` with the shipped defaults), read as a session
//! reads them (early bytes hyper already took, then the socket in chunks, until it
//! would block), and every text message through the session's decoder.

#![no_main]

mod decoded;

use std::io::{self, Read, Write};

use aloft::config::GatewayConfig;
use aloft::gateway::shard::websocket_config;
use libfuzzer_sys::fuzz_target;
use tungstenite::Message;
use tungstenite::protocol::{Role, WebSocketContext};

/// The largest close frame: a 2-byte header and 125 bytes of payload (RFC 6455 §5.5).
const CLOSE_FRAME_BYTES_MAX: usize = 127;

/// Messages one input may yield, at most (a session reads until the socket would block).
const READS_MAX: usize = 10_000;

/// The client's side of the socket: returns the input in chunks, then `WouldBlock`, and
/// keeps what the server writes back (tungstenite's pongs and close replies).
struct Socket<'a> {
    unread: &'a [u8],
    chunk_bytes: usize,
    written: Vec<u8>,
}

impl Read for Socket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.unread.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let len = buf.len().min(self.chunk_bytes).min(self.unread.len());
        buf[..len].copy_from_slice(&self.unread[..len]);
        self.unread = &self.unread[len..];
        Ok(len)
    }
}

impl Write for Socket<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|bytes: &[u8]| {
    // Two bytes of setup: how many bytes hyper read with the handshake, and the size of
    // each later read from the socket.
    let [early, chunk, input @ ..] = bytes else {
        return;
    };
    let config = GatewayConfig::default();
    let (early, rest) = input.split_at(usize::from(*early).min(input.len()));
    let mut socket = Socket {
        unread: rest,
        chunk_bytes: usize::from(*chunk).max(1),
        written: Vec::new(),
    };
    let mut context = WebSocketContext::from_partially_read(
        early.to_vec(),
        Role::Server,
        Some(websocket_config(&config)),
    );
    for _ in 0..READS_MAX {
        match context.read(&mut socket) {
            Ok(Message::Text(text)) => {
                assert!(text.len() <= config.inbound_message_bytes_max);
                decoded::check(text.as_str());
            }
            Ok(Message::Binary(data)) => assert!(data.len() <= config.inbound_message_bytes_max),
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            // The session stops reading at a close, an error, or when it would block.
            Ok(Message::Close(_)) | Err(_) => break,
        }
    }
    let _ = context.flush(&mut socket);
    // A pong is never larger than its ping, and tungstenite answers a close once (with
    // 1002 and a reason of its own to an invalid code): a client cannot make the server
    // write more than it sent plus one close frame.
    assert!(
        socket.written.len() <= bytes.len() + CLOSE_FRAME_BYTES_MAX,
        "{} bytes written",
        socket.written.len()
    );
});

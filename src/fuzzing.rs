//! The checks behind the fuzz targets in `fuzz/` (cargo-fuzz, libFuzzer), in the library
//! so that `cargo test` runs them too: every committed seed in `fuzz/seeds/<target>/`, and
//! random mutations of those seeds, go through exactly the code libFuzzer drives.
//! Compiled for tests and with the `fuzzing` feature the fuzz crate turns on.
//!
//! - [`client_message`]: the client-message decoder on any text.
//! - [`websocket_read`]: the gateway's WebSocket read path on any bytes.
//! - engine steps: [`crate::engine::invariants`], the money invariants on any scenario.

use std::io::{self, Read, Write};

use tungstenite::Message;
use tungstenite::protocol::{Role, WebSocketContext};

use crate::config::GatewayConfig;
use crate::gateway::shard::websocket_config;
use crate::protocol::{self, ClientMessage, ErrorCode, REQUEST_ID_BYTES_MAX};

/// The largest close frame: a 2-byte header and 125 bytes of payload (RFC 6455 §5.5).
const CLOSE_FRAME_BYTES_MAX: usize = 127;

/// Messages one input may yield, at most (a session reads until the socket would block).
const READS_MAX: usize = 10_000;

/// Decodes `text` as the gateway's session does and checks the result: an error carries
/// one of the decoder's codes and a message to show; a message respects the request id
/// bound and survives encoding and decoding unchanged (nothing the client sent is lost
/// or reinterpreted on the way to the engine).
pub fn client_message(text: &str) {
    match protocol::decode_client_message(text) {
        Ok(message) => {
            if let ClientMessage::Bet { req, .. } | ClientMessage::Cashout { req, .. } = &message {
                assert!((1..=REQUEST_ID_BYTES_MAX).contains(&req.len()), "{req:?}");
            }
            let again = protocol::decode_client_message(&protocol::encode(&message));
            assert_eq!(again.as_ref(), Ok(&message), "{text:?}");
        }
        Err(error) => {
            assert!(
                matches!(
                    error.code,
                    ErrorCode::BadJson | ErrorCode::UnknownType | ErrorCode::InvalidField
                ),
                "{text:?}: {error:?}"
            );
            assert!(!error.message.is_empty(), "{text:?}: an error says why");
        }
    }
}

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

/// Feeds `bytes` through tungstenite's `WebSocketContext` configured exactly as a shard
/// configures it, read as a session reads (early bytes hyper already took, then the
/// socket in chunks until it would block), every text message through the decoder. The
/// first two bytes are setup: how many bytes hyper read with the handshake, and the size
/// of each later read. Nothing panics, no message exceeds the inbound limit, and the
/// server never writes back more than the client sent plus one close frame.
pub fn websocket_read(bytes: &[u8]) {
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
                client_message(text.as_str());
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
}

/// `client_message` on bytes as the fuzz target sees them: the gateway decodes only text
/// tungstenite has checked to be UTF-8.
pub fn client_message_bytes(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        client_message(text);
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use proptest::prelude::*;

    use super::*;
    use crate::engine::invariants::{self, Scenario};

    /// The committed seeds of a fuzz target, by file name.
    fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/seeds")
            .join(target);
        let mut seeds: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
            .map(|entry| {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).unwrap())
            })
            .collect();
        seeds.sort();
        assert!(seeds.len() >= 10, "{target} has {} seeds", seeds.len());
        seeds
    }

    fn engine_steps(bytes: &[u8]) {
        invariants::run(&Scenario::decode(bytes));
    }

    /// A fuzz target's check, on one input.
    type Check = fn(&[u8]);

    const TARGETS: [(&str, Check); 3] = [
        ("client_message", client_message_bytes),
        ("websocket_read", websocket_read),
        ("engine_steps", engine_steps),
    ];

    #[test]
    fn every_committed_seed_passes_its_target() {
        for (target, check) in TARGETS {
            for (name, bytes) in seeds(target) {
                let outcome = std::panic::catch_unwind(|| check(&bytes));
                assert!(outcome.is_ok(), "fuzz/seeds/{target}/{name} fails");
            }
        }
    }

    /// A seed with a few bytes overwritten, inserted or cut: what a fuzzer tries first.
    fn mutated_seed(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
        let seeds: Vec<Vec<u8>> = seeds(target).into_iter().map(|(_, bytes)| bytes).collect();
        let edits = proptest::collection::vec((any::<u16>(), any::<u8>(), 0..3u8), 1..8);
        (0..seeds.len(), edits).prop_map(move |(index, edits)| {
            let mut bytes = seeds[index].clone();
            for (at, byte, edit) in edits {
                let at = usize::from(at) % (bytes.len() + 1);
                match edit {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    _ if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.push(byte),
                }
            }
            bytes
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn mutated_client_messages_decode_or_fail_cleanly(bytes in mutated_seed("client_message")) {
            client_message_bytes(&bytes);
        }

        #[test]
        fn mutated_websocket_input_is_read_safely(bytes in mutated_seed("websocket_read")) {
            websocket_read(&bytes);
        }

        #[test]
        fn mutated_engine_scenarios_keep_the_money_invariants(bytes in mutated_seed("engine_steps")) {
            engine_steps(&bytes);
        }
    }
}

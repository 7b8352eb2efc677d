//! The gateway's WebSocket read path: bytes from a client through tungstenite's
//! `WebSocketContext` configured exactly as a shard configures it, read as a session reads
//! them, every text message through the session's decoder
//! (`aloft::fuzzing::websocket_read`, also replayed on the seeds by `cargo test`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| aloft::fuzzing::websocket_read(bytes));

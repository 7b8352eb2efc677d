//! The client-message decoder (`protocol::decode_client_message`) on any text: it never
//! panics, every error carries a decoder code, every message round-trips
//! (`aloft::fuzzing::client_message`, also replayed on the seeds by `cargo test`).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| aloft::fuzzing::client_message_bytes(bytes));

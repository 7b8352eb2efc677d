//! The client-message decoder (`protocol::decode_client_message`) on any text: it never
//! panics, every error carries a decoder code, every message round-trips.

#![no_main]

mod decoded;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // The gateway decodes only text tungstenite has checked to be UTF-8.
    if let Ok(text) = std::str::from_utf8(bytes) {
        decoded::check(text);
    }
});

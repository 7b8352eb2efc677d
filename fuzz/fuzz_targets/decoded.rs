//! What every decoded client text must satisfy, shared by the targets that decode.

use aloft::protocol::{self, ClientMessage, ErrorCode, REQUEST_ID_BYTES_MAX};

/// Decodes `text` as the gateway's session does and checks the result: an error carries
/// one of the decoder's codes and a message to show; a message respects the request id
/// bound and survives encoding and decoding unchanged (nothing the client sent is lost
/// or reinterpreted on the way to the engine).
pub fn check(text: &str) {
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

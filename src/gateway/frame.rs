//! Server-to-client WebSocket frames, encoded once and shared.
//!
//! RFC 6455 §5.2: a server's frames are unmasked, so a frame is a 2-10 byte header in
//! front of the payload. Public events are encoded here once per gateway into one
//! `Bytes` that every shard writes to every socket as is; cloning it only bumps a
//! reference count.

use bytes::{BufMut, Bytes, BytesMut};

/// FIN bit with the text opcode.
const TEXT_FINAL: u8 = 0x81;
/// FIN bit with the close opcode.
const CLOSE_FINAL: u8 = 0x88;
/// FIN bit with the ping opcode.
const PING_FINAL: u8 = 0x89;
/// FIN bit with the pong opcode.
const PONG_FINAL: u8 = 0x8A;

/// Longest close reason that fits a control frame (125 bytes of payload minus the code).
pub const CLOSE_REASON_BYTES_MAX: usize = 123;

/// Longest header of an unmasked frame, in bytes.
pub const HEADER_BYTES_MAX: usize = 10;

/// A complete text frame whose payload is `text`.
pub fn text(text: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(HEADER_BYTES_MAX + text.len());
    put_header(&mut frame, TEXT_FINAL, text.len());
    frame.put_slice(text);
    frame.freeze()
}

/// The length of the header that [`text`] puts before a payload of `payload_len` bytes.
pub fn header_len(payload_len: usize) -> usize {
    match payload_len {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    }
}

/// A close frame with `code` and a short human-readable `reason` (cut to fit).
pub fn close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(CLOSE_REASON_BYTES_MAX);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    let mut frame = BytesMut::with_capacity(4 + reason.len());
    put_header(&mut frame, CLOSE_FINAL, 2 + reason.len());
    frame.put_u16(code);
    frame.put_slice(reason);
    frame.freeze()
}

/// An empty ping frame.
pub fn ping() -> Bytes {
    Bytes::from_static(&[PING_FINAL, 0])
}

/// Whether `frame` (a whole server frame) is a pong.
pub fn is_pong(frame: &[u8]) -> bool {
    frame.first() == Some(&PONG_FINAL)
}

fn put_header(frame: &mut BytesMut, first_byte: u8, payload_len: usize) {
    frame.put_u8(first_byte);
    match payload_len {
        0..=125 => frame.put_u8(payload_len as u8),
        126..=65_535 => {
            frame.put_u8(126);
            frame.put_u16(payload_len as u16);
        }
        _ => {
            frame.put_u8(127);
            frame.put_u64(payload_len as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungstenite::protocol::{Message, Role, WebSocket};

    /// Decodes `bytes` with tungstenite acting as a client: the reference decoder.
    fn decode(bytes: &[u8]) -> Message {
        let stream = std::io::Cursor::new(bytes.to_vec());
        let mut socket = WebSocket::from_raw_socket(stream, Role::Client, None);
        socket.read().unwrap()
    }

    #[test]
    fn text_frames_of_every_length_class_decode() {
        for len in [0, 1, 125, 126, 65_535, 65_536] {
            let payload = "a".repeat(len);
            let frame = text(payload.as_bytes());
            assert_eq!(frame.len(), header_len(len) + len);
            assert_eq!(decode(&frame), Message::text(payload));
        }
    }

    #[test]
    fn close_frame_carries_code_and_cut_reason() {
        let long_reason = "é".repeat(100);
        let Message::Close(Some(close_frame)) = decode(&close(4001, &long_reason)) else {
            panic!("not a close frame");
        };
        assert_eq!(u16::from(close_frame.code), 4001);
        assert!(close_frame.reason.len() <= CLOSE_REASON_BYTES_MAX);
    }
}

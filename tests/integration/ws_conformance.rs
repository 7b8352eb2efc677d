//! WebSocket protocol conformance of the gateway's read path (RFC 6455), as the
//! server-relevant case categories of the Autobahn test suite: framing, fragmentation,
//! control frames, UTF-8, close handling and limits. Each case starts a real server,
//! speaks to `/ws` over a raw TCP socket with hand-built masked frames and asserts the
//! exact close code the server sends (or the answer it gives when the input is valid).

use std::time::Duration;

use crate::common::{FRAME_WAIT_MS, TestApp};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const RSV2: u8 = 0x20;
const RSV3: u8 = 0x10;
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

const NORMAL_CLOSURE: u16 = 1000;
const PROTOCOL_ERROR: u16 = 1002;
const UNSUPPORTED_DATA: u16 = 1003;
const INVALID_PAYLOAD: u16 = 1007;
const MESSAGE_TOO_BIG: u16 = 1009;
/// What a close frame without a code means (RFC 6455 §7.1.5); never sent as a code.
const NO_STATUS_RECEIVED: u16 = 1005;

/// The masking key of every client frame (any key will do; RFC 6455 §5.3).
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: `first_byte` is FIN, RSV and opcode; the payload is masked.
fn frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    encode_frame(first_byte, payload, Some(MASK))
}

fn encode_frame(first_byte: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut bytes = vec![first_byte];
    match payload.len() {
        len @ 0..=125 => bytes.push(mask_bit | len as u8),
        len @ 126..=65_535 => {
            bytes.push(mask_bit | 126);
            bytes.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            bytes.push(mask_bit | 127);
            bytes.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            bytes.extend_from_slice(&key);
            bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => bytes.extend_from_slice(payload),
    }
    bytes
}

/// A close frame's payload: the code, then the reason bytes.
fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

/// A server frame: its first byte (FIN, RSV, opcode) and its payload.
struct ServerFrame {
    first_byte: u8,
    payload: Vec<u8>,
}

/// A player's `/ws` socket spoken to byte by byte.
struct RawSocket {
    stream: TcpStream,
    /// Bytes received and not yet parsed into frames.
    unread: Vec<u8>,
}

impl RawSocket {
    /// A new guest's socket, right after the 101 response.
    async fn open(app: &TestApp) -> RawSocket {
        let (token, ..) = app.guest().await;
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let request = format!(
            "GET /ws?token={token} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            app.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut socket = RawSocket {
            stream,
            unread: Vec::new(),
        };
        let end = loop {
            if let Some(at) = socket.unread.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(socket.receive().await, "closed during the handshake");
        };
        let response = String::from_utf8_lossy(&socket.unread[..end]).into_owned();
        assert!(response.starts_with("HTTP/1.1 101"), "{response}");
        socket.unread.drain(..end);
        socket
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads more bytes into `unread`; false at the end of the stream.
    async fn receive(&mut self) -> bool {
        let mut buffer = [0u8; 4096];
        let wait = Duration::from_millis(FRAME_WAIT_MS);
        let read = tokio::time::timeout(wait, self.stream.read(&mut buffer))
            .await
            .expect("the server answers in time")
            .expect("the socket reads");
        self.unread.extend_from_slice(&buffer[..read]);
        read > 0
    }

    /// The next frame from the server (unmasked, RFC 6455 §5.1).
    async fn next_frame(&mut self) -> ServerFrame {
        loop {
            if let Some((frame, used)) = parse_server_frame(&self.unread) {
                self.unread.drain(..used);
                return frame;
            }
            assert!(
                self.receive().await,
                "the server closed without a close frame"
            );
        }
    }

    /// Reads frames until the close frame; returns its code (`NO_STATUS_RECEIVED` when
    /// it has none).
    async fn close_code(&mut self) -> u16 {
        loop {
            let frame = self.next_frame().await;
            if frame.first_byte == FIN | CLOSE {
                return match frame.payload.as_slice() {
                    [high, low, ..] => u16::from_be_bytes([*high, *low]),
                    _ => NO_STATUS_RECEIVED,
                };
            }
        }
    }

    /// Reads frames until a text frame satisfies `wanted`; fails on a close frame.
    async fn text_matching(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            let frame = self.next_frame().await;
            match frame.first_byte {
                byte if byte == FIN | TEXT => {
                    let value: Value = serde_json::from_slice(&frame.payload).unwrap();
                    if wanted(&value) {
                        return value;
                    }
                }
                byte if byte == FIN | CLOSE => {
                    panic!(
                        "closed instead: {:?}",
                        String::from_utf8_lossy(&frame.payload)
                    )
                }
                _ => {}
            }
        }
    }

    /// Reads frames until a pong; returns its payload.
    async fn pong_payload(&mut self) -> Vec<u8> {
        loop {
            let frame = self.next_frame().await;
            assert_ne!(frame.first_byte, FIN | CLOSE, "closed instead of a pong");
            if frame.first_byte == FIN | PONG {
                return frame.payload;
            }
        }
    }

    /// Asserts the socket still serves: a JSON ping is answered with a JSON pong.
    async fn still_serves(&mut self) {
        self.send(&frame(FIN | TEXT, br#"{"t":"ping"}"#)).await;
        self.text_matching(|value| value["t"] == "pong").await;
    }
}

/// A whole server frame at the start of `bytes`, and its length.
fn parse_server_frame(bytes: &[u8]) -> Option<(ServerFrame, usize)> {
    let (&first_byte, rest) = bytes.split_first()?;
    let (&second, rest) = rest.split_first()?;
    assert_eq!(second & 0x80, 0, "server frames are unmasked");
    let (len, header) = match second & 0x7f {
        126 => (
            usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?)),
            4,
        ),
        127 => {
            let len = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
            (usize::try_from(len).unwrap(), 10)
        }
        len => (usize::from(len), 2),
    };
    let payload = bytes.get(header..header + len)?.to_vec();
    Some((
        ServerFrame {
            first_byte,
            payload,
        },
        header + len,
    ))
}

/// Starts a server, sends `bytes` on a fresh socket and returns the close code received.
async fn close_code_after(bytes: &[u8]) -> u16 {
    let mut app = TestApp::start().await;
    let mut socket = RawSocket::open(&app).await;
    socket.send(bytes).await;
    let code = socket.close_code().await;
    app.stop().await;
    code
}

/// A close frame with `code` is answered with a close frame carrying `expected`.
async fn close_with_code_answers(code: u16, expected: u16) {
    let bytes = frame(FIN | CLOSE, &close_payload(code, b""));
    assert_eq!(
        close_code_after(&bytes).await,
        expected,
        "close code {code}"
    );
}

// Framing (Autobahn 2-4: reserved bits, reserved opcodes) and masking (RFC 6455 §5.1).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_rsv1_set_closes_1002() {
    let bytes = frame(FIN | RSV1 | TEXT, br#"{"t":"ping"}"#);
    assert_eq!(close_code_after(&bytes).await, PROTOCOL_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_rsv2_set_closes_1002() {
    let bytes = frame(FIN | RSV2 | TEXT, br#"{"t":"ping"}"#);
    assert_eq!(close_code_after(&bytes).await, PROTOCOL_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_rsv3_on_a_ping_closes_1002() {
    let bytes = frame(FIN | RSV3 | PING, b"hi");
    assert_eq!(close_code_after(&bytes).await, PROTOCOL_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_reserved_data_opcodes_close_1002() {
    for opcode in [0x3, 0x7] {
        let bytes = frame(FIN | opcode, b"data");
        assert_eq!(
            close_code_after(&bytes).await,
            PROTOCOL_ERROR,
            "opcode {opcode}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_reserved_control_opcodes_close_1002() {
    for opcode in [0xB, 0xF] {
        let bytes = frame(FIN | opcode, b"");
        assert_eq!(
            close_code_after(&bytes).await,
            PROTOCOL_ERROR,
            "opcode {opcode}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_unmasked_client_frame_closes_1002() {
    let bytes = encode_frame(FIN | TEXT, br#"{"t":"ping"}"#, None);
    assert_eq!(close_code_after(&bytes).await, PROTOCOL_ERROR);
}

// Fragmentation (Autobahn 5).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_text_message_is_reassembled() {
    let mut app = TestApp::start().await;
    let mut socket = RawSocket::open(&app).await;
    let mut bytes = frame(TEXT, br#"{"t":"#);
    bytes.extend(frame(CONTINUATION, br#""pi"#));
    bytes.extend(frame(FIN | CONTINUATION, br#"ng"}"#));
    socket.send(&bytes).await;
    socket.text_matching(|value| value["t"] == "pong").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_frames_between_fragments_are_answered_and_the_message_completes() {
    let mut app = TestApp::start().await;
    let mut socket = RawSocket::open(&app).await;
    let mut bytes = frame(TEXT, br#"{"t":"#);
    bytes.extend(frame(FIN | PING, b"between"));
    bytes.extend(frame(FIN | PONG, b"unsolicited"));
    bytes.extend(frame(FIN | CONTINUATION, br#""ping"}"#));
    socket.send(&bytes).await;
    assert_eq!(socket.pong_payload().await, b"between");
    socket.text_matching(|value| value["t"] == "pong").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmentation_continuation_without_a_start_closes_1002() {
    let bytes = frame(FIN | CONTINUATION, br#"{"t":"ping"}"#);
    assert_eq!(close_code_after(&bytes).await, PROTOCOL_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmentation_new_text_frame_inside_a_fragmented_message_closes_1002() {
    let mut bytes = frame(TEXT, br#"{"t":"#);
    bytes.extend(frame(FIN | TEXT, br#"{"t":"ping"}"#));
    assert_eq!(close_code_after(&bytes).await, PROTOCOL_ERROR);
}

// Control frames (Autobahn 2).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_ping_is_answered_with_a_pong_echoing_its_payload() {
    let mut app = TestApp::start().await;
    let mut socket = RawSocket::open(&app).await;
    let payload: Vec<u8> = (0..125u8).collect();
    socket.send(&frame(FIN | PING, &payload)).await;
    assert_eq!(socket.pong_payload().await, payload);
    socket.send(&frame(FIN | PING, b"")).await;
    assert_eq!(socket.pong_payload().await, b"");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_ping_above_125_bytes_closes_1002() {
    let bytes = frame(FIN | PING, &[b'x'; 126]);
    assert_eq!(close_code_after(&bytes).await, PROTOCOL_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_fragmented_ping_closes_1002() {
    let mut bytes = frame(PING, b"part");
    bytes.extend(frame(FIN | CONTINUATION, b"rest"));
    assert_eq!(close_code_after(&bytes).await, PROTOCOL_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_unsolicited_pong_is_ignored() {
    let mut app = TestApp::start().await;
    let mut socket = RawSocket::open(&app).await;
    socket.send(&frame(FIN | PONG, b"unsolicited")).await;
    socket.still_serves().await;
    app.stop().await;
}

// UTF-8 (Autobahn 6).

/// Bytes that are not UTF-8: a lone continuation byte inside otherwise valid JSON.
const INVALID_UTF8_PING: &[u8] = b"{\"t\":\"ping\",\"x\":\"\x80\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf8_invalid_text_message_closes_1007() {
    let bytes = frame(FIN | TEXT, INVALID_UTF8_PING);
    assert_eq!(close_code_after(&bytes).await, INVALID_PAYLOAD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf8_invalid_in_the_first_fragment_closes_1007() {
    let mut bytes = frame(TEXT, b"{\"t\":\"\xed\xa0\x80");
    bytes.extend(frame(FIN | CONTINUATION, br#""}"#));
    assert_eq!(close_code_after(&bytes).await, INVALID_PAYLOAD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf8_truncated_sequence_at_the_end_of_a_message_closes_1007() {
    let mut bytes = frame(TEXT, br#"{"t":"ping"}"#);
    // The first two bytes of the three-byte "€".
    bytes.extend(frame(FIN | CONTINUATION, b"\xe2\x82"));
    assert_eq!(close_code_after(&bytes).await, INVALID_PAYLOAD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf8_valid_text_split_inside_characters_across_fragments_arrives_intact() {
    let mut app = TestApp::start().await;
    let mut socket = RawSocket::open(&app).await;
    let req = "κόσμε-€-😀";
    let text = format!(r#"{{"t":"cashout","req":"{req}"}}"#);
    let bytes = text.as_bytes();
    let euro = text.find('€').unwrap();
    let emoji = text.find('😀').unwrap();
    // Cut inside "€" (3 bytes) and inside "😀" (4 bytes).
    let mut frames = frame(TEXT, &bytes[..euro + 1]);
    frames.extend(frame(CONTINUATION, &bytes[euro + 1..emoji + 2]));
    frames.extend(frame(FIN | CONTINUATION, &bytes[emoji + 2..]));
    socket.send(&frames).await;
    // No bet to cash out: the engine refuses, echoing the request id it received.
    let reply = socket.text_matching(|value| value["req"] == req).await;
    assert_eq!(reply["t"], "cashout_err");
    app.stop().await;
}

// Close handling (Autobahn 7).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_1000_is_echoed() {
    let mut app = TestApp::start().await;
    let mut socket = RawSocket::open(&app).await;
    socket
        .send(&frame(FIN | CLOSE, &close_payload(NORMAL_CLOSURE, b"bye")))
        .await;
    assert_eq!(socket.close_code().await, NORMAL_CLOSURE);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_with_an_application_code_is_echoed() {
    close_with_code_answers(4000, 4000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_without_payload_is_answered_without_code() {
    let bytes = frame(FIN | CLOSE, b"");
    assert_eq!(close_code_after(&bytes).await, NO_STATUS_RECEIVED);
}

/// Codes a close frame must not carry (RFC 6455 §7.4): out of range, reserved, or meant
/// only for reports (1005, 1006, 1015).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_with_an_invalid_code_closes_1002() {
    for code in [0, 999, 1004, 1005, 1006, 1015, 5000] {
        close_with_code_answers(code, PROTOCOL_ERROR).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_with_a_1_byte_payload_closes_1002() {
    let bytes = frame(FIN | CLOSE, &[0x03]);
    assert_eq!(close_code_after(&bytes).await, PROTOCOL_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_reason_with_invalid_utf8_closes_1007() {
    let bytes = frame(
        FIN | CLOSE,
        &close_payload(NORMAL_CLOSURE, b"bad \xff reason"),
    );
    assert_eq!(close_code_after(&bytes).await, INVALID_PAYLOAD);
}

// Limits (Autobahn 9, size) and data types.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_message_above_the_max_size_closes_1009() {
    let max = aloft::config::GatewayConfig::default().inbound_message_bytes_max;
    let bytes = frame(FIN | TEXT, &vec![b' '; max + 1]);
    assert_eq!(close_code_after(&bytes).await, MESSAGE_TOO_BIG);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_fragments_adding_up_above_the_max_size_close_1009() {
    let max = aloft::config::GatewayConfig::default().inbound_message_bytes_max;
    let half = vec![b' '; max / 2 + 1];
    let mut bytes = frame(TEXT, &half);
    bytes.extend(frame(FIN | CONTINUATION, &half));
    assert_eq!(close_code_after(&bytes).await, MESSAGE_TOO_BIG);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_binary_message_closes_1003() {
    let bytes = frame(FIN | BINARY, &[1, 2, 3]);
    assert_eq!(close_code_after(&bytes).await, UNSUPPORTED_DATA);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_fragmented_binary_message_closes_1003() {
    let mut bytes = frame(BINARY, &[1, 2]);
    bytes.extend(frame(FIN | CONTINUATION, &[3]));
    assert_eq!(close_code_after(&bytes).await, UNSUPPORTED_DATA);
}

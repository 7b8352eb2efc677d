//! The WebSocket wire (RFC 6455) as the fan-out benchmark needs it, with no WebSocket
//! library on the hot path: the client's upgrade request and the check of the server's
//! answer, the floor server's answer to an upgrade, a streaming reader of server frames
//! that counts frames and keeps payloads only when asked (probes), and the few frames
//! the benchmark writes (the floor's text frames, the client's pongs).

use std::net::SocketAddr;

use anyhow::{Context, bail, ensure};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// Largest HTTP head read during a handshake, in bytes.
pub const HEAD_BYTES_MAX: usize = 8 * 1024;
/// Largest data-frame payload a reader keeps (a probe's frames are ticks), in bytes.
const KEPT_PAYLOAD_BYTES_MAX: u64 = 1024 * 1024;
/// Largest control-frame payload allowed by RFC 6455, in bytes.
const CONTROL_PAYLOAD_BYTES_MAX: u64 = 125;
/// Longest frame header: 2 bytes, 8 bytes of extended length, 4 bytes of mask.
const FRAME_HEADER_BYTES_MAX: usize = 14;

pub const OPCODE_TEXT: u8 = 0x1;
pub const OPCODE_CLOSE: u8 = 0x8;
pub const OPCODE_PING: u8 = 0x9;
const OPCODE_PONG: u8 = 0xA;

/// The upgrade request for `path_and_query` on `server` with the client's `key`.
pub fn upgrade_request(server: SocketAddr, path_and_query: &str, key: &str) -> String {
    format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// The end of an HTTP head in `buffer` (index just past the blank line), if complete.
pub fn head_end(buffer: &[u8]) -> Option<usize> {
    buffer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|start| start + 4)
}

/// The value of header `name` (case-insensitive) in an HTTP head.
fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Checks the server's answer to an upgrade sent with `key`: status 101 and the right
/// `Sec-WebSocket-Accept`.
pub fn check_upgrade_response(head: &[u8], key: &str) -> anyhow::Result<()> {
    let head = std::str::from_utf8(head).context("the upgrade response is not UTF-8")?;
    let status = head.lines().next().unwrap_or_default();
    ensure!(
        status.starts_with("HTTP/1.1 101"),
        "upgrade refused: {status:?}"
    );
    let accept = header_value(head, "sec-websocket-accept").context("no Sec-WebSocket-Accept")?;
    ensure!(
        accept == derive_accept_key(key.as_bytes()),
        "wrong Sec-WebSocket-Accept {accept:?}"
    );
    Ok(())
}

/// The 101 answer to an upgrade request head, or why the request is not one.
pub fn upgrade_response(request_head: &[u8]) -> anyhow::Result<String> {
    let head = std::str::from_utf8(request_head).context("the request is not UTF-8")?;
    ensure!(head.starts_with("GET "), "not a GET request");
    let key = header_value(head, "sec-websocket-key").context("no Sec-WebSocket-Key")?;
    let accept = derive_accept_key(key.as_bytes());
    Ok(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ))
}

/// A frame header for a final frame of `opcode` carrying `payload_len` bytes; `masked`
/// adds an all-zero mask key (client frames must be masked; a zero key leaves the
/// payload as is).
fn frame_header(opcode: u8, payload_len: usize, masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut header = vec![0x80 | opcode];
    match payload_len {
        0..=125 => header.push(mask_bit | payload_len as u8),
        126..=0xFFFF => {
            header.push(mask_bit | 126);
            header.extend_from_slice(&(payload_len as u16).to_be_bytes());
        }
        _ => {
            header.push(mask_bit | 127);
            header.extend_from_slice(&(payload_len as u64).to_be_bytes());
        }
    }
    if masked {
        header.extend_from_slice(&[0; 4]);
    }
    header
}

/// A server's (unmasked) text frame.
pub fn server_text_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = frame_header(OPCODE_TEXT, payload.len(), false);
    frame.extend_from_slice(payload);
    frame
}

/// A client's (masked) text frame.
pub fn client_text_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = frame_header(OPCODE_TEXT, payload.len(), true);
    frame.extend_from_slice(payload);
    frame
}

/// A client's (masked) pong answering a ping with `payload`.
pub fn client_pong_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = frame_header(OPCODE_PONG, payload.len(), true);
    frame.extend_from_slice(payload);
    frame
}

/// A whole frame as the reader saw it.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub opcode: u8,
    /// The payload when kept (control frames always, data frames when asked), else empty.
    pub payload: &'a [u8],
}

/// Which data-frame payloads a reader keeps (control-frame payloads it always keeps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Every one (probes).
    AllData,
    /// None: the reader only skips over them (counters).
    NoData,
    /// Those starting with these bytes (counters that watch for one kind of event);
    /// the others arrive with an empty payload.
    DataStartingWith(&'static [u8]),
}

/// Reads server frames from a byte stream fed in pieces of any size.
#[derive(Debug)]
pub struct FrameReader {
    keep: Keep,
    header: [u8; FRAME_HEADER_BYTES_MAX],
    header_len: usize,
    /// The current frame's opcode and payload bytes still to come, once its header is read.
    current: Option<(u8, u64)>,
    /// Whether the current frame's payload is being kept (until it proves unwanted).
    keeping: bool,
    payload: Vec<u8>,
}

impl FrameReader {
    pub fn new(keep: Keep) -> FrameReader {
        FrameReader {
            keep,
            header: [0; FRAME_HEADER_BYTES_MAX],
            header_len: 0,
            current: None,
            keeping: false,
            payload: Vec::new(),
        }
    }

    /// Consumes `bytes`, calling `on_frame` for each frame completed; fails on a frame
    /// a server must not send (masked, or an oversized control or kept frame).
    pub fn feed(
        &mut self,
        mut bytes: &[u8],
        mut on_frame: impl FnMut(Frame<'_>),
    ) -> anyhow::Result<()> {
        while !bytes.is_empty() {
            let Some((opcode, remaining)) = self.current else {
                let used = self.read_header(bytes)?;
                bytes = &bytes[used..];
                if let Some((opcode, 0)) = self.current {
                    self.finish(opcode, &mut on_frame);
                }
                continue;
            };
            let take = remaining.min(bytes.len() as u64) as usize;
            if self.keeping {
                self.payload.extend_from_slice(&bytes[..take]);
                self.keeping = self.may_want(opcode);
            }
            bytes = &bytes[take..];
            let remaining = remaining - take as u64;
            self.current = Some((opcode, remaining));
            if remaining == 0 {
                self.finish(opcode, &mut on_frame);
            }
        }
        Ok(())
    }

    /// Whether a frame of `opcode` whose payload so far is `self.payload` may still be
    /// one to keep.
    fn may_want(&self, opcode: u8) -> bool {
        if opcode >= OPCODE_CLOSE {
            return true;
        }
        match self.keep {
            Keep::AllData => true,
            Keep::NoData => false,
            Keep::DataStartingWith(prefix) => {
                let seen = self.payload.len().min(prefix.len());
                self.payload[..seen] == prefix[..seen]
            }
        }
    }

    fn finish(&mut self, opcode: u8, on_frame: &mut impl FnMut(Frame<'_>)) {
        let wanted = match self.keep {
            Keep::DataStartingWith(prefix) if opcode < OPCODE_CLOSE => {
                self.keeping && self.payload.starts_with(prefix)
            }
            _ => self.keeping,
        };
        if !wanted {
            self.payload.clear();
        }
        on_frame(Frame {
            opcode,
            payload: &self.payload,
        });
        self.payload.clear();
        self.current = None;
    }

    /// Takes header bytes from `bytes`; sets `current` once the header is whole.
    /// Returns how many bytes it used.
    fn read_header(&mut self, bytes: &[u8]) -> anyhow::Result<usize> {
        let mut used = 0;
        while used < bytes.len() {
            self.header[self.header_len] = bytes[used];
            self.header_len += 1;
            used += 1;
            if self.header_len >= 2 && self.header_len == header_len(self.header[1]) {
                self.start_frame()?;
                break;
            }
        }
        Ok(used)
    }

    fn start_frame(&mut self) -> anyhow::Result<()> {
        let opcode = self.header[0] & 0x0F;
        if self.header[1] & 0x80 != 0 {
            bail!("the server sent a masked frame");
        }
        let payload_len = match self.header[1] & 0x7F {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => u64::from_be_bytes(self.header[2..10].try_into().expect("8 bytes")),
            short => u64::from(short),
        };
        if opcode >= OPCODE_CLOSE {
            ensure!(
                payload_len <= CONTROL_PAYLOAD_BYTES_MAX,
                "control frame of {payload_len} bytes"
            );
        } else if self.keep != Keep::NoData {
            ensure!(
                payload_len <= KEPT_PAYLOAD_BYTES_MAX,
                "frame of {payload_len} bytes exceeds {KEPT_PAYLOAD_BYTES_MAX}"
            );
        }
        self.header_len = 0;
        self.current = Some((opcode, payload_len));
        self.payload.clear();
        self.keeping = self.may_want(opcode);
        Ok(())
    }
}

/// Length of a server frame header given its second byte (no mask key from a server).
fn header_len(second_byte: u8) -> usize {
    match second_byte & 0x7F {
        126 => 4,
        127 => 10,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(reader: &mut FrameReader, bytes: &[u8], piece: usize) -> Vec<(u8, Vec<u8>)> {
        let mut seen = Vec::new();
        for chunk in bytes.chunks(piece) {
            reader
                .feed(chunk, |frame| {
                    seen.push((frame.opcode, frame.payload.to_vec()))
                })
                .unwrap();
        }
        seen
    }

    #[test]
    fn frames_split_anywhere_are_read_whole() {
        let long = vec![b'x'; 70_000];
        let mut stream = server_text_frame(b"hi");
        stream.extend(server_text_frame(&vec![b'y'; 300]));
        stream.extend(server_text_frame(&long));
        stream.extend([0x89, 2, b'p', b'!']);
        for piece in [1, 3, 7, 1000, stream.len()] {
            let kept = frames_of(&mut FrameReader::new(Keep::AllData), &stream, piece);
            assert_eq!(kept.len(), 4, "piece {piece}");
            assert_eq!(kept[0], (OPCODE_TEXT, b"hi".to_vec()));
            assert_eq!(kept[1].1.len(), 300);
            assert_eq!(kept[2].1, long);
            assert_eq!(kept[3], (OPCODE_PING, b"p!".to_vec()));
            let counted = frames_of(&mut FrameReader::new(Keep::NoData), &stream, piece);
            assert_eq!(counted.len(), 4);
            assert!(counted[2].1.is_empty(), "a counter keeps no data payload");
            assert_eq!(counted[3].1, b"p!", "control payloads are always kept");
        }
    }

    #[test]
    fn a_reader_can_keep_only_the_frames_with_a_prefix() {
        let chat = br#"{"t":"chat","seq":9,"text":"lt 1 2 3"}"#;
        let mut stream = server_text_frame(br#"{"t":"tick","seq":8}"#);
        stream.extend(server_text_frame(chat));
        stream.extend(server_text_frame(br#"{"t":"ch"#));
        stream.extend(server_text_frame(b""));
        stream.extend(server_text_frame(chat));
        stream.extend([0x89, 1, b'p']);
        for piece in [1, 2, 5, stream.len()] {
            let mut reader = FrameReader::new(Keep::DataStartingWith(br#"{"t":"chat""#));
            let seen = frames_of(&mut reader, &stream, piece);
            let payloads: Vec<&[u8]> = seen.iter().map(|(_, payload)| &payload[..]).collect();
            assert_eq!(
                payloads,
                vec![&b""[..], chat, b"", b"", chat, b"p"],
                "piece {piece}"
            );
        }
    }

    #[test]
    fn frames_a_server_must_not_send_are_refused() {
        let mut reader = FrameReader::new(Keep::NoData);
        assert!(reader.feed(&client_pong_frame(b"x"), |_| {}).is_err());
        let mut reader = FrameReader::new(Keep::NoData);
        assert!(reader.feed(&[0x89, 126, 0, 200], |_| {}).is_err());
    }

    #[test]
    fn headers_encode_the_three_length_forms() {
        assert_eq!(server_text_frame(b"ab")[..2], [0x81, 2]);
        assert_eq!(server_text_frame(&[0; 126])[..4], [0x81, 126, 0, 126]);
        assert_eq!(server_text_frame(&[0; 65_536])[..3], [0x81, 127, 0]);
        assert_eq!(client_pong_frame(b"z"), vec![0x8A, 0x81, 0, 0, 0, 0, b'z']);
    }

    #[test]
    fn handshake_answers_are_derived_from_the_key() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let request = upgrade_request("127.0.0.1:9".parse().unwrap(), "/ws?x=1", key);
        assert!(request.starts_with("GET /ws?x=1 HTTP/1.1\r\n"));
        let end = head_end(request.as_bytes()).unwrap();
        assert_eq!(end, request.len());
        let response = upgrade_response(request.as_bytes()).unwrap();
        // The RFC 6455 section 1.3 example.
        assert!(response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        check_upgrade_response(response.as_bytes(), key).unwrap();
        assert!(check_upgrade_response(response.as_bytes(), "b3RoZXIga2V5IGhlcmUhIQ==").is_err());
        assert!(check_upgrade_response(b"HTTP/1.1 401 Unauthorized\r\n\r\n", key).is_err());
        assert!(upgrade_response(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").is_err());
        assert_eq!(head_end(b"HTTP/1.1 101\r\n"), None);
    }
}

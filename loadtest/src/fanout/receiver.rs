//! The fan-out benchmark's client side: N receiving connections. Most only count
//! frames and bytes (the frame header is all they parse); a few probes parse every
//! frame's JSON and record the tick latency (the server's `at` send time, unix
//! milliseconds, to the receive time, same machine clock) and lost frames (gaps in
//! `seq`). Both answer pings, so a server's idle timeout never ends a run. Counts go
//! into shared atomics once per read, latencies into one histogram, so the benchmark
//! reads a window's figures as differences of two snapshots.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use hdrhistogram::Histogram;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;

use crate::fanout::wire::{self, Frame, FrameReader};

/// Read buffer per connection, in bytes (ticks are tens to hundreds of bytes).
const READ_BUFFER_BYTES: usize = 2 * 1024;
/// Time allowed for the TCP connect plus the WebSocket handshake, in milliseconds.
const OPEN_TIMEOUT_MS: u64 = 10_000;
/// Largest tick latency the histogram tells apart, in microseconds (60 s).
const LATENCY_US_MAX: u64 = 60_000_000;
/// Significant figures of the latency histogram.
const LATENCY_SIGNIFICANT_FIGURES: u8 = 3;
/// Microseconds per millisecond.
const US_PER_MS: u64 = 1_000;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub server: SocketAddr,
    /// Path and query of the upgrade request, e.g. `/ws?room=main&token=...`.
    pub path_and_query: String,
    /// The protocol, if any, the server speaks over WebSocket.
    pub framing: Framing,
}

/// What a server sends inside WebSocket text frames, and what a client must say to get it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Framing {
    /// Each text frame is a tick's JSON; nothing to send.
    #[default]
    Plain,
    /// Socket.IO 4 over engine.io 4: the client joins the default namespace with `40`;
    /// ticks arrive as `42["tick",{...}]`, among other engine.io packets (`0{...}` open,
    /// `40{...}` connected) that are not ticks.
    SocketIo,
}

impl Framing {
    /// The text a client sends right after the upgrade, if any.
    pub fn join_message(self) -> Option<&'static [u8]> {
        match self {
            Framing::Plain => None,
            Framing::SocketIo => Some(b"40"),
        }
    }

    /// The tick JSON inside a text frame's payload, or `None` for a protocol packet that
    /// carries no event (an event that is not a tick is returned whole, and then fails
    /// to parse as one).
    pub fn tick_json(self, payload: &[u8]) -> Option<&[u8]> {
        match self {
            Framing::Plain => Some(payload),
            Framing::SocketIo => {
                let event = payload.strip_prefix(b"42")?;
                Some(
                    event
                        .strip_prefix(br#"["tick","#)
                        .and_then(|rest| rest.strip_suffix(b"]"))
                        .unwrap_or(event),
                )
            }
        }
    }
}

/// What every connection counts, shared by all of them.
pub struct Tally {
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    /// Connections the server closed or broke after the handshake.
    pub ended: AtomicU64,
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    /// Whether the measured window is open: probes record only inside it.
    pub measuring: AtomicBool,
    /// Probe frames expected in the window (from their `seq` numbers), count.
    pub probe_expected: AtomicU64,
    pub probe_received: AtomicU64,
    /// Probe frames whose JSON did not parse, count.
    pub probe_unparsed: AtomicU64,
    /// Server send → probe receive, in microseconds (millisecond resolution).
    pub latency_us: Mutex<Histogram<u64>>,
    /// The first connection error, kept for the report.
    pub first_error: Mutex<Option<String>>,
}

impl Tally {
    pub fn new() -> Tally {
        let histogram = Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_FIGURES)
            .expect("constant histogram bounds are valid");
        Tally {
            connected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            measuring: AtomicBool::new(false),
            probe_expected: AtomicU64::new(0),
            probe_received: AtomicU64::new(0),
            probe_unparsed: AtomicU64::new(0),
            latency_us: Mutex::new(histogram),
            first_error: Mutex::new(None),
        }
    }

    fn note_error(&self, error: &anyhow::Error) {
        let mut first = self.first_error.lock().expect("error lock");
        if first.is_none() {
            *first = Some(format!("{error:#}"));
        }
    }
}

/// The fields a probe reads from a frame; other fields are parsed and ignored.
#[derive(Debug, Deserialize)]
struct ProbeFields {
    seq: Option<u64>,
    /// Server send time, unix milliseconds.
    at: Option<u64>,
}

/// A probe's place in the `seq` sequence inside the window.
#[derive(Debug, Default)]
struct ProbeState {
    last_seq: Option<u64>,
}

/// One connection for its whole life: open, then read until the server ends it (the
/// benchmark aborts the task at the end of the run).
pub async fn run(tally: &Tally, target: &Target, source: Ipv4Addr, probe: bool) {
    let (stream, leftover) = match open_in_time(target, source, None).await {
        Ok(opened) => opened,
        Err(error) => {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            tally.note_error(&error);
            return;
        }
    };
    tally.connected.fetch_add(1, Ordering::Relaxed);
    if let Err(error) = receive(tally, stream, &leftover, probe, target.framing).await {
        tally.note_error(&error);
    }
    tally.ended.fetch_add(1, Ordering::Relaxed);
}

/// Connects from `source` and upgrades within the open time limit; returns the stream and
/// any bytes read past the response head. `receive_buffer_bytes` shrinks the socket's
/// receive buffer (for a client that will not read).
pub async fn open_in_time(
    target: &Target,
    source: Ipv4Addr,
    receive_buffer_bytes: Option<u32>,
) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let opening = open(target, source, receive_buffer_bytes);
    tokio::time::timeout(Duration::from_millis(OPEN_TIMEOUT_MS), opening)
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("open timed out after {OPEN_TIMEOUT_MS} ms")))
}

async fn open(
    target: &Target,
    source: Ipv4Addr,
    receive_buffer_bytes: Option<u32>,
) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let socket = TcpSocket::new_v4().context("creating a socket")?;
    if let Some(bytes) = receive_buffer_bytes {
        socket
            .set_recv_buffer_size(bytes)
            .context("setting SO_RCVBUF")?;
    }
    socket
        .bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))
        .with_context(|| format!("binding to {source}"))?;
    let mut stream = socket
        .connect(target.server)
        .await
        .with_context(|| format!("connecting to {}", target.server))?;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let key = generate_key();
    let request = wire::upgrade_request(target.server, &target.path_and_query, &key);
    stream
        .write_all(request.as_bytes())
        .await
        .context("sending the upgrade")?;
    let mut head = Vec::with_capacity(READ_BUFFER_BYTES);
    let mut buffer = [0u8; READ_BUFFER_BYTES];
    loop {
        let read = stream
            .read(&mut buffer)
            .await
            .context("reading the upgrade response")?;
        ensure!(read > 0, "the server closed during the handshake");
        head.extend_from_slice(&buffer[..read]);
        if let Some(end) = wire::head_end(&head) {
            wire::check_upgrade_response(&head[..end], &key)?;
            if let Some(join) = target.framing.join_message() {
                stream
                    .write_all(&wire::client_text_frame(join))
                    .await
                    .context("sending the join message")?;
            }
            return Ok((stream, head.split_off(end)));
        }
        ensure!(
            head.len() <= wire::HEAD_BYTES_MAX,
            "upgrade response head too long"
        );
    }
}

/// Reads frames until the server closes the connection.
async fn receive(
    tally: &Tally,
    mut stream: TcpStream,
    leftover: &[u8],
    probe: bool,
    framing: Framing,
) -> anyhow::Result<()> {
    let mut reader = FrameReader::new(probe);
    let mut state = ProbeState::default();
    let mut buffer = vec![0u8; READ_BUFFER_BYTES];
    let mut pongs: Vec<Vec<u8>> = Vec::new();
    let mut closed = false;
    let mut bytes_read = leftover.len();
    buffer[..bytes_read].copy_from_slice(leftover);
    loop {
        let mut frames = 0u64;
        reader.feed(&buffer[..bytes_read], |frame| {
            frames += 1;
            match frame.opcode {
                wire::OPCODE_PING => pongs.push(wire::client_pong_frame(frame.payload)),
                wire::OPCODE_CLOSE => closed = true,
                _ if probe => {
                    if let Some(payload) = framing.tick_json(frame.payload) {
                        let tick = Frame { payload, ..frame };
                        probe_frame(tally, &mut state, &tick);
                    }
                }
                _ => {}
            }
        })?;
        tally.frames.fetch_add(frames, Ordering::Relaxed);
        tally.bytes.fetch_add(bytes_read as u64, Ordering::Relaxed);
        for pong in pongs.drain(..) {
            stream.write_all(&pong).await.context("sending a pong")?;
        }
        if closed {
            bail!("the server sent a close frame");
        }
        bytes_read = stream.read(&mut buffer).await.context("reading")?;
        if bytes_read == 0 {
            bail!("the server closed the connection");
        }
    }
}

/// A probe's handling of one tick's JSON: latency and `seq` accounting inside the window.
fn probe_frame(tally: &Tally, state: &mut ProbeState, frame: &Frame<'_>) {
    let Ok(fields) = serde_json::from_slice::<ProbeFields>(frame.payload) else {
        tally.probe_unparsed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if !tally.measuring.load(Ordering::Relaxed) {
        state.last_seq = None;
        return;
    }
    if let Some(at_ms) = fields.at {
        let latency_us = unix_now_us().saturating_sub(at_ms * US_PER_MS);
        let mut histogram = tally.latency_us.lock().expect("histogram lock");
        histogram.saturating_record(latency_us.max(1));
    }
    if let Some(seq) = fields.seq {
        let expected = expected_frames(state.last_seq, seq);
        state.last_seq = Some(state.last_seq.map_or(seq, |last| last.max(seq)));
        tally.probe_expected.fetch_add(expected, Ordering::Relaxed);
        tally.probe_received.fetch_add(1, Ordering::Relaxed);
    }
}

/// Frames a probe should have received up to and including `seq`, given the highest
/// `seq` it saw before in the window: 1 for the first, the gap for later ones, 0 for a
/// repeated or older number.
pub fn expected_frames(last_seq: Option<u64>, seq: u64) -> u64 {
    match last_seq {
        None => 1,
        Some(last) => seq.saturating_sub(last),
    }
}

/// Now, in microseconds since the Unix epoch.
pub fn unix_now_us() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_in_seq_count_as_expected_frames() {
        let mut last = None;
        let mut expected = 0;
        let mut received = 0;
        for seq in [10, 11, 12, 15, 15, 16, 20] {
            expected += expected_frames(last, seq);
            received += 1;
            last = Some(last.map_or(seq, |l: u64| l.max(seq)));
        }
        // 10..=20 is 11 frames; 7 arrived (one twice), so 5 distinct ones were lost.
        assert_eq!(expected, 11);
        assert_eq!(received, 7);
        assert_eq!(expected_frames(Some(9), 3), 0);
    }

    #[test]
    fn socket_io_ticks_are_unwrapped_and_its_protocol_packets_skipped() {
        let tick = br#"{"t":"tick","seq":3,"at":1700000000000,"pad":"x"}"#;
        let event = [&br#"42["tick","#[..], tick, b"]"].concat();
        assert_eq!(Framing::SocketIo.tick_json(&event), Some(&tick[..]));
        assert_eq!(Framing::SocketIo.tick_json(br#"0{"sid":"a"}"#), None);
        assert_eq!(Framing::SocketIo.tick_json(br#"40{"sid":"b"}"#), None);
        assert_eq!(
            Framing::SocketIo.tick_json(br#"42["other",1]"#),
            Some(&br#"["other",1]"#[..])
        );
        assert_eq!(Framing::Plain.tick_json(tick), Some(&tick[..]));
        assert_eq!(Framing::SocketIo.join_message(), Some(&b"40"[..]));
        assert_eq!(Framing::Plain.join_message(), None);
    }

    #[tokio::test]
    async fn a_probe_measures_latency_and_loss_only_in_the_window() {
        let tally = Tally::new();
        let mut state = ProbeState::default();
        let now_ms = unix_now_us() / US_PER_MS;
        let tick = |seq: u64| format!(r#"{{"t":"tick","seq":{seq},"at":{now_ms},"pad":"xx"}}"#);
        let frame_of = |text: &str| text.as_bytes().to_vec();
        let before = frame_of(&tick(1));
        probe_frame(
            &tally,
            &mut state,
            &Frame {
                opcode: 1,
                payload: &before,
            },
        );
        tally.measuring.store(true, Ordering::Relaxed);
        for seq in [5, 6, 8] {
            let payload = frame_of(&tick(seq));
            probe_frame(
                &tally,
                &mut state,
                &Frame {
                    opcode: 1,
                    payload: &payload,
                },
            );
        }
        probe_frame(
            &tally,
            &mut state,
            &Frame {
                opcode: 1,
                payload: b"not json",
            },
        );
        assert_eq!(tally.probe_expected.load(Ordering::Relaxed), 4);
        assert_eq!(tally.probe_received.load(Ordering::Relaxed), 3);
        assert_eq!(tally.probe_unparsed.load(Ordering::Relaxed), 1);
        let histogram = tally.latency_us.lock().unwrap();
        assert_eq!(histogram.len(), 3);
        assert!(histogram.max() < 60_000_000);
    }
}

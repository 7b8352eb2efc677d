//! The fan-out benchmark's client side: N receiving connections. Most only count
//! frames and bytes (the frame header is all they parse); a few probes parse every
//! frame's JSON and record the tick latency (the server's `at` send time, unix
//! milliseconds, to the receive time, same machine clock) and lost frames (gaps in
//! `seq`, which every public event has, chat included). With chat on, chatters
//! ([`crate::fanout::chat`]) also send, and every connection parses the room's chat
//! events (and only those) for their delivery latency. All answer pings, so a server's
//! idle timeout never ends a run. Counts go into shared atomics once per read,
//! latencies into histograms, so the benchmark reads a window's figures as differences
//! of two snapshots.

use std::borrow::Cow;
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

use crate::fanout::chat::{CHAT_EVENT_PREFIX, ChatSender, ChatTally};
use crate::fanout::wire::{self, FrameReader, Keep};

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
    /// Frames kept for parsing (every frame of probes and chatters, chat events on the
    /// others) whose JSON did not parse, count.
    pub unparsed: AtomicU64,
    /// Server send → probe receive, in microseconds (millisecond resolution).
    pub latency_us: Mutex<Histogram<u64>>,
    pub chat: ChatTally,
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
            unparsed: AtomicU64::new(0),
            latency_us: Mutex::new(histogram),
            chat: ChatTally::new(),
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

/// The fields a connection reads from a frame; other fields are parsed and ignored.
#[derive(Debug, Deserialize)]
struct EventFields<'a> {
    #[serde(borrow)]
    t: Option<Cow<'a, str>>,
    seq: Option<u64>,
    /// Server send time, unix milliseconds.
    at: Option<u64>,
    /// A chat event's text.
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    /// An error's code.
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
}

/// What one connection does besides counting frames.
#[derive(Debug, Default)]
pub struct Role {
    /// Parses every frame: tick latency and `seq` gaps.
    pub probe: bool,
    /// Watches for the room's chat events (the run has chat on).
    pub chat_on: bool,
    pub chatter: Option<Chatter>,
}

/// A connection that sends chat as its own player.
#[derive(Debug)]
pub struct Chatter {
    /// The upgrade path with the chatter's own token.
    pub path_and_query: String,
    pub sender: ChatSender,
}

impl Role {
    /// Which frame payloads the connection's reader keeps.
    fn keep(&self) -> Keep {
        if self.probe || self.chatter.is_some() {
            Keep::AllData
        } else if self.chat_on {
            Keep::DataStartingWith(CHAT_EVENT_PREFIX)
        } else {
            Keep::NoData
        }
    }

    /// Whether a data frame with this kept payload is to be parsed.
    fn parses(&self, payload: &[u8]) -> bool {
        self.keep() == Keep::AllData || !payload.is_empty()
    }

    fn own_chatter(&self) -> Option<u64> {
        self.chatter.as_ref().map(|chatter| chatter.sender.rank)
    }
}

/// A probe's place in the `seq` sequence inside the window.
#[derive(Debug, Default)]
struct ProbeState {
    last_seq: Option<u64>,
}

/// One connection for its whole life: open, then read until the server ends it (the
/// benchmark aborts the task at the end of the run).
pub async fn run(tally: &Tally, target: &Target, source: Ipv4Addr, role: Role) {
    let own_target;
    let target = match &role.chatter {
        Some(chatter) => {
            own_target = Target {
                path_and_query: chatter.path_and_query.clone(),
                ..target.clone()
            };
            &own_target
        }
        None => target,
    };
    let (stream, leftover) = match open_in_time(target, source, None).await {
        Ok(opened) => opened,
        Err(error) => {
            tally.failed.fetch_add(1, Ordering::Relaxed);
            tally.note_error(&error);
            return;
        }
    };
    tally.connected.fetch_add(1, Ordering::Relaxed);
    if let Err(error) = receive(tally, stream, &leftover, role, target.framing).await {
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

/// Reads frames (and sends a chatter's messages) until the server closes the connection.
async fn receive(
    tally: &Tally,
    mut stream: TcpStream,
    leftover: &[u8],
    mut role: Role,
    framing: Framing,
) -> anyhow::Result<()> {
    let mut reader = FrameReader::new(role.keep());
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
                _ if role.parses(frame.payload) => {
                    if let Some(payload) = framing.tick_json(frame.payload) {
                        on_event(tally, &mut state, &role, payload);
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
        let chatter = role.chatter.as_mut().map(|chatter| &mut chatter.sender);
        bytes_read = read_or_chat(tally, &mut stream, &mut buffer, chatter).await?;
        if bytes_read == 0 {
            bail!("the server closed the connection");
        }
    }
}

/// Reads what the server sent next; a chatter sends each message that falls due while
/// it waits.
async fn read_or_chat(
    tally: &Tally,
    stream: &mut TcpStream,
    buffer: &mut [u8],
    mut chatter: Option<&mut ChatSender>,
) -> anyhow::Result<usize> {
    loop {
        let Some(sender) = chatter.as_deref_mut() else {
            return stream.read(buffer).await.context("reading");
        };
        let due = sender.next_due;
        // Reading is cancel-safe: a message falling due drops the read, not its bytes.
        let read = tokio::select! {
            read = stream.read(buffer) => Some(read),
            () = tokio::time::sleep_until(due) => None,
        };
        match read {
            Some(read) => return read.context("reading"),
            None => {
                let clock = (unix_now_us(), tally.measuring.load(Ordering::Relaxed));
                sender.send(stream, &tally.chat, clock).await?;
            }
        }
    }
}

/// A connection's handling of one event's JSON inside the window: a probe's tick latency
/// and `seq` accounting, every connection's chat events, a chatter's refusals.
fn on_event(tally: &Tally, state: &mut ProbeState, role: &Role, payload: &[u8]) {
    let Ok(fields) = serde_json::from_slice::<EventFields>(payload) else {
        tally.unparsed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if !tally.measuring.load(Ordering::Relaxed) {
        state.last_seq = None;
        return;
    }
    let kind = fields.t.as_deref();
    if role.probe {
        probe_event(tally, state, &fields, kind == Some("chat"));
    }
    match kind {
        Some("chat") => {
            let text = fields.text.as_deref();
            tally
                .chat
                .note_delivered(text, role.own_chatter(), unix_now_us());
        }
        Some("error") if role.chatter.is_some() => {
            tally.chat.note_refused(fields.code.as_deref());
        }
        _ => {}
    }
}

/// A probe's accounting of one event: its latency unless it is chat (measured apart),
/// and its `seq`.
fn probe_event(tally: &Tally, state: &mut ProbeState, fields: &EventFields<'_>, is_chat: bool) {
    if let Some(at_ms) = fields.at.filter(|_| !is_chat) {
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
    use crate::fanout::chat;

    /// A probe in a run without chat.
    fn probe() -> Role {
        Role {
            probe: true,
            ..Role::default()
        }
    }

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

    #[test]
    fn a_probe_measures_latency_and_loss_only_in_the_window() {
        let tally = Tally::new();
        let mut state = ProbeState::default();
        let probe = probe();
        let now_ms = unix_now_us() / US_PER_MS;
        let tick = |seq: u64| format!(r#"{{"t":"tick","seq":{seq},"at":{now_ms},"pad":"xx"}}"#);
        on_event(&tally, &mut state, &probe, tick(1).as_bytes());
        tally.measuring.store(true, Ordering::Relaxed);
        for seq in [5, 6, 8] {
            on_event(&tally, &mut state, &probe, tick(seq).as_bytes());
        }
        on_event(&tally, &mut state, &probe, b"not json");
        assert_eq!(tally.probe_expected.load(Ordering::Relaxed), 4);
        assert_eq!(tally.probe_received.load(Ordering::Relaxed), 3);
        assert_eq!(tally.unparsed.load(Ordering::Relaxed), 1);
        let histogram = tally.latency_us.lock().unwrap();
        assert_eq!(histogram.len(), 3);
        assert!(histogram.max() < 60_000_000);
    }

    /// A chat event as the server sends it, carrying a generator's text sent `ago_ms` ago.
    fn chat_event(seq: u64, chatter: u64, ago_ms: u64) -> String {
        let sent_at_us = unix_now_us() - ago_ms * US_PER_MS;
        let text = chat::chat_text(sent_at_us, chatter, 0);
        format!(
            r#"{{"t":"chat","seq":{seq},"round":3,"player":"g-1","name":"n","text":"{text}","at":{}}}"#,
            sent_at_us / US_PER_MS
        )
    }

    fn chatter(rank: u64) -> Role {
        let args = chat::ChatArgs {
            chat_messages_per_second: 1,
            chatters: 50,
        };
        Role {
            chat_on: true,
            chatter: Some(Chatter {
                path_and_query: "/ws?room=main&token=t".to_owned(),
                sender: args.sender(rank, tokio::time::Instant::now()),
            }),
            ..Role::default()
        }
    }

    #[test]
    fn chat_events_are_events_in_the_seq_but_not_tick_latency() {
        let tally = Tally::new();
        tally.measuring.store(true, Ordering::Relaxed);
        let mut state = ProbeState::default();
        let probe = Role {
            chat_on: true,
            ..probe()
        };
        let now_ms = unix_now_us() / US_PER_MS;
        let tick = format!(r#"{{"t":"tick","seq":10,"at":{now_ms}}}"#);
        on_event(&tally, &mut state, &probe, tick.as_bytes());
        // The chat event fills seq 11; seq 13 after it shows one event (12) lost.
        on_event(&tally, &mut state, &probe, chat_event(11, 0, 40).as_bytes());
        let tick = format!(r#"{{"t":"tick","seq":13,"at":{now_ms}}}"#);
        on_event(&tally, &mut state, &probe, tick.as_bytes());
        assert_eq!(tally.probe_expected.load(Ordering::Relaxed), 4);
        assert_eq!(tally.probe_received.load(Ordering::Relaxed), 3);
        assert_eq!(tally.latency_us.lock().unwrap().len(), 2, "ticks only");
        assert_eq!(tally.chat.delivered.load(Ordering::Relaxed), 1);
        let chat_latency = tally.chat.latency_us.lock().unwrap();
        assert_eq!(chat_latency.len(), 1);
        assert!(chat_latency.min() >= 40_000, "{}", chat_latency.min());
    }

    #[test]
    fn counters_and_chatters_account_for_chat_only_in_the_window() {
        let tally = Tally::new();
        let mut state = ProbeState::default();
        let counter = Role {
            chat_on: true,
            ..Role::default()
        };
        assert_eq!(counter.keep(), Keep::DataStartingWith(CHAT_EVENT_PREFIX));
        assert_eq!(chatter(2).keep(), Keep::AllData);
        assert_eq!(Role::default().keep(), Keep::NoData);
        on_event(&tally, &mut state, &counter, chat_event(1, 2, 5).as_bytes());
        assert_eq!(tally.chat.delivered.load(Ordering::Relaxed), 0);
        tally.measuring.store(true, Ordering::Relaxed);
        on_event(&tally, &mut state, &counter, chat_event(2, 2, 5).as_bytes());
        // Chatter 2 hears its own message: delivered, but no latency sample.
        on_event(
            &tally,
            &mut state,
            &chatter(2),
            chat_event(2, 2, 5).as_bytes(),
        );
        on_event(
            &tally,
            &mut state,
            &chatter(4),
            chat_event(2, 2, 5).as_bytes(),
        );
        let refusal = br#"{"t":"error","code":"chat_rate_limited","message":"slow down"}"#;
        on_event(&tally, &mut state, &chatter(4), refusal);
        // An error on a connection that sent no chat is not a chat refusal.
        on_event(&tally, &mut state, &counter, refusal);
        assert_eq!(tally.chat.delivered.load(Ordering::Relaxed), 3);
        assert_eq!(tally.chat.latency_us.lock().unwrap().len(), 2);
        assert_eq!(tally.chat.refused_rate_limited.load(Ordering::Relaxed), 1);
        assert_eq!(
            tally.probe_received.load(Ordering::Relaxed),
            0,
            "no probe here"
        );
    }

    /// A room on loopback: ticks every 20 ms, and each chat message a socket sends comes
    /// back to every socket as the room's chat event, in the same `seq`.
    async fn chat_room(listener: tokio::net::TcpListener, sockets: usize) {
        use futures_util::{SinkExt, StreamExt};
        use std::sync::Arc;
        use tokio_tungstenite::tungstenite::Message;
        let (events, _) = tokio::sync::broadcast::channel::<String>(256);
        let seq = Arc::new(AtomicU64::new(0));
        let (ticks, tick_seq) = (events.clone(), seq.clone());
        tokio::spawn(async move {
            loop {
                let seq = tick_seq.fetch_add(1, Ordering::Relaxed);
                let at = unix_now_us() / US_PER_MS;
                let _ = ticks.send(format!(r#"{{"t":"tick","seq":{seq},"at":{at}}}"#));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        for _ in 0..sockets {
            let (stream, _) = listener.accept().await.unwrap();
            let (mut sink, mut source) = tokio_tungstenite::accept_async(stream)
                .await
                .unwrap()
                .split();
            let mut outgoing = events.subscribe();
            tokio::spawn(async move {
                while let Ok(event) = outgoing.recv().await {
                    sink.send(Message::text(event)).await.unwrap();
                }
            });
            let (events, seq) = (events.clone(), seq.clone());
            tokio::spawn(async move {
                while let Some(Ok(Message::Text(message))) = source.next().await {
                    let message: serde_json::Value = serde_json::from_str(&message).unwrap();
                    assert_eq!(message["t"], "chat");
                    // `t` first, as the server's tagged encoding writes it.
                    let event = format!(
                        r#"{{"t":"chat","seq":{},"round":1,"player":"g-1","name":"n","text":{},"at":{}}}"#,
                        seq.fetch_add(1, Ordering::Relaxed),
                        message["text"],
                        unix_now_us() / US_PER_MS
                    );
                    let _ = events.send(event);
                }
            });
        }
    }

    #[tokio::test]
    async fn a_chatter_sends_on_its_turn_and_every_socket_times_the_delivery() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = Target {
            server: listener.local_addr().unwrap(),
            path_and_query: "/ws?room=main".to_owned(),
            framing: Framing::Plain,
        };
        tokio::spawn(chat_room(listener, 2));
        let tally = std::sync::Arc::new(Tally::new());
        tally.measuring.store(true, Ordering::Relaxed);
        let args = chat::ChatArgs {
            chat_messages_per_second: 1,
            chatters: 1,
        };
        let start = tokio::time::Instant::now() + Duration::from_millis(500);
        let roles = [
            Role {
                chat_on: true,
                ..Role::default()
            },
            Role {
                chat_on: true,
                chatter: Some(Chatter {
                    path_and_query: "/ws?room=main&token=c".to_owned(),
                    sender: args.sender(0, start),
                }),
                ..Role::default()
            },
        ];
        let mut connections = tokio::task::JoinSet::new();
        for role in roles {
            let (tally, target) = (tally.clone(), target.clone());
            connections.spawn(async move { run(&tally, &target, Ipv4Addr::LOCALHOST, role).await });
        }
        // Past the first turn (0.5 s), before the second (1.5 s).
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        connections.shutdown().await;
        assert_eq!(tally.connected.load(Ordering::Relaxed), 2);
        assert_eq!(
            tally.chat.sent.load(Ordering::Relaxed),
            1,
            "one turn in 1.2 s at 1/s"
        );
        assert_eq!(
            tally.chat.delivered.load(Ordering::Relaxed),
            2,
            "both sockets"
        );
        let latency = tally.chat.latency_us.lock().unwrap();
        assert_eq!(
            latency.len(),
            1,
            "the counter's; the chatter's own echo is no sample"
        );
        assert!(latency.max() < 500_000, "{} µs", latency.max());
        drop(latency);
        assert_eq!(tally.unparsed.load(Ordering::Relaxed), 0);
        let ticks = tally.frames.load(Ordering::Relaxed);
        assert!(ticks > 2 * 20, "{ticks} frames: the ticks are counted too");
    }
}

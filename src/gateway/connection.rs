//! One player's WebSocket on a shard: its outbound queue, its write path and the task
//! that reads its messages.
//!
//! The write path is owned by the shard, not by a per-socket task: the shard offers each
//! public frame to every socket with a non-blocking `try_write` of the shared bytes. When
//! the kernel takes the whole frame (the common case) nothing else happens: no task is
//! woken, nothing is allocated. Only a socket whose kernel buffer is full gets the frame
//! queued (a reference-counted `Bytes`), and its task is woken to finish the write when
//! the socket becomes writable. A newer tick replaces a queued, unstarted older tick
//! (conflation); when the queue still overflows `outbound_queue_frames_max`, the socket
//! is closed with 4001 (slow consumer). So a slow socket costs bounded memory and never
//! delays the others.
//!
//! Reading uses tungstenite's `WebSocketContext` (frame parsing, masking, size limits,
//! ping/close replies) over a small adapter: reads come from the socket, and whatever
//! tungstenite writes (pongs, close replies) goes through the same outbound queue, so
//! frames never interleave. At most one pong waits (RFC 6455 §5.5.3: answering the
//! latest ping is enough), so a client that pings and never reads costs no memory. The
//! context and its read buffer are created on the first byte a client sends, so a
//! socket that only watches costs no read buffer.
//!
//! A close has deadlines, enforced by the shard's sweep (`close_overdue`): our close
//! frame must be written within `close_write_timeout_ms`; then the socket's task shuts
//! down the write side and discards input for at most `close_drain_timeout_ms`.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::frame;
use crate::config::GatewayConfig;
use crate::metrics::gateway::{CloseReason, socket_closed};

/// Frames written per `writev` call when draining a queue.
const WRITE_BATCH_FRAMES_MAX: usize = 16;

/// What happened to a frame offered to a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// The kernel took the whole frame.
    Written,
    /// The frame waits in the socket's queue.
    Queued,
    /// The frame replaced an older queued tick.
    Conflated,
    /// The socket is closing; the frame was dropped.
    Dropped,
    /// The socket's queue was full: the frame was dropped and the socket is closed as a
    /// slow consumer (4001) from now on. Said once per socket; later offers are `Dropped`.
    Overflowed,
}

#[derive(Debug, Default)]
struct Outbound {
    frames: VecDeque<Bytes>,
    /// Bytes of the front frame already written.
    front_written: usize,
    /// Queue positions `0..replies_ahead` hold replies that overtook public frames (or
    /// the partly written frame before them); a later reply goes right after them.
    replies_ahead: usize,
    /// Whether the back frame is a tick no byte of which was written yet.
    back_is_unstarted_tick: bool,
    /// The answer to the latest ping, not yet written; a newer ping replaces it. It goes
    /// out ahead of the queue at the next frame boundary.
    pending_pong: Option<Bytes>,
    /// Close code once a close was decided; nothing but the close frame is queued after.
    closing: Option<u16>,
    /// When the close was decided: the start of `close_write_timeout_ms`.
    closing_at: Option<Instant>,
    /// When our close frame was written and draining began: the start of
    /// `close_drain_timeout_ms`.
    draining_at: Option<Instant>,
    /// A write failed: the peer is gone.
    failed: bool,
}

/// A live socket. Shared (`Rc`) between the shard's fan-out and the socket's task, both
/// on the shard thread.
#[derive(Debug)]
pub struct Connection {
    /// Gateway-wide id: shard index in the top 16 bits, then a per-shard counter.
    pub id: u64,
    /// Known from the URL's token at the upgrade, or from the first message
    /// (`session::first_message_player`); a socket joins its room only once it is set.
    player: OnceCell<String>,
    pub room: String,
    stream: TcpStream,
    outbound: RefCell<Outbound>,
    /// Wakes the socket's task when frames were queued or a close was decided.
    writer_wake: Notify,
    outbound_queue_frames_max: usize,
    /// The socket's key in its room's member list.
    pub member_key: Cell<usize>,
    /// When the client last sent anything; the shard's sweep closes idle sockets.
    last_inbound: Cell<tokio::time::Instant>,
}

impl Connection {
    pub fn new(
        id: u64,
        room: String,
        stream: TcpStream,
        outbound_queue_frames_max: usize,
    ) -> Connection {
        assert!(outbound_queue_frames_max >= 2);
        Connection {
            id,
            player: OnceCell::new(),
            room,
            stream,
            outbound: RefCell::new(Outbound::default()),
            writer_wake: Notify::new(),
            outbound_queue_frames_max,
            member_key: Cell::new(usize::MAX),
            last_inbound: Cell::new(tokio::time::Instant::now()),
        }
    }

    /// The authenticated player. Only an authenticated socket joins a room, sends
    /// commands or gets replies, so asking before is a bug.
    pub fn player(&self) -> &str {
        self.player
            .get()
            .expect("a socket is used for a player only once authenticated")
    }

    /// Records the player the socket authenticated as (URL token or first message).
    pub fn authenticate(&self, player: String) {
        assert!(
            self.player.set(player).is_ok(),
            "a socket authenticates once"
        );
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Records that the client sent something now.
    pub fn touch_inbound(&self) {
        self.last_inbound.set(tokio::time::Instant::now());
    }

    pub fn last_inbound(&self) -> tokio::time::Instant {
        self.last_inbound.get()
    }

    /// Offers a public frame. `conflatable` frames (ticks) may replace an older queued
    /// one. Never blocks, never wakes the task when the kernel takes the frame.
    pub fn offer(&self, frame: &Bytes, conflatable: bool) -> Offer {
        let mut outbound = self.outbound.borrow_mut();
        if outbound.closing.is_some() || outbound.failed {
            return Offer::Dropped;
        }
        // A pending pong goes out first (`flush`), so a frame offered meanwhile waits.
        if outbound.frames.is_empty() && outbound.pending_pong.is_none() {
            match self.stream.try_write(frame) {
                Ok(written) if written == frame.len() => return Offer::Written,
                Ok(written) => {
                    outbound.frames.push_back(frame.clone());
                    outbound.front_written = written;
                    outbound.back_is_unstarted_tick = false;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    outbound.frames.push_back(frame.clone());
                    outbound.back_is_unstarted_tick = conflatable;
                }
                Err(_) => {
                    outbound.failed = true;
                    drop(outbound);
                    self.writer_wake.notify_one();
                    return Offer::Dropped;
                }
            }
            drop(outbound);
            self.writer_wake.notify_one();
            return Offer::Queued;
        }
        if conflatable && outbound.back_is_unstarted_tick {
            *outbound.frames.back_mut().expect("queue is not empty") = frame.clone();
            return Offer::Conflated;
        }
        if outbound.frames.len() >= self.outbound_queue_frames_max {
            drop(outbound);
            return self.close_slow_consumer();
        }
        outbound.frames.push_back(frame.clone());
        outbound.back_is_unstarted_tick = conflatable && outbound.frames.len() > 1;
        Offer::Queued
    }

    /// Queues a private frame (hello, snapshot, pong, error) behind what is queued: a
    /// snapshot must stay in order with the public events around it.
    pub fn send_private(&self, frame: Bytes) -> Offer {
        self.offer(&frame, false)
    }

    /// Queues an engine reply (`bet_ok`, `cashout_ok`, `balance`, …) ahead of every public
    /// frame not yet started: replies carry no `seq`, so they may overtake the broadcast,
    /// and a player waiting for an ack must not wait behind a backlog of ticks.
    pub fn send_reply(&self, frame: Bytes) -> Offer {
        let mut outbound = self.outbound.borrow_mut();
        if outbound.frames.is_empty() || outbound.closing.is_some() || outbound.failed {
            drop(outbound);
            return self.offer(&frame, false);
        }
        if outbound.frames.len() >= self.outbound_queue_frames_max {
            drop(outbound);
            return self.close_slow_consumer();
        }
        // Behind the frame being written (its bytes are partly on the wire) and behind
        // replies queued earlier, so replies keep their own order.
        let position = usize::from(outbound.front_written > 0)
            .max(outbound.replies_ahead)
            .min(outbound.frames.len());
        outbound.frames.insert(position, frame);
        outbound.replies_ahead = position + 1;
        Offer::Queued
    }

    /// Queues a frame tungstenite wrote: a pong replaces the pong still waiting, if any
    /// (so a ping flood queues one pong, not one per ping); a close reply (once per
    /// socket: tungstenite writes nothing after it) goes behind the queue.
    fn push_control(&self, bytes: Bytes) {
        let mut outbound = self.outbound.borrow_mut();
        if outbound.failed || outbound.closing.is_some() {
            return;
        }
        if frame::is_pong(&bytes) {
            outbound.pending_pong = Some(bytes);
            drop(outbound);
            self.writer_wake.notify_one();
            return;
        }
        outbound.frames.push_back(bytes);
        outbound.back_is_unstarted_tick = false;
        drop(outbound);
        self.writer_wake.notify_one();
    }

    /// Closes a socket whose queue is full (4001), counted once: `Overflowed` for the
    /// offer that decided it.
    fn close_slow_consumer(&self) -> Offer {
        if self.close(crate::protocol::close_code::SLOW_CONSUMER, "slow consumer") {
            socket_closed(CloseReason::SlowConsumer);
            return Offer::Overflowed;
        }
        Offer::Dropped
    }

    /// Decides to close with `code`: unstarted queued frames are dropped and a close
    /// frame is queued. Later offers are dropped. Idempotent: true only for the call
    /// that decided the close.
    pub fn close(&self, code: u16, reason: &str) -> bool {
        let mut outbound = self.outbound.borrow_mut();
        if outbound.closing.is_some() {
            return false;
        }
        outbound.closing = Some(code);
        outbound.closing_at = Some(Instant::now());
        outbound.pending_pong = None;
        let keep = usize::from(outbound.front_written > 0);
        outbound.frames.truncate(keep);
        outbound.replies_ahead = outbound.replies_ahead.min(keep);
        outbound.frames.push_back(frame::close(code, reason));
        outbound.back_is_unstarted_tick = false;
        drop(outbound);
        self.writer_wake.notify_one();
        true
    }

    /// Marks the socket closing without a frame of ours (the client closed first and
    /// tungstenite queued the reply).
    pub fn mark_closing(&self, code: u16) {
        let mut outbound = self.outbound.borrow_mut();
        if outbound.closing.is_none() {
            outbound.closing = Some(code);
            outbound.closing_at = Some(Instant::now());
            outbound.pending_pong = None;
        }
        drop(outbound);
        self.writer_wake.notify_one();
    }

    pub fn has_pending(&self) -> bool {
        let outbound = self.outbound.borrow();
        !outbound.frames.is_empty() || outbound.pending_pong.is_some()
    }

    pub fn is_closing(&self) -> bool {
        self.outbound.borrow().closing.is_some()
    }

    /// Whether the task should end: the peer is gone, or our close went out.
    pub fn is_finished(&self) -> bool {
        let outbound = self.outbound.borrow();
        outbound.failed || (outbound.closing.is_some() && outbound.frames.is_empty())
    }

    pub fn is_failed(&self) -> bool {
        self.outbound.borrow().failed
    }

    /// Frames waiting (a pending pong included), for metrics and tests.
    pub fn queued_frames(&self) -> usize {
        let outbound = self.outbound.borrow();
        outbound.frames.len() + usize::from(outbound.pending_pong.is_some())
    }

    /// Records that our close frame is out and the socket's task now discards input.
    pub fn start_draining(&self) {
        self.outbound.borrow_mut().draining_at = Some(Instant::now());
    }

    /// Whether a closing socket outlived its deadlines: its close frame still unwritten
    /// `close_write_timeout_ms` after the close was decided (the peer does not read), or
    /// its input still not over `close_drain_timeout_ms` after draining began.
    pub fn close_overdue(&self, now: Instant, deadlines: CloseDeadlines) -> bool {
        let outbound = self.outbound.borrow();
        match (outbound.closing_at, outbound.draining_at) {
            (_, Some(draining_at)) => now.duration_since(draining_at) > deadlines.drain,
            (Some(closing_at), None) => now.duration_since(closing_at) > deadlines.write,
            (None, None) => false,
        }
    }

    pub async fn wait_for_wake(&self) {
        self.writer_wake.notified().await;
    }

    /// Writes queued frames until the queue is empty or the kernel buffer is full.
    pub fn flush(&self) {
        let mut outbound = self.outbound.borrow_mut();
        if outbound.front_written == 0 {
            // A control frame may go between two frames, never inside one.
            if let Some(pong) = outbound.pending_pong.take() {
                outbound.frames.push_front(pong);
                outbound.replies_ahead += 1;
            }
        }
        while !outbound.frames.is_empty() && !outbound.failed {
            let mut slices = [IoSlice::new(&[]); WRITE_BATCH_FRAMES_MAX];
            let count = outbound.frames.len().min(WRITE_BATCH_FRAMES_MAX);
            for (slot, frame) in slices.iter_mut().zip(outbound.frames.iter()) {
                *slot = IoSlice::new(frame);
            }
            slices[0] = IoSlice::new(&outbound.frames[0][outbound.front_written..]);
            match self.stream.try_write_vectored(&slices[..count]) {
                Ok(written) => outbound.consume(written),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => outbound.failed = true,
            }
        }
    }

    pub fn mark_failed(&self) {
        self.outbound.borrow_mut().failed = true;
    }

    /// Gives up on the socket (a close deadline passed): its task ends and drops it
    /// without writing or reading more.
    pub fn abort(&self) {
        self.mark_failed();
        self.writer_wake.notify_one();
    }
}

/// How long a closing socket may take, from `gateway.close_*_timeout_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseDeadlines {
    /// From the close decision until our close frame is written.
    pub write: Duration,
    /// From then until the peer's input ends.
    pub drain: Duration,
}

impl CloseDeadlines {
    pub fn new(config: &GatewayConfig) -> CloseDeadlines {
        CloseDeadlines {
            write: Duration::from_millis(config.close_write_timeout_ms),
            drain: Duration::from_millis(config.close_drain_timeout_ms),
        }
    }
}

impl Outbound {
    /// Drops `written` bytes from the front of the queue.
    fn consume(&mut self, mut written: usize) {
        while written > 0 {
            let front_left = self.frames[0].len() - self.front_written;
            if written < front_left {
                self.front_written += written;
                if self.frames.len() == 1 {
                    self.back_is_unstarted_tick = false;
                }
                return;
            }
            written -= front_left;
            self.frames.pop_front();
            self.front_written = 0;
            self.replies_ahead = self.replies_ahead.saturating_sub(1);
        }
        if self.frames.is_empty() {
            self.back_is_unstarted_tick = false;
        }
    }
}

/// The `Read + Write` that tungstenite sees: reads from the socket, writes into the
/// socket's outbound queue.
pub struct SocketIo<'a> {
    pub connection: &'a Connection,
}

impl io::Read for SocketIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.connection.stream.try_read(buf)
    }
}

impl io::Write for SocketIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.connection.push_control(Bytes::copy_from_slice(buf));
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the rate limit says about one inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate: handle it.
    Allowed,
    /// Over the rate: refuse it (a strike).
    Refused,
    /// Over the rate with more than `rate_limit_strikes_max` strikes not yet forgiven:
    /// close the socket (1008).
    Abusive,
}

/// Per-connection token bucket for inbound messages (text frames, pings and pongs),
/// with strikes for the messages it refuses that are forgiven over time.
#[derive(Debug)]
pub struct RateLimit {
    tokens_milli: u64,
    burst_milli: u64,
    refill_per_second: u64,
    /// Refused messages not yet forgiven, in thousandths.
    strikes_milli: u64,
    strikes_max_milli: u64,
    strikes_forgiven_per_second: u64,
    last_refill: Instant,
}

impl RateLimit {
    pub fn new(config: &GatewayConfig, now: Instant) -> RateLimit {
        let burst_milli = u64::from(config.inbound_messages_burst_max) * 1000;
        RateLimit {
            tokens_milli: burst_milli,
            burst_milli,
            refill_per_second: u64::from(config.inbound_messages_per_second_max),
            strikes_milli: 0,
            strikes_max_milli: u64::from(config.rate_limit_strikes_max) * 1000,
            strikes_forgiven_per_second: u64::from(config.rate_limit_strikes_forgiven_per_second),
            last_refill: now,
        }
    }

    /// Takes a token if there is one at `now`; otherwise counts a strike.
    pub fn check(&mut self, now: Instant) -> Verdict {
        let elapsed_ms = u64::try_from(now.saturating_duration_since(self.last_refill).as_millis())
            .unwrap_or(u64::MAX);
        self.last_refill = now;
        self.tokens_milli = self
            .tokens_milli
            .saturating_add(elapsed_ms.saturating_mul(self.refill_per_second))
            .min(self.burst_milli);
        self.strikes_milli = self
            .strikes_milli
            .saturating_sub(elapsed_ms.saturating_mul(self.strikes_forgiven_per_second));
        if self.tokens_milli >= 1000 {
            self.tokens_milli -= 1000;
            return Verdict::Allowed;
        }
        self.strikes_milli = self.strikes_milli.saturating_add(1000);
        if self.strikes_milli > self.strikes_max_milli {
            Verdict::Abusive
        } else {
            Verdict::Refused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    async fn pair(queue_max: usize) -> (Connection, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let connection = Connection::new(1, "main".into(), server, queue_max);
        connection.authenticate("p".into());
        (connection, client)
    }

    /// Offers `big` until the kernel buffers are full and one waits in the queue;
    /// returns the bytes offered, the queued frame included.
    fn fill_kernel_buffers(connection: &Connection, big: &Bytes) -> usize {
        let mut offered = big.len();
        while connection.offer(big, false) != Offer::Queued {
            offered += big.len();
            assert!(offered < 10_000 * big.len(), "kernel buffers never filled");
        }
        offered
    }

    /// Flushes the queue while the client reads all `sent` bytes; returns the one-byte
    /// payloads of the last `frames` frames (each 3 bytes on the wire).
    async fn drain_and_read_tail(
        connection: &Connection,
        mut client: TcpStream,
        sent: usize,
        frames: usize,
    ) -> Vec<u8> {
        let reader = tokio::spawn(async move {
            let mut all = vec![0u8; sent];
            client.read_exact(&mut all).await.unwrap();
            all
        });
        while connection.has_pending() {
            connection.stream().writable().await.unwrap();
            connection.flush();
        }
        let all = reader.await.unwrap();
        all[all.len() - 3 * frames..]
            .chunks(3)
            .map(|chunk| chunk[2])
            .collect()
    }

    #[tokio::test]
    async fn fast_path_writes_without_queueing() {
        let (connection, mut client) = pair(4).await;
        let frame = frame::text(b"{\"t\":\"tick\"}");
        assert_eq!(connection.offer(&frame, true), Offer::Written);
        assert!(!connection.has_pending());
        let mut received = vec![0u8; frame.len()];
        client.read_exact(&mut received).await.unwrap();
        assert_eq!(received, frame);
    }

    #[tokio::test]
    async fn a_reader_that_stalls_gets_conflated_ticks_then_closed() {
        let (connection, _client) = pair(4).await;
        let big = frame::text(&vec![b'x'; 256 * 1024]);
        fill_kernel_buffers(&connection, &big);
        let tick = frame::text(b"tick");
        assert_eq!(connection.offer(&tick, true), Offer::Queued);
        assert_eq!(connection.offer(&tick, true), Offer::Conflated);
        assert_eq!(connection.queued_frames(), 2);
        let phase = frame::text(b"phase");
        assert_eq!(connection.offer(&phase, false), Offer::Queued);
        assert_eq!(connection.offer(&phase, false), Offer::Queued);
        assert_eq!(connection.offer(&phase, false), Offer::Overflowed);
        assert!(connection.is_closing());
        assert_eq!(connection.offer(&tick, true), Offer::Dropped);
        // The partially written frame stays (framing), then the close frame.
        assert!(connection.queued_frames() <= 2);
    }

    #[tokio::test]
    async fn flush_drains_a_queue_in_order_once_the_reader_reads() {
        let (connection, client) = pair(1000).await;
        let big = frame::text(&vec![b'y'; 64 * 1024]);
        let mut sent = fill_kernel_buffers(&connection, &big);
        for index in 0..10u8 {
            connection.send_private(frame::text(&[b'0' + index]));
            sent += 3;
        }
        assert_eq!(
            drain_and_read_tail(&connection, client, sent, 10).await,
            b"0123456789"
        );
    }

    #[tokio::test]
    async fn replies_overtake_queued_public_frames_in_their_own_order() {
        let (connection, client) = pair(1000).await;
        let big = frame::text(&vec![b'z'; 64 * 1024]);
        let sent = fill_kernel_buffers(&connection, &big) + 5 * 3;
        let public = frame::text(b"P");
        for _ in 0..3 {
            connection.offer(&public, false);
        }
        connection.send_reply(frame::text(b"1"));
        connection.send_reply(frame::text(b"2"));
        assert_eq!(
            drain_and_read_tail(&connection, client, sent, 5).await,
            b"12PPP",
            "replies first, in order, then the public frames"
        );
    }

    #[tokio::test]
    async fn a_ping_flood_queues_one_pong_the_latest() {
        let (connection, client) = pair(4).await;
        let big = frame::text(&vec![b'p'; 64 * 1024]);
        let offered = fill_kernel_buffers(&connection, &big);
        let queued = connection.queued_frames();
        // What tungstenite writes for 10,000 pings (one-byte payloads) from a client
        // that does not read.
        for index in 0..10_000u32 {
            let pong = [0x8A, 1, b'0' + (index % 10) as u8];
            io::Write::write_all(
                &mut SocketIo {
                    connection: &connection,
                },
                &pong,
            )
            .unwrap();
            connection.flush();
            assert!(connection.queued_frames() <= queued + 1);
        }
        assert_eq!(
            drain_and_read_tail(&connection, client, offered + 3, 1).await,
            b"9",
            "one pong, answering the latest ping"
        );
    }

    fn rate_config(per_second: u32, burst: u32, strikes_max: u32) -> GatewayConfig {
        GatewayConfig {
            inbound_messages_per_second_max: per_second,
            inbound_messages_burst_max: burst,
            rate_limit_strikes_max: strikes_max,
            rate_limit_strikes_forgiven_per_second: 10,
            ..GatewayConfig::default()
        }
    }

    #[test]
    fn rate_limit_allows_the_burst_refuses_then_closes_past_the_strikes() {
        let now = Instant::now();
        let mut limit = RateLimit::new(&rate_config(1, 3, 2), now);
        for _ in 0..3 {
            assert_eq!(limit.check(now), Verdict::Allowed);
        }
        assert_eq!(limit.check(now), Verdict::Refused);
        assert_eq!(limit.check(now), Verdict::Refused);
        assert_eq!(limit.check(now), Verdict::Abusive);
    }

    #[test]
    fn a_client_that_bursts_now_and_then_is_never_closed() {
        // Each burst is 100 messages at once (60 over the defaults' burst of 40, so 60
        // strikes); a day of one such burst a minute.
        let mut now = Instant::now();
        let mut limit = RateLimit::new(&rate_config(20, 40, 100), now);
        for _ in 0..24 * 60 {
            for _ in 0..100 {
                assert_ne!(limit.check(now), Verdict::Abusive);
            }
            now += Duration::from_secs(60);
        }
    }

    #[test]
    fn a_client_that_keeps_flooding_is_closed() {
        // 1,000 messages a second against 20 allowed and 10 strikes forgiven a second.
        let mut now = Instant::now();
        let mut limit = RateLimit::new(&rate_config(20, 40, 100), now);
        let mut closed_after = None;
        for sent in 1..=10_000 {
            if limit.check(now) == Verdict::Abusive {
                closed_after = Some(sent);
                break;
            }
            now += Duration::from_millis(1);
        }
        let sent = closed_after.expect("a flood is closed");
        assert!(sent < 1_000, "closed only after {sent} messages");
    }
}

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
//! frames never interleave. The context and its read buffer are created on the first
//! byte a client sends, so a socket that only watches costs no read buffer.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::frame;

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
    /// The socket is closing or overflowed; the frame was dropped.
    Dropped,
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
    /// Close code once a close was decided; nothing but the close frame is queued after.
    closing: Option<u16>,
    /// A write failed: the peer is gone.
    failed: bool,
}

/// A live socket. Shared (`Rc`) between the shard's fan-out and the socket's task, both
/// on the shard thread.
#[derive(Debug)]
pub struct Connection {
    /// Gateway-wide id: shard index in the top 16 bits, then a per-shard counter.
    pub id: u64,
    pub player: String,
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
        player: String,
        room: String,
        stream: TcpStream,
        outbound_queue_frames_max: usize,
    ) -> Connection {
        assert!(outbound_queue_frames_max >= 2);
        Connection {
            id,
            player,
            room,
            stream,
            outbound: RefCell::new(Outbound::default()),
            writer_wake: Notify::new(),
            outbound_queue_frames_max,
            member_key: Cell::new(usize::MAX),
            last_inbound: Cell::new(tokio::time::Instant::now()),
        }
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
        if outbound.frames.is_empty() {
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
            self.close(crate::protocol::close_code::SLOW_CONSUMER, "slow consumer");
            return Offer::Dropped;
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
            self.close(crate::protocol::close_code::SLOW_CONSUMER, "slow consumer");
            return Offer::Dropped;
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

    /// Queues bytes that must go out whatever the queue holds (tungstenite's pongs and
    /// close replies): they are tiny and bounded by what the client sends, which the
    /// rate limit bounds.
    fn push_control(&self, bytes: Bytes) {
        let mut outbound = self.outbound.borrow_mut();
        if outbound.failed {
            return;
        }
        outbound.frames.push_back(bytes);
        outbound.back_is_unstarted_tick = false;
        drop(outbound);
        self.writer_wake.notify_one();
    }

    /// Decides to close with `code`: unstarted queued frames are dropped and a close
    /// frame is queued. Later offers are dropped. Idempotent.
    pub fn close(&self, code: u16, reason: &str) {
        let mut outbound = self.outbound.borrow_mut();
        if outbound.closing.is_some() {
            return;
        }
        outbound.closing = Some(code);
        let keep = usize::from(outbound.front_written > 0);
        outbound.frames.truncate(keep);
        outbound.replies_ahead = outbound.replies_ahead.min(keep);
        outbound.frames.push_back(frame::close(code, reason));
        outbound.back_is_unstarted_tick = false;
        drop(outbound);
        self.writer_wake.notify_one();
    }

    /// Marks the socket closing without a frame of ours (the client closed first and
    /// tungstenite queued the reply).
    pub fn mark_closing(&self, code: u16) {
        let mut outbound = self.outbound.borrow_mut();
        outbound.closing.get_or_insert(code);
        drop(outbound);
        self.writer_wake.notify_one();
    }

    pub fn has_pending(&self) -> bool {
        !self.outbound.borrow().frames.is_empty()
    }

    pub fn is_closing(&self) -> bool {
        self.outbound.borrow().closing.is_some()
    }

    /// Whether the task should end: the peer is gone, or our close went out.
    pub fn is_finished(&self) -> bool {
        let outbound = self.outbound.borrow();
        outbound.failed || (outbound.closing.is_some() && outbound.frames.is_empty())
    }

    /// Frames waiting, for metrics and tests.
    pub fn queued_frames(&self) -> usize {
        self.outbound.borrow().frames.len()
    }

    pub async fn wait_for_wake(&self) {
        self.writer_wake.notified().await;
    }

    /// Writes queued frames until the queue is empty or the kernel buffer is full.
    pub fn flush(&self) {
        let mut outbound = self.outbound.borrow_mut();
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

/// Per-connection token bucket for inbound messages.
#[derive(Debug)]
pub struct RateLimit {
    tokens_milli: u64,
    burst_milli: u64,
    refill_per_second: u64,
    last_refill: tokio::time::Instant,
    /// Messages refused so far.
    pub strikes: u32,
}

impl RateLimit {
    pub fn new(per_second: u32, burst: u32) -> RateLimit {
        RateLimit {
            tokens_milli: u64::from(burst) * 1000,
            burst_milli: u64::from(burst) * 1000,
            refill_per_second: u64::from(per_second),
            last_refill: tokio::time::Instant::now(),
            strikes: 0,
        }
    }

    /// Takes a token if there is one.
    pub fn allow(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        let elapsed_ms = u64::try_from((now - self.last_refill).as_millis()).unwrap_or(u64::MAX);
        self.last_refill = now;
        self.tokens_milli = self
            .tokens_milli
            .saturating_add(elapsed_ms.saturating_mul(self.refill_per_second))
            .min(self.burst_milli);
        if self.tokens_milli >= 1000 {
            self.tokens_milli -= 1000;
            true
        } else {
            self.strikes += 1;
            false
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
        (
            Connection::new(1, "p".into(), "main".into(), server, queue_max),
            client,
        )
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
        assert_eq!(connection.offer(&phase, false), Offer::Dropped);
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

    #[test]
    fn rate_limit_allows_the_burst_then_refuses() {
        let mut limit = RateLimit::new(1, 3);
        assert!(limit.allow() && limit.allow() && limit.allow());
        assert!(!limit.allow());
        assert_eq!(limit.strikes, 1);
    }
}

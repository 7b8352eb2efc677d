//! Stalled connections of the fan-out benchmark (`--stalled N`): they open exactly like
//! the measured ones (same handshake, same subscription) and then never read, so their
//! kernel buffers fill and the server has to conflate, queue and finally close them. They
//! are kept out of every measured figure; when the window ends each is drained (read to
//! its end, for a bounded time) to learn how the server ended it, and tallied here.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::fanout::receiver::{self, Target};
use crate::fanout::wire::{self, FrameReader, Keep};
use crate::report::fanout::StalledReport;

/// Receive buffer asked for on a stalled socket, in bytes: the smallest the kernel grants,
/// so the server meets a full socket after seconds of ticks, not minutes.
pub const RECEIVE_BUFFER_BYTES: u32 = 4 * 1024;
/// Time a stalled connection has to reach its end once the run drains it, in milliseconds.
const DRAIN_TIMEOUT_MS: u64 = 5_000;
/// Read buffer of a draining connection, in bytes.
const DRAIN_READ_BYTES: usize = 16 * 1024;
/// The close code of a slow consumer (aloft's `protocol::close_code::SLOW_CONSUMER`).
pub const CLOSE_SLOW_CONSUMER: u16 = 4001;

/// How the server had ended a stalled connection by the time it was drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A close frame with this code (`None`: a close frame without a code).
    CloseFrame(Option<u16>),
    /// End of stream or a reset with no close frame before it.
    NoCloseFrame,
    /// Still open when the drain's time ran out: the server never closed it.
    StillOpen,
}

/// What the stalled connections count, shared by all of them.
#[derive(Debug, Default)]
pub struct StalledTally {
    pub opened: AtomicU64,
    pub failed: AtomicU64,
    pub closed_slow_consumer: AtomicU64,
    pub closed_other_code: AtomicU64,
    pub ended_without_close_frame: AtomicU64,
    pub still_open: AtomicU64,
}

impl StalledTally {
    pub fn record(&self, ending: Ending) {
        let counter = match ending {
            Ending::CloseFrame(Some(CLOSE_SLOW_CONSUMER)) => &self.closed_slow_consumer,
            Ending::CloseFrame(_) => &self.closed_other_code,
            Ending::NoCloseFrame => &self.ended_without_close_frame,
            Ending::StillOpen => &self.still_open,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn report(&self, requested: u64) -> StalledReport {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StalledReport {
            requested,
            opened: read(&self.opened),
            failed: read(&self.failed),
            closed_slow_consumer: read(&self.closed_slow_consumer),
            closed_other_code: read(&self.closed_other_code),
            ended_without_close_frame: read(&self.ended_without_close_frame),
            still_open: read(&self.still_open),
        }
    }
}

/// The stalled connections of one run: their tasks and the signal that drains them.
pub struct Stalled {
    pub tally: Arc<StalledTally>,
    tasks: JoinSet<()>,
    drain: watch::Sender<bool>,
}

impl Stalled {
    pub fn new() -> Stalled {
        Stalled {
            tally: Arc::new(StalledTally::default()),
            tasks: JoinSet::new(),
            drain: watch::Sender::new(false),
        }
    }

    /// Starts one stalled connection from `source`.
    pub fn spawn(&mut self, target: &Arc<Target>, source: Ipv4Addr) {
        let (tally, target) = (self.tally.clone(), target.clone());
        let drain = self.drain.subscribe();
        self.tasks
            .spawn(async move { run(&tally, &target, source, drain).await });
    }

    /// Opened plus failed, so far.
    pub fn settled(&self) -> u64 {
        self.tally.opened.load(Ordering::Relaxed) + self.tally.failed.load(Ordering::Relaxed)
    }

    /// Drains every connection, waits for each to reach its end or its time limit, and
    /// returns the tally.
    pub async fn drain(mut self, requested: u64) -> StalledReport {
        self.drain.send_replace(true);
        while self.tasks.join_next().await.is_some() {}
        self.tally.report(requested)
    }
}

/// One stalled connection: open, hold without reading until drained, then read to the end.
async fn run(
    tally: &StalledTally,
    target: &Target,
    source: Ipv4Addr,
    mut drain: watch::Receiver<bool>,
) {
    let Ok((stream, _)) = receiver::open_in_time(target, source, Some(RECEIVE_BUFFER_BYTES)).await
    else {
        tally.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    tally.opened.fetch_add(1, Ordering::Relaxed);
    // A closed sender also means the run is over.
    let _ = drain.wait_for(|drained| *drained).await;
    let ending = tokio::time::timeout(Duration::from_millis(DRAIN_TIMEOUT_MS), read_to_end(stream))
        .await
        .unwrap_or(Ending::StillOpen);
    tally.record(ending);
}

/// Reads until a close frame, the end of the stream or an error.
async fn read_to_end(mut stream: TcpStream) -> Ending {
    let mut reader = FrameReader::new(Keep::NoData);
    let mut buffer = vec![0u8; DRAIN_READ_BYTES];
    loop {
        let Ok(read) = stream.read(&mut buffer).await else {
            return Ending::NoCloseFrame;
        };
        if read == 0 {
            return Ending::NoCloseFrame;
        }
        let mut close = None;
        let fed = reader.feed(&buffer[..read], |frame| {
            if frame.opcode == wire::OPCODE_CLOSE && close.is_none() {
                close = Some(close_code(frame.payload));
            }
        });
        if let Some(code) = close {
            return Ending::CloseFrame(code);
        }
        if fed.is_err() {
            return Ending::NoCloseFrame;
        }
    }
}

/// The status code of a close frame's payload (RFC 6455 §5.5.1), if it has one.
pub fn close_code(payload: &[u8]) -> Option<u16> {
    let [high, low, ..] = *payload else {
        return None;
    };
    Some(u16::from_be_bytes([high, low]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_code_is_the_payloads_first_two_bytes() {
        assert_eq!(close_code(b"\x0f\xa1slow consumer"), Some(4001));
        assert_eq!(close_code(b"\x03\xe8"), Some(1000));
        assert_eq!(close_code(b""), None);
        assert_eq!(close_code(b"\x0f"), None);
    }

    #[test]
    fn endings_are_tallied_by_kind() {
        let tally = StalledTally::default();
        tally.opened.store(6, Ordering::Relaxed);
        tally.failed.store(1, Ordering::Relaxed);
        for ending in [
            Ending::CloseFrame(Some(CLOSE_SLOW_CONSUMER)),
            Ending::CloseFrame(Some(CLOSE_SLOW_CONSUMER)),
            Ending::CloseFrame(Some(1001)),
            Ending::CloseFrame(None),
            Ending::NoCloseFrame,
            Ending::StillOpen,
        ] {
            tally.record(ending);
        }
        let report = tally.report(7);
        assert_eq!(report.requested, 7);
        assert_eq!((report.opened, report.failed), (6, 1));
        assert_eq!(report.closed_slow_consumer, 2);
        assert_eq!(report.closed_other_code, 2);
        assert_eq!(report.ended_without_close_frame, 1);
        assert_eq!(report.still_open, 1);
        assert_eq!(report.closed_by_server(), 5);
    }

    #[tokio::test]
    async fn a_drained_connection_reports_the_close_it_was_sent() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let tick = wire::server_text_frame(br#"{"t":"tick","seq":1}"#);
            socket.write_all(&tick).await.unwrap();
            // A server close frame: unmasked, opcode 8, code 4001.
            socket.write_all(b"\x88\x02\x0f\xa1").await.unwrap();
        });
        let stream = TcpStream::connect(address).await.unwrap();
        server.await.unwrap();
        assert_eq!(
            read_to_end(stream).await,
            Ending::CloseFrame(Some(CLOSE_SLOW_CONSUMER))
        );
    }
}

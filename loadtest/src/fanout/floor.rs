//! The raw-TCP floor: the least work a broadcast server can do on this machine, so every
//! other server is reported as a multiple of it. One thread (a tokio current_thread
//! runtime) accepts WebSocket upgrades, then every 1/H s encodes one text frame (a JSON
//! with `seq` and the send time `at` in unix milliseconds, padded to the payload size)
//! and offers it to each socket with ONE non-blocking `write`. A socket that would
//! block skips the frame (counted); one that takes part of it, or fails, is closed.
//! It never reads after the handshake and stops by itself after `--duration`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::fanout::receiver::unix_now_us;
use crate::fanout::wire;
use crate::flags::parse_duration;

/// Most sockets held (open files are capped at 20,000 per process).
const CONNECTIONS_MAX: usize = 19_500;
/// Time a client has to send its upgrade request, in milliseconds.
const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// Upgraded sockets waiting to join the broadcast, count.
const JOIN_QUEUE_SOCKETS_MAX: usize = 1_024;
/// Fastest tick rate, in frames per second.
const HZ_MAX: u32 = 1_000;
/// Microseconds per millisecond.
const US_PER_MS: u64 = 1_000;

/// Options of `aloft-loadtest floor-server`.
#[derive(Debug, clap::Args)]
pub struct FloorArgs {
    /// Loopback address to listen on, e.g. 127.0.0.1:18300.
    #[arg(long)]
    pub listen: SocketAddr,
    /// Frames per second to every socket.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=i64::from(HZ_MAX)))]
    pub hz: u32,
    /// Payload of each frame, in bytes (at least the JSON without padding).
    #[arg(long, default_value_t = 64)]
    pub payload_bytes: usize,
    /// How long the server runs before it stops by itself, e.g. 120s.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub duration: Duration,
}

/// What the floor did, printed when it stops.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FloorCounts {
    pub frames_written: u64,
    pub would_blocks: u64,
    /// Sockets closed because a write took part of a frame or failed.
    pub sockets_dropped: u64,
    pub handshakes_failed: u64,
}

/// Runs the floor on its own single-threaded runtime until `--duration` passes.
pub fn run(args: FloorArgs) -> anyhow::Result<bool> {
    ensure!(
        args.listen.ip().is_loopback(),
        "--listen {} refused: the floor listens on loopback only",
        args.listen
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the runtime")?;
    let counts = runtime.block_on(serve(args))?;
    println!("{counts:?}");
    Ok(true)
}

async fn serve(args: FloorArgs) -> anyhow::Result<FloorCounts> {
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let (joined, mut joining) = mpsc::channel::<TcpStream>(JOIN_QUEUE_SOCKETS_MAX);
    let handshakes_failed = Arc::new(AtomicU64::new(0));
    let failed = handshakes_failed.clone();
    tokio::spawn(async move {
        while let Ok((stream, _peer)) = listener.accept().await {
            let (joined, failed) = (joined.clone(), failed.clone());
            tokio::spawn(async move {
                match upgrade(stream).await {
                    // The broadcast loop is gone only when the floor stops.
                    Ok(stream) => drop(joined.send(stream).await),
                    Err(_) => drop(failed.fetch_add(1, Ordering::Relaxed)),
                }
            });
        }
    });
    let mut sockets: Vec<TcpStream> = Vec::new();
    let mut counts = FloorCounts::default();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.hz)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let stop = tokio::time::sleep(args.duration);
    tokio::pin!(stop);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = &mut stop => {
                counts.handshakes_failed = handshakes_failed.load(Ordering::Relaxed);
                return Ok(counts);
            }
            Some(stream) = joining.recv() => {
                if sockets.len() < CONNECTIONS_MAX {
                    sockets.push(stream);
                }
            }
            _ = ticks.tick() => {
                seq += 1;
                let frame = wire::server_text_frame(&tick_payload(seq, unix_now_us() / US_PER_MS, args.payload_bytes));
                broadcast(&mut sockets, &frame, &mut counts);
            }
        }
    }
}

/// Reads the upgrade request and answers it.
async fn upgrade(mut stream: TcpStream) -> anyhow::Result<TcpStream> {
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let read_head = async {
        let mut head = Vec::new();
        let mut buffer = [0u8; 1024];
        loop {
            let read = stream.read(&mut buffer).await?;
            ensure!(read > 0, "closed during the handshake");
            head.extend_from_slice(&buffer[..read]);
            if let Some(end) = wire::head_end(&head) {
                head.truncate(end);
                return Ok(head);
            }
            ensure!(head.len() <= wire::HEAD_BYTES_MAX, "request head too long");
        }
    };
    let head = tokio::time::timeout(Duration::from_millis(HANDSHAKE_TIMEOUT_MS), read_head)
        .await
        .context("handshake timed out")??;
    let response = wire::upgrade_response(&head)?;
    stream.write_all(response.as_bytes()).await?;
    Ok(stream)
}

/// Offers `frame` to every socket with one `try_write` each.
fn broadcast(sockets: &mut Vec<TcpStream>, frame: &[u8], counts: &mut FloorCounts) {
    sockets.retain(|socket| match socket.try_write(frame) {
        Ok(written) if written == frame.len() => {
            counts.frames_written += 1;
            true
        }
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
            counts.would_blocks += 1;
            true
        }
        Ok(_) | Err(_) => {
            counts.sockets_dropped += 1;
            false
        }
    });
}

/// The JSON payload of tick `seq` sent at `at_ms`, padded to `payload_bytes` (or
/// unpadded when the JSON alone is longer).
pub fn tick_payload(seq: u64, at_ms: u64, payload_bytes: usize) -> Vec<u8> {
    let bare = format!(r#"{{"t":"tick","seq":{seq},"at":{at_ms},"pad":""}}"#);
    let padding = payload_bytes.saturating_sub(bare.len());
    format!(
        r#"{{"t":"tick","seq":{seq},"at":{at_ms},"pad":"{}"}}"#,
        "x".repeat(padding)
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_payloads_are_padded_json_of_the_asked_size() {
        let payload = tick_payload(42, 1_700_000_000_123, 64);
        assert_eq!(payload.len(), 64);
        let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(json["seq"], 42);
        assert_eq!(json["at"], 1_700_000_000_123u64);
        assert!(
            tick_payload(1, 1_700_000_000_123, 16).len() > 16,
            "never truncated"
        );
    }

    #[tokio::test]
    async fn the_floor_upgrades_and_broadcasts_one_frame_per_tick() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let args = FloorArgs {
            listen: addr,
            hz: 50,
            payload_bytes: 100,
            duration: Duration::from_millis(600),
        };
        let server = tokio::spawn(serve(args));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let tally = std::sync::Arc::new(crate::fanout::receiver::Tally::new());
        tally
            .measuring
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let target = crate::fanout::receiver::Target {
            server: addr,
            path_and_query: "/".into(),
            framing: crate::fanout::receiver::Framing::Plain,
        };
        let client = {
            let tally = tally.clone();
            tokio::spawn(async move {
                crate::fanout::receiver::run(
                    &tally,
                    &target,
                    std::net::Ipv4Addr::LOCALHOST,
                    crate::fanout::receiver::Role {
                        probe: true,
                        ..Default::default()
                    },
                )
                .await
            })
        };
        let counts = server.await.unwrap().unwrap();
        client.await.unwrap();
        let frames = tally.frames.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            tally.connected.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        assert!(frames >= 10, "{frames} frames in 0.5 s at 50 Hz");
        assert_eq!(frames, counts.frames_written);
        assert_eq!(tally.unparsed.load(std::sync::atomic::Ordering::Relaxed), 0);
        assert_eq!(tally.latency_us.lock().unwrap().len(), frames);
    }
}

//! Probes of the chaos cluster's parts, free of its state: a free loopback port, Redis
//! through `redis-cli`, a PostgreSQL connection, a gateway's `/readyz`, and the bounded
//! poll every wait of the suite goes through. Each probe has a time limit of its own.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::{Context, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::Instant;

/// Time allowed for one readiness probe (HTTP, Redis PING, a PostgreSQL connect), in
/// milliseconds.
const PROBE_TIMEOUT_MS: u64 = 2_000;
/// Pause between polls, in milliseconds.
pub const POLL_MS: u64 = 100;

/// Polls `probe` every [`POLL_MS`] until it is true; fails naming `what` after
/// `timeout_ms`.
pub async fn wait_for<F, Fut>(what: &str, timeout_ms: u64, mut probe: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    while !probe().await {
        ensure!(
            Instant::now() < deadline,
            "waited {timeout_ms} ms for {what}"
        );
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
    Ok(())
}

/// A loopback port free now (the kernel's choice).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Runs `redis-cli -p <port> <args>`; its output without the trailing newline.
pub async fn redis_cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let output = tokio::time::timeout(
        Duration::from_millis(PROBE_TIMEOUT_MS),
        Command::new("redis-cli")
            .args(["-p", &port.to_string()])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("redis-cli timed out")??;
    ensure!(output.status.success(), "redis-cli {args:?} failed");
    Ok(String::from_utf8_lossy(&output.stdout)
        .trim_end()
        .to_owned())
}

pub async fn redis_ping(port: u16) -> bool {
    matches!(redis_cli(port, &["PING"]).await.as_deref(), Ok("PONG"))
}

/// A connection to PostgreSQL (`key=value` or URL form), its driver spawned.
pub async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let connecting = tokio_postgres::connect(url, tokio_postgres::NoTls);
    let (client, connection) =
        tokio::time::timeout(Duration::from_millis(PROBE_TIMEOUT_MS), connecting)
            .await
            .context("connecting to PostgreSQL timed out")?
            .context("connecting to PostgreSQL")?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped or the server goes away.
        let _ = connection.await;
    });
    Ok(client)
}

pub async fn postgres_answers(url: &str) -> bool {
    match connect(url).await {
        Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    }
}

/// Whether the gateway at `addr` answers `GET /readyz` with 200.
pub async fn gateway_ready(addr: SocketAddr) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        anyhow::Ok(&head[..] == b"HTTP/1.1 200")
    };
    let probed = tokio::time::timeout(Duration::from_millis(PROBE_TIMEOUT_MS), probe).await;
    matches!(probed, Ok(Ok(true)))
}

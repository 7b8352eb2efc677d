//! The servers a fan-out benchmark can put under load, and their processes. Each is one
//! [`ServerSpec`] entry in [`SERVERS`]: a function that builds the command starting it
//! for a given load (or says why it cannot be started: not built, not installed), the
//! path its WebSocket answers on, and whether it needs a guest token first. Adding a
//! peer (`loadtest/peers/<name>/`) is adding one entry. The benchmark starts the
//! process itself, so it knows the pid whose CPU and memory it reads, and kills it at
//! the end (also on every error path, by [`ServerProcess`]'s `Drop`).

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::time::Instant;

use crate::api::Api;

/// Time a server has to start listening, in milliseconds.
const START_TIMEOUT_MS: u64 = 20_000;
/// Interval between readiness probes, in milliseconds.
const READY_POLL_MS: u64 = 50;
/// Bytes of a server's log quoted when it fails to start.
const LOG_TAIL_BYTES: usize = 2_000;
/// Fastest tick rate aloft accepts (`engine.tick_interval_ms` ≥ 10), in ticks per second.
const ALOFT_HZ_MAX: u32 = 100;
/// aloft's multiplier growth for benchmarks, in millionths per millisecond: 1 makes a
/// flight last minutes (2.00x after about 11.5 min), so a run sees ticks, not phases.
const ALOFT_GROWTH_RATE_PER_MS_MILLIONTHS: u32 = 1;

/// The load a server is started for.
#[derive(Debug, Clone)]
pub struct Load {
    pub listen: SocketAddr,
    pub conns: u64,
    pub hz: u32,
    pub payload_bytes: usize,
    /// How long the server may live, in seconds (servers that take a limit stop by
    /// themselves after it).
    pub lifetime_seconds: u64,
    /// A scratch directory for this run (data, logs), removed afterwards.
    pub work_dir: PathBuf,
}

/// How a client authenticates before opening sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    /// `POST /api/guest` once; every socket reuses the token (`&token=...` appended).
    AloftGuest,
}

/// How to start one server and reach it.
pub struct Launch {
    pub command: Command,
    /// Path and query of the WebSocket upgrade.
    pub path_and_query: String,
    pub auth: Auth,
}

/// A server the benchmark knows.
pub struct ServerSpec {
    pub name: &'static str,
    /// The launch for a load, or why this server cannot run here.
    pub launch: fn(&Load) -> anyhow::Result<Launch>,
}

/// Every server, the floor first (the others are reported as ratios to it).
pub const SERVERS: &[ServerSpec] = &[
    ServerSpec {
        name: "floor",
        launch: launch_floor,
    },
    ServerSpec {
        name: "aloft",
        launch: launch_aloft,
    },
];

/// The spec named `name`, or an error listing the known ones.
pub fn find(name: &str) -> anyhow::Result<&'static ServerSpec> {
    SERVERS
        .iter()
        .find(|spec| spec.name == name)
        .with_context(|| {
            let known: Vec<&str> = SERVERS.iter().map(|spec| spec.name).collect();
            format!("unknown server {name:?}; known: {}", known.join(", "))
        })
}

/// A binary built next to this one (`target/release/NAME` beside `aloft-loadtest`).
fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let own = std::env::current_exe().context("locating aloft-loadtest")?;
    let path = own.with_file_name(name);
    if !path.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release --workspace --bins`",
            path.display()
        );
    }
    Ok(path)
}

fn launch_floor(load: &Load) -> anyhow::Result<Launch> {
    let mut command = Command::new(std::env::current_exe().context("locating aloft-loadtest")?);
    command
        .arg("floor-server")
        .args(["--listen", &load.listen.to_string()])
        .args(["--hz", &load.hz.to_string()])
        .args(["--payload-bytes", &load.payload_bytes.to_string()])
        .args(["--duration", &format!("{}s", load.lifetime_seconds)]);
    Ok(Launch {
        command,
        path_and_query: "/".to_owned(),
        auth: Auth::None,
    })
}

fn launch_aloft(load: &Load) -> anyhow::Result<Launch> {
    if !(1..=ALOFT_HZ_MAX).contains(&load.hz) {
        bail!("aloft ticks at 1 to {ALOFT_HZ_MAX} Hz, not {}", load.hz);
    }
    let tick_interval_ms = (1_000 / load.hz).to_string();
    let mut command = Command::new(sibling_binary("aloft")?);
    command
        .arg("serve")
        .env("ALOFT_LISTEN", load.listen.to_string())
        .env("ALOFT_DATA_DIR", load.work_dir.join("data"))
        .env("ALOFT_ENGINE__TICK_INTERVAL_MS", &tick_interval_ms)
        .env("ALOFT_ENGINE__BETTING_DURATION_MS", &tick_interval_ms)
        .env("ALOFT_ENGINE__CRASHED_DURATION_MS", &tick_interval_ms)
        .env(
            "ALOFT_ENGINE__GROWTH_RATE_PER_MS_MILLIONTHS",
            ALOFT_GROWTH_RATE_PER_MS_MILLIONTHS.to_string(),
        )
        .env(
            "ALOFT_GATEWAY__CONNECTIONS_PER_SHARD_MAX",
            load.conns.max(1).to_string(),
        )
        .env("RUST_LOG", "warn");
    Ok(Launch {
        command,
        path_and_query: "/ws?room=main".to_owned(),
        auth: Auth::AloftGuest,
    })
}

/// A started server; killed when dropped.
pub struct ServerProcess {
    child: Child,
    log_path: PathBuf,
}

impl ServerProcess {
    /// Starts `launch` with its output in `work_dir/server.log` and waits until it
    /// accepts TCP connections on `listen`.
    pub async fn start(
        mut launch: Launch,
        listen: SocketAddr,
        work_dir: &Path,
    ) -> anyhow::Result<ServerProcess> {
        let log_path = work_dir.join("server.log");
        let log = File::create(&log_path).context("creating the server log")?;
        let child = launch
            .command
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("sharing the server log")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {:?}", launch.command.get_program()))?;
        let mut server = ServerProcess { child, log_path };
        server.wait_listening(listen).await?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_listening(&mut self, listen: SocketAddr) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_millis(START_TIMEOUT_MS);
        loop {
            if let Some(status) = self.child.try_wait().context("polling the server")? {
                bail!("the server exited ({status}): {}", self.log_tail());
            }
            if tokio::net::TcpStream::connect(listen).await.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the server did not listen on {listen} within {START_TIMEOUT_MS} ms: {}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(READY_POLL_MS)).await;
        }
    }

    /// The end of the server's log, for error messages.
    fn log_tail(&self) -> String {
        let log = std::fs::read(&self.log_path).unwrap_or_default();
        let start = log.len().saturating_sub(LOG_TAIL_BYTES);
        String::from_utf8_lossy(&log[start..]).trim().to_owned()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // The server may already be gone; either way it is reaped here.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The upgrade path for `launch`, with the guest token appended when it needs one.
pub async fn authenticated_path(
    launch_path: &str,
    auth: Auth,
    server: SocketAddr,
) -> anyhow::Result<String> {
    match auth {
        Auth::None => Ok(launch_path.to_owned()),
        Auth::AloftGuest => {
            let guest = Api::new(server)
                .guest()
                .await
                .context("getting a guest token")?;
            Ok(format!("{launch_path}&token={}", guest.token))
        }
    }
}

/// A free loopback port for a server to listen on (bound, then released).
pub fn free_listen_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    listener.local_addr().context("reading the free port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_found_by_name_and_unknown_ones_listed() {
        assert_eq!(find("floor").unwrap().name, "floor");
        assert_eq!(SERVERS[0].name, "floor", "the floor runs first");
        let message = find("nodews").err().unwrap().to_string();
        assert!(message.contains("known: floor, aloft"), "{message}");
    }

    #[test]
    fn aloft_refuses_tick_rates_it_cannot_run() {
        let load = Load {
            listen: "127.0.0.1:1".parse().unwrap(),
            conns: 1,
            hz: 500,
            payload_bytes: 64,
            lifetime_seconds: 1,
            work_dir: std::env::temp_dir(),
        };
        assert!(launch_aloft(&load).is_err());
    }
}

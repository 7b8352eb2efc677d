//! The server a `bets --spawn-server` run starts: `aloft serve` (next to this binary)
//! on a free loopback port with short phases, its data and log in the run's data
//! directory, stopped with SIGINT so it refunds open bets and flushes its ledger.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use tokio::time::Instant;

/// Pause after a crash on a spawned server, in milliseconds.
const SPAWN_CRASHED_MS: u64 = 300;
/// Multiplier growth of a spawned server, in millionths per ms (2.00x at about 0.7 s),
/// so rounds are short and most of the run is betting.
const SPAWN_GROWTH_PER_MS_MILLIONTHS: u64 = 1_000;
/// Time a spawned server gets to listen, in milliseconds.
const SPAWN_START_TIMEOUT_MS: u64 = 15_000;
/// Poll interval while waiting for a spawned server to listen, in milliseconds.
const SPAWN_POLL_MS: u64 = 50;
/// Time a spawned server gets to stop after SIGINT (refunds, ledger flush), in
/// milliseconds.
const SPAWN_STOP_TIMEOUT_MS: u64 = 20_000;

/// A server this run started; killed if dropped before [`SpawnedServer::stop`].
pub struct SpawnedServer {
    child: tokio::process::Child,
    pub listen: SocketAddr,
}

impl SpawnedServer {
    /// Starts `aloft serve` on a free port with its data and log in `data_dir`.
    pub async fn start(data_dir: &Path, betting_ms: u64) -> anyhow::Result<SpawnedServer> {
        let binary = std::env::current_exe()
            .context("locating aloft-loadtest")?
            .with_file_name("aloft");
        ensure!(
            binary.exists(),
            "{} not found: build it first",
            binary.display()
        );
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let log =
            std::fs::File::create(data_dir.join("server.log")).context("creating server.log")?;
        let listen = crate::fanout::servers::free_listen_addr()?;
        let child = tokio::process::Command::new(&binary)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .env("ALOFT_LISTEN", listen.to_string())
            .env("ALOFT_METRICS_LISTEN", "127.0.0.1:0")
            // Every bot connects from loopback: exempt it from the per-address limits.
            .env("ALOFT_LIMITS__EXEMPT_NETWORKS", "127.0.0.0/8")
            .env("ALOFT_ENGINE__BETTING_DURATION_MS", betting_ms.to_string())
            .env(
                "ALOFT_ENGINE__CRASHED_DURATION_MS",
                SPAWN_CRASHED_MS.to_string(),
            )
            .env(
                "ALOFT_ENGINE__GROWTH_RATE_PER_MS_MILLIONTHS",
                SPAWN_GROWTH_PER_MS_MILLIONTHS.to_string(),
            )
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("sharing server.log")?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = SpawnedServer { child, listen };
        let deadline = Instant::now() + Duration::from_millis(SPAWN_START_TIMEOUT_MS);
        while tokio::net::TcpStream::connect(listen).await.is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "the server exited ({status}); see {}/server.log",
                    data_dir.display()
                );
            }
            ensure!(
                Instant::now() < deadline,
                "the server did not listen on {listen} in time"
            );
            tokio::time::sleep(Duration::from_millis(SPAWN_POLL_MS)).await;
        }
        Ok(server)
    }

    /// SIGINT, then waits for a graceful exit (refunds and ledger flush) within bounds.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().context("the server already exited")?;
        let pid = Pid::from_raw(i32::try_from(pid).context("a pid fits i32")?);
        signal::kill(pid, Signal::SIGINT).with_context(|| format!("SIGINT to {pid}"))?;
        let stop = Duration::from_millis(SPAWN_STOP_TIMEOUT_MS);
        match tokio::time::timeout(stop, self.child.wait()).await {
            Ok(status) => {
                let status = status.context("waiting for the server")?;
                ensure!(
                    status.success(),
                    "the server exited with {status} after SIGINT"
                );
                Ok(())
            }
            Err(_) => bail!("the server did not stop within {SPAWN_STOP_TIMEOUT_MS} ms of SIGINT"),
        }
    }
}

//! The servers a fan-out benchmark can put under load, and their processes. Each is one
//! [`ServerSpec`] entry in [`SERVERS`]: a function that builds the command starting it
//! for a given load (or says why it cannot be started: not built, not installed), the
//! path its WebSocket answers on, and whether it needs a guest token first. Adding a
//! peer (`loadtest/peers/<name>/`) is adding one entry. The benchmark starts the
//! process itself, so it knows the pid whose CPU and memory it reads, and kills it at
//! the end (also on every error path, by [`ServerProcess`]'s `Drop`).
//!
//! The peers' launches install or build what is missing first (`npm ci` into the
//! peer's `node_modules/`, a venv with `pip install` in its `.venv/`, `go build` into
//! `target/peers/`), each step bounded in time; a step that fails makes the peer
//! unavailable with the reason, so `compare` reports it instead of dropping it.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::time::Instant;

use crate::api::Api;
use crate::fanout::receiver::Framing;

/// Time a server has to start listening, in milliseconds.
const START_TIMEOUT_MS: u64 = 20_000;
/// Interval between readiness probes, in milliseconds.
const READY_POLL_MS: u64 = 50;
/// Bytes of a server's log quoted when it fails to start.
const LOG_TAIL_BYTES: usize = 2_000;
/// Fastest tick rate aloft accepts (`engine.tick_interval_ms` ≥ 10), in ticks per second.
const ALOFT_HZ_MAX: u32 = 100;
/// Longest install or build step of a peer (`npm ci`, `pip install`, `go build`), in
/// seconds.
const INSTALL_TIMEOUT_SECONDS: u64 = 300;
/// Interval at which an install step is polled, in milliseconds.
const INSTALL_POLL_MS: u64 = 100;
/// Where Debian's `golang-github-gorilla-websocket-dev` puts its source (a GOPATH).
const DEBIAN_GOPATH: &str = "/usr/share/gocode";
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
    /// What the server sends inside WebSocket frames (Socket.IO wraps its events).
    pub framing: Framing,
}

/// A server the benchmark knows.
pub struct ServerSpec {
    pub name: &'static str,
    /// Whether it has room chat (`--chat-messages-per-second`): aloft only.
    pub has_chat: bool,
    /// The launch for a load, or why this server cannot run here.
    pub launch: fn(&Load) -> anyhow::Result<Launch>,
}

/// Every server, the floor first (the others are reported as ratios to it).
pub const SERVERS: &[ServerSpec] = &[
    ServerSpec {
        name: "floor",
        has_chat: false,
        launch: launch_floor,
    },
    ServerSpec {
        name: "aloft",
        has_chat: true,
        launch: launch_aloft,
    },
    ServerSpec {
        name: "uws",
        has_chat: false,
        launch: launch_uws,
    },
    ServerSpec {
        name: "node-ws",
        has_chat: false,
        launch: launch_node_ws,
    },
    ServerSpec {
        name: "socketio",
        has_chat: false,
        launch: launch_socketio,
    },
    ServerSpec {
        name: "python-websockets",
        has_chat: false,
        launch: launch_python_websockets,
    },
    ServerSpec {
        name: "go-gorilla",
        has_chat: false,
        launch: launch_go_gorilla,
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
        framing: Framing::Plain,
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
        .env("ALOFT_METRICS_LISTEN", "127.0.0.1:0")
        // Every connection comes from loopback: exempt it from the per-address limits.
        .env("ALOFT_LIMITS__EXEMPT_NETWORKS", "127.0.0.0/8")
        // Every socket shares one guest token (`Auth::AloftGuest`).
        .env(
            "ALOFT_LIMITS__CONNECTIONS_PER_PLAYER_MAX",
            load.conns.to_string(),
        )
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
        framing: Framing::Plain,
    })
}

/// A peer's source directory, `loadtest/peers/<name>/`.
fn peer_dir(name: &str) -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("peers")
        .join(name);
    if !dir.is_dir() {
        bail!("{} not found", dir.display());
    }
    Ok(dir)
}

/// Where peers' build outputs and install logs go: `target/peers/`, beside the
/// directory of this binary (`target/release/`).
fn peers_build_dir() -> anyhow::Result<PathBuf> {
    let own = std::env::current_exe().context("locating aloft-loadtest")?;
    let target = own
        .parent()
        .and_then(Path::parent)
        .context("aloft-loadtest has no target directory")?;
    let dir = target.join("peers");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Runs one install or build step of peer `peer`, bounded by
/// [`INSTALL_TIMEOUT_SECONDS`], with its output in `target/peers/<peer>-<step>.log`; a
/// failure carries the end of that log.
fn install_step(peer: &str, step: &str, command: &mut Command) -> anyhow::Result<()> {
    let log_path = peers_build_dir()?.join(format!("{peer}-{step}.log"));
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    eprintln!("{peer}: {step} (log: {})", log_path.display());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("sharing the install log")?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("{step}: cannot run {:?}", command.get_program()))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(INSTALL_TIMEOUT_SECONDS);
    let status = loop {
        if let Some(status) = child.try_wait().context("polling an install step")? {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{step} took more than {INSTALL_TIMEOUT_SECONDS} s");
        }
        std::thread::sleep(Duration::from_millis(INSTALL_POLL_MS));
    };
    if !status.success() {
        let output = std::fs::read(&log_path).unwrap_or_default();
        let start = output.len().saturating_sub(LOG_TAIL_BYTES / 4);
        bail!(
            "{step} failed ({status}): {}",
            String::from_utf8_lossy(&output[start..]).trim()
        );
    }
    Ok(())
}

/// Fails with `hint` unless `program version_arg` runs and succeeds.
fn require_program(program: &str, version_arg: &str, hint: &str) -> anyhow::Result<()> {
    let output = Command::new(program)
        .arg(version_arg)
        .stdin(Stdio::null())
        .output();
    if !output.is_ok_and(|output| output.status.success()) {
        bail!("{program} not found ({hint})");
    }
    Ok(())
}

/// A Node peer (`server.js` beside a `package-lock.json`) with its dependencies
/// installed by `npm ci` when missing; returns `node server.js` with the load's
/// arguments.
fn node_peer(name: &str, load: &Load) -> anyhow::Result<Command> {
    let dir = peer_dir(name)?;
    require_program("node", "--version", "Node 20: apt-get install nodejs npm")?;
    // npm ci writes node_modules/.package-lock.json last, once everything is in place.
    if !dir.join("node_modules/.package-lock.json").is_file() {
        install_step(
            name,
            "npm-ci",
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--omit=dev"])
                .current_dir(&dir),
        )?;
    }
    let mut command = Command::new("node");
    command
        .arg(dir.join("server.js"))
        .args(["--port", &load.listen.port().to_string()])
        .args(["--hz", &load.hz.to_string()])
        .args(["--payload-bytes", &load.payload_bytes.to_string()])
        .args(["--duration", &load.lifetime_seconds.to_string()])
        .current_dir(&dir);
    Ok(command)
}

/// A launch on any path with plain tick frames.
fn plain_launch(command: Command) -> Launch {
    Launch {
        command,
        path_and_query: "/".to_owned(),
        auth: Auth::None,
        framing: Framing::Plain,
    }
}

fn launch_node_ws(load: &Load) -> anyhow::Result<Launch> {
    Ok(plain_launch(node_peer("node-ws", load)?))
}

fn launch_uws(load: &Load) -> anyhow::Result<Launch> {
    Ok(plain_launch(node_peer("uws", load)?))
}

fn launch_socketio(load: &Load) -> anyhow::Result<Launch> {
    // The peer starts (and stops) its own redis-server on this port.
    let redis_port = free_listen_addr()?.port();
    require_program(
        "redis-server",
        "--version",
        "Debian: apt-get install redis-server",
    )?;
    let mut command = node_peer("socketio", load)?;
    command.args(["--redis-port", &redis_port.to_string()]);
    Ok(Launch {
        command,
        path_and_query: "/socket.io/?EIO=4&transport=websocket".to_owned(),
        auth: Auth::None,
        framing: Framing::SocketIo,
    })
}

fn launch_python_websockets(load: &Load) -> anyhow::Result<Launch> {
    let name = "python-websockets";
    let dir = peer_dir(name)?;
    let venv = dir.join(".venv");
    let python = venv.join("bin/python");
    // Written once pip has installed everything.
    let stamp = venv.join("aloft-installed");
    if !stamp.is_file() {
        if !python.is_file() {
            require_program(
                "python3",
                "--version",
                "Debian: apt-get install python3-venv",
            )?;
            install_step(
                name,
                "venv",
                Command::new("python3").args(["-m", "venv"]).arg(&venv),
            )?;
        }
        install_step(
            name,
            "pip-install",
            Command::new(&python)
                .args(["-m", "pip", "install", "--disable-pip-version-check", "-r"])
                .arg(dir.join("requirements.txt")),
        )?;
        std::fs::write(&stamp, "").with_context(|| format!("writing {}", stamp.display()))?;
    }
    let mut command = Command::new(&python);
    command
        .arg(dir.join("server.py"))
        .args(["--port", &load.listen.port().to_string()])
        .args(["--hz", &load.hz.to_string()])
        .args(["--payload-bytes", &load.payload_bytes.to_string()])
        .args(["--duration", &load.lifetime_seconds.to_string()]);
    Ok(plain_launch(command))
}

fn launch_go_gorilla(load: &Load) -> anyhow::Result<Launch> {
    let name = "go-gorilla";
    let dir = peer_dir(name)?;
    let source = dir.join("main.go");
    let binary = peers_build_dir()?.join(name);
    let modified = |path: &Path| {
        std::fs::metadata(path)
            .and_then(|meta| meta.modified())
            .ok()
    };
    let stale = match (modified(&binary), modified(&source)) {
        (Some(built), Some(written)) => built < written,
        _ => true,
    };
    if stale {
        let gorilla = Path::new(DEBIAN_GOPATH).join("src/github.com/gorilla/websocket");
        if !gorilla.is_dir() {
            bail!(
                "{} not found (Debian: apt-get install golang-go \
                 golang-github-gorilla-websocket-dev)",
                gorilla.display()
            );
        }
        require_program(
            "go",
            "version",
            "Debian: apt-get install golang-go golang-github-gorilla-websocket-dev",
        )?;
        // Offline: GOPATH mode against Debian's packaged source, no module download.
        install_step(
            name,
            "go-build",
            Command::new("go")
                .args(["build", "-o"])
                .arg(&binary)
                .arg(".")
                .current_dir(&dir)
                .env("GOPATH", DEBIAN_GOPATH)
                .env("GO111MODULE", "off")
                .env("GOFLAGS", "")
                .env("GOCACHE", peers_build_dir()?.join("go-cache")),
        )?;
    }
    let mut command = Command::new(&binary);
    command
        .args(["--port", &load.listen.port().to_string()])
        .args(["--hz", &load.hz.to_string()])
        .args(["--payload-bytes", &load.payload_bytes.to_string()])
        .args(["--duration", &format!("{}s", load.lifetime_seconds)]);
    Ok(plain_launch(command))
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

//! The cluster a chaos run owns, and the faults' primitives on it: its own
//! `redis-server` (no persistence) and PostgreSQL instance (`initdb` into the work
//! directory, started as its own postmaster so it can be stopped without touching the
//! machine's server), `aloft migrate`, two engines and three gateways of the release
//! binary, all on free loopback ports. Processes are children of this one (killed on
//! drop) and each is also listed in `<work dir>/pids` for `scripts/chaos`'s trap.
//!
//! Every wait has a named bound; a process that outlives one is killed and the wait
//! fails with its name. The probes the waits poll live in `probes`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::probes::{
    POLL_MS, connect, free_port, gateway_ready, postgres_answers, redis_cli, redis_ping, wait_for,
};

/// Engine processes: a leader and a standby.
pub const ENGINES: usize = 2;
/// Gateway processes.
pub const GATEWAYS: usize = 3;
/// The room the bots play in: the configuration's default.
pub const ROOM: &str = "main";
/// Where Debian's PostgreSQL 15 keeps `initdb` and `postgres`.
const POSTGRES_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
/// The system user PostgreSQL runs as when this process is root (`initdb` refuses root).
const POSTGRES_USER: &str = "postgres";
/// The ledger database created in the instance.
const DATABASE: &str = "aloft";
/// Longest wait for a process to start serving (Redis, PostgreSQL, a gateway's
/// `/readyz`, a lease after the engines start), in milliseconds.
pub const START_TIMEOUT_MS: u64 = 60_000;
/// Longest wait for `aloft migrate` or `initdb` to exit, in milliseconds.
const SETUP_TIMEOUT_MS: u64 = 120_000;
/// Longest wait for a process to exit after a signal before it is killed, in
/// milliseconds.
pub const STOP_TIMEOUT_MS: u64 = 20_000;
/// What an engine prints once it is connected and stands by for leases.
const ENGINE_STANDING_BY: &str = "is standing by";

/// Round timing and the rest of what every role process shares.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The working directory: logs, data directories, the PostgreSQL instance.
    pub work_dir: PathBuf,
    /// The `aloft` binary under test.
    pub binary: PathBuf,
    /// The roles' configuration file (config/cluster.toml).
    pub role_config: PathBuf,
    pub betting_duration_ms: u64,
    pub crashed_duration_ms: u64,
    pub growth_rate_per_ms_millionths: u64,
}

/// A running child process, killed when dropped.
struct Process {
    name: String,
    child: Child,
}

impl Process {
    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// What the engines and gateways are: a role, its flags, its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Engine(usize),
    Gateway(usize),
}

impl Role {
    pub fn name(self) -> String {
        match self {
            Role::Engine(index) => format!("engine-{}", index + 1),
            Role::Gateway(index) => format!("gateway-{}", index + 1),
        }
    }
}

/// The cluster: its processes, ports and the database URL.
pub struct Cluster {
    setup: Setup,
    /// `ALOFT_*` settings shared by every role.
    env: Vec<(String, String)>,
    redis_port: u16,
    postgres_port: u16,
    /// `postgres://postgres@127.0.0.1:<port>/aloft`.
    pub database_url: String,
    /// Where each gateway listens (fixed: a restarted gateway comes back there).
    pub gateway_addrs: Vec<SocketAddr>,
    /// uid and gid PostgreSQL runs as (`None`: this process's own).
    postgres_owner: Option<(u32, u32)>,
    redis: Option<Process>,
    postgres: Option<Process>,
    engines: Vec<Option<Process>>,
    gateways: Vec<Option<Process>>,
}

impl Cluster {
    /// Starts everything and returns once every gateway is ready and an engine leads.
    pub async fn start(setup: Setup) -> anyhow::Result<Cluster> {
        std::fs::create_dir_all(setup.work_dir.join("logs"))?;
        // PostgreSQL may run as another user: it must reach its directory.
        std::fs::set_permissions(&setup.work_dir, std::fs::Permissions::from_mode(0o755))?;
        let gateway_addrs = (0..GATEWAYS)
            .map(|_| free_port().map(|port| SocketAddr::from((Ipv4Addr::LOCALHOST, port))))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let postgres_port = free_port()?;
        let mut cluster = Cluster {
            env: role_env(&setup),
            redis_port: free_port()?,
            postgres_port,
            database_url: format!("postgres://postgres@127.0.0.1:{postgres_port}/{DATABASE}"),
            gateway_addrs,
            postgres_owner: postgres_owner()?,
            setup,
            redis: None,
            postgres: None,
            engines: (0..ENGINES).map(|_| None).collect(),
            gateways: (0..GATEWAYS).map(|_| None).collect(),
        };
        cluster.start_redis().await?;
        cluster.init_postgres().await?;
        cluster.start_postgres().await?;
        cluster.create_database().await?;
        cluster.migrate().await?;
        for index in 0..ENGINES {
            cluster.start_role(Role::Engine(index)).await?;
        }
        for index in 0..GATEWAYS {
            cluster.start_role(Role::Gateway(index)).await?;
        }
        cluster.wait_for_leader(START_TIMEOUT_MS).await?;
        Ok(cluster)
    }

    /// Spawns `command` as process `name`: output appended to `logs/<name>.log`, listed
    /// in the pids file.
    fn spawn(&self, name: &str, mut command: Command) -> anyhow::Result<Process> {
        let log_path = self.setup.work_dir.join("logs").join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let process = Process {
            name: name.to_owned(),
            child,
        };
        let mut pids = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.setup.work_dir.join("pids"))?;
        writeln!(pids, "{} {}", process.name, process.pid())?;
        Ok(process)
    }

    /// A command for a PostgreSQL program, run as [`POSTGRES_USER`] when we are root.
    fn postgres_command(&self, program: &str) -> Command {
        let mut command = Command::new(Path::new(POSTGRES_BIN_DIR).join(program));
        if let Some((uid, gid)) = self.postgres_owner {
            command.uid(uid).gid(gid);
        }
        command
    }

    pub async fn start_redis(&mut self) -> anyhow::Result<()> {
        let dir = self.setup.work_dir.join("redis");
        std::fs::create_dir_all(&dir)?;
        let mut command = Command::new("redis-server");
        command
            .args([
                "--port",
                &self.redis_port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir);
        self.redis = Some(self.spawn("redis", command)?);
        let port = self.redis_port;
        wait_for("Redis to answer PING", START_TIMEOUT_MS, || {
            redis_ping(port)
        })
        .await
    }

    /// Kills Redis at once (SIGKILL) and waits until it is gone.
    pub async fn kill_redis(&mut self) -> anyhow::Result<()> {
        let redis = self.redis.as_mut().context("Redis is not running")?;
        redis.child.kill().await.context("killing redis-server")?;
        self.redis = None;
        Ok(())
    }

    async fn init_postgres(&self) -> anyhow::Result<()> {
        let data = self.postgres_dir();
        std::fs::create_dir_all(&data)?;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
        if let Some((uid, gid)) = self.postgres_owner {
            std::os::unix::fs::chown(&data, Some(uid), Some(gid))?;
        }
        let mut command = self.postgres_command("initdb");
        command.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
        ]);
        self.run_to_end("initdb", command).await
    }

    /// Runs a setup step `name` to its end, within [`SETUP_TIMEOUT_MS`]; fails unless it
    /// exited successfully.
    async fn run_to_end(&self, name: &str, command: Command) -> anyhow::Result<()> {
        let mut process = self.spawn(name, command)?;
        let status = tokio::time::timeout(
            Duration::from_millis(SETUP_TIMEOUT_MS),
            process.child.wait(),
        )
        .await
        .with_context(|| format!("{name} did not finish in {SETUP_TIMEOUT_MS} ms"))??;
        ensure!(
            status.success(),
            "{name} failed ({status}): see logs/{name}.log"
        );
        Ok(())
    }

    fn postgres_dir(&self) -> PathBuf {
        self.setup.work_dir.join("postgres")
    }

    /// Starts the postmaster in the foreground (a child of ours) and waits until it
    /// accepts connections. `fsync` is off: the faults stop PostgreSQL cleanly, none
    /// crashes its host.
    pub async fn start_postgres(&mut self) -> anyhow::Result<()> {
        let data = self.postgres_dir();
        let mut command = self.postgres_command("postgres");
        command
            .arg("-D")
            .arg(&data)
            .args(["-p", &self.postgres_port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "full_page_writes=off"])
            .arg("-k")
            .arg(&data);
        self.postgres = Some(self.spawn("postgres", command)?);
        let url = self.admin_url();
        wait_for("PostgreSQL to accept connections", START_TIMEOUT_MS, || {
            postgres_answers(&url)
        })
        .await
    }

    /// Stops PostgreSQL the way `pg_ctl stop -m fast` does (SIGINT to the postmaster:
    /// sessions are cut, the shutdown checkpoint written) and waits until it exited.
    pub async fn stop_postgres(&mut self) -> anyhow::Result<()> {
        let mut postgres = self.postgres.take().context("PostgreSQL is not running")?;
        stop(&mut postgres, "INT").await
    }

    fn admin_url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.postgres_port
        )
    }

    async fn create_database(&self) -> anyhow::Result<()> {
        let client = connect(&self.admin_url()).await?;
        client
            .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
            .await
            .context("creating the ledger database")?;
        Ok(())
    }

    /// A command of the binary under test, with the role settings and its own data dir.
    fn aloft_command(&self, name: &str, args: &[&str]) -> anyhow::Result<Command> {
        let data_dir = self.setup.work_dir.join("data").join(name);
        std::fs::create_dir_all(&data_dir)?;
        let mut command = Command::new(&self.setup.binary);
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("ALOFT_")) {
            command.env_remove(key);
        }
        command
            .args(args)
            .arg("--config")
            .arg(&self.setup.role_config)
            .args(["--database-url", &self.database_url])
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .env("ALOFT_DATA_DIR", &data_dir);
        Ok(command)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let command = self.aloft_command("migrate", &["migrate"])?;
        self.run_to_end("migrate", command).await
    }

    /// Starts an engine or a gateway and waits until it serves: a gateway until
    /// `/readyz` answers 200, an engine until it prints that it stands by.
    pub async fn start_role(&mut self, role: Role) -> anyhow::Result<()> {
        let name = role.name();
        let log_path = self.setup.work_dir.join("logs").join(format!("{name}.log"));
        let standing_by = || {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            log.matches(ENGINE_STANDING_BY).count()
        };
        let standing_by_before = standing_by();
        let redis_url = format!("redis://127.0.0.1:{}/", self.redis_port);
        let mut command = match role {
            Role::Engine(_) => self.aloft_command(&name, &["engine", "--id", &name])?,
            Role::Gateway(index) => {
                let listen = self.gateway_addrs[index].to_string();
                self.aloft_command(&name, &["gateway", "--listen", &listen])?
            }
        };
        command.args(["--redis-url", &redis_url]);
        let process = self.spawn(&name, command)?;
        match role {
            Role::Engine(index) => {
                self.engines[index] = Some(process);
                let what = format!("{name} to stand by");
                wait_for(&what, START_TIMEOUT_MS, || async {
                    standing_by() > standing_by_before
                })
                .await?;
            }
            Role::Gateway(index) => {
                self.gateways[index] = Some(process);
                let addr = self.gateway_addrs[index];
                let what = format!("{name} to answer /readyz 200");
                wait_for(&what, START_TIMEOUT_MS, || gateway_ready(addr)).await?;
            }
        }
        Ok(())
    }

    fn slot(&mut self, role: Role) -> &mut Option<Process> {
        match role {
            Role::Engine(index) => &mut self.engines[index],
            Role::Gateway(index) => &mut self.gateways[index],
        }
    }

    /// Kills a role at once (SIGKILL): no drain, no lease release.
    pub async fn kill_role(&mut self, role: Role) -> anyhow::Result<()> {
        let mut process = self.slot(role).take().context("not running")?;
        process.child.kill().await.context("SIGKILL")?;
        Ok(())
    }

    /// Sends SIGTERM to a role and waits until it exited (killed past
    /// [`STOP_TIMEOUT_MS`], which fails).
    pub async fn terminate_role(&mut self, role: Role) -> anyhow::Result<()> {
        let mut process = self.slot(role).take().context("not running")?;
        stop(&mut process, "TERM").await
    }

    /// The engine leading [`ROOM`] and its fencing token, from the lease in Redis.
    pub async fn leader(&self) -> anyhow::Result<Option<(String, u64)>> {
        let key = format!("aloft:lease:{{{ROOM}}}");
        let value = redis_cli(self.redis_port, &["GET", &key]).await?;
        if value.is_empty() {
            return Ok(None);
        }
        let (engine, token) = value
            .split_once(' ')
            .with_context(|| format!("lease {key} holds {value:?}"))?;
        Ok(Some((engine.to_owned(), token.parse()?)))
    }

    /// Waits until an engine leads [`ROOM`]; returns it and its token.
    pub async fn wait_for_leader(&self, timeout_ms: u64) -> anyhow::Result<(String, u64)> {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            if let Ok(Some(leader)) = self.leader().await {
                return Ok(leader);
            }
            ensure!(
                Instant::now() < deadline,
                "no engine led {ROOM} within {timeout_ms} ms"
            );
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// What is not healthy now, or `None` when every process runs, Redis and
    /// PostgreSQL answer, every gateway is ready and an engine leads.
    pub async fn unhealthy(&mut self) -> Option<String> {
        let mut problems = String::new();
        let processes = (self.redis.iter_mut().chain(&mut self.postgres))
            .chain(self.engines.iter_mut().flatten())
            .chain(self.gateways.iter_mut().flatten());
        for process in processes {
            if !process.running() {
                let _ = write!(problems, "{} exited; ", process.name);
            }
        }
        let stopped = self
            .engines
            .iter()
            .chain(&self.gateways)
            .filter(|p| p.is_none());
        if stopped.count() > 0 {
            problems.push_str("a role is not running; ");
        }
        for (index, addr) in self.gateway_addrs.iter().enumerate() {
            if !gateway_ready(*addr).await {
                let _ = write!(problems, "gateway-{} not ready; ", index + 1);
            }
        }
        if !matches!(self.leader().await, Ok(Some(_))) {
            let _ = write!(problems, "no leader of {ROOM}; ");
        }
        (!problems.is_empty()).then(|| problems.trim_end_matches("; ").to_owned())
    }

    /// Waits until [`Cluster::unhealthy`] finds nothing; fails with what it last found.
    pub async fn wait_healthy(&mut self, timeout_ms: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        loop {
            let Some(problems) = self.unhealthy().await else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                bail!("not healthy within {timeout_ms} ms: {problems}");
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// Stops everything: gateways, engines (SIGTERM), then Redis and PostgreSQL.
    pub async fn shutdown(mut self) {
        let roles = (0..GATEWAYS)
            .map(Role::Gateway)
            .chain((0..ENGINES).map(Role::Engine));
        for role in roles {
            if self.slot(role).is_some()
                && let Err(error) = self.terminate_role(role).await
            {
                eprintln!("stopping {}: {error:#}", role.name());
            }
        }
        if self.redis.is_some()
            && let Err(error) = self.kill_redis().await
        {
            eprintln!("stopping Redis: {error:#}");
        }
        if self.postgres.is_some()
            && let Err(error) = self.stop_postgres().await
        {
            eprintln!("stopping PostgreSQL: {error:#}");
        }
    }
}

/// Signals `process` with `signal` (`TERM`, `INT`) and waits until it exited; past
/// [`STOP_TIMEOUT_MS`] it is killed and the stop fails.
async fn stop(process: &mut Process, signal: &str) -> anyhow::Result<()> {
    // Pid 0 would signal this process's whole group.
    ensure!(process.pid() != 0, "{} already exited", process.name);
    let pid = Pid::from_raw(i32::try_from(process.pid()).context("a pid fits i32")?);
    let number: Signal = format!("SIG{signal}").parse().context("a signal name")?;
    nix::sys::signal::kill(pid, number).with_context(|| format!("kill -s {signal} {pid}"))?;
    let exited =
        tokio::time::timeout(Duration::from_millis(STOP_TIMEOUT_MS), process.child.wait()).await;
    if exited.is_err() {
        process.child.kill().await?;
        bail!(
            "{} ignored SIG{signal} for {STOP_TIMEOUT_MS} ms: killed",
            process.name
        );
    }
    Ok(())
}

/// What every role shares: fresh secrets, the round timing, one shard per gateway (five
/// processes share the machine).
fn role_env(setup: &Setup) -> Vec<(String, String)> {
    let random_hex = |bytes: usize| -> String {
        (0..bytes)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect()
    };
    [
        ("ALOFT_AUTH__JWT_SECRET", random_hex(32)),
        ("ALOFT_FAIR__SALT", random_hex(16)),
        ("ALOFT_FAIR__CHAIN_SECRET", random_hex(32)),
        (
            "ALOFT_ENGINE__BETTING_DURATION_MS",
            setup.betting_duration_ms.to_string(),
        ),
        (
            "ALOFT_ENGINE__CRASHED_DURATION_MS",
            setup.crashed_duration_ms.to_string(),
        ),
        (
            "ALOFT_ENGINE__GROWTH_RATE_PER_MS_MILLIONTHS",
            setup.growth_rate_per_ms_millionths.to_string(),
        ),
        ("ALOFT_GATEWAY__SHARDS", "1".to_owned()),
        // Every role opens a metrics listener: several on one host each take a free port.
        ("ALOFT_METRICS_LISTEN", "127.0.0.1:0".to_owned()),
        // The suite's bots all connect from loopback, hundreds per gateway.
        ("ALOFT_LIMITS__EXEMPT_NETWORKS", "127.0.0.0/8".to_owned()),
        ("RUST_LOG", "info".to_owned()),
        ("NO_COLOR", "1".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

/// [`POSTGRES_USER`]'s uid and gid when this process is root (read from /etc/passwd).
fn postgres_owner() -> anyhow::Result<Option<(u32, u32)>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let root = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0");
    if !root {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let fields: Vec<&str> = passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&POSTGRES_USER))
        .with_context(|| format!("running as root, PostgreSQL needs the user {POSTGRES_USER}"))?;
    let id = |index: usize| -> anyhow::Result<u32> {
        Ok(fields
            .get(index)
            .context("short /etc/passwd line")?
            .parse()?)
    };
    Ok(Some((id(2)?, id(3)?)))
}

//! A cluster under test: a Redis and a PostgreSQL database of its own, `aloft migrate`,
//! then two `aloft engine` and three `aloft gateway` processes of the binary under test,
//! configured through flags and `ALOFT_*` variables only (each process runs in an empty
//! directory, so no config file is picked up). Dropping the cluster kills every process
//! (SIGKILL), stops the Redis and drops the database; a failing test first prints the
//! tail of every process's log.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

// The standalone server serves these tests; the cluster starter serves the bus's tests.
#[path = "../../../src/ledger/postgres_test_database.rs"]
mod postgres_test_database;
#[allow(dead_code)]
#[path = "../../../src/bus/redis_test_server.rs"]
mod redis_test_server;

use postgres_test_database::ScratchDatabase;
use redis_test_server::RedisTestServer;

/// The room every test plays in: the configuration's default.
pub const ROOM: &str = "main";
/// Engine processes: a leader and a standby.
pub const ENGINES: usize = 2;
/// Gateway processes.
pub const GATEWAYS: usize = 3;
/// House edge of the default configuration, to recompute crash points.
pub const HOUSE_EDGE_BP: u32 = 100;
/// The operator token of every gateway (the console's login).
pub const OPERATOR_TOKEN: &str = "operator-token-of-the-cluster-tests-0123456789";
/// The Redis key of `room`'s lease under the default key prefix: `"<engine id> <fencing
/// token>"` once its holder has its token.
fn lease_key(room: &str) -> String {
    format!("aloft:lease:{{{room}}}")
}
/// What a gateway prints on stdout once it listens, followed by `ADDR/`.
const GATEWAY_RUNNING_PREFIX: &str = "aloft gateway is running: open http://";
/// Longest wait for `aloft migrate` to exit.
const MIGRATE_WAIT_MS: u64 = 60_000;
/// Longest wait for the cluster to serve: every gateway listening and ready, a leader.
const START_WAIT_MS: u64 = 60_000;
/// Pause between polls of a process, an endpoint or a key.
const POLL_MS: u64 = 50;
/// Lines of each log printed when a test fails.
const LOG_TAIL_LINES: usize = 40;

/// Round timing of a cluster, passed to every process as `ALOFT_ENGINE__*`.
#[derive(Debug, Clone, Copy)]
pub struct Rounds {
    /// Rooms besides [`ROOM`], which every cluster plays.
    pub other_rooms: &'static [&'static str],
    pub betting_duration_ms: u64,
    pub tick_interval_ms: u64,
    pub crashed_duration_ms: u64,
    pub growth_rate_per_ms_millionths: u64,
}

/// The holder of a room's lease, as stored in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub engine_id: String,
    pub fencing_token: u64,
}

/// A running role process, killed on drop.
struct Role {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Cluster {
    engines: Vec<Role>,
    gateways: Vec<Role>,
    /// Where each gateway listens, in start order.
    pub gateway_addrs: Vec<SocketAddr>,
    /// The public salt every engine mixes into crash points.
    pub salt: String,
    /// `operator.token` of every gateway: the admin API's Bearer token.
    pub operator_token: String,
    /// `ALOFT_*` settings shared by every process.
    env: Vec<(String, String)>,
    database_url: String,
    redis: RedisTestServer,
    database: ScratchDatabase,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts everything and returns once every gateway is ready and an engine leads
    /// [`ROOM`]. Fails with what is missing when Redis or PostgreSQL is.
    pub async fn start(rounds: Rounds) -> Cluster {
        let redis = RedisTestServer::start();
        let database = ScratchDatabase::create().await;
        let database_url = database_url(&database.admin_url, &database.name);
        let salt = random_hex(16);
        let operator_token = OPERATOR_TOKEN.to_owned();
        let env = vec![
            ("ALOFT_ROOMS", rooms_value(rounds.other_rooms)),
            ("ALOFT_AUTH__JWT_SECRET", random_hex(32)),
            ("ALOFT_FAIR__SALT", salt.clone()),
            ("ALOFT_FAIR__CHAIN_SECRET", random_hex(32)),
            ("ALOFT_OPERATOR__TOKEN", OPERATOR_TOKEN.to_owned()),
            (
                "ALOFT_ENGINE__BETTING_DURATION_MS",
                rounds.betting_duration_ms.to_string(),
            ),
            (
                "ALOFT_ENGINE__TICK_INTERVAL_MS",
                rounds.tick_interval_ms.to_string(),
            ),
            (
                "ALOFT_ENGINE__CRASHED_DURATION_MS",
                rounds.crashed_duration_ms.to_string(),
            ),
            (
                "ALOFT_ENGINE__GROWTH_RATE_PER_MS_MILLIONTHS",
                rounds.growth_rate_per_ms_millionths.to_string(),
            ),
            // Five processes share the machine: one shard per gateway is plenty, and
            // each takes a free metrics port.
            ("ALOFT_GATEWAY__SHARDS", "1".to_owned()),
            ("ALOFT_METRICS_LISTEN", "127.0.0.1:0".to_owned()),
            // The tests' bots all connect from loopback.
            ("ALOFT_LIMITS__EXEMPT_NETWORKS", "127.0.0.0/8".to_owned()),
            ("RUST_LOG", "info".to_owned()),
            ("NO_COLOR", "1".to_owned()),
        ];
        let mut cluster = Cluster {
            engines: Vec::new(),
            gateways: Vec::new(),
            gateway_addrs: Vec::new(),
            salt,
            operator_token,
            env: (env.into_iter())
                .map(|(key, value)| (key.to_owned(), value))
                .collect(),
            database_url,
            redis,
            database,
            dir: tempfile::tempdir().expect("a temporary directory"),
        };
        cluster.migrate().await;
        for number in 1..=ENGINES {
            let engine = cluster.spawn(&format!("engine-{number}"), &["engine"]);
            cluster.engines.push(engine);
        }
        let mut addresses = Vec::new();
        for number in 1..=GATEWAYS {
            let (gateway, address) = cluster.spawn_gateway(number);
            cluster.gateways.push(gateway);
            addresses.push(address);
        }
        for (index, address) in addresses.into_iter().enumerate() {
            let addr = cluster.wait_for_address(index, address).await;
            cluster.gateway_addrs.push(addr);
        }
        for index in 0..GATEWAYS {
            cluster.wait_until_ready(index).await;
        }
        cluster.wait_for_lease().await;
        for index in 0..GATEWAYS {
            cluster.wait_until_following(index).await;
        }
        cluster
    }

    /// The current holder of [`ROOM`]'s lease, if any.
    pub async fn lease_holder(&self) -> Option<Lease> {
        self.lease_holder_of(ROOM).await
    }

    /// The current holder of `room`'s lease with its token, if any.
    pub async fn lease_holder_of(&self, room: &str) -> Option<Lease> {
        let key = lease_key(room);
        let client = redis::Client::open(self.redis.url()).expect("a valid Redis URL");
        let mut connection = client
            .get_multiplexed_async_connection()
            .await
            .expect("the test Redis answers");
        let value: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .expect("GET of the lease key");
        // `"<engine id>"` alone: the winner is still taking its token from the ledger.
        let (engine_id, token) = value.as_deref()?.split_once(' ')?;
        let fencing_token = token.parse().unwrap_or_else(|_| {
            panic!("lease {key} holds {value:?}, not \"<engine id> <fencing token>\"")
        });
        Some(Lease {
            engine_id: engine_id.to_owned(),
            fencing_token,
        })
    }

    /// Which of this cluster's engines `engine_id` (`engine-<pid>`) names.
    pub fn engine_index(&self, engine_id: &str) -> usize {
        let ids: Vec<String> = (self.engines.iter())
            .map(|engine| format!("engine-{}", engine.child.id()))
            .collect();
        ids.iter()
            .position(|id| id == engine_id)
            .unwrap_or_else(|| panic!("{engine_id} is none of this cluster's engines {ids:?}"))
    }

    /// Kills an engine at once (SIGKILL): no lease release, no refund.
    pub fn kill_engine(&mut self, index: usize) {
        let engine = &mut self.engines[index];
        engine.child.kill().expect("kill the engine");
        engine.child.wait().expect("reap the engine");
    }

    /// Freezes an engine (SIGSTOP), as a long GC pause or a stalled VM would: it holds
    /// its sockets and state, and acts again on [`Self::resume_engine`].
    pub fn pause_engine(&self, index: usize) {
        signal(&self.engines[index].child, "STOP");
    }

    /// Lets a paused engine run on (SIGCONT).
    pub fn resume_engine(&self, index: usize) {
        signal(&self.engines[index].child, "CONT");
    }

    /// Kills the cluster's Redis and starts an empty one on the same port (Redis without
    /// persistence, restarted): every lease, stream and history is gone.
    pub fn restart_redis(&mut self) {
        self.redis.restart();
    }

    /// What an engine has logged so far.
    pub fn engine_log(&self, index: usize) -> String {
        std::fs::read_to_string(&self.engines[index].log).expect("the engine's log")
    }

    pub fn engine_running(&mut self, index: usize) -> bool {
        matches!(self.engines[index].child.try_wait(), Ok(None))
    }

    /// A connection to the cluster's database, for checks behind its back.
    pub async fn sql(&self) -> tokio_postgres::Client {
        self.database.client().await
    }

    /// A process of the binary under test in a directory of its own, its stderr in
    /// `<name>.log` (returned, with its path, for the caller's stdout).
    fn command(&self, name: &str, args: &[&str]) -> (Command, File, PathBuf) {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("a directory for the process");
        let log_path = self.dir.path().join(format!("{name}.log"));
        let log = File::create(&log_path).expect("a log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_aloft"));
        // Only what the cluster sets: nothing from the developer's own environment.
        for (key, _) in std::env::vars().filter(|(key, _)| key.starts_with("ALOFT_")) {
            command.env_remove(key);
        }
        command
            .args(args)
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .env("ALOFT_DATA_DIR", &dir)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stderr(log.try_clone().expect("a log handle"));
        (command, log, log_path)
    }

    /// [`Self::command`] for a role: with the cluster's Redis and database.
    fn role_command(&self, name: &str, args: &[&str]) -> (Command, File, PathBuf) {
        let (mut command, log, log_path) = self.command(name, args);
        command
            .args(["--redis-url", &self.redis.url()])
            .args(["--database-url", &self.database_url]);
        (command, log, log_path)
    }

    /// Starts a role with the Redis and database flags, its output in its log.
    fn spawn(&self, name: &str, args: &[&str]) -> Role {
        let (mut command, log, log_path) = self.role_command(name, args);
        command.stdout(log);
        Role {
            name: name.to_owned(),
            child: command.spawn().expect("run the aloft binary"),
            log: log_path,
        }
    }

    /// Starts a gateway on a port of its choice; its address arrives on the receiver once
    /// it prints it.
    fn spawn_gateway(&self, number: usize) -> (Role, mpsc::Receiver<SocketAddr>) {
        let name = format!("gateway-{number}");
        let (mut command, log, log_path) =
            self.role_command(&name, &["gateway", "--listen", "127.0.0.1:0"]);
        command.stdout(Stdio::piped());
        let mut child = command.spawn().expect("run the aloft binary");
        let (sender, receiver) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || copy_stdout_watching_for_address(stdout, log, sender));
        let role = Role {
            name,
            child,
            log: log_path,
        };
        (role, receiver)
    }

    async fn migrate(&self) {
        let (mut command, log, log_path) = self.command("migrate", &["migrate"]);
        let mut child = command
            .args(["--database-url", &self.database_url])
            .stdout(log)
            .spawn()
            .expect("run the aloft binary");
        let deadline = Instant::now() + Duration::from_millis(MIGRATE_WAIT_MS);
        let status = loop {
            if let Some(status) = child.try_wait().expect("poll aloft migrate") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                break child.wait().expect("reap aloft migrate");
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        };
        assert!(
            status.success(),
            "aloft migrate --database-url {} ended with {status}; its output:\n{}",
            self.database_url,
            log_tail(&log_path)
        );
    }

    async fn wait_for_address(
        &mut self,
        index: usize,
        address: mpsc::Receiver<SocketAddr>,
    ) -> SocketAddr {
        let deadline = Instant::now() + Duration::from_millis(START_WAIT_MS);
        loop {
            if let Ok(addr) = address.try_recv() {
                return addr;
            }
            self.assert_running(index);
            assert!(
                Instant::now() < deadline,
                "gateway-{} did not print \"{GATEWAY_RUNNING_PREFIX}ADDR/\" in {START_WAIT_MS} ms",
                index + 1
            );
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    async fn wait_until_ready(&mut self, index: usize) {
        let deadline = Instant::now() + Duration::from_millis(START_WAIT_MS);
        loop {
            self.assert_running(index);
            let (status, _) =
                crate::common::http(self.gateway_addrs[index], "GET", "/readyz", &[]).await;
            if status == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gateway-{} answered /readyz {status} for {START_WAIT_MS} ms",
                index + 1
            );
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    /// Waits until the gateway has seen an event of [`ROOM`]: a gateway whose first
    /// event is not the room's first (it subscribed after the engine started) resends
    /// snapshots to the sockets it had, which tests of the steady state must not meet.
    async fn wait_until_following(&self, index: usize) {
        let addr = self.gateway_addrs[index];
        let (token, ..) = crate::common::guest_at(addr).await;
        let mut probe = crate::common::open_socket(addr, &format!("token={token}")).await;
        let deadline = Instant::now() + Duration::from_millis(START_WAIT_MS);
        loop {
            // A snapshot's seq is 0 until the gateway has seen an event; events carry theirs.
            let frame = crate::common::next_json(&mut probe).await;
            if frame["seq"].as_u64().is_some_and(|seq| seq > 0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gateway-{} saw no event of room {ROOM} in {START_WAIT_MS} ms",
                index + 1
            );
        }
    }

    async fn wait_for_lease(&self) {
        let deadline = Instant::now() + Duration::from_millis(START_WAIT_MS);
        while self.lease_holder().await.is_none() {
            assert!(
                Instant::now() < deadline,
                "no engine took the lease of {ROOM} in {START_WAIT_MS} ms"
            );
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
        }
    }

    fn assert_running(&mut self, gateway_index: usize) {
        let gateway = &mut self.gateways[gateway_index];
        if let Ok(Some(status)) = gateway.child.try_wait() {
            panic!("{} exited with {status}", gateway.name);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for role in self.engines.iter().chain(&self.gateways) {
            eprintln!(
                "---- last lines of {}'s log ----\n{}",
                role.name,
                log_tail(&role.log)
            );
        }
    }
}

/// Copies a gateway's stdout to its log, sending the address it prints when it listens.
fn copy_stdout_watching_for_address(
    stdout: ChildStdout,
    mut log: File,
    address: mpsc::Sender<SocketAddr>,
) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { return };
        let printed = (line.split_once(GATEWAY_RUNNING_PREFIX))
            .and_then(|(_, rest)| rest.split('/').next())
            .and_then(|addr| addr.parse().ok());
        if let Some(addr) = printed {
            let _ = address.send(addr);
        }
        let _ = writeln!(log, "{line}");
    }
}

/// The scratch database's URL for the role processes: the server URL with the database's
/// name as its path.
fn database_url(admin_url: &str, name: &str) -> String {
    let (scheme, rest) = admin_url.split_once("://").unwrap_or_else(|| {
        panic!(
            "the cluster tests need a postgres:// URL in ALOFT_TEST_DATABASE_URL, not {admin_url}"
        )
    });
    let (location, query) = rest
        .split_once('?')
        .map_or((rest, None), |(l, q)| (l, Some(q)));
    let authority = location.split('/').next().unwrap_or(location);
    match query {
        Some(query) => format!("{scheme}://{authority}/{name}?{query}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

/// Sends `kill -<name>` to a role process.
fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {} failed", child.id());
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| format!("({error})"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// `rooms` as an environment value: [`ROOM`] first, then `other_rooms`.
fn rooms_value(other_rooms: &[&str]) -> String {
    let rooms: Vec<String> = std::iter::once(ROOM)
        .chain(other_rooms.iter().copied())
        .map(|room| format!("\"{room}\""))
        .collect();
    format!("[{}]", rooms.join(","))
}

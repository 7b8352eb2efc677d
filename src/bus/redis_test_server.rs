//! A throwaway Redis for tests: one `redis-server`, or the three masters of a Redis
//! Cluster, started from PATH on free loopback ports with persistence off, killed when
//! dropped. Tests need nothing outside the machine, but they do need Redis 7 installed
//! (and `redis-cli` for a cluster): without it they fail, never skip.
//!
//! Only std and `tempfile`: the integration tests compile this file into their own crate
//! (`#[path]`), since a library's `#[cfg(test)]` items are not visible to them.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for a started server to accept connections.
const START_WAIT_MS: u64 = 5_000;
/// Pause between connection attempts while the server starts.
const START_POLL_MS: u64 = 10;
/// Starts tried before giving up (another process may take the free port first).
const START_ATTEMPTS_MAX: usize = 3;
/// Masters of a test cluster: the fewest `redis-cli --cluster create` accepts.
const CLUSTER_MASTERS: usize = 3;
/// Longest wait for every master to report `cluster_state:ok` after the create.
const CLUSTER_STATE_WAIT_MS: u64 = 10_000;
/// Pause between `CLUSTER INFO` polls.
const CLUSTER_STATE_POLL_MS: u64 = 50;

/// A running `redis-server`, or a cluster of them, killed on drop.
pub struct RedisTestServer {
    nodes: Vec<Node>,
    /// Where cluster nodes keep their `cluster-config-file`; removed on drop.
    _cluster_dir: Option<tempfile::TempDir>,
}

/// One `redis-server` process.
struct Node {
    child: Child,
    port: u16,
}

impl RedisTestServer {
    /// Starts a standalone server; panics with what to install when `redis-server` is
    /// missing.
    pub fn start() -> RedisTestServer {
        Self::with_attempts(|| {
            let port = free_port();
            let node = Node::spawn(port, &[])?;
            Some(RedisTestServer {
                nodes: vec![node],
                _cluster_dir: None,
            })
        })
    }

    /// Starts a Redis Cluster of three masters (no replicas) and waits until it serves
    /// every slot. Clients connect to [`Self::url`] and discover the other nodes.
    pub fn start_cluster() -> RedisTestServer {
        Self::with_attempts(|| {
            let dir = tempfile::tempdir().expect("a temporary directory for the cluster");
            let dir_text = dir.path().to_str().expect("a UTF-8 temporary path");
            let mut nodes = Vec::with_capacity(CLUSTER_MASTERS);
            for _ in 0..CLUSTER_MASTERS {
                let port = free_port();
                let config_file = format!("nodes-{port}.conf");
                // An explicit bus port: the default (port + 10000) may be taken or
                // beyond 65535.
                let bus_port = free_port().to_string();
                let cluster_args = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &config_file,
                    "--cluster-port",
                    &bus_port,
                    "--dir",
                    dir_text,
                ];
                // A node that fails drops the ones already started with `nodes`.
                nodes.push(Node::spawn(port, &cluster_args)?);
            }
            let server = RedisTestServer {
                nodes,
                _cluster_dir: Some(dir),
            };
            server.create_cluster();
            Some(server)
        })
    }

    /// The URL clients connect with (for a cluster, its first node).
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// The URL of each node: the server, or every master of the cluster.
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// Kills a standalone server (SIGKILL: nothing is saved, as with persistence off) and
    /// starts an empty one on the same port, as an operator's restart would.
    pub fn restart(&mut self) {
        assert_eq!(self.nodes.len(), 1, "restart is for a standalone server");
        let port = self.nodes[0].port;
        let _ = self.nodes[0].child.kill();
        let _ = self.nodes[0].child.wait();
        let restarted = (0..START_ATTEMPTS_MAX).find_map(|_| Node::spawn(port, &[]));
        self.nodes[0] =
            restarted.unwrap_or_else(|| panic!("redis-server did not start again on port {port}"));
    }

    fn with_attempts(start: impl Fn() -> Option<RedisTestServer>) -> RedisTestServer {
        for _ in 0..START_ATTEMPTS_MAX {
            if let Some(server) = start() {
                return server;
            }
        }
        panic!("redis-server did not start after {START_ATTEMPTS_MAX} attempts");
    }

    /// Assigns the slots over the masters and waits until every node agrees.
    fn create_cluster(&self) {
        let addresses: Vec<String> = (self.nodes.iter())
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = redis_cli(
            Command::new("redis-cli")
                .arg("--cluster")
                .arg("create")
                .args(&addresses)
                .args(["--cluster-replicas", "0", "--cluster-yes"]),
        );
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        let deadline = Instant::now() + Duration::from_millis(CLUSTER_STATE_WAIT_MS);
        for node in &self.nodes {
            while !node.cluster_state_ok() {
                assert!(
                    Instant::now() < deadline,
                    "the test cluster did not reach cluster_state:ok in {CLUSTER_STATE_WAIT_MS} ms"
                );
                std::thread::sleep(Duration::from_millis(CLUSTER_STATE_POLL_MS));
            }
        }
    }
}

impl Node {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts `redis-server` on `port`; None if it exits or does not answer (port taken).
    fn spawn(port: u16, extra_args: &[&str]) -> Option<Node> {
        let child = Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run redis-server ({error}): the Redis tests need Redis 7 on \
                     PATH (Debian/Ubuntu: apt-get install redis-server)"
                )
            });
        let mut node = Node { child, port };
        node.wait_until_ready().then_some(node)
    }

    /// True once the server accepts connections; false if it exited (port taken).
    fn wait_until_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_millis(START_WAIT_MS);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(START_POLL_MS));
        }
        false
    }

    fn cluster_state_ok(&self) -> bool {
        let info = redis_cli(
            Command::new("redis-cli")
                .args(["-p", &self.port.to_string()])
                .args(["CLUSTER", "INFO"]),
        );
        String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `redis-cli`; panics with what to install when it is missing.
fn redis_cli(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|error| {
        panic!(
            "cannot run redis-cli ({error}): the Redis Cluster tests need it on PATH \
             (Debian/Ubuntu: apt-get install redis-tools)"
        )
    })
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

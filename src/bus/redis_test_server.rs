//! A throwaway `redis-server` for the Redis bus tests: started from PATH on a free
//! loopback port with persistence off, killed when dropped. Tests need nothing outside
//! the machine, but they do need Redis 7 installed: without it they fail, never skip.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for a started server to accept connections.
const START_WAIT_MS: u64 = 5_000;
/// Pause between connection attempts while the server starts.
const START_POLL_MS: u64 = 10;
/// Starts tried before giving up (another process may take the free port first).
const START_ATTEMPTS_MAX: usize = 3;

/// A running `redis-server`, killed on drop.
pub struct RedisTestServer {
    child: Child,
    port: u16,
}

impl RedisTestServer {
    /// Starts a server; panics with what to install when `redis-server` is missing.
    pub fn start() -> RedisTestServer {
        for _ in 0..START_ATTEMPTS_MAX {
            if let Some(server) = Self::try_start() {
                return server;
            }
        }
        panic!("redis-server did not start after {START_ATTEMPTS_MAX} attempts");
    }

    /// The URL clients connect with.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn try_start() -> Option<RedisTestServer> {
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--bind", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot run redis-server ({error}): the Redis bus tests need Redis 7 on \
                     PATH (Debian/Ubuntu: apt-get install redis-server)"
                )
            });
        let mut server = RedisTestServer { child, port };
        server.wait_until_ready().then_some(server)
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
}

impl Drop for RedisTestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

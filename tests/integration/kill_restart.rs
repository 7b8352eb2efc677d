//! `kill -9` of a running `aloft serve` in the middle of a round, then a restart on the
//! same data directory: the round in flight is aborted with its totals taken from its
//! transfers (what was paid stays paid and counted), and its open stakes are refunded.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{Socket, guest_at, http, next_json, next_matching, open_socket, send};
use serde_json::{Value, json};

/// Longest wait for a started server to answer `/readyz`.
const READY_WAIT_MS: u64 = 30_000;
/// Longest wait for the restarted server to list the aborted round.
const ABORTED_WAIT_MS: u64 = 10_000;
/// Rounds tried for a cashout before the round crashes (an instant crash refuses it).
const ROUNDS_TRIED_MAX: usize = 10;
const CASHED_STAKE_MINOR: i64 = 1_000;
const OPEN_STAKE_MINOR: i64 = 500;

/// A free loopback address (the port is released for the server to take).
fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A server process, killed with SIGKILL when dropped (a failing test leaves none behind).
struct ServerProcess(Child);

impl ServerProcess {
    /// `kill -9`: no shutdown, the round stays journaled as in flight.
    fn kill_9(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `aloft serve` on a free port with `data_dir`; fast ticks, a betting phase long enough
/// to join the first round from the snapshot, and a slow climb (1.00x to 1.01x in about
/// a second), so a cashout made as the round takes off comes long before its crash.
/// Waiting for a round to crash instead would take minutes at this growth.
fn start_server(data_dir: &Path, log_name: &str) -> (ServerProcess, SocketAddr) {
    let addr = free_addr();
    let log = std::fs::File::create(data_dir.join(log_name)).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_aloft"))
        .arg("serve")
        .current_dir(data_dir)
        .env("ALOFT_LISTEN", addr.to_string())
        .env("ALOFT_DATA_DIR", data_dir)
        .env("ALOFT_METRICS_LISTEN", "127.0.0.1:0")
        .env("ALOFT_LIMITS__EXEMPT_NETWORKS", "127.0.0.0/8")
        .env("ALOFT_GATEWAY__SHARDS", "1")
        .env("ALOFT_ENGINE__BETTING_DURATION_MS", "3000")
        .env("ALOFT_ENGINE__TICK_INTERVAL_MS", "20")
        .env("ALOFT_ENGINE__CRASHED_DURATION_MS", "200")
        .env("ALOFT_ENGINE__GROWTH_RATE_PER_MS_MILLIONTHS", "10")
        .env("ALOFT_FAIR__CHAIN_LENGTH", "10000")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    (ServerProcess(child), addr)
}

async fn wait_ready(addr: SocketAddr, data_dir: &Path, log_name: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(READY_WAIT_MS);
    while tokio::time::Instant::now() < deadline {
        if tokio::net::TcpStream::connect(addr).await.is_ok()
            && http(addr, "GET", "/readyz", &[]).await.0 == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(data_dir.join(log_name)).unwrap_or_default();
    panic!("the server at {addr} was not ready within {READY_WAIT_MS} ms; its log:\n{log}");
}

/// What the player saw of the round the server was killed in.
struct Interrupted {
    round: u64,
    win_minor: i64,
    /// The balance `cashout_ok` reported: after both stakes and the payout.
    balance_minor: i64,
}

/// Stakes on both slots of a round, cashes slot 0 out as soon as it flies and leaves
/// slot 1 open; rounds that crash before the cashout are played again. Starts with the
/// round of `snapshot` if it is betting (the first round of a fresh server, with a long
/// betting phase), so no round's slow climb to its crash is waited for. Returns once a
/// cashout is paid, the round still in flight.
async fn cash_out_in_flight(socket: &mut Socket, snapshot: &Value) -> Interrupted {
    let mut betting_now = (snapshot["phase"] == "betting").then(|| snapshot["round"].as_u64());
    for _ in 0..ROUNDS_TRIED_MAX {
        let round = match betting_now.take().flatten() {
            Some(round) => round,
            None => next_matching(socket, |v| v["t"] == "betting").await["round"]
                .as_u64()
                .unwrap(),
        };
        for (slot, amount) in [(0, CASHED_STAKE_MINOR), (1, OPEN_STAKE_MINOR)] {
            let req = format!("b{round}-{slot}");
            send(
                socket,
                json!({"t":"bet","req":req,"amount":amount,"slot":slot}),
            )
            .await;
            let reply = next_matching(socket, |v| v["req"] == req.as_str()).await;
            assert_eq!(reply["t"], "bet_ok", "{reply}");
        }
        next_matching(socket, |v| v["t"] == "flying" && v["round"] == round).await;
        let req = format!("c{round}");
        send(socket, json!({"t":"cashout","req":req,"slot":0})).await;
        let reply = next_matching(socket, |v| v["req"] == req.as_str()).await;
        if reply["t"] == "cashout_ok" {
            return Interrupted {
                round,
                win_minor: reply["win"].as_i64().unwrap(),
                balance_minor: reply["balance"].as_i64().unwrap(),
            };
        }
        assert_eq!(reply["code"], "too_late", "{reply}");
    }
    panic!("no cashout paid in {ROUNDS_TRIED_MAX} rounds");
}

/// The round `round` as `/api/rounds` lists it, once it does.
async fn listed_round(addr: SocketAddr, round: u64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ABORTED_WAIT_MS);
    loop {
        let (status, body) = http(addr, "GET", "/api/rounds?limit=100", &[]).await;
        assert_eq!(status, 200, "{body}");
        let rounds: Vec<Value> = serde_json::from_str(&body).unwrap();
        if let Some(listed) = rounds.into_iter().find(|listed| listed["round"] == round) {
            return listed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "round {round} not listed within {ABORTED_WAIT_MS} ms"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_a_cashout_aborts_the_round_with_its_payouts_counted_and_refunds() {
    let data_dir = tempfile::tempdir().unwrap();
    let (server, addr) = start_server(data_dir.path(), "first.log");
    wait_ready(addr, data_dir.path(), "first.log").await;
    let (token, _, granted_minor) = guest_at(addr).await;
    let mut socket = open_socket(addr, &format!("token={token}")).await;
    assert_eq!(next_json(&mut socket).await["t"], "hello");
    let snapshot = next_json(&mut socket).await;
    assert_eq!(snapshot["t"], "snapshot", "{snapshot}");
    let interrupted = cash_out_in_flight(&mut socket, &snapshot).await;
    server.kill_9();
    assert!(interrupted.win_minor >= CASHED_STAKE_MINOR);
    assert!(interrupted.balance_minor < granted_minor);

    let (server, addr) = start_server(data_dir.path(), "second.log");
    wait_ready(addr, data_dir.path(), "second.log").await;
    let listed = listed_round(addr, interrupted.round).await;
    // The open stake came back; the payout stayed.
    let mut socket = open_socket(addr, &format!("token={token}")).await;
    let hello = next_json(&mut socket).await;
    assert_eq!(hello["t"], "hello", "{hello}");
    assert_eq!(
        hello["balance"],
        interrupted.balance_minor + OPEN_STAKE_MINOR,
        "{hello}"
    );
    server.kill_9();
    assert_eq!(listed["status"], "aborted", "{listed}");
    // The stake that played; the refunded one is out of the round.
    assert_eq!(listed["bets_total"], CASHED_STAKE_MINOR, "{listed}");
    assert_eq!(listed["payouts_total"], interrupted.win_minor, "{listed}");
    assert_eq!(listed["m"], 0, "{listed}");
}

//! The `bets` subcommand: end-to-end bet throughput and the ledger check behind it.
//!
//! N guest players connect; in every betting phase each one bets in slot 0 and, as soon
//! as that bet is answered, in slot 1 (one bet per slot per round is the protocol's
//! limit), so the server acks bets as fast as it can. The run measures acked bets per
//! second over the betting windows, the busiest round's burst rate and the send →
//! `bet_ok`/`bet_err` latency. With the server's data directory (`--data-dir`, or
//! `--spawn-server`, which starts `aloft serve` with short phases and stops it with
//! SIGINT), it then opens the server's SQLite ledger and checks that it holds exactly the
//! acked bets: each one under its `bet:{room}:{round}:{player}:{slot}` id with the acked
//! amount, and no bet of these players that was never acked.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aloft::ledger::{
    Account, BetRef, BetTransferKind, Ledger, SqliteLedger, TransferId, TransferKind,
};
use aloft::protocol::{ClientMessage, RoomEvent, ServerMessage};
use anyhow::{Context, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::api::Api;
use crate::connection::{self, Incoming, Socket};
use crate::report::{GeneratorUsage, LatencySummary, latency_summary};
use crate::stats::{LocalStats, Stats};

/// Most players in one run: one socket each, under the 20,000 open files of a process.
const PLAYERS_MAX: u64 = 15_000;
/// Players being given a token and connected at once, count.
const SETUP_CONCURRENCY_MAX: usize = 256;
/// Time allowed for every player to connect, in milliseconds.
const SETUP_TIMEOUT_MS: u64 = 60_000;
/// Time after the end for the last bets' replies to arrive, in milliseconds.
const DRAIN_MS: u64 = 5_000;
/// Time allowed to close a socket at the end, in milliseconds.
const CLOSE_TIMEOUT_MS: u64 = 1_000;
/// Betting phase of a spawned server, in milliseconds.
const SPAWN_BETTING_MS_DEFAULT: u64 = 1_000;
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
/// Mismatches and errors listed verbatim; further ones are only counted.
const LISTED_MAX: usize = 20;
/// Microseconds per second.
const US_PER_SECOND: f64 = 1_000_000.0;
/// Microseconds per millisecond.
const US_PER_MS: u64 = 1_000;
/// Bytes per MiB.
const BYTES_PER_MIB: f64 = 1024.0 * 1024.0;

/// Options of `aloft-loadtest bets`.
#[derive(Debug, clap::Args)]
pub struct BetsArgs {
    /// Server WebSocket URL, on loopback only (127.0.0.0/8); not with --spawn-server.
    #[arg(
        long,
        required_unless_present = "spawn_server",
        conflicts_with = "spawn_server"
    )]
    pub url: Option<String>,
    /// Start `aloft serve` (next to this binary) on a free loopback port with short
    /// betting phases, stop it with SIGINT at the end and check its ledger.
    #[arg(long)]
    pub spawn_server: bool,
    /// Betting phase of the spawned server, in milliseconds.
    #[arg(long, default_value_t = SPAWN_BETTING_MS_DEFAULT, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub betting_ms: u64,
    /// Players (connections).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=PLAYERS_MAX))]
    pub players: u64,
    /// How long the players bet, e.g. 30s (then at most 5 s for the last replies).
    #[arg(long, value_parser = crate::bots::parse_duration)]
    pub duration: Duration,
    /// The server's data directory: its ledger.db is checked against the acked bets
    /// (with --spawn-server: where the server keeps its data; default a new temp dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Room to bet in.
    #[arg(long, default_value = "main")]
    pub room: String,
    /// Stake of slot 0 in minor units; slot 1 stakes one more.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    pub stake: i64,
    /// Write the JSON report to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// A bet the server acknowledged with `bet_ok`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckedBet {
    pub round: u64,
    pub player: String,
    pub slot: u8,
    pub amount: i64,
    /// When the ack arrived, unix microseconds.
    pub acked_at_us: u64,
}

impl AckedBet {
    /// The ledger id of this bet's stake.
    fn transfer_id(&self, room: &str) -> String {
        let bet = BetRef {
            room: room.to_owned(),
            round: self.round,
            player: self.player.clone(),
            slot: self.slot,
        };
        TransferId::OfBet {
            kind: BetTransferKind::Stake,
            bet,
        }
        .to_string()
    }
}

/// A betting phase as the players saw it, unix microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BettingWindow {
    /// When the first player received the round's `betting` event.
    pub opened_us: u64,
    /// The server's `ends_at`.
    pub ends_us: u64,
}

/// Throughput over the betting windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    pub rounds: u64,
    /// Betting time measured: each window clipped to the end of the run, in seconds.
    pub window_seconds: f64,
    /// Acks that arrived inside their round's (clipped) window.
    pub acked_in_windows: u64,
    /// `acked_in_windows / window_seconds`.
    pub bets_per_second: f64,
    /// The busiest round: its acks over the time from its window's opening to its last
    /// ack (how fast the server drains a burst of bets).
    pub busiest_round_bets_per_second: f64,
}

/// Throughput from the windows and the acks; `run_end_us` clips a window the run left
/// early.
pub fn betting_rates(
    windows: &BTreeMap<u64, BettingWindow>,
    acks: &[AckedBet],
    run_end_us: u64,
) -> Rates {
    let mut window_us = 0;
    let mut per_round: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for ack in acks {
        let Some(window) = windows.get(&ack.round) else {
            continue;
        };
        let end_us = window.ends_us.min(run_end_us);
        if (window.opened_us..=end_us).contains(&ack.acked_at_us) {
            let (count, last_us) = per_round.entry(ack.round).or_default();
            *count += 1;
            *last_us = (*last_us).max(ack.acked_at_us);
        }
    }
    for window in windows.values() {
        window_us += window
            .ends_us
            .min(run_end_us)
            .saturating_sub(window.opened_us);
    }
    let acked_in_windows: u64 = per_round.values().map(|(count, _)| count).sum();
    let busiest = per_round
        .iter()
        .map(|(round, (count, last_us))| {
            let span_us = last_us.saturating_sub(windows[round].opened_us).max(1);
            *count as f64 * US_PER_SECOND / span_us as f64
        })
        .fold(0.0, f64::max);
    let window_seconds = window_us as f64 / US_PER_SECOND;
    Rates {
        rounds: windows.len() as u64,
        window_seconds,
        acked_in_windows,
        bets_per_second: if window_us == 0 {
            0.0
        } else {
            acked_in_windows as f64 / window_seconds
        },
        busiest_round_bets_per_second: busiest,
    }
}

/// How the ledger compares with the acked bets.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reconciliation {
    pub acked: u64,
    /// Acked bets found in the ledger with the acked amount.
    pub matched: u64,
    /// Bet transfers of the run's players in the ledger.
    pub ledger_bets: u64,
    /// Acked bets refunded (their round was aborted, e.g. at shutdown).
    pub refunded: u64,
    pub mismatches_total: u64,
    pub first_mismatches: Vec<String>,
}

impl Reconciliation {
    fn mismatch(&mut self, message: String) {
        self.mismatches_total += 1;
        if self.first_mismatches.len() < LISTED_MAX {
            self.first_mismatches.push(message);
        }
    }
}

/// Checks that `ledger` holds exactly the `acked` bets of `players` in `room`.
pub async fn reconcile(
    ledger: &dyn Ledger,
    room: &str,
    players: &HashSet<String>,
    acked: &[AckedBet],
) -> anyhow::Result<Reconciliation> {
    let mut outcome = Reconciliation {
        acked: acked.len() as u64,
        ..Reconciliation::default()
    };
    let ours = |account: &Account| matches!(account, Account::Player(id) if players.contains(id));
    let stored: HashMap<String, _> = ledger
        .transfers_with_prefix(&TransferId::room_prefix(BetTransferKind::Stake, room))
        .await
        .context("reading the bet transfers")?
        .into_iter()
        .filter(|stored| ours(&stored.transfer.debit))
        .map(|stored| (stored.transfer.id.clone(), stored.transfer))
        .collect();
    outcome.ledger_bets = stored.len() as u64;
    let mut acked_ids = HashSet::new();
    for bet in acked {
        let id = bet.transfer_id(room);
        if !acked_ids.insert(id.clone()) {
            outcome.mismatch(format!("{id}: acked twice"));
            continue;
        }
        match stored.get(&id) {
            None => outcome.mismatch(format!(
                "{id}: acked ({}) but not in the ledger",
                bet.amount
            )),
            Some(transfer)
                if transfer.amount_minor != bet.amount
                    || transfer.kind != TransferKind::Bet
                    || transfer.debit != Account::Player(bet.player.clone())
                    || transfer.credit != Account::House =>
            {
                outcome.mismatch(format!(
                    "{id}: acked {} from player {}, ledger has {} {} {} -> {}",
                    bet.amount,
                    bet.player,
                    transfer.kind.as_str(),
                    transfer.amount_minor,
                    transfer.debit.key(),
                    transfer.credit.key()
                ));
            }
            Some(_) => outcome.matched += 1,
        }
    }
    let mut unacked: Vec<&String> = stored
        .keys()
        .filter(|id| !acked_ids.contains(*id))
        .collect();
    unacked.sort();
    for id in unacked {
        outcome.mismatch(format!(
            "{id}: in the ledger ({}) but never acked",
            stored[id].amount_minor
        ));
    }
    let refunds = ledger
        .transfers_with_prefix(&TransferId::room_prefix(BetTransferKind::Refund, room))
        .await
        .context("reading the refunds")?;
    let stake_of_refund = |id: &str| match id.parse() {
        Ok(TransferId::OfBet { bet, .. }) => Some(
            TransferId::OfBet {
                kind: BetTransferKind::Stake,
                bet,
            }
            .to_string(),
        ),
        _ => None,
    };
    outcome.refunded = refunds
        .iter()
        .filter_map(|stored| stake_of_refund(&stored.transfer.id))
        .filter(|stake_id| acked_ids.contains(stake_id))
        .count() as u64;
    Ok(outcome)
}

/// The clock the windows and acks are measured on (the server's clock on this machine).
fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

/// A server this run started; killed if dropped before [`SpawnedServer::stop`].
struct SpawnedServer {
    child: tokio::process::Child,
    listen: SocketAddr,
}

impl SpawnedServer {
    /// Starts `aloft serve` on a free port with its data and log in `data_dir`.
    async fn start(data_dir: &Path, betting_ms: u64) -> anyhow::Result<SpawnedServer> {
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
        let listen = crate::servers::free_listen_addr()?;
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
    async fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().context("the server already exited")?;
        let status = std::process::Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .context("running kill -INT")?;
        ensure!(status.success(), "kill -INT {pid} failed");
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

/// What every player shares.
struct RunContext {
    room: String,
    stake: i64,
    stats: Stats,
    /// No bet is sent after this.
    end_at: Instant,
    /// Unanswered bets are given up at this.
    drain_at: Instant,
}

/// The bet a player waits on (one at a time).
struct Pending {
    round: u64,
    slot: u8,
    sent: Instant,
}

/// What one player saw.
#[derive(Default)]
struct PlayerOutcome {
    acked: Vec<AckedBet>,
    windows: Vec<(u64, BettingWindow)>,
    unanswered: u64,
    error: Option<String>,
}

/// One connected player.
struct Player {
    id: String,
    socket: Socket,
    /// The round open for bets and its end (unix µs), once seen.
    betting: Option<(u64, u64)>,
    pending: Option<Pending>,
    local: LocalStats,
    outcome: PlayerOutcome,
}

impl Player {
    async fn send_bet(&mut self, context: &RunContext, round: u64, slot: u8) -> anyhow::Result<()> {
        let message = ClientMessage::Bet {
            req: format!("{round}-{slot}"),
            amount: context.stake + i64::from(slot),
            auto: None,
            slot,
        };
        self.socket
            .send(Message::text(aloft::protocol::encode(&message)))
            .await
            .context("sending a bet")?;
        self.local.bets_sent += 1;
        self.pending = Some(Pending {
            round,
            slot,
            sent: Instant::now(),
        });
        Ok(())
    }

    /// Sends slot 1 of `round` after slot 0's reply, if its window is still open.
    async fn next_bet(&mut self, context: &RunContext, answered: Pending) -> anyhow::Result<()> {
        let open = matches!(self.betting, Some((round, ends_us))
            if round == answered.round && unix_us() < ends_us);
        if answered.slot == 0 && open && Instant::now() < context.end_at {
            self.send_bet(context, answered.round, 1).await?;
        }
        Ok(())
    }

    async fn on_frame(&mut self, context: &RunContext, text: &str) -> anyhow::Result<()> {
        self.local.frames_received += 1;
        let now_us = unix_us();
        match connection::decode(text).with_context(|| format!("undecodable frame {text:?}"))? {
            Incoming::Event(RoomEvent::Betting { round, ends_at, .. }) => {
                let ends_us = ends_at * US_PER_MS;
                self.betting = Some((round, ends_us));
                let window = BettingWindow {
                    opened_us: now_us,
                    ends_us,
                };
                self.outcome.windows.push((round, window));
                if self.pending.is_none() && Instant::now() < context.end_at {
                    self.send_bet(context, round, 0).await?;
                }
            }
            Incoming::Event(RoomEvent::Crash { .. }) => self.local.flush(&context.stats),
            Incoming::Event(_) => {}
            Incoming::Private(ServerMessage::BetOk {
                round,
                slot,
                amount,
                ..
            }) => {
                let pending = self.answered()?;
                ensure!(
                    (pending.round, pending.slot) == (round, slot),
                    "bet_ok for round {round} slot {slot}, sent round {} slot {}",
                    pending.round,
                    pending.slot
                );
                self.local.bets_acked += 1;
                let acked = AckedBet {
                    round,
                    player: self.id.clone(),
                    slot,
                    amount,
                    acked_at_us: now_us,
                };
                self.outcome.acked.push(acked);
                self.next_bet(context, pending).await?;
            }
            Incoming::Private(ServerMessage::BetErr { code, .. }) => {
                let pending = self.answered()?;
                context.stats.record_reject("bet", code.as_str());
                self.next_bet(context, pending).await?;
            }
            Incoming::Private(ServerMessage::Error { code, message }) => {
                bail!("server error {}: {message}", code.as_str())
            }
            Incoming::Private(_) => {}
        }
        Ok(())
    }

    /// The pending bet a reply answers, with its latency recorded.
    fn answered(&mut self) -> anyhow::Result<Pending> {
        let pending = self
            .pending
            .take()
            .context("a bet reply with no bet pending")?;
        let latency_us = pending.sent.elapsed().as_micros() as u64;
        self.local.ack_latencies_us.push(latency_us);
        Ok(pending)
    }

    /// Bets until the end, waits for the last reply, closes.
    async fn play(mut self, context: Arc<RunContext>) -> PlayerOutcome {
        if let Err(error) = self.bet_until_the_end(&context).await {
            self.outcome.error = Some(format!("player {}: {error:#}", self.id));
        }
        if self.pending.is_some() {
            self.outcome.unanswered += 1;
        }
        let close = self.socket.close(None);
        let _ = tokio::time::timeout(Duration::from_millis(CLOSE_TIMEOUT_MS), close).await;
        context
            .stats
            .connected
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.local.flush(&context.stats);
        self.outcome
    }

    async fn bet_until_the_end(&mut self, context: &RunContext) -> anyhow::Result<()> {
        loop {
            let until = if self.pending.is_some() {
                context.drain_at
            } else {
                context.end_at
            };
            if Instant::now() >= until {
                return Ok(());
            }
            let Ok(frame) = tokio::time::timeout_at(until, self.socket.next()).await else {
                return Ok(());
            };
            match frame
                .context("the server closed the connection")?
                .context("reading")?
            {
                Message::Text(text) => self.on_frame(context, &text).await?,
                Message::Close(frame) => bail!("closed by the server: {frame:?}"),
                _ => {}
            }
        }
    }
}

/// Gives each player a guest token and a connection, `SETUP_CONCURRENCY_MAX` at a time.
async fn connect_players(
    server: SocketAddr,
    context: &RunContext,
    players: u64,
) -> (Vec<Player>, Vec<String>) {
    let api = Arc::new(Api::new(server));
    let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY_MAX));
    let mut setups = JoinSet::new();
    for _ in 0..players {
        let (api, gate, room) = (api.clone(), gate.clone(), context.room.clone());
        setups.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let guest = api.guest().await?;
            let socket =
                connection::open(server, Ipv4Addr::LOCALHOST, &guest.token, &room, None).await?;
            anyhow::Ok(Player {
                id: guest.player,
                socket,
                betting: None,
                pending: None,
                local: LocalStats::default(),
                outcome: PlayerOutcome::default(),
            })
        });
    }
    let (mut connected, mut errors) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_millis(SETUP_TIMEOUT_MS);
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, setups.join_next()).await {
        match joined.map_err(anyhow::Error::from).and_then(|setup| setup) {
            Ok(player) => connected.push(player),
            Err(error) => errors.push(format!("connecting: {error:#}")),
        }
    }
    if !setups.is_empty() {
        errors.push(format!(
            "{} players not connected within {SETUP_TIMEOUT_MS} ms",
            setups.len()
        ));
        setups.shutdown().await;
    }
    let ordering = std::sync::atomic::Ordering::Relaxed;
    context
        .stats
        .connections_ok
        .fetch_add(connected.len() as u64, ordering);
    context
        .stats
        .connected
        .fetch_add(connected.len() as u64, ordering);
    context
        .stats
        .connections_failed
        .fetch_add(players - connected.len() as u64, ordering);
    (connected, errors)
}

/// Everything the players saw, merged.
struct Merged {
    acked: Vec<AckedBet>,
    windows: BTreeMap<u64, BettingWindow>,
    unanswered: u64,
    errors: Vec<String>,
}

fn merge(outcomes: Vec<PlayerOutcome>, mut errors: Vec<String>) -> Merged {
    let mut merged = Merged {
        acked: Vec::new(),
        windows: BTreeMap::new(),
        unanswered: 0,
        errors: Vec::new(),
    };
    for outcome in outcomes {
        merged.acked.extend(outcome.acked);
        merged.unanswered += outcome.unanswered;
        errors.extend(outcome.error);
        for (round, seen) in outcome.windows {
            let window = merged.windows.entry(round).or_insert(seen);
            window.opened_us = window.opened_us.min(seen.opened_us);
        }
    }
    merged.errors = errors;
    merged
}

/// The JSON report of a `bets` run.
#[derive(Debug, Serialize)]
pub struct BetsReport {
    pub url: String,
    pub room: String,
    pub players: u64,
    pub connections_ok: u64,
    pub connections_failed: u64,
    pub duration_seconds: f64,
    pub wall_seconds: f64,
    pub bets_sent: u64,
    pub bet_ok: u64,
    /// `bet_err` replies by code.
    pub bet_err: BTreeMap<String, u64>,
    /// Bets still unanswered at the end of the drain.
    pub unanswered: u64,
    pub rates: Rates,
    pub ack_latency: LatencySummary,
    pub errors_total: u64,
    pub first_errors: Vec<String>,
    /// The ledger check, when a data directory was known.
    pub ledger: Option<Reconciliation>,
    pub load_generator: GeneratorUsage,
}

impl BetsReport {
    /// Passes when bets were acked, nothing failed and the ledger (if checked) matched.
    pub fn passed(&self) -> bool {
        self.bet_ok > 0
            && self.errors_total == 0
            && self
                .ledger
                .as_ref()
                .is_none_or(|ledger| ledger.mismatches_total == 0)
    }

    fn print(&self) {
        let latency = &self.ack_latency;
        println!(
            "players connected / failed  {} / {}",
            self.connections_ok, self.connections_failed
        );
        println!(
            "duration / wall             {:.1} s / {:.1} s",
            self.duration_seconds, self.wall_seconds
        );
        println!(
            "betting rounds / time       {} / {:.2} s",
            self.rates.rounds, self.rates.window_seconds
        );
        println!(
            "bets sent / bet_ok / unans. {} / {} / {}",
            self.bets_sent, self.bet_ok, self.unanswered
        );
        println!("bet_err by code             {:?}", self.bet_err);
        println!(
            "acked bets/s (betting)      {:.0}",
            self.rates.bets_per_second
        );
        println!(
            "busiest round bets/s        {:.0}",
            self.rates.busiest_round_bets_per_second
        );
        println!(
            "ack latency p50 / p99 / max {:.2} / {:.2} / {:.2} ms ({} samples)",
            latency.p50_ms, latency.p99_ms, latency.max_ms, latency.count
        );
        println!(
            "generator CPU (cores busy)  {:.2}",
            self.load_generator.cpu_cores_busy
        );
        println!("errors                      {}", self.errors_total);
        for error in &self.first_errors {
            println!("  {error}");
        }
        if self.bet_ok == 0 {
            println!("FAIL: no bet acked; run longer than one round (betting + flight + crash)");
        }
        match &self.ledger {
            None => {
                println!("ledger check                skipped (no --data-dir / --spawn-server)")
            }
            Some(ledger) => {
                println!(
                    "ledger acked / matched      {} / {} ({} bets in ledger, {} refunded)",
                    ledger.acked, ledger.matched, ledger.ledger_bets, ledger.refunded
                );
                println!("ledger mismatches           {}", ledger.mismatches_total);
                for mismatch in &ledger.first_mismatches {
                    println!("  {mismatch}");
                }
            }
        }
    }
}

/// Where the run goes: the URL, the data dir to check and the server it started.
struct Target {
    url: String,
    server: SocketAddr,
    data_dir: Option<PathBuf>,
    spawned: Option<SpawnedServer>,
}

async fn target(args: &BetsArgs) -> anyhow::Result<Target> {
    if !args.spawn_server {
        let url = args
            .url
            .clone()
            .context("--url or --spawn-server is required")?;
        let server = crate::target::parse_ws_url(&url)?;
        return Ok(Target {
            url,
            server,
            data_dir: args.data_dir.clone(),
            spawned: None,
        });
    }
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("aloft-bets-{}-{}", std::process::id(), unix_us()))
    });
    let spawned = SpawnedServer::start(&data_dir, args.betting_ms).await?;
    println!(
        "spawned aloft on {} with data in {}",
        spawned.listen,
        data_dir.display()
    );
    Ok(Target {
        url: format!("ws://{}", spawned.listen),
        server: spawned.listen,
        data_dir: Some(data_dir),
        spawned: Some(spawned),
    })
}

/// Runs the players, stops a spawned server, checks the ledger; `Ok(true)` on a pass.
pub async fn run(args: BetsArgs) -> anyhow::Result<bool> {
    crate::target::check_room(&args.room)?;
    crate::process::ensure_open_files(args.players)?;
    let target = target(&args).await?;
    let started = Instant::now();
    let mut context = RunContext {
        room: args.room.clone(),
        stake: args.stake,
        stats: Stats::new(),
        end_at: started,
        drain_at: started,
    };
    let (players, setup_errors) = connect_players(target.server, &context, args.players).await;
    let betting_started = Instant::now();
    context.end_at = betting_started + args.duration;
    context.drain_at = context.end_at + Duration::from_millis(DRAIN_MS);
    let run_end_us = unix_us() + args.duration.as_micros() as u64;
    let context = Arc::new(context);
    let player_ids: HashSet<String> = players.iter().map(|player| player.id.clone()).collect();
    let mut running = JoinSet::new();
    for player in players {
        running.spawn(player.play(context.clone()));
    }
    let outcomes: Vec<PlayerOutcome> = running.join_all().await;
    let merged = merge(outcomes, setup_errors);
    let wall_seconds = started.elapsed().as_secs_f64();
    if let Some(spawned) = target.spawned {
        spawned.stop().await?;
    }
    let ledger = match &target.data_dir {
        Some(dir) => Some(check_ledger(dir, &args.room, &player_ids, &merged.acked).await?),
        None => None,
    };
    let report = build_report(
        &args,
        &target.url,
        &context,
        merged,
        run_end_us,
        wall_seconds,
        ledger,
    )?;
    report.print();
    if let Some(path) = &args.report {
        crate::report::write_json(path, &report)?;
    }
    Ok(report.passed())
}

/// Opens `dir/ledger.db` (the server must have stopped) and reconciles it.
async fn check_ledger(
    dir: &Path,
    room: &str,
    players: &HashSet<String>,
    acked: &[AckedBet],
) -> anyhow::Result<Reconciliation> {
    let path = dir.join("ledger.db");
    let ledger =
        SqliteLedger::open(&path).with_context(|| format!("opening {}", path.display()))?;
    reconcile(&ledger, room, players, acked).await
}

fn build_report(
    args: &BetsArgs,
    url: &str,
    context: &RunContext,
    merged: Merged,
    run_end_us: u64,
    wall_seconds: f64,
    ledger: Option<Reconciliation>,
) -> anyhow::Result<BetsReport> {
    let stats = &context.stats;
    let usage = crate::process::read_usage()?;
    let bet_err = stats
        .rejects
        .lock()
        .expect("rejects lock")
        .iter()
        .map(|(key, count)| (key.trim_start_matches("bet:").to_owned(), *count))
        .collect();
    let histogram = stats.ack_latency_us.lock().expect("histogram lock");
    Ok(BetsReport {
        url: url.to_owned(),
        room: args.room.clone(),
        players: args.players,
        connections_ok: Stats::get(&stats.connections_ok),
        connections_failed: Stats::get(&stats.connections_failed),
        duration_seconds: args.duration.as_secs_f64(),
        wall_seconds,
        bets_sent: Stats::get(&stats.bets_sent),
        bet_ok: merged.acked.len() as u64,
        bet_err,
        unanswered: merged.unanswered,
        rates: betting_rates(&merged.windows, &merged.acked, run_end_us),
        ack_latency: latency_summary(&histogram),
        errors_total: merged.errors.len() as u64,
        first_errors: merged.errors.into_iter().take(LISTED_MAX).collect(),
        ledger,
        load_generator: GeneratorUsage {
            cpu_seconds: usage.cpu_seconds,
            cpu_cores_busy: usage.cpu_seconds / wall_seconds.max(f64::MIN_POSITIVE),
            rss_mib: usage.rss_bytes as f64 / BYTES_PER_MIB,
            peak_rss_mib: usage.peak_rss_bytes as f64 / BYTES_PER_MIB,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft::ledger::Transfer;

    fn ack(round: u64, player: &str, slot: u8, amount: i64, acked_at_us: u64) -> AckedBet {
        AckedBet {
            round,
            player: player.to_owned(),
            slot,
            amount,
            acked_at_us,
        }
    }

    #[test]
    fn rates_count_acks_inside_clipped_windows() {
        let windows = BTreeMap::from([
            (
                1,
                BettingWindow {
                    opened_us: 0,
                    ends_us: 1_000_000,
                },
            ),
            (
                2,
                BettingWindow {
                    opened_us: 2_000_000,
                    ends_us: 3_000_000,
                },
            ),
        ]);
        let acks = [
            ack(1, "a", 0, 10, 100_000),
            ack(1, "a", 1, 11, 250_000),
            ack(1, "b", 0, 10, 1_500_000), // after its window: not counted
            ack(2, "a", 0, 10, 2_100_000),
            ack(9, "a", 0, 10, 100), // no window seen
        ];
        // The run ended half-way through round 2's window.
        let rates = betting_rates(&windows, &acks, 2_500_000);
        assert_eq!(rates.rounds, 2);
        assert_eq!(rates.window_seconds, 1.5);
        assert_eq!(rates.acked_in_windows, 3);
        assert_eq!(rates.bets_per_second, 2.0);
        // Round 1: 2 acks in 0.25 s; round 2: 1 ack in 0.1 s.
        assert_eq!(rates.busiest_round_bets_per_second, 10.0);
        let empty = betting_rates(&BTreeMap::new(), &acks, 2_500_000);
        assert_eq!((empty.bets_per_second, empty.acked_in_windows), (0.0, 0));
    }

    fn bet(id: &str, player: &str, amount_minor: i64) -> Transfer {
        Transfer {
            id: id.to_owned(),
            debit: Account::Player(player.to_owned()),
            credit: Account::House,
            amount_minor,
            kind: TransferKind::Bet,
            multiplier_hundredths: None,
        }
    }

    async fn ledger_with(transfers: Vec<Transfer>) -> SqliteLedger {
        let ledger = SqliteLedger::open_in_memory().unwrap();
        let grants = ["a", "b", "stranger"].map(|player| Transfer {
            id: TransferId::grant(player).to_string(),
            debit: Account::Mint,
            credit: Account::Player(player.to_owned()),
            amount_minor: 1_000,
            kind: TransferKind::Grant,
            multiplier_hundredths: None,
        });
        ledger.apply_batch(grants.to_vec()).await.unwrap();
        ledger.apply_batch(transfers).await.unwrap();
        ledger
    }

    #[tokio::test]
    async fn the_ledger_matches_exactly_the_acked_bets() {
        let refund = Transfer {
            id: "refund:main:2:b:0".to_owned(),
            debit: Account::House,
            credit: Account::Player("b".to_owned()),
            amount_minor: 10,
            kind: TransferKind::Refund,
            multiplier_hundredths: None,
        };
        let ledger = ledger_with(vec![
            bet("bet:main:1:a:0", "a", 10),
            bet("bet:main:1:a:1", "a", 11),
            bet("bet:main:2:b:0", "b", 10),
            refund,
            bet("bet:main:1:stranger:0", "stranger", 10), // not a player of this run
        ])
        .await;
        let players = HashSet::from(["a".to_owned(), "b".to_owned()]);
        let acked = [
            ack(1, "a", 0, 10, 0),
            ack(1, "a", 1, 11, 0),
            ack(2, "b", 0, 10, 0),
        ];
        let outcome = reconcile(&ledger, "main", &players, &acked).await.unwrap();
        assert_eq!(
            outcome.mismatches_total, 0,
            "{:?}",
            outcome.first_mismatches
        );
        assert_eq!(
            (outcome.acked, outcome.matched, outcome.ledger_bets),
            (3, 3, 3)
        );
        assert_eq!(outcome.refunded, 1);
    }

    #[tokio::test]
    async fn missing_wrong_unacked_and_double_acked_bets_are_mismatches() {
        let ledger = ledger_with(vec![
            bet("bet:main:1:a:0", "a", 12),  // acked as 10
            bet("bet:main:1:b:0", "b", 10),  // never acked
            bet("bet:other:1:a:1", "a", 11), // another room: ignored
        ])
        .await;
        let players = HashSet::from(["a".to_owned(), "b".to_owned()]);
        let acked = [
            ack(1, "a", 0, 10, 0),
            ack(1, "a", 1, 11, 0), // not in this room's ledger
            ack(1, "a", 1, 11, 0), // the same slot acked twice
        ];
        let outcome = reconcile(&ledger, "main", &players, &acked).await.unwrap();
        assert_eq!(outcome.matched, 0);
        assert_eq!(
            outcome.mismatches_total, 4,
            "{:?}",
            outcome.first_mismatches
        );
        let listed = outcome.first_mismatches.join("\n");
        for expected in [
            "bet:main:1:a:0: acked 10 from player a, ledger has bet 12",
            "bet:main:1:a:1: acked (11) but not in the ledger",
            "bet:main:1:a:1: acked twice",
            "bet:main:1:b:0: in the ledger (10) but never acked",
        ] {
            assert!(listed.contains(expected), "{expected:?} not in\n{listed}");
        }
    }
}

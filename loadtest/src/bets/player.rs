//! The players of a `bets` run: each gets a guest token and a connection, bets in slot
//! 0 as soon as a betting phase opens and in slot 1 as soon as slot 0 is answered, one
//! bet in flight at a time, until the end; then what they saw is merged.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use aloft::protocol::{ClientMessage, RoomEvent, ServerMessage};
use anyhow::{Context, bail, ensure};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::api::Api;
use crate::bets::rates::{BettingWindow, unix_us};
use crate::bets::reconcile::AckedBet;
use crate::bots::connection::{self, Incoming, Socket};
use crate::report::stats::{LocalStats, Stats};

/// Players being given a token and connected at once, count.
const SETUP_CONCURRENCY_MAX: usize = 256;
/// Time allowed for every player to connect, in milliseconds.
const SETUP_TIMEOUT_MS: u64 = 60_000;
/// Time allowed to close a socket at the end, in milliseconds.
const CLOSE_TIMEOUT_MS: u64 = 1_000;
/// Microseconds per millisecond.
const US_PER_MS: u64 = 1_000;

/// What every player shares.
pub struct RunContext {
    pub room: String,
    pub stake: i64,
    pub stats: Stats,
    /// No bet is sent after this.
    pub end_at: Instant,
    /// Unanswered bets are given up at this.
    pub drain_at: Instant,
}

/// The bet a player waits on (one at a time).
struct Pending {
    round: u64,
    slot: u8,
    sent: Instant,
}

/// What one player saw.
#[derive(Default)]
pub struct PlayerOutcome {
    acked: Vec<AckedBet>,
    windows: Vec<(u64, BettingWindow)>,
    unanswered: u64,
    error: Option<String>,
}

/// One connected player.
pub struct Player {
    pub id: String,
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
    pub async fn play(mut self, context: Arc<RunContext>) -> PlayerOutcome {
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
pub async fn connect_players(
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
pub struct Merged {
    pub acked: Vec<AckedBet>,
    pub windows: BTreeMap<u64, BettingWindow>,
    pub unanswered: u64,
    pub errors: Vec<String>,
}

pub fn merge(outcomes: Vec<PlayerOutcome>, mut errors: Vec<String>) -> Merged {
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

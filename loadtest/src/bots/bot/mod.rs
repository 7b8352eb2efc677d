//! One bot player: its life (guest token, connection, play, drain, final reconnection),
//! its bets and the ledger it keeps of its own money. Every frame it receives is checked
//! with the rules of `verify` and counted in `stats`.
//!
//! The frame handlers are synchronous: they update the state and queue requests in an
//! outbox that the socket loop sends, so the state machine does no I/O of its own.
//!
//! Own ledger: `expected_minor` starts at `hello.balance`, loses each acknowledged stake
//! and gains each cashout the bot learns of privately: its `cashout_ok`, or a `balance`
//! naming a cashout the engine made (auto-cashout, max profit). The public feed lists
//! only the largest cashouts; when it lists one of the bot's, it must agree with the
//! private report. Between rounds the own ledger must equal the last balance the server
//! sent; at the end it must equal `hello.balance` on a new connection, which the server
//! reads from the ledger. A server may still legitimately cut an auto-cashout short when
//! the round's max profit is reached; with the stakes used here that takes thousands of
//! bots betting at once, and shows as `auto_cashout_price`.
//!
//! Public events are followed with `verify::StreamTracker`: ticks the server skipped for
//! this socket (conflation) are counted in `ticks_conflated`, anything else missing or
//! out of order fails the run.
//!
//! Reconnecting (runs that allow it, `RunContext::reconnect_ms_max`): a bot that loses
//! its connection opens one to the next gateway in turn with `since` and `epoch`, and
//! the gateway must answer `hello.recovered` and then either the missed events (which
//! the stream tracker checks like live ones) or a snapshot. Unanswered requests are sent
//! again with their `req`. Private frames sent while the bot was away are not replayed
//! (docs/protocol.md), so the bot cannot know of an auto-cashout made meanwhile: its
//! bets of that time are not checked for one, and its own ledger is set to the first
//! fresh balance it gets once every re-sent request is answered — not to the balance of
//! a re-sent request's reply, which repeats the first reply verbatim and may predate
//! what the bot missed. The money itself is checked in the ledger by the caller
//! (`chaos::checks`).
//!
//! This module owns the bot's life and its state; the state's parts live beside it:
//! `open_bets` (requests in flight, bets in slots, the planned click), `frames` (what
//! the server sends), `betting` (the bot's own bets and cashouts), `unavailable` (the
//! retry or the unknown outcome) and `reconnect` (lost connections and the final balance
//! check).

mod betting;
mod frames;
mod open_bets;
mod reconnect;
#[cfg(test)]
mod tests;
mod unavailable;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aloft::protocol::{ClientMessage, Phase, RoundTotals};
use futures_util::{SinkExt, StreamExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::api::Api;
use crate::bots::bot::open_bets::{OpenBet, Pending, PlannedBets};
use crate::bots::connection::{self, Socket};
use crate::bots::verify::{Check, Failure, FairCheck, StreamTracker};
use crate::report::stats::{LocalStats, Stats};

/// Interval between a bot's `ping` messages, in milliseconds.
const PING_INTERVAL_MS: u64 = 20_000;
/// Interval between flushes of a bot's counts into the shared stats, in milliseconds.
const FLUSH_INTERVAL_MS: u64 = 1_000;

/// What every bot of a run shares.
pub struct RunContext {
    pub api: Api,
    pub fair: FairCheck,
    pub stats: Arc<Stats>,
    /// The gateways: bot `index` joins `servers[index % len]` and, reconnecting, moves
    /// on to the next one.
    pub servers: Vec<SocketAddr>,
    /// How long a bot that lost its connection may take to open another, in
    /// milliseconds; `None`: a lost connection fails the bot (`disconnected`).
    pub reconnect_ms_max: Option<u64>,
    /// The run injects faults: a bet refused `internal` (the ledger is down) is allowed,
    /// and an auto-cashout's report may come after the next round opened (its payout is
    /// retried until the ledger is back) — but before the bot settles.
    pub faults_expected: bool,
    pub room: String,
    /// Bots stop betting and start settling here.
    pub end_at: Instant,
    /// A bot not settled by then reports `drain_timeout`.
    pub settle_deadline: Instant,
    /// Everything, the final reconnection included, is over by then.
    pub stop_deadline: Instant,
}

/// Runs bot `index` from its guest token to its final balance check.
pub async fn run(context: Arc<RunContext>, index: u64, source: Ipv4Addr, seed: u64) {
    let stats = &context.stats;
    let home = usize::try_from(index).expect("bot index fits usize") % context.servers.len();
    let joined = async {
        let guest = context.api.guest().await?;
        let server = context.servers[home];
        let socket = connection::open(server, source, &guest.token, &context.room, None).await?;
        anyhow::Ok((guest, socket))
    };
    let (guest, mut socket) = match joined.await {
        Ok(joined) => joined,
        Err(error) => {
            stats
                .connections_failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            stats.record_failure(Failure::new(
                Check::ConnectFailed,
                format!("bot {index}: {error:#}"),
            ));
            return;
        }
    };
    stats
        .connections_ok
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    stats
        .connected
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut bot = Bot::new(context.clone(), index, guest.player, guest.balance, seed);
    bot.server = home;
    let settled = loop {
        let ended = bot.play(&mut socket).await;
        stats
            .connected
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        // The connection is finished either way; a failed close frame changes nothing.
        let _ = socket.close(None).await;
        match ended {
            Ended::Settled => break true,
            Ended::GaveUp => break false,
            Ended::Lost(why) => match bot.reconnect(&guest.token, source, why).await {
                Some(reopened) => socket = reopened,
                None => break false,
            },
        }
        stats
            .connected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    drop(socket);
    if settled {
        bot.final_check(&guest.token, source).await;
    }
    bot.local.flush(stats);
}

/// How a connection's play ended.
#[derive(Debug)]
enum Ended {
    /// Settled after the end of the run.
    Settled,
    /// A check ended the bot (drain timeout); already reported.
    GaveUp,
    /// The connection was lost or closed, for this reason.
    Lost(String),
}

struct Bot {
    context: Arc<RunContext>,
    index: u64,
    player: String,
    /// Balance `/api/guest` granted, in minor units; the first `hello` must show it.
    granted_minor: i64,
    rng: SmallRng,
    stream: StreamTracker,
    /// The newest public totals and their round, to check that they only grow.
    totals: Option<(u64, RoundTotals)>,
    round: u64,
    phase: Phase,
    /// Highest multiplier ticked in the current round, in hundredths.
    tick_m: u64,
    /// Round and hash of the last crash seen, for the chain link check.
    last_crash: Option<(u64, String)>,
    plan: Option<PlannedBets>,
    slots: [Option<OpenBet>; 2],
    /// Bets of finished rounds whose auto-cashout report is late (`faults_expected`).
    late: Vec<OpenBet>,
    /// Bets whose request got `unavailable` too late to retry: the engine may hold their
    /// stake, so a settlement of one is accepted; the newest [`unavailable::UNSURE_BETS_MAX`].
    unsure: Vec<OpenBet>,
    pending: Vec<Pending>,
    outbox: Vec<ClientMessage>,
    requests_sent: u64,
    /// The bot's own ledger, in minor units; `None` before `hello`.
    expected_minor: Option<i64>,
    /// The last fresh balance the server sent, in minor units.
    last_balance_minor: i64,
    /// A reply repeating a first answer (re-sent request) came since
    /// `last_balance_minor`: its balance may predate what the bot has booked since, so
    /// the own ledger is not compared with the server's until the next fresh balance.
    balance_stale: bool,
    ping_at: Instant,
    flush_at: Instant,
    stopping: bool,
    done: bool,
    local: LocalStats,
    /// Index in `context.servers` of the gateway of the current connection.
    server: usize,
    /// The epoch of the last snapshot: with the tracker's last `seq`, where to resume.
    epoch: Option<u64>,
    /// Why the server closed the connection, once it did.
    lost: Option<String>,
    /// A reconnection sent `since`: the next `hello` must say whether it recovered.
    resuming: bool,
    /// The bot was away, or a request's outcome is unknown: its own ledger is set to the
    /// next fresh balance the server sends once no re-sent request waits (see the module
    /// doc).
    rebase_pending: bool,
}

impl Bot {
    fn new(
        context: Arc<RunContext>,
        index: u64,
        player: String,
        granted_minor: i64,
        seed: u64,
    ) -> Bot {
        let mut rng = SmallRng::seed_from_u64(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let now = Instant::now();
        let ping_at = now + Duration::from_millis(rng.random_range(0..PING_INTERVAL_MS));
        let flush_at = now + Duration::from_millis(rng.random_range(0..FLUSH_INTERVAL_MS));
        Bot {
            context,
            index,
            player,
            granted_minor,
            rng,
            stream: StreamTracker::default(),
            totals: None,
            round: 0,
            phase: Phase::Crashed,
            tick_m: 0,
            last_crash: None,
            plan: None,
            slots: [None, None],
            late: Vec::new(),
            unsure: Vec::new(),
            pending: Vec::new(),
            outbox: Vec::new(),
            requests_sent: 0,
            expected_minor: None,
            last_balance_minor: 0,
            balance_stale: false,
            ping_at,
            flush_at,
            stopping: false,
            done: false,
            local: LocalStats::default(),
            server: 0,
            epoch: None,
            lost: None,
            resuming: false,
            rebase_pending: false,
        }
    }

    /// Plays on `socket` until settled after the end of the run, until a check ends the
    /// bot or until the connection is lost.
    async fn play(&mut self, socket: &mut Socket) -> Ended {
        let mut armed = self.next_deadline();
        let timer = tokio::time::sleep_until(armed);
        tokio::pin!(timer);
        loop {
            tokio::select! {
                frame = socket.next() => match frame {
                    Some(Ok(message)) => self.on_message(message),
                    Some(Err(error)) => return Ended::Lost(format!("read failed: {error}")),
                    None => return Ended::Lost("connection closed".to_owned()),
                },
                () = &mut timer => self.on_timer(Instant::now()),
            }
            if let Some(why) = self.lost.take() {
                return Ended::Lost(why);
            }
            if let Err(error) = self.send_outbox(socket).await {
                return Ended::Lost(format!("send failed: {error}"));
            }
            if self.stopping && self.is_settled() {
                return Ended::Settled;
            }
            if self.done {
                return Ended::GaveUp;
            }
            let next = self.next_deadline();
            if next != armed {
                timer.as_mut().reset(next);
                armed = next;
            }
        }
    }

    /// Sends the queued requests in one flush.
    async fn send_outbox(&mut self, socket: &mut Socket) -> Result<(), WsError> {
        if self.outbox.is_empty() {
            return Ok(());
        }
        for message in self.outbox.drain(..) {
            socket
                .feed(Message::text(aloft::protocol::encode(&message)))
                .await?;
        }
        socket.flush().await
    }

    fn next_deadline(&self) -> Instant {
        let phase_deadline = if self.stopping {
            self.context.settle_deadline
        } else {
            self.context.end_at
        };
        let mut next = self.ping_at.min(self.flush_at).min(phase_deadline);
        if let Some(plan) = &self.plan {
            next = next.min(plan.at);
        }
        next
    }

    fn on_timer(&mut self, now: Instant) {
        if now >= self.flush_at {
            self.local.flush(&self.context.stats);
            self.flush_at = now + Duration::from_millis(FLUSH_INTERVAL_MS);
        }
        if now >= self.ping_at {
            self.outbox.push(ClientMessage::Ping);
            self.ping_at = now + Duration::from_millis(PING_INTERVAL_MS);
        }
        if self.plan.as_ref().is_some_and(|plan| now >= plan.at) {
            self.place_planned_bets(now);
        }
        if !self.stopping && now >= self.context.end_at {
            self.stop(now);
        }
        if self.stopping && now >= self.context.settle_deadline && !self.is_settled() {
            let state = format!(
                "not settled {} ms after the end: {} requests unanswered, slots {:?}, late auto-cashout reports {:?}, own ledger {:?}, server balance {}",
                (self.context.settle_deadline - self.context.end_at).as_millis(),
                self.pending.len(),
                self.slots,
                self.late,
                self.expected_minor,
                self.last_balance_minor
            );
            self.fail(Check::DrainTimeout, state);
            self.done = true;
        }
    }

    /// The end of the run: no more bets; cash out whatever flies.
    fn stop(&mut self, now: Instant) {
        self.stopping = true;
        self.plan = None;
        if self.phase == Phase::Flying {
            self.cash_out_due(u64::MAX, now);
        }
    }

    fn is_settled(&self) -> bool {
        self.pending.is_empty()
            && self.late.is_empty()
            && self.outbox.is_empty()
            && self
                .slots
                .iter()
                .flatten()
                .all(|bet| bet.is_settled() || bet.win.is_some())
            && (self.rebase_pending
                || self.balance_stale
                || self.expected_minor == Some(self.last_balance_minor))
    }

    fn next_req(&mut self) -> String {
        self.requests_sent += 1;
        format!("b{}-{}", self.index, self.requests_sent)
    }

    fn fail(&mut self, check: Check, message: String) {
        let failure = self.failure(check, message);
        self.context.stats.record_failure(failure);
    }

    fn report(&mut self, failure: Failure) {
        let failure = self.failure(failure.check, failure.message);
        self.context.stats.record_failure(failure);
    }

    fn failure(&self, check: Check, message: String) -> Failure {
        Failure::new(
            check,
            format!("bot {} ({}): {message}", self.index, self.player),
        )
    }
}

/// The wall clock in unix milliseconds, to read the server's `ends_at` (same machine).
fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

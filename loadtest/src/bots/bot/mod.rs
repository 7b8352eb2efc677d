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

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aloft::protocol::{
    BetCashout, ClientMessage, ErrorCode, PastRound, Phase, PublicBet, PublicCashout, RoomEvent,
    RoundTotals, ServerMessage,
};
use futures_util::{SinkExt, StreamExt};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::api::Api;
use crate::bots::behaviour::{self, Exit, Stake};
use crate::bots::connection::{self, Incoming, Resume, Socket};
use crate::bots::verify::{self, Check, EventKind, Failure, FairCheck, StreamTracker};
use crate::report::stats::{AckedBet, LocalStats, Stats};

/// Interval between a bot's `ping` messages, in milliseconds.
const PING_INTERVAL_MS: u64 = 20_000;
/// Interval between flushes of a bot's counts into the shared stats, in milliseconds.
const FLUSH_INTERVAL_MS: u64 = 1_000;
/// Frames read on the final connection while waiting for `hello`, at most.
const FRAMES_BEFORE_HELLO_MAX: usize = 16;
/// First and longest wait before retrying a final reconnection the server refused with
/// 503 (`full`/`busy`), in milliseconds; the wait doubles, with jitter, in between.
const RECONNECT_RETRY_DELAY_MS_MIN: u64 = 100;
const RECONNECT_RETRY_DELAY_MS_MAX: u64 = 1_600;

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

/// A request sent and not answered yet.
#[derive(Debug)]
struct Pending {
    req: String,
    slot: u8,
    is_bet: bool,
    sent_at: Instant,
    /// The request itself, sent again after a reconnection.
    message: ClientMessage,
    /// Sent again after a reconnection: its reply may be the first one, verbatim.
    resent: bool,
}

/// A bet the bot holds in a slot, from the request until its round crashed and its
/// outcome is known.
#[derive(Debug)]
struct OpenBet {
    round: u64,
    slot: u8,
    amount_minor: i64,
    exit: Exit,
    acked: bool,
    cashout_sent: bool,
    /// Cashout multiplier and payout, once a private frame told them.
    win: Option<(u64, i64)>,
    /// The same as listed by the public feed, when it listed it.
    listed: Option<(u64, i64)>,
    /// The crash point of its round, once crashed.
    crashed_at: Option<u64>,
    /// The bot was away during this bet's round: a private report of its auto-cashout
    /// may have been sent to the lost connection.
    blind: bool,
}

impl OpenBet {
    /// Whether the engine owes it an auto-cashout whose private report has not come yet.
    fn awaits_auto_cashout(&self) -> bool {
        let target = self.exit.auto();
        self.acked
            && !self.blind
            && self.win.is_none()
            && matches!((target, self.crashed_at), (Some(auto), Some(crash)) if auto < crash)
    }

    /// Its round is over and everything about it is known.
    fn is_settled(&self) -> bool {
        self.crashed_at.is_some() && !self.awaits_auto_cashout()
    }
}

/// Where a cashout report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `cashout_ok`: the bot's own request.
    Reply,
    /// `balance` naming the cashout: the engine's auto-cashout or max profit.
    Engine,
    /// The tick or crash lists.
    Public,
}

/// A planned click in the betting phase.
#[derive(Debug)]
struct PlannedBets {
    round: u64,
    at: Instant,
    stakes: [Option<Stake>; 2],
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
    pending: Vec<Pending>,
    outbox: Vec<ClientMessage>,
    requests_sent: u64,
    /// The bot's own ledger, in minor units; `None` before `hello`.
    expected_minor: Option<i64>,
    /// The last balance the server sent, in minor units.
    last_balance_minor: i64,
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
    /// The bot was away: its own ledger is set to the next fresh balance the server
    /// sends once no re-sent request waits (see the module doc).
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
            pending: Vec::new(),
            outbox: Vec::new(),
            requests_sent: 0,
            expected_minor: None,
            last_balance_minor: 0,
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

    /// Opens a connection again after losing one for `why`: to the next gateway in turn,
    /// resuming after the last event followed, trying until `context.reconnect_ms_max`
    /// has passed. Unanswered requests go out again with their `req`. Without
    /// `reconnect_ms_max`, or when no gateway takes the connection in time, the loss is
    /// reported and `None` returned.
    async fn reconnect(&mut self, token: &str, source: Ipv4Addr, why: String) -> Option<Socket> {
        let Some(reconnect_ms_max) = self.context.reconnect_ms_max else {
            self.fail(Check::Disconnected, why);
            return None;
        };
        let deadline = (Instant::now() + Duration::from_millis(reconnect_ms_max))
            .min(self.context.stop_deadline);
        let resume =
            (self.epoch.zip(self.stream.last_seq())).map(|(epoch, since)| Resume { since, epoch });
        let mut delay_ms = RECONNECT_RETRY_DELAY_MS_MIN;
        let mut last_error = why;
        while Instant::now() < deadline {
            self.server = (self.server + 1) % self.context.servers.len();
            let server = self.context.servers[self.server];
            let attempt = connection::open(server, source, token, &self.context.room, resume);
            match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Ok(socket)) => {
                    self.resumed(resume.is_some());
                    return Some(socket);
                }
                Ok(Err(error)) => last_error = format!("{server}: {error:#}"),
                Err(_) => break,
            }
            let jittered_ms = self.rng.random_range(delay_ms / 2..=delay_ms);
            tokio::time::sleep_until(
                deadline.min(Instant::now() + Duration::from_millis(jittered_ms)),
            )
            .await;
            delay_ms = (delay_ms * 2).min(RECONNECT_RETRY_DELAY_MS_MAX);
        }
        let message = format!(
            "no gateway took the connection back within {reconnect_ms_max} ms: {last_error}"
        );
        self.fail(Check::ReconnectFailed, message);
        None
    }

    /// A new connection replaces a lost one.
    fn resumed(&mut self, sent_position: bool) {
        let stats = &self.context.stats;
        stats
            .reconnects
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.resuming = sent_position;
        self.rebase_pending = true;
        for bet in self.slots.iter_mut().flatten() {
            bet.blind = true;
        }
        for request in &mut self.pending {
            request.resent = true;
            self.outbox.push(request.message.clone());
        }
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
            && (self.rebase_pending || self.expected_minor == Some(self.last_balance_minor))
    }

    fn on_message(&mut self, message: Message) {
        match message {
            Message::Text(text) => {
                self.local.frames_received += 1;
                match connection::decode(text.as_str()) {
                    Ok(Incoming::Event(event)) => self.on_event(event, Instant::now()),
                    Ok(Incoming::Private(message)) => self.on_private(message, Instant::now()),
                    Err(error) => self.fail(Check::BadFrame, format!("{error}: {}", text.as_str())),
                }
            }
            Message::Close(frame) => {
                self.lost = Some(format!("server closed the connection: {frame:?}"));
            }
            Message::Binary(_) => self.fail(Check::BadFrame, "binary frame".to_owned()),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }

    fn on_event(&mut self, event: RoomEvent, now: Instant) {
        let kind = EventKind::of(&event);
        match self.stream.on_event(event.seq(), event.round(), kind) {
            Ok(ticks_skipped) => self.local.ticks_conflated += ticks_skipped,
            Err(failure) => self.report(failure),
        }
        match event {
            RoomEvent::Betting { round, ends_at, .. } => self.on_betting(round, ends_at, now),
            RoomEvent::Flying { round, .. } => {
                self.context.stats.note_flying(round);
                self.round = round;
                self.phase = Phase::Flying;
                self.tick_m = 100;
                if self.stopping {
                    self.cash_out_due(u64::MAX, now);
                }
            }
            RoomEvent::Tick {
                round,
                m,
                at,
                bets,
                cashouts,
                totals,
                ..
            } => {
                let lag_ms = unix_now_ms().saturating_sub(at);
                self.local.tick_lags_us.push(lag_ms.saturating_mul(1_000));
                self.check_feed(round, &bets, &cashouts, totals);
                self.on_tick(round, m, &cashouts, now);
            }
            RoomEvent::Crash {
                round,
                m,
                hash,
                cashouts,
                totals,
                ..
            } => {
                self.check_feed(round, &[], &cashouts, totals);
                self.on_crash(round, m, hash, &cashouts, totals);
            }
        }
    }

    /// The public lists are largest first and the round's totals never go down.
    fn check_feed(
        &mut self,
        round: u64,
        bets: &[PublicBet],
        cashouts: &[PublicCashout],
        totals: Option<RoundTotals>,
    ) {
        if let Err(failure) = verify::check_feed_order(bets, cashouts) {
            self.report(failure);
        }
        let Some(totals) = totals else { return };
        if let Some((totals_round, previous)) = self.totals
            && totals_round == round
            && let Err(failure) = verify::check_totals_grow(round, &previous, &totals)
        {
            self.report(failure);
        }
        self.totals = Some((round, totals));
    }

    fn on_betting(&mut self, round: u64, ends_at_ms: u64, now: Instant) {
        self.release_bets_before(round);
        if self.pending.is_empty()
            && self.late.is_empty()
            && !self.rebase_pending
            && self
                .expected_minor
                .is_some_and(|expected| expected != self.last_balance_minor)
        {
            let message = format!(
                "before round {round}: own ledger {:?}, server's last balance {}",
                self.expected_minor, self.last_balance_minor
            );
            self.fail(Check::BalanceDrift, message);
        }
        self.round = round;
        self.phase = Phase::Betting;
        self.tick_m = 100;
        self.plan_bets(round, ends_at_ms, now);
    }

    /// Frees the slots of earlier rounds' bets, except those a request still waits about.
    /// The crash was a pause of seconds ago, so an auto-cashout's private report that has
    /// not come by now never will.
    fn release_bets_before(&mut self, round: u64) {
        for slot in 0..self.slots.len() {
            let Some(bet) = self.slots[slot].as_ref().filter(|bet| bet.round < round) else {
                continue;
            };
            let slot_u8 = u8::try_from(slot).expect("two slots");
            if self.pending.iter().any(|request| request.slot == slot_u8) {
                continue;
            }
            if bet.awaits_auto_cashout() && self.context.faults_expected {
                self.late.extend(self.slots[slot].take());
                continue;
            }
            if bet.awaits_auto_cashout() {
                let message = format!(
                    "round {} crashed at {:?}, slot {slot} auto {:?}: no payout reported by round {round}",
                    bet.round,
                    bet.crashed_at,
                    bet.exit.auto()
                );
                self.fail(Check::AutoCashoutMissed, message);
            }
            self.slots[slot] = None;
        }
    }

    fn plan_bets(&mut self, round: u64, ends_at_ms: u64, now: Instant) {
        if self.stopping {
            return;
        }
        let window_ms = ends_at_ms.saturating_sub(unix_now_ms());
        self.plan = behaviour::plan_round(&mut self.rng, window_ms).map(|plan| PlannedBets {
            round,
            at: now + Duration::from_millis(plan.delay_ms),
            stakes: plan.stakes,
        });
    }

    fn place_planned_bets(&mut self, now: Instant) {
        let Some(plan) = self.plan.take() else { return };
        if plan.round != self.round || self.phase != Phase::Betting {
            return;
        }
        for stake in plan.stakes.into_iter().flatten() {
            let slot = usize::from(stake.slot);
            if self.slots[slot].is_some() {
                continue;
            }
            let req = self.next_req();
            self.slots[slot] = Some(OpenBet {
                round: self.round,
                slot: stake.slot,
                amount_minor: stake.amount_minor,
                exit: stake.exit,
                acked: false,
                cashout_sent: false,
                win: None,
                listed: None,
                crashed_at: None,
                blind: false,
            });
            let message = ClientMessage::Bet {
                req: req.clone(),
                amount: stake.amount_minor,
                auto: stake.exit.auto(),
                slot: stake.slot,
            };
            self.outbox.push(message.clone());
            self.pending.push(Pending {
                req,
                slot: stake.slot,
                is_bet: true,
                sent_at: now,
                message,
                resent: false,
            });
            self.local.bets_sent += 1;
        }
    }

    fn on_tick(&mut self, round: u64, m: u64, cashouts: &[PublicCashout], now: Instant) {
        self.apply_public_cashouts(round, cashouts);
        if self.phase == Phase::Flying && round == self.round {
            self.tick_m = self.tick_m.max(m);
            self.cash_out_due(m, now);
        }
    }

    /// Sends `cashout` for every acknowledged bet of the flying round whose target `m`
    /// reached, or for all of them once the run is stopping.
    fn cash_out_due(&mut self, m: u64, now: Instant) {
        for slot in 0..self.slots.len() {
            let due = self.slots[slot].as_ref().is_some_and(|bet| {
                let target_reached = match bet.exit {
                    Exit::Manual(target) => m >= target,
                    Exit::Auto(_) => false,
                };
                bet.round == self.round
                    && bet.acked
                    && !bet.cashout_sent
                    && bet.win.is_none()
                    && (self.stopping || target_reached)
            });
            if !due {
                continue;
            }
            let req = self.next_req();
            if let Some(bet) = self.slots[slot].as_mut() {
                bet.cashout_sent = true;
            }
            let slot = u8::try_from(slot).expect("two slots");
            let message = ClientMessage::Cashout {
                req: req.clone(),
                slot,
            };
            self.outbox.push(message.clone());
            self.pending.push(Pending {
                req,
                slot,
                is_bet: false,
                sent_at: now,
                message,
                resent: false,
            });
            self.local.cashouts_sent += 1;
        }
    }

    fn on_crash(
        &mut self,
        round: u64,
        m: u64,
        hash: String,
        cashouts: &[PublicCashout],
        totals: Option<RoundTotals>,
    ) {
        let fair = &self.context.fair;
        let previous = self
            .last_crash
            .as_ref()
            .map(|(round, hash)| (*round, hash.as_str()));
        let failures = [
            fair.check_crash(round, m, &hash).err(),
            fair.check_link(previous, round, &hash).err(),
        ];
        for failure in failures.into_iter().flatten() {
            self.report(failure);
        }
        if round == self.round && self.tick_m > m {
            self.fail(
                Check::TickAboveCrash,
                format!("round {round} ticked {} but crashed at {m}", self.tick_m),
            );
        }
        self.apply_public_cashouts(round, cashouts);
        let own: Vec<i64> = self
            .slots
            .iter()
            .flatten()
            .filter(|bet| bet.round == round && bet.acked)
            .map(|bet| bet.amount_minor)
            .collect();
        if let Err(failure) = verify::check_totals_count(round, totals.as_ref(), &own) {
            self.report(failure);
        }
        for slot in 0..self.slots.len() {
            let Some(bet) = self.slots[slot].as_mut().filter(|bet| bet.round == round) else {
                continue;
            };
            // Payouts are reported privately, maybe only after the crash (replies follow
            // the ledger commit): the bet stays until the next round opens.
            bet.crashed_at = Some(m);
        }
        self.phase = Phase::Crashed;
        self.last_crash = Some((round, hash));
        self.context.stats.note_crash(round);
    }

    fn apply_public_cashouts(&mut self, round: u64, cashouts: &[PublicCashout]) {
        for cashout in cashouts {
            if cashout.player != self.player {
                continue;
            }
            self.apply_win(cashout.slot, round, cashout.m, cashout.win, Source::Public);
        }
    }

    /// Books a cashout of `slot` the bot learnt of privately, checking it against the
    /// bet; a public listing is only compared with the private report.
    fn apply_win(&mut self, slot: u8, round: u64, m: u64, win_minor: i64, source: Source) {
        let in_slot = (self.slots.get_mut(usize::from(slot)))
            .and_then(Option::as_mut)
            .filter(|bet| bet.round == round);
        let late = |bet: &&mut OpenBet| bet.round == round && bet.slot == slot;
        let Some(bet) = in_slot.or_else(|| self.late.iter_mut().find(late)) else {
            let message = format!(
                "cashout of slot {slot} in round {round} at {m} ({source:?}) without a bet"
            );
            return self.fail(Check::UnrequestedCashout, message);
        };
        let conflict = |(known_m, known_win): (u64, i64)| {
            ((known_m, known_win) != (m, win_minor)).then(|| {
                Failure::new(
                    Check::CashoutConflict,
                    format!(
                        "slot {slot} round {round}: cashout {known_m}/{known_win}, then {m}/{win_minor} ({source:?})"
                    ),
                )
            })
        };
        if let Some(known) = bet.win {
            if let Some(failure) = conflict(known) {
                self.report(failure);
            }
            return;
        }
        if source == Source::Public {
            bet.listed = Some((m, win_minor));
            return;
        }
        let mut failures = vec![
            verify::check_win(bet.amount_minor, m, win_minor).err(),
            bet.listed.and_then(conflict),
        ];
        if source == Source::Engine && !bet.cashout_sent {
            failures.push(match bet.exit {
                Exit::Auto(auto) if auto != m => Some(Failure::new(
                    Check::AutoCashoutPrice,
                    format!("round {round} slot {slot}: auto {auto}, cashed out at {m}"),
                )),
                Exit::Auto(_) => None,
                Exit::Manual(_) => Some(Failure::new(
                    Check::UnrequestedCashout,
                    format!(
                        "round {round} slot {slot}: cashed out at {m} without an auto or a request"
                    ),
                )),
            });
        }
        bet.win = Some((m, win_minor));
        self.late.retain(|bet| bet.win.is_none());
        if let Some(expected) = self.expected_minor.as_mut() {
            *expected += win_minor;
        }
        for failure in failures.into_iter().flatten() {
            self.report(failure);
        }
    }

    fn on_private(&mut self, message: ServerMessage, now: Instant) {
        match message {
            ServerMessage::Hello {
                player,
                balance,
                recovered,
                ..
            } => self.on_hello(&player, balance, recovered),
            ServerMessage::Snapshot {
                epoch,
                seq,
                round,
                phase,
                ends_at,
                history,
                totals,
                ..
            } => {
                self.totals = totals.map(|totals| (round, totals));
                self.epoch = epoch;
                self.on_snapshot(seq, round, phase, ends_at, &history, now);
            }
            ServerMessage::BetOk {
                req,
                round,
                slot,
                amount,
                auto,
                balance,
            } => {
                let fresh = self.is_fresh_reply(&req, true);
                self.on_bet_ok(&req, round, slot, amount, auto, now);
                self.observe_balance(balance, fresh);
            }
            ServerMessage::CashoutOk {
                req,
                round,
                slot,
                m,
                win,
                balance,
            } => {
                let fresh = self.is_fresh_reply(&req, false);
                if let Some(request) = self.take_pending(&req, false, now) {
                    self.local.cashouts_acked += 1;
                    if request.slot != slot {
                        self.fail(
                            Check::ReplyMismatch,
                            format!(
                                "cashout {req} of slot {} answered for slot {slot}",
                                request.slot
                            ),
                        );
                    }
                    self.apply_win(slot, round, m, win, Source::Reply);
                }
                self.observe_balance(balance, fresh);
            }
            ServerMessage::BetErr { req, code, message } => {
                self.on_reject(&req, true, code, &message, now)
            }
            ServerMessage::CashoutErr { req, code, message } => {
                self.on_reject(&req, false, code, &message, now)
            }
            ServerMessage::Balance { balance, cashout } => {
                if let Some(BetCashout {
                    round,
                    slot,
                    m,
                    win,
                }) = cashout
                {
                    self.apply_win(slot, round, m, win, Source::Engine);
                }
                self.observe_balance(balance, true);
            }
            ServerMessage::Error { code, message } => {
                self.fail(Check::ErrorFrame, format!("{}: {message}", code.as_str()))
            }
            ServerMessage::Pong { .. } => {}
        }
    }

    fn on_hello(&mut self, player: &str, balance: i64, recovered: Option<bool>) {
        if player != self.player {
            self.fail(Check::ReplyMismatch, format!("hello for player {player}"));
        }
        if std::mem::take(&mut self.resuming) {
            self.on_resume_answer(recovered);
        }
        if self.expected_minor.is_none() {
            if balance != self.granted_minor {
                let message = format!(
                    "hello balance {balance}, guest granted {}",
                    self.granted_minor
                );
                self.fail(Check::ReplyMismatch, message);
            }
            self.expected_minor = Some(balance);
        }
        self.observe_balance(balance, true);
    }

    /// Counts how the gateway answered a reconnection with `since`.
    fn on_resume_answer(&mut self, recovered: Option<bool>) {
        let stats = self.context.stats.clone();
        let counter = match recovered {
            Some(true) => &stats.resumes_recovered,
            Some(false) => &stats.resumes_snapshot,
            None => {
                let message = "hello without `recovered` after a reconnection with `since`";
                return self.fail(Check::ResumeUnanswered, message.to_owned());
            }
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn on_snapshot(
        &mut self,
        seq: u64,
        round: u64,
        phase: Phase,
        ends_at_ms: Option<u64>,
        history: &[PastRound],
        now: Instant,
    ) {
        self.stream.on_snapshot(seq, round, phase);
        for failure in self.context.fair.check_history(history) {
            self.report(failure);
        }
        self.last_crash = history
            .iter()
            .max_by_key(|past| past.round)
            .map(|past| (past.round, past.hash.clone()));
        self.round = round;
        self.phase = phase;
        self.tick_m = 100;
        if let (Phase::Betting, Some(ends_at_ms)) = (phase, ends_at_ms) {
            self.plan_bets(round, ends_at_ms, now);
        }
    }

    fn on_bet_ok(
        &mut self,
        req: &str,
        round: u64,
        slot: u8,
        amount_minor: i64,
        auto: Option<u64>,
        now: Instant,
    ) {
        let Some(request) = self.take_pending(req, true, now) else {
            return;
        };
        self.local.bets_acked += 1;
        let slot_index = usize::from(request.slot);
        let Some(bet) = self.slots[slot_index].as_mut() else {
            return;
        };
        bet.acked = true;
        let asked = (bet.round, request.slot, bet.amount_minor, bet.exit.auto());
        let stake_minor = bet.amount_minor;
        if let Some(expected) = self.expected_minor.as_mut() {
            *expected -= stake_minor;
        }
        if asked != (round, slot, amount_minor, auto) {
            let message = format!(
                "bet {req}: asked (round, slot, amount, auto) {asked:?}, got {:?}",
                (round, slot, amount_minor, auto)
            );
            self.fail(Check::ReplyMismatch, message);
        }
        self.context.stats.record_acked_bet(AckedBet {
            round,
            player: self.player.clone(),
            slot,
            amount_minor,
        });
    }

    fn on_reject(&mut self, req: &str, is_bet: bool, code: ErrorCode, message: &str, now: Instant) {
        let Some(request) = self.take_pending(req, is_bet, now) else {
            return;
        };
        let kind = if is_bet { "bet" } else { "cashout" };
        self.context.stats.record_reject(kind, code.as_str());
        if is_bet {
            self.slots[usize::from(request.slot)] = None;
        }
        let expected = match code {
            ErrorCode::WrongPhase | ErrorCode::Overloaded => true,
            ErrorCode::Internal => is_bet && self.context.faults_expected,
            ErrorCode::TooLate | ErrorCode::NoActiveBet => !is_bet,
            _ => false,
        };
        if !expected {
            self.fail(
                Check::UnexpectedReject,
                format!("{kind} {req}: {}: {message}", code.as_str()),
            );
        }
    }

    /// Removes the request `req` from those in flight and records its latency.
    fn take_pending(&mut self, req: &str, is_bet: bool, now: Instant) -> Option<Pending> {
        let position = self
            .pending
            .iter()
            .position(|request| request.req == req && request.is_bet == is_bet);
        let Some(position) = position else {
            self.fail(
                Check::UnknownReply,
                format!("reply to unknown request {req:?}"),
            );
            return None;
        };
        let request = self.pending.swap_remove(position);
        let latency_us =
            u64::try_from(now.duration_since(request.sent_at).as_micros()).unwrap_or(u64::MAX);
        self.local.ack_latencies_us.push(latency_us);
        Some(request)
    }

    /// Whether a reply to `req` carries a balance of now: it answers a request that
    /// was not re-sent.
    fn is_fresh_reply(&self, req: &str, is_bet: bool) -> bool {
        (self.pending.iter())
            .any(|request| request.req == req && request.is_bet == is_bet && !request.resent)
    }

    /// Notes a balance the server sent; a `fresh` one (not from a verbatim replay)
    /// re-bases the own ledger after a reconnection once no re-sent request waits.
    fn observe_balance(&mut self, balance_minor: i64, fresh: bool) {
        if balance_minor < 0 {
            self.fail(Check::NegativeBalance, format!("balance {balance_minor}"));
        }
        self.last_balance_minor = balance_minor;
        if fresh && self.rebase_pending && !self.pending.iter().any(|request| request.resent) {
            self.expected_minor = Some(balance_minor);
            self.rebase_pending = false;
        }
    }

    fn next_req(&mut self) -> String {
        self.requests_sent += 1;
        format!("b{}-{}", self.index, self.requests_sent)
    }

    /// Reconnects once and compares `hello.balance`, read from the ledger, with the
    /// bot's own ledger.
    async fn final_check(&mut self, token: &str, source: Ipv4Addr) {
        let budget = self
            .context
            .stop_deadline
            .saturating_duration_since(Instant::now());
        let context = self.context.clone();
        let server = context.servers[self.server];
        let retrying = read_hello_retrying(&context, server, token, source, &mut self.rng);
        let hello = tokio::time::timeout(budget, retrying).await;
        let expected = self.expected_minor;
        match hello {
            // Not re-based since a reconnection: nothing to compare the ledger with.
            Ok(Ok(_)) if self.rebase_pending => {}
            Ok(Ok(balance)) if Some(balance) == expected => {}
            Ok(Ok(balance)) => {
                let message = format!(
                    "ledger says {balance}, own ledger {expected:?}, last balance frame {}",
                    self.last_balance_minor
                );
                self.fail(Check::FinalBalance, message);
            }
            Ok(Err(error)) => self.fail(Check::ReconnectFailed, format!("{error:#}")),
            Err(_) => self.fail(
                Check::ReconnectFailed,
                format!("no hello within {} ms", budget.as_millis()),
            ),
        }
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

/// [`read_hello`], tried again as a client would when the server answers 503 (`full` or
/// `busy`: docs/protocol.md asks to retry later) — thousands of bots reconnect at the
/// same crash at the end of a run. The caller bounds the time.
async fn read_hello_retrying(
    context: &RunContext,
    server: SocketAddr,
    token: &str,
    source: Ipv4Addr,
    rng: &mut SmallRng,
) -> anyhow::Result<i64> {
    let mut delay_ms = RECONNECT_RETRY_DELAY_MS_MIN;
    loop {
        match read_hello(context, server, token, source).await {
            Err(error) if is_retry_later(&error) => {
                context
                    .stats
                    .final_reconnect_retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let jittered_ms = rng.random_range(delay_ms / 2..=delay_ms);
                tokio::time::sleep(Duration::from_millis(jittered_ms)).await;
                delay_ms = (delay_ms * 2).min(RECONNECT_RETRY_DELAY_MS_MAX);
            }
            outcome => return outcome,
        }
    }
}

/// Whether the server refused the WebSocket handshake with 503.
fn is_retry_later(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<WsError>(),
            Some(WsError::Http(response)) if response.status().as_u16() == 503
        )
    })
}

/// Opens a new connection to `server` with `token` and returns the balance of its `hello`.
async fn read_hello(
    context: &RunContext,
    server: SocketAddr,
    token: &str,
    source: Ipv4Addr,
) -> anyhow::Result<i64> {
    let mut socket = connection::open(server, source, token, &context.room, None).await?;
    let mut balance = None;
    for _ in 0..FRAMES_BEFORE_HELLO_MAX {
        let Some(frame) = socket.next().await else {
            break;
        };
        if let Message::Text(text) = frame?
            && let Ok(Incoming::Private(ServerMessage::Hello {
                balance: hello_balance,
                ..
            })) = connection::decode(text.as_str())
        {
            balance = Some(hello_balance);
            break;
        }
    }
    // The check is done; a failed close frame changes nothing.
    let _ = socket.close(None).await;
    balance.ok_or_else(|| anyhow::anyhow!("no hello in the first {FRAMES_BEFORE_HELLO_MAX} frames"))
}

/// The wall clock in unix milliseconds, to read the server's `ends_at` (same machine).
fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use tokio_tungstenite::tungstenite::http::Response;

    fn refused(status: u16) -> anyhow::Error {
        let response = Response::builder().status(status).body(None).unwrap();
        Err::<(), _>(WsError::Http(Box::new(response)))
            .context("WebSocket handshake")
            .unwrap_err()
    }

    #[test]
    fn only_a_503_handshake_is_retried() {
        assert!(is_retry_later(&refused(503)));
        assert!(!is_retry_later(&refused(401)));
        assert!(!is_retry_later(&anyhow::anyhow!("connection refused")));
    }
}

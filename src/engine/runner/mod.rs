//! The async driver of one room: [`run_room`], the engine's only I/O.
//!
//! Owns the room's wake-up loop and the performing of [`RoomCore`]'s decisions: it sleeps
//! until the core's next deadline or the next command, then reads the clock once, lets
//! the core advance, hands it every command already queued (up to `command_batch_max`),
//! writes the journal, applies all the resulting transfers in one ledger batch (group
//! commit), feeds the outcomes back to the core, publishes the events (each serialized
//! once) and sends the replies.
//!
//! Failure policy: a bus error on a reply or an event is logged and counted, never
//! fatal. A failed ledger batch answers its bets `internal` (slots freed) and keeps its
//! payouts and refunds to retry on every wake until committed; their ids make a retry
//! exactly-once. A round's terminal journal record (Crashed, Aborted) is written only
//! after all its payouts and refunds are committed, so a process that dies in between
//! leaves the round unfinished and the next start settles it: [`run_room`] first refunds
//! every stake of an unfinished round that has neither a payout nor a refund.
//!
//! Cluster mode: [`lead_room`] runs a room under a lease instead. Every ledger write
//! carries the lease's fencing token (a deposed leader's writes are refused and it stops);
//! the round a previous leader left in flight is resumed from the ledger, not refunded;
//! and a handover stops the room where it is, for the next leader to resume.
//!
//! Parts: `mod.rs` the loop (wake on a deadline or a command, take every command
//! already queued, up to `command_batch_max`), publishing and replies; `batching` the
//! ledger side of a wake; `recovery` the rounds a process left unfinished; `takeover`
//! what a new leader continues; `deps` what the engine is given and its errors.

mod batching;
mod controls;
mod deps;
mod recovery;
mod takeover;
#[cfg(test)]
mod test_support;

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use super::answer::Reply;
use super::breaker::LedgerBreaker;
use super::event::RoundEvent;
use super::round::{BetTerms, RoomCore, RoomSettings, TransferIntent};
use bytes::Bytes;

use crate::bus::{Command, CommandEnvelope, EventEnvelope, ReplyEnvelope, ReplyTo, RequestId};
use crate::ledger::RoundRecord;
use crate::metrics::engine::RoomMetrics;
use crate::status::leading::LeadingRoom;

use deps::LedgerWriter;
pub use deps::{EngineDeps, EngineError, Leadership};
use recovery::abort_unfinished_rounds;
pub(crate) use recovery::next_round;
use takeover::{
    continued_numbering, leader_recovery_error, leading_core, opening_core, with_stored_controls,
};

/// Journal records waiting for a failing ledger, at most (one per round: later records
/// of a round replace earlier ones). Past it the engine stops and leaves the rounds to
/// the recovery of the next start.
pub const JOURNAL_BACKLOG_ROUNDS_MAX: usize = 256;

/// How long a paused room sleeps when no command wakes it, in milliseconds.
const PAUSED_WAKE_INTERVAL_MS: u64 = 1_000;

/// Attempts to flush payouts, refunds and the journal at shutdown.
const SHUTDOWN_FLUSH_ATTEMPTS_MAX: u32 = 5;

/// Pause between two shutdown flush attempts.
const SHUTDOWN_FLUSH_RETRY_DELAY_MS: u64 = 200;

/// Runs the rounds of `settings.room` until `shutdown` is cancelled. At shutdown the
/// round in flight is aborted (open stakes refunded) and pending payouts are flushed.
pub async fn run_room(
    settings: RoomSettings,
    deps: EngineDeps,
    shutdown: CancellationToken,
) -> Result<(), EngineError> {
    let room = settings.room.clone();
    let mut commands = take_commands(&deps, &room).await?;
    let now_ms = deps.clock.now_ms();
    let writer = LedgerWriter {
        ledger: deps.ledger.clone(),
        fence: None,
    };
    let recovery_error = |source| EngineError::Recovery {
        room: room.clone(),
        source,
    };
    let unfinished = deps
        .ledger
        .unfinished_rounds(&room)
        .await
        .map_err(recovery_error)?;
    abort_unfinished_rounds(&room, &writer, unfinished, now_ms)
        .await
        .map_err(recovery_error)?;
    let first_round = next_round(deps.ledger.as_ref(), &room)
        .await
        .map_err(recovery_error)?;
    let (settings, paused) = with_stored_controls(&deps, settings)
        .await
        .map_err(recovery_error)?;
    let core = opening_core(settings.clone(), &deps, first_round, 1, now_ms, paused)?;
    tracing::info!(room = %room, round = first_round, "room engine started");
    // Numbering restarts at 1: a new epoch, the clock at start.
    let mut runner = RoomRunner::new(settings, deps, core, writer, now_ms, now_ms);
    runner.perform().await?;
    // Only a cluster leader hands a room over.
    let never_handed_over = CancellationToken::new();
    runner
        .run(&mut commands, &shutdown, &never_handed_over)
        .await
}

/// Leads `settings.room` for a cluster until `leadership.handover` is cancelled (or a
/// newer leader fences this one off): resumes the newest round a previous leader left in
/// flight, refunds older ones, then plays on. The caller took the lease's token from the
/// ledger (`Ledger::acquire_fence`) before, so every read here sees the previous leader's
/// last write.
pub async fn lead_room(
    settings: RoomSettings,
    deps: EngineDeps,
    leadership: Leadership,
) -> Result<(), EngineError> {
    let Leadership { fence, handover } = leadership;
    assert_eq!(fence.room, settings.room, "a lease is per room");
    let room = settings.room.clone();
    let mut commands = take_commands(&deps, &room).await?;
    let now_ms = deps.clock.now_ms();
    let writer = LedgerWriter {
        ledger: deps.ledger.clone(),
        fence: Some(fence),
    };
    let recovery_error = |source| leader_recovery_error(&room, source);
    let mut unfinished = deps
        .ledger
        .unfinished_rounds(&room)
        .await
        .map_err(recovery_error)?;
    let in_flight = unfinished.pop();
    abort_unfinished_rounds(&room, &writer, unfinished, now_ms)
        .await
        .map_err(recovery_error)?;
    let resumed_round = in_flight.as_ref().map(|record| record.round);
    let continuation = continued_numbering(&deps, &room, resumed_round, now_ms).await;
    let epoch = continuation.epoch;
    let (settings, paused) = with_stored_controls(&deps, settings)
        .await
        .map_err(recovery_error)?;
    let core = leading_core(&settings, &deps, in_flight, &continuation, now_ms, paused).await?;
    let mut runner = RoomRunner::new(settings, deps, core, writer, epoch, now_ms);
    runner.perform().await?;
    // A leader never aborts its round: it stops by handing it over.
    let never_aborted = CancellationToken::new();
    runner.run(&mut commands, &never_aborted, &handover).await
}

async fn take_commands(
    deps: &EngineDeps,
    room: &str,
) -> Result<BoxStream<'static, CommandEnvelope>, EngineError> {
    deps.bus
        .commands(room)
        .await
        .map_err(|source| EngineError::Commands {
            room: room.to_owned(),
            source,
        })
}

/// The state of a running room beside its core: what is still owed to the ledger.
struct RoomRunner {
    room: String,
    command_batch_max: usize,
    core: RoomCore,
    deps: EngineDeps,
    /// Payouts and refunds decided but not yet committed (a batch failed); retried on
    /// every wake. Bounded by the bets of the rounds they belong to.
    credits_to_retry: Vec<TransferIntent>,
    /// Journal records not yet written, oldest first, at most one per round.
    records_to_write: VecDeque<RoundRecord>,
    /// Latest clock reading: the engine's time never goes back, even if the wall clock does.
    last_now_ms: u64,
    /// Where journal records and transfers go.
    writer: LedgerWriter,
    /// The fencing token of the newer leader that refused a write, once one did.
    deposed_by: Option<u64>,
    /// The epoch stamped on every event: numbering is contiguous within it (see
    /// `run_room` and `continued_numbering`).
    epoch: u64,
    /// Refuses bets while the ledger fails or is slow (see `engine::breaker`).
    breaker: LedgerBreaker,
    metrics: RoomMetrics,
    /// The room registered as led by this process, while the runner lives.
    status: LeadingRoom,
}

impl RoomRunner {
    fn new(
        settings: RoomSettings,
        deps: EngineDeps,
        core: RoomCore,
        writer: LedgerWriter,
        epoch: u64,
        now_ms: u64,
    ) -> RoomRunner {
        let breaker = LedgerBreaker::new(
            settings.engine.ledger_batch_timeout_ms,
            settings.engine.ledger_breaker_cooldown_ms,
        );
        let metrics = RoomMetrics::new(&settings.room);
        metrics.leading.set(1.0);
        let fencing_token = writer.fence.as_ref().map(|fence| fence.token);
        let status = (deps.leading).lead(&settings.room, epoch, fencing_token, now_ms);
        let cap_minor = settings.engine.round_profit_max_minor;
        metrics.round_profit_max_minor.set(cap_minor as f64);
        RoomRunner {
            breaker,
            metrics,
            status,
            room: settings.room,
            command_batch_max: settings.engine.command_batch_max,
            core,
            deps,
            credits_to_retry: Vec::new(),
            records_to_write: VecDeque::new(),
            last_now_ms: now_ms,
            writer,
            deposed_by: None,
            epoch,
        }
    }

    /// Plays until `shutdown` (abort the round in flight, refund, flush) or `handover`
    /// (stop between two wakes, leaving the round to the next leader).
    async fn run(
        &mut self,
        commands: &mut BoxStream<'static, CommandEnvelope>,
        shutdown: &CancellationToken,
        handover: &CancellationToken,
    ) -> Result<(), EngineError> {
        loop {
            // A paused room has no deadline: it wakes for commands, and now and then.
            let sleep_ms = match self.core.next_deadline_ms() {
                Some(deadline_ms) => deadline_ms.saturating_sub(self.deps.clock.now_ms()),
                None => PAUSED_WAKE_INTERVAL_MS,
            };
            let mut batch = Vec::new();
            let mut closed = false;
            tokio::select! {
                biased;
                () = handover.cancelled() => {
                    tracing::info!(room = %self.room, "room handed over");
                    return Ok(());
                }
                () = shutdown.cancelled() => return self.shut_down().await,
                received = commands.next() => match received {
                    Some(command) => batch.push(command),
                    None => closed = true,
                },
                () = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
            }
            closed |= drain_ready(commands, &mut batch, self.command_batch_max);
            let handled_commands = !batch.is_empty();
            self.wake(batch).await?;
            if handled_commands {
                self.deps.bus.commands_handled(&self.room).await;
            }
            if closed {
                self.shut_down().await?;
                return Err(EngineError::CommandsClosed {
                    room: self.room.clone(),
                });
            }
        }
    }

    /// One turn of the loop at one instant: advance, handle the commands, perform.
    async fn wake(&mut self, batch: Vec<CommandEnvelope>) -> Result<(), EngineError> {
        // The commands were received just now: their replies go out at the end of the wake.
        let received = std::time::Instant::now();
        let bets = batch
            .iter()
            .filter(|envelope| matches!(envelope.command, Command::Bet { .. }))
            .count();
        let now_ms = self.now_ms();
        if let Err(exhausted) = self.core.advance(now_ms) {
            // Between rounds: no bet is open. Flush what the last round still owes.
            self.perform().await?;
            return Err(exhausted.into());
        }
        let ledger_available = self.breaker.allows_bets(now_ms);
        self.core.set_ledger_available(ledger_available);
        let mut control_replies = Vec::new();
        for envelope in batch {
            match envelope.command {
                Command::Bet {
                    req,
                    amount_minor,
                    auto_cashout_hundredths,
                    slot,
                    name,
                } => {
                    let terms = BetTerms::new(amount_minor, auto_cashout_hundredths, slot);
                    self.core.bet(now_ms, &envelope.from, &name, &req, terms);
                }
                Command::Chat { name, text } => {
                    self.core.chat(now_ms, &envelope.from, &name, &text);
                }
                Command::Cashout { req, slot } => {
                    self.core.cashout(now_ms, &envelope.from, &req, slot);
                }
                Command::Cancel { req, slot } => {
                    self.core.cancel(now_ms, &envelope.from, &req, slot);
                }
                Command::Control {
                    req,
                    operator,
                    control,
                } => {
                    let from = envelope.from;
                    let reply = self.control(now_ms, from, req, operator, control).await;
                    control_replies.push(reply);
                }
            }
        }
        self.perform().await?;
        // After `perform`: the operator hears of a change once its events are out.
        self.send_replies(control_replies.into_iter()).await;
        let elapsed = received.elapsed();
        (self.metrics.bet_ack_seconds).record_many(elapsed.as_secs_f64(), bets);
        self.status.bets_acked(elapsed, bets as u64);
        Ok(())
    }

    /// Aborts the round in flight (refunding its open stakes) and flushes every payout,
    /// refund and journal record still owed, retrying a failing ledger a few times.
    async fn shut_down(&mut self) -> Result<(), EngineError> {
        let now_ms = self.now_ms();
        self.core.abort(now_ms);
        self.perform().await?;
        for _ in 0..SHUTDOWN_FLUSH_ATTEMPTS_MAX {
            if self.credits_to_retry.is_empty() && self.records_to_write.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(SHUTDOWN_FLUSH_RETRY_DELAY_MS)).await;
            self.perform().await?;
        }
        if !self.credits_to_retry.is_empty() || !self.records_to_write.is_empty() {
            tracing::error!(
                room = %self.room,
                credits = self.credits_to_retry.len(),
                records = self.records_to_write.len(),
                "stopped with ledger writes outstanding; the next start settles the round"
            );
        }
        tracing::info!(room = %self.room, "room engine stopped");
        Ok(())
    }

    async fn publish(&self, events: Vec<RoundEvent>) {
        for event in events {
            match event {
                RoundEvent::Crashed { .. } => self.metrics.rounds.increment(1),
                RoundEvent::ChatPosted { .. } => self.metrics.chat_posted(),
                _ => {}
            }
            let envelope = EventEnvelope {
                room: self.room.clone(),
                epoch: self.epoch,
                seq: event.seq(),
                conflatable: event.is_conflatable(),
                json: self.deps.codec.encode_event(&event),
            };
            if let Err(error) = self.deps.bus.publish(envelope).await {
                metrics::counter!(crate::metrics::ENGINE_BUS_ERRORS, "path" => "publish")
                    .increment(1);
                tracing::warn!(room = %self.room, seq = event.seq(), %error, "event not published");
            }
        }
    }

    async fn send_replies(&self, replies: impl Iterator<Item = Reply>) {
        // Fetched once per wake, and only when needed: a bet resumed from a previous
        // leader has no known connection, so its replies go to every gateway.
        let mut gateways: Option<Vec<String>> = None;
        for Reply { to, answer } in replies {
            self.metrics.answered(&answer);
            let json = self.deps.codec.encode_answer(&answer);
            let answers = answer.request();
            if !to.is_every_socket() {
                self.send_reply(to, answers, json).await;
                continue;
            }
            if gateways.is_none() {
                let listed = self.deps.bus.gateways().await.unwrap_or_else(|error| {
                    tracing::warn!(room = %self.room, %error, "gateways unknown; reply not sent");
                    Vec::new()
                });
                gateways = Some(listed);
            }
            for gateway in gateways.iter().flatten() {
                let to = ReplyTo {
                    gateway: gateway.clone(),
                    ..to.clone()
                };
                self.send_reply(to, answers.clone(), json.clone()).await;
            }
        }
    }

    /// Sends an answer (`json`, for the request `answers`) to `to`; engines send no
    /// operator's player control.
    async fn send_reply(&self, to: ReplyTo, answers: Option<RequestId>, json: Bytes) {
        let envelope = ReplyEnvelope {
            to,
            answers,
            control: None,
            json,
        };
        if let Err(error) = self.deps.bus.send_reply(envelope).await {
            metrics::counter!(crate::metrics::ENGINE_BUS_ERRORS, "path" => "reply").increment(1);
            tracing::warn!(room = %self.room, %error, "reply not sent");
        }
    }

    fn now_ms(&mut self) -> u64 {
        self.last_now_ms = self.deps.clock.now_ms().max(self.last_now_ms);
        self.last_now_ms
    }
}

impl Drop for RoomRunner {
    fn drop(&mut self) {
        self.metrics.leading.set(0.0);
    }
}

/// Moves the commands already queued into `batch`, without waiting, up to `batch_max`.
/// Returns true when the stream has ended.
fn drain_ready(
    commands: &mut BoxStream<'static, CommandEnvelope>,
    batch: &mut Vec<CommandEnvelope>,
    batch_max: usize,
) -> bool {
    while batch.len() < batch_max {
        match commands.next().now_or_never() {
            Some(Some(command)) => batch.push(command),
            Some(None) => return true,
            None => return false,
        }
    }
    false
}
#[cfg(test)]
mod tests {
    use crate::bus::MemoryBus;

    use crate::engine::answer::RefusalCode;
    use crate::engine::answer::{Answer, EngineCashout, EngineRefund};

    use crate::engine::event::RoundEvent;
    use crate::engine::event::RoundTotals;

    use crate::fair;

    use crate::ledger::{Ledger, RoundStatus};

    use super::test_support::*;

    /// alice bets twice with one req, bob bets, carol (no balance) is refused.
    async fn place_opening_bets(bus: &MemoryBus, replies: &mut Replies) {
        send(bus, "alice", bet("a1", 1_000, None)).await;
        send(bus, "alice", bet("a1", 1_000, None)).await;
        send(bus, "bob", bet("b1", 2_000, None)).await;
        send(bus, "carol", bet("c1", 100, None)).await;
        let mut answers = Vec::new();
        for _ in 0..4 {
            answers.push(next_reply(replies).await);
        }
        let alice_ok = Answer::BetAccepted {
            req: "a1".into(),
            round: 1,
            slot: 0,
            stake_minor: 1_000,
            auto_cashout_hundredths: None,
            balance_after_minor: 9_000,
        };
        assert_eq!(
            answers.iter().filter(|answer| answer.1 == alice_ok).count(),
            2
        );
        assert!(answers.contains(&(
            "bob".into(),
            Answer::BetAccepted {
                req: "b1".into(),
                round: 1,
                slot: 0,
                stake_minor: 2_000,
                auto_cashout_hundredths: None,
                balance_after_minor: 8_000,
            }
        )));
        let carol = answers.iter().find(|answer| answer.0 == "carol").unwrap();
        assert!(matches!(
            carol.1,
            Answer::BetRefused { ref refusal, .. } if refusal.code == RefusalCode::InsufficientFunds
        ));
    }

    #[tokio::test]
    async fn bets_cashout_and_a_refund_at_shutdown() {
        let fixture = fixture(1, |crash| crash >= 1_000);
        grant(&fixture.ledger, "alice", 10_000).await;
        grant(&fixture.ledger, "bob", 10_000).await;
        let (mut watcher, mut replies, shutdown, engine) = start(&fixture).await;

        watcher
            .until(|event| matches!(event, RoundEvent::BettingOpened { round: 1, .. }))
            .await;
        place_opening_bets(&fixture.bus, &mut replies).await;

        watcher
            .until(|event| matches!(event, RoundEvent::Tick { multiplier_hundredths, .. } if *multiplier_hundredths >= 110))
            .await;
        send(&fixture.bus, "alice", cashout("out")).await;
        let (_, cashout) = next_reply(&mut replies).await;
        let Answer::CashedOut {
            multiplier_hundredths: m,
            win_minor: win,
            balance_after_minor: balance,
            ..
        } = cashout
        else {
            panic!("cashout_ok: {cashout:?}");
        };
        assert!(m >= 110);
        assert_eq!(win, 1_000 * i64::try_from(m).unwrap() / 100);
        assert_eq!(balance, 9_000 + win);

        shutdown.cancel();
        engine.await.unwrap().unwrap();
        assert_eq!(
            next_reply(&mut replies).await,
            (
                "bob".into(),
                Answer::BalanceChanged {
                    balance_minor: 10_000,
                    cashout: None,
                    refund: Some(EngineRefund {
                        round: 1,
                        slot: 0,
                        refunded_minor: 2_000,
                    }),
                }
            )
        );
        assert_eq!(balance_of(&fixture.ledger, "alice").await, 9_000 + win);
        assert_eq!(balance_of(&fixture.ledger, "bob").await, 10_000);
        assert_eq!(fixture.ledger.total_balance().await.unwrap(), 0);
        let rounds = fixture.ledger.recent_rounds(ROOM, 1).await.unwrap();
        assert_eq!(
            (rounds[0].round, rounds[0].status),
            (1, RoundStatus::Aborted)
        );
        // Alice's stake played; bob's was refunded by the shutdown.
        assert_eq!(
            (rounds[0].bets_total_minor, rounds[0].payouts_total_minor),
            (1_000, win)
        );
        let events = watcher.finish();
        assert!(
            events
                .iter()
                .any(|event| matches!(event, RoundEvent::Tick { bets, .. } if bets.len() == 2))
        );
    }

    #[tokio::test]
    async fn a_round_crashes_pays_auto_cashouts_and_the_next_one_opens() {
        let fixture = fixture(1, |crash| (150..=300).contains(&crash));
        grant(&fixture.ledger, "alice", 10_000).await;
        grant(&fixture.ledger, "bob", 10_000).await;
        let (mut watcher, mut replies, shutdown, engine) = start(&fixture).await;

        watcher
            .until(|event| matches!(event, RoundEvent::BettingOpened { round: 1, .. }))
            .await;
        send(&fixture.bus, "alice", bet("a", 1_000, Some(120))).await;
        send(&fixture.bus, "bob", bet("b", 1_000, None)).await;
        for _ in 0..2 {
            assert!(matches!(
                next_reply(&mut replies).await.1,
                Answer::BetAccepted { .. }
            ));
        }
        let crash = watcher
            .until(|event| matches!(event, RoundEvent::Crashed { .. }))
            .await;
        let hash = fixture.deps.chain.round_hash(1).unwrap();
        let expected_crash = fair::crash_point_hundredths(&hash, &fixture.settings.salt, 100);
        assert!(
            matches!(crash, RoundEvent::Crashed { crash_hundredths, hash: ref revealed, .. } if crash_hundredths == expected_crash && *revealed == hash)
        );
        // Alice learns of her auto-cashout privately, price included.
        let auto_cashout = EngineCashout {
            round: 1,
            slot: 0,
            multiplier_hundredths: 120,
            win_minor: 1_200,
        };
        assert_eq!(
            next_reply(&mut replies).await,
            (
                "alice".into(),
                Answer::BalanceChanged {
                    balance_minor: 10_200,
                    cashout: Some(auto_cashout),
                    refund: None,
                }
            )
        );
        watcher
            .until(|event| matches!(event, RoundEvent::BettingOpened { round: 2, .. }))
            .await;
        shutdown.cancel();
        engine.await.unwrap().unwrap();

        assert_eq!(balance_of(&fixture.ledger, "alice").await, 10_200);
        assert_eq!(balance_of(&fixture.ledger, "bob").await, 9_000);
        assert_eq!(fixture.ledger.total_balance().await.unwrap(), 0);
        let rounds = fixture.ledger.recent_rounds(ROOM, 2).await.unwrap();
        assert_eq!(
            (rounds[1].round, rounds[1].status),
            (1, RoundStatus::Crashed)
        );
        assert_eq!(
            (rounds[0].round, rounds[0].status),
            (2, RoundStatus::Aborted)
        );
        let RoundEvent::Crashed { totals, .. } = crash else {
            panic!("a crash")
        };
        let expected = RoundTotals {
            bets: 2,
            staked_minor: 2_000,
            cashouts: 1,
            won_minor: 1_200,
            cashed_out_stakes_minor: 1_000,
        };
        assert_eq!(totals, Some(expected));
        watcher.finish();
    }
}

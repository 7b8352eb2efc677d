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

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use super::answer::{RefusalCode, Reply};
use super::breaker::LedgerBreaker;
use super::codec::Codec;
use super::event::RoundEvent;
use super::round::{
    BetInFlight, BetSettled, ChainExhausted, Effects, ResumeError, RoomCore, RoomSettings,
    RoundInFlight, TransferIntent, TransferPurpose,
};
use crate::bus::{Bus, BusError, Command, CommandEnvelope, EventEnvelope, ReplyEnvelope, ReplyTo};
use crate::clock::Clock;
use crate::fair::FairChain;
use crate::ledger::{
    Account, BetRef, BetTransferKind, Fence, Ledger, LedgerError, RoundRecord, RoundStatus,
    StoredTransfer, Transfer, TransferId, TransferKind, TransferOutcome,
};

/// Journal records waiting for a failing ledger, at most (one per round: later records
/// of a round replace earlier ones). Past it the engine stops and leaves the rounds to
/// the recovery of the next start.
pub const JOURNAL_BACKLOG_ROUNDS_MAX: usize = 256;
/// Attempts to flush payouts, refunds and the journal at shutdown.
const SHUTDOWN_FLUSH_ATTEMPTS_MAX: u32 = 5;
/// Pause between two shutdown flush attempts.
const SHUTDOWN_FLUSH_RETRY_DELAY_MS: u64 = 200;

/// What the engine of a room needs from the rest of the process.
#[derive(Clone)]
pub struct EngineDeps {
    pub bus: Arc<dyn Bus>,
    pub ledger: Arc<dyn Ledger>,
    /// The fairness chain the room's round hashes come from.
    pub chain: Arc<FairChain>,
    pub clock: Arc<dyn Clock>,
    /// How events and answers become bytes on the bus (`protocol::JsonCodec`).
    pub codec: Arc<dyn Codec>,
}

/// Why the engine of a room stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The room's commands cannot be consumed: another engine of this process already
    /// leads the room, or the bus is down. Run one engine per room.
    #[error("room {room}: cannot take its command stream: {source}")]
    Commands {
        room: String,
        #[source]
        source: BusError,
    },
    /// The bus closed the room's command stream; restart the engine once it is back.
    #[error("room {room}: the bus closed the command stream")]
    CommandsClosed { room: String },
    /// The ledger failed while settling rounds left unfinished by a previous process.
    /// Nothing was played; fix the ledger (disk, permissions) and start again.
    #[error("room {room}: recovery of unfinished rounds failed: {source}")]
    Recovery {
        room: String,
        #[source]
        source: LedgerError,
    },
    /// The ledger refused journal writes for `JOURNAL_BACKLOG_ROUNDS_MAX` rounds. The
    /// engine stopped; the next start settles the rounds left unfinished.
    #[error("room {room}: the ledger refused journal writes for {rounds} rounds")]
    JournalBacklog { room: String, rounds: usize },
    /// Every round of the fairness chain has been played: generate a new chain (seed) and
    /// publish its commitment.
    #[error("the fairness chain has no hash for round {round}")]
    ChainExhausted { round: u64 },
    /// The round in flight cannot be resumed by this engine (see [`ResumeError`]).
    #[error("room {room}: cannot resume the round in flight: {source}")]
    Resume {
        room: String,
        #[source]
        source: ResumeError,
    },
    /// The ledger refused a write: a newer leader of the room (fencing token `current`)
    /// has started. This engine stopped without touching the round any further.
    #[error("room {room}: deposed by a newer leader (fencing token {current})")]
    Deposed { room: String, current: u64 },
}

/// What makes an engine the leader of a room in a cluster.
pub struct Leadership {
    /// The lease's fencing token, sent with every ledger write.
    pub fence: Fence,
    /// Cancelled when the lease is lost or the process hands its rooms over: the room
    /// stops at once, leaving the round in flight to the next leader.
    pub handover: CancellationToken,
}

impl From<ChainExhausted> for EngineError {
    fn from(exhausted: ChainExhausted) -> Self {
        EngineError::ChainExhausted {
            round: exhausted.round,
        }
    }
}

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
    let core = RoomCore::new(settings.clone(), deps.chain.clone(), first_round, 1, now_ms)?;
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
    let recovery_error = |source| match source {
        LedgerError::Fenced { current, .. } => EngineError::Deposed {
            room: room.clone(),
            current,
        },
        source => EngineError::Recovery {
            room: room.clone(),
            source,
        },
    };
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
    let (epoch, first_seq) = (continuation.epoch, continuation.first_seq);
    let core = match in_flight {
        Some(record) => {
            let round = record.round;
            let bets = bets_in_flight(&room, round, deps.ledger.as_ref())
                .await
                .map_err(recovery_error)?;
            tracing::info!(room = %room, round, bets = bets.len(), "resuming the round in flight");
            let in_flight = RoundInFlight {
                record,
                bets,
                announced_betting_end_ms: continuation.betting_end_ms(round),
                announced_flying: continuation.flying_announced(round),
            };
            let chain = deps.chain.clone();
            RoomCore::resume(settings.clone(), chain, in_flight, first_seq, now_ms).map_err(
                |source| match source {
                    ResumeError::ChainExhausted(exhausted) => exhausted.into(),
                    source => EngineError::Resume {
                        room: room.clone(),
                        source,
                    },
                },
            )?
        }
        None => {
            let first_round = next_round(deps.ledger.as_ref(), &room)
                .await
                .map_err(recovery_error)?;
            let chain = deps.chain.clone();
            RoomCore::new(settings.clone(), chain, first_round, first_seq, now_ms)?
        }
    };
    let mut runner = RoomRunner::new(settings, deps, core, writer, epoch, now_ms);
    runner.perform().await?;
    // A leader never aborts its round: it stops by handing it over.
    let never_aborted = CancellationToken::new();
    runner.run(&mut commands, &never_aborted, &handover).await
}

/// How a new leader numbers its events, and what the previous one announced.
struct Continuation {
    epoch: u64,
    first_seq: u64,
    /// The previous leader's retained events of the room's newest epoch, oldest first.
    retained: Vec<RoundEvent>,
}

impl Continuation {
    /// The end of betting announced for `round`, if its `betting` event is retained.
    fn betting_end_ms(&self, round: u64) -> Option<u64> {
        self.retained.iter().find_map(|event| match event {
            RoundEvent::BettingOpened {
                round: announced,
                ends_at_ms,
                ..
            } if *announced == round => Some(*ends_at_ms),
            _ => None,
        })
    }

    /// Whether the retained events show all that was announced of `round`: its `betting`
    /// event, or, last, the `crash` of the round before (nothing of `round` went out).
    fn tells_start_of(&self, round: u64) -> bool {
        let crash_before = matches!(
            self.retained.last(),
            Some(RoundEvent::Crashed { round: crashed, .. }) if *crashed + 1 == round
        );
        crash_before || self.betting_end_ms(round).is_some()
    }

    /// Whether the `flying` event of `round` is retained.
    fn flying_announced(&self, round: u64) -> bool {
        let flying = |event: &RoundEvent| matches!(event, RoundEvent::FlightStarted { round: r, .. } if *r == round);
        self.retained.iter().any(flying)
    }
}

/// The previous leader's epoch and its last seq + 1 when the bus still holds its events,
/// so gateways and clients see one contiguous stream across the takeover (clients keep
/// recovering with `since`); otherwise a new epoch, the clock now, from seq 1.
///
/// Continuing is right only if the retained events tell what players were told of
/// `resumed_round`, the round in flight: they must reach back to its `betting` event, or
/// end with the previous round's `crash` (its betting was journaled, not announced).
/// Otherwise — the history was trimmed, or Redis restarted without persistence and holds
/// only what the previous leader published since — the new leader cannot know whether
/// `flying` went out, and announcing it again would repeat a phase within one numbering.
/// A new epoch instead makes every gateway send its sockets a fresh snapshot.
async fn continued_numbering(
    deps: &EngineDeps,
    room: &str,
    resumed_round: Option<u64>,
    now_ms: u64,
) -> Continuation {
    let anew = Continuation {
        epoch: now_ms,
        first_seq: 1,
        retained: Vec::new(),
    };
    let retained = deps
        .bus
        .recent_events(room, 0, usize::MAX)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(room, %error, "previous events unreadable; numbering anew");
            Vec::new()
        });
    let Some(last) = retained.last() else {
        return anew;
    };
    let continuation = Continuation {
        epoch: last.epoch,
        first_seq: last.seq + 1,
        retained: (retained.iter())
            .filter_map(|envelope| deps.codec.decode_event(&envelope.json))
            .collect(),
    };
    match resumed_round {
        Some(round) if !continuation.tells_start_of(round) => {
            tracing::info!(
                room,
                round,
                "the retained events miss the start of the round in flight; numbering anew"
            );
            anew
        }
        _ => continuation,
    }
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

/// The round `room` plays next after its newest journaled one.
pub(crate) async fn next_round(ledger: &dyn Ledger, room: &str) -> Result<u64, LedgerError> {
    let newest = ledger.recent_rounds(room, 1).await?;
    Ok(newest.first().map_or(1, |record| record.round + 1))
}

/// The engine's ledger writes: fenced with the lease's token in cluster mode.
struct LedgerWriter {
    ledger: Arc<dyn Ledger>,
    fence: Option<Fence>,
}

impl LedgerWriter {
    async fn apply_batch(&self, batch: Vec<Transfer>) -> Result<Vec<TransferOutcome>, LedgerError> {
        self.ledger.write_batch(batch, self.fence.as_ref()).await
    }

    async fn record_round(&self, record: RoundRecord) -> Result<(), LedgerError> {
        self.ledger.write_round(record, self.fence.as_ref()).await
    }
}

/// Settles `rounds`, left Betting or Flying by a process that died: refunds every stake
/// with neither a payout nor a refund, then journals the round Aborted with its totals
/// recomputed from its transfers (the record it was left with predates its payouts).
async fn abort_unfinished_rounds(
    room: &str,
    writer: &LedgerWriter,
    rounds: Vec<RoundRecord>,
    now_ms: u64,
) -> Result<(), LedgerError> {
    for record in rounds {
        let bets = bets_in_flight(room, record.round, writer.ledger.as_ref()).await?;
        let refunds = refunds_owed(room, record.round, &bets);
        let refunded = refunds.len();
        if !refunds.is_empty() {
            let outcomes = writer.apply_batch(refunds.clone()).await?;
            for (refund, outcome) in refunds.iter().zip(&outcomes) {
                assert!(
                    matches!(outcome, TransferOutcome::Committed { .. }),
                    "refund {} refused ({outcome:?}): the house may go negative",
                    refund.id
                );
            }
        }
        tracing::warn!(
            room,
            round = record.round,
            refunded,
            "unfinished round aborted"
        );
        let (bets_total_minor, payouts_total_minor) = settled_totals_minor(&bets);
        writer
            .record_round(RoundRecord {
                status: RoundStatus::Aborted,
                ended_at_ms: Some(now_ms),
                bets_total_minor,
                payouts_total_minor,
                ..record
            })
            .await?;
    }
    Ok(())
}

/// The refunds of the stakes of `round` that were neither paid out nor refunded.
fn refunds_owed(room: &str, round: u64, bets: &[BetInFlight]) -> Vec<Transfer> {
    let open = bets.iter().filter(|bet| bet.settled == BetSettled::Open);
    let refunds = open.map(|bet| Transfer {
        id: TransferId::OfBet {
            kind: BetTransferKind::Refund,
            bet: BetRef {
                room: room.to_owned(),
                round,
                player: bet.player.clone(),
                slot: bet.slot,
            },
        }
        .to_string(),
        debit: Account::House,
        credit: Account::Player(bet.player.clone()),
        amount_minor: bet.stake_minor,
        kind: TransferKind::Refund,
        multiplier_hundredths: None,
    });
    refunds.collect()
}

/// A round's journal totals from its stakes: (Σ stakes, Σ payouts), as the engine counts
/// them while it plays (a refunded stake stays staked; a refund is not a payout).
fn settled_totals_minor(bets: &[BetInFlight]) -> (i64, i64) {
    let staked = bets.iter().map(|bet| bet.stake_minor).sum();
    let paid = bets.iter().map(|bet| match bet.settled {
        BetSettled::PaidOut { win_minor, .. } => win_minor,
        BetSettled::Open | BetSettled::Refunded => 0,
    });
    (staked, paid.sum())
}

/// Every stake of `round` in the ledger, with what was paid or refunded for it: the
/// three kinds of transfer are matched by the bet their [`TransferId`] names.
async fn bets_in_flight(
    room: &str,
    round: u64,
    ledger: &dyn Ledger,
) -> Result<Vec<BetInFlight>, LedgerError> {
    let by_bet =
        async |kind: BetTransferKind| -> Result<Vec<(BetRef, StoredTransfer)>, LedgerError> {
            let prefix = TransferId::round_prefix(kind, room, round);
            let transfers = ledger.transfers_with_prefix(&prefix).await?;
            let keyed = transfers
                .into_iter()
                .map(|stored| match stored.transfer.id.parse() {
                    Ok(TransferId::OfBet { bet, .. }) => Ok((bet, stored)),
                    _ => Err(LedgerError::Corrupt(format!(
                        "bet id {}",
                        stored.transfer.id
                    ))),
                });
            keyed.collect()
        };
    let payouts: std::collections::HashMap<BetRef, StoredTransfer> =
        by_bet(BetTransferKind::Payout).await?.into_iter().collect();
    let refunded: HashSet<BetRef> = by_bet(BetTransferKind::Refund)
        .await?
        .into_iter()
        .map(|(bet, _)| bet)
        .collect();
    let mut bets = Vec::new();
    for (bet, stake) in by_bet(BetTransferKind::Stake).await? {
        let stake_minor = stake.transfer.amount_minor;
        let settled = if let Some(payout) = payouts.get(&bet) {
            let win_minor = payout.transfer.amount_minor;
            BetSettled::PaidOut {
                // Payouts record their multiplier; the quotient is a floor of it.
                multiplier_hundredths: payout.transfer.multiplier_hundredths.unwrap_or_else(|| {
                    u64::try_from(i128::from(win_minor) * 100 / i128::from(stake_minor))
                        .unwrap_or(u64::MAX)
                }),
                win_minor,
                balance_after_minor: payout.credit_balance_after_minor,
            }
        } else if refunded.contains(&bet) {
            BetSettled::Refunded
        } else {
            BetSettled::Open
        };
        bets.push(BetInFlight {
            player: bet.player,
            slot: bet.slot,
            stake_minor,
            auto_cashout_hundredths: stake.transfer.multiplier_hundredths,
            stake_balance_after_minor: stake.debit_balance_after_minor,
            settled,
        });
    }
    Ok(bets)
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
        RoomRunner {
            breaker,
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
            let deadline_ms = self
                .core
                .next_deadline_ms()
                .expect("a running room always has a next deadline");
            let sleep_ms = deadline_ms.saturating_sub(self.deps.clock.now_ms());
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
        let now_ms = self.now_ms();
        if let Err(exhausted) = self.core.advance(now_ms) {
            // Between rounds: no bet is open. Flush what the last round still owes.
            self.perform().await?;
            return Err(exhausted.into());
        }
        let ledger_available = self.breaker.allows_bets(now_ms);
        self.core.set_ledger_available(ledger_available);
        for envelope in batch {
            match envelope.command {
                Command::Bet {
                    req,
                    amount_minor,
                    auto_cashout_hundredths,
                    slot,
                } => self.core.bet(
                    now_ms,
                    &envelope.from,
                    &req,
                    amount_minor,
                    auto_cashout_hundredths,
                    slot,
                ),
                Command::Cashout { req, slot } => {
                    self.core.cashout(now_ms, &envelope.from, &req, slot);
                }
            }
        }
        self.perform().await
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

    /// Performs the core's decisions: events, journal, one ledger batch, replies.
    async fn perform(&mut self) -> Result<(), EngineError> {
        let Effects {
            events,
            transfers,
            replies,
            records,
        } = self.core.take_effects();
        for record in records {
            self.queue_record(record)?;
        }
        // A round's Betting record must be in the journal before any of its stakes, or a
        // crash would leave stakes that recovery cannot find; and a phase must be in the
        // journal before it is announced, or a leader that dies in between would leave
        // its successor resuming a phase the players have already seen end.
        self.write_records(&transfers).await;
        self.publish(events).await;
        let journal_current = self.journal_current();
        self.apply(transfers, journal_current).await;
        self.write_records(&[]).await;
        let settled = self.core.take_effects();
        assert!(
            settled.events.is_empty() && settled.transfers.is_empty() && settled.records.is_empty(),
            "ledger outcomes only produce replies"
        );
        if let Some(current) = self.deposed_by {
            // The newer leader answers these requests: their commands were not reported
            // handled, so they are redelivered to it.
            return Err(EngineError::Deposed {
                room: self.room.clone(),
                current,
            });
        }
        self.send_replies(replies.into_iter().chain(settled.replies))
            .await;
        Ok(())
    }

    /// Notes a refusal by the fence: a newer leader owns the room from now on.
    fn note_fenced(&mut self, error: &LedgerError) {
        if let LedgerError::Fenced { current, .. } = error {
            self.deposed_by = Some(*current);
        }
    }

    fn queue_record(&mut self, record: RoundRecord) -> Result<(), EngineError> {
        // Journal writes are upserts by round: the newest record of a round supersedes.
        if let Some(queued) = self
            .records_to_write
            .iter_mut()
            .find(|queued| queued.round == record.round)
        {
            *queued = record;
            return Ok(());
        }
        if self.records_to_write.len() >= JOURNAL_BACKLOG_ROUNDS_MAX {
            return Err(EngineError::JournalBacklog {
                room: self.room.clone(),
                rounds: self.records_to_write.len(),
            });
        }
        self.records_to_write.push_back(record);
        Ok(())
    }

    /// Writes the queued journal records. A terminal record (Crashed, Aborted) waits
    /// until every payout and refund of its round (`unapplied` or to retry) is committed;
    /// the records of other rounds do not wait for it (each round is its own row).
    async fn write_records(&mut self, unapplied: &[TransferIntent]) {
        let mut index = 0;
        // Bounded by the queue: every pass writes a record or steps past one.
        while let Some(record) = self.records_to_write.get(index) {
            let terminal = matches!(record.status, RoundStatus::Crashed | RoundStatus::Aborted);
            if terminal && self.owes_credit(record.round, unapplied) {
                index += 1;
                continue;
            }
            let round = record.round;
            match self.writer.record_round(record.clone()).await {
                Ok(()) => {
                    self.records_to_write.remove(index);
                }
                Err(error) => {
                    self.note_fenced(&error);
                    tracing::error!(room = %self.room, round, %error, "journal write failed; will retry");
                    return;
                }
            }
        }
    }

    /// Whether a payout or refund of `round` is not yet committed.
    fn owes_credit(&self, round: u64, unapplied: &[TransferIntent]) -> bool {
        self.credits_to_retry.iter().chain(unapplied).any(|intent| {
            matches!(&intent.purpose, TransferPurpose::Credit(notice) if notice.bet.round == round)
        })
    }

    /// Whether every Betting and Flying record is written: then the current round is
    /// in the journal and its stakes can be found by recovery.
    fn journal_current(&self) -> bool {
        !self
            .records_to_write
            .iter()
            .any(|record| matches!(record.status, RoundStatus::Betting | RoundStatus::Flying))
    }

    /// Applies the retried credits and `fresh` in one ledger batch and feeds the outcomes
    /// back to the core.
    async fn apply(&mut self, fresh: Vec<TransferIntent>, journal_current: bool) {
        let mut batch = std::mem::take(&mut self.credits_to_retry);
        for intent in fresh {
            match &intent.purpose {
                TransferPurpose::Stake(bet) if !journal_current => {
                    self.core.reject_bet(bet, RefusalCode::Internal);
                }
                _ => batch.push(intent),
            }
        }
        if batch.is_empty() {
            return;
        }
        let transfers = batch.iter().map(|intent| intent.transfer.clone()).collect();
        let started = std::time::Instant::now();
        let result = self.writer.apply_batch(transfers).await;
        let elapsed = started.elapsed();
        metrics::histogram!(crate::metrics::LEDGER_BATCH_SECONDS).record(elapsed);
        self.judge_batch(result.is_ok(), elapsed);
        match result {
            Ok(outcomes) => {
                assert_eq!(outcomes.len(), batch.len(), "one outcome per transfer");
                for (intent, outcome) in batch.into_iter().zip(outcomes) {
                    self.settle(intent, outcome);
                }
            }
            Err(error) => {
                self.note_fenced(&error);
                tracing::error!(room = %self.room, transfers = batch.len(), %error, "ledger batch failed");
                for intent in batch {
                    match &intent.purpose {
                        TransferPurpose::Stake(bet) => {
                            self.core.reject_bet(bet, RefusalCode::Internal)
                        }
                        TransferPurpose::Credit(_) => self.credits_to_retry.push(intent),
                    }
                }
            }
        }
    }

    /// Tells the breaker how a batch went; a breaker that opens is logged and shown.
    fn judge_batch(&mut self, committed: bool, elapsed: Duration) {
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let now_ms = self.now_ms();
        if self.breaker.record_batch(committed, elapsed_ms, now_ms) {
            tracing::warn!(room = %self.room, committed, elapsed_ms, "ledger failing or slow: bets refused for a while");
        }
        let open = if self.breaker.is_open() { 1.0 } else { 0.0 };
        metrics::gauge!(crate::metrics::LEDGER_BREAKER_OPEN, "room" => self.room.clone()).set(open);
    }

    fn settle(&mut self, intent: TransferIntent, outcome: TransferOutcome) {
        let TransferIntent { transfer, purpose } = intent;
        match (purpose, outcome) {
            // A replayed commit is the first commit seen again: the stake is taken.
            (
                TransferPurpose::Stake(bet),
                TransferOutcome::Committed {
                    debit_balance_after_minor,
                    ..
                },
            ) => {
                metrics::counter!(crate::metrics::BETS_ACCEPTED).increment(1);
                self.core.confirm_bet(&bet, debit_balance_after_minor);
            }
            (TransferPurpose::Stake(bet), TransferOutcome::InsufficientFunds { .. }) => {
                metrics::counter!(crate::metrics::BETS_REFUSED, "code" => "insufficient_funds")
                    .increment(1);
                self.core.reject_bet(&bet, RefusalCode::InsufficientFunds);
            }
            (TransferPurpose::Stake(bet), TransferOutcome::IdConflict) => {
                tracing::error!(room = %self.room, id = %transfer.id, "stake id already used with other terms");
                self.core.reject_bet(&bet, RefusalCode::Internal);
            }
            (
                TransferPurpose::Credit(notice),
                TransferOutcome::Committed {
                    credit_balance_after_minor,
                    ..
                },
            ) => {
                metrics::counter!(crate::metrics::CREDITS, "kind" => transfer.kind.as_str())
                    .increment(1);
                self.core
                    .credit_committed(&notice, credit_balance_after_minor);
            }
            // The house may go negative and credit ids are unique per bet, so a refused
            // credit means the ledger or the engine broke a money invariant.
            (TransferPurpose::Credit(_), outcome) => {
                panic!("credit {} refused by the ledger: {outcome:?}", transfer.id)
            }
        }
    }

    async fn publish(&self, events: Vec<RoundEvent>) {
        for event in events {
            if matches!(event, RoundEvent::Crashed { .. }) {
                metrics::counter!(crate::metrics::ROUNDS).increment(1);
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
            let json = self.deps.codec.encode_answer(&answer);
            let answers = answer.request();
            if !to.is_every_socket() {
                self.send_reply(ReplyEnvelope { to, answers, json }).await;
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
                let (answers, json) = (answers.clone(), json.clone());
                self.send_reply(ReplyEnvelope { to, answers, json }).await;
            }
        }
    }

    async fn send_reply(&self, envelope: ReplyEnvelope) {
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
    use super::*;
    use crate::bus::{Delivery, MemoryBus, ReplyTo};
    use crate::clock::SystemClock;
    use crate::config::EngineConfig;
    use crate::engine::answer::{Answer, EngineCashout};
    use crate::engine::codec::RecordingCodec;
    use crate::engine::event::RoundTotals;
    use crate::fair;
    use crate::ledger::SqliteLedger;

    const ROOM: &str = "r1";
    const GATEWAY: &str = "gw";
    const SEED: &str = "00000000000000000000000000000000000000000000000000000000000000aa";
    /// Longest wait for one event or reply before a test fails.
    const WAIT_MS: u64 = 10_000;

    struct Fixture {
        bus: Arc<MemoryBus>,
        ledger: Arc<SqliteLedger>,
        settings: RoomSettings,
        deps: EngineDeps,
        /// The engine's codec, to read back what it sent.
        codec: Arc<RecordingCodec>,
    }

    /// A room whose round `round` crashes at a point `wanted` accepts.
    fn fixture(round: u64, wanted: impl Fn(u64) -> bool) -> Fixture {
        let chain = Arc::new(FairChain::generate(SEED, 1_000).unwrap());
        let hash = chain.round_hash(round).unwrap();
        let salt = (0..100_000)
            .map(|attempt| format!("salt-{attempt}"))
            .find(|salt| wanted(fair::crash_point_hundredths(&hash, salt, 100)))
            .expect("a salt gives a wanted crash point");
        let engine = EngineConfig {
            betting_duration_ms: 200,
            crashed_duration_ms: 100,
            tick_interval_ms: 20,
            growth_rate_per_ms_millionths: 1_000,
            ..EngineConfig::default()
        };
        let settings = RoomSettings {
            room: ROOM.into(),
            salt,
            house_edge_bp: 100,
            engine,
        };
        let bus = Arc::new(MemoryBus::default());
        let ledger = Arc::new(SqliteLedger::open_in_memory().unwrap());
        let codec = Arc::new(RecordingCodec::default());
        let deps = EngineDeps {
            bus: bus.clone(),
            ledger: ledger.clone(),
            chain,
            clock: Arc::new(SystemClock),
            codec: codec.clone(),
        };
        Fixture {
            bus,
            ledger,
            settings,
            deps,
            codec,
        }
    }

    async fn apply_one(
        ledger: &SqliteLedger,
        id: &str,
        debit: Account,
        credit: Account,
        amount_minor: i64,
        kind: TransferKind,
    ) {
        let transfer = Transfer {
            id: id.into(),
            debit,
            credit,
            amount_minor,
            kind,
            multiplier_hundredths: None,
        };
        commit(ledger, transfer).await;
    }

    /// Applies `transfer` alone and checks that the ledger took it.
    async fn commit(ledger: &SqliteLedger, transfer: Transfer) {
        let outcomes = ledger.apply_batch(vec![transfer]).await.unwrap();
        assert!(
            matches!(outcomes[0], TransferOutcome::Committed { .. }),
            "{outcomes:?}"
        );
    }

    async fn grant(ledger: &SqliteLedger, player: &str, amount_minor: i64) {
        let id = TransferId::grant(player).to_string();
        let player = Account::Player(player.into());
        apply_one(
            ledger,
            &id,
            Account::Mint,
            player,
            amount_minor,
            TransferKind::Grant,
        )
        .await;
    }

    async fn balance_of(ledger: &SqliteLedger, player: &str) -> i64 {
        ledger
            .balance(&Account::Player(player.into()))
            .await
            .unwrap()
    }

    fn from(player: &str) -> ReplyTo {
        ReplyTo {
            gateway: GATEWAY.into(),
            connection: 7,
            player: player.into(),
        }
    }

    async fn send(bus: &MemoryBus, player: &str, command: Command) {
        let envelope = CommandEnvelope {
            room: ROOM.into(),
            from: from(player),
            command,
        };
        bus.send_command(envelope).await.unwrap();
    }

    fn bet(req: &str, amount_minor: i64, auto_cashout_hundredths: Option<u64>) -> Command {
        Command::Bet {
            req: req.into(),
            amount_minor,
            auto_cashout_hundredths,
            slot: 0,
        }
    }

    fn cashout(req: &str) -> Command {
        Command::Cashout {
            req: req.into(),
            slot: 0,
        }
    }

    /// The room's events as a subscriber sees them, every one kept.
    struct Watcher {
        events: BoxStream<'static, Delivery>,
        codec: Arc<RecordingCodec>,
        seen: Vec<RoundEvent>,
    }

    impl Watcher {
        async fn new(fixture: &Fixture) -> Watcher {
            let events = fixture.bus.subscribe(ROOM).await.unwrap();
            Watcher {
                events,
                codec: fixture.codec.clone(),
                seen: Vec::new(),
            }
        }

        fn decode(&self, envelope: &EventEnvelope) -> RoundEvent {
            self.codec
                .decode_event(&envelope.json)
                .expect("the engine's event")
        }

        /// Waits for the first event `wanted` accepts.
        async fn until(&mut self, wanted: impl Fn(&RoundEvent) -> bool) -> RoundEvent {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(WAIT_MS);
            loop {
                let delivery = tokio::time::timeout_at(deadline, self.events.next())
                    .await
                    .expect("the event comes in time")
                    .expect("the event stream is open");
                let Delivery::Event(envelope) = delivery else {
                    panic!("a subscriber that keeps up sees no gap");
                };
                let event = self.decode(&envelope);
                assert_eq!(
                    (envelope.seq, envelope.conflatable),
                    (event.seq(), event.is_conflatable())
                );
                self.seen.push(event.clone());
                if wanted(&event) {
                    return event;
                }
            }
        }

        /// Takes the events already published and checks that every seq came, in order.
        fn finish(mut self) -> Vec<RoundEvent> {
            while let Some(Some(Delivery::Event(envelope))) = self.events.next().now_or_never() {
                let event = self.decode(&envelope);
                self.seen.push(event);
            }
            for (index, event) in self.seen.iter().enumerate() {
                assert_eq!(event.seq(), index as u64 + 1, "seq is contiguous from 1");
            }
            self.seen
        }
    }

    /// The replies to the test's gateway, read back as the engine's answers.
    struct Replies {
        stream: BoxStream<'static, ReplyEnvelope>,
        codec: Arc<RecordingCodec>,
    }

    async fn replies_of(fixture: &Fixture) -> Replies {
        Replies {
            stream: fixture.bus.replies(GATEWAY).await.unwrap(),
            codec: fixture.codec.clone(),
        }
    }
    type Engine = tokio::task::JoinHandle<Result<(), EngineError>>;

    /// Subscribes to the room's events and the gateway's replies, then starts the engine.
    async fn start(fixture: &Fixture) -> (Watcher, Replies, CancellationToken, Engine) {
        let watcher = Watcher::new(fixture).await;
        let replies = replies_of(fixture).await;
        let shutdown = CancellationToken::new();
        let settings = fixture.settings.clone();
        let engine = tokio::spawn(run_room(settings, fixture.deps.clone(), shutdown.clone()));
        (watcher, replies, shutdown, engine)
    }

    async fn next_reply(replies: &mut Replies) -> (String, Answer) {
        let reply = tokio::time::timeout(Duration::from_millis(WAIT_MS), replies.stream.next())
            .await
            .expect("the reply comes in time")
            .expect("the reply stream is open");
        (reply.to.player, replies.codec.answer(&reply.json))
    }

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
        assert_eq!(
            (rounds[0].bets_total_minor, rounds[0].payouts_total_minor),
            (3_000, win)
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
        };
        assert_eq!(totals, Some(expected));
        watcher.finish();
    }

    /// A ledger whose next `failures` batches fail as a storage fault would.
    struct FlakyLedger {
        inner: Arc<SqliteLedger>,
        failures: std::sync::atomic::AtomicU32,
    }

    impl FlakyLedger {
        /// Puts a flaky ledger over the fixture's for the engine (the test still reads
        /// the fixture's directly).
        fn wrap(fixture: &mut Fixture) -> Arc<FlakyLedger> {
            let flaky = Arc::new(FlakyLedger {
                inner: fixture.ledger.clone(),
                failures: std::sync::atomic::AtomicU32::new(0),
            });
            fixture.deps.ledger = flaky.clone();
            flaky
        }

        fn fail_next(&self, batches: u32) {
            self.failures
                .store(batches, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[async_trait::async_trait]
    impl Ledger for FlakyLedger {
        async fn write_batch(
            &self,
            batch: Vec<Transfer>,
            fence: Option<&Fence>,
        ) -> Result<Vec<TransferOutcome>, LedgerError> {
            let failures = &self.failures;
            let decrement = |left: u32| left.checked_sub(1);
            let ordering = std::sync::atomic::Ordering::SeqCst;
            if failures.fetch_update(ordering, ordering, decrement).is_ok() {
                return Err(LedgerError::Worker("injected fault".into()));
            }
            self.inner.write_batch(batch, fence).await
        }
        async fn balance(&self, account: &Account) -> Result<i64, LedgerError> {
            self.inner.balance(account).await
        }
        async fn total_balance(&self) -> Result<i64, LedgerError> {
            self.inner.total_balance().await
        }
        async fn transfer(&self, id: &str) -> Result<Option<StoredTransfer>, LedgerError> {
            self.inner.transfer(id).await
        }
        async fn transfers_with_prefix(
            &self,
            prefix: &str,
        ) -> Result<Vec<StoredTransfer>, LedgerError> {
            self.inner.transfers_with_prefix(prefix).await
        }
        async fn write_round(
            &self,
            record: RoundRecord,
            fence: Option<&Fence>,
        ) -> Result<(), LedgerError> {
            self.inner.write_round(record, fence).await
        }
        async fn acquire_fence(&self, room: &str) -> Result<u64, LedgerError> {
            self.inner.acquire_fence(room).await
        }
        async fn recent_rounds(
            &self,
            room: &str,
            limit: usize,
        ) -> Result<Vec<RoundRecord>, LedgerError> {
            self.inner.recent_rounds(room, limit).await
        }
        async fn unfinished_rounds(&self, room: &str) -> Result<Vec<RoundRecord>, LedgerError> {
            self.inner.unfinished_rounds(room).await
        }
        async fn expire_unused_guests(
            &self,
            granted_before_ms: u64,
            guests_max: usize,
        ) -> Result<u64, LedgerError> {
            self.inner
                .expire_unused_guests(granted_before_ms, guests_max)
                .await
        }
    }

    #[tokio::test]
    async fn a_failed_batch_refuses_its_bets_and_retries_its_payouts() {
        let mut fixture = fixture(1, |crash| crash >= 1_000);
        // The breaker's cooldown is its own test's: here the retry comes after it.
        fixture.settings.engine.ledger_breaker_cooldown_ms = 1;
        let flaky = FlakyLedger::wrap(&mut fixture);
        grant(&fixture.ledger, "alice", 10_000).await;
        let (mut watcher, mut replies, shutdown, engine) = start(&fixture).await;

        watcher
            .until(|event| matches!(event, RoundEvent::BettingOpened { round: 1, .. }))
            .await;
        flaky.fail_next(1);
        send(&fixture.bus, "alice", bet("a", 1_000, None)).await;
        let (_, refused) = next_reply(&mut replies).await;
        assert!(matches!(
            refused,
            Answer::BetRefused { ref refusal, .. } if refusal.code == RefusalCode::Internal
        ));
        tokio::time::sleep(Duration::from_millis(5)).await;
        send(&fixture.bus, "alice", bet("a", 1_000, None)).await;
        assert!(matches!(
            next_reply(&mut replies).await.1,
            Answer::BetAccepted {
                balance_after_minor: 9_000,
                ..
            }
        ));

        watcher
            .until(|event| matches!(event, RoundEvent::Tick { multiplier_hundredths, .. } if *multiplier_hundredths >= 110))
            .await;
        flaky.fail_next(2);
        send(&fixture.bus, "alice", cashout("out")).await;
        let (_, cashout) = next_reply(&mut replies).await;
        let Answer::CashedOut {
            win_minor: win,
            balance_after_minor: balance,
            ..
        } = cashout
        else {
            panic!("cashout_ok after the retries: {cashout:?}");
        };
        assert_eq!(balance, 9_000 + win);
        shutdown.cancel();
        engine.await.unwrap().unwrap();
        assert_eq!(balance_of(&fixture.ledger, "alice").await, 9_000 + win);
        assert_eq!(
            fixture
                .ledger
                .transfers_with_prefix("payout:")
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(fixture.ledger.total_balance().await.unwrap(), 0);
        watcher.finish();
    }

    #[tokio::test]
    async fn a_failing_ledger_opens_the_breaker_bets_are_refused_and_cashouts_settle_once() {
        let mut fixture = fixture(1, |crash| crash >= 1_000);
        fixture.settings.engine.betting_duration_ms = 1_500;
        fixture.settings.engine.ledger_breaker_cooldown_ms = 300;
        let flaky = FlakyLedger::wrap(&mut fixture);
        grant(&fixture.ledger, "alice", 10_000).await;
        grant(&fixture.ledger, "bob", 10_000).await;
        let (mut watcher, mut replies, shutdown, engine) = start(&fixture).await;
        watcher
            .until(|event| matches!(event, RoundEvent::BettingOpened { round: 1, .. }))
            .await;

        flaky.fail_next(1);
        send(&fixture.bus, "alice", bet("a", 1_000, None)).await;
        let refused = |code| move |answer: (String, Answer)| matches!(answer.1, Answer::BetRefused { refusal, .. } if refusal.code == code);
        assert!(refused(RefusalCode::Internal)(
            next_reply(&mut replies).await
        ));
        // Open: refused at once, though the ledger would take it now.
        send(&fixture.bus, "bob", bet("b", 1_000, None)).await;
        assert!(refused(RefusalCode::Unavailable)(
            next_reply(&mut replies).await
        ));
        // After the cooldown the retries (same req) probe and go through.
        tokio::time::sleep(Duration::from_millis(400)).await;
        send(&fixture.bus, "alice", bet("a", 1_000, None)).await;
        send(&fixture.bus, "bob", bet("b", 1_000, None)).await;
        for _ in 0..2 {
            let (_, answer) = next_reply(&mut replies).await;
            assert!(
                matches!(
                    answer,
                    Answer::BetAccepted {
                        balance_after_minor: 9_000,
                        ..
                    }
                ),
                "{answer:?}"
            );
        }

        watcher
            .until(|event| matches!(event, RoundEvent::Tick { multiplier_hundredths, .. } if *multiplier_hundredths >= 110))
            .await;
        // Payouts are never refused: retried until the ledger takes them, once each.
        flaky.fail_next(2);
        send(&fixture.bus, "alice", cashout("out")).await;
        send(&fixture.bus, "bob", cashout("out")).await;
        for _ in 0..2 {
            let (_, answer) = next_reply(&mut replies).await;
            assert!(matches!(answer, Answer::CashedOut { .. }), "{answer:?}");
        }
        shutdown.cancel();
        engine.await.unwrap().unwrap();
        let ledger = fixture.ledger.as_ref();
        assert_eq!(
            ledger.transfers_with_prefix("payout:").await.unwrap().len(),
            2
        );
        assert_eq!(ledger.transfers_with_prefix("bet:").await.unwrap().len(), 2);
        assert_eq!(ledger.total_balance().await.unwrap(), 0);
        watcher.finish();
    }

    /// Leaves round 5 as a process that died while it was flying would: alice's stake
    /// open, bob paid, carol refunded.
    async fn seed_dead_round(ledger: &SqliteLedger, chain: &FairChain) {
        let movements = [
            ("bet:r1:5:alice:0", "alice", 1_000, TransferKind::Bet),
            ("bet:r1:5:bob:0", "bob", 500, TransferKind::Bet),
            ("payout:r1:5:bob:0", "bob", 1_000, TransferKind::Payout),
            ("bet:r1:5:carol:1", "carol", 300, TransferKind::Bet),
            ("refund:r1:5:carol:1", "carol", 300, TransferKind::Refund),
        ];
        for (id, player, amount_minor, kind) in movements {
            let player = Account::Player(player.into());
            let (debit, credit) = match kind {
                TransferKind::Bet => (player, Account::House),
                _ => (Account::House, player),
            };
            apply_one(ledger, id, debit, credit, amount_minor, kind).await;
        }
        let record = RoundRecord {
            room: ROOM.into(),
            round: 5,
            hash: chain.round_hash(5).unwrap(),
            crash_hundredths: 200,
            started_at_ms: 1,
            ended_at_ms: None,
            status: RoundStatus::Flying,
            // As journaled when the flight started, before any payout.
            bets_total_minor: 1_800,
            payouts_total_minor: 0,
        };
        ledger.record_round(record).await.unwrap();
    }

    #[tokio::test]
    async fn a_round_left_unfinished_is_refunded_at_start() {
        let fixture = fixture(1, |_| true);
        let ledger = fixture.ledger.as_ref();
        for player in ["alice", "bob", "carol"] {
            grant(ledger, player, 10_000).await;
        }
        seed_dead_round(ledger, &fixture.deps.chain).await;

        let (mut watcher, _replies, shutdown, engine) = start(&fixture).await;
        watcher
            .until(|event| matches!(event, RoundEvent::BettingOpened { round: 6, .. }))
            .await;
        shutdown.cancel();
        engine.await.unwrap().unwrap();

        assert_eq!(balance_of(ledger, "alice").await, 10_000);
        assert_eq!(balance_of(ledger, "bob").await, 10_500);
        assert_eq!(balance_of(ledger, "carol").await, 10_000);
        assert_eq!(ledger.total_balance().await.unwrap(), 0);
        assert!(ledger.unfinished_rounds(ROOM).await.unwrap().is_empty());
        let rounds = ledger.recent_rounds(ROOM, 2).await.unwrap();
        let statuses: Vec<(u64, RoundStatus)> = rounds
            .iter()
            .map(|record| (record.round, record.status))
            .collect();
        assert_eq!(
            statuses,
            vec![(6, RoundStatus::Aborted), (5, RoundStatus::Aborted)]
        );
        // Recomputed from its transfers: every stake, and bob's payout (not the refund).
        assert_eq!(
            (rounds[1].bets_total_minor, rounds[1].payouts_total_minor),
            (1_800, 1_000)
        );
        assert_eq!(watcher.finish().len(), 1);
    }

    /// A stake as a dead leader committed it, with its auto-cashout target.
    async fn stake(ledger: &SqliteLedger, id: &str, player: &str, amount_minor: i64, auto: u64) {
        let transfer = Transfer {
            id: id.into(),
            debit: Account::Player(player.into()),
            credit: Account::House,
            amount_minor,
            kind: TransferKind::Bet,
            multiplier_hundredths: Some(auto),
        };
        commit(ledger, transfer).await;
    }

    fn leadership(token: u64) -> (Leadership, CancellationToken) {
        let handover = CancellationToken::new();
        let fence = Fence {
            room: ROOM.into(),
            token,
        };
        let leadership = Leadership {
            fence,
            handover: handover.clone(),
        };
        (leadership, handover)
    }

    /// Round 5 flying since `started_at_ms`, crashing at `crash`: alice 1000 auto 1.10x,
    /// bob 500 auto 1.05x already paid 525, carol 300 auto 50.00x.
    async fn seed_flight(fixture: &Fixture, crash: u64, started_at_ms: u64) {
        let ledger = fixture.ledger.as_ref();
        for player in ["alice", "bob", "carol"] {
            grant(ledger, player, 10_000).await;
        }
        stake(ledger, "bet:r1:5:alice:0", "alice", 1_000, 110).await;
        stake(ledger, "bet:r1:5:bob:0", "bob", 500, 105).await;
        stake(ledger, "bet:r1:5:carol:0", "carol", 300, 5_000).await;
        let payout = Transfer {
            id: "payout:r1:5:bob:0".into(),
            debit: Account::House,
            credit: Account::Player("bob".into()),
            amount_minor: 525,
            kind: TransferKind::Payout,
            multiplier_hundredths: Some(105),
        };
        commit(ledger, payout).await;
        let record = RoundRecord {
            room: ROOM.into(),
            round: 5,
            hash: fixture.deps.chain.round_hash(5).unwrap(),
            crash_hundredths: crash,
            started_at_ms,
            ended_at_ms: None,
            status: RoundStatus::Flying,
            bets_total_minor: 1_800,
            payouts_total_minor: 525,
        };
        ledger.record_round(record).await.unwrap();
    }

    /// The crash point of round 5 in `fixture`.
    fn crash_of_round_5(fixture: &Fixture) -> u64 {
        let hash = fixture.deps.chain.round_hash(5).unwrap();
        fair::crash_point_hundredths(&hash, &fixture.settings.salt, 100)
    }

    #[tokio::test]
    async fn a_new_leader_finishes_the_round_in_flight_paying_each_bet_once() {
        let fixture = fixture(5, |crash| (150..400).contains(&crash));
        let crash = crash_of_round_5(&fixture);
        let started_at_ms = SystemClock.now_ms() - 20;
        seed_flight(&fixture, crash, started_at_ms).await;
        let ledger = fixture.ledger.as_ref();
        Fence {
            room: ROOM.into(),
            token: 7,
        }
        .raise(ledger)
        .await
        .unwrap();

        // Only the dead leader's last tick is retained (Redis restarted since the round
        // took off): whether `flying` went out is unknown, so the numbering starts anew.
        retain(&fixture, &[tick_of_round_5(40, started_at_ms)]).await;
        let mut raw = fixture.bus.subscribe(ROOM).await.unwrap();
        let mut watcher = Watcher::new(&fixture).await;
        let mut replies = replies_of(&fixture).await;
        let (leadership, handover) = leadership(7);
        let settings = fixture.settings.clone();
        let engine = tokio::spawn(lead_room(settings, fixture.deps.clone(), leadership));
        let first = watcher.until(|_| true).await;
        assert_eq!(
            first,
            RoundEvent::FlightStarted {
                seq: 1,
                round: 5,
                started_at_ms
            }
        );
        let Some(Delivery::Event(first_envelope)) = raw.next().await else {
            panic!("the first event arrives");
        };
        assert!(
            first_envelope.epoch > started_at_ms,
            "a new epoch: {first_envelope:?}"
        );
        let crashed = watcher
            .until(|event| matches!(event, RoundEvent::Crashed { .. }))
            .await;
        assert!(
            matches!(crashed, RoundEvent::Crashed { round: 5, crash_hundredths, .. } if crash_hundredths == crash)
        );
        watcher
            .until(|event| matches!(event, RoundEvent::BettingOpened { round: 6, .. }))
            .await;
        handover.cancel();
        engine.await.unwrap().unwrap();
        // The connection that placed alice's bet is unknown to this leader: her balance
        // goes to every gateway, which finds her sockets.
        let (player, message) = next_reply(&mut replies).await;
        assert_eq!(player, "alice");
        assert!(
            matches!(
                message,
                Answer::BalanceChanged {
                    balance_minor: 10_100,
                    ..
                }
            ),
            "{message:?}"
        );

        // alice's 1.10x is paid once at exactly 1.10x, bob's earlier payout is not made
        // again, carol's 50.00x was never reached: she lost. Nothing is refunded.
        assert_eq!(balance_of(ledger, "alice").await, 10_000 - 1_000 + 1_100);
        assert_eq!(balance_of(ledger, "bob").await, 10_000 - 500 + 525);
        assert_eq!(balance_of(ledger, "carol").await, 10_000 - 300);
        assert!(
            ledger
                .transfers_with_prefix("refund:")
                .await
                .unwrap()
                .is_empty()
        );
        let payout = ledger
            .transfer("payout:r1:5:alice:0")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(payout.transfer.multiplier_hundredths, Some(110));
        assert_eq!(ledger.total_balance().await.unwrap(), 0);
        let rounds = ledger.recent_rounds(ROOM, 2).await.unwrap();
        assert_eq!(rounds[1].status, RoundStatus::Crashed);
        assert_eq!(rounds[1].payouts_total_minor, 525 + 1_100);
        // Round 6 was left open by the handover: the next leader resumes it.
        assert_eq!(rounds[0].status, RoundStatus::Betting);
    }

    /// A tick of round 5 `ms` into the flight, as a previous leader published it.
    fn tick_of_round_5(seq: u64, started_at_ms: u64) -> RoundEvent {
        RoundEvent::Tick {
            seq,
            round: 5,
            multiplier_hundredths: 101,
            elapsed_ms: 10,
            at_ms: started_at_ms + 10,
            bets: Vec::new(),
            cashouts: Vec::new(),
            totals: None,
        }
    }

    /// Publishes `events` as a previous leader of epoch 1234 did; the bus retains them.
    async fn retain(fixture: &Fixture, events: &[RoundEvent]) {
        for event in events {
            let envelope = EventEnvelope {
                room: ROOM.into(),
                seq: event.seq(),
                epoch: 1_234,
                conflatable: event.is_conflatable(),
                json: fixture.codec.encode_event(event),
            };
            fixture.bus.publish(envelope).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_new_leader_continues_the_numbering_the_history_fully_tells() {
        let fixture = fixture(5, |crash| (150..400).contains(&crash));
        let started_at_ms = SystemClock.now_ms() - 20;
        seed_flight(&fixture, crash_of_round_5(&fixture), started_at_ms).await;
        fixture.ledger.acquire_fence(ROOM).await.unwrap();
        let announced = [
            RoundEvent::BettingOpened {
                seq: 38,
                round: 5,
                ends_at_ms: started_at_ms,
            },
            RoundEvent::FlightStarted {
                seq: 39,
                round: 5,
                started_at_ms,
            },
            tick_of_round_5(40, started_at_ms),
        ];
        retain(&fixture, &announced).await;
        let mut raw = fixture.bus.subscribe(ROOM).await.unwrap();
        let (leadership, handover) = leadership(1);
        let settings = fixture.settings.clone();
        let engine = tokio::spawn(lead_room(settings, fixture.deps.clone(), leadership));
        let mut continued = Vec::new();
        while let Some(Delivery::Event(envelope)) = raw.next().await {
            let event = fixture.codec.decode_event(&envelope.json).unwrap();
            continued.push((envelope.epoch, event.clone()));
            if matches!(event, RoundEvent::Crashed { .. }) {
                break;
            }
        }
        handover.cancel();
        engine.await.unwrap().unwrap();
        // On from seq 41 in the same epoch, and `flying` is not announced again.
        assert!(continued.len() > 1, "ticks, then the crash: {continued:?}");
        for (index, (epoch, event)) in continued.iter().enumerate() {
            assert_eq!(
                (*epoch, event.seq()),
                (1_234, 41 + index as u64),
                "{event:?}"
            );
            assert!(
                !matches!(event, RoundEvent::FlightStarted { .. }),
                "{event:?}"
            );
        }
    }

    #[tokio::test]
    async fn commands_a_dead_leader_took_are_answered_by_the_next_with_their_outcome() {
        let fixture = fixture(5, |crash| (150..400).contains(&crash));
        let crash = crash_of_round_5(&fixture);
        seed_flight(&fixture, crash, SystemClock.now_ms() - 20).await;
        // The dead leader had made bob's cashout and taken alice's stake, but died
        // before reporting the commands handled: the bus redelivers them.
        send(&fixture.bus, "bob", cashout("bob-out")).await;
        let alice_bet = Command::Bet {
            req: "alice-in".into(),
            amount_minor: 1_000,
            auto_cashout_hundredths: Some(110),
            slot: 0,
        };
        send(&fixture.bus, "alice", alice_bet).await;
        let mut replies = replies_of(&fixture).await;
        let (leadership, handover) = leadership(7);
        let settings = fixture.settings.clone();
        let engine = tokio::spawn(lead_room(settings, fixture.deps.clone(), leadership));
        let mut answers = Vec::new();
        while answers.len() < 2 {
            match next_reply(&mut replies).await {
                (_, Answer::BalanceChanged { .. }) => {}
                answer => answers.push(answer),
            }
        }
        handover.cancel();
        engine.await.unwrap().unwrap();
        let bob_ok = Answer::CashedOut {
            req: "bob-out".into(),
            round: 5,
            slot: 0,
            multiplier_hundredths: 105,
            win_minor: 525,
            balance_after_minor: 10_025,
        };
        let alice_ok = Answer::BetAccepted {
            req: "alice-in".into(),
            round: 5,
            slot: 0,
            stake_minor: 1_000,
            auto_cashout_hundredths: Some(110),
            balance_after_minor: 9_000,
        };
        assert_eq!(
            answers,
            vec![("bob".into(), bob_ok), ("alice".into(), alice_ok)]
        );
        let ledger = fixture.ledger.as_ref();
        assert_eq!(balance_of(ledger, "bob").await, 10_025);
        assert_eq!(ledger.transfers_with_prefix("bet:").await.unwrap().len(), 3);
        assert_eq!(ledger.total_balance().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_deposed_leader_stops_without_writing() {
        let fixture = fixture(1, |crash| crash >= 200);
        let ledger = fixture.ledger.as_ref();
        grant(ledger, "alice", 10_000).await;
        let mut replies = replies_of(&fixture).await;
        let mut watcher = Watcher::new(&fixture).await;
        let (leadership, _handover) = leadership(3);
        let settings = fixture.settings.clone();
        let engine = tokio::spawn(lead_room(settings, fixture.deps.clone(), leadership));
        watcher
            .until(|event| matches!(event, RoundEvent::BettingOpened { round: 1, .. }))
            .await;

        // A newer leader raises the fence; the old one's next write is refused.
        Fence {
            room: ROOM.into(),
            token: 4,
        }
        .raise(ledger)
        .await
        .unwrap();
        send(&fixture.bus, "alice", bet("b1", 100, None)).await;
        let stopped = engine.await.unwrap();
        assert!(
            matches!(stopped, Err(EngineError::Deposed { current: 4, .. })),
            "{stopped:?}"
        );
        assert_eq!(balance_of(ledger, "alice").await, 10_000);
        assert!(
            ledger
                .transfers_with_prefix("bet:")
                .await
                .unwrap()
                .is_empty()
        );
        // The newer leader answers: the deposed one says nothing.
        assert!(replies.stream.next().now_or_never().is_none());
    }
}

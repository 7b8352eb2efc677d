//! The ledger side of a wake: the core's decisions performed in order (journal records
//! first, events, then every transfer of the wake in one ledger batch — group commit —
//! with the outcomes fed back to the core), payouts and refunds of a failed batch kept
//! to retry, journal records queued while the ledger fails, and the breaker told how
//! each batch went.

use std::time::Duration;

use crate::engine::answer::RefusalCode;
use crate::engine::round::{Effects, TransferIntent, TransferPurpose};
use crate::ledger::{LedgerError, RoundRecord, RoundStatus, TransferOutcome};

use super::deps::EngineError;
use super::{JOURNAL_BACKLOG_ROUNDS_MAX, RoomRunner};

impl RoomRunner {
    /// Performs the core's decisions: events, journal, one ledger batch, replies.
    pub(super) async fn perform(&mut self) -> Result<(), EngineError> {
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
        self.metrics.observe(&self.core);
        Ok(())
    }

    /// Notes a refusal by the fence: a newer leader owns the room from now on.
    pub(super) fn note_fenced(&mut self, error: &LedgerError) {
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
                    self.metrics.ledger_journal_errors.increment(1);
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
        self.metrics.ledger_batch_seconds.record(elapsed);
        (self.metrics.ledger_batch_transfers).record(batch.len() as f64);
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
                self.metrics.ledger_batch_errors.increment(1);
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
        self.metrics.ledger_breaker_open.set(open);
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
                self.metrics.stake_taken(transfer.amount_minor);
                self.core.confirm_bet(&bet, debit_balance_after_minor);
            }
            (TransferPurpose::Stake(bet), TransferOutcome::InsufficientFunds { .. }) => {
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
                self.metrics.credited(&notice.reason, transfer.amount_minor);
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
}

#[cfg(test)]
mod tests {

    use std::sync::Arc;
    use std::time::Duration;

    use crate::engine::answer::Answer;
    use crate::engine::answer::RefusalCode;

    use crate::engine::event::RoundEvent;

    use crate::ledger::Ledger;
    use crate::ledger::flaky::FlakyLedger;

    use super::super::test_support::*;

    /// Puts a flaky ledger over the fixture's for the engine (the test still reads the
    /// fixture's directly).
    fn wrap_flaky(fixture: &mut Fixture) -> Arc<FlakyLedger> {
        let flaky = Arc::new(FlakyLedger::new(fixture.ledger.clone()));
        fixture.deps.ledger = flaky.clone();
        flaky
    }

    #[tokio::test]
    async fn a_failed_batch_refuses_its_bets_and_retries_its_payouts() {
        let mut fixture = fixture(1, |crash| crash >= 1_000);
        // The breaker's cooldown is its own test's: here the retry comes after it.
        fixture.settings.engine.ledger_breaker_cooldown_ms = 1;
        let flaky = wrap_flaky(&mut fixture);
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
        let flaky = wrap_flaky(&mut fixture);
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
}

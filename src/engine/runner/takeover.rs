//! Taking a room over from a previous leader: the numbering of events continued when the
//! bus still holds enough of the previous leader's stream ([`Continuation`]), and the
//! round it left in flight resumed with what the ledger holds of it.

use crate::engine::event::RoundEvent;

use crate::engine::round::{
    ChainExhausted, ResumeError, RoomCore, RoomSettings, RoundInFlight, set_limits,
};
use crate::ledger::{LedgerError, RoundRecord};

use super::deps::{EngineDeps, EngineError};
use super::recovery::{bets_in_flight, next_round};

/// How a new leader numbers its events, and what the previous one announced.
pub(super) struct Continuation {
    pub(super) epoch: u64,
    pub(super) first_seq: u64,
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
pub(super) async fn continued_numbering(
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

/// How a leader's recovery failed: a write refused by the fence means a newer leader
/// deposed this one; any other error is a failed recovery.
pub(super) fn leader_recovery_error(room: &str, source: LedgerError) -> EngineError {
    match source {
        LedgerError::Fenced { current, .. } => EngineError::Deposed {
            room: room.to_owned(),
            current,
        },
        source => EngineError::Recovery {
            room: room.to_owned(),
            source,
        },
    }
}

/// The core of a new leader: the round left `in_flight` resumed with the stakes and
/// payouts the ledger holds of it, or else the next round opened; its events numbered
/// as `continuation` says.
pub(super) async fn leading_core(
    settings: &RoomSettings,
    deps: &EngineDeps,
    in_flight: Option<RoundRecord>,
    continuation: &Continuation,
    now_ms: u64,
    paused: bool,
) -> Result<RoomCore, EngineError> {
    let room = settings.room.as_str();
    let recovery_error = |source| leader_recovery_error(room, source);
    let first_seq = continuation.first_seq;
    let core = match in_flight {
        Some(record) => {
            let round = record.round;
            let bets = bets_in_flight(room, round, deps.ledger.as_ref())
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
            let mut core = RoomCore::resume(settings.clone(), chain, in_flight, first_seq, now_ms)
                .map_err(|source| match source {
                    ResumeError::ChainExhausted(exhausted) => exhausted.into(),
                    source => EngineError::Resume {
                        room: room.to_owned(),
                        source,
                    },
                })?;
            // The resumed round finishes; a paused room opens no other.
            if paused {
                core.rest_after_round(now_ms);
            }
            core
        }
        None => {
            let first_round = next_round(deps.ledger.as_ref(), room)
                .await
                .map_err(recovery_error)?;
            opening_core(
                settings.clone(),
                deps,
                first_round,
                first_seq,
                now_ms,
                paused,
            )?
        }
    };
    Ok(core)
}

/// `settings` with the limits an operator stored for the room, and whether it is paused
/// (`false` for a room no operator ever changed).
pub(super) async fn with_stored_controls(
    deps: &EngineDeps,
    mut settings: RoomSettings,
) -> Result<(RoomSettings, bool), LedgerError> {
    let Some(controls) = deps.ledger.room_controls(&settings.room).await? else {
        return Ok((settings, false));
    };
    set_limits(&mut settings.engine, controls.limits);
    Ok((settings, controls.paused))
}

/// A new core for `first_round`: open for bets, or resting paused until resumed.
pub(super) fn opening_core(
    settings: RoomSettings,
    deps: &EngineDeps,
    first_round: u64,
    first_seq: u64,
    now_ms: u64,
    paused: bool,
) -> Result<RoomCore, ChainExhausted> {
    let chain = deps.chain.clone();
    if paused {
        tracing::info!(room = %settings.room, round = first_round, "room paused by an operator");
        return Ok(RoomCore::paused(
            settings,
            chain,
            first_round,
            first_seq,
            now_ms,
        ));
    }
    RoomCore::new(settings, chain, first_round, first_seq, now_ms)
}

#[cfg(test)]
mod tests {

    use futures_util::{FutureExt, StreamExt};
    use tokio_util::sync::CancellationToken;

    use crate::bus::Delivery;
    use crate::bus::{Bus, Command, EventEnvelope};
    use crate::clock::Clock;
    use crate::clock::SystemClock;

    use crate::engine::answer::Answer;

    use crate::engine::codec::Codec;

    use crate::engine::event::RoundEvent;

    use crate::fair;

    use crate::ledger::SqliteLedger;
    use crate::ledger::{Account, Fence, Ledger, RoundRecord, RoundStatus, Transfer, TransferKind};

    use super::super::test_support::*;
    use super::super::*;
    use super::*;

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
            name: "Bettor".to_owned(),
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

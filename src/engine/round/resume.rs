//! Taking over a round a previous leader of the room left betting or flying: the round
//! rebuilt from the journal and the ledger's stakes and payouts ([`RoundInFlight`]).

use std::sync::Arc;

use crate::fair::FairChain;
use crate::ledger::RoundStatus;

use super::super::event::RoundEvent;
use super::RoomCore;
use super::curve::elapsed_to_reach_ms;
use super::types::{
    Bet, BetInFlight, BetSettled, BetState, ResumeError, RoomSettings, RoundInFlight, RoundPhase,
    RoundState, SLOTS_PER_PLAYER,
};

impl RoomCore {
    /// Takes over `in_flight`, the round a previous leader left Betting or Flying, at
    /// `now_ms`, numbering events from `first_seq`. The round goes on exactly as it
    /// would have: the crash point comes from the chain, the multiplier from the
    /// journaled start time, and the stakes and payouts from the ledger. Auto-cashouts
    /// the flight reached meanwhile are paid at their target on the next `advance`, and a
    /// round past its crash point crashes then. A round still betting keeps the end its
    /// `betting` event announced, or gets a fresh betting period when that event is gone
    /// (the end time is not journaled). A phase the previous leader did not announce (it
    /// died between journal and publish) is announced now.
    pub fn resume(
        settings: RoomSettings,
        chain: Arc<FairChain>,
        in_flight: RoundInFlight,
        first_seq: u64,
        now_ms: u64,
    ) -> Result<RoomCore, ResumeError> {
        let RoundInFlight {
            record,
            bets,
            announced_betting_end_ms,
            announced_flying,
        } = in_flight;
        assert!(matches!(
            record.status,
            RoundStatus::Betting | RoundStatus::Flying
        ));
        assert!(first_seq >= 1);
        let mut round = RoundState::open(&settings, &chain, record.round, now_ms)?;
        if round.hash != record.hash {
            return Err(ResumeError::ChainMismatch {
                round: record.round,
            });
        }
        if record.status == RoundStatus::Flying {
            let rate = settings.engine.growth_rate_per_ms_millionths;
            let started_at_ms = record.started_at_ms.min(now_ms);
            round.phase = RoundPhase::Flying {
                started_at_ms,
                crash_at_ms: started_at_ms + elapsed_to_reach_ms(round.crash_hundredths, rate),
            };
            round.started_at_ms = started_at_ms;
            round.next_tick_at_ms = now_ms;
        } else if let Some(ends_at_ms) = announced_betting_end_ms {
            round.phase = RoundPhase::Betting {
                ends_at_ms: ends_at_ms.max(now_ms),
            };
        }
        let mut core = RoomCore::with_round(settings, chain, round, now_ms);
        core.next_seq = first_seq;
        for bet in bets {
            core.adopt(bet);
        }
        core.announce_resumed_phase(announced_betting_end_ms, announced_flying);
        Ok(core)
    }

    /// Announces the resumed round's phase unless the previous leader did.
    fn announce_resumed_phase(
        &mut self,
        announced_betting_end_ms: Option<u64>,
        announced_flying: bool,
    ) {
        let round = self.round.number;
        match self.round.phase {
            RoundPhase::Betting { .. } if announced_betting_end_ms.is_some() => {}
            RoundPhase::Flying { .. } if announced_flying => {}
            RoundPhase::Betting { .. } => self.announce_betting(),
            RoundPhase::Flying { started_at_ms, .. } => {
                self.emit(|seq| RoundEvent::FlightStarted {
                    seq,
                    round,
                    started_at_ms,
                })
            }
            RoundPhase::Crashed { .. } | RoundPhase::Aborted => {
                unreachable!("resumed rounds are betting or flying")
            }
        }
    }

    /// Takes a stake of a resumed round back into the round's books.
    fn adopt(&mut self, bet: BetInFlight) {
        self.resumed_bets
            .insert((bet.player.clone(), bet.slot), bet.clone());
        let BetInFlight {
            player,
            slot,
            stake_minor,
            auto_cashout_hundredths,
            settled,
            ..
        } = bet;
        assert!(stake_minor > 0 && slot < SLOTS_PER_PLAYER);
        if settled != BetSettled::Refunded {
            self.round.totals.bets += 1;
            self.round.totals.staked_minor += stake_minor;
        }
        let state = match settled {
            BetSettled::Open => {
                self.active_stakes_minor += i128::from(stake_minor);
                if let Some(auto) = auto_cashout_hundredths {
                    self.auto_cashouts.insert((auto, player.clone(), slot));
                }
                BetState::Active
            }
            BetSettled::PaidOut { win_minor, .. } => {
                self.realized_profit_minor += win_minor - stake_minor;
                self.round.totals.cashouts += 1;
                self.round.totals.won_minor += win_minor;
                self.round.totals.cashed_out_stakes_minor += stake_minor;
                BetState::CashedOut
            }
            BetSettled::Refunded => BetState::Refunded,
        };
        // A resumed bet was listed by the leader that took it; the name is for lists, so
        // the default does.
        let name = crate::display_name::default_name(&player);
        let previous = self.bets.insert(
            (player, slot),
            Bet {
                stake_minor,
                auto_cashout_hundredths,
                state,
                name,
            },
        );
        assert!(previous.is_none(), "one stake per player and slot");
    }
}

#[cfg(test)]
mod tests {

    use crate::engine::answer::{Answer, RefusalCode};
    use crate::engine::event::RoundEvent;
    use crate::fair::{self};
    use crate::ledger::{RoundRecord, RoundStatus};

    use super::super::test_support::*;
    use super::super::*;
    use super::*;

    /// A flight left by a dead leader in the room of `core` (round 1, started at the end
    /// of its betting): alice 1000 auto 1.50x open, bob 500 auto 1.20x paid, carol 200
    /// without auto open.
    fn left_in_flight(core: &RoomCore, crash: u64) -> RoundInFlight {
        let open = |player: &str, stake_minor, auto| BetInFlight {
            player: player.into(),
            slot: 0,
            stake_minor,
            auto_cashout_hundredths: auto,
            stake_balance_after_minor: 10_000 - stake_minor,
            settled: BetSettled::Open,
        };
        let record = RoundRecord {
            room: "test".into(),
            round: 1,
            hash: core.chain.round_hash(1).unwrap(),
            crash_hundredths: crash,
            started_at_ms: T0_MS + BETTING_MS,
            ended_at_ms: None,
            status: RoundStatus::Flying,
            bets_total_minor: 1_700,
            payouts_total_minor: 600,
        };
        let bets = vec![
            open("alice", 1_000, Some(150)),
            BetInFlight {
                settled: BetSettled::PaidOut {
                    multiplier_hundredths: 120,
                    win_minor: 600,
                    balance_after_minor: 10_100,
                },
                ..open("bob", 500, Some(120))
            },
            open("carol", 200, None),
        ];
        RoundInFlight {
            record,
            bets,
            announced_betting_end_ms: None,
            announced_flying: false,
        }
    }

    #[test]
    fn a_resumed_flight_pays_what_it_reached_once_and_crashes_on_its_chain() {
        let (original, crash) = room_where(|crash| crash >= 300, engine());
        let started_at_ms = T0_MS + BETTING_MS;
        let now_ms = started_at_ms + elapsed_to_reach_ms(200, RATE);
        let in_flight = left_in_flight(&original, crash);
        let (settings, chain) = (original.settings.clone(), original.chain.clone());
        let mut core = RoomCore::resume(settings, chain, in_flight, 41, now_ms).unwrap();
        let announced = core.take_effects();
        assert_eq!(
            announced.events,
            vec![RoundEvent::FlightStarted {
                seq: 41,
                round: 1,
                started_at_ms
            }]
        );

        core.advance(now_ms).unwrap();
        let effects = core.take_effects();
        // alice's 1.50x was reached while no engine led: paid at exactly 1.50x; bob's
        // payout is already in the ledger and is not made again.
        assert_eq!(
            credits(&effects),
            vec![("payout:test:1:alice:0".into(), 1_500)]
        );
        assert!(matches!(
            effects.events[..],
            [RoundEvent::Tick {
                seq: 42,
                multiplier_hundredths: 200,
                ..
            }]
        ));
        let payout = &effects.transfers[0].transfer;
        assert_eq!(payout.multiplier_hundredths, Some(150));

        core.cashout(now_ms, &player("carol"), "c1", 0);
        let effects = core.take_effects();
        assert_eq!(
            credits(&effects),
            vec![("payout:test:1:carol:0".into(), 400)]
        );

        let crash_at_ms = started_at_ms + elapsed_to_reach_ms(crash, RATE);
        core.advance(crash_at_ms).unwrap();
        let effects = core.take_effects();
        assert!(credits(&effects).is_empty());
        assert!(
            matches!(effects.events.last(), Some(RoundEvent::Crashed { crash_hundredths, .. }) if *crash_hundredths == crash)
        );
        let record = effects.records.last().unwrap();
        assert_eq!(record.status, RoundStatus::Crashed);
        assert_eq!(record.bets_total_minor, 1_700);
        assert_eq!(record.payouts_total_minor, 600 + 1_500 + 400);
    }

    #[test]
    fn a_command_the_previous_leader_took_is_answered_with_what_the_ledger_holds() {
        let (original, crash) = room_where(|crash| crash >= 300, engine());
        let now_ms = T0_MS + BETTING_MS + 50;
        let in_flight = left_in_flight(&original, crash);
        let (settings, chain) = (original.settings.clone(), original.chain.clone());
        let mut core = RoomCore::resume(settings, chain, in_flight, 41, now_ms).unwrap();
        core.take_effects();

        // bob's cashout was paid before the leader died: its reply, nothing paid again.
        core.cashout(now_ms, &player("bob"), "out", 0);
        let effects = core.take_effects();
        assert!(effects.transfers.is_empty());
        let cashout_ok = Answer::CashedOut {
            req: "out".into(),
            round: 1,
            slot: 0,
            multiplier_hundredths: 120,
            win_minor: 600,
            balance_after_minor: 10_100,
        };
        assert_eq!(effects.replies[0].answer, cashout_ok);
        core.cashout(now_ms + 1, &player("bob"), "out", 0);
        assert_eq!(only_reply(&mut core), cashout_ok);
        // alice's bet was taken: bet_ok with the balance after her stake, though betting
        // is over.
        core.bet(
            now_ms + 1,
            &player("alice"),
            "alice",
            "in",
            BetTerms::new(1_000, Some(150), 0),
        );
        let effects = core.take_effects();
        assert!(effects.transfers.is_empty());
        let bet_ok = Answer::BetAccepted {
            req: "in".into(),
            round: 1,
            slot: 0,
            stake_minor: 1_000,
            auto_cashout_hundredths: Some(150),
            balance_after_minor: 9_000,
        };
        assert_eq!(effects.replies[0].answer, bet_ok);
        // Other terms are another bet, refused as any; an open bet is cashed out as usual.
        core.bet(
            now_ms + 1,
            &player("carol"),
            "carol",
            "in",
            BetTerms::new(300, None, 0),
        );
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::WrongPhase);
        core.cashout(now_ms + 1, &player("carol"), "out", 0);
        assert_eq!(credits(&core.take_effects()).len(), 1);
    }

    #[test]
    fn a_phase_the_previous_leader_announced_is_not_announced_again() {
        let (original, crash) = room_where(|crash| crash >= 300, engine());
        let mut flying = left_in_flight(&original, crash);
        flying.announced_flying = true;
        let now_ms = T0_MS + BETTING_MS + 50;
        let (settings, chain) = (original.settings.clone(), original.chain.clone());
        let mut core =
            RoomCore::resume(settings.clone(), chain.clone(), flying, 9, now_ms).unwrap();
        assert!(core.take_effects().events.is_empty());
        core.advance(now_ms).unwrap();
        assert!(matches!(
            core.take_effects().events[..],
            [RoundEvent::Tick { seq: 9, .. }]
        ));

        let mut betting = left_in_flight(&original, crash);
        betting.record.status = RoundStatus::Betting;
        betting.bets.retain(|bet| bet.settled == BetSettled::Open);
        betting.announced_betting_end_ms = Some(T0_MS + BETTING_MS);
        let mut core = RoomCore::resume(settings, chain, betting, 9, T0_MS + 300).unwrap();
        assert!(core.take_effects().events.is_empty());
        // The announced end holds: the flight starts when the players were told.
        core.advance(T0_MS + BETTING_MS).unwrap();
        assert!(matches!(
            core.take_effects().events[..],
            [.., RoundEvent::FlightStarted { seq: 9, .. }]
        ));
    }

    #[test]
    fn a_flight_resumed_past_its_crash_point_crashes_at_once() {
        let (original, crash) = room_where(|crash| (160..300).contains(&crash), engine());
        let started_at_ms = T0_MS + BETTING_MS;
        let now_ms = started_at_ms + elapsed_to_reach_ms(crash, RATE) + 5_000;
        let in_flight = left_in_flight(&original, crash);
        let (settings, chain) = (original.settings.clone(), original.chain.clone());
        let mut core = RoomCore::resume(settings, chain, in_flight, 1, now_ms).unwrap();
        core.advance(now_ms).unwrap();
        let effects = core.take_effects();
        // alice's target is below the crash point: the flight reached it.
        assert_eq!(
            credits(&effects),
            vec![("payout:test:1:alice:0".into(), 1_500)]
        );
        assert!(
            matches!(effects.events.last(), Some(RoundEvent::Crashed { crash_hundredths, .. }) if *crash_hundredths == crash)
        );
        assert!(matches!(core.phase(), RoundPhase::Crashed { .. }));
    }

    #[test]
    fn resuming_refuses_a_round_of_another_chain() {
        let (original, crash) = room_where(|_| true, engine());
        let mut in_flight = left_in_flight(&original, crash);
        in_flight.record.hash = fair::sha256_hex("another chain");
        let (settings, chain) = (original.settings.clone(), original.chain.clone());
        let error = RoomCore::resume(settings, chain, in_flight, 1, T0_MS).err();
        assert_eq!(error, Some(ResumeError::ChainMismatch { round: 1 }));
    }

    #[test]
    fn a_resumed_betting_phase_keeps_its_bets_and_reopens_for_a_full_period() {
        let (original, crash) = room_where(|_| true, engine());
        let mut in_flight = left_in_flight(&original, crash);
        in_flight.record.status = RoundStatus::Betting;
        in_flight.record.started_at_ms = 0;
        in_flight.bets.retain(|bet| bet.settled == BetSettled::Open);
        let now_ms = T0_MS + 300;
        let (settings, chain) = (original.settings.clone(), original.chain.clone());
        let mut core = RoomCore::resume(settings, chain, in_flight, 7, now_ms).unwrap();
        let effects = core.take_effects();
        assert!(matches!(
            effects.events[..],
            [RoundEvent::BettingOpened { seq: 7, round: 1, ends_at_ms }] if ends_at_ms == now_ms + BETTING_MS
        ));
        core.bet(
            now_ms,
            &player("alice"),
            "alice",
            "again",
            BetTerms::new(100, None, 0),
        );
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::SlotTaken);
    }
}

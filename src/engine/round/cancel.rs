//! Cancelling a bet: a player takes back a confirmed bet while betting is open. The bet
//! leaves the round at once (its slot stays taken for the round: the stake's transfer id
//! is the slot's) and its stake goes back through the ledger under the bet's refund id,
//! the same id an abort would refund it under, so it is refunded exactly once whatever
//! happens next. The engine decides alone, in command order: a cancel handled before
//! betting closes is `BetCancelled`, one handled after is `too_late`, never both.

use crate::bus::{ReplyTo, RequestKind};

use super::super::answer::{Answer, Refusal, RefusalCode};
use super::super::event::RoundEvent;
use super::RoomCore;
use super::types::{BetKey, BetState, CreditReason, RoundPhase, SLOTS_PER_PLAYER};

impl RoomCore {
    /// Cancels `from.player`'s bet in `slot` if betting is still open at `now_ms`; the
    /// answer comes once the ledger holds the refund ([`RoomCore::credit_committed`]).
    pub fn cancel(&mut self, now_ms: u64, from: &ReplyTo, req: &str, slot: u8) {
        self.observe(now_ms);
        let request = self.request_key(from, RequestKind::Cancel, req);
        if self.answer_replay(&request, from) {
            return;
        }
        if let Err(refusal) = self.check_cancel(now_ms, &from.player, slot) {
            let answer = Answer::CancelRefused {
                req: req.to_owned(),
                refusal,
            };
            self.answer(request, vec![from.clone()], answer);
            return;
        }
        self.replay.wait_for_ledger(request, from);
        let index = (from.player.clone(), slot);
        let bet = self.bets.get_mut(&index).expect("checked: an active bet");
        bet.state = BetState::Refunded;
        let (stake_minor, auto) = (bet.stake_minor, bet.auto_cashout_hundredths);
        if let Some(auto) = auto {
            self.auto_cashouts
                .remove(&(auto, from.player.clone(), slot));
        }
        self.active_stakes_minor -= i128::from(stake_minor);
        let totals = &mut self.round.totals;
        totals.bets -= 1;
        totals.staked_minor -= stake_minor;
        // A bet not listed yet is never listed: the event below is all a list needs.
        (self.unannounced_bets)
            .remove(|listed| (listed.player.as_str(), listed.slot) == (&from.player, slot));
        let (round, totals) = (self.round.number, self.public_totals());
        let player = from.player.clone();
        self.emit(|seq| RoundEvent::BetCancelled {
            seq,
            round,
            player: player.clone(),
            slot,
            stake_minor,
            totals,
        });
        let key = BetKey {
            round,
            player,
            slot,
        };
        let reason = CreditReason::Cancel {
            req: req.to_owned(),
            refunded_minor: stake_minor,
        };
        self.refund(key, stake_minor, reason);
    }

    fn check_cancel(&self, now_ms: u64, player: &str, slot: u8) -> Result<(), Refusal> {
        if slot >= SLOTS_PER_PLAYER {
            return Err(Refusal::new(
                RefusalCode::InvalidField,
                "slot must be 0 or 1",
            ));
        }
        let betting =
            matches!(self.round.phase, RoundPhase::Betting { ends_at_ms } if now_ms < ends_at_ms);
        let bet = self.bets.get(&(player.to_owned(), slot));
        match bet.map(|bet| &bet.state) {
            Some(BetState::Active) if betting => Ok(()),
            Some(BetState::Active | BetState::CashedOut | BetState::Lost) => Err(Refusal::new(
                RefusalCode::TooLate,
                "betting has closed: the bet plays in this round",
            )),
            Some(BetState::Pending { .. }) => Err(Refusal::new(
                RefusalCode::NoActiveBet,
                "the bet is not confirmed yet; retry once it is",
            )),
            Some(BetState::Refunded) => Err(Refusal::new(
                RefusalCode::NoActiveBet,
                "the bet in this slot was already refunded",
            )),
            None => Err(Refusal::new(
                RefusalCode::NoActiveBet,
                "no bet in this slot this round",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::types::{CreditNotice, Effects, TransferPurpose};
    use super::*;
    use crate::engine::event::RoundTotals;

    /// Cancels `name`'s bet in `slot` at `now_ms` by request `req`: what the core did.
    fn cancel(core: &mut RoomCore, now_ms: u64, name: &str, req: &str, slot: u8) -> Effects {
        core.cancel(now_ms, &player(name), req, slot);
        core.take_effects()
    }

    fn refund_notice(effects: &Effects) -> CreditNotice {
        let [intent] = effects.transfers.as_slice() else {
            panic!("expected one refund: {effects:?}");
        };
        let TransferPurpose::Credit(notice) = &intent.purpose else {
            panic!("expected a credit: {intent:?}");
        };
        notice.clone()
    }

    #[test]
    fn a_cancel_while_betting_refunds_the_stake_once_and_answers_after_the_ledger() {
        let (mut core, _) = room_where(|crash| crash >= 200, engine());
        placed(&mut core, "a", 300, Some(150), 0);
        placed(&mut core, "b", 100, None, 0);
        let effects = cancel(&mut core, T0_MS + 10, "a", "x1", 0);
        assert_eq!(
            credits(&effects),
            vec![("refund:test:1:a:0".to_owned(), 300)]
        );
        assert!(
            effects.replies.is_empty(),
            "answered once the ledger holds it"
        );
        let [
            RoundEvent::BetCancelled {
                player: cancelled_by,
                slot: 0,
                stake_minor: 300,
                totals: Some(totals),
                ..
            },
        ] = effects.events.as_slice()
        else {
            panic!("one bet_cancelled: {:?}", effects.events);
        };
        assert_eq!(cancelled_by, "a");
        let expected = RoundTotals {
            bets: 1,
            staked_minor: 100,
            ..RoundTotals::default()
        };
        assert_eq!(*totals, expected);
        assert_eq!(core.active_stakes_minor(), 100);
        core.credit_committed(&refund_notice(&effects), 1_300);
        let answer = only_reply(&mut core);
        let cancelled = Answer::BetCancelled {
            req: "x1".into(),
            round: 1,
            slot: 0,
            refunded_minor: 300,
            balance_after_minor: 1_300,
        };
        assert_eq!(answer, cancelled);
        // The same request again: the same answer, no second refund.
        let replay = cancel(&mut core, T0_MS + 20, "a", "x1", 0);
        assert!(replay.transfers.is_empty() && replay.events.is_empty());
        assert_eq!(replay.replies[0].answer, cancelled);
        // Another request for the same slot: nothing left to cancel; the slot stays
        // taken this round (its stake id is the slot's).
        let again = cancel(&mut core, T0_MS + 30, "a", "x2", 0);
        assert!(again.transfers.is_empty());
        assert_eq!(refusal(&again.replies[0].answer), RefusalCode::NoActiveBet);
        core.bet(
            T0_MS + 40,
            &player("a"),
            "a",
            "b2",
            BetTerms::new(300, None, 0),
        );
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::SlotTaken);
        // The auto-cashout target left with the bet: the flight pays no one.
        fly(&mut core);
        core.take_effects();
        core.advance(T0_MS + BETTING_MS + 60_000).unwrap();
        assert!(credits(&core.take_effects()).is_empty());
    }

    #[test]
    fn a_cancel_at_the_end_of_betting_is_too_late_and_the_bet_plays() {
        let (mut core, crash) = room_where(|crash| crash >= 200, engine());
        placed(&mut core, "a", 300, None, 0);
        // Betting ends at T0 + BETTING_MS, even before `advance` has seen it.
        let late = cancel(&mut core, T0_MS + BETTING_MS, "a", "x", 0);
        assert!(late.transfers.is_empty() && late.events.is_empty());
        assert_eq!(refusal(&late.replies[0].answer), RefusalCode::TooLate);
        fly(&mut core);
        let flying = cancel(&mut core, T0_MS + BETTING_MS + 5, "a", "y", 0);
        assert_eq!(refusal(&flying.replies[0].answer), RefusalCode::TooLate);
        assert_eq!(core.active_stakes_minor(), 300);
        // It plays: a cashout pays it.
        core.cashout(T0_MS + BETTING_MS + 10, &player("a"), "c", 0);
        assert!(crash > 100);
        let paid = credits(&core.take_effects());
        assert_eq!(paid.len(), 1);
        assert!(paid[0].0.starts_with("payout:test:1:a:0"));
    }

    #[test]
    fn a_cancel_just_before_the_end_of_betting_wins_the_race() {
        let (mut core, _) = room_where(|_| true, engine());
        placed(&mut core, "a", 300, None, 0);
        let effects = cancel(&mut core, T0_MS + BETTING_MS - 1, "a", "x", 0);
        assert_eq!(credits(&effects).len(), 1);
        fly(&mut core);
        assert_eq!(core.active_stakes_minor(), 0);
    }

    #[test]
    fn nothing_to_cancel_is_refused_with_no_effect() {
        let (mut core, _) = room_where(|_| true, engine());
        let none = cancel(&mut core, T0_MS, "a", "x", 0);
        assert_eq!(refusal(&none.replies[0].answer), RefusalCode::NoActiveBet);
        let bad_slot = cancel(&mut core, T0_MS, "a", "y", 2);
        assert_eq!(
            refusal(&bad_slot.replies[0].answer),
            RefusalCode::InvalidField
        );
        // A stake the ledger has not taken yet cannot be cancelled.
        core.bet(T0_MS, &player("a"), "a", "b", BetTerms::new(100, None, 0));
        core.take_effects();
        let pending = cancel(&mut core, T0_MS, "a", "z", 0);
        assert!(pending.transfers.is_empty() && pending.events.is_empty());
        assert_eq!(
            refusal(&pending.replies[0].answer),
            RefusalCode::NoActiveBet
        );
    }

    #[test]
    fn a_bet_cancelled_before_its_tick_is_never_listed() {
        let (mut core, _) = room_where(|_| true, engine());
        placed(&mut core, "a", 500, None, 0);
        placed(&mut core, "b", 100, None, 0);
        let effects = cancel(&mut core, T0_MS + 1, "a", "x", 0);
        core.credit_committed(&refund_notice(&effects), 1_500);
        core.take_effects();
        core.advance(T0_MS + 100).unwrap();
        let events = core.take_effects().events;
        let listed: Vec<&str> = events
            .iter()
            .flat_map(|event| match event {
                RoundEvent::Tick { bets, .. } => {
                    bets.iter().map(|bet| bet.player.as_str()).collect()
                }
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(listed, ["b"]);
    }
}

//! Placing a bet: its checks, the stake handed to the ledger, and the ledger's answer
//! (the bet confirmed and public, or refused and its slot free again).

use crate::bus::{ReplyTo, RequestKind};
use crate::ledger::{Account, BetTransferKind, Transfer, TransferKind};

use super::super::answer::{Answer, Refusal, RefusalCode};
use super::super::event::ListedBet;
use super::RoomCore;
use super::replay::RequestKey;
use super::types::{
    AUTO_CASHOUT_MIN_HUNDREDTHS, Bet, BetKey, BetState, BetTerms, ROUND_BETS_MAX, RoundPhase,
    SLOTS_PER_PLAYER, TransferIntent, TransferPurpose,
};

impl RoomCore {
    /// Places a bet for `from.player`. Answers at once when refused or replayed;
    /// otherwise hands out the stake transfer and answers once the ledger has spoken. A
    /// bet with the terms of a stake a previous leader took in that slot this round is
    /// that leader's command redelivered: it gets the `bet_ok` the stake earned.
    pub fn bet(&mut self, now_ms: u64, from: &ReplyTo, name: &str, req: &str, terms: BetTerms) {
        self.observe(now_ms);
        let request = self.request_key(from, RequestKind::Bet, req);
        if self.answer_replay(&request, from) {
            return;
        }
        let resumed = self.resumed_bets.get(&(from.player.clone(), terms.slot));
        if let Some(stake) = resumed.filter(|stake| {
            (stake.stake_minor, stake.auto_cashout_hundredths)
                == (terms.amount_minor, terms.auto_cashout_hundredths)
        }) {
            let answer = Answer::BetAccepted {
                req: req.to_owned(),
                round: self.round.number,
                slot: terms.slot,
                stake_minor: terms.amount_minor,
                auto_cashout_hundredths: terms.auto_cashout_hundredths,
                balance_after_minor: stake.stake_balance_after_minor,
            };
            self.answer(request, vec![from.clone()], answer);
            return;
        }
        if let Err(refusal) = self.check_bet(now_ms, &from.player, &terms) {
            let answer = Answer::BetRefused {
                req: req.to_owned(),
                refusal,
            };
            self.answer(request, vec![from.clone()], answer);
            return;
        }
        self.take_stake(request, from, name, req, terms);
    }

    /// Holds the slot for an accepted bet and hands its stake to the ledger.
    fn take_stake(
        &mut self,
        request: RequestKey,
        from: &ReplyTo,
        name: &str,
        req: &str,
        terms: BetTerms,
    ) {
        let BetTerms {
            amount_minor,
            auto_cashout_hundredths,
            slot,
        } = terms;
        let bet = Bet {
            stake_minor: amount_minor,
            auto_cashout_hundredths,
            state: BetState::Pending {
                req: req.to_owned(),
            },
            name: name.to_owned(),
        };
        self.bets.insert((from.player.clone(), slot), bet);
        self.replay.wait_for_ledger(request, from);
        let key = BetKey {
            round: self.round.number,
            player: from.player.clone(),
            slot,
        };
        let transfer = Transfer {
            id: self.transfer_id(BetTransferKind::Stake, &key),
            debit: Account::Player(from.player.clone()),
            credit: Account::House,
            amount_minor,
            kind: TransferKind::Bet,
            multiplier_hundredths: auto_cashout_hundredths,
        };
        self.effects.transfers.push(TransferIntent {
            transfer,
            purpose: TransferPurpose::Stake(key),
        });
    }

    fn check_bet(&self, now_ms: u64, player: &str, terms: &BetTerms) -> Result<(), Refusal> {
        let &BetTerms {
            amount_minor,
            auto_cashout_hundredths,
            slot,
        } = terms;
        let engine = &self.settings.engine;
        let betting =
            matches!(self.round.phase, RoundPhase::Betting { ends_at_ms } if now_ms < ends_at_ms);
        if !betting {
            return Err(Refusal::new(
                RefusalCode::WrongPhase,
                "bets are taken only while betting is open",
            ));
        }
        if slot >= SLOTS_PER_PLAYER {
            return Err(Refusal::new(
                RefusalCode::InvalidField,
                "slot must be 0 or 1",
            ));
        }
        let (amount_min, amount_max) = (engine.bet_amount_min_minor, engine.bet_amount_max_minor);
        if !(amount_min..=amount_max).contains(&amount_minor) {
            let message = format!("amount must be {amount_min}..={amount_max} minor units");
            return Err(Refusal::new(RefusalCode::InvalidField, message));
        }
        let auto_range = AUTO_CASHOUT_MIN_HUNDREDTHS..=engine.auto_cashout_max_hundredths;
        if auto_cashout_hundredths.is_some_and(|auto| !auto_range.contains(&auto)) {
            let message = format!(
                "auto must be {}..={} hundredths",
                auto_range.start(),
                auto_range.end()
            );
            return Err(Refusal::new(RefusalCode::InvalidField, message));
        }
        if self.bets.contains_key(&(player.to_owned(), slot)) {
            return Err(Refusal::new(
                RefusalCode::SlotTaken,
                "this slot already holds a bet this round",
            ));
        }
        if self.bets.len() >= ROUND_BETS_MAX {
            return Err(Refusal::new(
                RefusalCode::Overloaded,
                "this round is full; retry with the same req",
            ));
        }
        if !self.ledger_available {
            return Err(Refusal::new(
                RefusalCode::Unavailable,
                "the ledger is failing; bets are refused for a few seconds; retry with the same req",
            ));
        }
        Ok(())
    }

    /// The ledger took the stake: the bet is active and public.
    pub fn confirm_bet(&mut self, key: &BetKey, debit_balance_after_minor: i64) {
        let index = self.settled_bet_index(key);
        let bet = self
            .bets
            .get_mut(&index)
            .expect("a confirmed bet was accepted");
        let BetState::Pending { req } = std::mem::replace(&mut bet.state, BetState::Active) else {
            panic!("bet {key:?} confirmed twice");
        };
        let (stake_minor, auto) = (bet.stake_minor, bet.auto_cashout_hundredths);
        let name = bet.name.clone();
        self.active_stakes_minor += i128::from(stake_minor);
        self.round.totals.bets += 1;
        self.round.totals.staked_minor += stake_minor;
        if let Some(auto) = auto {
            self.auto_cashouts
                .insert((auto, key.player.clone(), key.slot));
        }
        self.unannounced_bets.offer(ListedBet {
            player: key.player.clone(),
            name,
            slot: key.slot,
            stake_minor,
            auto_cashout_hundredths: auto,
        });
        self.bets_unannounced = true;
        let answer = Answer::BetAccepted {
            req: req.clone(),
            round: key.round,
            slot: key.slot,
            stake_minor,
            auto_cashout_hundredths: auto,
            balance_after_minor: debit_balance_after_minor,
        };
        self.finish_request(key.round, &key.player, RequestKind::Bet, req, answer);
    }

    /// The ledger refused the stake (`insufficient_funds`) or failed (`internal`): the
    /// slot is free again and the request is answered with `code`.
    pub fn reject_bet(&mut self, key: &BetKey, code: RefusalCode) {
        let index = self.settled_bet_index(key);
        let bet = self
            .bets
            .remove(&index)
            .expect("a rejected bet was accepted");
        let BetState::Pending { req } = bet.state else {
            panic!("bet {key:?} rejected after it was confirmed");
        };
        let message = match code {
            RefusalCode::InsufficientFunds => "the balance is lower than the stake",
            RefusalCode::Internal => "storage fault; nothing was changed; retry with the same req",
            _ => "the bet was refused",
        };
        let answer = Answer::BetRefused {
            req: req.clone(),
            refusal: Refusal::new(code, message),
        };
        self.finish_request(key.round, &key.player, RequestKind::Bet, req, answer);
    }

    /// Where the bet whose stake the ledger settled is kept; a stake is settled within its
    /// round, never after the round moved on.
    fn settled_bet_index(&self, key: &BetKey) -> (String, u8) {
        assert_eq!(
            key.round, self.round.number,
            "stakes are settled within their round"
        );
        (key.player.clone(), key.slot)
    }
}

#[cfg(test)]
mod tests {

    use crate::engine::answer::RefusalCode;

    use super::super::test_support::*;

    use super::*;

    #[test]
    fn bets_only_while_betting_and_cashouts_only_while_flying() {
        let (mut core, _) = room_where(|crash| crash >= 200, engine());
        core.cashout(T0_MS + 10, &player("a"), "c1", 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::WrongPhase);
        // Betting ends at T0 + BETTING_MS even before `advance` has seen it.
        core.bet(
            T0_MS + BETTING_MS,
            &player("a"),
            "a",
            "b1",
            BetTerms::new(100, None, 0),
        );
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::WrongPhase);
        let started_at_ms = fly(&mut core);
        core.take_effects();
        core.bet(
            started_at_ms + 5,
            &player("a"),
            "a",
            "b2",
            BetTerms::new(100, None, 0),
        );
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::WrongPhase);
        core.cashout(started_at_ms + 5, &player("a"), "c2", 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::NoActiveBet);
    }

    #[test]
    fn two_slots_per_player_and_a_taken_slot_is_refused() {
        let (mut core, _) = room_where(|_| true, engine());
        placed(&mut core, "a", 100, None, 0);
        placed(&mut core, "a", 200, None, 1);
        core.bet(
            T0_MS,
            &player("a"),
            "a",
            "again",
            BetTerms::new(100, None, 0),
        );
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::SlotTaken);
        core.bet(
            T0_MS,
            &player("a"),
            "a",
            "third",
            BetTerms::new(100, None, 2),
        );
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::InvalidField);
        // A pending (unconfirmed) stake holds its slot too.
        core.bet(T0_MS, &player("b"), "b", "p1", BetTerms::new(100, None, 0));
        core.take_effects();
        core.bet(T0_MS, &player("b"), "b", "p2", BetTerms::new(100, None, 0));
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::SlotTaken);
    }

    #[test]
    fn stake_and_auto_cashout_limits() {
        let (mut core, _) = room_where(|_| true, engine());
        let refused = [
            (9, None),
            (10_001, None),
            (100, Some(100)),
            (100, Some(100_001)),
        ];
        for (index, (amount, auto)) in refused.into_iter().enumerate() {
            core.bet(
                T0_MS,
                &player("a"),
                "a",
                &format!("r{index}"),
                BetTerms::new(amount, auto, 0),
            );
            assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::InvalidField);
        }
        placed(&mut core, "a", 10, Some(101), 0);
        placed(&mut core, "a", 10_000, Some(100_000), 1);
    }

    #[test]
    fn insufficient_funds_frees_the_slot() {
        let (mut core, _) = room_where(|_| true, engine());
        core.bet(
            T0_MS,
            &player("a"),
            "a",
            "poor",
            BetTerms::new(5_000, None, 0),
        );
        let TransferPurpose::Stake(key) = core.take_effects().transfers.remove(0).purpose else {
            panic!("a stake")
        };
        core.reject_bet(&key, RefusalCode::InsufficientFunds);
        assert_eq!(
            refusal(&only_reply(&mut core)),
            RefusalCode::InsufficientFunds
        );
        core.bet(
            T0_MS,
            &player("a"),
            "a",
            "poor",
            BetTerms::new(5_000, None, 0),
        );
        assert_eq!(
            refusal(&only_reply(&mut core)),
            RefusalCode::InsufficientFunds
        );
        placed(&mut core, "a", 100, None, 0);
    }
}

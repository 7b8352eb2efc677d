//! Cashing out: a player's cashout at the multiplier of the engine's time, the
//! auto-cashouts a flight reached (paid at exactly their target) and everyone at the
//! max-profit cap, and the answers once the ledger holds a payout or refund.

use crate::bus::{ReplyTo, RequestKind};
use crate::ledger::{Account, BetTransferKind, Transfer, TransferKind};

use super::super::answer::{Answer, EngineCashout, EngineRefund, Refusal, RefusalCode, Reply};
use super::super::event::ListedCashout;
use super::RoomCore;
use super::cap;
use super::curve::{multiplier_at, payout_minor};
use super::types::{
    BetKey, BetSettled, BetState, CashoutBy, CreditNotice, CreditReason, RoundPhase,
    SLOTS_PER_PLAYER, TransferIntent, TransferPurpose,
};

impl RoomCore {
    /// Cashes out `from.player`'s bet in `slot` at the multiplier of `now_ms`. A bet a
    /// previous leader already paid is that leader's cashout redelivered: it gets the
    /// `cashout_ok` the payout earned.
    pub fn cashout(&mut self, now_ms: u64, from: &ReplyTo, req: &str, slot: u8) {
        self.observe(now_ms);
        let request = self.request_key(from, RequestKind::Cashout, req);
        if self.answer_replay(&request, from) {
            return;
        }
        let resumed = self.resumed_bets.get(&(from.player.clone(), slot));
        if let Some(BetSettled::PaidOut {
            multiplier_hundredths,
            win_minor,
            balance_after_minor,
        }) = resumed.map(|stake| stake.settled)
        {
            let answer = Answer::CashedOut {
                req: req.to_owned(),
                round: self.round.number,
                slot,
                multiplier_hundredths,
                win_minor,
                balance_after_minor,
            };
            self.answer(request, vec![from.clone()], answer);
            return;
        }
        match self.check_cashout(now_ms, &from.player, slot) {
            Err(refusal) => {
                let answer = Answer::CashoutRefused {
                    req: req.to_owned(),
                    refusal,
                };
                self.answer(request, vec![from.clone()], answer);
            }
            Ok(multiplier_hundredths) => {
                self.replay.wait_for_ledger(request, from);
                let index = (from.player.clone(), slot);
                self.cash_out(
                    &index,
                    multiplier_hundredths,
                    CashoutBy::Request(req.to_owned()),
                );
            }
        }
    }

    /// The multiplier to cash out at, or why not.
    fn check_cashout(&mut self, now_ms: u64, player: &str, slot: u8) -> Result<u64, Refusal> {
        if slot >= SLOTS_PER_PLAYER {
            return Err(Refusal::new(
                RefusalCode::InvalidField,
                "slot must be 0 or 1",
            ));
        }
        let index = (player.to_owned(), slot);
        let too_late = || Refusal::new(RefusalCode::TooLate, "the round crashed first");
        match self.round.phase {
            RoundPhase::Flying { started_at_ms, .. } => {
                let rate = self.settings.engine.growth_rate_per_ms_millionths;
                let multiplier = multiplier_at(now_ms - started_at_ms, rate);
                if multiplier >= self.round.crash_hundredths {
                    return Err(too_late());
                }
                // Targets and the cap below this multiplier come first: they may already
                // have taken this bet out at a lower multiplier.
                self.settle_up_to(multiplier);
                match self.bets.get(&index) {
                    Some(bet) if bet.state == BetState::Active => Ok(multiplier),
                    _ => Err(Refusal::new(
                        RefusalCode::NoActiveBet,
                        "no active bet in this slot",
                    )),
                }
            }
            RoundPhase::Crashed { .. } => match self.bets.get(&index) {
                Some(bet) if bet.state == BetState::Lost => Err(too_late()),
                _ => Err(Refusal::new(RefusalCode::WrongPhase, "the round is over")),
            },
            RoundPhase::Betting { .. } | RoundPhase::Aborted => Err(Refusal::new(
                RefusalCode::WrongPhase,
                "cashouts are taken only while flying",
            )),
        }
    }

    /// The ledger holds a payout or refund: tell whoever waits for it.
    pub fn credit_committed(&mut self, notice: &CreditNotice, credit_balance_after_minor: i64) {
        let (round, slot) = (notice.bet.round, notice.bet.slot);
        let (kind, req, answer) = match &notice.reason {
            CreditReason::Cashout {
                by: CashoutBy::Request(req),
                multiplier_hundredths,
                win_minor,
            } => {
                let answer = Answer::CashedOut {
                    req: req.clone(),
                    round,
                    slot,
                    multiplier_hundredths: *multiplier_hundredths,
                    win_minor: *win_minor,
                    balance_after_minor: credit_balance_after_minor,
                };
                (RequestKind::Cashout, req, answer)
            }
            CreditReason::Cancel {
                req,
                refunded_minor,
            } => {
                let answer = Answer::BetCancelled {
                    req: req.clone(),
                    round,
                    slot,
                    refunded_minor: *refunded_minor,
                    balance_after_minor: credit_balance_after_minor,
                };
                (RequestKind::Cancel, req, answer)
            }
            CreditReason::Cashout { .. } | CreditReason::Refund { .. } => {
                self.notify_credit(notice, credit_balance_after_minor);
                return;
            }
        };
        self.finish_request(round, &notice.bet.player, kind, req.clone(), answer);
    }

    /// A credit no request waits for (an auto-cashout, the cap, an abort's refund): the
    /// player may have reconnected to another socket or gateway since the bet, so the
    /// notice goes to each socket it holds now.
    fn notify_credit(&mut self, notice: &CreditNotice, balance_minor: i64) {
        let (round, slot) = (notice.bet.round, notice.bet.slot);
        let (cashout, refund) = match notice.reason {
            CreditReason::Cashout {
                multiplier_hundredths,
                win_minor,
                ..
            } => {
                let cashout = EngineCashout {
                    round,
                    slot,
                    multiplier_hundredths,
                    win_minor,
                };
                (Some(cashout), None)
            }
            CreditReason::Refund { refunded_minor } => {
                let refund = EngineRefund {
                    round,
                    slot,
                    refunded_minor,
                };
                (None, Some(refund))
            }
            CreditReason::Cancel { .. } => unreachable!("a cancel is answered to its request"),
        };
        self.effects.replies.push(Reply {
            to: ReplyTo::every_socket_of(&notice.bet.player),
            answer: Answer::BalanceChanged {
                balance_minor,
                cashout,
                refund,
            },
        });
    }

    /// Pays every auto-cashout target up to `level_max` at exactly its target, and applies
    /// the max-profit cap at each target and at `level_max` (see the module doc).
    pub(super) fn settle_up_to(&mut self, level_max: u64) {
        // Bounded: every pass takes one bet out of `auto_cashouts`.
        while let Some((target, player, slot)) = self.auto_cashouts.first().cloned() {
            if target > level_max {
                break;
            }
            if self.profit_cap_exceeded_at(target) {
                self.cash_out_everyone_at_cap(target);
                return;
            }
            self.cash_out(&(player, slot), target, CashoutBy::AutoTarget);
        }
        if self.profit_cap_exceeded_at(level_max) {
            self.cash_out_everyone_at_cap(level_max);
        }
    }

    fn profit_cap_exceeded_at(&self, level_hundredths: u64) -> bool {
        let cap_minor = self.settings.engine.round_profit_max_minor;
        cap::exceeded_at(
            level_hundredths,
            self.realized_profit_minor,
            self.active_stakes_minor,
            cap_minor,
        )
    }

    fn cash_out_everyone_at_cap(&mut self, level_max: u64) {
        let cap_minor = self.settings.engine.round_profit_max_minor;
        let capped = cap::capped_multiplier(
            level_max,
            self.realized_profit_minor,
            self.active_stakes_minor,
            cap_minor,
        );
        let active: Vec<(String, u8)> = self
            .bets
            .iter()
            .filter(|(_, bet)| bet.state == BetState::Active)
            .map(|(index, _)| index.clone())
            .collect();
        for index in active {
            self.cash_out(&index, capped, CashoutBy::ProfitCap);
        }
        assert!(
            self.realized_profit_minor <= cap_minor,
            "round profit above the max profit"
        );
    }

    /// Pays the active bet at `index` at `multiplier_hundredths`, cashed out `by` the
    /// player's request or the engine.
    fn cash_out(&mut self, index: &(String, u8), multiplier_hundredths: u64, by: CashoutBy) {
        let bet = self
            .bets
            .get_mut(index)
            .expect("only placed bets are cashed out");
        assert_eq!(bet.state, BetState::Active, "a bet is paid at most once");
        bet.state = BetState::CashedOut;
        let stake_minor = bet.stake_minor;
        if let Some(auto) = bet.auto_cashout_hundredths {
            self.auto_cashouts.remove(&(auto, index.0.clone(), index.1));
        }
        self.active_stakes_minor -= i128::from(stake_minor);
        let win_minor = payout_minor(stake_minor, multiplier_hundredths);
        self.realized_profit_minor += win_minor - stake_minor;
        self.round.totals.cashouts += 1;
        self.round.totals.won_minor += win_minor;
        self.round.totals.cashed_out_stakes_minor += stake_minor;
        let key = BetKey {
            round: self.round.number,
            player: index.0.clone(),
            slot: index.1,
        };
        self.unannounced_cashouts.offer(ListedCashout {
            player: key.player.clone(),
            slot: key.slot,
            multiplier_hundredths,
            win_minor,
            kind: by.kind(),
        });
        let transfer = Transfer {
            id: self.transfer_id(BetTransferKind::Payout, &key),
            debit: Account::House,
            credit: Account::Player(key.player.clone()),
            amount_minor: win_minor,
            kind: TransferKind::Payout,
            multiplier_hundredths: Some(multiplier_hundredths),
        };
        let reason = CreditReason::Cashout {
            by,
            multiplier_hundredths,
            win_minor,
        };
        let notice = CreditNotice { bet: key, reason };
        self.effects.transfers.push(TransferIntent {
            transfer,
            purpose: TransferPurpose::Credit(notice),
        });
    }
}

#[cfg(test)]
mod tests {

    use crate::bus::ReplyTo;

    use crate::engine::answer::{Answer, EngineCashout, RefusalCode, Reply};
    use crate::engine::event::RoundEvent;
    use crate::fair::FairChain;

    use super::super::test_support::*;
    use super::super::*;
    use super::*;

    #[test]
    fn a_cashout_pays_the_engine_multiplier_floored() {
        let (mut core, _) = room_where(|crash| crash >= 300, engine());
        placed(&mut core, "a", 333, None, 0);
        let started_at_ms = fly(&mut core);
        core.take_effects();
        core.cashout(started_at_ms + 1_000, &player("a"), "out", 0);
        let effects = core.take_effects();
        assert_eq!(
            credits(&effects),
            vec![("payout:test:1:a:0".to_owned(), 352)]
        );
        let TransferPurpose::Credit(notice) = &effects.transfers[0].purpose else {
            panic!("a credit")
        };
        core.credit_committed(notice, 1_352);
        let reply = only_reply(&mut core);
        let expected = Answer::CashedOut {
            req: "out".into(),
            round: 1,
            slot: 0,
            multiplier_hundredths: 106,
            win_minor: 352,
            balance_after_minor: 1_352,
        };
        assert_eq!(reply, expected);
        core.cashout(started_at_ms + 2_000, &player("a"), "out", 0);
        assert_eq!(only_reply(&mut core), expected);
        core.cashout(started_at_ms + 2_000, &player("a"), "out-again", 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::NoActiveBet);
    }

    #[test]
    fn a_cashout_after_the_crash_is_too_late() {
        let (mut core, crash) = room_where(|crash| (120..=300).contains(&crash), engine());
        placed(&mut core, "a", 100, None, 0);
        placed(&mut core, "a", 100, None, 1);
        let started_at_ms = fly(&mut core);
        let crash_at_ms = started_at_ms + elapsed_to_reach_ms(crash, RATE);
        // The crash instant has come, though `advance` has not run yet.
        core.cashout(crash_at_ms, &player("a"), "late-1", 1);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::TooLate);
        core.advance(crash_at_ms).unwrap();
        assert!(matches!(core.phase(), RoundPhase::Crashed { .. }));
        core.take_effects();
        core.cashout(crash_at_ms + 1, &player("a"), "late-0", 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::TooLate);
        core.cashout(crash_at_ms + 1, &player("b"), "none", 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::WrongPhase);
    }

    #[test]
    fn auto_cashout_pays_exactly_its_target_across_a_skipped_tick() {
        let (mut core, _) = room_where(|crash| crash >= 400, engine());
        placed(&mut core, "a", 1_000, Some(150), 0);
        let started_at_ms = fly(&mut core);
        core.take_effects();
        // One wake-up far past 1.50x: no tick in between saw 1.50x.
        core.advance(started_at_ms + elapsed_to_reach_ms(300, RATE))
            .unwrap();
        let effects = core.take_effects();
        assert_eq!(
            credits(&effects),
            vec![("payout:test:1:a:0".to_owned(), 1_500)]
        );
        let TransferPurpose::Credit(notice) = &effects.transfers[0].purpose else {
            panic!("a credit")
        };
        core.credit_committed(notice, 2_500);
        // The player learns the price privately (the public feed may not list it), on
        // every socket it holds: it may have reconnected elsewhere since the bet.
        let effects = core.take_effects();
        let [Reply { to, answer }] = &effects.replies[..] else {
            panic!("one reply: {effects:?}")
        };
        assert_eq!(to, &ReplyTo::every_socket_of("a"));
        let cashout = EngineCashout {
            round: 1,
            slot: 0,
            multiplier_hundredths: 150,
            win_minor: 1_500,
        };
        assert_eq!(
            answer,
            &Answer::BalanceChanged {
                balance_minor: 2_500,
                cashout: Some(cashout),
                refund: None,
            }
        );
    }

    #[test]
    fn an_auto_cashout_at_or_above_the_crash_point_loses() {
        let (mut core, crash) = room_where(|crash| (150..=1_000).contains(&crash), engine());
        placed(&mut core, "at", 100, Some(crash), 0);
        placed(&mut core, "below", 100, Some(crash - 1), 0);
        let started_at_ms = fly(&mut core);
        core.take_effects();
        core.advance(started_at_ms + elapsed_to_reach_ms(crash, RATE))
            .unwrap();
        let effects = core.take_effects();
        let win = payout_minor(100, crash - 1);
        assert_eq!(
            credits(&effects),
            vec![("payout:test:1:below:0".to_owned(), win)]
        );
        let Some(RoundEvent::Crashed {
            crash_hundredths: m,
            hash,
            cashouts,
            ..
        }) = effects.events.last()
        else {
            panic!("a crash: {effects:?}")
        };
        assert_eq!(*m, crash);
        assert_eq!(
            hash,
            &FairChain::generate(SEED, 10)
                .unwrap()
                .round_hash(1)
                .unwrap()
        );
        assert_eq!(cashouts.len(), 1);
        assert_eq!(
            (
                cashouts[0].player.as_str(),
                cashouts[0].multiplier_hundredths
            ),
            ("below", crash - 1)
        );
    }
}

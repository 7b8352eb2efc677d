//! A bot's own bets: planning the click of a betting phase, placing the bets, cashing
//! out by hand when a target is reached (or everything at the end of the run), freeing
//! the slots of finished rounds, and booking each cashout against its bet (in a slot, a
//! late one or an unsure one) — the own ledger's credits.

use std::time::Duration;

use aloft::protocol::{BetCashout, ClientMessage, Phase, PublicCashout};
use tokio::time::Instant;

use crate::bots::behaviour::{self, Exit, Stake};
use crate::bots::bot::open_bets::{OpenBet, Pending, PlannedBets, Source};
use crate::bots::bot::{Bot, unix_now_ms};
use crate::bots::verify::{self, Check, Failure};

impl Bot {
    /// Frees the slots of earlier rounds' bets, except those a request still waits about.
    /// The crash was a pause of seconds ago, so an auto-cashout's private report that has
    /// not come by now never will.
    pub(super) fn release_bets_before(&mut self, round: u64) {
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

    pub(super) fn plan_bets(&mut self, round: u64, ends_at_ms: u64, now: Instant) {
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

    pub(super) fn place_planned_bets(&mut self, now: Instant) {
        let Some(plan) = self.plan.take() else { return };
        if plan.round != self.round || self.phase != Phase::Betting {
            return;
        }
        for stake in plan.stakes.into_iter().flatten() {
            if self.slots[usize::from(stake.slot)].is_none() {
                self.place_bet(stake, now);
            }
        }
    }

    /// Sends `bet` for `stake` in the current round; the slot holds it from now.
    pub(super) fn place_bet(&mut self, stake: Stake, now: Instant) {
        let req = self.next_req();
        self.slots[usize::from(stake.slot)] = Some(OpenBet {
            round: self.round,
            slot: stake.slot,
            amount_minor: stake.amount_minor,
            exit: stake.exit,
            acked: false,
            cashout_sent: false,
            win: None,
            listed: None,
            crashed_at: None,
            report_may_be_lost: false,
        });
        let message = ClientMessage::Bet {
            req: req.clone(),
            amount: stake.amount_minor,
            auto: stake.exit.auto(),
            slot: stake.slot,
        };
        self.outbox.push(message.clone());
        self.pending
            .push(Pending::new(req, stake.slot, message, now));
        self.local.bets_sent += 1;
    }

    /// Sends `cashout` for every acknowledged bet of the flying round whose target `m`
    /// reached, or for all of them once the run is stopping.
    pub(super) fn cash_out_due(&mut self, m: u64, now: Instant) {
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
            self.pending.push(Pending::new(req, slot, message, now));
            self.local.cashouts_sent += 1;
        }
    }

    pub(super) fn apply_public_cashouts(&mut self, round: u64, cashouts: &[PublicCashout]) {
        for cashout in cashouts {
            if cashout.player != self.player {
                continue;
            }
            let listed = BetCashout {
                round,
                slot: cashout.slot,
                m: cashout.m,
                win: cashout.win,
            };
            self.apply_win(&listed, Source::Public);
        }
    }

    /// Books a cashout of `slot` the bot learnt of privately, checking it against the
    /// bet; a public listing is only compared with the private report.
    pub(super) fn apply_win(&mut self, cashout: &BetCashout, source: Source) {
        let &BetCashout {
            round,
            slot,
            m,
            win: win_minor,
        } = cashout;
        let in_slot = (self.slots.get_mut(usize::from(slot)))
            .and_then(Option::as_mut)
            .filter(|bet| bet.round == round);
        let same = |bet: &&mut OpenBet| bet.round == round && bet.slot == slot;
        let elsewhere = self
            .late
            .iter_mut()
            .chain(self.unsure.iter_mut())
            .find(same);
        let Some(bet) = in_slot.or(elsewhere) else {
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
            failures.push(bet.engine_cashout_failure(m));
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
}

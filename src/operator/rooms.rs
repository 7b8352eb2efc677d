//! A room as the operator console follows it: [`RoomState`], rebuilt from the room's
//! domain events (`RoundEvent`, decoded once per gateway process from what the bus
//! carried), and the frames each event makes for the operator socket. Pure: no clock, no
//! I/O; the feed (`super::feed`) owns the instances.
//!
//! Bounded: the round's listed cashouts (at most [`CASHOUTS_KEPT_MAX`]) and the last
//! crash points (at most [`CRASH_POINTS_KEPT_MAX`]). Ticks are conflated to one frame per
//! [`TICK_FRAME_INTERVAL_MS`] of engine time per room; bets, cashouts and phase changes
//! are never skipped.

use std::collections::VecDeque;

use super::frames::{CashoutEntry, OperatorFrame, PhaseName, Risk, RoomReport};
use crate::engine::{CashoutKind, ListedBet, ListedCashout, RoundEvent, RoundTotals};

/// Cashouts of the current round a room keeps for the console, newest first.
pub const CASHOUTS_KEPT_MAX: usize = 20;
/// Crash points a room keeps, newest first.
pub const CRASH_POINTS_KEPT_MAX: usize = 20;
/// Engine time between two tick frames of a room, at least: ten a second is plenty for
/// a curve, whatever `engine.tick_interval_ms` is.
pub const TICK_FRAME_INTERVAL_MS: u64 = 100;

/// One room, as the console knows it.
#[derive(Debug, Clone)]
pub struct RoomState {
    room: String,
    /// `engine.round_profit_max_minor`.
    cap_minor: i64,
    epoch: Option<u64>,
    seq: u64,
    round: u64,
    phase: PhaseName,
    multiplier_hundredths: u64,
    ends_at_ms: Option<u64>,
    started_at_ms: Option<u64>,
    totals: RoundTotals,
    cashouts: VecDeque<CashoutEntry>,
    crash_points_hundredths: VecDeque<u64>,
    /// Engine time of the last tick that made a frame.
    last_tick_frame_at_ms: Option<u64>,
    /// Paused by an operator (`RoomPaused`, until `RoomResumed`).
    paused: bool,
}

/// What the console should be told besides the room's frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Events were lost between the engine and this gateway, or the engine restarted.
    Warning(String),
    /// A new round opened: the previous one is settled in the ledger.
    RoundSettled,
}

impl RoomState {
    /// A room before any event.
    pub fn new(room: &str, cap_minor: i64) -> RoomState {
        RoomState {
            room: room.to_owned(),
            cap_minor,
            epoch: None,
            seq: 0,
            round: 0,
            phase: PhaseName::Crashed,
            multiplier_hundredths: 100,
            ends_at_ms: None,
            started_at_ms: None,
            totals: RoundTotals::default(),
            cashouts: VecDeque::new(),
            crash_points_hundredths: VecDeque::new(),
            last_tick_frame_at_ms: None,
            paused: false,
        }
    }

    /// Takes the room's last crash points from the ledger (newest first), unless events
    /// told some already.
    pub fn remember_crash_points(&mut self, crash_points_hundredths: &[u64]) {
        if self.crash_points_hundredths.is_empty() {
            let kept = crash_points_hundredths.iter().take(CRASH_POINTS_KEPT_MAX);
            self.crash_points_hundredths = kept.copied().collect();
        }
    }

    pub fn name(&self) -> &str {
        &self.room
    }

    /// Applies `event` of `epoch`; pushes the frames it makes onto `frames` and returns
    /// what else the console should hear.
    pub fn apply(
        &mut self,
        epoch: u64,
        event: &RoundEvent,
        frames: &mut Vec<OperatorFrame>,
    ) -> Vec<Notice> {
        let mut notices = self.continuity(epoch, event);
        self.epoch = Some(epoch);
        self.seq = event.seq();
        match event {
            RoundEvent::BettingOpened {
                round, ends_at_ms, ..
            } => {
                if self.round > 0 && self.phase != PhaseName::Crashed {
                    let message = format!("round {} ended without a crash (aborted)", self.round);
                    notices.push(Notice::Warning(message));
                }
                notices.push(Notice::RoundSettled);
                self.open_round(*round, *ends_at_ms);
                frames.push(self.phase_frame());
            }
            RoundEvent::FlightStarted {
                round,
                started_at_ms,
                ..
            } => frames.push(self.take_off(*round, *started_at_ms)),
            RoundEvent::Tick { .. } => self.tick(event, frames),
            RoundEvent::Crashed {
                crash_hundredths,
                cashouts,
                totals,
                ..
            } => {
                self.phase = PhaseName::Crashed;
                self.multiplier_hundredths = *crash_hundredths;
                self.take_totals(*totals);
                self.cashed_out(cashouts, frames);
                self.crash_points_hundredths.push_front(*crash_hundredths);
                self.crash_points_hundredths.truncate(CRASH_POINTS_KEPT_MAX);
                frames.push(OperatorFrame::Crash {
                    room: self.room.clone(),
                    round: self.round,
                    multiplier_hundredths: *crash_hundredths,
                    risk: self.risk(),
                });
            }
            RoundEvent::BetCancelled { .. } => frames.push(self.cancel(event)),
            // Players' talk: the console follows money and rooms, not the chat.
            RoundEvent::ChatPosted { .. } => {}
            RoundEvent::RoomPaused { .. }
            | RoundEvent::RoomResumed { .. }
            | RoundEvent::RoomLimitsChanged { .. } => {
                notices.extend(self.control(event, frames));
            }
        }
        notices
    }

    /// An operator's room control (pause, resume, new limits): a pause or resume changes
    /// the room's state (a `paused` frame); each is told as a notice.
    fn control(&mut self, event: &RoundEvent, frames: &mut Vec<OperatorFrame>) -> Option<Notice> {
        if let RoundEvent::RoomPaused { .. } | RoundEvent::RoomResumed { .. } = event {
            self.paused = matches!(event, RoundEvent::RoomPaused { .. });
            frames.push(OperatorFrame::Paused {
                room: self.room.clone(),
                round: self.round,
                paused: self.paused,
            });
        }
        let room = &self.room;
        let message = match event {
            RoundEvent::RoomPaused { round, .. } => format!("{room} paused after round {round}"),
            RoundEvent::RoomResumed { round, .. } => format!("{room} resumed after round {round}"),
            RoundEvent::RoomLimitsChanged {
                limits, from_round, ..
            } => format!(
                "{room} limits from round {from_round}: stake {}..{} minor units, cap {}",
                limits.bet_amount_min_minor,
                limits.bet_amount_max_minor,
                limits.round_profit_max_minor
            ),
            _ => return None,
        };
        Some(Notice::Warning(message))
    }

    /// A warning when `event` does not continue the last one: a new epoch (the engine
    /// restarted or another took the room over) or a seq jump (events lost).
    fn continuity(&self, epoch: u64, event: &RoundEvent) -> Vec<Notice> {
        let Some(last_epoch) = self.epoch else {
            return Vec::new();
        };
        let message = if last_epoch != epoch {
            "the room's engine started over (a restart or a takeover)".to_owned()
        } else if event.seq() != self.seq + 1 {
            let missed = event.seq().saturating_sub(self.seq + 1);
            format!("{missed} events of the room missed by this gateway")
        } else {
            return Vec::new();
        };
        vec![Notice::Warning(message)]
    }

    fn take_off(&mut self, round: u64, started_at_ms: u64) -> OperatorFrame {
        self.round = round;
        self.phase = PhaseName::Flying;
        self.started_at_ms = Some(started_at_ms);
        self.ends_at_ms = None;
        self.phase_frame()
    }

    fn open_round(&mut self, round: u64, ends_at_ms: u64) {
        self.round = round;
        self.phase = PhaseName::Betting;
        self.multiplier_hundredths = 100;
        self.ends_at_ms = Some(ends_at_ms);
        self.started_at_ms = None;
        self.totals = RoundTotals::default();
        self.cashouts.clear();
        self.last_tick_frame_at_ms = None;
    }

    fn tick(&mut self, event: &RoundEvent, frames: &mut Vec<OperatorFrame>) {
        let RoundEvent::Tick {
            round,
            multiplier_hundredths,
            elapsed_ms,
            at_ms,
            bets,
            cashouts,
            totals,
            ..
        } = event
        else {
            unreachable!("called for ticks only");
        };
        self.round = *round;
        self.multiplier_hundredths = *multiplier_hundredths;
        self.take_totals(*totals);
        for bet in bets {
            frames.push(self.bet_frame(bet));
        }
        self.cashed_out(cashouts, frames);
        let due = self
            .last_tick_frame_at_ms
            .is_none_or(|last| *at_ms >= last + TICK_FRAME_INTERVAL_MS);
        if due {
            self.last_tick_frame_at_ms = Some(*at_ms);
            frames.push(OperatorFrame::Tick {
                room: self.room.clone(),
                round: self.round,
                multiplier_hundredths: *multiplier_hundredths,
                elapsed_ms: *elapsed_ms,
                risk: self.risk(),
            });
        }
    }

    /// A bet its player took back: the round's totals without it, and its frame.
    fn cancel(&mut self, event: &RoundEvent) -> OperatorFrame {
        let RoundEvent::BetCancelled {
            player,
            slot,
            stake_minor,
            totals,
            ..
        } = event
        else {
            unreachable!("called for cancels only");
        };
        self.totals = totals.unwrap_or_default();
        OperatorFrame::BetCancelled {
            room: self.room.clone(),
            round: self.round,
            player: player.clone(),
            slot: *slot,
            stake_minor: *stake_minor,
            risk: self.risk(),
        }
    }

    fn take_totals(&mut self, totals: Option<RoundTotals>) {
        if let Some(totals) = totals {
            self.totals = totals;
        }
    }

    fn cashed_out(&mut self, cashouts: &[ListedCashout], frames: &mut Vec<OperatorFrame>) {
        for cashout in cashouts {
            let entry = CashoutEntry {
                player: cashout.player.clone(),
                slot: cashout.slot,
                multiplier_hundredths: cashout.multiplier_hundredths,
                win_minor: cashout.win_minor,
                kind: kind_name(cashout.kind),
            };
            self.cashouts.push_front(entry.clone());
            self.cashouts.truncate(CASHOUTS_KEPT_MAX);
            frames.push(OperatorFrame::Cashout {
                room: self.room.clone(),
                round: self.round,
                cashout: entry,
            });
        }
    }

    fn bet_frame(&self, bet: &ListedBet) -> OperatorFrame {
        OperatorFrame::Bet {
            room: self.room.clone(),
            round: self.round,
            player: bet.player.clone(),
            slot: bet.slot,
            stake_minor: bet.stake_minor,
            auto_cashout_hundredths: bet.auto_cashout_hundredths,
        }
    }

    fn phase_frame(&self) -> OperatorFrame {
        OperatorFrame::Phase {
            room: self.room.clone(),
            round: self.round,
            phase: self.phase,
            multiplier_hundredths: self.multiplier_hundredths,
            ends_at_ms: self.ends_at_ms,
            started_at_ms: self.started_at_ms,
        }
    }

    /// The round's stakes against the cap, as the engine counts them (`engine::round::cap`):
    /// `realized + at_risk · (m − 100) / 100` is what a cashout now would bring the
    /// players' profit to.
    pub fn risk(&self) -> Risk {
        let totals = &self.totals;
        let at_risk_minor = totals.staked_minor - totals.cashed_out_stakes_minor;
        let realized_profit_minor = totals.won_minor - totals.cashed_out_stakes_minor;
        let rise = i128::from(self.multiplier_hundredths.saturating_sub(100));
        let open_profit = i128::from(at_risk_minor) * rise / 100;
        let exposure = i128::from(realized_profit_minor) + open_profit;
        Risk {
            bets: totals.bets,
            staked_minor: totals.staked_minor,
            cashouts: totals.cashouts,
            paid_minor: totals.won_minor,
            at_risk_minor,
            realized_profit_minor,
            exposure_minor: i64::try_from(exposure).unwrap_or(i64::MAX),
            cap_minor: self.cap_minor,
        }
    }

    pub fn report(&self) -> RoomReport {
        RoomReport {
            room: self.room.clone(),
            epoch: self.epoch.map(|epoch| epoch.to_string()),
            seq: self.seq,
            round: self.round,
            phase: self.phase,
            multiplier_hundredths: self.multiplier_hundredths,
            ends_at_ms: self.ends_at_ms,
            started_at_ms: self.started_at_ms,
            risk: self.risk(),
            cashouts: self.cashouts.iter().cloned().collect(),
            crash_points_hundredths: self.crash_points_hundredths.iter().copied().collect(),
            paused: self.paused,
        }
    }
}

fn kind_name(kind: CashoutKind) -> &'static str {
    match kind {
        CashoutKind::Manual => "manual",
        CashoutKind::Auto => "auto",
        CashoutKind::Cap => "cap",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: u64 = 7;

    fn tick(seq: u64, m: u64, at_ms: u64, totals: RoundTotals) -> RoundEvent {
        RoundEvent::Tick {
            seq,
            round: 3,
            multiplier_hundredths: m,
            elapsed_ms: at_ms,
            at_ms,
            bets: vec![],
            cashouts: vec![],
            totals: Some(totals),
        }
    }

    fn apply(room: &mut RoomState, event: &RoundEvent) -> (Vec<OperatorFrame>, Vec<Notice>) {
        let mut frames = Vec::new();
        let notices = room.apply(EPOCH, event, &mut frames);
        (frames, notices)
    }

    fn betting(seq: u64, round: u64) -> RoundEvent {
        RoundEvent::BettingOpened {
            seq,
            round,
            ends_at_ms: 1_000,
        }
    }

    #[test]
    fn risk_is_counted_as_the_engine_counts_it_against_the_cap() {
        let mut room = RoomState::new("main", 5_000);
        apply(&mut room, &betting(1, 3));
        // 3,000 staked; one bet of 1,000 cashed out for 1,500: 2,000 still in the air,
        // 500 realized; at 2.50x the rest would bring the profit to 500 + 3,000.
        let totals = RoundTotals {
            bets: 3,
            staked_minor: 3_000,
            cashouts: 1,
            won_minor: 1_500,
            cashed_out_stakes_minor: 1_000,
        };
        apply(&mut room, &tick(2, 250, 0, totals));
        let risk = room.risk();
        assert_eq!(risk.at_risk_minor, 2_000);
        assert_eq!(risk.realized_profit_minor, 500);
        assert_eq!(risk.exposure_minor, 3_500);
        assert_eq!(risk.cap_minor, 5_000);
    }

    #[test]
    fn ticks_are_conflated_but_bets_cashouts_and_phases_never() {
        let mut room = RoomState::new("main", 5_000);
        apply(&mut room, &betting(1, 3));
        let totals = RoundTotals::default();
        let count_ticks = |frames: &[OperatorFrame]| {
            frames
                .iter()
                .filter(|f| matches!(f, OperatorFrame::Tick { .. }))
                .count()
        };
        let mut ticks = 0;
        for (index, at_ms) in (0..=300).step_by(20).enumerate() {
            let (frames, _) = apply(&mut room, &tick(2 + index as u64, 100, at_ms, totals));
            ticks += count_ticks(&frames);
        }
        // 16 ticks over 300 ms: frames at 0, 100, 200 and 300 ms.
        assert_eq!(ticks, 4);
        let with_bet = RoundEvent::Tick {
            seq: 18,
            round: 3,
            multiplier_hundredths: 100,
            elapsed_ms: 0,
            at_ms: 310,
            bets: vec![ListedBet {
                player: "p".into(),
                name: "Bettor".into(),
                slot: 0,
                stake_minor: 100,
                auto_cashout_hundredths: None,
            }],
            cashouts: vec![ListedCashout {
                player: "q".into(),
                slot: 1,
                multiplier_hundredths: 150,
                win_minor: 150,
                kind: CashoutKind::Auto,
            }],
            totals: Some(totals),
        };
        let (frames, _) = apply(&mut room, &with_bet);
        assert!(matches!(&frames[0], OperatorFrame::Bet { player, .. } if player == "p"));
        assert!(
            matches!(&frames[1], OperatorFrame::Cashout { cashout, .. } if cashout.kind == "auto")
        );
        assert_eq!(count_ticks(&frames), 0);
        assert_eq!(room.report().cashouts.len(), 1);
    }

    #[test]
    fn a_pause_and_a_resume_change_the_rooms_state_and_are_told() {
        let mut room = RoomState::new("main", 5_000);
        apply(&mut room, &betting(1, 3));
        assert!(!room.report().paused);
        let paused = RoundEvent::RoomPaused {
            seq: 2,
            round: 3,
            at_ms: 5,
        };
        let (frames, notices) = apply(&mut room, &paused);
        assert!(matches!(
            frames.as_slice(),
            [OperatorFrame::Paused {
                round: 3,
                paused: true,
                ..
            }]
        ));
        assert_eq!(
            notices,
            [Notice::Warning("main paused after round 3".into())]
        );
        assert!(room.report().paused);
        let resumed = RoundEvent::RoomResumed {
            seq: 3,
            round: 3,
            at_ms: 6,
        };
        let (frames, _) = apply(&mut room, &resumed);
        assert!(matches!(
            frames.as_slice(),
            [OperatorFrame::Paused { paused: false, .. }]
        ));
        assert!(!room.report().paused);
    }

    #[test]
    fn a_crash_is_remembered_and_a_round_without_one_is_warned_about() {
        let mut room = RoomState::new("main", 5_000);
        room.remember_crash_points(&[150]);
        apply(&mut room, &betting(1, 3));
        let crash = RoundEvent::Crashed {
            seq: 2,
            round: 3,
            crash_hundredths: 212,
            hash: "h".into(),
            at_ms: 5,
            cashouts: vec![],
            totals: None,
        };
        let (frames, notices) = apply(&mut room, &crash);
        assert!(matches!(
            frames[..],
            [OperatorFrame::Crash {
                multiplier_hundredths: 212,
                ..
            }]
        ));
        assert!(notices.is_empty());
        assert_eq!(room.report().crash_points_hundredths, [212, 150]);
        let (_, notices) = apply(&mut room, &betting(3, 4));
        assert_eq!(notices, [Notice::RoundSettled]);
        // Round 4 never crashed, and two events went missing before round 5.
        let (_, notices) = apply(&mut room, &betting(6, 5));
        assert_eq!(
            notices,
            [
                Notice::Warning("2 events of the room missed by this gateway".into()),
                Notice::Warning("round 4 ended without a crash (aborted)".into()),
                Notice::RoundSettled,
            ]
        );
    }
}

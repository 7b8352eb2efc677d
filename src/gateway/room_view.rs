//! A gateway's view of a room, rebuilt from the room's public events: what a socket that
//! connects now must be told in its `snapshot`. Each shard keeps its own copy, updated
//! on the shard thread from the same event stream it writes to sockets, so a snapshot and
//! the live frames that follow it are consistent without any lock.

use std::collections::VecDeque;

use crate::protocol::{LiveBet, PastRound, Phase, PublicCashout, RoomEvent, ServerMessage};

/// Bets listed in a snapshot, at most (two slots per player; larger rounds are cut).
pub const SNAPSHOT_BETS_MAX: usize = 2_000;

#[derive(Debug, Clone)]
pub struct RoomView {
    room: String,
    /// Epoch of the last event applied; None before any.
    epoch: Option<u64>,
    /// Sequence number of the last event applied.
    seq: u64,
    round: u64,
    phase: Phase,
    multiplier_hundredths: u64,
    ends_at: Option<u64>,
    started_at: Option<u64>,
    /// Newest first, at most `history_rounds_max`.
    history: VecDeque<PastRound>,
    history_rounds_max: usize,
    bets: Vec<LiveBet>,
}

impl RoomView {
    /// A view that knows only past rounds (newest first), before any live event.
    pub fn new(room: &str, history: Vec<PastRound>, history_rounds_max: usize) -> RoomView {
        let mut history: VecDeque<PastRound> = history.into();
        history.truncate(history_rounds_max);
        RoomView {
            room: room.to_owned(),
            epoch: None,
            seq: 0,
            round: history.front().map_or(0, |past| past.round),
            phase: Phase::Crashed,
            multiplier_hundredths: history.front().map_or(100, |past| past.m),
            ends_at: None,
            started_at: None,
            history,
            history_rounds_max,
            bets: Vec::new(),
        }
    }

    /// Applies `event` of `epoch`.
    pub fn apply(&mut self, epoch: u64, event: &RoomEvent) {
        self.epoch = Some(epoch);
        self.seq = event.seq();
        match event {
            RoomEvent::Betting { round, ends_at, .. } => {
                self.round = *round;
                self.phase = Phase::Betting;
                self.multiplier_hundredths = 100;
                self.ends_at = Some(*ends_at);
                self.started_at = None;
                self.bets.clear();
            }
            RoomEvent::Flying {
                round, started_at, ..
            } => {
                self.round = *round;
                self.phase = Phase::Flying;
                self.started_at = Some(*started_at);
                self.ends_at = None;
            }
            RoomEvent::Tick {
                m, bets, cashouts, ..
            } => {
                self.multiplier_hundredths = *m;
                let room_left = SNAPSHOT_BETS_MAX.saturating_sub(self.bets.len());
                self.bets
                    .extend(bets.iter().take(room_left).map(|bet| LiveBet {
                        player: bet.player.clone(),
                        slot: bet.slot,
                        amount: bet.amount,
                        auto: bet.auto,
                        cashed_out: None,
                        win: None,
                    }));
                self.apply_cashouts(cashouts);
            }
            RoomEvent::Crash {
                round,
                m,
                hash,
                cashouts,
                ..
            } => {
                self.phase = Phase::Crashed;
                self.multiplier_hundredths = *m;
                self.apply_cashouts(cashouts);
                self.history.push_front(PastRound {
                    round: *round,
                    m: *m,
                    hash: hash.clone(),
                });
                self.history.truncate(self.history_rounds_max);
            }
        }
    }

    fn apply_cashouts(&mut self, cashouts: &[PublicCashout]) {
        for cashout in cashouts {
            if let Some(bet) = self
                .bets
                .iter_mut()
                .find(|bet| bet.player == cashout.player && bet.slot == cashout.slot)
            {
                bet.cashed_out = Some(cashout.m);
                bet.win = Some(cashout.win);
            }
        }
    }

    pub fn snapshot(&self) -> ServerMessage {
        ServerMessage::Snapshot {
            room: self.room.clone(),
            epoch: self.epoch,
            seq: self.seq,
            round: self.round,
            phase: self.phase,
            m: self.multiplier_hundredths,
            ends_at: self.ends_at,
            started_at: self.started_at,
            history: self.history.iter().cloned().collect(),
            bets: self.bets.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::PublicBet;

    #[test]
    fn a_round_builds_up_and_lands_in_history() {
        let mut view = RoomView::new("main", vec![], 2);
        let mut apply = |event| view.apply(7, &event);
        apply(RoomEvent::Betting {
            seq: 1,
            round: 5,
            ends_at: 10,
        });
        apply(RoomEvent::Tick {
            seq: 2,
            round: 5,
            m: 100,
            ms: 0,
            at: 1,
            bets: vec![PublicBet {
                player: "a".into(),
                slot: 1,
                amount: 50,
                auto: None,
            }],
            cashouts: vec![],
        });
        apply(RoomEvent::Flying {
            seq: 3,
            round: 5,
            started_at: 11,
        });
        apply(RoomEvent::Crash {
            seq: 4,
            round: 5,
            m: 250,
            hash: "h".into(),
            at: 20,
            cashouts: vec![PublicCashout {
                player: "a".into(),
                slot: 1,
                m: 200,
                win: 100,
            }],
        });
        let ServerMessage::Snapshot {
            epoch,
            seq,
            phase,
            history,
            bets,
            ..
        } = view.snapshot()
        else {
            panic!("not a snapshot");
        };
        assert_eq!((epoch, seq), (Some(7), 4));
        assert_eq!(phase, Phase::Crashed);
        assert_eq!(history[0].m, 250);
        assert_eq!(bets[0].cashed_out, Some(200));
        assert_eq!(bets[0].win, Some(100));
    }
}

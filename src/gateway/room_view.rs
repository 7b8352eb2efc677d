//! A gateway's view of a room, rebuilt from the room's public events: what a socket that
//! connects now must be told in its `snapshot`. Each shard keeps its own copy, updated
//! on the shard thread from the same event stream it writes to sockets, so a snapshot and
//! the live frames that follow it are consistent without any lock.
//!
//! Its memory is bounded: the round's bets it knows are those the ticks listed, and of
//! those it keeps the largest `gateway.snapshot_bets_max` (see `feed`); the totals come
//! whole with every tick; of the chat it keeps the last `CHAT_HISTORY_MESSAGES_MAX`
//! messages (those since the gateway started).

use std::collections::VecDeque;

use crate::chat::CHAT_HISTORY_MESSAGES_MAX;
use crate::feed::Largest;
use crate::protocol::{
    ChatLine, LiveBet, PastRound, Phase, PublicBet, PublicCashout, RoomEvent, RoundTotals,
    ServerMessage,
};

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
    /// The largest bets of the round listed by its ticks, with their outcome so far.
    bets: Largest<LiveBet>,
    totals: Option<RoundTotals>,
    /// An operator paused the room (`paused`, until `resumed`).
    paused: bool,
    /// The last chat messages, oldest first, at most `CHAT_HISTORY_MESSAGES_MAX`.
    chat: VecDeque<ChatLine>,
}

impl RoomView {
    /// A view that knows only past rounds (newest first), before any live event; its
    /// snapshots list at most `bets_max` bets.
    pub fn new(
        room: &str,
        history: Vec<PastRound>,
        history_rounds_max: usize,
        bets_max: usize,
    ) -> RoomView {
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
            bets: Largest::new(bets_max),
            totals: None,
            paused: false,
            chat: VecDeque::new(),
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
                self.totals = None;
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
                m,
                bets,
                cashouts,
                totals,
                ..
            } => {
                self.multiplier_hundredths = *m;
                self.apply_bets(bets);
                self.apply_cashouts(cashouts);
                self.totals = *totals;
            }
            RoomEvent::Crash {
                round,
                m,
                hash,
                cashouts,
                totals,
                ..
            } => {
                self.phase = Phase::Crashed;
                self.multiplier_hundredths = *m;
                self.apply_cashouts(cashouts);
                self.totals = *totals;
                self.history.push_front(PastRound {
                    round: *round,
                    m: *m,
                    hash: hash.clone(),
                });
                self.history.truncate(self.history_rounds_max);
            }
            RoomEvent::BetCancelled { .. } => self.apply_cancel(event),
            RoomEvent::Paused { .. } => self.paused = true,
            RoomEvent::Resumed { .. } => self.paused = false,
            RoomEvent::Chat { line, .. } => self.remember_chat(line),
            // Sockets are told as the event passes; a snapshot does not repeat them.
            RoomEvent::Limits { .. } => {}
        }
    }

    /// Keeps `line` among the last messages for snapshots.
    fn remember_chat(&mut self, line: &ChatLine) {
        if self.chat.len() == CHAT_HISTORY_MESSAGES_MAX {
            self.chat.pop_front();
        }
        self.chat.push_back(line.clone());
    }

    /// Drops a cancelled bet from the list; the totals no longer count it.
    fn apply_cancel(&mut self, event: &RoomEvent) {
        let RoomEvent::BetCancelled {
            player,
            slot,
            totals,
            ..
        } = event
        else {
            unreachable!("called for cancels only");
        };
        self.bets
            .remove(|bet| bet.player == *player && bet.slot == *slot);
        self.totals = *totals;
    }

    /// Keeps the largest of the listed bets.
    fn apply_bets(&mut self, bets: &[PublicBet]) {
        for bet in bets {
            self.bets.offer(LiveBet {
                player: bet.player.clone(),
                name: bet.name.clone(),
                slot: bet.slot,
                amount: bet.amount,
                auto: bet.auto,
                cashed_out: None,
                win: None,
            });
        }
    }

    /// Marks the listed cashouts of bets the view keeps; a cashout of a bet it does not
    /// keep (never listed, or smaller than those kept) changes only the totals.
    fn apply_cashouts(&mut self, cashouts: &[PublicCashout]) {
        for cashout in cashouts {
            if let Some(bet) = self
                .bets
                .find_mut(|bet| bet.player == cashout.player && bet.slot == cashout.slot)
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
            bets: self.bets.as_slice().to_vec(),
            totals: self.totals,
            paused: self.paused,
            chat: self.chat.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::PublicBet;

    fn tick(seq: u64, bets: &[(&str, i64)], cashouts: &[(&str, i64)], totals: u64) -> RoomEvent {
        RoomEvent::Tick {
            seq,
            round: 5,
            m: 100 + seq,
            ms: seq,
            at: 1,
            bets: bets
                .iter()
                .map(|(player, amount)| PublicBet {
                    player: (*player).into(),
                    name: format!("name-{player}"),
                    slot: 1,
                    amount: *amount,
                    auto: None,
                })
                .collect(),
            cashouts: cashouts
                .iter()
                .map(|(player, win)| PublicCashout {
                    player: (*player).into(),
                    slot: 1,
                    m: 200,
                    win: *win,
                    by: None,
                })
                .collect(),
            totals: Some(RoundTotals {
                bets: totals,
                staked: 1_000,
                cashouts: 0,
                won: 0,
                cashout_stakes: 0,
            }),
        }
    }

    /// (player, amount, win) of each listed bet.
    type ListedBets = Vec<(String, i64, Option<i64>)>;

    fn snapshot_bets(view: &RoomView) -> (ListedBets, Option<RoundTotals>) {
        let ServerMessage::Snapshot { bets, totals, .. } = view.snapshot() else {
            panic!("not a snapshot");
        };
        let bets = bets
            .into_iter()
            .map(|bet| (bet.player, bet.amount, bet.win))
            .collect();
        (bets, totals)
    }

    #[test]
    fn a_round_builds_up_and_lands_in_history() {
        let mut view = RoomView::new("main", vec![], 2, 10);
        view.apply(
            7,
            &RoomEvent::Betting {
                seq: 1,
                round: 5,
                ends_at: 10,
            },
        );
        view.apply(7, &tick(2, &[("a", 50)], &[], 1));
        view.apply(
            7,
            &RoomEvent::Flying {
                seq: 3,
                round: 5,
                started_at: 11,
            },
        );
        let final_totals = RoundTotals {
            bets: 1,
            staked: 50,
            cashouts: 1,
            won: 100,
            cashout_stakes: 50,
        };
        view.apply(
            7,
            &RoomEvent::Crash {
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
                    by: None,
                }],
                totals: Some(final_totals),
            },
        );
        let ServerMessage::Snapshot {
            epoch,
            seq,
            phase,
            history,
            bets,
            totals,
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
        assert_eq!(totals, Some(final_totals));
    }

    #[test]
    fn a_snapshot_lists_the_largest_listed_bets_within_its_bound() {
        let mut view = RoomView::new("main", vec![], 2, 3);
        view.apply(
            7,
            &RoomEvent::Betting {
                seq: 1,
                round: 5,
                ends_at: 10,
            },
        );
        view.apply(7, &tick(2, &[("a", 50), ("b", 40), ("c", 30)], &[], 30));
        view.apply(7, &tick(3, &[("d", 45), ("e", 10)], &[], 60));
        // "c" was pushed out by "d": its cashout changes nothing in the list.
        view.apply(7, &tick(4, &[], &[("c", 80), ("d", 90)], 60));
        let (bets, totals) = snapshot_bets(&view);
        let expected = [
            ("a".to_owned(), 50, None),
            ("d".to_owned(), 45, Some(90)),
            ("b".to_owned(), 40, None),
        ];
        assert_eq!(bets, expected);
        assert_eq!(totals.map(|totals| totals.bets), Some(60));
        // The next round starts with nothing.
        view.apply(
            7,
            &RoomEvent::Betting {
                seq: 5,
                round: 6,
                ends_at: 20,
            },
        );
        assert_eq!(snapshot_bets(&view), (vec![], None));
    }
}

//! The bounded public feed: which bets and cashouts are shown to everyone.
//!
//! A round may hold tens of thousands of bets, and every public byte is written to every
//! socket of the room, so listing every bet makes the bytes grow as bets × sockets.
//! Instead (as Aviator's "top bets"), the public lists keep only the largest items: the
//! engine lists at most a configured number of bets and cashouts per tick, selected from
//! those since the previous tick, and a gateway keeps at most a configured number of the
//! round's listed bets for snapshots. This module owns that selection, [`Largest`], and
//! what "largest" means for each kind of item ([`Ranked`]): bets by stake, cashouts by
//! payout, and among equals the one offered first.

use crate::engine::event::{ListedBet, ListedCashout};
use crate::protocol::LiveBet;

/// What a public list ranks an item by: the larger, the more worth showing.
pub trait Ranked {
    fn rank(&self) -> i64;
}

impl Ranked for ListedBet {
    fn rank(&self) -> i64 {
        self.stake_minor
    }
}

impl Ranked for ListedCashout {
    fn rank(&self) -> i64 {
        self.win_minor
    }
}

impl Ranked for LiveBet {
    fn rank(&self) -> i64 {
        self.amount
    }
}

/// The `capacity` largest items offered since the last [`Largest::take`], largest first;
/// among items of equal rank the one offered first comes first (and stays when only one
/// of them fits). Holds at most `capacity` items whatever is offered.
#[derive(Debug, Clone)]
pub struct Largest<T> {
    capacity: usize,
    /// Ordered by rank, descending; equal ranks in the order offered.
    items: Vec<T>,
}

impl<T: Ranked> Largest<T> {
    pub fn new(capacity: usize) -> Largest<T> {
        Largest {
            capacity,
            items: Vec::new(),
        }
    }

    /// Keeps `item` if it is among the `capacity` largest, dropping the smallest kept
    /// item when full. Returns whether `item` was kept.
    pub fn offer(&mut self, item: T) -> bool {
        let rank = item.rank();
        // After every kept item of the same rank: the first offered stays ahead.
        let position = self.items.partition_point(|kept| kept.rank() >= rank);
        if position >= self.capacity {
            return false;
        }
        if self.items.len() == self.capacity {
            self.items.pop();
        }
        self.items.insert(position, item);
        true
    }

    /// The kept items, largest first; the list starts over empty.
    pub fn take(&mut self) -> Vec<T> {
        std::mem::take(&mut self.items)
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The kept items, largest first.
    pub fn as_slice(&self) -> &[T] {
        &self.items
    }

    /// Drops the kept items `unwanted` accepts (the order of the rest stays).
    pub fn remove(&mut self, unwanted: impl Fn(&T) -> bool) {
        self.items.retain(|item| !unwanted(item));
    }

    /// The first kept item that `wanted` accepts, to update in place. Its rank must not
    /// change (the order would break).
    pub fn find_mut(&mut self, wanted: impl Fn(&T) -> bool) -> Option<&mut T> {
        self.items.iter_mut().find(|item| wanted(item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bet(player: &str, stake_minor: i64) -> ListedBet {
        ListedBet {
            player: player.into(),
            name: "Bettor".into(),
            slot: 0,
            stake_minor,
            auto_cashout_hundredths: None,
        }
    }

    fn names(bets: &[ListedBet]) -> Vec<&str> {
        bets.iter().map(|bet| bet.player.as_str()).collect()
    }

    #[test]
    fn keeps_the_largest_first_and_the_earliest_among_equals() {
        let mut largest = Largest::new(3);
        for (player, amount) in [("a", 50), ("b", 500), ("c", 50), ("d", 10), ("e", 200)] {
            largest.offer(bet(player, amount));
        }
        assert_eq!(names(largest.as_slice()), ["b", "e", "a"]);
        // An equal rank does not push out the one offered before it.
        assert!(!largest.offer(bet("f", 50)));
        assert!(largest.offer(bet("g", 51)));
        assert_eq!(names(&largest.take()), ["b", "e", "g"]);
        assert!(largest.is_empty());
    }

    #[test]
    fn a_capacity_of_zero_lists_nothing() {
        let mut largest = Largest::new(0);
        assert!(!largest.offer(bet("a", 1_000)));
        assert!(largest.take().is_empty());
    }

    #[test]
    fn cashouts_rank_by_win() {
        let cashout = |player: &str, multiplier_hundredths, win_minor| ListedCashout {
            player: player.into(),
            slot: 0,
            multiplier_hundredths,
            win_minor,
            kind: crate::engine::CashoutKind::Manual,
        };
        let mut largest = Largest::new(1);
        largest.offer(cashout("high-m", 1_000, 100));
        largest.offer(cashout("big-win", 150, 1_500));
        assert_eq!(largest.take()[0].player, "big-win");
    }

    proptest! {
        /// Whatever is offered, the list is the top `capacity` of a stable sort by rank.
        #[test]
        fn equals_a_stable_sort_cut_to_capacity(
            amounts in proptest::collection::vec(0i64..20, 0..200),
            capacity in 0usize..12,
        ) {
            let mut largest = Largest::new(capacity);
            let offered: Vec<ListedBet> = amounts
                .iter()
                .enumerate()
                .map(|(index, amount)| bet(&index.to_string(), *amount))
                .collect();
            for item in &offered {
                largest.offer(item.clone());
            }
            let mut expected = offered;
            expected.sort_by_key(|item| std::cmp::Reverse(item.stake_minor));
            expected.truncate(capacity);
            prop_assert_eq!(largest.take(), expected);
        }
    }
}

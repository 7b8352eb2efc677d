//! What the HTTP layer of a shard hands the shard: a `/ws` request that passed every
//! check ([`PendingUpgrade`]), with the places the socket holds in the process's counts
//! ([`AdmissionSlots`]) and in its shard's ([`ShardSeat`]). Every place is a guard that
//! gives itself back on `Drop`, whichever way the socket ends: refused after its
//! handshake, lost before its upgrade completed, or closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use crate::auth::TokenKeys;
use crate::bus::StreamPosition;

/// Who a socket belongs to, as far as its `/ws` request tells.
pub enum Credentials {
    /// The player of the URL's token, verified at the handshake.
    Player(String),
    /// No token in the URL: the first message must be `auth` with a token these keys
    /// accept (`session::first_message_player`).
    FirstMessage(Arc<TokenKeys>),
}

/// A `/ws` request that passed every check and was answered 101.
pub struct PendingUpgrade {
    pub upgrade: hyper::upgrade::OnUpgrade,
    pub credentials: Credentials,
    pub room: String,
    /// The position the client asks to resume from (`?since=&epoch=`).
    pub since: Option<StreamPosition>,
    /// The socket's places in the per-address and per-player counts, held until it
    /// closes.
    pub slots: AdmissionSlots,
    /// The socket's place in its shard, held until it closes.
    pub seat: ShardSeat,
}

/// What an admitted socket holds in the process's connection counts; dropping it gives
/// the places back.
#[derive(Debug)]
pub struct AdmissionSlots {
    pub address: crate::admission::Slot,
    /// Taken at the handshake for a URL token, after the `auth` message otherwise.
    pub player: Option<crate::admission::Slot>,
}

/// What the HTTP layer of a shard needs to hand it upgraded sockets.
#[derive(Clone)]
pub struct ShardEntry {
    pub index: usize,
    pub upgrades: mpsc::Sender<PendingUpgrade>,
    /// The shard's live sockets, for the capacity check before an upgrade.
    pub seats: ShardSeats,
}

/// The sockets of a shard, from the upgrade until they close, counted against
/// `gateway.connections_per_shard_max`.
#[derive(Debug, Clone)]
pub struct ShardSeats {
    taken: Arc<AtomicUsize>,
    seats_max: usize,
}

impl ShardSeats {
    pub fn new(seats_max: usize) -> ShardSeats {
        ShardSeats {
            taken: Arc::default(),
            seats_max,
        }
    }

    /// A place for one more socket, or `None` when the shard is full.
    pub fn take(&self) -> Option<ShardSeat> {
        let taken_before = self.taken.fetch_add(1, Ordering::Relaxed);
        // Taken even when full, so that dropping it undoes the increment.
        let seat = ShardSeat {
            taken: self.taken.clone(),
        };
        (taken_before < self.seats_max).then_some(seat)
    }

    /// The sockets holding a seat now.
    #[cfg(test)]
    pub(crate) fn taken(&self) -> usize {
        self.taken.load(Ordering::Relaxed)
    }
}

/// One socket's place in its shard; gives it back on `Drop`.
#[derive(Debug)]
pub struct ShardSeat {
    taken: Arc<AtomicUsize>,
}

impl Drop for ShardSeat {
    fn drop(&mut self) {
        let taken_before = self.taken.fetch_sub(1, Ordering::Relaxed);
        assert!(taken_before > 0, "a shard seat given back twice");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_shard_refuses_a_seat_until_one_is_given_back() {
        let seats = ShardSeats::new(2);
        let first = seats.take().expect("a free seat");
        let second = seats.take().expect("a free seat");
        assert!(seats.take().is_none());
        assert_eq!(seats.taken(), 2, "a refusal holds no seat");
        drop(first);
        assert_eq!(seats.taken(), 1);
        let third = seats.take().expect("the seat given back");
        drop((second, third));
        assert_eq!(seats.taken(), 0);
    }
}

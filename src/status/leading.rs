//! The rooms an engine process leads now, for its status reports: the room runner
//! registers a room when it starts leading it ([`LeadingRooms::lead`]) and the returned
//! [`LeadingRoom`] takes it off again when dropped, whatever way the runner ends; it
//! also counts the room's bet-ack latency for the next report.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::LedRoom;
use super::latency::AckLatency;

/// The rooms this process leads.
#[derive(Debug, Default)]
pub struct LeadingRooms {
    rooms: Mutex<BTreeMap<String, Leadership>>,
    /// Numbers each registration, so a runner that ends after a newer one of its room
    /// started (a restart in the same process) does not take the newer one off.
    registrations: AtomicU64,
}

#[derive(Debug)]
struct Leadership {
    registration: u64,
    epoch: u64,
    fencing_token: Option<u64>,
    since_ms: u64,
    latency: Arc<AckLatency>,
}

/// A room registered as led, until dropped.
#[derive(Debug)]
pub struct LeadingRoom {
    rooms: Arc<LeadingRooms>,
    room: String,
    registration: u64,
    latency: Arc<AckLatency>,
}

impl LeadingRooms {
    fn rooms(&self) -> MutexGuard<'_, BTreeMap<String, Leadership>> {
        // The map is replaced whole under the lock: a panic elsewhere leaves it intact.
        self.rooms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers `room` as led since `since_ms` with the events' `epoch` and the lease's
    /// `fencing_token` (none without a lease).
    pub fn lead(
        self: &Arc<Self>,
        room: &str,
        epoch: u64,
        fencing_token: Option<u64>,
        since_ms: u64,
    ) -> LeadingRoom {
        let registration = self.registrations.fetch_add(1, Ordering::Relaxed);
        let latency = Arc::new(AckLatency::default());
        let leadership = Leadership {
            registration,
            epoch,
            fencing_token,
            since_ms,
            latency: latency.clone(),
        };
        self.rooms().insert(room.to_owned(), leadership);
        LeadingRoom {
            rooms: self.clone(),
            room: room.to_owned(),
            registration,
            latency,
        }
    }

    /// The rooms led now, by name, each with the acks counted since the last report.
    pub fn report(&self) -> Vec<LedRoom> {
        let rooms = self.rooms();
        let led = rooms.iter().map(|(room, leadership)| LedRoom {
            room: room.clone(),
            epoch: leadership.epoch,
            fencing_token: leadership.fencing_token,
            leading_since_ms: leadership.since_ms,
            ack_bucket_counts: leadership.latency.take(),
        });
        led.collect()
    }
}

impl LeadingRoom {
    /// Counts `bets` acknowledged `elapsed` after they were received.
    pub fn bets_acked(&self, elapsed: Duration, bets: u64) {
        self.latency.record_many(elapsed, bets);
    }
}

impl Drop for LeadingRoom {
    fn drop(&mut self) {
        let mut rooms = self.rooms.rooms();
        let ours = rooms
            .get(&self.room)
            .is_some_and(|leadership| leadership.registration == self.registration);
        if ours {
            rooms.remove(&self.room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_is_reported_while_led_and_a_newer_registration_outlives_an_older_one() {
        let rooms = Arc::new(LeadingRooms::default());
        let first = rooms.lead("r1", 10, Some(3), 1_000);
        first.bets_acked(Duration::from_micros(100), 2);
        let other = rooms.lead("r2", 11, None, 2_000);
        let report = rooms.report();
        assert_eq!(report.len(), 2);
        assert_eq!((report[0].epoch, report[0].fencing_token), (10, Some(3)));
        assert_eq!(report[0].ack_bucket_counts[0], 2);
        assert_eq!(rooms.report()[0].ack_bucket_counts[0], 0, "taken once");
        drop(other);
        let second = rooms.lead("r1", 12, Some(4), 3_000);
        drop(first);
        let report = rooms.report();
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].epoch, 12);
        drop(second);
        assert!(rooms.report().is_empty());
    }
}

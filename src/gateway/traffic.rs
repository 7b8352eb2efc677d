//! What the gateway process counts for the operator console, read back once a second:
//! sockets per shard, frames handed to sockets, bets forwarded, slow-consumer closes.
//! The Prometheus families count the same things but cannot be read back (the recorder
//! only renders text); these are plain atomics beside them, added to once per fan-out of
//! a frame (not per socket), once per bet and once per close.

use std::sync::atomic::{AtomicU64, Ordering};

use super::connection::Offer;

/// One shard's counts, on a cache line of its own: each shard thread writes only its own.
#[derive(Debug, Default)]
#[repr(align(64))]
struct ShardTraffic {
    connections: AtomicU64,
    frames_sent: AtomicU64,
}

/// A gateway process's counts since it started.
#[derive(Debug)]
pub struct Traffic {
    shards: Vec<ShardTraffic>,
    bets: AtomicU64,
    slow_consumer_closes: AtomicU64,
}

/// The counts at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrafficCounts {
    /// Open player sockets, per shard.
    pub connections: Vec<u64>,
    /// Frames handed to sockets, all shards.
    pub frames_sent: u64,
    /// Bets forwarded to the engines.
    pub bets: u64,
    /// Sockets closed because their queue was full (4001).
    pub slow_consumer_closes: u64,
}

impl Traffic {
    pub fn new(shards: usize) -> Traffic {
        Traffic {
            shards: (0..shards).map(|_| ShardTraffic::default()).collect(),
            bets: AtomicU64::new(0),
            slow_consumer_closes: AtomicU64::new(0),
        }
    }

    /// A socket of `shard` joined (`open`) or left its room.
    pub fn connection(&self, shard: usize, open: bool) {
        let connections = &self.shards[shard].connections;
        if open {
            connections.fetch_add(1, Ordering::Relaxed);
        } else {
            connections.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Counts one fan-out of a frame on `shard`.
    pub fn fanned_out(&self, shard: usize, fan_out: &FanOut) {
        self.shards[shard]
            .frames_sent
            .fetch_add(fan_out.delivered(), Ordering::Relaxed);
        self.slow_consumers_closed(fan_out.overflowed);
    }

    /// Counts a socket closed as a slow consumer by the frame it was `offer`ed.
    pub fn offered(&self, offer: Offer) {
        if offer == Offer::Overflowed {
            self.slow_consumers_closed(1);
        }
    }

    pub fn bet_forwarded(&self) {
        self.bets.fetch_add(1, Ordering::Relaxed);
    }

    fn slow_consumers_closed(&self, closes: u64) {
        if closes > 0 {
            self.slow_consumer_closes
                .fetch_add(closes, Ordering::Relaxed);
        }
    }

    pub fn counts(&self) -> TrafficCounts {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        TrafficCounts {
            connections: self.shards.iter().map(|s| load(&s.connections)).collect(),
            frames_sent: self.shards.iter().map(|s| load(&s.frames_sent)).sum(),
            bets: load(&self.bets),
            slow_consumer_closes: load(&self.slow_consumer_closes),
        }
    }
}

/// What one fan-out of a frame did to a room's sockets on a shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanOut {
    pub sockets: u64,
    pub queued: u64,
    /// Queued in place of an older tick.
    pub conflated: u64,
    /// Dropped by a closing socket.
    pub dropped: u64,
    /// Dropped by a socket closed as a slow consumer by this frame.
    pub overflowed: u64,
}

impl FanOut {
    pub fn count(&mut self, offer: Offer) {
        self.sockets += 1;
        match offer {
            Offer::Written => {}
            Offer::Queued => self.queued += 1,
            Offer::Conflated => self.conflated += 1,
            Offer::Dropped => self.dropped += 1,
            Offer::Overflowed => self.overflowed += 1,
        }
    }

    /// Sockets the frame was written to or queued for.
    pub fn delivered(&self) -> u64 {
        self.sockets - self.dropped - self.overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_shard_and_in_total() {
        let traffic = Traffic::new(2);
        traffic.connection(0, true);
        traffic.connection(1, true);
        traffic.connection(1, true);
        traffic.connection(1, false);
        let mut fan_out = FanOut::default();
        for offer in [
            Offer::Written,
            Offer::Queued,
            Offer::Dropped,
            Offer::Overflowed,
        ] {
            fan_out.count(offer);
        }
        assert_eq!(fan_out.delivered(), 2);
        traffic.fanned_out(0, &fan_out);
        traffic.fanned_out(1, &fan_out);
        traffic.bet_forwarded();
        traffic.offered(Offer::Dropped);
        let counts = traffic.counts();
        assert_eq!(counts.connections, [1, 1]);
        assert_eq!(counts.frames_sent, 4);
        assert_eq!((counts.bets, counts.slow_consumer_closes), (1, 2));
    }
}

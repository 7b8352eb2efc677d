//! The rate of guest creation per client address: a token bucket per address holding
//! `limits.guests_per_ip_per_minute_max` guests, refilled at that many per minute. The
//! map of addresses is bounded (`limits.guest_rate_addresses_max`): an address whose
//! bucket is full again is forgotten (a fresh bucket is the same), and when every
//! tracked address is still refilling, new addresses wait too.

use std::net::IpAddr;
use std::time::Instant;

use dashmap::DashMap;

use super::client_key;
use super::networks::ExemptNetworks;
use crate::config::LimitsConfig;

/// A bucket's contents are counted in thousandths of a guest, so refills stay integers.
const MILLI: u64 = 1_000;
const MINUTE_MS: u64 = 60_000;

/// Why a guest was not created: the client should try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Whole seconds, at least 1 (the `Retry-After` header).
    pub retry_after_seconds: u64,
}

struct Bucket {
    milli_guests: u64,
    refilled_at: Instant,
}

/// Token buckets of guest creation per client address.
pub struct GuestRate {
    buckets: DashMap<IpAddr, Bucket>,
    per_minute: u64,
    addresses_max: usize,
    exempt: ExemptNetworks,
}

impl GuestRate {
    pub fn new(config: &LimitsConfig) -> GuestRate {
        GuestRate {
            buckets: DashMap::new(),
            per_minute: u64::from(config.guests_per_ip_per_minute_max),
            addresses_max: config.guest_rate_addresses_max,
            exempt: config.exempt_networks.clone(),
        }
    }

    /// Takes one guest from the bucket of `address` at `now`, or says when one will be
    /// there. Exempt addresses always pass.
    pub fn take(&self, address: IpAddr, now: Instant) -> Result<(), Throttled> {
        if self.exempt.contains(address) {
            return Ok(());
        }
        let key = client_key(address);
        if !self.buckets.contains_key(&key) && self.buckets.len() >= self.addresses_max {
            self.forget_full(now);
            if self.buckets.len() >= self.addresses_max {
                return Err(Throttled {
                    retry_after_seconds: self.seconds_for(MILLI),
                });
            }
        }
        let mut bucket = self.buckets.entry(key).or_insert(Bucket {
            milli_guests: self.capacity(),
            refilled_at: now,
        });
        self.refill(&mut bucket, now);
        if bucket.milli_guests < MILLI {
            return Err(Throttled {
                retry_after_seconds: self.seconds_for(MILLI - bucket.milli_guests),
            });
        }
        bucket.milli_guests -= MILLI;
        Ok(())
    }

    /// Addresses tracked now.
    pub fn tracked_addresses(&self) -> usize {
        self.buckets.len()
    }

    fn capacity(&self) -> u64 {
        self.per_minute * MILLI
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed_ms = now
            .saturating_duration_since(bucket.refilled_at)
            .as_millis();
        let elapsed_ms = u64::try_from(elapsed_ms).unwrap_or(u64::MAX);
        let added = elapsed_ms.saturating_mul(self.per_minute) * MILLI / MINUTE_MS;
        bucket.milli_guests = bucket
            .milli_guests
            .saturating_add(added)
            .min(self.capacity());
        bucket.refilled_at = now;
    }

    /// Forgets the addresses whose buckets are full again at `now`.
    fn forget_full(&self, now: Instant) {
        self.buckets.retain(|_, bucket| {
            self.refill(bucket, now);
            bucket.milli_guests < self.capacity()
        });
    }

    /// Whole seconds (at least 1) until `milli_guests` more have been refilled.
    fn seconds_for(&self, milli_guests: u64) -> u64 {
        let wait_ms = (milli_guests * MINUTE_MS).div_ceil(self.per_minute * MILLI);
        wait_ms.div_ceil(1000).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rate(per_minute: u32, addresses_max: usize, exempt: &str) -> GuestRate {
        GuestRate::new(&LimitsConfig {
            guests_per_ip_per_minute_max: per_minute,
            guest_rate_addresses_max: addresses_max,
            exempt_networks: ExemptNetworks::parse_list(exempt).unwrap(),
            ..LimitsConfig::default()
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_burst_of_the_per_minute_count_then_one_every_refill() {
        let rate = rate(6, 100, "");
        let start = Instant::now();
        for _ in 0..6 {
            rate.take(ip("192.0.2.1"), start).unwrap();
        }
        // 6 a minute: the next one is 10 s away.
        assert_eq!(
            rate.take(ip("192.0.2.1"), start),
            Err(Throttled {
                retry_after_seconds: 10
            })
        );
        assert_eq!(
            rate.take(ip("192.0.2.1"), start + Duration::from_millis(9_500)),
            Err(Throttled {
                retry_after_seconds: 1
            })
        );
        rate.take(ip("192.0.2.1"), start + Duration::from_secs(10))
            .unwrap();
        // Another address has its own bucket.
        rate.take(ip("192.0.2.2"), start).unwrap();
    }

    #[test]
    fn exempt_addresses_are_not_limited() {
        let rate = rate(1, 100, "127.0.0.0/8");
        let now = Instant::now();
        for _ in 0..1000 {
            rate.take(ip("127.0.0.1"), now).unwrap();
        }
        assert_eq!(rate.tracked_addresses(), 0);
    }

    #[test]
    fn the_address_map_is_bounded_and_forgets_full_buckets() {
        let rate = rate(1, 2, "");
        let start = Instant::now();
        rate.take(ip("192.0.2.1"), start).unwrap();
        rate.take(ip("192.0.2.2"), start).unwrap();
        // Both buckets are refilling: a third address waits.
        assert!(rate.take(ip("192.0.2.3"), start).is_err());
        assert_eq!(rate.tracked_addresses(), 2);
        // A minute later both are full again, so they are forgotten for the newcomer.
        rate.take(ip("192.0.2.3"), start + Duration::from_secs(60))
            .unwrap();
        assert_eq!(rate.tracked_addresses(), 1);
    }
}

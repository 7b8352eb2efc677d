//! A rate per client address: a token bucket per address holding N attempts, refilled
//! at N per minute. Guest creation takes one per guest (`limits.guests_per_ip_per_minute_max`,
//! [`AddressRate::guests`]); the operator console one per failed login
//! (`operator.login_failures_per_minute_max`). The map of addresses is bounded: an
//! address whose bucket is full again is forgotten (a fresh bucket is the same), and
//! when every tracked address is still refilling, new addresses wait too.

use std::net::IpAddr;
use std::time::Instant;

use dashmap::DashMap;

use super::client_key;
use super::networks::ExemptNetworks;
use crate::config::LimitsConfig;

/// A bucket's contents are counted in thousandths of a guest, so refills stay integers.
const MILLI: u64 = 1_000;
const MINUTE_MS: u64 = 60_000;

/// Why an attempt was refused: the client should try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Whole seconds, at least 1 (the `Retry-After` header).
    pub retry_after_seconds: u64,
}

struct Bucket {
    milli_attempts: u64,
    refilled_at: Instant,
}

/// Token buckets per client address.
pub struct AddressRate {
    buckets: DashMap<IpAddr, Bucket>,
    per_minute: u64,
    addresses_max: usize,
    exempt: ExemptNetworks,
}

impl AddressRate {
    /// `per_minute` attempts per address (at least 1), at most `addresses_max` addresses
    /// tracked; `exempt` addresses are never limited.
    pub fn new(per_minute: u32, addresses_max: usize, exempt: ExemptNetworks) -> AddressRate {
        assert!(per_minute > 0, "a rate of 0 would refuse everything");
        AddressRate {
            buckets: DashMap::new(),
            per_minute: u64::from(per_minute),
            addresses_max,
            exempt,
        }
    }

    /// Guest creation: `limits.guests_per_ip_per_minute_max` per address.
    pub fn guests(config: &LimitsConfig) -> AddressRate {
        AddressRate::new(
            config.guests_per_ip_per_minute_max,
            config.guest_rate_addresses_max,
            config.exempt_networks.clone(),
        )
    }

    /// Takes one attempt from the bucket of `address` at `now`, or says when one will be
    /// there. Exempt addresses always pass.
    pub fn take(&self, address: IpAddr, now: Instant) -> Result<(), Throttled> {
        self.with_bucket(address, now, |bucket| bucket.milli_attempts -= MILLI)
    }

    /// Whether `address` has an attempt left at `now`, without taking it (a login is
    /// charged only when it fails).
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), Throttled> {
        self.with_bucket(address, now, |_| {})
    }

    /// Refills the bucket of `address` and, when it holds an attempt, applies `use_it`.
    fn with_bucket(
        &self,
        address: IpAddr,
        now: Instant,
        use_it: impl FnOnce(&mut Bucket),
    ) -> Result<(), Throttled> {
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
            milli_attempts: self.capacity(),
            refilled_at: now,
        });
        self.refill(&mut bucket, now);
        if bucket.milli_attempts < MILLI {
            return Err(Throttled {
                retry_after_seconds: self.seconds_for(MILLI - bucket.milli_attempts),
            });
        }
        use_it(&mut bucket);
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
        bucket.milli_attempts = bucket
            .milli_attempts
            .saturating_add(added)
            .min(self.capacity());
        bucket.refilled_at = now;
    }

    /// Forgets the addresses whose buckets are full again at `now`.
    fn forget_full(&self, now: Instant) {
        self.buckets.retain(|_, bucket| {
            self.refill(bucket, now);
            bucket.milli_attempts < self.capacity()
        });
    }

    /// Whole seconds (at least 1) until `milli_attempts` more have been refilled.
    fn seconds_for(&self, milli_attempts: u64) -> u64 {
        let wait_ms = (milli_attempts * MINUTE_MS).div_ceil(self.per_minute * MILLI);
        wait_ms.div_ceil(1000).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rate(per_minute: u32, addresses_max: usize, exempt: &str) -> AddressRate {
        AddressRate::guests(&LimitsConfig {
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
    fn a_check_takes_nothing() {
        let rate = rate(1, 100, "");
        let now = Instant::now();
        for _ in 0..3 {
            rate.check(ip("192.0.2.1"), now).unwrap();
        }
        rate.take(ip("192.0.2.1"), now).unwrap();
        assert!(rate.check(ip("192.0.2.1"), now).is_err());
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

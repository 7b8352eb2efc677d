//! Admission: who may open a socket or create a guest, counted per client address and
//! per player across every shard of a gateway process.
//!
//! - [`ConnectionLimits`]: live sockets per address (`limits.connections_per_ip_max`) and
//!   per player (`limits.connections_per_player_max`). Each admitted socket holds a
//!   [`Slot`] whose `Drop` gives its place back, so no exit path can leak a count.
//! - [`address_rate::AddressRate`]: a token bucket per address, for `POST /api/guest`
//!   and for the operator console's failed logins.
//! - [`restricted::RestrictedPlayers`]: the banned players, whose tokens are refused at
//!   the handshake and at first-message authentication ([`ConnectionLimits::admit_player`]),
//!   and the muted players, admitted but whose chat is refused ([`ConnectionLimits::is_muted`]).
//! - [`networks`]: CIDR blocks, and `limits.exempt_networks`, whose addresses skip both
//!   per-address limits (load tests from loopback). Per-player limits have no exemption.
//!
//! Addresses are counted by [`client_key`]: an IPv4 address as it is, an IPv6 address by
//! its /64 (one subscriber's whole allocation), so a client cannot dodge the limit by
//! walking through the addresses of its own network.

pub mod address_rate;
pub mod networks;
pub mod restricted;

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use dashmap::DashMap;

use crate::config::LimitsConfig;
use crate::ledger::Restriction;
use networks::ExemptNetworks;
use restricted::RestrictedPlayers;

/// Leading bits of an IPv6 address that identify one client.
const IPV6_CLIENT_PREFIX_BITS: u32 = 64;

/// The key a client address is counted under: IPv4 (also mapped into IPv6) as is, IPv6
/// by its /64.
pub fn client_key(address: IpAddr) -> IpAddr {
    match networks::canonical(address) {
        IpAddr::V6(v6) => {
            let host_bits = 128 - IPV6_CLIENT_PREFIX_BITS;
            IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() >> host_bits << host_bits))
        }
        v4 => v4,
    }
}

/// Why a socket was not admitted. Refused at the `/ws` handshake with HTTP 503 (403 for a
/// ban) and `{"code": ..., "message": ...}`; after an upgrade (first-message
/// authentication) with close code 1008 (4005 for a ban) and the message as reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, strum::IntoStaticStr)]
pub enum Refusal {
    /// The client address already holds `limits.connections_per_ip_max` sockets.
    #[error("too many connections from this address (at most {max})")]
    #[strum(serialize = "ip_connections_max")]
    Address { max: usize },
    /// The player already holds `limits.connections_per_player_max` sockets.
    #[error("too many connections for this player (at most {max})")]
    #[strum(serialize = "player_connections_max")]
    Player { max: usize },
    /// An operator banned the player.
    #[error("this player is banned")]
    #[strum(serialize = "banned")]
    Banned,
}

impl Refusal {
    /// The machine-readable code of the refusal: the response's `code` and the `reason`
    /// label of `aloft_admission_refused_total`.
    pub fn code(&self) -> &'static str {
        self.into()
    }

    /// The HTTP status of the refusal at the handshake: 403 for a ban (retrying does not
    /// help), 503 for a limit.
    pub fn http_status(&self) -> u16 {
        match self {
            Refusal::Banned => 403,
            Refusal::Address { .. } | Refusal::Player { .. } => 503,
        }
    }

    /// The close code of the refusal after an upgrade.
    pub fn close_code(&self) -> u16 {
        match self {
            Refusal::Banned => crate::protocol::close_code::BANNED,
            Refusal::Address { .. } | Refusal::Player { .. } => {
                crate::protocol::close_code::POLICY_VIOLATION
            }
        }
    }
}

/// Live sockets per client address and per player, shared by every shard of a process.
pub struct ConnectionLimits {
    per_address: Counts<IpAddr>,
    per_player: Counts<String>,
    per_address_max: usize,
    per_player_max: usize,
    exempt: ExemptNetworks,
    /// The banned players: refused by [`ConnectionLimits::admit_player`].
    pub bans: RestrictedPlayers,
    /// The muted players: admitted, their chat refused.
    pub mutes: RestrictedPlayers,
}

impl ConnectionLimits {
    pub fn new(config: &LimitsConfig) -> ConnectionLimits {
        ConnectionLimits {
            per_address: Counts::default(),
            per_player: Counts::default(),
            per_address_max: config.connections_per_ip_max,
            per_player_max: config.connections_per_player_max,
            exempt: config.exempt_networks.clone(),
            bans: RestrictedPlayers::new(Restriction::Ban),
            mutes: RestrictedPlayers::new(Restriction::Mute),
        }
    }

    /// The players held under `restriction`.
    pub fn restricted(&self, restriction: Restriction) -> &RestrictedPlayers {
        match restriction {
            Restriction::Ban => &self.bans,
            Restriction::Mute => &self.mutes,
        }
    }

    /// Whether an operator muted `player`: its chat is refused (error `muted`), its
    /// sockets stay open.
    pub fn is_muted(&self, player: &str) -> bool {
        self.mutes.contains(player)
    }

    /// A place for one more socket from `address`, unless it holds the most already.
    /// Addresses of `limits.exempt_networks` are not counted.
    pub fn admit_address(&self, address: IpAddr) -> Result<Slot, Refusal> {
        if self.exempt.contains(address) {
            return Ok(Slot::unlimited());
        }
        self.per_address
            .acquire(client_key(address), self.per_address_max)
            .ok_or(Refusal::Address {
                max: self.per_address_max,
            })
    }

    /// A place for one more socket of `player`, unless it is banned or holds the most
    /// already. Called once the player is known: at the handshake, or at first-message
    /// authentication.
    pub fn admit_player(&self, player: &str) -> Result<Slot, Refusal> {
        if self.bans.contains(player) {
            return Err(Refusal::Banned);
        }
        self.per_player
            .acquire(player.to_owned(), self.per_player_max)
            .ok_or(Refusal::Player {
                max: self.per_player_max,
            })
    }

    /// Sockets counted for the client key of `address` (0 when exempt or none).
    pub fn address_count(&self, address: IpAddr) -> usize {
        self.per_address.count(&client_key(address))
    }

    /// Sockets counted for `player`.
    pub fn player_count(&self, player: &str) -> usize {
        self.per_player.count(player)
    }
}

/// A counter per key; a key is present only while its count is above zero, so the map
/// holds no more keys than there are live sockets.
struct Counts<K: Eq + Hash>(Arc<DashMap<K, usize>>);

impl<K: Eq + Hash> Default for Counts<K> {
    fn default() -> Self {
        Counts(Arc::new(DashMap::new()))
    }
}

impl<K: Eq + Hash + Clone + Send + Sync + 'static> Counts<K> {
    /// Counts one more under `key` unless it is at `max` (at least 1); the slot gives
    /// it back.
    fn acquire(&self, key: K, max: usize) -> Option<Slot> {
        let mut count = self.0.entry(key.clone()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        drop(count);
        let counts = self.0.clone();
        Some(Slot {
            release: Some(Box::new(move || {
                counts.remove_if_mut(&key, |_, count| {
                    *count -= 1;
                    *count == 0
                });
            })),
        })
    }

    fn count<Q>(&self, key: &Q) -> usize
    where
        K: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.get(key).map_or(0, |count| *count)
    }
}

/// One admitted socket's place in a count; dropping it gives the place back.
#[must_use = "the place is given back when the slot is dropped"]
pub struct Slot {
    release: Option<Box<dyn FnOnce() + Send + Sync>>,
}

impl Slot {
    /// A slot that counts nothing (an exempt address).
    fn unlimited() -> Slot {
        Slot { release: None }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            release();
        }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Slot")
            .field("counted", &self.release.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_address: usize, per_player: usize, exempt: &str) -> ConnectionLimits {
        ConnectionLimits::new(&LimitsConfig {
            connections_per_ip_max: per_address,
            connections_per_player_max: per_player,
            exempt_networks: ExemptNetworks::parse_list(exempt).unwrap(),
            ..LimitsConfig::default()
        })
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_holds_at_most_its_limit_and_a_dropped_slot_frees_a_place() {
        let limits = limits(2, 10, "");
        let first = limits.admit_address(ip("192.0.2.1")).unwrap();
        let second = limits.admit_address(ip("192.0.2.1")).unwrap();
        assert_eq!(
            limits.admit_address(ip("192.0.2.1")).unwrap_err(),
            Refusal::Address { max: 2 }
        );
        // Another address has its own count.
        let other = limits.admit_address(ip("192.0.2.2")).unwrap();
        drop(first);
        assert_eq!(limits.address_count(ip("192.0.2.1")), 1);
        let third = limits.admit_address(ip("192.0.2.1")).unwrap();
        drop((second, third, other));
        assert_eq!(limits.address_count(ip("192.0.2.1")), 0);
        assert!(limits.per_address.0.is_empty(), "no key left behind");
    }

    #[test]
    fn a_player_holds_at_most_its_limit_whatever_the_address() {
        let limits = limits(100, 1, "127.0.0.0/8");
        let slot = limits.admit_player("g-1").unwrap();
        assert_eq!(
            limits.admit_player("g-1").unwrap_err(),
            Refusal::Player { max: 1 }
        );
        let _other = limits.admit_player("g-2").unwrap();
        drop(slot);
        assert_eq!(limits.player_count("g-1"), 0);
        let _again = limits.admit_player("g-1").unwrap();
    }

    #[test]
    fn refusal_codes_are_the_documented_ones() {
        assert_eq!(Refusal::Address { max: 1 }.code(), "ip_connections_max");
        assert_eq!(Refusal::Player { max: 1 }.code(), "player_connections_max");
    }

    #[test]
    fn exempt_networks_are_not_counted() {
        let limits = limits(1, 1, "127.0.0.0/8,::1/128");
        let slots: Vec<Slot> = (0..1000)
            .map(|_| limits.admit_address(ip("127.0.0.1")).unwrap())
            .collect();
        assert_eq!(slots.len(), 1000);
        let _v6 = limits.admit_address(ip("::1")).unwrap();
        let _v6_again = limits.admit_address(ip("::1")).unwrap();
        let _outside = limits.admit_address(ip("192.0.2.1")).unwrap();
        assert!(limits.admit_address(ip("192.0.2.1")).is_err());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let limits = limits(1, 10, "");
        let _slot = limits.admit_address(ip("2001:db8:1:2::1")).unwrap();
        assert!(limits.admit_address(ip("2001:db8:1:2::ffff")).is_err());
        assert!(limits.admit_address(ip("2001:db8:1:3::1")).is_ok());
        assert_eq!(client_key(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn slots_given_back_from_many_threads_leave_no_count() {
        let limits = Arc::new(limits(10_000, 10_000, ""));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let limits = limits.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let _slot = limits.admit_address(ip("192.0.2.1")).unwrap();
                        let _player = limits.admit_player("g-1").unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(limits.address_count(ip("192.0.2.1")), 0);
        assert_eq!(limits.player_count("g-1"), 0);
    }
}

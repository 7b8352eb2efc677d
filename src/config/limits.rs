//! The admission section (`[limits]`): sockets per address and per player, exempt
//! networks, guest creation.

use serde::{Deserialize, Serialize};

use super::{AuthConfig, ConfigError, require};
use crate::admission::networks::ExemptNetworks;

/// How much longer than a guest token an unused guest lives, in seconds: the token of a
/// guest that is expired has always expired before.
pub const GUEST_EXPIRY_MARGIN_SECONDS: u64 = 3_600;

/// Admission of clients: per-address and per-player limits, guest creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Open sockets per client address (IPv6: per /64) on one gateway process; further
    /// `/ws` upgrades get HTTP 503 `ip_connections_max`.
    pub connections_per_ip_max: usize,
    /// Open sockets per player on one gateway process; further ones get HTTP 503
    /// `player_connections_max`. No network is exempt from it.
    pub connections_per_player_max: usize,
    /// CIDR blocks whose addresses skip the per-address limits (sockets and guest
    /// creation), e.g. a load generator's network; a list, or one comma-separated string
    /// in `ALOFT_LIMITS__EXEMPT_NETWORKS`.
    pub exempt_networks: ExemptNetworks,
    /// Guests one client address may create per minute (also the burst); further
    /// `POST /api/guest` get HTTP 429 with `Retry-After`.
    pub guests_per_ip_per_minute_max: u32,
    /// Client addresses whose guest rate is tracked at once; addresses whose bucket is
    /// full again are forgotten first, and past the bound new addresses wait (429).
    pub guest_rate_addresses_max: usize,
    /// A guest whose only ledger activity is its grant is removed this long after the
    /// grant (its balance goes back to the mint). Must outlast the guest token by an
    /// hour, so the token of an expired guest has expired too.
    pub guest_unused_expiry_seconds: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            connections_per_ip_max: 200,
            connections_per_player_max: 10,
            exempt_networks: ExemptNetworks::default(),
            guests_per_ip_per_minute_max: 10,
            guest_rate_addresses_max: 100_000,
            guest_unused_expiry_seconds: 172_800,
        }
    }
}

impl LimitsConfig {
    /// Checks the limits, and that an unused guest outlives its token (`auth`).
    pub(super) fn validate(&self, auth: &AuthConfig) -> Result<(), ConfigError> {
        require(
            self.connections_per_ip_max > 0 && self.connections_per_player_max > 0,
            "limits.connections_per_ip_max",
            "connection limits must be positive",
        )?;
        require(
            self.guests_per_ip_per_minute_max > 0 && self.guest_rate_addresses_max > 0,
            "limits.guests_per_ip_per_minute_max",
            "guest limits must be positive",
        )?;
        require(
            self.guest_unused_expiry_seconds
                >= auth.guest_token_ttl_seconds + GUEST_EXPIRY_MARGIN_SECONDS,
            "limits.guest_unused_expiry_seconds",
            "must be at least auth.guest_token_ttl_seconds + 3600",
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;
    use crate::config::CommandLine;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own large error.
    fn exempt_networks_come_comma_separated_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "ALOFT_LIMITS__EXEMPT_NETWORKS",
                "127.0.0.0/8,10.0.0.0/8,::1/128",
            );
            jail.create_file("c.toml", "")?;
            let config = Config::load(Some(Path::new("c.toml")), &CommandLine::default()).unwrap();
            let exempt = &config.limits.exempt_networks;
            for address in ["127.0.0.1", "10.2.3.4", "::1"] {
                assert!(exempt.contains(address.parse().unwrap()), "{address}");
            }
            assert!(!exempt.contains("192.0.2.1".parse().unwrap()));

            jail.set_env("ALOFT_LIMITS__EXEMPT_NETWORKS", "127.0.0.1");
            let error = Config::load(Some(Path::new("c.toml")), &CommandLine::default())
                .unwrap_err()
                .to_string();
            assert!(
                error.to_lowercase().contains("limits.exempt_networks"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn an_unused_guest_outlives_its_token() {
        let mut config = Config::default();
        config.limits.guest_unused_expiry_seconds = config.auth.guest_token_ttl_seconds;
        let error = config.validate().unwrap_err().to_string();
        assert!(
            error.contains("limits.guest_unused_expiry_seconds"),
            "{error}"
        );
        let mut config = Config::default();
        config.auth.guest_token_ttl_seconds = config.auth.token_lifetime_seconds_max + 1;
        config.limits.guest_unused_expiry_seconds = u64::MAX / 2;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("auth.guest_token_ttl_seconds"), "{error}");
    }
}

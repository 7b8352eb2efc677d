//! The cluster's section (`[cluster]`): room leases among the engines.

use serde::{Deserialize, Serialize};

use super::{ConfigError, require};

/// Leadership of rooms among the engines of a cluster (Redis leases with fencing tokens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Lifetime of a room's lease: a standby takes a dead leader's room over within it.
    pub lease_ttl_ms: u64,
    /// Interval at which a leader renews its leases.
    pub lease_renew_interval_ms: u64,
    /// Interval at which a standby engine looks for rooms without a leader.
    pub standby_poll_interval_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            lease_ttl_ms: 2_500,
            lease_renew_interval_ms: 800,
            standby_poll_interval_ms: 250,
        }
    }
}

impl ClusterConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        require(
            0 < self.lease_renew_interval_ms
                && self.lease_renew_interval_ms.saturating_mul(2) <= self.lease_ttl_ms,
            "cluster.lease_renew_interval_ms",
            "must be positive and at most half of cluster.lease_ttl_ms",
        )?;
        require(
            self.standby_poll_interval_ms > 0,
            "cluster.standby_poll_interval_ms",
            "must be positive",
        )
    }
}

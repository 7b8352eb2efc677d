//! The fairness section (`[fair]`): house edge, chain length, salt and chain secret.

use serde::{Deserialize, Serialize};

use super::{ConfigError, require};

/// Provably fair crash points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FairConfig {
    /// House edge in basis points (100 = 1%).
    pub house_edge_bp: u32,
    /// Rounds per hash chain.
    pub chain_length: u64,
    /// Public salt mixed into every crash point; published at `/api/fair`. Empty = a
    /// random salt created on first run and stored in `data_dir`.
    pub salt: String,
    /// Secret (hex, 32+ bytes) every room's hash chains are derived from, so that every
    /// engine of a cluster plays the same chain. Empty = a random seed file per room in
    /// `data_dir` (embedded mode only). Required by the cluster roles.
    pub chain_secret: String,
}

impl Default for FairConfig {
    fn default() -> Self {
        FairConfig {
            house_edge_bp: 100,
            chain_length: 100_000,
            salt: String::new(),
            chain_secret: String::new(),
        }
    }
}

impl FairConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        require(
            self.house_edge_bp <= crate::fair::HOUSE_EDGE_BP_MAX,
            "fair.house_edge_bp",
            "must be at most 5000",
        )?;
        require(
            (1..=crate::fair::CHAIN_LENGTH_MAX).contains(&self.chain_length),
            "fair.chain_length",
            "must be 1..=10000000",
        )?;
        require(
            self.chain_secret.is_empty() || hex_secret_is_strong(&self.chain_secret),
            "fair.chain_secret",
            "must be at least 64 hex characters (32 bytes)",
        )
    }
}

fn hex_secret_is_strong(secret: &str) -> bool {
    secret.len() >= 64 && secret.len() % 2 == 0 && secret.bytes().all(|b| b.is_ascii_hexdigit())
}

//! The ledger's section (`[ledger]`): the SQLite file, guest grants, the PostgreSQL pool.

use serde::{Deserialize, Serialize};

use super::{ConfigError, require};

/// The ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerConfig {
    /// SQLite file name inside `data_dir`.
    pub sqlite_file: String,
    /// Demo balance granted to each new guest, in minor units.
    pub guest_balance_minor: i64,
    /// PostgreSQL connections per process (cluster roles).
    pub postgres_pool_connections_max: usize,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            sqlite_file: "ledger.db".to_owned(),
            guest_balance_minor: 100_000,
            postgres_pool_connections_max: 8,
        }
    }
}

impl LedgerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        require(
            self.guest_balance_minor >= 0,
            "ledger.guest_balance_minor",
            "must not be negative",
        )?;
        require(
            self.postgres_pool_connections_max > 0,
            "ledger.postgres_pool_connections_max",
            "must be positive",
        )
    }
}

//! The operator console's section (`[operator]`): the operator token, the lifetime of a
//! console session, the rate of failed logins and the operator socket's queue.

use serde::{Deserialize, Serialize};

use super::{ConfigError, require};

/// Shortest operator token, in bytes: it is the key every session cookie is signed with.
pub const OPERATOR_TOKEN_BYTES_MIN: usize = 32;

/// Longest `operator.session_ttl_seconds`: a week.
pub const SESSION_TTL_SECONDS_MAX: u64 = 604_800;

/// The operator console and admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OperatorConfig {
    /// The operator token (`ALOFT_OPERATOR__TOKEN`), at least 32 bytes. Empty: `aloft
    /// serve` makes a random one and prints it at start; `aloft gateway` keeps the
    /// console off (503) until one is set. Changing it ends every console session.
    pub token: String,
    /// Lifetime of a console session (its cookie), in seconds.
    pub session_ttl_seconds: u64,
    /// Failed logins allowed per client address per minute (a token bucket); further
    /// attempts get 429 until the bucket refills.
    pub login_failures_per_minute_max: u32,
    /// Client addresses whose failed logins are tracked at once, at most.
    pub login_rate_addresses_max: usize,
    /// Frames an operator socket may have waiting before it is closed as a slow consumer
    /// (4001), like a player's.
    pub queue_frames_max: usize,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        OperatorConfig {
            token: String::new(),
            session_ttl_seconds: 43_200,
            login_failures_per_minute_max: 10,
            login_rate_addresses_max: 10_000,
            queue_frames_max: 1_024,
        }
    }
}

impl OperatorConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        require(
            self.token.is_empty() || self.token.len() >= OPERATOR_TOKEN_BYTES_MIN,
            "operator.token",
            "at least 32 bytes when set (or empty: a random one for `aloft serve`)",
        )?;
        require(
            (1..=SESSION_TTL_SECONDS_MAX).contains(&self.session_ttl_seconds),
            "operator.session_ttl_seconds",
            "must be 1..=604800",
        )?;
        require(
            self.login_failures_per_minute_max > 0,
            "operator.login_failures_per_minute_max",
            "at least 1",
        )?;
        require(
            self.login_rate_addresses_max > 0,
            "operator.login_rate_addresses_max",
            "at least 1",
        )?;
        require(
            (16..=65_536).contains(&self.queue_frames_max),
            "operator.queue_frames_max",
            "must be 16..=65536",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_token_is_refused_naming_the_key() {
        let short = OperatorConfig {
            token: "too-short".into(),
            ..OperatorConfig::default()
        };
        let error = short.validate().unwrap_err().to_string();
        assert!(error.contains("operator.token"), "{error}");
        let long = OperatorConfig {
            token: "x".repeat(OPERATOR_TOKEN_BYTES_MIN),
            ..OperatorConfig::default()
        };
        long.validate().unwrap();
        OperatorConfig::default().validate().unwrap();
    }
}

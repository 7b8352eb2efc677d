//! The tokens' section (`[auth]`): the JWT secret and token lifetimes.

use serde::{Deserialize, Serialize};

use super::{ConfigError, require};

/// Player and operator tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret for player JWTs. Empty = a random one created on first run and
    /// stored in `data_dir` (set it explicitly when several processes must agree).
    pub jwt_secret: String,
    /// Lifetime of guest tokens, in seconds.
    pub guest_token_ttl_seconds: u64,
    /// Longest lifetime a token may claim (`exp` − `iat`, or `exp` − now without `iat`),
    /// in seconds; a token valid for longer is refused.
    pub token_lifetime_seconds_max: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: String::new(),
            guest_token_ttl_seconds: 86_400,
            token_lifetime_seconds_max: 604_800,
        }
    }
}

impl AuthConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        require(
            (1..=self.token_lifetime_seconds_max).contains(&self.guest_token_ttl_seconds),
            "auth.guest_token_ttl_seconds",
            "must be 1..=auth.token_lifetime_seconds_max",
        )
    }
}

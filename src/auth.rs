//! Player tokens: JWTs signed with HS256 (`sub` = player id, `exp`), minted for guests
//! by `POST /api/guest` and accepted from operators' own platforms when they share the
//! secret (as Centrifugo does). Owns the secret's persistence, the player-id rules and
//! what a token must claim: `sub` and `exp` (required), `nbf` (checked when present),
//! `iat` (optional), and a lifetime of at most `auth.token_lifetime_seconds_max`.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::AuthConfig;

/// Longest player id, in bytes. Ids appear in ledger keys and public frames.
pub const PLAYER_ID_BYTES_MAX: usize = 64;

/// Shortest accepted HS256 secret, in bytes.
pub const SECRET_BYTES_MIN: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    /// Issued at: optional (Centrifugo-style tokens carry only `sub` and `exp`); when
    /// present, the lifetime is counted from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    /// Not before: a token is refused until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
}

/// Why a token was refused or a secret could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Bad signature, malformed, expired or wrong algorithm: the client needs a new token.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The token claims a longer life than `auth.token_lifetime_seconds_max`: mint
    /// shorter-lived tokens (or raise the limit).
    #[error("token valid for {lifetime_seconds} s, longer than the {max_seconds} s allowed")]
    LifetimeTooLong {
        lifetime_seconds: u64,
        max_seconds: u64,
    },
    /// The token's `sub` is not a valid player id (1-64 of `A-Za-z0-9_-.`).
    #[error("invalid player id in token")]
    InvalidPlayerId,
    /// The configured or stored secret is shorter than 32 bytes.
    #[error("auth.jwt_secret must be at least {SECRET_BYTES_MIN} bytes")]
    WeakSecret,
    /// The secret file in the data directory could not be read or created.
    #[error("cannot read or create the token secret at {path}: {source}")]
    SecretFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Signs and verifies player tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// `auth.token_lifetime_seconds_max`.
    lifetime_seconds_max: u64,
}

impl TokenKeys {
    pub fn new(secret: &[u8], lifetime_seconds_max: u64) -> Result<TokenKeys, AuthError> {
        if secret.len() < SECRET_BYTES_MIN {
            return Err(AuthError::WeakSecret);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            lifetime_seconds_max,
        })
    }

    /// The configured secret (`auth.jwt_secret`), or the one stored in `data_dir`
    /// (created on first run).
    pub fn load_or_create(auth: &AuthConfig, data_dir: &Path) -> Result<TokenKeys, AuthError> {
        let lifetime_seconds_max = auth.token_lifetime_seconds_max;
        if !auth.jwt_secret.is_empty() {
            return TokenKeys::new(auth.jwt_secret.as_bytes(), lifetime_seconds_max);
        }
        let path = data_dir.join("jwt_secret");
        let secret = crate::fair::load_or_create_hex_secret(&path).map_err(|source| {
            AuthError::SecretFile {
                path: path.display().to_string(),
                source,
            }
        })?;
        TokenKeys::new(secret.as_bytes(), lifetime_seconds_max)
    }

    /// A token for `player` valid for `ttl_seconds` from `now_seconds`.
    pub fn mint(&self, player: &str, now_seconds: u64, ttl_seconds: u64) -> String {
        assert!(valid_player_id(player), "minting a token for an invalid id");
        let claims = Claims {
            sub: player.to_owned(),
            iat: Some(now_seconds),
            exp: now_seconds + ttl_seconds,
            nbf: None,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// The player id of a valid token: signed with our secret, unexpired, past its
    /// `nbf`, and not claiming a longer life than allowed.
    pub fn verify(&self, token: &str) -> Result<String, AuthError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| AuthError::InvalidToken(error.to_string()))?
            .claims;
        let counted_from = claims
            .iat
            .unwrap_or_else(jsonwebtoken::get_current_timestamp);
        let lifetime_seconds = claims.exp.saturating_sub(counted_from);
        if lifetime_seconds > self.lifetime_seconds_max {
            return Err(AuthError::LifetimeTooLong {
                lifetime_seconds,
                max_seconds: self.lifetime_seconds_max,
            });
        }
        if !valid_player_id(&claims.sub) {
            return Err(AuthError::InvalidPlayerId);
        }
        Ok(claims.sub)
    }
}

/// Player ids are 1-64 bytes of `A-Za-z0-9_-.`.
pub fn valid_player_id(id: &str) -> bool {
    (1..=PLAYER_ID_BYTES_MAX).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// A fresh random guest id: `g-` and 16 hex digits.
pub fn new_guest_id() -> String {
    format!("g-{}", hex::encode(rand::random::<[u8; 8]>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIFETIME_SECONDS_MAX: u64 = 3_600;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32], LIFETIME_SECONDS_MAX).unwrap()
    }

    /// A token with exactly these claims, signed with the test secret.
    fn signed(claims: serde_json::Value) -> String {
        let key = EncodingKey::from_secret(&[7u8; 32]);
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn a_token_with_only_sub_and_exp_is_accepted() {
        let token = signed(serde_json::json!({ "sub": "p-1", "exp": now() + 60 }));
        assert_eq!(keys().verify(&token).unwrap(), "p-1");
    }

    #[test]
    fn a_token_not_yet_valid_is_refused() {
        let early =
            signed(serde_json::json!({ "sub": "p-1", "exp": now() + 600, "nbf": now() + 300 }));
        let error = keys().verify(&early).unwrap_err();
        assert!(error.to_string().contains("ImmatureSignature"), "{error}");
        let due = signed(serde_json::json!({ "sub": "p-1", "exp": now() + 600, "nbf": now() - 1 }));
        assert_eq!(keys().verify(&due).unwrap(), "p-1");
    }

    #[test]
    fn a_token_living_longer_than_the_maximum_is_refused() {
        let max = LIFETIME_SECONDS_MAX;
        // Counted from iat when present, even if most of that life has passed.
        let issued_long =
            signed(serde_json::json!({ "sub": "p-1", "iat": now() - 10, "exp": now() + max }));
        assert!(matches!(
            keys().verify(&issued_long),
            Err(AuthError::LifetimeTooLong {
                max_seconds: 3_600,
                ..
            })
        ));
        let issued_ok =
            signed(serde_json::json!({ "sub": "p-1", "iat": now(), "exp": now() + max }));
        assert_eq!(keys().verify(&issued_ok).unwrap(), "p-1");
        // From now without iat.
        let far = signed(serde_json::json!({ "sub": "p-1", "exp": now() + max + 60 }));
        assert!(matches!(
            keys().verify(&far),
            Err(AuthError::LifetimeTooLong { .. })
        ));
        let near = signed(serde_json::json!({ "sub": "p-1", "exp": now() + max - 60 }));
        assert_eq!(keys().verify(&near).unwrap(), "p-1");
    }

    #[test]
    fn minted_token_verifies_to_its_player() {
        let now = jsonwebtoken::get_current_timestamp();
        let token = keys().mint("g-1", now, 60);
        assert_eq!(keys().verify(&token).unwrap(), "g-1");
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let now = jsonwebtoken::get_current_timestamp();
        let expired = keys().mint("g-1", now - 120, 60);
        assert!(matches!(
            keys().verify(&expired),
            Err(AuthError::InvalidToken(_))
        ));

        let token = keys().mint("g-1", now, 60);
        let mut tampered = token.clone();
        tampered.pop();
        assert!(keys().verify(&tampered).is_err());

        let other = TokenKeys::new(&[8u8; 32], LIFETIME_SECONDS_MAX).unwrap();
        assert!(other.verify(&token).is_err());
        assert!(keys().verify("not-a-jwt").is_err());
    }

    #[test]
    fn player_ids_are_restricted() {
        assert!(valid_player_id(&new_guest_id()));
        assert!(!valid_player_id(""));
        assert!(!valid_player_id("a:b"));
        assert!(!valid_player_id(&"a".repeat(65)));
        assert!(matches!(
            TokenKeys::new(b"short", LIFETIME_SECONDS_MAX),
            Err(AuthError::WeakSecret)
        ));
    }
}

//! Player tokens: JWTs signed with HS256 (`sub` = player id, `exp`), minted for guests
//! by `POST /api/guest` and accepted from operators' own platforms when they share the
//! secret (as Centrifugo does). Owns the secret's persistence and the player-id rules.

use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Longest player id, in bytes. Ids appear in ledger keys and public frames.
pub const PLAYER_ID_BYTES_MAX: usize = 64;

/// Shortest accepted HS256 secret, in bytes.
pub const SECRET_BYTES_MIN: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: u64,
}

/// Why a token was refused or a secret could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Bad signature, malformed, expired or wrong algorithm: the client needs a new token.
    #[error("invalid token: {0}")]
    InvalidToken(String),
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
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> Result<TokenKeys, AuthError> {
        if secret.len() < SECRET_BYTES_MIN {
            return Err(AuthError::WeakSecret);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        })
    }

    /// The configured secret, or the one stored in `data_dir` (created on first run).
    pub fn load_or_create(
        configured_secret: &str,
        data_dir: &Path,
    ) -> Result<TokenKeys, AuthError> {
        if !configured_secret.is_empty() {
            return TokenKeys::new(configured_secret.as_bytes());
        }
        let path = data_dir.join("jwt_secret");
        let secret = crate::fair::load_or_create_hex_secret(&path).map_err(|source| {
            AuthError::SecretFile {
                path: path.display().to_string(),
                source,
            }
        })?;
        TokenKeys::new(secret.as_bytes())
    }

    /// A token for `player` valid for `ttl_seconds` from `now_seconds`.
    pub fn mint(&self, player: &str, now_seconds: u64, ttl_seconds: u64) -> String {
        assert!(valid_player_id(player), "minting a token for an invalid id");
        let claims = Claims {
            sub: player.to_owned(),
            iat: now_seconds,
            exp: now_seconds + ttl_seconds,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// The player id of a valid, unexpired token.
    pub fn verify(&self, token: &str) -> Result<String, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| AuthError::InvalidToken(error.to_string()))?;
        if !valid_player_id(&data.claims.sub) {
            return Err(AuthError::InvalidPlayerId);
        }
        Ok(data.claims.sub)
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

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32]).unwrap()
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

        let other = TokenKeys::new(&[8u8; 32]).unwrap();
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
            TokenKeys::new(b"short"),
            Err(AuthError::WeakSecret)
        ));
    }
}

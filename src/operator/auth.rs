//! The operator's credentials: the operator token, compared in constant time, and the
//! console's session cookie, `{expiry}.{mac}` where `mac` is HMAC-SHA256 over the expiry
//! (unix seconds) under a key derived from the token. Nothing is stored server-side: a
//! cookie is valid until its expiry, for the token it was signed under, so rotating
//! `operator.token` ends every session.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "aloft_operator";

/// What the session key is derived for: the token itself never signs anything.
const SESSION_KEY_CONTEXT: &[u8] = b"aloft operator session v1";
/// What a presented token is hashed under before the comparison.
const TOKEN_CHECK_CONTEXT: &[u8] = b"aloft operator token check v1";

/// Longest cookie value read, in bytes (20 digits, a dot, 64 hex digits).
const COOKIE_VALUE_BYTES_MAX: usize = 96;

/// Why a presented credential was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not the operator token.
    #[error("wrong operator token")]
    WrongToken,
    /// Not a cookie this server signed (malformed, forged, or signed under an older token).
    #[error("invalid session")]
    Invalid,
    /// Past its expiry: log in again.
    #[error("session expired")]
    Expired,
}

/// The keys of one operator token.
pub struct SessionKeys {
    /// HMAC key of the cookies.
    session_key: [u8; 32],
    /// HMAC-SHA256 of the token under [`TOKEN_CHECK_CONTEXT`].
    token_digest: [u8; 32],
}

impl SessionKeys {
    pub fn new(token: &str) -> SessionKeys {
        SessionKeys {
            session_key: mac(token.as_bytes(), SESSION_KEY_CONTEXT),
            token_digest: mac(TOKEN_CHECK_CONTEXT, token.as_bytes()),
        }
    }

    /// Whether `presented` is the operator token. Both sides are hashed to the same length
    /// first and compared by `Mac::verify_slice` in constant time, so neither the
    /// position of a first wrong byte nor the token's length shows in the timing.
    pub fn check_token(&self, presented: &str) -> Result<(), SessionError> {
        let mut hasher = keyed(TOKEN_CHECK_CONTEXT);
        hasher.update(presented.as_bytes());
        hasher
            .verify_slice(&self.token_digest)
            .map_err(|_| SessionError::WrongToken)
    }

    /// A cookie value valid until `expires_at_seconds` (unix).
    pub fn sign(&self, expires_at_seconds: u64) -> String {
        let digest = mac(&self.session_key, expires_at_seconds.to_string().as_bytes());
        format!("{expires_at_seconds}.{}", hex::encode(digest))
    }

    /// The expiry (unix seconds) of a cookie value this server signed, if it is still
    /// valid at `now_seconds`.
    pub fn verify(&self, value: &str, now_seconds: u64) -> Result<u64, SessionError> {
        if value.len() > COOKIE_VALUE_BYTES_MAX {
            return Err(SessionError::Invalid);
        }
        let (expiry_text, digest_hex) = value.split_once('.').ok_or(SessionError::Invalid)?;
        let expires_at_seconds =
            crate::protocol::parse_decimal(expiry_text).ok_or(SessionError::Invalid)?;
        let digest = hex::decode(digest_hex).map_err(|_| SessionError::Invalid)?;
        let mut hasher = keyed(&self.session_key);
        hasher.update(expiry_text.as_bytes());
        hasher
            .verify_slice(&digest)
            .map_err(|_| SessionError::Invalid)?;
        if expires_at_seconds <= now_seconds {
            return Err(SessionError::Expired);
        }
        Ok(expires_at_seconds)
    }
}

fn keyed(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key")
}

fn mac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut hasher = keyed(key);
    hasher.update(message);
    hasher.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "an-operator-token-of-32-bytes-or-more";
    const NOW: u64 = 1_765_000_000;

    #[test]
    fn only_the_token_itself_passes() {
        let keys = SessionKeys::new(TOKEN);
        keys.check_token(TOKEN).unwrap();
        for wrong in [
            "",
            "an-operator-token",
            &format!("{TOKEN}x"),
            &TOKEN.to_uppercase(),
        ] {
            assert_eq!(keys.check_token(wrong), Err(SessionError::WrongToken));
        }
    }

    #[test]
    fn a_signed_cookie_is_valid_until_its_expiry() {
        let keys = SessionKeys::new(TOKEN);
        let cookie = keys.sign(NOW + 60);
        assert_eq!(keys.verify(&cookie, NOW), Ok(NOW + 60));
        assert_eq!(keys.verify(&cookie, NOW + 59), Ok(NOW + 60));
        assert_eq!(keys.verify(&cookie, NOW + 60), Err(SessionError::Expired));
    }

    #[test]
    fn a_forged_or_altered_cookie_is_invalid() {
        let keys = SessionKeys::new(TOKEN);
        let cookie = keys.sign(NOW + 60);
        let (_, digest) = cookie.split_once('.').unwrap();
        // A later expiry with the old signature, a flipped digit, garbage.
        let extended = format!("{}.{digest}", NOW + 6_000);
        let mut flipped = cookie.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        for forged in [&extended, &flipped, "", "123", "x.y", &"9".repeat(200)] {
            assert_eq!(
                keys.verify(forged, NOW),
                Err(SessionError::Invalid),
                "{forged}"
            );
        }
    }

    #[test]
    fn a_new_token_ends_every_session() {
        let cookie = SessionKeys::new(TOKEN).sign(NOW + 60);
        let rotated = SessionKeys::new("another-operator-token-of-32-bytes!");
        assert_eq!(rotated.verify(&cookie, NOW), Err(SessionError::Invalid));
    }
}

//! The operator's credentials: the operator token, compared in constant time, and the
//! console's session cookie, `{expiry}.{operator}.{mac}` where `mac` is HMAC-SHA256 over
//! `{expiry}.{operator}` (unix seconds, the name the operator logged in under, which the
//! audit records) under a key derived from the token. Nothing is stored server-side: a
//! cookie is valid until its expiry, for the token it was signed under, so rotating
//! `operator.token` ends every session. Cookies of the format before operator names (v1)
//! are invalid: their key context differs.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "aloft_operator";

/// What the session key is derived for: the token itself never signs anything.
const SESSION_KEY_CONTEXT: &[u8] = b"aloft operator session v2";
/// What a presented token is hashed under before the comparison.
const TOKEN_CHECK_CONTEXT: &[u8] = b"aloft operator token check v1";

/// Longest cookie value read, in bytes (20 digits, a dot, an operator name of at most 64
/// bytes, a dot, 64 hex digits).
const COOKIE_VALUE_BYTES_MAX: usize = 150;

/// Whether `name` may name an operator in the audit: 1–64 bytes of `A-Za-z0-9_-.`, as a
/// player id (so it is safe in a cookie, a header and a log line as it is).
pub fn valid_operator_name(name: &str) -> bool {
    crate::auth::valid_player_id(name)
}

/// A valid session: until when, and who.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Unix seconds.
    pub expires_at_seconds: u64,
    /// The operator's name (see [`valid_operator_name`]).
    pub operator: String,
}

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

    /// A cookie value of `operator` (a [`valid_operator_name`]) valid until
    /// `expires_at_seconds` (unix).
    pub fn sign(&self, expires_at_seconds: u64, operator: &str) -> String {
        let signed = format!("{expires_at_seconds}.{operator}");
        let digest = mac(&self.session_key, signed.as_bytes());
        format!("{signed}.{}", hex::encode(digest))
    }

    /// The session of a cookie value this server signed, if it is still valid at
    /// `now_seconds`.
    pub fn verify(&self, value: &str, now_seconds: u64) -> Result<Session, SessionError> {
        if value.len() > COOKIE_VALUE_BYTES_MAX {
            return Err(SessionError::Invalid);
        }
        let (signed, digest_hex) = value.rsplit_once('.').ok_or(SessionError::Invalid)?;
        let (expiry_text, operator) = signed.split_once('.').ok_or(SessionError::Invalid)?;
        let expires_at_seconds =
            crate::protocol::parse_decimal(expiry_text).ok_or(SessionError::Invalid)?;
        let digest = hex::decode(digest_hex).map_err(|_| SessionError::Invalid)?;
        let mut hasher = keyed(&self.session_key);
        hasher.update(signed.as_bytes());
        hasher
            .verify_slice(&digest)
            .map_err(|_| SessionError::Invalid)?;
        if !valid_operator_name(operator) {
            return Err(SessionError::Invalid);
        }
        if expires_at_seconds <= now_seconds {
            return Err(SessionError::Expired);
        }
        Ok(Session {
            expires_at_seconds,
            operator: operator.to_owned(),
        })
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
    fn a_signed_cookie_is_valid_until_its_expiry_and_names_its_operator() {
        let keys = SessionKeys::new(TOKEN);
        let cookie = keys.sign(NOW + 60, "ada.l");
        let session = Session {
            expires_at_seconds: NOW + 60,
            operator: "ada.l".into(),
        };
        assert_eq!(keys.verify(&cookie, NOW), Ok(session.clone()));
        assert_eq!(keys.verify(&cookie, NOW + 59), Ok(session));
        assert_eq!(keys.verify(&cookie, NOW + 60), Err(SessionError::Expired));
    }

    #[test]
    fn a_cookie_of_the_format_before_operator_names_is_invalid() {
        let keys = SessionKeys::new(TOKEN);
        let v1_key = mac(TOKEN.as_bytes(), b"aloft operator session v1");
        let v1_digest = mac(&v1_key, (NOW + 60).to_string().as_bytes());
        let v1_cookie = format!("{}.{}", NOW + 60, hex::encode(v1_digest));
        assert_eq!(keys.verify(&v1_cookie, NOW), Err(SessionError::Invalid));
    }

    #[test]
    fn a_forged_or_altered_cookie_is_invalid() {
        let keys = SessionKeys::new(TOKEN);
        let cookie = keys.sign(NOW + 60, "ops");
        let (_, digest) = cookie.rsplit_once('.').unwrap();
        // A later expiry or another name with the old signature, a flipped digit, garbage.
        let extended = format!("{}.ops.{digest}", NOW + 6_000);
        let renamed = format!("{}.root.{digest}", NOW + 60);
        let mut flipped = cookie.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        for forged in [
            &extended,
            &renamed,
            &flipped,
            "",
            "123",
            "x.y",
            &"9".repeat(200),
        ] {
            assert_eq!(
                keys.verify(forged, NOW),
                Err(SessionError::Invalid),
                "{forged}"
            );
        }
    }

    #[test]
    fn a_new_token_ends_every_session() {
        let cookie = SessionKeys::new(TOKEN).sign(NOW + 60, "ops");
        let rotated = SessionKeys::new("another-operator-token-of-32-bytes!");
        assert_eq!(rotated.verify(&cookie, NOW), Err(SessionError::Invalid));
    }
}

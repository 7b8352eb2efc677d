//! Who may call an operator route. In this order: the console must be on (`operator.token`
//! set, else 503 `operator_disabled`); a token in the URL is refused (400
//! `operator_token_in_url`: URLs end up in logs, so it is never read there); then the
//! session cookie, or, where a route allows it, `Authorization: Bearer <operator token>`.
//! Refusals are 401 JSON errors with a `code`: `operator_auth_required` (nothing
//! presented), `operator_token_invalid`, `operator_session_invalid`,
//! `operator_session_expired`. A client address that failed too often gets 429
//! `operator_rate_limited` before its next attempt is even compared.
//!
//! Who the operator is, for the audit: the name in the session cookie, or, with a Bearer
//! token, the [`OPERATOR_HEADER`] (default [`BEARER_OPERATOR_DEFAULT`]); a name that is
//! not a valid operator name is 400 `bad_operator`.

use std::net::IpAddr;
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::OperatorConsole;
use super::auth::{SESSION_COOKIE, Session, SessionError, SessionKeys, valid_operator_name};
use crate::http::api_error;

/// The header a Bearer caller names itself with, for the audit.
pub const OPERATOR_HEADER: &str = "x-aloft-operator";

/// The operator's name of a Bearer caller that sends no [`OPERATOR_HEADER`].
pub const BEARER_OPERATOR_DEFAULT: &str = "api";

/// Which credentials a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// The console's pages and socket: the session cookie only.
    Cookie,
    /// The admin API: the cookie, or the operator token as a Bearer token.
    CookieOrBearer,
}

/// Why an operator request is refused; its response is made only at the edge
/// (`IntoResponse`), a `Response` being too large to pass around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `operator.token`: 503 `operator_disabled`.
    Disabled,
    /// No cookie, no Bearer token: 401 `operator_auth_required`.
    AuthRequired,
    /// A wrong token or a bad cookie: 401 with the error's code.
    Credential(SessionError),
    /// Too many failures from the address: 429 `operator_rate_limited`, `Retry-After`.
    RateLimited { retry_after_seconds: u64 },
    /// An [`OPERATOR_HEADER`] that is no valid operator name: 400 `bad_operator`.
    BadOperatorName,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Disabled => api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "operator_disabled",
                "the operator console is disabled until operator.token is set",
            ),
            Refusal::AuthRequired => api_error(
                StatusCode::UNAUTHORIZED,
                "operator_auth_required",
                "log in to the operator console first",
            ),
            Refusal::Credential(error) => {
                let code = match error {
                    SessionError::WrongToken => "operator_token_invalid",
                    SessionError::Invalid => "operator_session_invalid",
                    SessionError::Expired => "operator_session_expired",
                };
                api_error(StatusCode::UNAUTHORIZED, code, &error.to_string())
            }
            Refusal::RateLimited {
                retry_after_seconds,
            } => {
                let mut response = api_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "operator_rate_limited",
                    "too many failed operator logins from this address: retry later",
                );
                (response.headers_mut()).insert(header::RETRY_AFTER, retry_after_seconds.into());
                response
            }
            Refusal::BadOperatorName => api_error(
                StatusCode::BAD_REQUEST,
                "bad_operator",
                "the operator's name (X-Aloft-Operator) is 1-64 characters of A-Z a-z 0-9 _ - .",
            ),
        }
    }
}

/// The console's keys, unless it is off.
pub fn keys(console: &OperatorConsole) -> Result<&SessionKeys, Refusal> {
    console.keys.as_ref().ok_or(Refusal::Disabled)
}

/// Whether the query string carries a `token` parameter.
pub fn token_in_query(query: Option<&str>) -> bool {
    query.is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair.split('=').next() == Some("token"))
    })
}

/// The 400 of a token in a URL.
pub fn token_in_url() -> Response {
    api_error(
        StatusCode::BAD_REQUEST,
        "operator_token_in_url",
        "the operator token is never accepted in a URL: log in with POST /api/operator/session \
         or send Authorization: Bearer",
    )
}

/// The session (its expiry in unix seconds, the operator's name) if the request may go
/// on, or the refusal. A Bearer caller's session lasts as long as a login's would.
pub fn authorize(
    console: &OperatorConsole,
    headers: &HeaderMap,
    peer: IpAddr,
    accepts: Accepts,
) -> Result<Session, Refusal> {
    let keys = keys(console)?;
    let now_seconds = crate::clock::unix_now_ms() / 1000;
    if let Some(cookie) = session_cookie(headers) {
        return (keys.verify(cookie, now_seconds)).map_err(Refusal::Credential);
    }
    let bearer = bearer_token(headers).filter(|_| accepts == Accepts::CookieOrBearer);
    let Some(token) = bearer else {
        return Err(Refusal::AuthRequired);
    };
    check_token(console, keys, token, peer)?;
    let operator = match headers.get(OPERATOR_HEADER) {
        None => BEARER_OPERATOR_DEFAULT,
        Some(value) => value
            .to_str()
            .ok()
            .filter(|name| valid_operator_name(name))
            .ok_or(Refusal::BadOperatorName)?,
    };
    Ok(Session {
        expires_at_seconds: now_seconds + console.config.session_ttl_seconds,
        operator: operator.to_owned(),
    })
}

/// Checks a presented operator token, charging the address's bucket when it is wrong.
pub fn check_token(
    console: &OperatorConsole,
    keys: &SessionKeys,
    token: &str,
    peer: IpAddr,
) -> Result<(), Refusal> {
    let now = Instant::now();
    if let Err(throttled) = console.login_rate.check(peer, now) {
        return Err(Refusal::RateLimited {
            retry_after_seconds: throttled.retry_after_seconds,
        });
    }
    keys.check_token(token).map_err(|error| {
        // A bucket just emptied by someone else changes nothing: this attempt failed.
        let _ = console.login_rate.take(peer, now);
        tracing::warn!(%peer, "operator login refused: wrong token");
        Refusal::Credential(error)
    })
}

/// The value of the session cookie, if the request carries one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn a_token_parameter_anywhere_in_the_query_is_seen() {
        assert!(token_in_query(Some("token=abc")));
        assert!(token_in_query(Some("room=main&token=abc")));
        assert!(token_in_query(Some("token")));
        assert!(!token_in_query(Some("tokens=1&room=main")));
        assert!(!token_in_query(None));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; aloft_operator=v.x"),
        );
        assert_eq!(session_cookie(&headers), Some("v.x"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  abc "),
        );
        assert_eq!(bearer_token(&headers), Some("abc"));
    }
}

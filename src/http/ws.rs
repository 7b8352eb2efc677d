//! The `/ws` handshake: every check happens here, before the upgrade, so a refused
//! client gets a plain HTTP status it can see (401 bad token, 403 foreign origin, 404
//! unknown room, 400 malformed resume position, 400/426 not a WebSocket request, 403 a
//! banned player, 503 too many sockets from the address or of the player, or shard
//! full). An accepted
//! request is answered 101 and handed, with its places in the connection counts, to the
//! shard that accepted its socket.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{ApiError, AppState, ShardHttp, origin_allowed};
use crate::admission::Refusal;
use crate::bus::StreamPosition;
use crate::gateway::{AdmissionSlots, Credentials, PendingUpgrade};
use crate::protocol::parse_decimal;

#[derive(Deserialize)]
pub struct WsQuery {
    token: Option<String>,
    room: Option<String>,
    /// With `epoch`: the last event the client applied, to resume after it.
    since: Option<String>,
    epoch: Option<String>,
}

pub async fn upgrade(
    State(http): State<ShardHttp>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<WsQuery>,
    mut request: Request,
) -> Response {
    match hand_to_shard(&http, peer, query, &mut request) {
        Ok(accept) => switching_protocols(accept),
        Err(refused) => {
            crate::metrics::gateway::upgrade_refused(refused.code());
            refused.into_response()
        }
    }
}

/// The 101 answer to an accepted WebSocket handshake whose `Sec-WebSocket-Accept` is
/// `accept` (the player socket's, and the operator socket's).
pub(crate) fn switching_protocols(accept: String) -> Response {
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::UPGRADE, "websocket".to_owned()),
            (header::CONNECTION, "Upgrade".to_owned()),
            (header::SEC_WEBSOCKET_ACCEPT, accept),
        ],
    )
        .into_response()
}

/// Why a handshake is refused, turned into its HTTP response only at the end (a
/// `Response` is too large to pass around in a `Result`).
pub(crate) enum Refused {
    /// A JSON error (`api_error`): status, code, message.
    Api(ApiError),
    /// Not WebSocket version 13: 426 naming the version spoken.
    VersionRequired,
}

impl Refused {
    /// The `reason` label of the refusal (`metrics::gateway::UPGRADE_REFUSAL_REASONS`).
    fn code(&self) -> &'static str {
        match self {
            Refused::Api(error) => error.code,
            Refused::VersionRequired => "version",
        }
    }

    fn api(status: StatusCode, code: &'static str, message: &str) -> Self {
        Refused::Api(ApiError::new(status, code, message))
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Api(error) => error.into_response(),
            Refused::VersionRequired => (
                StatusCode::UPGRADE_REQUIRED,
                [(header::SEC_WEBSOCKET_VERSION, "13")],
                "WebSocket version 13 required",
            )
                .into_response(),
        }
    }
}

/// Runs every check, in order, and hands the socket-to-be to the shard; returns the
/// `Sec-WebSocket-Accept` value, or the response refusing the request.
fn hand_to_shard(
    http: &ShardHttp,
    peer: SocketAddr,
    query: WsQuery,
    request: &mut Request,
) -> Result<String, Refused> {
    let key = websocket_key_checked(request.headers(), &http.app.config.gateway.allowed_origins)?;
    let SocketRequest {
        credentials,
        room,
        since,
    } = socket_request(&http.app, query)?;
    let slots = admit(http, peer, &credentials).map_err(|refusal| {
        metrics::counter!(crate::metrics::ADMISSION_REFUSED, "reason" => refusal.code())
            .increment(1);
        let status = StatusCode::from_u16(refusal.http_status()).expect("a valid status");
        Refused::api(status, refusal.code(), &refusal.to_string())
    })?;
    let Some(seat) = http.shard.seats.take() else {
        return Err(Refused::api(
            StatusCode::SERVICE_UNAVAILABLE,
            "full",
            "server full",
        ));
    };
    let Some(upgrade) = (request.extensions_mut()).remove::<hyper::upgrade::OnUpgrade>() else {
        return Err(Refused::api(
            StatusCode::BAD_REQUEST,
            "not_websocket",
            "connection cannot be upgraded",
        ));
    };
    let pending = PendingUpgrade {
        upgrade,
        credentials,
        room,
        since,
        slots,
        seat,
    };
    if http.shard.upgrades.try_send(pending).is_err() {
        return Err(Refused::api(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many handshakes",
        ));
    }
    Ok(tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// The request's `Sec-WebSocket-Key` once it is a version-13 WebSocket upgrade from an
/// allowed origin.
pub(crate) fn websocket_key_checked(
    headers: &HeaderMap,
    allowed_origins: &[String],
) -> Result<String, Refused> {
    let Some(key) = websocket_key(headers) else {
        return Err(Refused::api(
            StatusCode::BAD_REQUEST,
            "not_websocket",
            "expected a WebSocket upgrade request",
        ));
    };
    let version = headers.get(header::SEC_WEBSOCKET_VERSION);
    if version.map(HeaderValue::as_bytes) != Some(b"13") {
        return Err(Refused::VersionRequired);
    }
    if !origin_allowed(headers, allowed_origins) {
        return Err(Refused::api(
            StatusCode::FORBIDDEN,
            "origin",
            "origin not allowed",
        ));
    }
    Ok(key)
}

/// What the query asks for: whose socket, which room, resumed from where.
struct SocketRequest {
    credentials: Credentials,
    room: String,
    since: Option<StreamPosition>,
}

fn socket_request(app: &AppState, query: WsQuery) -> Result<SocketRequest, Refused> {
    // Without a URL token (URLs end up in proxy logs) the token comes as the first
    // message, checked by the shard.
    let credentials = match query.token.as_deref().map(|token| app.tokens.verify(token)) {
        Some(Ok(player)) => Credentials::Player(player),
        Some(Err(error)) => {
            return Err(Refused::api(
                StatusCode::UNAUTHORIZED,
                "bad_token",
                &error.to_string(),
            ));
        }
        None => Credentials::FirstMessage(app.tokens.clone()),
    };
    let room = query.room.unwrap_or_else(|| app.config.rooms[0].clone());
    if !app.config.rooms.contains(&room) {
        return Err(Refused::api(
            StatusCode::NOT_FOUND,
            "unknown_room",
            "no such room",
        ));
    }
    let Ok(since) = resume_position(query.since.as_deref(), query.epoch.as_deref()) else {
        return Err(Refused::api(
            StatusCode::BAD_REQUEST,
            "bad_since",
            "since and epoch go together, each as decimal digits",
        ));
    };
    Ok(SocketRequest {
        credentials,
        room,
        since,
    })
}

/// Places for the socket in the process's per-address and per-player counts. A socket
/// that authenticates with its first message takes its player's place then
/// (`shard::player_of`).
fn admit(
    http: &ShardHttp,
    peer: SocketAddr,
    credentials: &Credentials,
) -> Result<AdmissionSlots, Refusal> {
    let limits = &http.app.limits;
    let address = limits.admit_address(peer.ip())?;
    let player = match credentials {
        Credentials::Player(player) => Some(limits.admit_player(player)?),
        Credentials::FirstMessage(_) => None,
    };
    Ok(AdmissionSlots { address, player })
}

/// The position a client resumes from: none without `since` and `epoch`, an error when
/// only one is given or either is not a decimal `u64`. A well-formed position the room
/// cannot serve (another epoch, out of the window, ahead) is not an error: the client
/// gets `recovered: false` and a snapshot.
fn resume_position(since: Option<&str>, epoch: Option<&str>) -> Result<Option<StreamPosition>, ()> {
    match (since, epoch) {
        (None, None) => Ok(None),
        (Some(since), Some(epoch)) => match (parse_decimal(since), parse_decimal(epoch)) {
            (Some(seq), Some(epoch)) => Ok(Some(StreamPosition { epoch, seq })),
            _ => Err(()),
        },
        _ => Err(()),
    }
}

fn websocket_key(headers: &HeaderMap) -> Option<String> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|text| {
                text.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return None;
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?.to_str().ok()?;
    (key.len() == 24).then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tests::headers;

    #[test]
    fn a_resume_position_needs_both_numbers() {
        assert_eq!(resume_position(None, None), Ok(None));
        assert_eq!(
            resume_position(Some("41"), Some("1763900000000")),
            Ok(Some(StreamPosition {
                epoch: 1_763_900_000_000,
                seq: 41
            }))
        );
        for (since, epoch) in [
            (Some("41"), None),
            (None, Some("7")),
            (Some(""), Some("7")),
            (Some("-1"), Some("7")),
            (Some("41"), Some("x7")),
            (Some("99999999999999999999"), Some("7")),
        ] {
            assert_eq!(
                resume_position(since, epoch),
                Err(()),
                "{since:?} {epoch:?}"
            );
        }
    }

    #[test]
    fn websocket_key_needs_upgrade_headers() {
        let good = headers(&[
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]);
        assert_eq!(
            websocket_key(&good).as_deref(),
            Some("dGhlIHNhbXBsZSBub25jZQ==")
        );
        assert_eq!(websocket_key(&headers(&[("upgrade", "websocket")])), None);
    }
}

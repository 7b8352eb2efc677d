//! The HTTP surface, on the same port as `/ws`: the embedded web client, the JSON API
//! (`POST /api/guest`, `GET /api/fair`, `GET /api/rounds`), `/healthz` and `/readyz`.
//! The operator console's routes (`crate::operator::routes`) are merged beside these,
//! with the same security headers.
//! Every shard serves the same routes; `/ws` upgrades are handed to the shard that
//! accepted the socket (see [`ws`]). Every response carries the security headers of
//! [`security_headers`]; metrics are served elsewhere (`crate::metrics`, on
//! `metrics_listen`), never on the player port.
//!
//! Browsers are held to one Origin rule ([`origin_allowed`]) for `/ws` and for guest
//! creation; guests are also limited per client address (`crate::admission`) and their
//! request bodies to [`GUEST_BODY_BYTES_MAX`].

mod me;
pub mod ws;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::admission::ConnectionLimits;
use crate::admission::address_rate::AddressRate;
use crate::auth::TokenKeys;
use crate::cashier::{Cashier, GrantError};
use crate::gateway::ShardEntry;
use crate::ledger::{Account, Ledger, RoundStatus};

/// Rounds `/api/rounds` returns at most.
pub const ROUNDS_LIMIT_MAX: usize = 1_000;

/// Largest body `POST /api/guest` reads, in bytes: it needs none (at most a tiny JSON
/// object); a larger one is refused with 413 before it is read.
pub const GUEST_BODY_BYTES_MAX: usize = 1_024;

/// The Content-Security-Policy of every response, fitted to the shipped web client: its
/// scripts (ES modules), styles and requests are all same-origin files (`connect-src
/// 'self'` covers its `ws:`/`wss:` socket to the same host), its favicon is a `data:`
/// URI, and it has no inline script or style.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What the public fairness endpoint publishes.
#[derive(Debug, Clone)]
pub struct FairInfo {
    pub salt: String,
    pub house_edge_bp: u32,
    pub chain_length: u64,
    /// Each room's chain.
    pub chains: HashMap<String, PublishedChain>,
}

/// The public side of a room's hash chain.
#[derive(Debug, Clone, Serialize)]
pub struct PublishedChain {
    /// The chain's end: SHA-256 of the hash of the chain's first round.
    pub commitment: String,
    /// The round that uses the chain's first hash.
    pub first_round: u64,
}

/// State shared by the HTTP handlers of every shard.
pub struct AppState {
    pub config: Arc<crate::Config>,
    pub ledger: Arc<dyn Ledger>,
    /// Grants new guests their starting balance.
    pub cashier: Cashier,
    pub tokens: Arc<TokenKeys>,
    pub fair: FairInfo,
    /// Live sockets per client address and per player (shared with the gateway).
    pub limits: Arc<ConnectionLimits>,
    /// Guest creation per client address.
    pub guest_rate: AddressRate,
    /// Set once every engine and the gateway are up; cleared at shutdown.
    pub ready: Arc<AtomicBool>,
}

/// A shard's view of the HTTP state.
#[derive(Clone)]
pub struct ShardHttp {
    pub app: Arc<AppState>,
    pub shard: ShardEntry,
}

#[derive(rust_embed::RustEmbed)]
#[folder = "web-client/"]
struct WebClient;

/// The router a shard serves.
pub fn router(app: Arc<AppState>, shard: ShardEntry) -> axum::Router {
    axum::Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/api/guest", post(create_guest))
        .route("/api/fair", get(fair))
        .route("/api/rounds", get(rounds))
        .route("/api/me/bets", get(me::my_bets))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(get(static_file))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(ShardHttp { app, shard })
}

/// Adds the standard security headers to a response: no framing (clickjacking), no MIME
/// sniffing, no referrer to other sites, and a CSP that allows only the web client's own
/// files.
pub async fn security_headers(mut response: Response) -> Response {
    const HEADERS: [(HeaderName, &str); 4] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    let headers = response.headers_mut();
    for (name, value) in HEADERS {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The one Origin rule for browsers: no Origin (not a browser) is allowed; a browser's
/// Origin must be listed in `gateway.allowed_origins`, or match the Host it connects to
/// when the list is empty; `*` allows any.
pub(crate) fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers
        .get(header::ORIGIN)
        .and_then(|value| value.to_str().ok())
    else {
        return true;
    };
    if allowed.iter().any(|entry| entry == "*" || entry == origin) {
        return true;
    }
    if !allowed.is_empty() {
        return false;
    }
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|host| host.eq_ignore_ascii_case(origin_host))
}

/// An API error kept until the edge (a `Response` is too large to pass around in a
/// `Result`): answered as [`api_error`] makes it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: &str) -> ApiError {
        ApiError {
            status,
            code,
            message: message.to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        api_error(self.status, self.code, &self.message)
    }
}

/// An API error as JSON: `{"code": "...", "message": "..."}`.
pub fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(serde_json::json!({ "code": code, "message": message })),
    )
        .into_response()
}

#[derive(Serialize)]
struct GuestCreated {
    token: String,
    player: String,
    balance: i64,
}

/// Creates a guest, once [`guest_request_refusal`] has none.
async fn create_guest(
    State(http): State<ShardHttp>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let app = &http.app;
    if let Some(refused) = guest_request_refusal(app, peer, &headers, body).await {
        return refused;
    }
    let player = crate::auth::new_guest_id();
    let balance = match app.cashier.grant_guest(&player).await {
        Ok(balance) => balance,
        Err(error) => return grant_failed(&error),
    };
    metrics::counter!(crate::metrics::GUESTS).increment(1);
    let now_seconds = crate::clock::unix_now_ms() / 1000;
    let token = app.tokens.mint(
        &player,
        now_seconds,
        app.config.auth.guest_token_ttl_seconds,
    );
    Json(GuestCreated {
        token,
        player,
        balance,
    })
    .into_response()
}

/// The answer to a guest whose grant failed: 503 while the ledger cannot be written (the
/// client may retry), 500 for a refused grant (a bug).
fn grant_failed(error: &GrantError) -> Response {
    tracing::error!(%error, "guest grant failed");
    match error {
        GrantError::Ledger(_) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal",
            "ledger unavailable",
        ),
        GrantError::Refused(_) => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "grant refused",
        ),
    }
}

/// Why a guest request is refused, checked in this order: a foreign Origin (403), a body
/// above [`GUEST_BODY_BYTES_MAX`] (413) or not sent within `gateway.handshake_timeout_ms`
/// (408), and the client address's rate (429 with `Retry-After`).
async fn guest_request_refusal(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Option<Response> {
    if !origin_allowed(headers, &app.config.gateway.allowed_origins) {
        return Some(api_error(
            StatusCode::FORBIDDEN,
            "origin",
            "origin not allowed",
        ));
    }
    // A declared length is refused before anything is read; a body that trickles in is
    // held to the same deadline as the request head.
    let too_large = || {
        let message = format!("a guest request body is at most {GUEST_BODY_BYTES_MAX} bytes");
        Some(api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            &message,
        ))
    };
    if body.size_hint().lower() > GUEST_BODY_BYTES_MAX as u64 {
        return too_large();
    }
    let body_deadline = Duration::from_millis(app.config.gateway.handshake_timeout_ms);
    let read = axum::body::to_bytes(body, GUEST_BODY_BYTES_MAX);
    match tokio::time::timeout(body_deadline, read).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return too_large(),
        Err(_) => {
            let message = "the request body did not arrive in time";
            return Some(api_error(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                message,
            ));
        }
    }
    let throttled = app.guest_rate.take(peer.ip(), Instant::now()).err()?;
    metrics::counter!(crate::metrics::ADMISSION_REFUSED, "reason" => "guests_per_ip").increment(1);
    let mut refused = api_error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "too many guests from this address: retry later",
    );
    refused
        .headers_mut()
        .insert(header::RETRY_AFTER, throttled.retry_after_seconds.into());
    Some(refused)
}

#[derive(Deserialize)]
struct RoomQuery {
    room: Option<String>,
}

#[derive(Serialize)]
struct FairResponse<'a> {
    room: &'a str,
    salt: &'a str,
    commitment: &'a str,
    first_round: u64,
    house_edge_bp: u32,
    chain_length: u64,
}

async fn fair(State(http): State<ShardHttp>, Query(query): Query<RoomQuery>) -> Response {
    let app = &http.app;
    let room = query.room.as_deref().unwrap_or(&app.config.rooms[0]);
    let Some(chain) = app.fair.chains.get(room) else {
        return api_error(StatusCode::NOT_FOUND, "unknown_room", "no such room");
    };
    Json(FairResponse {
        room,
        salt: &app.fair.salt,
        commitment: &chain.commitment,
        first_round: chain.first_round,
        house_edge_bp: app.fair.house_edge_bp,
        chain_length: app.fair.chain_length,
    })
    .into_response()
}

#[derive(Deserialize)]
struct RoundsQuery {
    limit: Option<usize>,
    room: Option<String>,
}

#[derive(Serialize)]
struct RoundSummary {
    room: String,
    round: u64,
    /// Crash point in hundredths (0 for an aborted round, which never crashed).
    m: u64,
    hash: String,
    status: RoundStatus,
    started_at: u64,
    ended_at: Option<u64>,
    bets_total: i64,
    payouts_total: i64,
}

async fn rounds(State(http): State<ShardHttp>, Query(query): Query<RoundsQuery>) -> Response {
    let app = &http.app;
    let room = query.room.unwrap_or_else(|| app.config.rooms[0].clone());
    if !app.config.rooms.contains(&room) {
        return api_error(StatusCode::NOT_FOUND, "unknown_room", "no such room");
    }
    let limit = query.limit.unwrap_or(50).clamp(1, ROUNDS_LIMIT_MAX);
    // Ask for one more than the limit: the newest record may be the round in play,
    // whose hash must stay secret until its crash.
    let records = match app.ledger.recent_rounds(&room, limit + 1).await {
        Ok(records) => records,
        Err(error) => {
            tracing::error!(%error, "rounds query failed");
            return api_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "internal",
                "ledger unavailable",
            );
        }
    };
    let summaries: Vec<RoundSummary> = records
        .into_iter()
        .filter(|record| matches!(record.status, RoundStatus::Crashed | RoundStatus::Aborted))
        .take(limit)
        .map(|record| RoundSummary {
            m: if record.status == RoundStatus::Crashed {
                record.crash_hundredths
            } else {
                0
            },
            room: record.room,
            round: record.round,
            hash: record.hash,
            status: record.status,
            started_at: record.started_at_ms,
            ended_at: record.ended_at_ms,
            bets_total: record.bets_total_minor,
            payouts_total: record.payouts_total_minor,
        })
        .collect();
    Json(summaries).into_response()
}

async fn readyz(State(http): State<ShardHttp>) -> Response {
    if !http.app.ready.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting or stopping").into_response();
    }
    match http.app.ledger.balance(&Account::House).await {
        Ok(_) => "ready".into_response(),
        Err(error) => {
            tracing::warn!(%error, "readiness: ledger unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "ledger unavailable").into_response()
        }
    }
}

async fn static_file(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    embedded_file(if path.is_empty() { "index.html" } else { path })
}

/// A file of `web-client/` (the player page, the verify page, the operator console).
pub fn embedded_file(path: &str) -> Response {
    match WebClient::get(path) {
        Some(file) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            (
                [
                    (header::CONTENT_TYPE, mime.as_ref().to_owned()),
                    (header::CACHE_CONTROL, "no-cache".to_owned()),
                ],
                file.data.into_owned(),
            )
                .into_response()
        }
        None => api_error(StatusCode::NOT_FOUND, "not_found", "no such file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn origin_rules() {
        let same = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        let foreign = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ]);
        assert!(origin_allowed(&same, &[]));
        assert!(!origin_allowed(&foreign, &[]));
        assert!(origin_allowed(&foreign, &["*".into()]));
        assert!(origin_allowed(&foreign, &["http://evil.example".into()]));
        assert!(!origin_allowed(&same, &["http://other".into()]));
        assert!(origin_allowed(&headers(&[("host", "x")]), &[]));
    }
}

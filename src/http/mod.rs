//! The HTTP surface, on the same port as `/ws`: the embedded web client, the JSON API
//! (`POST /api/guest`, `GET /api/fair`, `GET /api/rounds`), `/healthz`, `/readyz` and
//! `/metrics`. Every shard serves the same routes; `/ws` upgrades are handed to the
//! shard that accepted the socket (see [`ws`]).

pub mod ws;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};

use crate::auth::TokenKeys;
use crate::gateway::ShardEntry;
use crate::ledger::batcher::TransferBatcher;
use crate::ledger::{Account, Ledger, RoundStatus, Transfer, TransferKind, TransferOutcome};

/// Rounds `/api/rounds` returns at most.
pub const ROUNDS_LIMIT_MAX: usize = 1_000;

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
    /// Group-commits guest grants: a burst of sign-ups costs a few transactions.
    pub grants: TransferBatcher,
    pub tokens: Arc<TokenKeys>,
    pub fair: FairInfo,
    pub metrics: PrometheusHandle,
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
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .fallback(get(static_file))
        .with_state(ShardHttp { app, shard })
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

async fn create_guest(State(http): State<ShardHttp>) -> Response {
    let app = &http.app;
    let player = crate::auth::new_guest_id();
    let grant = Transfer {
        id: format!("grant:{player}"),
        debit: Account::Mint,
        credit: Account::Player(player.clone()),
        amount_minor: app.config.ledger.guest_balance_minor,
        kind: TransferKind::Grant,
        multiplier_hundredths: None,
    };
    let balance = if grant.amount_minor == 0 {
        0
    } else {
        match app.grants.submit(grant).await {
            Ok(TransferOutcome::Committed {
                credit_balance_after_minor,
                ..
            }) => credit_balance_after_minor,
            Ok(other) => {
                tracing::error!(?other, "guest grant refused");
                return api_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "grant refused",
                );
            }
            Err(error) => {
                tracing::error!(%error, "guest grant failed");
                return api_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "internal",
                    "ledger unavailable",
                );
            }
        }
    };
    metrics::counter!(crate::metrics::GUESTS).increment(1);
    let now_seconds = crate::engine::clock::unix_now_ms() / 1000;
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

async fn render_metrics(State(http): State<ShardHttp>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        http.app.metrics.render(),
    )
        .into_response()
}

async fn static_file(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
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

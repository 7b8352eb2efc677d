//! The admin API's actions, on the player port of every gateway, cookie or Bearer (see
//! [`super::guard`]): pause, resume and the next round's limits of a room (through the
//! process's `admin::RoomController`, audited by the engine that applies them), a player's
//! record, kick, ban, unban, mute and unmute (`admin::sanctions`, audited here), and the
//! audit trail.
//! A change from a browser must come from an allowed Origin, like a login. Errors are
//! JSON `{"code", "message"}` with the status of `admin::AdminError::http_status`, or 400
//! for bad input, 404 for an unknown room or player.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use super::OperatorConsole;
use super::guard::{self, Accepts};
use crate::admin::{self, AdminError, ControlOutcome, PlayerRecord};
use crate::http::{ApiError, api_error, origin_allowed};
use crate::ledger::{AUDIT_ENTRIES_MAX, Restriction, RoomLimits};

/// Largest limits body read, in bytes: three integers and their names.
pub const LIMITS_BODY_BYTES_MAX: usize = 1_024;

/// Audit entries `GET /api/admin/audit` returns without `limit`.
pub const AUDIT_ENTRIES_DEFAULT: usize = 50;

type Console = State<Arc<OperatorConsole>>;

/// The admin API's action routes.
pub fn routes() -> axum::Router<Arc<OperatorConsole>> {
    axum::Router::new()
        .route("/api/admin/rooms/{room}/pause", post(pause_room))
        .route("/api/admin/rooms/{room}/resume", post(resume_room))
        .route("/api/admin/rooms/{room}/limits", put(set_room_limits))
        .route("/api/admin/players/{player}", get(player_record))
        .route(
            "/api/admin/players/{player}/kick",
            post(act(Sanction::Kick)),
        )
        .route(
            "/api/admin/players/{player}/ban",
            post(act(Sanction::Restrict(Restriction::Ban, true)))
                .delete(act(Sanction::Restrict(Restriction::Ban, false))),
        )
        .route(
            "/api/admin/players/{player}/mute",
            post(act(Sanction::Restrict(Restriction::Mute, true)))
                .delete(act(Sanction::Restrict(Restriction::Mute, false))),
        )
        .route("/api/admin/audit", get(audit_trail))
}

/// The handler of a player route that does `sanction` to the path's player (one for
/// every such route, told apart by `sanction`).
fn act(
    sanction: Sanction,
) -> impl Fn(Console, ConnectInfo<SocketAddr>, Path<String>, HeaderMap) -> BoxFuture<'static, Response>
+ Clone
+ Send
+ Sync
+ 'static {
    move |State(console), ConnectInfo(peer), Path(player), headers| {
        Box::pin(
            async move { sanction_player(&console, (peer, &headers), &player, sanction).await },
        )
    }
}

/// The caller of an admin route.
struct Caller {
    operator: String,
}

/// Why an admin request is refused; its response is made only at the edge
/// (`IntoResponse`), a `Response` being too large to pass around.
enum Refused {
    /// No or wrong credentials (see `guard`).
    Guard(guard::Refusal),
    /// A JSON error (`api_error`).
    Api(ApiError),
}

impl Refused {
    fn api(status: StatusCode, code: &'static str, message: &str) -> Refused {
        Refused::Api(ApiError::new(status, code, message))
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Guard(refusal) => refusal.into_response(),
            Refused::Api(error) => error.into_response(),
        }
    }
}

impl Caller {
    /// Authorizes the request (cookie or Bearer) and, for a change (`changes`), checks a
    /// browser's Origin.
    fn of(
        console: &OperatorConsole,
        peer: SocketAddr,
        headers: &HeaderMap,
        changes: bool,
    ) -> Result<Caller, Refused> {
        let session = guard::authorize(console, headers, peer.ip(), Accepts::CookieOrBearer)
            .map_err(Refused::Guard)?;
        if changes && !origin_allowed(headers, &console.allowed_origins) {
            return Err(Refused::api(
                StatusCode::FORBIDDEN,
                "origin",
                "origin not allowed",
            ));
        }
        Ok(Caller {
            operator: session.operator,
        })
    }
}

/// The JSON error of an admin action that did not happen.
fn admin_error(error: &AdminError) -> Response {
    let status = StatusCode::from_u16(error.http_status()).expect("a valid status");
    if status.is_server_error() {
        tracing::warn!(%error, "admin action failed");
    }
    api_error(status, error.code(), &error.to_string())
}

fn answer<T: Serialize>(result: Result<T, AdminError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(error) => admin_error(&error),
    }
}

/// 404 unless `room` is served here.
fn known_room(console: &OperatorConsole, room: &str) -> Result<(), Refused> {
    if console.rooms.iter().any(|served| served == room) {
        return Ok(());
    }
    Err(Refused::api(
        StatusCode::NOT_FOUND,
        "unknown_room",
        "no such room",
    ))
}

/// 400 unless `player` is a valid player id.
fn valid_player(player: &str) -> Result<(), Refused> {
    if crate::auth::valid_player_id(player) {
        return Ok(());
    }
    Err(Refused::api(
        StatusCode::BAD_REQUEST,
        "bad_player",
        "a player id is 1-64 characters of A-Z a-z 0-9 _ - .",
    ))
}

/// Which room control a route sends.
enum RoomAction {
    Pause,
    Resume,
    SetLimits(RoomLimits),
}

/// Sends `action` to `room` for `caller` (authorized already, before any body is read).
async fn control_room(
    console: &OperatorConsole,
    caller: Result<Caller, Refused>,
    room: &str,
    action: RoomAction,
) -> Response {
    let caller = match caller.and_then(|caller| known_room(console, room).map(|()| caller)) {
        Ok(caller) => caller,
        Err(refused) => return refused.into_response(),
    };
    let controller = &console.admin.controller;
    let operator = caller.operator.as_str();
    let outcome: Result<ControlOutcome, AdminError> = match action {
        RoomAction::Pause => controller.pause_room(room, operator).await,
        RoomAction::Resume => controller.resume_room(room, operator).await,
        RoomAction::SetLimits(limits) => controller.set_room_limits(room, operator, limits).await,
    };
    answer(outcome)
}

/// `POST /api/admin/rooms/{room}/pause`: the room finishes its round, then opens none.
async fn pause_room(
    State(console): Console,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    let caller = Caller::of(&console, peer, &headers, true);
    control_room(&console, caller, &room, RoomAction::Pause).await
}

/// `POST /api/admin/rooms/{room}/resume`: betting opens again.
async fn resume_room(
    State(console): Console,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    let caller = Caller::of(&console, peer, &headers, true);
    control_room(&console, caller, &room, RoomAction::Resume).await
}

/// `PUT /api/admin/rooms/{room}/limits` with `RoomLimits` as JSON: from the next round.
async fn set_room_limits(
    State(console): Console,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = match Caller::of(&console, peer, &headers, true) {
        Ok(caller) => caller,
        Err(refused) => return refused.into_response(),
    };
    let limits = match limits_of(body).await {
        Ok(limits) => limits,
        Err(refused) => return refused.into_response(),
    };
    let action = RoomAction::SetLimits(limits);
    control_room(&console, Ok(caller), &room, action).await
}

/// The limits a body asks for: bounded, JSON of the three fields, sane.
async fn limits_of(body: Body) -> Result<RoomLimits, Refused> {
    let Ok(bytes) = axum::body::to_bytes(body, LIMITS_BODY_BYTES_MAX).await else {
        return Err(Refused::api(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "body too large",
        ));
    };
    let limits = serde_json::from_slice::<RoomLimits>(&bytes).map_err(|_| {
        Refused::api(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected {\"bet_amount_min_minor\": N, \"bet_amount_max_minor\": N, \
             \"round_profit_max_minor\": N}, integers in minor units",
        )
    })?;
    match limits.insane_because() {
        None => Ok(limits),
        Some(reason) => Err(Refused::api(
            StatusCode::BAD_REQUEST,
            "invalid_limits",
            reason,
        )),
    }
}

/// A player's record as the console shows it: the ledger's, and whether this gateway
/// holds the player banned and muted.
#[derive(Serialize)]
struct PlayerView {
    #[serde(flatten)]
    record: PlayerRecord,
    banned: bool,
    muted: bool,
}

/// `GET /api/admin/players/{player}`: balance and last bets; 404 for a player the
/// ledger has neither money nor bets of.
async fn player_record(
    State(console): Console,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(player): Path<String>,
    headers: HeaderMap,
) -> Response {
    let allowed = Caller::of(&console, peer, &headers, false).and_then(|_| valid_player(&player));
    if let Err(refused) = allowed {
        return refused.into_response();
    }
    let record = match admin::player_record(console.ledger.as_ref(), &player).await {
        Ok(record) => record,
        Err(error) => return admin_error(&error),
    };
    if record.balance_minor == 0 && record.bets.is_empty() {
        return api_error(
            StatusCode::NOT_FOUND,
            "unknown_player",
            "the ledger has no money and no bets of this player",
        );
    }
    let limits = &console.admin.limits;
    let (banned, muted) = (limits.bans.contains(&player), limits.is_muted(&player));
    Json(PlayerView {
        record,
        banned,
        muted,
    })
    .into_response()
}

/// What a player route does (POST unless said):
/// - `/kick`: every socket of the player closed (4004);
/// - `/ban`: sockets closed (4005), token refused; DELETE: the token admitted again;
/// - `/mute`: chat refused (error `muted`), sockets kept; DELETE: chat taken again.
#[derive(Clone, Copy)]
enum Sanction {
    Kick,
    /// The restriction imposed (`true`) or lifted.
    Restrict(Restriction, bool),
}

async fn sanction_player(
    console: &OperatorConsole,
    (peer, headers): (SocketAddr, &HeaderMap),
    player: &str,
    sanction: Sanction,
) -> Response {
    let allowed = Caller::of(console, peer, headers, true);
    let caller = match allowed.and_then(|caller| valid_player(player).map(|()| caller)) {
        Ok(caller) => caller,
        Err(refused) => return refused.into_response(),
    };
    let admin = &console.admin;
    let (bus, ledger, limits) = (
        admin.bus.as_ref(),
        console.ledger.as_ref(),
        admin.limits.as_ref(),
    );
    let operator = caller.operator.as_str();
    let outcome = match sanction {
        Sanction::Kick => admin::kick_player(bus, ledger, limits, player, operator).await,
        Sanction::Restrict(restriction, restricted) => {
            let (who, what) = ((player, operator), (restriction, restricted));
            admin::set_restriction(bus, ledger, limits, who, what).await
        }
    };
    answer(outcome)
}

#[derive(Deserialize)]
struct AuditQuery {
    limit: Option<String>,
}

/// `GET /api/admin/audit?limit=N`: the newest N entries (1 to `AUDIT_ENTRIES_MAX`,
/// default [`AUDIT_ENTRIES_DEFAULT`]), newest first.
async fn audit_trail(
    State(console): Console,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<AuditQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = Caller::of(&console, peer, &headers, false) {
        return refused.into_response();
    }
    let limit = match query.limit.as_deref() {
        None => Some(AUDIT_ENTRIES_DEFAULT),
        Some(text) => crate::protocol::parse_decimal(text)
            .and_then(|limit| usize::try_from(limit).ok())
            .filter(|limit| (1..=AUDIT_ENTRIES_MAX).contains(limit)),
    };
    let Some(limit) = limit else {
        let message = format!("limit is a whole number from 1 to {AUDIT_ENTRIES_MAX}");
        return api_error(StatusCode::BAD_REQUEST, "bad_limit", &message);
    };
    answer(admin::audit_trail(console.ledger.as_ref(), limit).await)
}

//! The operator routes, on the player port of every gateway: the dashboard page, the
//! console session, the admin API and the operator socket's handshake. See [`super::guard`]
//! for who may call them; every response carries the same security headers as the
//! player routes (`http::security_headers`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::OperatorConsole;
use super::auth::SESSION_COOKIE;
use super::frames::RoomReport;
use super::guard::{self, Accepts};
use super::house::{HouseFigures, house_figures};
use crate::http::{api_error, origin_allowed};

/// Largest login body read, in bytes: `{"token": "...", "operator": "..."}` with a long
/// token.
pub const LOGIN_BODY_BYTES_MAX: usize = 1_024;

/// The cookie's path: it must reach `/api/operator/` (session, socket) and `/api/admin/`.
const COOKIE_PATH: &str = "/api";

type Console = State<Arc<OperatorConsole>>;

/// The operator routes of a shard.
pub fn router(console: Arc<OperatorConsole>) -> axum::Router {
    axum::Router::new()
        .route("/dashboard", get(dashboard))
        .route(
            "/api/operator/session",
            get(session).post(login).delete(logout),
        )
        .route("/api/operator/ws", get(super::socket::upgrade))
        .route("/api/admin/rooms", get(admin_rooms))
        .merge(super::admin_routes::routes())
        .layer(axum::middleware::from_fn(refuse_token_in_url))
        .layer(axum::middleware::map_response(
            crate::http::security_headers,
        ))
        .with_state(console)
}

/// A token in the query string is refused on every operator route, before anything else.
async fn refuse_token_in_url(request: Request, next: Next) -> Response {
    if guard::token_in_query(request.uri().query()) {
        return guard::token_in_url();
    }
    next.run(request).await
}

async fn dashboard() -> Response {
    crate::http::embedded_file("operator/index.html")
}

#[derive(Deserialize)]
struct Login {
    token: String,
    /// Who logs in, for the audit (`auth::valid_operator_name`).
    operator: String,
}

#[derive(Serialize)]
struct SessionState {
    /// Unix seconds.
    expires_at: u64,
    operator: String,
}

/// What a login body must be.
const LOGIN_EXPECTED: &str = "expected {\"token\": \"...\", \"operator\": \"your name\"} \
     (the name: 1-64 characters of A-Z a-z 0-9 _ - .)";

/// `POST /api/operator/session` `{"token": "...", "operator": "..."}`: the session cookie
/// for the right token (from an allowed Origin), naming the operator; 400 for a body
/// without a valid name, 401 for a wrong token, 429 after too many.
async fn login(
    State(console): Console,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let keys = match guard::keys(&console) {
        Ok(keys) => keys,
        Err(refused) => return refused.into_response(),
    };
    if !origin_allowed(&headers, &console.allowed_origins) {
        return api_error(StatusCode::FORBIDDEN, "origin", "origin not allowed");
    }
    let Ok(bytes) = axum::body::to_bytes(body, LOGIN_BODY_BYTES_MAX).await else {
        return api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "body too large",
        );
    };
    let login = serde_json::from_slice::<Login>(&bytes).ok();
    let Some(login) = login.filter(|login| super::auth::valid_operator_name(&login.operator))
    else {
        return api_error(StatusCode::BAD_REQUEST, "bad_request", LOGIN_EXPECTED);
    };
    if let Err(refused) = guard::check_token(&console, keys, &login.token, peer.ip()) {
        return refused.into_response();
    }
    let ttl_seconds = console.config.session_ttl_seconds;
    let expires_at = crate::clock::unix_now_ms() / 1000 + ttl_seconds;
    let secure = forwarded_over_https(&headers);
    let cookie = session_cookie(&keys.sign(expires_at, &login.operator), ttl_seconds, secure);
    tracing::info!(%peer, operator = login.operator, "operator logged in");
    let state = SessionState {
        expires_at,
        operator: login.operator,
    };
    with_cookie(Json(state).into_response(), &cookie)
}

/// `GET /api/operator/session`: whether the cookie is a valid session (for the page).
async fn session(
    State(console): Console,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match guard::authorize(&console, &headers, peer.ip(), Accepts::Cookie) {
        Ok(session) => Json(SessionState {
            expires_at: session.expires_at_seconds,
            operator: session.operator,
        })
        .into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// `DELETE /api/operator/session`: expires the cookie.
async fn logout(headers: HeaderMap) -> Response {
    let cookie = session_cookie("", 0, forwarded_over_https(&headers));
    with_cookie(StatusCode::NO_CONTENT.into_response(), &cookie)
}

/// The `Set-Cookie` value: HttpOnly (no script reads it), SameSite=Strict (no other site's
/// page sends it), on [`COOKIE_PATH`]; `Secure` when the request came over HTTPS.
fn session_cookie(value: &str, max_age_seconds: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={value}; Path={COOKIE_PATH}; Max-Age={max_age_seconds}; HttpOnly; \
         SameSite=Strict{secure}"
    )
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    let value = HeaderValue::from_str(cookie).expect("cookie values are hex and digits");
    response.headers_mut().insert(header::SET_COOKIE, value);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Whether a TLS-terminating proxy says the request came over HTTPS.
fn forwarded_over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"https"))
}

#[derive(Serialize)]
struct AdminRooms {
    rooms: Vec<RoomReport>,
    house: Vec<HouseFigures>,
}

/// `GET /api/admin/rooms` (cookie or Bearer): every room as this gateway follows it, and
/// the house's figures read from the ledger now.
async fn admin_rooms(
    State(console): Console,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = guard::authorize(&console, &headers, peer.ip(), Accepts::CookieOrBearer) {
        return refused.into_response();
    }
    let mut house = Vec::with_capacity(console.rooms.len());
    for room in &console.rooms {
        match house_figures(console.ledger.as_ref(), room, console.house_edge_bp, 0).await {
            Ok((figures, _)) => house.push(figures),
            Err(error) => {
                tracing::error!(%error, "admin rooms: ledger unavailable");
                return api_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "internal",
                    "ledger unavailable",
                );
            }
        }
    }
    let rooms = console.feed.rooms();
    Json(AdminRooms { rooms, house }).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::feed::{Feed, RoomRules};
    use axum::http::Request;
    use tower::ServiceExt;

    #[tokio::test]
    async fn without_an_operator_token_every_operator_route_is_off() {
        let config = crate::Config::default();
        assert!(config.operator.token.is_empty());
        let rules = RoomRules {
            cap_minor: 1_000,
            growth_per_ms_millionths: 60,
        };
        let feed = Arc::new(Feed::new(&config.rooms, rules, 16));
        let ledger = Arc::new(crate::ledger::SqliteLedger::open_in_memory().unwrap());
        let shutdown = tokio_util::sync::CancellationToken::new();
        let bus: Arc<dyn crate::bus::Bus> = Arc::new(crate::bus::MemoryBus::default());
        let (controller, _reader) =
            crate::admin::RoomController::open(bus.clone(), "gw", shutdown.clone())
                .await
                .unwrap();
        let admin = super::super::AdminReach {
            controller,
            bus,
            limits: Arc::new(crate::admission::ConnectionLimits::new(&config.limits)),
        };
        let console = Arc::new(OperatorConsole::new(
            &config,
            (feed, ledger),
            admin,
            shutdown,
        ));
        let routes = [
            ("GET", "/api/operator/session"),
            ("POST", "/api/operator/session"),
            ("GET", "/api/admin/rooms"),
            ("GET", "/api/operator/ws"),
            ("POST", "/api/admin/rooms/main/pause"),
            ("PUT", "/api/admin/rooms/main/limits"),
            ("GET", "/api/admin/players/p1"),
            ("DELETE", "/api/admin/players/p1/ban"),
            ("POST", "/api/admin/players/p1/mute"),
            ("DELETE", "/api/admin/players/p1/mute"),
            ("GET", "/api/admin/audit"),
        ];
        for (method, path) in routes {
            let mut request = Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", "Bearer x")
                .body(Body::from(r#"{"token":"x"}"#))
                .unwrap();
            let peer = SocketAddr::from(([127, 0, 0, 1], 1));
            request.extensions_mut().insert(ConnectInfo(peer));
            let response = router(console.clone()).oneshot(request).await.unwrap();
            assert_eq!(response.status(), 503, "{method} {path}");
            let body = axum::body::to_bytes(response.into_body(), 1_024)
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["code"], "operator_disabled");
            assert!(body["message"].as_str().unwrap().contains("operator.token"));
        }
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_covers_the_api() {
        let cookie = session_cookie("123.ab", 60, false);
        assert_eq!(
            cookie,
            "aloft_operator=123.ab; Path=/api; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        assert!(session_cookie("", 0, true).ends_with("; Secure"));
    }
}

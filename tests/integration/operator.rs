//! The operator console against a real embedded server: login with the operator token
//! (right, wrong, missing, too often), the session cookie's flags, logout, expired and
//! forged cookies, no token in a URL ever, the admin API with a Bearer token, and the
//! operator socket: refused without a session, then a snapshot and live events (a
//! player's bet, a round's crash), and the cluster panel of an embedded server (one
//! engine leading the room, one gateway, the ack latency of a bet).

use std::time::Duration;

use crate::common::{self, TestApp, http_response, next_json, send};
use aloft::operator::auth::SessionKeys;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TOKEN: &str = "operator-token-for-the-tests-0123456789";

async fn console() -> TestApp {
    TestApp::start_with(|config| config.operator.token = TOKEN.into()).await
}

/// A POST of `body` (JSON) to `path`: (status, Set-Cookie, JSON body).
async fn post(app: &TestApp, path: &str, body: &Value) -> (u16, Option<String>, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(common::HTTP_WAIT_SECONDS))
        .build()
        .unwrap();
    let response = client
        .post(format!("http://{}{path}", app.addr))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let cookie = response
        .headers()
        .get("set-cookie")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null);
    (status, cookie, body)
}

/// Logs in; the `name=value` part of the session cookie.
async fn log_in(app: &TestApp) -> String {
    let login = json!({"token": TOKEN, "operator": "ops"});
    let (status, cookie, _) = post(app, "/api/operator/session", &login).await;
    assert_eq!(status, 200);
    cookie.unwrap().split(';').next().unwrap().to_owned()
}

/// GET `path` with `headers`: (status, JSON body).
async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let response = http_response(app.addr, "GET", path, headers).await;
    let body = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    (response.status, body)
}

#[tokio::test]
async fn the_right_token_gets_a_strict_http_only_session_cookie() {
    let app = console().await;
    let login = json!({"token": TOKEN, "operator": "ada"});
    let (status, cookie, body) = post(&app, "/api/operator/session", &login).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["operator"], "ada");
    let cookie = cookie.expect("a Set-Cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/api", "Max-Age=43200"] {
        assert!(
            cookie.split("; ").any(|part| part == flag),
            "{flag} in {cookie}"
        );
    }
    assert!(cookie.starts_with("aloft_operator="), "{cookie}");
    let session = cookie.split(';').next().unwrap();
    let (status, body) = get(&app, "/api/operator/session", &[("cookie", session)]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["expires_at"].as_u64().unwrap() > 0);
    assert_eq!(body["operator"], "ada", "the cookie names its operator");
    // The answers carry the same security headers as the player routes.
    let page = http_response(app.addr, "GET", "/dashboard", &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("operator/dashboard.js"));
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("script-src 'self'")
    );
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_refused() {
    let app = console().await;
    let wrong = format!("{TOKEN}x");
    let login = json!({"token": wrong, "operator": "ops"});
    let (status, cookie, body) = post(&app, "/api/operator/session", &login).await;
    assert_eq!((status, cookie), (401, None));
    assert_eq!(body["code"], "operator_token_invalid");
    // A login names its operator, with a name fit for the audit.
    for login in [
        json!({}),
        json!({"token": TOKEN}),
        json!({"token": TOKEN, "operator": ""}),
        json!({"token": TOKEN, "operator": "a b"}),
        json!({"token": TOKEN, "operator": "x".repeat(65)}),
    ] {
        let (status, cookie, body) = post(&app, "/api/operator/session", &login).await;
        assert_eq!((status, cookie), (400, None), "{login}");
        assert!(
            body["message"].as_str().unwrap().contains("operator"),
            "{body}"
        );
    }
    let (status, body) = get(&app, "/api/operator/session", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "operator_auth_required");
}

#[tokio::test]
async fn a_token_in_the_url_is_never_read() {
    let app = console().await;
    let query = format!("?token={TOKEN}");
    for path in [
        "/api/admin/rooms",
        "/api/operator/session",
        "/api/operator/ws",
    ] {
        let (status, body) = get(&app, &format!("{path}{query}"), &[]).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["code"], "operator_token_in_url", "{path}");
    }
    let path = format!("/api/operator/session{query}");
    let login = json!({"token": TOKEN, "operator": "ops"});
    let (status, cookie, _) = post(&app, &path, &login).await;
    assert_eq!((status, cookie), (400, None));
}

#[tokio::test]
async fn the_admin_api_takes_a_bearer_token_or_the_cookie_and_nothing_else() {
    let app = console().await;
    let (status, body) = get(&app, "/api/admin/rooms", &[]).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "operator_auth_required");
    let wrong = format!("Bearer {TOKEN}x");
    let (status, body) = get(&app, "/api/admin/rooms", &[("authorization", &wrong)]).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "operator_token_invalid");
    let bearer = format!("Bearer {TOKEN}");
    let (status, rooms) = get(&app, "/api/admin/rooms", &[("authorization", &bearer)]).await;
    assert_eq!(status, 200, "{rooms}");
    assert_eq!(rooms["rooms"][0]["room"], "main");
    assert!(rooms["rooms"][0]["risk"]["cap_minor"].as_i64().unwrap() > 0);
    let house = &rooms["house"][0];
    assert_eq!(house["room"], "main");
    let edge = i64::from(app.config.fair.house_edge_bp);
    assert_eq!(house["target_rtp_bp"], 10_000 - edge);
    assert!(house["last_1000"]["rounds"].is_u64());
    // The cookie works on the admin API too; the Bearer token is no session.
    let cookie = log_in(&app).await;
    let (status, _) = get(&app, "/api/admin/rooms", &[("cookie", &cookie)]).await;
    assert_eq!(status, 200);
    let (status, _) = get(&app, "/api/operator/session", &[("authorization", &bearer)]).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn logout_expires_the_cookie() {
    let app = console().await;
    let response = http_response(app.addr, "DELETE", "/api/operator/session", &[]).await;
    assert_eq!(response.status, 204);
    let cookie = response.header("set-cookie").unwrap();
    assert!(cookie.starts_with("aloft_operator=;"), "{cookie}");
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
}

#[tokio::test]
async fn an_expired_forged_or_foreign_cookie_is_refused() {
    let app = console().await;
    let now_seconds = aloft::clock::unix_now_ms() / 1000;
    let expired = format!(
        "aloft_operator={}",
        SessionKeys::new(TOKEN).sign(now_seconds - 1, "ops")
    );
    let (status, body) = get(&app, "/api/operator/session", &[("cookie", &expired)]).await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "operator_session_expired");
    let foreign_keys = SessionKeys::new("another-token-another-token-another-token");
    let foreign = format!(
        "aloft_operator={}",
        foreign_keys.sign(now_seconds + 600, "ops")
    );
    let valid = log_in(&app).await;
    let (_, value) = valid.split_once('=').unwrap();
    let (_, digest) = value.rsplit_once('.').unwrap();
    let extended = format!("aloft_operator={}.ops.{digest}", now_seconds + 999_999);
    // A cookie of the format before operator names: `{expiry}.{mac}`.
    let old_format = format!("aloft_operator={}.{digest}", now_seconds + 600);
    for forged in [
        foreign.as_str(),
        &extended,
        &old_format,
        "aloft_operator=1.00",
    ] {
        let (status, body) = get(&app, "/api/admin/rooms", &[("cookie", forged)]).await;
        assert_eq!(status, 401, "{forged}");
        assert_eq!(body["code"], "operator_session_invalid", "{forged}");
    }
}

#[tokio::test]
async fn failed_logins_are_limited_per_address() {
    let app = TestApp::start_with(|config| {
        config.operator.token = TOKEN.into();
        config.operator.login_failures_per_minute_max = 3;
    })
    .await;
    let wrong = json!({"token": "not-the-operator-token-not-the-operator", "operator": "x"});
    for _ in 0..3 {
        let (status, _, _) = post(&app, "/api/operator/session", &wrong).await;
        assert_eq!(status, 401);
    }
    // Even the right token waits now: it is not compared at all.
    let login = json!({"token": TOKEN, "operator": "ops"});
    let (status, cookie, body) = post(&app, "/api/operator/session", &login).await;
    assert_eq!((status, cookie), (429, None));
    assert_eq!(body["code"], "operator_rate_limited");
    let bearer = format!("Bearer {TOKEN}");
    let (status, _) = get(&app, "/api/admin/rooms", &[("authorization", &bearer)]).await;
    assert_eq!(status, 429);
}

type OperatorSocket = common::Socket;

/// The operator socket with `cookie` (none: no Cookie header).
async fn operator_socket(
    app: &TestApp,
    cookie: Option<&str>,
) -> Result<OperatorSocket, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{}/api/operator/ws", app.addr)
        .into_client_request()
        .unwrap();
    if let Some(cookie) = cookie {
        request
            .headers_mut()
            .insert("cookie", cookie.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

/// Operator frames until one of type `t` that satisfies `wanted`.
async fn next_operator_frame(
    socket: &mut OperatorSocket,
    t: &str,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    loop {
        let frame = next_json(socket).await;
        if frame["t"] == t && wanted(&frame) {
            return frame;
        }
    }
}

#[tokio::test]
async fn the_operator_socket_needs_a_session_then_streams_the_rooms() {
    let app = console().await;
    let refused = operator_socket(&app, None).await.unwrap_err();
    let tokio_tungstenite::tungstenite::Error::Http(response) = refused else {
        panic!("expected an HTTP refusal, got {refused}");
    };
    assert_eq!(response.status(), 401);
    let forged = operator_socket(&app, Some("aloft_operator=1.00")).await;
    assert!(forged.is_err());

    let cookie = log_in(&app).await;
    let mut socket = operator_socket(&app, Some(&cookie)).await.unwrap();
    let snapshot = next_json(&mut socket).await;
    assert_eq!(snapshot["t"], "snapshot", "{snapshot}");
    assert_eq!(snapshot["rooms"][0]["room"], "main");
    assert!(snapshot["growth_per_ms_millionths"].as_u64().unwrap() > 0);

    // A player bets in the next betting phase: the console sees the bet.
    let (mut player_socket, player, _, _) = app.player().await;
    let betting = next_operator_frame(&mut socket, "phase", |f| f["phase"] == "betting").await;
    let round = betting["round"].as_u64().unwrap();
    let bet = json!({"t": "bet", "req": "b1", "amount": 250, "slot": 0});
    send(&mut player_socket, bet).await;
    let seen = next_operator_frame(&mut socket, "bet", |f| f["player"] == player).await;
    assert_eq!(
        (seen["round"].as_u64(), seen["stake_minor"].as_i64()),
        (Some(round), Some(250))
    );
    let tick = next_operator_frame(&mut socket, "tick", |f| f["risk"]["bets"] == 1).await;
    assert_eq!(tick["risk"]["staked_minor"], 250);
    let crash = next_operator_frame(&mut socket, "crash", |f| f["round"] == round).await;
    assert!(crash["multiplier_hundredths"].as_u64().unwrap() >= 100);
    assert_eq!(crash["risk"]["staked_minor"], 250);
    // And the next round's settlement moves the house's figures.
    let house = next_operator_frame(&mut socket, "house", |_| true).await;
    assert!(
        house["house"][0]["last_100"]["wagered_minor"]
            .as_i64()
            .unwrap()
            >= 250
    );
    // The traffic counts this gateway's player socket, from its status report.
    let traffic = next_operator_frame(&mut socket, "traffic", |_| true).await;
    assert_eq!(
        (
            traffic["gateways"].as_u64(),
            traffic["connections"].as_u64()
        ),
        (Some(1), Some(1))
    );
    drop(player_socket);
    // Logging out ends nothing server-side, but the server's shutdown closes the socket.
    let mut app = app;
    app.stop().await;
    let closed = common::close_code(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(closed, Some(1001));
}

#[tokio::test]
async fn the_console_shows_the_embedded_engine_leading_the_room_and_the_gateway() {
    let app = console().await;
    let cookie = log_in(&app).await;
    let mut socket = operator_socket(&app, Some(&cookie)).await.unwrap();
    let snapshot = next_json(&mut socket).await;
    assert_eq!(
        snapshot["cluster"]["rooms"][0]["room"], "main",
        "{snapshot}"
    );
    let led = |frame: &Value| frame["rooms"][0]["engine"].is_string();
    let cluster = next_operator_frame(&mut socket, "cluster", led).await;
    let engines = cluster["engines"].as_array().unwrap();
    let gateways = cluster["gateways"].as_array().unwrap();
    assert_eq!((engines.len(), gateways.len()), (1, 1), "{cluster}");
    assert_eq!(engines[0]["alive"], true);
    assert_eq!(engines[0]["rooms"], json!(["main"]));
    assert_eq!(gateways[0]["alive"], true);
    assert!(gateways[0]["connections_per_shard"].is_array());
    let main = &cluster["rooms"][0];
    assert_eq!(main["engine"], engines[0]["engine"]);
    // Decimal text (any u64); no lease, so no fencing token, in `aloft serve`.
    assert!(
        main["epoch"].as_str().unwrap().parse::<u64>().is_ok(),
        "{main}"
    );
    assert_eq!(main["fencing_token"], Value::Null);
    assert_eq!(cluster["failovers"], json!([]));
    assert_eq!(cluster["stale_after_ms"], aloft::status::STATUS_STALE_MS);

    // A bet's acknowledgement shows in the traffic's ack latency.
    let (mut player_socket, _, _, _) = app.player().await;
    next_operator_frame(&mut socket, "phase", |f| f["phase"] == "betting").await;
    let bet = json!({"t": "bet", "req": "b1", "amount": 100, "slot": 0});
    send(&mut player_socket, bet).await;
    let acked = |frame: &Value| frame["ack_p99_us"].is_u64();
    let traffic = next_operator_frame(&mut socket, "traffic", acked).await;
    let (p50, p99) = (
        traffic["ack_p50_us"].as_u64(),
        traffic["ack_p99_us"].as_u64(),
    );
    assert!(p50.unwrap() <= p99.unwrap(), "{traffic}");
    assert_eq!(traffic["connections"], 1);
}

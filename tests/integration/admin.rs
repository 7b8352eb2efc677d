//! The admin API over HTTP against a real embedded server: every route refuses a request
//! without the operator's credentials and bad input; a paused room finishes its round,
//! opens no other until resumed; new limits hold from the next round; a kicked player's
//! sockets close with 4004; a ban closes them with 4005 and refuses the token at `/ws`
//! and at first-message auth, survives a restart, and is lifted by an unban; a mute keeps
//! the player's sockets open, shows in the player's record, survives a restart and is
//! lifted by an unmute; the audit lists each action with its operator and before/after.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::timeout;

use crate::common::{self, Socket, TestApp, close_code, next_matching, open_socket, send};

const TOKEN: &str = "operator-token-for-the-admin-tests-0123";

/// Longer than a fast round (betting 800 ms, a flight of a few seconds at most here).
const ROUND_WAIT: Duration = Duration::from_secs(30);

/// Every admin route as (method, path).
const ROUTES: [(&str, &str); 10] = [
    ("POST", "/api/admin/rooms/main/pause"),
    ("POST", "/api/admin/rooms/main/resume"),
    ("PUT", "/api/admin/rooms/main/limits"),
    ("GET", "/api/admin/players/p1"),
    ("POST", "/api/admin/players/p1/kick"),
    ("POST", "/api/admin/players/p1/ban"),
    ("DELETE", "/api/admin/players/p1/ban"),
    ("POST", "/api/admin/players/p1/mute"),
    ("DELETE", "/api/admin/players/p1/mute"),
    ("GET", "/api/admin/audit"),
];

async fn console() -> TestApp {
    TestApp::start_with(|config| config.operator.token = TOKEN.into()).await
}

/// A request to `path` with `headers` and a JSON `body` (none: empty): (status, JSON).
async fn call(
    app: &TestApp,
    (method, path): (&str, &str),
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(common::HTTP_WAIT_SECONDS))
        .build()
        .unwrap();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, format!("http://{}{path}", app.addr));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// [`call`] as the operator `name`, with the Bearer token.
async fn admin(app: &TestApp, name: &str, route: (&str, &str), body: Option<&str>) -> (u16, Value) {
    let bearer = format!("Bearer {TOKEN}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("x-aloft-operator", name),
    ];
    call(app, route, &headers, body).await
}

fn is(t: &'static str) -> impl Fn(&Value) -> bool {
    move |frame: &Value| frame["t"] == t
}

#[tokio::test]
async fn every_admin_route_needs_the_operators_credentials() {
    let app = TestApp::start_with(|config| {
        config.operator.token = TOKEN.into();
        config.operator.login_failures_per_minute_max = 100;
    })
    .await;
    let wrong = format!("Bearer {TOKEN}x");
    for route in ROUTES {
        let (status, body) = call(&app, route, &[], None).await;
        assert_eq!(status, 401, "{route:?}: {body}");
        assert_eq!(body["code"], "operator_auth_required", "{route:?}");
        let (status, body) = call(&app, route, &[("authorization", &wrong)], None).await;
        assert_eq!(status, 401, "{route:?}: {body}");
        assert_eq!(body["code"], "operator_token_invalid", "{route:?}");
        let forged = [("cookie", "aloft_operator=1.ops.00")];
        let (status, _) = call(&app, route, &forged, None).await;
        assert_eq!(status, 401, "{route:?}");
    }
    // Nothing happened: the audit is empty.
    let (status, audit) = admin(&app, "ops", ("GET", "/api/admin/audit"), None).await;
    assert_eq!((status, audit), (200, json!([])));
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let app = console().await;
    let limits = ("PUT", "/api/admin/rooms/main/limits");
    for body in [
        "not json",
        "{}",
        r#"{"bet_amount_min_minor": 10, "bet_amount_max_minor": 500}"#,
        r#"{"bet_amount_min_minor": 1.5, "bet_amount_max_minor": 500, "round_profit_max_minor": 900}"#,
        r#"{"bet_amount_min_minor": "10", "bet_amount_max_minor": 500, "round_profit_max_minor": 900}"#,
    ] {
        let (status, error) = admin(&app, "ops", limits, Some(body)).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(error["code"], "bad_request", "{body}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("bet_amount_min_minor")
        );
    }
    let insane = r#"{"bet_amount_min_minor": 600, "bet_amount_max_minor": 500, "round_profit_max_minor": 900}"#;
    let (status, error) = admin(&app, "ops", limits, Some(insane)).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("invalid_limits"))
    );
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(2_000));
    let (status, _) = admin(&app, "ops", limits, Some(&huge)).await;
    assert_eq!(status, 413);
    for route in [
        ("POST", "/api/admin/rooms/nowhere/pause"),
        ("POST", "/api/admin/rooms/nowhere/resume"),
    ] {
        let (status, error) = admin(&app, "ops", route, None).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (404, Some("unknown_room"))
        );
    }
    let sane = r#"{"bet_amount_min_minor": 1, "bet_amount_max_minor": 500, "round_profit_max_minor": 900}"#;
    let (status, _) = admin(
        &app,
        "ops",
        ("PUT", "/api/admin/rooms/nowhere/limits"),
        Some(sane),
    )
    .await;
    assert_eq!(status, 404);
    for route in [
        ("GET", "/api/admin/players/a%20b"),
        ("POST", "/api/admin/players/a%20b/kick"),
        ("POST", "/api/admin/players/a%20b/ban"),
        ("POST", "/api/admin/players/a%20b/mute"),
        ("DELETE", "/api/admin/players/a%20b/mute"),
    ] {
        let (status, error) = admin(&app, "ops", route, None).await;
        assert_eq!((status, error["code"].as_str()), (400, Some("bad_player")));
    }
    let (status, error) = admin(&app, "ops", ("GET", "/api/admin/players/nobody"), None).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (404, Some("unknown_player"))
    );
    for query in ["0", "201", "x", "-1", ""] {
        let path = format!("/api/admin/audit?limit={query}");
        let (status, error) = admin(&app, "ops", ("GET", &path), None).await;
        assert_eq!(
            (status, error["code"].as_str()),
            (400, Some("bad_limit")),
            "{query}"
        );
    }
    let (status, error) = admin(&app, "a b", ("POST", "/api/admin/rooms/main/pause"), None).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (400, Some("bad_operator"))
    );
    // A change from another site's page is refused like a login from it.
    let bearer = format!("Bearer {TOKEN}");
    let foreign = [
        ("authorization", bearer.as_str()),
        ("origin", "https://evil.example"),
    ];
    let (status, _) = call(
        &app,
        ("POST", "/api/admin/rooms/main/pause"),
        &foreign,
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, audit) = admin(&app, "ops", ("GET", "/api/admin/audit"), None).await;
    assert_eq!((status, audit), (200, json!([])));
    assert_eq!(app.ledger().room_controls("main").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_room_finishes_its_round_opens_no_other_then_resumes_with_new_limits() {
    let app = console().await;
    let (mut socket, _, _, _) = app.player().await;
    let betting = timeout(ROUND_WAIT, next_matching(&mut socket, is("betting")))
        .await
        .unwrap();
    let round = betting["round"].as_u64().unwrap();

    let pause = ("POST", "/api/admin/rooms/main/pause");
    let (status, paused) = admin(&app, "ada", pause, None).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(
        (
            paused["before"]["paused"].as_bool(),
            paused["after"]["paused"].as_bool()
        ),
        (Some(false), Some(true))
    );
    assert_eq!(paused["from_round"], round + 1);
    let frame = timeout(ROUND_WAIT, next_matching(&mut socket, is("paused")))
        .await
        .unwrap();
    assert_eq!(frame["round"], round);
    // The round in betting flies and crashes; then nothing opens.
    let crash = timeout(ROUND_WAIT, next_matching(&mut socket, is("crash")))
        .await
        .unwrap();
    assert_eq!(crash["round"], round);
    let quiet = timeout(
        Duration::from_secs(3),
        next_matching(&mut socket, is("betting")),
    )
    .await;
    assert!(quiet.is_err(), "betting opened in a paused room: {quiet:?}");
    let (status, again) = admin(&app, "ada", pause, None).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (409, Some("already_paused"))
    );

    let limits = json!({"bet_amount_min_minor": 50, "bet_amount_max_minor": 5_000, "round_profit_max_minor": 100_000});
    let route = ("PUT", "/api/admin/rooms/main/limits");
    let (status, changed) = admin(&app, "bob", route, Some(&limits.to_string())).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["after"]["limits"], limits);
    let announced = timeout(ROUND_WAIT, next_matching(&mut socket, is("limits")))
        .await
        .unwrap();
    assert_eq!(
        (announced["min"].clone(), announced["max"].clone()),
        (json!(50), json!(5_000))
    );

    let (status, resumed) =
        admin(&app, "ada", ("POST", "/api/admin/rooms/main/resume"), None).await;
    assert_eq!(status, 200, "{resumed}");
    timeout(ROUND_WAIT, next_matching(&mut socket, is("resumed")))
        .await
        .unwrap();
    let next = timeout(
        Duration::from_secs(3),
        next_matching(&mut socket, is("betting")),
    )
    .await
    .expect("betting opens at once after a resume");
    assert_eq!(next["round"], round + 1);
    send(&mut socket, json!({"t": "bet", "req": "r2", "amount": 10})).await;
    let small = timeout(ROUND_WAIT, next_matching(&mut socket, is("bet_err")))
        .await
        .unwrap();
    assert_eq!(small["code"], "invalid_field", "the new minimum holds");
    send(&mut socket, json!({"t": "bet", "req": "r3", "amount": 50})).await;
    timeout(ROUND_WAIT, next_matching(&mut socket, is("bet_ok")))
        .await
        .unwrap();

    let (status, audit) = admin(&app, "ops", ("GET", "/api/admin/audit?limit=10"), None).await;
    assert_eq!(status, 200);
    let seen: Vec<(&str, &str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let text = |field: &str| entry[field].as_str().unwrap();
            (text("action"), text("operator"), text("target"))
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("resume_room", "ada", "main"),
            ("set_room_limits", "bob", "main"),
            ("pause_room", "ada", "main"),
        ]
    );
    assert_eq!(audit[1]["after"]["limits"], limits);
    assert_eq!(audit[2]["before"]["paused"], false);
    assert!(audit[0]["at_ms"].as_u64().unwrap() >= audit[2]["at_ms"].as_u64().unwrap());
}

/// Reads frames until the socket's close; its code.
async fn closed_with(socket: &mut Socket) -> Option<u16> {
    close_code(socket, Duration::from_secs(10)).await
}

/// The status and JSON `code` of a refused `/ws` handshake with `token`.
async fn refused_handshake(app: &TestApp, token: &str) -> (u16, String) {
    let url = format!("ws://{}/ws?token={token}", app.addr);
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let code = body["code"].as_str().unwrap_or_default().to_owned();
            (response.status().as_u16(), code)
        }
        other => panic!("expected a refused handshake, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kick_closes_the_players_sockets_and_a_ban_refuses_its_token_until_lifted() {
    let mut app = console().await;
    let (token, player, _) = app.guest().await;
    let mut first = app.connect(&token).await;
    let mut second = app.connect(&token).await;
    let (_, hello) = (
        common::next_json(&mut first).await,
        common::next_json(&mut second).await,
    );
    assert_eq!(hello["t"], "hello");
    let (mut bystander, _, _, _) = app.player().await;

    let (status, lookup) = admin(
        &app,
        "ops",
        ("GET", &format!("/api/admin/players/{player}")),
        None,
    )
    .await;
    assert_eq!(status, 200, "{lookup}");
    assert_eq!(
        (lookup["player"].as_str(), lookup["banned"].as_bool()),
        (Some(player.as_str()), Some(false))
    );
    assert!(lookup["balance_minor"].as_i64().unwrap() > 0);

    let kick = ("POST", &*format!("/api/admin/players/{player}/kick"));
    let (status, kicked) = admin(&app, "ada", kick, None).await;
    assert_eq!(status, 200, "{kicked}");
    assert_eq!(closed_with(&mut first).await, Some(4004));
    assert_eq!(closed_with(&mut second).await, Some(4004));
    // Only the player's sockets: the bystander still gets the room's frames.
    common::next_json(&mut bystander).await;
    let mut back = app.connect(&token).await;
    assert_eq!(
        common::next_json(&mut back).await["t"],
        "hello",
        "a kicked player comes back"
    );

    let ban_path = format!("/api/admin/players/{player}/ban");
    let (status, banned) = admin(&app, "ada", ("POST", &ban_path), None).await;
    assert_eq!(status, 200, "{banned}");
    assert_eq!(
        (banned["banned"].as_bool(), banned["was_banned"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(closed_with(&mut back).await, Some(4005));
    assert_eq!(
        refused_handshake(&app, &token).await,
        (403, "banned".to_owned())
    );
    let mut by_message = open_socket(app.addr, "").await;
    send(&mut by_message, json!({"t": "auth", "token": token})).await;
    assert_eq!(closed_with(&mut by_message).await, Some(4005));

    // The ban is stored: a restarted server refuses the token too.
    app.restart().await;
    assert_eq!(
        refused_handshake(&app, &token).await,
        (403, "banned".to_owned())
    );
    let (status, lookup) = admin(
        &app,
        "ops",
        ("GET", &format!("/api/admin/players/{player}")),
        None,
    )
    .await;
    assert_eq!((status, lookup["banned"].as_bool()), (200, Some(true)));

    let (status, lifted) = admin(&app, "bob", ("DELETE", &ban_path), None).await;
    assert_eq!(status, 200, "{lifted}");
    assert_eq!(
        (lifted["banned"].as_bool(), lifted["was_banned"].as_bool()),
        (Some(false), Some(true))
    );
    let mut admitted = app.connect(&token).await;
    assert_eq!(common::next_json(&mut admitted).await["t"], "hello");

    let (_, audit) = admin(&app, "ops", ("GET", "/api/admin/audit"), None).await;
    let seen: Vec<(&str, &str, &str, bool, bool)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            let text = |field: &str| entry[field].as_str().unwrap();
            let banned = |state: &str| entry[state]["banned"].as_bool().unwrap();
            (
                text("action"),
                text("operator"),
                text("target"),
                banned("before"),
                banned("after"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("unban_player", "bob", player.as_str(), true, false),
            ("ban_player", "ada", player.as_str(), false, true),
            ("kick_player", "ada", player.as_str(), false, false),
        ]
    );
}

/// The player's record as the admin API shows it: (banned, muted).
async fn sanctions_of(app: &TestApp, player: &str) -> (Option<bool>, Option<bool>) {
    let path = format!("/api/admin/players/{player}");
    let (status, lookup) = admin(app, "ops", ("GET", &path), None).await;
    assert_eq!(status, 200, "{lookup}");
    (lookup["banned"].as_bool(), lookup["muted"].as_bool())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mute_keeps_the_players_sockets_survives_a_restart_and_is_lifted_by_an_unmute() {
    let mut app = console().await;
    let (token, player, _) = app.guest().await;
    let mut socket = app.connect(&token).await;
    assert_eq!(common::next_json(&mut socket).await["t"], "hello");
    assert_eq!(
        sanctions_of(&app, &player).await,
        (Some(false), Some(false))
    );

    let mute_path = format!("/api/admin/players/{player}/mute");
    let (status, muted) = admin(&app, "ada", ("POST", &mute_path), None).await;
    assert_eq!(status, 200, "{muted}");
    let state = |outcome: &Value, field: &str| outcome[field].as_bool();
    assert_eq!(
        (state(&muted, "muted"), state(&muted, "was_muted")),
        (Some(true), Some(false))
    );
    assert_eq!(state(&muted, "banned"), Some(false), "a mute bans nobody");
    assert!(muted["gateways"].as_u64() >= Some(1), "{muted}");
    let (status, again) = admin(&app, "ada", ("POST", &mute_path), None).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(state(&again, "was_muted"), Some(true));
    assert_eq!(sanctions_of(&app, &player).await, (Some(false), Some(true)));
    // A muted player keeps playing: its socket stays open and gets the room's frames.
    let still_open = timeout(Duration::from_secs(3), closed_with(&mut socket)).await;
    assert!(
        still_open.is_err(),
        "a mute closed the socket: {still_open:?}"
    );
    let mut another = app.connect(&token).await;
    assert_eq!(common::next_json(&mut another).await["t"], "hello");
    // Its chat is refused (and not posted); its other requests are not.
    common::send(&mut another, json!({"t": "chat", "text": "hello?"})).await;
    let refused = common::next_matching(&mut another, is("error")).await;
    assert_eq!(refused["code"], "muted", "{refused}");

    // The mute is stored: a restarted server loads it.
    app.restart().await;
    assert_eq!(sanctions_of(&app, &player).await, (Some(false), Some(true)));
    let mut after_restart = app.connect(&token).await;
    common::send(&mut after_restart, json!({"t": "chat", "text": "still?"})).await;
    let refused = common::next_matching(&mut after_restart, is("error")).await;
    assert_eq!(refused["code"], "muted", "{refused}");

    let (status, lifted) = admin(&app, "bob", ("DELETE", &mute_path), None).await;
    assert_eq!(status, 200, "{lifted}");
    assert_eq!(
        (state(&lifted, "muted"), state(&lifted, "was_muted")),
        (Some(false), Some(true))
    );
    assert_eq!(
        sanctions_of(&app, &player).await,
        (Some(false), Some(false))
    );
    common::send(&mut after_restart, json!({"t": "chat", "text": "back"})).await;
    let posted = common::next_matching(&mut after_restart, |v| {
        v["t"] == "chat" || v["t"] == "error"
    })
    .await;
    assert_eq!(
        (posted["t"].as_str(), posted["text"].as_str()),
        (Some("chat"), Some("back"))
    );

    let (_, audit) = admin(&app, "ops", ("GET", "/api/admin/audit"), None).await;
    let seen: Vec<(&str, &str, bool, bool)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            assert_eq!(entry["target"], player.as_str());
            let muted = |state: &str| entry[state]["muted"].as_bool().unwrap();
            let text = |field: &str| entry[field].as_str().unwrap();
            (
                text("action"),
                text("operator"),
                muted("before"),
                muted("after"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("unmute_player", "bob", true, false),
            ("mute_player", "ada", true, true),
            ("mute_player", "ada", false, true),
        ]
    );
}

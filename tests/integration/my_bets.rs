//! `GET /api/me/bets`: a player's own bets with what settled them, for its token only.

use crate::common::{TestApp, http, next_matching, send};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_reads_its_own_bets_with_its_token_in_a_header_only() {
    let mut app = TestApp::start_with(|config| config.engine.betting_duration_ms = 3_000).await;
    let (token, player, granted) = app.guest().await;
    let mut socket = app.connect(&token).await;
    let betting = next_matching(&mut socket, |v| v["t"] == "betting").await;
    send(
        &mut socket,
        json!({"t": "bet", "req": "b1", "amount": 250, "slot": 1}),
    )
    .await;
    next_matching(&mut socket, |v| v["t"] == "bet_ok").await;

    let bearer = format!("Bearer {token}");
    let (status, body) = http(
        app.addr,
        "GET",
        "/api/me/bets",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mine: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(mine["player"], player.as_str());
    assert_eq!(mine["balance_minor"], granted - 250);
    let bet = &mine["bets"][0];
    assert_eq!(
        (bet["round"].clone(), bet["slot"].clone()),
        (betting["round"].clone(), json!(1))
    );
    assert_eq!(
        (bet["stake_minor"].as_i64(), bet["outcome"]["kind"].as_str()),
        (Some(250), Some("unsettled"))
    );

    let (status, body) = http(app.addr, "GET", "/api/me/bets", &[]).await;
    assert_eq!(status, 401);
    assert!(body.contains("token_required"), "{body}");
    let (status, body) = http(
        app.addr,
        "GET",
        "/api/me/bets",
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(status, 401);
    assert!(body.contains("bad_token"), "{body}");
    // A token in the URL is not read (URLs end up in logs).
    let in_url = format!("/api/me/bets?token={token}");
    assert_eq!(http(app.addr, "GET", &in_url, &[]).await.0, 401);
    app.stop().await;
}

//! A token sent as the first message instead of in the URL (URLs end up in proxy logs):
//! `/ws` without `token` upgrades, and the socket joins its room once its first message
//! is a valid `auth`; anything else first closes it with 4003.

use std::time::Duration;

use crate::common::{TestApp, next_json, next_matching, open_socket, send};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// Reads until the close frame; returns its code.
async fn close_code(socket: &mut crate::common::Socket) -> u16 {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a close in time");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(Message::Text(text))) => panic!("a frame before auth: {text}"),
            Some(Ok(_)) => continue,
            other => panic!("closed without a close code: {other:?}"),
        }
    }
}

/// Pause before connecting again for a snapshot with an epoch.
const EPOCH_RETRY_DELAY_MS: u64 = 20;
/// Connections tried before a snapshot must carry an epoch.
const EPOCH_ATTEMPTS_MAX: usize = 50;

/// A socket authenticated by its first message, and its snapshot. A shard that has seen
/// no event yet sends a snapshot without epoch (nothing to resume from): then it
/// connects again.
async fn joined_with_an_epoch(
    app: &TestApp,
    token: &str,
    player: &str,
    balance: i64,
) -> (crate::common::Socket, serde_json::Value) {
    for _ in 0..EPOCH_ATTEMPTS_MAX {
        let mut socket = open_socket(app.addr, "").await;
        send(&mut socket, json!({"t": "auth", "token": token})).await;
        let hello = next_json(&mut socket).await;
        assert_eq!(hello["t"], "hello");
        assert_eq!(hello["player"], player);
        assert_eq!(hello["balance"], balance);
        let snapshot = next_json(&mut socket).await;
        assert_eq!(snapshot["t"], "snapshot");
        if snapshot["epoch"].is_string() {
            return (socket, snapshot);
        }
        drop(socket);
        tokio::time::sleep(Duration::from_millis(EPOCH_RETRY_DELAY_MS)).await;
    }
    panic!("no snapshot with an epoch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_as_the_first_message_joins_like_a_url_token_and_resumes() {
    let mut app = TestApp::start().await;
    let (token, player, balance) = app.guest().await;
    let (mut socket, snapshot) = joined_with_an_epoch(&app, &token, &player, balance).await;
    // Served like any socket; a second auth is refused without closing.
    send(&mut socket, json!({"t": "auth", "token": token})).await;
    let error = next_matching(&mut socket, |v| v["t"] == "error").await;
    assert_eq!(error["code"], "invalid_field");
    let event = next_matching(&mut socket, |v| v["seq"].is_u64()).await;
    drop(socket);

    // Resuming keeps since and epoch in the URL.
    let position = format!(
        "since={}&epoch={}",
        event["seq"],
        snapshot["epoch"].as_str().unwrap()
    );
    let mut resumed = open_socket(app.addr, &position).await;
    send(&mut resumed, json!({"t": "auth", "token": token})).await;
    let hello = next_json(&mut resumed).await;
    assert_eq!(hello["t"], "hello");
    assert_eq!(hello["recovered"], true, "{hello}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anything_but_a_valid_auth_first_is_closed_with_4003() {
    let mut app = TestApp::start_with(|config| config.gateway.auth_timeout_ms = 1_000).await;
    let (token, ..) = app.guest().await;
    let firsts = [
        json!({"t": "ping"}),
        json!({"t": "bet", "req": "b1", "amount": 100}),
        json!({"t": "auth", "token": "forged.token.value"}),
        json!({"t": "auth"}),
        json!({"token": token}),
    ];
    for first in firsts {
        let mut socket = open_socket(app.addr, "").await;
        send(&mut socket, first.clone()).await;
        assert_eq!(close_code(&mut socket).await, 4003, "after {first}");
    }
    // Nothing at all within gateway.auth_timeout_ms (the sweep closes it).
    let mut silent = open_socket(app.addr, "").await;
    assert_eq!(close_code(&mut silent).await, 4003);
    app.stop().await;
}

//! Bad input gets a clear error frame or close code, and changes nothing else.

use crate::common::{TestApp, http, next_matching, send};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

async fn expect_close(socket: &mut crate::common::Socket, code: u16) {
    loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("close in time");
        match message {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), code, "{frame:?}");
                return;
            }
            Some(Ok(Message::Close(None))) | None => panic!("closed without code {code}"),
            Some(Ok(_)) => continue,
            Some(Err(error)) => panic!("socket error before close {code}: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_and_unknown_type_get_error_frames_and_the_socket_stays() {
    let mut app = TestApp::start().await;
    let (mut socket, player, hello, _) = app.player().await;
    socket.send(Message::text("{not json")).await.unwrap();
    let error = next_matching(&mut socket, |v| v["t"] == "error").await;
    assert_eq!(error["code"], "bad_json");
    send(&mut socket, json!({"t": "launch"})).await;
    let error = next_matching(&mut socket, |v| v["t"] == "error").await;
    assert_eq!(error["code"], "unknown_type");
    send(&mut socket, json!({"t": "bet", "req": "", "amount": 100})).await;
    let error = next_matching(&mut socket, |v| v["t"] == "error").await;
    assert_eq!(error["code"], "invalid_field");
    // Still served: a ping is answered.
    send(&mut socket, json!({"t": "ping"})).await;
    next_matching(&mut socket, |v| v["t"] == "pong").await;
    let balance = app
        .ledger()
        .balance(&aloft::ledger::Account::Player(player))
        .await
        .unwrap();
    assert_eq!(balance, hello["balance"].as_i64().unwrap());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_frame_closes_with_1003() {
    let mut app = TestApp::start().await;
    let (mut socket, ..) = app.player().await;
    socket.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    expect_close(&mut socket, u16::from(CloseCode::Unsupported)).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frame_closes_with_1009() {
    let mut app = TestApp::start().await;
    let (mut socket, ..) = app.player().await;
    let huge = "x".repeat(app.config.gateway.inbound_message_bytes_max + 1);
    socket.send(Message::text(huge)).await.unwrap();
    expect_close(&mut socket, u16::from(CloseCode::Size)).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_missing_token_is_refused_before_the_upgrade() {
    let mut app = TestApp::start().await;
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    let (status, body) = http(app.addr, "GET", "/ws?token=nope", &upgrade).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("bad_token"));
    // Without a token the socket upgrades and must authenticate by its first message
    // (tests/integration/auth_message.rs).
    let url = format!("ws://{}/ws?token=forged.token.value", app.addr);
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
    // A foreign browser origin is refused too.
    let (token, ..) = app.guest().await;
    let mut with_origin = upgrade.to_vec();
    with_origin.push(("Origin", "http://evil.example"));
    let (status, _) = http(app.addr, "GET", &format!("/ws?token={token}"), &with_origin).await;
    assert_eq!(status, 403);
    let (status, _) = http(
        app.addr,
        "GET",
        &format!("/ws?token={token}&room=nope"),
        &upgrade,
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_phase_insufficient_funds_and_replayed_request_change_nothing() {
    let mut app = TestApp::start().await;
    let (mut socket, player, hello, _) = app.player().await;
    let start_balance = hello["balance"].as_i64().unwrap();
    let account = aloft::ledger::Account::Player(player);

    // Wait for a flying phase: bets are refused then.
    next_matching(&mut socket, |v| v["t"] == "flying").await;
    send(
        &mut socket,
        json!({"t": "bet", "req": "late", "amount": 100}),
    )
    .await;
    let reply = next_matching(&mut socket, |v| v["req"] == "late").await;
    assert_eq!(reply["t"], "bet_err");
    assert_eq!(reply["code"], "wrong_phase");
    send(&mut socket, json!({"t": "cashout", "req": "nothing"})).await;
    let reply = next_matching(&mut socket, |v| v["req"] == "nothing").await;
    assert_eq!(reply["t"], "cashout_err");

    next_matching(&mut socket, |v| v["t"] == "betting").await;
    let too_much = start_balance + 1;
    let max = app.config.engine.bet_amount_max_minor;
    assert!(too_much <= max, "the stake limit would answer first");
    send(
        &mut socket,
        json!({"t": "bet", "req": "rich", "amount": too_much}),
    )
    .await;
    let reply = next_matching(&mut socket, |v| v["req"] == "rich").await;
    assert_eq!(reply["t"], "bet_err");
    assert_eq!(reply["code"], "insufficient_funds");
    assert_eq!(app.ledger().balance(&account).await.unwrap(), start_balance);

    send(
        &mut socket,
        json!({"t": "bet", "req": "once", "amount": 250, "slot": 1}),
    )
    .await;
    let first = next_matching(&mut socket, |v| v["req"] == "once").await;
    assert_eq!(first["t"], "bet_ok");
    send(
        &mut socket,
        json!({"t": "bet", "req": "once", "amount": 250, "slot": 1}),
    )
    .await;
    let replay = next_matching(&mut socket, |v| v["req"] == "once").await;
    assert_eq!(replay, first, "a replayed request gets the first reply");
    assert_eq!(
        app.ledger().balance(&account).await.unwrap(),
        start_balance - 250
    );
    send(
        &mut socket,
        json!({"t": "bet", "req": "again", "amount": 300, "slot": 1}),
    )
    .await;
    let taken = next_matching(&mut socket, |v| v["req"] == "again").await;
    assert_eq!(taken["code"], "slot_taken");
    assert_eq!(
        app.ledger().balance(&account).await.unwrap(),
        start_balance - 250
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_socket_is_closed_with_4002_and_one_answering_pings_stays() {
    let mut app = TestApp::start_with(|config| {
        config.gateway.ping_interval_ms = 500;
        config.gateway.idle_timeout_ms = 1_500;
    })
    .await;
    let (token, ..) = app.guest().await;
    // A raw client that completes the handshake and then never sends a byte.
    let mut silent = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        app.addr
    );
    tokio::io::AsyncWriteExt::write_all(&mut silent, request.as_bytes())
        .await
        .unwrap();
    let mut received = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut silent, &mut received),
    )
    .await
    .expect("the server closes a silent socket")
    .unwrap();
    // The close frame (opcode 0x88) carries 4002 (0x0FA2).
    let close_at = received
        .windows(4)
        .position(|w| w == [0x88, w[1], 0x0F, 0xA2]);
    assert!(
        close_at.is_some(),
        "no 4002 close frame in {} bytes",
        received.len()
    );

    // A tokio-tungstenite client answers pings while it reads, so it stays.
    let (mut socket, ..) = app.player().await;
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_millis(3_000) {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next())
            .await
            .unwrap();
        assert!(
            matches!(message, Some(Ok(Message::Text(_) | Message::Ping(_)))),
            "{message:?}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_gets_rate_limited_then_closed_with_1008() {
    let mut app = TestApp::start_with(|config| {
        config.gateway.inbound_messages_per_second_max = 5;
        config.gateway.inbound_messages_burst_max = 5;
        config.gateway.rate_limit_strikes_max = 20;
    })
    .await;
    let (mut socket, ..) = app.player().await;
    for _ in 0..40 {
        socket.send(Message::text(r#"{"t":"ping"}"#)).await.unwrap();
    }
    let limited = next_matching(&mut socket, |v| v["t"] == "error").await;
    assert_eq!(limited["code"], "rate_limited");
    expect_close(&mut socket, u16::from(CloseCode::Policy)).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cashout_reusing_its_bets_req_is_a_cashout_not_a_replay() {
    let mut app = TestApp::start().await;
    let (mut socket, player, hello, _) = app.player().await;
    let start_balance = hello["balance"].as_i64().unwrap();
    let account = aloft::ledger::Account::Player(player);
    // A round may crash at 1.00x, before any cashout: then the next round is tried.
    for attempt in 0..5 {
        let req = format!("same-{attempt}");
        next_matching(&mut socket, |v| v["t"] == "betting").await;
        send(&mut socket, json!({"t": "bet", "req": req, "amount": 250})).await;
        let bet = next_matching(&mut socket, |v| v["req"] == req.as_str()).await;
        assert_eq!(bet["t"], "bet_ok", "{bet}");
        next_matching(&mut socket, |v| v["t"] == "flying").await;
        send(&mut socket, json!({"t": "cashout", "req": req})).await;
        let cashout = next_matching(&mut socket, |v| v["req"] == req.as_str()).await;
        match cashout["t"].as_str() {
            Some("cashout_ok") => {
                let win = cashout["win"].as_i64().unwrap();
                let balance = app.ledger().balance(&account).await.unwrap();
                assert_eq!(cashout["balance"].as_i64().unwrap(), balance);
                assert_eq!(balance, bet["balance"].as_i64().unwrap() + win);
                assert!(balance > start_balance - 250 * (attempt + 1));
                app.stop().await;
                return;
            }
            Some("cashout_err") => assert_eq!(cashout["code"], "too_late", "{cashout}"),
            _ => panic!("the cashout got another request's reply: {cashout}"),
        }
    }
    panic!("five rounds in a row crashed before a cashout");
}

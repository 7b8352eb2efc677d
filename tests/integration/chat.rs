//! Room chat and display names on a real server: a message reaches every socket of the
//! room, the sender's included, with its display name; bad text, an over-rate player
//! and bad names are refused with an error frame and the socket stays open; the last
//! 50 messages come with the snapshot; a picked name shows in the public bet list and
//! is stored (unique by key, kept across a restart).

use crate::common::{TestApp, next_json, next_matching, send};
use aloft::chat::CHAT_HISTORY_MESSAGES_MAX;
use serde_json::{Value, json};

fn is_chat(v: &Value) -> bool {
    v["t"] == "chat"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_reaches_everyone_with_the_senders_name_as_text() {
    let app = TestApp::start().await;
    let (mut alice, alice_id, ..) = app.player().await;
    let (mut bob, ..) = app.player().await;
    let text = "<script>alert(1)</script> gl ☕";
    send(
        &mut alice,
        json!({"t": "chat", "text": format!("  {text}  ")}),
    )
    .await;
    for socket in [&mut alice, &mut bob] {
        let chat = next_matching(socket, is_chat).await;
        assert_eq!(chat["player"], alice_id.as_str());
        assert_eq!(chat["text"], text, "trimmed, otherwise as sent");
        let default_name = aloft::display_name::default_name(&alice_id);
        assert_eq!(chat["name"], default_name.as_str());
        assert!(chat["seq"].as_u64().is_some() && chat["at"].as_u64().is_some());
    }

    send(
        &mut alice,
        json!({"t": "name", "req": "n1", "name": "Ace_7"}),
    )
    .await;
    let named = next_matching(&mut alice, |v| v["t"] == "name_ok").await;
    assert_eq!(named, json!({"t": "name_ok", "req": "n1", "name": "Ace_7"}));
    send(&mut alice, json!({"t": "chat", "text": "named now"})).await;
    let chat = next_matching(&mut bob, is_chat).await;
    assert_eq!(
        (chat["name"].as_str(), chat["text"].as_str()),
        (Some("Ace_7"), Some("named now"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_text_and_a_player_over_its_rate_are_refused_and_the_socket_stays() {
    let app = TestApp::start_with(|config| {
        config.engine.chat_burst_messages = 3;
        config.engine.chat_message_interval_ms = 60_000;
    })
    .await;
    let (mut alice, ..) = app.player().await;
    let (mut bob, ..) = app.player().await;
    for bad in [
        json!(""),
        json!("   "),
        json!("x".repeat(201)),
        json!("a\nb"),
        json!("a\u{202E}b"),
        json!(7),
    ] {
        let frame = json!({"t": "chat", "text": bad});
        send(&mut alice, frame).await;
        let error = next_matching(&mut alice, |v| v["t"] == "error").await;
        let code = if bad.is_string() {
            "invalid_field"
        } else {
            "bad_json"
        };
        assert_eq!(error["code"], code, "{bad}");
    }
    send(&mut alice, json!({"t": "chat", "text": "é".repeat(200)})).await;
    assert_eq!(
        next_matching(&mut bob, is_chat).await["text"],
        "é".repeat(200)
    );
    // Two more fill the burst of 3; the fourth is over the rate.
    for index in 0..2 {
        send(
            &mut alice,
            json!({"t": "chat", "text": format!("m{index}")}),
        )
        .await;
    }
    send(&mut alice, json!({"t": "chat", "text": "one too many"})).await;
    let limited = next_matching(&mut alice, |v| v["t"] == "error").await;
    assert_eq!(limited["code"], "chat_rate_limited");
    assert!(
        limited["message"].as_str().unwrap().contains("wait"),
        "{limited}"
    );
    // Bob saw the burst and not the message over it (the next chat he sees is his own).
    for index in 0..2 {
        assert_eq!(
            next_matching(&mut bob, is_chat).await["text"],
            format!("m{index}")
        );
    }
    send(&mut bob, json!({"t": "chat", "text": "bob here"})).await;
    assert_eq!(next_matching(&mut bob, is_chat).await["text"], "bob here");
    // Alice's socket still works.
    send(&mut alice, json!({"t": "ping"})).await;
    next_matching(&mut alice, |v| v["t"] == "pong").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_carries_the_last_fifty_messages_oldest_first() {
    let app = TestApp::start_with(|config| {
        config.engine.chat_burst_messages = 100;
        // The socket's own message rate would refuse a burst of 55 first.
        config.gateway.inbound_messages_burst_max = 100;
    })
    .await;
    let (mut alice, ..) = app.player().await;
    let sent = CHAT_HISTORY_MESSAGES_MAX + 5;
    for index in 0..sent {
        send(
            &mut alice,
            json!({"t": "chat", "text": format!("line {index}")}),
        )
        .await;
    }
    let last = format!("line {}", sent - 1);
    next_matching(&mut alice, |v| is_chat(v) && v["text"] == last.as_str()).await;
    let (_, _, _, snapshot) = app.player().await;
    let texts: Vec<&str> = snapshot["chat"]
        .as_array()
        .expect("chat in the snapshot")
        .iter()
        .map(|line| line["text"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (sent - CHAT_HISTORY_MESSAGES_MAX..sent)
        .map(|index| format!("line {index}"))
        .collect();
    assert_eq!(texts, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_checked_unique_shown_in_bets_and_kept() {
    let mut app = TestApp::start_with(|config| config.engine.betting_duration_ms = 2_000).await;
    let (alice_token, alice_id, _) = app.guest().await;
    let mut alice = app.connect(&alice_token).await;
    let (mut bob, ..) = app.player().await;
    for (name, code) in [
        ("ab", "invalid_name"),
        ("<b>x</b>", "invalid_name"),
        ("The House", "invalid_name"),
        ("adm1n", "invalid_name"),
        ("guest-123456", "invalid_name"),
    ] {
        send(&mut bob, json!({"t": "name", "req": name, "name": name})).await;
        let refused = next_matching(&mut bob, |v| v["t"] == "name_err").await;
        assert_eq!(
            (refused["req"].as_str(), refused["code"].as_str()),
            (Some(name), Some(code))
        );
    }
    send(
        &mut alice,
        json!({"t": "name", "req": "a", "name": "Maverick"}),
    )
    .await;
    next_matching(&mut alice, |v| v["t"] == "name_ok").await;
    send(
        &mut bob,
        json!({"t": "name", "req": "b", "name": "MAVER1CK"}),
    )
    .await;
    let taken = next_matching(&mut bob, |v| v["t"] == "name_err").await;
    assert_eq!(taken["code"], "name_taken");

    next_matching(&mut alice, |v| v["t"] == "betting").await;
    send(&mut alice, json!({"t": "bet", "req": "b1", "amount": 100})).await;
    let listed = next_matching(&mut bob, |v| {
        v["t"] == "tick"
            && v["bets"]
                .as_array()
                .is_some_and(|bets| bets.iter().any(|bet| bet["player"] == alice_id.as_str()))
    })
    .await;
    let bet = listed["bets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|bet| bet["player"] == alice_id.as_str())
        .unwrap();
    assert_eq!(bet["name"], "Maverick");

    // Stored: a new socket after a restart posts under the picked name.
    drop((alice, bob));
    app.restart().await;
    let mut again = app.connect(&alice_token).await;
    assert_eq!(next_json(&mut again).await["t"], "hello");
    send(&mut again, json!({"t": "chat", "text": "back"})).await;
    let chat = next_matching(&mut again, is_chat).await;
    assert_eq!(chat["name"], "Maverick");
}

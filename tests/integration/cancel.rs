//! A player takes back a bet while betting is open: refunded exactly once through the
//! ledger, dropped from everyone's list; a cancel that reaches the engine after betting
//! closed is `too_late` and the bet plays. Never both.

use crate::common::{Socket, TestApp, next_matching, send};
use aloft::ledger::{Account, Ledger};
use serde_json::{Value, json};

/// Waits for the next `betting` event: (round, ends_at unix ms).
async fn next_betting(socket: &mut Socket) -> (u64, u64) {
    let betting = next_matching(socket, |v| v["t"] == "betting").await;
    (
        betting["round"].as_u64().unwrap(),
        betting["ends_at"].as_u64().unwrap(),
    )
}

async fn refunds_of(ledger: &dyn Ledger, round: u64, player: &str) -> Vec<i64> {
    let prefix = format!("refund:main:{round}:{player}:");
    let refunds = ledger.transfers_with_prefix(&prefix).await.unwrap();
    refunds
        .iter()
        .map(|stored| stored.transfer.amount_minor)
        .collect()
}

async fn balance(ledger: &dyn Ledger, player: &str) -> i64 {
    ledger
        .balance(&Account::Player(player.to_owned()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bet_cancelled_while_betting_is_refunded_once_and_leaves_the_list() {
    let mut app = TestApp::start_with(|config| config.engine.betting_duration_ms = 3_000).await;
    let (mut alice, alice_id, hello, _) = app.player().await;
    let (mut bob, ..) = app.player().await;
    let granted = hello["balance"].as_i64().unwrap();
    let (round, _) = next_betting(&mut alice).await;
    send(
        &mut alice,
        json!({"t": "bet", "req": "b1", "amount": 500, "auto": 300}),
    )
    .await;
    let bet_ok = next_matching(&mut alice, |v| v["t"] == "bet_ok").await;
    assert_eq!(bet_ok["balance"].as_i64().unwrap(), granted - 500);
    let listed = |v: &Value| {
        v["t"] == "tick"
            && v["bets"]
                .as_array()
                .is_some_and(|bets| bets.iter().any(|bet| bet["player"] == alice_id.as_str()))
    };
    next_matching(&mut bob, listed).await;

    send(&mut alice, json!({"t": "cancel", "req": "x1", "slot": 0})).await;
    let cancel_ok = next_matching(&mut alice, |v| v["t"] == "cancel_ok").await;
    let expected = json!({"t": "cancel_ok", "req": "x1", "round": round, "slot": 0,
        "amount": 500, "balance": granted});
    assert_eq!(cancel_ok, expected);
    let cancelled = next_matching(&mut bob, |v| v["t"] == "bet_cancelled").await;
    assert_eq!(cancelled["player"], alice_id.as_str());
    assert_eq!(
        (cancelled["round"].as_u64(), cancelled["amount"].as_i64()),
        (Some(round), Some(500))
    );
    assert!(
        cancelled.get("totals").is_none(),
        "no bet left: {cancelled}"
    );

    // The same request again: the first answer. Another: nothing left to cancel.
    send(&mut alice, json!({"t": "cancel", "req": "x1", "slot": 0})).await;
    assert_eq!(
        next_matching(&mut alice, |v| v["t"] == "cancel_ok").await,
        expected
    );
    send(&mut alice, json!({"t": "cancel", "req": "x2", "slot": 0})).await;
    let again = next_matching(&mut alice, |v| v["t"] == "cancel_err").await;
    assert_eq!(
        (again["req"].as_str(), again["code"].as_str()),
        (Some("x2"), Some("no_active_bet"))
    );
    send(&mut alice, json!({"t": "cancel", "req": "x3", "slot": 7})).await;
    let bad_slot = next_matching(&mut alice, |v| v["t"] == "cancel_err").await;
    assert_eq!(bad_slot["code"], "invalid_field");
    send(&mut alice, json!({"t": "cancel", "slot": 0})).await;
    let no_req = next_matching(&mut alice, |v| v["t"] == "error").await;
    assert_eq!(no_req["code"], "bad_json");

    // The round plays without the bet: no payout at its target, one refund.
    next_matching(&mut alice, |v| v["t"] == "crash" && v["round"] == round).await;
    let ledger = app.ledger();
    assert_eq!(refunds_of(ledger.as_ref(), round, &alice_id).await, [500]);
    let payouts = format!("payout:main:{round}:{alice_id}:");
    assert!(
        ledger
            .transfers_with_prefix(&payouts)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(balance(ledger.as_ref(), &alice_id).await, granted);
    assert_eq!(ledger.total_balance().await.unwrap(), 0);
    app.stop().await;
}

/// Players cancel around the end of betting, some before it and some after: each gets
/// `cancel_ok` and its refund, or `too_late` and its bet plays, and the ledger agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_racing_the_end_of_betting_is_refunded_or_plays_never_both() {
    const PLAYERS: usize = 24;
    const STAKE_MINOR: i64 = 100;
    let mut app = TestApp::start_with(|config| config.engine.betting_duration_ms = 1_500).await;
    let mut players = Vec::new();
    for _ in 0..PLAYERS {
        let (socket, player, hello, _) = app.player().await;
        players.push((socket, player, hello["balance"].as_i64().unwrap()));
    }
    let (round, ends_at_ms) = next_betting(&mut players[0].0).await;
    for (socket, ..) in &mut players {
        send(
            socket,
            json!({"t": "bet", "req": "b", "amount": STAKE_MINOR}),
        )
        .await;
        next_matching(socket, |v| v["t"] == "bet_ok").await;
    }
    // Cancels every 4 ms from 48 ms before betting ends to 44 ms after.
    let mut answers = Vec::new();
    for (index, (socket, ..)) in players.iter_mut().enumerate() {
        let at_ms = ends_at_ms - 48 + 4 * index as u64;
        let wait_ms = at_ms.saturating_sub(aloft::clock::unix_now_ms());
        tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
        send(socket, json!({"t": "cancel", "req": "x", "slot": 0})).await;
    }
    for (socket, ..) in &mut players {
        let t = |v: &Value| v["t"] == "cancel_ok" || v["t"] == "cancel_err";
        answers.push(next_matching(socket, t).await);
    }
    next_matching(&mut players[0].0, |v| {
        v["t"] == "crash" && v["round"] == round
    })
    .await;
    let ledger = app.ledger();
    let mut cancelled = 0;
    for ((_, player, granted), answer) in players.iter().zip(&answers) {
        let refunds = refunds_of(ledger.as_ref(), round, player).await;
        let balance = balance(ledger.as_ref(), player).await;
        if answer["t"] == "cancel_ok" {
            cancelled += 1;
            assert_eq!(refunds, [STAKE_MINOR], "{player}: {answer}");
            assert_eq!(balance, *granted, "{player}: refunded, not played");
        } else {
            assert_eq!(answer["code"], "too_late", "{player}: {answer}");
            assert!(refunds.is_empty(), "{player}: too late yet refunded");
            // No cashout was sent: the bet played and lost.
            assert_eq!(balance, granted - STAKE_MINOR, "{player}: the bet played");
        }
    }
    assert_eq!(ledger.total_balance().await.unwrap(), 0);
    eprintln!("{cancelled} of {PLAYERS} cancels before betting closed, the rest too late");
    app.stop().await;
}

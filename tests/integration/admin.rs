//! The admin API against a real embedded server: a room paused through
//! `aloft::admin::RoomController` tells its players, finishes its round and opens no
//! other until resumed; new limits are announced for the next round; every change is in
//! the audit trail.

use std::time::Duration;

use aloft::admin::{AdminError, RoomController};
use aloft::ledger::{AuditAction, RoomLimits};
use serde_json::{Value, json};
use tokio::time::timeout;

use crate::common::{TestApp, next_matching, send};

/// Longer than a fast round (betting 800 ms, a flight of a few seconds at most here).
const ROUND_WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_room_finishes_its_round_opens_no_other_then_resumes() {
    let app = TestApp::start().await;
    let bus = app.server.as_ref().unwrap().bus();
    let controller = RoomController::open(bus, "test-gateway").await.unwrap();
    let (mut socket, _, _, _) = app.player().await;
    let is = |t: &'static str| move |frame: &Value| frame["t"] == t;
    let betting = timeout(ROUND_WAIT, next_matching(&mut socket, is("betting")))
        .await
        .unwrap();
    let round = betting["round"].as_u64().unwrap();

    let paused = controller.pause_room("main", "ops@example").await.unwrap();
    assert!(!paused.before.paused && paused.after.paused);
    assert_eq!(paused.from_round, round + 1);
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
    send(&mut socket, json!({"t": "bet", "req": "r1", "amount": 100})).await;
    let refused = timeout(ROUND_WAIT, next_matching(&mut socket, is("bet_err")))
        .await
        .unwrap();
    assert_eq!(refused["code"], "wrong_phase");
    let again = controller.pause_room("main", "ops@example").await;
    assert!(
        matches!(&again, Err(error) if error.code() == "already_paused" && error.http_status() == 409)
    );

    let limits = RoomLimits {
        bet_amount_min_minor: 50,
        bet_amount_max_minor: 5_000,
        round_profit_max_minor: 100_000,
    };
    let changed = controller
        .set_room_limits("main", "ops@example", limits)
        .await
        .unwrap();
    assert_eq!(changed.after.limits, limits);
    let announced = timeout(ROUND_WAIT, next_matching(&mut socket, is("limits")))
        .await
        .unwrap();
    assert_eq!(
        (announced["min"].clone(), announced["max"].clone()),
        (json!(50), json!(5_000))
    );
    let invalid = RoomLimits {
        bet_amount_min_minor: 0,
        ..limits
    };
    let refused = controller.set_room_limits("main", "ops", invalid).await;
    assert!(matches!(refused, Err(AdminError::Refused { .. })));

    controller.resume_room("main", "ops@example").await.unwrap();
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

    let audit = aloft::admin::audit_trail(app.ledger().as_ref(), 10)
        .await
        .unwrap();
    let actions: Vec<AuditAction> = audit.iter().map(|entry| entry.action).collect();
    let expected = [
        AuditAction::ResumeRoom,
        AuditAction::SetRoomLimits,
        AuditAction::PauseRoom,
    ];
    assert_eq!(actions, expected);
    assert!(
        audit
            .iter()
            .all(|entry| entry.operator == "ops@example" && entry.target == "main")
    );
    let stored = app.ledger().room_controls("main").await.unwrap().unwrap();
    assert!(!stored.paused);
    assert_eq!(stored.limits, limits);
}

//! The server's life: HTTP surface, graceful stop, restart on the same data directory,
//! and the `aloft verify` command.

use std::time::Duration;

use crate::common::{TestApp, http, next_matching};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_metrics_fair_and_static_files_answer() {
    let mut app = TestApp::start().await;
    assert_eq!(
        http(app.addr, "GET", "/healthz", &[]).await,
        (200, "ok".to_owned())
    );
    assert_eq!(http(app.addr, "GET", "/readyz", &[]).await.0, 200);
    let (status, page) = http(app.addr, "GET", "/", &[]).await;
    assert_eq!(status, 200);
    assert!(page.contains("<html"), "the web client is served at /");
    assert_eq!(http(app.addr, "GET", "/nope.js", &[]).await.0, 404);
    let (status, body) = http(app.addr, "GET", "/api/fair", &[]).await;
    assert_eq!(status, 200);
    let fair: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(fair["commitment"].as_str().unwrap().len(), 64);
    assert_eq!(fair["house_edge_bp"], 100);
    // A connected player shows in the metrics, which are on their own listener only.
    let (_socket, ..) = app.player().await;
    let (status, metrics) = http(app.metrics_addr, "GET", "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert!(metrics.contains("aloft_connections"), "{metrics}");
    assert_eq!(http(app.addr, "GET", "/metrics", &[]).await.0, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_api_reveals_only_finished_rounds_and_they_verify() {
    let mut app = TestApp::start().await;
    let (mut socket, ..) = app.player().await;
    let crash = next_matching(&mut socket, |v| v["t"] == "crash").await;
    next_matching(&mut socket, |v| v["t"] == "betting").await;
    let (status, body) = http(app.addr, "GET", "/api/rounds?limit=5", &[]).await;
    assert_eq!(status, 200);
    let rounds: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert!(!rounds.is_empty() && rounds.len() <= 5);
    let listed = rounds
        .iter()
        .find(|r| r["round"] == crash["round"])
        .expect("the crashed round is listed");
    assert_eq!(listed["hash"], crash["hash"]);
    assert_eq!(listed["m"], crash["m"]);
    let current = crash["round"].as_u64().unwrap() + 1;
    assert!(
        rounds
            .iter()
            .all(|r| r["round"].as_u64().unwrap() < current),
        "the open round stays secret"
    );
    let (status, body) = http(app.addr, "GET", "/api/fair", &[]).await;
    assert_eq!(status, 200);
    let fair: Value = serde_json::from_str(&body).unwrap();
    // Round 1's hash hashes to the published commitment; each round's to the previous one.
    let mut by_round: Vec<&Value> = rounds.iter().collect();
    by_round.sort_by_key(|r| r["round"].as_u64());
    for pair in by_round.windows(2) {
        if pair[1]["round"].as_u64() == pair[0]["round"].as_u64().map(|n| n + 1) {
            let next_hash = pair[1]["hash"].as_str().unwrap();
            assert_eq!(
                aloft::fair::sha256_hex(next_hash),
                pair[0]["hash"].as_str().unwrap()
            );
        }
    }
    if by_round[0]["round"] == 1 {
        let first_hash = by_round[0]["hash"].as_str().unwrap();
        assert_eq!(
            aloft::fair::sha256_hex(first_hash),
            fair["commitment"].as_str().unwrap()
        );
    }
    assert_eq!(
        http(app.addr, "GET", "/api/rounds?room=nope", &[]).await.0,
        404
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_closes_sockets_with_1001_and_a_restart_continues_the_rounds() {
    let data_dir = tempfile::tempdir().unwrap();
    let path = data_dir.path().to_path_buf();
    let app = TestApp::start_with(|config| config.data_dir = path.clone()).await;
    let (mut socket, player, ..) = app.player().await;
    let crash = next_matching(&mut socket, |v| v["t"] == "crash").await;
    let (_, fair_before) = http(app.addr, "GET", "/api/fair", &[]).await;
    let mut app = app;
    app.stop().await;
    let close = crate::common::close_code(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(close, Some(1001));

    let app = TestApp::start_with(|config| config.data_dir = path.clone()).await;
    let (_, fair_after) = http(app.addr, "GET", "/api/fair", &[]).await;
    assert_eq!(fair_before, fair_after, "the seed and salt persist");
    let (mut socket, ..) = app.player().await;
    let betting = next_matching(&mut socket, |v| v["t"] == "betting").await;
    assert!(betting["round"].as_u64().unwrap() > crash["round"].as_u64().unwrap());
    let balance = app
        .ledger()
        .balance(&aloft::ledger::Account::Player(player))
        .await
        .unwrap();
    assert_eq!(
        balance, app.config.ledger.guest_balance_minor,
        "balances persist"
    );
    let mut app = app;
    app.stop().await;
}

#[test]
fn verify_command_prints_the_crash_point() {
    let hash = aloft::fair::sha256_hex("any round");
    let expected = aloft::fair::crash_point_hundredths(&hash, "pepper", 100);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_aloft"))
        .args([
            "verify",
            &hash,
            "--salt",
            "pepper",
            "--house-edge-bp",
            "100",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let shown = format!(
        "{}.{:02}x ({expected} hundredths)",
        expected / 100,
        expected % 100
    );
    assert!(text.contains(&shown), "{text}");
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_aloft"))
        .args(["verify", "not-a-hash", "--salt", "pepper"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_room_plays_its_own_rounds_on_its_own_chain() {
    let mut app =
        TestApp::start_with(|config| config.rooms = vec!["main".into(), "vip".into()]).await;
    let (token, ..) = app.guest().await;
    let url = format!("ws://{}/ws?token={token}&room=vip", app.addr);
    let (mut vip, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let hello = crate::common::next_json(&mut vip).await;
    assert_eq!(hello["room"], "vip");
    let crash = next_matching(&mut vip, |v| v["t"] == "crash").await;
    let (_, main_fair) = http(app.addr, "GET", "/api/fair?room=main", &[]).await;
    let (_, vip_fair) = http(app.addr, "GET", "/api/fair?room=vip", &[]).await;
    let main_fair: Value = serde_json::from_str(&main_fair).unwrap();
    let vip_fair: Value = serde_json::from_str(&vip_fair).unwrap();
    assert_ne!(
        main_fair["commitment"], vip_fair["commitment"],
        "rooms share no chain"
    );
    assert_eq!(
        http(app.addr, "GET", "/api/fair?room=nope", &[]).await.0,
        404
    );
    // The vip round's hash links into the vip chain, not main's.
    let (_, rounds) = http(app.addr, "GET", "/api/rounds?room=vip&limit=1000", &[]).await;
    let rounds: Vec<Value> = serde_json::from_str(&rounds).unwrap();
    let listed = rounds
        .iter()
        .find(|r| r["round"] == crash["round"])
        .unwrap();
    assert_eq!(listed["hash"], crash["hash"]);
    assert_eq!(listed["room"], "vip");
    let mut hash = crash["hash"].as_str().unwrap().to_owned();
    for _ in 0..crash["round"].as_u64().unwrap() {
        hash = aloft::fair::sha256_hex(&hash);
    }
    assert_eq!(hash, vip_fair["commitment"].as_str().unwrap());
    app.stop().await;
}

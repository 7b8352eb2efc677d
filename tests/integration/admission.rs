//! Admission over real sockets: sockets per address and per player (HTTP 503 at the
//! handshake, places given back when a socket closes), exempt networks, guest creation
//! (Origin, body size, rate per address with Retry-After), the security headers of every
//! response, and metrics kept off the player port.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common::{Socket, TestApp, http_response, open_socket};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The headers of a WebSocket upgrade, for refusals read as plain HTTP.
const UPGRADE_HEADERS: [(&str, &str); 4] = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
];

/// A server where loopback is an ordinary address (no exemption).
async fn unexempt(adjust: impl FnOnce(&mut aloft::config::LimitsConfig)) -> TestApp {
    TestApp::start_with(|config| {
        config.limits.exempt_networks = Default::default();
        config.limits.guests_per_ip_per_minute_max = 1_000;
        adjust(&mut config.limits);
    })
    .await
}

/// The refusal of a `/ws` upgrade that must not be admitted: (status, code).
async fn refused_upgrade(app: &TestApp, token: &str) -> (u16, String) {
    let response = http_response(
        app.addr,
        "GET",
        &format!("/ws?token={token}"),
        &UPGRADE_HEADERS,
    )
    .await;
    let body: Value = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    (
        response.status,
        body["code"].as_str().unwrap_or("").to_owned(),
    )
}

/// `POST /api/guest` declaring a JSON body of `content_length` bytes and sending none:
/// no well-behaved client (reqwest) sends that, so it goes over a raw socket. Returns
/// the status and the response as read.
async fn guest_with_unsent_body(addr: SocketAddr, content_length: usize) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/guest HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("HTTP response in time")
        .unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    (status, text)
}

async fn connected(app: &TestApp, token: &str) -> Socket {
    open_socket(app.addr, &format!("token={token}")).await
}

/// Retries an upgrade until it is admitted: a closed socket gives its place back once
/// the server has seen it close.
async fn admitted_eventually(app: &TestApp, token: &str) -> Socket {
    let url = format!("ws://{}/ws?token={token}", app.addr);
    for _ in 0..100 {
        if let Ok((socket, _)) = tokio_tungstenite::connect_async(&url).await {
            return socket;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("a freed place was never given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_per_address_are_capped_and_a_closed_one_frees_its_place() {
    let mut app = unexempt(|limits| limits.connections_per_ip_max = 3).await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let (token, ..) = app.guest().await;
        sockets.push(connected(&app, &token).await);
    }
    let (token, ..) = app.guest().await;
    assert_eq!(
        refused_upgrade(&app, &token).await,
        (503, "ip_connections_max".to_owned())
    );
    drop(sockets.pop());
    let _admitted = admitted_eventually(&app, &token).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_per_player_are_capped_even_from_an_exempt_network() {
    let mut app = TestApp::start_with(|config| config.limits.connections_per_player_max = 2).await;
    let (token, ..) = app.guest().await;
    let first = connected(&app, &token).await;
    let _second = connected(&app, &token).await;
    assert_eq!(
        refused_upgrade(&app, &token).await,
        (503, "player_connections_max".to_owned())
    );
    // Another player is not affected.
    let (other, ..) = app.guest().await;
    let _other = connected(&app, &other).await;
    drop(first);
    let _admitted = admitted_eventually(&app, &token).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exempt_network_opens_past_the_per_address_limit() {
    let mut app = TestApp::start_with(|config| config.limits.connections_per_ip_max = 1).await;
    let mut sockets = Vec::new();
    for _ in 0..5 {
        let (token, ..) = app.guest().await;
        sockets.push(connected(&app, &token).await);
    }
    assert_eq!(sockets.len(), 5);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_per_address_are_rate_limited_with_retry_after() {
    let mut app = unexempt(|limits| limits.guests_per_ip_per_minute_max = 2).await;
    for _ in 0..2 {
        assert_eq!(
            http_response(app.addr, "POST", "/api/guest", &[])
                .await
                .status,
            200
        );
    }
    let refused = http_response(app.addr, "POST", "/api/guest", &[]).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let body: Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(body["code"], "rate_limited");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_needs_a_small_body_sent_in_time_and_a_same_site_origin() {
    let mut app = TestApp::start_with(|config| config.gateway.handshake_timeout_ms = 500).await;
    let (status, body) = guest_with_unsent_body(app.addr, 2_000_000).await;
    assert_eq!(status, 413, "{body}");
    let foreign = http_response(
        app.addr,
        "POST",
        "/api/guest",
        &[("Origin", "http://evil.example")],
    )
    .await;
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    let own_origin = format!("http://{}", app.addr);
    let same = http_response(app.addr, "POST", "/api/guest", &[("Origin", &own_origin)]).await;
    assert_eq!(same.status, 200, "{}", same.body);
    // The declared 2 bytes never come: refused at the request's deadline.
    let (status, body) = guest_with_unsent_body(app.addr, 2).await;
    assert_eq!(status, 408, "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let mut app = TestApp::start().await;
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/verify.html"),
        ("GET", "/app.js"),
        ("GET", "/api/fair"),
        ("GET", "/nope.js"),
        ("GET", "/healthz"),
        ("POST", "/api/guest"),
        ("GET", "/ws"),
    ] {
        let response = http_response(app.addr, method, path, &[]).await;
        let header = |name| {
            response
                .header(name)
                .unwrap_or_else(|| panic!("{path}: no {name}"))
        };
        let policy = header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_the_player_port_and_a_taken_metrics_port_names_its_key() {
    let mut app = TestApp::start().await;
    assert_eq!(
        http_response(app.addr, "GET", "/metrics", &[]).await.status,
        404
    );
    let metrics = http_response(app.metrics_addr, "GET", "/metrics", &[]).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.body.contains("aloft_"), "{}", metrics.body);
    let taken = app.metrics_addr;
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::fast_config();
    config.data_dir = data_dir.path().to_path_buf();
    config.metrics_listen = taken;
    let error = aloft::Server::start(config)
        .await
        .err()
        .expect("the port is taken");
    assert!(error.to_string().contains("metrics_listen"), "{error}");
    app.stop().await;
}

//! Test app: a real embedded server on a free port with a fresh data directory, and a
//! small real client (HTTP with reqwest, WebSocket with tokio-tungstenite).

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest a test waits for one frame.
pub const FRAME_WAIT_MS: u64 = 10_000;
/// Longest a test waits for an HTTP response.
pub const HTTP_WAIT_SECONDS: u64 = 10;

pub struct TestApp {
    pub server: Option<aloft::Server>,
    pub addr: SocketAddr,
    /// The metrics listener (`metrics_listen`), apart from the player port.
    pub metrics_addr: SocketAddr,
    pub config: aloft::Config,
    _data_dir: tempfile::TempDir,
}

/// Fast rounds: short betting, ticks every 20 ms, short pause after a crash. Metrics on a
/// free port; loopback exempt from the per-address limits (tests open many sockets and
/// guests from 127.0.0.1; the tests of those limits empty the list).
pub fn fast_config() -> aloft::Config {
    let defaults = aloft::Config::default();
    aloft::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        limits: aloft::config::LimitsConfig {
            exempt_networks: aloft::admission::networks::ExemptNetworks::parse_list("127.0.0.0/8")
                .unwrap(),
            ..defaults.limits
        },
        gateway: aloft::config::GatewayConfig {
            shards: 2,
            ..defaults.gateway
        },
        engine: aloft::config::EngineConfig {
            betting_duration_ms: 800,
            tick_interval_ms: 20,
            crashed_duration_ms: 200,
            // Ten times Bustabit's growth: 2x in about 1.2 s, so rounds take seconds.
            growth_rate_per_ms_millionths: 600,
            ..defaults.engine
        },
        fair: aloft::config::FairConfig {
            chain_length: 10_000,
            ..defaults.fair
        },
        ..aloft::Config::default()
    }
}

impl TestApp {
    pub async fn start() -> TestApp {
        TestApp::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut aloft::Config)) -> TestApp {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = fast_config();
        config.data_dir = data_dir.path().to_path_buf();
        adjust(&mut config);
        let server = aloft::Server::start(config.clone()).await.unwrap();
        TestApp {
            addr: server.local_addr,
            metrics_addr: server.metrics_addr,
            server: Some(server),
            config,
            _data_dir: data_dir,
        }
    }

    pub fn ledger(&self) -> std::sync::Arc<dyn aloft::ledger::Ledger> {
        self.server.as_ref().unwrap().ledger()
    }

    pub async fn stop(&mut self) {
        self.server.take().unwrap().stop().await.unwrap();
    }

    /// Stops the server and starts it again on the same data directory (a new port).
    pub async fn restart(&mut self) {
        self.stop().await;
        let server = aloft::Server::start(self.config.clone()).await.unwrap();
        self.addr = server.local_addr;
        self.metrics_addr = server.metrics_addr;
        self.server = Some(server);
    }

    /// A new guest: (token, player, balance).
    pub async fn guest(&self) -> (String, String, i64) {
        guest_at(self.addr).await
    }

    pub async fn connect(&self, token: &str) -> Socket {
        self.connect_with(token, "").await
    }

    /// Connects with more query parameters (`&since=…&epoch=…`) after the token.
    pub async fn connect_with(&self, token: &str, more_query: &str) -> Socket {
        open_socket(self.addr, &format!("token={token}{more_query}")).await
    }

    /// A connected guest, after its hello and snapshot: (socket, player, hello, snapshot).
    pub async fn player(&self) -> (Socket, String, Value, Value) {
        let (token, player, _) = self.guest().await;
        let mut socket = self.connect(&token).await;
        let hello = next_json(&mut socket).await;
        assert_eq!(hello["t"], "hello");
        let snapshot = next_json(&mut socket).await;
        assert_eq!(snapshot["t"], "snapshot");
        (socket, player, hello, snapshot)
    }
}

/// A new guest from the server at `addr`: (token, player, balance).
pub async fn guest_at(addr: SocketAddr) -> (String, String, i64) {
    let (status, body) = http(addr, "POST", "/api/guest", &[]).await;
    assert_eq!(status, 200, "POST /api/guest on {addr}: {body}");
    let value: Value = serde_json::from_str(&body).unwrap();
    (
        value["token"].as_str().unwrap().to_owned(),
        value["player"].as_str().unwrap().to_owned(),
        value["balance"].as_i64().unwrap(),
    )
}

/// A WebSocket to `/ws?{query}` at `addr`.
pub async fn open_socket(addr: SocketAddr, query: &str) -> Socket {
    let url = format!("ws://{addr}/ws?{query}");
    let (socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .unwrap_or_else(|error| panic!("cannot open {url}: {error}"));
    socket
}

/// An HTTP request with no body (reqwest); returns (status, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let response = http_response(addr, method, path, headers).await;
    (response.status, response.body)
}

/// A response as [`http_response`] reads it.
pub struct HttpResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl HttpResponse {
    /// The value of header `name` (case-insensitive), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// An HTTP request with no body to `path` at `addr`, with `headers` added; returns the
/// whole response. A fresh client each time: every test has its own runtime, and a
/// pooled connection must not outlive the runtime that opened it.
pub async fn http_response(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(HTTP_WAIT_SECONDS))
        .build()
        .unwrap();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|error| panic!("{path} on {addr}: {error}"));
    HttpResponse {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    }
}

/// The next text frame as JSON; pings are skipped.
pub async fn next_json(socket: &mut Socket) -> Value {
    serde_json::from_str(&next_text(socket).await).unwrap()
}

/// The next text frame exactly as received; pings are skipped.
pub async fn next_text(socket: &mut Socket) -> String {
    loop {
        let message = tokio::time::timeout(Duration::from_millis(FRAME_WAIT_MS), socket.next())
            .await
            .expect("a frame in time")
            .expect("socket open")
            .expect("no socket error");
        match message {
            Message::Text(text) => return text.as_str().to_owned(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Reads frames until one satisfies `wanted`; returns it.
pub async fn next_matching(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let value = next_json(socket).await;
        if wanted(&value) {
            return value;
        }
    }
}

pub async fn send(socket: &mut Socket, value: Value) {
    socket.send(Message::text(value.to_string())).await.unwrap();
}

/// The code of the close frame `socket` gets within `wait` (other frames are skipped);
/// `None` when it ends without one.
pub async fn close_code(socket: &mut Socket, wait: Duration) -> Option<u16> {
    tokio::time::timeout(wait, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("a close frame in time")
}

//! The server's JSON API as the bots use it: `POST /api/guest` (a token and a demo
//! balance per bot) and `GET /api/fair` (the public fairness parameters), over one
//! pooled plain HTTP/1.1 client (hyper-util's legacy client; loopback, no TLS).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Longest API response read, in bytes.
const RESPONSE_BYTES_MAX: usize = 64 * 1024;
/// Time allowed for one API call, from connect to the last body byte, in milliseconds.
const CALL_TIMEOUT_MS: u64 = 10_000;
/// Idle keep-alive connections kept to the server (guest calls are bursty), count.
const IDLE_CONNECTIONS_MAX: usize = 256;

/// A new guest player (`POST /api/guest`).
#[derive(Debug, Clone, Deserialize)]
pub struct Guest {
    /// JWT to open `/ws?token=...`.
    pub token: String,
    pub player: String,
    /// Demo balance granted, in minor units.
    pub balance: i64,
}

/// The public fairness parameters (`GET /api/fair`).
#[derive(Debug, Clone, Deserialize)]
pub struct Fair {
    pub salt: String,
    /// SHA-256 of round 1's hash.
    pub commitment: String,
    pub house_edge_bp: u32,
    pub chain_length: u64,
}

/// A client for one server's API.
pub struct Api {
    client: Client<HttpConnector, Empty<Bytes>>,
    /// `http://ADDR`, the prefix of every call.
    base_url: String,
}

impl Api {
    pub fn new(server: SocketAddr) -> Api {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_millis(CALL_TIMEOUT_MS)));
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_CONNECTIONS_MAX)
            .build(connector);
        Api {
            client,
            base_url: format!("http://{server}"),
        }
    }

    /// Creates a guest player.
    pub async fn guest(&self) -> anyhow::Result<Guest> {
        self.call(Method::POST, "/api/guest").await
    }

    /// Reads the fairness parameters.
    pub async fn fair(&self) -> anyhow::Result<Fair> {
        self.call(Method::GET, "/api/fair").await
    }

    async fn call<T: DeserializeOwned>(&self, method: Method, path: &str) -> anyhow::Result<T> {
        let request = Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.base_url))
            .body(Empty::new())
            .context("building the request")?;
        let call = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = Limited::new(response.into_body(), RESPONSE_BYTES_MAX)
                .collect()
                .await
                .map_err(|error| anyhow::anyhow!("reading the body: {error}"))?
                .to_bytes();
            ensure!(
                status.is_success(),
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
            serde_json::from_slice(&body).context("decoding the JSON body")
        };
        tokio::time::timeout(Duration::from_millis(CALL_TIMEOUT_MS), call)
            .await
            .with_context(|| format!("{method} {path} timed out after {CALL_TIMEOUT_MS} ms"))?
            .with_context(|| format!("{method} {path}"))
    }
}

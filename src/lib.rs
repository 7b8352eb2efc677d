//! aloft: a real-time WebSocket broadcast server for live multiplayer crash rounds.
//!
//! # Layout
//!
//! - [`config`]: typed configuration (defaults → TOML → `ALOFT_*` environment).
//! - [`protocol`]: wire protocol v1, the only module that knows JSON field names.
//! - [`fair`]: provably fair hash chain and crash-point formula.
//! - [`feed`]: the bounded public feed: which bets and cashouts everyone is shown.
//! - [`engine`]: the round loop of a room (Betting → Flying → Crashed), pure logic in
//!   `engine::round` driven by a [`clock::Clock`].
//! - [`clock`]: time, the leaf every layer reads it from (a fake one in tests).
//! - [`cashier`]: the money that moves outside rounds: guest grants and the return of
//!   unused guests' grants to the mint.
//! - [`ledger`]: double-entry money behind the [`ledger::Ledger`] trait (SQLite, PostgreSQL).
//! - [`bus`]: engine ↔ gateway transport behind the [`bus::Bus`] trait (in-memory, Redis).
//! - [`gateway`]: shard-per-core socket servers and the fan-out write path.
//! - [`http`]: the HTTP surface on the same port: web client, API, health, metrics.
//! - [`operator`]: the operator console (`/dashboard`), its session, its live socket
//!   fed from the rooms' events, and the admin API.
//! - [`auth`]: player tokens (JWT HS256).
//! - [`admin`]: the operators' admin actions: room controls sent to the leading engine
//!   and awaited, player lookups, the audit trail.
//! - [`admission`]: who may connect or create a guest: per-address and per-player
//!   limits, exempt networks.
//! - [`metrics`]: Prometheus metrics names and the recorder.
//! - [`server`]: wires the roles that serve players: the embedded mode
//!   (`aloft::serve(config, shutdown)`) and the cluster gateway.
//! - `fuzzing` (tests and the `fuzzing` feature only): the checks the fuzz targets in
//!   `fuzz/` run, replayed on the committed seeds by `cargo test`.
//! - [`cluster`]: the cluster's engine role: room leases with fencing tokens, takeover.
//! - [`display_name`], [`chat`]: the rules of a player's display name and of a chat
//!   message's text (the engine posts chat to the room like any public event).
//! - [`status`]: the status reports every process publishes on the bus for the operator
//!   console (led rooms and ack latency, gateway traffic).

pub mod admin;
pub mod admission;
pub mod auth;
pub mod bus;
pub mod cashier;
pub mod chat;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod display_name;
pub mod engine;
pub mod fair;
pub mod feed;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod gateway;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod operator;
pub mod protocol;
pub mod server;
pub mod status;

pub use config::Config;
pub use server::{Server, serve};

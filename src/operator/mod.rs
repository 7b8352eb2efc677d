//! The operator console: the dashboard at `/dashboard`, its session (`POST`/`GET`/`DELETE
//! /api/operator/session`), its live socket (`/api/operator/ws`) and the admin API
//! (`/api/admin/...`), served by every gateway on the player port.
//!
//! - [`auth`]: the operator token (constant-time check) and the signed session cookie.
//! - [`guard`]: who may call an operator route: the cookie, or `Authorization: Bearer`
//!   on the admin API; never a token in a URL; failed attempts limited per address.
//! - [`routes`]: the routes and their JSON answers; [`socket`]: the operator socket;
//!   [`admin_routes`]: the admin API's actions (room controls, players, the audit).
//! - [`feed`]: the process's view of every room for the console, fed by the gateway's
//!   bus tasks with the events they decoded ([`rooms`] per room, [`house`] from the
//!   ledger), broadcast as [`frames`].
//!
//! In a cluster every gateway follows every room from the bus, so any gateway's console
//! shows them all; without `operator.token` a cluster gateway keeps the console off (503).

pub mod admin_routes;
pub mod auth;
pub mod cluster;
pub mod feed;
pub mod frames;
pub mod guard;
pub mod house;
pub mod rooms;
pub mod routes;
mod socket;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::RoomController;
use crate::admission::ConnectionLimits;
use crate::admission::address_rate::AddressRate;
use crate::bus::Bus;
use crate::config::OperatorConfig;
use crate::ledger::Ledger;

/// Events the gateway's bus tasks may queue for the feed before it catches up; past it an
/// event is dropped and the feed reports the seq gap as a warning.
pub const FEED_EVENTS_QUEUE_MAX: usize = 4_096;

/// What the admin API acts through in this process.
pub struct AdminReach {
    /// The room controls of this process (one per process: it owns the admin channel).
    pub controller: RoomController,
    /// Where kicks and bans go to every gateway.
    pub bus: Arc<dyn Bus>,
    /// This gateway's admission, whose banned players a ban changes at once.
    pub limits: Arc<ConnectionLimits>,
}

/// Everything the operator routes share in a process.
pub struct OperatorConsole {
    /// The keys of `operator.token`; `None` keeps the console off (503).
    pub keys: Option<auth::SessionKeys>,
    pub config: OperatorConfig,
    /// Failed logins (and failed Bearer tokens) per client address.
    pub login_rate: AddressRate,
    pub feed: Arc<feed::Feed>,
    pub ledger: Arc<dyn Ledger>,
    pub admin: AdminReach,
    pub rooms: Vec<String>,
    pub house_edge_bp: u32,
    /// `gateway.allowed_origins`: the browser Origin rule of the player routes.
    pub allowed_origins: Vec<String>,
    /// `gateway.inbound_message_bytes_max`, `gateway.idle_timeout_ms`: the operator
    /// socket reads no more than a player's.
    pub inbound_message_bytes_max: usize,
    /// The operator sockets' tasks; the server waits for them at shutdown.
    pub sockets: TaskTracker,
    /// Fires at shutdown: every operator socket gets a 1001 close.
    pub shutdown: CancellationToken,
}

impl OperatorConsole {
    /// The console of `config`, whose `operator.token` (if any) is the one in force.
    pub fn new(
        config: &crate::Config,
        (feed, ledger): (Arc<feed::Feed>, Arc<dyn Ledger>),
        admin: AdminReach,
        shutdown: CancellationToken,
    ) -> OperatorConsole {
        let operator = &config.operator;
        let keys = (!operator.token.is_empty()).then(|| auth::SessionKeys::new(&operator.token));
        OperatorConsole {
            keys,
            login_rate: AddressRate::new(
                operator.login_failures_per_minute_max,
                operator.login_rate_addresses_max,
                crate::admission::networks::ExemptNetworks::default(),
            ),
            config: operator.clone(),
            feed,
            ledger,
            admin,
            rooms: config.rooms.clone(),
            house_edge_bp: config.fair.house_edge_bp,
            allowed_origins: config.gateway.allowed_origins.clone(),
            inbound_message_bytes_max: config.gateway.inbound_message_bytes_max,
            sockets: TaskTracker::new(),
            shutdown,
        }
    }
}

/// A random operator token for `aloft serve` when none is configured: 32 random bytes,
/// hex (64 characters).
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

//! Configuration: typed, one struct per concern, loaded from built-in defaults, then
//! `config/aloft.toml` (or `--config FILE`), then `ALOFT_*` environment variables
//! (`ALOFT_LISTEN`, `ALOFT_DATA_DIR`, nested keys with a double underscore:
//! `ALOFT_ENGINE__TICK_INTERVAL_MS=50`). Errors name the failing key.
//!
//! Every limit carries its unit in its name. `config/aloft.toml` documents each option
//! with its default; keep the two in step.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::admission::networks::ExemptNetworks;

/// Highest `engine.public_bets_per_tick_max` and `public_cashouts_per_tick_max`: a tick
/// is written to every socket, so its lists stay short (1,000 bets ≈ 60 KB).
pub const PUBLIC_ITEMS_PER_TICK_MAX: usize = 1_000;
/// Highest `gateway.snapshot_bets_max`, in bets.
pub const SNAPSHOT_BETS_MAX: usize = 10_000;

/// The whole configuration of a process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the HTTP + WebSocket listener.
    pub listen: SocketAddr,
    /// Address of the Prometheus listener (`/metrics`), kept off the player port; every
    /// role has one. Port 0 picks a free port (logged at start).
    pub metrics_listen: SocketAddr,
    /// Directory for the SQLite ledger, the fairness seed and the token secret.
    pub data_dir: PathBuf,
    /// Rooms this process runs; players pick one with `/ws?room=NAME` (default: first).
    pub rooms: Vec<String>,
    /// Log format: `pretty` for a terminal, `json` for production.
    pub log_format: LogFormat,
    /// Redis of the cluster roles (`aloft engine`, `aloft gateway`); `ALOFT_REDIS_URL`.
    pub redis_url: String,
    /// PostgreSQL ledger of the cluster roles; `ALOFT_DATABASE_URL`.
    pub database_url: String,
    pub gateway: GatewayConfig,
    pub engine: EngineConfig,
    pub ledger: LedgerConfig,
    pub fair: FairConfig,
    pub auth: AuthConfig,
    pub bus: BusConfig,
    pub cluster: ClusterConfig,
    pub limits: LimitsConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("valid literal address"),
            metrics_listen: "127.0.0.1:9100".parse().expect("valid literal address"),
            data_dir: PathBuf::from("data"),
            rooms: vec!["main".to_owned()],
            log_format: LogFormat::Pretty,
            redis_url: "redis://127.0.0.1:6379".to_owned(),
            database_url: "postgres://postgres@127.0.0.1:5432/aloft".to_owned(),
            gateway: GatewayConfig::default(),
            engine: EngineConfig::default(),
            ledger: LedgerConfig::default(),
            fair: FairConfig::default(),
            auth: AuthConfig::default(),
            bus: BusConfig::default(),
            cluster: ClusterConfig::default(),
            limits: LimitsConfig::default(),
        }
    }
}

/// Sockets, shards and per-connection limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Shard threads, each with its own listener and sockets; 0 = one per core.
    pub shards: usize,
    /// Frames a socket may have waiting before it is closed as a slow consumer
    /// (ticks are conflated first, so only phase events and replies accumulate).
    pub outbound_queue_frames_max: usize,
    /// Largest accepted client message, in bytes; larger ones close the socket (1009).
    pub inbound_message_bytes_max: usize,
    /// tungstenite read buffer per socket, in bytes.
    pub read_buffer_bytes: usize,
    /// Client messages per second allowed per connection (token bucket refill rate).
    pub inbound_messages_per_second_max: u32,
    /// Burst size of the per-connection token bucket, in messages.
    pub inbound_messages_burst_max: u32,
    /// Rate-limited messages tolerated before the socket is closed (1008). WebSocket
    /// pings and pongs count as messages.
    pub rate_limit_strikes_max: u32,
    /// Strikes forgiven per second of time, so a client that bursts now and then is
    /// never closed while one that keeps flooding is. 0 = strikes never decay.
    pub rate_limit_strikes_forgiven_per_second: u32,
    /// Time allowed to send the HTTP request head, in milliseconds.
    pub handshake_timeout_ms: u64,
    /// A socket with nothing received for this long is closed (4002).
    pub idle_timeout_ms: u64,
    /// Interval of server WebSocket pings, which browsers answer automatically.
    pub ping_interval_ms: u64,
    /// A socket opened without `token` in its URL must send `auth` within this long, or
    /// it is closed (4003).
    pub auth_timeout_ms: u64,
    /// A closing socket whose close frame is still not written after this long (the
    /// peer does not read) is dropped, whatever the idle timeout.
    pub close_write_timeout_ms: u64,
    /// After our close frame is written and the write side shut down (FIN), input is
    /// read and discarded for at most this long before the socket is dropped, so the
    /// peer gets the close frame rather than a reset.
    pub close_drain_timeout_ms: u64,
    /// Input discarded after our close frame, at most; a peer still sending past it is
    /// dropped at once.
    pub close_drain_bytes_max: usize,
    /// Connections per shard; further upgrades get HTTP 503.
    pub connections_per_shard_max: usize,
    /// Public frames queued from the bus to each shard.
    pub shard_queue_frames_max: usize,
    /// Browser origins allowed to open `/ws`; empty = same host only; `*` = any.
    pub allowed_origins: Vec<String>,
    /// Past rounds listed in a snapshot.
    pub snapshot_history_rounds: usize,
    /// Public events each shard keeps per room for clients that reconnect with
    /// `?since=<seq>&epoch=<e>`: one that missed no more than this many gets them
    /// instead of a snapshot. 0 keeps none (only a client that missed nothing resumes).
    pub recovery_window_events: usize,
    /// Bets of the current round listed in a snapshot, at most: the largest its ticks
    /// listed. Each shard keeps this many per room.
    pub snapshot_bets_max: usize,
    /// Requests (bets, cashouts) a connection may have awaiting the engine's answer;
    /// further ones are refused `overloaded` until answers come back. The gateway
    /// delivers one answer per request sent, so this is also the bound of its records.
    pub requests_in_flight_max: usize,
    /// How long the gateway waits for the engine's answer to a request before answering
    /// it `unavailable` itself (a command lost with the bus). Longer than a failover
    /// (`cluster.lease_ttl_ms` + `bus.command_claim_idle_ms`), so a command a new leader
    /// re-handles is answered by the engine.
    pub request_timeout_ms: u64,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            shards: 0,
            outbound_queue_frames_max: 64,
            inbound_message_bytes_max: 4096,
            read_buffer_bytes: 1024,
            inbound_messages_per_second_max: 20,
            inbound_messages_burst_max: 40,
            rate_limit_strikes_max: 100,
            rate_limit_strikes_forgiven_per_second: 10,
            handshake_timeout_ms: 5_000,
            idle_timeout_ms: 60_000,
            ping_interval_ms: 25_000,
            auth_timeout_ms: 5_000,
            close_write_timeout_ms: 3_000,
            close_drain_timeout_ms: 1_000,
            close_drain_bytes_max: 262_144,
            connections_per_shard_max: 50_000,
            shard_queue_frames_max: 1024,
            allowed_origins: Vec::new(),
            snapshot_history_rounds: 20,
            recovery_window_events: 600,
            snapshot_bets_max: 100,
            requests_in_flight_max: 32,
            request_timeout_ms: 8_000,
        }
    }
}

/// The round loop and its limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Length of the betting phase.
    pub betting_duration_ms: u64,
    /// Pause after a crash before the next betting phase.
    pub crashed_duration_ms: u64,
    /// Interval between ticks while flying.
    pub tick_interval_ms: u64,
    /// Smallest stake, in minor units.
    pub bet_amount_min_minor: i64,
    /// Largest stake, in minor units.
    pub bet_amount_max_minor: i64,
    /// Largest auto-cashout multiplier accepted, in hundredths.
    pub auto_cashout_max_hundredths: u64,
    /// Round max profit: when the players' total profit would exceed it, everyone still
    /// in is cashed out at the multiplier that reaches it. In minor units.
    pub round_profit_max_minor: i64,
    /// Commands handled in one ledger transaction, at most.
    pub command_batch_max: usize,
    /// Growth rate of the multiplier, in millionths per millisecond:
    /// m(t) = floor(100 · e^(rate · t)). 60 gives 2.00x at about 11.55 s.
    pub growth_rate_per_ms_millionths: u64,
    /// Bets a tick lists publicly, at most: the largest accepted since the last tick.
    /// The others count only in the tick's totals (their players get `bet_ok`).
    pub public_bets_per_tick_max: usize,
    /// Cashouts a tick (or the crash) lists publicly, at most: the largest wins since
    /// the last tick.
    pub public_cashouts_per_tick_max: usize,
    /// A ledger batch that takes longer than this, in milliseconds, opens the room's
    /// circuit breaker (as a failed batch does): bets are refused `unavailable` for
    /// `ledger_breaker_cooldown_ms`.
    pub ledger_batch_timeout_ms: u64,
    /// How long an open breaker refuses bets before one batch probes the ledger again,
    /// in milliseconds.
    pub ledger_breaker_cooldown_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            betting_duration_ms: 5_000,
            crashed_duration_ms: 3_000,
            tick_interval_ms: 100,
            bet_amount_min_minor: 10,
            bet_amount_max_minor: 1_000_000,
            auto_cashout_max_hundredths: 1_000_000,
            round_profit_max_minor: 10_000_000,
            command_batch_max: 1024,
            growth_rate_per_ms_millionths: 60,
            public_bets_per_tick_max: 10,
            public_cashouts_per_tick_max: 10,
            ledger_batch_timeout_ms: 1_000,
            ledger_breaker_cooldown_ms: 5_000,
        }
    }
}

/// The ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LedgerConfig {
    /// SQLite file name inside `data_dir`.
    pub sqlite_file: String,
    /// Demo balance granted to each new guest, in minor units.
    pub guest_balance_minor: i64,
    /// PostgreSQL connections per process (cluster roles).
    pub postgres_pool_connections_max: usize,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            sqlite_file: "ledger.db".to_owned(),
            guest_balance_minor: 100_000,
            postgres_pool_connections_max: 8,
        }
    }
}

/// Provably fair crash points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FairConfig {
    /// House edge in basis points (100 = 1%).
    pub house_edge_bp: u32,
    /// Rounds per hash chain.
    pub chain_length: u64,
    /// Public salt mixed into every crash point; published at `/api/fair`. Empty = a
    /// random salt created on first run and stored in `data_dir`.
    pub salt: String,
    /// Secret (hex, 32+ bytes) every room's hash chains are derived from, so that every
    /// engine of a cluster plays the same chain. Empty = a random seed file per room in
    /// `data_dir` (embedded mode only). Required by the cluster roles.
    pub chain_secret: String,
}

impl Default for FairConfig {
    fn default() -> Self {
        FairConfig {
            house_edge_bp: 100,
            chain_length: 100_000,
            salt: String::new(),
            chain_secret: String::new(),
        }
    }
}

/// Player and operator tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 secret for player JWTs. Empty = a random one created on first run and
    /// stored in `data_dir` (set it explicitly when several processes must agree).
    pub jwt_secret: String,
    /// Lifetime of guest tokens, in seconds.
    pub guest_token_ttl_seconds: u64,
    /// Longest lifetime a token may claim (`exp` − `iat`, or `exp` − now without `iat`),
    /// in seconds; a token valid for longer is refused.
    pub token_lifetime_seconds_max: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: String::new(),
            guest_token_ttl_seconds: 86_400,
            token_lifetime_seconds_max: 604_800,
        }
    }
}

/// The bus between engines and gateways.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    /// Events kept per room for subscribers that are behind.
    pub event_buffer_events_max: usize,
    /// Commands waiting for a room's engine.
    pub command_queue_commands_max: usize,
    /// Replies waiting for a gateway.
    pub reply_queue_replies_max: usize,
    /// The Redis of the cluster roles is a Redis Cluster: sharded pub/sub.
    pub redis_cluster: bool,
    /// Prefix of every Redis key aloft owns; clusters sharing one Redis need their own.
    pub redis_key_prefix: String,
    /// A command taken by an engine that died is redelivered to the next leader after
    /// it has been idle this long (the lease's TTL is a good value).
    pub command_claim_idle_ms: u64,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            event_buffer_events_max: 1024,
            command_queue_commands_max: 8192,
            reply_queue_replies_max: 8192,
            redis_cluster: false,
            redis_key_prefix: "aloft".to_owned(),
            command_claim_idle_ms: 2_500,
        }
    }
}

/// Leadership of rooms among the engines of a cluster (Redis leases with fencing tokens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Lifetime of a room's lease: a standby takes a dead leader's room over within it.
    pub lease_ttl_ms: u64,
    /// Interval at which a leader renews its leases.
    pub lease_renew_interval_ms: u64,
    /// Interval at which a standby engine looks for rooms without a leader.
    pub standby_poll_interval_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            lease_ttl_ms: 2_500,
            lease_renew_interval_ms: 800,
            standby_poll_interval_ms: 250,
        }
    }
}

/// Admission of clients: per-address and per-player limits, guest creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Open sockets per client address (IPv6: per /64) on one gateway process; further
    /// `/ws` upgrades get HTTP 503 `ip_connections_max`.
    pub connections_per_ip_max: usize,
    /// Open sockets per player on one gateway process; further ones get HTTP 503
    /// `player_connections_max`. No network is exempt from it.
    pub connections_per_player_max: usize,
    /// CIDR blocks whose addresses skip the per-address limits (sockets and guest
    /// creation), e.g. a load generator's network; a list, or one comma-separated string
    /// in `ALOFT_LIMITS__EXEMPT_NETWORKS`.
    pub exempt_networks: ExemptNetworks,
    /// Guests one client address may create per minute (also the burst); further
    /// `POST /api/guest` get HTTP 429 with `Retry-After`.
    pub guests_per_ip_per_minute_max: u32,
    /// Client addresses whose guest rate is tracked at once; addresses whose bucket is
    /// full again are forgotten first, and past the bound new addresses wait (429).
    pub guest_rate_addresses_max: usize,
    /// A guest whose only ledger activity is its grant is removed this long after the
    /// grant (its balance goes back to the mint). Must outlast the guest token by an
    /// hour, so the token of an expired guest has expired too.
    pub guest_unused_expiry_seconds: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            connections_per_ip_max: 200,
            connections_per_player_max: 10,
            exempt_networks: ExemptNetworks::default(),
            guests_per_ip_per_minute_max: 10,
            guest_rate_addresses_max: 100_000,
            guest_unused_expiry_seconds: 172_800,
        }
    }
}

/// How much longer than a guest token an unused guest lives, in seconds: the token of a
/// guest that is expired has always expired before.
pub const GUEST_EXPIRY_MARGIN_SECONDS: u64 = 3_600;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A key has the wrong type or an unknown name; the message names the key and the
    /// source (file or environment variable).
    #[error("configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// A value is out of its allowed range.
    #[error("configuration: {key}: {reason}")]
    OutOfRange { key: &'static str, reason: String },
}

impl Config {
    /// Defaults, then `file` if given (else `config/aloft.toml` when it exists), then
    /// `ALOFT_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None => {
                let default_path = Path::new("config/aloft.toml");
                if default_path.exists() {
                    figment = figment.merge(Toml::file_exact(default_path));
                }
            }
        }
        let config: Config = figment
            .merge(Env::prefixed("ALOFT_").split("__"))
            .extract()
            .map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the relationships between values that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let engine = &self.engine;
        let gateway = &self.gateway;
        require(!self.rooms.is_empty(), "rooms", "at least one room")?;
        require(
            self.rooms.iter().all(|room| valid_room_name(room)),
            "rooms",
            "names are 1-32 characters of a-z, 0-9, - and _",
        )?;
        require(
            (10..=10_000).contains(&engine.tick_interval_ms),
            "engine.tick_interval_ms",
            "must be 10..=10000",
        )?;
        require(
            engine.betting_duration_ms >= engine.tick_interval_ms,
            "engine.betting_duration_ms",
            "must be at least one tick",
        )?;
        require(
            0 < engine.bet_amount_min_minor
                && engine.bet_amount_min_minor <= engine.bet_amount_max_minor,
            "engine.bet_amount_min_minor",
            "must be positive and at most engine.bet_amount_max_minor",
        )?;
        require(
            engine.auto_cashout_max_hundredths > 100,
            "engine.auto_cashout_max_hundredths",
            "must be above 100",
        )?;
        require(
            engine.round_profit_max_minor > 0,
            "engine.round_profit_max_minor",
            "must be positive",
        )?;
        require(
            engine.command_batch_max > 0,
            "engine.command_batch_max",
            "must be positive",
        )?;
        require(
            (1..=10_000).contains(&engine.growth_rate_per_ms_millionths),
            "engine.growth_rate_per_ms_millionths",
            "must be 1..=10000",
        )?;
        require(
            engine.public_bets_per_tick_max <= PUBLIC_ITEMS_PER_TICK_MAX,
            "engine.public_bets_per_tick_max",
            &format!("must be at most {PUBLIC_ITEMS_PER_TICK_MAX}"),
        )?;
        require(
            engine.public_cashouts_per_tick_max <= PUBLIC_ITEMS_PER_TICK_MAX,
            "engine.public_cashouts_per_tick_max",
            &format!("must be at most {PUBLIC_ITEMS_PER_TICK_MAX}"),
        )?;
        require(
            engine.ledger_batch_timeout_ms > 0,
            "engine.ledger_batch_timeout_ms",
            "must be positive",
        )?;
        require(
            engine.ledger_breaker_cooldown_ms > 0,
            "engine.ledger_breaker_cooldown_ms",
            "must be positive",
        )?;
        require(
            gateway.requests_in_flight_max > 0,
            "gateway.requests_in_flight_max",
            "must be positive",
        )?;
        require(
            gateway.request_timeout_ms > 0,
            "gateway.request_timeout_ms",
            "must be positive",
        )?;
        require(
            gateway.snapshot_bets_max <= SNAPSHOT_BETS_MAX,
            "gateway.snapshot_bets_max",
            &format!("must be at most {SNAPSHOT_BETS_MAX}"),
        )?;
        require(
            gateway.outbound_queue_frames_max >= 2,
            "gateway.outbound_queue_frames_max",
            "must be at least 2",
        )?;
        require(
            (128..=1_048_576).contains(&gateway.inbound_message_bytes_max),
            "gateway.inbound_message_bytes_max",
            "must be 128..=1048576",
        )?;
        require(
            gateway.read_buffer_bytes >= 256,
            "gateway.read_buffer_bytes",
            "must be at least 256",
        )?;
        require(
            gateway.inbound_messages_per_second_max > 0 && gateway.inbound_messages_burst_max > 0,
            "gateway.inbound_messages_per_second_max",
            "rate and burst must be positive",
        )?;
        require(
            (1..=60_000).contains(&gateway.close_write_timeout_ms)
                && (1..=60_000).contains(&gateway.close_drain_timeout_ms),
            "gateway.close_write_timeout_ms",
            "close_write_timeout_ms and close_drain_timeout_ms must be 1..=60000",
        )?;
        require(
            (1..=60_000).contains(&gateway.auth_timeout_ms),
            "gateway.auth_timeout_ms",
            "must be 1..=60000",
        )?;
        require(
            (1..=CLOSE_DRAIN_BYTES_MAX).contains(&gateway.close_drain_bytes_max),
            "gateway.close_drain_bytes_max",
            "must be 1..=16777216",
        )?;
        require(
            gateway.idle_timeout_ms > gateway.ping_interval_ms,
            "gateway.idle_timeout_ms",
            "must exceed gateway.ping_interval_ms",
        )?;
        require(
            gateway.shard_queue_frames_max > 0 && gateway.connections_per_shard_max > 0,
            "gateway.shard_queue_frames_max",
            "queues must be positive",
        )?;
        require(
            gateway.recovery_window_events <= RECOVERY_WINDOW_EVENTS_MAX,
            "gateway.recovery_window_events",
            "must be at most 100000",
        )?;
        require(
            self.fair.house_edge_bp <= crate::fair::HOUSE_EDGE_BP_MAX,
            "fair.house_edge_bp",
            "must be at most 5000",
        )?;
        require(
            (1..=crate::fair::CHAIN_LENGTH_MAX).contains(&self.fair.chain_length),
            "fair.chain_length",
            "must be 1..=10000000",
        )?;
        require(
            self.ledger.guest_balance_minor >= 0,
            "ledger.guest_balance_minor",
            "must not be negative",
        )?;
        require(
            self.bus.event_buffer_events_max > 0
                && self.bus.command_queue_commands_max > 0
                && self.bus.reply_queue_replies_max > 0,
            "bus.event_buffer_events_max",
            "queues must be positive",
        )?;
        require(
            self.bus.command_claim_idle_ms > 0,
            "bus.command_claim_idle_ms",
            "must be positive",
        )?;
        require(
            self.ledger.postgres_pool_connections_max > 0,
            "ledger.postgres_pool_connections_max",
            "must be positive",
        )?;
        require(
            self.fair.chain_secret.is_empty() || hex_secret_is_strong(&self.fair.chain_secret),
            "fair.chain_secret",
            "must be at least 64 hex characters (32 bytes)",
        )?;
        self.validate_limits()?;
        let cluster = &self.cluster;
        require(
            0 < cluster.lease_renew_interval_ms
                && cluster.lease_renew_interval_ms.saturating_mul(2) <= cluster.lease_ttl_ms,
            "cluster.lease_renew_interval_ms",
            "must be positive and at most half of cluster.lease_ttl_ms",
        )?;
        require(
            cluster.standby_poll_interval_ms > 0,
            "cluster.standby_poll_interval_ms",
            "must be positive",
        )?;
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let limits = &self.limits;
        let auth = &self.auth;
        require(
            limits.connections_per_ip_max > 0 && limits.connections_per_player_max > 0,
            "limits.connections_per_ip_max",
            "connection limits must be positive",
        )?;
        require(
            limits.guests_per_ip_per_minute_max > 0 && limits.guest_rate_addresses_max > 0,
            "limits.guests_per_ip_per_minute_max",
            "guest limits must be positive",
        )?;
        require(
            limits.guest_unused_expiry_seconds
                >= auth.guest_token_ttl_seconds + GUEST_EXPIRY_MARGIN_SECONDS,
            "limits.guest_unused_expiry_seconds",
            "must be at least auth.guest_token_ttl_seconds + 3600",
        )?;
        require(
            (1..=auth.token_lifetime_seconds_max).contains(&auth.guest_token_ttl_seconds),
            "auth.guest_token_ttl_seconds",
            "must be 1..=auth.token_lifetime_seconds_max",
        )
    }

    /// Checks what the cluster roles need beyond `validate`: the secrets every process
    /// of a cluster must share (a random per-process default would split the cluster).
    pub fn validate_for_cluster(&self) -> Result<(), ConfigError> {
        let shared = [
            ("auth.jwt_secret", self.auth.jwt_secret.is_empty()),
            ("fair.salt", self.fair.salt.is_empty()),
            ("fair.chain_secret", self.fair.chain_secret.is_empty()),
        ];
        for (key, missing) in shared {
            if missing {
                return Err(ConfigError::OutOfRange {
                    key,
                    reason: "must be set (the same in every process of the cluster)".to_owned(),
                });
            }
        }
        Ok(())
    }

    /// Shards to run: the configured count, or one per core.
    pub fn shard_count(&self) -> usize {
        if self.gateway.shards > 0 {
            self.gateway.shards
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

fn require(ok: bool, key: &'static str, reason: &str) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            key,
            reason: reason.to_owned(),
        })
    }
}

fn hex_secret_is_strong(secret: &str) -> bool {
    secret.len() >= 64 && secret.len() % 2 == 0 && secret.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Largest `gateway.recovery_window_events`: each shard holds that many frame references
/// per room, and a resuming client may be sent that many frames at once.
pub const RECOVERY_WINDOW_EVENTS_MAX: usize = 100_000;

/// Largest `gateway.close_drain_bytes_max`: discarding is cheap, but a closing socket
/// must not be kept busy by a peer that keeps sending.
pub const CLOSE_DRAIN_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Room names appear in URLs, keys and logs: keep them plain.
pub fn valid_room_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn the_recovery_window_is_bounded() {
        let mut config = Config::default();
        config.gateway.recovery_window_events = 0;
        config.validate().unwrap();
        config.gateway.recovery_window_events = RECOVERY_WINDOW_EVENTS_MAX + 1;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("gateway.recovery_window_events"), "{error}");
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own large error.
    fn exempt_networks_come_comma_separated_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "ALOFT_LIMITS__EXEMPT_NETWORKS",
                "127.0.0.0/8,10.0.0.0/8,::1/128",
            );
            jail.create_file("c.toml", "")?;
            let config = Config::load(Some(Path::new("c.toml"))).unwrap();
            let exempt = &config.limits.exempt_networks;
            for address in ["127.0.0.1", "10.2.3.4", "::1"] {
                assert!(exempt.contains(address.parse().unwrap()), "{address}");
            }
            assert!(!exempt.contains("192.0.2.1".parse().unwrap()));

            jail.set_env("ALOFT_LIMITS__EXEMPT_NETWORKS", "127.0.0.1");
            let error = Config::load(Some(Path::new("c.toml")))
                .unwrap_err()
                .to_string();
            assert!(
                error.to_lowercase().contains("limits.exempt_networks"),
                "{error}"
            );
            Ok(())
        });
    }

    #[test]
    fn an_unused_guest_outlives_its_token() {
        let mut config = Config::default();
        config.limits.guest_unused_expiry_seconds = config.auth.guest_token_ttl_seconds;
        let error = config.validate().unwrap_err().to_string();
        assert!(
            error.contains("limits.guest_unused_expiry_seconds"),
            "{error}"
        );
        let mut config = Config::default();
        config.auth.guest_token_ttl_seconds = config.auth.token_lifetime_seconds_max + 1;
        config.limits.guest_unused_expiry_seconds = u64::MAX / 2;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("auth.guest_token_ttl_seconds"), "{error}");
    }

    #[test]
    fn shipped_config_file_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/aloft.toml");
        let from_file: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file_exact(&path))
            .extract()
            .unwrap();
        assert_eq!(from_file, Config::default());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own large error.
    fn environment_overrides_file_and_errors_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "c.toml",
                "listen = \"127.0.0.1:9000\"\n[engine]\ntick_interval_ms = 50\n",
            )?;
            jail.set_env("ALOFT_DATA_DIR", "/tmp/x");
            jail.set_env("ALOFT_ENGINE__BETTING_DURATION_MS", "7000");
            let config = Config::load(Some(Path::new("c.toml"))).unwrap();
            assert_eq!(config.listen.port(), 9000);
            assert_eq!(config.engine.tick_interval_ms, 50);
            assert_eq!(config.engine.betting_duration_ms, 7000);
            assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));

            jail.set_env("ALOFT_ENGINE__TICK_INTERVAL_MS", "fast");
            let error = Config::load(Some(Path::new("c.toml")))
                .unwrap_err()
                .to_string();
            assert!(
                error.to_lowercase().contains("engine.tick_interval_ms"),
                "{error}"
            );

            jail.set_env("ALOFT_ENGINE__TICK_INTERVAL_MS", "1");
            let error = Config::load(Some(Path::new("c.toml")))
                .unwrap_err()
                .to_string();
            assert!(error.contains("engine.tick_interval_ms"), "{error}");
            Ok(())
        });
    }
}

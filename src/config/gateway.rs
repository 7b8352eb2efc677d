//! The gateway's section (`[gateway]`): sockets, shards and per-connection limits.

use serde::{Deserialize, Serialize};

use super::{ConfigError, require};

/// Highest `gateway.snapshot_bets_max`, in bets.
pub const SNAPSHOT_BETS_MAX: usize = 10_000;

/// Largest `gateway.recovery_window_events`: each shard holds that many frame references
/// per room, and a resuming client may be sent that many frames at once.
pub const RECOVERY_WINDOW_EVENTS_MAX: usize = 100_000;

/// Largest `gateway.close_drain_bytes_max`: discarding is cheap, but a closing socket
/// must not be kept busy by a peer that keeps sending.
pub const CLOSE_DRAIN_BYTES_MAX: usize = 16 * 1024 * 1024;

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

impl GatewayConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        self.validate_queues()?;
        self.validate_frames()?;
        self.validate_timeouts()
    }

    fn validate_queues(&self) -> Result<(), ConfigError> {
        require(
            self.requests_in_flight_max > 0,
            "gateway.requests_in_flight_max",
            "must be positive",
        )?;
        require(
            self.request_timeout_ms > 0,
            "gateway.request_timeout_ms",
            "must be positive",
        )?;
        require(
            self.snapshot_bets_max <= SNAPSHOT_BETS_MAX,
            "gateway.snapshot_bets_max",
            &format!("must be at most {SNAPSHOT_BETS_MAX}"),
        )?;
        require(
            self.outbound_queue_frames_max >= 2,
            "gateway.outbound_queue_frames_max",
            "must be at least 2",
        )?;
        require(
            self.shard_queue_frames_max > 0 && self.connections_per_shard_max > 0,
            "gateway.shard_queue_frames_max",
            "queues must be positive",
        )?;
        require(
            self.recovery_window_events <= RECOVERY_WINDOW_EVENTS_MAX,
            "gateway.recovery_window_events",
            "must be at most 100000",
        )
    }

    fn validate_frames(&self) -> Result<(), ConfigError> {
        require(
            (128..=1_048_576).contains(&self.inbound_message_bytes_max),
            "gateway.inbound_message_bytes_max",
            "must be 128..=1048576",
        )?;
        require(
            self.read_buffer_bytes >= 256,
            "gateway.read_buffer_bytes",
            "must be at least 256",
        )?;
        require(
            self.inbound_messages_per_second_max > 0 && self.inbound_messages_burst_max > 0,
            "gateway.inbound_messages_per_second_max",
            "rate and burst must be positive",
        )?;
        require(
            (1..=CLOSE_DRAIN_BYTES_MAX).contains(&self.close_drain_bytes_max),
            "gateway.close_drain_bytes_max",
            "must be 1..=16777216",
        )
    }

    fn validate_timeouts(&self) -> Result<(), ConfigError> {
        require(
            (1..=60_000).contains(&self.close_write_timeout_ms)
                && (1..=60_000).contains(&self.close_drain_timeout_ms),
            "gateway.close_write_timeout_ms",
            "close_write_timeout_ms and close_drain_timeout_ms must be 1..=60000",
        )?;
        require(
            (1..=60_000).contains(&self.auth_timeout_ms),
            "gateway.auth_timeout_ms",
            "must be 1..=60000",
        )?;
        require(
            self.idle_timeout_ms > self.ping_interval_ms,
            "gateway.idle_timeout_ms",
            "must exceed gateway.ping_interval_ms",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    #[test]
    fn the_recovery_window_is_bounded() {
        let mut config = Config::default();
        config.gateway.recovery_window_events = 0;
        config.validate().unwrap();
        config.gateway.recovery_window_events = RECOVERY_WINDOW_EVENTS_MAX + 1;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("gateway.recovery_window_events"), "{error}");
    }
}

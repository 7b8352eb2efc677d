//! The bus's section (`[bus]`): queues between engines and gateways, Redis keys.

use serde::{Deserialize, Serialize};

use super::{ConfigError, require};

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

impl BusConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        require(
            self.event_buffer_events_max > 0
                && self.command_queue_commands_max > 0
                && self.reply_queue_replies_max > 0,
            "bus.event_buffer_events_max",
            "queues must be positive",
        )?;
        require(
            self.command_claim_idle_ms > 0,
            "bus.command_claim_idle_ms",
            "must be positive",
        )
    }
}

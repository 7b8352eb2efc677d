//! The status channel of the operator console: every process of a deployment (an
//! engine, a gateway, or both in `aloft serve`) tells the others, about once a second
//! ([`STATUS_INTERVAL_MS`]), what it does, through the bus ([`crate::bus::Bus::publish_status`]).
//! Best effort: a report lost or late only ages, and a process whose reports stop for
//! [`STATUS_STALE_MS`] is shown as gone.
//!
//! - this file: the report ([`StatusReport`]: an [`EngineStatus`] or a
//!   [`GatewayStatus`]) and its bytes on the bus (JSON, at most
//!   [`STATUS_REPORT_BYTES_MAX`]);
//! - [`latency`]: the bounded bucket histogram of bet-ack latency an engine reports per
//!   room ([`AckLatency`]), in integer microseconds;
//! - [`leading`]: the rooms an engine process leads now ([`LeadingRooms`]), registered by
//!   the room runner while it leads;
//! - [`publisher`]: the task that builds and publishes a process's reports.
//!
//! The console's side (who leads what, failovers, sums across gateways) is
//! `operator::cluster`.

pub mod latency;
pub mod leading;
pub mod publisher;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use latency::AckLatency;
pub use leading::LeadingRooms;

/// How often a process reports.
pub const STATUS_INTERVAL_MS: u64 = 1_000;
/// A process not heard of for this long is shown as gone (and the rooms it led as
/// leaderless).
pub const STATUS_STALE_MS: u64 = 5_000;
/// Largest report a reader decodes; a larger one is dropped (logged).
pub const STATUS_REPORT_BYTES_MAX: usize = 64 * 1024;

/// One process's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The process's id: an engine's `--engine-id`, a gateway's id.
    pub process: String,
    /// When the report was made (the sender's unix ms).
    pub at_ms: u64,
    #[serde(flatten)]
    pub role: ProcessStatus,
}

/// What kind of process reports, and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum ProcessStatus {
    Engine(EngineStatus),
    Gateway(GatewayStatus),
}

/// An engine process: the rooms it leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStatus {
    pub rooms: Vec<LedRoom>,
}

/// A room an engine leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedRoom {
    pub room: String,
    /// The numbering of the room's events under this leader (a new one per takeover).
    pub epoch: u64,
    /// The lease's fencing token; `None` in `aloft serve` (no lease).
    pub fencing_token: Option<u64>,
    /// When this engine started leading the room (unix ms).
    pub leading_since_ms: u64,
    /// Bets acknowledged since the last report, per bucket of
    /// [`latency::ACK_BUCKET_BOUNDS_US`] (the last bucket: slower than every bound).
    pub ack_bucket_counts: Vec<u64>,
}

/// A gateway process: its sockets and traffic over the last interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayStatus {
    /// Open player sockets, per shard.
    pub connections_per_shard: Vec<u64>,
    pub frames_per_second: u64,
    pub bets_per_second: u64,
    /// Since the gateway started.
    pub slow_consumer_closes: u64,
}

/// Why a report read from the bus was dropped.
#[derive(Debug, thiserror::Error)]
pub enum StatusDecodeError {
    /// Larger than [`STATUS_REPORT_BYTES_MAX`]: not a report of this aloft.
    #[error("status report of {bytes} bytes (at most {STATUS_REPORT_BYTES_MAX})")]
    TooLarge { bytes: usize },
    /// Not a report of this version: a process of another aloft version, or another
    /// program, publishes under the same key prefix.
    #[error("undecodable status report: {0}")]
    Json(#[from] serde_json::Error),
}

impl StatusReport {
    pub fn encode(&self) -> Bytes {
        Bytes::from(serde_json::to_vec(self).expect("status reports serialize"))
    }

    pub fn decode(bytes: &[u8]) -> Result<StatusReport, StatusDecodeError> {
        if bytes.len() > STATUS_REPORT_BYTES_MAX {
            return Err(StatusDecodeError::TooLarge { bytes: bytes.len() });
        }
        Ok(serde_json::from_slice(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_survives_its_bytes_and_oversized_or_foreign_bytes_are_refused() {
        let report = StatusReport {
            process: "engine-a".into(),
            at_ms: 1_700_000_000_000,
            role: ProcessStatus::Engine(EngineStatus {
                rooms: vec![LedRoom {
                    room: "r1".into(),
                    epoch: 9,
                    fencing_token: Some(4),
                    leading_since_ms: 1_699_999_999_000,
                    ack_bucket_counts: vec![1, 2, 3],
                }],
            }),
        };
        assert_eq!(StatusReport::decode(&report.encode()).unwrap(), report);
        let big = vec![b' '; STATUS_REPORT_BYTES_MAX + 1];
        assert!(matches!(
            StatusReport::decode(&big),
            Err(StatusDecodeError::TooLarge { .. })
        ));
        assert!(matches!(
            StatusReport::decode(br#"{"process":"x","at_ms":1,"role":"printer"}"#),
            Err(StatusDecodeError::Json(_))
        ));
    }
}

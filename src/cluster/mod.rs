//! Cluster mode: the engine role (`aloft engine`) and what it needs beyond the embedded
//! mode — room leases with fencing tokens ([`lease`]) and the loop that leads rooms, hands
//! them over and takes them over ([`engine_node`]). The cluster gateway is
//! [`crate::Server::start_gateway`]: the same gateway as the embedded mode on other
//! backends (Redis bus, PostgreSQL ledger).

pub mod engine_node;
pub mod lease;

pub use engine_node::{EngineNode, EngineNodeError};

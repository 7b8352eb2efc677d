//! Prometheus metrics: the families (all `aloft_*`, listed in [`FAMILIES`] with their
//! HELP text), the process-wide recorder (a `role` label on every series, explicit
//! buckets for every histogram), and the [`MetricsListener`] that serves `/metrics` on
//! `metrics_listen`, apart from the player port, in every role.
//!
//! Every family exists from the start: the listener registers each series whose labels
//! are known then (per room, shard, refusal code, reason …) at 0, through the same handle
//! types the engine ([`engine`]) and the gateway ([`gateway`]) count with. Hot paths count
//! per batch (one increment per fan-out of a frame, not per socket) through handles made
//! once, never with per-socket or per-player labels.

pub mod engine;
mod families;
pub mod gateway;
mod listener;

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use families::*;
pub use listener::{MetricsError, MetricsListener};

/// The role of the process, the `role` label of every series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `aloft serve`: engine and gateway in one process.
    Serve,
    Engine,
    Gateway,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Serve => "serve",
            Role::Engine => "engine",
            Role::Gateway => "gateway",
        }
    }

    /// Whether the role exports the families of `side`.
    pub fn exports(self, side: Side) -> bool {
        match self {
            Role::Serve => true,
            Role::Engine => side == Side::Engine,
            Role::Gateway => side == Side::Gateway,
        }
    }
}

/// What a process exports: its role, and the label values known at its start.
#[derive(Debug, Clone, Copy)]
pub struct Exported<'a> {
    pub role: Role,
    pub rooms: &'a [String],
    /// Gateway shards (none in `aloft engine`).
    pub shards: usize,
}

impl<'a> Exported<'a> {
    pub fn new(role: Role, rooms: &'a [String], shards: usize) -> Exported<'a> {
        Exported {
            role,
            rooms,
            shards,
        }
    }
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once, labelled with `role`, and describes every
/// family; later calls return the same handle (tests start several servers in one
/// process: the first one's role labels them all).
pub fn install(role: Role) -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new().add_global_label("role", role.as_str());
            for family in FAMILIES {
                if let Kind::Histogram(buckets) = family.kind {
                    builder = builder
                        .set_buckets_for_metric(Matcher::Full(family.name.to_owned()), buckets)
                        .expect("bucket lists are not empty");
                }
            }
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder was installed first (an embedding
            // program's); its metrics then go there and /metrics shows ours as empty.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    for family in FAMILIES {
        let (name, unit, help) = (family.name, family.unit, family.help);
        match family.kind {
            Kind::Counter => metrics::describe_counter!(name, unit, help),
            Kind::Gauge => metrics::describe_gauge!(name, unit, help),
            Kind::Histogram(_) => metrics::describe_histogram!(name, unit, help),
        }
    }
}

/// Registers at 0 every series of `exported`'s role whose labels are known at start.
pub fn register(exported: Exported<'_>) {
    if exported.role.exports(Side::Engine) {
        engine::register(exported.rooms);
    }
    if exported.role.exports(Side::Gateway) {
        gateway::register(exported.rooms, exported.shards);
    }
}

//! The task that publishes a process's status reports on the bus every
//! [`STATUS_INTERVAL_MS`]: one per role the process runs (an engine's rooms from its
//! [`LeadingRooms`], a gateway's traffic from its [`Traffic`] counts as rates over the
//! interval). A failed publish is logged once until one succeeds again; the reports
//! that failed are not resent (the next is newer).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{
    EngineStatus, GatewayStatus, LeadingRooms, ProcessStatus, STATUS_INTERVAL_MS, StatusReport,
};
use crate::bus::Bus;
use crate::gateway::traffic::{Traffic, TrafficCounts};

/// A role whose status a process reports.
pub enum Reporter {
    Engine {
        id: String,
        rooms: Arc<LeadingRooms>,
    },
    Gateway {
        id: String,
        traffic: Arc<Traffic>,
    },
}

/// A reporter and what it reported last.
struct Reporting {
    reporter: Reporter,
    /// A gateway's counts at the last report, to report rates.
    last_counts: Option<(Instant, TrafficCounts)>,
}

impl Reporting {
    fn report(&mut self, at_ms: u64) -> StatusReport {
        let (process, role) = match &self.reporter {
            Reporter::Engine { id, rooms } => {
                let rooms = rooms.report();
                (id, ProcessStatus::Engine(EngineStatus { rooms }))
            }
            Reporter::Gateway { id, traffic } => {
                let now = (Instant::now(), traffic.counts());
                let status = gateway_status(self.last_counts.as_ref(), &now);
                self.last_counts = Some(now);
                (id, ProcessStatus::Gateway(status))
            }
        };
        StatusReport {
            process: process.clone(),
            at_ms,
            role,
        }
    }
}

/// A gateway's status from its counts now and at the last report (rates of 0 at the
/// first report).
fn gateway_status(
    before: Option<&(Instant, TrafficCounts)>,
    now: &(Instant, TrafficCounts),
) -> GatewayStatus {
    let (now_at, counts) = now;
    let per_second = |current: u64, previous: fn(&TrafficCounts) -> u64| {
        let Some((before_at, before)) = before else {
            return 0;
        };
        let elapsed_ms = now_at.duration_since(*before_at).as_millis().max(1);
        let delta = u128::from(current.saturating_sub(previous(before)));
        u64::try_from(delta * 1_000 / elapsed_ms).unwrap_or(u64::MAX)
    };
    GatewayStatus {
        connections_per_shard: counts.connections.clone(),
        frames_per_second: per_second(counts.frames_sent, |c| c.frames_sent),
        bets_per_second: per_second(counts.bets, |c| c.bets),
        slow_consumer_closes: counts.slow_consumer_closes,
    }
}

/// Publishes the reports of `reporters` on `bus` every [`STATUS_INTERVAL_MS`] until
/// `shutdown`.
pub async fn run(bus: Arc<dyn Bus>, reporters: Vec<Reporter>, shutdown: CancellationToken) {
    let mut reporting: Vec<Reporting> = reporters
        .into_iter()
        .map(|reporter| Reporting {
            reporter,
            last_counts: None,
        })
        .collect();
    let mut timer = tokio::time::interval(Duration::from_millis(STATUS_INTERVAL_MS));
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = timer.tick() => {}
        }
        let at_ms = crate::clock::unix_now_ms();
        for reporting in &mut reporting {
            let report = reporting.report(at_ms);
            match bus.publish_status(report.encode()).await {
                Ok(()) => failing = false,
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "status report not published; retrying each second");
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_reports_rates_over_the_interval() {
        let at = Instant::now();
        let counts = |frames_sent, bets| TrafficCounts {
            connections: vec![2, 3],
            frames_sent,
            bets,
            slow_consumer_closes: 1,
        };
        let first = gateway_status(None, &(at, counts(100, 10)));
        assert_eq!((first.frames_per_second, first.bets_per_second), (0, 0));
        let before = (at, counts(100, 10));
        let now = (at + Duration::from_millis(2_000), counts(700, 30));
        let status = gateway_status(Some(&before), &now);
        assert_eq!(
            (status.frames_per_second, status.bets_per_second),
            (300, 10)
        );
        assert_eq!(status.connections_per_shard, [2, 3]);
        assert_eq!(status.slow_consumer_closes, 1);
    }
}

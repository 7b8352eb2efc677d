//! The cluster as the operator console sees it, from the processes' status reports
//! (`crate::status`, through the bus): [`ClusterView`] knows every engine and gateway
//! heard of (gone once silent for [`STATUS_STALE_MS`]), which engine leads each room with
//! its epoch and fencing token, the failovers (a room's leader or epoch changed) with
//! how long the room had no leader, and the traffic summed over the live gateways with
//! the bet-ack latency over the live engines' rooms. Pure: times are passed in (the
//! receiving gateway's clock for "last seen", the reporters' clocks for leadership), so
//! tests drive it with a fake clock.
//!
//! Bounded: at most [`PROCESSES_KEPT_MAX`] processes (a process gone for
//! [`GONE_FORGOTTEN_MS`] is forgotten, and the longest silent first when full), the
//! configured rooms, the last [`FAILOVERS_KEPT_MAX`] failovers.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use crate::status::latency::{ACK_BUCKETS, add_counts, quantile_us};
use crate::status::{
    EngineStatus, GatewayStatus, LedRoom, ProcessStatus, STATUS_STALE_MS, StatusReport,
};

/// Failovers kept, newest first.
pub const FAILOVERS_KEPT_MAX: usize = 50;
/// Engines and gateways kept.
pub const PROCESSES_KEPT_MAX: usize = 64;
/// A process silent this long is no longer listed.
pub const GONE_FORGOTTEN_MS: u64 = 300_000;

/// A room's leader changed: another engine, or the same one under a new epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failover {
    pub room: String,
    pub from_engine: String,
    /// Epochs as decimal text (any u64), as the room reports carry them.
    pub from_epoch: String,
    pub to_engine: String,
    pub to_epoch: String,
    pub to_fencing_token: Option<u64>,
    /// When the new leader started leading (its clock, unix ms).
    pub at_ms: u64,
    /// From the last report of the old leader that still led the room to the new one's
    /// start: at most a report interval more than the room really went without a leader.
    pub leaderless_ms: u64,
}

/// The deployment's traffic: the live gateways' last status reports summed, and the
/// bet-ack latency of the live engines' rooms over their last report interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrafficReport {
    pub at_ms: u64,
    /// Gateways reporting.
    pub gateways: u64,
    /// Open player sockets, all gateways.
    pub connections: u64,
    pub frames_per_second: u64,
    pub bets_per_second: u64,
    /// Since each gateway started.
    pub slow_consumer_closes: u64,
    /// Microseconds, the upper bound of the quantile's bucket; `None` without bets.
    pub ack_p50_us: Option<u64>,
    pub ack_p99_us: Option<u64>,
}

/// An engine as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineRow {
    pub engine: String,
    pub alive: bool,
    pub last_seen_ms: u64,
    pub rooms: Vec<String>,
}

/// A gateway as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayRow {
    pub gateway: String,
    pub alive: bool,
    pub last_seen_ms: u64,
    #[serde(flatten)]
    pub status: GatewayStatus,
}

/// Who leads a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomLeaderRow {
    pub room: String,
    /// The leading engine; `None` while the room has none (never had one, its leader
    /// stopped leading it or went silent).
    pub engine: Option<String>,
    pub epoch: Option<String>,
    pub fencing_token: Option<u64>,
    pub leading_since_ms: Option<u64>,
    /// Bet-ack latency over the leader's last report interval, microseconds (the upper
    /// bound of the quantile's bucket); `None` without bets.
    pub ack_p50_us: Option<u64>,
    pub ack_p99_us: Option<u64>,
}

/// The cluster panel's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterReport {
    pub at_ms: u64,
    /// [`STATUS_STALE_MS`]: silent this long, a process is shown gone.
    pub stale_after_ms: u64,
    pub engines: Vec<EngineRow>,
    pub gateways: Vec<GatewayRow>,
    pub rooms: Vec<RoomLeaderRow>,
    /// Newest first.
    pub failovers: Vec<Failover>,
}

/// A process heard of.
#[derive(Debug, Clone)]
struct Seen<T> {
    /// The receiving gateway's clock.
    last_seen_ms: u64,
    /// Silent for [`STATUS_STALE_MS`] (and told as a warning once).
    gone: bool,
    status: T,
}

/// A room's latest known leadership.
#[derive(Debug, Clone)]
struct Leadership {
    engine: String,
    led: LedRoom,
    /// The reporter's time of the last report in which it still led the room.
    last_led_at_ms: u64,
    /// False once the leader stopped leading the room or went silent.
    current: bool,
}

/// Every process and room leadership the console knows of.
#[derive(Debug, Default)]
pub struct ClusterView {
    engines: BTreeMap<String, Seen<EngineStatus>>,
    gateways: BTreeMap<String, Seen<GatewayStatus>>,
    /// The configured rooms, each with its latest leadership once one was reported.
    rooms: BTreeMap<String, Option<Leadership>>,
    failovers: VecDeque<Failover>,
}

impl ClusterView {
    pub fn new(rooms: &[String]) -> ClusterView {
        ClusterView {
            rooms: rooms.iter().map(|room| (room.clone(), None)).collect(),
            ..ClusterView::default()
        }
    }

    /// Takes `report`, received at `now_ms`; the warnings it makes (failovers, a room
    /// left without a leader, a process heard of again after it was shown gone).
    pub fn apply(&mut self, report: StatusReport, now_ms: u64) -> Vec<String> {
        let mut warnings = Vec::new();
        let process = report.process;
        let was_gone = match report.role {
            ProcessStatus::Gateway(status) => {
                let before = self.gateways.insert(process.clone(), seen(status, now_ms));
                before.is_some_and(|before| before.gone)
            }
            ProcessStatus::Engine(status) => {
                self.follow_leaders(&process, &status, report.at_ms, &mut warnings);
                let before = self.engines.insert(process.clone(), seen(status, now_ms));
                before.is_some_and(|before| before.gone)
            }
        };
        if was_gone {
            warnings.push(format!("{process} reports again"));
        }
        forget_the_longest_silent(&mut self.engines, &mut self.gateways);
        warnings
    }

    /// Updates the rooms' leaders from `engine`'s report made at `at_ms`.
    fn follow_leaders(
        &mut self,
        engine: &str,
        status: &EngineStatus,
        at_ms: u64,
        warnings: &mut Vec<String>,
    ) {
        for led in &status.rooms {
            let Some(known) = self.rooms.get_mut(&led.room) else {
                continue; // a room this gateway is not configured for
            };
            let leadership = Leadership {
                engine: engine.to_owned(),
                led: led.clone(),
                last_led_at_ms: at_ms,
                current: true,
            };
            match known {
                None => *known = Some(leadership),
                Some(previous) if previous.engine == engine && previous.led.epoch == led.epoch => {
                    *previous = leadership;
                }
                // A deposed leader still reporting what it led: the newer one stands.
                Some(previous) if is_older(led, &previous.led) => {}
                Some(previous) => {
                    let failover = failover(previous, &leadership);
                    warnings.push(failover_message(&failover));
                    self.failovers.push_front(failover);
                    self.failovers.truncate(FAILOVERS_KEPT_MAX);
                    *previous = leadership;
                }
            }
        }
        for (room, known) in &mut self.rooms {
            let dropped = known.as_mut().filter(|leadership| {
                leadership.engine == engine
                    && leadership.current
                    && !status.rooms.iter().any(|led| &led.room == room)
            });
            if let Some(leadership) = dropped {
                leadership.current = false;
                warnings.push(format!(
                    "room {room}: {engine} stopped leading it; no leader"
                ));
            }
        }
    }

    /// Marks the processes silent for more than [`STATUS_STALE_MS`] at `now_ms` as gone
    /// (the rooms their engines led are left without a leader) and forgets those silent
    /// for [`GONE_FORGOTTEN_MS`]; the warnings it makes.
    pub fn expire(&mut self, now_ms: u64) -> Vec<String> {
        let mut warnings = Vec::new();
        let mut gone_engines = Vec::new();
        for (engine, seen) in &mut self.engines {
            if mark_gone(engine, seen, now_ms, &mut warnings) {
                gone_engines.push(engine.clone());
            }
        }
        for (gateway, seen) in &mut self.gateways {
            mark_gone(gateway, seen, now_ms, &mut warnings);
        }
        for (room, known) in &mut self.rooms {
            let orphaned = known.as_mut().filter(|leadership| {
                leadership.current && gone_engines.contains(&leadership.engine)
            });
            if let Some(leadership) = orphaned {
                leadership.current = false;
                let engine = &leadership.engine;
                warnings.push(format!(
                    "room {room}: its leader {engine} went silent; no leader"
                ));
            }
        }
        let kept = |seen_ms: u64| now_ms.saturating_sub(seen_ms) <= GONE_FORGOTTEN_MS;
        self.engines.retain(|_, seen| kept(seen.last_seen_ms));
        self.gateways.retain(|_, seen| kept(seen.last_seen_ms));
        warnings
    }

    /// The cluster panel at `now_ms`.
    pub fn report(&self, now_ms: u64) -> ClusterReport {
        let engines = self.engines.iter().map(|(engine, seen)| EngineRow {
            engine: engine.clone(),
            alive: !seen.gone,
            last_seen_ms: seen.last_seen_ms,
            // A gone engine leads nothing, whatever its last report said.
            rooms: (seen.status.rooms.iter())
                .filter(|_| !seen.gone)
                .map(|led| led.room.clone())
                .collect(),
        });
        let gateways = self.gateways.iter().map(|(gateway, seen)| GatewayRow {
            gateway: gateway.clone(),
            alive: !seen.gone,
            last_seen_ms: seen.last_seen_ms,
            status: seen.status.clone(),
        });
        ClusterReport {
            at_ms: now_ms,
            stale_after_ms: STATUS_STALE_MS,
            engines: engines.collect(),
            gateways: gateways.collect(),
            rooms: self.rooms.iter().map(room_row).collect(),
            failovers: self.failovers.iter().cloned().collect(),
        }
    }

    /// The traffic summed over the live gateways, with the bet-ack latency of the live
    /// engines' rooms over their last report interval.
    pub fn traffic(&self, now_ms: u64) -> TrafficReport {
        let mut report = TrafficReport {
            at_ms: now_ms,
            gateways: 0,
            connections: 0,
            frames_per_second: 0,
            bets_per_second: 0,
            slow_consumer_closes: 0,
            ack_p50_us: None,
            ack_p99_us: None,
        };
        for seen in self.gateways.values().filter(|seen| !seen.gone) {
            let status = &seen.status;
            report.gateways += 1;
            report.connections += status.connections_per_shard.iter().sum::<u64>();
            report.frames_per_second += status.frames_per_second;
            report.bets_per_second += status.bets_per_second;
            report.slow_consumer_closes += status.slow_consumer_closes;
        }
        let mut acks = [0; ACK_BUCKETS];
        let live_engines = self.engines.values().filter(|seen| !seen.gone);
        for led in live_engines.flat_map(|seen| &seen.status.rooms) {
            add_counts(&mut acks, &led.ack_bucket_counts);
        }
        report.ack_p50_us = quantile_us(&acks, 500);
        report.ack_p99_us = quantile_us(&acks, 990);
        report
    }
}

fn seen<T>(status: T, now_ms: u64) -> Seen<T> {
    Seen {
        last_seen_ms: now_ms,
        gone: false,
        status,
    }
}

/// Marks `seen` gone when silent for more than [`STATUS_STALE_MS`] at `now_ms`; whether
/// it went so now (then with a warning).
fn mark_gone<T>(
    process: &str,
    seen: &mut Seen<T>,
    now_ms: u64,
    warnings: &mut Vec<String>,
) -> bool {
    let silent_ms = now_ms.saturating_sub(seen.last_seen_ms);
    if seen.gone || silent_ms <= STATUS_STALE_MS {
        return false;
    }
    seen.gone = true;
    warnings.push(format!("{process} silent for {silent_ms} ms: shown gone"));
    true
}

/// Keeps at most [`PROCESSES_KEPT_MAX`] processes, forgetting the longest silent.
fn forget_the_longest_silent(
    engines: &mut BTreeMap<String, Seen<EngineStatus>>,
    gateways: &mut BTreeMap<String, Seen<GatewayStatus>>,
) {
    while engines.len() + gateways.len() > PROCESSES_KEPT_MAX {
        let oldest_engine = engines.iter().min_by_key(|(_, seen)| seen.last_seen_ms);
        let oldest_engine = oldest_engine.map(|(id, seen)| (id.clone(), seen.last_seen_ms));
        let oldest_gateway = gateways.iter().min_by_key(|(_, seen)| seen.last_seen_ms);
        let oldest_gateway = oldest_gateway.map(|(id, seen)| (id.clone(), seen.last_seen_ms));
        match (oldest_engine, oldest_gateway) {
            (Some((engine, engine_ms)), Some((_, gateway_ms))) if engine_ms <= gateway_ms => {
                engines.remove(&engine);
            }
            (_, Some((gateway, _))) => {
                gateways.remove(&gateway);
            }
            (Some((engine, _)), None) => {
                engines.remove(&engine);
            }
            (None, None) => return,
        }
    }
}

/// Whether `led` is an older leadership than `known`: a lower fencing token, or (without
/// tokens) an earlier start.
fn is_older(led: &LedRoom, known: &LedRoom) -> bool {
    match (led.fencing_token, known.fencing_token) {
        (Some(token), Some(known_token)) => token < known_token,
        _ => led.leading_since_ms < known.leading_since_ms,
    }
}

fn failover(from: &Leadership, to: &Leadership) -> Failover {
    Failover {
        room: to.led.room.clone(),
        from_engine: from.engine.clone(),
        from_epoch: from.led.epoch.to_string(),
        to_engine: to.engine.clone(),
        to_epoch: to.led.epoch.to_string(),
        to_fencing_token: to.led.fencing_token,
        at_ms: to.led.leading_since_ms,
        leaderless_ms: to.led.leading_since_ms.saturating_sub(from.last_led_at_ms),
    }
}

fn failover_message(failover: &Failover) -> String {
    let Failover {
        room,
        from_engine,
        from_epoch,
        to_engine,
        to_epoch,
        leaderless_ms,
        ..
    } = failover;
    format!(
        "room {room}: failover {from_engine} (epoch {from_epoch}) → {to_engine} \
         (epoch {to_epoch}), about {leaderless_ms} ms without a leader"
    )
}

fn room_row((room, known): (&String, &Option<Leadership>)) -> RoomLeaderRow {
    let current = known.as_ref().filter(|leadership| leadership.current);
    let counts = current.map_or(&[][..], |leadership| &leadership.led.ack_bucket_counts[..]);
    RoomLeaderRow {
        room: room.clone(),
        engine: current.map(|leadership| leadership.engine.clone()),
        epoch: current.map(|leadership| leadership.led.epoch.to_string()),
        fencing_token: current.and_then(|leadership| leadership.led.fencing_token),
        leading_since_ms: current.map(|leadership| leadership.led.leading_since_ms),
        ack_p50_us: quantile_us(counts, 500),
        ack_p99_us: quantile_us(counts, 990),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START_MS: u64 = 1_800_000_000_000;

    fn rooms() -> Vec<String> {
        vec!["r1".to_owned(), "r2".to_owned()]
    }

    fn led(room: &str, epoch: u64, token: u64, since_ms: u64, acks: &[u64]) -> LedRoom {
        LedRoom {
            room: room.to_owned(),
            epoch,
            fencing_token: Some(token),
            leading_since_ms: since_ms,
            ack_bucket_counts: acks.to_vec(),
        }
    }

    fn engine(id: &str, at_ms: u64, rooms: Vec<LedRoom>) -> StatusReport {
        StatusReport {
            process: id.to_owned(),
            at_ms,
            role: ProcessStatus::Engine(EngineStatus { rooms }),
        }
    }

    fn gateway(id: &str, at_ms: u64, connections: Vec<u64>, frames: u64) -> StatusReport {
        StatusReport {
            process: id.to_owned(),
            at_ms,
            role: ProcessStatus::Gateway(GatewayStatus {
                connections_per_shard: connections,
                frames_per_second: frames,
                bets_per_second: frames / 10,
                slow_consumer_closes: 1,
            }),
        }
    }

    #[test]
    fn a_failover_is_detected_with_its_times_and_the_new_leader_shown() {
        let mut view = ClusterView::new(&rooms());
        let mut now = START_MS;
        let first = engine("engine-a", now, vec![led("r1", 100, 1, START_MS - 50, &[])]);
        assert!(
            view.apply(first, now).is_empty(),
            "a first leader is no failover"
        );
        now += 1_000;
        view.apply(
            engine("engine-a", now, vec![led("r1", 100, 1, START_MS - 50, &[])]),
            now,
        );
        // engine-a dies; engine-b takes r1 over 2.5 s after engine-a's last report.
        now += 1_000;
        view.apply(engine("engine-b", now, vec![]), now);
        let taken_at = START_MS + 3_500;
        now = taken_at + 200;
        let report = engine("engine-b", now, vec![led("r1", 200, 2, taken_at, &[])]);
        let warnings = view.apply(report, now);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("engine-a (epoch 100) → engine-b (epoch 200)"));
        let cluster = view.report(now);
        let failover = &cluster.failovers[0];
        assert_eq!(
            (failover.from_engine.as_str(), failover.to_engine.as_str()),
            ("engine-a", "engine-b")
        );
        assert_eq!((failover.at_ms, failover.leaderless_ms), (taken_at, 2_500));
        assert_eq!(failover.to_fencing_token, Some(2));
        let r1 = &cluster.rooms[0];
        assert_eq!(r1.engine.as_deref(), Some("engine-b"));
        assert_eq!(
            (r1.epoch.as_deref(), r1.fencing_token),
            (Some("200"), Some(2))
        );
        assert_eq!(cluster.rooms[1].engine, None, "r2 never had a leader");
        // The deposed leader still reporting its old leadership changes nothing.
        let late = engine("engine-a", now, vec![led("r1", 100, 1, START_MS - 50, &[])]);
        assert!(view.apply(late, now).is_empty());
        assert_eq!(
            view.report(now).rooms[0].engine.as_deref(),
            Some("engine-b")
        );
        assert_eq!(view.report(now).failovers.len(), 1);
    }

    #[test]
    fn failovers_are_kept_bounded_newest_first() {
        let mut view = ClusterView::new(&rooms());
        for epoch in 1..=(FAILOVERS_KEPT_MAX as u64 + 5) {
            let at = START_MS + epoch * 1_000;
            view.apply(
                engine("engine-a", at, vec![led("r1", epoch, epoch, at, &[])]),
                at,
            );
        }
        let failovers = view.report(START_MS).failovers;
        assert_eq!(failovers.len(), FAILOVERS_KEPT_MAX);
        assert_eq!(failovers[0].to_epoch, (FAILOVERS_KEPT_MAX + 5).to_string());
    }

    #[test]
    fn a_silent_process_is_shown_gone_its_rooms_leaderless_then_forgotten() {
        let mut view = ClusterView::new(&rooms());
        view.apply(
            engine("engine-a", START_MS, vec![led("r1", 9, 1, START_MS, &[])]),
            START_MS,
        );
        view.apply(gateway("gw-a", START_MS, vec![1], 10), START_MS);
        assert!(
            view.expire(START_MS + STATUS_STALE_MS).is_empty(),
            "not silent long enough"
        );
        let warnings = view.expire(START_MS + STATUS_STALE_MS + 1);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("room r1: its leader engine-a went silent"))
        );
        assert!(
            view.expire(START_MS + STATUS_STALE_MS + 2).is_empty(),
            "warned once"
        );
        let cluster = view.report(START_MS + STATUS_STALE_MS + 2);
        assert!(!cluster.engines[0].alive && !cluster.gateways[0].alive);
        assert!(
            cluster.engines[0].rooms.is_empty(),
            "a gone engine leads nothing"
        );
        assert_eq!(cluster.rooms[0].engine, None);
        assert_eq!(
            view.traffic(START_MS).gateways,
            0,
            "a gone gateway is not summed"
        );
        let back = START_MS + STATUS_STALE_MS + 3;
        let warnings = view.apply(gateway("gw-a", back, vec![1], 10), back);
        assert_eq!(warnings, ["gw-a reports again"]);
        view.expire(START_MS + GONE_FORGOTTEN_MS + 1);
        let cluster = view.report(START_MS + GONE_FORGOTTEN_MS + 1);
        assert!(cluster.engines.is_empty());
        assert_eq!(cluster.gateways.len(), 1);
    }

    #[test]
    fn a_room_an_engine_stops_leading_has_no_leader() {
        let mut view = ClusterView::new(&rooms());
        view.apply(
            engine("engine-a", START_MS, vec![led("r2", 9, 1, START_MS, &[])]),
            START_MS,
        );
        let warnings = view.apply(
            engine("engine-a", START_MS + 1_000, vec![]),
            START_MS + 1_000,
        );
        assert_eq!(
            warnings,
            ["room r2: engine-a stopped leading it; no leader"]
        );
        assert_eq!(view.report(START_MS).rooms[1].engine, None);
    }

    #[test]
    fn traffic_sums_the_gateways_and_ack_latency_merges_the_rooms() {
        let mut view = ClusterView::new(&rooms());
        view.apply(gateway("gw-a", START_MS, vec![2, 3], 100), START_MS);
        view.apply(gateway("gw-b", START_MS, vec![5], 40), START_MS);
        let mut fast = vec![0; ACK_BUCKETS];
        fast[2] = 60; // ≤ 1 ms
        let mut slow = vec![0; ACK_BUCKETS];
        slow[9] = 40; // ≤ 250 ms
        let rooms = vec![
            led("r1", 1, 1, START_MS, &fast),
            led("r2", 1, 2, START_MS, &slow),
        ];
        view.apply(engine("engine-a", START_MS, rooms), START_MS);
        let traffic = view.traffic(START_MS);
        assert_eq!((traffic.gateways, traffic.connections), (2, 10));
        assert_eq!(
            (traffic.frames_per_second, traffic.bets_per_second),
            (140, 14)
        );
        assert_eq!(traffic.slow_consumer_closes, 2);
        assert_eq!(
            (traffic.ack_p50_us, traffic.ack_p99_us),
            (Some(1_000), Some(250_000))
        );
        let cluster = view.report(START_MS);
        assert_eq!(cluster.rooms[0].ack_p99_us, Some(1_000));
        assert_eq!(cluster.gateways[0].status.connections_per_shard, [2, 3]);
    }

    #[test]
    fn processes_are_kept_bounded_forgetting_the_longest_silent() {
        let mut view = ClusterView::new(&rooms());
        for n in 0..=PROCESSES_KEPT_MAX as u64 {
            let at = START_MS + n;
            view.apply(gateway(&format!("gw-{n:03}"), at, vec![], 0), at);
        }
        let cluster = view.report(START_MS);
        assert_eq!(cluster.gateways.len(), PROCESSES_KEPT_MAX);
        assert_eq!(cluster.gateways[0].gateway, "gw-001");
    }
}

//! The operator feed of a gateway process: [`Feed`] holds every room's [`RoomState`],
//! the house's figures, the cluster as the processes' status reports tell it
//! ([`ClusterView`]: engines, gateways, who leads what, failovers, the traffic summed
//! over the gateways) and warnings, and broadcasts each change as an encoded frame to
//! the operator sockets; [`run`] is its task, fed the rooms' events by the gateway's bus
//! tasks (a `try_send` of the event the gateway decoded anyway: nothing per player,
//! nothing on the shards' fan-out) and the status reports by the bus's status channel.
//! The cluster and traffic frames go out once a second; a failover's warning at once.
//!
//! A socket subscribes with [`Feed::subscribe`]: its snapshot and its place in the
//! broadcast are taken under the lock every change is applied and sent under, so the
//! frames that follow continue the snapshot exactly. The broadcast holds at most
//! `operator.queue_frames_max` frames: a socket that falls that far behind is closed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tungstenite::Utf8Bytes;

use super::cluster::{ClusterView, TrafficReport};
use super::frames::{OperatorFrame, RoomReport, Warning};
use super::house::{HouseFigures, house_figures};
use super::rooms::{CRASH_POINTS_KEPT_MAX, Notice, RoomState};
use crate::gateway::FollowedEvent;
use crate::ledger::Ledger;
use crate::status::StatusReport;

/// Warnings kept for the snapshot, newest first.
pub const WARNINGS_KEPT_MAX: usize = 50;
/// Interval of the cluster and traffic frames.
const CLUSTER_FRAME_INTERVAL_MS: u64 = 1_000;

/// What the console is shown, and the broadcast of its changes.
pub struct Feed {
    state: Mutex<FeedState>,
    frames: broadcast::Sender<Utf8Bytes>,
    /// `engine.growth_rate_per_ms_millionths`, told in the snapshot.
    growth_per_ms_millionths: u64,
}

/// The rules of the rooms a feed follows, from the engine's section of the config.
#[derive(Debug, Clone, Copy)]
pub struct RoomRules {
    /// `engine.round_profit_max_minor`.
    pub cap_minor: i64,
    /// `engine.growth_rate_per_ms_millionths`.
    pub growth_per_ms_millionths: u64,
}

struct FeedState {
    rooms: Vec<RoomState>,
    house: Vec<HouseFigures>,
    traffic: Option<TrafficReport>,
    cluster: ClusterView,
    warnings: VecDeque<Warning>,
}

impl Feed {
    /// The feed of `rooms` played by `rules`; each socket may fall `queue_frames_max`
    /// frames behind.
    pub fn new(rooms: &[String], rules: RoomRules, queue_frames_max: usize) -> Feed {
        let (frames, _) = broadcast::channel(queue_frames_max);
        let room_states = rooms
            .iter()
            .map(|room| RoomState::new(room, rules.cap_minor))
            .collect();
        Feed {
            state: Mutex::new(FeedState {
                rooms: room_states,
                house: Vec::new(),
                traffic: None,
                cluster: ClusterView::new(rooms),
                warnings: VecDeque::new(),
            }),
            frames,
            growth_per_ms_millionths: rules.growth_per_ms_millionths,
        }
    }

    fn state(&self) -> MutexGuard<'_, FeedState> {
        // Only a panic in this module's own code could poison it; its data stays whole.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new socket's first frame and the frames after it.
    pub fn subscribe(&self) -> (Utf8Bytes, broadcast::Receiver<Utf8Bytes>) {
        let state = self.state();
        let now_ms = crate::clock::unix_now_ms();
        let snapshot = OperatorFrame::Snapshot {
            server_time_ms: now_ms,
            growth_per_ms_millionths: self.growth_per_ms_millionths,
            rooms: state.rooms.iter().map(RoomState::report).collect(),
            house: state.house.clone(),
            traffic: state.traffic.clone(),
            cluster: state.cluster.report(now_ms),
            warnings: state.warnings.iter().cloned().collect(),
        };
        let receiver = self.frames.subscribe();
        (Utf8Bytes::from(snapshot.to_json()), receiver)
    }

    /// Every room's state now.
    pub fn rooms(&self) -> Vec<RoomReport> {
        self.state().rooms.iter().map(RoomState::report).collect()
    }

    /// Applies `change` and sends the frames it returns, under the lock.
    fn update(&self, change: impl FnOnce(&mut FeedState) -> Vec<OperatorFrame>) {
        let mut state = self.state();
        let frames = change(&mut state);
        for frame in frames {
            // No receiver (no operator watching) is not an error.
            let _ = self.frames.send(Utf8Bytes::from(frame.to_json()));
        }
    }
}

impl FeedState {
    fn warn(&mut self, room: Option<&str>, message: String, frames: &mut Vec<OperatorFrame>) {
        let warning = Warning {
            at_ms: crate::clock::unix_now_ms(),
            room: room.map(str::to_owned),
            message,
        };
        self.warnings.push_front(warning.clone());
        self.warnings.truncate(WARNINGS_KEPT_MAX);
        frames.push(OperatorFrame::Warning(warning));
    }

    /// Applies a room's event; whether a round was settled (the house's figures moved).
    fn follow(&mut self, followed: &FollowedEvent, frames: &mut Vec<OperatorFrame>) -> bool {
        let Some(index) = self.rooms.iter().position(|r| r.name() == &*followed.room) else {
            return false;
        };
        let event = crate::protocol::round_event((*followed.event).clone());
        let notices = self.rooms[index].apply(followed.epoch, &event, frames);
        let mut settled = false;
        for notice in notices {
            match notice {
                Notice::Warning(message) => self.warn(Some(&followed.room), message, frames),
                Notice::RoundSettled => settled = true,
            }
        }
        settled
    }
}

/// What [`run`] reads besides the events.
pub struct FeedSources {
    pub ledger: Arc<dyn Ledger>,
    pub house_edge_bp: u32,
}

/// Follows the rooms' events and the processes' status reports (`statuses`, the bus's
/// status channel) into `feed` until `shutdown`, sends the cluster and traffic once a
/// second, and reads the house's figures at start and after each settled round.
pub async fn run(
    feed: Arc<Feed>,
    mut events: mpsc::Receiver<FollowedEvent>,
    mut statuses: BoxStream<'static, Bytes>,
    sources: FeedSources,
    shutdown: CancellationToken,
) {
    let room_names: Vec<String> = feed
        .state()
        .rooms
        .iter()
        .map(|r| r.name().to_owned())
        .collect();
    refresh_house(&feed, &sources, &room_names, true).await;
    let mut cluster_timer = tokio::time::interval(Duration::from_millis(CLUSTER_FRAME_INTERVAL_MS));
    cluster_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut statuses_open = true;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            followed = events.recv() => {
                let Some(followed) = followed else { return };
                let mut settled = false;
                feed.update(|state| {
                    let mut frames = Vec::new();
                    settled = state.follow(&followed, &mut frames);
                    frames
                });
                if settled {
                    let room = [followed.room.to_string()];
                    refresh_house(&feed, &sources, &room, false).await;
                }
            }
            report = statuses.next(), if statuses_open => match report {
                Some(bytes) => feed.update(|state| state.status(&bytes)),
                None => {
                    tracing::warn!("operator console: the bus closed the status channel");
                    statuses_open = false;
                }
            },
            _ = cluster_timer.tick() => feed.update(cluster_frames),
        }
    }
}

impl FeedState {
    /// Takes a status report's bytes; the warnings it makes.
    fn status(&mut self, bytes: &[u8]) -> Vec<OperatorFrame> {
        let report = match StatusReport::decode(bytes) {
            Ok(report) => report,
            Err(error) => {
                tracing::warn!(%error, "operator console: status report dropped");
                return Vec::new();
            }
        };
        let now_ms = crate::clock::unix_now_ms();
        let mut frames = Vec::new();
        for warning in self.cluster.apply(report, now_ms) {
            self.warn(None, warning, &mut frames);
        }
        frames
    }
}

/// The cluster and traffic frames now, after the processes silent too long are shown
/// gone; a warning for sockets closed as slow consumers since the last traffic frame.
fn cluster_frames(state: &mut FeedState) -> Vec<OperatorFrame> {
    let now_ms = crate::clock::unix_now_ms();
    let mut frames = Vec::new();
    for warning in state.cluster.expire(now_ms) {
        state.warn(None, warning, &mut frames);
    }
    let traffic = state.cluster.traffic(now_ms);
    let closed_before = state.traffic.as_ref().map(|t| t.slow_consumer_closes);
    let closed = traffic
        .slow_consumer_closes
        .saturating_sub(closed_before.unwrap_or(0));
    if closed_before.is_some() && closed > 0 {
        let message = format!("{closed} player sockets closed as slow consumers (4001)");
        state.warn(None, message, &mut frames);
    }
    state.traffic = Some(traffic.clone());
    frames.push(OperatorFrame::Traffic(traffic));
    frames.push(OperatorFrame::Cluster(state.cluster.report(now_ms)));
    frames
}

/// Reads the figures of `rooms` from the ledger (and, `at_start`, their last crash
/// points) and sends every room's; a ledger error is a warning, the figures stay as they
/// were.
async fn refresh_house(feed: &Feed, sources: &FeedSources, rooms: &[String], at_start: bool) {
    for room in rooms {
        let read = house_figures(
            sources.ledger.as_ref(),
            room,
            sources.house_edge_bp,
            CRASH_POINTS_KEPT_MAX,
        )
        .await;
        feed.update(|state| {
            let mut frames = Vec::new();
            match read {
                Ok((figures, crash_points)) => {
                    state.house.retain(|known| known.room != figures.room);
                    state.house.push(figures);
                    let followed = state.rooms.iter_mut().find(|r| r.name() == room);
                    if let (true, Some(followed)) = (at_start, followed) {
                        followed.remember_crash_points(&crash_points);
                    }
                }
                Err(error) => {
                    tracing::warn!(room, %error, "operator console: house figures unreadable");
                    let message = format!("house figures unreadable: {error}");
                    state.warn(Some(room), message, &mut frames);
                }
            }
            frames
        });
    }
    feed.update(|state| {
        state.house.sort_by(|a, b| a.room.cmp(&b.room));
        vec![OperatorFrame::House {
            house: state.house.clone(),
        }]
    });
}

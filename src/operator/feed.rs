//! The operator feed of a gateway process: [`Feed`] holds every room's [`RoomState`],
//! the house's figures, the last traffic report and warnings, and broadcasts each change
//! as an encoded frame to the operator sockets; [`run`] is its task, fed the rooms'
//! events by the gateway's bus tasks (a `try_send` of the event the gateway decoded
//! anyway: nothing per player, nothing on the shards' fan-out).
//!
//! A socket subscribes with [`Feed::subscribe`]: its snapshot and its place in the
//! broadcast are taken under the lock every change is applied and sent under, so the
//! frames that follow continue the snapshot exactly. The broadcast holds at most
//! `operator.queue_frames_max` frames: a socket that falls that far behind is closed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tungstenite::Utf8Bytes;

use super::frames::{OperatorFrame, RoomReport, TrafficReport, Warning};
use super::house::{HouseFigures, house_figures};
use super::rooms::{CRASH_POINTS_KEPT_MAX, Notice, RoomState};
use crate::gateway::FollowedEvent;
use crate::gateway::traffic::{Traffic, TrafficCounts};
use crate::ledger::Ledger;

/// Warnings kept for the snapshot, newest first.
pub const WARNINGS_KEPT_MAX: usize = 50;
/// Interval of the traffic frames.
const TRAFFIC_INTERVAL_MS: u64 = 1_000;

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
    warnings: VecDeque<Warning>,
}

impl Feed {
    /// The feed of `rooms` played by `rules`; each socket may fall `queue_frames_max`
    /// frames behind.
    pub fn new(rooms: &[String], rules: RoomRules, queue_frames_max: usize) -> Feed {
        let (frames, _) = broadcast::channel(queue_frames_max);
        let rooms = rooms
            .iter()
            .map(|room| RoomState::new(room, rules.cap_minor))
            .collect();
        Feed {
            state: Mutex::new(FeedState {
                rooms,
                house: Vec::new(),
                traffic: None,
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
        let snapshot = OperatorFrame::Snapshot {
            server_time_ms: crate::clock::unix_now_ms(),
            growth_per_ms_millionths: self.growth_per_ms_millionths,
            rooms: state.rooms.iter().map(RoomState::report).collect(),
            house: state.house.clone(),
            traffic: state.traffic.clone(),
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
    pub traffic: Arc<Traffic>,
    pub house_edge_bp: u32,
}

/// Follows the rooms' events into `feed` until `shutdown`, sends the traffic once a
/// second, and reads the house's figures at start and after each settled round.
pub async fn run(
    feed: Arc<Feed>,
    mut events: mpsc::Receiver<FollowedEvent>,
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
    let mut traffic_timer = tokio::time::interval(Duration::from_millis(TRAFFIC_INTERVAL_MS));
    traffic_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_counts = sources.traffic.counts();
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
            _ = traffic_timer.tick() => {
                let counts = sources.traffic.counts();
                feed.update(|state| traffic_frames(state, &last_counts, &counts));
                last_counts = counts;
            }
        }
    }
}

/// The traffic frame of the last second (`before` → `now`), and a warning for sockets
/// closed as slow consumers meanwhile.
fn traffic_frames(
    state: &mut FeedState,
    before: &TrafficCounts,
    now: &TrafficCounts,
) -> Vec<OperatorFrame> {
    let report = TrafficReport {
        at_ms: crate::clock::unix_now_ms(),
        connections_per_shard: now.connections.clone(),
        frames_per_second: now.frames_sent - before.frames_sent,
        bets_per_second: now.bets - before.bets,
        slow_consumer_closes: now.slow_consumer_closes,
    };
    state.traffic = Some(report.clone());
    let mut frames = vec![OperatorFrame::Traffic(report)];
    let closed = now.slow_consumer_closes - before.slow_consumer_closes;
    if closed > 0 {
        let message = format!("{closed} player sockets closed as slow consumers (4001)");
        state.warn(None, message, &mut frames);
    }
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

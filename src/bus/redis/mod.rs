//! The Redis [`Bus`] for cluster mode: engines and gateways in many processes, on many
//! machines, meeting in one Redis (7 or newer; a Redis Cluster when `cluster` is set).
//!
//! It owns every key under `{key_prefix}:` (room and gateway names sit in `{…}` hash
//! tags, so all keys of a room live in one cluster slot):
//! - `{p}:events:{room}` — stream of the room's recent events, capped near
//!   `event_history_events_max` (`MAXLEN ~`), for [`Bus::recent_events`]. Fields:
//!   `epoch`, `seq`, `conflatable` (`0`/`1`), `json`.
//! - `{p}:room:{room}` — pub/sub channel of the room's live events (SPUBLISH/SSUBSCRIBE
//!   in a cluster). Payload: one version byte (2), one flags byte (bit 0: conflatable),
//!   the `seq` and then the `epoch` as 8 bytes big-endian each, then the event's JSON.
//!   `publish` writes the stream entry and the message in one MULTI, so history and
//!   live events never disagree.
//! - `{p}:commands:{room}` — stream of the room's commands, consumer group `engines`,
//!   field `command` (a [`CommandEnvelope`] as JSON).
//! - `{p}:replies:{gateway}` — pub/sub channel of one gateway's private frames.
//!   Payload: the length (4 bytes big-endian) of a JSON pair, the [`super::ReplyTo`] and
//!   the [`super::RequestId`] answered (or `null`), that JSON, then the frame's JSON.
//! - `{p}:status:{processes}` — pub/sub channel of every process's status reports
//!   (see [`status`]). Payload: the report's bytes.
//!
//! Delivery and ordering:
//! - Events and replies are pub/sub: at-most-once. A room's events arrive in the
//!   publisher's order. One connection per subscribed room per process (never per
//!   socket) feeds a ring of `subscriber_buffer_events_max` events; a reader that falls
//!   further behind, or a connection that drops (Redis restart, output-buffer-limit
//!   kill) and reconnects, shows as a jump in `seq`, reported as [`Delivery::Gap`] before
//!   the next event. A gap is noticed when the next event arrives; a new `epoch` is a
//!   restart of the numbering, not a jump.
//! - Commands are at-least-once, in order per room. A reader task takes entries with
//!   XREADGROUP; the entries the engine has taken are acknowledged (XACK, then XDEL) when
//!   it reports them handled ([`Bus::commands_handled`], after their ledger writes and
//!   replies), so an engine that dies loses nothing it had not finished. On start, and every half `command_claim_idle_ms`, the reader claims entries
//!   idle longer than that (XAUTOCLAIM): a standby engine that takes a room over
//!   finishes what the dead leader had read. Redelivered commands are harmless: the
//!   ledger's transfer ids are idempotent.
//! - `send_command` refuses with [`BusError::QueueFull`] when the room's stream holds
//!   `command_stream_commands_max` entries, checked and appended in one Lua script.
//!   Acknowledged entries are deleted, so the count is of commands not yet handled,
//!   give or take those taken but whose acknowledgement is still on its way.

//!
//! Layout: [`connection`] opens and keeps connections (reconnection, keepalive pings);
//! [`encoding`] turns events, commands and replies into payloads and stream entries and
//! back; [`subscriptions`] holds the per-process room subscriptions and the reply
//! channel, and turns a room's ring into deliveries with gaps; [`commands`] owns the
//! command streams (consumer group, reader, acknowledgements); [`status`] the status
//! channel. This file is the
//! [`Bus`] itself: keys, options, publishing and history reads.

mod commands;
mod connection;
mod encoding;
mod status;
mod subscriptions;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex as SyncMutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use redis::streams::StreamRangeReply;
use redis::{AsyncCommands, IntoConnectionInfo, ProtocolVersion, Script};

use super::{Bus, BusError, CommandEnvelope, Delivery, EventEnvelope, NewestRun, ReplyEnvelope};
use commands::{SEND_COMMAND_LUA, TakenCommands};
pub(crate) use connection::Connection;
use connection::Target;
use encoding::{decode_event_entry, encode_event_payload, encode_reply_payload};
use subscriptions::{Subscriptions, event_deliveries};

/// Events read per XREVRANGE while recovering.
const RECOVERY_PAGE_EVENTS: usize = 128;
/// Pages read beyond `event_history_events_max` (`MAXLEN ~` keeps up to a stream node
/// more).
const RECOVERY_SLACK_PAGES: usize = 2;

/// The key of kind `kind` for the room or gateway `name`: `{prefix}:{kind}:{{name}}`; the
/// braces are a hash tag, so every key of a room lives in one Redis Cluster slot.
pub(crate) fn key(prefix: &str, kind: &str, name: &str) -> String {
    format!("{prefix}:{kind}:{{{name}}}")
}

/// Settings of a [`RedisBus`].
#[derive(Debug, Clone)]
pub struct RedisBusOptions {
    /// The server is a Redis Cluster: sharded pub/sub (SPUBLISH/SSUBSCRIBE).
    pub cluster: bool,
    /// Events each room's recovery stream keeps, at least (trimmed with `MAXLEN ~`).
    pub event_history_events_max: usize,
    /// Unhandled commands a room's stream holds before senders get `QueueFull`.
    pub command_stream_commands_max: usize,
    /// This process's name in the `engines` consumer group; unique per engine process.
    pub consumer_name: String,
    /// Prefix of every key and channel, so several deployments can share one Redis.
    pub key_prefix: String,
    /// Events buffered per subscribed room in this process for a slow reader; beyond
    /// it the oldest are dropped and the reader sees a gap.
    pub subscriber_buffer_events_max: usize,
    /// Replies buffered for this gateway; beyond it new replies are dropped (logged).
    pub reply_buffer_replies_max: usize,
    /// How long a command read by a consumer stays unacknowledged before another
    /// consumer claims it: the takeover delay of a standby engine.
    pub command_claim_idle_ms: u64,
}

impl Default for RedisBusOptions {
    fn default() -> Self {
        RedisBusOptions {
            cluster: false,
            event_history_events_max: 1024,
            command_stream_commands_max: 8192,
            consumer_name: format!("engine-{}", std::process::id()),
            key_prefix: "aloft".to_owned(),
            subscriber_buffer_events_max: 1024,
            reply_buffer_replies_max: 8192,
            command_claim_idle_ms: 10_000,
        }
    }
}

/// The Redis [`Bus`]; see the module documentation for keys and guarantees.
pub struct RedisBus {
    target: Target,
    options: RedisBusOptions,
    /// Shared, auto-reconnecting connection for every non-blocking request.
    connection: Connection,
    send_command_script: Script,
    /// The rooms this process subscribes to, one connection each.
    subscriptions: Subscriptions,
    /// Command streams and reply channels handed out by this instance and not dropped.
    consumed: Arc<SyncMutex<HashSet<String>>>,
    /// Per room led from this process: the commands taken by the engine, not yet handled.
    taken_commands: Arc<SyncMutex<HashMap<String, TakenCommands>>>,
    /// The status subscriptions' connections, for tests to round-trip.
    #[cfg(test)]
    status_connections: SyncMutex<Vec<Connection>>,
}

impl RedisBus {
    /// Connects to Redis at `redis_url` (checked with a PING).
    pub async fn connect(redis_url: &str, options: RedisBusOptions) -> Result<RedisBus, BusError> {
        assert!(options.event_history_events_max > 0);
        assert!(options.command_stream_commands_max > 0);
        assert!(options.subscriber_buffer_events_max > 0);
        assert!(options.reply_buffer_replies_max > 0);
        assert!(options.command_claim_idle_ms > 0);
        let info = redis_url.into_connection_info()?;
        let redis_settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let target = Target {
            info: info.set_redis_settings(redis_settings),
            cluster: options.cluster,
        };
        let mut connection = target.connect(None, None).await?;
        connection.ping().await?;
        Ok(RedisBus {
            target,
            options,
            connection,
            send_command_script: Script::new(SEND_COMMAND_LUA),
            subscriptions: Arc::default(),
            consumed: Arc::default(),
            taken_commands: Arc::default(),
            #[cfg(test)]
            status_connections: SyncMutex::default(),
        })
    }

    fn key(&self, kind: &str, name: &str) -> String {
        key(&self.options.key_prefix, kind, name)
    }

    /// The bus's shared, auto-reconnecting connection and key prefix, for the other keys
    /// a cluster keeps beside the bus's (the engines' room leases).
    pub(crate) fn connection(&self) -> (Connection, String) {
        (self.connection.clone(), self.options.key_prefix.clone())
    }

    fn publish_command(&self) -> &'static str {
        if self.options.cluster {
            "SPUBLISH"
        } else {
            "PUBLISH"
        }
    }

    /// Marks `what` as handed out, or refuses it as already consumed.
    fn take_once(&self, what: String, name: &str) -> Result<(), BusError> {
        let mut consumed = self.consumed.lock().expect("bus lock poisoned");
        if consumed.insert(what) {
            Ok(())
        } else {
            Err(BusError::AlreadyConsumed {
                room: name.to_owned(),
            })
        }
    }

    fn release(&self, what: &str) {
        self.consumed
            .lock()
            .expect("bus lock poisoned")
            .remove(what);
    }
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, event: EventEnvelope) -> Result<(), BusError> {
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .cmd("XADD")
            .arg(self.key("events", &event.room))
            .arg("MAXLEN")
            .arg("~")
            .arg(self.options.event_history_events_max)
            .arg("*")
            .arg("epoch")
            .arg(event.epoch)
            .arg("seq")
            .arg(event.seq)
            .arg("conflatable")
            .arg(u8::from(event.conflatable))
            .arg("json")
            .arg(&event.json[..])
            .ignore()
            .cmd(self.publish_command())
            .arg(self.key("room", &event.room))
            .arg(encode_event_payload(&event))
            .ignore();
        pipeline.exec_async(&mut self.connection.clone()).await?;
        Ok(())
    }

    async fn subscribe(&self, room: &str) -> Result<BoxStream<'static, Delivery>, BusError> {
        let mut subscriptions = self.subscriptions.lock().await;
        // A ring without readers may belong to a connection its keepalive is closing.
        let live = subscriptions
            .get(room)
            .filter(|subscription| subscription.ring.receiver_count() > 0);
        let receiver = match live {
            Some(subscription) => subscription.ring.subscribe(),
            None => {
                let subscription = self.open_room_subscription(room).await?;
                let receiver = subscription.ring.subscribe();
                subscriptions.insert(room.to_owned(), subscription);
                receiver
            }
        };
        Ok(event_deliveries(receiver))
    }

    async fn recent_events(
        &self,
        room: &str,
        after_seq: u64,
        events_max: usize,
    ) -> Result<Vec<EventEnvelope>, BusError> {
        let key = self.key("events", room);
        let pages_max =
            self.options.event_history_events_max / RECOVERY_PAGE_EVENTS + RECOVERY_SLACK_PAGES;
        let mut connection = self.connection.clone();
        let mut run = NewestRun::new(after_seq);
        let mut end = "+".to_owned();
        for _ in 0..pages_max {
            let page: StreamRangeReply = connection
                .xrevrange_count(&key, &end, "-", RECOVERY_PAGE_EVENTS)
                .await?;
            let page_events = page.ids.len();
            for entry in page.ids {
                end = format!("({}", entry.id);
                if !run.offer(decode_event_entry(room, &entry)?) {
                    return Ok(run.finish(events_max));
                }
            }
            if page_events < RECOVERY_PAGE_EVENTS {
                break;
            }
        }
        Ok(run.finish(events_max))
    }

    async fn send_command(&self, command: CommandEnvelope) -> Result<(), BusError> {
        self.append_command(command).await
    }

    async fn commands(&self, room: &str) -> Result<BoxStream<'static, CommandEnvelope>, BusError> {
        let what = format!("commands:{room}");
        self.take_once(what.clone(), room)?;
        let started = self.start_command_tasks(room).await;
        if started.is_err() {
            self.release(&what);
        }
        started
    }

    async fn commands_handled(&self, room: &str) {
        self.acknowledge_taken(room).await;
    }

    async fn send_reply(&self, reply: ReplyEnvelope) -> Result<(), BusError> {
        let receivers: u64 = redis::cmd(self.publish_command())
            .arg(self.key("replies", &reply.to.gateway))
            .arg(encode_reply_payload(&reply))
            .query_async(&mut self.connection.clone())
            .await?;
        if receivers == 0 {
            return Err(BusError::NoReceiver {
                what: format!("replies of gateway {}", reply.to.gateway),
            });
        }
        Ok(())
    }

    /// The reply channels with a subscriber (`PUBSUB CHANNELS`, or `SHARDCHANNELS` on a
    /// cluster), named `{p}:replies:{gateway}`.
    async fn gateways(&self) -> Result<Vec<String>, BusError> {
        let listing = if self.options.cluster {
            "SHARDCHANNELS"
        } else {
            "CHANNELS"
        };
        let pattern = format!("{}:replies:*", self.options.key_prefix);
        let channels: Vec<String> = redis::cmd("PUBSUB")
            .arg(listing)
            .arg(&pattern)
            .query_async(&mut self.connection.clone())
            .await?;
        let prefix = format!("{}:replies:{{", self.options.key_prefix);
        let gateways = channels.iter().filter_map(|channel| {
            let gateway = channel.strip_prefix(&prefix)?.strip_suffix('}')?;
            Some(gateway.to_owned())
        });
        Ok(gateways.collect())
    }

    async fn replies(&self, gateway: &str) -> Result<BoxStream<'static, ReplyEnvelope>, BusError> {
        let what = format!("replies:{gateway}");
        self.take_once(what.clone(), gateway)?;
        let started = self.start_reply_subscription(gateway).await;
        if started.is_err() {
            self.release(&what);
        }
        started
    }

    async fn publish_status(&self, report: Bytes) -> Result<(), BusError> {
        self.publish_status_report(report).await
    }

    async fn subscribe_status(&self) -> Result<BoxStream<'static, Bytes>, BusError> {
        self.open_status_subscription().await
    }
}

#[cfg(test)]
mod tests {
    use std::ops::Deref;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use futures_util::{FutureExt, StreamExt};
    use redis::aio::MultiplexedConnection;
    use redis::{Cmd, Value};

    use super::commands::CONSUMER_GROUP;
    use super::*;
    use crate::bus::redis_test_server::RedisTestServer;
    use crate::bus::{Command, ReplyTo};

    /// Longest a test waits for a delivery.
    const DELIVERY_WAIT_MS: u64 = 5_000;
    /// Pause between the publishes that probe whether a subscription is back.
    pub(super) const PROBE_INTERVAL_MS: u64 = 20;

    pub(super) fn test_options(consumer_name: &str) -> RedisBusOptions {
        RedisBusOptions {
            cluster: false,
            // Above a stream node (100 entries), so `MAXLEN ~` really trims in the suite.
            event_history_events_max: 200,
            command_stream_commands_max: 32,
            consumer_name: consumer_name.to_owned(),
            key_prefix: "aloft-test".to_owned(),
            subscriber_buffer_events_max: 16,
            reply_buffer_replies_max: 64,
            command_claim_idle_ms: 300,
        }
    }

    /// A bus on its own Redis, which lives as long as the bus.
    struct Fixture {
        bus: RedisBus,
        server: Arc<RedisTestServer>,
    }

    impl Deref for Fixture {
        type Target = RedisBus;
        fn deref(&self) -> &RedisBus {
            &self.bus
        }
    }

    impl Fixture {
        /// Waits until `count` commands of `room` are read but not acknowledged.
        async fn wait_for_pending_commands(&self, room: &str, count: u64) {
            let key = self.key("commands", room);
            within(async {
                loop {
                    let (pending, ..): (u64, Value, Value, Value) = self
                        .query(redis::cmd("XPENDING").arg(&key).arg(CONSUMER_GROUP))
                        .await;
                    if pending == count {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(PROBE_INTERVAL_MS)).await;
                }
            })
            .await;
        }

        async fn start() -> Fixture {
            Fixture::start_on(RedisTestServer::start(), test_options("engine-a")).await
        }

        /// A bus in cluster mode on a Redis Cluster of its own.
        async fn start_cluster() -> Fixture {
            let options = RedisBusOptions {
                cluster: true,
                ..test_options("engine-a")
            };
            Fixture::start_on(RedisTestServer::start_cluster(), options).await
        }

        async fn start_on(server: RedisTestServer, options: RedisBusOptions) -> Fixture {
            let server = Arc::new(server);
            let bus = RedisBus::connect(&server.url(), options)
                .await
                .expect("connect to the test redis");
            Fixture { bus, server }
        }

        /// Another process's bus on the same Redis, with the same options.
        async fn another(&self, consumer_name: &str) -> RedisBus {
            let options = RedisBusOptions {
                consumer_name: consumer_name.to_owned(),
                ..self.bus.options.clone()
            };
            RedisBus::connect(&self.server.url(), options)
                .await
                .expect("connect to the test redis")
        }

        async fn query<T: redis::FromRedisValue>(&self, command: &mut Cmd) -> T {
            command
                .query_async(&mut self.bus.connection.clone())
                .await
                .expect("redis answers")
        }

        /// A plain connection to each node of the server (one, or each master of a
        /// cluster): for per-node state, which a cluster connection routes to one node.
        async fn node_connections(&self) -> Vec<MultiplexedConnection> {
            let mut nodes = Vec::new();
            for url in self.server.node_urls() {
                let client = redis::Client::open(url).expect("a node URL");
                let node = client.get_multiplexed_async_connection().await;
                nodes.push(node.expect("the node answers"));
            }
            nodes
        }
    }

    /// Runs `command` on each of `nodes`.
    async fn query_each<T: redis::FromRedisValue>(
        nodes: &mut [MultiplexedConnection],
        command: &Cmd,
    ) -> Vec<T> {
        let mut answers = Vec::with_capacity(nodes.len());
        for node in nodes {
            answers.push(command.query_async(node).await.expect("redis answers"));
        }
        answers
    }

    /// Stamps out the conformance suite and the Redis cases below for the fixture that
    /// `$make` yields.
    macro_rules! redis_bus_tests {
        ($make:expr) => {
            crate::bus_conformance_tests!(
                make: $make,
                buffer_events: test_options("").subscriber_buffer_events_max as u64,
                history_events: test_options("").event_history_events_max,
                queue_commands: test_options("").command_stream_commands_max,
                settle: async |fixture: &Fixture| fixture.sync_subscriptions().await
            );

            #[tokio::test]
            async fn a_dropped_subscription_reports_the_gap_and_recovery_fills_it() {
                a_dropped_subscription_reports_the_gap_and_recovery_fills_it_on($make.await)
                    .await;
            }

            #[tokio::test]
            async fn a_standby_engine_gets_what_the_dead_leader_read_but_never_acknowledged() {
                a_standby_engine_gets_what_the_dead_leader_read_but_never_acknowledged_on(
                    $make.await,
                )
                .await;
            }

            #[tokio::test]
            async fn only_commands_reported_handled_are_forgotten() {
                only_commands_reported_handled_are_forgotten_on($make.await).await;
            }

            #[tokio::test]
            async fn status_reports_reach_every_subscriber() {
                let fixture = $make.await;
                let other = fixture.another("gateway").await;
                crate::bus::conformance::status_reports_reach_every_subscriber(&*fixture, &other)
                    .await;
            }

            #[tokio::test]
            async fn two_gateways_each_get_every_event_once() {
                two_gateways_each_get_every_event_once_on($make.await).await;
            }
        };
    }

    // On one `redis-server`: PUBLISH/SUBSCRIBE.
    redis_bus_tests!(Fixture::start());

    /// On a three-master Redis Cluster: sharded pub/sub (SPUBLISH/SSUBSCRIBE), and each
    /// room's keys in the slot of its hash tag.
    mod cluster {
        use super::*;

        redis_bus_tests!(Fixture::start_cluster());
    }

    fn event(seq: u64) -> EventEnvelope {
        EventEnvelope {
            room: "r1".to_owned(),
            epoch: 7,
            seq,
            conflatable: false,
            json: Bytes::from(format!("{{\"seq\":{seq}}}")),
        }
    }

    pub(super) fn bet(req: &str) -> CommandEnvelope {
        CommandEnvelope {
            room: "r1".to_owned(),
            from: ReplyTo {
                gateway: "gw-a".to_owned(),
                connection: 1,
                player: "p1".to_owned(),
            },
            command: Command::Bet {
                req: req.to_owned(),
                amount_minor: 100,
                auto_cashout_hundredths: None,
                slot: 0,
                name: "Bettor".to_owned(),
            },
        }
    }

    pub(super) async fn within<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_millis(DELIVERY_WAIT_MS), future)
            .await
            .expect("delivered in time")
    }

    /// Kills the subscription connections and keeps them from reconnecting (new
    /// connections cannot log in: the default user is off; open ones stay) while
    /// `meanwhile` runs.
    async fn with_subscribers_cut_off(fixture: &Fixture, meanwhile: impl AsyncFnOnce()) {
        let default_user = |state: &str| {
            let mut command = redis::cmd("ACL");
            command.arg("SETUSER").arg("default").arg(state);
            command
        };
        let mut nodes = fixture.node_connections().await;
        let _: Vec<()> = query_each(&mut nodes, &default_user("off")).await;
        let mut kill_subscribers = redis::cmd("CLIENT");
        kill_subscribers.arg("KILL").arg("TYPE").arg("pubsub");
        let killed: Vec<u64> = query_each(&mut nodes, &kill_subscribers).await;
        assert!(
            killed.iter().sum::<u64>() > 0,
            "no subscription connection to kill"
        );
        meanwhile().await;
        let _: Vec<()> = query_each(&mut nodes, &default_user("on")).await;
    }

    async fn a_dropped_subscription_reports_the_gap_and_recovery_fills_it_on(fixture: Fixture) {
        let mut events = fixture.subscribe("r1").await.unwrap();
        for seq in 1..=3 {
            fixture.publish(event(seq)).await.unwrap();
            assert_eq!(
                within(events.next()).await,
                Some(Delivery::Event(event(seq)))
            );
        }
        with_subscribers_cut_off(&fixture, async || {
            for seq in 4..=8 {
                fixture.publish(event(seq)).await.unwrap();
            }
        })
        .await;
        // Publish until the resubscribed connection hears one.
        let mut seq = 9;
        let first = within(async {
            loop {
                fixture.publish(event(seq)).await.unwrap();
                seq += 1;
                let wait = tokio::time::sleep(Duration::from_millis(PROBE_INTERVAL_MS));
                if let Ok(Some(delivery)) =
                    tokio::time::timeout_at(wait.deadline(), events.next()).await
                {
                    return delivery;
                }
            }
        })
        .await;
        let Delivery::Gap { missed } = first else {
            panic!("expected a gap first, got {first:?}");
        };
        assert!(missed >= 5, "missed {missed}");
        let next = within(events.next()).await;
        assert_eq!(next, Some(Delivery::Event(event(3 + missed + 1))));
        let recovered = fixture
            .recent_events("r1", 3, missed as usize)
            .await
            .unwrap();
        let expected: Vec<EventEnvelope> = (4..=3 + missed).map(event).collect();
        assert_eq!(recovered, expected);
    }

    async fn a_standby_engine_gets_what_the_dead_leader_read_but_never_acknowledged_on(
        fixture: Fixture,
    ) {
        let gateway = fixture.another("gateway").await;
        let standby = fixture.another("engine-b").await;
        let mut leader_commands = fixture.commands("r1").await.unwrap();
        for req in ["a", "b", "c"] {
            gateway.send_command(bet(req)).await.unwrap();
        }
        assert_eq!(within(leader_commands.next()).await, Some(bet("a")));
        // The leader's reader has read all three before it dies.
        fixture.wait_for_pending_commands("r1", 3).await;
        drop(leader_commands);
        let Fixture {
            bus: leader,
            server: _server,
        } = fixture;
        drop(leader);
        let mut standby_commands = standby.commands("r1").await.unwrap();
        for req in ["a", "b", "c"] {
            assert_eq!(within(standby_commands.next()).await, Some(bet(req)));
        }
        gateway.send_command(bet("d")).await.unwrap();
        assert_eq!(within(standby_commands.next()).await, Some(bet("d")));
    }

    async fn only_commands_reported_handled_are_forgotten_on(fixture: Fixture) {
        let gateway = fixture.another("gateway").await;
        let mut leader_commands = fixture.commands("r1").await.unwrap();
        for req in ["a", "b", "c"] {
            gateway.send_command(bet(req)).await.unwrap();
        }
        assert_eq!(within(leader_commands.next()).await, Some(bet("a")));
        fixture.commands_handled("r1").await;
        // Taken but not handled: the engine may die before its ledger write.
        assert_eq!(within(leader_commands.next()).await, Some(bet("b")));
        fixture.wait_for_pending_commands("r1", 2).await;
        // Handing the room over and taking it again in the same process finds b and c.
        drop(leader_commands);
        let mut again = fixture.commands("r1").await.unwrap();
        assert_eq!(within(again.next()).await, Some(bet("b")));
        assert_eq!(within(again.next()).await, Some(bet("c")));
    }

    async fn two_gateways_each_get_every_event_once_on(fixture: Fixture) {
        let gateway_a = fixture.another("gateway-a").await;
        let gateway_b = fixture.another("gateway-b").await;
        let mut streams = vec![
            gateway_a.subscribe("r1").await.unwrap(),
            gateway_a.subscribe("r1").await.unwrap(),
            gateway_b.subscribe("r1").await.unwrap(),
        ];
        // One connection per room per process, however many subscribers it has.
        let channel = fixture.key("room", "r1");
        let numsub = if fixture.options.cluster {
            "SHARDNUMSUB"
        } else {
            "NUMSUB"
        };
        let mut nodes = fixture.node_connections().await;
        let per_node: Vec<(String, u64)> =
            query_each(&mut nodes, redis::cmd("PUBSUB").arg(numsub).arg(&channel)).await;
        let subscribers: u64 = per_node.iter().map(|(_, count)| count).sum();
        assert_eq!(subscribers, 2);
        let published = 10;
        for seq in 1..=published {
            fixture.publish(event(seq)).await.unwrap();
        }
        gateway_a.sync_subscriptions().await;
        gateway_b.sync_subscriptions().await;
        for stream in &mut streams {
            for seq in 1..=published {
                assert_eq!(
                    within(stream.next()).await,
                    Some(Delivery::Event(event(seq)))
                );
            }
            assert_eq!(stream.next().now_or_never(), None, "delivered twice");
        }
    }

    /// Measures events/s from publish to receipt through Redis on loopback: `ROOMS`
    /// rooms, each published in order by its own engine task (as the engine does), one
    /// gateway subscribed to all. A measurement, not a check: run it with `cargo test
    /// --release --lib bus::redis::tests::publish_to_receive_throughput -- --ignored
    /// --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    #[ignore = "a measurement; run it in release mode"]
    async fn publish_to_receive_throughput() {
        const ROOMS: u64 = 16;
        const EVENTS_PER_ROOM: u64 = 20_000;
        let server = RedisTestServer::start();
        let options = RedisBusOptions {
            subscriber_buffer_events_max: 65_536,
            ..test_options("engine")
        };
        let publisher = Arc::new(
            RedisBus::connect(&server.url(), options.clone())
                .await
                .unwrap(),
        );
        let gateway = RedisBus::connect(&server.url(), options).await.unwrap();
        let mut receivers = Vec::new();
        for room in 0..ROOMS {
            let mut events = gateway.subscribe(&format!("room-{room}")).await.unwrap();
            receivers.push(tokio::spawn(async move {
                let (mut received, mut missed) = (0, 0);
                while received + missed < EVENTS_PER_ROOM {
                    match within(events.next()).await.expect("stream open") {
                        Delivery::Event(_) => received += 1,
                        Delivery::Gap { missed: gap } => missed += gap,
                    }
                }
                (received, missed)
            }));
        }
        let started = Instant::now();
        for room in 0..ROOMS {
            let publisher = publisher.clone();
            tokio::spawn(async move {
                for seq in 1..=EVENTS_PER_ROOM {
                    let event = EventEnvelope {
                        room: format!("room-{room}"),
                        epoch: 1,
                        seq,
                        conflatable: true,
                        json: Bytes::from_static(&[b'x'; 64]),
                    };
                    publisher.publish(event).await.unwrap();
                }
            });
        }
        let (mut received, mut missed) = (0, 0);
        for receiver in receivers {
            let (room_received, room_missed) = receiver.await.unwrap();
            received += room_received;
            missed += room_missed;
        }
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "{received} events received ({missed} missed) in {seconds:.2} s: {:.0} events/s",
            received as f64 / seconds
        );
    }
}

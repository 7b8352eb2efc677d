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

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex as SyncMutex, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamRangeReply, StreamReadOptions,
    StreamReadReply,
};
use redis::{
    AsyncCommands, Cmd, ConnectionInfo, IntoConnectionInfo, Msg, Pipeline, ProtocolVersion,
    PushInfo, RedisFuture, RedisResult, Script, Value,
};
use tokio::sync::{Mutex as AsyncMutex, broadcast, mpsc};

use super::{
    Bus, BusError, CommandEnvelope, Delivery, EventEnvelope, NewestRun, ReplyEnvelope, ReplyTo,
    RequestId,
};

/// The consumer group of every room's command stream.
const CONSUMER_GROUP: &str = "engines";
/// Commands read from Redis per XREADGROUP or XAUTOCLAIM.
const COMMAND_READ_BATCH_COMMANDS: usize = 64;
/// Commands read but not yet taken by the engine, per room.
const COMMAND_HANDOFF_COMMANDS_MAX: usize = 2 * COMMAND_READ_BATCH_COMMANDS;
/// Taken commands waiting to be acknowledged, per room.
const COMMAND_ACK_QUEUE_IDS_MAX: usize = 256;
/// Acknowledgements sent in one XACK.
const COMMAND_ACK_BATCH_IDS_MAX: usize = 64;
/// Longest XREADGROUP wait: bounds how late a dropped command stream stops its reader.
const COMMAND_READ_BLOCK_MS: u64 = 1_000;
/// Claim passes per `command_claim_idle_ms`.
const COMMAND_CLAIM_PASSES_PER_IDLE: u64 = 2;
/// Pause after a failed read before the next try.
const REDIS_RETRY_DELAY_MS: u64 = 200;
/// Extra response time a blocking read gets beyond its BLOCK.
const BLOCKING_RESPONSE_MARGIN_MS: u64 = 2_000;
/// Pause between pings of a subscription connection: a dead connection is reconnected
/// (and resubscribed) at the latest this long after Redis is back.
const SUBSCRIPTION_KEEPALIVE_MS: u64 = 1_000;
/// Reconnection attempts of one connection before it waits for the next request.
const RECONNECT_ATTEMPTS_MAX: usize = 10;
/// Longest pause between reconnection attempts.
const RECONNECT_DELAY_MAX_MS: u64 = 2_000;
/// Events read per XREVRANGE while recovering.
const RECOVERY_PAGE_EVENTS: usize = 128;
/// Pages read beyond `event_history_events_max` (`MAXLEN ~` keeps up to a stream node
/// more).
const RECOVERY_SLACK_PAGES: usize = 2;
/// Version byte that opens every event payload (1 had no epoch).
const EVENT_PAYLOAD_VERSION: u8 = 2;
/// Version, flags, seq and epoch before an event's JSON.
const EVENT_HEADER_BYTES: usize = 18;
/// Length prefix of a reply payload's address.
const REPLY_HEADER_BYTES: usize = 4;

const _: () = assert!(COMMAND_HANDOFF_COMMANDS_MAX >= COMMAND_READ_BATCH_COMMANDS);
const _: () = assert!(COMMAND_ACK_QUEUE_IDS_MAX >= COMMAND_ACK_BATCH_IDS_MAX);

/// Appends a command unless the room's stream is full: checked and written atomically,
/// so concurrent gateways cannot overshoot the bound.
const SEND_COMMAND_LUA: &str = r"
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('XADD', KEYS[1], '*', 'command', ARGV[2])
return 1
";

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

/// A connection that reconnects by itself: one node or a whole cluster.
#[derive(Clone)]
pub(crate) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
            Connection::Cluster(connection) => {
                connection.req_packed_commands(pipeline, offset, count)
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(connection) => connection.get_db(),
        }
    }
}

impl Connection {
    /// Subscribes to `channel`; messages go to the push sink the connection was opened
    /// with, and the subscription is renewed after every reconnection.
    async fn subscribe_channel(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Connection::Single(connection) => connection.subscribe(channel).await,
            Connection::Cluster(connection) => connection.ssubscribe(channel).await,
        }
    }

    async fn ping(&mut self) -> RedisResult<()> {
        redis::cmd("PING").query_async(self).await
    }
}

/// Receives the messages of a subscription connection, on the connection's own task:
/// it must not block.
type PushSink = Arc<dyn Fn(Msg) + Send + Sync>;

/// Where and how to open connections.
struct Target {
    /// The server, always spoken to in RESP3 (pushes carry the pub/sub messages).
    info: ConnectionInfo,
    cluster: bool,
}

impl Target {
    async fn connect(
        &self,
        push: Option<PushSink>,
        response_timeout: Option<Duration>,
    ) -> Result<Connection, BusError> {
        let push_sender = push.map(|sink| {
            move |info: PushInfo| {
                // Subscription confirmations and disconnections are not messages.
                if let Some(message) = Msg::from_push_info(info) {
                    sink(message);
                }
                Ok::<(), Infallible>(())
            }
        });
        if self.cluster {
            let mut builder =
                ClusterClientBuilder::new([self.info.clone()]).use_protocol(ProtocolVersion::RESP3);
            if let Some(timeout) = response_timeout {
                builder = builder.response_timeout(timeout);
            }
            if let Some(push_sender) = push_sender {
                builder = builder.push_sender(push_sender);
            }
            let connection = builder.build()?.get_async_connection().await?;
            return Ok(Connection::Cluster(connection));
        }
        let mut config = ConnectionManagerConfig::new()
            .set_number_of_retries(RECONNECT_ATTEMPTS_MAX)
            .set_max_delay(Duration::from_millis(RECONNECT_DELAY_MAX_MS));
        if let Some(timeout) = response_timeout {
            config = config.set_response_timeout(Some(timeout));
        }
        if let Some(push_sender) = push_sender {
            config = config
                .set_push_sender(push_sender)
                .set_automatic_resubscription();
        }
        let client = redis::Client::open(self.info.clone())?;
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Connection::Single(connection))
    }

    /// Opens a dedicated connection subscribed to `channel`.
    async fn subscription(&self, channel: &str, sink: PushSink) -> Result<Connection, BusError> {
        let mut connection = self.connect(Some(sink), None).await?;
        connection.subscribe_channel(channel).await?;
        Ok(connection)
    }
}

/// One subscribed room of this process.
struct RoomSubscription {
    /// The ring every subscriber of the room in this process reads from.
    ring: broadcast::Sender<EventEnvelope>,
    /// The room's pub/sub connection, for tests to round-trip; its keepalive task holds
    /// it otherwise.
    #[cfg(test)]
    connection: Connection,
}

type Subscriptions = Arc<AsyncMutex<HashMap<String, RoomSubscription>>>;

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
}

/// The commands of a room the engine has taken but not yet reported handled.
struct TakenCommands {
    ids: Vec<String>,
    acks: mpsc::Sender<String>,
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

    /// Round-trips every subscription connection, so each event Redis sent before is in
    /// its room's ring (pushes and replies share the connection, in order).
    #[cfg(test)]
    pub(crate) async fn sync_subscriptions(&self) {
        let connections: Vec<Connection> = (self.subscriptions.lock().await.values())
            .map(|subscription| subscription.connection.clone())
            .collect();
        for mut connection in connections {
            connection.ping().await.expect("subscription connection up");
        }
    }

    async fn open_room_subscription(&self, room: &str) -> Result<RoomSubscription, BusError> {
        let (ring, _) = broadcast::channel(self.options.subscriber_buffer_events_max);
        let sink_ring = ring.clone();
        let sink_room = room.to_owned();
        let sink: PushSink = Arc::new(move |message: Msg| {
            match decode_event_payload(&sink_room, message.get_payload_bytes()) {
                // No reader left: the keepalive task closes this subscription soon.
                Some(event) => drop(sink_ring.send(event)),
                None => tracing::error!(room = %sink_room, "undecodable event on the bus"),
            }
        });
        let channel = self.key("room", room);
        let connection = self.target.subscription(&channel, sink).await?;
        tokio::spawn(keep_room_subscription(
            room.to_owned(),
            ring.clone(),
            connection.clone(),
            Arc::downgrade(&self.subscriptions),
        ));
        Ok(RoomSubscription {
            ring,
            #[cfg(test)]
            connection,
        })
    }

    async fn start_command_tasks(
        &self,
        room: &str,
    ) -> Result<BoxStream<'static, CommandEnvelope>, BusError> {
        let key = self.key("commands", room);
        create_consumer_group(&mut self.connection.clone(), &key).await?;
        let claim_pass_ms =
            (self.options.command_claim_idle_ms / COMMAND_CLAIM_PASSES_PER_IDLE).max(1);
        let block_ms = COMMAND_READ_BLOCK_MS.min(claim_pass_ms);
        let reader_connection = self
            .target
            .connect(
                None,
                Some(Duration::from_millis(
                    block_ms + BLOCKING_RESPONSE_MARGIN_MS,
                )),
            )
            .await?;
        let (items, items_receiver) = mpsc::channel(COMMAND_HANDOFF_COMMANDS_MAX);
        let (acks, acks_receiver) = mpsc::channel(COMMAND_ACK_QUEUE_IDS_MAX);
        tokio::spawn(acknowledge_commands(
            self.connection.clone(),
            key.clone(),
            acks_receiver,
        ));
        let reader = CommandReader {
            connection: reader_connection,
            key,
            consumer: self.options.consumer_name.clone(),
            claim_idle_ms: self.options.command_claim_idle_ms,
            claim_pass_ms,
            block_ms,
            own_pending_after: Some("0".to_owned()),
            claim_cursor: "0-0".to_owned(),
            next_claim_pass: Instant::now(),
        };
        tokio::spawn(reader.run(items, acks.clone()));
        let taken = TakenCommands {
            ids: Vec::new(),
            acks,
        };
        let mut taken_by_room = self.taken_commands.lock().expect("bus lock poisoned");
        taken_by_room.insert(room.to_owned(), taken);
        let release = CommandsRelease {
            room: room.to_owned(),
            consumed: self.consumed.clone(),
            taken_commands: self.taken_commands.clone(),
        };
        Ok(engine_side(items_receiver, release))
    }

    async fn start_reply_subscription(
        &self,
        gateway: &str,
    ) -> Result<BoxStream<'static, ReplyEnvelope>, BusError> {
        let (sender, mut receiver) = mpsc::channel(self.options.reply_buffer_replies_max);
        let sink_sender = sender.clone();
        let sink_gateway = gateway.to_owned();
        let sink: PushSink = Arc::new(move |message: Msg| {
            let Some(reply) = decode_reply_payload(message.get_payload_bytes()) else {
                tracing::error!(gateway = %sink_gateway, "undecodable reply on the bus");
                return;
            };
            if let Err(mpsc::error::TrySendError::Full(_)) = sink_sender.try_send(reply) {
                tracing::warn!(gateway = %sink_gateway, "reply buffer full: reply dropped");
            }
        });
        let channel = self.key("replies", gateway);
        let connection = self.target.subscription(&channel, sink).await?;
        let what = format!("replies of gateway {gateway}");
        tokio::spawn(async move {
            keep_alive(connection, &what, || sender.is_closed()).await;
        });
        Ok(stream::poll_fn(move |context| receiver.poll_recv(context)).boxed())
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
        let json = serde_json::to_string(&command).expect("a command serializes to JSON");
        let appended: u8 = self
            .send_command_script
            .key(self.key("commands", &command.room))
            .arg(self.options.command_stream_commands_max)
            .arg(json)
            .invoke_async(&mut self.connection.clone())
            .await?;
        match appended {
            1 => Ok(()),
            _ => Err(BusError::QueueFull { queue: "command" }),
        }
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
        let (ids, acks) = {
            let mut taken_by_room = self.taken_commands.lock().expect("bus lock poisoned");
            let Some(taken) = taken_by_room.get_mut(room) else {
                return;
            };
            (std::mem::take(&mut taken.ids), taken.acks.clone())
        };
        for id in ids {
            // The acknowledging task lives while the room's stream does; once it is gone,
            // an unacknowledged command is redelivered, which is harmless.
            let _ = acks.send(id).await;
        }
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
}

/// Pings `connection` until `abandoned()`: a failed ping makes the connection reconnect
/// and resubscribe even when its own retries ran out while Redis was down.
async fn keep_alive(mut connection: Connection, what: &str, abandoned: impl Fn() -> bool) {
    let mut interval = tokio::time::interval(Duration::from_millis(SUBSCRIPTION_KEEPALIVE_MS));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if abandoned() {
            return;
        }
        if let Err(error) = connection.ping().await {
            tracing::warn!(what, %error, "subscription connection down; reconnecting");
        }
    }
}

/// Keeps a room's subscription up while it has readers, then forgets it (closing the
/// connection), unless it was replaced meanwhile.
async fn keep_room_subscription(
    room: String,
    ring: broadcast::Sender<EventEnvelope>,
    connection: Connection,
    subscriptions: Weak<AsyncMutex<HashMap<String, RoomSubscription>>>,
) {
    let what = format!("events of room {room}");
    loop {
        keep_alive(connection.clone(), &what, || ring.receiver_count() == 0).await;
        let Some(subscriptions) = subscriptions.upgrade() else {
            return;
        };
        let mut subscriptions = subscriptions.lock().await;
        // Rings only gain readers under this lock: none now means none for good.
        if ring.receiver_count() == 0 {
            let ours =
                (subscriptions.get(&room)).is_some_and(|entry| entry.ring.same_channel(&ring));
            if ours {
                subscriptions.remove(&room);
            }
            return;
        }
    }
}

/// A room's deliveries from its ring, with a [`Delivery::Gap`] before every `seq` jump.
fn event_deliveries(receiver: broadcast::Receiver<EventEnvelope>) -> BoxStream<'static, Delivery> {
    let cursor = EventCursor {
        receiver,
        last: None,
        overwritten: 0,
        held: None,
    };
    stream::unfold(cursor, |mut cursor| async move {
        let delivery = cursor.next_delivery().await?;
        Some((delivery, cursor))
    })
    .boxed()
}

/// Reads a room's ring and notices what is missing.
struct EventCursor {
    receiver: broadcast::Receiver<EventEnvelope>,
    /// The `(epoch, seq)` of the last event read, to see jumps.
    last: Option<(u64, u64)>,
    /// Events the ring overwrote before this reader got them, since the last event read.
    overwritten: u64,
    /// The event after a reported gap, delivered next.
    held: Option<EventEnvelope>,
}

impl EventCursor {
    async fn next_delivery(&mut self) -> Option<Delivery> {
        if let Some(event) = self.held.take() {
            return Some(Delivery::Event(event));
        }
        loop {
            match self.receiver.recv().await {
                Ok(event) => {
                    // The seq jump also counts what Redis never delivered; the ring's
                    // count covers a first event and a new epoch, where seq says nothing.
                    let missed =
                        missed_between(self.last, event.epoch, event.seq).max(self.overwritten);
                    self.last = Some((event.epoch, event.seq));
                    self.overwritten = 0;
                    if missed == 0 {
                        return Some(Delivery::Event(event));
                    }
                    self.held = Some(event);
                    return Some(Delivery::Gap { missed });
                }
                Err(broadcast::error::RecvError::Lagged(overwritten)) => {
                    self.overwritten += overwritten;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

/// Events missing between the last seen `(epoch, seq)` and the next event. Across
/// epochs, or when the seq does not grow (a replayed or older event), nothing is known
/// to be missing.
fn missed_between(last: Option<(u64, u64)>, epoch: u64, seq: u64) -> u64 {
    match last {
        Some((last_epoch, last_seq)) if last_epoch == epoch && seq > last_seq => seq - last_seq - 1,
        _ => 0,
    }
}

/// Creates the room's consumer group from the start of the stream (commands sent before
/// any engine ran are kept for it); an existing group is left as it is.
async fn create_consumer_group(connection: &mut Connection, key: &str) -> Result<(), BusError> {
    let created: RedisResult<()> = connection
        .xgroup_create_mkstream(key, CONSUMER_GROUP, "0")
        .await;
    match created {
        Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
        other => Ok(other?),
    }
}

/// Ends a room's command stream in this process when the engine drops it (a handover):
/// the room may be taken again later, and what was taken but not handled is left
/// unacknowledged, for the next leader (or this process's next reader) to claim.
struct CommandsRelease {
    room: String,
    consumed: Arc<SyncMutex<HashSet<String>>>,
    taken_commands: Arc<SyncMutex<HashMap<String, TakenCommands>>>,
}

impl Drop for CommandsRelease {
    fn drop(&mut self) {
        if let Ok(mut taken) = self.taken_commands.lock() {
            taken.remove(&self.room);
        }
        if let Ok(mut consumed) = self.consumed.lock() {
            consumed.remove(&format!("commands:{}", self.room));
        }
    }
}

/// The engine's side of a room's commands: each one taken is noted for
/// [`Bus::commands_handled`].
fn engine_side(
    items: mpsc::Receiver<(String, CommandEnvelope)>,
    release: CommandsRelease,
) -> BoxStream<'static, CommandEnvelope> {
    stream::unfold((items, release), |(mut items, release)| async move {
        let (id, command) = items.recv().await?;
        if let Some(taken) = release
            .taken_commands
            .lock()
            .expect("bus lock poisoned")
            .get_mut(&release.room)
        {
            taken.ids.push(id);
        }
        Some((command, (items, release)))
    })
    .boxed()
}

/// Acknowledges and deletes taken commands, in batches, until the room's stream and
/// reader are gone. A failed acknowledgement means a redelivery, which is harmless.
async fn acknowledge_commands(
    mut connection: Connection,
    key: String,
    mut acks: mpsc::Receiver<String>,
) {
    let mut ids = Vec::with_capacity(COMMAND_ACK_BATCH_IDS_MAX);
    while acks.recv_many(&mut ids, COMMAND_ACK_BATCH_IDS_MAX).await > 0 {
        let mut pipeline = redis::pipe();
        pipeline
            .atomic()
            .xack(&key, CONSUMER_GROUP, &ids)
            .ignore()
            .xdel(&key, &ids)
            .ignore();
        if let Err(error) = pipeline.exec_async(&mut connection).await {
            tracing::warn!(key, %error, "acknowledging commands failed; they will be redelivered");
        }
        ids.clear();
    }
}

/// Reads a room's commands for one consumer: its own pending entries first, then, in
/// turn, claims of entries other consumers left idle and new entries.
struct CommandReader {
    /// Dedicated: a blocking XREADGROUP would stall every request sharing a connection.
    connection: Connection,
    key: String,
    consumer: String,
    claim_idle_ms: u64,
    claim_pass_ms: u64,
    block_ms: u64,
    /// Where the next read of this consumer's own pending entries starts; None once done.
    own_pending_after: Option<String>,
    /// Where the claim pass in progress continues (`0-0` starts a pass).
    claim_cursor: String,
    next_claim_pass: Instant,
}

impl CommandReader {
    /// Runs until the engine drops the room's command stream.
    async fn run(
        mut self,
        items: mpsc::Sender<(String, CommandEnvelope)>,
        acks: mpsc::Sender<String>,
    ) {
        loop {
            // Room for a whole batch first: nothing is read that cannot be handed over.
            let Ok(permits) = items.reserve_many(COMMAND_READ_BATCH_COMMANDS).await else {
                return;
            };
            let entries = match self.next_entries().await {
                Ok(entries) => entries,
                Err(error) if error.code() == Some("NOGROUP") => {
                    self.recreate_group().await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(key = self.key, %error, "reading commands failed; retrying");
                    tokio::time::sleep(Duration::from_millis(REDIS_RETRY_DELAY_MS)).await;
                    continue;
                }
            };
            for (entry, permit) in entries.into_iter().zip(permits) {
                match decode_command_entry(&entry) {
                    Ok(command) => permit.send((entry.id, command)),
                    Err(error) => {
                        tracing::error!(key = self.key, %error, "dropping a command");
                        let _ = acks.send(entry.id).await;
                    }
                }
            }
        }
    }

    /// The group (or the whole stream) is gone: Redis restarted without persistence, or
    /// someone deleted the key. Everything it held is lost, but commands sent since are in
    /// a new stream: a group created from its start reads them.
    async fn recreate_group(&mut self) {
        tracing::warn!(
            key = self.key,
            "the command stream lost its consumer group (Redis restarted?); creating it again"
        );
        if let Err(error) = create_consumer_group(&mut self.connection, &self.key).await {
            tracing::warn!(key = self.key, %error, "creating the consumer group failed; retrying");
            tokio::time::sleep(Duration::from_millis(REDIS_RETRY_DELAY_MS)).await;
        }
        self.own_pending_after = None;
        self.claim_cursor = "0-0".to_owned();
    }

    async fn next_entries(&mut self) -> RedisResult<Vec<StreamId>> {
        if let Some(after) = self.own_pending_after.take() {
            let entries = self.read_group(&after, None).await?;
            if let Some(last) = entries.last() {
                self.own_pending_after = Some(last.id.clone());
                return Ok(entries);
            }
        }
        if Instant::now() >= self.next_claim_pass {
            let claimed = self.claim_idle().await?;
            if !claimed.is_empty() {
                return Ok(claimed);
            }
        }
        self.read_group(">", Some(self.block_ms)).await
    }

    async fn read_group(
        &mut self,
        after: &str,
        block_ms: Option<u64>,
    ) -> RedisResult<Vec<StreamId>> {
        let mut options = StreamReadOptions::default()
            .group(CONSUMER_GROUP, &self.consumer)
            .count(COMMAND_READ_BATCH_COMMANDS);
        if let Some(block_ms) = block_ms {
            options = options.block(block_ms as usize);
        }
        let reply: Option<StreamReadReply> = self
            .connection
            .xread_options(&[&self.key], &[after], &options)
            .await?;
        let keys = reply.map(|reply| reply.keys).unwrap_or_default();
        Ok(keys.into_iter().flat_map(|key| key.ids).collect())
    }

    async fn claim_idle(&mut self) -> RedisResult<Vec<StreamId>> {
        let options = StreamAutoClaimOptions::default().count(COMMAND_READ_BATCH_COMMANDS);
        let reply: StreamAutoClaimReply = self
            .connection
            .xautoclaim_options(
                &self.key,
                CONSUMER_GROUP,
                &self.consumer,
                self.claim_idle_ms,
                &self.claim_cursor,
                options,
            )
            .await?;
        if reply.next_stream_id == "0-0" {
            self.next_claim_pass = Instant::now() + Duration::from_millis(self.claim_pass_ms);
        }
        self.claim_cursor = reply.next_stream_id;
        Ok(reply.claimed)
    }
}

fn decode_command_entry(entry: &StreamId) -> Result<CommandEnvelope, BusError> {
    let undecodable = |detail: String| BusError::Undecodable {
        what: "command",
        detail: format!("entry {}: {detail}", entry.id),
    };
    let json: Vec<u8> = entry
        .get("command")
        .ok_or_else(|| undecodable("no command field (deleted entry?)".to_owned()))?;
    serde_json::from_slice(&json).map_err(|error| undecodable(error.to_string()))
}

fn decode_event_entry(room: &str, entry: &StreamId) -> Result<EventEnvelope, BusError> {
    let fields = (
        entry.get::<u64>("epoch"),
        entry.get::<u64>("seq"),
        entry.get::<u8>("conflatable"),
        entry.get::<Vec<u8>>("json"),
    );
    let (Some(epoch), Some(seq), Some(conflatable), Some(json)) = fields else {
        return Err(BusError::Undecodable {
            what: "event history entry",
            detail: format!(
                "entry {} of room {room} lacks epoch, seq, conflatable or json",
                entry.id
            ),
        });
    };
    Ok(EventEnvelope {
        room: room.to_owned(),
        epoch,
        seq,
        conflatable: conflatable == 1,
        json: Bytes::from(json),
    })
}

fn encode_event_payload(event: &EventEnvelope) -> Vec<u8> {
    let mut payload = Vec::with_capacity(EVENT_HEADER_BYTES + event.json.len());
    payload.push(EVENT_PAYLOAD_VERSION);
    payload.push(u8::from(event.conflatable));
    payload.extend_from_slice(&event.seq.to_be_bytes());
    payload.extend_from_slice(&event.epoch.to_be_bytes());
    payload.extend_from_slice(&event.json);
    payload
}

fn decode_event_payload(room: &str, payload: &[u8]) -> Option<EventEnvelope> {
    let (header, json) = payload.split_at_checked(EVENT_HEADER_BYTES)?;
    let [version, flags, numbers @ ..] = header else {
        return None;
    };
    if *version != EVENT_PAYLOAD_VERSION {
        return None;
    }
    let (seq, epoch) = numbers.split_at(8);
    Some(EventEnvelope {
        room: room.to_owned(),
        epoch: u64::from_be_bytes(epoch.try_into().ok()?),
        seq: u64::from_be_bytes(seq.try_into().ok()?),
        conflatable: flags & 1 == 1,
        json: Bytes::copy_from_slice(json),
    })
}

fn encode_reply_payload(reply: &ReplyEnvelope) -> Vec<u8> {
    let to = serde_json::to_vec(&(&reply.to, &reply.answers)).expect("an address serializes");
    let to_bytes = u32::try_from(to.len()).expect("an address is far below 4 GiB");
    let mut payload = Vec::with_capacity(REPLY_HEADER_BYTES + to.len() + reply.json.len());
    payload.extend_from_slice(&to_bytes.to_be_bytes());
    payload.extend_from_slice(&to);
    payload.extend_from_slice(&reply.json);
    payload
}

fn decode_reply_payload(payload: &[u8]) -> Option<ReplyEnvelope> {
    let (header, rest) = payload.split_at_checked(REPLY_HEADER_BYTES)?;
    let to_bytes = u32::from_be_bytes(header.try_into().ok()?) as usize;
    let (to, json) = rest.split_at_checked(to_bytes)?;
    let (to, answers) = serde_json::from_slice::<(ReplyTo, Option<RequestId>)>(to).ok()?;
    Some(ReplyEnvelope {
        to,
        answers,
        json: Bytes::copy_from_slice(json),
    })
}

#[cfg(test)]
mod tests {
    use std::ops::Deref;

    use futures_util::FutureExt;
    use redis::aio::MultiplexedConnection;

    use super::super::redis_test_server::RedisTestServer;
    use super::super::{Command, ReplyTo};
    use super::*;

    /// Longest a test waits for a delivery.
    const DELIVERY_WAIT_MS: u64 = 5_000;
    /// Pause between the publishes that probe whether a subscription is back.
    const PROBE_INTERVAL_MS: u64 = 20;

    fn test_options(consumer_name: &str) -> RedisBusOptions {
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

    fn bet(req: &str) -> CommandEnvelope {
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
            },
        }
    }

    async fn within<T>(future: impl Future<Output = T>) -> T {
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

    /// Redis restarted without persistence loses the command stream and its group: the
    /// engine's reader creates the group again and reads what gateways send from then on.
    #[tokio::test]
    async fn a_command_reader_recreates_its_group_after_a_redis_restart() {
        let mut server = RedisTestServer::start();
        let url = server.url();
        let engine = RedisBus::connect(&url, test_options("engine-a")).await;
        let gateway = RedisBus::connect(&url, test_options("gateway")).await;
        let (engine, gateway) = (engine.unwrap(), gateway.unwrap());
        let mut commands = engine.commands("r1").await.unwrap();
        gateway.send_command(bet("a")).await.unwrap();
        assert_eq!(within(commands.next()).await, Some(bet("a")));
        engine.commands_handled("r1").await;

        server.restart();
        // A send may meet the connection before it notices the restart; a player retries.
        within(async {
            while gateway.send_command(bet("b")).await.is_err() {
                tokio::time::sleep(Duration::from_millis(PROBE_INTERVAL_MS)).await;
            }
        })
        .await;
        assert_eq!(within(commands.next()).await, Some(bet("b")));
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

    #[tokio::test]
    async fn payloads_round_trip() {
        let event = EventEnvelope {
            room: "r1".to_owned(),
            epoch: u64::MAX - 2,
            seq: u64::MAX - 1,
            conflatable: true,
            json: Bytes::from_static(b"{\"t\":\"tick\"}"),
        };
        let payload = encode_event_payload(&event);
        assert_eq!(decode_event_payload("r1", &payload), Some(event));
        assert_eq!(decode_event_payload("r1", b"\x02\x00short"), None);
        // A process of the version before epochs: refused, not misread.
        let mut without_epoch = payload;
        without_epoch[0] = 1;
        assert_eq!(decode_event_payload("r1", &without_epoch), None);
        let reply = ReplyEnvelope {
            to: ReplyTo {
                gateway: "gw".to_owned(),
                connection: 9,
                player: "p".to_owned(),
            },
            answers: Some(RequestId {
                kind: super::super::RequestKind::Cashout,
                req: "c1".to_owned(),
            }),
            json: Bytes::from_static(b"{\"t\":\"pong\"}"),
        };
        assert_eq!(
            decode_reply_payload(&encode_reply_payload(&reply)),
            Some(reply)
        );
        assert_eq!(decode_reply_payload(b"\x00\x00\x00\x09{}"), None);
    }
}

//! Connections to Redis that reconnect by themselves: one node (a `ConnectionManager`
//! with bounded retries) or a whole cluster, always in RESP3 so pub/sub messages arrive
//! as pushes on the connection that subscribed; and the keepalive that makes a
//! subscription connection reconnect and resubscribe after Redis comes back.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ConnectionInfo, Msg, Pipeline, ProtocolVersion, PushInfo, RedisFuture, RedisResult, Value,
};

use crate::bus::BusError;

/// Pause between pings of a subscription connection: a dead connection is reconnected
/// (and resubscribed) at the latest this long after Redis is back.
const SUBSCRIPTION_KEEPALIVE_MS: u64 = 1_000;
/// Reconnection attempts of one connection before it waits for the next request.
const RECONNECT_ATTEMPTS_MAX: usize = 10;
/// Longest pause between reconnection attempts.
const RECONNECT_DELAY_MAX_MS: u64 = 2_000;

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
    pub(super) async fn subscribe_channel(&mut self, channel: &str) -> RedisResult<()> {
        match self {
            Connection::Single(connection) => connection.subscribe(channel).await,
            Connection::Cluster(connection) => connection.ssubscribe(channel).await,
        }
    }

    pub(super) async fn ping(&mut self) -> RedisResult<()> {
        redis::cmd("PING").query_async(self).await
    }
}

/// Receives the messages of a subscription connection, on the connection's own task:
/// it must not block.
pub(super) type PushSink = Arc<dyn Fn(Msg) + Send + Sync>;

/// Where and how to open connections.
pub(super) struct Target {
    /// The server, always spoken to in RESP3 (pushes carry the pub/sub messages).
    pub(super) info: ConnectionInfo,
    pub(super) cluster: bool,
}

impl Target {
    pub(super) async fn connect(
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
    pub(super) async fn subscription(
        &self,
        channel: &str,
        sink: PushSink,
    ) -> Result<Connection, BusError> {
        let mut connection = self.connect(Some(sink), None).await?;
        connection.subscribe_channel(channel).await?;
        Ok(connection)
    }
}
/// Pings `connection` until `abandoned()`: a failed ping makes the connection reconnect
/// and resubscribe even when its own retries ran out while Redis was down.
pub(super) async fn keep_alive(
    mut connection: Connection,
    what: &str,
    abandoned: impl Fn() -> bool,
) {
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

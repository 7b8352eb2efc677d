//! This process's subscriptions: one pub/sub connection per room however many readers
//! it has (its ring of `subscriber_buffer_events_max` events, kept alive while read),
//! the gateway's reply channel, and the cursor that turns a room's ring into
//! [`Delivery`]s, reporting a [`Delivery::Gap`] before every `seq` jump.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use redis::Msg;
use tokio::sync::{Mutex as AsyncMutex, broadcast, mpsc};

use super::RedisBus;
use super::connection::{Connection, PushSink, keep_alive};
use super::encoding::{decode_event_payload, decode_reply_payload};
use crate::bus::{BusError, Delivery, EventEnvelope, ReplyEnvelope, StreamPosition};

/// One subscribed room of this process.
pub(super) struct RoomSubscription {
    /// The ring every subscriber of the room in this process reads from.
    pub(super) ring: broadcast::Sender<EventEnvelope>,
    /// The room's pub/sub connection, for tests to round-trip; its keepalive task holds
    /// it otherwise.
    #[cfg(test)]
    connection: Connection,
}

pub(super) type Subscriptions = Arc<AsyncMutex<HashMap<String, RoomSubscription>>>;

impl RedisBus {
    /// Round-trips every subscription connection (status ones included), so each event
    /// Redis sent before is in its room's ring (pushes and replies share the connection, in order).
    #[cfg(test)]
    pub(crate) async fn sync_subscriptions(&self) {
        let mut connections: Vec<Connection> = (self.subscriptions.lock().await.values())
            .map(|subscription| subscription.connection.clone())
            .collect();
        connections.extend(self.status_connections.lock().unwrap().iter().cloned());
        for mut connection in connections {
            connection.ping().await.expect("subscription connection up");
        }
    }

    pub(super) async fn open_room_subscription(
        &self,
        room: &str,
    ) -> Result<RoomSubscription, BusError> {
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

    pub(super) async fn start_reply_subscription(
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
pub(super) fn event_deliveries(
    receiver: broadcast::Receiver<EventEnvelope>,
) -> BoxStream<'static, Delivery> {
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
    /// The position of the last event read, to see jumps.
    last: Option<StreamPosition>,
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
                    let position = event.position();
                    let jumped = self.last.map_or(0, |last| last.missed_before(position));
                    let missed = jumped.max(self.overwritten);
                    self.last = Some(position);
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

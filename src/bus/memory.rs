//! In-memory bus for the embedded default: tokio channels inside one process.
//!
//! Events go through one `broadcast` channel per room (bounded ring; a subscriber that
//! falls more than `event_buffer_events_max` behind gets a [`Delivery::Gap`]); the same
//! number of recent events per room is kept for [`Bus::recent_events`]. Commands
//! and replies go through bounded `mpsc` queues that never block the sender: a full
//! queue is reported as [`BusError::QueueFull`] so the gateway can answer `overloaded`.
//! Status reports go through one `broadcast` channel of [`STATUS_BUFFER_REPORTS_MAX`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use tokio::sync::{broadcast, mpsc};

use super::{
    Bus, BusError, CommandEnvelope, Delivery, EventEnvelope, NewestRun, ReplyEnvelope,
    STATUS_BUFFER_REPORTS_MAX,
};

/// Queue bounds of the in-memory bus.
#[derive(Debug, Clone, Copy)]
pub struct MemoryBusLimits {
    /// Events kept per room for subscribers that are behind, and for recovery.
    pub event_buffer_events_max: usize,
    /// Commands waiting for a room's engine.
    pub command_queue_commands_max: usize,
    /// Replies waiting for a gateway.
    pub reply_queue_replies_max: usize,
}

impl Default for MemoryBusLimits {
    fn default() -> Self {
        MemoryBusLimits {
            event_buffer_events_max: 1024,
            command_queue_commands_max: 8192,
            reply_queue_replies_max: 8192,
        }
    }
}

/// A queue whose receiving end is handed out once.
struct Queue<T> {
    sender: mpsc::Sender<T>,
    receiver: Option<mpsc::Receiver<T>>,
}

impl<T> Queue<T> {
    fn new(capacity: usize) -> Self {
        let (sender, receiver) = mpsc::channel(capacity);
        Queue {
            sender,
            receiver: Some(receiver),
        }
    }
}

/// The events of one room.
struct RoomEvents {
    /// Live fan-out to the subscribers.
    sender: broadcast::Sender<EventEnvelope>,
    /// The newest `event_buffer_events_max` events, oldest first, for recovery.
    history: VecDeque<EventEnvelope>,
}

/// The in-memory [`Bus`].
pub struct MemoryBus {
    limits: MemoryBusLimits,
    events: Mutex<HashMap<String, RoomEvents>>,
    commands: Mutex<HashMap<String, Queue<CommandEnvelope>>>,
    replies: Mutex<HashMap<String, Queue<ReplyEnvelope>>>,
    status: broadcast::Sender<Bytes>,
}

impl MemoryBus {
    pub fn new(limits: MemoryBusLimits) -> Self {
        assert!(limits.event_buffer_events_max > 0);
        assert!(limits.command_queue_commands_max > 0);
        assert!(limits.reply_queue_replies_max > 0);
        MemoryBus {
            limits,
            events: Mutex::new(HashMap::new()),
            commands: Mutex::new(HashMap::new()),
            replies: Mutex::new(HashMap::new()),
            status: broadcast::channel(STATUS_BUFFER_REPORTS_MAX).0,
        }
    }

    /// Runs `action` on the events of `room`, created empty on first use.
    fn with_room_events<T>(&self, room: &str, action: impl FnOnce(&mut RoomEvents) -> T) -> T {
        let events_max = self.limits.event_buffer_events_max;
        let mut events = self.events.lock().expect("bus lock poisoned");
        let room_events = events.entry(room.to_owned()).or_insert_with(|| RoomEvents {
            sender: broadcast::channel(events_max).0,
            history: VecDeque::with_capacity(events_max),
        });
        action(room_events)
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        MemoryBus::new(MemoryBusLimits::default())
    }
}

fn send_now<T>(sender: &mpsc::Sender<T>, item: T, queue: &'static str) -> Result<(), BusError> {
    sender.try_send(item).map_err(|error| match error {
        mpsc::error::TrySendError::Full(_) => BusError::QueueFull { queue },
        mpsc::error::TrySendError::Closed(_) => BusError::NoReceiver {
            what: queue.to_owned(),
        },
    })
}

fn take_receiver<T: Send + 'static>(
    queues: &Mutex<HashMap<String, Queue<T>>>,
    key: &str,
    capacity: usize,
) -> Result<BoxStream<'static, T>, BusError> {
    let mut queues = queues.lock().expect("bus lock poisoned");
    let queue = queues
        .entry(key.to_owned())
        .or_insert_with(|| Queue::new(capacity));
    let receiver = queue
        .receiver
        .take()
        .ok_or_else(|| BusError::AlreadyConsumed {
            room: key.to_owned(),
        })?;
    Ok(stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
    .boxed())
}

fn sender_for<T>(
    queues: &Mutex<HashMap<String, Queue<T>>>,
    key: &str,
    capacity: usize,
) -> mpsc::Sender<T> {
    let mut queues = queues.lock().expect("bus lock poisoned");
    queues
        .entry(key.to_owned())
        .or_insert_with(|| Queue::new(capacity))
        .sender
        .clone()
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, event: EventEnvelope) -> Result<(), BusError> {
        let events_max = self.limits.event_buffer_events_max;
        let room = event.room.clone();
        self.with_room_events(&room, |room_events| {
            if room_events.history.len() == events_max {
                room_events.history.pop_front();
            }
            room_events.history.push_back(event.clone());
            // No subscriber yet is not an error: pub/sub drops events nobody listens to.
            let _ = room_events.sender.send(event);
        });
        Ok(())
    }

    async fn subscribe(&self, room: &str) -> Result<BoxStream<'static, Delivery>, BusError> {
        let receiver = self.with_room_events(room, |room_events| room_events.sender.subscribe());
        Ok(stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(event) => Some((Delivery::Event(event), receiver)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Some((Delivery::Gap { missed }, receiver))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .boxed())
    }

    async fn recent_events(
        &self,
        room: &str,
        after_seq: u64,
        events_max: usize,
    ) -> Result<Vec<EventEnvelope>, BusError> {
        let mut run = NewestRun::new(after_seq);
        self.with_room_events(room, |room_events| {
            for event in room_events.history.iter().rev() {
                if !run.offer(event.clone()) {
                    break;
                }
            }
        });
        Ok(run.finish(events_max))
    }

    async fn send_command(&self, command: CommandEnvelope) -> Result<(), BusError> {
        let sender = sender_for(
            &self.commands,
            &command.room,
            self.limits.command_queue_commands_max,
        );
        send_now(&sender, command, "command")
    }

    async fn commands(&self, room: &str) -> Result<BoxStream<'static, CommandEnvelope>, BusError> {
        take_receiver(&self.commands, room, self.limits.command_queue_commands_max)
    }

    async fn gateways(&self) -> Result<Vec<String>, BusError> {
        let replies = self.replies.lock().expect("bus lock poisoned");
        let open = replies.iter().filter(|(_, queue)| queue.receiver.is_none());
        let open = open.filter(|(_, queue)| !queue.sender.is_closed());
        Ok(open.map(|(gateway, _)| gateway.clone()).collect())
    }

    /// Nothing to forget: the in-memory queue is gone with the process anyway.
    async fn commands_handled(&self, _room: &str) {}

    async fn send_reply(&self, reply: ReplyEnvelope) -> Result<(), BusError> {
        let sender = sender_for(
            &self.replies,
            &reply.to.gateway,
            self.limits.reply_queue_replies_max,
        );
        send_now(&sender, reply, "reply")
    }

    async fn replies(&self, gateway: &str) -> Result<BoxStream<'static, ReplyEnvelope>, BusError> {
        take_receiver(&self.replies, gateway, self.limits.reply_queue_replies_max)
    }

    async fn publish_status(&self, report: Bytes) -> Result<(), BusError> {
        // No subscriber (no console) is not an error: pub/sub.
        let _ = self.status.send(report);
        Ok(())
    }

    async fn subscribe_status(&self) -> Result<BoxStream<'static, Bytes>, BusError> {
        Ok(super::status_reports(self.status.subscribe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_LIMITS: MemoryBusLimits = MemoryBusLimits {
        event_buffer_events_max: 16,
        command_queue_commands_max: 32,
        reply_queue_replies_max: 32,
    };

    crate::bus_conformance_tests!(
        make: async { Box::new(MemoryBus::new(TEST_LIMITS)) as Box<dyn Bus> },
        buffer_events: TEST_LIMITS.event_buffer_events_max as u64,
        history_events: TEST_LIMITS.event_buffer_events_max,
        queue_commands: TEST_LIMITS.command_queue_commands_max,
        // Broadcast lag is counted at publish time: nothing is in flight.
        settle: |_| async {}
    );

    /// One bus is one process: its own reports reach it.
    #[tokio::test]
    async fn status_reports_reach_every_subscriber() {
        let bus = MemoryBus::new(TEST_LIMITS);
        crate::bus::conformance::status_reports_reach_every_subscriber(&bus, &bus).await;
    }
}

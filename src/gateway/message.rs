//! What the gateway's bus tasks send a shard ([`ShardMessage`]: a room's event, a private
//! reply, an operator's close of a player's socket), and which of a batch of them a shard
//! that fell behind may skip ([`is_superseded_tick`]).

use std::sync::Arc;

use bytes::Bytes;

use crate::protocol::RoomEvent;

/// Work sent to a shard from the gateway's bus tasks.
#[derive(Debug)]
pub enum ShardMessage {
    /// A public event, parsed once and encoded once for the whole gateway.
    Event {
        room: Arc<str>,
        epoch: u64,
        event: Arc<RoomEvent>,
        frame: Bytes,
        /// Whether a newer tick may replace it, as the engine decided (`EventEnvelope`).
        conflatable: bool,
    },
    /// A private frame for one connection (or, if it is gone, the player's others).
    Reply {
        connection: u64,
        player: String,
        frame: Bytes,
    },
    /// An operator's close of one of the player's connections (kick, ban).
    Close {
        connection: u64,
        player: String,
        code: u16,
        reason: &'static str,
    },
}

/// Whether the message at `index` is a tick with a newer tick of the same room later in
/// the batch: a shard that fell behind writes only the newest tick (ticks carry absolute
/// multipliers), so its backlog turns into skipped ticks, not seconds of latency.
pub fn is_superseded_tick(batch: &[ShardMessage], index: usize) -> bool {
    let ShardMessage::Event {
        room,
        conflatable: true,
        ..
    } = &batch[index]
    else {
        return false;
    };
    batch[index + 1..].iter().any(|later| {
        matches!(later, ShardMessage::Event { room: later_room, conflatable: true, .. }
            if later_room == room)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(room: &str, event: RoomEvent) -> ShardMessage {
        ShardMessage::Event {
            room: Arc::from(room),
            epoch: 1,
            conflatable: matches!(event, RoomEvent::Tick { .. }),
            event: Arc::new(event),
            frame: Bytes::new(),
        }
    }

    fn tick(seq: u64) -> RoomEvent {
        RoomEvent::Tick {
            seq,
            round: 1,
            m: 100 + seq,
            ms: seq,
            at: seq,
            bets: vec![],
            cashouts: vec![],
            totals: None,
        }
    }

    #[test]
    fn only_the_newest_tick_of_a_room_in_a_batch_is_written() {
        let batch = vec![
            event("a", tick(1)),
            event("b", tick(1)),
            event("a", tick(2)),
            event(
                "a",
                RoomEvent::Crash {
                    seq: 3,
                    round: 1,
                    m: 103,
                    hash: "h".into(),
                    at: 3,
                    cashouts: vec![],
                    totals: None,
                },
            ),
            event("a", tick(4)),
        ];
        let superseded: Vec<bool> = (0..batch.len())
            .map(|index| is_superseded_tick(&batch, index))
            .collect();
        assert_eq!(superseded, [true, false, true, false, false]);
    }
}

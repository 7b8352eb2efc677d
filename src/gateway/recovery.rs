//! Client recovery (Centrifugo's model): each shard keeps, per room, the frames of the
//! room's last public events, so a client that reconnects with the position it had
//! (`?since=<seq>&epoch=<e>`) gets exactly the events it missed instead of a snapshot.
//!
//! [`RecoveryRing`] owns that window and the rule of what continues what: an event
//! continues the room's run when it is the next `seq` of the same epoch. Anything else
//! (a new epoch, an unrecoverable seq jump) starts the run over, and a position from
//! before it can no longer be recovered.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::bus::StreamPosition;

/// The frame of one public event, as every socket of the gateway is sent it.
#[derive(Debug, Clone)]
pub struct RecoveryFrame {
    /// The encoded WebSocket frame shared with the live fan-out (a refcount, no copy).
    pub frame: Bytes,
    /// Whether a slow socket may drop it for a newer one (a tick).
    pub conflatable: bool,
}

/// How an event relates to the run before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Continuity {
    /// The next `seq` of the same epoch (or seq 1 of the first epoch seen): sockets
    /// that followed the run follow it still.
    Continued,
    /// A new epoch or a seq jump: what sockets hold does not lead to this event.
    Restarted,
}

/// The last `window_events` frames of a room's current run, oldest first. Frames hold
/// the contiguous seqs `last_seq - frames.len() + 1 ..= last_seq` of `epoch`.
#[derive(Debug)]
pub struct RecoveryRing {
    /// The epoch of the run; None before the first event.
    epoch: Option<u64>,
    /// The seq of the newest event of the run (0 before the first).
    last_seq: u64,
    frames: VecDeque<RecoveryFrame>,
    window_events: usize,
}

impl RecoveryRing {
    /// An empty ring keeping at most `window_events` frames (0: nothing is kept, so
    /// only a client that missed nothing resumes without a snapshot).
    pub fn new(window_events: usize) -> RecoveryRing {
        RecoveryRing {
            epoch: None,
            last_seq: 0,
            frames: VecDeque::with_capacity(window_events),
            window_events,
        }
    }

    /// Whether any event has been recorded: before the first, a run starting at any seq
    /// is the gateway joining mid-stream, not a gap.
    pub fn has_run(&self) -> bool {
        self.epoch.is_some()
    }

    /// Records the event `seq` of `epoch`, dropping the oldest frame past the window,
    /// and tells whether it continues the run; if not, the run starts over with it.
    pub fn push(&mut self, epoch: u64, seq: u64, frame: RecoveryFrame) -> Continuity {
        let continuity = match self.epoch {
            Some(run_epoch) if run_epoch == epoch && seq == self.last_seq + 1 => {
                Continuity::Continued
            }
            // Sockets that joined before any event hold the state before seq 1.
            None if seq == 1 => Continuity::Continued,
            _ => Continuity::Restarted,
        };
        if continuity == Continuity::Restarted {
            self.frames.clear();
        }
        self.epoch = Some(epoch);
        self.last_seq = seq;
        if self.window_events > 0 {
            if self.frames.len() == self.window_events {
                self.frames.pop_front();
            }
            self.frames.push_back(frame);
        }
        continuity
    }

    /// The frames of every event after `since`, oldest first, when the ring holds all of
    /// them (none when `since` is the newest event); None when the position is of
    /// another epoch, ahead of the run, or older than the window or the run.
    pub fn frames_after(
        &self,
        since: StreamPosition,
    ) -> Option<impl ExactSizeIterator<Item = &RecoveryFrame>> {
        if self.epoch != Some(since.epoch) || since.seq > self.last_seq {
            return None;
        }
        let missed = usize::try_from(self.last_seq - since.seq).ok()?;
        if missed > self.frames.len() {
            return None;
        }
        Some(self.frames.range(self.frames.len() - missed..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: u64 = 1_763_900_000_000;

    fn frame(seq: u64) -> RecoveryFrame {
        RecoveryFrame {
            frame: Bytes::from(seq.to_string()),
            conflatable: seq % 2 == 0,
        }
    }

    fn position(epoch: u64, seq: u64) -> StreamPosition {
        StreamPosition { epoch, seq }
    }

    /// The seqs of the frames after `since`, read back from their bytes.
    fn seqs_after(ring: &RecoveryRing, since: StreamPosition) -> Option<Vec<u64>> {
        let frames = ring.frames_after(since)?;
        Some(
            frames
                .map(|frame| {
                    let seq: u64 = std::str::from_utf8(&frame.frame).unwrap().parse().unwrap();
                    assert_eq!(frame.conflatable, seq % 2 == 0);
                    seq
                })
                .collect(),
        )
    }

    fn ring_with(
        window_events: usize,
        epoch: u64,
        seqs: std::ops::RangeInclusive<u64>,
    ) -> RecoveryRing {
        let mut ring = RecoveryRing::new(window_events);
        for seq in seqs {
            ring.push(epoch, seq, frame(seq));
        }
        ring
    }

    #[test]
    fn exactly_the_missed_frames_in_order() {
        let ring = ring_with(10, EPOCH, 1..=6);
        assert_eq!(
            seqs_after(&ring, position(EPOCH, 0)),
            Some(vec![1, 2, 3, 4, 5, 6])
        );
        assert_eq!(seqs_after(&ring, position(EPOCH, 3)), Some(vec![4, 5, 6]));
        assert_eq!(seqs_after(&ring, position(EPOCH, 5)), Some(vec![6]));
        assert_eq!(seqs_after(&ring, position(EPOCH, 6)), Some(vec![]));
        assert_eq!(
            seqs_after(&ring, position(EPOCH, 7)),
            None,
            "ahead of the room"
        );
        assert_eq!(
            seqs_after(&ring, position(EPOCH + 1, 3)),
            None,
            "another epoch"
        );
        assert_eq!(
            seqs_after(&RecoveryRing::new(10), position(EPOCH, 0)),
            None,
            "no epoch yet"
        );
    }

    #[test]
    fn the_window_is_bounded_and_keeps_the_newest() {
        let ring = ring_with(4, EPOCH, 1..=50);
        assert_eq!(ring.frames.len(), 4);
        assert_eq!(
            seqs_after(&ring, position(EPOCH, 46)),
            Some(vec![47, 48, 49, 50])
        );
        assert_eq!(
            seqs_after(&ring, position(EPOCH, 45)),
            None,
            "48 is the oldest kept"
        );
        assert_eq!(seqs_after(&ring, position(EPOCH, 0)), None);
    }

    #[test]
    fn a_window_of_zero_keeps_nothing_but_the_position() {
        let ring = ring_with(0, EPOCH, 1..=3);
        assert_eq!(ring.frames.len(), 0);
        assert_eq!(seqs_after(&ring, position(EPOCH, 3)), Some(vec![]));
        assert_eq!(seqs_after(&ring, position(EPOCH, 2)), None);
    }

    #[test]
    fn a_new_epoch_starts_the_run_over() {
        let mut ring = ring_with(10, EPOCH, 1..=5);
        assert_eq!(ring.push(EPOCH + 1, 1, frame(1)), Continuity::Restarted);
        assert_eq!(seqs_after(&ring, position(EPOCH, 3)), None);
        assert_eq!(seqs_after(&ring, position(EPOCH, 5)), None);
        assert_eq!(seqs_after(&ring, position(EPOCH + 1, 0)), Some(vec![1]));
        // Even a new epoch that numbers on from the old seq is a restart.
        assert_eq!(ring.push(EPOCH + 2, 2, frame(2)), Continuity::Restarted);
        assert_eq!(seqs_after(&ring, position(EPOCH + 1, 1)), None);
    }

    #[test]
    fn a_seq_jump_starts_the_run_over() {
        let mut ring = ring_with(10, EPOCH, 1..=5);
        assert_eq!(ring.push(EPOCH, 6, frame(6)), Continuity::Continued);
        assert_eq!(ring.push(EPOCH, 9, frame(9)), Continuity::Restarted);
        assert_eq!(
            seqs_after(&ring, position(EPOCH, 6)),
            None,
            "7 and 8 were lost"
        );
        assert_eq!(seqs_after(&ring, position(EPOCH, 8)), Some(vec![9]));
        assert_eq!(
            ring.push(EPOCH, 9, frame(9)),
            Continuity::Restarted,
            "a repeat"
        );
        assert_eq!(ring.push(EPOCH, 10, frame(10)), Continuity::Continued);
        assert_eq!(seqs_after(&ring, position(EPOCH, 8)), Some(vec![9, 10]));
    }

    #[test]
    fn the_first_event_continues_only_from_seq_one() {
        let mut ring = RecoveryRing::new(10);
        assert_eq!(ring.push(EPOCH, 1, frame(1)), Continuity::Continued);
        let mut late = RecoveryRing::new(10);
        assert_eq!(late.push(EPOCH, 40, frame(40)), Continuity::Restarted);
        assert_eq!(seqs_after(&late, position(EPOCH, 39)), Some(vec![40]));
    }
}

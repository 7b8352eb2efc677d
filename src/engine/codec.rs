//! The seam between the engine's domain and the bytes on the bus: [`Codec`]. The engine
//! never names a wire type; the process hands it the codec of the protocol it speaks
//! (`protocol::JsonCodec`), which encodes each event once, for every gateway and socket.

use bytes::Bytes;

use super::answer::Answer;
use super::event::RoundEvent;

/// Encodes what the engine publishes and reads back what a previous leader published.
pub trait Codec: Send + Sync + 'static {
    /// The bytes of a public event, encoded once and shared by every subscriber.
    fn encode_event(&self, event: &RoundEvent) -> Bytes;

    /// The bytes of a private answer.
    fn encode_answer(&self, answer: &Answer) -> Bytes;

    /// An event as [`Codec::encode_event`] wrote it (a previous leader's, retained by the
    /// bus); `None` for bytes it did not write.
    fn decode_event(&self, bytes: &[u8]) -> Option<RoundEvent>;
}

/// The engine's tests' codec: keeps every value it encodes and writes its index, so a
/// test reads back the domain values the runner sent without knowing any wire format.
#[cfg(test)]
#[derive(Default)]
pub struct RecordingCodec {
    events: std::sync::Mutex<Vec<RoundEvent>>,
    answers: std::sync::Mutex<Vec<Answer>>,
}

#[cfg(test)]
impl RecordingCodec {
    fn index(bytes: &[u8]) -> Option<usize> {
        std::str::from_utf8(bytes).ok()?.parse().ok()
    }

    fn record<T>(values: &std::sync::Mutex<Vec<T>>, value: T) -> Bytes {
        let mut values = values.lock().expect("not poisoned");
        values.push(value);
        Bytes::from((values.len() - 1).to_string())
    }

    /// The answer `bytes` encodes.
    pub fn answer(&self, bytes: &[u8]) -> Answer {
        let index = Self::index(bytes).expect("an encoded answer");
        self.answers.lock().expect("not poisoned")[index].clone()
    }
}

#[cfg(test)]
impl Codec for RecordingCodec {
    fn encode_event(&self, event: &RoundEvent) -> Bytes {
        Self::record(&self.events, event.clone())
    }

    fn encode_answer(&self, answer: &Answer) -> Bytes {
        Self::record(&self.answers, answer.clone())
    }

    fn decode_event(&self, bytes: &[u8]) -> Option<RoundEvent> {
        let index = Self::index(bytes)?;
        self.events
            .lock()
            .expect("not poisoned")
            .get(index)
            .cloned()
    }
}

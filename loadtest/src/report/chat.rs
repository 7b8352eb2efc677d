//! The chat figures of a fan-out run with chat on (`--chat-messages-per-second`): what
//! the chatters sent, what every connection received, what the server refused, and the
//! chat delivery latency, beside the tick latency they may slow down.

use serde::Serialize;

use crate::report::latency::LatencyPercentiles;

/// A fan-out run's chat traffic over the measured window.
#[derive(Debug, Clone, Serialize)]
pub struct ChatReport {
    /// `--chat-messages-per-second`.
    pub messages_per_second_requested: u64,
    pub chatters: u64,
    /// Chat messages the chatters sent in the window.
    pub messages_sent: u64,
    pub messages_per_second_sent: f64,
    /// `chat` events received by every connection in the window (each one is also
    /// counted in the run's delivered frames).
    pub frames_delivered: u64,
    /// Chat frames delivered per message sent: every connection receives each one, so
    /// about the open connections.
    pub deliveries_per_message: Option<f64>,
    /// Messages answered with `chat_rate_limited`.
    pub refused_rate_limited: u64,
    /// Messages answered with any other error.
    pub refused_other: u64,
    pub first_refusal_code: Option<String>,
    /// Chatter send → receipt at every other connection (generator clock, µs resolution).
    pub latency: LatencyPercentiles,
}

impl ChatReport {
    /// What makes the chat load not the one asked for.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.messages_sent == 0 {
            problems.push("no chat message was sent in the window".to_owned());
        } else if self.frames_delivered == 0 {
            problems.push("no chat event was delivered".to_owned());
        }
        if self.refused_rate_limited > 0 {
            problems.push(format!(
                "{} chat messages refused as chat_rate_limited: the chat load was lower than asked",
                self.refused_rate_limited
            ));
        }
        if self.refused_other > 0 {
            problems.push(format!(
                "{} chat messages refused with {}",
                self.refused_other,
                self.first_refusal_code.as_deref().unwrap_or("an error")
            ));
        }
        problems
    }

    /// The summary table's chat rows.
    pub fn rows(&self) -> Vec<(&'static str, String)> {
        let latency = &self.latency;
        vec![
            (
                "chat messages/s asked / sent",
                format!(
                    "{} / {:.2} ({} messages from {} chatters)",
                    self.messages_per_second_requested,
                    self.messages_per_second_sent,
                    self.messages_sent,
                    self.chatters
                ),
            ),
            (
                "chat frames delivered (per message)",
                format!(
                    "{} ({})",
                    self.frames_delivered,
                    self.deliveries_per_message
                        .map_or("n/a".to_owned(), |per| format!("{per:.1}"))
                ),
            ),
            (
                "chat refused: rate-limited / other",
                format!("{} / {}", self.refused_rate_limited, self.refused_other),
            ),
            (
                "chat latency p50/p99/p999/max",
                format!(
                    "{:.2} / {:.2} / {:.2} / {:.2} ms ({} samples)",
                    latency.p50_ms, latency.p99_ms, latency.p999_ms, latency.max_ms, latency.count
                ),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ChatReport {
        let latency = LatencyPercentiles {
            count: 40_000,
            p50_ms: 1.5,
            p99_ms: 9.0,
            p999_ms: 14.0,
            max_ms: 20.0,
        };
        ChatReport {
            messages_per_second_requested: 20,
            chatters: 50,
            messages_sent: 400,
            messages_per_second_sent: 20.0,
            frames_delivered: 800_000,
            deliveries_per_message: Some(2_000.0),
            refused_rate_limited: 0,
            refused_other: 0,
            first_refusal_code: None,
            latency,
        }
    }

    #[test]
    fn a_sound_chat_load_has_no_problem_and_shows_its_figures() {
        let report = report();
        assert!(report.problems().is_empty(), "{:?}", report.problems());
        let rows = report.rows();
        assert_eq!(rows[0].1, "20 / 20.00 (400 messages from 50 chatters)");
        assert_eq!(rows[1].1, "800000 (2000.0)");
        assert_eq!(rows[3].1, "1.50 / 9.00 / 14.00 / 20.00 ms (40000 samples)");
    }

    #[test]
    fn refusals_and_silence_are_problems() {
        let mut report = report();
        report.refused_rate_limited = 3;
        report.refused_other = 400;
        report.first_refusal_code = Some("unknown_type".to_owned());
        report.frames_delivered = 0;
        let problems = report.problems();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("no chat event"), "{problems:?}");
        assert!(problems[2].contains("400 chat messages refused with unknown_type"));
        report.messages_sent = 0;
        assert!(report.problems()[0].contains("no chat message was sent"));
    }
}

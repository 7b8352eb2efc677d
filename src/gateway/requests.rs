//! The requests each connection has in flight: the gateway's half of "every request is
//! answered exactly once".
//!
//! A command is recorded when a socket forwards it to the engine, and its answer (a reply
//! naming its `req` and type) is delivered only while the record is there, which the
//! delivery consumes. A second answer to the same request — an engine that took over a
//! room re-handling a command its dead predecessor had already answered — finds no record
//! and is dropped (`aloft_duplicate_replies_dropped_total`). Records are per connection
//! and bounded by `gateway.requests_in_flight_max`; past it the socket's commands are
//! refused until answers come back. A client that resends a request still in flight (a
//! retry with the same `req`) records it twice and gets both answers, as the engine
//! sends both.
//!
//! A request not answered within `gateway.request_timeout_ms` (its command lost with the
//! bus, e.g. a Redis restart) is taken out by [`RequestsInFlight::expire`] and answered
//! `unavailable` by the gateway itself; a real answer arriving later is dropped like any
//! second answer.

use dashmap::DashMap;
use tokio::time::{Duration, Instant};

use crate::bus::RequestId;
use crate::protocol::{ErrorCode, ServerMessage};

/// The connection already has `requests_in_flight_max` requests awaiting answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{requests_in_flight_max} requests of this connection await answers")]
pub struct TooManyInFlight {
    pub requests_in_flight_max: usize,
}

/// A request that waited `request_timeout_ms` without an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub connection: u64,
    pub player: String,
    pub request: RequestId,
}

impl Expired {
    /// The gateway's answer in place of the engine's: `unavailable`, retry with the same
    /// `req` (the engine answers a command it did handle with its first answer).
    pub fn answer(&self, request_timeout: Duration) -> ServerMessage {
        let req = self.request.req.clone();
        let code = ErrorCode::Unavailable;
        let message = format!(
            "no answer from the engine within {} ms; retry with the same req",
            request_timeout.as_millis()
        );
        ServerMessage::refusal(self.request.kind, req, code, message)
    }
}

/// The requests in flight of one connection, oldest first.
struct ConnectionRequests {
    player: String,
    requests: Vec<(RequestId, Instant)>,
}

/// The requests in flight of every connection of a gateway process.
pub struct RequestsInFlight {
    by_connection: DashMap<u64, ConnectionRequests>,
    requests_in_flight_max: usize,
    request_timeout: Duration,
}

impl RequestsInFlight {
    pub fn new(requests_in_flight_max: usize, request_timeout: Duration) -> RequestsInFlight {
        assert!(requests_in_flight_max > 0);
        assert!(!request_timeout.is_zero());
        RequestsInFlight {
            by_connection: DashMap::new(),
            requests_in_flight_max,
            request_timeout,
        }
    }

    /// How long a request waits for its answer before [`RequestsInFlight::expire`]
    /// takes it out.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Records `request` as sent at `now` by `connection` of `player`, unless that
    /// connection is at its bound.
    pub fn begin(
        &self,
        connection: u64,
        player: &str,
        request: RequestId,
        now: Instant,
    ) -> Result<(), TooManyInFlight> {
        let mut held = self
            .by_connection
            .entry(connection)
            .or_insert_with(|| ConnectionRequests {
                player: player.to_owned(),
                requests: Vec::new(),
            });
        if held.requests.len() >= self.requests_in_flight_max {
            return Err(TooManyInFlight {
                requests_in_flight_max: self.requests_in_flight_max,
            });
        }
        held.requests.push((request, now + self.request_timeout));
        Ok(())
    }

    /// Takes `request` out of `connection`'s records; false when it was not in flight
    /// there (already answered, or expired): then its answer must not be delivered.
    pub fn finish(&self, connection: u64, request: &RequestId) -> bool {
        let Some(mut held) = self.by_connection.get_mut(&connection) else {
            return false;
        };
        let Some(index) = held.requests.iter().position(|(id, _)| id == request) else {
            return false;
        };
        // `remove`, not `swap_remove`: the oldest stays first, for `expire`.
        held.requests.remove(index);
        true
    }

    /// Takes out every request whose deadline passed at `now`, to be answered by the
    /// gateway.
    pub fn expire(&self, now: Instant) -> Vec<Expired> {
        let mut expired = Vec::new();
        for mut held in self.by_connection.iter_mut() {
            let connection = *held.key();
            let ConnectionRequests { player, requests } = &mut *held;
            let due = (requests.iter())
                .take_while(|(_, deadline)| *deadline <= now)
                .count();
            for (request, _) in requests.drain(..due) {
                let player = player.clone();
                expired.push(Expired {
                    connection,
                    player,
                    request,
                });
            }
        }
        expired
    }

    /// Forgets a closed connection's records.
    pub fn forget(&self, connection: u64) {
        self.by_connection.remove(&connection);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::RequestKind;
    use crate::protocol;

    const TIMEOUT: Duration = Duration::from_millis(8_000);

    fn bet(req: &str) -> RequestId {
        RequestId {
            kind: RequestKind::Bet,
            req: req.into(),
        }
    }

    #[test]
    fn each_request_sent_is_answered_once() {
        let requests = RequestsInFlight::new(4, TIMEOUT);
        let now = Instant::now();
        requests.begin(1, "p", bet("a"), now).unwrap();
        // A retry of a request in flight is answered twice by the engine: both delivered.
        requests.begin(1, "p", bet("a"), now).unwrap();
        assert!(requests.finish(1, &bet("a")));
        assert!(requests.finish(1, &bet("a")));
        // A third answer (a new leader answering again) is not.
        assert!(!requests.finish(1, &bet("a")));
        // Requests are per connection and per type.
        requests.begin(2, "q", bet("b"), now).unwrap();
        assert!(!requests.finish(1, &bet("b")));
        let cashout = RequestId {
            kind: RequestKind::Cashout,
            req: "b".into(),
        };
        assert!(!requests.finish(2, &cashout));
        assert!(requests.finish(2, &bet("b")));
    }

    #[test]
    fn a_connection_at_its_bound_is_refused_until_an_answer_comes_back() {
        let requests = RequestsInFlight::new(2, TIMEOUT);
        let now = Instant::now();
        requests.begin(1, "p", bet("a"), now).unwrap();
        requests.begin(1, "p", bet("b"), now).unwrap();
        let refused = requests.begin(1, "p", bet("c"), now);
        assert_eq!(
            refused,
            Err(TooManyInFlight {
                requests_in_flight_max: 2
            })
        );
        // Other connections have their own bound.
        requests.begin(2, "q", bet("c"), now).unwrap();
        assert!(requests.finish(1, &bet("a")));
        requests.begin(1, "p", bet("c"), now).unwrap();
        requests.forget(1);
        assert!(!requests.finish(1, &bet("b")));
    }

    #[test]
    fn a_request_unanswered_past_its_deadline_is_answered_unavailable_once() {
        let requests = RequestsInFlight::new(4, TIMEOUT);
        let sent = Instant::now();
        requests.begin(1, "p", bet("lost"), sent).unwrap();
        let later = sent + Duration::from_millis(3_000);
        requests.begin(1, "p", bet("next"), later).unwrap();
        assert_eq!(
            requests.expire(sent + TIMEOUT - Duration::from_millis(1)),
            []
        );

        let expired = requests.expire(sent + TIMEOUT);
        let lost = Expired {
            connection: 1,
            player: "p".into(),
            request: bet("lost"),
        };
        assert_eq!(expired, std::slice::from_ref(&lost));
        let answer = protocol::encode(&lost.answer(TIMEOUT));
        assert!(answer.contains(r#""t":"bet_err""#), "{answer}");
        assert!(answer.contains(r#""req":"lost""#), "{answer}");
        assert!(answer.contains(r#""code":"unavailable""#), "{answer}");
        // The slot is free again, and the engine's late answer is dropped.
        assert!(!requests.finish(1, &bet("lost")));
        assert_eq!(requests.expire(sent + TIMEOUT), []);
        // The request sent later keeps its own deadline and its answer.
        assert!(requests.finish(1, &bet("next")));
        assert_eq!(requests.expire(later + TIMEOUT), []);
    }

    #[test]
    fn a_connection_at_its_bound_takes_commands_again_once_its_requests_expire() {
        let requests = RequestsInFlight::new(2, TIMEOUT);
        let sent = Instant::now();
        requests.begin(7, "p", bet("a"), sent).unwrap();
        requests.begin(7, "p", bet("b"), sent).unwrap();
        assert!(requests.begin(7, "p", bet("c"), sent).is_err());
        assert_eq!(requests.expire(sent + TIMEOUT).len(), 2);
        requests.begin(7, "p", bet("c"), sent + TIMEOUT).unwrap();
    }
}

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

use dashmap::DashMap;

use crate::bus::RequestId;

/// The connection already has `requests_in_flight_max` requests awaiting answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{requests_in_flight_max} requests of this connection await answers")]
pub struct TooManyInFlight {
    pub requests_in_flight_max: usize,
}

/// The requests in flight of every connection of a gateway process.
pub struct RequestsInFlight {
    by_connection: DashMap<u64, Vec<RequestId>>,
    requests_in_flight_max: usize,
}

impl RequestsInFlight {
    pub fn new(requests_in_flight_max: usize) -> RequestsInFlight {
        assert!(requests_in_flight_max > 0);
        RequestsInFlight {
            by_connection: DashMap::new(),
            requests_in_flight_max,
        }
    }

    /// Records `request` as sent by `connection`, unless that connection is at its bound.
    pub fn begin(&self, connection: u64, request: RequestId) -> Result<(), TooManyInFlight> {
        let mut requests = self.by_connection.entry(connection).or_default();
        if requests.len() >= self.requests_in_flight_max {
            return Err(TooManyInFlight {
                requests_in_flight_max: self.requests_in_flight_max,
            });
        }
        requests.push(request);
        Ok(())
    }

    /// Takes `request` out of `connection`'s records; false when it was not in flight
    /// there (already answered): then its answer must not be delivered.
    pub fn finish(&self, connection: u64, request: &RequestId) -> bool {
        let Some(mut requests) = self.by_connection.get_mut(&connection) else {
            return false;
        };
        let Some(index) = requests.iter().position(|held| held == request) else {
            return false;
        };
        requests.swap_remove(index);
        true
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

    fn bet(req: &str) -> RequestId {
        RequestId {
            kind: RequestKind::Bet,
            req: req.into(),
        }
    }

    #[test]
    fn each_request_sent_is_answered_once() {
        let requests = RequestsInFlight::new(4);
        requests.begin(1, bet("a")).unwrap();
        // A retry of a request in flight is answered twice by the engine: both delivered.
        requests.begin(1, bet("a")).unwrap();
        assert!(requests.finish(1, &bet("a")));
        assert!(requests.finish(1, &bet("a")));
        // A third answer (a new leader answering again) is not.
        assert!(!requests.finish(1, &bet("a")));
        // Requests are per connection and per type.
        requests.begin(2, bet("b")).unwrap();
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
        let requests = RequestsInFlight::new(2);
        requests.begin(1, bet("a")).unwrap();
        requests.begin(1, bet("b")).unwrap();
        let refused = requests.begin(1, bet("c"));
        assert_eq!(
            refused,
            Err(TooManyInFlight {
                requests_in_flight_max: 2
            })
        );
        // Other connections have their own bound.
        requests.begin(2, bet("c")).unwrap();
        assert!(requests.finish(1, &bet("a")));
        requests.begin(1, bet("c")).unwrap();
        requests.forget(1);
        assert!(!requests.finish(1, &bet("b")));
    }
}

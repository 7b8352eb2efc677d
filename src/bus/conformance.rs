//! The conformance suite every [`Bus`] implementation must pass: ordering of events,
//! fan-out to every subscriber, gap reporting, epochs (carried, and a restart is not a
//! gap), recovery of recent events, the single
//! consumer of a room's commands, bounded queues, reply routing and the status channel. Each case takes a
//! fresh bus; the memory and Redis buses stamp them out with [`bus_conformance_tests!`].

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use super::{
    Bus, BusError, Command, CommandEnvelope, Delivery, EventEnvelope, ReplyEnvelope, ReplyTo,
    RequestId, RequestKind, STATUS_BUFFER_REPORTS_MAX,
};

/// Longest a case waits for a delivery.
const DELIVERY_WAIT_MS: u64 = 5_000;
/// The epoch of the events of cases that are not about epochs: a unix-ms start time, as
/// the engine stamps, so it does not fit in 32 bits.
const EPOCH: u64 = 1_763_900_000_000;

fn event(room: &str, seq: u64) -> EventEnvelope {
    event_of_epoch(room, EPOCH, seq)
}

fn event_of_epoch(room: &str, epoch: u64, seq: u64) -> EventEnvelope {
    EventEnvelope {
        room: room.to_owned(),
        epoch,
        seq,
        conflatable: seq % 2 == 0,
        json: Bytes::from(format!("{{\"epoch\":{epoch},\"seq\":{seq}}}")),
    }
}

fn reply_to(gateway: &str, connection: u64) -> ReplyTo {
    ReplyTo {
        gateway: gateway.to_owned(),
        connection,
        player: format!("p{connection}"),
    }
}

fn bet(room: &str, req: &str) -> CommandEnvelope {
    CommandEnvelope {
        room: room.to_owned(),
        from: reply_to("gw-a", 1),
        command: Command::Bet {
            req: req.to_owned(),
            amount_minor: 100,
            auto_cashout_hundredths: Some(200),
            slot: 1,
            name: "Bettor".to_owned(),
        },
    }
}

async fn within<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_millis(DELIVERY_WAIT_MS), future)
        .await
        .expect("delivered in time")
}

/// Every subscriber of a room gets its events, in order; other rooms' events do not leak.
pub async fn events_reach_every_subscriber_in_order(bus: &dyn Bus) {
    let mut first = bus.subscribe("r1").await.unwrap();
    let mut second = bus.subscribe("r1").await.unwrap();
    let mut other_room = bus.subscribe("r2").await.unwrap();
    for seq in 1..=10 {
        bus.publish(event("r1", seq)).await.unwrap();
    }
    bus.publish(event("r2", 1)).await.unwrap();
    for subscriber in [&mut first, &mut second] {
        for seq in 1..=10 {
            assert_eq!(
                within(subscriber.next()).await,
                Some(Delivery::Event(event("r1", seq)))
            );
        }
    }
    assert_eq!(
        within(other_room.next()).await,
        Some(Delivery::Event(event("r2", 1)))
    );
}

/// Publishing to a room nobody listens to is not an error.
pub async fn publishing_without_subscribers_succeeds(bus: &dyn Bus) {
    bus.publish(event("lonely", 1)).await.unwrap();
}

/// A subscriber that falls behind the event buffer is told how many it missed.
/// `settle` returns once every published event has reached the subscriber's buffer (a
/// distributed bus delivers asynchronously; the subscriber must lag by then).
pub async fn a_lagging_subscriber_sees_a_gap(
    bus: &dyn Bus,
    buffer_events: u64,
    settle: impl AsyncFnOnce(),
) {
    let mut subscriber = bus.subscribe("r1").await.unwrap();
    let published = buffer_events * 2 + 10;
    for seq in 1..=published {
        bus.publish(event("r1", seq)).await.unwrap();
    }
    settle().await;
    let mut seen = 0;
    let mut missed_total = 0;
    while seen + missed_total < published {
        match within(subscriber.next()).await.expect("stream open") {
            Delivery::Event(_) => seen += 1,
            Delivery::Gap { missed } => missed_total += missed,
        }
    }
    assert!(missed_total > 0, "no gap reported");
    assert_eq!(seen + missed_total, published);
}

/// Recovery returns the retained events after a position, oldest first, capped.
pub async fn recent_events_follow_a_position(bus: &dyn Bus) {
    assert_eq!(bus.recent_events("empty", 0, 10).await.unwrap(), vec![]);
    for seq in 1..=5 {
        bus.publish(event("r1", seq)).await.unwrap();
    }
    let expected = |seqs: std::ops::RangeInclusive<u64>| -> Vec<EventEnvelope> {
        seqs.map(|seq| event("r1", seq)).collect()
    };
    assert_eq!(
        bus.recent_events("r1", 2, 10).await.unwrap(),
        expected(3..=5)
    );
    assert_eq!(
        bus.recent_events("r1", 0, 2).await.unwrap(),
        expected(1..=2)
    );
    assert_eq!(bus.recent_events("r1", 5, 10).await.unwrap(), vec![]);
}

/// A room retains at least its newest `history_events` events, contiguous up to the last.
pub async fn recent_events_keep_the_newest(bus: &dyn Bus, history_events: usize) {
    let published = history_events as u64 * 3;
    for seq in 1..=published {
        bus.publish(event("r1", seq)).await.unwrap();
    }
    let retained = bus
        .recent_events("r1", 0, history_events * 10)
        .await
        .unwrap();
    assert!(retained.len() >= history_events, "kept {}", retained.len());
    assert!(retained.len() < published as usize, "nothing trimmed");
    let first = published - retained.len() as u64 + 1;
    let expected: Vec<EventEnvelope> = (first..=published).map(|seq| event("r1", seq)).collect();
    assert_eq!(retained, expected);
}

/// Subscribers and recovery get each event's epoch; a new epoch is a restart, not a gap,
/// even when its numbering does not start below the last seq of the old one.
pub async fn epochs_are_carried_and_a_new_one_is_not_a_gap(
    bus: &dyn Bus,
    settle: impl AsyncFnOnce(),
) {
    let mut subscriber = bus.subscribe("r1").await.unwrap();
    let published = [
        event_of_epoch("r1", EPOCH, 1),
        event_of_epoch("r1", EPOCH, 2),
        event_of_epoch("r1", EPOCH + 1, 5),
        event_of_epoch("r1", u64::MAX, 1),
    ];
    for event in &published {
        bus.publish(event.clone()).await.unwrap();
    }
    settle().await;
    for event in &published {
        assert_eq!(
            within(subscriber.next()).await,
            Some(Delivery::Event(event.clone()))
        );
    }
    assert_eq!(
        bus.recent_events("r1", 0, 10).await.unwrap(),
        vec![event_of_epoch("r1", u64::MAX, 1)]
    );
}

/// Recovery sees only the newest epoch, told apart by its number, not by its seq falling.
pub async fn recent_events_start_at_the_newest_epoch(bus: &dyn Bus) {
    for seq in 1..=5 {
        bus.publish(event_of_epoch("r1", EPOCH, seq)).await.unwrap();
    }
    for seq in 1..=2 {
        bus.publish(event_of_epoch("r1", EPOCH + 1, seq))
            .await
            .unwrap();
    }
    assert_eq!(
        bus.recent_events("r1", 0, 10).await.unwrap(),
        vec![
            event_of_epoch("r1", EPOCH + 1, 1),
            event_of_epoch("r1", EPOCH + 1, 2)
        ]
    );
    // A newer epoch whose first events were never published starts above the old seq.
    for seq in 7..=8 {
        bus.publish(event_of_epoch("r1", EPOCH + 2, seq))
            .await
            .unwrap();
    }
    assert_eq!(
        bus.recent_events("r1", 0, 10).await.unwrap(),
        vec![
            event_of_epoch("r1", EPOCH + 2, 7),
            event_of_epoch("r1", EPOCH + 2, 8)
        ]
    );
    assert_eq!(
        bus.recent_events("r1", 7, 10).await.unwrap(),
        vec![event_of_epoch("r1", EPOCH + 2, 8)]
    );
}

/// Commands of a room reach its one consumer in order; a second consumer is refused.
pub async fn commands_have_one_consumer_in_order(bus: &dyn Bus) {
    bus.send_command(bet("r1", "a")).await.unwrap();
    let mut commands = bus.commands("r1").await.unwrap();
    bus.send_command(bet("r1", "b")).await.unwrap();
    assert_eq!(within(commands.next()).await, Some(bet("r1", "a")));
    assert_eq!(within(commands.next()).await, Some(bet("r1", "b")));
    assert!(matches!(
        bus.commands("r1").await,
        Err(BusError::AlreadyConsumed { .. })
    ));
}

/// A full command queue is reported, never waited on.
pub async fn a_full_command_queue_is_reported(bus: &dyn Bus, queue_commands: usize) {
    let _commands = bus.commands("busy").await.unwrap();
    for index in 0..queue_commands {
        bus.send_command(bet("busy", &index.to_string()))
            .await
            .unwrap();
    }
    assert!(matches!(
        bus.send_command(bet("busy", "one too many")).await,
        Err(BusError::QueueFull { .. })
    ));
}

/// Replies reach the gateway they are addressed to, and only it.
pub async fn replies_reach_their_gateway(bus: &dyn Bus) {
    let mut gateway_a = bus.replies("gw-a").await.unwrap();
    let mut gateway_b = bus.replies("gw-b").await.unwrap();
    let to_b = ReplyEnvelope {
        to: reply_to("gw-b", 7),
        answers: None,
        control: None,
        json: Bytes::from_static(b"{\"t\":\"balance\",\"balance\":1}"),
    };
    let to_a = ReplyEnvelope {
        to: reply_to("gw-a", 3),
        answers: Some(RequestId {
            kind: RequestKind::Bet,
            req: "b-1".to_owned(),
        }),
        control: None,
        json: Bytes::from_static(b"{\"t\":\"pong\",\"server_time\":1}"),
    };
    bus.send_reply(to_b.clone()).await.unwrap();
    bus.send_reply(to_a.clone()).await.unwrap();
    assert_eq!(within(gateway_a.next()).await, Some(to_a));
    assert_eq!(within(gateway_b.next()).await, Some(to_b));
}

pub async fn the_gateways_are_those_receiving_replies(bus: &dyn Bus) {
    assert!(bus.gateways().await.unwrap().is_empty());
    let _gateway_a = bus.replies("gw-a").await.unwrap();
    let _gateway_b = bus.replies("gw-b").await.unwrap();
    within(async {
        loop {
            let mut gateways = bus.gateways().await.unwrap();
            gateways.sort();
            if gateways == ["gw-a", "gw-b"] {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// Stamps out the suite for one implementation. `make` is an async expression that yields
/// a fresh bus (anything that dereferences to one), whose subscribers buffer
/// `buffer_events` events, whose rooms retain at least `history_events` events and whose
/// command queue holds `queue_commands` commands; `settle` is an async closure taking
/// `&` what `make` yielded, returning once published events reached the subscribers.
fn status_report(process: &str, number: usize) -> Bytes {
    Bytes::from(format!("{{\"process\":\"{process}\",\"n\":{number}}}"))
}

/// Every status subscriber, the publisher's own process included, gets every report of
/// every publisher, in each publisher's order; publishing with no subscriber succeeds.
pub async fn status_reports_reach_every_subscriber(bus: &dyn Bus, other: &dyn Bus) {
    bus.publish_status(status_report("before", 0))
        .await
        .unwrap();
    let mut subscribers = [
        bus.subscribe_status().await.unwrap(),
        other.subscribe_status().await.unwrap(),
    ];
    for number in 1..=5 {
        bus.publish_status(status_report("a", number))
            .await
            .unwrap();
        other
            .publish_status(status_report("b", number))
            .await
            .unwrap();
    }
    for subscriber in &mut subscribers {
        let (mut from_a, mut from_b) = (Vec::new(), Vec::new());
        while from_a.len() + from_b.len() < 10 {
            let report = within(subscriber.next()).await.expect("stream open");
            if report.starts_with(b"{\"process\":\"a\"") {
                from_a.push(report);
            } else {
                from_b.push(report);
            }
        }
        let expected = |process| {
            (1..=5)
                .map(|n| status_report(process, n))
                .collect::<Vec<_>>()
        };
        assert_eq!(from_a, expected("a"));
        assert_eq!(
            from_b,
            expected("b"),
            "and never the report sent before subscribing"
        );
    }
}

/// A status subscriber that falls more than [`STATUS_BUFFER_REPORTS_MAX`] behind loses
/// the oldest reports, not the newest. `settle` returns once every published report has
/// reached the subscriber's buffer.
pub async fn a_lagging_status_subscriber_keeps_the_newest(
    bus: &dyn Bus,
    settle: impl AsyncFnOnce(),
) {
    let mut subscriber = bus.subscribe_status().await.unwrap();
    let published = STATUS_BUFFER_REPORTS_MAX * 2;
    for number in 1..=published {
        bus.publish_status(status_report("a", number))
            .await
            .unwrap();
    }
    settle().await;
    let first = within(subscriber.next()).await.expect("stream open");
    assert_ne!(first, status_report("a", 1), "the oldest were dropped");
    let mut received = 1;
    loop {
        let report = within(subscriber.next()).await.expect("stream open");
        received += 1;
        if report == status_report("a", published) {
            break;
        }
    }
    assert!(received <= STATUS_BUFFER_REPORTS_MAX, "{received} kept");
}

#[macro_export]
macro_rules! bus_conformance_tests {
    (
        make: $make:expr,
        buffer_events: $buffer_events:expr,
        history_events: $history_events:expr,
        queue_commands: $queue_commands:expr,
        settle: $settle:expr
    ) => {
        use $crate::bus::conformance as suite;

        #[tokio::test]
        async fn events_reach_every_subscriber_in_order() {
            suite::events_reach_every_subscriber_in_order(&*$make.await).await;
        }

        #[tokio::test]
        async fn publishing_without_subscribers_succeeds() {
            suite::publishing_without_subscribers_succeeds(&*$make.await).await;
        }

        #[tokio::test]
        async fn a_lagging_subscriber_sees_a_gap() {
            let bus = $make.await;
            let settle = $settle;
            suite::a_lagging_subscriber_sees_a_gap(&*bus, $buffer_events, async || {
                settle(&bus).await
            })
            .await;
        }

        #[tokio::test]
        async fn recent_events_follow_a_position() {
            suite::recent_events_follow_a_position(&*$make.await).await;
        }

        #[tokio::test]
        async fn recent_events_keep_the_newest() {
            suite::recent_events_keep_the_newest(&*$make.await, $history_events).await;
        }

        #[tokio::test]
        async fn epochs_are_carried_and_a_new_one_is_not_a_gap() {
            let bus = $make.await;
            let settle = $settle;
            suite::epochs_are_carried_and_a_new_one_is_not_a_gap(&*bus, async || {
                settle(&bus).await
            })
            .await;
        }

        #[tokio::test]
        async fn recent_events_start_at_the_newest_epoch() {
            suite::recent_events_start_at_the_newest_epoch(&*$make.await).await;
        }

        #[tokio::test]
        async fn commands_have_one_consumer_in_order() {
            suite::commands_have_one_consumer_in_order(&*$make.await).await;
        }

        #[tokio::test]
        async fn a_full_command_queue_is_reported() {
            suite::a_full_command_queue_is_reported(&*$make.await, $queue_commands).await;
        }

        #[tokio::test]
        async fn replies_reach_their_gateway() {
            suite::replies_reach_their_gateway(&*$make.await).await;
        }

        #[tokio::test]
        async fn the_gateways_are_those_receiving_replies() {
            suite::the_gateways_are_those_receiving_replies(&*$make.await).await;
        }

        #[tokio::test]
        async fn a_lagging_status_subscriber_keeps_the_newest() {
            let bus = $make.await;
            let settle = $settle;
            suite::a_lagging_status_subscriber_keeps_the_newest(&*bus, async || settle(&bus).await)
                .await;
        }
    };
}

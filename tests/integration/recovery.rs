//! Client recovery over real sockets: a client that reconnects with
//! `?since=<seq>&epoch=<e>` within the window gets exactly the events it missed (the same
//! frames as a client that stayed), then live ones; otherwise `recovered: false` and a
//! snapshot; a malformed position is refused before the upgrade.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{FRAME_WAIT_MS, Socket, TestApp, http, next_json, next_text};
use serde_json::Value;
use tokio::sync::mpsc;

/// The headers of a WebSocket upgrade, for requests the server must refuse.
const UPGRADE: [(&str, &str); 4] = [
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Version", "13"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
];
/// How long the resuming client stays away.
const AWAY_MS: u64 = 2_000;
/// Pause before asking again for a snapshot with an epoch.
const EPOCH_RETRY_DELAY_MS: u64 = 20;
/// Connections tried before a snapshot must carry an epoch.
const EPOCH_ATTEMPTS_MAX: usize = 50;

/// A client that stays connected throughout and records every public event it gets.
struct Witness {
    frames: mpsc::UnboundedReceiver<(u64, String)>,
    /// Frame text by seq.
    seen: BTreeMap<u64, String>,
}

impl Witness {
    async fn start(app: &TestApp) -> Witness {
        let (mut socket, ..) = app.player().await;
        let (sender, frames) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (value, text) = tokio::select! {
                    () = sender.closed() => return,
                    frame = next_with_seq(&mut socket) => frame,
                };
                assert_ne!(value["t"], "snapshot", "the witness was resynchronized");
                let _ = sender.send((seq_of(&value), text));
            }
        });
        Witness {
            frames,
            seen: BTreeMap::new(),
        }
    }

    /// Waits until the witness has got event `seq` or a later one; returns the newest.
    async fn until(&mut self, seq: u64) -> u64 {
        while self.newest() < seq {
            let frame =
                tokio::time::timeout(Duration::from_millis(FRAME_WAIT_MS), self.frames.recv())
                    .await
                    .expect("the witness gets events")
                    .expect("the witness reads on");
            self.record(frame);
        }
        self.newest()
    }

    /// Records what arrived so far; returns the newest seq.
    fn catch_up(&mut self) -> u64 {
        while let Ok(frame) = self.frames.try_recv() {
            self.record(frame);
        }
        self.newest()
    }

    fn record(&mut self, (seq, text): (u64, String)) {
        assert!(
            self.seen.insert(seq, text).is_none(),
            "the witness got {seq} twice"
        );
    }

    fn newest(&self) -> u64 {
        self.seen.last_key_value().map_or(0, |(seq, _)| *seq)
    }
}

fn seq_of(frame: &Value) -> u64 {
    frame["seq"].as_u64().expect("a seq")
}

/// The next frame that carries a `seq` (a public event or a snapshot): JSON and text.
async fn next_with_seq(socket: &mut Socket) -> (Value, String) {
    loop {
        let text = next_text(socket).await;
        let value: Value = serde_json::from_str(&text).unwrap();
        if value.get("seq").is_some() {
            return (value, text);
        }
    }
}

/// A new guest connected without `since`: (token, socket, epoch, snapshot seq). A shard
/// that has seen no event yet sends a snapshot without epoch; then it connects again.
async fn subject(app: &TestApp) -> (String, Socket, String, u64) {
    let (token, ..) = app.guest().await;
    for _ in 0..EPOCH_ATTEMPTS_MAX {
        let mut socket = app.connect(&token).await;
        let hello = next_json(&mut socket).await;
        assert_eq!(hello["t"], "hello");
        assert!(hello.get("recovered").is_none(), "{hello}");
        let snapshot = next_json(&mut socket).await;
        assert_eq!(snapshot["t"], "snapshot");
        if let Some(epoch) = snapshot["epoch"].as_str() {
            let epoch = epoch.to_owned();
            return (token, socket, epoch, seq_of(&snapshot));
        }
        socket.close(None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(EPOCH_RETRY_DELAY_MS)).await;
    }
    panic!("no snapshot with an epoch");
}

/// Connects resuming from `since` in `epoch`; returns the socket and its hello.
async fn resume(app: &TestApp, token: &str, since: u64, epoch: &str) -> (Socket, Value) {
    let mut socket = app
        .connect_with(token, &format!("&since={since}&epoch={epoch}"))
        .await;
    let hello = next_json(&mut socket).await;
    assert_eq!(hello["t"], "hello");
    (socket, hello)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_back_within_the_window_gets_exactly_the_events_it_missed() {
    // Live sockets of a shard that falls a tick behind skip ticks (only the newest is
    // written), which would show as gaps in the live part; at production's 100 ms tick a
    // loaded test machine does not stall a shard that long.
    let mut app = TestApp::start_with(|config| config.engine.tick_interval_ms = 100).await;
    let mut witness = Witness::start(&app).await;
    witness.until(1).await;
    let (token, mut socket, epoch, snapshot_seq) = subject(&app).await;
    let mut got: Vec<(u64, String)> = Vec::new();
    while got.len() < 3 {
        let (value, text) = next_with_seq(&mut socket).await;
        assert_ne!(value["t"], "snapshot");
        got.push((seq_of(&value), text));
    }
    socket.close(None).await.unwrap();
    drop(socket);
    let last_before = got.last().unwrap().0;
    tokio::time::sleep(Duration::from_millis(AWAY_MS)).await;

    let (mut socket, hello) = resume(&app, &token, last_before, &epoch).await;
    assert_eq!(hello["recovered"], true, "{hello}");
    let missed_at_least = witness.catch_up();
    assert!(
        missed_at_least > last_before,
        "nothing happened while away: the test proves nothing"
    );
    // Past what was missed and into the live events.
    let end = missed_at_least + 10;
    while got.last().unwrap().0 < end {
        let (value, text) = next_with_seq(&mut socket).await;
        assert_ne!(value["t"], "snapshot", "a snapshot after a recovered hello");
        got.push((seq_of(&value), text));
    }
    witness.until(end).await;

    let first = got[0].0;
    assert_eq!(first, snapshot_seq + 1, "events continue from the snapshot");
    for (index, (seq, text)) in got.iter().enumerate() {
        assert_eq!(
            *seq,
            first + index as u64,
            "a gap or a duplicate at {index}"
        );
        assert_eq!(
            witness.seen.get(seq),
            Some(text),
            "event {seq} differs from the one the witness got"
        );
    }
    drop(witness);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_beyond_the_window_in_another_epoch_or_ahead_gets_a_snapshot() {
    const WINDOW_EVENTS: u64 = 50;
    let mut app = TestApp::start_with(|config| {
        config.gateway.recovery_window_events = WINDOW_EVENTS as usize;
    })
    .await;
    let mut witness = Witness::start(&app).await;
    witness.until(1).await;
    let (token, socket, epoch, since) = subject(&app).await;
    drop(socket);
    let newest = witness.until(since + WINDOW_EVENTS + 5).await;

    let other_epoch = (epoch.parse::<u64>().unwrap() + 1).to_string();
    // Within the window, with the right epoch, the same position recovers.
    let (_, control) = resume(&app, &token, newest, &epoch).await;
    assert_eq!(control["recovered"], true, "{control}");
    let cases = [
        ("beyond the window", since, &epoch),
        ("another epoch", newest, &other_epoch),
        ("ahead of the room", newest + 1_000, &epoch),
    ];
    for (case, asked_since, asked_epoch) in cases {
        let (mut socket, hello) = resume(&app, &token, asked_since, asked_epoch).await;
        assert_eq!(hello["recovered"], false, "{case}: {hello}");
        let snapshot = next_json(&mut socket).await;
        assert_eq!(snapshot["t"], "snapshot", "{case}");
        assert_eq!(snapshot["epoch"], epoch.as_str(), "{case}");
        let snapshot_seq = seq_of(&snapshot);
        // Another shard may lag the witness's by an event or two, never by the window.
        assert!(
            snapshot_seq > since + WINDOW_EVENTS,
            "{case}: a stale snapshot"
        );
        let (next, _) = next_with_seq(&mut socket).await;
        assert_eq!(
            seq_of(&next),
            snapshot_seq + 1,
            "{case}: live events continue from the snapshot"
        );
    }
    let (_, metrics) = http(app.metrics_addr, "GET", "/metrics", &[]).await;
    // Present at 0 from the start: each must have counted.
    for result in ["recovered", "snapshot"] {
        let counter = format!("aloft_recoveries_total{{role=\"serve\",result=\"{result}\"}} ");
        let counted = metrics
            .lines()
            .find_map(|line| line.strip_prefix(&counter))
            .is_some_and(|value| value != "0");
        assert!(counted, "no {counter} above 0 in {metrics}");
    }
    drop(witness);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_position_is_refused_before_the_upgrade() {
    let mut app = TestApp::start().await;
    let (token, ..) = app.guest().await;
    for query in [
        "&since=abc&epoch=1",
        "&since=5",
        "&epoch=5",
        "&since=-1&epoch=1",
        "&since=%2B1&epoch=1",
        "&since=1&epoch=",
        "&since=1&epoch=1.5",
        "&since=1&epoch=18446744073709551616",
    ] {
        let path = format!("/ws?token={token}{query}");
        let (status, body) = http(app.addr, "GET", &path, &UPGRADE).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains("bad_since"), "{query}: {body}");
    }
    // Well-formed but of no epoch the room has: a snapshot, not a refusal.
    let (mut socket, hello) = resume(&app, &token, 0, "0").await;
    assert_eq!(hello["recovered"], false, "{hello}");
    assert_eq!(next_json(&mut socket).await["t"], "snapshot");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_engine_numbers_in_a_new_epoch_and_old_positions_get_a_snapshot() {
    let data_dir = tempfile::tempdir().unwrap();
    let path = data_dir.path().to_path_buf();
    let mut app = TestApp::start_with(|config| config.data_dir = path.clone()).await;
    let (token, socket, old_epoch, since) = subject(&app).await;
    drop(socket);
    app.stop().await;

    let mut app = TestApp::start_with(|config| config.data_dir = path.clone()).await;
    let (_, socket, new_epoch, _) = subject(&app).await;
    drop(socket);
    assert_ne!(new_epoch, old_epoch);
    let (mut socket, hello) = resume(&app, &token, since, &old_epoch).await;
    assert_eq!(hello["recovered"], false, "{hello}");
    let snapshot = next_json(&mut socket).await;
    assert_eq!(snapshot["t"], "snapshot");
    assert_eq!(snapshot["epoch"], new_epoch.as_str());
    app.stop().await;
}

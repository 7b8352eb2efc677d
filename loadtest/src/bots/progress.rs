//! Live progress of a run: a status line redrawn twice a second with indicatif when
//! stdout is a terminal, otherwise a plain line every 5 seconds (logs, CI).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::report::latency::latency_summary;
use crate::report::stats::Stats;

/// Redraw interval on a terminal, in milliseconds.
const TERMINAL_REFRESH_MS: u64 = 500;
/// Line interval when stdout is not a terminal, in milliseconds.
const LINE_INTERVAL_MS: u64 = 5_000;

/// The running progress display; [`Progress::finish`] clears it.
pub struct Progress {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Progress {
    pub fn start(stats: Arc<Stats>, players: u64) -> Progress {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(show(stats, players, stopped));
        Progress { stop, task }
    }

    pub async fn finish(self) {
        // The display task may have ended already; then there is nothing to stop.
        let _ = self.stop.send(());
        if let Err(error) = self.task.await {
            eprintln!("progress display failed: {error}");
        }
    }
}

async fn show(stats: Arc<Stats>, players: u64, mut stopped: oneshot::Receiver<()>) {
    let terminal = std::io::stdout().is_terminal();
    let bar = if terminal {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                .expect("constant template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let interval_ms = if terminal {
        TERMINAL_REFRESH_MS
    } else {
        LINE_INTERVAL_MS
    };
    let mut interval = tokio::time::interval(Duration::from_millis(interval_ms));
    let started = Instant::now();
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = interval.tick() => {
                let line = status_line(&stats, players, &mut last);
                if terminal {
                    bar.set_message(line);
                    bar.tick();
                } else {
                    println!("[{:>4} s] {line}", started.elapsed().as_secs());
                }
            }
        }
    }
    bar.finish_and_clear();
}

/// One status line; `last` holds the previous time and bets acked, for the rate.
fn status_line(stats: &Stats, players: u64, last: &mut (Instant, u64)) -> String {
    let now = Instant::now();
    let bets_acked = Stats::get(&stats.bets_acked);
    let seconds = now.duration_since(last.0).as_secs_f64();
    let bets_per_second = if seconds > 0.0 {
        (bets_acked - last.1) as f64 / seconds
    } else {
        0.0
    };
    *last = (now, bets_acked);
    let latency = latency_summary(&stats.ack_latency_us.lock().expect("histogram lock"));
    format!(
        "connected {}/{players} (failed {}) | rounds {} | bets/s {bets_per_second:.1} | ack p50 {:.2} ms p99 {:.2} ms | errors {}",
        Stats::get(&stats.connected),
        Stats::get(&stats.connections_failed),
        Stats::get(&stats.rounds_seen),
        latency.p50_ms,
        latency.p99_ms,
        stats.failures().total(),
    )
}

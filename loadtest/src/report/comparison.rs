//! The comparison of servers under the same fan-out load, as `report.json` holds it:
//! one entry per server and connection count with its status, its figures and their
//! ratios to the floor's at the same count. `fanout::compare` fills it; the rows people
//! read (the terminal tables here, the HTML page in `html`) are drawn from it. With chat
//! on, a second table shows the chat figures of the servers that had chat beside their
//! tick latency.

use serde::Serialize;

use crate::report::fanout::{FanoutReport, ratio_to_floor};
use crate::report::table;

/// How one server's run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// The server cannot be started here (not built, not installed).
    Unavailable,
    /// It started but the run failed.
    Failed,
}

/// A server's figures as multiples of the floor's at the same load.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Ratios {
    pub cpu_us_per_frame: Option<f64>,
    pub p99_latency: Option<f64>,
    pub rss_per_connection: Option<f64>,
}

/// One server at one connection count.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub server: String,
    pub conns: u64,
    /// Connections that never read, beside the `conns` measured ones.
    pub stalled: u64,
    pub status: Status,
    pub reason: Option<String>,
    pub result: Option<FanoutReport>,
    pub ratio_to_floor: Ratios,
}

impl Entry {
    /// The server's name, with its status unless it ran cleanly.
    pub fn server_label(&self) -> String {
        match self.status {
            Status::Ok => self.server.clone(),
            Status::Unavailable => format!("{} (unavailable)", self.server),
            Status::Failed => format!("{} (FAILED)", self.server),
        }
    }

    /// `server × conns`, how a chart names the entry's bar.
    pub fn bar_label(&self) -> String {
        format!("{} × {}", self.server_label(), self.load_label())
    }

    /// The connection count, with the stalled ones when there are: `10000+500 stalled`.
    pub fn load_label(&self) -> String {
        match self.stalled {
            0 => self.conns.to_string(),
            stalled => format!("{}+{stalled} stalled", self.conns),
        }
    }

    /// Whether this is the floor's entry (the bars drawn in grey).
    pub fn is_floor(&self) -> bool {
        self.server == FLOOR
    }
}

/// The machine a comparison ran on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub kernel: String,
    /// `/proc/loadavg` when the comparison started.
    pub load_average: String,
}

/// The chat load of a comparison; only the servers that have chat (aloft) ran it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ChatSettings {
    pub messages_per_second: u64,
    pub chatters: u64,
}

/// The whole comparison, as written to `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    pub machine: Machine,
    pub started_unix_seconds: u64,
    pub hz: u32,
    pub payload_bytes: usize,
    pub probes: u64,
    pub warmup_seconds: f64,
    pub measure_seconds: f64,
    /// Present when chat was on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatSettings>,
    pub entries: Vec<Entry>,
}

/// The name of the raw-TCP floor every server is compared with.
pub const FLOOR: &str = "floor";

/// The columns of the results table.
pub const HEADERS: [&str; 9] = [
    "server",
    "conns",
    "frames/s",
    "CPU-µs/frame",
    "× floor",
    "RSS/conn KiB",
    "latency p50/p99/p999 ms",
    "lost",
    "client cores",
];

/// The columns of the chat table.
pub const CHAT_HEADERS: [&str; 6] = [
    "server",
    "conns",
    "chat msgs/s sent",
    "chat frames delivered",
    "chat refused (rate-limited / other)",
    "chat latency p50/p99/p999 ms",
];

impl CompareReport {
    /// The rows of the chat table: one per entry that ran with chat.
    pub fn chat_rows(&self) -> Vec<[String; 6]> {
        (self.entries.iter())
            .filter_map(|entry| {
                let chat = entry.result.as_ref()?.chat.as_ref()?;
                let latency = &chat.latency;
                Some([
                    entry.server_label(),
                    entry.load_label(),
                    format!("{:.2}", chat.messages_per_second_sent),
                    chat.frames_delivered.to_string(),
                    format!("{} / {}", chat.refused_rate_limited, chat.refused_other),
                    format!(
                        "{:.2} / {:.2} / {:.2}",
                        latency.p50_ms, latency.p99_ms, latency.p999_ms
                    ),
                ])
            })
            .collect()
    }

    /// The rows of the results table: one per entry, unavailable and failed ones
    /// included (their reason in the third column).
    pub fn rows(&self) -> Vec<[String; 9]> {
        self.entries.iter().map(row).collect()
    }

    /// Why each entry that did not run cleanly did not: `(label, reason)`.
    pub fn reasons(&self) -> Vec<(String, &str)> {
        (self.entries.iter())
            .filter_map(|entry| Some((entry.bar_label(), entry.reason.as_deref()?)))
            .collect()
    }

    /// The results as a plain-text table, then the reasons, for the terminal.
    pub fn text_table(&self) -> String {
        let mut text = table::grid(&HEADERS, self.rows());
        let chat_rows = self.chat_rows();
        if !chat_rows.is_empty() {
            text.push_str(&table::grid(&CHAT_HEADERS, chat_rows));
        }
        for (label, reason) in self.reasons() {
            text.push_str(&format!("{label}: {reason}\n"));
        }
        text
    }
}

fn row(entry: &Entry) -> [String; 9] {
    let optional = |value: Option<f64>, scale: f64| {
        value.map_or("n/a".to_owned(), |value| format!("{:.2}", value / scale))
    };
    let Some(result) = &entry.result else {
        let mut row: [String; 9] = Default::default();
        row[0] = entry.server_label();
        row[1] = entry.load_label();
        row[2] = entry.reason.clone().unwrap_or_default();
        return row;
    };
    let latency = &result.tick_latency;
    [
        entry.server_label(),
        entry.load_label(),
        format!("{:.0}", result.frames_per_second),
        optional(result.server_cpu_us_per_frame, 1.0),
        optional(entry.ratio_to_floor.cpu_us_per_frame, 1.0),
        optional(result.server_rss_per_connection_bytes, 1024.0),
        format!(
            "{:.2} / {:.2} / {:.2}",
            latency.p50_ms, latency.p99_ms, latency.p999_ms
        ),
        result.probe_frames_lost.to_string(),
        format!(
            "{:.2}",
            result.generator_cpu_seconds / result.window_seconds.max(f64::MIN_POSITIVE)
        ),
    ]
}

/// Fills each entry's ratios to the floor's entry at the same load (connection and
/// stalled counts).
pub fn add_ratios(entries: &mut [Entry]) {
    let floors: Vec<((u64, u64), FanoutReport)> = entries
        .iter()
        .filter(|entry| entry.is_floor())
        .filter_map(|entry| Some(((entry.conns, entry.stalled), entry.result.clone()?)))
        .collect();
    for entry in entries.iter_mut() {
        let load = (entry.conns, entry.stalled);
        let (Some(result), Some((_, floor))) = (
            &entry.result,
            floors.iter().find(|(floor_load, _)| *floor_load == load),
        ) else {
            continue;
        };
        entry.ratio_to_floor = Ratios {
            cpu_us_per_frame: ratio_to_floor(
                result.server_cpu_us_per_frame,
                floor.server_cpu_us_per_frame,
            ),
            p99_latency: ratio_to_floor(
                Some(result.tick_latency.p99_ms),
                Some(floor.tick_latency.p99_ms),
            ),
            rss_per_connection: ratio_to_floor(
                result.server_rss_per_connection_bytes,
                floor.server_rss_per_connection_bytes,
            ),
        };
    }
}

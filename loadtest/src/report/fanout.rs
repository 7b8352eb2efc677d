//! What a fan-out run reports, and the arithmetic behind it as pure functions: server
//! CPU per delivered frame from `/proc` clock ticks over the measured window, RSS per
//! connection, ratios to the floor; the summary table and the JSON report (with the
//! tick latency percentiles of `report::latency`, and the chat figures of
//! `report::chat` when chat was on).

use serde::Serialize;

use crate::report::chat::ChatReport;
use crate::report::latency::LatencyPercentiles;
use crate::report::table;

/// Microseconds per second.
const US_PER_SECOND: f64 = 1_000_000.0;
/// Bytes per KiB.
const BYTES_PER_KIB: f64 = 1024.0;
/// Bytes per MiB.
const BYTES_PER_MIB: f64 = 1024.0 * 1024.0;

/// CPU microseconds per delivered frame: the CPU a process used between two readings of
/// `utime + stime` (in clock ticks of `ticks_per_second`), divided by the frames
/// delivered in the same window. `None` when no frame was delivered.
pub fn cpu_us_per_frame(
    cpu_ticks_start: u64,
    cpu_ticks_end: u64,
    ticks_per_second: u64,
    frames: u64,
) -> Option<f64> {
    if frames == 0 {
        return None;
    }
    let cpu_us = cpu_ticks_end.saturating_sub(cpu_ticks_start) as f64 * US_PER_SECOND
        / ticks_per_second as f64;
    Some(cpu_us / frames as f64)
}

/// Resident memory per connection: (RSS with the connections − RSS with none) ÷ their
/// count, in bytes (negative when the allocator returned memory in between). `None`
/// without connections.
pub fn rss_per_connection_bytes(
    idle_rss_bytes: u64,
    loaded_rss_bytes: u64,
    conns: u64,
) -> Option<f64> {
    if conns == 0 {
        return None;
    }
    Some((loaded_rss_bytes as f64 - idle_rss_bytes as f64) / conns as f64)
}

/// `value` as a multiple of the floor's; `None` when either is missing or the floor's
/// is not positive.
pub fn ratio_to_floor(value: Option<f64>, floor: Option<f64>) -> Option<f64> {
    match (value, floor) {
        (Some(value), Some(floor)) if floor > 0.0 => Some(value / floor),
        _ => None,
    }
}

/// The stalled connections of a run (`--stalled`): opened, never read, kept out of every
/// measured figure, and how the server had ended them when the run drained them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StalledReport {
    pub requested: u64,
    pub opened: u64,
    pub failed: u64,
    /// Ended by a close frame with 4001 (slow consumer).
    pub closed_slow_consumer: u64,
    /// Ended by a close frame with another code, or none.
    pub closed_other_code: u64,
    /// Ended (end of stream or reset) with no close frame: the server dropped the socket
    /// with its close frame still unwritten behind the full buffer.
    pub ended_without_close_frame: u64,
    /// Still open when the drain's time ran out.
    pub still_open: u64,
}

impl StalledReport {
    /// Stalled connections the server had ended, in any way.
    pub fn closed_by_server(&self) -> u64 {
        self.closed_slow_consumer + self.closed_other_code + self.ended_without_close_frame
    }
}

/// The report of one fan-out run against one server.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    pub server: String,
    pub conns: u64,
    pub probes: u64,
    pub hz: u32,
    /// Payload size asked for; servers with their own frames (aloft) ignore it.
    pub payload_bytes_requested: usize,
    pub connections_ok: u64,
    pub connections_failed: u64,
    /// Connections the server closed or broke before the end of the run.
    pub connections_ended: u64,
    pub warmup_seconds: f64,
    pub window_seconds: f64,
    /// Frames delivered to all connections in the window (chat events included).
    pub frames: u64,
    pub frames_per_second: f64,
    /// `connections_ok × (hz + chat messages per second)`.
    pub frames_per_second_offered: f64,
    /// Mean bytes on the wire per frame in the window (header included).
    pub frame_wire_bytes_mean: f64,
    pub server_pid: u32,
    pub server_cpu_seconds: f64,
    pub server_cpu_us_per_frame: Option<f64>,
    pub server_rss_idle_bytes: u64,
    pub server_rss_loaded_bytes: u64,
    /// Over every open connection, stalled ones included.
    pub server_rss_per_connection_bytes: Option<f64>,
    pub tick_latency: LatencyPercentiles,
    pub probe_frames_expected: u64,
    pub probe_frames_received: u64,
    pub probe_frames_lost: u64,
    /// Frames kept for parsing (every frame of probes and chatters, chat events on the
    /// other connections) whose JSON did not parse.
    pub frames_unparsed: u64,
    pub generator_cpu_seconds: f64,
    pub generator_cpu_us_per_frame: Option<f64>,
    pub generator_rss_mib: f64,
    pub first_error: Option<String>,
    pub stalled: StalledReport,
    /// Present when the run had chat on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<ChatReport>,
}

impl FanoutReport {
    /// What makes the run unsound: connections that failed or ended, probes that saw
    /// no tick or frames they could not parse. Empty for a sound run.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.connections_failed > 0 {
            problems.push(format!(
                "{} of {} connections failed to open",
                self.connections_failed, self.conns
            ));
        }
        if self.connections_ended > 0 {
            problems.push(format!(
                "{} connections ended early",
                self.connections_ended
            ));
        }
        if self.stalled.failed > 0 {
            problems.push(format!(
                "{} of {} stalled connections failed to open",
                self.stalled.failed, self.stalled.requested
            ));
        }
        if self.tick_latency.count == 0 {
            problems.push("the probes saw no tick".to_owned());
        }
        if self.frames_unparsed > 0 {
            problems.push(format!("{} frames did not parse", self.frames_unparsed));
        }
        if let Some(chat) = &self.chat {
            problems.extend(chat.problems());
        }
        if !problems.is_empty()
            && let Some(error) = &self.first_error
        {
            problems.push(format!("first error: {error}"));
        }
        problems
    }

    /// The summary table printed after a run.
    pub fn summary_table(&self) -> String {
        let mut rows = self.load_rows();
        rows.extend(self.result_rows());
        if let Some(chat) = &self.chat {
            rows.extend(chat.rows());
        }
        if self.stalled.requested > 0 {
            rows.extend(self.stalled_rows());
        }
        let mut table = table::key_values(rows);
        if let Some(error) = &self.first_error {
            table.push_str(&format!("first connection error: {error}\n"));
        }
        table
    }

    /// The table rows describing the load and the run.
    fn load_rows(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "server",
                format!("{} (pid {})", self.server, self.server_pid),
            ),
            (
                "load",
                format!(
                    "{} conns × {} Hz, {} probes",
                    self.conns, self.hz, self.probes
                ),
            ),
            (
                "connections ok / failed / ended",
                format!(
                    "{} / {} / {}",
                    self.connections_ok, self.connections_failed, self.connections_ended
                ),
            ),
            (
                "window",
                format!(
                    "{:.1} s after {:.1} s warm-up",
                    self.window_seconds, self.warmup_seconds
                ),
            ),
            (
                "frames/s delivered (offered)",
                format!(
                    "{:.0} ({:.0})",
                    self.frames_per_second, self.frames_per_second_offered
                ),
            ),
            (
                "frame bytes on the wire",
                format!("{:.1}", self.frame_wire_bytes_mean),
            ),
        ]
    }

    /// The table rows of the stalled connections, apart from the measured ones.
    fn stalled_rows(&self) -> Vec<(&'static str, String)> {
        let stalled = &self.stalled;
        vec![
            (
                "stalled opened / failed",
                format!("{} / {}", stalled.opened, stalled.failed),
            ),
            (
                "stalled ended (4001 / other close / no close frame), still open",
                format!(
                    "{} ({} / {} / {}), {}",
                    stalled.closed_by_server(),
                    stalled.closed_slow_consumer,
                    stalled.closed_other_code,
                    stalled.ended_without_close_frame,
                    stalled.still_open
                ),
            ),
        ]
    }

    /// The table rows of the measured figures.
    fn result_rows(&self) -> Vec<(&'static str, String)> {
        let cores = |cpu_seconds: f64| cpu_seconds / self.window_seconds.max(f64::MIN_POSITIVE);
        let optional = |value: Option<f64>, scale: f64| {
            value.map_or("n/a".to_owned(), |value| format!("{:.2}", value / scale))
        };
        let latency = &self.tick_latency;
        vec![
            (
                "server CPU",
                format!(
                    "{:.2} s ({:.2} cores)",
                    self.server_cpu_seconds,
                    cores(self.server_cpu_seconds)
                ),
            ),
            (
                "server CPU-µs/frame",
                optional(self.server_cpu_us_per_frame, 1.0),
            ),
            (
                "server RSS idle / loaded",
                format!(
                    "{:.1} / {:.1} MiB",
                    self.server_rss_idle_bytes as f64 / BYTES_PER_MIB,
                    self.server_rss_loaded_bytes as f64 / BYTES_PER_MIB
                ),
            ),
            (
                "server RSS/conn (KiB)",
                optional(self.server_rss_per_connection_bytes, BYTES_PER_KIB),
            ),
            (
                "tick latency p50/p99/p999/max",
                format!(
                    "{:.2} / {:.2} / {:.2} / {:.2} ms ({} samples)",
                    latency.p50_ms, latency.p99_ms, latency.p999_ms, latency.max_ms, latency.count
                ),
            ),
            (
                "probe frames expected / lost",
                format!(
                    "{} / {}",
                    self.probe_frames_expected, self.probe_frames_lost
                ),
            ),
            (
                "generator CPU",
                format!(
                    "{:.2} s ({:.2} cores, {} µs/frame), RSS {:.1} MiB",
                    self.generator_cpu_seconds,
                    cores(self.generator_cpu_seconds),
                    optional(self.generator_cpu_us_per_frame, 1.0),
                    self.generator_rss_mib
                ),
            ),
        ]
    }
}

/// Reports for the tests of what draws them.
#[cfg(test)]
pub mod examples {
    use super::*;

    /// A sound run of `server` at 2,000 connections × 20 Hz, without chat.
    pub fn sound_run(server: &str) -> FanoutReport {
        let latency = LatencyPercentiles {
            count: 3_200,
            p50_ms: 2.0,
            p99_ms: 12.0,
            p999_ms: 18.0,
            max_ms: 25.0,
        };
        FanoutReport {
            server: server.to_owned(),
            conns: 2_000,
            probes: 8,
            hz: 20,
            payload_bytes_requested: 64,
            connections_ok: 2_000,
            connections_failed: 0,
            connections_ended: 0,
            warmup_seconds: 5.0,
            window_seconds: 20.0,
            frames: 800_000,
            frames_per_second: 40_000.0,
            frames_per_second_offered: 40_000.0,
            frame_wire_bytes_mean: 72.0,
            server_pid: 1,
            server_cpu_seconds: 5.6,
            server_cpu_us_per_frame: Some(7.0),
            server_rss_idle_bytes: 20 << 20,
            server_rss_loaded_bytes: 28 << 20,
            server_rss_per_connection_bytes: Some(4_194.0),
            tick_latency: latency,
            probe_frames_expected: 3_200,
            probe_frames_received: 3_200,
            probe_frames_lost: 0,
            frames_unparsed: 0,
            generator_cpu_seconds: 5.0,
            generator_cpu_us_per_frame: Some(6.0),
            generator_rss_mib: 30.0,
            first_error: None,
            stalled: StalledReport::default(),
            chat: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::parse_stat_cpu_ticks;

    #[test]
    fn cpu_per_frame_is_the_window_delta_over_frames() {
        // Two readings of /proc/<pid>/stat 20 s apart: utime+stime 1000 → 1800 ticks.
        let before = "77 (aloft) S 1 77 77 0 -1 0 0 0 0 0 700 300 0 0 20 0 3 0 1 2 3";
        let after = "77 (aloft) S 1 77 77 0 -1 0 0 0 0 0 1300 500 0 0 20 0 3 0 1 2 3";
        let (user, system) = parse_stat_cpu_ticks(before).unwrap();
        let start = user + system;
        let (user, system) = parse_stat_cpu_ticks(after).unwrap();
        let end = user + system;
        // 800 ticks at 100 Hz = 8 s = 8,000,000 µs over 800,000 frames = 10 µs/frame.
        assert_eq!(cpu_us_per_frame(start, end, 100, 800_000), Some(10.0));
        // The same ticks at 1000 Hz are a tenth of the time.
        assert_eq!(cpu_us_per_frame(start, end, 1000, 800_000), Some(1.0));
        assert_eq!(cpu_us_per_frame(start, end, 100, 0), None);
        // A counter that went backwards (another pid) counts as no CPU, not a wrap.
        assert_eq!(cpu_us_per_frame(end, start, 100, 10), Some(0.0));
    }

    #[test]
    fn rss_per_connection_subtracts_the_idle_process() {
        let idle = 20 * 1024 * 1024;
        let loaded = idle + 2_000 * 3_072;
        assert_eq!(rss_per_connection_bytes(idle, loaded, 2_000), Some(3_072.0));
        assert_eq!(
            rss_per_connection_bytes(loaded, idle, 2_000),
            Some(-3_072.0)
        );
        assert_eq!(rss_per_connection_bytes(idle, loaded, 0), None);
    }

    #[test]
    fn ratios_are_to_the_floor_and_need_both_values() {
        assert_eq!(ratio_to_floor(Some(12.0), Some(8.0)), Some(1.5));
        assert_eq!(ratio_to_floor(Some(8.0), Some(8.0)), Some(1.0));
        assert_eq!(ratio_to_floor(None, Some(8.0)), None);
        assert_eq!(ratio_to_floor(Some(8.0), None), None);
        assert_eq!(ratio_to_floor(Some(8.0), Some(0.0)), None);
    }
}

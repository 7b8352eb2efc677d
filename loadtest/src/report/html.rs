//! The comparison as a self-contained `report.html`, built with maud (every text
//! escaped by the template): the run's settings and machine, the results table, the chat
//! table when chat was on, why any server did not run cleanly, and a bar chart (`charts`) of CPU-µs per frame, p99
//! tick latency and RSS per connection, each bar labelled with its ratio to the floor.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::report::charts::{self, Bar};
use crate::report::comparison::{CHAT_HEADERS, CompareReport, Entry, HEADERS};

/// The page's style sheet.
const STYLE: &str = "body{font-family:sans-serif;margin:2em}\
table{border-collapse:collapse;margin-bottom:1.5em}\
td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
td:first-child,th:first-child{text-align:left}";

/// A figure of an entry's result, with its ratio to the floor.
type Metric = fn(&Entry) -> Option<(f64, Option<f64>)>;

/// The charted figures: title, unit, how to read them.
const METRICS: [(&str, &str, Metric); 3] = [
    ("Server CPU per delivered frame", "µs", |entry| {
        let value = entry.result.as_ref()?.server_cpu_us_per_frame?;
        Some((value, entry.ratio_to_floor.cpu_us_per_frame))
    }),
    ("Tick latency p99", "ms", |entry| {
        let value = entry.result.as_ref()?.tick_latency.p99_ms;
        Some((value, entry.ratio_to_floor.p99_latency))
    }),
    ("Server RSS per connection", "KiB", |entry| {
        let value = entry.result.as_ref()?.server_rss_per_connection_bytes? / 1024.0;
        Some((value, entry.ratio_to_floor.rss_per_connection))
    }),
];

/// The self-contained HTML report.
pub fn render(report: &CompareReport) -> anyhow::Result<String> {
    let charts = METRICS
        .iter()
        .map(|(title, unit, metric)| charts::bar_chart(title, unit, &bars(report, *metric)))
        .collect::<anyhow::Result<Vec<String>>>()?;
    let page = html! {
        (DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                title { "aloft fan-out comparison" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Fan-out comparison" }
                (settings(report))
                (results_table(report))
                (chat_table(report))
                @for (label, reason) in report.reasons() {
                    p { (label) ": " (reason) }
                }
                @for chart in &charts {
                    // plotters' SVG, whose text it escaped itself.
                    div { (PreEscaped(chart)) }
                }
            }
        }
    };
    Ok(page.into_string() + "\n")
}

/// The load, the window and the machine, in one sentence each.
fn settings(report: &CompareReport) -> Markup {
    let machine = &report.machine;
    html! {
        p {
            (report.hz) " Hz, payload " (report.payload_bytes) " bytes (floor), "
            (report.probes) " probes, " (format!("{:.0}", report.warmup_seconds))
            " s warm-up, " (format!("{:.0}", report.measure_seconds)) " s window. "
            "Machine: " (machine.cores) " cores, " (machine.cpu_model) ", Linux "
            (machine.kernel) ", load average at start " (machine.load_average) "."
        }
        @if let Some(chat) = &report.chat {
            p {
                "Chat on: " (chat.messages_per_second) " messages per second from "
                (chat.chatters) " chatters, on the servers that have chat (aloft); "
                "the floor and the peers have none and ran without it."
            }
        }
    }
}

/// The chat figures of the entries that ran with chat; nothing without chat.
fn chat_table(report: &CompareReport) -> Markup {
    let rows = report.chat_rows();
    html! {
        @if !rows.is_empty() {
            h2 { "Chat" }
            table {
                tr { @for header in CHAT_HEADERS { th { (header) } } }
                @for row in rows {
                    tr { @for cell in row { td { (cell) } } }
                }
            }
        }
    }
}

fn results_table(report: &CompareReport) -> Markup {
    html! {
        table {
            tr { @for header in HEADERS { th { (header) } } }
            @for row in report.rows() {
                tr { @for cell in row { td { (cell) } } }
            }
        }
    }
}

/// The bars of one metric: every entry that has the figure.
fn bars(report: &CompareReport, metric: Metric) -> Vec<Bar> {
    (report.entries.iter())
        .filter_map(|entry| {
            let (value, ratio) = metric(entry)?;
            Some(Bar {
                label: entry.bar_label(),
                value,
                ratio,
                is_floor: entry.is_floor(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::chat::ChatReport;
    use crate::report::comparison::{ChatSettings, Machine, Ratios, Status};
    use crate::report::fanout::examples::sound_run;
    use crate::report::latency::LatencyPercentiles;

    fn report() -> CompareReport {
        CompareReport {
            machine: Machine {
                cores: 2,
                cpu_model: "Test <CPU>".to_owned(),
                kernel: "6.1".to_owned(),
                load_average: "0.10 0.20 0.30 1/100 42".to_owned(),
            },
            started_unix_seconds: 0,
            hz: 20,
            payload_bytes: 64,
            probes: 4,
            warmup_seconds: 1.0,
            measure_seconds: 3.0,
            chat: None,
            entries: vec![Entry {
                server: "uws".to_owned(),
                conns: 50,
                stalled: 0,
                status: Status::Unavailable,
                reason: Some("node & npm missing".to_owned()),
                result: None,
                ratio_to_floor: Ratios::default(),
            }],
        }
    }

    #[test]
    fn the_page_escapes_text_and_names_unavailable_servers() {
        let page = render(&report()).unwrap();
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(page.contains("Test &lt;CPU&gt;"), "{page}");
        assert!(
            page.contains("uws (unavailable) × 50: node &amp; npm missing"),
            "{page}"
        );
        assert_eq!(page.matches("<svg").count(), METRICS.len(), "{page}");
        assert!(!page.contains("Chat"), "no chat table without chat: {page}");
    }

    #[test]
    fn the_page_shows_the_chat_figures_of_the_servers_that_chatted() {
        let mut report = report();
        report.chat = Some(ChatSettings {
            messages_per_second: 20,
            chatters: 50,
        });
        let mut chatted = sound_run("aloft");
        chatted.chat = Some(ChatReport {
            messages_per_second_requested: 20,
            chatters: 50,
            messages_sent: 399,
            messages_per_second_sent: 19.95,
            frames_delivered: 797_000,
            deliveries_per_message: Some(1_997.5),
            refused_rate_limited: 1,
            refused_other: 0,
            first_refusal_code: None,
            latency: LatencyPercentiles {
                count: 790_000,
                p50_ms: 3.25,
                p99_ms: 14.5,
                p999_ms: 21.75,
                max_ms: 30.0,
            },
        });
        for (server, result) in [("floor", sound_run("floor")), ("aloft", chatted)] {
            report.entries.push(Entry {
                server: server.to_owned(),
                conns: 2_000,
                stalled: 0,
                status: Status::Ok,
                reason: None,
                result: Some(result),
                ratio_to_floor: Ratios::default(),
            });
        }
        let page = render(&report).unwrap();
        assert!(
            page.contains("Chat on: 20 messages per second from 50 chatters"),
            "{page}"
        );
        assert!(page.contains("<h2>Chat</h2>"), "{page}");
        for cell in ["19.95", "797000", "1 / 0", "3.25 / 14.50 / 21.75"] {
            assert!(page.contains(&format!("<td>{cell}</td>")), "{cell}: {page}");
        }
        assert_eq!(report.chat_rows().len(), 1, "the floor had no chat");
        assert!(report.text_table().contains("3.25 / 14.50 / 21.75"));
    }
}

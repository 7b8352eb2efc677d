//! The comparison as people read it: a plain-text table for the terminal and a
//! self-contained `report.html` (a table and hand-written SVG bar charts of CPU-µs per
//! frame, p99 tick latency and RSS per connection, each bar labelled with its ratio to
//! the floor). No chart library: the bars are a few lines of SVG.

use std::fmt::Write;

use crate::fanout::compare::{CompareReport, Entry, Status};

/// Width of a chart, in pixels.
const CHART_WIDTH_PX: f64 = 880.0;
/// Width of the label column left of the bars, in pixels (room for
/// "python-websockets × 10000 (unavailable)").
const LABEL_WIDTH_PX: f64 = 270.0;
/// Width kept right of the longest bar for its value, in pixels.
const VALUE_WIDTH_PX: f64 = 190.0;
/// Height of one bar's row, in pixels.
const ROW_HEIGHT_PX: f64 = 26.0;
/// Height of the title row, in pixels.
const TITLE_HEIGHT_PX: f64 = 30.0;

/// One bar: its label, value and ratio to the floor.
struct Bar {
    label: String,
    value: f64,
    ratio: Option<f64>,
}

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

/// Escapes text for HTML and SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn ratio_text(ratio: Option<f64>) -> String {
    ratio.map_or(String::new(), |ratio| format!(" ({ratio:.2}× floor)"))
}

/// A horizontal bar chart; bars scale to the largest value (negative ones draw empty).
fn bar_chart(title: &str, unit: &str, bars: &[Bar]) -> String {
    let height = TITLE_HEIGHT_PX + ROW_HEIGHT_PX * bars.len() as f64 + 8.0;
    let largest = bars.iter().map(|bar| bar.value).fold(0.0, f64::max);
    let span = CHART_WIDTH_PX - LABEL_WIDTH_PX - VALUE_WIDTH_PX;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH_PX}" height="{height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = write!(
        svg,
        r#"<text x="0" y="18" font-weight="bold">{} ({unit})</text>"#,
        escape(title)
    );
    for (index, bar) in bars.iter().enumerate() {
        let y = TITLE_HEIGHT_PX + ROW_HEIGHT_PX * index as f64;
        let width = if largest > 0.0 {
            (bar.value.max(0.0) / largest) * span
        } else {
            0.0
        };
        let fill = if bar.label.starts_with("floor") {
            "#888"
        } else {
            "#2a7ab8"
        };
        let _ = write!(
            svg,
            r#"<text x="0" y="{:.1}">{}</text><rect x="{LABEL_WIDTH_PX}" y="{y:.1}" width="{width:.1}" height="{:.1}" fill="{fill}"/><text x="{:.1}" y="{:.1}">{:.2} {unit}{}</text>"#,
            y + 17.0,
            escape(&bar.label),
            ROW_HEIGHT_PX - 6.0,
            LABEL_WIDTH_PX + width + 6.0,
            y + 17.0,
            bar.value,
            ratio_text(bar.ratio),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The server's name, with its status unless it ran cleanly.
fn server_label(entry: &Entry) -> String {
    match entry.status {
        Status::Ok => entry.server.clone(),
        Status::Unavailable => format!("{} (unavailable)", entry.server),
        Status::Failed => format!("{} (FAILED)", entry.server),
    }
}

/// The rows of the results table: one per entry, unavailable and failed ones included.
fn table_rows(report: &CompareReport) -> Vec<[String; 9]> {
    let optional = |value: Option<f64>, scale: f64| {
        value.map_or("n/a".to_owned(), |value| format!("{:.2}", value / scale))
    };
    report
        .entries
        .iter()
        .map(|entry| match &entry.result {
            Some(result) => [
                server_label(entry),
                entry.conns.to_string(),
                format!("{:.0}", result.frames_per_second),
                optional(result.server_cpu_us_per_frame, 1.0),
                optional(entry.ratio_to_floor.cpu_us_per_frame, 1.0),
                optional(result.server_rss_per_connection_bytes, 1024.0),
                format!(
                    "{:.2} / {:.2} / {:.2}",
                    result.tick_latency.p50_ms,
                    result.tick_latency.p99_ms,
                    result.tick_latency.p999_ms
                ),
                format!("{}", result.probe_frames_lost),
                format!(
                    "{:.2}",
                    result.generator_cpu_seconds / result.window_seconds.max(f64::MIN_POSITIVE)
                ),
            ],
            None => {
                let mut row: [String; 9] = Default::default();
                row[0] = server_label(entry);
                row[1] = entry.conns.to_string();
                row[2] = entry.reason.clone().unwrap_or_default();
                row
            }
        })
        .collect()
}

const HEADERS: [&str; 9] = [
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

/// The results as an aligned plain-text table.
pub fn text_table(report: &CompareReport) -> String {
    let rows = table_rows(report);
    let mut widths = HEADERS.map(|header| header.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell}{}", " ".repeat(width - cell.chars().count())))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut table = line(HEADERS.to_vec());
    for row in &rows {
        table.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    for entry in &report.entries {
        if let Some(reason) = &entry.reason {
            table.push_str(&format!(
                "{} × {}: {reason}\n",
                server_label(entry),
                entry.conns
            ));
        }
    }
    table
}

/// The self-contained HTML report.
pub fn render(report: &CompareReport) -> String {
    let machine = &report.machine;
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>aloft fan-out comparison</title>",
    );
    html.push_str("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}</style></head><body>");
    let _ = write!(
        html,
        "<h1>Fan-out comparison</h1><p>{} Hz, payload {} bytes (floor), {} probes, {:.0} s warm-up, {:.0} s window. Machine: {} cores, {}, Linux {}, load average at start {}.</p>",
        report.hz,
        report.payload_bytes,
        report.probes,
        report.warmup_seconds,
        report.measure_seconds,
        machine.cores,
        escape(&machine.cpu_model),
        escape(&machine.kernel),
        escape(&machine.load_average),
    );
    html.push_str("<table><tr>");
    for header in HEADERS {
        let _ = write!(html, "<th>{}</th>", escape(header));
    }
    html.push_str("</tr>");
    for row in table_rows(report) {
        html.push_str("<tr>");
        for cell in row {
            let _ = write!(html, "<td>{}</td>", escape(&cell));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    for entry in &report.entries {
        if let Some(reason) = &entry.reason {
            let _ = write!(
                html,
                "<p>{} × {}: {}</p>",
                escape(&server_label(entry)),
                entry.conns,
                escape(reason)
            );
        }
    }
    for (title, unit, metric) in METRICS {
        let bars: Vec<Bar> = report
            .entries
            .iter()
            .filter_map(|entry| {
                let (value, ratio) = metric(entry)?;
                let label = format!("{} × {}", server_label(entry), entry.conns);
                Some(Bar {
                    label,
                    value,
                    ratio,
                })
            })
            .collect();
        let _ = write!(html, "<div>{}</div>", bar_chart(title, unit, &bars));
    }
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_carry_their_ratio() {
        let bars = [
            Bar {
                label: "floor × 2000".into(),
                value: 8.0,
                ratio: Some(1.0),
            },
            Bar {
                label: "aloft × 2000".into(),
                value: 16.0,
                ratio: Some(2.0),
            },
            Bar {
                label: "a<b".into(),
                value: -1.0,
                ratio: None,
            },
        ];
        let svg = bar_chart("CPU", "µs", &bars);
        let span = CHART_WIDTH_PX - LABEL_WIDTH_PX - VALUE_WIDTH_PX;
        assert!(svg.contains(&format!(r#"width="{:.1}""#, span)), "{svg}");
        assert!(
            svg.contains(&format!(r#"width="{:.1}""#, span / 2.0)),
            "{svg}"
        );
        assert!(svg.contains(r#"width="0.0""#));
        assert!(svg.contains("16.00 µs (2.00× floor)"));
        assert!(svg.contains("a&lt;b"));
    }
}

//! What the runs measure and how people read it: the shared counters and failure log
//! (`stats`), latency percentiles (`latency`), the `bots` run's summary (`summary`), a
//! fan-out run's figures (`fanout`) and its chat figures (`chat`), the comparison of
//! servers (`comparison`) drawn as a text table, charts and an HTML page (`table`,
//! `charts`, `html`), and the JSON file every subcommand writes with `--report`.

pub mod charts;
pub mod chat;
pub mod comparison;
pub mod fanout;
pub mod html;
pub mod latency;
pub mod stats;
pub mod summary;
pub mod table;

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

/// Writes any report as pretty JSON (with a final newline) to `path`.
pub fn write_json(path: &Path, report: &impl Serialize) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report).context("encoding the report")?;
    std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
}

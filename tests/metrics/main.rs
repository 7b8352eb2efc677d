//! The metrics an operator runs aloft on: every family of docs/operations.md's table is
//! the code's (`aloft::metrics::FAMILIES`) and is on `/metrics` with HELP and TYPE right
//! after `aloft serve` starts, its known series at 0; and each config file documents
//! `metrics_listen` for the roles it configures.

#[allow(dead_code)] // This binary uses a part of the shared test app.
#[path = "../integration/common/mod.rs"]
mod common;
mod grafana;

use std::collections::BTreeMap;

use common::{TestApp, http, next_matching, send};
use serde_json::json;

const OPERATIONS: &str = include_str!("../../docs/operations.md");

/// The text of `markdown` under the heading line `heading` (`## Metrics`, `### …`), up to
/// the next heading of level 2.
pub fn markdown_section<'a>(markdown: &'a str, heading: &str) -> &'a str {
    let line = format!("\n{heading}\n");
    let start = markdown
        .find(&line)
        .unwrap_or_else(|| panic!("no section `{heading}`"))
        + line.len();
    let section = &markdown[start..];
    section.find("\n## ").map_or(section, |end| &section[..end])
}

/// (name, (type, side)) of each row of the table under "## Metrics" in
/// docs/operations.md.
fn documented_families() -> BTreeMap<String, (String, String)> {
    let section = markdown_section(OPERATIONS, "## Metrics");
    let mut families = BTreeMap::new();
    for row in section.lines().filter(|line| line.starts_with("| `aloft_")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_owned();
        let previous = families.insert(name.clone(), (cells[2].to_owned(), cells[3].to_owned()));
        assert!(previous.is_none(), "{name} documented twice");
    }
    families
}

/// The values of `series` (a name followed by its labels, as rendered) in `body`.
fn values_of<'a>(body: &'a str, series: &'a str) -> impl Iterator<Item = f64> + 'a {
    body.lines()
        .filter(move |line| line.starts_with(series))
        .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_family_is_exported_with_help_from_the_start() {
    let documented = documented_families();
    let side = |side| match side {
        aloft::metrics::Side::Engine => "engine",
        aloft::metrics::Side::Gateway => "gateway",
    };
    let coded: BTreeMap<String, (String, String)> = aloft::metrics::FAMILIES
        .iter()
        .map(|family| {
            let kind = family.kind.type_name().to_owned();
            (family.name.to_owned(), (kind, side(family.side).to_owned()))
        })
        .collect();
    assert_eq!(
        documented, coded,
        "docs/operations.md and metrics::FAMILIES differ"
    );

    let mut app = TestApp::start().await;
    let (status, body) = http(app.metrics_addr, "GET", "/metrics", &[]).await;
    assert_eq!(status, 200);
    for (name, (kind, _)) in &documented {
        let help = format!("# HELP {name} ");
        let type_line = format!("# TYPE {name} {kind}\n");
        assert!(body.contains(&help), "no HELP for {name} in\n{body}");
        assert!(body.contains(&type_line), "no `{type_line}` in\n{body}");
    }
    // Histograms have buckets, not quantiles, and exist before their first sample.
    assert!(!body.contains("quantile="), "a summary in\n{body}");
    let ack_buckets = r#"aloft_bet_ack_seconds_bucket{role="serve",room="main",le="0.25"}"#;
    assert_eq!(values_of(&body, ack_buckets).collect::<Vec<_>>(), [0.0]);
    // Series of labels known at start are there at 0: every refusal code, every shard.
    for code in [
        "insufficient_funds",
        "wrong_phase",
        "too_late",
        "unavailable",
    ] {
        let refused =
            format!(r#"aloft_bets_refused_total{{role="serve",room="main",code="{code}"}}"#);
        assert_eq!(
            values_of(&body, &refused).collect::<Vec<_>>(),
            [0.0],
            "{refused}"
        );
    }
    for shard in 0..app.config.gateway.shards {
        let connections = format!(r#"aloft_connections{{role="serve",shard="{shard}"}}"#);
        assert_eq!(values_of(&body, &connections).count(), 1, "{connections}");
    }

    // A refusal the engine makes itself (not the ledger's insufficient_funds) is counted
    // by its code; ticks delivered to a socket are measured.
    let (mut socket, ..) = app.player().await;
    next_matching(&mut socket, |frame| frame["t"] == "flying").await;
    next_matching(&mut socket, |frame| frame["t"] == "tick").await;
    send(
        &mut socket,
        json!({"t": "bet", "req": "late", "amount": 100}),
    )
    .await;
    let reply = next_matching(&mut socket, |frame| frame["req"] == "late").await;
    assert_eq!(reply["code"], "wrong_phase");
    let (_, body) = http(app.metrics_addr, "GET", "/metrics", &[]).await;
    let wrong_phase = r#"aloft_bets_refused_total{role="serve",room="main",code="wrong_phase"}"#;
    assert_eq!(
        values_of(&body, wrong_phase).collect::<Vec<_>>(),
        [1.0],
        "{body}"
    );
    let ticks_measured: f64 = values_of(
        &body,
        r#"aloft_tick_lag_seconds_count{role="serve",room="main","#,
    )
    .sum();
    assert!(ticks_measured >= 1.0, "{body}");
    app.stop().await;
}

#[test]
fn each_config_file_documents_metrics_listen_for_its_roles() {
    let roles_of = |file: &str| match file {
        "aloft.toml" => vec!["aloft serve", "aloft engine"],
        "cluster.toml" => vec!["aloft engine", "aloft gateway"],
        other => panic!("config/{other}: say here which roles it configures"),
    };
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|extension| extension != "toml") {
            continue;
        }
        let file = path.file_name().unwrap().to_str().unwrap().to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let key = lines
            .iter()
            .position(|line| line.starts_with("metrics_listen = "))
            .unwrap_or_else(|| panic!("config/{file} sets no metrics_listen"));
        let comment: String = lines[..key]
            .iter()
            .rev()
            .take_while(|line| line.starts_with('#'))
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        for role in roles_of(&file) {
            assert!(
                comment.contains(role),
                "config/{file}: the comment on metrics_listen does not name `{role}`: {comment}"
            );
        }
    }
}

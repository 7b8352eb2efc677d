//! The operator's Grafana dashboard (config/grafana/aloft.json) and Prometheus alert rules
//! (config/prometheus/alerts.yml) are held to the code: every series a PromQL expression
//! names is a family of `aloft::metrics::FAMILIES` with the suffix its type exports,
//! every label it matches or groups by is one that series carries, every label value it
//! matches literally is one `/metrics` shows at start, and every alert links a runbook
//! section of docs/operations.md.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::{TestApp, http};
use crate::{OPERATIONS, markdown_section};
use aloft::metrics::{FAMILIES, Family, Kind};
use serde::Deserialize;
use serde_json::Value;

const DASHBOARD: &str = include_str!("../../config/grafana/aloft.json");
const ALERTS: &str = include_str!("../../config/prometheus/alerts.yml");

/// Labels every series has besides its family's: `role` (the recorder's global label,
/// `metrics::install`), `instance` and `job` (added by Prometheus's scrape).
const GLOBAL_LABELS: [&str; 3] = ["role", "instance", "job"];

/// The PromQL functions and keywords the files may use; any other name that is not a
/// label is taken for a misspelled series.
const PROMQL_WORDS: &[&str] = &[
    "abs",
    "absent",
    "and",
    "avg",
    "avg_over_time",
    "bool",
    "by",
    "count",
    "group_left",
    "group_right",
    "histogram_quantile",
    "ignoring",
    "increase",
    "max",
    "max_over_time",
    "min",
    "on",
    "or",
    "rate",
    "sum",
    "unless",
    "vector",
    "without",
];

/// The clauses followed by a parenthesized list of labels.
const LABEL_CLAUSES: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

#[derive(Debug, Clone, PartialEq)]
enum Token<'a> {
    Name(&'a str),
    Text(&'a str),
    Symbol(&'a str),
}

/// PromQL's tokens, less numbers, range selectors (`[5m]`, `[$__range]`) and Grafana
/// variables outside strings.
fn tokens(expr: &str) -> Vec<Token<'_>> {
    let bytes = expr.as_bytes();
    let is_name = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b':';
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        match bytes[at] {
            b'"' | b'\'' => {
                at += 1;
                while bytes[at] != bytes[start] {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
                tokens.push(Token::Text(&expr[start + 1..at]));
                at += 1;
            }
            b'[' => at = start + expr[start..].find(']').expect("a range is closed") + 1,
            b'$' | b'0'..=b'9' | b'.' => {
                at += 1;
                while at < bytes.len() && (is_name(bytes[at]) || b"{}.".contains(&bytes[at])) {
                    at += 1;
                }
            }
            byte if is_name(byte) => {
                while at < bytes.len() && is_name(bytes[at]) {
                    at += 1;
                }
                tokens.push(Token::Name(&expr[start..at]));
            }
            byte if byte.is_ascii_whitespace() => at += 1,
            _ => {
                let two = expr.get(start..start + 2);
                at += match two {
                    Some("=~" | "!~" | "!=" | "==" | ">=" | "<=") => 2,
                    _ => 1,
                };
                tokens.push(Token::Symbol(&expr[start..at]));
            }
        }
    }
    tokens
}

/// The family a series name belongs to: a counter's or gauge's own name, a histogram's
/// name with `_bucket`, `_sum` or `_count`.
fn family_of(series: &str) -> Option<&'static Family> {
    FAMILIES.iter().find(|family| match family.kind {
        Kind::Counter | Kind::Gauge => series == family.name,
        Kind::Histogram(_) => series
            .strip_prefix(family.name)
            .is_some_and(|suffix| ["_bucket", "_sum", "_count"].contains(&suffix)),
    })
}

/// The labels a series carries: its family's, the global ones, `le` on a bucket.
fn labels_of(series: &str) -> BTreeSet<&str> {
    let family = family_of(series).map_or(&[][..], |family| family.labels);
    let bucket = series.ends_with("_bucket").then_some("le");
    family
        .iter()
        .copied()
        .chain(GLOBAL_LABELS)
        .chain(bucket)
        .collect()
}

/// Whether `series`, a family's, lacks `label` (an unknown series is reported once, as such).
fn lacks(series: &str, label: &str) -> bool {
    family_of(series).is_some() && !labels_of(series).contains(label)
}

/// The index just past the parenthesized group that opens at `open`.
fn group_end(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0;
    for (at, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Symbol("(") => depth += 1,
            Token::Symbol(")") if depth == 1 => return at + 1,
            Token::Symbol(")") => depth -= 1,
            _ => {}
        }
    }
    panic!("unbalanced parentheses")
}

/// The clause (`by (…)`, `on (…)`, …) at `at`, if one is there, and the index just past
/// its list of labels.
fn label_list<'a>(tokens: &[Token<'a>], at: usize) -> Option<(&'a str, usize)> {
    match tokens[at] {
        Token::Name(clause)
            if LABEL_CLAUSES.contains(&clause)
                && tokens.get(at + 1) == Some(&Token::Symbol("(")) =>
        {
            Some((clause, group_end(tokens, at + 1)))
        }
        _ => None,
    }
}

/// The series named in `tokens`.
fn series_in<'a>(tokens: &[Token<'a>]) -> Vec<&'a str> {
    let mut series = Vec::new();
    let mut at = 0;
    while at < tokens.len() {
        if let Some((_, end)) = label_list(tokens, at) {
            at = end;
            continue;
        }
        match tokens[at] {
            Token::Symbol("{") => {
                at = matchers_end(tokens, at);
                continue;
            }
            Token::Name(name) if !PROMQL_WORDS.contains(&name) => series.push(name),
            _ => {}
        }
        at += 1;
    }
    series
}

/// What is wrong with `expr`: series that are no family's, labels their series do not
/// carry, literal label values `/metrics` does not show (`exported`: (label, value) pairs).
fn problems(expr: &str, exported: &BTreeSet<(String, String)>) -> Vec<String> {
    let tokens = tokens(expr);
    let mut problems: Vec<String> = series_in(&tokens)
        .into_iter()
        .filter(|series| family_of(series).is_none())
        .map(|series| format!("`{series}` is no series of metrics::FAMILIES"))
        .collect();
    let mut at = 0;
    while at < tokens.len() {
        if let Some((clause, list)) = label_list(&tokens, at) {
            problems.extend(clause_problems(&tokens, clause, at, list));
            at = list;
        } else if tokens[at] == Token::Symbol("{") {
            let series = match at.checked_sub(1).map(|before| &tokens[before]) {
                Some(Token::Name(series)) => series,
                _ => "",
            };
            let close = matchers_end(&tokens, at);
            let matchers = &tokens[at + 1..close - 1];
            problems.extend(matcher_problems(series, matchers, exported));
            at = close;
        } else {
            at += 1;
        }
    }
    problems
}

/// What is wrong with the label `clause` at `at`, whose list ends at `list`: a label the
/// expression it applies to does not carry. An operation keeps the labels of its left
/// operand, so an expression has those of its left-most series.
fn clause_problems(tokens: &[Token], clause: &str, at: usize, list: usize) -> Vec<String> {
    let Some(series) = series_in(clause_scope(tokens, at, list)).first().copied() else {
        return Vec::new();
    };
    tokens[at + 2..list - 1]
        .iter()
        .filter_map(|token| match token {
            Token::Name(label) if lacks(series, label) => Some(label),
            _ => None,
        })
        .map(|label| format!("{clause} ({label}): `{series}` has no {label}"))
        .collect()
}

/// The index just past the `}` of the matchers that open at `open`.
fn matchers_end(tokens: &[Token], open: usize) -> usize {
    open + tokens[open..]
        .iter()
        .position(|token| *token == Token::Symbol("}"))
        .expect("matchers are closed")
        + 1
}

/// What is wrong with the matchers of `series`.
fn matcher_problems(
    series: &str,
    matchers: &[Token],
    exported: &BTreeSet<(String, String)>,
) -> Vec<String> {
    if series.is_empty() {
        return vec!["a selector without a series name".to_owned()];
    }
    let mut problems = Vec::new();
    for matcher in matchers.split(|token| *token == Token::Symbol(",")) {
        let [Token::Name(label), Token::Symbol(op), Token::Text(value)] = matcher else {
            problems.push(format!("`{series}`: {matcher:?} is not label op \"value\""));
            continue;
        };
        if lacks(series, label) {
            problems.push(format!("`{series}` has no label {label}"));
        }
        for value in literal_values(op, value) {
            let pair = (label.to_string(), value.to_owned());
            if !GLOBAL_LABELS.contains(label) && !exported.contains(&pair) {
                problems.push(format!("`{series}`: /metrics shows no {label}=\"{value}\""));
            }
        }
    }
    problems
}

/// The tokens whose labels a label clause at `clause` (its list ends at `list`) names: an aggregation's argument (written after the clause or before it), or the right
/// operand of a binary operator's `on`, `ignoring` or `group_*`.
fn clause_scope<'t, 'a>(tokens: &'t [Token<'a>], clause: usize, list: usize) -> &'t [Token<'a>] {
    if matches!(tokens[clause], Token::Name("by" | "without"))
        && clause > 0
        && tokens[clause - 1] == Token::Symbol(")")
    {
        let open = (0..clause)
            .rev()
            .find(|&open| tokens[open] == Token::Symbol("(") && group_end(tokens, open) == clause)
            .expect("the argument before `by` opens");
        return &tokens[open..clause];
    }
    &tokens[list..operand_end(tokens, list)]
}

/// The index just past the operand that starts at `at`: a parenthesized group, or a
/// series with its matchers, after any functions and label clauses.
fn operand_end(tokens: &[Token], mut at: usize) -> usize {
    while at < tokens.len() {
        if let Some((_, end)) = label_list(tokens, at) {
            at = end;
            continue;
        }
        match tokens[at] {
            Token::Symbol("(") => return group_end(tokens, at),
            Token::Name(word) if PROMQL_WORDS.contains(&word) => at += 1,
            Token::Name(_) if tokens.get(at + 1) == Some(&Token::Symbol("{")) => {
                return matchers_end(tokens, at + 1);
            }
            Token::Name(_) => return at + 1,
            _ => at += 1,
        }
    }
    at
}

/// The values a matcher names literally: its value for `=` and `!=`, the alternatives
/// of a regex of plain words; none for a Grafana variable or any other regex.
fn literal_values<'a>(op: &str, value: &'a str) -> Vec<&'a str> {
    let plain = |word: &str| {
        !word.is_empty()
            && word
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
    };
    match op {
        "=" | "!=" if !value.contains('$') => vec![value],
        "=~" | "!~" if value.split('|').all(plain) => value.split('|').collect(),
        _ => Vec::new(),
    }
}

/// (label, value) of every series on `/metrics` right after `aloft serve` starts.
async fn exported_label_values() -> BTreeSet<(String, String)> {
    let mut app = TestApp::start().await;
    let (status, body) = http(app.metrics_addr, "GET", "/metrics", &[]).await;
    assert_eq!(status, 200);
    app.stop().await;
    let mut pairs = BTreeSet::new();
    for line in body.lines().filter(|line| line.starts_with("aloft_")) {
        let Some((_, labels)) = line.split_once('{') else {
            continue;
        };
        let labels = labels.rsplit_once('}').unwrap().0;
        for pair in labels.split(',') {
            let (label, value) = pair.split_once('=').unwrap();
            pairs.insert((label.to_owned(), value.trim_matches('"').to_owned()));
        }
    }
    pairs
}

/// Every PromQL expression of the dashboard: its panels' targets, and its variables'
/// queries (`label_values(series, label)` as the series with a grouping by the label).
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    fn targets(value: &Value, exprs: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                if let Some(Value::String(expr)) = object.get("expr") {
                    exprs.push(expr.clone());
                }
                object.values().for_each(|value| targets(value, exprs));
            }
            Value::Array(values) => values.iter().for_each(|value| targets(value, exprs)),
            _ => {}
        }
    }
    let mut exprs = Vec::new();
    targets(&dashboard["panels"], &mut exprs);
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["query"]["query"].as_str().unwrap();
        let expr = if let Some(args) = query.strip_prefix("label_values(") {
            let (series, label) = args.strip_suffix(')').unwrap().rsplit_once(',').unwrap();
            format!("count by ({label}) ({series})")
        } else {
            let inner = query.strip_prefix("query_result(").unwrap();
            inner.strip_suffix(')').unwrap().to_owned()
        };
        exprs.push(expr);
    }
    exprs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_queries_only_exported_families_and_labels() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("aloft.json is JSON");
    let exported = exported_label_values().await;
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() > 20, "{} expressions", exprs.len());
    let mut found: Vec<String> = exprs
        .iter()
        .flat_map(|expr| {
            problems(expr, &exported)
                .into_iter()
                .map(move |problem| format!("{expr}\n  {problem}"))
        })
        .collect();

    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
    let panels = dashboard["panels"].as_array().unwrap();
    let rows: Vec<&str> = panels
        .iter()
        .filter(|panel| panel["type"] == "row")
        .map(|panel| panel["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        rows,
        ["Players & traffic", "Rounds", "Money", "Engine & ledger"]
    );
    for panel in panels.iter().filter(|panel| panel["type"] != "row") {
        let title = panel["title"].as_str().unwrap();
        let unit = panel["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .unwrap_or("");
        if unit.is_empty() {
            found.push(format!("panel {title}: no unit"));
        }
        let money = panel["targets"].to_string().contains("_minor");
        if money && unit != "percentunit" && !title.contains("minor units") {
            found.push(format!(
                "panel {title}: money without \"minor units\" in its title"
            ));
        }
        for target in panel["targets"].as_array().unwrap() {
            if target["datasource"]["uid"] != "${DS_PROMETHEUS}" {
                found.push(format!("panel {title}: a target not on ${{DS_PROMETHEUS}}"));
            }
        }
    }
    assert!(
        found.is_empty(),
        "config/grafana/aloft.json:\n{}",
        found.join("\n")
    );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    rules: Vec<AlertRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertRule {
    alert: String,
    expr: String,
    #[serde(rename = "for")]
    pending: Option<String>,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_rules_query_only_exported_families_and_link_their_runbooks() {
    let rules: RuleFile = serde_yaml_ng::from_str(ALERTS).expect("alerts.yml is a rule file");
    let exported = exported_label_values().await;
    let runbooks = markdown_section(OPERATIONS, "### Dashboards and alerts");
    let mut names = BTreeSet::new();
    let mut found = Vec::new();
    for (group, rule) in rules
        .groups
        .iter()
        .flat_map(|group| group.rules.iter().map(move |rule| (&group.name, rule)))
    {
        let alert = &rule.alert;
        assert!(names.insert(alert.clone()), "{alert} twice");
        let at = format!("{group}/{alert}");
        for problem in problems(&rule.expr, &exported) {
            found.push(format!("{at}: {problem}"));
        }
        let severity = rule.labels.get("severity").map(String::as_str);
        if !matches!(severity, Some("critical" | "warning")) {
            found.push(format!(
                "{at}: severity {severity:?}, not critical or warning"
            ));
        }
        if let Some(pending) = &rule.pending
            && !pending.ends_with(['s', 'm', 'h'])
        {
            found.push(format!("{at}: for {pending:?}"));
        }
        for key in ["summary", "description", "runbook_url"] {
            if rule.annotations.get(key).is_none_or(String::is_empty) {
                found.push(format!("{at}: no {key} annotation"));
            }
        }
        let runbook = format!("docs/operations.md#{}", alert.to_lowercase());
        if rule.annotations.get("runbook_url") != Some(&runbook) {
            found.push(format!("{at}: runbook_url is not {runbook}"));
        }
        if !runbooks.contains(&format!("\n#### {alert}\n")) {
            found.push(format!(
                "{at}: docs/operations.md has no runbook `#### {alert}`"
            ));
        }
    }
    assert!(
        found.is_empty(),
        "config/prometheus/alerts.yml:\n{}",
        found.join("\n")
    );
}

#[test]
fn a_misspelled_series_or_label_is_found() {
    let exported = BTreeSet::from([("reason".to_owned(), "slow_consumer".to_owned())]);
    let clean = [
        r#"sum by (instance) (rate(aloft_socket_closes_total{reason="slow_consumer"}[5m]))"#,
        "histogram_quantile(0.99, sum by (le, room) (rate(aloft_bet_ack_seconds_bucket[$__rate_interval])))",
        "max by (room, phase) (aloft_room_phase and on (instance, room) (aloft_lease_held == 1))",
        "sum(rate(aloft_rounds_total[5m])) by (room)",
    ];
    for expr in clean {
        assert_eq!(problems(expr, &exported), Vec::<String>::new(), "{expr}");
    }
    let wrong = [
        "rate(aloft_bets_acepted_total[5m])",
        "rate(aloft_bet_ack_seconds[5m])",
        "aloft_connections_total",
        "aloft_rounds_total_count",
        "sum by (shard) (aloft_bets_accepted_total)",
        "sum(rate(aloft_rounds_total[5m])) by (shard)",
        "sum by (le) (rate(aloft_bets_accepted_total[5m]))",
        "aloft_room_phase and on (phase) (aloft_lease_held)",
        "aloft_room_phase and on (phase) aloft_lease_held",
        "max by (phase) (aloft_lease_held and on (instance, room) (aloft_room_phase))",
        "aloft_rounds_total and on (room) sum by (room) (aloft_connections)",
        r#"aloft_socket_closes_total{reason="slow_consumers"}"#,
        r#"aloft_socket_closes_total{reasons="slow_consumer"}"#,
        r#"{__name__="aloft_rounds_total"}"#,
    ];
    for expr in wrong {
        assert!(!problems(expr, &exported).is_empty(), "{expr} passed");
    }
}

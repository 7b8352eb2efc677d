//! The `compare` subcommand: the same fan-out load against each server in turn (the
//! floor first, added when not listed) and for each connection count, with the same
//! client; every result also as a ratio to the floor's. A server that cannot be started
//! here is reported as unavailable, and one whose run fails as failed, with the reason:
//! never silently dropped. With `--stalled 0,500` each load also runs with that many
//! connections that never read, so one comparison shows what they cost the others. With
//! `--chat-messages-per-second N` the servers that have chat (aloft) run with that chat
//! load; the floor and the peers have none and run without. Writes `report.json` and
//! `report.html` (`report::html`).

use std::path::PathBuf;

use anyhow::Context;

use crate::fanout::chat::ChatArgs;
use crate::fanout::servers::{self, ServerSpec};
use crate::fanout::{self, CONNS_MAX, LoadArgs, Shape};
use crate::report::comparison::{
    self, ChatSettings, CompareReport, Entry, FLOOR, Machine, Ratios, Status,
};

/// Most connection counts in one comparison.
const CONNS_LIST_MAX: usize = 8;
/// Most servers in one comparison.
const SERVERS_LIST_MAX: usize = 16;
/// Most stalled connection counts in one comparison.
const STALLED_LIST_MAX: usize = 4;

/// Options of `aloft-loadtest compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Connection counts to run, e.g. 2000,10000 (each 1 to 19,000).
    #[arg(long, value_delimiter = ',', default_value = "2000", value_parser = clap::value_parser!(u64).range(1..=CONNS_MAX))]
    pub conns: Vec<u64>,
    /// Servers to compare, e.g. aloft,floor (the floor is always run, first).
    #[arg(long, value_delimiter = ',', default_value = "floor,aloft")]
    pub servers: Vec<String>,
    /// Stalled connection counts to run each load with, e.g. 0,500: extra connections
    /// that never read, kept out of the measured figures.
    #[arg(long, value_delimiter = ',', default_value = "0", value_parser = clap::value_parser!(u64).range(0..CONNS_MAX))]
    pub stalled: Vec<u64>,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Directory for report.json and report.html.
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
}

/// The servers in run order: the floor first, each once.
pub fn run_order(listed: &[String]) -> Vec<String> {
    let mut order = vec![FLOOR.to_owned()];
    for name in listed {
        if !order.contains(name) {
            order.push(name.clone());
        }
    }
    order
}

/// Runs the comparison and writes its reports; `Ok(true)` when every server ran.
pub async fn run(args: CompareArgs) -> anyhow::Result<bool> {
    let shapes = checked_shapes(&args)?;
    let order = run_order(&args.servers);
    let specs = order
        .iter()
        .map(|name| servers::find(name))
        .collect::<anyhow::Result<Vec<_>>>()?;
    check_chat(&args.load.chat, &shapes, &specs)?;
    crate::process::ensure_open_files(shapes.iter().map(|shape| shape.total()).max().unwrap_or(1))?;
    let mut report = CompareReport {
        machine: machine(),
        started_unix_seconds: crate::fanout::receiver::unix_now_us() / 1_000_000,
        hz: args.load.hz,
        payload_bytes: args.load.payload_bytes,
        probes: args.load.probes,
        warmup_seconds: args.load.warmup.as_secs_f64(),
        measure_seconds: args.load.measure.as_secs_f64(),
        chat: args.load.chat.is_on().then_some(ChatSettings {
            messages_per_second: args.load.chat.chat_messages_per_second,
            chatters: args.load.chat.chatters,
        }),
        entries: Vec::new(),
    };
    for &shape in &shapes {
        for spec in &specs {
            eprintln!(
                "== {} × {} connections + {} stalled",
                spec.name, shape.conns, shape.stalled
            );
            let entry = run_one(spec, shape, &args.load).await;
            match (&entry.result, &entry.reason) {
                (Some(result), _) => eprint!("{}", result.summary_table()),
                (None, Some(reason)) => eprintln!("{:?}: {reason}", entry.status),
                (None, None) => {}
            }
            report.entries.push(entry);
        }
    }
    comparison::add_ratios(&mut report.entries);
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let json_path = args.out_dir.join("report.json");
    crate::report::write_json(&json_path, &report)?;
    let html_path = args.out_dir.join("report.html");
    std::fs::write(&html_path, crate::report::html::render(&report)?)
        .with_context(|| format!("writing {}", html_path.display()))?;
    print!("{}", report.text_table());
    println!(
        "reports written to {} and {}",
        json_path.display(),
        html_path.display()
    );
    Ok(report
        .entries
        .iter()
        .all(|entry| entry.status == Status::Ok))
}

/// The loads to run, once the lists are within their limits and each load fits one
/// client process.
fn checked_shapes(args: &CompareArgs) -> anyhow::Result<Vec<Shape>> {
    anyhow::ensure!(
        args.conns.len() <= CONNS_LIST_MAX,
        "at most {CONNS_LIST_MAX} --conns"
    );
    anyhow::ensure!(
        args.servers.len() <= SERVERS_LIST_MAX,
        "at most {SERVERS_LIST_MAX} --servers"
    );
    anyhow::ensure!(
        args.stalled.len() <= STALLED_LIST_MAX,
        "at most {STALLED_LIST_MAX} --stalled"
    );
    let shapes = shapes(&args.conns, &args.stalled);
    for shape in &shapes {
        shape.check()?;
    }
    Ok(shapes)
}

/// Fails when chat is on but cannot run as asked on a server that has it, or no listed
/// server has it.
fn check_chat(chat: &ChatArgs, shapes: &[Shape], specs: &[&ServerSpec]) -> anyhow::Result<()> {
    if !chat.is_on() {
        return Ok(());
    }
    let chatting: Vec<&&ServerSpec> = specs.iter().filter(|spec| spec.has_chat).collect();
    anyhow::ensure!(
        !chatting.is_empty(),
        "--chat-messages-per-second needs a server with chat (aloft) in --servers"
    );
    for spec in chatting {
        for shape in shapes {
            chat.check(shape.conns, spec.name, spec.has_chat)?;
        }
    }
    Ok(())
}

/// Every connection count with every stalled count, in that order.
pub fn shapes(conns: &[u64], stalled: &[u64]) -> Vec<Shape> {
    conns
        .iter()
        .flat_map(|&conns| stalled.iter().map(move |&stalled| Shape { conns, stalled }))
        .collect()
}

async fn run_one(spec: &ServerSpec, shape: Shape, load: &LoadArgs) -> Entry {
    let load = &LoadArgs {
        chat: if spec.has_chat {
            load.chat
        } else {
            ChatArgs::OFF
        },
        ..load.clone()
    };
    let mut entry = Entry {
        server: spec.name.to_owned(),
        conns: shape.conns,
        stalled: shape.stalled,
        status: Status::Unavailable,
        reason: None,
        result: None,
        ratio_to_floor: Ratios::default(),
    };
    let prepared = match fanout::prepare(spec, shape, load) {
        Ok(prepared) => prepared,
        Err(error) => {
            entry.reason = Some(format!("{error:#}"));
            return entry;
        }
    };
    match fanout::execute(prepared, shape, load).await {
        Ok(result) => {
            let problems = result.problems();
            if problems.is_empty() {
                entry.status = Status::Ok;
            } else {
                entry.status = Status::Failed;
                entry.reason = Some(problems.join("; "));
            }
            entry.result = Some(result);
        }
        Err(error) => {
            entry.status = Status::Failed;
            entry.reason = Some(format!("{error:#}"));
        }
    }
    entry
}

/// Cores, CPU model, kernel and load average, from `/proc`.
fn machine() -> Machine {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find_map(|line| {
            line.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |cores| cores.get()),
        cpu_model,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        load_average: read("/proc/loadavg").trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_runs_first_and_each_server_once() {
        let listed = ["aloft".to_owned(), "floor".to_owned(), "aloft".to_owned()];
        assert_eq!(run_order(&listed), vec!["floor", "aloft"]);
        assert_eq!(run_order(&[]), vec!["floor"]);
    }

    #[test]
    fn each_connection_count_runs_with_each_stalled_count() {
        let shape = |conns, stalled| Shape { conns, stalled };
        assert_eq!(
            shapes(&[200, 10_000], &[0, 500]),
            vec![
                shape(200, 0),
                shape(200, 500),
                shape(10_000, 0),
                shape(10_000, 500)
            ]
        );
    }

    #[test]
    fn chat_runs_on_the_servers_that_have_it_within_their_limits() {
        let chat = |rate, chatters| ChatArgs {
            chat_messages_per_second: rate,
            chatters,
        };
        let specs = |names: &[&str]| -> Vec<&'static ServerSpec> {
            names
                .iter()
                .map(|name| servers::find(name).unwrap())
                .collect()
        };
        let shapes = shapes(&[2_000, 30], &[0]);
        let with_aloft = specs(&["floor", "aloft", "uws"]);
        check_chat(&chat(20, 30), &shapes, &with_aloft).unwrap();
        let error = check_chat(&chat(20, 50), &shapes, &with_aloft).unwrap_err();
        assert!(
            error.to_string().contains("more than the 30 connections"),
            "{error}"
        );
        let error = check_chat(&chat(31, 30), &shapes, &with_aloft).unwrap_err();
        assert!(
            error.to_string().contains("needs at least 31 chatters"),
            "{error}"
        );
        let error = check_chat(&chat(20, 30), &shapes, &specs(&["floor", "uws"])).unwrap_err();
        assert!(
            error.to_string().contains("needs a server with chat"),
            "{error}"
        );
        check_chat(&ChatArgs::OFF, &shapes, &specs(&["floor"])).unwrap();
    }

    #[test]
    fn stalled_counts_parse_as_a_list_and_default_to_none() {
        use clap::Parser;
        #[derive(Parser)]
        struct Command {
            #[command(flatten)]
            args: CompareArgs,
        }
        let parsed = Command::try_parse_from(["compare", "--stalled", "0,500"]).unwrap();
        assert_eq!(parsed.args.stalled, vec![0, 500]);
        let parsed = Command::try_parse_from(["compare"]).unwrap();
        assert_eq!(parsed.args.stalled, vec![0]);
        assert!(Command::try_parse_from(["compare", "--stalled", "19000"]).is_err());
        assert!(Command::try_parse_from(["compare", "--stalled", "x"]).is_err());
    }
}

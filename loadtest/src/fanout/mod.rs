//! The `fanout` subcommand: one server under a fixed broadcast load (connections × tick
//! rate × payload). The run starts the server ([`crate::fanout::servers`]), reads its idle RSS,
//! opens the connections at a bounded ramp ([`crate::fanout::receiver`]), warms up, then reads
//! the server's and its own `/proc` figures and the frame counters at both ends of the
//! measured window, and stops the server. Every step has a time limit. With chat on
//! (aloft only), some of the connections also chat ([`crate::fanout::chat`]).

pub mod chat;
pub mod compare;
pub mod floor;
pub mod receiver;
pub mod servers;
pub mod stalled;
pub mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, ensure};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::fanout::chat::ChatArgs;
use crate::fanout::receiver::{Chatter, Role, Tally, Target};
use crate::fanout::servers::{Load, ServerProcess, ServerSpec};
use crate::fanout::stalled::Stalled;
use crate::flags::parse_duration;
use crate::process::{self, CLOCK_TICKS_PER_SECOND, Usage};
use crate::report::fanout::{self as fanout_report, FanoutReport, StalledReport};

/// Most connections of one client process, measured plus stalled (open files are capped
/// at 20,000).
pub const CONNS_MAX: u64 = 19_000;
/// Fastest tick rate, in ticks per second.
const HZ_MAX: u32 = 1_000;
/// Payload sizes accepted, in bytes.
const PAYLOAD_BYTES_MIN: usize = 16;
const PAYLOAD_BYTES_MAX: usize = 64 * 1024;
/// Most probe connections.
const PROBES_MAX: u64 = 64;
/// Fastest connection ramp, in new connections per second.
const RAMP_PER_SECOND_MAX: u64 = 20_000;
/// Time after the ramp for the last connections to finish opening, in milliseconds.
const CONNECT_GRACE_MS: u64 = 15_000;
/// Time a started server settles before its idle RSS is read, in milliseconds.
const SETTLE_MS: u64 = 1_000;
/// Interval at which the open-connection count is polled, in milliseconds.
const CONNECT_POLL_MS: u64 = 50;
/// Margin of a server's own lifetime limit beyond the run's longest course, in seconds.
const LIFETIME_MARGIN_SECONDS: u64 = 60;

/// Options of `aloft-loadtest fanout`.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// Server under test (floor, aloft, uws, node-ws, socketio, python-websockets, go-gorilla).
    #[arg(long)]
    pub server: String,
    /// Connections, 1 to 19,000.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=CONNS_MAX))]
    pub conns: u64,
    /// Extra connections that open and subscribe like the others, then never read; kept
    /// out of the measured figures and reported apart.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..CONNS_MAX))]
    pub stalled: u64,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Write the JSON report to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// The load of a fan-out run, shared with `compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Tick rate, in frames per second per connection.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=i64::from(HZ_MAX)))]
    pub hz: u32,
    /// Payload size of the servers that take one (aloft sends its own ticks), in bytes.
    #[arg(long, default_value_t = 64, value_parser = parse_payload_bytes)]
    pub payload_bytes: usize,
    /// Connections that parse every frame and measure latency and loss.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=PROBES_MAX))]
    pub probes: u64,
    /// Time under load before the measured window, e.g. 5s.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Length of the measured window, e.g. 20s.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub measure: Duration,
    /// New connections per second.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=RAMP_PER_SECOND_MAX))]
    pub ramp_per_second: u64,
    #[command(flatten)]
    pub chat: ChatArgs,
}

fn parse_payload_bytes(text: &str) -> Result<usize, String> {
    let bytes: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a byte count"))?;
    if !(PAYLOAD_BYTES_MIN..=PAYLOAD_BYTES_MAX).contains(&bytes) {
        return Err(format!(
            "must be {PAYLOAD_BYTES_MIN} to {PAYLOAD_BYTES_MAX} bytes"
        ));
    }
    Ok(bytes)
}

/// Runs `fanout` and prints the table; `Ok(true)` when the run was sound.
pub async fn run(args: FanoutArgs) -> anyhow::Result<bool> {
    let shape = Shape {
        conns: args.conns,
        stalled: args.stalled,
    };
    shape.check()?;
    let spec = servers::find(&args.server)?;
    args.load.chat.check(args.conns, spec.name, spec.has_chat)?;
    process::ensure_open_files(shape.total())?;
    let prepared = prepare(spec, shape, &args.load).context("preparing the server")?;
    let report = execute(prepared, shape, &args.load).await?;
    print!("{}", report.summary_table());
    if let Some(path) = &args.report {
        crate::report::write_json(path, &report)?;
        println!("report written to {}", path.display());
    }
    let problems = report.problems();
    for problem in &problems {
        eprintln!("! {problem}");
    }
    Ok(problems.is_empty())
}

/// The connections of one run: `conns` measured ones plus `stalled` ones that never read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub conns: u64,
    pub stalled: u64,
}

impl Shape {
    /// Every connection the run opens.
    pub fn total(self) -> u64 {
        self.conns + self.stalled
    }

    /// Fails when the run needs more connections than one client process may open.
    pub fn check(self) -> anyhow::Result<()> {
        ensure!(
            self.total() <= CONNS_MAX,
            "{} connections plus {} stalled is more than {CONNS_MAX}",
            self.conns,
            self.stalled
        );
        Ok(())
    }
}

/// A scratch directory removed when dropped.
pub struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Best effort: a leftover directory in /tmp is harmless.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server ready to start: its launch, address and scratch directory.
pub struct Prepared {
    name: &'static str,
    launch: servers::Launch,
    load: Load,
    scratch: ScratchDir,
}

/// Builds the launch of `spec` for this load; an error means the server cannot run
/// here (not built, not installed).
pub fn prepare(spec: &ServerSpec, shape: Shape, load_args: &LoadArgs) -> anyhow::Result<Prepared> {
    let conns = shape.total();
    let work_dir = std::env::temp_dir().join(format!(
        "aloft-fanout-{}-{}-{}",
        spec.name,
        std::process::id(),
        receiver::unix_now_us()
    ));
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    let scratch = ScratchDir(work_dir.clone());
    let course = conns / load_args.ramp_per_second
        + (CONNECT_GRACE_MS + SETTLE_MS) / 1_000
        + load_args.warmup.as_secs()
        + load_args.measure.as_secs();
    let load = Load {
        listen: servers::free_listen_addr()?,
        conns,
        hz: load_args.hz,
        payload_bytes: load_args.payload_bytes,
        lifetime_seconds: course + LIFETIME_MARGIN_SECONDS,
        work_dir,
    };
    let launch = (spec.launch)(&load)?;
    Ok(Prepared {
        name: spec.name,
        launch,
        load,
        scratch,
    })
}

/// Readings taken at one end of the measured window.
struct Reading {
    at: Instant,
    server: Usage,
    generator: Usage,
    frames: u64,
    bytes: u64,
}

impl Reading {
    fn take(tally: &Tally, server_pid: u32) -> anyhow::Result<Reading> {
        Ok(Reading {
            at: Instant::now(),
            server: process::read_process_usage(server_pid)
                .context("reading the server's /proc")?,
            generator: process::read_usage()?,
            frames: tally.frames.load(Ordering::Relaxed),
            bytes: tally.bytes.load(Ordering::Relaxed),
        })
    }
}

/// Starts the server, loads it, measures, drains the stalled connections, stops it.
pub async fn execute(
    prepared: Prepared,
    shape: Shape,
    load_args: &LoadArgs,
) -> anyhow::Result<FanoutReport> {
    let Prepared {
        name,
        launch,
        load,
        scratch,
    } = prepared;
    let launch_path = launch.path_and_query.clone();
    let (auth, framing) = (launch.auth, launch.framing);
    let server = ServerProcess::start(launch, load.listen, &scratch.0).await?;
    let path_and_query = servers::authenticated_path(&launch_path, auth, load.listen).await?;
    let chatter_paths = if load_args.chat.is_on() {
        chat::chatter_paths(load.listen, &launch_path, load_args.chat.chatters).await?
    } else {
        Vec::new()
    };
    tokio::time::sleep(Duration::from_millis(SETTLE_MS)).await;
    let idle = process::read_process_usage(server.pid()).context("reading the idle server")?;
    let tally = Arc::new(Tally::new());
    let target = Arc::new(Target {
        server: load.listen,
        path_and_query,
        framing,
    });
    let mut connections = JoinSet::new();
    let mut stalled = Stalled::new();
    let roles = Roles {
        load_args,
        conns: shape.conns,
        chatter_paths,
        chat_start: Instant::now() + ramp_duration(shape.conns, load_args),
    };
    connect_all(&tally, &target, &mut connections, shape, &roles).await?;
    connect_stalled(&mut stalled, &target, shape, load_args).await?;
    tokio::time::sleep(load_args.warmup).await;
    let start = Reading::take(&tally, server.pid())?;
    tally.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(load_args.measure).await;
    tally.measuring.store(false, Ordering::Relaxed);
    let end = Reading::take(&tally, server.pid())?;
    let stalled = stalled.drain(shape.stalled).await;
    connections.shutdown().await;
    let report = build_report(
        name,
        shape.conns,
        load_args,
        &tally,
        stalled,
        (&idle, &start, &end),
        server.pid(),
    );
    drop(server);
    drop(scratch);
    Ok(report)
}

/// What each measured connection does: probes and chatters spread over them.
struct Roles<'a> {
    load_args: &'a LoadArgs,
    conns: u64,
    /// Each chatter's upgrade path, by rank (empty without chat).
    chatter_paths: Vec<String>,
    /// When the first chatter sends: the planned end of the ramp.
    chat_start: Instant,
}

impl Roles<'_> {
    fn of(&self, index: u64) -> Role {
        let chat = &self.load_args.chat;
        let chatter = chatter_rank(index, self.conns, chat).map(|rank| Chatter {
            path_and_query: self.chatter_paths[usize::try_from(rank).expect("rank fits")].clone(),
            sender: chat.sender(rank, self.chat_start),
        });
        Role {
            probe: is_probe(index, self.conns, self.load_args.probes),
            chat_on: chat.is_on(),
            chatter,
        }
    }
}

/// Opens the `conns` measured connections at the ramp rate, each in its role, and waits
/// until each has opened or failed.
async fn connect_all(
    tally: &Arc<Tally>,
    target: &Arc<Target>,
    connections: &mut JoinSet<()>,
    shape: Shape,
    roles: &Roles<'_>,
) -> anyhow::Result<()> {
    let conns = shape.conns;
    let sources = crate::target::source_addrs(&[], shape.total())?;
    ramp(0..conns, roles.load_args, |index| {
        let source = source_for(&sources, index);
        let role = roles.of(index);
        let (tally, target) = (tally.clone(), target.clone());
        connections.spawn(async move { receiver::run(&tally, &target, source, role).await });
    })
    .await;
    wait_settled(conns, || {
        tally.connected.load(Ordering::Relaxed) + tally.failed.load(Ordering::Relaxed)
    })
    .await?;
    let connected = tally.connected.load(Ordering::Relaxed);
    ensure!(
        connected > 0,
        "no connection opened: {}",
        tally
            .first_error
            .lock()
            .expect("error lock")
            .clone()
            .unwrap_or_default()
    );
    Ok(())
}

/// Opens the stalled connections after the measured ones, at the same ramp rate and
/// from the following source addresses, and waits until each has opened or failed.
async fn connect_stalled(
    stalled: &mut Stalled,
    target: &Arc<Target>,
    shape: Shape,
    load_args: &LoadArgs,
) -> anyhow::Result<()> {
    let sources = crate::target::source_addrs(&[], shape.total())?;
    ramp(shape.conns..shape.total(), load_args, |index| {
        stalled.spawn(target, source_for(&sources, index));
    })
    .await;
    wait_settled(shape.stalled, || stalled.settled()).await
}

/// How long opening `conns` connections at the ramp rate takes.
fn ramp_duration(conns: u64, load_args: &LoadArgs) -> Duration {
    Duration::from_secs_f64(conns as f64 / load_args.ramp_per_second as f64)
}

/// Calls `open` for each index, spaced at the ramp rate.
async fn ramp(indexes: std::ops::Range<u64>, load_args: &LoadArgs, mut open: impl FnMut(u64)) {
    let ramp_started = Instant::now();
    for (nth, index) in indexes.enumerate() {
        let due =
            ramp_started + Duration::from_secs_f64(nth as f64 / load_args.ramp_per_second as f64);
        tokio::time::sleep_until(due).await;
        open(index);
    }
}

/// The source address of connection `index`: the addresses in turn.
fn source_for(sources: &[std::net::Ipv4Addr], index: u64) -> std::net::Ipv4Addr {
    sources[usize::try_from(index).expect("conns fit usize") % sources.len()]
}

/// Waits until `settled()` (opened plus failed) reaches `count`, for at most the grace time.
async fn wait_settled(count: u64, settled: impl Fn() -> u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_millis(CONNECT_GRACE_MS);
    loop {
        let done = settled();
        if done >= count {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{done} of {count} connections opened or failed {CONNECT_GRACE_MS} ms after the ramp"
        );
        tokio::time::sleep(Duration::from_millis(CONNECT_POLL_MS)).await;
    }
}

/// Whether connection `index` of `conns` is a probe: `probes` of them spread evenly
/// over the connection order, so that a server writing each tick in connection order
/// (or in reverse, or hashed) is measured across the whole fan-out, not only at its
/// start or end.
pub fn is_probe(index: u64, conns: u64, probes: u64) -> bool {
    let stride = (conns / probes.max(1)).max(1);
    index % stride == 0 && index / stride < probes
}

/// The chatter rank of connection `index` of `conns`, if it is one: the chatters spread
/// evenly like the probes, half a stride after them, so they rarely are probes too.
pub fn chatter_rank(index: u64, conns: u64, chat: &ChatArgs) -> Option<u64> {
    if !chat.is_on() {
        return None;
    }
    let stride = (conns / chat.chatters).max(1);
    let shifted = index.checked_sub(stride / 2)?;
    (shifted % stride == 0 && shifted / stride < chat.chatters).then_some(shifted / stride)
}

/// The report from the idle reading and the two ends of the window.
fn build_report(
    name: &str,
    conns: u64,
    load_args: &LoadArgs,
    tally: &Tally,
    stalled: StalledReport,
    (idle, start, end): (&Usage, &Reading, &Reading),
    server_pid: u32,
) -> FanoutReport {
    let window_seconds = (end.at - start.at).as_secs_f64();
    let frames = end.frames - start.frames;
    let connections_ok = tally.connected.load(Ordering::Relaxed);
    let expected = tally.probe_expected.load(Ordering::Relaxed);
    let received = tally.probe_received.load(Ordering::Relaxed);
    FanoutReport {
        server: name.to_owned(),
        conns,
        probes: load_args.probes.min(conns),
        hz: load_args.hz,
        payload_bytes_requested: load_args.payload_bytes,
        connections_ok,
        connections_failed: tally.failed.load(Ordering::Relaxed),
        connections_ended: tally.ended.load(Ordering::Relaxed),
        warmup_seconds: load_args.warmup.as_secs_f64(),
        window_seconds,
        frames,
        frames_per_second: frames as f64 / window_seconds,
        frames_per_second_offered: (connections_ok
            * (u64::from(load_args.hz) + load_args.chat.chat_messages_per_second))
            as f64,
        frame_wire_bytes_mean: (end.bytes - start.bytes) as f64 / frames.max(1) as f64,
        server_pid,
        server_cpu_seconds: end.server.cpu_seconds - start.server.cpu_seconds,
        server_cpu_us_per_frame: cpu_us_per_frame(&start.server, &end.server, frames),
        server_rss_idle_bytes: idle.rss_bytes,
        server_rss_loaded_bytes: end.server.rss_bytes,
        server_rss_per_connection_bytes: fanout_report::rss_per_connection_bytes(
            idle.rss_bytes,
            end.server.rss_bytes,
            connections_ok + stalled.opened,
        ),
        tick_latency: crate::report::latency::latency_percentiles(
            &tally.latency_us.lock().expect("histogram lock"),
        ),
        probe_frames_expected: expected,
        probe_frames_received: received,
        probe_frames_lost: expected.saturating_sub(received),
        frames_unparsed: tally.unparsed.load(Ordering::Relaxed),
        generator_cpu_seconds: end.generator.cpu_seconds - start.generator.cpu_seconds,
        generator_cpu_us_per_frame: cpu_us_per_frame(&start.generator, &end.generator, frames),
        generator_rss_mib: end.generator.rss_bytes as f64 / (1024.0 * 1024.0),
        first_error: tally.first_error.lock().expect("error lock").clone(),
        stalled,
        chat: load_args
            .chat
            .is_on()
            .then(|| chat::report(&load_args.chat, &tally.chat, window_seconds)),
    }
}

/// A process's CPU time over the window per frame delivered, in microseconds.
fn cpu_us_per_frame(start: &Usage, end: &Usage, frames: u64) -> Option<f64> {
    fanout_report::cpu_us_per_frame(
        start.cpu_ticks,
        end.cpu_ticks,
        CLOCK_TICKS_PER_SECOND,
        frames,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_spread_over_the_connections() {
        let probes: Vec<u64> = (0..2_000).filter(|&i| is_probe(i, 2_000, 8)).collect();
        assert_eq!(probes, vec![0, 250, 500, 750, 1_000, 1_250, 1_500, 1_750]);
        assert_eq!((0..5).filter(|&i| is_probe(i, 5, 8)).count(), 5);
        assert_eq!((0..10).filter(|&i| is_probe(i, 10, 8)).count(), 8);
    }

    #[test]
    fn chatters_are_spread_over_the_connections_between_the_probes() {
        let chat = |chatters| ChatArgs {
            chat_messages_per_second: 1,
            chatters,
        };
        let ranks: Vec<(u64, u64)> = (0..2_000)
            .filter_map(|i| Some((i, chatter_rank(i, 2_000, &chat(8))?)))
            .collect();
        let expected: Vec<(u64, u64)> = (0..8).map(|rank| (125 + rank * 250, rank)).collect();
        assert_eq!(ranks, expected);
        assert!(
            (0..2_000)
                .all(|i| !(is_probe(i, 2_000, 8) && chatter_rank(i, 2_000, &chat(8)).is_some()))
        );
        // As many chatters as connections: every one chats, each rank once.
        let all: Vec<u64> = (0..5)
            .filter_map(|i| chatter_rank(i, 5, &chat(5)))
            .collect();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
        assert_eq!(chatter_rank(125, 2_000, &ChatArgs::OFF), None);
    }

    #[test]
    fn chat_flags_default_to_off_with_50_chatters() {
        use clap::Parser;
        #[derive(Parser)]
        struct Command {
            #[command(flatten)]
            load: LoadArgs,
        }
        let parsed = Command::try_parse_from(["fanout"]).unwrap();
        assert!(!parsed.load.chat.is_on());
        assert_eq!(parsed.load.chat.chatters, 50);
        let parsed = Command::try_parse_from([
            "fanout",
            "--chat-messages-per-second",
            "20",
            "--chatters",
            "40",
        ])
        .unwrap();
        assert_eq!(parsed.load.chat.chat_messages_per_second, 20);
        assert_eq!(parsed.load.chat.chatters, 40);
        assert!(Command::try_parse_from(["fanout", "--chatters", "0"]).is_err());
    }
}

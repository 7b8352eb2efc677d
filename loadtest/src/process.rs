//! Processes' CPU time and memory from `/proc`: the load generator's own (`/proc/self`,
//! so a report can tell when the generator, not the server, was the bottleneck) and a
//! server's under test (`/proc/<pid>`); and the open-file limit a run of N sockets needs.

use anyhow::{Context, bail};

/// Linux `USER_HZ`: the unit of the CPU times in `/proc/<pid>/stat`. It is part of the
/// kernel's user ABI and is 100 on every architecture Linux ships for.
pub const CLOCK_TICKS_PER_SECOND: u64 = 100;

/// File descriptors kept free beyond one per bot (runtime, listeners, HTTP pool), count.
const SPARE_FILES: u64 = 1_024;

/// The generator's resource use so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// User + system CPU time since the process started, in clock ticks
    /// ([`CLOCK_TICKS_PER_SECOND`]).
    pub cpu_ticks: u64,
    /// User + system CPU time since the process started, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory now, in bytes.
    pub rss_bytes: u64,
    /// Peak resident memory, in bytes.
    pub peak_rss_bytes: u64,
}

/// Reads this process's [`Usage`] from `/proc/self/stat` and `/proc/self/status`.
pub fn read_usage() -> anyhow::Result<Usage> {
    read_usage_at("/proc/self")
}

/// Reads process `pid`'s [`Usage`] from `/proc/<pid>/stat` and `/proc/<pid>/status`.
pub fn read_process_usage(pid: u32) -> anyhow::Result<Usage> {
    read_usage_at(&format!("/proc/{pid}"))
}

fn read_usage_at(proc_dir: &str) -> anyhow::Result<Usage> {
    let stat = std::fs::read_to_string(format!("{proc_dir}/stat"))
        .with_context(|| format!("reading {proc_dir}/stat"))?;
    let status = std::fs::read_to_string(format!("{proc_dir}/status"))
        .with_context(|| format!("reading {proc_dir}/status"))?;
    let (utime_ticks, stime_ticks) = parse_stat_cpu_ticks(&stat)?;
    let kib = |key| {
        parse_status_kib(&status, key).with_context(|| format!("no {key} in {proc_dir}/status"))
    };
    Ok(Usage {
        cpu_ticks: utime_ticks + stime_ticks,
        cpu_seconds: cpu_seconds(utime_ticks, stime_ticks, CLOCK_TICKS_PER_SECOND),
        rss_bytes: kib("VmRSS")? * 1024,
        peak_rss_bytes: kib("VmHWM")? * 1024,
    })
}

/// CPU seconds from `utime` and `stime` counted in ticks of `ticks_per_second`.
pub fn cpu_seconds(utime_ticks: u64, stime_ticks: u64, ticks_per_second: u64) -> f64 {
    (utime_ticks + stime_ticks) as f64 / ticks_per_second as f64
}

/// `utime` and `stime` (fields 14 and 15) of a `/proc/<pid>/stat` line. The command
/// name (field 2) is in parentheses and may hold spaces and parentheses, so fields are
/// counted from the last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> anyhow::Result<(u64, u64)> {
    let after_name = stat
        .rfind(')')
        .map(|end| &stat[end + 1..])
        .context("no ')' in /proc stat")?;
    // After the name, field 3 (state) is at index 0, so field n is at index n - 3.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |number: usize| -> anyhow::Result<u64> {
        let text = fields
            .get(number - 3)
            .with_context(|| format!("no field {number} in /proc stat"))?;
        text.parse()
            .with_context(|| format!("field {number} of /proc stat is {text:?}"))
    };
    Ok((field(14)?, field(15)?))
}

/// A `Key:   123 kB` line of `/proc/<pid>/status`, in KiB.
fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Raises the open-file limit to what `players` sockets need (one socket each), or says
/// clearly why the run cannot start.
pub fn ensure_open_files(players: u64) -> anyhow::Result<()> {
    let needed = players + SPARE_FILES;
    let (soft, hard) = rlimit::Resource::NOFILE
        .get()
        .context("reading RLIMIT_NOFILE")?;
    if soft >= needed {
        return Ok(());
    }
    // Raising the hard limit works as root; otherwise go as high as the hard limit.
    if rlimit::Resource::NOFILE
        .set(needed, hard.max(needed))
        .is_ok()
    {
        return Ok(());
    }
    let raised = rlimit::increase_nofile_limit(needed).context("raising RLIMIT_NOFILE")?;
    if raised < needed {
        bail!(
            "{players} bots need {needed} open files but the limit is {raised} \
             (raise it with `ulimit -n {needed}` or run fewer --players)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_seconds_use_the_given_clock_tick() {
        assert_eq!(cpu_seconds(150, 50, 100), 2.0);
        assert_eq!(cpu_seconds(150, 50, 1000), 0.2);
        assert_eq!(cpu_seconds(0, 0, 100), 0.0);
    }

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (aloft (load) test) S 1 4242 4242 0 -1 4194560 1200 0 0 0 \
                    731 269 0 0 20 0 9 0 123456 987654 2048 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat).unwrap(), (731, 269));
        assert!(parse_stat_cpu_ticks("4242 (short) S 1 2").is_err());
        assert!(parse_stat_cpu_ticks("no name here").is_err());
    }

    #[test]
    fn status_memory_lines_are_read_in_kib() {
        let status = "Name:\taloft-loadtest\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS"), Some(10240));
        assert_eq!(parse_status_kib(status, "VmHWM"), Some(20480));
        assert_eq!(parse_status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn own_usage_is_readable() {
        let usage = read_usage().unwrap();
        assert!(usage.rss_bytes > 0);
        assert!(usage.peak_rss_bytes >= usage.rss_bytes);
        let by_pid = read_process_usage(std::process::id()).unwrap();
        assert!(by_pid.cpu_ticks >= usage.cpu_ticks);
        assert!(read_process_usage(u32::MAX).is_err());
    }
}

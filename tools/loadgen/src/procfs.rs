//! What /proc says about a process and the machine: CPU time, memory, sleeps, open
//! files, and the load of everything else. Each reading is 0 (or empty) when /proc
//! cannot say, so a reading never fails a run.

use std::time::Duration;

/// A `Name:   1234 kB` field of a `/proc/PID/status` text, in KiB.
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// A field of process `pid`'s status in KiB (`VmRSS:`, `VmHWM:`), 0 when unknown.
pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| status_kib(&s, field))
        .unwrap_or(0)
}

/// The nanoseconds on CPU in a `/proc/.../schedstat` text (its first number).
pub fn schedstat_ns(schedstat: &str) -> u64 {
    schedstat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
}

/// CPU time spent by every thread of process `pid` (a number, or `self`) so far.
pub fn process_cpu(pid: &str) -> Duration {
    let mut ns = 0u64;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                ns += schedstat_ns(&s);
            }
        }
    }
    Duration::from_nanos(ns)
}

/// Times a thread of process `pid` went to sleep (voluntary context switches, summed
/// over its threads): near 0 per check when a server is the bottleneck, 1 when it waits
/// for every request.
pub fn sleeps(pid: u32) -> u64 {
    let mut n = 0;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("status")) {
                n += s
                    .lines()
                    .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    n
}

/// Busy ticks in the first (all CPUs) line of a `/proc/stat` text: user, nice, system
/// and steal. Interrupt time is left out: it is the network stack working for the
/// servers, counted with them through `ksoftirqd`.
pub fn stat_busy_ticks(stat: &str) -> u64 {
    stat.lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .enumerate()
                // user nice system [idle iowait irq softirq] steal [guest guest_nice]
                .filter(|(i, _)| matches!(i, 0 | 1 | 2 | 7))
                .filter_map(|(_, v)| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

/// Busy CPU time of the whole machine (all CPUs: user, system and stolen time).
pub fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(stat_busy_ticks(&stat) * 10)
}

/// CPU time of the kernel's network threads (`ksoftirqd`), which carry the servers'
/// traffic too.
pub fn ksoftirqd_cpu() -> Duration {
    let mut total = Duration::ZERO;
    if let Ok(procs) = std::fs::read_dir("/proc") {
        for p in procs.flatten() {
            let name = p.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
            if comm.starts_with("ksoftirqd") {
                total += process_cpu(pid);
            }
        }
    }
    total
}

/// Whether a `/proc/PID/status` text is of a process that runs (a child that exited
/// stays a zombie until reaped).
pub fn status_alive(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("State:"))
        .is_some_and(|st| !st.trim_start().starts_with(['Z', 'X']))
}

/// Whether process `pid` runs.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| status_alive(&s))
}

/// Open file descriptors of process `pid`.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Everything the machine did during a run that was neither a server under test, nor
/// this process, nor the kernel's network threads: the measurement's noise.
pub struct Noise {
    busy: Duration,
    ours: Duration,
}

impl Noise {
    fn ours(pids: &[u32]) -> Duration {
        pids.iter()
            .map(|p| process_cpu(&p.to_string()))
            .sum::<Duration>()
            + process_cpu("self")
            + ksoftirqd_cpu()
    }

    /// Starts counting; `pids` are the servers under test.
    pub fn start(pids: &[u32]) -> Self {
        Self {
            busy: machine_busy(),
            ours: Self::ours(pids),
        }
    }

    /// CPU time of everything else since [`Noise::start`].
    pub fn foreign(&self, pids: &[u32]) -> Duration {
        let busy = machine_busy().saturating_sub(self.busy);
        let ours = Self::ours(pids).saturating_sub(self.ours);
        busy.saturating_sub(ours)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tward\nState:\tS (sleeping)\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nvoluntary_ctxt_switches:\t7\n";

    #[test]
    fn status_fields_read_in_kib() {
        assert_eq!(status_kib(STATUS, "VmRSS:"), Some(10240));
        assert_eq!(status_kib(STATUS, "VmHWM:"), Some(20480));
        assert_eq!(status_kib(STATUS, "VmSwap:"), None);
        assert_eq!(status_kib("VmRSS:\tlots kB\n", "VmRSS:"), None);
    }

    #[test]
    fn zombies_do_not_run() {
        assert!(status_alive(STATUS));
        assert!(status_alive("State:\tR (running)\n"));
        assert!(!status_alive("State:\tZ (zombie)\n"));
        assert!(!status_alive("State:\tX (dead)\n"));
        assert!(!status_alive("Name:\tx\n"));
    }

    #[test]
    fn stat_counts_user_nice_system_and_steal() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let stat = "cpu  100 20 30 5000 7 3 4 9 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(stat_busy_ticks(stat), 100 + 20 + 30 + 9);
        assert_eq!(stat_busy_ticks(""), 0);
    }

    #[test]
    fn schedstat_is_its_first_number() {
        assert_eq!(schedstat_ns("123456 789 10\n"), 123_456);
        assert_eq!(schedstat_ns(""), 0);
    }

    #[test]
    fn this_process_is_seen() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(proc_status_kib(me, "VmRSS:") > 0);
        assert!(open_fds(me) >= 3);
        // Burn a little CPU so that the reading is not zero.
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(process_cpu("self") > Duration::ZERO);
        let noise = Noise::start(&[]);
        let _ = noise.foreign(&[]);
    }
}

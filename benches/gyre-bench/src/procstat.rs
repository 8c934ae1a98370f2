//! The server process seen from /proc: CPU time (utime + stime, fields 14 and 15 of
//! `/proc/PID/stat`), resident memory (`VmRSS` of `/proc/PID/status`) and kernel slab memory.

use std::time::Instant;

/// The server processes under measurement (none if no PID was given); figures are sums.
#[derive(Clone, Debug)]
pub struct Server {
    pub pids: Vec<u32>,
}

/// CPU time consumed so far, taken at an instant.
#[derive(Clone, Copy, Debug)]
pub struct CpuMark {
    cpu_us: Option<u64>,
    at: Instant,
}

impl CpuMark {
    /// Server CPU µs between two marks and the wall-clock seconds between them.
    pub fn since(&self, earlier: &CpuMark) -> (Option<u64>, f64) {
        let cpu = match (self.cpu_us, earlier.cpu_us) {
            (Some(now), Some(then)) => Some(now.saturating_sub(then)),
            _ => None,
        };
        (cpu, self.at.duration_since(earlier.at).as_secs_f64())
    }
}

/// This process's own CPU time (to tell whether the loader was the bottleneck).
pub fn loader_cpu() -> CpuMark {
    CpuMark { cpu_us: cpu_us(std::process::id()), at: Instant::now() }
}

impl CpuMark {
    /// CPU use between two marks in percent of one core.
    pub fn percent_since(&self, earlier: &CpuMark) -> Option<f64> {
        let (cpu_us, seconds) = self.since(earlier);
        cpu_us.map(|us| us as f64 / seconds.max(1e-9) / 1e4)
    }
}

impl Server {
    pub fn cpu(&self) -> CpuMark {
        CpuMark { cpu_us: self.sum(cpu_us), at: Instant::now() }
    }

    pub fn rss_kib(&self) -> Option<u64> {
        self.sum(rss_kib)
    }

    /// `read` summed over every PID; `None` without PIDs or if one is unreadable.
    fn sum(&self, read: fn(u32) -> Option<u64>) -> Option<u64> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids.iter().map(|&pid| read(pid)).sum()
    }
}

/// utime + stime of a process in µs.
pub fn cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_cpu_ticks(&stat)?;
    Some(ticks * 1_000_000 / clock_ticks_per_sec())
}

/// Fields 14 (utime) and 15 (stime); the command name (field 2) may contain spaces and ')'.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // after_comm starts at field 3 (state), so field N is at index N - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// `AT_CLKTCK` from the auxiliary vector (the kernel's USER_HZ), 100 if unreadable.
fn clock_ticks_per_sec() -> u64 {
    const AT_CLKTCK: u64 = 17;
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return 100;
    };
    let words: Vec<u64> = auxv.chunks_exact(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]))).collect();
    words.chunks_exact(2).find(|pair| pair[0] == AT_CLKTCK).map_or(100, |pair| pair[1].max(1))
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&status, "VmRSS:")
}

/// Kernel slab memory (all processes) in KiB; socket structures live here.
pub fn slab_kib() -> Option<u64> {
    kib_field(&std::fs::read_to_string("/proc/meminfo").ok()?, "Slab:")
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let stat = "1234 (gyre (x) y) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
    }

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        assert!(rss_kib(me).is_some_and(|kib| kib > 0));
        assert!(cpu_us(me).is_some());
        assert_eq!(clock_ticks_per_sec(), 100);
    }
}

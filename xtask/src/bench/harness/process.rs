//! Memory and CPU of a process, from `/proc/<pid>`.

use std::future::Future;
use std::time::Duration;

use anyhow::Result;

/// `(VmHWM, VmRSS)` of a process, in KiB (0 when unknown).
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU time (user + system) a process has used, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is the
    // first, utime the 12th, stime the 13th; in clock ticks (USER_HZ, 100).
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Runs `work` while sampling `pid`'s `VmRSS` every 200 ms, and calling
/// `every_2s` on every tenth sample; returns what `work` returned and the
/// highest RSS sampled, in KiB.
pub async fn sampling_rss<T>(
    pid: u32,
    work: impl Future<Output = Result<T>>,
    mut every_2s: impl AsyncFnMut(),
) -> Result<(T, u64)> {
    let mut work = std::pin::pin!(work);
    let mut peak = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            result = &mut work => return Ok((result?, peak)),
            _ = tick.tick() => {
                peak = peak.max(memory_kib(pid).1);
                ticks += 1;
                if ticks.is_multiple_of(10) {
                    every_2s().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_memory_and_cpu() {
        let pid = std::process::id();
        let (hwm, rss) = memory_kib(pid);
        assert!(hwm >= rss && rss > 0, "{hwm} {rss}");
        let spin = std::time::Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {}
        assert!(cpu_seconds(pid) > 0.0);
        assert_eq!(memory_kib(u32::MAX), (0, 0));
    }
}

//! What `/proc` says about a process: resident memory and CPU time.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`,
/// 100 on every Linux this runs on).
const TICKS_PER_SECOND: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Resident set size, bytes.
    pub rss_bytes: u64,
    /// User plus system CPU time since the process started.
    pub cpu: Duration,
}

/// Reads `/proc/<pid>/{status,stat}`.
pub fn sample(pid: u32) -> std::io::Result<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    Ok(Sample {
        rss_bytes: rss_bytes(&status).ok_or_else(|| invalid("no VmRSS in /proc/<pid>/status"))?,
        cpu: cpu_time(&stat).ok_or_else(|| invalid("unreadable /proc/<pid>/stat"))?,
    })
}

/// `VmRSS` of a `/proc/<pid>/status` text, in bytes.
pub fn rss_bytes(status: &str) -> Option<u64> {
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// `utime + stime` of a `/proc/<pid>/stat` line. The command name (field 2)
/// is in parentheses and may hold spaces, so fields are counted after its
/// closing parenthesis: utime and stime are fields 14 and 15.
pub fn cpu_time(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // fields[0] is field 3 (state): field n is fields[n - 3].
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / TICKS_PER_SECOND,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rss_and_cpu_time() {
        let status = "Name:\therald\nVmPeak:\t  99 kB\nVmRSS:\t   18108 kB\nThreads:\t4\n";
        assert_eq!(rss_bytes(status), Some(18108 * 1024));
        assert_eq!(rss_bytes("Name: x\n"), None);
        // A command name with spaces and parentheses must not shift fields.
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 4 0 100 0 0";
        assert_eq!(cpu_time(stat), Some(Duration::from_millis(3250)));
        assert_eq!(cpu_time("garbage"), None);
        let me = sample(std::process::id()).unwrap();
        assert!(me.rss_bytes > 0);
    }
}

//! CPU time and resident memory of a process, from Linux's `/proc`.

use std::process::Command;
use std::sync::OnceLock;

/// CPU seconds (user and system) a process has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces; the fields
    // after it are positional: utime and stime are the 12th and 13th.
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / ticks_per_second())
}

/// Resident memory of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The system's UDP buffer overflow counters (`RcvbufErrors`,
/// `SndbufErrors` of `/proc/net/snmp` and `/proc/net/snmp6`, IPv4 and IPv6
/// added): datagrams the kernel dropped because a socket's buffer was full.
/// They count every socket of the machine, so a benchmark reads them
/// before and after a step and reports the difference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpBufferErrors {
    /// Datagrams dropped on arrival.
    pub receive: u64,
    /// Datagrams dropped on sending.
    pub send: u64,
}

impl UdpBufferErrors {
    /// What the counters grew by since `before`.
    pub fn since(self, before: Self) -> Self {
        Self {
            receive: self.receive.saturating_sub(before.receive),
            send: self.send.saturating_sub(before.send),
        }
    }

    /// Datagrams dropped either way.
    pub fn total(self) -> u64 {
        self.receive + self.send
    }
}

/// Reads the UDP buffer overflow counters, or `None` off Linux.
pub fn udp_buffer_errors() -> Option<UdpBufferErrors> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    // Two "Udp:" lines: the field names, then the values.
    let mut udp = snmp.lines().filter(|line| line.starts_with("Udp:"));
    let names: Vec<&str> = udp.next()?.split_whitespace().collect();
    let values: Vec<&str> = udp.next()?.split_whitespace().collect();
    let field = |name: &str| -> u64 {
        names.iter().position(|n| *n == name).and_then(|i| values.get(i)?.parse().ok()).unwrap_or(0)
    };
    let mut errors = UdpBufferErrors { receive: field("RcvbufErrors"), send: field("SndbufErrors") };
    // IPv6 lists one "Name value" pair per line.
    if let Ok(snmp6) = std::fs::read_to_string("/proc/net/snmp6") {
        for line in snmp6.lines() {
            let mut words = line.split_whitespace();
            let (Some(name), Some(value)) = (words.next(), words.next()) else { continue };
            let value: u64 = value.parse().unwrap_or(0);
            match name {
                "Udp6RcvbufErrors" => errors.receive += value,
                "Udp6SndbufErrors" => errors.send += value,
                _ => {}
            }
        }
    }
    Some(errors)
}

fn ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let start = cpu_seconds(pid).expect("cpu time");
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(cpu_seconds(pid).expect("cpu time") >= start);
        assert!(rss_bytes(pid).expect("rss") > 1024 * 1024);
    }

    #[test]
    fn reads_the_udp_counters() {
        let before = udp_buffer_errors().expect("Linux has /proc/net/snmp");
        let after = udp_buffer_errors().expect("Linux has /proc/net/snmp");
        assert!(after.receive >= before.receive && after.send >= before.send);
    }
}

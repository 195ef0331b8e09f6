//! What this machine offers: CPUs, memory, its name and address, kernel and OS.

use std::net::{IpAddr, Ipv4Addr};

use crate::config::NodeResources;

/// CPUs from the scheduler's view, memory from `/proc/meminfo`.
pub fn resources() -> NodeResources {
    let cpus = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1);
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_total_bytes(&text))
        .unwrap_or(0);
    NodeResources {
        cpus,
        memory_bytes,
        pods: NodeResources::DEFAULT_PODS,
    }
}

/// `MemTotal:  16318412 kB` → bytes.
pub fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line.split_whitespace().skip(1);
    let value: u64 = words.next()?.parse().ok()?;
    let scale = match words.next() {
        Some("kB") => 1024,
        None => 1,
        Some(_) => return None,
    };
    value.checked_mul(scale)
}

/// A first line of a file under /proc or /etc, trimmed.
fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.lines().next().unwrap_or_default().trim().to_string())
        .unwrap_or_default()
}

/// Facts for the Node's `nodeInfo`.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    /// `/proc/sys/kernel/osrelease`.
    pub kernel_version: String,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os_image: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
}

impl HostInfo {
    /// Reads them; missing files give empty strings.
    pub fn read() -> Self {
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "Linux".to_string());
        HostInfo {
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
            os_image,
            machine_id: read_trimmed("/etc/machine-id"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
        }
    }
}

/// The machine's host name.
pub fn hostname() -> String {
    let name = read_trimmed("/proc/sys/kernel/hostname");
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name
    }
}

/// The node's address: the host name's first non-loopback IPv4 (from /etc/hosts or DNS),
/// else 127.0.0.1.
pub async fn node_ip() -> IpAddr {
    let looked_up = tokio::net::lookup_host((hostname(), 0)).await;
    looked_up
        .ok()
        .and_then(|mut addrs| {
            addrs.find_map(|a| match a.ip() {
                IpAddr::V4(v4) if !v4.is_loopback() => Some(IpAddr::V4(v4)),
                _ => None,
            })
        })
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total_is_in_kibibytes() {
        let text = "MemTotal:       16318412 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total_bytes(text), Some(16_318_412 * 1024));
        assert_eq!(mem_total_bytes("MemFree: 3 kB"), None);
        assert_eq!(mem_total_bytes("MemTotal: lots kB"), None);
    }

    #[test]
    fn host_resources_are_plausible() {
        let r = resources();
        assert!(r.cpus >= 1);
        assert_eq!(r.pods, 110);
    }
}

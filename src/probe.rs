//! Pre-flight probes of the kernel: the route a connection will take and the sysctls that set the
//! SYN deadline. Reads `/proc/sys` through the calling thread, so a thread that entered a network
//! namespace sees that namespace's values.

use std::net::IpAddr;
use std::process::Command;

use serde::Serialize;

use crate::linux::SynTiming;

/// The route the kernel picks for a destination (`ip route get`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Route {
    /// Outgoing interface.
    pub dev: Option<String>,
    /// Next hop, when the destination is not on-link.
    pub gateway: Option<IpAddr>,
    /// Preferred source address.
    pub source: Option<IpAddr>,
}

impl Route {
    /// `via 192.0.2.1 dev eth0 src 192.0.2.10`, or `on-link dev eth0 src ...`.
    pub fn describe(&self) -> String {
        let mut s = match self.gateway {
            Some(gw) => format!("via {gw}"),
            None => "on-link".to_string(),
        };
        if let Some(dev) = &self.dev {
            s.push_str(&format!(" dev {dev}"));
        }
        if let Some(src) = self.source {
            s.push_str(&format!(" src {src}"));
        }
        s
    }
}

/// Asks the kernel which route it would use to reach `dst` (`ip -j route get`, rtnetlink
/// RTM_GETROUTE). `Err` carries the kernel's refusal (`Network is unreachable`, `No route to host`
/// for an `unreachable` route, `Permission denied` for `prohibit`, `Invalid argument` for `blackhole`).
pub fn route_to(dst: IpAddr) -> Result<Route, String> {
    let output = Command::new("ip")
        .args(["-j", "route", "get", &dst.to_string()])
        .output()
        .map_err(|e| format!("cannot run `ip route get` ({e}); install iproute2"))?;
    if !output.status.success() {
        let err = String::from_utf8_lossy(&output.stderr);
        let reason = err.trim().trim_start_matches("RTNETLINK answers: ");
        return Err(reason.to_string());
    }
    let routes: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("unexpected `ip route get` output: {e}"))?;
    let route = routes.get(0).ok_or("`ip route get` returned no route")?;
    let text = |key: &str| route.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let addr = |key: &str| text(key).and_then(|v| v.parse::<IpAddr>().ok());
    Ok(Route { dev: text("dev"), gateway: addr("gateway"), source: addr("prefsrc") })
}

/// Reads an integer sysctl, e.g. `net/ipv4/tcp_syn_retries`.
fn sysctl(name: &str) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/sys/{name}")).ok()?.trim().parse().ok()
}

/// The SYN timing this host applies: `tcp_syn_retries` and, since Linux 6.5,
/// `tcp_syn_linear_timeouts` (absent before, which means 0).
pub fn syn_timing() -> SynTiming {
    let default = SynTiming::default();
    SynTiming {
        syn_retries: sysctl("net/ipv4/tcp_syn_retries").unwrap_or(default.syn_retries),
        linear_timeouts: sysctl("net/ipv4/tcp_syn_linear_timeouts").unwrap_or(0),
        initial_rto: default.initial_rto,
        user_timeout: None,
    }
}

/// The counters whose changes over an attempt explain something about it.
pub const WATCHED_COUNTERS: &[&str] = &[
    "Tcp:ActiveOpens",
    "Tcp:AttemptFails",
    "Tcp:RetransSegs",
    "Tcp:OutRsts",
    "Tcp:InErrs",
    "TcpExt:LockDroppedIcmps",
    "TcpExt:OutOfWindowIcmps",
    "TcpExt:TCPTimeouts",
    "TcpExt:TCPSynRetrans",
    "TcpExt:TCPSpuriousRtxHostQueues",
    "TcpExt:TCPAbortOnTimeout",
    "TcpExt:ListenOverflows",
    "TcpExt:ListenDrops",
    "Icmp:InErrors",
    "Icmp:InDestUnreachs",
    "Icmp:InTimeExcds",
    "Icmp:OutDestUnreachs",
    "Icmp6:Icmp6InErrors",
    "Icmp6:Icmp6InDestUnreachs",
    "Icmp6:Icmp6InTimeExcds",
    "Icmp6:Icmp6OutDestUnreachs",
];

/// Parses `/proc/net/netstat` or `/proc/net/snmp` (pairs of lines: `Prefix: names` then
/// `Prefix: values`) and `/proc/net/snmp6` (`Name value` lines, filed under `Icmp6:`/`Ip6:`/`Udp6:`).
pub fn parse_counters(text: &str) -> Vec<(String, i64)> {
    let mut counters = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        match line.split_once(':') {
            Some((prefix, names)) if i + 1 < lines.len() && lines[i + 1].starts_with(&format!("{prefix}:")) => {
                let values = lines[i + 1][prefix.len() + 1..].split_whitespace();
                for (name, value) in names.split_whitespace().zip(values) {
                    if let Ok(v) = value.parse() {
                        counters.push((format!("{prefix}:{name}"), v));
                    }
                }
                i += 2;
            }
            _ => {
                let mut parts = line.split_whitespace();
                if let (Some(name), Some(value)) = (parts.next(), parts.next()) {
                    let family = ["Icmp6", "Ip6", "Udp6", "UdpLite6"].iter().find(|p| name.starts_with(*p));
                    if let (Some(family), Ok(v)) = (family, value.parse()) {
                        counters.push((format!("{family}:{name}"), v));
                    }
                }
                i += 1;
            }
        }
    }
    counters
}

/// The watched counters of the calling thread's network namespace (`/proc/thread-self/net`:
/// `/proc/net` would show the namespace of the process's first thread instead).
pub fn counters() -> Vec<(String, i64)> {
    let mut all = Vec::new();
    for file in ["netstat", "snmp", "snmp6"] {
        if let Ok(text) = std::fs::read_to_string(format!("/proc/thread-self/net/{file}")) {
            all.extend(parse_counters(&text));
        }
    }
    all.retain(|(name, _)| WATCHED_COUNTERS.contains(&name.as_str()));
    all
}

/// The counters that changed from `before` to `after`.
pub fn counter_deltas(before: &[(String, i64)], after: &[(String, i64)]) -> Vec<(String, i64)> {
    after
        .iter()
        .filter_map(|(name, value)| {
            let old = before.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v);
            (value != &old).then(|| (name.clone(), value - old))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_parse_netstat_snmp_and_snmp6() {
        let netstat = "TcpExt: SyncookiesSent LockDroppedIcmps\nTcpExt: 0 3\nIpExt: InNoRoutes\nIpExt: 7\n";
        assert_eq!(
            parse_counters(netstat),
            [
                ("TcpExt:SyncookiesSent".to_string(), 0),
                ("TcpExt:LockDroppedIcmps".to_string(), 3),
                ("IpExt:InNoRoutes".to_string(), 7)
            ]
        );
        let snmp6 = "Ip6InReceives                   \t12\nIcmp6InDestUnreachs             \t2\n";
        assert_eq!(
            parse_counters(snmp6),
            [("Ip6:Ip6InReceives".to_string(), 12), ("Icmp6:Icmp6InDestUnreachs".to_string(), 2)]
        );
    }

    #[test]
    fn test_counter_deltas_keep_only_what_moved() {
        let before = vec![("Tcp:ActiveOpens".to_string(), 5), ("TcpExt:LockDroppedIcmps".to_string(), 1)];
        let after = vec![("Tcp:ActiveOpens".to_string(), 6), ("TcpExt:LockDroppedIcmps".to_string(), 1)];
        assert_eq!(counter_deltas(&before, &after), [("Tcp:ActiveOpens".to_string(), 1)]);
    }
}

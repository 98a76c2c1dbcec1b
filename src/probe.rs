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

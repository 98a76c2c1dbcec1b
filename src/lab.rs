//! The lab: builds isolated network namespaces that reproduce each way a `connect()` can fail, and
//! traces each case live.
//!
//! Topology, built afresh for every scenario so no neighbour cache, ICMP rate limit or firewall rule
//! carries over from one to the next:
//!
//! ```text
//!   [client] c0 ------ r0 [router] r1 ------ s0 [server]
//!   192.0.2.10/24  192.0.2.1/24  198.51.100.1/24  198.51.100.10/24
//!   2001:db8:1::10 2001:db8:1::1 2001:db8:2::1    2001:db8:2::10
//! ```
//!
//! A scenario with a distant router puts a relay namespace between the client and the router
//! (`c0 ---- x0 [relay] x1 ---- r0`), which holds every frame 10 ms each way.
//!
//! The namespaces are joined only to each other by veth pairs, never to the host's namespace or a
//! real interface, and use documentation addresses only. The trace runs on a thread that entered
//! the client namespace with `setns(2)`; threads it starts inherit that namespace.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage};
use std::os::fd::{AsFd, AsRawFd};

use crate::connect::Mode;
use crate::flow::Family;
use crate::timeline::Attempt;
use crate::trace::{self, TraceConfig, TraceReport};

/// The server port every scenario connects to.
pub const PORT: u16 = 8080;
/// `net.ipv4.tcp_syn_retries` in the client namespace (it governs IPv6 too): an unanswered SYN
/// gives up after 7 s (`tcp_model_timeout`: (2^3 − 1) × 1 s) instead of 131 s. Not 1: its 3 s
/// deadline would tie with neighbour resolution (3 probes 1 s apart) and hide the ARP failure.
pub const SYN_RETRIES: u32 = 2;
/// How long a scenario may take at most before the lab gives up on it.
const SCENARIO_LIMIT: Duration = Duration::from_secs(20);
/// How long the relay to a distant router holds each frame, each way (see [`relay`]): its ICMP
/// error then comes back 20 ms after the SYN, long after a blocking `connect()` has released the
/// socket to sleep (`inet_wait_for_connect`), as on any real path.
const RELAY_DELAY: Duration = Duration::from_millis(10);
/// Frames the relay holds at most each way; more wait in the capture's ring, which drops what
/// overflows it, as a full queue would.
const RELAY_HELD: usize = 4096;

/// Where a scenario connects to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// The server, behind the router.
    Server,
    /// An on-link address nobody owns (ARP/ND fails).
    Nobody,
    /// An address of TEST-NET-3 / 2001:db8:3::, which only the scenario's own route decides.
    Elsewhere,
}

/// The addresses of one family.
struct Plan {
    client: &'static str,
    router_client_side: &'static str,
    router_server_side: &'static str,
    server: &'static str,
    nobody: &'static str,
    elsewhere: &'static str,
    elsewhere_net: &'static str,
    prefix: u8,
}

const V4: Plan = Plan {
    client: "192.0.2.10",
    router_client_side: "192.0.2.1",
    router_server_side: "198.51.100.1",
    server: "198.51.100.10",
    nobody: "192.0.2.99",
    elsewhere: "203.0.113.10",
    elsewhere_net: "203.0.113.0/24",
    prefix: 24,
};

const V6: Plan = Plan {
    client: "2001:db8:1::10",
    router_client_side: "2001:db8:1::1",
    router_server_side: "2001:db8:2::1",
    server: "2001:db8:2::10",
    nobody: "2001:db8:1::99",
    elsewhere: "2001:db8:3::10",
    elsewhere_net: "2001:db8:3::/64",
    prefix: 64,
};

fn plan(family: Family) -> &'static Plan {
    match family {
        Family::Ipv4 => &V4,
        Family::Ipv6 => &V6,
    }
}

/// What listens on the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listen {
    /// Nothing: the server's kernel answers RST.
    No,
    /// A listener that accepts every connection.
    Accepting,
    /// A listener with backlog 1 that never accepts; the lab fills its accept queue while our
    /// handshake is pending (see [`AckHold`]).
    FullQueue,
}

/// How the client reaches the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    /// One veth pair: a path of microseconds, on which the router's ICMP error reaches a blocking
    /// `connect()` while it still holds the socket (see the `host-unreachable` scenario).
    Direct,
    /// Through a relay that holds every frame [`RELAY_DELAY`] each way (see [`relay`]).
    Relayed,
}

/// What the scenario changes in the standard topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    /// Nothing.
    Nothing,
    /// The router drops everything to the server (a blackhole route).
    RouterBlackhole,
    /// The router's firewall drops the SYNs (FORWARD chain), after its TTL check.
    RouterDrop,
    /// The server's INPUT chain drops our bare ACKs until the lab has filled its accept queue.
    ServerHoldsAcks,
    /// The router drops everything to the server and answers each SYN with replies Linux must
    /// ignore in SYN-SENT (see [`injector`]).
    RouterBogusAnswers,
    /// The router rejects the SYN: `iptables -j REJECT --reject-with` (IPv4 value, IPv6 value).
    RouterReject(&'static str, &'static str),
    /// The router routes the target to the server's host, which forwards it back by its default
    /// route: a routing loop, in which the SYN's TTL (hop limit) runs out.
    RoutingLoop,
    /// The client has no route to the target.
    NoRoute,
    /// The client has a route of this type (`unreachable`, `prohibit`, `blackhole`) to the target.
    LocalRoute(&'static str),
    /// The client's own firewall: iptables arguments after the chain (`{port}` is the server port),
    /// with the IPv4 and IPv6 `--reject-with` values when the rule rejects.
    ClientRule(&'static str, &'static str, Option<(&'static str, &'static str)>),
}

/// One way a connect can end.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// Its name on the command line.
    pub name: &'static str,
    /// One line on what it reproduces.
    pub summary: &'static str,
    target: Target,
    setup: Setup,
    /// What listens on the server.
    listen: Listen,
    /// How the client reaches the router.
    link: Link,
    /// The errno Linux returns (IPv4, IPv6); `None` for success.
    pub expected: (Option<&'static str>, Option<&'static str>),
}

/// Every scenario, in the order the lab runs them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "success",
        summary: "a listener on the server accepts: the handshake completes",
        target: Target::Server,
        setup: Setup::Nothing,
        listen: Listen::Accepting,
        link: Link::Direct,
        expected: (None, None),
    },
    Scenario {
        name: "refused",
        summary: "nothing listens on the server's port: its kernel answers RST",
        target: Target::Server,
        setup: Setup::Nothing,
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("ECONNREFUSED"), Some("ECONNREFUSED")),
    },
    Scenario {
        name: "unanswered",
        summary: "the router silently drops the SYNs (blackhole route): retransmits, then the deadline",
        target: Target::Server,
        setup: Setup::RouterBlackhole,
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("ETIMEDOUT"), Some("ETIMEDOUT")),
    },
    Scenario {
        name: "listen-overflow",
        summary: "the server's accept queue is full: it drops our ACK and keeps retransmitting its SYN-ACK",
        target: Target::Server,
        setup: Setup::ServerHoldsAcks,
        listen: Listen::FullQueue,
        link: Link::Direct,
        expected: (None, None),
    },
    Scenario {
        name: "firewall-drop",
        summary:
            "the router's firewall silently drops the SYNs (try --path: the router still answers TTL-expired probes)",
        target: Target::Server,
        setup: Setup::RouterDrop,
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("ETIMEDOUT"), Some("ETIMEDOUT")),
    },
    Scenario {
        name: "answer-ignored",
        summary: "SYNs are answered by a RST without ACK and a RST with a wrong ack: Linux ignores both",
        target: Target::Server,
        setup: Setup::RouterBogusAnswers,
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("ETIMEDOUT"), Some("ETIMEDOUT")),
    },
    Scenario {
        name: "arp-failure",
        summary: "an on-link address nobody owns: ARP/ND goes unanswered, no SYN ever leaves",
        target: Target::Nobody,
        setup: Setup::Nothing,
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("EHOSTUNREACH"), Some("EHOSTUNREACH")),
    },
    Scenario {
        name: "host-unreachable",
        summary: "the router answers ICMP host unreachable (ICMPv6 address unreachable)",
        target: Target::Server,
        setup: Setup::RouterReject("icmp-host-unreachable", "icmp6-addr-unreachable"),
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("EHOSTUNREACH"), Some("EHOSTUNREACH")),
    },
    Scenario {
        name: "host-unreachable-far",
        summary: "the same router 10 ms away: connect() sleeps by then, and the first ICMP ends it",
        target: Target::Server,
        setup: Setup::RouterReject("icmp-host-unreachable", "icmp6-addr-unreachable"),
        listen: Listen::No,
        link: Link::Relayed,
        expected: (Some("EHOSTUNREACH"), Some("EHOSTUNREACH")),
    },
    Scenario {
        name: "net-unreachable",
        summary: "the router answers ICMP net unreachable (ICMPv6 no route)",
        target: Target::Server,
        setup: Setup::RouterReject("icmp-net-unreachable", "icmp6-no-route"),
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("ENETUNREACH"), Some("ENETUNREACH")),
    },
    Scenario {
        name: "admin-prohibited",
        summary: "the router answers ICMP communication administratively prohibited",
        target: Target::Server,
        setup: Setup::RouterReject("icmp-admin-prohibited", "icmp6-adm-prohibited"),
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("EHOSTUNREACH"), Some("EACCES")),
    },
    Scenario {
        name: "port-unreachable",
        summary: "the router answers ICMP port unreachable (a REJECT rule's default)",
        target: Target::Server,
        setup: Setup::RouterReject("icmp-port-unreachable", "icmp6-port-unreachable"),
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("ECONNREFUSED"), Some("ECONNREFUSED")),
    },
    Scenario {
        name: "firewall-reset",
        summary: "the router rejects with a TCP reset forged in the server's name",
        target: Target::Server,
        setup: Setup::RouterReject("tcp-reset", "tcp-reset"),
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("ECONNREFUSED"), Some("ECONNREFUSED")),
    },
    Scenario {
        name: "routing-loop",
        summary: "the router, 10 ms away, and the server's host route the target to each other: the SYN's TTL runs out, ICMP time exceeded",
        target: Target::Elsewhere,
        setup: Setup::RoutingLoop,
        listen: Listen::No,
        // (As a loop is on a real path: far enough that its ICMP comes once connect() sleeps.)
        link: Link::Relayed,
        expected: (Some("EHOSTUNREACH"), Some("EHOSTUNREACH")),
    },
    Scenario {
        name: "output-drop",
        summary: "the client's own firewall drops its SYNs (OUTPUT chain): none reaches the wire",
        target: Target::Server,
        setup: Setup::ClientRule("OUTPUT", "-p tcp --dport {port} -j DROP", None),
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("ETIMEDOUT"), Some("ETIMEDOUT")),
    },
    Scenario {
        name: "input-drop",
        summary: "the client's own firewall drops the SYN-ACKs (INPUT chain): they are on the wire, yet time out",
        target: Target::Server,
        setup: Setup::ClientRule("INPUT", "-p tcp --sport {port} --tcp-flags SYN,ACK SYN,ACK -j DROP", None),
        listen: Listen::Accepting,
        link: Link::Direct,
        expected: (Some("ETIMEDOUT"), Some("ETIMEDOUT")),
    },
    Scenario {
        name: "local-reject",
        summary: "the client's own firewall rejects the SYN with an ICMP port unreachable",
        target: Target::Server,
        setup: Setup::ClientRule(
            "OUTPUT",
            "-p tcp --dport {port}",
            Some(("icmp-port-unreachable", "icmp6-port-unreachable")),
        ),
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("ECONNREFUSED"), Some("ECONNREFUSED")),
    },
    Scenario {
        name: "local-reset",
        summary: "the client's own firewall rejects the SYN with a TCP reset forged in the server's name",
        target: Target::Server,
        setup: Setup::ClientRule("OUTPUT", "-p tcp --dport {port}", Some(("tcp-reset", "tcp-reset"))),
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("ECONNREFUSED"), Some("ECONNREFUSED")),
    },
    Scenario {
        name: "no-route",
        summary: "the client has no route to the target: connect() fails at once",
        target: Target::Elsewhere,
        setup: Setup::NoRoute,
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("ENETUNREACH"), Some("ENETUNREACH")),
    },
    Scenario {
        name: "local-unreachable",
        summary: "the client's route to the target is of type `unreachable`",
        target: Target::Elsewhere,
        setup: Setup::LocalRoute("unreachable"),
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("EHOSTUNREACH"), Some("EHOSTUNREACH")),
    },
    Scenario {
        name: "local-prohibit",
        summary: "the client's route to the target is of type `prohibit`",
        target: Target::Elsewhere,
        setup: Setup::LocalRoute("prohibit"),
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("EACCES"), Some("EACCES")),
    },
    Scenario {
        name: "local-blackhole",
        summary: "the client's route to the target is of type `blackhole`",
        target: Target::Elsewhere,
        setup: Setup::LocalRoute("blackhole"),
        listen: Listen::No,
        link: Link::Direct,
        expected: (Some("EINVAL"), Some("EINVAL")),
    },
];

impl Scenario {
    /// The errno Linux returns in this scenario for `family` (`None`: success).
    pub fn expected_errno(&self, family: Family) -> Option<&'static str> {
        match family {
            Family::Ipv4 => self.expected.0,
            Family::Ipv6 => self.expected.1,
        }
    }

    /// Looks a scenario up by name.
    pub fn named(name: &str) -> Option<&'static Scenario> {
        SCENARIOS.iter().find(|s| s.name == name)
    }
}

/// How to run the lab.
#[derive(Clone, Debug)]
pub struct LabConfig {
    /// The scenarios to run (all when empty).
    pub scenarios: Vec<&'static Scenario>,
    /// The families to run them in.
    pub families: Vec<Family>,
    /// The wait mode of every trace.
    pub mode: Mode,
    /// A timeout for the non-blocking modes.
    pub timeout: Option<Duration>,
    /// Save each scenario's capture in this directory.
    pub write_dir: Option<PathBuf>,
    /// Probe where the SYN dies after each failed attempt.
    pub path: bool,
}

/// One scenario's run.
#[derive(Debug)]
pub struct LabRun {
    /// The scenario.
    pub scenario: &'static Scenario,
    /// The family.
    pub family: Family,
    /// The trace.
    pub report: TraceReport,
    /// Where its capture was written.
    pub written: Option<PathBuf>,
}

impl LabRun {
    /// Whether the errno matched what Linux is expected to return. An attempt the user's
    /// `--timeout` cut short (aborted) is not held against the scenario.
    pub fn as_expected(&self) -> bool {
        let attempt = &self.report.attempt;
        attempt.outcome == crate::timeline::Outcome::Aborted
            || attempt.errno.map(|e| e.name()) == self.scenario.expected_errno(self.family)
    }

    /// `refused-v4`.
    pub fn label(&self) -> String {
        label(self.scenario, self.family)
    }
}

fn label(scenario: &Scenario, family: Family) -> String {
    let v = match family {
        Family::Ipv4 => "v4",
        Family::Ipv6 => "v6",
    };
    format!("{}-{v}", scenario.name)
}

/// Runs the lab, calling `each` after every scenario (to print it at once).
pub fn run(config: &LabConfig, mut each: impl FnMut(&LabRun) -> anyhow::Result<()>) -> anyhow::Result<Vec<LabRun>> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the lab builds network namespaces and needs root: run `sudo synscope lab`");
    }
    remove_stale_namespaces();
    let scenarios: Vec<&'static Scenario> =
        if config.scenarios.is_empty() { SCENARIOS.iter().collect() } else { config.scenarios.clone() };
    let mut runs = Vec::new();
    for scenario in scenarios {
        for &family in &config.families {
            if crate::interrupt::requested() {
                return Ok(runs);
            }
            let run = run_scenario(scenario, family, config)
                .with_context(|| format!("lab scenario {}", label(scenario, family)))?;
            each(&run)?;
            runs.push(run);
        }
    }
    Ok(runs)
}

/// The namespaces of one scenario; removed when dropped, whatever happened.
struct Lab {
    prefix: String,
    /// How the client reaches the router: through a relay namespace, or directly.
    link: Link,
}

static LAB_COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Namespace names look like `synscope-<pid>-<n>-client`.
const NS_PREFIX: &str = "synscope-";

impl Lab {
    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    fn new(link: Link) -> anyhow::Result<Lab> {
        let n = LAB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut lab = Lab { prefix: format!("{NS_PREFIX}{}-{n}", std::process::id()), link: Link::Direct };
        for role in ["client", "router", "server"] {
            ip(&["netns", "add", &lab.ns(role)])?;
        }
        // (Relayed only once the relay's namespace exists: dropped, the lab removes what it made.)
        if link == Link::Relayed {
            ip(&["netns", "add", &lab.ns("relay")])?;
            lab.link = link;
        }
        Ok(lab)
    }

    /// The roles whose namespaces this lab made.
    fn roles(&self) -> &'static [&'static str] {
        match self.link {
            Link::Direct => &["client", "router", "server"],
            Link::Relayed => &["client", "relay", "router", "server"],
        }
    }

    /// Runs `args` inside a namespace (`ip netns exec`).
    fn exec(&self, role: &str, args: &[&str]) -> anyhow::Result<()> {
        let ns = self.ns(role);
        let mut full = vec!["netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    fn ip_in(&self, role: &str, args: &[&str]) -> anyhow::Result<()> {
        let ns = self.ns(role);
        let mut full = vec!["-n", ns.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Builds the topology for both families; `default_route` false leaves the client without one.
    fn build(&self, default_route: bool) -> anyhow::Result<()> {
        let (client, router, server) = (self.ns("client"), self.ns("router"), self.ns("server"));
        // Sysctls first: interfaces created afterwards inherit `default.accept_dad=0`, so their
        // link-local addresses are usable at once (DAD would hold neighbour discovery for a second).
        for (role, sysctls) in [
            ("client", &[format!("net.ipv4.tcp_syn_retries={SYN_RETRIES}")][..]),
            ("router", &["net.ipv4.ip_forward=1".to_string(), "net.ipv6.conf.all.forwarding=1".to_string()][..]),
            ("server", &[][..]),
        ] {
            let mut args =
                vec!["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"];
            args.extend(sysctls.iter().map(String::as_str));
            self.exec(role, &args)?;
        }
        let mut links = vec![("client", "c0"), ("router", "r0"), ("router", "r1"), ("server", "s0")];
        match self.link {
            Link::Direct => {
                ip(&["link", "add", "c0", "netns", &client, "type", "veth", "peer", "name", "r0", "netns", &router])?
            }
            Link::Relayed => {
                // The relay has no address: without IPv6 its interfaces send nothing of their own
                // (router solicitations, MLD reports) for it to pass on.
                let relay = self.ns("relay");
                let off = ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"];
                self.exec("relay", &off)?;
                ip(&["link", "add", "c0", "netns", &client, "type", "veth", "peer", "name", "x0", "netns", &relay])?;
                ip(&["link", "add", "x1", "netns", &relay, "type", "veth", "peer", "name", "r0", "netns", &router])?;
                links.extend([("relay", "x0"), ("relay", "x1")]);
            }
        }
        ip(&["link", "add", "r1", "netns", &router, "type", "veth", "peer", "name", "s0", "netns", &server])?;
        for (role, dev) in [("client", "lo"), ("router", "lo"), ("server", "lo")].iter().chain(links.iter()) {
            self.ip_in(role, &["link", "set", dev, "up"])?;
        }
        for p in [&V4, &V6] {
            for (role, dev, addr) in [
                ("client", "c0", p.client),
                ("router", "r0", p.router_client_side),
                ("router", "r1", p.router_server_side),
                ("server", "s0", p.server),
            ] {
                let cidr = format!("{addr}/{}", p.prefix);
                let mut args = vec!["addr", "add", cidr.as_str(), "dev", dev];
                if addr.contains(':') {
                    args.push("nodad");
                }
                self.ip_in(role, &args)?;
            }
            let family = if p.client.contains(':') { "-6" } else { "-4" };
            if default_route {
                self.ip_in("client", &[family, "route", "add", "default", "via", p.router_client_side])?;
            }
            self.ip_in("server", &[family, "route", "add", "default", "via", p.router_server_side])?;
        }
        self.wait_links_up(&links)
    }

    /// A veth is usable a moment after it is set up; IPv6 ignores it until then, which would cost
    /// the first neighbour solicitation. Waits (at most 5 s) until every link reports UP.
    fn wait_links_up(&self, links: &[(&str, &str)]) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        for (role, dev) in links {
            loop {
                let out = Command::new("ip").args(["-n", &self.ns(role), "-j", "link", "show", dev]).output()?;
                if String::from_utf8_lossy(&out.stdout).contains("\"operstate\":\"UP\"") {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{dev} in {} did not come up within 5 s", self.ns(role));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    fn apply(&self, setup: Setup, family: Family) -> anyhow::Result<()> {
        let p = plan(family);
        let (fam, tables) = match family {
            Family::Ipv4 => ("-4", "iptables"),
            Family::Ipv6 => ("-6", "ip6tables"),
        };
        match setup {
            Setup::Nothing | Setup::NoRoute => Ok(()),
            Setup::RouterBlackhole | Setup::RouterBogusAnswers => {
                self.ip_in("router", &[fam, "route", "add", "blackhole", p.server])
            }
            Setup::ServerHoldsAcks => {
                let args = ack_hold_rule(tables, "-I", p.client);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                self.exec("server", &args).with_context(|| format!("{tables} is needed for this scenario"))
            }
            Setup::RouterDrop => {
                let port = PORT.to_string();
                let args = [
                    tables,
                    "-w",
                    "5",
                    "-A",
                    "FORWARD",
                    "-d",
                    p.server,
                    "-p",
                    "tcp",
                    "--dport",
                    port.as_str(),
                    "-j",
                    "DROP",
                ];
                self.exec("router", &args).with_context(|| format!("{tables} is needed for this scenario"))
            }
            Setup::RouterReject(v4, v6) => {
                let with = if family == Family::Ipv4 { v4 } else { v6 };
                let port = PORT.to_string();
                let mut args =
                    vec![tables, "-w", "5", "-A", "FORWARD", "-d", p.server, "-p", "tcp", "--dport", port.as_str()];
                args.extend_from_slice(&["-j", "REJECT", "--reject-with", with]);
                self.exec("router", &args).with_context(|| format!("{tables} is needed for this scenario"))
            }
            Setup::RoutingLoop => {
                // The server's host forwards, and its default route leads back to the router. It
                // sends no IPv4 redirect for the SYN it forwards out the link it came in on
                // (`send_redirects` is ORed over `all` and the device: `IN_DEV_TX_REDIRECTS`), so
                // the client sees only the loop's end; IPv6 sends none to a global next hop
                // (`ndisc_send_redirect` wants a link-local target).
                let sysctls = [
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                    "net.ipv6.conf.all.forwarding=1",
                    "net.ipv4.conf.all.send_redirects=0",
                    "net.ipv4.conf.s0.send_redirects=0",
                ];
                self.exec("server", &sysctls)?;
                self.ip_in("router", &[fam, "route", "add", p.elsewhere_net, "via", p.server])
            }
            Setup::LocalRoute(kind) => self.ip_in("client", &[fam, "route", "add", kind, p.elsewhere_net]),
            Setup::ClientRule(chain, rule, reject) => {
                let rule = rule.replace("{port}", &PORT.to_string());
                let mut args = vec![tables, "-w", "5", "-A", chain];
                args.extend(rule.split_whitespace());
                if let Some((v4, v6)) = reject {
                    args.extend(["-j", "REJECT", "--reject-with", if family == Family::Ipv4 { v4 } else { v6 }]);
                }
                self.exec("client", &args).with_context(|| format!("{tables} is needed for this scenario"))
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for role in self.roles() {
            let _ = Command::new("ip").args(["netns", "del", &self.ns(role)]).output();
        }
    }
}

/// Removes namespaces left by a lab whose process no longer exists (killed with SIGKILL).
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else { return };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = lab_namespace_owner(name) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// The process that made `name`, if it is a lab's namespace (`synscope-<pid>-<n>-<role>`, see
/// [`Lab::ns`]). Nothing else is a lab's to remove: a namespace merely named `synscope-...` (the
/// test suite's `synscope-test-<pid>-<n>`, say) was removed while in use when its second part was
/// taken for a process that did not exist.
fn lab_namespace_owner(name: &str) -> Option<u32> {
    let mut parts = name.strip_prefix(NS_PREFIX)?.split('-');
    let (pid, n, role) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let lab_role = matches!(role, "client" | "relay" | "router" | "server");
    (digits(pid) && digits(n) && lab_role && parts.next().is_none()).then(|| pid.parse().ok()).flatten()
}

/// Runs `ip` with `args`, failing with its error message.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output().context("cannot run `ip`: install iproute2")?;
    if !out.status.success() {
        bail!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Runs `f` on a thread that entered the network namespace `ns` first.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    let path = format!("/run/netns/{ns}");
    let handle = std::thread::Builder::new().name(format!("in {ns}")).spawn(move || {
        let file = File::open(&path).with_context(|| format!("cannot open {path}"))?;
        setns(&file, CloneFlags::CLONE_NEWNET).with_context(|| format!("setns({path})"))?;
        f()
    })?;
    handle.join().map_err(|_| anyhow::anyhow!("a lab thread panicked"))?
}

/// A thread that entered a namespace, set something up there, and serves until dropped (or the
/// scenario's time limit passes): the lab's listener and injector.
struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Enters the namespace `ns` on a new thread and runs `setup` there; once it succeeded,
    /// calls `serve` over and over. Fails when `setup` fails.
    fn start<S>(
        ns: String,
        setup: impl FnOnce() -> anyhow::Result<S> + Send + 'static,
        mut serve: impl FnMut(&mut S) + Send + 'static,
    ) -> anyhow::Result<Background> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let flag = Arc::clone(&stop);
        let path = format!("/run/netns/{ns}");
        let thread = std::thread::spawn(move || {
            let state = (|| {
                setns(&File::open(&path)?, CloneFlags::CLONE_NEWNET)?;
                setup()
            })();
            let mut state = match state {
                Ok(state) => {
                    let _ = ready_tx.send(Ok(()));
                    state
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let deadline = Instant::now() + SCENARIO_LIMIT;
            while !flag.load(Ordering::Acquire) && Instant::now() < deadline {
                serve(&mut state);
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .with_context(|| format!("a lab helper in {ns} did not start"))??;
        Ok(Background { stop, thread: Some(thread) })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A listener in the server namespace: it accepts, reads until the client closes, and closes; or,
/// with `accepting` false, it holds its accept queue full (backlog 1, never accepting).
fn listener(lab: &Lab, addr: SocketAddr, accepting: bool) -> anyhow::Result<Background> {
    let setup = move || -> anyhow::Result<TcpListener> {
        let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
        socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
        socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
        // Backlog 1: our SYN gets a real request sock (with 0, inet_csk_reqsk_queue_is_full
        // already holds and the server answers with a stateless SYN cookie, never
        // retransmitted), and two accepted children fill the queue (ack_backlog > 1).
        let backlog = if accepting { Backlog::MAXCONN } else { Backlog::new(1)? };
        socket::listen(&fd, backlog)?;
        let listener = TcpListener::from(fd);
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    let serve = move |listener: &mut TcpListener| {
        // A listener that holds its queue full must never accept().
        if !accepting {
            std::thread::sleep(Duration::from_millis(5));
            return;
        }
        match listener.accept() {
            Ok((mut conn, _)) => {
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut sink = [0u8; 512];
                while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
                let _ = conn.flush();
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    Background::start(lab.ns("server"), setup, serve)
}

/// The iptables rule (insert `-I` or delete `-D`) that drops the client's bare ACKs on the server.
fn ack_hold_rule(tables: &str, op: &str, client: &str) -> Vec<String> {
    let port = PORT.to_string();
    [tables, "-w", "5", op, "INPUT", "-s", client, "-p", "tcp", "--dport", &port]
        .into_iter()
        .chain(["--tcp-flags", "SYN,ACK,FIN,RST,PSH", "ACK", "-j", "DROP"])
        .map(str::to_string)
        .collect()
}

/// Fills the server's accept queue while our handshake is held half-open, then lets our ACKs in:
/// once our request is in SYN_RECV, two filler connections from the router complete (the queue, backlog 1,
/// is then full; they get SYN cookies, as our request fills the SYN queue), and the rule that
/// dropped our bare ACKs goes. When the server retransmits its
/// SYN-ACK, our ACK overflows the queue for real (tcp_v4_syn_recv_sock → ListenOverflows) and is
/// dropped, so the server keeps retransmitting.
struct AckHold {
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AckHold {
    fn start(lab: &Lab, family: Family) -> anyhow::Result<AckHold> {
        let p = plan(family);
        let router_ns = format!("/run/netns/{}", lab.ns("router"));
        let server_ns = lab.ns("server");
        let server: SocketAddr = SocketAddr::new(p.server.parse().context("lab address")?, PORT);
        let tables = if family == Family::Ipv4 { "iptables" } else { "ip6tables" };
        let delete = ack_hold_rule(tables, "-D", p.client);
        let server_ns_path = format!("/run/netns/{server_ns}");
        let thread = std::thread::spawn(move || {
            // Only once our handshake sits half-open on the server may the fillers fill the queue:
            // before, they would make the server drop our SYN instead (tcp_conn_request).
            let _ = wait_for_syn_recv(&server_ns_path, Duration::from_secs(5));
            let fillers = (|| -> anyhow::Result<Vec<std::net::TcpStream>> {
                setns(&File::open(&router_ns)?, CloneFlags::CLONE_NEWNET)?;
                (0..2).map(|_| Ok(std::net::TcpStream::connect_timeout(&server, Duration::from_secs(2))?)).collect()
            })();
            let mut args = vec!["netns", "exec", server_ns.as_str()];
            args.extend(delete.iter().map(String::as_str));
            let _ = ip(&args);
            // Keep the filler connection (and so the full queue) until the scenario ends.
            std::thread::sleep(Duration::from_secs(3));
            drop(fillers);
        });
        Ok(AckHold { thread: Some(thread) })
    }
}

/// Waits (at most `limit`) until a socket of the namespace at `netns` is in SYN_RECV, as
/// `/proc/thread-self/net/tcp` and `tcp6` show it (state `03`, `include/net/tcp_states.h`).
fn wait_for_syn_recv(netns: &str, limit: Duration) -> anyhow::Result<()> {
    setns(&File::open(netns)?, CloneFlags::CLONE_NEWNET)?;
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        for table in ["/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"] {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            if text.lines().skip(1).any(|line| line.split_whitespace().nth(3) == Some("03")) {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!("no handshake reached SYN_RECV within {limit:?}")
}

impl Drop for AckHold {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// On the router's client-side interface, answers every SYN to the server port with two replies that
/// Linux must ignore in SYN-SENT (`tcp_rcv_synsent_state_process`): a RST without ACK, and a RST+ACK
/// whose ack is the ISN instead of ISN+1.
fn injector(lab: &Lab) -> anyhow::Result<Background> {
    let setup = || -> anyhow::Result<pcap::Capture<pcap::Active>> {
        let mut capture = pcap::Capture::from_device("r0")?.immediate_mode(true).timeout(10).open()?;
        capture.filter(&format!("tcp dst port {PORT}"), true)?;
        Ok(capture.setnonblock()?)
    };
    let serve = |capture: &mut pcap::Capture<pcap::Active>| {
        let replies = match capture.next_packet() {
            Ok(packet) => bogus_answers(packet.data),
            Err(_) => {
                std::thread::sleep(Duration::from_millis(1));
                return;
            }
        };
        for reply in replies {
            let _ = capture.sendpacket(reply);
        }
    };
    Background::start(lab.ns("router"), setup, serve)
}

/// The two replies to a client's SYN (an Ethernet frame) that Linux must ignore.
fn bogus_answers(frame: &[u8]) -> Vec<Vec<u8>> {
    let Ok(packet) = crate::decode::decode(crate::decode::LinkType::ETHERNET, frame) else { return Vec::new() };
    let crate::decode::PacketBody::Tcp(syn) = packet.body else { return Vec::new() };
    let (Some(to_mac), Some(from_mac)) = (frame.get(6..12), frame.get(0..6)) else { return Vec::new() };
    if !syn.flags.is_syn_only() {
        return Vec::new();
    }
    let mut to = [0u8; 6];
    let mut from = [0u8; 6];
    to.copy_from_slice(to_mac);
    from.copy_from_slice(from_mac);
    let reply = |ack: Option<u32>| -> Option<Vec<u8>> {
        let ethernet = etherparse::PacketBuilder::ethernet2(from, to);
        let ip = match (syn.dst.ip(), syn.src.ip()) {
            (IpAddr::V4(server), IpAddr::V4(client)) => ethernet.ipv4(server.octets(), client.octets(), 64),
            (IpAddr::V6(server), IpAddr::V6(client)) => ethernet.ipv6(server.octets(), client.octets(), 64),
            _ => return None,
        };
        let tcp = ip.tcp(syn.dst.port(), syn.src.port(), 0, 0).rst();
        let tcp = match ack {
            Some(ack) => tcp.ack(ack),
            None => tcp,
        };
        let mut bytes = Vec::with_capacity(tcp.size(0));
        tcp.write(&mut bytes, &[]).ok()?;
        Some(bytes)
    };
    // RFC 9293 3.10.7.3: in SYN-SENT a RST counts only with an ACK of exactly our SYN.
    [reply(None), reply(Some(syn.seq))].into_iter().flatten().collect()
}

/// The relay between the client and a distant router: every frame that comes in on one of its
/// interfaces goes out of the other [`RELAY_DELAY`] later, as a longer path would deliver it.
/// (`tc netem` would do this in the kernel, but it is not built into every kernel: this lab's
/// was made on one without it, `CONFIG_NET_SCH_NETEM` unset.)
fn relay(lab: &Lab) -> anyhow::Result<Background> {
    let setup = || -> anyhow::Result<Relay> {
        let open = |dev: &str| -> anyhow::Result<pcap::Capture<pcap::Active>> {
            let capture = pcap::Capture::from_device(dev)?.immediate_mode(true).promisc(true).open()?;
            // Only what arrives: what the relay sends out of an interface must not come back in.
            capture.direction(pcap::Direction::In)?;
            Ok(capture.setnonblock()?)
        };
        Ok(Relay { ends: [open("x0")?, open("x1")?], held: Default::default() })
    };
    Background::start(lab.ns("relay"), setup, Relay::serve)
}

/// The relay's two interfaces (`x0` to the client, `x1` to the router), and the frames that came in
/// on each, with when each goes out of the other, oldest first.
struct Relay {
    ends: [pcap::Capture<pcap::Active>; 2],
    held: [std::collections::VecDeque<(Instant, Vec<u8>)>; 2],
}

impl Relay {
    /// Takes in what has come, sends on what is due, and waits (at most 5 ms, so that the lab
    /// can stop it) for the next frame in or out.
    fn serve(&mut self) {
        let now = Instant::now();
        for (capture, held) in self.ends.iter_mut().zip(&mut self.held) {
            while held.len() < RELAY_HELD {
                let Ok(packet) = capture.next_packet() else { break };
                let mut frame = packet.data.to_vec();
                complete_tcp_checksum(&mut frame);
                held.push_back((now + RELAY_DELAY, frame));
            }
        }
        let [to_client, to_router] = &mut self.ends;
        for (held, out) in self.held.iter_mut().zip([to_router, to_client]) {
            while held.front().is_some_and(|(due, _)| *due <= now) {
                if let Some((_, frame)) = held.pop_front() {
                    let _ = out.sendpacket(frame);
                }
            }
        }
        let next = self.held.iter().filter_map(|held| held.front().map(|(due, _)| *due)).min();
        let wait = next.map_or(Duration::from_millis(5), |due| due.saturating_duration_since(now));
        let wait = nix::poll::PollTimeout::from(wait.as_millis().min(5) as u16);
        let mut fds = self.ends.each_ref().map(|end| nix::poll::PollFd::new(end.as_fd(), nix::poll::PollFlags::POLLIN));
        let _ = nix::poll::poll(&mut fds, wait);
    }
}

/// Completes the TCP checksum of a frame relayed as it was captured: a veth passes frames on with
/// the checksum left to the hardware (`CHECKSUM_PARTIAL`, the field holding only the pseudo-header's
/// sum), and a packet socket sends a frame as it is. The router's REJECT answers only a segment
/// whose checksum is right (`nf_send_unreach` → `nf_ip_checksum`).
fn complete_tcp_checksum(frame: &mut [u8]) {
    let complete = || -> Option<(usize, u16)> {
        let packet = etherparse::SlicedPacket::from_ethernet(frame).ok()?;
        let Some(etherparse::TransportSlice::Tcp(tcp)) = packet.transport else { return None };
        let sum = match packet.net? {
            etherparse::NetSlice::Ipv4(ip) => tcp.calc_checksum_ipv4(ip.header().source(), ip.header().destination()),
            etherparse::NetSlice::Ipv6(ip) => tcp.calc_checksum_ipv6(ip.header().source(), ip.header().destination()),
            etherparse::NetSlice::Arp(_) => return None,
        };
        // (RFC 9293 3.1: the checksum is the 16 bits at offset 16 of the TCP header.)
        Some((tcp.slice().as_ptr() as usize - frame.as_ptr() as usize + 16, sum.ok()?))
    };
    if let Some((at, sum)) = complete() {
        frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }
}

fn run_scenario(scenario: &'static Scenario, family: Family, config: &LabConfig) -> anyhow::Result<LabRun> {
    let lab = Lab::new(scenario.link)?;
    lab.build(scenario.setup != Setup::NoRoute)?;
    lab.apply(scenario.setup, family)?;
    let p = plan(family);
    let target: IpAddr = match scenario.target {
        Target::Server => p.server,
        Target::Nobody => p.nobody,
        Target::Elsewhere => p.elsewhere,
    }
    .parse()
    .context("lab address")?;
    let _injector = match scenario.setup {
        Setup::RouterBogusAnswers => Some(injector(&lab)?),
        _ => None,
    };
    let _relay = match scenario.link {
        Link::Relayed => Some(relay(&lab)?),
        Link::Direct => None,
    };
    let _listener = match scenario.listen {
        Listen::No => None,
        listen => Some(listener(&lab, SocketAddr::new(target, PORT), listen == Listen::Accepting)?),
    };
    let _ack_hold = match scenario.setup {
        Setup::ServerHoldsAcks => Some(AckHold::start(&lab, family)?),
        _ => None,
    };
    let written = config.write_dir.as_ref().map(|dir| dir.join(format!("{}.pcap", label(scenario, family))));
    let trace_config = TraceConfig {
        host: target.to_string(),
        port: PORT,
        family: Some(family),
        source: None,
        interface: None,
        mode: config.mode,
        timeout: config.timeout,
        syn_retries: None,
        user_timeout: None,
        write: written.clone(),
        capture: true,
        grace: Duration::from_millis(300),
        path: config.path,
        linger: Duration::from_millis(1500),
        // The lab builds the next scenario's namespaces after this one: it keeps its root.
        drop_privileges: false,
        show_waiting: std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    let report = in_netns(&lab.ns("client"), move || trace::run(&trace_config))?;
    Ok(LabRun { scenario, family, report, written })
}

/// The lab's closing table: scenario, errno, time to the verdict, SYNs sent.
pub fn table(runs: &[LabRun]) -> Vec<[String; 5]> {
    runs.iter()
        .map(|run| {
            let a: &Attempt = &run.report.attempt;
            let errno = a.errno.map_or("-".to_string(), |e| e.name().to_string());
            let time = a.decided_after.map_or("-".to_string(), |t| format!("{}", crate::event::Span((t * 1e9) as i64)));
            let check = if a.outcome == crate::timeline::Outcome::Aborted {
                "aborted by --timeout".to_string()
            } else if run.as_expected() {
                "as expected".to_string()
            } else {
                format!("expected {}", run.scenario.expected_errno(run.family).unwrap_or("success"))
            };
            [run.label(), errno, time, a.syn_count.to_string(), check]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_only_a_labs_own_namespaces_are_taken_for_stale() {
        assert_eq!(lab_namespace_owner("synscope-4242-0-client"), Some(4242));
        assert_eq!(lab_namespace_owner("synscope-7-12-router"), Some(7));
        assert_eq!(lab_namespace_owner("synscope-7-12-server"), Some(7));
        assert_eq!(lab_namespace_owner("synscope-7-12-relay"), Some(7));
        for other in [
            "synscope-test-30163-1",
            "synscope-foo",
            "synscope-12-client",
            "synscope-12-3-client-x",
            "synscope-12-3-db",
            "synscope--3-client",
            "synscope-99999999999-3-client",
            "other-12-3-client",
            "",
        ] {
            assert_eq!(lab_namespace_owner(other), None, "{other:?}");
        }
    }

    /// A SYN as the relay captures it from a veth: the checksum field holds only the pseudo-header's
    /// sum (`CHECKSUM_PARTIAL`), here stood in for by any wrong value.
    #[test]
    fn test_relay_completes_tcp_checksums_and_leaves_the_rest() {
        let (client, router) = ([2, 0, 0, 0, 1, 16], [2, 0, 0, 0, 1, 1]);
        let syn = |builder: etherparse::PacketBuilderStep<etherparse::IpHeaders>| {
            let tcp = builder.tcp(40_000, PORT, 12_345, 64_240).syn();
            let mut frame = Vec::with_capacity(tcp.size(0));
            tcp.write(&mut frame, &[]).expect("frame");
            frame
        };
        let v4 =
            syn(etherparse::PacketBuilder::ethernet2(client, router).ipv4([192, 0, 2, 10], [198, 51, 100, 10], 64));
        let v6 = syn(etherparse::PacketBuilder::ethernet2(client, router).ipv6(
            "2001:db8:1::10".parse::<std::net::Ipv6Addr>().expect("address").octets(),
            "2001:db8:2::10".parse::<std::net::Ipv6Addr>().expect("address").octets(),
            64,
        ));
        // The checksum sits 16 bytes into the TCP header, after Ethernet (14) and IPv4 (20) or IPv6 (40).
        for (whole, at) in [(v4, 14 + 20 + 16), (v6, 14 + 40 + 16)] {
            let mut partial = whole.clone();
            partial[at..at + 2].copy_from_slice(&[0x12, 0x34]);
            complete_tcp_checksum(&mut partial);
            assert_eq!(partial, whole);
            // Padded to Ethernet's 60 bytes, cut, or not TCP: left as it is.
            let mut padded = whole.clone();
            padded[at..at + 2].copy_from_slice(&[0x12, 0x34]);
            padded.extend_from_slice(&[0; 6]);
            complete_tcp_checksum(&mut padded);
            assert_eq!(padded[..whole.len()], whole[..]);
            let mut cut = partial[..at].to_vec();
            complete_tcp_checksum(&mut cut);
            assert_eq!(cut, whole[..at]);
        }
        let arp = [[0xff; 6], client].concat().into_iter().chain([0x08, 0x06]).chain([0; 28]).collect::<Vec<u8>>();
        let mut relayed = arp.clone();
        complete_tcp_checksum(&mut relayed);
        assert_eq!(relayed, arp);
    }
}

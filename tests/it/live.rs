//! Live tests: `synscope lab` and `synscope trace` for real, in network namespaces the lab builds
//! and removes itself (veth pairs joined only to each other, documentation addresses only).
//!
//! They need root. Without it they are skipped with a message — except under `CI=true`, where
//! they must run and fail loudly if namespaces cannot be made.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::Value;

use crate::fixtures::synscope;
use crate::util;

/// Whether namespaces can be made here; panics under CI when they cannot.
fn lab_ready() -> bool {
    static PROBE: AtomicU32 = AtomicU32::new(0);
    let why = if !nix::unistd::geteuid().is_root() {
        Some("not root".to_string())
    } else {
        let name = format!("synscope-probe-{}-{}", std::process::id(), PROBE.fetch_add(1, Ordering::Relaxed));
        match Command::new("ip").args(["netns", "add", &name]).output() {
            Ok(out) if out.status.success() => {
                let _ = Command::new("ip").args(["netns", "del", &name]).output();
                None
            }
            Ok(out) => Some(format!("`ip netns add` failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
            Err(e) => Some(format!("cannot run `ip`: {e}")),
        }
    };
    match why {
        None => true,
        Some(why) if util::in_ci() => panic!("CI=true but the live tests cannot run: {why}"),
        Some(why) => {
            eprintln!("skipping a live test: {why} (run the tests as root)");
            false
        }
    }
}

/// Runs `synscope lab --format json ARGS` and returns its attempts by scenario label, and the summary.
fn lab(args: &[&str]) -> (HashMap<String, Value>, Value) {
    let mut full = vec!["lab", "--format", "json"];
    full.extend_from_slice(args);
    let out = synscope(&full);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "synscope {full:?} exited {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    let summary = lines.pop().expect("a summary line");
    assert_eq!(summary["kind"], "summary");
    let attempts = lines.into_iter().map(|a| (a["scenario"].as_str().expect("scenario").to_string(), a)).collect();
    (attempts, summary)
}

fn events_of<'a>(attempt: &'a Value, what: &str) -> Vec<&'a Value> {
    attempt["events"].as_array().expect("events").iter().filter(|e| e["what"] == what).collect()
}

/// The ICMP error each router scenario ends with: its event and its type/code (IPv4, IPv6).
fn icmp_code(scenario: &str) -> Option<(&'static str, &'static str, &'static str)> {
    let unreachable = "icmp_unreachable";
    match scenario {
        "host-unreachable" | "host-unreachable-far" => Some((unreachable, "type 3/code 1", "type 1/code 3")),
        "net-unreachable" => Some((unreachable, "type 3/code 0", "type 1/code 0")),
        "admin-prohibited" => Some((unreachable, "type 3/code 13", "type 1/code 1")),
        "port-unreachable" => Some((unreachable, "type 3/code 3", "type 1/code 4")),
        "routing-loop" => Some(("icmp_time_exceeded", "type 11/code 0", "type 3/code 0")),
        _ => None,
    }
}

/// Checks one lab attempt: the syscall's errno, outcome, SYN count and the packet that decided it.
fn check_attempt(label: &str, a: &Value, blocking: bool) {
    let (scenario, family) = label.rsplit_once('-').expect("label is scenario-vN");
    let expected = synscope::lab::Scenario::named(scenario).expect("known scenario");
    let family_enum = if family == "v4" { synscope::flow::Family::Ipv4 } else { synscope::flow::Family::Ipv6 };
    let want = expected.expected_errno(family_enum);
    assert_eq!(a["errno"].as_str(), want, "{label}: {}", a["cause"]);
    assert_eq!(a["errno_source"], "syscall", "{label}");
    assert_eq!(a["expected"].as_str(), want, "{label}");
    let syns = a["syn_count"].as_u64().expect("syn_count");
    let outcome = a["outcome"].as_str().expect("outcome");
    let decisive = |what: &str, needle: &str| {
        assert!(
            events_of(a, what)
                .iter()
                .any(|e| e["summary"].as_str().unwrap_or("").contains(needle) && e.get("ignored").is_none()),
            "{label}: no {what} with `{needle}` on the timeline: {}",
            a["events"]
        )
    };
    match scenario {
        "success" => {
            assert_eq!((outcome, syns), ("established", 1), "{label}");
            decisive("syn_ack", "Flags [S.]");
        }
        "listen-overflow" => {
            assert_eq!((outcome, syns), ("established", 1), "{label}");
            assert!(events_of(a, "syn_ack").len() >= 2, "{label}: the server retransmits its SYN-ACK: {}", a["events"]);
            assert!(has_finding(a, "listen_queue_overflow"), "{label}: {}", a["findings"]);
        }
        "refused" | "firewall-reset" => {
            assert_eq!((outcome, syns), ("refused", 1), "{label}");
            decisive("rst", "Flags [R.]");
        }
        "unanswered" | "firewall-drop" => {
            // tcp_syn_retries=2 on Linux 6.5+: the SYN and 5 retransmits at 1, 2, 3, 4, 5 s, ETIMEDOUT at 7 s.
            assert_eq!((outcome, syns), ("timed_out", 6), "{label}");
            assert!(events_of(a, "syn_ack").is_empty() && events_of(a, "rst").is_empty(), "{label}");
        }
        "arp-failure" => {
            assert_eq!((outcome, syns), ("unreachable", 0), "{label}: no SYN may leave");
            let asks = if family == "v4" { "arp_request" } else { "ns" };
            assert!(events_of(a, asks).len() >= 3, "{label}: {}", a["events"]);
            decisive("icmp_unreachable", if family == "v4" { "type 3/code 1" } else { "type 1/code 3" });
        }
        s if icmp_code(s).is_some() => {
            let (what, v4, v6) = icmp_code(s).expect("router scenario");
            assert_eq!(outcome, "unreachable", "{label}");
            if s.ends_with("-far") || s == "routing-loop" {
                // Behind the relay, 10 ms each way: connect() has long released the socket to
                // sleep when the ICMP comes, and the first ends it, blocking or not. (A loop's SYN
                // goes round it in tens of µs: near the client, it would have the near router's race.)
                assert_eq!(syns, 1, "{label}: {}", a["events"]);
                let first = |what: &str| events_of(a, what).first().and_then(|e| e["t"].as_f64()).expect(what);
                let round_trip = first(what) - first("syn");
                assert!(
                    round_trip >= 0.019,
                    "{label}: the ICMP came {round_trip} s after the SYN, not through the relay"
                );
            } else {
                // Whether the µs-close router's first ICMP lands while connect() still holds the
                // socket (then it is only remembered and the second one, after a retransmit,
                // decides) is a race: a blocking connect nearly always loses it, a non-blocking one
                // nearly always wins.
                assert!((1..=2).contains(&syns), "{label}: {syns} SYNs (blocking: {blocking})");
            }
            decisive(what, if family == "v4" { v4 } else { v6 });
            if s == "routing-loop" {
                // From the server's host, which took the TTL to 0; and the SYN left with a TTL of
                // 64 and still ran out: that many hops only a loop has.
                decisive(what, if family == "v4" { "ICMP 198.51.100.10 >" } else { "ICMP6 2001:db8:2::10 >" });
                assert!(has_finding(a, "routing_loop"), "{label}: {}", a["findings"]);
            }
        }
        "answer-ignored" => {
            // The RST+ACK with a bad ack makes Linux resend the SYN at once (TCP_TIMEOUT_MIN): 7 SYNs.
            assert_eq!(outcome, "timed_out", "{label}");
            assert!((6..=7).contains(&syns), "{label}: {syns} SYNs");
            assert!(
                events_of(a, "syn").iter().any(|e| e["note"].as_str().unwrap_or("").contains("TCP_TIMEOUT_MIN")),
                "{label}"
            );
            let ignored = events_of(a, "rst").iter().filter(|e| e.get("ignored").is_some()).count();
            assert!(ignored >= 2, "{label}: the bogus RSTs are shown as ignored: {}", a["events"]);
            assert!(has_finding(a, "answer_ignored"), "{label}: {}", a["findings"]);
        }
        "output-drop" => {
            assert_eq!((outcome, syns), ("timed_out", 0), "{label}: the SYNs die before the wire");
            assert!(has_finding(a, "syn_never_on_wire"), "{label}: {}", a["findings"]);
        }
        "input-drop" => {
            assert_eq!((outcome, syns), ("timed_out", 6), "{label}");
            decisive("syn_ack", "Flags [S.]");
            assert!(has_finding(a, "synack_seen_but_timed_out"), "{label}: {}", a["findings"]);
        }
        "local-reject" => {
            assert_eq!((outcome, syns), ("unreachable", 0), "{label}");
            decisive("icmp_unreachable", if family == "v4" { "type 3/code 3" } else { "type 1/code 4" });
            assert!(has_finding(a, "local_reject"), "{label}: {}", a["findings"]);
        }
        "local-reset" => {
            assert_eq!((outcome, syns), ("refused", 0), "{label}");
            decisive("rst", "Flags [R.]");
            assert!(has_finding(a, "local_reject"), "{label}: {}", a["findings"]);
        }
        _ => {
            assert_eq!((outcome, syns), ("local_error", 0), "{label}");
            let only_local =
                a["events"].as_array().expect("events").iter().all(|e| e["what"] == "syscall" || e["what"] == "kernel");
            assert!(only_local, "{label}: {}", a["events"]);
        }
    }
    if scenario == "arp-failure" {
        assert!(has_finding(a, "neighbour_unresolved"), "{label}: {}", a["findings"]);
    }
    if icmp_code(scenario).is_some() && syns == 2 {
        assert!(has_finding(a, "icmp_deferred_by_socket_lock"), "{label}: {}", a["findings"]);
    }
}

fn has_finding(attempt: &Value, code: &str) -> bool {
    attempt["findings"].as_array().is_some_and(|f| f.iter().any(|f| f["code"] == code))
}

#[test]
fn test_lab_every_scenario_both_families_and_replay_agrees() {
    if !lab_ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let dir_arg = dir.path().to_str().expect("utf-8 path").to_string();
    let (attempts, summary) = lab(&["--write", &dir_arg]);
    let scenarios = synscope::lab::SCENARIOS.len();
    assert_eq!(attempts.len(), 2 * scenarios, "{:?}", attempts.keys());
    assert_eq!(summary["attempts"], 2 * scenarios);
    assert_eq!(summary["dropped"], 0, "the capture dropped packets");
    for (label, a) in &attempts {
        check_attempt(label, a, true);
        // The capture written with --write gives the same verdict from the packets alone.
        let (replayed, capture) = util::replay(&dir.path().join(format!("{label}.pcap")));
        assert!(capture.damage.is_none(), "{label}: {:?}", capture.damage);
        let on_wire =
            a["events"].as_array().expect("events").iter().any(|e| e["what"] != "syscall" && e["what"] != "kernel");
        if !on_wire {
            assert!(replayed.is_empty(), "{label}: nothing was on the wire");
            continue;
        }
        let port = a["client"].as_str().and_then(|c| c.rsplit(':').next()).expect("client port");
        let r = replayed
            .iter()
            .find(|r| r.client.port().to_string() == port)
            .unwrap_or_else(|| panic!("{label}: not in the replay"));
        assert_eq!(r.outcome.name(), a["outcome"].as_str().expect("outcome"), "{label}: {}", r.cause);
        assert_eq!(r.errno.map(|e| e.name()), a["errno"].as_str(), "{label}: {}", r.cause);
        assert_eq!(u64::from(r.syn_count), a["syn_count"].as_u64().expect("syn_count"), "{label}");
    }
    let leftover = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    let mine = format!("synscope-{}-", std::process::id());
    assert!(!String::from_utf8_lossy(&leftover.stdout).contains(&mine), "namespaces left behind");
}

fn check_mode(mode: &str, wait: &str) {
    if !lab_ready() {
        return;
    }
    let scenarios = ["success", "refused", "unanswered", "host-unreachable", "host-unreachable-far", "routing-loop"];
    // (The timeout bounds a wait that would never end: the connect error once read off the
    // error queue before SO_ERROR left SO_ERROR 0 on a closed socket, and `select` returned at once, forever.)
    let (attempts, _) = lab(&[&["--family", "4", "--mode", mode, "--timeout", "15s"][..], &scenarios].concat());
    assert_eq!(attempts.len(), scenarios.len());
    for (label, a) in &attempts {
        check_attempt(label, a, false);
        let calls: Vec<&str> = events_of(a, "syscall").iter().filter_map(|e| e["summary"].as_str()).collect();
        assert!(calls.iter().any(|c| c.starts_with("connect() = -1 EINPROGRESS")), "{label}: {calls:?}");
        assert!(calls.iter().any(|c| c.starts_with(&format!("{wait}("))), "{label} made no {wait}(): {calls:?}");
        assert!(calls.iter().any(|c| c.starts_with("getsockopt() = 0")), "{label}: {calls:?}");
    }
}

#[test]
fn test_lab_mode_select() {
    check_mode("select", "select");
}

#[test]
fn test_lab_mode_poll() {
    check_mode("poll", "poll");
}

#[test]
fn test_lab_mode_epoll() {
    check_mode("epoll", "epoll_wait");
}

#[test]
fn test_lab_timeout_aborts_while_the_kernel_retransmits() {
    if !lab_ready() {
        return;
    }
    let (attempts, _) = lab(&["--family", "6", "--timeout", "1500ms", "--mode", "poll", "unanswered"]);
    let a = &attempts["unanswered-v6"];
    assert_eq!(a["outcome"], "aborted");
    assert!(a["errno"].is_null());
    assert!(a["syn_count"].as_u64().expect("syn_count") >= 2, "the SYN and its retransmit at 1 s");
    assert!(a["cause"].as_str().unwrap_or("").contains("stopped waiting"), "{}", a["cause"]);
}

#[test]
fn test_lab_list_and_bad_scenario() {
    let out = synscope(&["lab", "--list"]);
    assert!(out.status.success());
    let list = String::from_utf8_lossy(&out.stdout);
    for s in synscope::lab::SCENARIOS {
        assert!(list.lines().any(|l| l.starts_with(s.name) && l.contains(s.summary)), "{list}");
    }
    let out = synscope(&["lab", "no-such-case"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no scenario `no-such-case`"));
}

/// A namespace with only `lo` up, for traces that must not touch the host's loopback; removed on drop.
struct LoopbackNs(String);

impl LoopbackNs {
    fn new() -> LoopbackNs {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("synscope-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        for args in [vec!["netns", "add", &name], vec!["-n", &name, "link", "set", "lo", "up"]] {
            let out = Command::new("ip").args(&args).output().expect("run ip");
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        LoopbackNs(name)
    }

    /// Runs `program args` inside the namespace.
    fn run(&self, program: &str, args: &[&str]) -> std::process::Output {
        let mut full = vec!["netns", "exec", self.0.as_str(), program];
        full.extend_from_slice(args);
        Command::new("ip").args(&full).current_dir(util::root()).output().expect("run ip netns exec")
    }

    fn synscope(&self, args: &[&str]) -> std::process::Output {
        self.run(env!("CARGO_BIN_EXE_synscope"), args)
    }

    /// Drops every TCP segment to port 9 on the way in: a `connect()` there waits for an answer
    /// that never comes.
    fn drop_syns_to_port_9(&self) {
        let drop = self.run("iptables", &["-w", "5", "-A", "INPUT", "-p", "tcp", "--dport", "9", "-j", "DROP"]);
        assert!(drop.status.success(), "iptables: {}", String::from_utf8_lossy(&drop.stderr));
    }

    /// Runs synscope as `nobody`, without any privilege.
    fn synscope_as_nobody(&self, args: &[&str]) -> std::process::Output {
        let mut full = vec!["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_synscope")];
        full.extend_from_slice(args);
        self.run("setpriv", &full)
    }
}

impl Drop for LoopbackNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

#[test]
fn test_no_capture_privilege_says_how_to_grant_it() {
    if !lab_ready() {
        return;
    }
    let ns = LoopbackNs::new();
    let out = ns.synscope_as_nobody(&["trace", "127.0.0.1", "9"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("setcap cap_net_raw,cap_net_admin=eip") && err.contains("--no-capture"), "{err}");
    // --no-capture still traces the syscalls, and says which evidence is missing.
    let out = ns.synscope_as_nobody(&["trace", "--no-capture", "--format", "json", "127.0.0.1", "9"]);
    assert_eq!(out.status.code(), Some(1));
    let attempt: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().expect("a line")).expect("json");
    assert_eq!(attempt["errno"], "ECONNREFUSED");
    assert!(attempt["cause"].as_str().unwrap_or("").contains("--no-capture"), "{}", attempt["cause"]);
    let out = ns.synscope_as_nobody(&["lab"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs root"));
}

#[test]
fn test_trace_loopback_refused_and_written_capture() {
    if !lab_ready() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("lo.pcap");
    let ns = LoopbackNs::new();
    let out = ns.synscope(&["trace", "--format", "json", "-w", file.to_str().expect("path"), "127.0.0.1", "9"]);
    assert_eq!(out.status.code(), Some(1), "a refused connect exits 1");
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines[0]["errno"], "ECONNREFUSED");
    assert_eq!(lines[0]["outcome"], "refused");
    let (replayed, _) = util::replay(&file);
    assert_eq!(replayed.len(), 1);
    assert_eq!(replayed[0].errno.map(|e| e.name()), Some("ECONNREFUSED"));
}

#[test]
fn test_lab_interrupted_removes_its_namespaces() {
    if !lab_ready() {
        return;
    }
    for signal in [nix::sys::signal::Signal::SIGINT, nix::sys::signal::Signal::SIGTERM] {
        let child = Command::new(env!("CARGO_BIN_EXE_synscope"))
            .args(["lab", "--family", "4", "--color", "never", "unanswered", "refused"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the lab");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        let mine = format!("synscope-{}-", child.id());
        // Wait (at most 5 s) until the first scenario's namespaces exist, then interrupt.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().expect("ip").stdout)
            .contains(&mine)
        {
            assert!(std::time::Instant::now() < deadline, "the lab made no namespace");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        nix::sys::signal::kill(pid, signal).expect("signal the lab");
        let out = child.wait_with_output().expect("the lab ends");
        assert_eq!(out.status.code(), Some(130), "{signal}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("unanswered-v4"), "the partial table is printed");
        let left = Command::new("ip").args(["netns", "list"]).output().expect("ip");
        assert!(!String::from_utf8_lossy(&left.stdout).contains(&mine), "{signal}: namespaces left behind");
    }
}

/// A listener in a test namespace that accepts and closes connections while the test runs: a thread
/// enters the namespace with setns(2) and binds there.
struct NsListener(std::sync::Arc<std::sync::atomic::AtomicBool>);

fn listen_in(ns: &LoopbackNs, addr: &str) -> NsListener {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (path, addr, flag) = (format!("/run/netns/{}", ns.0), format!("{addr}:8080"), std::sync::Arc::clone(&stop));
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("netns file");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let listener = std::net::TcpListener::bind(&addr).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        ready_tx.send(()).expect("ready");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !flag.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
            if listener.accept().is_err() {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    });
    ready_rx.recv_timeout(std::time::Duration::from_secs(5)).expect("listener ready");
    NsListener(stop)
}

impl Drop for NsListener {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[test]
fn test_trace_count_gives_statistics() {
    if !lab_ready() {
        return;
    }
    let ns = LoopbackNs::new();
    let listener = listen_in(&ns, "127.0.0.1");
    let out = ns.synscope(&[
        "trace",
        "--format",
        "json",
        "-c",
        "3",
        "--interval",
        "100ms",
        "--linger",
        "0",
        "127.0.0.1",
        "8080",
    ]);
    drop(listener);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines.len(), 4, "3 attempts and a summary");
    let summary = &lines[3];
    assert_eq!(summary["attempts"], 3);
    assert_eq!(summary["outcomes"]["established"], 3);
    assert_eq!(summary["rtt_ms"]["count"], 3);
    assert_eq!(summary["connect_ms"]["count"], 3);
    let stats = &summary["connect_ms"];
    assert!(stats["min"].as_f64() <= stats["avg"].as_f64() && stats["avg"].as_f64() <= stats["max"].as_f64());
    // Text: one line per attempt, then ping-like statistics.
    let out = ns.synscope(&["trace", "--color", "never", "-c", "2", "--interval", "100ms", "127.0.0.1", "9"]);
    assert_eq!(out.status.code(), Some(1), "refused attempts exit 1");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[1] 127.0.0.1:") && text.contains("[2] 127.0.0.1:"), "{text}");
    assert!(text.contains("2 attempt(s): 2 refused (2 ECONNREFUSED)"), "{text}");
    assert!(text.contains("handshake rtt min/avg/max/stddev = "), "{text}");
}

#[test]
fn test_trace_count_interrupted_prints_the_statistics_so_far() {
    if !lab_ready() {
        return;
    }
    let ns = LoopbackNs::new();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_synscope"), "trace", "--color", "never"])
        .args(["-c", "100", "--interval", "200ms", "127.0.0.1", "9"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start trace");
    std::thread::sleep(std::time::Duration::from_millis(1200));
    // `ip netns exec` execs synscope in place, so the child's pid is synscope's.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    let out = child.wait_with_output().expect("trace ends");
    assert_eq!(out.status.code(), Some(130));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("synscope statistics ---"), "{text}");
    assert!(text.contains("[2] "), "several attempts before the interruption: {text}");
    assert!(!text.contains("[100] "), "{text}");
}

#[test]
fn test_trace_all_addresses_falls_back_until_one_connects() {
    if !lab_ready() {
        return;
    }
    let ns = LoopbackNs::new();
    let listener = listen_in(&ns, "127.0.0.1");
    let resolved: Vec<_> = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 8080)).expect("localhost").collect();
    let out = ns.synscope(&["trace", "--color", "never", "--all-addresses", "localhost", "8080"]);
    drop(listener);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let worked_after = resolved.iter().position(|a| a.is_ipv4()).expect("localhost has an IPv4 address") + 1;
    assert!(text.contains(&format!("localhost: 127.0.0.1:8080 worked after {worked_after} attempt(s)")), "{text}");
    if worked_after > 1 {
        assert!(text.contains("refused: ECONNREFUSED"), "the IPv6 address was tried first and refused: {text}");
    }
}

#[test]
fn test_lab_path_names_the_router_that_drops() {
    if !lab_ready() {
        return;
    }
    let (attempts, _) = lab(&["--path", "firewall-drop"]);
    for (label, router) in [("firewall-drop-v4", "192.0.2.1"), ("firewall-drop-v6", "2001:db8:1::1")] {
        let a = &attempts[label];
        assert_eq!(a["errno"], "ETIMEDOUT", "{label}");
        let hops = a["path"]["hops"].as_array().expect("--path hops");
        assert_eq!(hops[0]["answer"]["what"], "time_exceeded", "{label}: {hops:?}");
        assert_eq!(hops[0]["answer"]["from"], router, "{label}");
        assert!(hops[1..].iter().all(|h| h["answer"]["what"] == "no_answer"), "{label}: {hops:?}");
        let verdict = a["path"]["verdict"].as_str().expect("verdict");
        assert!(verdict.contains(&format!("last seen at hop 1: {router}")), "{label}: {verdict}");
    }
}

#[test]
fn test_lab_path_finds_the_routing_loop() {
    if !lab_ready() {
        return;
    }
    let (attempts, _) = lab(&["--path", "routing-loop"]);
    // IPv4 routers answer from the address of their route back to the client (the router's client
    // side); IPv6 ones, seen on this kernel, from the interface the probe came in on, so from the
    // probe's second pass the router answers from its server side.
    for (label, first_hop, routers) in [
        ("routing-loop-v4", 1_u8, ["192.0.2.1", "198.51.100.10"]),
        ("routing-loop-v6", 2, ["2001:db8:2::10", "2001:db8:2::1"]),
    ] {
        let a = &attempts[label];
        assert_eq!(a["errno"], "EHOSTUNREACH", "{label}");
        let path = &a["path"];
        assert_eq!(path["routing_loop"]["first_hop"], first_hop, "{label}: {path}");
        assert_eq!(path["routing_loop"]["routers"], serde_json::json!(routers), "{label}: {path}");
        // Probing stops once the circle has come round twice.
        let hops = path["hops"].as_array().expect("--path hops");
        assert_eq!(hops.len(), usize::from(first_hop) + 3, "{label}: {path}");
        let verdict = path["verdict"].as_str().expect("verdict");
        assert!(verdict.starts_with(&format!("A routing loop: from hop {first_hop}")), "{label}: {verdict}");
    }
}

/// TCP connections this namespace has opened (`ActiveOpens`, /proc/net/snmp).
fn active_opens(ns: &LoopbackNs) -> u64 {
    let snmp = ns.run("cat", &["/proc/net/snmp"]);
    let text = String::from_utf8_lossy(&snmp.stdout);
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().expect("Tcp names"), tcp.next().expect("Tcp values"));
    let at = names.split_whitespace().position(|n| n == "ActiveOpens").expect("ActiveOpens");
    values.split_whitespace().nth(at).and_then(|v| v.parse().ok()).expect("a count")
}

/// Bad arguments: each a clear error with exit code 2, found before anything is sent or written.
#[test]
fn test_bad_arguments_fail_before_any_side_effect() {
    if !lab_ready() {
        return;
    }
    let ns = LoopbackNs::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let unwritable = dir.path().join("missing-dir").join("x.pcap");
    let unwritable = unwritable.display().to_string();
    let cases: [(&[&str], &str); 5] = [
        (&["trace", "no-such-host.invalid", "80"], "cannot resolve no-such-host.invalid"),
        (&["trace", "127.0.0.1", "99999"], "invalid value '99999'"),
        (&["trace", "-i", "nosuchif0", "127.0.0.1", "9"], "cannot capture on nosuchif0"),
        (&["trace", "--write", &unwritable, "127.0.0.1", "9"], "cannot write"),
        (&["replay", "--bpf", "port eighty", "fixtures/refused-v4.pcap"], "bad --bpf expression"),
    ];
    for (args, says) in cases {
        let out = ns.synscope(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed: {}", String::from_utf8_lossy(&out.stdout));
    }
    // Nothing was sent: not one connect() in the namespace, and no file written.
    assert_eq!(active_opens(&ns), 0, "a bad argument still let a connect() through");
    assert!(!std::path::Path::new(&unwritable).exists());
    // The check can see a connect(): a good trace makes one.
    let _ = ns.synscope(&["trace", "--no-capture", "127.0.0.1", "9"]);
    assert_eq!(active_opens(&ns), 1);
}

/// Least privilege: once the capture is armed, a trace started through sudo becomes the invoking
/// user, a trace started as root otherwise gives up every capability, and the `--write` file
/// belongs to the user who asked for it.
#[test]
fn test_trace_connects_without_privilege_once_the_capture_is_armed() {
    use std::os::unix::fs::MetadataExt as _;
    if !lab_ready() {
        return;
    }
    let ns = LoopbackNs::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("lo.pcap");
    let file_arg = file.display().to_string();
    let bin = env!("CARGO_BIN_EXE_synscope");
    // As if through sudo by user 65534.
    let out = ns.run(
        "env",
        &["SUDO_UID=65534", "SUDO_GID=65534", bin, "trace", "--color", "never", "-w", &file_arg, "127.0.0.1", "9"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "refused: {text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        text.contains("privilege connect() ran as uid 65534 with no capabilities: switched from uid 0 with"),
        "the header says what connect() ran with: {text}"
    );
    let meta = std::fs::metadata(&file).expect("the capture was written");
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "the --write file belongs to the invoking user");
    let (replayed, _) = util::replay(&file);
    assert_eq!(replayed[0].errno.map(|e| e.name()), Some("ECONNREFUSED"), "and it is complete");
    // As root without sudo: root's capabilities are cleared before connect().
    let out = ns.run("env", &["-u", "SUDO_UID", "-u", "SUDO_GID", bin, "trace", "--color", "never", "127.0.0.1", "9"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("privilege connect() ran as uid 0 with no capabilities: cleared"), "{text}");
    // Runs that arm a capture per attempt keep only what that takes, as the user or as root.
    let sudo = ["SUDO_UID=65534", "SUDO_GID=65534", bin];
    let every = ["trace", "--all-addresses", "--color", "never", "127.0.0.1", "9"];
    let out = ns.run("env", &[&sudo[..], &every[..]].concat());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("privilege connect() ran as uid 65534 with cap_net_admin, cap_net_raw"), "{text}");
    let out = ns.run("env", &[&["-u", "SUDO_UID", bin][..], &every[..]].concat());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("privilege connect() ran as uid 0 with cap_net_admin, cap_net_raw"), "{text}");
    let count = ["trace", "-c", "2", "--interval", "100ms", "--color", "never", "127.0.0.1", "9"];
    let out = ns.run("env", &[&sudo[..], &count[..]].concat());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[2] ") && text.contains("2 refused"), "both captures armed as the user: {text}");
}

/// Two namespaces joined by one veth pair: a client (192.0.2.10) and a server (192.0.2.20) on one
/// link, documentation addresses only; removed on drop.
struct VethPair {
    client: LoopbackNs,
    server: LoopbackNs,
}

impl VethPair {
    fn new() -> VethPair {
        let (client, server) = (LoopbackNs::new(), LoopbackNs::new());
        // IPv4 only: no IPv6 duplicate-address detection chatter on the new link.
        for ns in [&client, &server] {
            let out =
                ns.run("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]);
            assert!(out.status.success(), "sysctl: {}", String::from_utf8_lossy(&out.stderr));
        }
        let (c, s) = (format!("sc{}", std::process::id() % 100_000), format!("ss{}", std::process::id() % 100_000));
        let steps: [&[&str]; 9] = [
            &["link", "add", &c, "netns", &client.0, "type", "veth", "peer", "name", &s, "netns", &server.0],
            &["-n", &client.0, "link", "set", &c, "address", "02:00:00:00:00:10"],
            &["-n", &server.0, "link", "set", &s, "address", "02:00:00:00:00:20"],
            &["-n", &client.0, "addr", "add", "192.0.2.10/24", "dev", &c],
            &["-n", &server.0, "addr", "add", "192.0.2.20/24", "dev", &s],
            &["-n", &client.0, "link", "set", &c, "up"],
            &["-n", &server.0, "link", "set", &s, "up"],
            // Fixed neighbours both ways (set after the addresses: changing a link's address flushes
            // them), so that no capture holds ARP that a trace did not cause.
            &[
                "-n",
                &client.0,
                "neigh",
                "replace",
                "192.0.2.20",
                "lladdr",
                "02:00:00:00:00:20",
                "dev",
                &c,
                "nud",
                "permanent",
            ],
            &[
                "-n",
                &server.0,
                "neigh",
                "replace",
                "192.0.2.10",
                "lladdr",
                "02:00:00:00:00:10",
                "dev",
                &s,
                "nud",
                "permanent",
            ],
        ];
        for args in steps {
            let out = Command::new("ip").args(args).output().expect("run ip");
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        VethPair { client, server }
    }
}

/// No crosstalk: eight traces at once, from one host to one server, each capture holds its own
/// attempt's packets and nothing else, and each reports its own attempt.
#[test]
fn test_eight_concurrent_traces_see_only_their_own_packets() {
    if !lab_ready() {
        return;
    }
    let pair = VethPair::new();
    let (path, stop) =
        (format!("/run/netns/{}", pair.server.0), std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let flag = std::sync::Arc::clone(&stop);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("netns file");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let listener = std::net::TcpListener::bind("192.0.2.20:8080").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        ready_tx.send(()).expect("ready");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut open = Vec::new();
        while !flag.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
            match listener.accept() {
                Ok((conn, _)) => open.push(conn),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
            }
        }
    });
    ready_rx.recv_timeout(std::time::Duration::from_secs(5)).expect("server ready");
    let dir = tempfile::tempdir().expect("tempdir");
    let files: Vec<_> = (0..8).map(|i| dir.path().join(format!("trace-{i}.pcap"))).collect();
    let children: Vec<_> = files
        .iter()
        .map(|file| {
            Command::new("ip")
                .args(["netns", "exec", &pair.client.0, env!("CARGO_BIN_EXE_synscope"), "trace", "--format", "json"])
                .args(["--linger", "500ms", "-w"])
                .arg(file)
                .args(["192.0.2.20", "8080"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("start a trace")
        })
        .collect();
    let outputs: Vec<_> = children.into_iter().map(|c| c.wait_with_output().expect("trace ends")).collect();
    stop.store(true, Ordering::Release);
    server.join().expect("server thread");
    let mut ports = std::collections::HashSet::new();
    for (output, file) in outputs.iter().zip(&files) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        let attempt: Value =
            serde_json::from_str(String::from_utf8_lossy(&output.stdout).lines().next().expect("a line"))
                .expect("json");
        assert_eq!(attempt["outcome"], "established");
        assert_eq!(attempt["syn_count"], 1, "{attempt}");
        let client = attempt["client"].as_str().expect("client").to_string();
        let port: u16 = client.rsplit(':').next().and_then(|p| p.parse().ok()).expect("port");
        assert!(ports.insert(port), "two traces reported the same attempt");
        // Every TCP segment in this trace's capture is its own: client port and server port.
        let capture = synscope::capture::read_file(file).expect("read the capture");
        let mut segments = 0;
        for event in &capture.events {
            if let synscope::event::EventKind::Packet { packet, .. } = &event.kind {
                match &packet.body {
                    synscope::decode::PacketBody::Tcp(seg) => {
                        segments += 1;
                        let ends = [seg.src.port(), seg.dst.port()];
                        assert!(ends.contains(&port) && ends.contains(&8080), "{client}: a foreign segment {seg:?}");
                    }
                    other => panic!("{client}: a foreign packet {other:?}"),
                }
            }
        }
        assert!(segments >= 3, "{client}: the handshake is captured ({segments} segments)");
        let (replayed, _) = util::replay(file);
        assert_eq!(replayed.len(), 1, "{client}: one attempt in its capture");
    }
    assert_eq!(ports.len(), 8);
}

/// Ctrl-C or SIGTERM while a blocking connect() waits for an answer that never comes: the timeline
/// so far, a valid --write file, and exit 130, at once rather than at the kernel's deadline.
#[test]
fn test_trace_interrupted_while_connect_blocks() {
    if !lab_ready() {
        return;
    }
    let ns = LoopbackNs::new();
    ns.drop_syns_to_port_9();
    let dir = tempfile::tempdir().expect("tempdir");
    for signal in [nix::sys::signal::Signal::SIGINT, nix::sys::signal::Signal::SIGTERM] {
        let file = dir.path().join(format!("{signal}.pcap"));
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.0, env!("CARGO_BIN_EXE_synscope"), "trace", "--color", "never", "-w"])
            .arg(&file)
            .args(["127.0.0.1", "9"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the trace");
        // Two SYNs (the first retransmit comes after 1 s), then interrupt.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let started = std::time::Instant::now();
        // `ip netns exec` execs synscope in place, so the child's pid is synscope's.
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        nix::sys::signal::kill(pid, signal).expect("signal the trace");
        let out = child.wait_with_output().expect("the trace ends");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{signal}: it stopped at once");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(130), "{signal}: {text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("interrupted"), "{signal}");
        assert!(text.contains("connect(fd") && text.contains("retransmit #1"), "{signal}: the timeline so far: {text}");
        assert!(text.contains("connect() had not returned"), "{signal}: {text}");
        let (replayed, _) = util::replay(&file);
        assert_eq!(replayed.len(), 1, "{signal}: the --write file is complete and valid");
        assert!(replayed[0].syn_count >= 2, "{signal}: {}", replayed[0].syn_count);
    }
}

/// While connect() waits, a terminal is told how long it has waited, the SYNs seen and when it
/// ends, on a line erased before the timeline; a pipe is told nothing.
#[test]
fn test_trace_says_how_long_connect_has_waited_on_a_terminal_only() {
    if !lab_ready() {
        return;
    }
    let ns = LoopbackNs::new();
    ns.drop_syns_to_port_9();
    // One retransmit: SYNs at 0 and 1 s, ETIMEDOUT at 3 s.
    let args = ["trace", "--syn-retries", "1", "--color", "never", "127.0.0.1", "9"];
    // A terminal (script(1) gives it a pty): a line says how long connect() has waited, the SYNs
    // seen, and when it will end, until the timeline replaces it.
    if Command::new("script").arg("--version").output().is_err() {
        assert!(!util::in_ci(), "script(1) is missing (the test script installs it)");
        eprintln!("skipped: script(1) is missing");
        return;
    }
    let command = format!("{} {}", env!("CARGO_BIN_EXE_synscope"), args.join(" "));
    let tty = ns.run("script", &["-qec", &command, "/dev/null"]);
    let shown = String::from_utf8_lossy(&tty.stdout).replace("\r\n", "\n");
    assert_eq!(tty.status.code(), Some(1), "{shown}");
    for said in ["waiting 0.", "waiting 2.", "for connect(): 2 SYN(s), no answer yet; ETIMEDOUT at 3.00 s"] {
        assert!(shown.contains(said), "{said:?} in {shown:?}");
    }
    // Its last draw is erased (ESC [2K) before anything else goes on a line of its own.
    let last_draw = &shown[shown.rfind("waiting").expect("drawn")..];
    let its_line = last_draw.split('\n').next().unwrap_or_default();
    assert!(its_line.contains("\x1b[2K"), "the waiting line is left behind: {its_line:?}");
    let verdict = shown.lines().find(|line| line.contains("⇒ timed_out")).expect("a verdict");
    assert!(!verdict.contains("waiting"), "{verdict:?}");
    // Not a terminal: nothing of it.
    let piped = ns.synscope(&args);
    assert_eq!(piped.status.code(), Some(1));
    assert!(piped.stderr.is_empty(), "{}", String::from_utf8_lossy(&piped.stderr));
}

/// Sends UDP datagrams from the client namespace to a closed port of the server at `rate` per
/// second until `stop` (at most `limit`); returns how many were sent and over how long.
fn flood(
    ns: &str,
    rate: u32,
    limit: std::time::Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(u64, std::time::Duration)> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("netns file");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let socket = std::net::UdpSocket::bind("192.0.2.10:0").expect("bind");
        let payload = [0x5a_u8; 64];
        let started = std::time::Instant::now();
        let mut sent = 0_u64;
        while !stop.load(Ordering::Acquire) && started.elapsed() < limit {
            // Paced in bursts of 100: the rate is kept on average, whatever the sleep granularity.
            let due = std::time::Duration::from_secs_f64(sent as f64 / f64::from(rate));
            if started.elapsed() < due {
                std::thread::sleep(std::time::Duration::from_micros(200));
                continue;
            }
            for _ in 0..100 {
                if socket.send_to(&payload, "192.0.2.20:9").is_ok() {
                    sent += 1;
                }
            }
        }
        (sent, started.elapsed())
    })
}

/// Under load: while 50,000 unrelated datagrams a second cross the same interface (and the server
/// answers some with ICMP port unreachable, which the trace's filter lets through), a trace still
/// holds every packet of its attempt and libpcap drops nothing.
#[test]
fn test_trace_under_a_flood_misses_nothing() {
    if !lab_ready() {
        return;
    }
    let pair = VethPair::new();
    let server_path = format!("/run/netns/{}", pair.server.0);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (flag, (ready_tx, ready_rx)) = (std::sync::Arc::clone(&stop), std::sync::mpsc::channel());
    let server = std::thread::spawn(move || {
        let file = std::fs::File::open(&server_path).expect("netns file");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let listener = std::net::TcpListener::bind("192.0.2.20:8080").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        ready_tx.send(()).expect("ready");
        let mut open = Vec::new();
        while !flag.load(Ordering::Acquire) {
            match listener.accept() {
                Ok((conn, _)) => open.push(conn),
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
            }
        }
    });
    ready_rx.recv_timeout(std::time::Duration::from_secs(5)).expect("server ready");
    let flooder = flood(&pair.client.0, 50_000, std::time::Duration::from_secs(20), std::sync::Arc::clone(&stop));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let mut results = Vec::new();
    for _ in 0..5 {
        let out = pair.client.synscope(&["trace", "--format", "json", "--linger", "300ms", "192.0.2.20", "8080"]);
        results.push(out);
    }
    stop.store(true, Ordering::Release);
    let (sent, over) = flooder.join().expect("flooder");
    server.join().expect("server");
    let rate = sent as f64 / over.as_secs_f64();
    eprintln!("flood: {sent} datagrams in {over:.1?} ({rate:.0}/s)");
    assert!(rate > 20_000.0, "the flood ran at {rate:.0} datagrams/s");
    for out in results {
        let lines: Vec<Value> =
            String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let (attempt, summary) = (&lines[0], &lines[1]);
        assert_eq!(attempt["outcome"], "established");
        for what in ["syn", "syn_ack", "ack"] {
            assert_eq!(events_of(attempt, what).len(), 1, "one {what} under load: {attempt}");
        }
        assert_eq!(summary["dropped"], 0, "libpcap dropped packets under load: {summary}");
    }
}

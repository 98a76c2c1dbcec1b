//! Live traces: merges the traced attempt's system calls into its timeline and decides its verdict
//! from the errno the kernel returned, checked against what the packets alone imply.

use std::collections::HashMap;

use crate::event::{Call, KernelObservation, Span, SyscallEvent, SyscallPhase, Timestamp};
use crate::flow::{Dir, FlowKey};
use crate::linux::{Errno, SynTiming};
use crate::timeline::{Attempt, Entry, ErrnoSource, Outcome, What};

/// What the live capture saw, when one ran alongside the syscalls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureSeen {
    /// Packets captured.
    pub packets: u64,
    /// Packets dropped by the kernel or the interface.
    pub dropped: u64,
}

/// What the system calls say about the attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallVerdict {
    /// `connect()` returned 0, or `SO_ERROR` read 0 after the socket became writable.
    Established,
    /// `connect()` or `SO_ERROR` gave this errno.
    Failed(Errno),
    /// A wait timed out (the user's `--timeout`) before the kernel decided.
    Aborted,
    /// Nothing decided yet (`connect()` still pending when the evidence ends).
    Pending,
}

/// The verdict the syscalls give, by the last deciding call, and when it came.
pub fn syscall_verdict(calls: &[(Timestamp, SyscallEvent)]) -> (SyscallVerdict, Option<Timestamp>) {
    let mut verdict = (SyscallVerdict::Pending, None);
    for (ts, call) in calls {
        let SyscallPhase::Return { ret, errno, so_error, .. } = &call.phase else { continue };
        let decided = match call.call {
            Call::Connect => match errno {
                None if *ret == 0 => Some(SyscallVerdict::Established),
                None => None,
                Some(n) if Errno::from_number(*n) == Errno::Einprogress => None,
                Some(n) => Some(SyscallVerdict::Failed(Errno::from_number(*n))),
            },
            // A wait that returns 0 ready descriptors timed out: the application gives up here.
            c if c.is_wait() && *ret == 0 && errno.is_none() => Some(SyscallVerdict::Aborted),
            Call::GetsockoptSoError => match so_error {
                Some(0) => Some(SyscallVerdict::Established),
                Some(n) if Errno::from_number(*n) == Errno::Einprogress => None,
                Some(n) => Some(SyscallVerdict::Failed(Errno::from_number(*n))),
                None => None,
            },
            _ => None,
        };
        if let Some(decided) = decided {
            verdict = (decided, Some(*ts));
        }
    }
    verdict
}

/// Adds each traced flow's system calls and kernel observations to its attempt (creating one when no packet of it was seen)
/// and re-decides that attempt from the syscalls.
pub(super) fn attach_live_evidence(
    attempts: &mut Vec<Attempt>,
    syscalls: &[(Timestamp, SyscallEvent)],
    kernel: &[(Timestamp, FlowKey, KernelObservation)],
    capture: Option<CaptureSeen>,
    timing: &SynTiming,
) {
    let mut by_flow: HashMap<FlowKey, Vec<(Timestamp, SyscallEvent)>> = HashMap::new();
    for (ts, call) in syscalls {
        by_flow.entry(call.flow).or_default().push((*ts, call.clone()));
    }
    for (flow, mut calls) in by_flow {
        calls.sort_by_key(|(ts, _)| *ts);
        let connect_at = calls.first().map_or(Timestamp::default(), |(ts, _)| *ts);
        // The traced attempt is the last one on this 4-tuple that started around the connect() call
        // (its SYN follows the call; an ARP-failure attempt's first evidence may too).
        let index = attempts.iter().rposition(|a| {
            a.client == flow.client && a.server == flow.server && a.start.0 + 1_000_000_000 >= connect_at.0
        });
        let index = match index {
            Some(i) => i,
            None => {
                attempts.push(empty_attempt(flow, connect_at));
                attempts.len() - 1
            }
        };
        let observations: Vec<(Timestamp, KernelObservation)> =
            kernel.iter().filter(|(_, f, _)| *f == flow).map(|(ts, _, o)| (*ts, o.clone())).collect();
        merge(&mut attempts[index], &calls, &observations, capture, timing);
    }
}

fn empty_attempt(flow: FlowKey, start: Timestamp) -> Attempt {
    Attempt {
        kind: "attempt",
        client: flow.client,
        server: flow.server,
        family: flow.family(),
        outcome: Outcome::TimedOut,
        errno: None,
        errno_source: ErrnoSource::Syscall,
        syn_count: 0,
        start,
        rtt_ms: None,
        decided_after: None,
        isn: 0,
        cause: String::new(),
        findings: Vec::new(),
        path: None,
        events: Vec::new(),
    }
}

fn describe(call: &SyscallEvent) -> (String, Option<String>) {
    let name = call.call.name();
    match &call.phase {
        SyscallPhase::Enter { args } => (format!("{name}({args}) ..."), None),
        SyscallPhase::Return { ret, errno, detail, .. } => {
            let result = match errno {
                Some(n) => {
                    let e = Errno::from_number(*n);
                    format!("{name}() = {ret} {} ({})", e.name(), e.strerror())
                }
                None => format!("{name}() = {ret}"),
            };
            let note = (!detail.is_empty()).then(|| detail.clone());
            (result, note)
        }
    }
}

/// The kernel's observation in words.
fn describe_kernel(observation: &KernelObservation) -> String {
    match observation {
        KernelObservation::TcpInfo { state, retransmits, backoff, rto_us, total_retrans } => format!(
            "TCP_INFO: {}, retransmits {retransmits}, backoff {backoff}, rto {} ms, total retransmits {total_retrans}",
            KernelObservation::state_name(*state),
            rto_us / 1000
        ),
        KernelObservation::ErrorQueue { origin, errno, icmp_type, code, info, offender } => {
            let from = offender.map_or(String::new(), |o| format!(" from {o}"));
            let e = Errno::from_number(*errno);
            match origin {
                2 => format!("error queue: ICMP type {icmp_type} code {code}{from} → {}", e.name()),
                3 => format!("error queue: ICMPv6 type {icmp_type} code {code}{from} → {}", e.name()),
                _ => format!("error queue: local error {} (info {info})", e.name()),
            }
        }
        KernelObservation::CounterDeltas(deltas) => {
            let moved: Vec<String> = deltas.iter().map(|(n, d)| format!("{n} {d:+}")).collect();
            format!(
                "counters (namespace-wide): {}",
                if moved.is_empty() { "none moved".to_string() } else { moved.join(", ") }
            )
        }
    }
}

fn merge(
    attempt: &mut Attempt,
    calls: &[(Timestamp, SyscallEvent)],
    kernel: &[(Timestamp, KernelObservation)],
    capture: Option<CaptureSeen>,
    timing: &SynTiming,
) {
    let packets_seen = !attempt.events.is_empty();
    let inferred = packets_seen.then_some((attempt.outcome, attempt.errno));
    let packet_cause = std::mem::take(&mut attempt.cause);
    // At equal times a call is entered before the packets it causes and returns after those it waited for.
    let mut ranked: Vec<(Timestamp, u8, Entry)> =
        std::mem::take(&mut attempt.events).into_iter().map(|e| (e.ts, 1, e)).collect();
    for (ts, call) in calls {
        let (summary, note) = describe(call);
        let rank = if matches!(call.phase, SyscallPhase::Enter { .. }) { 0 } else { 2 };
        let entry = Entry {
            t: 0.0,
            dir: Dir::Local,
            what: What::Syscall,
            summary,
            note: note.map(Into::into),
            ignored: false,
            frame: None,
            ts: *ts,
        };
        ranked.push((*ts, rank, entry));
    }
    for (ts, observation) in kernel {
        let entry = Entry {
            t: 0.0,
            dir: Dir::Local,
            what: What::Kernel,
            summary: describe_kernel(observation),
            note: None,
            ignored: false,
            frame: None,
            ts: *ts,
        };
        ranked.push((*ts, 3, entry));
    }
    ranked.sort_by_key(|(ts, rank, _)| (*ts, *rank));
    attempt.events = ranked.into_iter().map(|(_, _, e)| e).collect();
    let start = attempt.events.first().map_or(attempt.start, |e| e.ts);
    attempt.start = start;
    for e in &mut attempt.events {
        e.t = super::verdict::seconds_since(e.ts, start);
    }
    let (verdict, decided_at) = syscall_verdict(calls);
    attempt.errno_source = match verdict {
        SyscallVerdict::Pending => ErrnoSource::Inferred,
        _ => ErrnoSource::Syscall,
    };
    attempt.decided_after = decided_at.map(|ts| super::verdict::seconds_since(ts, start));
    let decided_after = decided_at.map(|t| t.since(start));
    let (outcome, errno, mut cause) = match capture {
        Some(_) => decide(verdict, inferred, &packet_cause, attempt, timing, decided_after),
        None => decide_without_packets(verdict, timing, decided_after),
    };
    match capture {
        None => cause.push_str(" Packets were not captured (--no-capture), so this rests on the syscalls alone: which packet decided it is not known."),
        Some(c) if c.dropped > 0 => cause.push_str(&format!(" Beware: the capture dropped {} packet(s), so the timeline may miss some.", c.dropped)),
        Some(_) => {}
    }
    attempt.outcome = outcome;
    attempt.errno = errno;
    attempt.cause = cause;
    if capture.is_some() {
        live_findings(attempt, verdict, kernel, calls);
    }
}

/// Findings that need the syscalls or the kernel's own view besides the packets.
fn live_findings(
    attempt: &mut Attempt,
    verdict: SyscallVerdict,
    kernel: &[(Timestamp, KernelObservation)],
    calls: &[(Timestamp, SyscallEvent)],
) {
    let counter = |name: &str| kernel.iter().map(|(_, o)| o.delta(name)).sum::<i64>();
    let last_tcp_info = kernel.iter().rev().find_map(|(_, o)| match o {
        KernelObservation::TcpInfo { state, total_retrans, .. } => Some((*state, *total_retrans)),
        _ => None,
    });
    let asked_neighbours = attempt.events.iter().any(|e| matches!(e.what, What::ArpRequest | What::Ns));
    let failed = matches!(verdict, SyscallVerdict::Failed(_));
    // The kernel sent SYNs — it retransmitted, or the attempt timed out — yet none reached the capture.
    let retransmitted = counter("TcpExt:TCPSynRetrans").max(i64::from(last_tcp_info.map_or(0, |(_, r)| r)));
    if attempt.syn_count == 0
        && !asked_neighbours
        && failed
        && (retransmitted > 0 || attempt.errno == Some(Errno::Etimedout))
    {
        attempt.add_finding(
            "syn_never_on_wire",
            format!(
                "The kernel sent the SYN and retransmitted it {retransmitted} time(s) (TCP_INFO, TCPSynRetrans), yet none reached the capture: a local firewall dropped them on output (an OUTPUT rule), or the interface did not transmit."
            ),
        );
    }
    if attempt.errno == Some(Errno::Etimedout) && attempt.events.iter().any(|e| e.what == What::SynAck && !e.ignored) {
        let synacks = attempt.events.iter().filter(|e| e.what == What::SynAck).count();
        attempt.add_finding(
            "synack_seen_but_timed_out",
            format!("{synacks} SYN-ACK(s) acknowledging our SYN are on the wire, but connect() timed out: they were dropped on input before TCP saw them (an INPUT firewall rule, reverse-path filtering)."),
        );
    }
    let lock_dropped = counter("TcpExt:LockDroppedIcmps");
    if lock_dropped > 0 {
        let mut summary = format!(
            "LockDroppedIcmps grew by {lock_dropped} (namespace-wide): an ICMP error arrived while the socket was owned by the user, so Linux only remembered it (sk_err_soft) instead of failing the connect at once."
        );
        let by_so_error = calls
            .iter()
            .rev()
            .find(|(_, c)| matches!(c.phase, SyscallPhase::Return { .. }))
            .is_some_and(|(_, c)| c.call == Call::GetsockoptSoError);
        if failed && by_so_error && last_tcp_info.is_some_and(|(state, _)| state == crate::event::TCP_SYN_SENT) {
            summary.push_str(" The application then read that remembered error with getsockopt(SO_ERROR) while the socket was still in SYN_SENT: the kernel itself had not given up and would have retransmitted the SYN.");
        }
        if let Some(existing) = attempt.findings.iter_mut().find(|f| f.code == "icmp_deferred_by_socket_lock") {
            existing.summary.push(' ');
            existing.summary.push_str(&summary);
        } else {
            attempt.add_finding("icmp_deferred_by_socket_lock", summary);
        }
    }
}

/// The verdict from the syscalls alone, when no capture ran.
fn decide_without_packets(
    verdict: SyscallVerdict,
    timing: &SynTiming,
    decided_after: Option<Span>,
) -> (Outcome, Option<Errno>, String) {
    let after = decided_after.map_or(String::new(), |d| format!(" after {d}"));
    match verdict {
        SyscallVerdict::Established => (Outcome::Established, None, format!("connect() succeeded{after}.")),
        SyscallVerdict::Failed(errno) => (
            outcome_of(errno),
            Some(errno),
            format!("connect() failed{after} with {} ({}).", errno.name(), errno.strerror()),
        ),
        SyscallVerdict::Aborted => (
            Outcome::Aborted,
            None,
            format!(
                "The application stopped waiting{after} (--timeout) before the kernel decided; with tcp_syn_retries={} Linux would have kept trying until {} after the first SYN.",
                timing.syn_retries,
                timing.schedule().deadline
            ),
        ),
        SyscallVerdict::Pending => (
            Outcome::Aborted,
            None,
            "connect() had not returned when the trace was stopped: the kernel had not decided yet.".to_string(),
        ),
    }
}

/// The outcome an errno stands for when the packets do not say more.
fn outcome_of(errno: Errno) -> Outcome {
    match errno {
        Errno::Econnrefused => Outcome::Refused,
        Errno::Etimedout => Outcome::TimedOut,
        _ => Outcome::Unreachable,
    }
}

/// Why `connect()` failed at once with nothing on the wire, by errno (`ip_route_connect` and the
/// route types of `fib_props`: `unreachable`, `prohibit`, `blackhole`).
fn local_failure(errno: Errno, server: std::net::IpAddr) -> String {
    match errno {
        Errno::Enetunreach => format!("connect() failed at once with ENETUNREACH and no packet on the wire: this host has no route to {server} (ip_route_connect found none)."),
        Errno::Ehostunreach => format!("connect() failed at once with EHOSTUNREACH and no packet on the wire: the route to {server} is of type `unreachable`, or a local firewall rejected the SYN with an ICMP error."),
        Errno::Eacces => format!("connect() failed at once with EACCES and no packet on the wire: the route to {server} is of type `prohibit`, or a local firewall forbids it."),
        Errno::Einval => format!("connect() failed at once with EINVAL and no packet on the wire: the route to {server} is a `blackhole` route."),
        Errno::Eperm => "connect() failed with EPERM and no SYN on the wire: a local firewall rule (OUTPUT chain) dropped it.".to_string(),
        Errno::Eaddrnotavail => "connect() failed with EADDRNOTAVAIL: the source address is not on this host, or no ephemeral port is free.".to_string(),
        other => format!("connect() failed at once with {} ({}) and no packet on the wire.", other.name(), other.strerror()),
    }
}

fn decide(
    verdict: SyscallVerdict,
    inferred: Option<(Outcome, Option<Errno>)>,
    packet_cause: &str,
    attempt: &Attempt,
    timing: &SynTiming,
    decided_after: Option<Span>,
) -> (Outcome, Option<Errno>, String) {
    match verdict {
        SyscallVerdict::Established => match inferred {
            Some((Outcome::Established, _)) | None => {
                let cause = if packet_cause.is_empty() {
                    "connect() returned 0; no packet of this attempt was captured.".to_string()
                } else {
                    packet_cause.to_string()
                };
                (Outcome::Established, None, cause)
            }
            Some((outcome, _)) => (
                Outcome::Established,
                None,
                format!(
                    "connect() returned 0, although the capture alone suggests {}: the SYN-ACK was not captured (a capture filter, drops, or another interface). {packet_cause}",
                    outcome.name()
                ),
            ),
        },
        SyscallVerdict::Failed(errno) => match inferred {
            // No packet of the attempt, after a while: the kernel was sending, but nothing reached the capture.
            None if decided_after.is_some_and(|d| d >= Span::from_millis(100)) => (
                outcome_of(errno),
                Some(errno),
                format!(
                    "connect() returned {} ({}) after {}, yet no packet of this attempt reached the capture: its SYNs were dropped before the wire.",
                    errno.name(),
                    errno.strerror(),
                    decided_after.unwrap_or_default()
                ),
            ),
            // No packet at all and an immediate failure: the kernel refused before anything was sent.
            None => (Outcome::LocalError, Some(errno), local_failure(errno, attempt.server.ip())),
            Some((outcome, Some(packet_errno))) if packet_errno == errno => (outcome, Some(errno), packet_cause.to_string()),
            // The SYN timer and the other error raced, and the timer won: the kernel gives up at its
            // deadline with ETIMEDOUT even if, say, neighbour resolution fails in the same instant.
            Some((_, Some(packet_errno)))
                if errno == Errno::Etimedout
                    && decided_after.is_some_and(|d| d.0 + 200_000_000 >= timing.schedule().deadline.0) =>
            {
                (
                    Outcome::TimedOut,
                    Some(errno),
                    format!(
                        "connect() returned ETIMEDOUT: the SYN deadline ({}, tcp_syn_retries={}) ran out before {} could reach the socket, so the retransmission timer decided. {packet_cause}",
                        timing.schedule().deadline,
                        timing.syn_retries,
                        packet_errno.name()
                    ),
                )
            }
            Some((Outcome::Established, _)) if errno == Errno::Etimedout => (
                Outcome::TimedOut,
                Some(errno),
                format!("connect() returned ETIMEDOUT although SYN-ACKs acknowledging our SYN are on the wire: they never reached the socket, so something on this host dropped them on input (an INPUT firewall rule, reverse-path filtering). {packet_cause}"),
            ),
            Some((_, packet_errno)) => {
                let packets = packet_errno.map_or("success".to_string(), |e| e.name().to_string());
                (
                    outcome_of(errno),
                    Some(errno),
                    format!(
                        "connect() returned {} ({}), while the packets alone point to {packets}: the errno comes from this host's own stack (a local firewall rule or route, or an ICMP error the capture did not see). {packet_cause}",
                        errno.name(),
                        errno.strerror()
                    ),
                )
            }
        },
        SyscallVerdict::Aborted => {
            let after = decided_after.map_or(String::new(), |d| format!(" after {d}"));
            let schedule = timing.schedule();
            // What was on the wire when the application stopped waiting, not what came after (the
            // socket stays open, so the kernel goes on: a SYN that waited for its next hop leaves later).
            let stopped = decided_after.map(|d| attempt.start.plus(d));
            let by_then = |what: &[What]| {
                attempt.events.iter().filter(|e| what.contains(&e.what) && stopped.is_none_or(|t| e.ts <= t)).count()
            };
            let on_wire = match (by_then(&[What::Syn]), by_then(&[What::ArpRequest, What::Ns])) {
                (0, asked) if asked > 0 => {
                    "no SYN had left yet (it waited for the next hop's ARP or ND answer)".to_string()
                }
                (syns, _) => format!("{syns} SYN(s) were on the wire"),
            };
            (
                Outcome::Aborted,
                None,
                format!(
                    "The application stopped waiting{after} (--timeout) before the kernel decided: {on_wire}, and with tcp_syn_retries={} Linux would have kept retransmitting until {} after the first. {packet_cause}",
                    timing.syn_retries, schedule.deadline
                ),
            )
        }
        SyscallVerdict::Pending => (
            Outcome::Aborted,
            None,
            format!("connect() had not returned when the trace was stopped: the kernel had not decided yet. So far: {packet_cause}"),
        ),
    }
}

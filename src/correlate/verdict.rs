//! Verdicts: turns a finished attempt into its outcome, errno and the cause in plain words.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::{describe, AttemptState, Decision, SoftError};
use crate::decode::{IcmpError, IcmpErrorKind};
use crate::event::{Span, Timestamp};
use crate::flow::{AddrText, Family};
use crate::linux::{Errno, SynTiming};
use crate::timeline::{Attempt, Entry, ErrnoSource, Finding, Outcome, What};

/// How far the evidence reaches when an attempt is finished.
#[derive(Clone, Copy, Debug)]
pub(super) struct Horizon {
    /// The capture's end, or the time an attempt was finished while the capture went on.
    pub(super) at: Timestamp,
    /// Why the evidence stops there.
    pub(super) cut: Cut,
}

/// Why an attempt's evidence stops at its [`Horizon`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cut {
    /// The capture goes on, but nothing after the horizon could change the attempt.
    CaptureGoesOn,
    /// The capture ends there.
    CaptureEnded,
    /// The capture goes on, but more attempts were open at once than the correlator keeps
    /// (`Correlator::with_max_open`): it was finished early, and later evidence is not seen.
    Crowded,
}

/// Builds the reported attempt from the evidence up to `horizon`. The timeline's entries are moved
/// out of `a`; what is left keeps its buffers for the next attempt (see `Correlator::take_spares`).
/// The cause and timeline are written in the memory of `previous`, an attempt reported before, if
/// given: a replay words millions of attempts, and its strings keep their buffers.
pub(super) fn finish(a: &mut AttemptState, timing: &SynTiming, horizon: Horizon, previous: Option<Attempt>) -> Attempt {
    let capture_end = horizon.at;
    a.entries.sort_by_key(|e| (e.ts, e.frame));
    let fitted = annotate_retransmits(a, timing);
    let start = a.entries.first().map_or(capture_end, |e| e.ts);
    let first_syn = a.syn_times.first().copied();
    let syn_count = u32::try_from(a.syn_count()).unwrap_or(u32::MAX);

    let (mut cause, mut entries) = previous.map_or_else(Default::default, |p| (p.cause, p.events));
    cause.clear();
    let (outcome, errno, decided_at, rtt) = match a.verdict.as_ref().map(|v| (v.ts, &v.decision)) {
        Some((ts, Decision::Established { via_ack })) => {
            let rtt = answer_rtt(a, ts);
            established_cause(a, *via_ack, rtt, &mut cause);
            (Outcome::Established, None, Some(ts), rtt)
        }
        Some((ts, Decision::Refused { loopback })) => {
            let rtt = answer_rtt(a, ts);
            refused_cause(a, rtt, *loopback, &mut cause);
            (Outcome::Refused, Some(Errno::Econnrefused), Some(ts), rtt)
        }
        Some((ts, Decision::Icmp { errno, error })) => {
            icmp_cause(a, error, *errno, ts, &mut cause);
            (Outcome::Unreachable, Some(*errno), Some(ts), None)
        }
        None => match &a.soft_error {
            Some(soft) => {
                cause.push_str(&soft_error_cause(a, soft, &fitted, horizon));
                (Outcome::Unreachable, Some(soft.errno), None, None)
            }
            None => {
                cause.push_str(&timed_out_cause(a, &fitted, horizon));
                (Outcome::TimedOut, Some(Errno::Etimedout), None, None)
            }
        },
    };
    cause_tail(a, &mut cause);

    let mut findings = findings(a);
    if horizon.cut == Cut::Crowded {
        findings.push(Finding {
            code: "decided_early",
            summary: format!(
                "More attempts were open at once than synscope keeps (replay --max-open), so it finished this one {} after it opened, on the evidence up to then: a later answer on its 4-tuple is not part of it.",
                horizon.at.since(start)
            ),
        });
    }
    // The previous attempt's entries keep their buffers (`Step::into_entry`).
    entries.truncate(a.entries.len());
    for (i, step) in a.entries.drain(..).enumerate() {
        match entries.get_mut(i) {
            Some(entry) => step.into_entry(start, entry),
            None => {
                let mut entry = blank_entry();
                step.into_entry(start, &mut entry);
                entries.push(entry);
            }
        }
    }
    Attempt {
        kind: "attempt",
        client: a.key.client,
        server: a.key.server,
        family: a.key.family(),
        outcome,
        errno,
        errno_source: ErrnoSource::Inferred,
        syn_count,
        start: first_syn.unwrap_or(start).min(start),
        rtt_ms: rtt.map(rtt_ms),
        decided_after: decided_at.map(|ts| seconds_since(ts, start)),
        isn: a.isn,
        cause,
        findings,
        path: None,
        events: entries,
    }
}

/// Appends what every cause ends with: where the capture was taken, and how many packets the
/// timeline leaves out (past its bound, or late).
pub(super) fn cause_tail(a: &AttemptState, cause: &mut String) {
    if let Some(side) = a.capture_side {
        cause.push(' ');
        cause.push_str(side);
    }
    if a.entries_not_kept > 0 {
        push_count(cause, a.entries_not_kept, " more packet is not shown", " more packets are not shown");
        if a.syns_not_kept > 0 {
            cause.push_str(" (");
            cause.push_str(itoa::Buffer::new().format(a.syns_not_kept));
            cause.push_str(" SYNs past the 128 that no stack's schedule exceeds: a flood on this 4-tuple, or a capture looping over the same packets)");
        }
        cause.push('.');
    }
    if a.late_not_shown > 0 {
        let (one, many) =
            (" more packet after the verdict is not shown.", " more packets after the verdict are not shown.");
        push_count(cause, a.late_not_shown, one, many);
    }
}

/// Appends a space, `n`, and `one` or `many` after it.
fn push_count(cause: &mut String, n: u32, one: &str, many: &str) {
    cause.push(' ');
    cause.push_str(itoa::Buffer::new().format(n));
    cause.push_str(if n == 1 { one } else { many });
}

/// A round-trip time as reported: milliseconds, to the microsecond.
pub(super) fn rtt_ms(rtt: Span) -> f64 {
    (rtt.as_millis_f64() * 1000.0).round() / 1000.0
}

/// An entry to word a step into.
fn blank_entry() -> Entry {
    Entry {
        t: 0.0,
        dir: crate::flow::Dir::Out,
        what: What::Syn,
        summary: String::new(),
        note: None,
        ignored: false,
        frame: None,
        ts: Timestamp::default(),
    }
}

/// The findings the packets alone support.
pub(super) fn findings(a: &AttemptState) -> Vec<Finding> {
    let mut found = Vec::new();
    let requests = a.entries.iter().filter(|e| matches!(e.what, What::ArpRequest | What::Ns)).count();
    let replies = a.entries.iter().filter(|e| matches!(e.what, What::ArpReply | What::Na)).count();
    if a.syn_times.is_empty() && requests > 0 && replies == 0 {
        let target = match a.resolving.as_slice() {
            [one] => one.to_string(),
            _ => "the next hop".to_string(),
        };
        found.push(Finding {
            code: "neighbour_unresolved",
            summary: format!(
                "{requests} ARP/ND request(s) for {target} got no answer, so the SYN never left this host."
            ),
        });
    }
    if let Some(soft) = &a.soft_error {
        found.push(Finding {
            code: "icmp_deferred_by_socket_lock",
            summary: format!(
                "ICMP {} arrived while connect() still held the socket, so Linux only remembered {} (sk_err_soft) and retransmitted the SYN (this happens when the answer comes back within microseconds of the SYN).",
                describe::icmp_name(&soft.error),
                soft.errno
            ),
        });
    }
    // Group the ignored answers by reason: a flood of identical ones reads better counted.
    let mut ignored: Vec<(String, usize)> = Vec::new();
    for e in a.entries.iter().filter(|e| e.ignored) {
        let reason = format!(
            "{} ({})",
            e.what.label(),
            e.note.as_ref().map_or("ignored".into(), |n| n.text()).trim_start_matches("ignored: ")
        );
        match ignored.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => ignored.push((reason, 1)),
        }
    }
    if !ignored.is_empty() {
        let mut listed: Vec<String> =
            ignored.iter().map(|(r, n)| if *n == 1 { r.clone() } else { format!("{n} × {r}") }).collect();
        if a.ignored_not_kept > 0 {
            listed.push(format!("{} more past the timeline's bound", a.ignored_not_kept));
        }
        found.push(Finding { code: "answer_ignored", summary: format!("Linux ignored: {}.", listed.join("; ")) });
    }
    if let Some(verdict) = a.verdict.as_ref().filter(|v| matches!(v.decision, Decision::Established { via_ack: false }))
    {
        let again = a.entries.iter().filter(|e| e.what == What::SynAck && e.ts > verdict.ts).count();
        if again > 0 && a.handshake_acked {
            found.push(Finding {
                code: "listen_queue_overflow",
                summary: format!(
                    "The server retransmitted its SYN-ACK {again} time(s) after our ACK completed the handshake: it never took that ACK. Most often its accept queue is full (the application does not accept() fast enough), so it drops the ACK (tcp_v4_syn_recv_sock, ListenOverflows on the server); connect() succeeded, but the server has not accepted the connection and data we send waits. (Less often, the ACK was lost on the way.)"
                ),
            });
        }
    }
    if a.synack_unseen_by_client && a.verdict.is_none() {
        found.push(Finding {
            code: "synack_seen_but_timed_out",
            summary: "SYN-ACKs acknowledging our SYN reached the wire, but the client kept retransmitting its SYN: they were dropped on input before TCP saw them (an INPUT firewall rule, reverse-path filtering).".to_string(),
        });
    }
    if a.copies > 0 {
        found.push(Finding {
            code: "packets_captured_twice",
            summary: format!(
                "The capture holds {} copy(ies) of this attempt's SYNs or of the answer that decided it: the same packet less than a millisecond apart (a SYN with the same IP identification or flow label, which Linux changes at each retransmit). It saw them more than once (tcpdump -i any on a host with a bridge, bond or VLAN, merged interfaces, a mirror port); the copies are left out of the timeline and the SYN count.",
                a.copies
            ),
        });
    }
    // If the capture cut the quote of the ICMP error that decided it: whether before the ports.
    let cut_before_ports = match a.verdict.as_ref().map(|v| &v.decision) {
        Some(Decision::Icmp { error, .. }) if error.quote_cut() => Some(error.cut_quote.is_some()),
        _ => None,
    };
    match cut_before_ports {
        Some(false) => found.push(Finding {
            code: "icmp_quote_cut",
            summary: format!(
                "The capture cut the ICMP error that decided this attempt after the quoted ports (its snap length is short): it names this 4-tuple, but the check {} makes of the quoted sequence number (between snd_una and snd_nxt) could not be made. Capture with tcpdump -s 0 to be sure.",
                err_function(a.key.family())
            ),
        }),
        Some(true) => found.push(Finding {
            code: "icmp_quote_cut",
            summary: format!(
                "The capture cut the ICMP error that decided this attempt before the quoted ports (its snap length is short). Linux matched it to the socket by the quoted 4-tuple ({}); synscope matched it by what the capture kept: the addresses, the quoted IP identification or flow label when it was there, and the time (it came to this client after the last SYN, and nothing else answered). Capture with tcpdump -s 0 to be sure.",
                err_function(a.key.family())
            ),
        }),
        None => {}
    }
    if let Some((ttl, name)) = looped(a) {
        found.push(Finding {
            code: "routing_loop",
            summary: format!(
                "The SYN had a {name} of {ttl} where the capture saw it, and an ICMP time exceeded still came back: it went round a routing loop, each router handing it to the next until the {name} ran out. `synscope trace --path` names the routers in the loop."
            ),
        });
    }
    match a.verdict.as_ref().map(|v| &v.decision) {
        Some(Decision::Refused { loopback: true }) => found.push(Finding {
            code: "local_reject",
            summary: format!("The RST in the name of {} came over the loopback device: this host's own firewall rejected the SYN with a TCP reset.", a.key.server.ip()),
        }),
        Some(Decision::Icmp { error, .. }) if error.src == a.key.client.ip() && requests == 0 => found.push(Finding {
            code: "local_reject",
            summary: format!("This host itself answered the SYN with ICMP {}: a local firewall rule (REJECT) or route refused it before it reached the wire.", describe::icmp_name(error)),
        }),
        _ => {}
    }
    found
}

/// Picks the Linux retransmission schedule that fits the observed SYN gaps best — the given one
/// (by default Linux 6.5+: linear, then exponential) or the classic exponential backoff of Linux
/// before 6.5 (and of most other stacks) — and notes each retransmit's expected gap.
fn annotate_retransmits(a: &mut AttemptState, timing: &SynTiming) -> FittedTiming {
    // One SYN (most attempts): nothing to fit or annotate, and no schedule worth computing.
    if a.syn_times.len() < 2 {
        return FittedTiming { timing: *timing, follows_linux: true };
    }
    let classic = SynTiming { linear_timeouts: 0, ..*timing };
    // A quick retransmit after an unacceptable ACK stands outside the schedule: fit what follows it.
    let skip = a.quick_retransmits as usize;
    let gaps: Vec<i64> = a.syn_times.windows(2).skip(skip).map(|w| w[1].since(w[0]).0).collect();
    // The quick retransmit took the place of the schedule's first one: the rest follow from there.
    let given = expected_gaps(timing, skip);
    let misfit = |expected: &[Span]| -> i64 {
        // A retransmit the schedule does not have at all is as bad a fit as can be. Saturating:
        // gaps between garbage timestamps can be centuries long.
        gaps.iter()
            .enumerate()
            .map(|(i, seen)| expected.get(i).map_or(i64::MAX / 64, |want| seen.saturating_sub(want.0).saturating_abs()))
            .fold(0_i64, i64::saturating_add)
    };
    let (fitted, label, expected) = if timing.linear_timeouts > 0 {
        let classic_gaps = expected_gaps(&classic, skip);
        if misfit(&classic_gaps) < misfit(&given) {
            (classic, "classic exponential backoff, as Linux before 6.5", classic_gaps)
        } else {
            (*timing, "Linux 6.5+ backoff", given)
        }
    } else {
        (*timing, "Linux backoff", given)
    };
    // A gap more than 30% (plus 100 ms of jitter) off the schedule is not Linux's doing.
    let follows_linux = gaps
        .iter()
        .zip(expected.iter())
        .all(|(&seen, want)| seen.saturating_sub(want.0).saturating_abs() <= want.0 * 3 / 10 + 100_000_000);
    // The n-th SYN entry after the first (and after any quick retransmit) is retransmit #n of the
    // schedule. (Its words in pieces, not format arguments: every attempt that timed out has several.)
    let mut expectation = String::new();
    for (retransmit, entry) in a.entries.iter_mut().filter(|e| e.what == What::Syn).skip(1 + skip).enumerate() {
        if let (Some(note), Some(want)) = (entry.note.as_mut(), expected.get(retransmit)) {
            expectation.clear();
            expectation.push_str(" (expected ");
            let _ = want.write_to(&mut expectation); // (writing to a String cannot fail)
            expectation.push_str(" with ");
            expectation.push_str(label);
            expectation.push(')');
            note.push_str(&expectation);
        }
    }
    FittedTiming { timing: fitted, follows_linux }
}

/// The timing chosen for an attempt by [`annotate_retransmits`].
struct FittedTiming {
    timing: SynTiming,
    /// Whether every observed gap matches the schedule.
    follows_linux: bool,
}

/// The gap before each retransmit in a schedule, from retransmit #(`skip` + 1) on.
fn expected_gaps(timing: &SynTiming, skip: usize) -> Vec<Span> {
    let schedule = timing.schedule();
    let mut previous = Span(0);
    schedule
        .retransmits
        .iter()
        .map(|&at| {
            let gap = Span(at.0 - previous.0);
            previous = at;
            gap
        })
        .skip(skip)
        .collect()
}

/// Seconds from `start` to `ts`, to the microsecond: entry offsets and `decided_after`.
pub(super) fn seconds_since(ts: Timestamp, start: Timestamp) -> f64 {
    (ts.since(start).as_secs_f64() * 1e6).round() / 1e6
}

/// Handshake RTT on the wire: from the last SYN sent before the answer to the answer.
fn answer_rtt(a: &AttemptState, answer: Timestamp) -> Option<Span> {
    a.syn_times.iter().rev().find(|&&t| t <= answer).map(|&t| answer.since(t))
}

fn lost_syns(a: &AttemptState) -> String {
    match a.syn_count() {
        0 | 1 => String::new(),
        2 => " It took 2 SYNs: the first got no answer in time.".to_string(),
        n => format!(" It took {n} SYNs: the first {} got no answer in time.", n - 1),
    }
}

/// Appends the cause of an established attempt to `s`. (Built in pieces, not with format
/// arguments: most attempts of a capture say this.)
pub(super) fn established_cause(a: &AttemptState, via_ack: bool, rtt: Option<Span>, s: &mut String) {
    if via_ack {
        s.push_str("The client acknowledged a SYN-ACK that the capture does not hold (a one-sided capture, or the SYN-ACK took another path): the handshake completed and connect() returned 0.");
    } else {
        s.push_str("The server answered our SYN with a SYN-ACK that acknowledges it");
        if let Some(rtt) = rtt {
            s.push(' ');
            let _ = rtt.write_to(s); // (writing to a String cannot fail)
            s.push_str(" later");
        }
        s.push_str(": connect() returned 0 (tcp_rcv_synsent_state_process → tcp_finish_connect).");
        if !a.handshake_acked {
            s.push_str(" The client's final ACK is not in the capture (it ends, or it holds only one direction).");
        }
    }
    s.push_str(&lost_syns(a));
    s.push_str(&ignored_answers(a));
}

/// Appends the cause of a refused attempt to `s` (in pieces, as [`established_cause`]).
fn refused_cause(a: &AttemptState, rtt: Option<Span>, loopback: bool, s: &mut String) {
    if loopback {
        // (Writing to a String cannot fail.)
        let _ = write!(
            s,
            "A RST in the name of {} arrived over the loopback device{}: this host forged it itself (a local firewall rule such as REJECT --reject-with tcp-reset), and Linux failed connect() with ECONNREFUSED (tcp_reset).",
            a.key.server.ip(),
            if a.syn_times.is_empty() { ", and no SYN ever reached the wire" } else { "" }
        );
        return;
    }
    if a.syn_times.is_empty() {
        s.push_str("No SYN of this attempt is in the capture; the RST answers it (seq 0, ack = ISN+1). ");
    }
    s.push_str(AddrText::ip(a.key.server.ip()).as_str());
    s.push_str(" answered our SYN with a RST that acknowledges it");
    if let Some(rtt) = rtt {
        s.push(' ');
        let _ = rtt.write_to(s);
        s.push_str(" later");
    }
    s.push_str(": nothing accepts connections on port ");
    s.push_str(itoa::Buffer::new().format(a.key.server.port()));
    s.push_str(" (or a firewall rejects with a TCP reset in its name). Linux fails connect() at once with ECONNREFUSED (tcp_reset).");
    s.push_str(&lost_syns(a));
    s.push_str(&ignored_answers(a));
}

/// Who sent an ICMP error, in words.
fn sender(a: &AttemptState, from: IpAddr) -> String {
    let mut s = String::new();
    sender_into(a, from, &mut s);
    s
}

/// [`sender`], appended to `s`.
fn sender_into(a: &AttemptState, from: IpAddr, s: &mut String) {
    let text = AddrText::ip(from);
    let from_text = text.as_str();
    if from == a.key.client.ip() {
        s.push_str("This host (");
        s.push_str(from_text);
        s.push_str(") itself");
    } else if from == a.key.server.ip() {
        s.push_str("The server ");
        s.push_str(from_text);
        s.push_str(" itself");
    } else {
        s.push_str("Router ");
        s.push_str(from_text);
    }
}

fn err_function(family: Family) -> &'static str {
    match family {
        Family::Ipv4 => "tcp_v4_err → icmp_err_convert",
        Family::Ipv6 => "tcp_v6_err → icmpv6_err_convert",
    }
}

/// The fewest hops left to a SYN, where the capture saw it, that show a routing loop when it still
/// runs out: paths across the Internet are rarely longer than 30 hops (traceroute stops at 30),
/// and every common stack starts its SYNs at 64, 128 or 255 (Linux: `sysctl_ip_default_ttl`, 64).
const LOOP_TTL: u8 = 40;

/// The TTL (hop limit) the SYN had where the capture saw it, and its name, when an ICMP time
/// exceeded decided the attempt and that many hops could only run out on a routing loop.
fn looped(a: &AttemptState) -> Option<(u8, &'static str)> {
    let decided_by_time_exceeded = matches!(
        a.verdict.as_ref().map(|v| &v.decision),
        Some(Decision::Icmp { error, .. }) if error.kind == IcmpErrorKind::TimeExceeded
    );
    a.syn_ttl.filter(|&ttl| decided_by_time_exceeded && ttl >= LOOP_TTL).map(|ttl| (ttl, a.key.family().ttl_name()))
}

/// Appends the cause of an attempt an ICMP error ended to `s` (the commonest in pieces, as
/// [`established_cause`]).
fn icmp_cause(a: &AttemptState, error: &IcmpError, errno: Errno, ts: Timestamp, s: &mut String) {
    if let Some(neighbors) = neighbor_failure_cause(a, error, errno) {
        s.push_str(&neighbors);
        return;
    }
    if a.syn_times.is_empty() {
        s.push_str("No SYN of this attempt is in the capture; the ICMP error quotes it. ");
    }
    sender_into(a, error.src, s);
    s.push_str(" answered our SYN with ICMP ");
    s.push_str(&describe::icmp_name(error));
    if let Some(&syn) = a.syn_times.iter().rev().find(|&&t| t <= ts) {
        s.push(' ');
        let _ = ts.since(syn).write_to(s); // (writing to a String cannot fail)
        s.push_str(" after the SYN");
    }
    s.push('.');
    let function = err_function(error.family);
    // (Writing to a String cannot fail.)
    match error.kind {
        IcmpErrorKind::TimeExceeded => {
            match looped(a) {
                Some((ttl, name)) => {
                    let _ = write!(
                        s,
                        " The SYN had a {name} of {ttl} where the capture saw it, more hops than any real path has, and still ran out: it went round a routing loop (`synscope trace --path` names the routers in it)."
                    );
                }
                None => s.push_str(
                    " The SYN's TTL ran out on the way (a routing loop, or a probe sent with a low TTL, as traceroute does).",
                ),
            }
            let _ = write!(
                s,
                " Linux treats this as a hard error in SYN-SENT ({function}), so connect() fails with {errno}."
            );
        }
        IcmpErrorKind::ParameterProblem => {
            let _ = write!(
                s,
                " A router found the SYN's IP header malformed; Linux treats this as a hard error in SYN-SENT ({function}), so connect() fails with {errno}."
            );
        }
        _ if a.soft_error.is_some() => {
            let _ = write!(
                s,
                " Linux aborts a connect in SYN-SENT at a valid ICMP error ({function}) unless the socket is busy at that instant: an earlier ICMP arrived while connect() still held the socket, so Linux only remembered it and retransmitted the SYN; this one ended the attempt with {errno}."
            );
        }
        _ => {
            s.push_str(" Linux aborts a connect in SYN-SENT at the first valid ICMP error (");
            s.push_str(function);
            s.push_str("), so connect() fails with ");
            s.push_str(errno.name());
            s.push_str(" (4.4BSD would keep retrying for 75 s).");
        }
    }
    s.push_str(&ignored_answers(a));
}

/// ARP/ND for the next hop went unanswered: the kernel drops the queued SYN and reports to itself.
fn neighbor_failure_cause(a: &AttemptState, error: &IcmpError, errno: Errno) -> Option<String> {
    if !a.syn_times.is_empty() || error.src != a.key.client.ip() || errno != Errno::Ehostunreach {
        return None;
    }
    let requests: Vec<_> = a.entries.iter().filter(|e| matches!(e.what, What::ArpRequest | What::Ns)).collect();
    let replied = a.entries.iter().any(|e| matches!(e.what, What::ArpReply | What::Na));
    if requests.is_empty() || replied {
        return None;
    }
    let (protocol, function) = match error.family {
        Family::Ipv4 => ("ARP", "icmp_send"),
        Family::Ipv6 => ("neighbour discovery", "icmp6_send"),
    };
    let target = match a.resolving.as_slice() {
        [one] => one.to_string(),
        _ => "the next hop".to_string(),
    };
    let n = requests.len();
    let span = match (requests.first(), requests.last()) {
        (Some(f), Some(l)) if n > 1 => format!(" over {}", l.ts.since(f.ts)),
        _ => String::new(),
    };
    Some(format!(
        "No {protocol} reply for {target}: the kernel sent {n} request(s){span}, got no answer, dropped the SYN it had queued (so no SYN ever reached the wire) and reported {errno} to itself with an ICMP {} (neigh_invalidate → {function}). Nobody on the link owns {target}, or it is down.",
        describe::icmp_name(error)
    ))
}

fn soft_error_cause(a: &AttemptState, soft: &SoftError, timing: &FittedTiming, horizon: Horizon) -> String {
    let mut s = format!(
        "{} answered a SYN with ICMP {} while connect() still held the socket, so Linux only remembered it (sk_err_soft) and kept retransmitting; with no other answer, connect() fails at the deadline with the remembered {} instead of ETIMEDOUT.",
        sender(a, soft.error.src),
        describe::icmp_name(&soft.error),
        soft.errno
    );
    s.push_str(&deadline_sentence(a, timing, horizon));
    s
}

fn timed_out_cause(a: &AttemptState, timing: &FittedTiming, horizon: Horizon) -> String {
    let n = a.syn_count();
    let span = match (a.syn_times.first(), a.syn_times.last()) {
        (Some(f), Some(l)) if n > 1 => format!(" over {}", l.since(*f)),
        _ => String::new(),
    };
    let mut s = if a.synack_unseen_by_client {
        let synacks = a.entries.iter().filter(|e| e.what == What::SynAck).count();
        format!(
            "{synacks} SYN-ACK(s) acknowledging our SYN are on the wire, but the client never acknowledged one and kept retransmitting its SYN ({n} in all{span}): they were dropped on this host before its TCP saw them (an INPUT firewall rule, reverse-path filtering)."
        )
    } else {
        format!("No answer to {n} SYN(s){span}: nothing came back, neither SYN-ACK, RST nor ICMP error.")
    };
    s.push_str(&ignored_answers(a));
    s.push_str(&deadline_sentence(a, timing, horizon));
    s
}

/// Relates the capture's end (or the next attempt, or the client's silence) to the kernel's deadline.
fn deadline_sentence(a: &AttemptState, fitted: &FittedTiming, horizon: Horizon) -> String {
    let Some(&first) = a.syn_times.first() else { return String::new() };
    let timing = &fitted.timing;
    let schedule = timing.schedule();
    let sysctls = format!("tcp_syn_retries={}, tcp_syn_linear_timeouts={}", timing.syn_retries, timing.linear_timeouts);
    if let Some(next) = a.superseded_at {
        return format!(
            " A new SYN with another ISN on the same 4-tuple {} after the first shows the client gave up on this attempt first; Linux alone would have waited {} ({sysctls}).",
            next.since(first),
            schedule.deadline
        );
    }
    let seen = horizon.at.since(first);
    if seen >= schedule.deadline {
        let mut s = format!(
            " Linux gives up {} after the first SYN ({sysctls}) and connect() fails with ETIMEDOUT.",
            schedule.deadline
        );
        // Every retransmit the schedule sends before the deadline should be on the wire by now.
        let (expected, sent) =
            (schedule.retransmits.len(), a.syn_count().saturating_sub(1 + a.quick_retransmits as usize));
        if sent < expected {
            s.push_str(&format!(
                " Only {sent} of the {expected} retransmits Linux schedules are in the capture: {} missing (lost before the capture point, or the capture dropped them).",
                expected - sent
            ));
        } else if sent > expected {
            s.push_str(&format!(" {} more retransmit(s) than Linux schedules are in the capture: duplicated on the way, or another stack.", sent - expected));
        }
        return s;
    }
    let sent = a.syn_count();
    if horizon.cut == Cut::CaptureGoesOn {
        // Finished while the capture went on: the next retransmit is overdue under any backoff.
        let last = a.syn_times.last().map_or(first, |&t| t);
        return match schedule.retransmits.get(sent - 1).filter(|_| fitted.follows_linux) {
            Some(due) => format!(
                " No retransmit #{sent} follows, although Linux sends it {due} after the first SYN and the capture goes on: the client stopped early (a lowered tcp_syn_retries or TCP_SYNCNT, a connect timeout in the application, or not Linux); it then sees ETIMEDOUT (Linux's own deadline is {}, {sysctls}).",
                schedule.deadline
            ),
            None => format!(
                " The client sends nothing more for {} after its last SYN while the capture goes on: it gave up before Linux's deadline of {} ({sysctls}); a Linux client that gives up sees ETIMEDOUT.",
                horizon.at.since(last),
                schedule.deadline
            ),
        };
    }
    let mut s = format!(
        " {} {seen} after the first SYN, before Linux's deadline of {} ({sysctls}): ETIMEDOUT is what a Linux client sees if nothing arrived later.",
        match horizon.cut {
            Cut::Crowded => "synscope stopped following it",
            _ => "The capture ends",
        },
        schedule.deadline
    );
    if !fitted.follows_linux {
        s.push_str(" The gaps between the SYNs do not follow Linux's backoff (the client is not Linux, or SYNs were lost before the capture point), so that deadline is only indicative.");
        return s;
    }
    // The kernel's next retransmit was due before the evidence ends but never came: the client stopped early.
    if let Some(&due) = schedule.retransmits.get(sent - 1) {
        if due.0 + Span::from_millis(500).0 < seen.0 {
            s.push_str(&format!(
                " No retransmit #{sent} although Linux sends it {due} after the first SYN: the client stopped early (a lowered tcp_syn_retries or TCP_SYNCNT, a connect timeout in the application, or not Linux)."
            ));
        }
    }
    s
}

fn ignored_answers(a: &AttemptState) -> String {
    let shown = a.entries.iter().filter(|e| e.ignored).count();
    match (shown, a.ignored_not_kept) {
        (0, 0) => String::new(),
        (1, 0) => " One answer arrived that Linux ignores (see the timeline).".to_string(),
        (n, 0) => format!(" {n} answers arrived that Linux ignores (see the timeline)."),
        (n, more) => {
            format!(" {} answers arrived that Linux ignores (the first {n} are in the timeline).", n + more as usize)
        }
    }
}

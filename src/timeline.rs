//! The output model: attempts with their annotated timelines and verdicts, and the run's summary.
//!
//! These types serialize to the JSON Lines contract of DESIGN.md; the field names are part of it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use serde::{Serialize, Serializer};

use crate::event::Timestamp;
use crate::flow::{Dir, Family};
use crate::linux::Errno;

/// How a connection attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The handshake completed: connect() returned 0.
    Established,
    /// The server (or a firewall in its name) answered with a RST.
    Refused,
    /// An ICMP/ICMPv6 error ended the attempt.
    Unreachable,
    /// No answer before the kernel's SYN deadline.
    TimedOut,
    /// connect() failed at once, with no packet on the wire.
    LocalError,
    /// The application stopped waiting before the kernel decided.
    Aborted,
}

impl Outcome {
    /// Every outcome, in report order.
    pub const ALL: [Outcome; 6] = [
        Outcome::Established,
        Outcome::Refused,
        Outcome::Unreachable,
        Outcome::TimedOut,
        Outcome::LocalError,
        Outcome::Aborted,
    ];

    /// The name used in JSON and in the text summary.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Established => "established",
            Outcome::Refused => "refused",
            Outcome::Unreachable => "unreachable",
            Outcome::TimedOut => "timed_out",
            Outcome::LocalError => "local_error",
            Outcome::Aborted => "aborted",
        }
    }
}

// `Outcome::ALL` lists the outcomes in declaration order, so that `outcome as usize` indexes it.
const _: () = {
    let mut i = 0;
    while i < Outcome::ALL.len() {
        assert!(Outcome::ALL[i] as usize == i);
        i += 1;
    }
};

/// Serializes enums of plain names as their `name()`: one spelling for serde, the hand-written JSON
/// writer (`render::json`) and the text output.
macro_rules! serialize_by_name {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
    )*};
}

serialize_by_name!(Outcome, ErrnoSource, What);

/// Where the errno came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrnoSource {
    /// Returned by the traced syscall itself.
    Syscall,
    /// Inferred from the packets by Linux's rules.
    Inferred,
}

impl ErrnoSource {
    /// Its name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            ErrnoSource::Syscall => "syscall",
            ErrnoSource::Inferred => "inferred",
        }
    }
}

/// What a timeline entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum What {
    /// The client's SYN (first or retransmit).
    Syn,
    /// The server's SYN-ACK.
    SynAck,
    /// The client's ACK that completes the handshake.
    Ack,
    /// A reset, either way.
    Rst,
    /// A FIN, either way.
    Fin,
    /// ICMP/ICMPv6 destination unreachable.
    IcmpUnreachable,
    /// ICMP/ICMPv6 time exceeded.
    IcmpTimeExceeded,
    /// ICMP/ICMPv6 parameter problem.
    IcmpParameterProblem,
    /// ICMPv6 packet too big.
    IcmpPacketTooBig,
    /// ICMP source quench or redirect.
    IcmpOther,
    /// ARP who-has.
    ArpRequest,
    /// ARP is-at.
    ArpReply,
    /// IPv6 neighbour solicitation.
    Ns,
    /// IPv6 neighbour advertisement.
    Na,
    /// A system call of the traced attempt.
    Syscall,
    /// The kernel's view of the socket: TCP_INFO, the error queue, counters.
    Kernel,
}

impl What {
    /// Its name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            What::Syn => "syn",
            What::SynAck => "syn_ack",
            What::Ack => "ack",
            What::Rst => "rst",
            What::Fin => "fin",
            What::IcmpUnreachable => "icmp_unreachable",
            What::IcmpTimeExceeded => "icmp_time_exceeded",
            What::IcmpParameterProblem => "icmp_parameter_problem",
            What::IcmpPacketTooBig => "icmp_packet_too_big",
            What::IcmpOther => "icmp_other",
            What::ArpRequest => "arp_request",
            What::ArpReply => "arp_reply",
            What::Ns => "ns",
            What::Na => "na",
            What::Syscall => "syscall",
            What::Kernel => "kernel",
        }
    }

    /// A short upper-case label for the text timeline.
    pub fn label(self) -> &'static str {
        match self {
            What::Syn => "SYN",
            What::SynAck => "SYN-ACK",
            What::Ack => "ACK",
            What::Rst => "RST",
            What::Fin => "FIN",
            What::IcmpUnreachable => "ICMP-UNREACH",
            What::IcmpTimeExceeded => "ICMP-TIMEEXC",
            What::IcmpParameterProblem => "ICMP-PARAM",
            What::IcmpPacketTooBig => "ICMP-TOOBIG",
            What::IcmpOther => "ICMP",
            What::ArpRequest => "ARP-REQ",
            What::ArpReply => "ARP-REPLY",
            What::Ns => "ND-NS",
            What::Na => "ND-NA",
            What::Syscall => "syscall",
            What::Kernel => "kernel",
        }
    }
}

/// One line of an attempt's timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    /// Seconds since the attempt's start.
    pub t: f64,
    /// Direction relative to the client.
    pub dir: Dir,
    /// What it is.
    pub what: What,
    /// The packet in tcpdump-like words.
    pub summary: String,
    /// What it means for the attempt (`retransmit #2, ...`, `quotes our SYN`, `ignored: ...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<Cow<'static, str>>,
    /// Whether Linux would ignore this packet for the attempt.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignored: bool,
    /// The frame number in the capture (1-based).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u64>,
    /// Absolute time (kept for sorting and rendering).
    #[serde(skip)]
    pub ts: Timestamp,
}

/// A TCP connection attempt and its verdict.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attempt {
    /// Always `"attempt"`.
    pub kind: &'static str,
    /// The client's address and port.
    #[serde(serialize_with = "display")]
    pub client: SocketAddr,
    /// The server's address and port.
    #[serde(serialize_with = "display")]
    pub server: SocketAddr,
    /// Address family.
    pub family: Family,
    /// How it ended.
    pub outcome: Outcome,
    /// The errno connect() returned, or null for `established` and `aborted`.
    pub errno: Option<Errno>,
    /// Whether the errno was returned by a syscall or inferred from packets.
    pub errno_source: ErrnoSource,
    /// SYN transmissions seen on the wire (the first and its retransmits).
    pub syn_count: u32,
    /// Start of the attempt, in seconds since the epoch.
    #[serde(serialize_with = "timestamp_secs")]
    pub start: Timestamp,
    /// Handshake round-trip time on the wire (SYN to SYN-ACK or RST), in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Seconds from the start until the attempt was decided, if it was.
    pub decided_after: Option<f64>,
    /// The client's initial sequence number.
    pub isn: u32,
    /// Why, in one or two plain sentences.
    pub cause: String,
    /// What is special about this attempt, each detected from evidence.
    pub findings: Vec<Finding>,
    /// Where the SYN dies (`--path`), probed after the attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathReport>,
    /// The annotated timeline.
    pub events: Vec<Entry>,
}

/// What answered one hop of `--path`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "what")]
pub enum HopAnswer {
    /// A router at this hop said the hop count ran out (ICMP time exceeded).
    TimeExceeded {
        /// The router.
        from: IpAddr,
    },
    /// Someone answered with an ICMP destination unreachable.
    Unreachable {
        /// Who.
        from: IpAddr,
        /// ICMP type.
        icmp_type: u8,
        /// ICMP code.
        code: u8,
    },
    /// The server answered the SYN (SYN-ACK): the path reaches it.
    Server,
    /// A RST answered the SYN.
    Refused,
    /// This host refused to send it.
    LocalError {
        /// Why.
        error: String,
    },
    /// Nothing answered in time.
    NoAnswer,
}

/// One hop of `--path`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathHop {
    /// The hop count (IP TTL / IPv6 hop limit) of the probe.
    pub ttl: u8,
    /// What answered.
    pub answer: HopAnswer,
    /// Time to the answer, in milliseconds.
    pub rtt_ms: Option<f64>,
}

/// The result of `--path`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PathReport {
    /// Each probe, by hop.
    pub hops: Vec<PathHop>,
    /// The routers the SYN goes round, when the hops repeat (see [`routing_loop`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing_loop: Option<RoutingLoop>,
    /// Where the SYN is last seen, in words.
    pub verdict: String,
}

/// Routers that hand the SYN round in a circle: from `first_hop` on, each hop is answered by the
/// router that answered `routers.len()` hops before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RoutingLoop {
    /// The hop at which the circle begins.
    pub first_hop: u8,
    /// The routers of the circle, in the order the SYN meets them.
    pub routers: Vec<IpAddr>,
}

/// Finds a routing loop at the end of `hops`: the last `2 × n` hops (n ≥ 2 routers) answered time
/// exceeded from the same n routers twice in the same order. One repeat (A B A) is not enough: a
/// router may answer from one address at two hops (some answer for an MPLS tunnel's hidden hops);
/// a whole circle seen twice is what a loop does. Hops without an answer break a circle.
pub fn routing_loop(hops: &[PathHop]) -> Option<RoutingLoop> {
    let routers: Vec<Option<IpAddr>> = hops
        .iter()
        .map(|h| match h.answer {
            HopAnswer::TimeExceeded { from } => Some(from),
            _ => None,
        })
        .collect();
    let n = routers.len();
    (2..=n / 2).find_map(|period| {
        let tail = &routers[n - 2 * period..];
        let (once, again) = tail.split_at(period);
        if once != again || once.iter().any(Option::is_none) || once.iter().all(|r| *r == once[0]) {
            return None;
        }
        // Walk back while the hops keep the circle's order, to the hop where it begins.
        let mut first = n - 2 * period;
        while first > 0 && routers[first - 1].is_some() && routers[first - 1] == routers[first - 1 + period] {
            first -= 1;
        }
        let routers = routers[first..first + period].iter().flatten().copied().collect();
        Some(RoutingLoop { first_hop: hops[first].ttl, routers })
    })
}

/// Says where a path's probes stop being answered, or which routers they go round
/// (`routing_loop`, as [`routing_loop`] found it in `hops`).
pub fn path_verdict(hops: &[PathHop], routing_loop: Option<&RoutingLoop>, server: IpAddr) -> String {
    if let Some(circle) = routing_loop {
        let mut round = String::new();
        for router in circle.routers.iter().chain(&circle.routers[..1]) {
            let _ = write!(round, "{router} → "); // (writing to a String cannot fail)
        }
        let ttl = Family::of(server).ttl_name();
        return format!(
            "A routing loop: from hop {}, the SYN goes round {round}... until its {ttl} runs out. Each of these routers routes {server} to the next.",
            circle.first_hop
        );
    }
    let last_answer = hops.iter().rev().find(|h| h.answer != HopAnswer::NoAnswer);
    match (last_answer, hops.last().map(|h| &h.answer)) {
        (_, Some(HopAnswer::Server)) => format!("The SYN reaches {server} in {} hop(s).", hops.len()),
        (_, Some(HopAnswer::Refused)) => format!("The SYN reaches a host that answers RST at hop {}.", hops.len()),
        (_, Some(HopAnswer::Unreachable { from, icmp_type, code })) => {
            format!("At hop {}, {from} answers ICMP type {icmp_type} code {code}: the SYN goes no further.", hops.len())
        }
        (_, Some(HopAnswer::LocalError { error: e })) => format!("This host refuses to send the probe: {e}."),
        // Every hop probed answered: the probes stopped, not the SYN.
        (_, Some(HopAnswer::TimeExceeded { from: router })) => format!(
            "The SYN is still on its way at hop {}, where {router} answered and probing stops: the path is longer than that, and where the SYN dies lies beyond it.",
            hops.len()
        ),
        (Some(PathHop { ttl, answer: HopAnswer::TimeExceeded { from: router }, .. }), _) => format!(
            "The SYN is last seen at hop {ttl}: {router} answered there, and nothing answers beyond it. The SYN dies at {router} or just after it (a silent drop: a firewall or a blackhole route), unless the routers after it send no ICMP errors, as some do not."
        ),
        _ => "Nothing answers on the path, not even the first hop: the SYN dies at the first router, which drops it silently (a blackhole route drops before the TTL is checked), or the routers do not send ICMP.".to_string(),
    }
}

/// Something a trace found that explains an attempt beyond its errno.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A stable code: `syn_never_on_wire`, `neighbour_unresolved`, `synack_seen_but_timed_out`,
    /// `local_reject`, `icmp_deferred_by_socket_lock`, `answer_ignored`, `listen_queue_overflow`,
    /// `packets_captured_twice`, `icmp_quote_cut`, `decided_early`, `routing_loop`.
    pub code: &'static str,
    /// What it means here, in plain words.
    pub summary: String,
}

impl Attempt {
    /// Adds a finding unless one with the same code is there already.
    pub fn add_finding(&mut self, code: &'static str, summary: String) {
        if !self.findings.iter().any(|f| f.code == code) {
            self.findings.push(Finding { code, summary });
        }
    }
}

fn display<S: Serializer, T: std::fmt::Display>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn timestamp_secs<S: Serializer>(ts: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(start_secs(*ts))
}

/// An attempt's `start` in JSON: seconds since the epoch to the microsecond, as tcpdump prints
/// (a float keeps JSON consumers simple).
pub(crate) fn start_secs(ts: Timestamp) -> f64 {
    (ts.as_secs_f64() * 1e6).round() / 1e6
}

/// The closing object of a run.
#[derive(Clone, Debug, PartialEq, Default, Serialize)]
pub struct Summary {
    /// Always `"summary"`.
    pub kind: &'static str,
    /// Number of attempts reported.
    pub attempts: usize,
    /// Replay with `--server`, `--client` or `--failed`: the attempts in the capture, of which
    /// those filters chose the `attempts` reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_found: Option<u64>,
    /// Attempts per outcome.
    pub outcomes: BTreeMap<&'static str, usize>,
    /// Attempts per errno.
    pub errnos: BTreeMap<&'static str, usize>,
    /// Packets read.
    pub packets: u64,
    /// Packets that could not be decoded.
    pub undecodable: u64,
    /// Handshake RTT on the wire over the attempts that had one, in milliseconds (`--count`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<Stats>,
    /// connect() latency (to the deciding syscall) over the attempts, in milliseconds (`--count`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<Stats>,
    /// Replay: when the capture starts and ends (seconds since the epoch) and how long it spans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span: Option<CaptureSpan>,
    /// Replay: the servers with the most failed attempts (at most 10), with their errnos.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_failing_servers: Vec<ServerFailures>,
    /// Replay: failures went to so many servers that only the busiest were counted throughout; the
    /// counts of `top_failing_servers` are then lower bounds.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub top_failing_servers_approximate: bool,
    /// Packets the live capture dropped (libpcap's `ps_drop` + `ps_ifdrop`), for traces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
    /// Why the input ended early, when it did (results are then partial).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
    /// Replay: attempts finished before their time, on the evidence seen so far, because more
    /// were open at once than the replay keeps (`--max-open`); those whose outcome could still
    /// change have the finding `decided_early`.
    #[serde(skip_serializing_if = "is_zero")]
    pub finished_early: u64,
    /// Replay: ICMP errors the capture cut inside their quote of a TCP segment (a short snap
    /// length). The attempts they decided have the finding `icmp_quote_cut`; those cut before the
    /// ports of an attempt whose SYN never reached the capture name no attempt at all.
    #[serde(skip_serializing_if = "is_zero")]
    pub icmp_quotes_cut: u64,
    /// Replay of several files: each, in the order read (of their first records' times), with
    /// where its records start in the frame numbers of its capture.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileRead>,
}

/// One of the files a replay read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileRead {
    /// The file's path as given.
    pub file: String,
    /// Records read.
    pub packets: u64,
    /// The frame number of its first record: frames number on across the files in the order read
    /// (as `mergecap -a` numbers the files it joins), whether or not a file continues the capture
    /// of the one before it, so that a frame names one record of the replay.
    pub first_frame: u64,
    /// The file whose capture it continues (see `replay::continues`): attempts may start there
    /// and finish here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continues: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Summary {
    /// Counts the attempts' outcomes and errnos.
    pub fn of(attempts: &[Attempt], packets: u64, undecodable: u64, damaged: Option<String>) -> Summary {
        let mut outcomes = BTreeMap::new();
        let mut errnos = BTreeMap::new();
        for attempt in attempts {
            *outcomes.entry(attempt.outcome.name()).or_insert(0) += 1;
            if let Some(errno) = attempt.errno {
                *errnos.entry(errno.name()).or_insert(0) += 1;
            }
        }
        Summary {
            kind: "summary",
            attempts: attempts.len(),
            outcomes,
            errnos,
            packets,
            undecodable,
            rtt_ms: None,
            connect_ms: None,
            span: None,
            top_failing_servers: Vec::new(),
            top_failing_servers_approximate: false,
            dropped: None,
            damaged,
            finished_early: 0,
            attempts_found: None,
            icmp_quotes_cut: 0,
            files: Vec::new(),
        }
    }

    /// Adds RTT and connect() latency statistics, as `--count` reports them.
    pub fn with_latencies(mut self, attempts: &[Attempt]) -> Summary {
        let rtts: Vec<f64> = attempts.iter().filter_map(|a| a.rtt_ms).collect();
        let connects: Vec<f64> = attempts
            .iter()
            .filter(|a| a.errno_source == ErrnoSource::Syscall && a.outcome != Outcome::Aborted)
            .filter_map(|a| a.decided_after.map(|s| s * 1e3))
            .collect();
        self.rtt_ms = Stats::of(&rtts);
        self.connect_ms = Stats::of(&connects);
        self
    }
}

/// When a capture starts and ends.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CaptureSpan {
    /// First record, seconds since the epoch.
    pub first: f64,
    /// Last record, seconds since the epoch.
    pub last: f64,
    /// The difference, in seconds.
    pub seconds: f64,
}

/// Servers tallied at most by [`ReplaySummary`]; beyond, only the busiest half is kept.
const MAX_SERVERS: usize = 10_000;
/// Values kept exactly by [`Percentiles`] before it switches to a histogram.
const EXACT_VALUES: usize = 1 << 16;

/// Percentiles over a series of any length: exact up to [`EXACT_VALUES`] values, then from a
/// histogram precise to three significant digits (HdrHistogram), so memory stays bounded.
#[derive(Debug, Default)]
struct Percentiles {
    exact: Vec<f64>,
    /// Microseconds, once there are too many values to keep.
    histogram: Option<hdrhistogram::Histogram<u64>>,
    count: usize,
    sum: f64,
    sum_of_squares: f64,
    min: f64,
    max: f64,
}

impl Percentiles {
    fn add(&mut self, ms: f64) {
        if self.count == 0 {
            (self.min, self.max) = (ms, ms);
        }
        self.count += 1;
        self.sum += ms;
        self.sum_of_squares += ms * ms;
        self.min = self.min.min(ms);
        self.max = self.max.max(ms);
        match &mut self.histogram {
            Some(h) => Self::record(h, ms),
            None if self.exact.len() < EXACT_VALUES => self.exact.push(ms),
            None => {
                // One hour in µs is far above any handshake; three significant digits as HdrHistogram advises.
                let Ok(mut h) = hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3) else { return };
                for v in std::mem::take(&mut self.exact).into_iter().chain([ms]) {
                    Self::record(&mut h, v);
                }
                self.histogram = Some(h);
            }
        }
    }

    fn record(h: &mut hdrhistogram::Histogram<u64>, ms: f64) {
        h.saturating_record((ms * 1000.0).round().max(1.0) as u64);
    }

    fn stats(&self) -> Option<Stats> {
        let Some(h) = &self.histogram else { return Stats::of(&self.exact) };
        let n = self.count as f64;
        let avg = self.sum / n;
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        let at = |q: f64| round(h.value_at_quantile(q) as f64 / 1000.0);
        Some(Stats {
            count: self.count,
            min: round(self.min),
            avg: round(avg),
            max: round(self.max),
            stddev: round((self.sum_of_squares / n - avg * avg).max(0.0).sqrt()),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
        })
    }
}

/// A replay's summary, built one attempt at a time in memory that does not grow with the capture:
/// outcomes and errnos, the servers with the most failures, and handshake RTT percentiles.
#[derive(Debug, Default)]
pub struct ReplaySummary {
    attempts: usize,
    /// By outcome, in the order of [`Outcome::ALL`] (a replay counts millions: no map look-up each).
    outcomes: [usize; Outcome::ALL.len()],
    errnos: BTreeMap<&'static str, usize>,
    rtts: Percentiles,
    by_server: std::collections::HashMap<SocketAddr, (usize, BTreeMap<&'static str, usize>)>,
    servers_pruned: bool,
}

/// What a replay's summary counts of one attempt: taken on the thread that words the attempt, and
/// counted, in the order the attempts are shown, on the one that writes them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SummaryEntry {
    outcome: Outcome,
    errno: Option<Errno>,
    rtt_ms: Option<f64>,
    server: SocketAddr,
}

impl SummaryEntry {
    /// What the summary counts of `a`.
    pub fn of(a: &Attempt) -> SummaryEntry {
        SummaryEntry { outcome: a.outcome, errno: a.errno, rtt_ms: a.rtt_ms, server: a.server }
    }

    /// What the summary counts of an established attempt to `server` with a handshake RTT of `rtt_ms`.
    pub fn established(rtt_ms: f64, server: SocketAddr) -> SummaryEntry {
        SummaryEntry { outcome: Outcome::Established, errno: None, rtt_ms: Some(rtt_ms), server }
    }
}

impl ReplaySummary {
    /// Counts one reported attempt by what the summary needs of it.
    pub fn count(&mut self, a: SummaryEntry) {
        self.attempts += 1;
        self.outcomes[a.outcome as usize] += 1;
        if let Some(errno) = a.errno {
            *self.errnos.entry(errno.name()).or_insert(0) += 1;
        }
        if a.outcome == Outcome::Established {
            if let Some(rtt) = a.rtt_ms {
                self.rtts.add(rtt);
            }
            return;
        }
        let (failures, errnos) = self.by_server.entry(a.server).or_default();
        *failures += 1;
        if let Some(errno) = a.errno {
            *errnos.entry(errno.name()).or_insert(0) += 1;
        }
        if self.by_server.len() > MAX_SERVERS {
            // Space-saving: keep the busiest half; a server dropped now and failing again later is
            // counted from then on, so the top counts become lower bounds (and say so).
            let mut counts: Vec<usize> = self.by_server.values().map(|(n, _)| *n).collect();
            counts.sort_unstable_by(|a, b| b.cmp(a));
            let threshold = counts[MAX_SERVERS / 2];
            self.by_server.retain(|_, (n, _)| *n > threshold);
            self.servers_pruned = true;
        }
    }

    /// The summary, with what the reading itself counted.
    pub fn finish(
        self,
        packets: u64,
        undecodable: u64,
        damaged: Option<String>,
        first: Option<Timestamp>,
        last: Option<Timestamp>,
    ) -> Summary {
        let mut top: Vec<ServerFailures> = self
            .by_server
            .into_iter()
            .map(|(server, (failures, errnos))| ServerFailures { server: server.to_string(), failures, errnos })
            .collect();
        top.sort_by(|a, b| b.failures.cmp(&a.failures).then_with(|| a.server.cmp(&b.server)));
        top.truncate(10);
        Summary {
            kind: "summary",
            attempts: self.attempts,
            outcomes: Outcome::ALL
                .into_iter()
                .zip(self.outcomes)
                .filter(|&(_, n)| n > 0)
                .map(|(outcome, n)| (outcome.name(), n))
                .collect(),
            errnos: self.errnos,
            packets,
            undecodable,
            rtt_ms: self.rtts.stats(),
            connect_ms: None,
            span: match (first, last) {
                (Some(first), Some(last)) => Some(CaptureSpan {
                    first: first.as_secs_f64(),
                    last: last.as_secs_f64(),
                    seconds: last.since(first).as_secs_f64(),
                }),
                _ => None,
            },
            top_failing_servers: top,
            top_failing_servers_approximate: self.servers_pruned,
            dropped: None,
            damaged,
            finished_early: 0,
            attempts_found: None,
            icmp_quotes_cut: 0,
            files: Vec::new(),
        }
    }
}

/// A server's failed attempts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServerFailures {
    /// The server's address and port.
    pub server: String,
    /// Attempts to it that did not establish.
    pub failures: usize,
    /// Their errnos.
    pub errnos: BTreeMap<&'static str, usize>,
}

/// min/avg/max/stddev and percentiles of a series, as ping prints them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stats {
    /// How many values.
    pub count: usize,
    /// Smallest.
    pub min: f64,
    /// Mean.
    pub avg: f64,
    /// Largest.
    pub max: f64,
    /// Population standard deviation (ping's mdev is close to it).
    pub stddev: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
}

impl Stats {
    /// The statistics of `values`, or `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let avg = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - avg).powi(2)).sum::<f64>() / n;
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        // Nearest-rank percentile: the smallest value with at least p% of the values at or below it.
        let rank = |p: f64| sorted[((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
        Some(Stats {
            p50: round(rank(50.0)),
            p90: round(rank(90.0)),
            p99: round(rank(99.0)),
            count: values.len(),
            min: round(values.iter().copied().fold(f64::INFINITY, f64::min)),
            avg: round(avg),
            max: round(values.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
            stddev: round(variance.sqrt()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hops that answered as `answers` say, from hop 1: an address is a router's time exceeded,
    /// `*` no answer, `S` the server.
    fn hops(answers: &[&str]) -> Vec<PathHop> {
        (1..)
            .zip(answers)
            .map(|(ttl, answer)| PathHop {
                ttl,
                answer: match *answer {
                    "*" => HopAnswer::NoAnswer,
                    "S" => HopAnswer::Server,
                    router => HopAnswer::TimeExceeded { from: router.parse().expect("test address") },
                },
                rtt_ms: None,
            })
            .collect()
    }

    /// The verdict on hops that answered as `answers` say (see [`hops`]), their loop found first.
    fn verdict_on(answers: &[&str], server: IpAddr) -> String {
        let hops = hops(answers);
        path_verdict(&hops, routing_loop(&hops).as_ref(), server)
    }

    fn circle(answers: &[&str]) -> Option<(u8, Vec<String>)> {
        routing_loop(&hops(answers)).map(|l| (l.first_hop, l.routers.iter().map(IpAddr::to_string).collect()))
    }

    #[test]
    fn test_routing_loop_is_a_circle_of_routers_seen_twice() {
        let (a, b, c, d) = ("192.0.2.1", "198.51.100.1", "198.51.100.2", "203.0.113.1");
        let two = Some((1, vec![a.to_string(), b.to_string()]));
        assert_eq!(circle(&[a, b, a, b]), two);
        assert_eq!(circle(&[a, b, a, b, a]), Some((1, vec![a.to_string(), b.to_string()])));
        // The circle begins past the hops that lead to it, at the router the SYN meets first.
        assert_eq!(circle(&[a, b, c, d, b, c, d]), Some((2, vec![b.to_string(), c.to_string(), d.to_string()])));
        assert_eq!(circle(&[a, b, c, b, c, b]), Some((2, vec![b.to_string(), c.to_string()])));
        // Not yet, or not a loop: one repeat, a router answering at two hops in a row, a path
        // that goes on, silent hops inside the circle, a server's answer.
        for not_a_loop in [
            &[a, b, a][..],
            &[a, a, a, a],
            &[a, b, c, d],
            &[a, b, a, c, a, b],
            &[a, "*", a, "*"],
            &[a, b, a, "*"],
            &[a, b, a, b, "S"],
            &[],
        ] {
            assert_eq!(circle(not_a_loop), None, "{not_a_loop:?}");
        }
    }

    #[test]
    fn test_path_verdict_names_the_loop_or_the_last_router() {
        let server: IpAddr = "203.0.113.10".parse().expect("test address");
        let looping = verdict_on(&["192.0.2.1", "198.51.100.10", "192.0.2.1", "198.51.100.10"], server);
        assert_eq!(
            looping,
            "A routing loop: from hop 1, the SYN goes round 192.0.2.1 → 198.51.100.10 → 192.0.2.1 → ... until its TTL runs out. Each of these routers routes 203.0.113.10 to the next."
        );
        let server6: IpAddr = "2001:db8:3::10".parse().expect("test address");
        let looping6 = verdict_on(&["2001:db8:1::1", "2001:db8:2::10", "2001:db8:1::1", "2001:db8:2::10"], server6);
        assert!(
            looping6.contains("... until its hop limit runs out. Each of these routers routes 2001:db8:3::10"),
            "{looping6}"
        );
        let dropped = verdict_on(&["192.0.2.1", "*", "*", "*"], server);
        assert!(dropped.starts_with("The SYN is last seen at hop 1: 192.0.2.1 answered there"), "{dropped}");
        // Probing stopped with every hop answering (a path longer than the probes go): no drop.
        let long: Vec<String> = (1..=30).map(|i| format!("198.51.100.{i}")).collect();
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        let still = verdict_on(&long, server);
        assert!(still.starts_with("The SYN is still on its way at hop 30, where 198.51.100.30 answered"), "{still}");
        assert_eq!(verdict_on(&["192.0.2.1", "S"], server), "The SYN reaches 203.0.113.10 in 2 hop(s).");
    }

    #[test]
    fn test_stats_of_a_series() {
        let s = Stats::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!((s.count, s.min, s.avg, s.max), (4, 1.0, 2.5, 4.0));
        assert_eq!(s.stddev, 1.118);
        assert_eq!(Stats::of(&[]), None);
        assert_eq!(Stats::of(&[0.25]).unwrap().stddev, 0.0);
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Stats::of(&hundred).unwrap();
        assert_eq!((s.p50, s.p90, s.p99), (50.0, 90.0, 99.0));
    }

    fn attempt_to(server: SocketAddr, outcome: Outcome, rtt_ms: Option<f64>) -> Attempt {
        Attempt {
            kind: "attempt",
            client: "192.0.2.10:40000".parse().expect("addr"),
            server,
            family: Family::Ipv4,
            outcome,
            errno: (outcome == Outcome::Refused).then_some(Errno::Econnrefused),
            errno_source: ErrnoSource::Inferred,
            syn_count: 1,
            start: Timestamp(0),
            rtt_ms,
            decided_after: None,
            isn: 1,
            cause: String::new(),
            findings: Vec::new(),
            path: None,
            events: Vec::new(),
        }
    }

    #[test]
    fn test_replay_summary_percentiles_stay_exact_then_close() {
        let server: SocketAddr = "198.51.100.10:443".parse().expect("addr");
        let mut small = ReplaySummary::default();
        for ms in [1.0, 2.0, 3.0, 4.0] {
            small.count(SummaryEntry::of(&attempt_to(server, Outcome::Established, Some(ms))));
        }
        let s = small.finish(0, 0, None, None, None).rtt_ms.expect("stats");
        assert_eq!((s.p50, s.p90, s.avg, s.stddev), (2.0, 4.0, 2.5, 1.118));
        // Past 65,536 values a histogram takes over: percentiles within 0.1%, the rest exact.
        let mut large = ReplaySummary::default();
        for i in 1..=100_000 {
            large.count(SummaryEntry::of(&attempt_to(server, Outcome::Established, Some(f64::from(i) / 1000.0))));
        }
        let s = large.finish(0, 0, None, None, None).rtt_ms.expect("stats");
        assert_eq!((s.count, s.min, s.max, s.avg), (100_000, 0.001, 100.0, 50.001));
        for (got, want) in [(s.p50, 50.0), (s.p90, 90.0), (s.p99, 99.0)] {
            assert!((got - want).abs() <= want * 0.001, "{got} vs {want}");
        }
    }

    #[test]
    fn test_replay_summary_failing_servers_are_bounded() {
        let mut summary = ReplaySummary::default();
        let busy: SocketAddr = "203.0.113.1:443".parse().expect("addr");
        for i in 0..30_000_u32 {
            let server = SocketAddr::from(([198, 51, (i / 250) as u8, (i % 250) as u8], 80));
            summary.count(SummaryEntry::of(&attempt_to(server, Outcome::Refused, None)));
            if i % 100 == 0 {
                summary.count(SummaryEntry::of(&attempt_to(busy, Outcome::Refused, None)));
            }
        }
        assert!(summary.by_server.len() <= MAX_SERVERS);
        let s = summary.finish(0, 0, None, None, None);
        assert_eq!(s.top_failing_servers[0].server, busy.to_string());
        assert_eq!(s.top_failing_servers[0].failures, 300);
        assert!(s.top_failing_servers_approximate);
        assert_eq!(s.outcomes.get("refused"), Some(&30_300));
    }
}

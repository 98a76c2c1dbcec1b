//! Events: everything the correlator sees, each stamped with the time it happened.
//!
//! The core never reads a clock: the capture shell stamps packets with libpcap's time, and replay uses the
//! times stored in the file. Times are nanoseconds since the Unix epoch (`CLOCK_REALTIME`).

use std::fmt;

use crate::decode::Packet;
use crate::flow::FlowKey;

/// A point in time, in nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Builds a timestamp from seconds and nanoseconds, as pcap records store them.
    pub fn from_parts(secs: i64, nanos: u32) -> Self {
        Timestamp(secs.saturating_mul(1_000_000_000).saturating_add(i64::from(nanos)))
    }

    /// Seconds since the epoch as a float (for JSON's `start`).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// The time elapsed from `earlier` to `self` (negative if `earlier` is later).
    pub fn since(self, earlier: Timestamp) -> Span {
        Span(self.0.saturating_sub(earlier.0))
    }

    /// This time moved forward by `span`.
    pub fn plus(self, span: Span) -> Timestamp {
        Timestamp(self.0.saturating_add(span.0))
    }
}

/// A signed duration in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub i64);

impl Span {
    /// A span of whole milliseconds.
    pub const fn from_millis(ms: i64) -> Span {
        Span(ms * 1_000_000)
    }

    /// A span of whole seconds.
    pub const fn from_secs(s: i64) -> Span {
        Span(s * 1_000_000_000)
    }

    /// The span in seconds.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// The span in milliseconds.
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

impl fmt::Display for Span {
    /// Human form: `850 µs`, `12.3 ms`, `1.02 s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_to(f)
    }
}

impl Span {
    /// Writes the span as its `Display` does, in pieces rather than through format arguments: a
    /// replay words millions of spans into its sentences.
    pub fn write_to(self, out: &mut impl fmt::Write) -> fmt::Result {
        let ns = self.0.unsigned_abs();
        if self.0 < 0 {
            out.write_char('-')?;
        }
        let mut digits = itoa::Buffer::new();
        // The whole part, the digits after the point, and the unit.
        let (whole, fraction, unit): (u64, &[u64], &str) = if ns < 1_000_000 {
            (ns / 1_000, &[], " µs")
        } else if ns < 1_000_000_000 {
            match rounded_decimal(ns, 1_000_000, 10) {
                Some((whole, tenths)) => (whole, &[tenths], " ms"),
                None => return write!(out, "{:.1} ms", ns as f64 / 1e6),
            }
        } else {
            match rounded_decimal(ns, 1_000_000_000, 100) {
                Some((whole, hundredths)) => (whole, &[hundredths / 10, hundredths % 10], " s"),
                None => return write!(out, "{:.2} s", ns as f64 / 1e9),
            }
        };
        out.write_str(digits.format(whole))?;
        if !fraction.is_empty() {
            out.write_char('.')?;
            for &digit in fraction {
                out.write_str(digits.format(digit))?;
            }
        }
        out.write_str(unit)
    }
}

/// `ns` in `unit`s rounded to `1 / scale` (10: tenths, 100: hundredths) and split at the decimal
/// point, in integers: what formatting the float `ns / unit` to that precision gives, without float
/// formatting's cost (a replay words millions of spans). `None` where the two could differ: an
/// exact tie (formatting rounds the float, which lies on either side of it) and spans over 1,000 s
/// (the float's precision nears a nanosecond).
fn rounded_decimal(ns: u64, unit: u64, scale: u64) -> Option<(u64, u64)> {
    let step = unit / scale;
    let (steps, rest) = (ns / step, ns % step);
    if rest * 2 == step || ns >= 1_000_000_000_000 {
        return None;
    }
    let rounded = steps + u64::from(rest * 2 > step);
    Some((rounded / scale, rounded % scale))
}

/// One piece of evidence with its time.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// When it happened.
    pub ts: Timestamp,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// The order the correlator processes events in: by time, then by capture frame, so the result
    /// does not depend on the order events were handed over.
    pub fn order_key(&self) -> (Timestamp, u64) {
        match &self.kind {
            EventKind::Packet { frame, .. } => (self.ts, *frame),
            EventKind::Syscall(_) | EventKind::Kernel { .. } | EventKind::CaptureStats { .. } => (self.ts, 0),
        }
    }
}

/// The kinds of evidence the correlator ties together.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// A decoded packet; `frame` is its 1-based position in the capture (as Wireshark numbers frames).
    Packet {
        /// Frame number in the capture.
        frame: u64,
        /// The decoded packet.
        packet: Packet,
    },
    /// A system call of the traced connection attempt, at its entry or its return.
    Syscall(SyscallEvent),
    /// What the kernel said about the traced socket (live only).
    Kernel {
        /// The attempt's 4-tuple.
        flow: FlowKey,
        /// What was observed.
        observation: KernelObservation,
    },
    /// A live capture ran alongside the syscalls: what it saw and lost. Without this event a live
    /// trace's packets are unknown (`--no-capture`), not absent.
    CaptureStats {
        /// Packets captured.
        packets: u64,
        /// Packets dropped by the kernel or the interface.
        dropped: u64,
    },
}

/// The system calls a traced `connect()` makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// `connect(2)`.
    Connect,
    /// `select(2)`.
    Select,
    /// `poll(2)`.
    Poll,
    /// `epoll_wait(2)`.
    EpollWait,
    /// `getsockopt(fd, SOL_SOCKET, SO_ERROR)`: the pending error of a non-blocking connect.
    GetsockoptSoError,
}

impl Call {
    /// The syscall's name as strace prints it.
    pub fn name(self) -> &'static str {
        match self {
            Call::Connect => "connect",
            Call::Select => "select",
            Call::Poll => "poll",
            Call::EpollWait => "epoll_wait",
            Call::GetsockoptSoError => "getsockopt",
        }
    }

    /// Whether the call waits for the socket (select, poll, epoll_wait).
    pub fn is_wait(self) -> bool {
        matches!(self, Call::Select | Call::Poll | Call::EpollWait)
    }
}

/// One system call of a traced attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyscallEvent {
    /// The attempt's 4-tuple (the socket is bound before `connect()`, so it is known).
    pub flow: FlowKey,
    /// Which call.
    pub call: Call,
    /// Entry or return.
    pub phase: SyscallPhase,
}

/// The entry or return of a system call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyscallPhase {
    /// The call was made, with its arguments in words (`fd 3, 198.51.100.10:8080`).
    Enter {
        /// The arguments.
        args: String,
    },
    /// The call returned.
    Return {
        /// The return value (`-1` on error).
        ret: i64,
        /// The errno number when it failed.
        errno: Option<i32>,
        /// For `getsockopt(SO_ERROR)`: the value read, the connection's errno or 0.
        so_error: Option<i32>,
        /// What came back, in words: ready bits, `SO_ERROR` value ...
        detail: String,
    },
}

/// The kernel's own view of a traced socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelObservation {
    /// A `TCP_INFO` snapshot.
    TcpInfo {
        /// `tcpi_state`.
        state: u8,
        /// `tcpi_retransmits`.
        retransmits: u8,
        /// `tcpi_backoff`.
        backoff: u8,
        /// `tcpi_rto`, microseconds.
        rto_us: u32,
        /// `tcpi_total_retrans`.
        total_retrans: u32,
    },
    /// An entry of the socket's error queue (`IP_RECVERR`/`IPV6_RECVERR`, read with `MSG_ERRQUEUE`):
    /// an ICMP error as the kernel recorded it, with who sent it.
    ErrorQueue {
        /// `ee_origin`: 1 local, 2 ICMP, 3 ICMPv6.
        origin: u8,
        /// `ee_errno`.
        errno: i32,
        /// `ee_type`.
        icmp_type: u8,
        /// `ee_code`.
        code: u8,
        /// `ee_info` (the MTU for "fragmentation needed").
        info: u32,
        /// `SO_EE_OFFENDER`: the host that sent the ICMP error.
        offender: Option<std::net::IpAddr>,
    },
    /// Changes of the namespace-wide counters of `/proc/net/netstat`, `snmp` and `snmp6` over the
    /// attempt (`TcpExt:LockDroppedIcmps` ...), only those that moved.
    CounterDeltas(Vec<(String, i64)>),
}

/// `tcpi_state` while a socket connects (`TCP_SYN_SENT`, include/net/tcp_states.h).
pub const TCP_SYN_SENT: u8 = 2;

impl KernelObservation {
    /// The TCP state's name (`include/net/tcp_states.h`).
    pub fn state_name(state: u8) -> &'static str {
        match state {
            1 => "ESTABLISHED",
            TCP_SYN_SENT => "SYN_SENT",
            3 => "SYN_RECV",
            4 => "FIN_WAIT1",
            5 => "FIN_WAIT2",
            6 => "TIME_WAIT",
            7 => "CLOSE",
            8 => "CLOSE_WAIT",
            9 => "LAST_ACK",
            10 => "LISTEN",
            11 => "CLOSING",
            _ => "UNKNOWN",
        }
    }

    /// The counter delta named `name` (`TcpExt:LockDroppedIcmps`), 0 when it did not move.
    pub fn delta(&self, name: &str) -> i64 {
        match self {
            KernelObservation::CounterDeltas(deltas) => deltas.iter().find(|(n, _)| n == name).map_or(0, |(_, d)| *d),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Span;

    /// The words of a span the plain way, with float formatting throughout.
    fn by_float(ns: i64) -> String {
        let (abs, sign) = (ns.unsigned_abs(), if ns < 0 { "-" } else { "" });
        if abs < 1_000_000 {
            format!("{sign}{} µs", abs / 1_000)
        } else if abs < 1_000_000_000 {
            format!("{sign}{:.1} ms", abs as f64 / 1e6)
        } else {
            format!("{sign}{:.2} s", abs as f64 / 1e9)
        }
    }

    #[test]
    fn test_span_words_match_float_formatting() {
        let mut spans: Vec<i64> =
            vec![0, 999_999, 1_000_000, 1_049_999, 1_050_000, 1_050_001, 999_949_999, 999_950_000];
        spans.extend([999_999_999, 1_000_000_000, 1_004_999_999, 1_005_000_000, 9_995_000_000, 999_999_999_999]);
        spans.extend([1_000_000_000_000, 1_234_567_890_123_456, i64::MAX, i64::MIN + 1]);
        // Every microsecond-resolution span of the first 3 s (ties included), and a spread beyond.
        spans.extend((0..3_000_000).map(|us| us * 1_000));
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..1_000_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            spans.push((x % 2_000_000_000_000) as i64);
        }
        for ns in spans {
            for ns in [ns, -ns] {
                assert_eq!(Span(ns).to_string(), by_float(ns), "{ns} ns");
            }
        }
    }
}

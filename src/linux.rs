//! Linux's rules as data: errno values, the ICMP-to-errno tables and the SYN retransmission schedule.
//!
//! Everything here mirrors a kernel function, named in each comment, as of Linux 6.18.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::event::Span;

/// An errno a `connect()` can end with, with Linux's numbers and glibc's `strerror` text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Errno {
    /// `EPERM` (1): a local firewall rule refused to send.
    Eperm,
    /// `EINTR` (4).
    Eintr,
    /// `EAGAIN` (11): no free ephemeral port for a non-blocking connect.
    Eagain,
    /// `EACCES` (13).
    Eacces,
    /// `EINVAL` (22).
    Einval,
    /// `ENONET` (64).
    Enonet,
    /// `EPROTO` (71).
    Eproto,
    /// `ENOPROTOOPT` (92).
    Enoprotoopt,
    /// `EOPNOTSUPP` (95).
    Eopnotsupp,
    /// `ENETUNREACH` (101).
    Enetunreach,
    /// `ETIMEDOUT` (110).
    Etimedout,
    /// `ECONNREFUSED` (111).
    Econnrefused,
    /// `EHOSTDOWN` (112).
    Ehostdown,
    /// `EHOSTUNREACH` (113).
    Ehostunreach,
    /// `EAFNOSUPPORT` (97).
    Eafnosupport,
    /// `EADDRINUSE` (98).
    Eaddrinuse,
    /// `EADDRNOTAVAIL` (99).
    Eaddrnotavail,
    /// `ENETDOWN` (100).
    Enetdown,
    /// `ECONNRESET` (104).
    Econnreset,
    /// `EINPROGRESS` (115): a non-blocking connect has started.
    Einprogress,
    /// Any other errno, by number.
    Other(i32),
}

impl Errno {
    /// Every errno synscope names.
    pub const ALL: [Errno; 20] = [
        Errno::Eperm,
        Errno::Eintr,
        Errno::Eagain,
        Errno::Eacces,
        Errno::Einval,
        Errno::Enonet,
        Errno::Eproto,
        Errno::Enoprotoopt,
        Errno::Eopnotsupp,
        Errno::Enetunreach,
        Errno::Etimedout,
        Errno::Econnrefused,
        Errno::Ehostdown,
        Errno::Ehostunreach,
        Errno::Eafnosupport,
        Errno::Eaddrinuse,
        Errno::Eaddrnotavail,
        Errno::Enetdown,
        Errno::Econnreset,
        Errno::Einprogress,
    ];

    /// The symbolic name, e.g. `ECONNREFUSED`.
    pub fn name(self) -> &'static str {
        match self {
            Errno::Eperm => "EPERM",
            Errno::Eintr => "EINTR",
            Errno::Eagain => "EAGAIN",
            Errno::Eafnosupport => "EAFNOSUPPORT",
            Errno::Eaddrinuse => "EADDRINUSE",
            Errno::Eaddrnotavail => "EADDRNOTAVAIL",
            Errno::Enetdown => "ENETDOWN",
            Errno::Econnreset => "ECONNRESET",
            Errno::Einprogress => "EINPROGRESS",
            Errno::Other(_) => "EUNKNOWN",
            Errno::Eacces => "EACCES",
            Errno::Einval => "EINVAL",
            Errno::Enonet => "ENONET",
            Errno::Eproto => "EPROTO",
            Errno::Enoprotoopt => "ENOPROTOOPT",
            Errno::Eopnotsupp => "EOPNOTSUPP",
            Errno::Enetunreach => "ENETUNREACH",
            Errno::Etimedout => "ETIMEDOUT",
            Errno::Econnrefused => "ECONNREFUSED",
            Errno::Ehostdown => "EHOSTDOWN",
            Errno::Ehostunreach => "EHOSTUNREACH",
        }
    }

    /// The number on Linux (x86-64 and every other Linux architecture but alpha, mips, parisc, sparc).
    pub fn number(self) -> i32 {
        match self {
            Errno::Eperm => 1,
            Errno::Eintr => 4,
            Errno::Eagain => 11,
            Errno::Eafnosupport => 97,
            Errno::Eaddrinuse => 98,
            Errno::Eaddrnotavail => 99,
            Errno::Enetdown => 100,
            Errno::Econnreset => 104,
            Errno::Einprogress => 115,
            Errno::Other(n) => n,
            Errno::Eacces => 13,
            Errno::Einval => 22,
            Errno::Enonet => 64,
            Errno::Eproto => 71,
            Errno::Enoprotoopt => 92,
            Errno::Eopnotsupp => 95,
            Errno::Enetunreach => 101,
            Errno::Etimedout => 110,
            Errno::Econnrefused => 111,
            Errno::Ehostdown => 112,
            Errno::Ehostunreach => 113,
        }
    }

    /// The errno for a Linux errno number (`Other` when synscope has no name for it).
    pub fn from_number(n: i32) -> Errno {
        Errno::ALL.into_iter().find(|e| e.number() == n).unwrap_or(Errno::Other(n))
    }

    /// glibc's `strerror` text.
    pub fn strerror(self) -> &'static str {
        match self {
            Errno::Eperm => "Operation not permitted",
            Errno::Eintr => "Interrupted system call",
            Errno::Eagain => "Resource temporarily unavailable",
            Errno::Eafnosupport => "Address family not supported by protocol",
            Errno::Eaddrinuse => "Address already in use",
            Errno::Eaddrnotavail => "Cannot assign requested address",
            Errno::Enetdown => "Network is down",
            Errno::Econnreset => "Connection reset by peer",
            Errno::Einprogress => "Operation now in progress",
            Errno::Other(_) => "Unknown error",
            Errno::Eacces => "Permission denied",
            Errno::Einval => "Invalid argument",
            Errno::Enonet => "Machine is not on the network",
            Errno::Eproto => "Protocol error",
            Errno::Enoprotoopt => "Protocol not available",
            Errno::Eopnotsupp => "Operation not supported",
            Errno::Enetunreach => "Network is unreachable",
            Errno::Etimedout => "Connection timed out",
            Errno::Econnrefused => "Connection refused",
            Errno::Ehostdown => "Host is down",
            Errno::Ehostunreach => "No route to host",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Errno {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// What an ICMP error does to a socket in SYN-SENT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpEffect {
    /// A hard error: the attempt fails with this errno (unless the socket is locked at that instant).
    Fatal(Errno),
    /// Only updates the path MTU (fragmentation needed, packet too big); the SYN is resent smaller.
    PathMtu,
    /// Ignored by TCP (source quench, redirect, unknown types).
    Ignored,
}

/// The effect of an ICMPv4 error of `icmp_type`/`code` on a connecting socket.
///
/// Mirrors `tcp_v4_err` and the `icmp_err_convert` table in `net/ipv4/icmp.c`: for destination
/// unreachable the code indexes the table; code 4 (fragmentation needed) only adjusts the path MTU;
/// time exceeded (11) gives EHOSTUNREACH and parameter problem (12) EPROTO; source quench (4) and
/// redirect (5) do not touch the socket.
pub fn icmpv4_effect(icmp_type: u8, code: u8) -> IcmpEffect {
    match (icmp_type, code) {
        (3, 4) => IcmpEffect::PathMtu,
        (3, code) => match code {
            0 | 6 | 9 | 11 => IcmpEffect::Fatal(Errno::Enetunreach),
            1 | 10 | 12 | 13 | 14 | 15 => IcmpEffect::Fatal(Errno::Ehostunreach),
            2 => IcmpEffect::Fatal(Errno::Enoprotoopt),
            3 => IcmpEffect::Fatal(Errno::Econnrefused),
            5 => IcmpEffect::Fatal(Errno::Eopnotsupp),
            7 => IcmpEffect::Fatal(Errno::Ehostdown),
            8 => IcmpEffect::Fatal(Errno::Enonet),
            // Codes past NR_ICMP_UNREACH (15) are dropped by icmp_unreach() before TCP sees them.
            _ => IcmpEffect::Ignored,
        },
        (11, _) => IcmpEffect::Fatal(Errno::Ehostunreach),
        (12, _) => IcmpEffect::Fatal(Errno::Eproto),
        _ => IcmpEffect::Ignored,
    }
}

/// The effect of an ICMPv6 error of `icmp_type`/`code` on a connecting socket.
///
/// Mirrors `tcp_v6_err` and `icmpv6_err_convert` in `net/ipv6/icmp.c` (the `tab_unreach` table):
/// destination unreachable 0 ENETUNREACH, 1 EACCES, 2 and 3 EHOSTUNREACH, 4 ECONNREFUSED, 5 and 6
/// EACCES, others EPROTO; packet too big (2) only updates the path MTU; time exceeded (3) EHOSTUNREACH;
/// parameter problem (4) EPROTO.
pub fn icmpv6_effect(icmp_type: u8, code: u8) -> IcmpEffect {
    match (icmp_type, code) {
        (1, 0) => IcmpEffect::Fatal(Errno::Enetunreach),
        (1, 1 | 5 | 6) => IcmpEffect::Fatal(Errno::Eacces),
        (1, 2 | 3) => IcmpEffect::Fatal(Errno::Ehostunreach),
        (1, 4) => IcmpEffect::Fatal(Errno::Econnrefused),
        (1, _) => IcmpEffect::Fatal(Errno::Eproto),
        (2, _) => IcmpEffect::PathMtu,
        (3, _) => IcmpEffect::Fatal(Errno::Ehostunreach),
        (4, _) => IcmpEffect::Fatal(Errno::Eproto),
        _ => IcmpEffect::Ignored,
    }
}

/// The TCP sysctls (and socket options) that decide when a SYN is retransmitted and when connect() gives up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SynTiming {
    /// `net.ipv4.tcp_syn_retries` (or `TCP_SYNCNT`): 6 by default.
    pub syn_retries: u32,
    /// `net.ipv4.tcp_syn_linear_timeouts` (Linux 6.5 and later; 0 before): 4 by default.
    pub linear_timeouts: u32,
    /// The initial retransmission timeout, `TCP_TIMEOUT_INIT`: 1 s.
    pub initial_rto: Span,
    /// `TCP_USER_TIMEOUT`, when the socket sets it: it replaces the modelled timeout.
    pub user_timeout: Option<Span>,
}

/// `TCP_RTO_MAX`: the retransmission timeout never grows past 120 s.
const TCP_RTO_MAX: Span = Span::from_secs(120);

impl Default for SynTiming {
    /// Linux 6.5 and later with default sysctls.
    fn default() -> Self {
        SynTiming { syn_retries: 6, linear_timeouts: 4, initial_rto: Span::from_secs(1), user_timeout: None }
    }
}

/// When a kernel sends each SYN retransmit and when it gives up, relative to the first SYN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynSchedule {
    /// Time of each retransmit after the first SYN (retransmit #1 first).
    pub retransmits: Vec<Span>,
    /// When connect() fails with ETIMEDOUT.
    pub deadline: Span,
}

impl SynTiming {
    /// The retransmission schedule these settings give.
    ///
    /// Mirrors `tcp_retransmit_timer` and `tcp_write_timeout`. Each time the timer fires in SYN-SENT,
    /// `retransmits_timed_out` gives up once the time since the first SYN reaches
    /// `tcp_model_timeout(syn_retries, TCP_TIMEOUT_INIT)`, the time `syn_retries` purely exponential
    /// backoffs would take: (2^(n+1) − 1) × 1 s, with steps capped at `TCP_RTO_MAX`. Otherwise the SYN
    /// is resent; the RTO stays the same for the first `syn_linear_timeouts` expiries and doubles after.
    /// Defaults: retransmits at 1, 2, 3, 4, 5, 7, 11, 19, 35, 67 s, ETIMEDOUT at 131 s; before 6.5:
    /// 1, 3, 7, 15, 31, 63 s and 127 s; `tcp_syn_retries=2` on 6.18: 1, 2, 3, 4, 5 s and 7 s.
    ///
    /// With `TCP_USER_TIMEOUT` the attempt ends at exactly that time: `retransmits_timed_out` uses it
    /// in place of the model, and `tcp_clamp_rto_to_user_timeout` makes the last timer fire then.
    pub fn schedule(&self) -> SynSchedule {
        let timeout = self.user_timeout.filter(|t| t.0 > 0).unwrap_or_else(|| self.model_timeout());
        let mut rto = self.initial_rto;
        let mut now = Span(0);
        // (Room for the default schedule's 10 retransmits at once: a replay schedules every attempt
        // that timed out.)
        let mut retransmits = Vec::with_capacity(16);
        loop {
            let clamp = if self.user_timeout.is_some() { timeout.0 } else { i64::MAX };
            now = Span(now.0.saturating_add(rto.0).min(clamp));
            if now >= timeout {
                return SynSchedule { retransmits, deadline: now };
            }
            retransmits.push(now);
            if retransmits.len() as u32 > self.linear_timeouts {
                rto = Span(rto.0.saturating_mul(2)).min(TCP_RTO_MAX);
            }
        }
    }

    /// `tcp_model_timeout`: how long `syn_retries` exponential backoffs from the initial RTO take.
    fn model_timeout(&self) -> Span {
        let base = self.initial_rto.0.max(1);
        // ilog2(TCP_RTO_MAX / rto_base): the backoff after which every step is TCP_RTO_MAX.
        let threshold = (TCP_RTO_MAX.0 / base).max(1).ilog2();
        let n = self.syn_retries;
        let exponential = |k: u32| ((2i64 << k.min(62)) - 1).saturating_mul(base);
        if n <= threshold {
            Span(exponential(n))
        } else {
            Span(exponential(threshold).saturating_add(i64::from(n - threshold).saturating_mul(TCP_RTO_MAX.0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &[i64]) -> Vec<Span> {
        s.iter().map(|&s| Span::from_secs(s)).collect()
    }

    #[test]
    fn test_schedule_default_linux_6_18() {
        let schedule = SynTiming::default().schedule();
        assert_eq!(schedule.retransmits, secs(&[1, 2, 3, 4, 5, 7, 11, 19, 35, 67]));
        assert_eq!(schedule.deadline, Span::from_secs(131));
    }

    #[test]
    fn test_schedule_before_linear_timeouts() {
        let timing = SynTiming { linear_timeouts: 0, ..SynTiming::default() };
        let schedule = timing.schedule();
        assert_eq!(schedule.retransmits, secs(&[1, 3, 7, 15, 31, 63]));
        assert_eq!(schedule.deadline, Span::from_secs(127));
    }

    #[test]
    fn test_schedule_lab_syn_retries_2() {
        // fixtures/unanswered-v4.pcap: SYNs at 0, 1, 2, 3, 4, 5 s, connect() failed after 7.14 s.
        let timing = SynTiming { syn_retries: 2, ..SynTiming::default() };
        assert_eq!(timing.schedule().retransmits, secs(&[1, 2, 3, 4, 5]));
        assert_eq!(timing.schedule().deadline, Span::from_secs(7));
    }

    #[test]
    fn test_schedule_many_retries_capped_at_rto_max() {
        // tcp_model_timeout past ilog2(120) = 6 backoffs adds TCP_RTO_MAX per extra retry.
        let timing = SynTiming { syn_retries: 8, linear_timeouts: 0, ..SynTiming::default() };
        assert_eq!(timing.schedule().retransmits, secs(&[1, 3, 7, 15, 31, 63, 127, 247]));
        assert_eq!(timing.schedule().deadline, Span::from_secs(367));
    }

    #[test]
    fn test_schedule_user_timeout_ends_it_early() {
        let timing = SynTiming { user_timeout: Some(Span::from_millis(2500)), ..SynTiming::default() };
        assert_eq!(timing.schedule().retransmits, secs(&[1, 2]));
        assert_eq!(timing.schedule().deadline, Span::from_millis(2500));
    }

    #[test]
    fn test_schedule_lowered_syn_retries() {
        let timing = SynTiming { syn_retries: 1, linear_timeouts: 0, ..SynTiming::default() };
        assert_eq!(timing.schedule().retransmits, secs(&[1]));
        assert_eq!(timing.schedule().deadline, Span::from_secs(3));
    }

    #[test]
    fn test_icmpv4_table_matches_icmp_err_convert() {
        assert_eq!(icmpv4_effect(3, 0), IcmpEffect::Fatal(Errno::Enetunreach));
        assert_eq!(icmpv4_effect(3, 1), IcmpEffect::Fatal(Errno::Ehostunreach));
        assert_eq!(icmpv4_effect(3, 3), IcmpEffect::Fatal(Errno::Econnrefused));
        assert_eq!(icmpv4_effect(3, 4), IcmpEffect::PathMtu);
        assert_eq!(icmpv4_effect(3, 13), IcmpEffect::Fatal(Errno::Ehostunreach));
        assert_eq!(icmpv4_effect(3, 7), IcmpEffect::Fatal(Errno::Ehostdown));
        assert_eq!(icmpv4_effect(11, 0), IcmpEffect::Fatal(Errno::Ehostunreach));
        assert_eq!(icmpv4_effect(12, 0), IcmpEffect::Fatal(Errno::Eproto));
        assert_eq!(icmpv4_effect(5, 1), IcmpEffect::Ignored);
    }

    #[test]
    fn test_icmpv6_table_matches_icmpv6_err_convert() {
        assert_eq!(icmpv6_effect(1, 0), IcmpEffect::Fatal(Errno::Enetunreach));
        assert_eq!(icmpv6_effect(1, 1), IcmpEffect::Fatal(Errno::Eacces));
        assert_eq!(icmpv6_effect(1, 3), IcmpEffect::Fatal(Errno::Ehostunreach));
        assert_eq!(icmpv6_effect(1, 4), IcmpEffect::Fatal(Errno::Econnrefused));
        assert_eq!(icmpv6_effect(1, 7), IcmpEffect::Fatal(Errno::Eproto));
        assert_eq!(icmpv6_effect(2, 0), IcmpEffect::PathMtu);
        assert_eq!(icmpv6_effect(3, 0), IcmpEffect::Fatal(Errno::Ehostunreach));
    }

    #[test]
    fn test_errno_numbers_round_trip() {
        for errno in Errno::ALL {
            assert_eq!(Errno::from_number(errno.number()), errno);
        }
        assert_eq!(Errno::from_number(75), Errno::Other(75));
    }
}

//! Correlator tests: hand-built packets with literal timestamps, one Linux rule per test.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::correlate;
use crate::decode::{
    AddrPrefix, ArpMessage, ArpOp, CutQuote, IcmpError, IcmpErrorKind, LinkDirection, Packet, PacketBody, QuotedPacket,
    QuotedTcp, TcpFlags, TcpOptions, TcpSegment,
};
use crate::event::{Event, EventKind, Timestamp};
use crate::flow::{Dir, End, Family};
use crate::linux::{Errno, SynTiming};
use crate::timeline::{Attempt, Outcome, What};

const CLIENT: &str = "192.0.2.10:40000";
const SERVER: &str = "198.51.100.10:8080";
const ROUTER: &str = "192.0.2.1";
const ISN: u32 = 1000;
/// 2023-11-14 22:13:20 UTC, in nanoseconds.
const T0: i64 = 1_700_000_000_000_000_000;

fn at_ms(ms: i64) -> Timestamp {
    Timestamp(T0 + ms * 1_000_000)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

fn packet(ms: i64, frame: u64, body: PacketBody) -> Event {
    Event {
        ts: at_ms(ms),
        kind: EventKind::Packet {
            frame,
            packet: Packet { link_direction: LinkDirection::Unknown, on_loopback: false, body },
        },
    }
}

fn segment(src: &str, dst: &str, flags: u8, seq: u32, ack: u32) -> PacketBody {
    PacketBody::Tcp(TcpSegment {
        src: addr(src),
        dst: addr(dst),
        flags: TcpFlags(flags),
        seq,
        ack,
        window: 64240,
        options: TcpOptions::default(),
        payload_len: 0,
        ttl: 64,
        ip_ident: 0,
    })
}

fn syn(ms: i64, frame: u64) -> Event {
    packet(ms, frame, segment(CLIENT, SERVER, TcpFlags::SYN, ISN, 0))
}

fn from_server(ms: i64, frame: u64, flags: u8, seq: u32, ack: u32) -> Event {
    packet(ms, frame, segment(SERVER, CLIENT, flags, seq, ack))
}

fn from_client(ms: i64, frame: u64, flags: u8, seq: u32, ack: u32) -> Event {
    packet(ms, frame, segment(CLIENT, SERVER, flags, seq, ack))
}

fn icmp(ms: i64, frame: u64, from: &str, icmp_type: u8, code: u8, quoted_seq: u32) -> Event {
    let client = addr(CLIENT);
    let server = addr(SERVER);
    let from: IpAddr = from.parse().expect("test address");
    let family = Family::of(from);
    let kind = match (family, icmp_type) {
        (Family::Ipv4, 3) | (Family::Ipv6, 1) => IcmpErrorKind::DestinationUnreachable,
        (Family::Ipv4, 11) | (Family::Ipv6, 3) => IcmpErrorKind::TimeExceeded,
        (Family::Ipv6, 2) => IcmpErrorKind::PacketTooBig,
        _ => IcmpErrorKind::ParameterProblem,
    };
    packet(
        ms,
        frame,
        PacketBody::IcmpError(Box::new(IcmpError {
            src: from,
            dst: client.ip(),
            family,
            kind,
            icmp_type,
            code,
            mtu: None,
            quoted: Some(QuotedPacket {
                src: client.ip(),
                dst: server.ip(),
                protocol: 6,
                tcp: Some(QuotedTcp {
                    src_port: client.port(),
                    dst_port: server.port(),
                    seq: Some(quoted_seq),
                    flags: Some(TcpFlags(TcpFlags::SYN)),
                }),
            }),
            cut_quote: None,
        })),
    )
}

/// An ICMP host unreachable from the router that a capture cut inside its quote: before the
/// sequence number (`dst_kept` is `None`), or before the ports, keeping that many bytes of the
/// quoted destination (`SERVER`'s).
fn cut_icmp(ms: i64, frame: u64, dst_kept: Option<usize>) -> Event {
    let mut event = icmp(ms, frame, ROUTER, 3, 1, ISN);
    if let EventKind::Packet { packet: Packet { body: PacketBody::IcmpError(e), .. }, .. } = &mut event.kind {
        match dst_kept {
            None => e.quoted.iter_mut().filter_map(|q| q.tcp.as_mut()).for_each(|t| t.seq = None),
            Some(kept) => {
                e.quoted = None;
                let src = AddrPrefix::leading(addr(CLIENT).ip(), 4);
                e.cut_quote = Some(CutQuote { src, dst: AddrPrefix::leading(addr(SERVER).ip(), kept), ident: None });
            }
        }
    }
    event
}

fn arp_request(ms: i64, frame: u64, target: Ipv4Addr) -> Event {
    let IpAddr::V4(sender_ip) = addr(CLIENT).ip() else { unreachable!("the test client is IPv4") };
    packet(
        ms,
        frame,
        PacketBody::Arp(ArpMessage {
            op: ArpOp::Request,
            sender_ip,
            sender_hw: vec![2, 0, 0, 0, 0, 10],
            target_ip: target,
        }),
    )
}

/// `from` answers the client's ARP request: it is at `02:00:00:00:01:01`.
fn arp_reply(ms: i64, frame: u64, from: Ipv4Addr) -> Event {
    let IpAddr::V4(target_ip) = addr(CLIENT).ip() else { unreachable!("the test client is IPv4") };
    packet(
        ms,
        frame,
        PacketBody::Arp(ArpMessage { op: ArpOp::Reply, sender_ip: from, sender_hw: vec![2, 0, 0, 0, 1, 1], target_ip }),
    )
}

fn only(events: Vec<Event>) -> Attempt {
    let mut attempts = correlate(events, SynTiming::default(), None);
    assert_eq!(attempts.len(), 1, "{attempts:#?}");
    attempts.remove(0)
}

fn verdict(a: &Attempt) -> (Outcome, Option<Errno>, u32) {
    (a.outcome, a.errno, a.syn_count)
}

#[test]
fn test_syn_sent_rst_ack_refused() {
    let a = only(vec![syn(0, 1), from_server(1, 2, TcpFlags::RST | TcpFlags::ACK, 0, ISN + 1)]);
    assert_eq!(verdict(&a), (Outcome::Refused, Some(Errno::Econnrefused), 1));
    assert_eq!(a.rtt_ms, Some(1.0));
    assert_eq!(a.decided_after, Some(0.001));
    assert_eq!(a.events[1].what, What::Rst);
    assert!(!a.events[1].ignored);
}

#[test]
fn test_syn_sent_rst_without_ack_ignored() {
    let a = only(vec![syn(0, 1), from_server(1, 2, TcpFlags::RST, 0, 0)]);
    assert_eq!(verdict(&a), (Outcome::TimedOut, Some(Errno::Etimedout), 1));
    assert!(a.events[1].ignored);
    assert!(a.events[1].note.as_deref().unwrap_or_default().contains("without ACK"));
    assert_eq!(a.findings.iter().map(|f| f.code).collect::<Vec<_>>(), ["answer_ignored"]);
    assert!(a.cause.contains("Linux ignores"), "{}", a.cause);
}

#[test]
fn test_syn_sent_rst_wrong_ack_ignored() {
    // ack = ISN, not ISN+1: the RST does not acknowledge our SYN (RFC 9293 3.10.7.3).
    let a = only(vec![syn(0, 1), from_server(1, 2, TcpFlags::RST | TcpFlags::ACK, 0, ISN)]);
    assert_eq!(a.outcome, Outcome::TimedOut);
    assert!(a.events[1].ignored);
}

#[test]
fn test_syn_sent_syn_ack_established() {
    let a = only(vec![
        syn(0, 1),
        from_server(20, 2, TcpFlags::SYN | TcpFlags::ACK, 5000, ISN + 1),
        from_client(20, 3, TcpFlags::ACK, ISN + 1, 5001),
        from_client(21, 4, TcpFlags::ACK | TcpFlags::PSH, ISN + 1, 5001),
    ]);
    assert_eq!(verdict(&a), (Outcome::Established, None, 1));
    assert_eq!(a.rtt_ms, Some(20.0));
    let whats: Vec<What> = a.events.iter().map(|e| e.what).collect();
    assert_eq!(whats, [What::Syn, What::SynAck, What::Ack]);
    // The data after the handshake belongs to the connection: neither shown nor counted.
    assert!(!a.cause.contains("segment"), "{}", a.cause);
}

#[test]
fn test_late_packets_beyond_the_bound_are_counted_in_the_cause() {
    // A refused attempt, then 20 more RSTs: 16 are shown after the verdict, the other 4 counted.
    let mut events = vec![syn(0, 1), from_server(1, 2, TcpFlags::RST | TcpFlags::ACK, 0, ISN + 1)];
    for n in 0..20 {
        events.push(from_server(2 + n, 3 + n as u64, TcpFlags::RST | TcpFlags::ACK, 0, ISN + 1));
    }
    let a = only(events);
    assert_eq!(a.outcome, Outcome::Refused);
    assert_eq!(a.events.len(), 2 + 16);
    assert!(a.cause.ends_with(" 4 more packets after the verdict are not shown."), "{}", a.cause);
}

#[test]
fn test_syn_sent_syn_ack_wrong_ack_ignored() {
    let a = only(vec![syn(0, 1), from_server(20, 2, TcpFlags::SYN | TcpFlags::ACK, 5000, ISN + 7)]);
    assert_eq!(a.outcome, Outcome::TimedOut);
    assert!(a.events[1].ignored);
}

#[test]
fn test_syn_sent_syn_ack_dropped_on_input() {
    // The client retransmits the same SYN after a SYN-ACK it never acknowledges: its TCP never saw it.
    let synack = |ms, frame| from_server(ms, frame, TcpFlags::SYN | TcpFlags::ACK, 77, ISN + 1);
    let a = only(vec![syn(0, 1), synack(1, 2), syn(1000, 3), synack(1001, 4), syn(2000, 5), synack(2001, 6)]);
    assert_eq!(verdict(&a), (Outcome::TimedOut, Some(Errno::Etimedout), 3));
    assert!(a.cause.contains("dropped on this host before its TCP saw them"), "{}", a.cause);
    assert_eq!(a.findings.iter().map(|f| f.code).collect::<Vec<_>>(), ["synack_seen_but_timed_out"]);
}

#[test]
fn test_syn_sent_client_ack_without_captured_syn_ack() {
    // One-sided capture: only the client's direction was recorded.
    let a = only(vec![syn(0, 1), from_client(30, 2, TcpFlags::ACK, ISN + 1, 5001)]);
    assert_eq!(verdict(&a), (Outcome::Established, None, 1));
    assert!(a.cause.contains("does not hold"), "{}", a.cause);
}

#[test]
fn test_a_copy_of_the_syn_in_the_capture_is_no_retransmit() {
    // The same SYN captured twice (-i any on a bridge, a mirror port), 10 µs apart: one SYN.
    let later = |mut event: Event, micros: i64| {
        event.ts = Timestamp(event.ts.0 + micros * 1_000);
        event
    };
    let refused =
        |copy: Event| only(vec![syn(0, 1), copy, from_server(1, 3, TcpFlags::RST | TcpFlags::ACK, 0, ISN + 1)]);
    let a = refused(later(syn(0, 2), 10));
    assert_eq!(verdict(&a), (Outcome::Refused, Some(Errno::Econnrefused), 1));
    assert_eq!(a.events.iter().filter(|e| e.what == What::Syn).count(), 1, "the copy is not on the timeline");
    assert!(!a.cause.contains("SYNs"), "{}", a.cause);
    assert_eq!(a.findings.iter().map(|f| f.code).collect::<Vec<_>>(), ["packets_captured_twice"]);
    // Later than a copy can be (Linux's quickest retransmit is 2 ms after), or another IP mark:
    // a retransmit.
    let mut marked = later(syn(0, 2), 10);
    if let EventKind::Packet { packet: Packet { body: PacketBody::Tcp(seg), .. }, .. } = &mut marked.kind {
        seg.ip_ident = 7;
    }
    for retransmit in [later(syn(0, 2), 2_000), marked] {
        let a = only(vec![syn(0, 1), retransmit, from_server(5, 3, TcpFlags::RST | TcpFlags::ACK, 0, ISN + 1)]);
        assert_eq!(verdict(&a), (Outcome::Refused, Some(Errno::Econnrefused), 2));
        assert!(a.findings.is_empty(), "{:?}", a.findings);
    }
}

#[test]
fn test_syn_sent_fast_open_ack_covers_data() {
    // TCP Fast Open: 39 bytes on the SYN; a SYN-ACK may acknowledge them (ack in (ISN, ISN+1+39]).
    let mut syn_with_data = syn(0, 1);
    if let EventKind::Packet { packet: Packet { body: PacketBody::Tcp(seg), .. }, .. } = &mut syn_with_data.kind {
        seg.payload_len = 39;
    }
    let a = only(vec![syn_with_data, from_server(5, 2, TcpFlags::SYN | TcpFlags::ACK, 77, ISN + 40)]);
    assert_eq!(a.outcome, Outcome::Established);
}

#[test]
fn test_syn_sent_icmp_host_unreachable() {
    let a = only(vec![syn(0, 1), icmp(3, 2, ROUTER, 3, 1, ISN)]);
    assert_eq!(verdict(&a), (Outcome::Unreachable, Some(Errno::Ehostunreach), 1));
    assert_eq!(a.events[1].dir, Dir::In);
    assert!(a.cause.starts_with("Router 192.0.2.1 answered our SYN with ICMP host unreachable"), "{}", a.cause);
}

/// A SYN that left with `ttl`, as the capture saw it.
fn syn_with_ttl(ms: i64, frame: u64, ttl: u8) -> Event {
    let mut event = syn(ms, frame);
    if let EventKind::Packet { packet: Packet { body: PacketBody::Tcp(seg), .. }, .. } = &mut event.kind {
        seg.ttl = ttl;
    }
    event
}

#[test]
fn test_time_exceeded_with_hops_to_spare_is_a_routing_loop() {
    // Captured on the client: the SYN left with Linux's TTL of 64 and still ran out.
    for (events, name) in
        [(vec![syn(0, 1), icmp(0, 2, ROUTER, 11, 0, ISN)], "TTL"), (syn6_and_icmp6(3, 0), "hop limit")]
    {
        let a = only(events);
        assert_eq!(verdict(&a), (Outcome::Unreachable, Some(Errno::Ehostunreach), 1));
        assert!(
            a.cause.contains(&format!("The SYN had a {name} of 64 where the capture saw it, more hops than any real path has, and still ran out: it went round a routing loop")),
            "{}",
            a.cause
        );
        assert!(a.findings.iter().any(|f| f.code == "routing_loop"), "{:?}", a.findings);
    }
    // A SYN with few hops left (a traceroute-like probe, or a capture far along the path): the
    // time exceeded may be the path's length, so no loop is claimed.
    for ttl in [1, 5, 39] {
        let a = only(vec![syn_with_ttl(0, 1, ttl), icmp(0, 2, ROUTER, 11, 0, ISN)]);
        assert_eq!(verdict(&a), (Outcome::Unreachable, Some(Errno::Ehostunreach), 1));
        assert!(a.cause.contains("a routing loop, or a probe sent with a low TTL"), "{ttl}: {}", a.cause);
        assert!(a.findings.iter().all(|f| f.code != "routing_loop"), "{ttl}: {:?}", a.findings);
    }
    // The SYN the error answers is the last: a TCP traceroute raises the TTL at each.
    let a = only(vec![syn_with_ttl(0, 1, 5), syn_with_ttl(1000, 2, 64), icmp(1000, 3, ROUTER, 11, 0, ISN)]);
    assert!(a.findings.iter().any(|f| f.code == "routing_loop"), "{:?}", a.findings);
    let a = only(vec![syn_with_ttl(0, 1, 64), syn_with_ttl(1000, 2, 5), icmp(1000, 3, ROUTER, 11, 0, ISN)]);
    assert!(a.findings.iter().all(|f| f.code != "routing_loop"), "{:?}", a.findings);
    // Another ICMP error is no loop, whatever the TTL.
    let a = only(vec![syn(0, 1), icmp(0, 2, ROUTER, 3, 1, ISN)]);
    assert!(a.findings.iter().all(|f| f.code != "routing_loop") && !a.cause.contains("loop"), "{}", a.cause);
    let a = only(vec![syn_with_ttl(0, 1, 40), icmp(0, 2, ROUTER, 11, 0, ISN)]);
    assert!(a.findings.iter().any(|f| f.code == "routing_loop"), "40 hops left is a loop: {:?}", a.findings);
}

#[test]
fn test_syn_sent_icmp_port_unreachable_from_server() {
    let a = only(vec![syn(0, 1), icmp(3, 2, "198.51.100.10", 3, 3, ISN)]);
    assert_eq!(verdict(&a), (Outcome::Unreachable, Some(Errno::Econnrefused), 1));
    assert!(a.cause.starts_with("The server 198.51.100.10 itself"), "{}", a.cause);
}

#[test]
fn test_syn_sent_icmp_fragmentation_needed_not_fatal() {
    let a = only(vec![syn(0, 1), icmp(3, 2, ROUTER, 3, 4, ISN)]);
    assert_eq!(a.outcome, Outcome::TimedOut);
    assert!(a.events[1].note.as_deref().unwrap_or_default().contains("path MTU"));
}

#[test]
fn test_syn_sent_icmp_quoting_other_seq_ignored() {
    let a = only(vec![syn(0, 1), icmp(3, 2, ROUTER, 3, 1, ISN + 5000)]);
    assert_eq!(a.outcome, Outcome::TimedOut);
    assert!(a.events[1].ignored);
    assert!(a.events[1].note.as_deref().unwrap_or_default().contains("OutOfWindowIcmps"));
}

#[test]
fn test_syn_sent_icmp_while_socket_locked_then_second_icmp() {
    // Zero-RTT path: the first ICMP lands while connect() holds the socket, so Linux only remembers
    // it and retransmits the SYN 1 s later; the second ICMP ends the attempt.
    let a = only(vec![syn(0, 1), icmp(0, 2, ROUTER, 3, 1, ISN), syn(1020, 3), icmp(1020, 4, ROUTER, 3, 1, ISN)]);
    assert_eq!(verdict(&a), (Outcome::Unreachable, Some(Errno::Ehostunreach), 2));
    assert!(a.events[1].note.as_deref().unwrap_or_default().contains("only remembered"));
    assert_eq!(a.decided_after, Some(1.02));
    assert!(a.cause.contains("only remembered"), "{}", a.cause);
    assert_eq!(a.findings.iter().map(|f| f.code).collect::<Vec<_>>(), ["icmp_deferred_by_socket_lock"]);
}

#[test]
fn test_syn_sent_soft_error_reported_at_deadline() {
    // The remembered ICMP error replaces ETIMEDOUT when nothing else arrives.
    let a = only(vec![syn(0, 1), icmp(0, 2, ROUTER, 3, 1, ISN), syn(1000, 3)]);
    assert_eq!(verdict(&a), (Outcome::Unreachable, Some(Errno::Ehostunreach), 2));
    assert_eq!(a.decided_after, None);
    assert!(a.cause.contains("instead of ETIMEDOUT"), "{}", a.cause);
}

#[test]
fn test_client_ack_after_a_soft_error_still_proves_the_handshake() {
    // The ICMP decides the attempt (its client's segments no longer matter), the retransmit makes
    // it only a remembered error (they matter again), and the client's ACK of a SYN-ACK the capture
    // lacks establishes it: the lookup of segments must follow each change.
    let events = vec![
        syn(0, 1),
        icmp(0, 2, ROUTER, 3, 1, ISN),
        syn(1000, 3),
        from_client(1040, 4, TcpFlags::ACK, ISN + 1, 5001),
    ];
    let a = only(events.clone());
    assert_eq!(verdict(&a), (Outcome::Established, None, 2));
    assert_eq!(stream(&events), vec![a]);
}

#[test]
fn test_icmp_cut_before_the_seq_decides_by_its_ports() {
    let a = only(vec![syn(0, 1), cut_icmp(3, 2, None)]);
    assert_eq!(verdict(&a), (Outcome::Unreachable, Some(Errno::Ehostunreach), 1));
    assert_eq!(a.decided_after, Some(0.003));
    let note = a.events[1].note.as_deref().unwrap_or_default();
    assert!(note.starts_with("quotes our 4-tuple, cut by the capture before the sequence number"), "{note}");
    assert!(a.events[1].summary.ends_with("quoting 192.0.2.10:40000 > 198.51.100.10:8080 [|cut by the capture] [S]"));
    assert_eq!(a.findings.iter().map(|f| f.code).collect::<Vec<_>>(), ["icmp_quote_cut"]);
    assert!(a.findings[0].summary.contains("after the quoted ports"), "{}", a.findings[0].summary);
}

#[test]
fn test_icmp_cut_before_the_ports_decides_an_attempt_nothing_answered() {
    for kept in [0, 2, 4] {
        let a = only(vec![syn(0, 1), cut_icmp(3, 2, Some(kept))]);
        assert_eq!(verdict(&a), (Outcome::Unreachable, Some(Errno::Ehostunreach), 1), "{kept} bytes kept");
        assert_eq!(a.decided_after, Some(0.003));
        assert!(a.events[1].note.as_deref().unwrap_or_default().contains("taken as quoting our SYN"));
        assert!(!a.events[1].ignored);
        assert!(a.events[1].summary.ends_with("quoting [|cut by the capture]"), "{}", a.events[1].summary);
        assert_eq!(a.findings.iter().map(|f| f.code).collect::<Vec<_>>(), ["icmp_quote_cut"]);
        assert!(a.findings[0].summary.contains("before the quoted ports"), "{}", a.findings[0].summary);
    }
}

#[test]
fn test_icmp_cut_before_the_ports_leaves_what_it_cannot_be_for() {
    // Another attempt from the same client to the same server, answered after the error: the error
    // decides only the one nothing answered.
    let other_client = "192.0.2.10:40001";
    let answered = [
        packet(1, 10, segment(other_client, SERVER, TcpFlags::SYN, 7000, 0)),
        packet(5, 11, segment(SERVER, other_client, TcpFlags::SYN | TcpFlags::ACK, 9000, 7001)),
        packet(6, 12, segment(other_client, SERVER, TcpFlags::ACK, 7001, 9001)),
    ];
    let mut events = vec![syn(0, 1), cut_icmp(3, 2, Some(2))];
    events.extend(answered);
    let attempts = correlate(events, SynTiming::default(), None);
    let outcomes: Vec<_> = attempts.iter().map(|a| (a.client.port(), a.outcome, a.events.len())).collect();
    assert_eq!(outcomes, [(40000, Outcome::Unreachable, 2), (40001, Outcome::Established, 3)]);
    // A server the kept bytes rule out, a SYN sent again after the error, an error that does not
    // end a connect: each times out, showing the error it kept but was not ended by.
    let elsewhere = {
        let mut e = cut_icmp(3, 2, Some(4));
        if let EventKind::Packet { packet: Packet { body: PacketBody::IcmpError(e), .. }, .. } = &mut e.kind {
            let router: IpAddr = ROUTER.parse().expect("test address");
            e.cut_quote = e.cut_quote.map(|c| CutQuote { dst: AddrPrefix::leading(router, 4), ..c });
        }
        e
    };
    assert_eq!(only(vec![syn(0, 1), elsewhere]).outcome, Outcome::TimedOut);
    let a = only(vec![syn(0, 1), cut_icmp(3, 2, Some(4)), syn(1000, 3)]);
    assert_eq!(verdict(&a), (Outcome::TimedOut, Some(Errno::Etimedout), 2));
    assert!(a.events[1].note.as_deref().unwrap_or_default().contains("the SYN was sent again after it"));
    let mut mtu = cut_icmp(3, 2, Some(4));
    if let EventKind::Packet { packet: Packet { body: PacketBody::IcmpError(e), .. }, .. } = &mut mtu.kind {
        e.code = 4;
    }
    let a = only(vec![syn(0, 1), mtu]);
    assert_eq!(a.outcome, Outcome::TimedOut);
    assert!(a.events[1].note.as_deref().unwrap_or_default().contains("does not end a connect"));
    assert!(a.findings.is_empty(), "{:?}", a.findings);
}

#[test]
fn test_icmp_cut_before_the_ports_goes_to_the_syn_of_its_ip_mark() {
    // Two attempts from the client to the server, neither answered otherwise: the error's quoted
    // IP identification names the second's SYN.
    let marked = |mut event: Event, ident: u32| {
        if let EventKind::Packet { packet: Packet { body: PacketBody::Tcp(seg), .. }, .. } = &mut event.kind {
            seg.ip_ident = ident;
        }
        event
    };
    let second = "192.0.2.10:40001";
    let mut error = cut_icmp(3, 3, Some(4));
    if let EventKind::Packet { packet: Packet { body: PacketBody::IcmpError(e), .. }, .. } = &mut error.kind {
        e.cut_quote = e.cut_quote.map(|c| CutQuote { ident: Some(0x2222), ..c });
    }
    let events = vec![
        marked(syn(0, 1), 0x1111),
        marked(packet(1, 2, segment(second, SERVER, TcpFlags::SYN, 7000, 0)), 0x2222),
        error,
    ];
    let attempts = correlate(events, SynTiming::default(), None);
    let outcomes: Vec<_> = attempts.iter().map(|a| (a.client.port(), a.outcome)).collect();
    assert_eq!(outcomes, [(40000, Outcome::TimedOut), (40001, Outcome::Unreachable)]);
}

/// An IPv6 SYN and, 2 ms later, an ICMPv6 error of `icmp_type` and `code` from the router that
/// quotes it.
fn syn6_and_icmp6(icmp_type: u8, code: u8) -> Vec<Event> {
    let client = "[2001:db8:1::10]:40000";
    let server = "[2001:db8:2::10]:8080";
    let syn6 = packet(0, 1, segment(client, server, TcpFlags::SYN, ISN, 0));
    let mut error = icmp(2, 2, "2001:db8:1::1", icmp_type, code, ISN);
    if let EventKind::Packet { packet: Packet { body: PacketBody::IcmpError(e), .. }, .. } = &mut error.kind {
        e.dst = addr(client).ip();
        if let Some(q) = e.quoted.as_mut() {
            q.src = addr(client).ip();
            q.dst = addr(server).ip();
        }
    }
    vec![syn6, error]
}

#[test]
fn test_syn_sent_icmpv6_port_unreachable() {
    let a = only(syn6_and_icmp6(1, 4));
    assert_eq!(verdict(&a), (Outcome::Unreachable, Some(Errno::Econnrefused), 1));
    assert_eq!(a.family, Family::Ipv6);
}

#[test]
fn test_syn_sent_retransmits_then_capture_ends() {
    let a = only(vec![syn(0, 1), syn(1000, 2), syn(2000, 3), syn(3000, 4)]);
    assert_eq!(verdict(&a), (Outcome::TimedOut, Some(Errno::Etimedout), 4));
    let note = a.events[3].note.as_deref().unwrap_or_default();
    assert!(note.starts_with("retransmit #3, +1.00 s"), "{note}");
    assert!(note.contains("expected 1.00 s with Linux 6.5+ backoff"), "{note}");
    assert!(a.cause.contains("before Linux's deadline of 131.00 s"), "{}", a.cause);
}

#[test]
fn test_syn_sent_classic_backoff_recognised() {
    let a = only(vec![syn(0, 1), syn(1000, 2), syn(3000, 3), syn(7000, 4)]);
    assert!(a.events[3].note.as_deref().unwrap_or_default().contains("classic exponential"));
    assert!(a.cause.contains("deadline of 127.00 s"), "{}", a.cause);
}

#[test]
fn test_syn_sent_new_isn_supersedes() {
    // A new ISN while the first SYN's retransmit could still come: the client gave up on it.
    let mut events = vec![syn(0, 1)];
    events.push(packet(800, 2, segment(CLIENT, SERVER, TcpFlags::SYN, ISN + 99_999, 0)));
    let attempts = correlate(events, SynTiming::default(), None);
    assert_eq!(attempts.len(), 2);
    assert!(attempts[0].cause.contains("gave up on this attempt"), "{}", attempts[0].cause);
    // A new ISN long after the first SYN's retransmits stopped: the first attempt was over already.
    let mut events = vec![syn(0, 1)];
    events.push(packet(8000, 2, segment(CLIENT, SERVER, TcpFlags::SYN, ISN + 99_999, 0)));
    let attempts = correlate(events, SynTiming::default(), None);
    assert_eq!(attempts.len(), 2);
    assert!(attempts[0].cause.contains("No retransmit #1 follows"), "{}", attempts[0].cause);
}

#[test]
fn test_refused_then_syn_again_is_counted() {
    // Windows re-sends the same SYN after a RST; Linux would not.
    let a = only(vec![
        syn(0, 1),
        from_server(50, 2, TcpFlags::RST | TcpFlags::ACK, 0, ISN + 1),
        syn(550, 3),
        from_server(600, 4, TcpFlags::RST | TcpFlags::ACK, 0, ISN + 1),
    ]);
    assert_eq!(verdict(&a), (Outcome::Refused, Some(Errno::Econnrefused), 2));
    assert!(a.events[2].note.as_deref().unwrap_or_default().contains("Windows"));
}

/// A reset <SEQ=0><ACK=ISN+1><CTL=RST,ACK> with no SYN in the capture reveals an attempt (this
/// host's firewall forged it before the SYN left); one that answers a scanner's FIN, NULL or Xmas
/// probe, a segment with no ACK (RFC 9293 3.10.7.1: <ACK=SEG.SEQ+SEG.LEN>), reveals none.
#[test]
fn test_a_reset_answering_a_probe_is_no_attempt() {
    let orphan =
        correlate(vec![from_server(0, 1, TcpFlags::RST | TcpFlags::ACK, 0, ISN + 1)], SynTiming::default(), None);
    assert_eq!(orphan.iter().map(verdict).collect::<Vec<_>>(), [(Outcome::Refused, Some(Errno::Econnrefused), 0)]);
    let fin = TcpFlags::FIN;
    let xmas = TcpFlags::FIN | TcpFlags::PSH | TcpFlags::URG;
    for (probe, len_in_seq) in [(fin, 1), (0, 0), (xmas, 1)] {
        let answered = correlate(
            vec![
                from_client(0, 1, probe, ISN, 0),
                from_server(1, 2, TcpFlags::RST | TcpFlags::ACK, 0, ISN + len_in_seq),
            ],
            SynTiming::default(),
            None,
        );
        assert!(answered.is_empty(), "flags {probe:#x}: {answered:#?}");
    }
    // A reset that does not answer the probe (another ack) still reveals an attempt.
    let unanswered = correlate(
        vec![from_client(0, 1, fin, ISN + 500, 0), from_server(1, 2, TcpFlags::RST | TcpFlags::ACK, 0, ISN + 1)],
        SynTiming::default(),
        None,
    );
    assert_eq!(unanswered.len(), 1);
}

#[test]
fn test_arp_failure_found_from_local_icmp() {
    // No SYN on the wire: three unanswered who-has, then the host's own ICMP host unreachable on lo.
    let target = Ipv4Addr::new(198, 51, 100, 10);
    let a = only(vec![
        arp_request(0, 1, target),
        arp_request(1000, 2, target),
        arp_request(2000, 3, target),
        icmp(3050, 4, "192.0.2.10", 3, 1, ISN),
    ]);
    assert_eq!(verdict(&a), (Outcome::Unreachable, Some(Errno::Ehostunreach), 0));
    assert_eq!(a.events.len(), 4);
    assert_eq!(a.events[3].dir, Dir::Local);
    assert_eq!(a.events[0].t, 0.0);
    assert!(
        a.cause.starts_with("No ARP reply for 198.51.100.10: the kernel sent 3 request(s) over 2.00 s"),
        "{}",
        a.cause
    );
}

/// No SYN left, so a resolution failed: a next hop that answered just before (the gateway, for
/// another connection) is not the one the kernel gave up on, and is not on the timeline.
#[test]
fn test_a_next_hop_that_answered_is_not_the_failed_resolution() {
    let (gateway, target) = (ROUTER.parse().expect("router"), Ipv4Addr::new(198, 51, 100, 10));
    let a = only(vec![
        arp_request(0, 1, gateway),
        arp_reply(1, 2, gateway),
        arp_request(100, 3, target),
        arp_request(1100, 4, target),
        arp_request(2100, 5, target),
        icmp(3150, 6, "192.0.2.10", 3, 1, ISN),
    ]);
    assert_eq!(verdict(&a), (Outcome::Unreachable, Some(Errno::Ehostunreach), 0));
    assert_eq!(a.events.iter().filter_map(|e| e.frame).collect::<Vec<_>>(), [3, 4, 5, 6]);
    assert_eq!(a.start, at_ms(100));
    assert!(a.cause.starts_with("No ARP reply for 198.51.100.10: the kernel sent 3 request(s)"), "{}", a.cause);
}

/// The first SYN left as the gateway's ARP reply came in (`__neigh_update` sends what waited for
/// it): the request and the reply are on the timeline, before the SYN, which waited for them. An
/// answer a little longer before the SYN, or a resolution after it, belongs to no attempt.
#[test]
fn test_the_next_hop_the_first_syn_waited_for_is_on_the_timeline() {
    let gateway: Ipv4Addr = ROUTER.parse().expect("router");
    let shown = |events: Vec<Event>| -> Vec<(What, Option<u64>)> {
        only(events).events.iter().map(|e| (e.what, e.frame)).collect()
    };
    let waited = shown(vec![
        arp_request(9, 1, gateway),
        arp_reply(10, 2, gateway),
        syn(11, 3),
        arp_request(500, 4, gateway),
        arp_reply(501, 5, gateway),
        syn(1011, 6),
        from_server(1012, 7, TcpFlags::RST | TcpFlags::ACK, 0, ISN + 1),
    ]);
    let (request, reply) = ((What::ArpRequest, Some(1)), (What::ArpReply, Some(2)));
    assert_eq!(waited, [request, reply, (What::Syn, Some(3)), (What::Syn, Some(6)), (What::Rst, Some(7))]);
    let attempt = only(vec![arp_request(9, 1, gateway), arp_reply(10, 2, gateway), syn(11, 3)]);
    assert_eq!(attempt.start, at_ms(9), "the attempt starts with the resolution it waited for");
    let before = shown(vec![
        arp_request(7, 1, gateway),
        arp_reply(8, 2, gateway),
        syn(11, 3),
        from_server(12, 4, TcpFlags::RST | TcpFlags::ACK, 0, ISN + 1),
    ]);
    assert_eq!(before, [(What::Syn, Some(3)), (What::Rst, Some(4))]);
}

/// A next hop answered before the resolution the first SYN waited for began was resolved for an
/// earlier connection (the entry then stays usable for seconds): only the last resolution, with
/// every request it took, is on the timeline, and the attempt starts with it. The same holds for an
/// on-link server, whether the SYN waited for it or found it resolved.
#[test]
fn test_an_earlier_resolution_of_the_next_hop_is_not_the_attempts() {
    let gateway: Ipv4Addr = ROUTER.parse().expect("router");
    let IpAddr::V4(server) = addr(SERVER).ip() else { unreachable!("the test server is IPv4") };
    let frames = |events: Vec<Event>| -> (Timestamp, Vec<u64>) {
        let attempt = only(events);
        (attempt.start, attempt.events.iter().filter_map(|e| e.frame).collect())
    };
    let refused = |ms: i64, frame: u64| from_server(ms, frame, TcpFlags::RST | TcpFlags::ACK, 0, ISN + 1);
    let (start, shown) = frames(vec![
        arp_request(0, 1, gateway),
        arp_reply(1, 2, gateway),
        arp_request(1500, 3, gateway),
        arp_request(2500, 4, gateway),
        arp_reply(2501, 5, gateway),
        arp_reply(2502, 6, gateway),
        syn(2503, 7),
        refused(2504, 8),
    ]);
    assert_eq!((start, shown), (at_ms(1500), vec![3, 4, 5, 6, 7, 8]), "the gateway, asked twice, answered twice");
    let (start, shown) = frames(vec![
        arp_request(0, 1, server),
        arp_reply(1, 2, server),
        arp_request(2000, 3, server),
        arp_reply(2001, 4, server),
        syn(2001, 5),
        refused(2002, 6),
    ]);
    assert_eq!((start, shown), (at_ms(2000), vec![3, 4, 5, 6]), "an on-link server the SYN waited for");
    let (start, shown) = frames(vec![
        arp_request(0, 1, server),
        arp_reply(1, 2, server),
        arp_request(1000, 3, server),
        syn(2000, 4),
        arp_request(2500, 5, server),
        refused(2600, 6),
    ]);
    assert_eq!((start, shown), (at_ms(1000), vec![3, 4, 5, 6]), "an on-link server resolved already, probed");
}

#[test]
fn test_events_in_any_order_give_the_same_attempts() {
    let ordered = vec![
        syn(0, 1),
        icmp(0, 2, ROUTER, 3, 1, ISN),
        syn(1020, 3),
        icmp(1020, 4, ROUTER, 3, 1, ISN),
        arp_request(1500, 5, Ipv4Addr::new(198, 51, 100, 10)),
    ];
    let expected = correlate(ordered.clone(), SynTiming::default(), None);
    let mut reversed = ordered;
    reversed.reverse();
    assert_eq!(correlate(reversed, SynTiming::default(), None), expected);
}

mod live {
    //! Live traces: syscalls merged with packets; the syscall's errno decides.
    use super::*;
    use crate::event::{Call, SyscallEvent, SyscallPhase};
    use crate::flow::FlowKey;
    use crate::timeline::ErrnoSource;

    /// A live capture ran alongside (drops nothing).
    fn captured(ms: i64) -> Event {
        Event { ts: at_ms(ms), kind: EventKind::CaptureStats { packets: 10, dropped: 0 } }
    }

    fn flow() -> FlowKey {
        FlowKey { client: addr(CLIENT), server: addr(SERVER) }
    }

    fn enter(ms: i64, call: Call) -> Event {
        let phase = SyscallPhase::Enter { args: "fd 3".into() };
        Event { ts: at_ms(ms), kind: EventKind::Syscall(SyscallEvent { flow: flow(), call, phase }) }
    }

    fn ret(ms: i64, call: Call, ret: i64, errno: Option<i32>, so_error: Option<i32>) -> Event {
        let phase = SyscallPhase::Return { ret, errno, so_error, detail: String::new() };
        Event { ts: at_ms(ms), kind: EventKind::Syscall(SyscallEvent { flow: flow(), call, phase }) }
    }

    #[test]
    fn test_blocking_connect_refused() {
        let a = only(vec![
            enter(0, Call::Connect),
            syn(0, 1),
            from_server(1, 2, TcpFlags::RST | TcpFlags::ACK, 0, ISN + 1),
            ret(1, Call::Connect, -1, Some(111), None),
            captured(2),
        ]);
        assert_eq!(verdict(&a), (Outcome::Refused, Some(Errno::Econnrefused), 1));
        assert_eq!(a.errno_source, ErrnoSource::Syscall);
        let whats: Vec<What> = a.events.iter().map(|e| e.what).collect();
        assert_eq!(whats, [What::Syscall, What::Syn, What::Rst, What::Syscall]);
        assert!(a.events[3].summary.contains("ECONNREFUSED"), "{}", a.events[3].summary);
    }

    #[test]
    fn test_epoll_connect_established() {
        let a = only(vec![
            enter(0, Call::Connect),
            syn(0, 1),
            ret(0, Call::Connect, -1, Some(115), None),
            enter(0, Call::EpollWait),
            from_server(5, 2, TcpFlags::SYN | TcpFlags::ACK, 77, ISN + 1),
            from_client(5, 3, TcpFlags::ACK, ISN + 1, 78),
            ret(5, Call::EpollWait, 1, None, None),
            enter(5, Call::GetsockoptSoError),
            ret(5, Call::GetsockoptSoError, 0, None, Some(0)),
            captured(6),
        ]);
        assert_eq!(verdict(&a), (Outcome::Established, None, 1));
        assert_eq!(a.decided_after, Some(0.005));
    }

    #[test]
    fn test_connect_no_route_is_local_error() {
        let a = only(vec![enter(0, Call::Connect), ret(0, Call::Connect, -1, Some(101), None), captured(1)]);
        assert_eq!(verdict(&a), (Outcome::LocalError, Some(Errno::Enetunreach), 0));
        assert!(a.cause.contains("no route"), "{}", a.cause);
    }

    #[test]
    fn test_without_capture_nothing_is_claimed_about_the_wire() {
        let a = only(vec![enter(0, Call::Connect), ret(3, Call::Connect, -1, Some(111), None)]);
        assert_eq!(verdict(&a), (Outcome::Refused, Some(Errno::Econnrefused), 0));
        assert!(a.cause.contains("--no-capture") && !a.cause.contains("no packet"), "{}", a.cause);
    }

    #[test]
    fn test_capture_drops_are_reported() {
        let mut events = vec![enter(0, Call::Connect), syn(0, 1), ret(1, Call::Connect, 0, None, None)];
        events.push(Event { ts: at_ms(2), kind: EventKind::CaptureStats { packets: 1, dropped: 3 } });
        let a = only(events);
        assert!(a.cause.contains("dropped 3 packet(s)"), "{}", a.cause);
    }

    #[test]
    fn test_wait_timeout_is_aborted() {
        let a = only(vec![
            enter(0, Call::Connect),
            syn(0, 1),
            ret(0, Call::Connect, -1, Some(115), None),
            enter(0, Call::Poll),
            syn(1000, 2),
            ret(1500, Call::Poll, 0, None, None),
            syn(2000, 3),
            captured(2100),
        ]);
        assert_eq!(verdict(&a), (Outcome::Aborted, None, 3));
        // (The socket stays open after the application stops waiting: the third SYN came after.)
        let stopped = "The application stopped waiting after 1.50 s (--timeout) before the kernel decided: 2 SYN(s) were on the wire";
        assert!(a.cause.starts_with(stopped), "{}", a.cause);
    }

    /// Stopped while the kernel still resolved the gateway: the SYN had not left, and says so.
    #[test]
    fn test_wait_timeout_while_the_next_hop_resolves() {
        let gateway: Ipv4Addr = ROUTER.parse().expect("router");
        let a = only(vec![
            enter(0, Call::Connect),
            arp_request(0, 1, gateway),
            ret(0, Call::Connect, -1, Some(115), None),
            enter(0, Call::EpollWait),
            ret(10, Call::EpollWait, 0, None, None),
            arp_reply(20, 2, gateway),
            syn(20, 3),
            captured(30),
        ]);
        assert_eq!(verdict(&a), (Outcome::Aborted, None, 1));
        assert!(a.cause.contains("no SYN had left yet (it waited for the next hop's ARP or ND answer)"), "{}", a.cause);
        assert!(a.events.iter().any(|e| e.what == What::ArpRequest), "{:?}", a.events);
    }

    #[test]
    fn test_syn_ack_on_wire_but_connect_timed_out() {
        // An INPUT drop: the SYN-ACKs are captured, yet the socket never sees them.
        let a = only(vec![
            enter(0, Call::Connect),
            syn(0, 1),
            from_server(1, 2, TcpFlags::SYN | TcpFlags::ACK, 77, ISN + 1),
            ret(3000, Call::Connect, -1, Some(110), None),
            captured(3100),
        ]);
        assert_eq!(verdict(&a), (Outcome::TimedOut, Some(Errno::Etimedout), 1));
        assert!(a.cause.contains("dropped them on input"), "{}", a.cause);
    }

    #[test]
    fn test_syn_deadline_beats_neighbour_failure() {
        // tcp_syn_retries=1: the 3 s SYN deadline and the 3 s neighbour timeout coincide.
        let target = Ipv4Addr::new(198, 51, 100, 10);
        let events = vec![
            enter(0, Call::Connect),
            arp_request(0, 1, target),
            arp_request(1000, 2, target),
            arp_request(2000, 3, target),
            icmp(3050, 4, "192.0.2.10", 3, 1, ISN),
            ret(3050, Call::Connect, -1, Some(110), None),
            captured(3100),
        ];
        let timing = SynTiming { syn_retries: 1, ..SynTiming::default() };
        let attempts = correlate(events, timing, None);
        let a = &attempts[0];
        assert_eq!(verdict(a), (Outcome::TimedOut, Some(Errno::Etimedout), 0));
        assert!(a.cause.contains("ran out before EHOSTUNREACH could reach the socket"), "{}", a.cause);
    }

    #[test]
    fn test_syscall_errno_wins_when_packets_disagree() {
        // ICMP port unreachable on the wire implies ECONNREFUSED; the syscall says otherwise.
        let a = only(vec![
            enter(0, Call::Connect),
            syn(0, 1),
            icmp(1, 2, ROUTER, 3, 3, ISN),
            ret(1, Call::Connect, -1, Some(113), None),
            captured(2),
        ]);
        assert_eq!(verdict(&a), (Outcome::Unreachable, Some(Errno::Ehostunreach), 1));
        assert!(a.cause.contains("while the packets alone point to ECONNREFUSED"), "{}", a.cause);
    }
}

#[test]
fn test_rst_answering_an_unseen_syn_reveals_the_attempt() {
    // <SEQ=0><ACK=ISN+1><RST,ACK> answers a SYN; over the loopback device it was forged locally.
    let mut rst = from_server(0, 1, TcpFlags::RST | TcpFlags::ACK, 0, ISN + 1);
    if let EventKind::Packet { packet, .. } = &mut rst.kind {
        packet.on_loopback = true;
    }
    let a = only(vec![rst]);
    assert_eq!(verdict(&a), (Outcome::Refused, Some(Errno::Econnrefused), 0));
    assert_eq!(a.isn, ISN);
    assert_eq!(a.events[0].dir, Dir::Local);
    assert_eq!(a.findings.iter().map(|f| f.code).collect::<Vec<_>>(), ["local_reject"]);
    // A RST with a sequence number resets some connection, not an attempt: nothing is made of it.
    assert!(correlate(vec![from_server(0, 1, TcpFlags::RST | TcpFlags::ACK, 5, ISN + 1)], SynTiming::default(), None)
        .is_empty());
}

#[test]
fn test_missing_retransmit_is_flagged_after_the_deadline() {
    // tcp_syn_retries=2 on 6.5+: retransmits at 1, 2, 3, 4, 5 s and ETIMEDOUT at 7 s; the one at 3 s is missing.
    let timing = SynTiming { syn_retries: 2, ..SynTiming::default() };
    let events = vec![syn(0, 1), syn(1000, 2), syn(2000, 3), syn(4000, 4), syn(5000, 5)];
    let attempts = correlate(events, timing, Some(at_ms(7500)));
    assert!(
        attempts[0].cause.contains("Only 4 of the 5 retransmits Linux schedules are in the capture: 1 missing"),
        "{}",
        attempts[0].cause
    );
}

#[test]
fn test_established_then_syn_ack_retransmits_is_listen_overflow() {
    let synack = |ms, frame| from_server(ms, frame, TcpFlags::SYN | TcpFlags::ACK, 77, ISN + 1);
    let a = only(vec![
        syn(0, 1),
        synack(1, 2),
        from_client(1, 3, TcpFlags::ACK, ISN + 1, 78),
        synack(1001, 4),
        from_client(1001, 5, TcpFlags::ACK, ISN + 1, 78),
    ]);
    assert_eq!(verdict(&a), (Outcome::Established, None, 1));
    assert_eq!(a.findings.iter().map(|f| f.code).collect::<Vec<_>>(), ["listen_queue_overflow"]);
}

#[test]
fn test_quick_retransmit_after_an_unacceptable_ack() {
    // tcp_rcv_synsent_state_process re-arms the timer at TCP_TIMEOUT_MIN after an unacceptable ACK.
    let a = only(vec![syn(0, 1), from_server(1, 2, TcpFlags::RST | TcpFlags::ACK, 0, ISN), syn(11, 3), syn(1011, 4)]);
    assert_eq!(verdict(&a), (Outcome::TimedOut, Some(Errno::Etimedout), 3));
    let notes: Vec<&str> = a.events.iter().filter(|e| e.what == What::Syn).filter_map(|e| e.note.as_deref()).collect();
    assert!(notes[1].contains("TCP_TIMEOUT_MIN"), "{notes:?}");
    // The schedule resumes from the quick retransmit: the next one is Linux's second, 1 s later.
    assert!(notes[2].contains("expected 1.00 s"), "{notes:?}");
    // A retransmit after a plain timeout is not mistaken for a quick one.
    let b = only(vec![syn(0, 1), syn(1000, 2)]);
    assert!(!b.events[1].note.as_deref().unwrap_or_default().contains("TCP_TIMEOUT_MIN"));
}

/// Streams events in the order given (file order), as a replay does.
fn stream(events: &[Event]) -> Vec<Attempt> {
    let mut correlator = super::Correlator::streaming(SynTiming::default());
    let mut out = Vec::new();
    for event in events {
        correlator.push(event);
        out.extend(correlator.drain_finished().map(super::Finished::report));
    }
    let end = events.iter().map(|e| e.ts).max().unwrap_or_default();
    out.extend(correlator.finish(end));
    out
}

#[test]
fn test_streaming_finishes_attempts_as_the_clock_passes_them() {
    // An established attempt, then another 10 s later: the first is finished before the second opens.
    let mut correlator = super::Correlator::streaming(SynTiming::default());
    correlator.push(&syn(0, 1));
    correlator.push(&from_server(1, 2, TcpFlags::SYN | TcpFlags::ACK, 5000, ISN + 1));
    correlator.push(&from_client(2, 3, TcpFlags::ACK, ISN + 1, 5001));
    assert_eq!(correlator.open_attempts(), 1);
    let other = packet(10_000, 4, segment("192.0.2.11:40000", SERVER, TcpFlags::SYN, 7, 0));
    correlator.push(&other);
    let finished: Vec<Attempt> = correlator.drain_finished().map(super::Finished::report).collect();
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].outcome, Outcome::Established);
    assert_eq!(correlator.open_attempts(), 1);
    // A data segment of the finished connection no longer reaches any attempt; the open attempt,
    // still unanswered, awaits its client's segments (an ACK would prove a SYN-ACK the capture
    // lacks), never its server's.
    let later = at_ms(10_001);
    let other_client = End::of(addr("192.0.2.11:40000"));
    assert_eq!(correlator.offer_segment(later, End::of(addr(CLIENT)), End::of(addr(SERVER))), super::Offered::Skipped);
    assert_eq!(correlator.offer_segment(later, End::of(addr(SERVER)), other_client), super::Offered::Skipped);
    assert_eq!(correlator.offer_segment(later, other_client, End::of(addr(SERVER))), super::Offered::NeedsDecode);
}

#[test]
fn test_streaming_keeps_late_evidence_of_settled_attempts() {
    let events = vec![
        syn(0, 1),
        from_server(1, 2, TcpFlags::SYN | TcpFlags::ACK, 5000, ISN + 1),
        from_client(2, 3, TcpFlags::ACK, ISN + 1, 5001),
        // The server retransmits its SYN-ACK 1 s later: it never took our ACK.
        from_server(1001, 4, TcpFlags::SYN | TcpFlags::ACK, 5000, ISN + 1),
        packet(30_000, 5, segment("192.0.2.11:40000", SERVER, TcpFlags::SYN, 7, 0)),
    ];
    let streamed = stream(&events);
    let whole = correlate(events, SynTiming::default(), None);
    assert_eq!(streamed, whole);
    assert!(whole[0].findings.iter().any(|f| f.code == "listen_queue_overflow"), "{:?}", whole[0].findings);
}

#[test]
fn test_lone_garbage_timestamp_does_not_end_attempts() {
    // The SYN-ACK's record is dated 200 years later (seen in real captures): in file order it must
    // not move the clock and finish the attempt before its own answer is read.
    let garbage = from_server(200 * 365 * 86_400_000, 2, TcpFlags::SYN | TcpFlags::ACK, 5000, ISN + 1);
    let attempts = stream(&[syn(0, 1), garbage, from_client(2, 3, TcpFlags::ACK, ISN + 1, 5001)]);
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, Outcome::Established);
    // A real gap, confirmed by the next record, moves the clock: the attempt before it is finished.
    let late = |ms, frame| packet(ms, frame, segment("192.0.2.11:40000", SERVER, TcpFlags::SYN, 7, 0));
    let attempts = stream(&[syn(0, 1), late(7_200_000, 2), late(7_201_000, 3)]);
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].outcome, Outcome::TimedOut);
}

/// Found by fuzzing: SYN retransmits dated at the two ends of time, and more retransmits than any
/// schedule has, overflowed the schedule fit and the retirement time.
#[test]
fn test_retransmits_at_absurd_times_do_not_overflow() {
    let mut events = Vec::new();
    for (frame, ts) in [i64::MIN + 1, 0, i64::MAX - 1].into_iter().enumerate() {
        let mut e = syn(0, frame as u64 + 1);
        e.ts = Timestamp(ts);
        events.push(e);
    }
    for n in 0..100 {
        events.push(syn(n * 1000, 10 + n as u64));
    }
    let attempts = correlate(events.clone(), SynTiming::default(), None);
    assert!(!attempts.is_empty());
    assert!(!stream(&events).is_empty());
}

#[test]
fn test_offered_segments_go_exactly_as_pushed_ones() {
    use super::Offered::{NeedsDecode, Skipped};
    const PSH_ACK: u8 = TcpFlags::PSH | TcpFlags::ACK;
    // (event, what offering it must give: None for SYNs and RSTs, which are never offered)
    let script = [
        (syn(0, 1), None),
        // Before any answer a client segment may decide the attempt (an ACK at ISN+1 proves a
        // SYN-ACK the capture lacks): it needs decoding, even when, as here, it does not.
        (from_client(1, 2, PSH_ACK, ISN + 5, 5001), Some(NeedsDecode)),
        // A server segment without SYN changes no attempt, whatever its state.
        (from_server(2, 3, PSH_ACK, 5001, ISN + 1), Some(Skipped)),
        (from_server(3, 4, TcpFlags::SYN | TcpFlags::ACK, 5000, ISN + 1), None),
        // Until the client's ACK completes the handshake its segments need decoding ...
        (from_client(4, 5, TcpFlags::ACK, ISN + 1, 5001), Some(NeedsDecode)),
        // ... then they belong to the connection.
        (from_client(5, 6, PSH_ACK, ISN + 1, 5001), Some(Skipped)),
        (from_server(6, 7, PSH_ACK, 5001, ISN + 11), Some(Skipped)),
        (packet(7, 8, segment("192.0.2.99:1", SERVER, PSH_ACK, 1, 1)), Some(Skipped)),
        // A second attempt, unanswered: its client's segment, 10 s later, finds its time up and
        // goes the full way, which finishes it.
        (packet(8, 9, segment("192.0.2.11:40000", SERVER, TcpFlags::SYN, 7, 0)), None),
        (packet(10_000, 10, segment("192.0.2.11:40000", SERVER, PSH_ACK, 8, 1)), Some(NeedsDecode)),
    ];
    let events: Vec<Event> = script.iter().map(|(e, _)| e.clone()).collect();
    let reference = correlate(events, SynTiming::default(), None);

    let mut correlator = super::Correlator::streaming(SynTiming::default());
    let mut offered = Vec::new();
    for (event, _) in &script {
        let EventKind::Packet { packet: Packet { body: PacketBody::Tcp(seg), .. }, .. } = &event.kind else {
            unreachable!("TCP only")
        };
        if seg.flags.is_ack_without_syn_or_rst() {
            let result = correlator.offer_segment(event.ts, End::of(seg.src), End::of(seg.dst));
            offered.push(Some(result));
            if result != NeedsDecode {
                continue;
            }
        } else {
            offered.push(None);
        }
        correlator.push(event);
    }
    let mut streamed: Vec<Attempt> = correlator.drain_finished().map(super::Finished::report).collect();
    streamed.extend(correlator.finish(at_ms(10_000)));
    let expected: Vec<_> = script.iter().map(|(_, o)| *o).collect();
    assert_eq!(offered, expected);
    assert_eq!(streamed, reference);
    assert_eq!(reference.len(), 2);
}

#[test]
fn test_a_spare_carries_nothing_into_the_next_attempt() {
    // An unanswered attempt with retransmits is worded and its memory handed back; the next
    // attempt, built in that memory, reports exactly what it reports in a fresh correlator.
    let first = [syn(0, 1), syn(1000, 2), syn(2000, 3), syn(4000, 4)];
    let other = "192.0.2.11:40001";
    let second = [
        packet(60_000, 6, segment(other, SERVER, TcpFlags::SYN, 7, 0)),
        packet(60_001, 7, segment(SERVER, other, TcpFlags::RST | TcpFlags::ACK, 0, 8)),
    ];
    let mut correlator = super::Correlator::streaming(SynTiming::default());
    for event in &first {
        correlator.push(event);
    }
    // Any later record moves the clock past the first attempt's end.
    correlator.push(&packet(59_000, 5, segment("192.0.2.12:1", SERVER, TcpFlags::ACK, 1, 1)));
    let spares: Vec<_> = correlator.drain_finished().map(|f| f.report_and_spare().1).collect();
    assert_eq!(spares.len(), 1);
    correlator.take_spares(spares);
    for event in &second {
        correlator.push(event);
    }
    let reused = correlator.finish(at_ms(70_000));
    let fresh = correlate(second.to_vec(), SynTiming::default(), Some(at_ms(70_000)));
    assert_eq!(reused, fresh);
    assert_eq!(fresh[0].events.len(), 2);
}

#[test]
fn test_an_expired_attempt_reads_the_same_whenever_the_clock_passed_it() {
    // Two SYNs whose gap is not Linux's, then silence; the next record of the capture (another
    // flow) comes 20 s or 60 s later. The attempt's words must not depend on which.
    let first_attempt = |next_record_ms: i64| -> Attempt {
        let events = vec![
            syn(0, 1),
            syn(2_500, 2),
            packet(next_record_ms, 3, segment("192.0.2.11:40000", SERVER, TcpFlags::SYN, 7, 0)),
        ];
        correlate(events, SynTiming::default(), None).remove(0)
    };
    let (soon, late) = (first_attempt(20_000), first_attempt(60_000));
    assert_eq!(soon, late);
    assert!(soon.cause.contains("sends nothing more for 7.60 s after its last SYN"), "{}", soon.cause);
}

#[test]
fn test_an_attempt_worded_in_the_memory_of_another_reads_as_worded_afresh() {
    // A replay words each attempt in the strings and timeline of the one before (`report_reusing`):
    // longer and shorter timelines, worded notes and fixed ones, in both orders, must carry nothing over.
    let (a, b, c) = ("192.0.2.11:40001", "192.0.2.12:40002", "192.0.2.13:40003");
    let events = vec![
        // Unanswered: four SYNs, three of them retransmits with worded notes.
        syn(0, 1),
        syn(1000, 2),
        syn(2000, 3),
        syn(4000, 4),
        // Refused: two entries.
        packet(10, 5, segment(a, SERVER, TcpFlags::SYN, 7, 0)),
        packet(11, 6, segment(SERVER, a, TcpFlags::RST | TcpFlags::ACK, 0, 8)),
        // Established, with later segments counted in its cause.
        packet(20, 7, segment(b, SERVER, TcpFlags::SYN, 70, 0)),
        packet(21, 8, segment(SERVER, b, TcpFlags::SYN | TcpFlags::ACK, 500, 71)),
        packet(22, 9, segment(b, SERVER, TcpFlags::ACK, 71, 501)),
        packet(23, 10, segment(b, SERVER, TcpFlags::ACK | TcpFlags::PSH, 71, 501)),
        // A lone RST without ACK: ignored, then nothing.
        packet(30, 11, segment(c, SERVER, TcpFlags::SYN, 700, 0)),
        packet(31, 12, segment(SERVER, c, TcpFlags::RST, 0, 0)),
    ];
    let finished = || finished_at(&events, 100_000);
    let fresh: Vec<Attempt> = finished().into_iter().map(super::Finished::report).collect();
    assert_eq!(fresh.len(), 4);
    assert!(fresh.iter().any(|a| a.events.len() == 4) && fresh.iter().any(|a| a.events.len() == 2));
    for order in [[0, 1, 2, 3], [3, 2, 1, 0], [1, 0, 3, 2], [2, 0, 1, 3]] {
        let mut attempts: Vec<Option<super::Finished>> = finished().into_iter().map(Some).collect();
        let mut reused = fresh[order[0]].clone();
        reused.cause.push_str(" (words of another attempt)");
        for &i in &order {
            let Some(attempt) = attempts[i].take() else { continue };
            reused = attempt.report_reusing(Some(reused)).0;
            assert_eq!(reused, fresh[i], "attempt {i} worded after {order:?}");
        }
    }
}

/// The attempts `events` open, finished unworded when the capture ends at `end_ms`.
fn finished_at(events: &[Event], end_ms: i64) -> Vec<super::Finished> {
    let mut correlator = super::Correlator::streaming(SynTiming::default());
    for event in events {
        correlator.push(event);
    }
    correlator.close(at_ms(end_ms))
}

#[test]
fn test_a_clean_handshake_reads_as_its_report() {
    let events = [
        syn(0, 1),
        from_server(30, 2, TcpFlags::SYN | TcpFlags::ACK, 5000, ISN + 1),
        from_client(31, 3, TcpFlags::ACK, ISN + 1, 5001),
    ];
    let finished = finished_at(&events, 10_000);
    let handshake = finished[0].handshake().expect("a clean handshake");
    let report = finished[0].clone().report();
    assert_eq!(
        (handshake.client(), handshake.server(), handshake.family()),
        (report.client, report.server, report.family)
    );
    assert_eq!((handshake.start(), handshake.isn()), (report.start, report.isn));
    assert_eq!((Some(handshake.rtt_ms()), Some(handshake.decided_after())), (report.rtt_ms, report.decided_after));
    let mut cause = String::new();
    handshake.cause_into(&mut cause);
    assert_eq!(cause, report.cause);
    assert_eq!(handshake.steps().count(), report.events.len());
    for (step, entry) in handshake.steps().zip(&report.events) {
        let (mut summary, mut note) = (String::new(), String::new());
        step.summary_into(&mut summary);
        assert!(step.note_into(&mut note));
        assert_eq!(
            (step.t(), step.dir(), step.what(), Some(step.frame())),
            (entry.t, entry.dir, entry.what, entry.frame)
        );
        assert_eq!((summary.as_str(), Some(note.as_str())), (entry.summary.as_str(), entry.note.as_deref()));
    }
}

#[test]
fn test_what_is_not_a_clean_handshake() {
    let syn_ack = |ms, frame| from_server(ms, frame, TcpFlags::SYN | TcpFlags::ACK, 5000, ISN + 1);
    let ack = |ms, frame| from_client(ms, frame, TcpFlags::ACK, ISN + 1, 5001);
    let not_clean = [
        // The client's ACK is not in the capture.
        vec![syn(0, 1), syn_ack(30, 2)],
        // It took two SYNs.
        vec![syn(0, 1), syn(1000, 2), syn_ack(1030, 3), ack(1031, 4)],
        // The server retransmitted its SYN-ACK after our ACK (a finding).
        vec![syn(0, 1), syn_ack(30, 2), ack(31, 3), syn_ack(1030, 4)],
        // Refused.
        vec![syn(0, 1), from_server(1, 2, TcpFlags::RST | TcpFlags::ACK, 0, ISN + 1)],
    ];
    for events in not_clean {
        let finished = finished_at(&events, 10_000);
        assert_eq!(finished.len(), 1);
        assert!(finished[0].handshake().is_none(), "{:?}", finished[0].clone().report().cause);
    }
}

#[test]
fn test_streaming_beyond_the_most_open_finishes_those_whose_time_is_nearest() {
    // At most 8 open: six unanswered SYNs, 100 ms apart, an attempt refused at once, a SYN.
    let mut correlator = super::Correlator::streaming(SynTiming::default()).with_max_open(8);
    let client = |n: u64| format!("192.0.2.{n}:40000");
    let syn_from = |n: u64, ms: i64| packet(ms, n, segment(&client(n), SERVER, TcpFlags::SYN, 7, 0));
    let mut finished = Vec::new();
    let push = |correlator: &mut super::Correlator, event: Event, finished: &mut Vec<Attempt>| {
        correlator.push(&event);
        finished.extend(correlator.drain_finished().map(super::Finished::report));
        assert!(correlator.open_attempts() <= 8, "{} open", correlator.open_attempts());
    };
    for n in 1..=7 {
        push(&mut correlator, syn_from(n, 100 * n as i64), &mut finished);
    }
    let rst = segment(SERVER, &client(7), TcpFlags::RST | TcpFlags::ACK, 0, 8);
    push(&mut correlator, packet(701, 20, rst), &mut finished);
    push(&mut correlator, syn_from(8, 800), &mut finished);
    assert!(finished.is_empty(), "nothing is finished while 8 are open: {finished:?}");
    // With 8 open, the next event makes room first: the refused attempt's time is nearest up
    // (1.5 s after its RST; an unanswered SYN waits about 5 s for its retransmit). Its outcome
    // stands: no finding.
    push(&mut correlator, syn_from(10, 900), &mut finished);
    assert_eq!(correlator.finished_early(), 1);
    let [refused] = finished.as_slice() else { panic!("one finished: {finished:?}") };
    assert_eq!(verdict(refused), (Outcome::Refused, Some(Errno::Econnrefused), 1));
    assert!(refused.findings.is_empty(), "{:?}", refused.findings);
    // The next to make room is the oldest SYN: decided on what was seen, and it says so.
    push(&mut correlator, syn_from(11, 1000), &mut finished);
    let [_, early] = finished.as_slice() else { panic!("two finished: {finished:?}") };
    assert_eq!(early.client, addr(&client(1)));
    assert_eq!(verdict(early), (Outcome::TimedOut, Some(Errno::Etimedout), 1));
    assert_eq!(early.findings.iter().map(|f| f.code).collect::<Vec<_>>(), ["decided_early"]);
    assert!(early.findings[0].summary.contains("900.0 ms after it opened"), "{:?}", early.findings);
    assert!(early.cause.contains("synscope stopped following it 900.0 ms after the first SYN"), "{}", early.cause);
    assert_eq!(correlator.finished_early(), 2);
    // Without a bound, the same events finish nothing before the end.
    let mut unbounded = super::Correlator::streaming(SynTiming::default());
    for n in 1..=11 {
        unbounded.push(&syn_from(n, 100 * n as i64));
    }
    assert_eq!((unbounded.open_attempts(), unbounded.drain_finished().count()), (11, 0));
}

#[test]
fn test_a_syn_repeated_past_any_schedule_keeps_its_count_not_its_entries() {
    // 1,000 copies of one SYN, 10 ms apart (a flood on one 4-tuple), 300 RSTs without ACK that
    // Linux ignores, then the RST that refuses it: the timeline keeps 128 SYNs and stops at 256
    // entries (872 SYNs and 172 RSTs are only counted), but the count, the span and the verdict
    // are exact.
    let mut events: Vec<Event> = (0..1000).map(|n| syn(10 * n, n as u64 + 1)).collect();
    events.extend((0..300).map(|n| from_server(10_000 + n, 2000 + n as u64, TcpFlags::RST, 0, 0)));
    events.push(from_server(10_400, 3000, TcpFlags::RST | TcpFlags::ACK, 0, ISN + 1));
    let a = only(events);
    assert_eq!(verdict(&a), (Outcome::Refused, Some(Errno::Econnrefused), 1000));
    assert_eq!(a.events.iter().filter(|e| e.what == What::Syn).count(), 128);
    assert_eq!(a.events.len(), 257, "256 entries, and the deciding RST");
    assert_eq!(a.events.last().map(|e| e.frame), Some(Some(3000)));
    assert!(a.cause.contains("1044 more packets are not shown (872 SYNs past the 128"), "{}", a.cause);
    assert!(
        a.cause.contains("300 answers arrived that Linux ignores (the first 128 are in the timeline)"),
        "{}",
        a.cause
    );
    let finding = a.findings.iter().find(|f| f.code == "answer_ignored").map(|f| f.summary.as_str());
    assert!(
        finding.is_some_and(|f| f.contains("128 × RST") && f.ends_with("; 172 more past the timeline's bound.")),
        "{finding:?}"
    );
}

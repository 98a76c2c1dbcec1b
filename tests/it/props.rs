//! Property tests: arbitrary bytes into the decoder for every link type, arbitrary event sequences
//! into the correlator. Nothing panics, memory does not outlive the capture's clock, what a flow
//! reports does not depend on how it was interleaved with other flows at the same instants, and
//! the replay's shortcuts report what the plain correlator reports.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use proptest::prelude::*;
use synscope::correlate::{correlate, Correlator, Offered};
use synscope::decode::{
    self, AddrPrefix, CutQuote, IcmpError, IcmpErrorKind, LinkDirection, LinkType, Packet, PacketBody, QuotedPacket,
    QuotedTcp, TcpFlags, TcpOptions, TcpSegment,
};
use synscope::event::{Event, EventKind, Span, Timestamp};
use synscope::flow::{End, Family};
use synscope::linux::SynTiming;

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    /// The decoder never panics, and the cheap peeks (plain, and beyond it: tunnels, UDP) never contradict it.
    #[test]
    fn prop_decoder_total_for_every_link_type(link in 0..=LinkType::DECODED.len(), frame in proptest::collection::vec(any::<u8>(), 0..200)) {
        // Every link type the decoder knows, and one it does not (147, LINKTYPE_USER0).
        let link = LinkType::DECODED.get(link).copied().unwrap_or(LinkType(147));
        let decoded = decode::decode(link, &frame);
        if decode::look_beyond_tcp(link, &frame) == decode::Beyond::Udp {
            prop_assert!(matches!(decoded, Ok(Packet { body: PacketBody::Other(_), .. })), "UDP to the look, {:?} to decode", decoded);
        }
        if let Some(peek) = decode::peek_tcp(link, &frame).or_else(|| decode::look_beyond_tcp(link, &frame).tunneled()) {
            match decoded {
                Ok(Packet { body: PacketBody::Tcp(seg), .. }) => {
                    prop_assert_eq!((peek.src, peek.dst, peek.flags), (End::of(seg.src), End::of(seg.dst), seg.flags));
                }
                other => prop_assert!(false, "peek {:?} but decode {:?}", peek, other),
            }
        }
    }
}

/// One of a few clients talking to one of a few servers: small sets, so that answers hit attempts.
fn endpoint(client: bool, i: u8) -> SocketAddr {
    if client {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10 + i % 3)), 40_000 + u16::from(i % 2))
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 10)), 80 + u16::from(i % 2))
    }
}

/// A packet of a small world: a client's SYN or segment, a server's SYN-ACK or RST, or a router's
/// ICMP error quoting a client's SYN; sequence numbers from a few values, so some answers fit.
fn arb_body() -> impl Strategy<Value = PacketBody> {
    let seq = prop_oneof![Just(1000_u32), Just(1001), Just(5000), Just(0), any::<u32>()];
    (any::<u8>(), any::<u8>(), 0..6_u8, seq.clone(), seq, any::<u8>(), 0..20_u8).prop_map(
        |(c, s, kind, seq, ack, flags, icmp_code)| {
            let (client, server) = (endpoint(true, c), endpoint(false, s));
            let segment = |src, dst, flags: u8| {
                PacketBody::Tcp(TcpSegment {
                    src,
                    dst,
                    flags: TcpFlags(flags),
                    seq,
                    ack,
                    window: 64240,
                    options: TcpOptions::default(),
                    payload_len: 0,
                    ttl: 64,
                    // (A few marks, so that a cut ICMP error's quoted one sometimes names the SYN.)
                    ip_ident: seq & 3,
                })
            };
            match kind {
                0 => segment(client, server, TcpFlags::SYN),
                1 => segment(server, client, flags),
                2 => segment(client, server, flags),
                // A router's error quoting a SYN: whole (3), cut by the capture after the ports
                // (4), or before them (5), keeping some of the server's address, and its mark or not.
                _ => {
                    let quoted = QuotedPacket {
                        src: client.ip(),
                        dst: server.ip(),
                        protocol: 6,
                        tcp: Some(QuotedTcp {
                            src_port: client.port(),
                            dst_port: server.port(),
                            seq: (kind == 3).then_some(seq),
                            flags: (kind == 3).then_some(TcpFlags(TcpFlags::SYN)),
                        }),
                    };
                    let cut_quote = (kind == 5).then(|| CutQuote {
                        src: AddrPrefix::leading(client.ip(), 4),
                        dst: AddrPrefix::leading(server.ip(), usize::from(flags % 5)),
                        ident: (flags & 8 != 0).then_some(ack & 3),
                    });
                    PacketBody::IcmpError(Box::new(IcmpError {
                        src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                        dst: client.ip(),
                        family: Family::Ipv4,
                        kind: IcmpErrorKind::DestinationUnreachable,
                        icmp_type: 3,
                        code: icmp_code,
                        mtu: None,
                        quoted: (kind != 5).then_some(quoted),
                        cut_quote,
                    }))
                }
            }
        },
    )
}

fn event(ms: i64, frame: u64, body: PacketBody) -> Event {
    Event {
        ts: Timestamp(1_700_000_000_000_000_000 + ms * 1_000_000),
        kind: EventKind::Packet {
            frame,
            packet: Packet { link_direction: LinkDirection::Unknown, on_loopback: false, body },
        },
    }
}

/// Events with non-decreasing times (gaps of 0 to 5 s, so attempts expire on the way).
fn arb_events() -> impl Strategy<Value = Vec<Event>> {
    arb_events_apart(5_000)
}

/// Events with non-decreasing times, gaps of 0 to `max_gap_ms`.
fn arb_events_apart(max_gap_ms: i64) -> impl Strategy<Value = Vec<Event>> {
    proptest::collection::vec((0..max_gap_ms, arb_body()), 0..80).prop_map(|steps| {
        let mut ms = 0;
        steps
            .into_iter()
            .enumerate()
            .map(|(i, (gap, body))| {
                ms += gap;
                event(ms, i as u64 + 1, body)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// Any sequence: no panic, every attempt worded, and nothing stays open once the capture's
    /// clock is far past it (memory follows the clock, not the length of the capture).
    #[test]
    fn prop_correlator_total_and_bounded(events in arb_events()) {
        let mut correlator = Correlator::streaming(SynTiming::default());
        let mut reported = 0;
        for e in &events {
            correlator.push(e);
            prop_assert!(correlator.open_attempts() <= events.len());
            for finished in correlator.drain_finished() {
                // Wording must not panic either.
                let _ = finished.report();
                reported += 1;
            }
        }
        let end = events.last().map_or(Timestamp(0), |e| e.ts);
        // Ten minutes later, confirmed by a second record: every attempt is past its time.
        for (n, ms) in [600_000_i64, 601_000].into_iter().enumerate() {
            let mut later = event(0, 10_000 + n as u64, PacketBody::Other("later"));
            later.ts = end.plus(Span::from_millis(ms));
            correlator.push(&later);
        }
        reported += correlator.drain_finished().count();
        prop_assert_eq!(correlator.open_attempts(), 0);
        let all = correlate(events, SynTiming::default(), None);
        prop_assert_eq!(reported, all.len());
    }

    /// With at most 8 attempts open (events close together, so that about two cases in three
    /// reach it): never more, no panic, every attempt worded, those finished early to make room
    /// counted, and a settled one never marked as decided early.
    #[test]
    fn prop_correlator_holds_at_most_max_open(events in arb_events_apart(300)) {
        let mut correlator = Correlator::streaming(SynTiming::default()).with_max_open(8);
        let (mut reported, mut decided_early) = (0, 0);
        for e in &events {
            correlator.push(e);
            prop_assert!(correlator.open_attempts() <= 8, "{} open", correlator.open_attempts());
            for finished in correlator.drain_finished() {
                let attempt = finished.report();
                let early = attempt.findings.iter().any(|f| f.code == "decided_early");
                // A refusal is settled: finished early or not, nothing can change it.
                prop_assert!(!early || attempt.outcome != synscope::timeline::Outcome::Refused, "{}", attempt.cause);
                decided_early += usize::from(early);
                reported += 1;
            }
        }
        prop_assert!(decided_early as u64 <= correlator.finished_early());
        let end = events.last().map_or(Timestamp(0), |e| e.ts);
        reported += correlator.close(end).len();
        // No attempt is lost: at least as many as without the bound (a retransmit that comes
        // after its attempt was finished early opens one of its own).
        let all = correlate(events, SynTiming::default(), None);
        prop_assert!(reported >= all.len(), "{reported} reported, {} without the bound", all.len());
    }

    /// The replay's shortcuts change nothing: offering segments with ACK and without SYN or RST by
    /// their ends (and pushing only those that need decoding), and building attempts in the memory
    /// of worded ones, report exactly what pushing every event into a fresh correlator reports.
    #[test]
    fn prop_replay_shortcuts_report_what_correlate_reports(events in arb_events()) {
        let mut correlator = Correlator::streaming(SynTiming::default());
        let mut reported = Vec::new();
        for e in &events {
            let offered = match &e.kind {
                EventKind::Packet { packet: Packet { body: PacketBody::Tcp(seg), .. }, .. }
                    if seg.flags.is_ack_without_syn_or_rst() =>
                {
                    correlator.offer_segment(e.ts, End::of(seg.src), End::of(seg.dst))
                }
                _ => Offered::NeedsDecode,
            };
            if offered == Offered::NeedsDecode {
                correlator.push(e);
            }
            let (words, spares): (Vec<_>, Vec<_>) =
                correlator.drain_finished().map(|f| f.report_and_spare()).unzip();
            reported.extend(words);
            correlator.take_spares(spares);
        }
        let end = events.last().map_or(Timestamp(0), |e| e.ts);
        reported.extend(correlator.finish(end));
        let as_json = |attempts: Vec<synscope::timeline::Attempt>| -> Vec<String> {
            let mut lines: Vec<String> =
                attempts.iter().map(|a| serde_json::to_string(a).unwrap_or_default()).collect();
            lines.sort();
            lines
        };
        prop_assert_eq!(as_json(reported), as_json(correlate(events, SynTiming::default(), None)));
    }

    /// Two worlds of flows whose events share instants: however the ties between them are broken,
    /// each flow reports the same thing.
    #[test]
    fn prop_outcomes_stable_under_reordering_of_ties(events in arb_events(), seed in any::<u64>()) {
        // Coarse times (whole seconds) make many ties; shuffle events within each instant. (An ICMP
        // error cut before its quoted ports is of no one flow: whether it meets an attempt of the
        // same instant depends on the order of the records, as it would in a capture.)
        let cut_before_ports = |e: &Event| {
            matches!(&e.kind, EventKind::Packet { packet: Packet { body: PacketBody::IcmpError(i), .. }, .. } if i.cut_quote.is_some())
        };
        let mut coarse: Vec<Event> = events
            .into_iter()
            .filter(|e| !cut_before_ports(e))
            .map(|mut e| {
                e.ts = Timestamp(e.ts.0 / 1_000_000_000 * 1_000_000_000);
                e
            })
            .collect();
        let by_flow = |attempts: Vec<synscope::timeline::Attempt>| -> HashMap<(SocketAddr, SocketAddr, u32), (String, Option<String>)> {
            attempts
                .into_iter()
                .map(|a| ((a.client, a.server, a.isn), (a.outcome.name().to_string(), a.errno.map(|e| e.name().to_string()))))
                .collect()
        };
        let before = by_flow(correlate(coarse.clone(), SynTiming::default(), None));
        // Reorder ties between different flows only: a flow's own events keep their order.
        let flow_of = |e: &Event| match &e.kind {
            EventKind::Packet { packet: Packet { body: PacketBody::Tcp(s), .. }, .. } => {
                let (a, b) = if s.src < s.dst { (s.src, s.dst) } else { (s.dst, s.src) };
                Some((a, b))
            }
            EventKind::Packet { packet: Packet { body: PacketBody::IcmpError(i), .. }, .. } => i.quoted.as_ref().and_then(|q| q.tcp.map(|t| {
                let (c, s) = (SocketAddr::new(q.src, t.src_port), SocketAddr::new(q.dst, t.dst_port));
                if c < s { (c, s) } else { (s, c) }
            })),
            _ => None,
        };
        let mut rng = seed | 1;
        let mut i = 0;
        while i < coarse.len() {
            let j = coarse[i..].iter().position(|e| e.ts != coarse[i].ts).map_or(coarse.len(), |n| i + n);
            // A stable sort of the instant's events by a random key per flow keeps each flow's order.
            let mut keys: HashMap<Option<(SocketAddr, SocketAddr)>, u64> = HashMap::new();
            let tie: Vec<(u64, usize, Event)> = coarse[i..j]
                .iter()
                .cloned()
                .enumerate()
                .map(|(k, e)| {
                    let key = *keys.entry(flow_of(&e)).or_insert_with(|| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng
                    });
                    (key, k, e)
                })
                .collect();
            let mut tie = tie;
            tie.sort_by_key(|(key, k, _)| (*key, *k));
            for (slot, (_, _, e)) in coarse[i..j].iter_mut().zip(tie) {
                *slot = e;
            }
            i = j;
        }
        // Frame numbers follow the new order, as they would in a file written that way.
        for (n, e) in coarse.iter_mut().enumerate() {
            if let EventKind::Packet { frame, .. } = &mut e.kind {
                *frame = n as u64 + 1;
            }
        }
        let after = by_flow(correlate(coarse, SynTiming::default(), None));
        prop_assert_eq!(before, after);
    }
}

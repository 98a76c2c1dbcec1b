//! Synthetic captures for tests and benchmarks: a deterministic generator of connection attempts
//! with a realistic mix, written as classic pcap or pcapng with valid checksums, and the ground truth (the
//! errno a Linux client gets for each attempt) beside it.
//!
//! The mix: mostly successful handshakes with data and a FIN teardown, some refused (RST), some
//! unanswered (the SYN and Linux 6.5+ retransmits), ICMP host unreachable and ICMPv6 port/no-route
//! unreachables. Flows start a fixed interval apart and their packets interleave in time.

use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{icmpv4, icmpv6, Icmpv4Type, Icmpv6Type, Ipv4Header, PacketBuilder};

use crate::linux::SynTiming;

/// What to generate.
#[derive(Clone, Copy, Debug)]
pub struct SynthConfig {
    /// Connection attempts.
    pub flows: u64,
    /// Seed of the pseudo-random mix.
    pub seed: u64,
    /// Time between the starts of two attempts, in microseconds.
    pub start_interval_us: u64,
    /// Write pcapng (one Ethernet interface, enhanced packet blocks) instead of classic pcap.
    pub pcapng: bool,
    /// A SYN flood instead of the mix: every attempt one SYN, never answered nor retransmitted
    /// (as from spoofed sources), each keeping the correlator busy until its retransmit is overdue.
    pub syn_flood: bool,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig { flows: 1000, seed: 1, start_interval_us: 100, pcapng: false, syn_flood: false }
    }
}

/// The file header: classic pcap (µs, Ethernet, libpcap's savefile format), or a pcapng section
/// header block and one Ethernet interface description block (µs, the default `if_tsresol`).
fn write_file_header(pcap: &mut dyn Write, pcapng: bool) -> io::Result<()> {
    if !pcapng {
        return pcap.write_all(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0]);
    }
    // SHB: type, length 28, byte-order magic, version 1.0, section length unknown (-1), length again.
    let mut shb = Vec::with_capacity(28);
    for word in [0x0a0d_0d0a_u32, 28, 0x1a2b_3c4d] {
        shb.extend_from_slice(&word.to_le_bytes());
    }
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&u64::MAX.to_le_bytes());
    shb.extend_from_slice(&28_u32.to_le_bytes());
    pcap.write_all(&shb)?;
    // IDB: type 1, length 20, link type 1 (Ethernet), reserved, snaplen 262144, length again.
    for word in [1_u32, 20, 1, 262_144, 20] {
        pcap.write_all(&word.to_le_bytes())?;
    }
    Ok(())
}

/// One record: a classic pcap record header, or a pcapng enhanced packet block (padded to 4 bytes).
fn write_record(pcap: &mut dyn Write, pcapng: bool, ts_us: u64, frame: &[u8]) -> io::Result<()> {
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    if !pcapng {
        let secs = u32::try_from(ts_us / 1_000_000).unwrap_or(u32::MAX);
        let micros = (ts_us % 1_000_000) as u32;
        for field in [secs, micros, len, len] {
            pcap.write_all(&field.to_le_bytes())?;
        }
        return pcap.write_all(frame);
    }
    let padding = (4 - frame.len() % 4) % 4;
    let block_len = 32 + len + padding as u32;
    let (high, low) = ((ts_us >> 32) as u32, ts_us as u32);
    for field in [6_u32, block_len, 0, high, low, len, len] {
        pcap.write_all(&field.to_le_bytes())?;
    }
    pcap.write_all(frame)?;
    pcap.write_all(&[0; 3][..padding])?;
    pcap.write_all(&block_len.to_le_bytes())
}

/// How many packets and attempts of each kind were written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynthStats {
    /// Records written.
    pub packets: u64,
    /// Attempts written.
    pub flows: u64,
}

/// xorshift64*: a tiny deterministic generator; the mix needs no more.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Established,
    Refused,
    Unanswered,
    IcmpHostUnreachable,
    Icmp6PortUnreachable,
    Icmp6NoRoute,
    /// One SYN of a flood.
    Flood,
}

impl Kind {
    fn pick(rng: &mut Rng) -> Kind {
        match rng.below(100) {
            0..=79 => Kind::Established,
            80..=87 => Kind::Refused,
            88..=92 => Kind::Unanswered,
            93..=96 => Kind::IcmpHostUnreachable,
            97..=98 => Kind::Icmp6PortUnreachable,
            _ => Kind::Icmp6NoRoute,
        }
    }

    /// (outcome, errno) as the ground truth names them.
    fn truth(self) -> (&'static str, &'static str) {
        match self {
            Kind::Established => ("established", "-"),
            Kind::Refused => ("refused", "ECONNREFUSED"),
            Kind::Unanswered | Kind::Flood => ("timed_out", "ETIMEDOUT"),
            Kind::IcmpHostUnreachable => ("unreachable", "EHOSTUNREACH"),
            Kind::Icmp6PortUnreachable => ("unreachable", "ECONNREFUSED"),
            Kind::Icmp6NoRoute => ("unreachable", "ENETUNREACH"),
        }
    }
}

/// A packet waiting for its time, ordered earliest first (with the flow's order as tie-break).
#[derive(PartialEq, Eq)]
struct Pending {
    ts_us: u64,
    order: u64,
    frame: Vec<u8>,
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.ts_us, other.order).cmp(&(self.ts_us, self.order))
    }
}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const GATEWAY_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
/// The generated capture starts at 2024-01-01 00:00:00 UTC.
const EPOCH_US: u64 = 1_704_067_200_000_000;

/// One flow's endpoints, unique per flow index (documentation addresses only).
struct Endpoints {
    v4: (Ipv4Addr, Ipv4Addr),
    v6: (Ipv6Addr, Ipv6Addr),
    client_port: u16,
    server_port: u16,
}

fn endpoints(i: u64) -> Endpoints {
    let host = (i % 250) as u8 + 1;
    let client_port = 32768 + ((i / 250) % 28000) as u16;
    let server = (i % 7) as u8 + 1;
    Endpoints {
        v4: (Ipv4Addr::new(192, 0, 2, host), Ipv4Addr::new(203, 0, 113, server)),
        v6: (
            Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, u16::from(host)),
            Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, u16::from(server)),
        ),
        client_port,
        server_port: [443, 80, 8080, 5432][(i % 4) as usize],
    }
}

/// Builds one TCP segment of a flow, client to server (`to_server`) or back.
fn tcp(e: &Endpoints, v6: bool, to_server: bool, seq: u32, ack: Option<u32>, flags: &str, payload: &[u8]) -> Vec<u8> {
    let (mac_src, mac_dst) = if to_server { (CLIENT_MAC, GATEWAY_MAC) } else { (GATEWAY_MAC, CLIENT_MAC) };
    let eth = PacketBuilder::ethernet2(mac_src, mac_dst);
    let ip = match (v6, to_server) {
        (false, true) => eth.ipv4(e.v4.0.octets(), e.v4.1.octets(), 64),
        (false, false) => eth.ipv4(e.v4.1.octets(), e.v4.0.octets(), 56),
        (true, true) => eth.ipv6(e.v6.0.octets(), e.v6.1.octets(), 64),
        (true, false) => eth.ipv6(e.v6.1.octets(), e.v6.0.octets(), 56),
    };
    let (sport, dport) = if to_server { (e.client_port, e.server_port) } else { (e.server_port, e.client_port) };
    let mut t = ip.tcp(sport, dport, seq, 64240);
    for flag in flags.chars() {
        t = match flag {
            'S' => t.syn(),
            'R' => t.rst(),
            'F' => t.fin(),
            'P' => t.psh(),
            _ => t,
        };
    }
    if let Some(ack) = ack {
        t = t.ack(ack);
    }
    let mut out = Vec::with_capacity(t.size(payload.len()));
    // Writing into a Vec cannot fail; a builder error would be a bug in the fixed inputs above.
    let _ = t.write(&mut out, payload);
    out
}

/// Gives an IP packet (an Ethernet frame) the mark Linux gives each: the IPv4 identification
/// (RFC 791, `ip_select_ident`) or the IPv6 flow label (RFC 6437, from the socket's hash), here
/// the low bits of `ident`. An ICMP error's quote of a SYN shows it even when a capture cut the
/// quote before the TCP ports, and it tells that SYN from the client's others.
fn mark(frame: &mut [u8], ident: u32) {
    let ip = &mut frame[14..];
    if ip[0] >> 4 == 6 {
        let label = (ident & 0xf_ffff).to_be_bytes();
        ip[1] = ip[1] & 0xf0 | label[1];
        ip[2..4].copy_from_slice(&label[2..4]);
    } else {
        ip[4..6].copy_from_slice(&(ident as u16).to_be_bytes());
        if let Ok((header, _)) = Ipv4Header::from_slice(ip) {
            ip[10..12].copy_from_slice(&header.calc_header_checksum().to_be_bytes());
        }
    }
}

/// An ICMP(v6) destination unreachable from a router, quoting the IP header and the first bytes of
/// the SYN (`syn` is the whole Ethernet frame).
fn icmp_unreachable(e: &Endpoints, v6: bool, syn: &[u8], code: u8) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(GATEWAY_MAC, CLIENT_MAC);
    // The quote: the SYN's IP header and 8+ bytes of TCP, as RFC 792/4443 routers send them.
    let quoted = &syn[14..syn.len().min(14 + if v6 { 40 } else { 20 } + 20)];
    let mut out = Vec::new();
    if v6 {
        let router = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1).octets();
        let code = if code == 4 { icmpv6::DestUnreachableCode::Port } else { icmpv6::DestUnreachableCode::NoRoute };
        let b = eth.ipv6(router, e.v6.0.octets(), 63).icmpv6(Icmpv6Type::DestinationUnreachable(code));
        let _ = b.write(&mut out, quoted);
    } else {
        let b = eth
            .ipv4([192, 0, 2, 254], e.v4.0.octets(), 63)
            .icmpv4(Icmpv4Type::DestinationUnreachable(icmpv4::DestUnreachableHeader::Host));
        let _ = b.write(&mut out, quoted);
    }
    out
}

/// Whether flow `i` is IPv6: the ICMPv6 kinds, and one in five of the others (not ICMPv4).
fn is_v6(i: u64, kind: Kind) -> bool {
    matches!(kind, Kind::Icmp6PortUnreachable | Kind::Icmp6NoRoute) || (kind != Kind::IcmpHostUnreachable && i % 5 == 0)
}

/// Every packet of flow `i`, with times relative to its start (µs).
fn flow_packets(i: u64, kind: Kind, rng: &mut Rng) -> Vec<(u64, Vec<u8>)> {
    let e = endpoints(i);
    let v6 = is_v6(i, kind);
    let isn = rng.next() as u32;
    let server_isn = rng.next() as u32;
    let rtt = 200 + rng.below(40_000);
    let mut syn = tcp(&e, v6, true, isn, None, "S", &[]);
    // A mark of its own, from bits of the ISN (no draw, so the rest of the mix stays as it was).
    mark(&mut syn, isn.rotate_left(11));
    let mut packets = vec![(0, syn.clone())];
    match kind {
        Kind::Established => {
            packets.push((rtt, tcp(&e, v6, false, server_isn, Some(isn.wrapping_add(1)), "S", &[])));
            packets.push((rtt + 20, tcp(&e, v6, true, isn.wrapping_add(1), Some(server_isn.wrapping_add(1)), "", &[])));
            let (mut c, mut s, mut t) = (isn.wrapping_add(1), server_isn.wrapping_add(1), rtt + 50);
            // Small requests and answers (an RPC or API mix): about 100 bytes a record on average.
            let request = vec![b'x'; 10 + rng.below(60) as usize];
            for _ in 0..1 + rng.below(5) {
                packets.push((t, tcp(&e, v6, true, c, Some(s), "P", &request)));
                c = c.wrapping_add(request.len() as u32);
                t += rtt;
                let response = vec![b'y'; 20 + rng.below(120) as usize];
                packets.push((t, tcp(&e, v6, false, s, Some(c), "P", &response)));
                s = s.wrapping_add(response.len() as u32);
                t += 30;
            }
            packets.push((t, tcp(&e, v6, true, c, Some(s), "F", &[])));
            packets.push((t + rtt, tcp(&e, v6, false, s, Some(c.wrapping_add(1)), "F", &[])));
            packets.push((t + rtt + 20, tcp(&e, v6, true, c.wrapping_add(1), Some(s.wrapping_add(1)), "", &[])));
        }
        Kind::Refused => packets.push((rtt, tcp(&e, v6, false, 0, Some(isn.wrapping_add(1)), "R", &[]))),
        Kind::Unanswered => {
            // Linux 6.5+ with default sysctls, up to the 5th retransmit (the capture is short).
            for at in SynTiming::default().schedule().retransmits.iter().take(5) {
                packets.push((u64::try_from(at.0 / 1000).unwrap_or(0), syn.clone()));
            }
        }
        Kind::IcmpHostUnreachable => packets.push((rtt / 2, icmp_unreachable(&e, false, &syn, 1))),
        Kind::Icmp6PortUnreachable => packets.push((rtt / 2, icmp_unreachable(&e, true, &syn, 4))),
        Kind::Icmp6NoRoute => packets.push((rtt / 2, icmp_unreachable(&e, true, &syn, 0))),
        Kind::Flood => {}
    }
    packets
}

/// Writes the capture to `pcap` and the ground truth (`client server outcome errno`, tab-separated)
/// to `truth`. Memory stays proportional to the flows in progress, not to the capture.
pub fn generate(config: SynthConfig, pcap: &mut dyn Write, truth: &mut dyn Write) -> io::Result<SynthStats> {
    write_file_header(pcap, config.pcapng)?;
    writeln!(truth, "client\tserver\toutcome\terrno")?;
    let mut rng = Rng(config.seed.max(1));
    let mut pending = BinaryHeap::new();
    let mut stats = SynthStats::default();
    let mut order = 0;
    let mut flush_until = |pending: &mut BinaryHeap<Pending>, until: u64, stats: &mut SynthStats| -> io::Result<()> {
        while pending.peek().is_some_and(|p| p.ts_us <= until) {
            let Some(p) = pending.pop() else { break };
            write_record(pcap, config.pcapng, EPOCH_US + p.ts_us, &p.frame)?;
            stats.packets += 1;
        }
        Ok(())
    };
    for i in 0..config.flows {
        let start = i * config.start_interval_us;
        flush_until(&mut pending, start, &mut stats)?;
        let kind = if config.syn_flood { Kind::Flood } else { Kind::pick(&mut rng) };
        let e = endpoints(i);
        let (client, server) = if is_v6(i, kind) {
            (format!("[{}]:{}", e.v6.0, e.client_port), format!("[{}]:{}", e.v6.1, e.server_port))
        } else {
            (format!("{}:{}", e.v4.0, e.client_port), format!("{}:{}", e.v4.1, e.server_port))
        };
        let (outcome, errno) = kind.truth();
        writeln!(truth, "{client}\t{server}\t{outcome}\t{errno}")?;
        for (at, frame) in flow_packets(i, kind, &mut rng) {
            pending.push(Pending { ts_us: start + at, order, frame });
            order += 1;
        }
        stats.flows += 1;
    }
    flush_until(&mut pending, u64::MAX, &mut stats)?;
    Ok(stats)
}

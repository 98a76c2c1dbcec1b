//! Decoding: from a captured frame (link type + bytes) to the [`Packet`] summary the correlator needs.
//!
//! The link layer is stripped by [`link`]; IPv4, IPv6 (with its extension headers), TCP, ICMP, ICMPv6
//! and ARP are parsed with `etherparse`'s lax slices, which check lengths once and never panic. The
//! packet quoted inside an ICMP error is often cut short (RFC 792 only promises the IP header and 8
//! bytes), so the quoted ports and sequence number are read from those 8 bytes directly.

pub mod link;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use etherparse::{ArpOperation, ArpPacketSlice, EtherType, IpNumber, LaxIpSlice, TcpOptionElement, TcpSlice};

use link::NetPayload;
pub use link::{LinkDirection, LinkType};

use crate::flow::Family;

/// A decoded packet, reduced to what matters for connection attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Direction hint from the link layer (Linux cooked captures record it).
    pub link_direction: LinkDirection,
    /// What the packet is.
    pub body: PacketBody,
}

/// The kinds of packets the correlator distinguishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketBody {
    /// A TCP segment.
    Tcp(TcpSegment),
    /// An ICMP or ICMPv6 error quoting an earlier packet.
    IcmpError(IcmpError),
    /// An ARP request or reply (IPv4 over any hardware).
    Arp(ArpMessage),
    /// An ICMPv6 neighbour solicitation or advertisement (RFC 4861).
    Neighbor(NeighborMessage),
    /// A well-formed packet of no interest to connection attempts (UDP, ICMP echo, a non-IP EtherType ...).
    Other(&'static str),
}

/// TCP header flags (RFC 9293 section 3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;

    /// Whether every flag in `mask` is set.
    pub fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }

    /// A SYN without ACK: the opening segment of an attempt.
    pub fn is_syn_only(self) -> bool {
        self.has(Self::SYN) && !self.has(Self::ACK) && !self.has(Self::RST)
    }

    /// tcpdump's notation: `S`, `S.`, `R.`, `F.`, `P.` ...
    pub fn tcpdump(self) -> String {
        let mut s = String::new();
        for (bit, c) in [
            (Self::FIN, 'F'),
            (Self::SYN, 'S'),
            (Self::RST, 'R'),
            (Self::PSH, 'P'),
            (Self::URG, 'U'),
            (Self::ECE, 'E'),
            (Self::CWR, 'W'),
        ] {
            if self.has(bit) {
                s.push(c);
            }
        }
        if self.has(Self::ACK) {
            s.push('.');
        }
        if s.is_empty() {
            s.push_str("none");
        }
        s
    }
}

/// The TCP options synscope reports (RFC 9293, RFC 7323, RFC 2018).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpOptions {
    /// Maximum segment size.
    pub mss: Option<u16>,
    /// Window scale shift.
    pub window_scale: Option<u8>,
    /// SACK permitted.
    pub sack_permitted: bool,
    /// Timestamps: (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
}

/// A TCP segment's header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSegment {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Flags.
    pub flags: TcpFlags,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when ACK is set).
    pub ack: u32,
    /// Receive window (unscaled).
    pub window: u16,
    /// Options.
    pub options: TcpOptions,
    /// Bytes of payload captured (TCP Fast Open data on a SYN counts here).
    pub payload_len: u32,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
}

/// The kind of an ICMP/ICMPv6 error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpErrorKind {
    /// Destination unreachable (ICMP 3, ICMPv6 1).
    DestinationUnreachable,
    /// Packet too big (ICMPv6 2).
    PacketTooBig,
    /// Time exceeded (ICMP 11, ICMPv6 3).
    TimeExceeded,
    /// Parameter problem (ICMP 12, ICMPv6 4).
    ParameterProblem,
    /// Source quench (ICMP 4, deprecated by RFC 6633).
    SourceQuench,
    /// Redirect (ICMP 5).
    Redirect,
}

/// The start of the packet quoted inside an ICMP error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotedPacket {
    /// The quoted packet's source address (ours, when it quotes our SYN).
    pub src: IpAddr,
    /// The quoted packet's destination address.
    pub dst: IpAddr,
    /// The quoted packet's protocol.
    pub protocol: u8,
    /// The quoted TCP header's first fields, when the quote is TCP and holds at least 8 bytes of it.
    pub tcp: Option<QuotedTcp>,
}

/// The TCP fields of a quoted segment: the first 8 bytes, plus the flags when 14 bytes were quoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotedTcp {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Flags, if the quote reaches byte 13 of the TCP header.
    pub flags: Option<TcpFlags>,
}

/// An ICMP or ICMPv6 error message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IcmpError {
    /// Who sent the error (a router, the server, or our own host).
    pub src: IpAddr,
    /// To whom.
    pub dst: IpAddr,
    /// ICMP (IPv4) or ICMPv6.
    pub family: Family,
    /// The kind of error.
    pub kind: IcmpErrorKind,
    /// Raw type.
    pub icmp_type: u8,
    /// Raw code.
    pub code: u8,
    /// Next-hop MTU for "fragmentation needed" (RFC 1191) and "packet too big" (RFC 8201).
    pub mtu: Option<u32>,
    /// The quoted packet, if its IP header could be read.
    pub quoted: Option<QuotedPacket>,
}

/// ARP request or reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArpOp {
    /// who-has.
    Request,
    /// is-at.
    Reply,
}

/// An ARP message for IPv4 (RFC 826).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpMessage {
    /// Request or reply.
    pub op: ArpOp,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Sender hardware address.
    pub sender_hw: Vec<u8>,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

/// Neighbour solicitation or advertisement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighborOp {
    /// Neighbour solicitation (ICMPv6 135).
    Solicitation,
    /// Neighbour advertisement (ICMPv6 136).
    Advertisement,
}

/// An IPv6 neighbour discovery message (RFC 4861 section 4.3 and 4.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborMessage {
    /// Solicitation or advertisement.
    pub op: NeighborOp,
    /// IPv6 source address.
    pub src: Ipv6Addr,
    /// The address being resolved (solicitation) or announced (advertisement).
    pub target: Ipv6Addr,
}

/// Why a frame could not be decoded; the replay counts these as `undecodable` and goes on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The link layer could not be read.
    #[error(transparent)]
    Link(#[from] link::LinkError),
    /// The IP header is malformed or cut short.
    #[error("bad IP header: {0}")]
    Ip(String),
    /// The TCP header is malformed or cut short.
    #[error("bad TCP header: {0}")]
    Tcp(String),
    /// The ICMP header is cut short.
    #[error("bad ICMP header: {0}")]
    Icmp(String),
    /// The ARP packet is cut short.
    #[error("bad ARP packet: {0}")]
    Arp(String),
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_ARP: u16 = 0x0806;

/// Decodes one captured frame. Never panics, whatever the bytes.
pub fn decode(link_type: LinkType, frame: &[u8]) -> Result<Packet, DecodeError> {
    let linked = link::strip(link_type, frame)?;
    let body = match linked.payload {
        NetPayload::Ip(bytes) => decode_ip(bytes)?,
        NetPayload::EtherType(ETHERTYPE_IPV4 | ETHERTYPE_IPV6, bytes) => decode_ip(bytes)?,
        NetPayload::EtherType(ETHERTYPE_ARP, bytes) => decode_arp(bytes)?,
        NetPayload::EtherType(_, _) => PacketBody::Other("non-IP frame"),
        NetPayload::NotIp(why) => PacketBody::Other(why),
    };
    Ok(Packet { link_direction: linked.direction, body })
}

fn decode_ip(bytes: &[u8]) -> Result<PacketBody, DecodeError> {
    let (ip, _ext_err) = LaxIpSlice::from_slice(bytes).map_err(|e| DecodeError::Ip(e.to_string()))?;
    let payload = ip.payload();
    let src = ip.source_addr();
    let dst = ip.destination_addr();
    // A non-first fragment carries no transport header; the first fragment does.
    if is_later_fragment(&ip) {
        return Ok(PacketBody::Other("IP fragment"));
    }
    let ttl = match &ip {
        LaxIpSlice::Ipv4(v4) => v4.header().ttl(),
        LaxIpSlice::Ipv6(v6) => v6.header().hop_limit(),
    };
    match payload.ip_number {
        IpNumber::TCP => decode_tcp(src, dst, ttl, payload.payload).map(PacketBody::Tcp),
        IpNumber::ICMP if src.is_ipv4() => decode_icmpv4(src, dst, payload.payload),
        IpNumber::IPV6_ICMP if src.is_ipv6() => decode_icmpv6(src, dst, payload.payload),
        IpNumber::UDP => Ok(PacketBody::Other("UDP")),
        _ => Ok(PacketBody::Other("other IP protocol")),
    }
}

fn is_later_fragment(ip: &LaxIpSlice<'_>) -> bool {
    match ip {
        LaxIpSlice::Ipv4(v4) => v4.header().fragments_offset().value() != 0,
        LaxIpSlice::Ipv6(v6) => {
            v6.is_payload_fragmented() && v6.payload().ip_number == IpNumber::IPV6_FRAGMENTATION_HEADER
        }
    }
}

fn decode_tcp(src: IpAddr, dst: IpAddr, ttl: u8, bytes: &[u8]) -> Result<TcpSegment, DecodeError> {
    let tcp = match TcpSlice::from_slice(bytes) {
        Ok(tcp) => tcp,
        // The snapshot length cut into the options: the fixed 20 bytes still say what the segment is.
        Err(etherparse::err::tcp::HeaderSliceError::Len(_)) if bytes.len() >= 20 => {
            return Ok(decode_tcp_truncated(src, dst, ttl, bytes));
        }
        Err(e) => return Err(DecodeError::Tcp(e.to_string())),
    };
    let header = tcp.header_slice();
    Ok(TcpSegment {
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        // The flag byte is byte 13 of the header (RFC 9293 figure 1); read it whole rather than bit by bit.
        flags: TcpFlags(header.get(13).copied().unwrap_or(0)),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        window: tcp.window_size(),
        options: read_options(tcp.options()),
        payload_len: u32::try_from(tcp.payload().len()).unwrap_or(u32::MAX),
        ttl,
    })
}

/// A TCP header whose options run past the captured bytes: fixed fields, and the options captured.
fn decode_tcp_truncated(src: IpAddr, dst: IpAddr, ttl: u8, bytes: &[u8]) -> TcpSegment {
    let be16 = |at: usize| bytes.get(at..at + 2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    let be32 = |at: usize| bytes.get(at..at + 4).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    TcpSegment {
        src: SocketAddr::new(src, be16(0)),
        dst: SocketAddr::new(dst, be16(2)),
        flags: TcpFlags(bytes.get(13).copied().unwrap_or(0)),
        seq: be32(4),
        ack: be32(8),
        window: be16(14),
        options: read_options(bytes.get(20..).unwrap_or(&[])),
        payload_len: 0,
        ttl,
    }
}

/// Reads the options synscope reports. A malformed option ends the walk and keeps what was read,
/// as Linux's `tcp_parse_options` stops at the first bad length.
fn read_options(raw: &[u8]) -> TcpOptions {
    let mut options = TcpOptions::default();
    for option in etherparse::TcpOptionsIterator::from_slice(raw) {
        match option {
            Ok(TcpOptionElement::MaximumSegmentSize(mss)) => options.mss = Some(mss),
            Ok(TcpOptionElement::WindowScale(shift)) => options.window_scale = Some(shift),
            Ok(TcpOptionElement::SelectiveAcknowledgementPermitted) => options.sack_permitted = true,
            Ok(TcpOptionElement::Timestamp(val, ecr)) => options.timestamps = Some((val, ecr)),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    options
}

/// Splits an ICMP message into (type, code, bytes 4..8, body after the 8-byte header).
fn icmp_header(bytes: &[u8]) -> Result<(u8, u8, [u8; 4], &[u8]), DecodeError> {
    match bytes {
        [t, c, _, _, b4, b5, b6, b7, body @ ..] => Ok((*t, *c, [*b4, *b5, *b6, *b7], body)),
        _ => Err(DecodeError::Icmp(format!("{} bytes, the header needs 8", bytes.len()))),
    }
}

fn decode_icmpv4(src: IpAddr, dst: IpAddr, bytes: &[u8]) -> Result<PacketBody, DecodeError> {
    let (icmp_type, code, rest, body) = icmp_header(bytes)?;
    let kind = match icmp_type {
        3 => IcmpErrorKind::DestinationUnreachable,
        4 => IcmpErrorKind::SourceQuench,
        5 => IcmpErrorKind::Redirect,
        11 => IcmpErrorKind::TimeExceeded,
        12 => IcmpErrorKind::ParameterProblem,
        0 | 8 => return Ok(PacketBody::Other("ICMP echo")),
        _ => return Ok(PacketBody::Other("ICMP")),
    };
    // RFC 1191: the next-hop MTU sits in the low 16 bits of the second word of "fragmentation needed".
    let mtu = (icmp_type == 3 && code == 4).then(|| u32::from(u16::from_be_bytes([rest[2], rest[3]])));
    Ok(PacketBody::IcmpError(IcmpError {
        src,
        dst,
        family: Family::Ipv4,
        kind,
        icmp_type,
        code,
        mtu,
        quoted: decode_quoted(body),
    }))
}

fn decode_icmpv6(src: IpAddr, dst: IpAddr, bytes: &[u8]) -> Result<PacketBody, DecodeError> {
    let (icmp_type, code, rest, body) = icmp_header(bytes)?;
    let kind = match icmp_type {
        1 => IcmpErrorKind::DestinationUnreachable,
        2 => IcmpErrorKind::PacketTooBig,
        3 => IcmpErrorKind::TimeExceeded,
        4 => IcmpErrorKind::ParameterProblem,
        135 | 136 => return decode_neighbor(src, icmp_type, body),
        128 | 129 => return Ok(PacketBody::Other("ICMPv6 echo")),
        _ => return Ok(PacketBody::Other("ICMPv6")),
    };
    // RFC 4443 section 3.2: packet too big carries the MTU in the second word.
    let mtu = (icmp_type == 2).then(|| u32::from_be_bytes(rest));
    Ok(PacketBody::IcmpError(IcmpError {
        src,
        dst,
        family: Family::Ipv6,
        kind,
        icmp_type,
        code,
        mtu,
        quoted: decode_quoted(body),
    }))
}

fn decode_neighbor(src: IpAddr, icmp_type: u8, body: &[u8]) -> Result<PacketBody, DecodeError> {
    let IpAddr::V6(src) = src else {
        return Ok(PacketBody::Other("ICMPv6"));
    };
    // RFC 4861 4.3/4.4: the target address follows the 4 reserved/flag bytes, i.e. starts the body.
    let target: [u8; 16] = body
        .get(..16)
        .and_then(|t| t.try_into().ok())
        .ok_or_else(|| DecodeError::Icmp(format!("neighbour message body of {} bytes, needs 16", body.len())))?;
    let op = if icmp_type == 135 { NeighborOp::Solicitation } else { NeighborOp::Advertisement };
    Ok(PacketBody::Neighbor(NeighborMessage { op, src, target: Ipv6Addr::from(target) }))
}

/// Reads the packet quoted in an ICMP error: its IP header, then the first 8 bytes of TCP
/// (ports and sequence number), and the flags if 14 bytes are there.
fn decode_quoted(bytes: &[u8]) -> Option<QuotedPacket> {
    let (ip, _) = LaxIpSlice::from_slice(bytes).ok()?;
    let payload = ip.payload();
    let protocol = payload.ip_number.0;
    let tcp = if payload.ip_number == IpNumber::TCP {
        match payload.payload {
            [s0, s1, d0, d1, q0, q1, q2, q3, rest @ ..] => Some(QuotedTcp {
                src_port: u16::from_be_bytes([*s0, *s1]),
                dst_port: u16::from_be_bytes([*d0, *d1]),
                seq: u32::from_be_bytes([*q0, *q1, *q2, *q3]),
                flags: rest.get(5).map(|f| TcpFlags(*f)),
            }),
            _ => None,
        }
    } else {
        None
    };
    Some(QuotedPacket { src: ip.source_addr(), dst: ip.destination_addr(), protocol, tcp })
}

fn decode_arp(bytes: &[u8]) -> Result<PacketBody, DecodeError> {
    let arp = ArpPacketSlice::from_slice(bytes).map_err(|e| DecodeError::Arp(e.to_string()))?;
    if arp.proto_addr_type() != EtherType::IPV4 || arp.proto_addr_size() != 4 {
        return Ok(PacketBody::Other("ARP for a non-IPv4 protocol"));
    }
    let op = match arp.operation() {
        ArpOperation::REQUEST => ArpOp::Request,
        ArpOperation::REPLY => ArpOp::Reply,
        _ => return Ok(PacketBody::Other("ARP (other operation)")),
    };
    let ipv4 = |b: &[u8]| -> Option<Ipv4Addr> { <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from) };
    let (Some(sender_ip), Some(target_ip)) = (ipv4(arp.sender_protocol_addr()), ipv4(arp.target_protocol_addr()))
    else {
        return Err(DecodeError::Arp("protocol address is not 4 bytes".into()));
    };
    Ok(PacketBody::Arp(ArpMessage { op, sender_ip, sender_hw: arp.sender_hw_addr().to_vec(), target_ip }))
}

//! Decoding: from a captured frame (link type + bytes) to the [`Packet`] summary the correlator needs.
//!
//! The link layer is stripped by [`link`]; IPv4, IPv6 (with its extension headers), TCP, ICMP, ICMPv6
//! and ARP are parsed with `etherparse`'s lax slices, which check lengths once and never panic. A
//! tunnel (VXLAN, GENEVE, GRE, ERSPAN, IP in IP) is looked through to the packet it carries (the
//! `tunnel` module). The packet quoted inside an ICMP error is often cut short (RFC 792 only
//! promises the IP header and 8 bytes), so the quoted ports and sequence number are read from those
//! 8 bytes directly; a capture's snap length may cut it shorter still, and what is left is kept (see
//! [`CutQuote`]).

pub mod link;
mod tunnel;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use etherparse::{ArpOperation, ArpPacketSlice, EtherType, IpNumber, LaxIpSlice, TcpOptionElement, TcpSlice};

use link::NetPayload;
pub use link::{LinkDirection, LinkType};

use crate::flow::{End, Family};

/// A decoded packet, reduced to what matters for connection attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Direction hint from the link layer (Linux cooked captures record it).
    pub link_direction: LinkDirection,
    /// Whether it crossed a loopback device, as far as the link layer tells.
    pub on_loopback: bool,
    /// What the packet is.
    pub body: PacketBody,
}

/// The kinds of packets the correlator distinguishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketBody {
    /// A TCP segment.
    Tcp(TcpSegment),
    /// An ICMP or ICMPv6 error quoting an earlier packet. (Boxed: errors are few, and every
    /// packet's summary is moved about at the size of its largest kind.)
    IcmpError(Box<IcmpError>),
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

    /// ACK without SYN or RST: a segment of an established connection, which a replay need not
    /// decode unless an attempt awaits one (`Correlator::offer_segment`). A SYN or RST opens or
    /// ends attempts; a segment without ACK is a scanner's probe, whose reset must be told from an
    /// attempt's.
    #[inline]
    pub fn is_ack_without_syn_or_rst(self) -> bool {
        self.0 & (Self::SYN | Self::RST | Self::ACK) == Self::ACK
    }

    /// A SYN without ACK: the opening segment of an attempt.
    pub fn is_syn_only(self) -> bool {
        self.has(Self::SYN) && !self.has(Self::ACK) && !self.has(Self::RST)
    }

    /// Appends tcpdump's notation of the flags to `s`: `S`, `S.`, `R.`, `F.`, `P.` ...
    pub fn push_tcpdump(self, s: &mut String) {
        let before = s.len();
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
        if s.len() == before {
            s.push_str("none");
        }
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
    /// Bytes of payload on the wire, by the IP header's length, whether or not the capture kept
    /// them (a snap length cuts payload; TCP Fast Open data on a SYN counts here, and moves the
    /// ACK that acknowledges it). tcpdump's `length`.
    pub payload_len: u32,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// The IP header's mark of this packet (the IPv4 identification, the IPv6 flow label), which
    /// an ICMP error's quote of it shows even when a capture cut the quote before the TCP ports.
    pub ip_ident: u32,
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
    /// Sequence number; `None` when the capture cut the quote between the ports and it (a short
    /// snap length: the ICMP message was whole on the wire).
    pub seq: Option<u32>,
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
    /// What is left of the quote when the capture cut the message before the quoted TCP ports (a
    /// snap length of 96 bytes does this to every ICMPv6 error on Ethernet): which attempt it was
    /// for can then only be told from addresses.
    pub cut_quote: Option<CutQuote>,
}

impl IcmpError {
    /// Whether the capture cut the message inside its quote of a TCP segment, before the quoted
    /// ports or the sequence number after them.
    pub fn quote_cut(&self) -> bool {
        self.cut_quote.is_some() || self.quoted.as_ref().and_then(|q| q.tcp).is_some_and(|t| t.seq.is_none())
    }
}

/// The quoted addresses an ICMP error keeps when the capture cut it before the quoted TCP ports:
/// the captured leading bytes of each (all of them, some, or none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CutQuote {
    /// The quoted source (the client, when it quotes a SYN).
    pub src: AddrPrefix,
    /// The quoted destination (the server).
    pub dst: AddrPrefix,
    /// The quoted packet's identification (IPv4) or flow label (IPv6), if captured: it tells the
    /// SYN it quotes from the client's others (and from the same client's earlier SYNs, as Linux
    /// draws a new flow label at each retransmit).
    pub ident: Option<u32>,
}

/// The leading bytes of an address that a capture kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrPrefix {
    bytes: [u8; 16],
    len: u8,
}

impl AddrPrefix {
    /// The captured part of an address of `size` bytes (4 or 16) that starts at `at` in `quote`.
    fn captured(quote: &[u8], at: usize, size: usize) -> AddrPrefix {
        let kept = quote.get(at..).unwrap_or(&[]);
        let len = kept.len().min(size);
        let mut bytes = [0; 16];
        bytes[..len].copy_from_slice(&kept[..len]);
        AddrPrefix { bytes, len: len as u8 }
    }

    /// The first `len` bytes of `ip` (all of them if it has fewer).
    pub fn leading(ip: IpAddr, len: usize) -> AddrPrefix {
        match ip {
            IpAddr::V4(v4) => AddrPrefix::captured(&v4.octets()[..len.min(4)], 0, 4),
            IpAddr::V6(v6) => AddrPrefix::captured(&v6.octets()[..len.min(16)], 0, 16),
        }
    }

    /// Whether `ip` begins with these bytes (any address does when none were captured).
    pub fn admits(&self, ip: IpAddr) -> bool {
        let prefix = &self.bytes[..usize::from(self.len)];
        match ip {
            IpAddr::V4(v4) => v4.octets().starts_with(prefix),
            IpAddr::V6(v6) => v6.octets().starts_with(prefix),
        }
    }

    /// How many bytes were captured.
    #[cfg(test)]
    fn kept(&self) -> usize {
        usize::from(self.len)
    }
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
    decode_in(link_type, frame, 0)
}

/// Tunnels looked through, one inside another: real ones nest one or two deep, and a crafted
/// packet must not recurse without end.
const MAX_TUNNELS: u8 = 4;

/// [`decode`] for a frame found inside `tunnels` tunnels.
fn decode_in(link_type: LinkType, frame: &[u8], tunnels: u8) -> Result<Packet, DecodeError> {
    let linked = link::strip(link_type, frame)?;
    let body = match linked.payload {
        NetPayload::Ip(bytes) => decode_ip(bytes, tunnels)?,
        NetPayload::EtherType(ETHERTYPE_IPV4 | ETHERTYPE_IPV6, bytes) => decode_ip(bytes, tunnels)?,
        NetPayload::EtherType(ETHERTYPE_ARP, bytes) => decode_arp(bytes)?,
        NetPayload::EtherType(_, _) => PacketBody::Other("non-IP frame"),
        NetPayload::NotIp(why) => PacketBody::Other(why),
    };
    Ok(Packet { link_direction: linked.direction, on_loopback: linked.loopback, body })
}

/// What a tunnel carries, decoded (see the `tunnel` module); `outer` names the packet when it carries
/// nothing synscope reads. The inner packet goes the way the outer one did: a tunnel's endpoint
/// sends what it encapsulates, and receives what it decapsulates.
fn decode_tunneled(
    inner: Option<tunnel::Inner<'_>>,
    outer: &'static str,
    tunnels: u8,
) -> Result<PacketBody, DecodeError> {
    match inner {
        None => Ok(PacketBody::Other(outer)),
        Some(_) if tunnels >= MAX_TUNNELS => Ok(PacketBody::Other("tunnels nested too deep")),
        Some(tunnel::Inner::Ip(ip)) => decode_ip(ip, tunnels + 1),
        Some(tunnel::Inner::Ethernet(frame)) => Ok(decode_in(LinkType::ETHERNET, frame, tunnels + 1)?.body),
    }
}

/// A TCP segment's endpoints and flags, read without a full decode, and where its headers are, so
/// that [`TcpPeek::decode`] need not find them again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpPeek<'a> {
    /// Sender.
    pub src: End,
    /// Receiver.
    pub dst: End,
    /// Flags.
    pub flags: TcpFlags,
    link_direction: LinkDirection,
    on_loopback: bool,
    v6: bool,
    ip: &'a [u8],
    tcp: &'a [u8],
}

/// The IP packet a frame carries, with what its link layer says of it (direction, loopback): for
/// untagged Ethernet, the common case, without the general link-layer walk. `None` if the frame
/// carries no IP packet.
fn ip_of(link_type: LinkType, frame: &[u8]) -> Option<(LinkDirection, bool, &[u8])> {
    let untagged_ethernet_ip = link_type == LinkType::ETHERNET
        && frame
            .get(12..14)
            .is_some_and(|t| matches!(u16::from_be_bytes([t[0], t[1]]), ETHERTYPE_IPV4 | ETHERTYPE_IPV6));
    if untagged_ethernet_ip {
        // (What `link::strip` says of Ethernet: no direction, not loopback.)
        return Some((LinkDirection::Unknown, false, &frame[14..]));
    }
    ip_of_other(link_type, frame)
}

/// [`ip_of`] for any frame but untagged Ethernet: read straight from its fixed headers when it
/// has one 802.1Q tag or is a Linux cooked capture's (`link::ip_directly`), else by the general
/// link-layer walk. Out of line: an untagged capture's loop, into which `ip_of` is compiled, grew
/// by 0.7 to 0.9% with the short way's tests inside it.
#[inline(never)]
fn ip_of_other(link_type: LinkType, frame: &[u8]) -> Option<(LinkDirection, bool, &[u8])> {
    if let Some(ip) = link::ip_directly(link_type, frame) {
        return Some(ip);
    }
    let linked = link::strip(link_type, frame).ok()?;
    match linked.payload {
        NetPayload::Ip(bytes) | NetPayload::EtherType(ETHERTYPE_IPV4 | ETHERTYPE_IPV6, bytes) => {
            Some((linked.direction, linked.loopback, bytes))
        }
        _ => None,
    }
}

/// The payload of an IP packet when the packet is plain: no IPv4 fragment, no IPv6 extension
/// header, lengths that agree. Whether it is IPv6, its protocol (IPv4's protocol field, IPv6's next
/// header) and the payload, bounded by the IP length (a capture may pad or cut the frame). `None`
/// for anything else: [`decode`] handles it.
#[inline]
fn plain_ip(ip: &[u8]) -> Option<(bool, u8, &[u8])> {
    match ip.first()? >> 4 {
        4 => {
            let header_len = usize::from(ip[0] & 0x0f) * 4;
            // Neither "more fragments" nor a fragment offset (RFC 791).
            let fragmented = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x3fff != 0;
            let protocol = *ip.get(9)?;
            if header_len < 20 || fragmented {
                return None;
            }
            // The total length bounds the payload; 0 is odd (a segmentation offload's): decode it.
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            if total < header_len {
                return None;
            }
            Some((false, protocol, ip.get(header_len..total.min(ip.len()))?))
        }
        6 => {
            // The next header right after the fixed header (RFC 8200) is the payload's protocol
            // unless it is an extension header; the callers ask for TCP or a tunnel, which none is.
            let protocol = *ip.get(6)?;
            // The payload length bounds the payload; 0 means a jumbogram (RFC 2675): decode it.
            let payload = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
            if payload == 0 {
                return None;
            }
            Some((true, protocol, ip.get(40..(40 + payload).min(ip.len()))?))
        }
        _ => None,
    }
}

/// The TCP segment of a plain IP packet (see `plain_ip`), with the fixed 20 bytes of TCP there and
/// a data offset of at least 5 words (RFC 9293 3.1). Whether it is IPv6, and the segment. `None`
/// for anything else: [`decode`] handles it.
#[inline]
fn plain_tcp(ip: &[u8]) -> Option<(bool, &[u8])> {
    let (v6, protocol, tcp) = plain_ip(ip)?;
    (protocol == 6 && tcp.len() >= 20 && tcp[12] >> 4 >= 5).then_some((v6, tcp))
}

/// Reads a TCP segment's endpoints and flags with as little work as it takes, so that a reader can
/// skip the full decode of the data segments no attempt needs. `None` for anything else and for
/// anything unusual (IPv4 fragments, IPv6 extension headers, a header cut short, a tunnel: see
/// [`look_beyond_tcp`]): [`decode`] those.
#[inline]
pub fn peek_tcp(link_type: LinkType, frame: &[u8]) -> Option<TcpPeek<'_>> {
    let (link_direction, on_loopback, ip) = ip_of(link_type, frame)?;
    peek_ip(link_direction, on_loopback, ip)
}

/// [`peek_tcp`] of the IP packet `ip`, carried by a frame with `link_direction` and `on_loopback`.
/// (Inlined always: with [`look_beyond_tcp`] a second caller, the compiler kept it out of line.)
#[inline(always)]
fn peek_ip(link_direction: LinkDirection, on_loopback: bool, ip: &[u8]) -> Option<TcpPeek<'_>> {
    let (v6, tcp) = plain_tcp(ip)?;
    let (sport, dport) = (u16::from_be_bytes([tcp[0], tcp[1]]), u16::from_be_bytes([tcp[2], tcp[3]]));
    // (The addresses are there: `plain_tcp` read past them, 20 bytes of IPv4, 40 of IPv6.)
    let (src, dst) = if v6 {
        let addr = |at: usize| -> Option<[u8; 16]> { ip.get(at..at + 16)?.try_into().ok() };
        (End::v6(addr(8)?, sport), End::v6(addr(24)?, dport))
    } else {
        let addr = |at: usize| -> Option<[u8; 4]> { ip.get(at..at + 4)?.try_into().ok() };
        (End::v4(addr(12)?, sport), End::v4(addr(16)?, dport))
    };
    Some(TcpPeek { src, dst, flags: TcpFlags(tcp[13]), link_direction, on_loopback, v6, ip, tcp })
}

/// What a quick look finds in a frame that [`peek_tcp`] does not read (see [`look_beyond_tcp`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beyond<'a> {
    /// A plain TCP segment inside a tunnel, or tunnels.
    Tunneled(TcpPeek<'a>),
    /// A plain UDP datagram to no tunnel's port (QUIC, DNS ...): [`decode`] reads it as
    /// [`PacketBody::Other`], which no attempt needs.
    Udp,
    /// Anything else: [`decode`] it.
    Decode,
}

impl<'a> Beyond<'a> {
    /// The segment, if it is one in a tunnel.
    pub fn tunneled(self) -> Option<TcpPeek<'a>> {
        match self {
            Beyond::Tunneled(peek) => Some(peek),
            Beyond::Udp | Beyond::Decode => None,
        }
    }
}

/// Looks at a frame that [`peek_tcp`] does not read, as cheaply: a TCP segment that a tunnel in it
/// carries, up to four tunnels deep (`MAX_TUNNELS`), as [`decode`] reads them (the outer packet and
/// each one inside plain, see `plain_ip`; the segment goes the way the outer packet did, as
/// there), or a UDP datagram that is no tunnel's. A capture from a mirror port is mostly tunneled
/// data segments, and today's traffic much UDP (QUIC); without this each would be decoded in full
/// (about 350 instructions more for each UDP datagram, measured on a replay). A function of its
/// own, for what [`peek_tcp`] does not answer: the loop that peeks at every record of a plain
/// capture is compiled around that one, and a second source of its answer there costs every record
/// 8% more instructions.
pub fn look_beyond_tcp(link_type: LinkType, frame: &[u8]) -> Beyond<'_> {
    let Some((link_direction, on_loopback, mut ip)) = ip_of(link_type, frame) else { return Beyond::Decode };
    for _ in 0..MAX_TUNNELS {
        let Some((_, protocol, payload)) = plain_ip(ip) else { return Beyond::Decode };
        ip = match tunnel::carried(IpNumber(protocol), payload) {
            Some(tunnel::Inner::Ip(ip)) => ip,
            Some(tunnel::Inner::Ethernet(frame)) => match ip_of(LinkType::ETHERNET, frame) {
                Some((_, _, ip)) => ip,
                None => return Beyond::Decode,
            },
            None if IpNumber(protocol) == IpNumber::UDP => return Beyond::Udp,
            None => return Beyond::Decode,
        };
        if let Some(peek) = peek_ip(link_direction, on_loopback, ip) {
            return Beyond::Tunneled(peek);
        }
    }
    Beyond::Decode
}

/// What [`decode`] makes of a plain TCP segment (see `plain_tcp`) whose header is whole, read
/// straight from its bytes: a replay decodes millions of SYNs, SYN-ACKs and handshake ACKs, and the
/// general parsers cost more than the correlating. `None` for anything else: call [`decode`].
pub fn decode_plain_tcp(link_type: LinkType, frame: &[u8]) -> Option<Packet> {
    peek_tcp(link_type, frame)?.decode()
}

impl TcpPeek<'_> {
    /// What [`decode`] makes of the segment if its header is whole (see [`decode_plain_tcp`]), from
    /// the headers the peek found (a replay peeks at every record, then decodes the few it needs).
    /// Inlined always: a replay's record loop and its look through tunnels both call it.
    #[inline(always)]
    pub fn decode(&self) -> Option<Packet> {
        let TcpPeek { link_direction, on_loopback, v6, ip, tcp, .. } = *self;
        let data_offset = usize::from(tcp[12] >> 4) * 4;
        // Options cut by the snapshot length: `decode` keeps what the fixed header says.
        let options = tcp.get(20..data_offset)?;
        let be16 = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
        let be32 = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let ip_ident = ip_ident(ip)?;
        // The segment's length on the wire, from the IP header (see `TcpSegment::payload_len`):
        // `plain_tcp` checked that it holds the captured segment.
        let on_wire =
            if v6 { usize::from(be16(ip, 4)) } else { usize::from(be16(ip, 2)) - usize::from(ip[0] & 0x0f) * 4 };
        let (src, dst, ttl): (IpAddr, IpAddr, u8) = if v6 {
            let addr = |at: usize| -> Option<Ipv6Addr> {
                Some(Ipv6Addr::from(<[u8; 16]>::try_from(ip.get(at..at + 16)?).ok()?))
            };
            (addr(8)?.into(), addr(24)?.into(), ip[7])
        } else {
            let addr = |at: usize| -> Option<Ipv4Addr> {
                Some(Ipv4Addr::from(<[u8; 4]>::try_from(ip.get(at..at + 4)?).ok()?))
            };
            (addr(12)?.into(), addr(16)?.into(), ip[8])
        };
        let segment = TcpSegment {
            src: SocketAddr::new(src, be16(tcp, 0)),
            dst: SocketAddr::new(dst, be16(tcp, 2)),
            flags: TcpFlags(tcp[13]),
            seq: be32(tcp, 4),
            ack: be32(tcp, 8),
            window: be16(tcp, 14),
            options: read_options(options),
            payload_len: u32::try_from(on_wire - data_offset).unwrap_or(u32::MAX),
            ttl,
            ip_ident,
        };
        Some(Packet { link_direction, on_loopback, body: PacketBody::Tcp(segment) })
    }
}

fn decode_ip(bytes: &[u8], tunnels: u8) -> Result<PacketBody, DecodeError> {
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
        IpNumber::TCP => {
            let ident = ip_ident(bytes).unwrap_or_default();
            // The segment's length on the wire, from the IP header when the capture cut it (see
            // `TcpSegment::payload_len`); the cut segment runs to the end of the captured bytes.
            let mut on_wire = payload.payload.len();
            if payload.incomplete {
                let ip_len = match &ip {
                    LaxIpSlice::Ipv4(v4) => usize::from(v4.header().total_len()),
                    LaxIpSlice::Ipv6(v6) => 40 + usize::from(v6.header().payload_length()),
                };
                on_wire = on_wire.max(ip_len.saturating_sub(bytes.len() - payload.payload.len()));
            }
            decode_tcp(src, dst, ttl, ident, on_wire, payload.payload).map(PacketBody::Tcp)
        }
        IpNumber::ICMP if src.is_ipv4() => decode_icmpv4(src, dst, payload.payload, payload.incomplete),
        IpNumber::IPV6_ICMP if src.is_ipv6() => decode_icmpv6(src, dst, payload.payload, payload.incomplete),
        protocol @ (IpNumber::UDP | IpNumber::GRE | IpNumber::IPV4 | IpNumber::IPV6) => {
            let outer = match protocol {
                IpNumber::UDP => "UDP",
                IpNumber::GRE => "GRE",
                _ => "IP in IP",
            };
            decode_tunneled(tunnel::carried(protocol, payload.payload), outer, tunnels)
        }
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

/// A TCP segment captured as `bytes`, and what its IP header says: its ends, TTL, mark (see
/// [`ip_ident`]) and length on the wire (`on_wire`).
fn decode_tcp(
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    ip_ident: u32,
    on_wire: usize,
    bytes: &[u8],
) -> Result<TcpSegment, DecodeError> {
    let tcp = match TcpSlice::from_slice(bytes) {
        Ok(tcp) => tcp,
        // The snapshot length cut into the options: the fixed 20 bytes still say what the segment is.
        Err(etherparse::err::tcp::HeaderSliceError::Len(_)) if bytes.len() >= 20 => {
            return Ok(decode_tcp_truncated(src, dst, ttl, ip_ident, on_wire, bytes));
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
        payload_len: u32::try_from(on_wire.saturating_sub(tcp.header_len())).unwrap_or(u32::MAX),
        ttl,
        ip_ident,
    })
}

/// A TCP header whose options run past the captured bytes: fixed fields, and the options captured.
fn decode_tcp_truncated(src: IpAddr, dst: IpAddr, ttl: u8, ip_ident: u32, on_wire: usize, bytes: &[u8]) -> TcpSegment {
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
        payload_len: u32::try_from(on_wire.saturating_sub(usize::from(bytes[12] >> 4) * 4)).unwrap_or(u32::MAX),
        ttl,
        ip_ident,
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

/// The fixed 8 bytes of an ICMP/ICMPv6 message and what follows them.
struct IcmpHeader<'a> {
    icmp_type: u8,
    code: u8,
    /// Bytes 4..8: unused, a next-hop MTU, or a pointer, depending on the type.
    rest: [u8; 4],
    /// The body: for errors, the quoted packet.
    body: &'a [u8],
}

fn icmp_header(bytes: &[u8]) -> Result<IcmpHeader<'_>, DecodeError> {
    match bytes {
        [t, c, _, _, b4, b5, b6, b7, body @ ..] => {
            Ok(IcmpHeader { icmp_type: *t, code: *c, rest: [*b4, *b5, *b6, *b7], body })
        }
        _ => Err(DecodeError::Icmp(format!("{} bytes, the header needs 8", bytes.len()))),
    }
}

/// An ICMP error (`cut`: the capture kept less of it than its IP header says it had).
fn decode_icmpv4(src: IpAddr, dst: IpAddr, bytes: &[u8], cut: bool) -> Result<PacketBody, DecodeError> {
    let IcmpHeader { icmp_type, code, rest, body } = icmp_header(bytes)?;
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
    let (quoted, cut_quote) = decode_quoted(body, cut);
    Ok(PacketBody::IcmpError(Box::new(IcmpError {
        src,
        dst,
        family: Family::Ipv4,
        kind,
        icmp_type,
        code,
        mtu,
        quoted,
        cut_quote,
    })))
}

/// An ICMPv6 error (`cut`: the capture kept less of it than its IP header says it had).
fn decode_icmpv6(src: IpAddr, dst: IpAddr, bytes: &[u8], cut: bool) -> Result<PacketBody, DecodeError> {
    let IcmpHeader { icmp_type, code, rest, body } = icmp_header(bytes)?;
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
    let (quoted, cut_quote) = decode_quoted(body, cut);
    Ok(PacketBody::IcmpError(Box::new(IcmpError {
        src,
        dst,
        family: Family::Ipv6,
        kind,
        icmp_type,
        code,
        mtu,
        quoted,
        cut_quote,
    })))
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
///
/// Linux drops an error that quotes fewer than 8 bytes after the IP header (`icmp_socket_deliver`),
/// so such a quote names no TCP segment, unless the message was `cut` by the capture (its snap
/// length) rather than by its sender: then the quoted ports, if captured, still name the 4-tuple
/// (the sequence number is `None`), and a quote cut before them keeps its addresses (the second
/// value).
fn decode_quoted(bytes: &[u8], cut: bool) -> (Option<QuotedPacket>, Option<CutQuote>) {
    let Ok((ip, _)) = LaxIpSlice::from_slice(bytes) else {
        return (None, if cut { cut_ip_header(bytes) } else { None });
    };
    let payload = ip.payload();
    let protocol = payload.ip_number.0;
    let (src, dst) = (ip.source_addr(), ip.destination_addr());
    let tcp = match payload.payload {
        _ if payload.ip_number != IpNumber::TCP => None,
        [s0, s1, d0, d1, rest @ ..] if rest.len() >= 4 || cut => Some(QuotedTcp {
            src_port: u16::from_be_bytes([*s0, *s1]),
            dst_port: u16::from_be_bytes([*d0, *d1]),
            seq: rest.get(..4).map(|q| u32::from_be_bytes([q[0], q[1], q[2], q[3]])),
            flags: rest.get(9).map(|f| TcpFlags(*f)),
        }),
        _ => None,
    };
    let cut_quote = (cut && tcp.is_none() && payload.ip_number == IpNumber::TCP).then(|| CutQuote {
        src: AddrPrefix::leading(src, 16),
        dst: AddrPrefix::leading(dst, 16),
        ident: ip_ident(bytes),
    });
    (Some(QuotedPacket { src, dst, protocol, tcp }), cut_quote)
}

/// The addresses left of a quoted IP header that the capture cut (see [`CutQuote`]: none if it
/// cut before the quote); `None` when what was captured says the quote is not TCP (IPv4
/// protocol, IPv6 next header: an extension header before TCP is not expected on a SYN) or is not
/// IP at all.
fn cut_ip_header(bytes: &[u8]) -> Option<CutQuote> {
    let (protocol_at, src_at, size) = match bytes.first().map(|b| b >> 4) {
        Some(4) => (9, 12, 4),
        Some(6) | None => (6, 8, 16),
        Some(_) => return None,
    };
    if bytes.get(protocol_at).is_some_and(|&p| p != IpNumber::TCP.0) {
        return None;
    }
    Some(CutQuote {
        src: AddrPrefix::captured(bytes, src_at, size),
        dst: AddrPrefix::captured(bytes, src_at + size, size),
        ident: ip_ident(bytes),
    })
}

/// What marks one IP packet among a host's others, in the bytes of its header, if they hold it:
/// the IPv4 identification (RFC 791; Linux counts it per socket, `ip_select_ident`) or the IPv6
/// flow label (RFC 6437; Linux derives it from the socket's hash, drawn anew at each SYN
/// retransmit, `sk_rethink_txhash`). The same in a SYN and in an ICMP error's quote of it.
fn ip_ident(ip: &[u8]) -> Option<u32> {
    match ip.first()? >> 4 {
        4 => Some(u32::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]))),
        6 => Some(u32::from_be_bytes([0, *ip.get(1)? & 0x0f, *ip.get(2)?, *ip.get(3)?])),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    //! Frames recorded in the lab (`fixtures/record.sh`), as tcpdump -xx printed them.
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test hex")).collect()
    }

    /// fixtures/success-v4.pcap frame 3: the client's SYN, Ethernet.
    const SYN_V4: &str = "02000000010102000000011008004500003c360740004006186dc000020ac633640aad6c1f90b656270300000000a002faf0ec760000020405b40402080a8ac7c387000000000103030a";
    /// fixtures/success-v6.pcap frame 3: the client's SYN over IPv6, Ethernet.
    const SYN_V6: &str = "02000000010102000000011086dd600b21b60028064020010db800010000000000000000001020010db8000200000000000000000010b2fa1f9033662a4300000000a002fd205bc30000020405a00402080ac8d0a6e6000000000103030a";
    /// fixtures/host-unreachable-v4.pcap frame 4: ICMP host unreachable from the router, quoting the whole SYN.
    const ICMP_HOST_UNREACH_V4: &str = "020000000110020000000101080045c00058e941000040010c98c0000201c000020a030101b9000000004500003ce69040003f0668e3c000020ac633640a937a1f90adcbadda00000000a002faf0ec760000020405b40402080a3ef00e69000000000103030a";
    /// fixtures/refused-v4-sll.pcap frame 4: the server's RST+ACK, Linux cooked v1, received.
    const RST_SLL: &str = "0000000100060200000001010000080045000028000040003f064f88c633640ac000020a1f90973800000000c702312c5014000014910000";
    /// fixtures/refused-v4.pcap frame 1: ARP who-has 192.0.2.1 tell 192.0.2.10.
    const ARP_REQUEST: &str = "ffffffffffff02000000011008060001080006040001020000000110c000020a000000000000c0000201";
    /// fixtures/nd-failure-v6.pcap frame 1: neighbour solicitation for 2001:db8:1::99, cooked v2.
    const NS_SLL2: &str = "86dd0000000000020001040602000000011000006000000000203aff20010db8000100000000000000000010ff0200000000000000000001ff000099870019d90000000020010db80001000000000000000000990101020000000110";
    /// fixtures/nd-failure-v6.pcap frame 4: this host's own ICMPv6 address unreachable on lo, quoting the SYN.
    const ICMP6_LOCAL_SLL2: &str = "86dd000000000001030400060000000000000000600c83e000583a4020010db800010000000000000000001020010db80001000000000000000000100103451500000000600373370028064020010db800010000000000000000001020010db8000100000000000000000099b5f61f9009afdbca00000000a002fd205c4b0000020405a00402080a457d1657000000000103030a";

    proptest::proptest! {
        /// The shortcut for plain TCP segments says exactly what the general decoder says, or
        /// nothing: on recorded segments (IPv4, IPv6, Linux cooked) with bytes changed anywhere,
        /// and cut anywhere.
        #[test]
        fn test_plain_tcp_decodes_as_decode_does(
            which in 0usize..3,
            changes in proptest::collection::vec((0usize..200, proptest::prelude::any::<u8>()), 0..4),
            cut in 0usize..200,
        ) {
            let (link_type, template) = [
                (LinkType::ETHERNET, SYN_V4),
                (LinkType::ETHERNET, SYN_V6),
                (LinkType::LINUX_SLL, RST_SLL),
            ][which];
            let mut frame = hex(template);
            for (at, byte) in changes {
                let at = at % frame.len();
                frame[at] = byte;
            }
            frame.truncate(cut.max(1));
            if let Some(plain) = decode_plain_tcp(link_type, &frame) {
                proptest::prop_assert_eq!(Ok(plain), decode(link_type, &frame));
            }
        }
    }

    #[test]
    fn test_plain_tcp_takes_the_recorded_segments() {
        for (link_type, template) in
            [(LinkType::ETHERNET, SYN_V4), (LinkType::ETHERNET, SYN_V6), (LinkType::LINUX_SLL, RST_SLL)]
        {
            let frame = hex(template);
            assert_eq!(decode_plain_tcp(link_type, &frame).ok_or(()), decode(link_type, &frame).map_err(drop));
        }
        // Options cut short by the snapshot length: left to `decode`.
        let syn = hex(SYN_V4);
        assert!(decode_plain_tcp(LinkType::ETHERNET, &syn[..syn.len() - 4]).is_none());
        assert!(decode(LinkType::ETHERNET, &syn[..syn.len() - 4]).is_ok());
    }

    #[test]
    fn test_decode_syn_with_options() {
        let p = decode(LinkType::ETHERNET, &hex(SYN_V4)).expect("decodes");
        let PacketBody::Tcp(seg) = p.body else { panic!("{p:?}") };
        assert_eq!(seg.src, "192.0.2.10:44396".parse().expect("addr"));
        assert_eq!(seg.dst, "198.51.100.10:8080".parse().expect("addr"));
        assert!(seg.flags.is_syn_only());
        assert_eq!(seg.seq, 3_059_099_395);
        assert_eq!(seg.window, 64240);
        assert_eq!(
            seg.options,
            TcpOptions {
                mss: Some(1460),
                window_scale: Some(10),
                sack_permitted: true,
                timestamps: Some((2_328_347_527, 0))
            }
        );
        assert_eq!((seg.payload_len, seg.ttl), (0, 64));
    }

    #[test]
    fn test_decode_icmp_host_unreachable_quotes_syn() {
        let p = decode(LinkType::ETHERNET, &hex(ICMP_HOST_UNREACH_V4)).expect("decodes");
        let PacketBody::IcmpError(e) = p.body else { panic!("{p:?}") };
        assert_eq!((e.kind, e.icmp_type, e.code), (IcmpErrorKind::DestinationUnreachable, 3, 1));
        assert_eq!(e.src, IpAddr::from([192, 0, 2, 1]));
        let q = e.quoted.expect("quote");
        assert_eq!((q.src, q.dst, q.protocol), (IpAddr::from([192, 0, 2, 10]), IpAddr::from([198, 51, 100, 10]), 6));
        let t = q.tcp.expect("quoted tcp");
        assert_eq!((t.src_port, t.dst_port, t.seq), (37754, 8080, Some(2_915_806_682)));
        assert_eq!(t.flags, Some(TcpFlags(TcpFlags::SYN)));
    }

    /// The ICMP error of `frame` (Ethernet, IPv4) as its sender would have sent it with a quote
    /// of `quoted_tcp` bytes of TCP: the outer IP total length says so (unlike a capture's cut).
    fn sent_short(frame: &[u8], quoted_tcp: usize) -> Vec<u8> {
        let mut frame = frame[..14 + 20 + 8 + 20 + quoted_tcp].to_vec();
        let total = u16::try_from(frame.len() - 14).expect("short");
        frame[14 + 2..14 + 4].copy_from_slice(&total.to_be_bytes());
        frame
    }

    fn icmp_error(link_type: LinkType, frame: &[u8]) -> IcmpError {
        match decode(link_type, frame).map(|p| p.body) {
            Ok(PacketBody::IcmpError(e)) => *e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn test_decode_icmp_quote_of_only_8_tcp_bytes() {
        // RFC 792 only promises the IP header and 8 bytes: ports and sequence number, no flags.
        let frame = hex(ICMP_HOST_UNREACH_V4);
        let e = icmp_error(LinkType::ETHERNET, &sent_short(&frame, 8));
        assert!(!e.quote_cut());
        let t = e.quoted.and_then(|q| q.tcp).expect("quoted tcp");
        assert_eq!((t.src_port, t.dst_port, t.seq, t.flags), (37754, 8080, Some(2_915_806_682), None));
        // Fewer than 8 bytes sent: Linux drops it (icmp_socket_deliver), so it names no segment.
        let e = icmp_error(LinkType::ETHERNET, &sent_short(&frame, 7));
        assert_eq!((e.quoted.expect("ip quote").tcp, e.cut_quote), (None, None));
    }

    #[test]
    fn test_decode_icmp_cut_by_the_capture_keeps_what_it_can() {
        // The same error cut by a snap length at every byte: what is left of the quote, and
        // whether the message says it was cut.
        let frame = hex(ICMP_HOST_UNREACH_V4);
        let (client, server) = (IpAddr::from([192, 0, 2, 10]), IpAddr::from([198, 51, 100, 10]));
        let quote = 14 + 20 + 8;
        let tcp = quote + 20;
        for len in quote..frame.len() {
            let e = icmp_error(LinkType::ETHERNET, &frame[..len]);
            let quoted_tcp = e.quoted.as_ref().and_then(|q| q.tcp);
            match len - quote {
                n if n >= 28 => assert_eq!(quoted_tcp.and_then(|t| t.seq), Some(2_915_806_682), "{len}"),
                n if n >= 24 => {
                    let t = quoted_tcp.expect("ports");
                    assert_eq!((t.src_port, t.dst_port, t.seq), (37754, 8080, None), "{len}");
                    assert!(e.quote_cut() && e.cut_quote.is_none(), "{len}");
                }
                n => {
                    assert_eq!(quoted_tcp, None, "{len}");
                    let cut = e.cut_quote.unwrap_or_else(|| panic!("{len}: {e:?}"));
                    assert!(e.quote_cut());
                    assert_eq!(cut.src.kept(), n.saturating_sub(12).min(4), "{len}");
                    assert_eq!(cut.dst.kept(), n.saturating_sub(16).min(4), "{len}");
                    assert!(cut.src.admits(client) && cut.dst.admits(server), "{len}");
                    let other = IpAddr::from([198, 51, 100, 99]);
                    assert_eq!(cut.dst.admits(other), cut.dst.kept() < 4, "{len}");
                    assert_eq!(len < tcp, e.quoted.is_none(), "{len}: the quoted header is whole from {tcp}");
                }
            }
        }
        // A quote whose protocol the capture kept, and which is not TCP, is no attempt's.
        let mut udp = frame[..quote + 12].to_vec();
        udp[quote + 9] = 17;
        assert_eq!(icmp_error(LinkType::ETHERNET, &udp).cut_quote, None);
    }

    #[test]
    fn test_decode_icmpv6_cut_by_the_capture_keeps_the_addresses_it_can() {
        // A snap length of 96 on Ethernet (76 here, after the cooked header's 20) leaves 10 bytes
        // of the quoted destination, no ports.
        let frame = hex(ICMP6_LOCAL_SLL2);
        let quote = 20 + 40 + 8;
        let e = icmp_error(LinkType::LINUX_SLL2, &frame[..quote + 34]);
        let cut = e.cut_quote.expect("cut before the ports");
        assert_eq!((e.quoted, cut.src.kept(), cut.dst.kept()), (None, 16, 10));
        let client: IpAddr = "2001:db8:1::10".parse().expect("addr");
        assert!(cut.src.admits(client) && cut.dst.admits("2001:db8:1::99".parse().expect("addr")));
        assert!(!cut.dst.admits("2001:db8:2::99".parse().expect("addr")));
        assert!(!cut.src.admits(IpAddr::from([192, 0, 2, 10])), "another family");
        // With the ports: the 4-tuple, without the sequence number.
        let e = icmp_error(LinkType::LINUX_SLL2, &frame[..quote + 40 + 6]);
        let t = e.quoted.and_then(|q| q.tcp).expect("ports");
        assert_eq!((t.dst_port, t.seq, e.cut_quote), (8080, None, None));
    }

    #[test]
    fn test_payload_cut_by_the_capture_counts_as_sent() {
        // The IPv4 SYN with 100 bytes of TCP Fast Open data, cut by a snap length in the data and
        // in the options: its length is the IP header's, as tcpdump's `length` is, so that the
        // ACK of the data still acknowledges the SYN.
        let mut frame = hex(SYN_V4);
        frame.extend_from_slice(&[0x61; 100]);
        let total = u16::try_from(frame.len() - 14).expect("short");
        frame[14 + 2..14 + 4].copy_from_slice(&total.to_be_bytes());
        for cut in [frame.len(), 14 + 20 + 40 + 10, 14 + 20 + 40, 14 + 20 + 30] {
            let decoded = decode(LinkType::ETHERNET, &frame[..cut]);
            let Ok(Packet { body: PacketBody::Tcp(seg), .. }) = &decoded else { panic!("{cut}: {decoded:?}") };
            assert_eq!((seg.payload_len, seg.seq), (100, 3_059_099_395), "cut at {cut}");
            if let Some(plain) = decode_plain_tcp(LinkType::ETHERNET, &frame[..cut]) {
                assert_eq!(Ok(plain), decoded, "cut at {cut}");
            }
        }
    }

    #[test]
    fn test_decode_rst_cooked_direction() {
        let p = decode(LinkType::LINUX_SLL, &hex(RST_SLL)).expect("decodes");
        assert_eq!(p.link_direction, LinkDirection::ToUs);
        assert!(!p.on_loopback, "received on eth0 (ARPHRD_ETHER)");
        let PacketBody::Tcp(seg) = p.body else { panic!("{p:?}") };
        let mut flags = String::new();
        seg.flags.push_tcpdump(&mut flags);
        assert_eq!(flags, "R.");
        assert_eq!(seg.ack, 3_338_809_644);
    }

    #[test]
    fn test_decode_arp_request() {
        let p = decode(LinkType::ETHERNET, &hex(ARP_REQUEST)).expect("decodes");
        let PacketBody::Arp(arp) = p.body else { panic!("{p:?}") };
        assert_eq!(arp.op, ArpOp::Request);
        assert_eq!((arp.sender_ip, arp.target_ip), (Ipv4Addr::new(192, 0, 2, 10), Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(arp.sender_hw, [2, 0, 0, 0, 1, 0x10]);
    }

    #[test]
    fn test_decode_neighbor_solicitation() {
        let p = decode(LinkType::LINUX_SLL2, &hex(NS_SLL2)).expect("decodes");
        assert_eq!(p.link_direction, LinkDirection::Outgoing);
        let PacketBody::Neighbor(nd) = p.body else { panic!("{p:?}") };
        assert_eq!(nd.op, NeighborOp::Solicitation);
        assert_eq!(nd.target, "2001:db8:1::99".parse::<Ipv6Addr>().expect("addr"));
    }

    #[test]
    fn test_decode_icmpv6_local_address_unreachable() {
        let p = decode(LinkType::LINUX_SLL2, &hex(ICMP6_LOCAL_SLL2)).expect("decodes");
        let PacketBody::IcmpError(e) = p.body else { panic!("{p:?}") };
        assert_eq!((e.family, e.icmp_type, e.code), (Family::Ipv6, 1, 3));
        assert_eq!(e.src, e.dst, "generated by this host for itself");
        let t = e.quoted.and_then(|q| q.tcp).expect("quoted tcp");
        assert_eq!((t.dst_port, t.flags), (8080, Some(TcpFlags(TcpFlags::SYN))));
    }

    #[test]
    fn test_decode_ipv6_walks_extension_headers() {
        // fixtures/success-v6.pcap frame 3, the client's SYN; then the same with a hop-by-hop header
        // (PadN) inserted before TCP: IPv6 next header 0, the extension's next header 6.
        let syn = hex(SYN_V6);
        let mut with_hop_by_hop = syn[..14 + 40].to_vec();
        with_hop_by_hop[14 + 5] = 0x30; // payload length 40 + 8
        with_hop_by_hop[14 + 6] = 0; // next header: hop-by-hop options
        with_hop_by_hop.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]); // next: TCP; PadN of 4 bytes
        with_hop_by_hop.extend_from_slice(&syn[14 + 40..]);
        for frame in [syn, with_hop_by_hop] {
            let p = decode(LinkType::ETHERNET, &frame).expect("decodes");
            let PacketBody::Tcp(seg) = p.body else { panic!("{p:?}") };
            assert_eq!(seg.dst, "[2001:db8:2::10]:8080".parse().expect("addr"));
            assert_eq!((seg.seq, seg.options.mss), (862_333_507, Some(1440)));
        }
    }

    /// The lab's real frames, each with its link type, and some of them tunneled.
    fn real_frames() -> Vec<(LinkType, Vec<u8>)> {
        vec![
            (LinkType::ETHERNET, hex(SYN_V4)),
            (LinkType::ETHERNET, hex(SYN_V6)),
            (LinkType::ETHERNET, hex(ICMP_HOST_UNREACH_V4)),
            (LinkType::LINUX_SLL, hex(RST_SLL)),
            (LinkType::ETHERNET, hex(ARP_REQUEST)),
            (LinkType::LINUX_SLL2, hex(NS_SLL2)),
            (LinkType::LINUX_SLL2, hex(ICMP6_LOCAL_SLL2)),
            (LinkType::ETHERNET, vxlan(&hex(SYN_V4))),
            // The SYN with an 802.1Q tag (VLAN 100), and with a service tag outside that (QinQ).
            (LinkType::ETHERNET, tagged(&hex(SYN_V4), &[0x81, 0x00, 0x00, 0x64])),
            (LinkType::ETHERNET, tagged(&hex(SYN_V6), &[0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x64])),
            // A DNS query in UDP, to port 53, no tunnel's.
            (LinkType::ETHERNET, outer_ipv4(17, &hex("c001003500180000abcd0100000100000000000003777777"))),
            (
                LinkType::ETHERNET,
                outer_ipv4(
                    47,
                    &[&[0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0, 0, 1, 0, 0, 0, 0][..], &hex(SYN_V6)].concat(),
                ),
            ),
        ]
    }

    /// An Ethernet frame with `tags` (VLAN tags, each its type and 2 bytes) after its addresses.
    fn tagged(frame: &[u8], tags: &[u8]) -> Vec<u8> {
        [&frame[..12], tags, &frame[12..]].concat()
    }

    /// `payload` in an IPv4 packet of protocol `protocol` from 203.0.113.1 to 203.0.113.2, in an
    /// Ethernet frame: a tunnel's outer headers.
    fn outer_ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
        let total = u16::try_from(20 + payload.len()).expect("short").to_be_bytes();
        let mut frame = hex("0200000000020200000000010800");
        frame.extend_from_slice(&[0x45, 0, total[0], total[1], 0, 1, 0x40, 0, 64, protocol, 0, 0]);
        frame.extend_from_slice(&[203, 0, 113, 1, 203, 0, 113, 2]);
        frame.extend_from_slice(payload);
        frame
    }

    /// An Ethernet frame in VXLAN (VNI 7), in UDP to port 4789.
    fn vxlan(frame: &[u8]) -> Vec<u8> {
        let len = u16::try_from(16 + frame.len()).expect("short").to_be_bytes();
        let udp = [&[0xc0, 0x01, 0x12, 0xb5, len[0], len[1], 0, 0, 0x08, 0, 0, 0, 0, 0, 7, 0][..], frame].concat();
        outer_ipv4(17, &udp)
    }

    #[test]
    fn test_decode_looks_through_tunnels_to_the_segment() {
        let syn_v4 = decode(LinkType::ETHERNET, &hex(SYN_V4)).expect("decodes");
        let syn_v6 = decode(LinkType::ETHERNET, &hex(SYN_V6)).expect("decodes");
        let ip_of = |frame: &[u8]| frame[14..].to_vec();
        let tunneled = [
            ("VXLAN", vxlan(&hex(SYN_V4)), &syn_v4),
            ("GRE, IPv6", outer_ipv4(47, &[&[0, 0, 0x86, 0xdd][..], &ip_of(&hex(SYN_V6))].concat()), &syn_v6),
            ("GRE, bridged Ethernet", outer_ipv4(47, &[&[0, 0, 0x65, 0x58][..], &hex(SYN_V4)].concat()), &syn_v4),
            ("IP in IP", outer_ipv4(4, &ip_of(&hex(SYN_V4))), &syn_v4),
            ("IPv6 in IPv4", outer_ipv4(41, &ip_of(&hex(SYN_V6))), &syn_v6),
            ("VXLAN in IP in IP", outer_ipv4(4, &ip_of(&vxlan(&hex(SYN_V4)))), &syn_v4),
        ];
        for (what, frame, inner) in tunneled {
            assert_eq!(decode(LinkType::ETHERNET, &frame).as_ref(), Ok(inner), "{what}");
            // The plain peek leaves tunnels to the tunnel peek, which reads what the decode reads.
            assert_eq!(peek_tcp(LinkType::ETHERNET, &frame), None, "{what}");
            let peek = look_beyond_tcp(LinkType::ETHERNET, &frame).tunneled().expect(what);
            assert_eq!(peek.decode().as_ref(), Some(inner), "{what}");
        }
        // A plain segment is no tunnel's.
        assert_eq!(look_beyond_tcp(LinkType::ETHERNET, &hex(SYN_V4)), Beyond::Decode);
        // Four tunnels deep is read; five is not, by the decode or the peek.
        let mut nested = ip_of(&hex(SYN_V4));
        for depth in 1..=5 {
            nested = ip_of(&outer_ipv4(4, &nested));
            let frame = outer_ipv4(4, &nested);
            let decoded = decode(LinkType::ETHERNET, &frame).expect("decodes").body;
            let deep = depth + 1 > usize::from(MAX_TUNNELS);
            assert_eq!(decoded == PacketBody::Other("tunnels nested too deep"), deep, "{depth} inside: {decoded:?}");
            assert_eq!(look_beyond_tcp(LinkType::ETHERNET, &frame).tunneled().is_none(), deep, "{depth} inside");
        }
        // UDP to another port, and GRE carrying what synscope does not read, are what they are; the
        // look beyond TCP knows UDP for what it is, and leaves GRE to the decode.
        let dns = outer_ipv4(17, &[0xc0, 0x01, 0, 53, 0, 8, 0, 0]);
        assert_eq!(decode(LinkType::ETHERNET, &dns).expect("decodes").body, PacketBody::Other("UDP"));
        assert_eq!(look_beyond_tcp(LinkType::ETHERNET, &dns), Beyond::Udp);
        let pptp = outer_ipv4(47, &[0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 0]);
        assert_eq!(decode(LinkType::ETHERNET, &pptp).expect("decodes").body, PacketBody::Other("GRE"));
        assert_eq!(look_beyond_tcp(LinkType::ETHERNET, &pptp), Beyond::Decode);
        // Nor does it read ICMP errors or ARP, which attempts need.
        for frame in [ICMP_HOST_UNREACH_V4, ARP_REQUEST] {
            assert_eq!(look_beyond_tcp(LinkType::ETHERNET, &hex(frame)), Beyond::Decode);
        }
    }

    #[test]
    fn test_peek_reads_through_vlan_tags() {
        // One 802.1Q tag (read without the general link-layer walk), and QinQ (read with it).
        for tags in [&[0x81, 0x00, 0x00, 0x64][..], &[0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x64]] {
            for template in [SYN_V4, SYN_V6] {
                let frame = tagged(&hex(template), tags);
                let peek = peek_tcp(LinkType::ETHERNET, &frame).expect("a tagged segment is peeked at");
                assert_eq!(peek.decode(), decode(LinkType::ETHERNET, &hex(template)).ok(), "{tags:02x?}");
            }
        }
    }

    /// Every prefix of `frame`, and `frame` with each byte in turn set to each of a few telling
    /// values (0, 1, protocol 6, nibbles, the IPv4/IPv6 version bytes, the high bit, 0xff).
    fn prefixes_and_mutations(frame: &[u8]) -> Vec<Vec<u8>> {
        let mut variants: Vec<Vec<u8>> = (0..=frame.len()).map(|len| frame[..len].to_vec()).collect();
        for at in 0..frame.len() {
            for value in [0x00, 0x01, 0x06, 0x0f, 0x45, 0x50, 0x60, 0x7f, 0x80, 0xff] {
                let mut mutated = frame.to_vec();
                mutated[at] = value;
                variants.push(mutated);
            }
        }
        variants
    }

    #[test]
    fn test_decode_never_panics_on_mutated_real_frames() {
        for (link, frame) in real_frames() {
            for bytes in prefixes_and_mutations(&frame) {
                let _ = decode(link, &bytes);
            }
        }
    }

    /// Whenever a cheap peek answers (the plain one, or the look beyond it into tunnels), the full
    /// decode says the same, and so does the peek's own decode: skipping on its word, or decoding
    /// from it, is safe. And what the look beyond calls UDP, the decode reads as nothing attempts need.
    #[test]
    fn test_peek_tcp_agrees_with_decode() {
        let (mut answered, mut tunneled, mut udp) = (0, 0, 0);
        for (link, frame) in real_frames() {
            for bytes in prefixes_and_mutations(&frame) {
                let plain = peek_tcp(link, &bytes);
                let beyond = look_beyond_tcp(link, &bytes);
                let decoded = decode(link, &bytes);
                if beyond == Beyond::Udp {
                    udp += 1;
                    assert!(
                        matches!(decoded, Ok(Packet { body: PacketBody::Other(_), .. })),
                        "{bytes:02x?}: {decoded:?}"
                    );
                }
                let through = beyond.tunneled();
                assert!(plain.is_none() || through.is_none(), "one peek answers: {bytes:02x?}");
                let Some(peek) = plain.or(through) else { continue };
                answered += 1;
                tunneled += usize::from(through.is_some());
                match &decoded {
                    Ok(Packet { body: PacketBody::Tcp(seg), .. }) => {
                        assert_eq!(
                            (peek.src, peek.dst, peek.flags),
                            (End::of(seg.src), End::of(seg.dst), seg.flags),
                            "{bytes:02x?}"
                        )
                    }
                    other => panic!("peek says TCP {peek:?}, decode says {other:?} for {bytes:02x?}"),
                }
                if let Some(packet) = peek.decode() {
                    assert_eq!(Ok(packet), decoded, "{bytes:02x?}");
                }
            }
        }
        assert!(answered > 1000, "the peeks answer for real TCP frames ({answered})");
        assert!(tunneled > 1000, "the look beyond answers for real TCP frames in tunnels ({tunneled})");
        assert!(udp > 100, "the look beyond knows UDP ({udp})");
        assert_eq!(peek_tcp(LinkType::ETHERNET, &hex(ICMP_HOST_UNREACH_V4)), None);
    }
}

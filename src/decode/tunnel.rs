//! Tunnels: finds the packet a tunnel carries, so that traffic captured encapsulated (a mirror
//! port's ERSPAN, cloud traffic mirroring over VXLAN or GENEVE, an overlay network's VXLAN or
//! IP-in-IP between its nodes) is read as the connection attempts inside it.
//!
//! Pure: bytes in, the inner packet's bytes out, or `None` when the bytes are no tunnel synscope
//! reads (then the packet is what its outer header says: UDP, GRE ...). Header layouts follow the
//! RFCs cited at each, as tcpdump's printers read them (`print-vxlan.c`, `print-geneve.c`,
//! `print-gre.c`, `print-erspan.c`).

use etherparse::IpNumber;

/// What a tunnel packet carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inner<'a> {
    /// An Ethernet frame (VXLAN, GENEVE and GRE's transparent Ethernet bridging, ERSPAN).
    Ethernet(&'a [u8]),
    /// An IP packet, version from its first nibble.
    Ip(&'a [u8]),
}

/// VXLAN's port (RFC 7348 5, IANA).
const VXLAN_PORT: u16 = 4789;
/// The port Linux's VXLAN used before IANA assigned one, and flannel still uses (`vxlan dstport
/// 8472`).
const VXLAN_LINUX_PORT: u16 = 8472;
/// GENEVE's port (RFC 8926 3.3).
const GENEVE_PORT: u16 = 6081;

/// Protocol types of GENEVE and GRE (EtherTypes): transparent Ethernet bridging, IPv4, IPv6, and
/// ERSPAN types II and III (type I shares type II's, without GRE's sequence number).
const TRANSPARENT_ETHERNET: u16 = 0x6558;
const IPV4: u16 = 0x0800;
const IPV6: u16 = 0x86dd;
const ERSPAN_II: u16 = 0x88be;
const ERSPAN_III: u16 = 0x22eb;

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// What a GENEVE or GRE protocol type says follows.
fn by_protocol(protocol: u16, inner: &[u8]) -> Option<Inner<'_>> {
    match protocol {
        TRANSPARENT_ETHERNET => Some(Inner::Ethernet(inner)),
        IPV4 | IPV6 => Some(Inner::Ip(inner)),
        _ => None,
    }
}

/// The packet that the payload of an IP packet of protocol `protocol` carries, when it is a
/// tunnel's: UDP to a VXLAN or GENEVE port ([`in_udp`]), GRE ([`in_gre`]), or IP in IP (RFC 2003),
/// IPv6 in IPv4 (RFC 4213) or in IPv6 (RFC 2473). `None` for anything else. (Inlined: a replay's
/// look beyond TCP asks it of every UDP datagram, and as a call it cost that look 2% more.)
#[inline]
pub fn carried(protocol: IpNumber, payload: &[u8]) -> Option<Inner<'_>> {
    match protocol {
        IpNumber::UDP => in_udp(payload),
        IpNumber::GRE => in_gre(payload),
        IpNumber::IPV4 | IpNumber::IPV6 => Some(Inner::Ip(payload)),
        _ => None,
    }
}

/// The packet a UDP datagram (its header, then its payload) tunnels to a VXLAN or GENEVE port.
pub fn in_udp(udp: &[u8]) -> Option<Inner<'_>> {
    let payload = udp.get(8..)?;
    match be16(udp, 2)? {
        // RFC 7348 5: flags (I, the VNI is valid, must be set; the group policy extension sets
        // another), 3 reserved bytes, the VNI (3 bytes) and a reserved byte, then the frame.
        VXLAN_PORT | VXLAN_LINUX_PORT if payload.first()? & 0x08 != 0 => Some(Inner::Ethernet(payload.get(8..)?)),
        // RFC 8926 3.4: version (2 bits, 0) and the options' length in 4-byte words (6 bits), flags,
        // the protocol type, the VNI and a reserved byte, then the options.
        GENEVE_PORT if payload.first()? >> 6 == 0 => {
            let options = usize::from(payload[0] & 0x3f) * 4;
            by_protocol(be16(payload, 2)?, payload.get(8 + options..)?)
        }
        _ => None,
    }
}

/// The packet a GRE packet (RFC 2784, with RFC 2890's key and sequence number) carries: IP, an
/// Ethernet frame bridged, or one mirrored by ERSPAN. Version 1 (PPTP's enhanced GRE, RFC 2637)
/// and source routing (RFC 1701) are not read.
pub fn in_gre(gre: &[u8]) -> Option<Inner<'_>> {
    let flags = be16(gre, 0)?;
    const CHECKSUM: u16 = 0x8000;
    const ROUTING: u16 = 0x4000;
    const KEY: u16 = 0x2000;
    const SEQUENCE: u16 = 0x1000;
    if flags & 0x0007 != 0 || flags & ROUTING != 0 {
        return None;
    }
    // The checksum (with a reserved half), the key and the sequence number: 4 bytes each, if present.
    let optional = [CHECKSUM, KEY, SEQUENCE].iter().filter(|&&bit| flags & bit != 0).count() * 4;
    let inner = gre.get(4 + optional..)?;
    match be16(gre, 2)? {
        // ERSPAN type II: an 8-byte header, version 1 (draft-foschiano-erspan 4.1); type I, without
        // GRE's sequence number, has no header.
        ERSPAN_II if flags & SEQUENCE == 0 => Some(Inner::Ethernet(inner)),
        ERSPAN_II if inner.first()? >> 4 == 1 => Some(Inner::Ethernet(inner.get(8..)?)),
        // ERSPAN type III: a 12-byte header, version 2, then an 8-byte platform-specific
        // subheader if its last bit (O) is set (draft-foschiano-erspan 4.2).
        ERSPAN_III if inner.first()? >> 4 == 2 => {
            let header = if inner.get(11)? & 0x01 != 0 { 20 } else { 12 };
            Some(Inner::Ethernet(inner.get(header..)?))
        }
        ERSPAN_II | ERSPAN_III => None,
        protocol => by_protocol(protocol, inner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: &[u8] = b"an inner frame";

    fn udp(port: u16, payload: &[u8]) -> Vec<u8> {
        let mut udp = vec![0xc0, 0x01];
        udp.extend_from_slice(&port.to_be_bytes());
        udp.extend_from_slice(&u16::try_from(8 + payload.len()).expect("short").to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(payload);
        udp
    }

    #[test]
    fn test_vxlan_on_both_ports_with_its_flag() {
        let vxlan = [&[0x08, 0, 0, 0, 0, 0x12, 0x34, 0][..], FRAME].concat();
        assert_eq!(in_udp(&udp(4789, &vxlan)), Some(Inner::Ethernet(FRAME)));
        assert_eq!(in_udp(&udp(8472, &vxlan)), Some(Inner::Ethernet(FRAME)));
        // The group policy extension's flag beside I.
        let gbp = [&[0x88, 0, 0, 0x01, 0, 0x12, 0x34, 0][..], FRAME].concat();
        assert_eq!(in_udp(&udp(4789, &gbp)), Some(Inner::Ethernet(FRAME)));
        // Without I, or on another port, or cut inside its header: not VXLAN.
        let no_vni = [&[0x00, 0, 0, 0, 0, 0x12, 0x34, 0][..], FRAME].concat();
        assert_eq!(in_udp(&udp(4789, &no_vni)), None);
        assert_eq!(in_udp(&udp(53, &vxlan)), None);
        assert_eq!(in_udp(&udp(4789, &vxlan[..5])), None);
    }

    #[test]
    fn test_geneve_skips_its_options() {
        let plain = [&[0x00, 0x00, 0x65, 0x58, 0, 0, 0x07, 0][..], FRAME].concat();
        assert_eq!(in_udp(&udp(6081, &plain)), Some(Inner::Ethernet(FRAME)));
        // Two words of options (AWS's gateway load balancer sends three such TLVs).
        let options = [&[0x02, 0x00, 0x08, 0x00, 0, 0, 0x07, 0][..], &[0x01; 8], FRAME].concat();
        assert_eq!(in_udp(&udp(6081, &options)), Some(Inner::Ip(FRAME)));
        // Version 1 is not read; nor is an unknown protocol.
        let version_1 = [&[0x40, 0x00, 0x65, 0x58, 0, 0, 0x07, 0][..], FRAME].concat();
        assert_eq!(in_udp(&udp(6081, &version_1)), None);
        let mpls = [&[0x00, 0x00, 0x88, 0x47, 0, 0, 0x07, 0][..], FRAME].concat();
        assert_eq!(in_udp(&udp(6081, &mpls)), None);
    }

    #[test]
    fn test_gre_with_its_optional_fields() {
        assert_eq!(in_gre(&[&[0x00, 0x00, 0x08, 0x00][..], FRAME].concat()), Some(Inner::Ip(FRAME)));
        assert_eq!(in_gre(&[&[0x00, 0x00, 0x86, 0xdd][..], FRAME].concat()), Some(Inner::Ip(FRAME)));
        // Checksum, key and sequence number: 12 bytes more.
        let all = [&[0xb0, 0x00, 0x65, 0x58][..], &[0xaa; 12], FRAME].concat();
        assert_eq!(in_gre(&all), Some(Inner::Ethernet(FRAME)));
        // A key alone.
        let keyed = [&[0x20, 0x00, 0x08, 0x00][..], &[0xaa; 4], FRAME].concat();
        assert_eq!(in_gre(&keyed), Some(Inner::Ip(FRAME)));
        // PPTP's version 1, source routing, an unknown protocol, a header cut short.
        assert_eq!(in_gre(&[&[0x30, 0x01, 0x88, 0x0b][..], &[0; 8], FRAME].concat()), None);
        assert_eq!(in_gre(&[&[0x40, 0x00, 0x08, 0x00][..], &[0; 8], FRAME].concat()), None);
        assert_eq!(in_gre(&[&[0x00, 0x00, 0x88, 0x0b][..], FRAME].concat()), None);
        assert_eq!(in_gre(&[0x80, 0x00, 0x08, 0x00, 0x12]), None);
    }

    #[test]
    fn test_erspan_types_one_to_three() {
        // Type I: no sequence number, no header.
        assert_eq!(in_gre(&[&[0x00, 0x00, 0x88, 0xbe][..], FRAME].concat()), Some(Inner::Ethernet(FRAME)));
        // Type II: sequence number, then 8 bytes, version 1.
        let ii = [&[0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 7][..], &[0x10, 0x64, 0x00, 0x01, 0, 0, 0, 0], FRAME].concat();
        assert_eq!(in_gre(&ii), Some(Inner::Ethernet(FRAME)));
        // Type III: 12 bytes, version 2; with the O bit, 8 more.
        let iii_header = [0x20, 0x64, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0];
        let iii = [&[0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 7][..], &iii_header, FRAME].concat();
        assert_eq!(in_gre(&iii), Some(Inner::Ethernet(FRAME)));
        let mut with_subheader = iii_header;
        with_subheader[11] = 0x01;
        let iii_o = [&[0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 7][..], &with_subheader, &[0; 8], FRAME].concat();
        assert_eq!(in_gre(&iii_o), Some(Inner::Ethernet(FRAME)));
        // A type II header of another version is not read.
        let bad = [&[0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 7][..], &[0x30, 0x64, 0, 1, 0, 0, 0, 0], FRAME].concat();
        assert_eq!(in_gre(&bad), None);
    }
}

//! Flows: endpoints, address families and the direction of a packet relative to the client.

use std::net::{IpAddr, SocketAddr};

use serde::{Serialize, Serializer};

/// IPv4 or IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// What its header calls the hops a packet has left: IPv4's TTL, IPv6's hop limit.
    pub fn ttl_name(self) -> &'static str {
        match self {
            Family::Ipv4 => "TTL",
            Family::Ipv6 => "hop limit",
        }
    }

    /// Its name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

impl Serialize for Family {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// A TCP connection attempt's two ends: the client that sent the SYN and the server it was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// The side that sent the SYN.
    pub client: SocketAddr,
    /// The side the SYN was addressed to.
    pub server: SocketAddr,
}

impl FlowKey {
    /// The key of a segment sent by the client (`src` is the client).
    pub fn from_client(src: SocketAddr, dst: SocketAddr) -> FlowKey {
        FlowKey { client: src, server: dst }
    }

    /// The key of a segment sent by the server (`dst` is the client).
    pub fn from_server(src: SocketAddr, dst: SocketAddr) -> FlowKey {
        FlowKey { client: dst, server: src }
    }

    /// The address family of the flow.
    pub fn family(&self) -> Family {
        Family::of(self.client.ip())
    }
}

/// One end of a flow as lookups compare it: the address's bits (IPv4 in the low 32) and the port,
/// tagged by family. Plain integers, read straight from a packet's bytes by `decode::peek_tcp`: a
/// replay compares millions of these, and needs no `SocketAddr` to do it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End {
    addr: [u64; 2],
    /// The port in the low 16 bits; bit 16 set for IPv6.
    port_and_family: u32,
}

impl End {
    /// The end of `e`.
    pub fn of(e: SocketAddr) -> End {
        match e.ip() {
            IpAddr::V4(ip) => End::v4(ip.octets(), e.port()),
            IpAddr::V6(ip) => End::v6(ip.octets(), e.port()),
        }
    }

    /// An IPv4 end from the address's bytes in network order.
    pub fn v4(addr: [u8; 4], port: u16) -> End {
        End { addr: [u64::from(u32::from_be_bytes(addr)), 0], port_and_family: u32::from(port) }
    }

    /// An IPv6 end from the address's bytes in network order.
    pub fn v6(addr: [u8; 16], port: u16) -> End {
        let bits = u128::from_be_bytes(addr);
        End { addr: [bits as u64, (bits >> 64) as u64], port_and_family: u32::from(port) | 1 << 16 }
    }

    /// The address.
    pub fn ip(self) -> IpAddr {
        if self.port_and_family & 1 << 16 != 0 {
            IpAddr::from((u128::from(self.addr[1]) << 64 | u128::from(self.addr[0])).to_be_bytes())
        } else {
            IpAddr::from((self.addr[0] as u32).to_be_bytes())
        }
    }

    /// A hash of the end: the 64-bit finalizer of MurmurHash3 (fmix64), so every input bit moves
    /// every output bit.
    pub fn hash(self) -> u64 {
        let folded = self.addr[0] ^ self.addr[1].rotate_left(29) ^ u64::from(self.port_and_family) << 47;
        let mut h = folded ^ (folded >> 33);
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// An address or a socket address in text, exactly as its `Display` writes it (RFC 5952's form for
/// IPv6), built in a buffer on the stack without the formatting machinery, as `itoa::Buffer` does
/// for integers: a replay words millions of addresses (two in every attempt's JSON line, four more
/// in an ICMP error's summary), and through `Display` each took more instructions than the rest of
/// its sentence.
pub struct AddrText {
    /// The longest is `[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535` (58 bytes); the
    /// rest is room for the fixed-width writes below.
    bytes: [u8; 64],
    len: usize,
}

impl AddrText {
    /// `192.0.2.1` or `2001:db8::1`.
    pub fn ip(ip: IpAddr) -> AddrText {
        let mut text = AddrText { bytes: [0; 64], len: 0 };
        match ip {
            IpAddr::V4(v4) => text.ipv4(v4),
            IpAddr::V6(v6) => text.ipv6(v6),
        }
        text
    }

    /// `192.0.2.1:80` or `[2001:db8::1]:443` (`[fe80::1%2]:443` with a scope).
    pub fn socket(addr: SocketAddr) -> AddrText {
        let mut text = AddrText { bytes: [0; 64], len: 0 };
        match addr {
            SocketAddr::V4(v4) => text.ipv4(*v4.ip()),
            SocketAddr::V6(v6) => {
                text.push(b"[");
                text.ipv6(*v6.ip());
                if v6.scope_id() != 0 {
                    text.push(b"%");
                    text.push(itoa::Buffer::new().format(v6.scope_id()).as_bytes());
                }
                text.push(b"]");
            }
        }
        text.push(b":");
        text.push(itoa::Buffer::new().format(addr.port()).as_bytes());
        text
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // (Only ASCII is ever written.)
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn push(&mut self, bytes: &[u8]) {
        self.bytes[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn ipv4(&mut self, ip: std::net::Ipv4Addr) {
        for (i, octet) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                self.push(b".");
            }
            // Three digits written, as many kept: a fixed-width copy, not a call to copy a few bytes.
            let (digits, len) = &OCTETS[usize::from(octet)];
            self.bytes[self.len..self.len + 3].copy_from_slice(digits);
            self.len += usize::from(*len);
        }
    }

    /// Lowercase hex without leading zeros, the first longest run of two or more zero groups as
    /// `::` (RFC 5952 4.2), and an IPv4-mapped address as `::ffff:192.0.2.1` (section 5), as
    /// `Ipv6Addr`'s Display writes them.
    fn ipv6(&mut self, ip: std::net::Ipv6Addr) {
        if let Some(v4) = ip.to_ipv4_mapped() {
            self.push(b"::ffff:");
            self.ipv4(v4);
            return;
        }
        let groups = ip.segments();
        // The first longest run of zero groups: (start, length).
        let (mut longest, mut run) = ((0, 0), (0, 0));
        for (i, &group) in groups.iter().enumerate() {
            if group != 0 {
                run = (i + 1, 0);
                continue;
            }
            run.1 += 1;
            if run.1 > longest.1 {
                longest = run;
            }
        }
        if longest.1 > 1 {
            self.hex_groups(&groups[..longest.0]);
            self.push(b"::");
            self.hex_groups(&groups[longest.0 + longest.1..]);
        } else {
            self.hex_groups(&groups);
        }
    }

    fn hex_groups(&mut self, groups: &[u16]) {
        const HEX: [u8; 16] = *b"0123456789abcdef";
        for (i, &group) in groups.iter().enumerate() {
            if i > 0 {
                self.push(b":");
            }
            // Four digits written from the first significant one, as many kept.
            let len = (4 - group.leading_zeros() as usize / 4).max(1);
            let first = group << (4 * (4 - len));
            let digits = [first >> 12, first >> 8, first >> 4, first].map(|nibble| HEX[usize::from(nibble & 0xf)]);
            self.bytes[self.len..self.len + 4].copy_from_slice(&digits);
            self.len += len;
        }
    }
}

/// Every octet's decimal digits and how many there are: four look-ups write an IPv4 address.
static OCTETS: [([u8; 3], u8); 256] = {
    let mut table = [([0u8; 3], 0u8); 256];
    let mut n = 0;
    while n < 256 {
        let (hundreds, tens, ones) = ((n / 100) as u8, (n / 10 % 10) as u8, (n % 10) as u8);
        table[n] = match n {
            0..=9 => ([b'0' + ones, 0, 0], 1),
            10..=99 => ([b'0' + tens, b'0' + ones, 0], 2),
            _ => ([b'0' + hundreds, b'0' + tens, b'0' + ones], 3),
        };
        n += 1;
    }
    table
};

/// Which way a packet went, seen from the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Sent by the client.
    Out,
    /// Received by the client (from the server or a router).
    In,
    /// Generated by the client's own host and looped back to it (e.g. an ICMP error after ARP failed).
    Local,
}

impl Serialize for Dir {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl Dir {
    /// Its name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Dir::Out => "out",
            Dir::In => "in",
            Dir::Local => "local",
        }
    }

    /// The arrow the text timeline draws for this direction.
    pub fn arrow(self) -> &'static str {
        match self {
            Dir::Out => "→",
            Dir::In => "←",
            Dir::Local => "↺",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

    use proptest::prelude::*;

    use super::*;

    /// The socket address and its address as [`AddrText`] writes them.
    fn ours(addr: SocketAddr) -> [String; 2] {
        [AddrText::socket(addr).as_str().into(), AddrText::ip(addr.ip()).as_str().into()]
    }

    /// The same as `Display` writes them.
    fn displayed(addr: SocketAddr) -> [String; 2] {
        [addr.to_string(), addr.ip().to_string()]
    }

    fn check(addr: SocketAddr) {
        assert_eq!(ours(addr), displayed(addr));
    }

    #[test]
    fn test_addresses_write_as_display_does() {
        // Every pattern of zero and non-zero groups (where the runs to compress lie), with groups
        // of one to four hex digits, and with and without a scope.
        for pattern in 0u32..256 {
            for (n, value) in [1u16, 0xf, 0x10, 0xabc, 0x1000, 0xffff].into_iter().enumerate() {
                let groups: [u16; 8] =
                    std::array::from_fn(
                        |i| if pattern >> i & 1 == 1 { value.rotate_left(i as u32 * 4) | 1 } else { 0 },
                    );
                let ip = Ipv6Addr::from(groups);
                check(SocketAddr::V6(SocketAddrV6::new(ip, 443, 0, 0)));
                check(SocketAddr::V6(SocketAddrV6::new(ip, n as u16, 7, n as u32 * 1000)));
            }
        }
        for text in [
            "[::]:0",
            "[::1]:80",
            "[::ffff:192.0.2.1]:8080",
            "[::ffff:0.0.0.0]:1",
            "[::192.0.2.1]:2",
            "[::ffff:0:c000:201]:3",
            "[64:ff9b::c000:201]:443",
            "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535",
            "255.255.255.255:65535",
        ] {
            check(text.parse().expect("an address"));
        }
        for n in 0..=255u8 {
            check(SocketAddr::from(([n, 255 - n, n / 3, n % 10], u16::from(n) * 257)));
        }
    }

    /// A group that is often zero, often a short number and sometimes anything, so that runs of
    /// zeros of every length and place meet groups of every width.
    fn group() -> impl Strategy<Value = u16> {
        prop_oneof![3 => Just(0u16), 1 => Just(0xffff), 2 => 0u16..0x100, 2 => any::<u16>()]
    }

    proptest! {
        #[test]
        fn prop_ipv6_addresses_write_as_display_does(
            groups in proptest::array::uniform8(group()),
            bits: u128,
            v4: u32,
            port: u16,
            scope in prop_oneof![Just(0u32), any::<u32>()],
        ) {
            let mapped = Ipv4Addr::from(v4).to_ipv6_mapped();
            let compatible = Ipv4Addr::from(v4).to_ipv6_compatible();
            for ip in [Ipv6Addr::from(groups), Ipv6Addr::from(bits), mapped, compatible] {
                let addr = SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope));
                prop_assert_eq!(ours(addr), displayed(addr));
            }
        }

        #[test]
        fn prop_ipv4_addresses_write_as_display_does(v4: u32, port: u16) {
            let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(v4), port));
            prop_assert_eq!(ours(addr), displayed(addr));
        }
    }
}

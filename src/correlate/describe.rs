//! Packet wording: tcpdump-like one-line summaries and the names of ICMP codes.

use std::borrow::Cow;
use std::net::SocketAddr;

use crate::decode::{
    ArpMessage, ArpOp, IcmpError, IcmpErrorKind, NeighborMessage, NeighborOp, TcpFlags, TcpOptions, TcpSegment,
};
use crate::flow::{AddrText, Family};

/// What a TCP segment's one-line summary shows, kept compact (no addresses, no text) while its
/// attempt is open, and worded only when the attempt is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpWords {
    flags: TcpFlags,
    seq: u32,
    ack: u32,
    window: u16,
    options: TcpOptions,
    payload_len: u32,
}

impl TcpWords {
    /// The words of `seg`.
    pub fn of(seg: &TcpSegment) -> TcpWords {
        TcpWords {
            flags: seg.flags,
            seq: seg.seq,
            ack: seg.ack,
            window: seg.window,
            options: seg.options,
            payload_len: seg.payload_len,
        }
    }

    /// Appends `Flags [S], seq 1, win 64240, options [mss 1460,sackOK,TS val 1 ecr 0,wscale 7], length 0`
    /// to `s`. (With itoa rather than `write!`, and into a buffer the caller reuses: a replay
    /// words millions of these.)
    pub fn render_into(&self, s: &mut String) {
        let mut number = itoa::Buffer::new();
        s.push_str("Flags [");
        self.flags.push_tcpdump(s);
        s.push_str("], seq ");
        s.push_str(number.format(self.seq));
        if self.flags.has(TcpFlags::ACK) {
            s.push_str(", ack ");
            s.push_str(number.format(self.ack));
        }
        s.push_str(", win ");
        s.push_str(number.format(self.window));
        let o = &self.options;
        let mut separator = ", options [";
        if let Some(mss) = o.mss {
            s.push_str(separator);
            s.push_str("mss ");
            s.push_str(number.format(mss));
            separator = ",";
        }
        if o.sack_permitted {
            s.push_str(separator);
            s.push_str("sackOK");
            separator = ",";
        }
        if let Some((val, ecr)) = o.timestamps {
            s.push_str(separator);
            s.push_str("TS val ");
            s.push_str(number.format(val));
            s.push_str(" ecr ");
            s.push_str(number.format(ecr));
            separator = ",";
        }
        if let Some(ws) = o.window_scale {
            s.push_str(separator);
            s.push_str("wscale ");
            s.push_str(number.format(ws));
            separator = ",";
        }
        if separator == "," {
            s.push(']');
        }
        s.push_str(", length ");
        s.push_str(number.format(self.payload_len));
    }
}

/// Where an ICMP error's quote ends because the capture cut it (its snap length), as tcpdump
/// marks a cut packet (`[|icmp6]`).
const CUT_BY_THE_CAPTURE: &str = "[|cut by the capture]";

/// The name of an ICMP error's type and code, as tcpdump words it.
pub fn icmp_name(icmp: &IcmpError) -> Cow<'static, str> {
    let code = icmp.code;
    match (icmp.family, icmp.kind) {
        (Family::Ipv4, IcmpErrorKind::DestinationUnreachable) => match code {
            0 => "net unreachable".into(),
            1 => "host unreachable".into(),
            2 => "protocol unreachable".into(),
            3 => "port unreachable".into(),
            4 => match icmp.mtu {
                Some(mtu) => format!("fragmentation needed (mtu {mtu})").into(),
                None => "fragmentation needed".into(),
            },
            5 => "source route failed".into(),
            6 => "destination network unknown".into(),
            7 => "destination host unknown".into(),
            8 => "source host isolated".into(),
            9 => "network administratively prohibited".into(),
            10 => "host administratively prohibited".into(),
            11 => "net unreachable for TOS".into(),
            12 => "host unreachable for TOS".into(),
            13 => "communication administratively prohibited".into(),
            14 => "host precedence violation".into(),
            15 => "precedence cutoff".into(),
            _ => format!("unreachable, unknown code {code}").into(),
        },
        (Family::Ipv6, IcmpErrorKind::DestinationUnreachable) => match code {
            0 => "no route to destination".into(),
            1 => "communication administratively prohibited".into(),
            2 => "beyond scope of source address".into(),
            3 => "address unreachable".into(),
            4 => "port unreachable".into(),
            5 => "source address failed ingress/egress policy".into(),
            6 => "reject route to destination".into(),
            7 => "error in source routing header".into(),
            _ => format!("unreachable, unknown code {code}").into(),
        },
        (_, IcmpErrorKind::PacketTooBig) => match icmp.mtu {
            Some(mtu) => format!("packet too big (mtu {mtu})").into(),
            None => "packet too big".into(),
        },
        (_, IcmpErrorKind::TimeExceeded) => match code {
            0 if icmp.family == Family::Ipv4 => "time exceeded in-transit (TTL 0)".into(),
            0 => "time exceeded in-transit (hop limit 0)".into(),
            1 => "fragment reassembly time exceeded".into(),
            _ => format!("time exceeded, code {code}").into(),
        },
        (_, IcmpErrorKind::ParameterProblem) => format!("parameter problem, code {code}").into(),
        (_, IcmpErrorKind::SourceQuench) => "source quench".into(),
        (_, IcmpErrorKind::Redirect) => format!("redirect, code {code}").into(),
    }
}

/// Appends `ICMP 198.51.100.1 > 192.0.2.10: host unreachable (type 3/code 1), quoting 192.0.2.10:40000 > 198.51.100.10:80 seq 7 [S]`
/// to `s`. (In pieces rather than through format arguments, which cost more than the rest of an
/// unreachable attempt's wording.)
pub fn icmp_into(icmp: &IcmpError, s: &mut String) {
    let mut number = itoa::Buffer::new();
    s.push_str(match icmp.family {
        Family::Ipv4 => "ICMP ",
        Family::Ipv6 => "ICMP6 ",
    });
    s.push_str(AddrText::ip(icmp.src).as_str());
    s.push_str(" > ");
    s.push_str(AddrText::ip(icmp.dst).as_str());
    s.push_str(": ");
    s.push_str(&icmp_name(icmp));
    s.push_str(" (type ");
    s.push_str(number.format(icmp.icmp_type));
    s.push_str("/code ");
    s.push_str(number.format(icmp.code));
    s.push(')');
    if let Some(q) = &icmp.quoted {
        s.push_str(", quoting ");
        match &q.tcp {
            Some(t) => {
                s.push_str(AddrText::socket(SocketAddr::new(q.src, t.src_port)).as_str());
                s.push_str(" > ");
                s.push_str(AddrText::socket(SocketAddr::new(q.dst, t.dst_port)).as_str());
                match t.seq {
                    Some(seq) => {
                        s.push_str(" seq ");
                        s.push_str(number.format(seq));
                    }
                    None => {
                        s.push(' ');
                        s.push_str(CUT_BY_THE_CAPTURE);
                    }
                }
                if let Some(flags) = t.flags {
                    s.push_str(" [");
                    flags.push_tcpdump(s);
                    s.push(']');
                }
            }
            None => {
                s.push_str(AddrText::ip(q.src).as_str());
                s.push_str(" > ");
                s.push_str(AddrText::ip(q.dst).as_str());
                s.push_str(" proto ");
                s.push_str(number.format(q.protocol));
                if icmp.cut_quote.is_some() {
                    s.push(' ');
                    s.push_str(CUT_BY_THE_CAPTURE);
                }
            }
        }
    } else if icmp.cut_quote.is_some() {
        s.push_str(", quoting ");
        s.push_str(CUT_BY_THE_CAPTURE);
    }
}

/// `ARP, who-has 192.0.2.99 tell 192.0.2.10` / `ARP, 192.0.2.1 is-at 02:00:00:00:00:01`.
pub fn arp(arp: &ArpMessage) -> String {
    match arp.op {
        ArpOp::Request => format!("ARP, who-has {} tell {}", arp.target_ip, arp.sender_ip),
        ArpOp::Reply => {
            let hw: Vec<String> = arp.sender_hw.iter().map(|b| format!("{b:02x}")).collect();
            format!("ARP, {} is-at {}", arp.sender_ip, hw.join(":"))
        }
    }
}

/// `ICMP6 neighbor solicitation, who has 2001:db8:1::99` / `... advertisement, tgt is ...`.
pub fn neighbor(nd: &NeighborMessage) -> String {
    match nd.op {
        NeighborOp::Solicitation => format!("ICMP6 {} > neighbor solicitation, who has {}", nd.src, nd.target),
        NeighborOp::Advertisement => format!("ICMP6 {} > neighbor advertisement, tgt is {}", nd.src, nd.target),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{QuotedPacket, QuotedTcp};

    #[test]
    fn test_icmp_words_as_tcpdump_does() {
        let mut error = IcmpError {
            src: "198.51.100.1".parse().expect("addr"),
            dst: "192.0.2.10".parse().expect("addr"),
            family: Family::Ipv4,
            kind: IcmpErrorKind::DestinationUnreachable,
            icmp_type: 3,
            code: 4,
            mtu: Some(1400),
            quoted: Some(QuotedPacket {
                src: "192.0.2.10".parse().expect("addr"),
                dst: "198.51.100.10".parse().expect("addr"),
                protocol: 6,
                tcp: Some(QuotedTcp {
                    src_port: 40000,
                    dst_port: 80,
                    seq: Some(7),
                    flags: Some(TcpFlags(TcpFlags::SYN)),
                }),
            }),
            cut_quote: None,
        };
        let words = |error: &IcmpError| {
            let mut s = String::new();
            icmp_into(error, &mut s);
            s
        };
        assert_eq!(
            words(&error),
            "ICMP 198.51.100.1 > 192.0.2.10: fragmentation needed (mtu 1400) (type 3/code 4), quoting 192.0.2.10:40000 > 198.51.100.10:80 seq 7 [S]"
        );
        error.family = Family::Ipv6;
        error.src = "2001:db8::1".parse().expect("addr");
        error.dst = "2001:db8:1::10".parse().expect("addr");
        error.icmp_type = 1;
        error.code = 1;
        error.quoted =
            Some(QuotedPacket { src: error.dst, dst: "2001:db8:2::1".parse().expect("addr"), protocol: 17, tcp: None });
        assert_eq!(
            words(&error),
            "ICMP6 2001:db8::1 > 2001:db8:1::10: communication administratively prohibited (type 1/code 1), quoting 2001:db8:1::10 > 2001:db8:2::1 proto 17"
        );
        error.quoted = None;
        assert_eq!(
            words(&error),
            "ICMP6 2001:db8::1 > 2001:db8:1::10: communication administratively prohibited (type 1/code 1)"
        );
    }
}

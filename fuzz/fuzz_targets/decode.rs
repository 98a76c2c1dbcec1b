//! Fuzzes the decoder: the first byte picks a link type, the rest is the frame. It must never
//! panic, and whenever a cheap peek that lets a replay skip a segment answers (the plain one, or
//! the look beyond it into tunnels), the full decode must say the same, and so must the peek's own
//! decode (a wrong peek would silently drop evidence); what the look calls UDP, the decode must
//! read as nothing attempts need.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synscope::decode::{self, LinkType, Packet, PacketBody};
use synscope::flow::End;


fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else { return };
    // Every link type the decoder knows, and one it does not (147, LINKTYPE_USER0).
    let link = LinkType::DECODED.get(usize::from(pick) % (LinkType::DECODED.len() + 1)).copied().unwrap_or(LinkType(147));
    let decoded = decode::decode(link, frame);
    let beyond = decode::look_beyond_tcp(link, frame);
    if beyond == decode::Beyond::Udp {
        assert!(matches!(decoded, Ok(Packet { body: PacketBody::Other(_), .. })), "UDP to the look, {decoded:?} to decode");
    }
    let (plain, tunneled) = (decode::peek_tcp(link, frame), beyond.tunneled());
    assert!(plain.is_none() || tunneled.is_none(), "both peeks answer");
    if let Some(peek) = plain.or(tunneled) {
        match &decoded {
            Ok(Packet { body: PacketBody::Tcp(seg), .. }) => {
                assert_eq!((peek.src, peek.dst, peek.flags), (End::of(seg.src), End::of(seg.dst), seg.flags))
            }
            other => panic!("peek says TCP {peek:?}, decode says {other:?}"),
        }
        if let Some(packet) = peek.decode() {
            assert_eq!(Ok(packet), decoded, "the peek decodes otherwise");
        }
    }
});

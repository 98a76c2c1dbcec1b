//! Fuzzes the decoder: the first byte picks a link type, the rest is the frame. It must never
//! panic, and whenever the cheap peek that lets a replay skip a segment answers, the full decode
//! must say the same (a wrong peek would silently drop evidence).
#![no_main]

use libfuzzer_sys::fuzz_target;
use synscope::decode::{self, LinkType, Packet, PacketBody};
use synscope::flow::End;


fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else { return };
    // Every link type the decoder knows, and one it does not (147, LINKTYPE_USER0).
    let link = LinkType::DECODED.get(usize::from(pick) % 14).copied().unwrap_or(LinkType(147));
    let decoded = decode::decode(link, frame);
    if let Some(peek) = decode::peek_tcp(link, frame) {
        match decoded {
            Ok(Packet { body: PacketBody::Tcp(seg), .. }) => {
                assert_eq!((peek.src, peek.dst, peek.flags), (End::of(seg.src), End::of(seg.dst), seg.flags))
            }
            other => panic!("peek says TCP {peek:?}, decode says {other:?}"),
        }
    }
});

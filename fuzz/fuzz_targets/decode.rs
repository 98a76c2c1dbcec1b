//! Fuzzes the decoder: the first byte picks a link type, the rest is the frame. It must never
//! panic, and whenever the cheap peek that lets a replay skip a segment answers, the full decode
//! must say the same (a wrong peek would silently drop evidence).
#![no_main]

use libfuzzer_sys::fuzz_target;
use synscope::decode::{self, LinkType, Packet, PacketBody};

/// Every link type the decoder knows, and one it does not.
const LINK_TYPES: [LinkType; 14] = [
    LinkType::NULL,
    LinkType::ETHERNET,
    LinkType::DLT_RAW,
    LinkType::DLT_RAW_OPENBSD,
    LinkType::RAW,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::ARCNET_LINUX,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::NFLOG,
    LinkType::IPOIB,
    LinkType::LINUX_SLL2,
    LinkType(147),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else { return };
    let link = LINK_TYPES[usize::from(pick) % LINK_TYPES.len()];
    let decoded = decode::decode(link, frame);
    if let Some(peek) = decode::peek_tcp(link, frame) {
        match decoded {
            Ok(Packet { body: PacketBody::Tcp(seg), .. }) => {
                assert_eq!((peek.src, peek.dst, peek.flags), (seg.src, seg.dst, seg.flags))
            }
            other => panic!("peek says TCP {peek:?}, decode says {other:?}"),
        }
    }
});

#!/usr/bin/env bash
# Seeds the fuzz corpora from the lab fixtures: every fixture file for `replay`, and every frame
# of every fixture, prefixed by the index of its link type in decode.rs's list, for `decode` (each
# Ethernet frame in VXLAN and in ERSPAN too).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/replay corpus/decode
cp ../fixtures/*.pcap ../fixtures/*.pcapng corpus/replay/ 2>/dev/null || true
python3 - <<'PY'
import glob, os, struct
# Link types in the order of synscope::decode::LinkType::DECODED, which fuzz_targets/decode.rs indexes.
order = [0, 1, 12, 14, 101, 108, 113, 129, 228, 229, 239, 242, 276]
def records(data):
    magic = data[:4]
    if magic in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1'):
        link = struct.unpack('<I', data[20:24])[0] & 0x0fffffff
        at = 24
        while at + 16 <= len(data):
            caplen = struct.unpack('<I', data[at + 8:at + 12])[0]
            yield link, data[at + 16:at + 16 + caplen]
            at += 16 + caplen
# An Ethernet frame in a tunnel, as a mirror port or an overlay sends it, so that the fuzzer starts
# from frames the look through tunnels reads: in VXLAN (UDP to 4789), and in ERSPAN type II (GRE).
def outer_ipv4(protocol, payload):
    header = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(payload), 1, 0x4000, 64, protocol, 0,
                         bytes([203, 0, 113, 1]), bytes([203, 0, 113, 2]))
    return bytes.fromhex('0200000000020200000000010800') + header + payload
tunnels = {
    'vxlan': lambda f: outer_ipv4(17, struct.pack('!HHHH', 49153, 4789, 16 + len(f), 0) + bytes([8, 0, 0, 0, 0, 0, 7, 0]) + f),
    'erspan': lambda f: outer_ipv4(47, bytes([0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 7, 0, 1, 0, 0, 0, 0]) + f),
}
for path in glob.glob('../fixtures/*.pcap'):
    name = os.path.basename(path)
    for i, (link, frame) in enumerate(records(open(path, 'rb').read())):
        if link in order:
            with open(f'corpus/decode/{name}-{i}', 'wb') as f:
                f.write(bytes([order.index(link)]) + frame)
        if link == 1:
            for tunnel, wrap in tunnels.items():
                with open(f'corpus/decode/{name}-{i}-{tunnel}', 'wb') as f:
                    f.write(bytes([order.index(1)]) + wrap(frame))
PY
echo "seeded: $(ls corpus/replay | wc -l) files, $(ls corpus/decode | wc -l) frames"

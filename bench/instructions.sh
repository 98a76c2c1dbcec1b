#!/usr/bin/env bash
# Instructions each thread of a replay runs, counted by callgrind: exact and repeatable, where wall
# times on a shared machine move by 3% between two runs of the same build. Compares commits: an
# inlining the compiler stops doing shows here as 10% more on the reading thread, a change no
# paired timing of two builds resolves quickly. On the 100,000-attempt synthetic capture (FLOWS sets
# it): `synscope replay --format json` on the pcap and on the pcapng, each thread apart, with the
# md5 of the JSON (an optimisation must not change a byte), and the reading floor
# (examples/handshake_floor.rs). Under a minute once built.
set -euo pipefail
cd "$(dirname "$0")/.."
. script/lib.sh
need_everything
need valgrind valgrind

FLOWS=${FLOWS:-100000}
dir=target/bench
mkdir -p "$dir"
cargo build --release --quiet --example synth --example handshake_floor
cargo build --release --quiet
for ext in pcap pcapng; do
    file="$dir/synth-$FLOWS.$ext"
    [ -s "$file" ] || target/release/examples/synth "$FLOWS" "$file" "$dir/synth-$FLOWS.truth.tsv"
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The instructions of one callgrind profile, and what its thread did, from the functions it ran.
summarize() {
    local what=other
    if grep -q 'read_shard' "$1"; then
        what=reading
    elif grep -q 'Words' "$1"; then
        what=wording
    fi
    awk -v what="$what" '/^summary:/ { if ($2 > 1000000) printf "  %-8s %14d\n", what, $2 }' "$1"
}

echo "synscope replay --format json, $FLOWS attempts: instructions per thread"
for ext in pcap pcapng; do
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out/$ext.%p" \
        target/release/synscope replay --format json "$dir/synth-$FLOWS.$ext" >"$out/$ext.json" 2>/dev/null
    echo "$ext (JSON md5 $(md5sum <"$out/$ext.json" | cut -d' ' -f1))"
    for profile in "$out/$ext".*-*; do
        summarize "$profile"
    done
done
valgrind --tool=callgrind --callgrind-out-file="$out/floor" \
    target/release/examples/handshake_floor "$dir/synth-$FLOWS.pcap" >/dev/null 2>&1
awk '/^summary:/ { printf "handshake_floor on the pcap: %d\n", $2 }' "$out/floor"

#!/usr/bin/env bash
# Replay at scale: times, on one synthetic capture and side by side, `cat`, libpcap's own read loop
# (bench/pcap_count.c), `tcpdump -r` with a SYN/RST/ICMP filter, `tshark` (on a prefix: it is slow),
# the reading floor (examples/handshake_floor.rs: synscope's reader following clean handshakes only)
# and `synscope replay --format json` (on the pcap, on the same capture as pcapng, and with two
# readers, `--threads 2`), each the median of RUNS runs, with packets/s, peak memory and synscope's
# ratio to each; then synscope and the floor against libpcap's loop, and synscope on the pcapng
# against synscope on the pcap, each in PAIRS pairs of runs, one after the other, the ratio taken pair
# by pair (on a shared machine whose speed drifts, the figures to trust); then
# synscope's time and memory on a capture twice as large; then every attempt of each synscope run
# (pcap, pcapng, two readers, twice as large) against the generator's ground truth, read by
# bench/agrees.py with Python's JSON parser (exit 1 if any disagrees). FLOWS sets the size:
# 1,000,000 attempts is about 10.2 M packets and 1 GB, mostly data segments, a fifth SYN/RST/ICMP.
set -euo pipefail
cd "$(dirname "$0")/.."
. script/lib.sh
need_everything
need tcpdump tcpdump
need tshark tshark
need /usr/bin/time time
need python3 python3

FLOWS=${FLOWS:-1000000}
RUNS=${RUNS:-3}
PAIRS=${PAIRS:-9}
TSHARK_PACKETS=${TSHARK_PACKETS:-500000}
dir=target/bench
mkdir -p "$dir"
cargo build --release --quiet --example synth --example handshake_floor
cargo build --release --quiet
cc -O2 -o "$dir/pcap_count" bench/pcap_count.c -lpcap
capture="$dir/synth-$FLOWS.pcap"
capture_ng="$dir/synth-$FLOWS.pcapng"
double="$dir/synth-$((2 * FLOWS)).pcap"
for file in "$capture" "$capture_ng" "$double"; do
    if [ ! -s "$file" ]; then
        flows=$FLOWS
        [ "$file" = "$double" ] && flows=$((2 * FLOWS))
        target/release/examples/synth "$flows" "$file" "${file%.*}.truth.tsv"
    fi
done
packets=$("$dir/pcap_count" "$capture")
bytes=$(stat -c %s "$capture")
# wall seconds and peak RSS (KiB) of one run of "$@", output discarded
timed() {
    /usr/bin/time -f "%e %M" -o "$dir/time.txt" "$@" >/dev/null 2>&1 || true
    cat "$dir/time.txt"
}
# median wall seconds and peak RSS (KiB) of RUNS runs of "$@", after one run not counted: it brings
# the file into the page cache, which this machine may have emptied since the last tool ran (a file
# not cached is read from disk, and the run measures the disk)
measure() {
    local walls=() rss=0
    "$@" >/dev/null 2>&1 || true
    for _ in $(seq "$RUNS"); do
        read -r wall kib < <(timed "$@")
        walls+=("$wall")
        [ "$kib" -gt "$rss" ] && rss=$kib
    done
    printf '%s\n' "${walls[@]}" | sort -g | awk -v rss="$rss" '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)], rss }'
}

filter='tcp[tcpflags] & (tcp-syn|tcp-rst) != 0 or icmp or icmp6'
tools="cat pcap_count tcpdump tshark handshake-floor synscope synscope-pcapng synscope-2-readers"
declare -A wall rss
for tool in $tools; do
    case $tool in
        cat) set -- cat "$capture" ;;
        pcap_count) set -- "$dir/pcap_count" "$capture" ;;
        tcpdump) set -- tcpdump -r "$capture" -w /dev/null "$filter" ;;
        tshark) set -- tshark -r "$capture" -c "$TSHARK_PACKETS" -Y "tcp.flags.syn == 1 or tcp.flags.reset == 1 or icmp or icmpv6" ;;
        handshake-floor) set -- target/release/examples/handshake_floor "$capture" ;;
        synscope) set -- target/release/synscope replay --format json "$capture" ;;
        synscope-pcapng) set -- target/release/synscope replay --format json "$capture_ng" ;;
        synscope-2-readers) set -- target/release/synscope replay --threads 2 --format json "$capture" ;;
    esac
    read -r w r < <(measure "$@")
    wall[$tool]=$w
    rss[$tool]=$r
done
read -r double_wall double_rss < <(measure target/release/synscope replay --format json "$double")

# PAIRS pairs of runs, one after the other, of the commands in the arrays named A and B; one line
# a pair, A's time over B's
paired() {
    local -n a=$1 b=$2
    local first second
    for _ in $(seq "$PAIRS"); do
        read -r first _ < <(timed "${a[@]}")
        read -r second _ < <(timed "${b[@]}")
        awk -v a="$first" -v b="$second" 'BEGIN { printf "%.3f\n", (b > 0) ? a / b : 0 }'
    done
}
# the median, least and largest of paired ratios on stdin, as WHAT
ratios() {
    sort -g | awk -v what="$1" -v n="$PAIRS" '{ a[NR] = $1 } END {
        printf "%s, %d pairs of runs: median %.2f (min %.2f, max %.2f)\n", what, n, a[int((NR + 1) / 2)], a[1], a[NR]
    }'
}
synscope_pcap=(target/release/synscope replay --format json "$capture")
synscope_pcapng=(target/release/synscope replay --format json "$capture_ng")
libpcap_loop=("$dir/pcap_count" "$capture")
floor=(target/release/examples/handshake_floor "$capture")
vs_libpcap=$(paired synscope_pcap libpcap_loop)
floor_vs_libpcap=$(paired floor libpcap_loop)
pcapng_vs_pcap=$(paired synscope_pcapng synscope_pcap)

# every attempt of RUN (an array's name) against TRUTH, as LABEL; agreed=1 if any disagrees
agreed=0
agrees() {
    local -n run=$1
    "${run[@]}" 2>/dev/null | python3 bench/agrees.py "$2" "$3" || agreed=1
}
synscope_2_readers=(target/release/synscope replay --threads 2 --format json "$capture")
synscope_double=(target/release/synscope replay --format json "$double")
truth=$(
    agrees synscope_pcap "${capture%.*}.truth.tsv" pcap
    agrees synscope_pcapng "${capture_ng%.*}.truth.tsv" pcapng
    agrees synscope_2_readers "${capture%.*}.truth.tsv" "two readers"
    agrees synscope_double "${double%.*}.truth.tsv" "twice as large"
    exit "$agreed"
) || agreed=1

echo "capture: $capture, $packets packets, $((bytes / 1048576)) MiB; $(nproc) cores, $(uname -r); median of $RUNS runs"
printf '%-18s %10s %14s %10s %16s\n' tool "wall s" "packets/s" "peak MiB" "synscope ratio"
for tool in $tools; do
    n=$packets
    [ "$tool" = tshark ] && n=$TSHARK_PACKETS
    awk -v t="$tool" -v w="${wall[$tool]}" -v r="${rss[$tool]}" -v n="$n" -v s="${wall[synscope]}" -v N="$packets" 'BEGIN {
        pps = (w > 0) ? n / w : 0
        # tshark ran on a prefix: compare per packet.
        ratio = (w > 0) ? (s / N) / (w / n) : 0
        printf "%-18s %10.2f %14.0f %10.1f %16.2f\n", t, w, pps, r / 1024, ratio
    }'
done
[ "$TSHARK_PACKETS" -lt "$packets" ] && echo "(tshark read only the first $TSHARK_PACKETS packets; its ratio compares time per packet)"
ratios "synscope / pcap_count" <<<"$vs_libpcap"
ratios "handshake-floor / pcap_count" <<<"$floor_vs_libpcap"
ratios "synscope on the pcapng / on the pcap" <<<"$pcapng_vs_pcap"
awk -v w="$double_wall" -v r="$double_rss" -v f="$((2 * FLOWS))" 'BEGIN {
    printf "synscope on a capture twice as large (%d attempts): %.2f s, peak %.1f MiB\n", f, w, r / 1024
}'
echo "$truth"
exit "$agreed"

#!/usr/bin/env bash
# Tracing under load: two namespaces on one veth pair (documentation addresses only), a server
# accepting on 192.0.2.20:8080, and, for each RATE, a flood of 64-byte UDP datagrams from the
# client to a closed port of the server (which answers some with ICMP port unreachable, and those
# pass the trace's filter) while TRACES traces run one after another. Prints, per rate, the flood
# rate reached, how many traces established with their whole handshake captured, and the packets
# libpcap dropped. Needs root; removes its namespaces on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. script/lib.sh
need_everything
RATES=${RATES:-"50000 100000 200000"}
TRACES=${TRACES:-20}
cargo build --release --quiet
bin=$PWD/target/release/synscope
client=synscope-bench-c-$$ server=synscope-bench-s-$$
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    ip netns del "$client" 2>/dev/null || true
    ip netns del "$server" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$client" && ip netns add "$server"
for ns in "$client" "$server"; do
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add bc$$ netns "$client" type veth peer name bs$$ netns "$server"
ip -n "$client" addr add 192.0.2.10/24 dev bc$$ && ip -n "$client" link set bc$$ up
ip -n "$server" addr add 192.0.2.20/24 dev bs$$ && ip -n "$server" link set bs$$ up
ip netns exec "$server" python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.0.2.20", 8080)); s.listen(1024)
conns = []
while True:
    conns.append(s.accept()[0])
' &
server_pid=$!
sleep 0.5

printf '%-10s %14s %18s %14s\n' "rate/s" "flood reached" "traces complete" "pcap dropped"
rate_file=$(mktemp)
for rate in $RATES; do
    ip netns exec "$client" python3 -c '
import socket, sys, time
rate, seconds = int(sys.argv[1]), float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload, start, sent = b"Z" * 64, time.monotonic(), 0
try:
    while time.monotonic() - start < seconds:
        if sent > (time.monotonic() - start) * rate:
            time.sleep(0.0002)
            continue
        for _ in range(100):
            try:
                s.sendto(payload, ("192.0.2.20", 9)); sent += 1
            except OSError:
                pass
except KeyboardInterrupt:
    pass
with open(sys.argv[3], "w") as f:
    print(int(sent / (time.monotonic() - start)), file=f)
' "$rate" 60 "$rate_file" &
    flooder=$!
    sleep 0.5
    complete=0 dropped=0
    for _ in $(seq "$TRACES"); do
        out=$(ip netns exec "$client" "$bin" trace --format json --linger 200ms 192.0.2.20 8080 || true)
        attempt=$(sed -n 1p <<<"$out") summary=$(sed -n 2p <<<"$out")
        if grep -q '"outcome":"established"' <<<"$attempt" && grep -q '"what":"syn_ack"' <<<"$attempt" \
            && grep -q '"what":"ack"' <<<"$attempt"; then
            complete=$((complete + 1))
        fi
        dropped=$((dropped + $(sed -E 's/.*"dropped":([0-9]+).*/\1/' <<<"$summary")))
    done
    kill -INT "$flooder" 2>/dev/null || true
    wait "$flooder" 2>/dev/null || true
    reached=$(cat "$rate_file")
    printf '%-10s %14s %18s %14s\n' "$rate" "$reached" "$complete/$TRACES" "$dropped"
done

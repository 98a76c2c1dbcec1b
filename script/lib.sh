# Shared by script/demo and script/test: install what is missing, quietly, on Debian/Ubuntu.

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

apt_install() {
    echo "synscope: installing $*" >&2
    if [ -z "${SYNSCOPE_APT_UPDATED:-}" ]; then
        $SUDO apt-get update -qq
        export SYNSCOPE_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# need CMD PACKAGE: installs PACKAGE when CMD is not on the PATH (nor in /usr/sbin, /sbin).
need() {
    PATH="$PATH:/usr/sbin:/sbin" command -v "$1" >/dev/null 2>&1 || apt_install "$2"
}

# The build needs a C compiler and libpcap's headers; the lab needs ip, iptables and sysctl.
need_everything() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "synscope: cargo is missing: install Rust from https://rustup.rs first" >&2
        exit 2
    fi
    need cc gcc
    [ -e /usr/include/pcap.h ] || [ -e /usr/include/pcap/pcap.h ] || apt_install libpcap-dev
    need ip iproute2
    need iptables iptables
    need sysctl procps
    need setpriv util-linux
    # The replay tests measure peak memory with /usr/bin/time and draw the progress bar in a pty.
    need /usr/bin/time time
    need script bsdutils
}

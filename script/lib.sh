# Shared by script/demo and script/test: install what is missing, quietly, on Debian/Ubuntu.

# need CMD PACKAGE...: installs PACKAGE(s) with apt-get when CMD is not on the PATH.
need() {
    local cmd=$1
    shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "synscope: installing $* (for $cmd)" >&2
    if [ -z "${SYNSCOPE_APT_UPDATED:-}" ]; then
        $sudo apt-get update -qq
        export SYNSCOPE_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# The Rust toolchain comes from rustup; say so plainly if it is missing.
need_cargo() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "synscope: cargo is missing: install Rust from https://rustup.rs first" >&2
        exit 2
    fi
    need cc gcc
}

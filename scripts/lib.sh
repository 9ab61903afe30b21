# Shared by scripts/demo, scripts/test, scripts/bench and scripts/deb: idempotent set-up on Debian as root.

die() { echo "$(basename "$0"): $*" >&2; exit 1; }

require_root() {
    [ "$(id -u)" -eq 0 ] || die "run as root: pyprobe loads BPF programs and installs packages"
}

# Installs the Debian packages that are missing, and only those (apt-get update once, if needed).
apt_ensure() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# What building pyprobe and running its tests need: clang for the BPF C, the static archives of
# libelf and zlib for libbpf (pyprobe links them in; libzstd-dev for a libelf built with zstd, as
# Debian 13's is), Debian's CPython 3.11 (it has the USDT probes), setpriv for the not-root test,
# bpftrace as an independent oracle in the tests and a competitor in the bench, man and groff to
# render the man page in its test.
install_build_deps() {
    apt_ensure clang llvm libelf-dev zlib1g-dev libzstd-dev pkg-config make gcc libc6-dev \
        linux-libc-dev python3.11 util-linux bpftrace groff-base man-db
    command -v cargo >/dev/null || [ -x "$HOME/.cargo/bin/cargo" ] || die "cargo (Rust) is required"
    export PATH="$HOME/.cargo/bin:$PATH"
}

build_release() {
    cargo build --release --locked 2>&1 | grep -v '^\s*\(Compiling\|Downloaded\|Downloading\)' >&2 || true
    [ -x target/release/pyprobe ] || die "build failed"
    # pycount, pyflow and pygc are pyprobe under another name (argv[0] picks the subcommand).
    for name in pycount pyflow pygc; do ln -sf pyprobe "target/release/$name"; done
}

# Independent readers for the tests of stacks, record and top, and the bench's competitor:
# py-spy, the jsonschema validator and the protobuf runtime in a venv under target/ (Debian's
# pip is externally managed), with aiohttp for the live service of tests/tasks.rs;
# speedscope's file-format schema from its npm package; tmux.
install_test_readers() {
    local env=target/testenv pins="py-spy==0.4.3 jsonschema==4.26.0 protobuf==7.36.2 aiohttp==3.14.5"
    if ! "$env/bin/python" -c 'import jsonschema, google.protobuf, aiohttp' 2>/dev/null || [ ! -x "$env/bin/py-spy" ]; then
        apt_ensure python3.11-venv
        /usr/bin/python3.11 -m venv "$env"
        # shellcheck disable=SC2086  # one pin per word
        "$env/bin/pip" install --quiet $pins
    fi
    if [ ! -s target/speedscope/file-format-schema.json ]; then
        # npm comes with the image's nodejs here; Debian's npm package elsewhere.
        command -v npm >/dev/null || apt_ensure npm
        mkdir -p target/speedscope
        (cd target/speedscope && npm pack --silent speedscope@1.25.0 >/dev/null &&
            tar xzf speedscope-1.25.0.tgz --strip-components=3 package/dist/release/file-format-schema.json)
    fi
    apt_ensure tmux
}

# pyperformance's benchmark programs (pinned), which nobody here wrote: the cProfile oracle of
# scripts/test and the real-program table of scripts/bench --pyperformance.
fetch_pyperformance() {
    local dir=target/pyperformance
    if [ ! -d "$dir/pyperformance/data-files/benchmarks" ]; then
        apt_ensure python3-pip
        mkdir -p "$dir"
        /usr/bin/python3.11 -m pip download --quiet --no-deps --dest "$dir" pyperformance==1.14.0
        /usr/bin/python3.11 -m zipfile -e "$dir"/pyperformance-1.14.0-py3-none-any.whl "$dir"
    fi
}

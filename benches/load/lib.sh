# Shared helpers of benches/load/run.sh and peers.sh (sourced, not run).

BENCH_KEY=sk-cherrypick-bench-0123456789abcdef   # fixed bench master key (loopback only)
UPSTREAM_PORT=18080
GATEWAY_PORT=18900

log() { echo "[$(basename "$0") $(date +%H:%M:%S)] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Sets CHERRYPICK_BIN: $CHERRYPICK_BIN, else the first release build found.
resolve_bin() {
  local repo=$1 c
  if [ -z "${CHERRYPICK_BIN:-}" ]; then
    for c in ${CARGO_TARGET_DIR:+"$CARGO_TARGET_DIR/release/cherrypick"} \
             "$HOME/.cache/cherrypick/target/release/cherrypick" "$repo/target/release/cherrypick"; do
      if [ -x "$c" ]; then CHERRYPICK_BIN=$c; break; fi
    done
  fi
  [ -n "${CHERRYPICK_BIN:-}" ] && [ -x "$CHERRYPICK_BIN" ] ||
    die "no gateway binary (set CHERRYPICK_BIN, or build one: cargo build --release)"
  CHERRYPICK_BIN=$(readlink -f "$CHERRYPICK_BIN")
}

# nginx (+ echo module for the paced stream), wrk, curl from apt when missing.
ensure_apt_tools() {
  if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null || ! command -v curl >/dev/null ||
     [ ! -f /usr/share/nginx/modules/ngx_http_echo_module.so ]; then
    log "installing nginx-light, libnginx-mod-http-echo, wrk, curl (apt)"
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y nginx-light libnginx-mod-http-echo wrk curl procps >&2
  fi
}

# Sets OHA: $OHA, else oha on PATH or in ~/.cargo/bin, else builds oha 1.16.0 (one core, minutes).
ensure_oha() {
  if [ -z "${OHA:-}" ]; then
    OHA=$(command -v oha || true)
    [ -z "$OHA" ] && [ -x "$HOME/.cargo/bin/oha" ] && OHA=$HOME/.cargo/bin/oha
  fi
  if [ -z "$OHA" ]; then
    log "oha not found: cargo install oha --version 1.16.0 --locked -j 1 (one core, several minutes)"
    cargo install oha --version 1.16.0 --locked -j 1 >&2
    OHA=$HOME/.cargo/bin/oha
  fi
  [ -x "$OHA" ] || die "oha not runnable at $OHA"
}

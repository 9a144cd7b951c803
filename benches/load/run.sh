#!/usr/bin/env bash
# cherrypick end-to-end load benchmark: the fake nginx upstream directly vs through the gateway.
#
#   benches/load/run.sh            # full run (~5 min): 15 s per wrk/oha run
#   benches/load/run.sh --quick    # smoke run (~2 min): 5 s per run, fewer samples
#   benches/load/run.sh --rounds 3 --rates 1000,2000,5000,10000   # any loadbench.py option
#
# Starts its own nginx upstream (127.0.0.1:18080, generated from the peer harness' upstream/ into a
# temp dir) and the gateway (127.0.0.1:18900, benches/load/cherrypick-bench.toml), waits for
# /health, runs benches/load/loadbench.py, stops both on exit. Results: benches/load/results/<stamp>/
# (raw.jsonl, summary.md, gateway.log, nginx-error.log, metrics-after.txt, loadgen/ raw wrk/oha output);
# the Markdown summary goes to stdout, progress to stderr.
#
# Environment: CHERRYPICK_BIN (gateway binary), PEERS_DIR (peer harness, for upstream/),
#              OHA (oha binary), KEEP_TMP=1 (keep the temp upstream dir).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
source "$HERE/lib.sh"
PEERS_DIR=${PEERS_DIR:-/work/shared/bench/peers}
export CHERRYPICK_MASTER_KEY=$BENCH_KEY
CONF=$HERE/cherrypick-bench.toml

case " $* " in *" -h "*|*" --help "*)
  sed -n '2,15p' "$0"; python3 "$HERE/loadbench.py" --help | sed -n '/^options:/,$p'; exit 0 ;;
esac

resolve_bin "$REPO"
ensure_apt_tools
ensure_oha
[ -f "$PEERS_DIR/upstream/gen_upstream.py" ] || die "no $PEERS_DIR/upstream/gen_upstream.py (set PEERS_DIR)"
for p in $UPSTREAM_PORT $GATEWAY_PORT; do
  port_busy $p && die "something already listens on 127.0.0.1:$p (the peer harness? stop it first with its stop.sh)"
done

# ---- results and cleanup
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$HERE/results/$STAMP
mkdir -p "$OUT"
UP=$(mktemp -d /tmp/cherrypick-upstream.XXXXXX)
GW_PID=
NGINX_PID=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$GW_PID" 2>/dev/null; then log "gateway did not stop in 10 s after SIGTERM: SIGKILL"; kill -KILL "$GW_PID" 2>/dev/null || true; fi
  fi
  [ -n "$GW_PID" ] && { wait "$GW_PID" 2>/dev/null; echo "gateway exit status $?" >> "$OUT/gateway.log"; } || true
  if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then
    kill -QUIT "$NGINX_PID" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$NGINX_PID" 2>/dev/null && kill -TERM "$NGINX_PID" 2>/dev/null || true
  fi
  [ -f "$UP/logs/error.log" ] && cp "$UP/logs/error.log" "$OUT/nginx-error.log" || true
  if [ "${KEEP_TMP:-0}" = 1 ]; then log "kept $UP"; else rm -rf "$UP"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- upstream: a copy of the peers' upstream/ (gen_upstream.py writes next to itself)
cp "$PEERS_DIR/upstream/gen_upstream.py" "$UP/"
chmod 755 "$UP"; chmod u+w "$UP/gen_upstream.py"
UPSTREAM_PORT=$UPSTREAM_PORT python3 "$UP/gen_upstream.py" >/dev/null
[ -f "$UP/nginx.conf" ] || die "gen_upstream.py did not write $UP/nginx.conf"
nginx -p "$UP" -c nginx.conf -e "$UP/logs/error.log"
for _ in $(seq 1 40); do [ -s "$UP/logs/nginx.pid" ] && break; sleep 0.1; done
NGINX_PID=$(cat "$UP/logs/nginx.pid")
curl -sf -m 2 -o /dev/null "http://127.0.0.1:$UPSTREAM_PORT/v1/models" || die "nginx upstream does not answer"
log "upstream nginx pid $NGINX_PID on 127.0.0.1:$UPSTREAM_PORT ($UP)"

# ---- gateway
BIN_MTIME=$(date -r "$CHERRYPICK_BIN" '+%Y-%m-%d %H:%M:%S')
"$CHERRYPICK_BIN" serve --config "$CONF" > "$OUT/gateway.log" 2>&1 < /dev/null &
GW_PID=$!
up=0
for i in $(seq 1 100); do
  if curl -sf -m 1 -o /dev/null "http://127.0.0.1:$GATEWAY_PORT/health"; then up=1; break; fi
  kill -0 "$GW_PID" 2>/dev/null || break
  sleep 0.1
done
[ $up = 1 ] || { tail -20 "$OUT/gateway.log" >&2; die "gateway did not answer /health (log above)"; }
log "gateway $CHERRYPICK_BIN (built $BIN_MTIME) pid $GW_PID on 127.0.0.1:$GATEWAY_PORT, /health after ~$((i / 10)).$((i % 10)) s"
sleep 2   # let it settle before the idle RSS reading

GIT=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo "?")$(cd "$REPO" && git diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo "+dirty")
set +e
python3 "$HERE/loadbench.py" --gw-pid "$GW_PID" --nginx-pidfile "$UP/logs/nginx.pid" --out "$OUT" \
  --upstream-port $UPSTREAM_PORT --gateway-port $GATEWAY_PORT --oha "$OHA" \
  --binary "$CHERRYPICK_BIN" --binary-mtime "$BIN_MTIME" --git "$GIT" "$@"
rc=$?
set -e
log "results: $OUT (summary.md, raw.jsonl, gateway.log, loadgen/)"
exit $rc

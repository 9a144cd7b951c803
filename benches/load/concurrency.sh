#!/usr/bin/env bash
# cherrypick under many concurrent requests, and its added latency, with the request log on PostgreSQL.
#
#   benches/load/concurrency.sh                 # full (~7 min): bursts of 1,000 and 10,000, latency at 500,1000,2000 req/s
#   benches/load/concurrency.sh --quick         # smoke (~1.5 min): bursts of 100 and 1,000, latency at 1000 req/s, 3 s
#   benches/load/concurrency.sh --bursts 1000,10000,15000 --rates 1000 --duration 10 --rounds 3 --procs 1 --no-log-off
#   benches/load/concurrency.sh --connect-batch 0 --burst-timeout 60    # no paced bursts; wait 60 s for answers
#   benches/load/concurrency.sh --bursts none --rates 2000 --gateway-env CHERRYPICK__REQUEST_LOG__BATCH_SIZE=100
#
# Starts the nginx upstream (127.0.0.1:18080, from the peer harness' gen_upstream.py, patched for
# more connections) and the gateway (127.0.0.1:18900, cherrypick-concurrency.toml: store and
# request log on PostgreSQL), then runs concurrency.py:
#   (a, b) bursts: N connections opened, one request sent on each at once, all answers awaited;
#          directly to nginx (the client's and the machine's own limit), and through the gateway
#          twice: connections opened all at once, then 100 at a time (each batch accepted before
#          the next: the gateway's listen backlog is 128, so a connect storm overflows it);
#   (c)    fixed-rate latency, direct vs gateway, request log on; rows in request_log checked;
#   (d)    the same with the gateway restarted with the request log off (skip: --no-log-off).
# Stops everything on exit. Results: benches/load/results/concurrency-<stamp>/ (raw.jsonl,
# summary.md, gateway-*.log, metrics-*.txt, nginx-error.log); the Markdown summary goes to stdout.
#
# Environment: CHERRYPICK_BIN, PEERS_DIR, PG_URL (default postgres://postgres@127.0.0.1:5432/test).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
source "$HERE/lib.sh"
PEERS_DIR=${PEERS_DIR:-/work/shared/bench/peers}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
export CHERRYPICK_MASTER_KEY=$BENCH_KEY
CONF=$HERE/cherrypick-concurrency.toml
BURSTS=1000,10000 RATES=500,1000,2000 DURATION=10 ROUNDS=2 PROCS=1 LOG_OFF=1 BATCH=100 BURST_TIMEOUT=120
GW_ENV=()   # --gateway-env VAR=value (repeatable): config overrides for every gateway start
while [ $# -gt 0 ]; do
  case $1 in
    --quick) BURSTS=100,1000 RATES=1000 DURATION=3 ROUNDS=1 ;;
    --bursts) BURSTS=$2; shift ;;
    --rates) RATES=$2; shift ;;
    --duration) DURATION=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --procs) PROCS=$2; shift ;;
    --connect-batch) BATCH=$2; shift ;;
    --burst-timeout) BURST_TIMEOUT=$2; shift ;;
    --gateway-env) GW_ENV+=("$2"); shift ;;
    --no-log-off) LOG_OFF=0 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) die "unknown option $1 (--help)" ;;
  esac
  shift
done

resolve_bin "$REPO"
ensure_apt_tools
command -v psql >/dev/null || die "psql not found (the request log rows are counted with it)"
psql "$PG_URL" -XAtqc 'SELECT 1' >/dev/null || die "PostgreSQL does not answer at $PG_URL"
[ -f "$PEERS_DIR/upstream/gen_upstream.py" ] || die "no $PEERS_DIR/upstream/gen_upstream.py (set PEERS_DIR)"
for p in $UPSTREAM_PORT $GATEWAY_PORT; do
  port_busy $p && die "something already listens on 127.0.0.1:$p (run.sh or the peer harness? stop it first)"
done

# ---- fd limit: every connection through the gateway holds two sockets in it (client + upstream),
# and the gateway, nginx and the client inherit this shell's limit. The hard limit caps it: a
# container without CAP_SYS_RESOURCE cannot raise it (here 20,000: the gateway gets 20,000).
ulimit -n 65536 2>/dev/null || { ulimit -n "$(ulimit -Hn)"; log "ulimit -n 65536 refused (hard limit $(ulimit -Hn)): using $(ulimit -n)"; }
NOFILE=$(ulimit -n)

# ---- results and cleanup
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$HERE/results/concurrency-$STAMP
mkdir -p "$OUT/data"
RAW=$OUT/raw.jsonl
UP=$(mktemp -d /tmp/cherrypick-upstream.XXXXXX)
GW_PID=
GW_LABEL=
NGINX_PID=
stop_gateway() {
  [ -n "$GW_PID" ] || return 0
  curl -sf -m 5 -H "Authorization: Bearer $BENCH_KEY" "http://127.0.0.1:$GATEWAY_PORT/metrics" > "$OUT/metrics-$GW_LABEL.txt" 2>/dev/null || true
  if kill -0 "$GW_PID" 2>/dev/null; then
    kill -TERM "$GW_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$GW_PID" 2>/dev/null; then log "gateway did not stop in 15 s after SIGTERM: SIGKILL"; kill -KILL "$GW_PID" 2>/dev/null || true; fi
  fi
  local st=0; wait "$GW_PID" 2>/dev/null || st=$?
  echo "gateway exit status $st" >> "$OUT/gateway-$GW_LABEL.log"
  GW_PID=
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_gateway || true
  if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then
    kill -QUIT "$NGINX_PID" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$NGINX_PID" 2>/dev/null && kill -TERM "$NGINX_PID" 2>/dev/null || true
  fi
  [ -f "$UP/logs/error.log" ] && cp "$UP/logs/error.log" "$OUT/nginx-error.log" || true
  rm -rf "$UP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- upstream: the peers' generator, then room for 10k+ connections (it writes 8192, and
# through the gateway each in-flight request is one upstream connection).
cp "$PEERS_DIR/upstream/gen_upstream.py" "$UP/"
chmod 755 "$UP"; chmod u+w "$UP/gen_upstream.py"
UPSTREAM_PORT=$UPSTREAM_PORT python3 "$UP/gen_upstream.py" >/dev/null
grep -q '^events { worker_connections 8192; }$' "$UP/nginx.conf" || die "gen_upstream.py changed: no 'events { worker_connections 8192; }' line to patch"
sed -i "s/^events { worker_connections 8192; }\$/worker_rlimit_nofile $NOFILE;\nevents { worker_connections $NOFILE; }/" "$UP/nginx.conf"
nginx -p "$UP" -c nginx.conf -e "$UP/logs/error.log"
for _ in $(seq 1 40); do [ -s "$UP/logs/nginx.pid" ] && break; sleep 0.1; done
NGINX_PID=$(cat "$UP/logs/nginx.pid")
curl -sf -m 2 -o /dev/null "http://127.0.0.1:$UPSTREAM_PORT/v1/models" || die "nginx upstream does not answer"
log "upstream nginx pid $NGINX_PID on 127.0.0.1:$UPSTREAM_PORT (worker_connections $NOFILE)"

# ---- gateway: start_gateway LABEL [VAR=value ...] (config overrides from the environment)
start_gateway() {
  GW_LABEL=$1; shift
  env CHERRYPICK__STORE__URL="$PG_URL" CHERRYPICK__STORE__DATA_DIR="$OUT/data" ${GW_ENV[@]+"${GW_ENV[@]}"} "$@" \
    "$CHERRYPICK_BIN" serve --config "$CONF" > "$OUT/gateway-$GW_LABEL.log" 2>&1 < /dev/null &
  GW_PID=$!
  local up=0
  for _ in $(seq 1 100); do
    if curl -sf -m 1 -o /dev/null "http://127.0.0.1:$GATEWAY_PORT/health"; then up=1; break; fi
    kill -0 "$GW_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ $up = 1 ] || { tail -20 "$OUT/gateway-$GW_LABEL.log" >&2; die "gateway did not answer /health (log above)"; }
  log "gateway ($GW_LABEL) pid $GW_PID, fd limit $(awk '/^Max open files/ {print $4}' /proc/$GW_PID/limits)," \
      "listen backlog $(ss -ltnH "sport = :$GATEWAY_PORT" | awk '{print $3}') (somaxconn $(cat /proc/sys/net/core/somaxconn))"
  # One request first: the store's migrations and first connection are not part of the measurement.
  curl -sf -m 10 -o /dev/null -H "Authorization: Bearer $BENCH_KEY" -H 'Content-Type: application/json' \
    -d '{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}' \
    "http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions" || die "warm-up request through the gateway failed"
}
gw_alive() { kill -0 "$GW_PID" 2>/dev/null || { log "gateway died: tail of its log:"; tail -20 "$OUT/gateway-$GW_LABEL.log" >&2; exit 3; }; }

GIT=$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo "?")$(cd "$REPO" && git diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo "+dirty")
BIN_MTIME=$(date -r "$CHERRYPICK_BIN" '+%Y-%m-%d %H:%M:%S')
RUN=cc$(date +%s)   # x-request-id prefix: the rows of this run in request_log
PY="timeout 600 python3 $HERE/concurrency.py"
DIRECT_URL=http://127.0.0.1:$UPSTREAM_PORT/v1/chat/completions
GW_URL=http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions
rc=0

start_gateway logon
# ---- (a, b) bursts, smallest first; direct, then the gateway with connects at once, then paced
BATCHES=0; [ "$BATCH" != 0 ] && BATCHES="0 $BATCH"
[ "$BURSTS" = none ] && BURSTS=
for n in ${BURSTS//,/ }; do
  $PY burst --label direct --url "$DIRECT_URL" --n "$n" --procs "$PROCS" --timeout "$BURST_TIMEOUT" --out "$RAW" || rc=2
  sleep 1
  for batch in $BATCHES; do
    $PY burst --label cherrypick --url "$GW_URL" --n "$n" --procs "$PROCS" --timeout "$BURST_TIMEOUT" \
      --connect-batch "$batch" --gw-pid "$GW_PID" --run-id "$RUN-b$n-c$batch" --psql "$PG_URL" --out "$RAW" || rc=2
    gw_alive
    sleep 1
  done
done

# ---- (c) added latency, request log on PostgreSQL
$PY latency --label "request log on (PostgreSQL)" --direct-url "$DIRECT_URL" --gateway-url "$GW_URL" \
  --rates "$RATES" --duration "$DURATION" --rounds "$ROUNDS" --gw-pid "$GW_PID" \
  --run-id "$RUN-lat" --psql "$PG_URL" --out "$RAW" || rc=2
gw_alive
stop_gateway

# ---- (d) the same with the request log off
if [ "$LOG_OFF" = 1 ]; then
  start_gateway logoff CHERRYPICK__REQUEST_LOG__ENABLED=false
  $PY latency --label "request log off" --direct-url "$DIRECT_URL" --gateway-url "$GW_URL" \
    --rates "$RATES" --duration "$DURATION" --rounds "$ROUNDS" --gw-pid "$GW_PID" --out "$RAW" || rc=2
  gw_alive
  stop_gateway
fi

# ---- summary
{
  echo "## concurrency.sh $STAMP"
  echo
  echo "binary $CHERRYPICK_BIN (built $BIN_MTIME), working tree at $GIT; $(nproc) cores shared by client, nginx, gateway and"
  echo "PostgreSQL; fd limit $NOFILE (hard $(ulimit -Hn)); somaxconn $(cat /proc/sys/net/core/somaxconn); run id $RUN;"
  echo "bursts ${BURSTS:-none} ($PROCS client process(es)); latency at $RATES req/s, ${DURATION} s x $ROUNDS rounds, 32 keep-alive connections"
  [ ${#GW_ENV[@]} -gt 0 ] && echo "gateway environment: ${GW_ENV[*]}"
  echo
  python3 "$HERE/concurrency.py" summary "$RAW"
  echo "Request log counters (gateway /metrics at stop):"
  for m in "$OUT"/metrics-*.txt; do
    [ -f "$m" ] && echo "- $(basename "$m" .txt): $(grep -E '^cherrypick_request_log_rows_total' "$m" | tr '\n' ' ' | grep . || echo none)"
  done
  spooled=$(find "$OUT/data" -name '*.jsonl' -size +0 2>/dev/null | wc -l)
  echo "- spool files left: $spooled"
  problems=$(grep -hE ' (WARN|ERROR) |accept error|panicked' "$OUT"/gateway-*.log 2>/dev/null | head -5 || true)
  echo "- gateway WARN/ERROR lines: ${problems:-none}"
  nginx_errs=$(grep -c . "$UP/logs/error.log" 2>/dev/null || true)
  echo "- nginx error.log lines: ${nginx_errs:-0}$( [ "${nginx_errs:-0}" != 0 ] && echo " (first: $(head -1 "$UP/logs/error.log"))")"
} | tee "$OUT/summary.md"
log "results: $OUT"
exit $rc

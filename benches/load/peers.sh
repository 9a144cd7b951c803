#!/usr/bin/env bash
# cherrypick vs the peer gateways (LiteLLM, Portkey) in the peer harness, same run, same upstream.
#
#   benches/load/peers.sh                 # full peer run (~30 min; first time + setup, several minutes)
#   benches/load/peers.sh --quick         # 1 round, 5 s runs (~6 min + setup)
#   benches/load/peers.sh --rounds 5 ...  # any other argument goes to the harness' bench.py
#   benches/load/peers.sh --patch-only    # copy + patch + verify the patch; installs and starts nothing
#   benches/load/peers.sh --smoke         # --patch-only, then start upstream + cherrypick with the patched
#                                         # start.sh and run the patched bench.py on direct,cherrypick
#                                         # (validity checks + streaming, ~1 min); no LiteLLM/Portkey needed
#
# /work/shared/bench/peers (PEERS_DIR) is read-only, so it is copied to PEERS_WORK
# (/tmp/cherrypick-peers). The copy is refreshed from the source on every call (venv/,
# portkey/node_modules/, tools/, results/ are kept) and then patched: a `cherrypick` case in
# start.sh (launched with the harness' `launch` helper), a `cherrypick` entry in bench.py's TARGETS
# and in sdk_check.py, cherrypick in the default start/stop lists. Each patch inserts text at a
# known anchor and fails loudly if the anchor is missing or ambiguous.
# The copy's setup.sh (apt, LiteLLM venv, Portkey npm) runs only when not done yet; oha is reused.
# Everything the copy started is stopped on exit (KEEP_RUNNING=1 leaves it running).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
source "$HERE/lib.sh"
SRC=${PEERS_DIR:-/work/shared/bench/peers}
WORK=${PEERS_WORK:-/tmp/cherrypick-peers}

mode=run
case "${1:-}" in
  --patch-only|--dry-run) mode=patch; shift ;;
  --smoke) mode=smoke; shift ;;
  -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
esac

resolve_bin "$REPO"
[ -f "$SRC/start.sh" ] && [ -f "$SRC/bench.py" ] || die "no peer harness at $SRC (set PEERS_DIR)"

# ---- 1. refresh the copy (source files only; installed things stay)
mkdir -p "$WORK"
cp -a "$SRC/." "$WORK/"
chmod u+w "$WORK"
( cd "$SRC" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' ) | while read -r e; do
  # make the copied (read-only) entries writable; skip heavy installed trees
  find "$WORK/$e" \( -path "$WORK/portkey/node_modules" -o -path "$WORK/venv" \) -prune -o -exec chmod u+w {} +
done
mkdir -p "$WORK/cherrypick"
cp "$HERE/cherrypick-bench.toml" "$WORK/cherrypick/cherrypick-bench.toml"
log "copied $SRC -> $WORK"

# ---- 2. patch the copy
CHERRYPICK_BIN=$CHERRYPICK_BIN BENCH_KEY=$BENCH_KEY GATEWAY_PORT=$GATEWAY_PORT python3 - "$WORK" <<'PY'
import os, sys
pb = sys.argv[1]
key, port, binary = os.environ["BENCH_KEY"], os.environ["GATEWAY_PORT"], os.environ["CHERRYPICK_BIN"]
MARK = "added by benches/load/peers.sh"

def patch(rel, edits):
    """edits: (anchor, text, how) with how in before/after/replace/append; anchor must occur exactly once."""
    path = os.path.join(pb, rel)
    s = open(path).read()
    if MARK in s:
        sys.exit(f"patch: {rel} is already patched (the refresh from the source did not happen?)")
    for anchor, text, how in edits:
        if how == "append":
            if not s.rstrip("\n").endswith(anchor):
                sys.exit(f"patch: {rel}: expected it to end with {anchor!r}; the peer harness changed, update peers.sh")
            s = s.rstrip("\n") + "\n" + text
            continue
        n = s.count(anchor)
        if n != 1:
            sys.exit(f"patch: {rel}: anchor {anchor!r} found {n} times (want 1); the peer harness changed, update peers.sh")
        s = s.replace(anchor, {"before": text + anchor, "after": anchor + text, "replace": text}[how])
    open(path, "w").write(s)
    print(f"patched {rel} ({len(edits)} edit(s))", file=sys.stderr)

patch("env.sh", [
    ('mkdir -p "$RUN"',
     f"# --- cherrypick ({MARK})\n"
     f"CHERRYPICK_PORT={port}\n"
     f"export CHERRYPICK_MASTER_KEY={key}\n"
     f"CHERRYPICK_BIN=${{CHERRYPICK_BIN:-{binary}}}\n"
     f"CHERRYPICK_BENCH_CONFIG=$PB/cherrypick/cherrypick-bench.toml\n", "append"),
])
patch("start.sh", [
    ("want=${*:-upstream litellm litellm-w2 portkey}", f"want=${{*:-upstream litellm litellm-w2 portkey cherrypick}}  # cherrypick {MARK}", "replace"),
    ('    *) echo "unknown target $t" >&2; exit 2 ;;',
     f"    cherrypick)  # {MARK}\n"
     f"      launch cherrypick $PB \"$CHERRYPICK_BIN\" serve --config \"$CHERRYPICK_BENCH_CONFIG\"\n"
     f"      wait_http cherrypick http://127.0.0.1:$CHERRYPICK_PORT/health ;;\n", "before"),
])
patch("stop.sh", [
    ("want=${*:-portkey litellm-w2 litellm upstream}", f"want=${{*:-cherrypick portkey litellm-w2 litellm upstream}}  # cherrypick {MARK}", "replace"),
])
patch("run.sh", [
    ("./stop.sh portkey litellm-w2 litellm ", f"./stop.sh cherrypick portkey litellm-w2 litellm ", "replace"),
    ("set -euo pipefail\n", f"# cherrypick is started/stopped with the others ({MARK})\n", "after"),
])
patch("bench.py", [
    ('LKEY = os.environ.get("LITELLM_MASTER_KEY"',
     f"# cherrypick ({MARK})\n"
     f"CP_URL = \"http://127.0.0.1:{port}/v1/chat/completions\"\n"
     f"CP_KEY = os.environ.get(\"CHERRYPICK_MASTER_KEY\", \"{key}\")\n", "before"),
    ('    "litellm": _litellm(14000, "litellm.pid"),',
     f"    \"cherrypick\": {{\"pidfile\": \"cherrypick.pid\",  # {MARK}\n"
     f"                   \"json\": (CP_URL, \"bench-model\", {{\"Authorization\": f\"Bearer {{CP_KEY}}\"}}),\n"
     f"                   \"stream\": (CP_URL, \"bench-stream\", {{\"Authorization\": f\"Bearer {{CP_KEY}}\"}}),\n"
     f"                   \"slow\": (CP_URL, \"bench-slowstream\", {{\"Authorization\": f\"Bearer {{CP_KEY}}\"}})}},\n", "before"),
])
patch("sdk_check.py", [
    ('KEY = os.environ.get("LITELLM_MASTER_KEY"',
     f"# cherrypick ({MARK})\n"
     f"CHERRYPICK = os.environ.get(\"CHERRYPICK_URL\", \"http://127.0.0.1:{port}\")\n"
     f"CKEY = os.environ.get(\"CHERRYPICK_MASTER_KEY\", \"{key}\")\n", "before"),
    ('  "litellm": ((OpenAI(',
     f"  \"cherrypick\": ((OpenAI(base_url=f\"{{CHERRYPICK}}/v1\", api_key=CKEY), \"bench-model\"),  # {MARK}\n"
     f"                 (OpenAI(base_url=f\"{{CHERRYPICK}}/v1\", api_key=CKEY), \"bench-stream\")),\n", "before"),
])
PY

# ---- 3. verify the patched copy
( cd "$WORK"
  for f in env.sh start.sh stop.sh run.sh; do bash -n "$f" || die "patched $f does not parse"; done
  python3 -m py_compile bench.py sdk_check.py || die "patched python does not compile"
  python3 - <<'PY' || die "patched bench.py has no usable cherrypick target"
import sys; sys.path.insert(0, ".")
import bench
t = bench.TARGETS["cherrypick"]
assert t["pidfile"] == "cherrypick.pid", t
for v, m in (("json", "bench-model"), ("stream", "bench-stream"), ("slow", "bench-slowstream")):
    url, model, h = t[v]
    assert url == "http://127.0.0.1:18900/v1/chat/completions" and model == m, (v, url, model)
    assert h["Authorization"].startswith("Bearer sk-cherrypick-bench-"), h
print("bench.TARGETS['cherrypick'] ok:", {v: t[v][1] for v in ("json", "stream", "slow")})
PY
  ( source ./env.sh; [ -x "$CHERRYPICK_BIN" ] && [ -f "$CHERRYPICK_BENCH_CONFIG" ] ) || die "env.sh: binary or config missing"
  echo "--- patched lines (grep 'peers.sh' + context):"
  grep -n -A3 "added by benches/load/peers.sh" env.sh start.sh stop.sh run.sh bench.py sdk_check.py
) >&2
log "patch verified"
[ $mode = patch ] && exit 0

# ---- 4. tools; stop what the copy may still have running; ports must be free
cd "$WORK"
ensure_apt_tools
ensure_oha
mkdir -p tools/bin
[ -x tools/bin/oha ] || ln -sf "$OHA" tools/bin/oha     # setup.sh then skips its own oha build
if [ "${KEEP:-0}" != 1 ]; then
  ./stop.sh >/dev/null 2>&1 || true
  for p in $UPSTREAM_PORT $GATEWAY_PORT 14000 14001 18787; do
    port_busy $p && die "127.0.0.1:$p is in use by something this harness did not start (benches/load/run.sh still running?)"
  done
fi
if [ "${KEEP_RUNNING:-0}" != 1 ]; then
  trap 'cd "$WORK" && ./stop.sh >&2 || true' EXIT
fi

if [ $mode = smoke ]; then
  ./start.sh upstream cherrypick >&2
  python3 bench.py --targets direct,cherrypick --only check,stream --quick
  exit 0
fi

# ---- 5. one-time setup of the peers (apt, LiteLLM venv, Portkey npm), then the harness
if [ ! -f .setup-done ] || [ ! -x venv/bin/litellm ] || [ ! -d portkey/node_modules/@portkey-ai/gateway ]; then
  mkdir -p logs
  log "running the peer harness' setup.sh (LiteLLM + Portkey install, several minutes); log: $WORK/logs/setup.log"
  ./setup.sh 2>&1 | tee logs/setup.log >&2
  touch .setup-done
fi
./run.sh --targets direct,cherrypick,litellm,portkey "$@"

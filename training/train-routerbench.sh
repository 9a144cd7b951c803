#!/usr/bin/env bash
# Reproduces models/router/ (the shipped selector) from RouterBench data:
#
#   training/train-routerbench.sh                 # train into models/router
#   OUT=/tmp/router training/train-routerbench.sh # train elsewhere, e.g. to compare with the shipped one
#
# Inputs: the routing data (DATA, default ../shared/data/routing/routerbench-train.jsonl) and the
# all-MiniLM-L6-v2 folder (CHERRYPICK_ENCODER, default where scripts/test puts it; a hub id works
# where the hub is reachable). The seed fixes the initial weights, the validation split, the batch
# order and the dropout masks, so a rerun on the same machine writes the same weights; on another CPU
# the floating-point sums may differ in the last bits.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/routing/routerbench-train.jsonl}
OUT=${OUT:-models/router}
export CHERRYPICK_ENCODER=${CHERRYPICK_ENCODER:-$HOME/.cache/cherrypick/models/all-MiniLM-L6-v2}
cargo run --release --quiet -- router train --data "$DATA" --out "$OUT" --seed 42

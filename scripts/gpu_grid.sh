#!/usr/bin/env bash
# The full-scale neural grid on one GPU within a given number of seconds, resumable, for a short
# GPU lease: the runs go to RUNS_DIR and, packed as one archive (runs.tgz, with a summary), to
# OUT_DIR, which the device tool brings back. Unpack it into a runs directory here and publish:
#   tar xzf runs.tgz -C runs-gpu && sessbench publish runs-gpu --data-dir DATA_DIR
#
#   scripts/gpu_grid.sh DATA_DIR SECONDS [OUT_DIR] [RUNS_DIR]
#
# DATA_DIR: the official splits (copy them into an ignored folder of the checkout and `carry` it:
# ../shared does not travel to the device machine). SECONDS: the device time the grid may use
# (steps that would run past it are stopped, their finished runs kept). The order is
# scripts/table2_grid.sh's `gpu` lane: SR-GNN under both protocols first.
set -uo pipefail
DATA=${1:?usage: scripts/gpu_grid.sh DATA_DIR SECONDS [OUT_DIR] [RUNS_DIR]}
LIMIT=${2:?usage: scripts/gpu_grid.sh DATA_DIR SECONDS [OUT_DIR] [RUNS_DIR]}
OUTDIR=${3:-${OUT:-gpu_grid_out}}
RUNS=${4:-runs-gpu}
HERE=$(dirname "$0")
mkdir -p "$OUTDIR" "$RUNS"
export PYTHONUNBUFFERED=1
nvidia-smi -L || true
"$HERE/table2_grid.sh" "$DATA" "$RUNS" gpu cuda $((LIMIT - 30)) 2>&1 | tee "$OUTDIR/grid.log"  # 30 s to pack
tar czf "$OUTDIR/runs.tgz" -C "$RUNS" --exclude='.*' .
ls "$RUNS"/*.json 2>/dev/null | wc -l | sed 's/^/records: /' | tee "$OUTDIR/summary.txt"

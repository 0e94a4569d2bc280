#!/usr/bin/env bash
# The paper's Table 2 at full scale (the official YOOCHOOSE 1/64 and DIGINETICA splits), in priority
# order, resumable: rerun the same command and finished runs are skipped; a run killed mid-training
# resumes from its last epoch checkpoint (while the cache folder survives).
#
#   scripts/table2_grid.sh DATA_DIR RUNS_DIR [LANE] [DEVICE] [SECONDS]
#
# DATA_DIR holds the official splits (yoochoose1_64/ and diginetica/). LANE: a | b | all (default
# all; two lanes split the grid for two CPU cores) or gpu (one device, the SR-GNN check first). DEVICE: cpu (default) or cuda. SECONDS: stop
# starting new steps after this many seconds, and stop a step that would run past them (its
# finished runs are kept; default: no limit). `sessbench run ... --plan` with the same options
# prints the estimated time of each run first. Used by scripts/table2_cpu.sh and scripts/gpu_grid.sh.
set -uo pipefail
DATA=${1:?usage: scripts/table2_grid.sh DATA_DIR RUNS_DIR [LANE] [DEVICE] [SECONDS]}
RUNS=${2:?usage: scripts/table2_grid.sh DATA_DIR RUNS_DIR [LANE] [DEVICE] [SECONDS]}
LANE=${3:-all}
DEVICE=${4:-cpu}
LIMIT=${5:-0}
SB=${SESSBENCH:-sessbench}
START=$SECONDS
THREADS=(--threads 1)
[ "$DEVICE" = cpu ] || THREADS=()

run() {  # one step; under a limit it gets the time that is left, and is skipped when too little is
  local left=0
  if [ "$LIMIT" -gt 0 ]; then
    left=$((LIMIT - (SECONDS - START)))
    if [ "$left" -lt 30 ]; then echo "table2_grid: time is up, skipping: $*" >&2; return 0; fi
  fi
  if [ "$LIMIT" -gt 0 ]; then
    timeout --signal=TERM "$left" $SB run --data-dir "$DATA" --runs-dir "$RUNS" --device "$DEVICE" "${THREADS[@]}" --resume "$@"
  else
    $SB run --data-dir "$DATA" --runs-dir "$RUNS" --device "$DEVICE" "${THREADS[@]}" --resume "$@"
  fi
  local rc=$?
  [ $rc -eq 0 ] || echo "table2_grid: step ended with exit $rc: $*" >&2
}
BOTH=(--dataset yoochoose64 --dataset diginetica)

lane_a() {
  # the models that select nothing (seconds to minutes each), and BPR-MF
  run --models pop,s-pop,item-knn,simple,bpr-mf "${BOTH[@]}"
  # the headline check: SR-GNN under the official code's protocol, 3 seeds
  run --models srgnn --dataset yoochoose64 --protocol paper --seeds 0,1,2
  run --models srgnn --dataset yoochoose64 --seeds 0,1,2
  run --models fpmc,stamp,gru4rec,narm --dataset yoochoose64
  run --models srgnn-variants --dataset yoochoose64
}

lane_b() {
  run --models srgnn --dataset diginetica --protocol paper --seeds 0,1,2
  run --models srgnn --dataset diginetica --seeds 0,1,2
  run --models fpmc,stamp,gru4rec,narm --dataset diginetica
  run --models srgnn-variants --dataset diginetica
}

lane_gpu() {  # one device: the SR-GNN check first, then by how much each run adds
  run --models srgnn "${BOTH[@]}" --protocol paper --seeds 0,1,2
  run --models srgnn "${BOTH[@]}" --seeds 0,1,2
  run --models pop,s-pop,item-knn,simple,bpr-mf "${BOTH[@]}"
  run --models fpmc,stamp,gru4rec,narm "${BOTH[@]}"
  run --models srgnn-variants "${BOTH[@]}"
}

case "$LANE" in
  a) lane_a ;;
  b) lane_b ;;
  all) lane_a; lane_b ;;
  gpu) lane_gpu ;;
  *) echo "LANE must be a, b, all or gpu" >&2; exit 2 ;;
esac

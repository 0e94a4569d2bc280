#!/usr/bin/env bash
# The paper's Table 2 at full scale (the official YOOCHOOSE 1/64 and DIGINETICA splits) on CPU
# cores, in priority order, resumable: rerun the same command and finished runs are skipped, a run
# killed mid-training resumes from its last epoch checkpoint.
#
#   scripts/table2_cpu.sh DATA_DIR [RUNS_DIR] [LANE]
#
# DATA_DIR holds the official splits (yoochoose1_64/ and diginetica/, e.g. ../shared/data/official-splits).
# LANE: a | b | all (default). The two lanes split the grid for two cores: start one of each.
# Every run uses one torch thread. `sessbench run ... --plan` with the same options prints the
# estimated time of each run first.
set -euo pipefail
DATA=${1:?usage: scripts/table2_cpu.sh DATA_DIR [RUNS_DIR] [LANE]}
RUNS=${2:-runs-table2}
LANE=${3:-all}
SB=${SESSBENCH:-sessbench}

run() { $SB run --data-dir "$DATA" --runs-dir "$RUNS" --threads 1 --resume "$@"; }
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

case "$LANE" in
  a) lane_a ;;
  b) lane_b ;;
  all) lane_a; lane_b ;;
  *) echo "LANE must be a, b or all" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one pass that fits a short GPU lease (at most 9 minutes on
# one H200). CI has no GPU, so these are the only runs of our CUDA paths:
#   1. the CUDA tests (skipped elsewhere);
#   2. `sessbench bench train` on cuda for the torch models at the YOOCHOOSE 1/64 shape;
#   3. a real-data run of the torch models on cuda (YOOCHOOSE sample), to compare with CPU runs;
#   4. the whole default test suite with the GPU visible (device "auto" then resolves to cuda);
#   5. the simple baselines on cuda with saved lists (their scoring and the tie-complete lists).
# Usage: scripts/gpu_check.sh [DATA_DIR] [OUT_DIR]
#   DATA_DIR: the YOOCHOOSE sample (default ../shared/data/yoochoose-sample)
#   OUT_DIR:  where the logs go (default gpu_check_out; runs go to $RUNS_DIR, default OUT_DIR/runs)
#   STEPS:    the steps to run (default "cuda_tests bench run suite simple")
# Each step has its own time limit, so one slow step cannot take the others' time.
set -u
DATA=${1:-../shared/data/yoochoose-sample}
OUTDIR=${2:-gpu_check_out}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

step() {  # step NAME SECONDS CMD... : run CMD under a limit, log to OUTDIR/NAME.log, print its status
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUTDIR/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0)) s (limit $limit s)"
  tail -n 25 "$OUTDIR/$name.log"
}

nvidia-smi -L || true
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"

STEPS=" ${STEPS:-cuda_tests bench run suite simple} "
RUNS=${RUNS_DIR:-$OUTDIR/runs}
if [[ $STEPS == *" cuda_tests "* ]]; then
  step cuda_tests 60 $PY -m pytest -q -p no:cacheprovider tests/test_srgnn.py tests/test_training.py -k cuda
fi
if [[ $STEPS == *" bench "* ]]; then
  for model in srgnn gru4rec narm stamp; do
    step "bench_$model" 60 $PY -m sessbench.cli bench train --model "$model" --device cuda --batches 30
  done
fi
if [[ $STEPS == *" run "* ]]; then
  step run_yoochoose 110 $PY -m sessbench.cli -q run --models srgnn,narm,stamp,gru4rec --dataset yoochoose \
    --data-dir "$DATA" --device cuda --runs-dir "$RUNS" --seeds 0
fi
if [[ $STEPS == *" suite "* ]]; then
  step suite 150 $PY -m pytest -q -p no:cacheprovider -n 8 tests
fi
if [[ $STEPS == *" simple "* ]]; then
  step run_simple 90 $PY -m sessbench.cli -q run --models simple --dataset yoochoose4 --dataset yoochoose \
    --data-dir "$DATA" --device cuda --runs-dir "$RUNS" --seeds 0 --save-recs 20
fi

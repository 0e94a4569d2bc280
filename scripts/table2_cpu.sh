#!/usr/bin/env bash
# The full-scale Table 2 grid on CPU cores: one lane per core, one torch thread per run.
#   scripts/table2_cpu.sh DATA_DIR [RUNS_DIR] [LANE]      (LANE a | b | all; start a and b on two cores)
# See scripts/table2_grid.sh for the order of the runs.
exec "$(dirname "$0")/table2_grid.sh" "${1:?usage: scripts/table2_cpu.sh DATA_DIR [RUNS_DIR] [LANE]}" "${2:-runs-table2}" "${3:-all}" cpu

"""Benchmarks of sessbench itself (how fast and lean its data pipeline is).

`sessbench.bench.preprocess.run_preprocess_benchmark` times reading + SR-GNN preprocessing of a
YOOCHOOSE-sized raw file in a fresh process; `format_report` prints its result.
"""

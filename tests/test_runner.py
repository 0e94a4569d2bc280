"""The runner end to end: records, failures, resume after a kill, the paper protocol's reporting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sessbench.atomic import remove_stale_temp_files
from sessbench.cli import main
from sessbench.data.registry import parse_dataset
from sessbench.evaluation import RankCounts, metrics_from_counts
from sessbench.models import SessionRecommender, register_model
from sessbench.results import iter_records
from sessbench.runner import RunSettings, Runner, paper_best, plan_runs

SMALL = "synthetic:n_sessions=600,n_items=80"


@register_model("test-failing", groups=("test-only",))
class Failing(SessionRecommender):
    """Always raises in fit (a model failure must not stop the grid)."""

    def fit(self, data, ctx):
        raise RuntimeError("deliberate failure")

    def score(self, batch):  # pragma: no cover
        raise AssertionError


@register_model("test-peeking", groups=("test-only",))
class Peeking(SessionRecommender):
    """Records what fit receives, to check test data never reaches a model."""

    seen: list = []

    def fit(self, data, ctx):
        Peeking.seen.append(data)
        self.n = data.n_items

    def score(self, batch):
        return torch.zeros(len(batch), self.n + 1)


def test_run_writes_complete_records(tmp_path: Path) -> None:
    code = main(["--quiet", "run", "--models", "pop,s-pop", "--dataset", SMALL, "--seeds", "0,1", "--runs-dir", str(tmp_path)])
    assert code == 0
    records = {(r["model"], r["seed"]): r for r in iter_records(tmp_path)}
    # POP and S-POP do not depend on the seed: one run each, whatever --seeds says
    assert set(records) == {("pop", 0), ("s-pop", 0), ("oracle", 0)}
    rec = records[("s-pop", 0)]
    for key in ("model", "dataset", "seed", "protocol", "status", "metrics", "groups", "timing",
                "peak_memory_mb", "config", "environment", "n_examples", "ranks_file", "command"):
        assert key in rec, key
    assert rec["status"] == "ok" and rec["protocol"] == "validated"
    assert set(rec["groups"]) == {"short", "long"}
    for k in ("P@20", "MRR@20", "NDCG@20", "P@5", "MRR@10", "coverage@20"):
        assert 0.0 <= rec["metrics"][k] <= 1.0
    assert {"fit_s", "predict_s", "examples_per_s"} <= set(rec["timing"])
    assert rec["environment"]["packages"]["torch"] and "git" in rec["environment"]
    # the stored per-example rank counts reproduce the recorded metrics exactly
    ranks = RankCounts.load(tmp_path / rec["ranks_file"])
    again = metrics_from_counts(ranks.greater, ranks.equal)
    assert again["P@20"] == pytest.approx(rec["metrics"]["P@20"]) and again["MRR@20"] == pytest.approx(rec["metrics"]["MRR@20"])
    # S-POP beats POP, the oracle beats both
    assert records[("oracle", 0)]["metrics"]["P@20"] >= rec["metrics"]["P@20"] > records[("pop", 0)]["metrics"]["P@20"]


def test_failure_is_recorded_and_grid_continues(tmp_path: Path) -> None:
    code = main(["--quiet", "run", "--models", "test-failing,pop", "--dataset", SMALL, "--runs-dir", str(tmp_path)])
    assert code == 1  # some run failed
    records = {r["model"]: r for r in iter_records(tmp_path)}
    assert records["test-failing"]["status"] == "failed"
    assert "deliberate failure" in records["test-failing"]["error"]["traceback"]
    assert records["pop"]["status"] == "ok"


@pytest.mark.parametrize("refit", [True, False])
def test_models_never_see_test_data(tmp_path: Path, refit: bool) -> None:
    Peeking.seen.clear()
    main(["--quiet", "run", "--models", "test-peeking", "--dataset", SMALL, "--runs-dir", str(tmp_path),
          *([] if refit else ["--no-refit"])])
    data = Peeking.seen[0]
    assert not hasattr(data, "test")
    split = Runner(tmp_path).dataset(parse_dataset(SMALL)).split
    test_ids = set(split.test.session_ids.tolist())
    assert test_ids.isdisjoint(data.train.session_ids.tolist())
    # a model that selects nothing gets the whole training set under the refit protocol ...
    if refit:
        assert data.valid is None and data.train.n_sessions == split.train.n_sessions
    else:  # ... and the carved one (with its validation part) without it
        assert test_ids.isdisjoint(data.valid.session_ids.tolist())
        assert data.train.n_sessions + data.valid.n_sessions == split.train.n_sessions


def test_resume_skips_finished(tmp_path: Path) -> None:
    args = ["--quiet", "run", "--models", "pop", "--dataset", SMALL, "--runs-dir", str(tmp_path)]
    main(args)
    first = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")}
    main([*args, "--resume"])
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.json")} == first


def _comparable(runs_dir: Path) -> dict[str, dict]:
    return {r["run_id"]: {k: r[k] for k in ("status", "metrics", "groups", "n_examples")} for r in iter_records(runs_dir)}


def test_killed_grid_resumes_to_the_same_records(tmp_path: Path) -> None:
    """SIGKILL a grid midway, resume it, and compare with an uninterrupted grid."""
    base = [sys.executable, "-m", "sessbench.cli", "--quiet", "run", "--models", "pop,s-pop",
            *[a for seed in (0, 1, 2) for a in ("--dataset", f"{SMALL},seed={seed}")]]
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run([*base, "--runs-dir", str(full)], check=True, capture_output=True, timeout=600)

    proc = subprocess.Popen([*base, "--runs-dir", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list(killed.glob("*.json"))) < 3 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = len(list(killed.glob("*.json")))
    assert 0 < n_before < 9, "the kill should land midway through the grid"
    # whatever was being written at the kill is at most a hidden temp file, never a record
    assert all(rec["status"] == "ok" for rec in iter_records(killed))

    subprocess.run([*base, "--runs-dir", str(killed), "--resume"], check=True, capture_output=True, timeout=600)
    assert _comparable(killed) == _comparable(full)
    assert sorted(p.name for p in killed.iterdir()) == sorted(p.name for p in full.iterdir()), "no leftovers"


def test_stale_temp_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".x.json.{int(dead.stdout)}.abc123.tmp"
    live = tmp_path / f".y.json.{os.getpid()}.abc123.tmp"
    stale.write_text("partial")
    live.write_text("being written")
    assert remove_stale_temp_files(tmp_path) == [stale]
    assert live.exists() and not stale.exists()


def test_paper_best_takes_each_metric_separately() -> None:
    log = [{"epoch": 1, "P@20": 0.5, "MRR@20": 0.30}, {"epoch": 2, "P@20": 0.6, "MRR@20": 0.20}]
    assert paper_best(log) == {"P@20": 0.6, "epoch_P@20": 2, "MRR@20": 0.30, "epoch_MRR@20": 1}


def test_run_ids_are_stable_and_distinct() -> None:
    ds = parse_dataset(SMALL)
    a = plan_runs(["pop", "fpmc"], [ds], [0, 1], "validated", lambda m, d: {}, RunSettings())
    b = plan_runs(["pop", "fpmc"], [ds], [0, 1], "validated", lambda m, d: {}, RunSettings())
    assert [s.run_id for s in a] == [s.run_id for s in b]
    assert len({s.run_id for s in a}) == len(a) == 4  # oracle + pop once (no seed) + fpmc x 2 seeds
    c = plan_runs(["pop"], [ds], [0], "validated", lambda m, d: {}, RunSettings(validation_fraction=0.2))
    assert c[1].run_id != a[1].run_id


def test_several_at_a_time_the_long_trainings_start_first() -> None:
    """With several runs at a time the iterative models go first (most epochs first), within each
    dataset, so that the longest run does not start last and run alone."""
    from sessbench.data.registry import parse_dataset
    from sessbench.models import load_plugins
    from sessbench.planning import RunSettings, longest_first, plan_runs

    load_plugins()
    ds = [parse_dataset("synthetic:n_items=80,n_sessions=600"), parse_dataset("synthetic:n_items=90,n_sessions=600")]
    params = {"pop": {}, "narm": {"epochs": 25}, "srgnn": {"epochs": 12}, "markov": {}}
    plan = plan_runs(["pop", "srgnn", "markov", "narm"], ds, [0], "validated", lambda m, d: params[m], RunSettings())
    ordered = longest_first(plan)
    assert [s.model for s in ordered] == ["narm", "srgnn", "oracle", "pop", "markov"] * 2
    assert [s.dataset.key for s in ordered[:5]] == [ds[0].key] * 5

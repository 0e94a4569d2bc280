"""The Python front door gives what the command line gives: the same configs, records, report."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultkit import SMALL
from sessbench import api
from sessbench.cli import main
from sessbench.results import comparable_record, iter_records


def test_api_run_equals_the_cli(tmp_path: Path) -> None:
    """The same grid through the API and through the CLI: the same runs, configs and metrics
    (configs/models/*.yaml included: the API resolves configuration where the CLI does)."""
    args = dict(models="fpmc,pop", datasets=[SMALL], seeds=[0], set=["fpmc.epochs=2"])
    records = api.run(**args, runs_dir=tmp_path / "api")
    assert main(["--quiet", "run", "--models", "fpmc,pop", "--dataset", SMALL, "--seeds", "0", "--set", "fpmc.epochs=2",
                 "--runs-dir", str(tmp_path / "cli")]) == 0
    by_cli = {r["run_id"]: r for r in iter_records(tmp_path / "cli")}
    assert {r["run_id"] for r in records} == set(by_cli)
    for r in records:
        other = by_cli[r["run_id"]]
        assert comparable_record(r)["metrics"] == comparable_record(other)["metrics"]
        assert r["config"] == other["config"]
    # records carry the real invocation
    fpmc = next(r for r in records if r["model"] == "fpmc")
    assert fpmc["command"].startswith("sessbench.api.run(models='fpmc,pop'") and "set=['fpmc.epochs=2']" in fpmc["command"]
    assert by_cli[fpmc["run_id"]]["command"].startswith("sessbench ")
    # --set changed fpmc's configuration; pop and the oracle ran their defaults
    assert {r["model"]: r["default_config"] for r in records} == {"fpmc": False, "pop": True, "oracle": True}


def test_api_prepare_grid_plans_without_running(tmp_path: Path) -> None:
    grid = api.prepare_grid("pop,srgnn", [SMALL], [0, 1], runs_dir=tmp_path)
    assert [(s.model, s.seed) for s in grid.plan] == [("oracle", 0), ("pop", 0), ("srgnn", 0), ("srgnn", 1)]
    srgnn = next(s for s in grid.plan if s.model == "srgnn")
    assert srgnn.params["epochs"] == 20 and srgnn.params["dropout"] == 0.2  # configs/models/srgnn.yaml, synthetic layer
    assert not list(tmp_path.iterdir())


def test_api_report_and_load_dataset(tmp_path: Path) -> None:
    api.run("pop", [SMALL], runs_dir=tmp_path / "runs")
    written = api.report(tmp_path / "runs", tmp_path / "out")
    assert any(p.name == "README.md" for p in written)
    loaded = api.load_dataset(SMALL)
    assert loaded.split.n_items == 80


def test_api_rejects_bad_values_like_the_cli(tmp_path: Path) -> None:
    from sessbench.errors import ConfigError

    with pytest.raises(ConfigError, match="--time-budget"):
        api.prepare_grid("pop", [SMALL], time_budget_s=float("nan"), runs_dir=tmp_path)
    with pytest.raises(ConfigError, match="seeds is empty"):
        api.prepare_grid("pop", [SMALL], seeds=[], runs_dir=tmp_path)

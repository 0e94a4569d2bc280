"""The report's full-scale Table 2, SR-GNN check, repeat/explore split, code states, unverified runs,
and session-level statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _report_store import write_run
from sessbench.report import write_report
from sessbench.report.headline import estimate, srgnn_check, table2_full
from sessbench.report.repeats import repeat_explore_table, repeat_share
from sessbench.report.stats import bootstrap_mean_ci, paired_randomization_test
from sessbench.report.store import Store

MODELS = ("pop", "s-pop", "narm", "stamp", "srgnn")


def full_store(runs: Path, *, srgnn_paper_seeds: int = 3) -> Path:
    for dataset in ("yoochoose64", "diginetica"):
        for model in MODELS:
            seeds = (0,) if model in ("pop", "s-pop") else (0, 1, 2)
            for seed in seeds:
                write_run(runs, model, dataset, seed, code_state="state1")
        for seed in range(srgnn_paper_seeds):
            write_run(runs, "srgnn", dataset, seed, protocol="paper", code_state="state1")
    return runs


def text(table) -> str:
    notes = ["".join(s.text for s in note) for note in table.notes]
    return "\n".join(" | ".join(c.text for c in row) for row in table.rows) + "\n" + "\n".join(notes)


def test_table2_full_shows_paper_ours_difference_and_interval(tmp_path: Path) -> None:
    store = Store.load(full_store(tmp_path / "runs"))
    table, reasons = table2_full(store, "validated", "P@20")
    rows = {row[0].text: row for row in table.rows}
    assert set(MODELS) <= set(rows) and "bpr-mf" in rows  # every model of the paper's table, run or not
    assert rows["bpr-mf"][2].text == "not run"
    assert rows["pop"][3].text == "1 (seed-free)" and "±" not in rows["pop"][2].text
    assert rows["srgnn"][3].text == "3" and "±" in rows["srgnn"][2].text
    assert rows["srgnn"][1].text == "70.57" and rows["srgnn"][5].text == "50.73"
    # the interval holds the point estimate, and a difference outside it is explained
    est = estimate(store.find("yoochoose64", "validated", "srgnn"), "P@20")
    assert est.low < est.mean < est.high and est.unit == "session"
    assert any("NARM paper" in r for r in reasons) or any("DIGINETICA" in r or "baselines" in r for r in reasons)
    assert all(f"[{i}]" in text(table) for i in range(1, len(reasons) + 1))


def test_the_srgnn_check_says_how_far_from_the_paper(tmp_path: Path) -> None:
    store = Store.load(full_store(tmp_path / "runs", srgnn_paper_seeds=2))
    lines = [" ".join(p if isinstance(p, str) else p.text for p in line) for line in srgnn_check(store)]
    assert len(lines) == 2 and all("mean of 2 seeds" in line for line in lines)
    assert all(("within" in line) or ("outside" in line) for line in lines)
    assert all("1 still to run" in line for line in lines)
    assert "51.02" in lines[1]  # the third-party reproduction on DIGINETICA


def test_repeat_and_explore_split_the_metrics(tmp_path: Path) -> None:
    store = Store.load(full_store(tmp_path / "runs"))
    assert repeat_share(store, "yoochoose64") == pytest.approx(1 / 3, abs=0.01)
    table = repeat_explore_table(store, "yoochoose64", "validated")
    assert table is not None and "800 targets repeat" in table.caption
    # a model's overall P@20 is the repeat and explore values weighted by their shares
    g = store.find("yoochoose64", "validated", "srgnn")
    rc = g.ranks[0][1]
    mask = g.examples()["repeat"]
    hit = rc.hit(20)
    assert hit.mean() == pytest.approx(mask.mean() * hit[mask].mean() + (~mask).mean() * hit[~mask].mean())


def test_code_states_are_never_averaged(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed in (0, 1, 2):
        write_run(runs, "srgnn", "yoochoose64", seed, code_state="old")
    for seed in (0, 1):
        write_run(runs, "srgnn", "yoochoose64", seed, code_state="new", quality=30.0)
    store = Store.load(runs)
    (shown,) = [g for g in store.groups if g.model == "srgnn"]
    assert shown.code_state == "old" and len(shown.seeds) == 3  # the most seeds win
    (other,) = store.superseded
    assert other.code_state == "new" and len(other.seeds) == 2
    write_run(runs, "srgnn", "yoochoose64", 2, code_state="new", quality=30.0)
    write_run(runs, "srgnn", "yoochoose64", 3, code_state="new", quality=30.0)
    (shown,) = [g for g in Store.load(runs).groups if g.model == "srgnn"]
    assert shown.code_state == "new" and len(shown.seeds) == 4


def test_runs_from_dirty_trees_are_set_apart(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_run(runs, "pop", "yoochoose64", 0, code_state="s")
    write_run(runs, "narm", "yoochoose64", 0, code_state="s", dirty=True)
    store = Store.load(runs)
    assert store.verified and [r["model"] for r in store.unverified] == ["narm"]
    assert {g.model for g in store.groups} == {"pop"}
    out = tmp_path / "report"
    write_report(runs, out)
    readme = (out / "README.md").read_text()
    assert "Runs not in the tables" in readme and "Unverified runs" not in readme
    only_dirty = tmp_path / "dirty"
    write_run(only_dirty, "narm", "yoochoose64", 0, code_state="s", dirty=True)
    write_report(only_dirty, tmp_path / "r2")
    assert "Unverified runs" in (tmp_path / "r2" / "README.md").read_text()


def test_the_full_report_has_the_headline_and_the_grid_coverage(tmp_path: Path) -> None:
    runs = full_store(tmp_path / "runs")
    out = tmp_path / "report"
    write_report(runs, out)
    readme = (out / "README.md").read_text()
    assert readme.index("Table 2 at the paper's scale") < readme.index("Coverage: what is and is not here")
    assert "The SR-GNN check" in readme and "The full-scale grid" in readme
    assert "repeat-explore-yoochoose64" in readme  # table and figure
    assert (out / "figures" / "repeat-explore-yoochoose64.png").is_file()
    assert "sessions" in readme  # the significance tests name their unit


# ---------------------------------------------------------------------------- session-level statistics
def test_clustered_test_is_more_conservative_than_the_per_prefix_one() -> None:
    """Prefixes of one session share their input: a session-level effect spread over its prefixes
    looks far more significant when each prefix counts as independent."""
    rng = np.random.default_rng(0)
    sessions = np.repeat(np.arange(300), 8)  # 300 sessions of 8 prefixes
    effect = rng.normal(0.02, 0.2, 300)[sessions]  # a per-session difference, shared by its prefixes
    a = 0.5 + effect + rng.normal(0, 0.01, len(sessions))
    b = np.full_like(a, 0.5)
    by_prefix = paired_randomization_test(a, b, resamples=2000, seed=1)
    by_session = paired_randomization_test(a, b, resamples=2000, seed=1, clusters=sessions)
    assert by_session.unit == "session" and by_session.units == 300 and by_prefix.units == len(a)
    assert by_session.p_value > by_prefix.p_value
    assert (by_session.ci_high - by_session.ci_low) > (by_prefix.ci_high - by_prefix.ci_low)
    assert by_session.mean_diff == pytest.approx(by_prefix.mean_diff)


def test_session_bootstrap_covers_the_mean() -> None:
    rng = np.random.default_rng(3)
    values = rng.random(1000)
    clusters = np.repeat(np.arange(250), 4)
    low, high = bootstrap_mean_ci(values, clusters, seed=0)
    assert low < values.mean() < high
    assert bootstrap_mean_ci(values, clusters, seed=0) == (low, high)  # a fixed seed: byte-stable reports


def test_sample_columns_are_labelled(tmp_path: Path) -> None:
    from _report_store import make_store

    out = tmp_path / "report"
    write_report(make_store(tmp_path / "runs"), out)
    readme = (out / "README.md").read_text()
    assert "yoochoose4 (a sample)" in readme  # Table 1's column and the dataset's headings
    assert "synthetic (a sample)" not in readme

"""A run's identity covers its data by content: run ids, --resume, the cache, code states."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest

from sessbench.cli import main
from sessbench.environment import code_state, git_state, module_closure
from sessbench.results import iter_records

ROWS = 400


def click_log(path: Path, shift: int = 0) -> Path:
    """A small click log whose content depends on `shift` (so two files differ)."""
    lines = ["session_id,item_id,timestamp"]
    for s in range(ROWS):
        for k in range(2 + s % 4):
            lines.append(f"{s},{(s * 7 + k * 3 + shift) % 40},{1_400_000_000 + s * 1800 + k}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def run(tmp_path: Path, dataset: str, *extra: str, cwd: Path | None = None) -> list[dict]:
    argv = ["--quiet", "run", "--models", "pop", "--dataset", dataset, "--runs-dir", str(tmp_path / "runs"),
            "--cache-dir", str(tmp_path / "cache"), "--dataset-param", "min_item_support=1", *extra]
    old = os.getcwd()
    try:
        os.chdir(cwd or old)
        assert main(argv) == 0
    finally:
        os.chdir(old)
    return sorted(iter_records(tmp_path / "runs"), key=lambda r: r["finished_at"] + r["run_id"])


def test_other_data_under_the_same_name_is_another_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a = click_log(tmp_path / "a" / "log.csv")
    b = click_log(tmp_path / "b" / "log.csv", shift=5)
    first = run(tmp_path, "clicks:log.csv", "--data-dir", str(a.parent))
    with caplog.at_level(logging.WARNING, logger="sessbench"):
        second = run(tmp_path, "clicks:log.csv", "--data-dir", str(b.parent), "--resume")
    assert len(first) == 1 and len(second) == 2  # --resume did not take the record of other data
    ids = {r["source"]["digest"] for r in second}
    assert len(ids) == 2 and len({r["run_id"] for r in second}) == 2
    assert any("was made from other data" in r.getMessage() for r in caplog.records)
    # the same file edited in place is other data too
    click_log(a, shift=9)
    third = run(tmp_path, "clicks:log.csv", "--data-dir", str(a.parent), "--resume")
    assert len(third) == 3


def test_the_same_file_by_another_path_is_the_same_run(tmp_path: Path) -> None:
    log = click_log(tmp_path / "data" / "log.csv")
    run(tmp_path, f"clicks:{log}")
    again = run(tmp_path, "clicks:data/log.csv", "--resume", cwd=tmp_path)
    # the key names the path as given, but the source (by content) is the same file
    assert len({r["source"]["digest"] for r in again}) == 1


def test_the_cache_keeps_one_entry_per_source(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a = click_log(tmp_path / "a" / "log.csv")
    b = click_log(tmp_path / "b" / "log.csv", shift=5)
    for folder in (a.parent, b.parent):
        run(tmp_path, "clicks:log.csv", "--data-dir", str(folder))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sessbench"):
        for folder in (a.parent, b.parent, a.parent):
            run(tmp_path, "clicks:log.csv", "--data-dir", str(folder), "--resume")
    messages = [r.getMessage() for r in caplog.records]
    assert not any("rebuilding" in m or "stale" in m for m in messages), messages
    entries = [p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".") and p.name != "checkpoints"]
    assert len(entries) == 2


def test_code_state_follows_the_models_own_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "plugpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "shared.py").write_text("X = 1\n")
    (pkg / "model_a.py").write_text("from plugpkg.shared import X\nfrom . import helper\n")
    (pkg / "helper.py").write_text("Y = 2\n")
    (pkg / "model_b.py").write_text("import plugpkg.shared\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert [m for m, _ in module_closure("plugpkg.model_a")] == ["plugpkg", "plugpkg.helper", "plugpkg.model_a", "plugpkg.shared"]
    before = {m: code_state.__wrapped__(m)["digest"] for m in ("plugpkg.model_a", "plugpkg.model_b")}
    (pkg / "helper.py").write_text("Y = 3\n")  # only model_a imports it
    after = {m: code_state.__wrapped__(m)["digest"] for m in ("plugpkg.model_a", "plugpkg.model_b")}
    assert after["plugpkg.model_a"] != before["plugpkg.model_a"]
    assert after["plugpkg.model_b"] == before["plugpkg.model_b"]


def test_records_carry_code_state_and_split_checksum(tmp_path: Path) -> None:
    (rec,) = run(tmp_path, f"clicks:{click_log(tmp_path / 'log.csv')}")
    assert rec["code_state"]["digest"] == code_state("baselines.popularity")["digest"]
    assert "baselines.popularity" in rec["code_state"]["modules"] and "sessbench.training" in rec["code_state"]["modules"]
    assert len(rec["split_checksum"]) == 16


def test_untracked_code_makes_a_checkout_dirty(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@t")
    git("config", "user.name", "t")
    (tmp_path / "sessbench").mkdir()
    (tmp_path / "sessbench" / "a.py").write_text("A = 1\n")
    (tmp_path / "notes.txt").write_text("scratch\n")
    git("add", "sessbench/a.py")
    git("commit", "-qm", "a")
    assert git_state(tmp_path)["dirty"] is False  # an untracked file outside the code folders is fine
    (tmp_path / "sessbench" / "plugin.py").write_text("B = 2\n")
    state = git_state(tmp_path)
    assert state["dirty"] is True and state["changed"] == ["sessbench/plugin.py"]


def test_publish_copies_clean_runs_and_refuses_dirty_ones(tmp_path: Path) -> None:
    from _report_store import write_run
    from sessbench.publish import publish_runs

    src, dst = tmp_path / "runs", tmp_path / "published"
    write_run(src, "pop", "yoochoose64", 0, code_state="s")
    write_run(src, "narm", "yoochoose64", 0, code_state="s", dirty=True)
    summary = publish_runs(src, dst)
    assert len(summary.copied) == 1 and [why for _, why in summary.refused][0].startswith("made by a dirty tree")
    assert sorted(p.name for p in dst.iterdir() if p.is_file()) == sorted(
        p.name for p in src.iterdir() if p.is_file() and p.name.startswith("yoochoose64__pop"))
    assert summary.tables_copied == 1 and len(list((dst / "splits").iterdir())) == 1
    again = publish_runs(src, dst)
    assert not again.copied and len(again.unchanged) == 1
    assert main(["--quiet", "publish", str(src), "--to", str(dst)]) == 1  # a refused run is an exit code


def test_publish_refuses_a_store_inside_the_runs_folder(tmp_path: Path) -> None:
    """The report reads a store with its subfolders: a store inside the runs folder (or around it)
    would count every run twice, so publish refuses it."""
    from _report_store import write_run
    from sessbench.errors import SessbenchError
    from sessbench.publish import publish_runs

    src = tmp_path / "runs"
    write_run(src, "pop", "yoochoose64", 0, code_state="s")
    with pytest.raises(SessbenchError, match="one inside the other"):
        publish_runs(src, src / "published")
    with pytest.raises(SessbenchError, match="one inside the other"):
        publish_runs(src, tmp_path)

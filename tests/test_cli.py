"""The command line: help everywhere, clear errors with exit code 2, data commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sessbench.cli import build_parser, main

COMMANDS = [
    ["run"], ["report"], ["models"], ["data"], ["data", "list"], ["data", "prepare"], ["data", "stats"],
    ["data", "export"], ["bench"], ["bench", "preprocess"], ["bench", "synthetic"],
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_has_help(cmd: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*cmd, "--help"])
    assert exc.value.code == 0
    assert "usage: sessbench" in capsys.readouterr().out


def test_bare_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "run" in capsys.readouterr().out
    for group in ("data", "bench"):
        assert main([group]) == 0
        assert f"usage: sessbench {group}" in capsys.readouterr().out


def test_report_out_must_be_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "file").write_text("x")
    assert main(["report", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_report_keeps_configurations_apart(tmp_path: Path) -> None:
    """Runs that differ in settings or hyperparameters are separate rows, never averaged as seeds."""
    runs = tmp_path / "runs"
    base = ["--quiet", "run", "--models", "pop", "--dataset", "synthetic:n_sessions=500,n_items=60", "--runs-dir", str(runs)]
    assert main(base) == 0
    assert main([*base, "--validation-fraction", "0.5"]) == 0
    assert main([*base, "--device", "cpu", "--eval-batch-size", "7", "--resume"]) == 0  # same runs: skipped
    records = list(runs.glob("*.json"))
    assert len(records) == 4  # oracle and pop, under two validation fractions
    out = tmp_path / "results"
    main(["report", "--runs-dir", str(runs), "--out", str(out)])
    rows = [line for line in (out / "comparison.md").read_text().splitlines() if "| pop" in line]
    assert len(rows) == 2 and all("(config " in r for r in rows)  # labelled by config id
    assert all("| 1 |" in r for r in rows)  # one seed each
    assert oct(records[0].stat().st_mode & 0o777) != oct(0o600)  # shareable, like a plain open()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--models", "spop"], "Did you mean 's-pop'"),
        (["run", "--models", "pop", "--dataset", "digenetica"], "Did you mean 'diginetica'"),
        (["run", "--models", "pop", "--dataset", "diginetica", "--data-dir", "/nonexistent"], "train-item-views.csv"),
        (["run", "--models", "pop", "--dataset", "synthetic:n_itmes=5"], "n_itmes"),
        (["run", "--models", "pop", "--set", "pop.alpha=1"], "has no hyperparameter 'alpha'"),
        (["run", "--models", "pop", "--device", "cuda:7"], "cuda"),
        (["run", "--models", "pop", "--validation-fraction", "1.5"], "validation-fraction"),
        (["run", "--config", "/nonexistent.yaml"], "cannot read config file"),
        (["report", "--runs-dir", "/nonexistent"], "does not exist"),
        (["data", "stats", "yoochoose64"], "--data-dir"),
        (["run", "--models", "pop", "--seeds", "0,x"], "--seeds '0,x'"),
        (["run", "--models", "pop", "--seeds", ""], "--seeds is empty"),
        (["run", "--models", "pop", "--eval-batch-size", "-3"], "--eval-batch-size"),
        (["run", "--models", "pop", "--threads", "0"], "--threads"),
        (["run", "--models", "pop", "--time-budget", "-1"], "--time-budget"),
        (["run", "--models", "pop", "--dataset", "clicks:x.csv", "--dataset-param", "time_format=bogus"], "time_format"),
        (["run", "--models", "pop", "--dataset", "clicks:x.csv", "--dataset-param", "test_days=abc"], "test_days"),
        (["run", "--models", "pop", "--dataset", "clicks:x.csv", "--dataset-param", "colour=red"], "colour"),
        (["run", "--models", "pop", "--dataset", "diginetica", "--dataset-param", "test_days=3"], "takes no parameters"),
        (["bench", "preprocess", "--rows", "10"], "--rows"),
        (["bench", "preprocess", "--workdir", "/nonexistent"], "--workdir"),
    ],
)
def test_user_errors_exit_2_without_traceback(argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--quiet", *argv] + (["--runs-dir", str(tmp_path)] if argv[0] == "run" else []))
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err


def test_data_list_and_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("yoochoose64", "yoochoose4", "diginetica", "synthetic", "clicks"):
        assert name in out
    assert main(["models", "--json"]) == 0
    assert "pop" in json.loads(capsys.readouterr().out)["models"]


def test_report_writes_tables(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert main(["--quiet", "run", "--models", "pop,s-pop", "--dataset", "synthetic:n_sessions=500,n_items=60", "--runs-dir", str(runs)]) == 0
    out = tmp_path / "results"
    assert main(["report", "--runs-dir", str(runs), "--out", str(out)]) == 0
    md = (out / "comparison.md").read_text()
    assert "| synthetic" in md and "oracle" in md and "s-pop" in md
    assert (out / "comparison.csv").read_text().startswith("dataset,model,protocol")
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    main(["report", "--runs-dir", str(runs), "--out", str(out)])
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == first  # deterministic


def test_data_commands_on_real_samples(shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = shared_data / "yoochoose-sample"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["--quiet", "data", "stats", "yoochoose64", "--data-dir", str(data_dir), *cache, "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["ours"]["train_sequences"] == 814 and stats["ours"]["test_sequences"] == 10_102
    assert stats["ours"]["items"] == 2_808 and stats["paper"]["train_sequences"] == 369_859
    out = tmp_path / "yc4.json"
    assert main(["--quiet", "data", "export", "yoochoose4", "--data-dir", str(data_dir), *cache,
                 "--format", "srgnn-json", "--out", str(out)]) == 0
    official = json.loads((data_dir / "official-split.json").read_text())
    ours = json.loads(out.read_text())
    assert ours["train"] == official["train_yoochoose1_4"] and ours["test"] == official["test"]
    assert ours["n_items"] == official["n_items"]


def test_parser_builds() -> None:
    assert build_parser().prog == "sessbench"


def test_run_without_models_says_what_it_runs(tmp_path, capsys) -> None:
    """The default model list is named on stderr, with how to get the variants too."""
    code = main(["--quiet", "run", "--dataset", "synthetic:n_items=60,n_sessions=200", "--runs-dir", str(tmp_path), "--plan"])
    assert code == 0
    err = capsys.readouterr().err
    assert "no --models given: running 'paper,simple'" in err and "--models all adds the five SR-GNN variants" in err

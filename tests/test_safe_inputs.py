"""Bad input gets a clear error: one paragraph naming the file, line or key and the fix, exit code 2,
no traceback (unless --debug). And nothing unsafe is loaded: a static scan of the sources.

The number of bad inputs tried is printed at the end of this module (run with `-s`):
    python -m pytest tests/test_safe_inputs.py -q -s | grep "BAD INPUTS"
"""

from __future__ import annotations

import csv
import errno
import gzip
import io
import json
import os
import pickle
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

import faultkit  # noqa: F401  (registers the test-only models)
from faultkit import SMALL
from sessbench.cli import main
from sessbench.results import iter_records

REPO = Path(__file__).resolve().parents[1]
YC_OK = "1,2014-04-07T10:51:09.277Z,214536502,0\n1,2014-04-07T10:52:10.999Z,214536503,0\n"
TRIED: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def _print_count():
    yield
    print(f"\nBAD INPUTS tried: {len(TRIED)} ({', '.join(TRIED)})")


class Marker:
    """A pickle whose loading would create a file (proof that code ran)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "pwned"))


@dataclass
class Case:
    name: str
    argv: Callable[[Path], list[str]]  # tmp_path -> arguments after the global options
    expect: list[str]  # fragments of the message: what, where (file, line or key), the fix
    setup: Callable[[Path], None] = lambda tmp: None
    extra: dict = field(default_factory=dict)


def _file(name: str, data: str | bytes) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        path = tmp / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())

    return make


def _yaml(text: str, name: str = "exp.yaml") -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).write_text(text)


def _run(tmp: Path, *args: str) -> list[str]:
    return ["run", "--runs-dir", str(tmp / "runs"), "--cache-dir", str(tmp / "cache"), *args]


def _yoochoose(tmp: Path) -> list[str]:
    return _run(tmp, "--models", "pop", "--dataset", "yoochoose64", "--data-dir", str(tmp / "data"))


def _clicks(tmp: Path, *params: str) -> list[str]:
    extra = [a for p in params for a in ("--dataset-param", p)]
    return _run(tmp, "--models", "pop", "--dataset", f"clicks:{tmp / 'data' / 'log.csv'}", *extra)


def _model_file(tmp: Path) -> None:
    (tmp / "configs" / "models").mkdir(parents=True)
    (tmp / "configs" / "models" / "test-embedding.yaml").write_text("defaults:\n  epochs: 1\ndatasets:\n  yoochose64: {}\n")


def _malicious_official(tmp: Path) -> None:
    folder = tmp / "official"
    folder.mkdir()
    (folder / "train.txt").write_bytes(pickle.dumps(([[1], [2]], Marker(tmp / "pwned.txt"))))
    (folder / "test.txt").write_bytes(pickle.dumps(([[1]], [2])))


def _alias_bomb(levels: int = 9) -> list[str]:
    """A YAML "billion laughs": each anchor lists the previous one 9 times (9**9 strings from ~400 bytes)."""
    parts = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        parts.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return parts


def _a_file(name: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).write_text("a file, not a folder\n")


CASES = [
    Case("unknown model", lambda t: _run(t, "--models", "spop"), ["unknown model or group 'spop'", "Did you mean 's-pop'", "sessbench models"]),
    Case("unknown dataset", lambda t: _run(t, "--models", "pop", "--dataset", "digenetica"), ["unknown dataset 'digenetica'", "Did you mean 'diginetica'"]),
    Case("unknown dataset parameter", lambda t: _run(t, "--models", "pop", "--dataset", "synthetic:n_itmes=5"), ["n_itmes"]),
    Case("unknown config key", lambda t: _run(t, "--config", str(t / "exp.yaml")), ["exp.yaml, line 2: unknown key 'modles'", "Did you mean 'models'"],
         _yaml("seeds: [0]\nmodles: pop\n")),
    Case("config value of the wrong type", lambda t: _run(t, "--config", str(t / "exp.yaml")), ["exp.yaml, line 2", "'seeds' must be", "Write it like 'seeds: [0, 1, 2]'"],
         _yaml("models: pop\nseeds: three\n")),
    Case("config list of the wrong type", lambda t: _run(t, "--config", str(t / "exp.yaml")), ["exp.yaml, line 1", "datasets must be a non-empty list"],
         _yaml("datasets: [synthetic, 3]\n")),
    Case("invalid YAML", lambda t: _run(t, "--config", str(t / "exp.yaml")), ["exp.yaml, line", "invalid YAML", "Fix the syntax"],
         _yaml("models: [pop\nseeds: 1\n")),
    Case("hyperparameter of the wrong type", lambda t: _run(t, "--config", str(t / "exp.yaml")),
         ["exp.yaml, line 4", "test-embedding.embedding_dim must be int", "Write it like 'embedding_dim: 8'"],
         _yaml("models: [test-embedding]\nparams:\n  test-embedding:\n    embedding_dim: big\n")),
    Case("unknown hyperparameter", lambda t: _run(t, "--models", "pop", "--set", "pop.alpha=1"), ["--set", "has no hyperparameter 'alpha'"]),
    Case("unknown dataset in a model file", lambda t: _run(t, "--models", "test-embedding", "--config-dir", str(t / "configs")),
         ["test-embedding.yaml, line 4: unknown dataset 'yoochose64'", "Did you mean 'yoochoose64'"], _model_file),
    Case("device the machine lacks", lambda t: _run(t, "--models", "pop", "--device", "cuda:7"), ["device 'cuda:7'", "--device"]),
    Case("raw file missing", _yoochoose, ["yoochoose-clicks.dat", "not found", "Download"], lambda t: (t / "data").mkdir()),
    Case("wrong delimiter", _yoochoose, ["yoochoose-clicks.dat, line 1", "';'-separated", "comma-separated"],
         _file("yoochoose-clicks.dat", YC_OK.replace(",", ";"))),
    Case("unparsable timestamp", _yoochoose, ["yoochoose-clicks.dat, line 3", "'2014-13-45 noon'", "timestamps like"],
         _file("yoochoose-clicks.dat", YC_OK + "2,2014-13-45 noon,214536502,0\n")),
    Case("empty file", _yoochoose, ["yoochoose-clicks.dat", "the file is empty", "download"], _file("yoochoose-clicks.dat", "")),
    Case("gzip file passed as text", _yoochoose, ["yoochoose-clicks.dat", "gzip archive", "gunzip yoochoose-clicks.dat"],
         _file("yoochoose-clicks.dat", gzip.compress(YC_OK.encode()))),
    Case("7z file passed as text", _yoochoose, ["yoochoose-clicks.dat", "7z archive", "7z x"],
         _file("yoochoose-clicks.dat", b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 32)),
    Case("missing column", lambda t: _clicks(t), ["log.csv, line 1", "'timestamp' not found", "needs a header line"],
         _file("log.csv", "session_id,item_id,time\n1,2,3\n")),
    Case("sessions with a single click", lambda t: _clicks(t), ["log.csv", "a single click each", "session column"],
         _file("log.csv", "session_id,item_id,timestamp\n" + "".join(f"{s},{s % 7},{1400000000 + s}\n" for s in range(50)))),
    Case("item universe too large (declared estimate)", lambda t: _run(t, "--models", "test-huge,pop", "--dataset", SMALL),
         ["model 'test-huge'", "80 items", "needs about", "free", "Nothing was trained", "--no-memory-check"]),
    Case("item universe too large (embedding table)", lambda t: _run(t, "--models", "test-embedding", "--dataset", SMALL, "--set", "test-embedding.embedding_dim=1000000000"),
         ["model 'test-embedding'", "item table and optimizer state", "--set test-embedding.embedding_dim="]),
    Case("malicious pickle", lambda t: ["data", "import-official", str(t / "official"), "--cache-dir", str(t / "cache")],
         ["train.txt", "pathlib.Path.write_text", "rejected and nothing in it was executed"], _malicious_official),
    Case("official dataset never imported", lambda t: _run(t, "--models", "pop", "--dataset", "official:nope"),
         ["no imported dataset 'nope'", "sessbench data import-official DIR --name nope"]),
    # bounded parsing: a few hundred bytes must not take minutes or gigabytes
    Case("YAML alias bomb", lambda t: _run(t, "--config", str(t / "exp.yaml")),
         ["exp.yaml, line", "expands to more than 100,000 values through its aliases", "without nesting anchors"],
         _yaml("\n".join(_alias_bomb()) + "\n")),
    Case("YAML alias into itself", lambda t: _run(t, "--config", str(t / "exp.yaml")),
         ["exp.yaml, line 1", "refers to itself through an alias"], _yaml("seeds: &s [0, *s]\n")),
    Case("YAML nested too deeply", lambda t: _run(t, "--config", str(t / "exp.yaml")),
         ["exp.yaml", "nest"], _yaml("params: " + "[" * 5000 + "]" * 5000 + "\n")),
    Case("alias bomb in --set", lambda t: _run(t, "--models", "pop", "--set", "pop.x={" + ", ".join(_alias_bomb()) + "}"),
         ["--set 'pop.x=", "expands to more than"]),
    Case("alias bomb in --dataset-param", lambda t: _run(t, "--models", "pop", "--dataset", "clicks:x.csv", "--dataset-param",
                                                         "sep={" + ", ".join(_alias_bomb()) + "}"),
         ["--dataset-param", "expands to more than"]),
    Case("synthetic size beyond any memory", lambda t: _run(t, "--models", "pop", "--dataset", "synthetic:n_sessions=1000000000000000"),
         ["synthetic dataset (n_sessions=1,000,000,000,000,000", "needs about", "available", "Fix: lower n_sessions"]),
    Case("synthetic item universe beyond any memory", lambda t: _run(t, "--models", "pop", "--dataset", "synthetic:n_items=10000000000000,n_intents=1000"),
         ["n_items=10,000,000,000,000 with n_intents=1,000", "Fix: lower n_items"]),
    Case("synthetic seed below 0", lambda t: _run(t, "--models", "pop", "--dataset", "synthetic:seed=-1"), ["seed must be >= 0"]),
    # the environment: folders that cannot be written
    Case("runs dir is a file", lambda t: _run(t, "--models", "pop", "--dataset", SMALL), ["--runs-dir", "is a file, not a folder", "pass a folder"],
         _a_file("runs")),
    Case("runs dir under a file", lambda t: ["run", "--runs-dir", str(t / "f" / "runs"), "--cache-dir", str(t / "cache"), "--models", "pop", "--dataset", SMALL],
         ["--runs-dir", "f is a file, not a folder"], _a_file("f")),
    Case("cache dir is a file", lambda t: _run(t, "--models", "pop", "--dataset", SMALL), ["--cache-dir", "cache is a file, not a folder"],
         _a_file("cache")),
    Case("checkpoint dir is a file", lambda t: _run(t, "--models", "pop", "--dataset", SMALL, "--checkpoint-dir", str(t / "ck")),
         ["--checkpoint-dir", "ck is a file, not a folder"], _a_file("ck")),
    Case("cache dir is a file (data prepare)", lambda t: ["data", "prepare", SMALL, "--cache-dir", str(t / "cache")],
         ["--cache-dir", "cache is a file, not a folder"], _a_file("cache")),
    # names that would become paths
    Case("dataset path with a control character", lambda t: _run(t, "--models", "pop", "--dataset", "clicks:log\x1b[31m.csv"),
         ["dataset 'clicks:log\\x1b[31m.csv' contains control characters (\\x1b)", "remove them"]),
    Case("dataset path with a newline", lambda t: _run(t, "--models", "pop", "--dataset", "clicks:a\nb.csv"), ["control characters (\\n)"]),
    Case("empty dataset name", lambda t: _run(t, "--models", "pop", "--dataset", ""), ["empty dataset"]),
    Case("official name with a separator", lambda t: _run(t, "--models", "pop", "--dataset", "official:../x"), ["--name '../x'"]),
    # values that cannot mean what the user wants
    Case("time budget NaN", lambda t: _run(t, "--models", "pop", "--time-budget", "nan"), ["--time-budget", "positive, finite", "got nan"]),
    Case("time budget infinite", lambda t: _run(t, "--models", "pop", "--time-budget", "inf"), ["--time-budget", "got inf"]),
    Case("time budget negative", lambda t: _run(t, "--models", "pop", "--time-budget", "-5"), ["--time-budget", "got -5"]),
    Case("timeout NaN", lambda t: _run(t, "--models", "pop", "--timeout", "nan"), ["--timeout", "positive, finite"]),
    Case("huge seed", lambda t: _run(t, "--models", "pop", "--seeds", str(10**30)), ["--seeds", "from 0 to 4294967295"]),
    Case("seed just above numpy's range", lambda t: _run(t, "--models", "pop", "--seeds", f"0,{2**32}"), ["--seeds", "from 0 to 4294967295"]),
    Case("negative seed", lambda t: _run(t, "--models", "pop", "--seeds", "-1"), ["--seeds", "from 0 to 4294967295"]),
    Case("huge --save-recs", lambda t: _run(t, "--models", "pop", "--save-recs", str(10**30)), ["--save-recs", "from 1 to 10,000"]),
    Case("huge --recs-cap", lambda t: _run(t, "--models", "pop", "--save-recs", "5", "--recs-cap", str(10**30)), ["--recs-cap", "from 1 to 1,000"]),
    Case("huge --jobs", lambda t: _run(t, "--models", "pop", "--jobs", str(10**9)), ["--jobs must be at most 1,024"]),
    Case("huge --threads", lambda t: _run(t, "--models", "pop", "--threads", str(10**30)), ["--threads must be at most 1,024"]),
    Case("config time budget NaN", lambda t: _run(t, "--config", str(t / "exp.yaml")), ["exp.yaml, line 2", "time_budget_s must be a positive, finite"],
         _yaml("models: pop\ntime_budget_s: .nan\n")),
    Case("config time budget infinite", lambda t: _run(t, "--config", str(t / "exp.yaml")), ["exp.yaml, line 1", "time_budget_s must be"],
         _yaml("time_budget_s: .inf\n")),
    Case("config huge seed", lambda t: _run(t, "--config", str(t / "exp.yaml")), ["exp.yaml, line 1", "seeds must be integers from 0 to 4294967295"],
         _yaml(f"seeds: [0, {10**30}]\n")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_a_clear_error(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case.setup(tmp_path)
    code = main(["--quiet", *case.argv(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    message = err.split("sessbench: error: ", 1)[1]
    assert message.count("\n") == 1, message  # one paragraph
    for fragment in case.expect:
        assert fragment in message, f"{fragment!r} not in: {message}"
    assert not list(iter_records(tmp_path / "runs")), "a bad input must stop the grid before any run"
    assert not (tmp_path / "pwned.txt").exists()
    TRIED.append(case.name)


def _expect_one_paragraph(code: int, err: str, fragments: list[str]) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    message = err.split("sessbench: error: ", 1)[1]
    assert message.count("\n") == 1, message  # one paragraph
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"
    return message


def _os_error(code: int, path: object = None) -> OSError:
    return OSError(code, os.strerror(code), None if path is None else str(path))


def _refuse_probe_in(folder_name: str, code: int) -> Callable[[Path], None]:
    """A probe write that fails (as a read-only disk, a full disk or missing permissions would)
    in the folder named `folder_name` only: root ignores chmod, so the fault is injected."""
    from sessbench import storage

    real = storage.probe_writable

    def probe(folder: Path) -> None:
        if Path(folder).name == folder_name:
            raise _os_error(code)
        real(folder)

    return probe


def _folders(tmp: Path) -> None:
    (tmp / "runs").mkdir()
    (tmp / "cache").mkdir()


@dataclass
class EnvCase:
    name: str
    patch: Callable[[pytest.MonkeyPatch, Path], None]
    argv: Callable[[Path], list[str]]
    expect: list[str]
    setup: Callable[[Path], None] = _folders


def _patch(target: str, replacement: Callable[[Path], object]) -> Callable[[pytest.MonkeyPatch, Path], None]:
    return lambda mp, tmp: mp.setattr(target, replacement(tmp))


def _raiser(code: int) -> Callable[[Path], Callable[..., None]]:
    def make(tmp: Path) -> Callable[..., None]:
        def fail(path: object, *args: object, **kwargs: object) -> None:
            raise _os_error(code, path)

        return fail

    return make


ENV_CASES = [
    EnvCase("raw file unreadable (permission denied)", _patch("sessbench.data.sources.sha256_file", _raiser(errno.EACCES)),
            _yoochoose, ["cannot read the data file", "yoochoose-clicks.dat: Permission denied", "fix its permissions"],
            lambda t: (_folders(t), _file("yoochoose-clicks.dat", YC_OK)(t))),
    EnvCase("raw file unreadable when parsed", _patch("sessbench.data.readers._sniff", _raiser(errno.EACCES)),
            _yoochoose, ["cannot access", "yoochoose-clicks.dat: Permission denied", "Finished runs are kept", "--resume"],
            lambda t: (_folders(t), _file("yoochoose-clicks.dat", YC_OK)(t))),
    EnvCase("read-only runs dir", lambda mp, t: mp.setattr("sessbench.storage.probe_writable", _refuse_probe_in("runs", errno.EROFS)),
            lambda t: _run(t, "--models", "pop", "--dataset", SMALL),
            ["--runs-dir", "runs cannot be written: Read-only file system", "writable disk", "or pass another --runs-dir"]),
    EnvCase("runs dir without write permission", lambda mp, t: mp.setattr("sessbench.storage.probe_writable", _refuse_probe_in("runs", errno.EACCES)),
            lambda t: _run(t, "--models", "pop", "--dataset", SMALL), ["--runs-dir", "Permission denied", "chmod"]),
    EnvCase("runs dir on a full disk", lambda mp, t: mp.setattr("sessbench.storage.probe_writable", _refuse_probe_in("runs", errno.ENOSPC)),
            lambda t: _run(t, "--models", "pop", "--dataset", SMALL), ["--runs-dir", "No space left on device", "free space"]),
    EnvCase("runs dir to be created on a read-only disk", lambda mp, t: mp.setattr("sessbench.storage.probe_writable", _refuse_probe_in("ro", errno.EROFS)),
            lambda t: ["run", "--runs-dir", str(t / "ro" / "runs"), "--cache-dir", str(t / "cache"), "--models", "pop", "--dataset", SMALL],
            ["--runs-dir", "cannot be written (tried in", "where it would be created", "Read-only file system"],
            lambda t: (_folders(t), (t / "ro").mkdir())),
    EnvCase("read-only cache dir", lambda mp, t: mp.setattr("sessbench.storage.probe_writable", _refuse_probe_in("cache", errno.EROFS)),
            lambda t: _run(t, "--models", "pop", "--dataset", SMALL), ["--cache-dir", "cache cannot be written: Read-only file system"]),
    EnvCase("read-only checkpoint dir", lambda mp, t: mp.setattr("sessbench.storage.probe_writable", _refuse_probe_in("ck", errno.EROFS)),
            lambda t: _run(t, "--models", "pop", "--dataset", SMALL, "--checkpoint-dir", str(t / "ck")),
            ["--checkpoint-dir", "Read-only file system"], lambda t: (_folders(t), (t / "ck").mkdir())),
]


@pytest.mark.parametrize("case", ENV_CASES, ids=[c.name for c in ENV_CASES])
def test_environment_fault_gets_a_clear_error(
    case: EnvCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreadable file, a folder that cannot be written: one paragraph and exit 2, not a traceback."""
    case.setup(tmp_path)
    case.patch(monkeypatch, tmp_path)
    code = main(["--quiet", *case.argv(tmp_path)])
    _expect_one_paragraph(code, capsys.readouterr().err, case.expect)
    assert not list(iter_records(tmp_path / "runs"))
    TRIED.append(case.name)


def test_other_os_errors_keep_their_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the machine's state is told as a user error; an OSError sessbench did not expect is a bug."""
    _folders(tmp_path)
    monkeypatch.setattr("sessbench.data.sources.sha256_file", _raiser(errno.EBADF)(tmp_path))
    _file("yoochoose-clicks.dat", YC_OK)(tmp_path)
    with pytest.raises(OSError, match="Bad file descriptor"):
        main(["--quiet", *_yoochoose(tmp_path)])


def test_synthetic_size_is_checked_against_the_memory_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A size that does not fit is refused before generation, naming the parameter; one that fits runs."""
    from sessbench.data import synthetic

    calls: list[int] = []
    real = synthetic.SyntheticGenerator.__init__
    monkeypatch.setattr(synthetic.SyntheticGenerator, "__init__", lambda self, c: (calls.append(1), real(self, c))[1])
    monkeypatch.setattr("sessbench.host_memory.available_bytes", lambda device: 64 * 2**20)  # a 64 MiB machine
    big = "synthetic:n_sessions=200000"  # about 110 MiB to generate
    code = main(["--quiet", *_run(tmp_path, "--models", "pop", "--dataset", big)])
    message = _expect_one_paragraph(code, capsys.readouterr().err, [
        "synthetic dataset (n_sessions=200,000", "needs about", "only 64.0 MiB is available", "Fix: lower n_sessions (at most about",
    ])
    fits = int(re.search(r"at most about ([\d,]+) fit", message).group(1).replace(",", ""))
    assert 50_000 < fits < 200_000
    wide = "synthetic:n_items=100000,n_intents=40"
    code = main(["--quiet", *_run(tmp_path, "--models", "pop", "--dataset", wide)])
    _expect_one_paragraph(code, capsys.readouterr().err, ["n_items=100,000 with n_intents=40", "Fix: lower n_items"])
    assert calls == [], "nothing was generated"
    with pytest.raises(Exception, match="needs about"):
        synthetic.build_synthetic(synthetic.SyntheticConfig(n_sessions=200_000))  # the library path checks too
    assert main(["--quiet", *_run(tmp_path, "--models", "pop", "--dataset", SMALL)]) == 0  # a small one still runs
    assert calls
    TRIED.extend(["synthetic sessions beyond the memory available", "synthetic items beyond the memory available"])


def test_synthetic_memory_estimate_is_on_the_safe_side() -> None:
    """The estimate covers the measured peak of generation (tracemalloc sees numpy's buffers)."""
    import tracemalloc

    from sessbench.data.synthetic import SyntheticConfig, build_synthetic

    config = SyntheticConfig(n_sessions=30_000, n_items=3_000)
    tracemalloc.start()
    try:
        build_synthetic(config)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = sum(config.memory_parts().values())
    assert peak <= estimate <= 3 * peak, (peak, estimate)


BAD_MODEL_NAMES = ["../../../escaped", "sub/dir", "back\\slash", "..", "two\nlines", "bidi\u202eevil", ""]


def test_a_plugin_name_cannot_write_outside_the_runs_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sessbench import models
    from sessbench.data.registry import parse_dataset
    from sessbench.planning import RunSpec
    from sessbench.results import record_path

    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))  # the bad names go with the test
    for i, bad in enumerate(BAD_MODEL_NAMES):
        models.register_model(bad, groups=(f"test-bad-name-{i}",))(type(f"Bad{i}", (faultkit.Sleepy,), {}))
    runs = tmp_path / "a" / "b" / "c" / "runs"
    for i, bad in enumerate(BAD_MODEL_NAMES):
        code = main(["--quiet", "run", "--models", f"test-bad-name-{i}", "--dataset", SMALL, "--runs-dir", str(runs),
                     "--cache-dir", str(tmp_path / "cache")])
        _expect_one_paragraph(code, capsys.readouterr().err, [f"model name {bad!r} (registered by ", "cannot be used", "Fix: rename it"])
        TRIED.append(f"plugin named {bad!r}")
    assert not [p for p in tmp_path.rglob("*") if "escaped" in p.name or p.suffix == ".json"]
    # a spec nobody checked still gets a plain file name inside the runs directory
    for bad in BAD_MODEL_NAMES:
        run_id = RunSpec(bad, parse_dataset(SMALL), 0, "validated").run_id
        assert "/" not in run_id and "\\" not in run_id and ".." not in run_id and run_id.isprintable()
        assert record_path(runs, run_id).parent == runs


def test_summary_marks_runs_stopped_by_the_time_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sessbench.report.tables import stopped_by_budget

    argv = ["--quiet", "run", "--models", "test-embedding", "--set", "test-embedding.epochs=500", "--dataset", SMALL]
    assert main([*argv, "--runs-dir", str(tmp_path / "free")]) == 0
    assert "stopped early" not in capsys.readouterr().out  # nothing stopped: no column
    assert main([*argv, "--runs-dir", str(tmp_path / "budget"), "--time-budget", "0.05"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("dataset"))
    assert header.rstrip().endswith("stopped early")
    marks = {line.split()[1]: line.split()[-1] for line in lines if line.startswith("synthetic:")}
    assert marks == {"oracle": "0", "pop": "0", "test-embedding": "1"}, out
    assert "1 run(s) were stopped early by the time budget" in err
    stopped = [r["model"] for r in iter_records(tmp_path / "budget") if stopped_by_budget(r)]
    assert stopped == ["test-embedding"]


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "run", "--models", "spop", "--runs-dir", str(tmp_path)]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_memory_check_does_not_refuse_what_fits(tmp_path: Path) -> None:
    assert main(["--quiet", "run", "--models", "test-embedding,pop", "--dataset", SMALL, "--runs-dir", str(tmp_path)]) == 0
    assert main(["--quiet", "run", "--models", "test-huge", "--dataset", SMALL, "--runs-dir", str(tmp_path / "x"),
                 "--no-memory-check"]) == 1  # skipped check: it trains (and fails as it must)


def test_a_plugin_that_fails_to_import_leaves_the_others_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from importlib.metadata import EntryPoint

    from sessbench import models

    real = list(models.entry_points(group=models.ENTRY_POINT_GROUP))
    broken = EntryPoint("broken", "sessbench_no_such_plugin_module", models.ENTRY_POINT_GROUP)
    monkeypatch.setattr(models, "entry_points", lambda group: [broken, *real])
    monkeypatch.setattr(models, "_PLUGIN_ERRORS", {})
    monkeypatch.setattr(models, "_PLUGINS_LOADED", False)
    assert main(["--quiet", "run", "--models", "pop", "--dataset", SMALL, "--runs-dir", str(tmp_path)]) == 0
    warning = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "model plugin 'broken'" in warning and "No module named 'sessbench_no_such_plugin_module'" in warning
    assert {r["model"] for r in iter_records(tmp_path)} == {"oracle", "pop"}
    assert main(["models"]) == 0
    assert "plugin 'broken' failed to import" in capsys.readouterr().err
    # asking for a model of the broken plugin names the import error
    assert main(["--quiet", "run", "--models", "gone", "--runs-dir", str(tmp_path)]) == 2
    assert "Plugins that failed to import: broken" in capsys.readouterr().err
    TRIED.append("plugin whose import fails")


# ---------------------------------------------------------------------------- safe by default
SOURCES = sorted(p for d in ("sessbench", "baselines", "srgnn") for p in (REPO / d).rglob("*.py"))
FORBIDDEN = [
    (r"\bpickle\.loads?\(|\bcPickle\b|\bdill\.|\bjoblib\.load\(|\bshelve\.", "unpickles data"),
    (r"allow_pickle\s*=\s*True", "lets numpy unpickle"),
    (r"\byaml\.(load|unsafe_load|full_load|load_all)\(|yaml\.(Unsafe|Full)?Loader\b", "reads YAML with an unsafe loader"),
    (r"weights_only\s*=\s*False", "loads a checkpoint with pickle"),
]


def _calls(text: str, name: str) -> list[str]:
    """The argument text of every call to `name` (balanced parentheses)."""
    out = []
    for match in re.finditer(re.escape(name) + r"\(", text):
        depth, i = 1, match.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        out.append(text[match.end() : i - 1])
    return out


def test_sources_never_unpickle_untrusted_data() -> None:
    assert len(SOURCES) > 20
    problems = []
    for path in SOURCES:
        text = path.read_text()
        for pattern, why in FORBIDDEN:
            for match in re.finditer(pattern, text):
                line = text[: match.start()].count("\n") + 1
                problems.append(f"{path.relative_to(REPO)}:{line} {why}")
        for args in _calls(text, "torch.load"):
            if not re.search(r"weights_only\s*=\s*True", args):
                problems.append(f"{path.relative_to(REPO)}: torch.load without weights_only=True")
    assert not problems, "\n".join(problems)


def test_the_scan_catches_what_it_should() -> None:
    text = "x = torch.load(path, map_location='cpu')\ny = pickle.load(fh)\nz = yaml.load(s, Loader=yaml.Loader)\n"
    assert _calls(text, "torch.load") == ["path, map_location='cpu'"]
    assert re.search(FORBIDDEN[0][0], text) and re.search(FORBIDDEN[2][0], text)


def test_report_writers_survive_odd_strings(tmp_path: Path) -> None:
    """Names with pipes, newlines, commas, quotes and markup keep the Markdown and CSV tables intact."""
    runs = tmp_path / "runs"
    assert main(["--quiet", "run", "--models", "pop", "--dataset", SMALL, "--runs-dir", str(runs)]) == 0
    odd = 'po|p, "x"\n<script>alert(1)</script>'
    for path in runs.glob("*pop*.json"):
        rec = json.loads(path.read_text())
        rec["model"] = odd
        rec["run_id"] += "-odd"
        (runs / f"{rec['run_id']}.json").write_text(json.dumps(rec))
        shutil.copy(runs / rec["ranks_file"], runs / f"{rec['run_id']}.ranks.npz")
        rec["ranks_file"] = f"{rec['run_id']}.ranks.npz"
        (runs / f"{rec['run_id']}.json").write_text(json.dumps(rec))
    out = tmp_path / "report"
    assert main(["report", "--runs-dir", str(runs), "--out", str(out)]) == 0
    rows = list(csv.reader(io.StringIO((out / "comparison.csv").read_text())))
    assert len({len(r) for r in rows}) == 1 and any(odd in cell for r in rows for cell in r)
    for md in [out / "comparison.md", *sorted((out / "tables").glob("*.md"))] if (out / "tables").is_dir() else [out / "comparison.md"]:
        lines = [line for line in md.read_text().splitlines() if line.startswith("|")]
        widths = {len(re.findall(r"(?<!\\)\|", line)) for line in lines}
        assert len(widths) <= 1, f"{md.name}: a row has a different number of cells"
        assert "<script>" not in md.read_text()


"""Faults survived, nothing lost: SIGKILL at chosen points, failing runs, concurrent grids, claims.

The figures the issue asks for are printed at the end of this module (run with `-s`):
    python -m pytest tests/test_faults.py -q -s | grep "FAULT FIGURES"
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from faultkit import SMALL, SMALL2, all_files, cli_process, comparable, ranks, run_cli
from sessbench.claims import PROBLEM, Claims, boot_id, claim_path, process_start
from sessbench.cli import main
from sessbench.faults import ENV_VAR
from sessbench.results import iter_records, read_record

GRID = ["--quiet", "run", "--models", "pop,s-pop", "--dataset", SMALL, "--dataset", SMALL2]
N_RUNS = 6  # oracle, pop and s-pop on each of two datasets
FIGURES = {
    "kill points tried": 0, "runs recovered": 0, "records compared": 0, "kills with stale claim or temp file": 0,
    "disk faults survived": 0, "claims resolved at once": 0,
}


@pytest.fixture(scope="module", autouse=True)
def _print_figures():
    yield
    print("\nFAULT FIGURES: " + ", ".join(f"{k}: {v}" for k, v in FIGURES.items()))


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted grid, in this process."""
    runs = tmp_path_factory.mktemp("reference")
    assert main([*GRID, "--runs-dir", str(runs)]) == 0
    assert len(list(iter_records(runs))) == N_RUNS
    return runs


def assert_nothing_half_written(runs: Path) -> int:
    """Every file a reader would pick up is complete; returns the number of records."""
    records = 0
    for path in runs.rglob("*"):
        if path.name.startswith(".") or path.is_dir():
            continue  # temp files, claims and the lock: never read as results
        if path.suffix == ".json":
            rec = read_record(path)
            assert rec is not None and rec["status"] == "ok" and "metrics" in rec, path.name
            records += 1
        else:
            with np.load(path, allow_pickle=False) as npz:
                expected = {"session", "repeat"} if path.parent.name == "splits" else {"greater", "equal"}
                assert expected <= set(npz.files), path.name
    return records


def _note_leftovers(runs: Path) -> None:
    """Count kills that left a temp file or a claim behind (the resume must clean them up)."""
    if runs.exists() and any(p.name.endswith((".tmp", ".claim")) for p in runs.iterdir()):
        FIGURES["kills with stale claim or temp file"] += 1


# SIGKILL at these points (the N-th time each is reached), then --resume
KILL_POINTS = [
    ("runner.before-fit=1", 0),  # before the first run trains: nothing written yet
    ("atomic.before-rename.npz=2", 0),  # the second split's example table complete in a temp file
    ("atomic.before-rename.npz=4", 1),  # run 2's rank counts complete in a temp file, not renamed
    ("runner.after-ranks=3", 2),  # run 3's rank counts written, its record not
    ("atomic.before-rename.json=4", 3),  # run 4's record complete in a temp file, not renamed
    ("runner.after-record=5", 5),  # the last record written, its claim not released
    ("runner.after-collect=2", 2),  # the coordinator has run 2's record, claim not released
]


@pytest.mark.parametrize("point, records_before", KILL_POINTS, ids=[p for p, _ in KILL_POINTS])
def test_sigkill_then_resume_gives_the_uninterrupted_records(
    point: str, records_before: int, reference: Path, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    code = run_cli([*GRID, "--runs-dir", str(runs)], tmp_path / "killed.log", env={ENV_VAR: point})
    assert code == -signal.SIGKILL, (tmp_path / "killed.log").read_text()
    assert assert_nothing_half_written(runs) == records_before
    _note_leftovers(runs)

    assert main([*GRID, "--runs-dir", str(runs), "--resume"]) == 0
    assert comparable(runs) == comparable(reference)
    assert ranks(runs) == ranks(reference)
    assert all_files(runs) == all_files(reference), "no temp file or claim left behind"
    assert all_files(runs / "splits") == all_files(reference / "splits")
    FIGURES["kill points tried"] += 1
    FIGURES["runs recovered"] += N_RUNS - records_before
    FIGURES["records compared"] += N_RUNS


@pytest.mark.slow
def test_killed_process_pool_grid_resumes(reference: Path, tmp_path: Path) -> None:
    """--jobs 2: the coordinator dies with runs in flight; its run processes die with it."""
    runs = tmp_path / "runs"
    argv = [*GRID, "--runs-dir", str(runs), "--jobs", "2"]
    code = run_cli(argv, tmp_path / "killed.log", env={ENV_VAR: "runner.after-collect=3"})
    assert code == -signal.SIGKILL
    before = assert_nothing_half_written(runs)
    _note_leftovers(runs)
    time.sleep(0.5)  # an orphaned run process would write now
    assert assert_nothing_half_written(runs) == before < N_RUNS
    assert main([*argv, "--resume"]) == 0
    assert comparable(runs) == comparable(reference)
    assert all_files(runs) == all_files(reference)
    FIGURES["kill points tried"] += 1
    FIGURES["runs recovered"] += N_RUNS - before
    FIGURES["records compared"] += N_RUNS


_RNG = np.random.default_rng(7)
RANDOM_KILLS = [(int(_RNG.integers(0, N_RUNS)), float(_RNG.uniform(0, 0.15))) for _ in range(8)]


@pytest.mark.slow
@pytest.mark.parametrize("after_records, offset", RANDOM_KILLS, ids=[f"{n}+{o:.3f}s" for n, o in RANDOM_KILLS])
def test_sigkill_at_random_moments_of_a_real_cli_process(
    after_records: int, offset: float, reference: Path, tmp_path: Path
) -> None:
    """The real `sessbench` command, killed by the clock (a random moment after the N-th record)."""
    import subprocess
    import sys

    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "sessbench.cli", *GRID, "--runs-dir", str(runs)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if runs.exists() and len(list(runs.glob("*.json"))) >= after_records:
            break
        time.sleep(0.005)
    time.sleep(offset)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = assert_nothing_half_written(runs) if runs.exists() else 0
    _note_leftovers(runs)
    subprocess.run([*cmd, "--resume"], check=True, capture_output=True, timeout=300)
    assert comparable(runs) == comparable(reference)
    assert ranks(runs) == ranks(reference)
    assert all_files(runs) == all_files(reference)
    FIGURES["kill points tried"] += 1
    FIGURES["runs recovered"] += N_RUNS - before
    FIGURES["records compared"] += N_RUNS


# ---------------------------------------------------------------------------- failures
def test_failures_are_recorded_with_their_reason_and_the_grid_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    marker = tmp_path / "died-once"
    argv = [
        "--quiet", "run", "--models", "test-raises,test-oom,test-crash,test-sleepy,test-crash-once,pop",
        "--dataset", SMALL, "--runs-dir", str(runs), "--jobs", "2", "--timeout", "2",
        "--set", "test-sleepy.seconds=60", "--set", f"test-crash-once.marker={marker}",
    ]
    assert main(argv) == 1  # some runs failed: exit code 1, not a crash
    records = {r["model"]: r for r in iter_records(runs)}
    assert set(records) == {"oracle", "pop", "test-raises", "test-oom", "test-crash", "test-sleepy", "test-crash-once"}
    reasons = {m: r["error"]["reason"] for m, r in records.items() if r["status"] == "failed"}
    assert reasons == {
        "test-raises": "exception", "test-oom": "out_of_memory", "test-crash": "worker_died", "test-sleepy": "timeout",
    }
    assert "deliberate failure" in records["test-raises"]["error"]["traceback"]
    assert "SIGKILL" in records["test-crash"]["error"]["message"] and records["test-crash"]["attempts"] == 2
    assert "--timeout 2" in records["test-sleepy"]["error"]["message"]
    # a process that died once is retried, and the retry's result stands
    assert records["test-crash-once"]["status"] == "ok" and records["test-crash-once"]["attempts"] == 2
    assert records["pop"]["status"] == "ok" and records["oracle"]["status"] == "ok"
    text = capsys.readouterr().err
    assert "FAILED (timeout)" in text and "FAILED (worker_died)" in text
    assert not [p for p in runs.iterdir() if p.name.endswith((".tmp", ".claim"))]


def test_out_of_memory_in_process_is_a_failed_record(tmp_path: Path) -> None:
    assert main(["--quiet", "run", "--models", "test-oom,pop", "--dataset", SMALL, "--runs-dir", str(tmp_path)]) == 1
    records = {r["model"]: r for r in iter_records(tmp_path)}
    assert records["test-oom"]["error"]["reason"] == "out_of_memory"
    assert records["test-oom"]["error"]["type"].endswith("MemoryError")
    assert records["pop"]["status"] == "ok"


# ---------------------------------------------------------------------------- concurrency
def test_two_processes_on_one_runs_dir(tmp_path: Path) -> None:
    """Two `sessbench run --resume` at once: complete records, every run executed exactly once."""
    argv = ["--quiet", "run", "--models", "test-sleepy,pop", "--dataset", SMALL, "--seeds", "0,1,2,3,4,5",
            "--set", "test-sleepy.seconds=0.25", "--resume"]
    alone = tmp_path / "alone"
    assert main([*argv, "--runs-dir", str(alone)]) == 0
    shared = tmp_path / "shared"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [cli_process([*argv, "--runs-dir", str(shared)], log) for log in logs]
    for proc in procs:
        proc.join(120)
    assert [p.exitcode for p in procs] == [0, 0], [log.read_text() for log in logs]
    executed = [sum(1 for line in log.read_text().splitlines() if line.lstrip().startswith("[")) for log in logs]
    n_runs = len(list(iter_records(alone)))
    assert sum(executed) == n_runs == 8, executed  # each run once, by one of the two (pop once: seed-free)
    assert min(executed) > 0, "both processes did part of the grid"
    assert comparable(shared) == comparable(alone)
    assert all_files(shared) == all_files(alone)


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def _write_claim(runs: Path, run_id: str, pid: int, host: str | None = None) -> Path:
    path = claim_path(runs, run_id)
    path.write_text(json.dumps({"run_id": run_id, "pid": pid, "host": host or socket.gethostname(), "token": "other"}))
    return path


def _plan_ids(tmp_path: Path) -> list[str]:
    from sessbench.data.registry import parse_dataset
    from sessbench.runner import RunSettings, Runner, plan_runs

    plan = plan_runs(["pop"], [parse_dataset(SMALL)], [0], "validated", lambda m, d: {}, RunSettings())
    return [s.run_id for s in Runner(tmp_path).resolve(plan)]  # ids cover the data's source


def test_claim_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    ids = _plan_ids(tmp_path)
    stale = _write_claim(runs, ids[1], _dead_pid())
    assert main(["--quiet", "run", "--models", "pop", "--dataset", SMALL, "--runs-dir", str(runs)]) == 0
    assert not stale.exists() and len(list(iter_records(runs))) == 2


def test_claim_on_another_host_is_taken_over_when_no_longer_refreshed(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    ids = _plan_ids(tmp_path)
    path = _write_claim(runs, ids[1], 1, host="another-node")
    claims = Claims(runs, stale_after_s=600)
    assert not claims.acquire(ids[1])  # fresh: its holder may be alive on that node
    old = time.time() - 3600
    os.utime(path, (old, old))
    assert claims.acquire(ids[1])  # not refreshed for an hour: abandoned
    assert json.loads(path.read_text())["token"] == claims.token
    claims.close()
    assert not path.exists()


def test_claim_of_a_live_process_is_waited_for(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A run held by a live process is left to it; when that process dies, the run is taken over."""
    import subprocess
    import sys

    runs = tmp_path / "runs"
    runs.mkdir()
    ids = _plan_ids(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    _write_claim(runs, ids[1], holder.pid)
    waited: list[float] = []

    class KillHolderOnceSeen(logging.Handler):
        """When the runner reports the foreign claim, let it wait a little, then kill the holder."""

        def emit(self, record: logging.LogRecord) -> None:
            if "is being run by pid" in record.getMessage() and not waited:
                waited.append(time.time())
                threading.Timer(0.5, lambda: (holder.kill(), holder.wait())).start()

    handler = KillHolderOnceSeen()
    logger = logging.getLogger("sessbench.runner")
    logger.addHandler(handler)
    try:
        with caplog.at_level("INFO", logger="sessbench"):
            assert main(["--quiet", "run", "--models", "pop", "--dataset", SMALL, "--runs-dir", str(runs)]) == 0
    finally:
        logger.removeHandler(handler)
        holder.kill()
        holder.wait()
    assert waited and time.time() - waited[0] >= 0.5  # it waited for the live holder ...
    assert len(list(iter_records(runs))) == 2  # ... then ran the run itself once the holder died
    assert not claim_path(runs, ids[1]).exists()


def test_claims_heartbeat_and_release(tmp_path: Path) -> None:
    with Claims(tmp_path, heartbeat_s=0.05) as claims:
        assert claims.acquire("r1") and claims.acquire("r1")  # re-entrant for its holder
        other = Claims(tmp_path)
        assert not other.acquire("r1")  # held by a live process (this one)
        path = claim_path(tmp_path, "r1")
        old = time.time() - 100
        os.utime(path, (old, old))
        time.sleep(0.3)
        assert time.time() - path.stat().st_mtime < 50  # refreshed by the heartbeat
        other.release("r1")  # not its claim: left alone
        assert path.exists()
    assert not path.exists()  # released on exit


# ---------------------------------------------------------------------------- the cache
def _click_log(path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = ["session_id,item_id,timestamp"]
    for s in range(400):
        for k in range(int(rng.integers(2, 6))):
            rows.append(f"{s},{int(rng.integers(0, 30))},{1_400_000_000 + s * 3600 + k}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("point", ["cache.before-manifest=1", "cache.before-publish=1"])
def test_cache_survives_a_kill_during_preparation(point: str, tmp_path: Path) -> None:
    log_path = _click_log(tmp_path / "log.csv")
    cache = tmp_path / "cache"
    argv = ["--quiet", "data", "prepare", f"clicks:{log_path}", "--cache-dir", str(cache)]
    assert run_cli(argv, tmp_path / "killed.log", env={ENV_VAR: point}) == -signal.SIGKILL
    # only a hidden temp folder is left, never an entry that a later load would trust
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == []
    assert run_cli(argv, tmp_path / "again.log") == 0
    entries = [p for p in cache.iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1 and (entries[0] / "manifest.json").is_file()
    out = tmp_path / "third.log"
    assert run_cli(["data", "prepare", f"clicks:{log_path}", "--cache-dir", str(cache)], out) == 0
    assert "using cached" in out.read_text()  # the rebuilt entry verifies and is used
    FIGURES["kill points tried"] += 1


# ---------------------------------------------------------------------------- the environment
FULL_DISK = [
    ("atomic.before-rename.json=4:ENOSPC", 3),  # run 4's record cannot be written
    ("atomic.before-rename.npz=4:ENOSPC", 1),  # run 2's rank counts (after the two split tables) cannot be written
    ("atomic.before-rename.json=2:EDQUOT", 1),  # the quota, not the disk
]


@pytest.mark.parametrize("point, records_before", FULL_DISK, ids=[p for p, _ in FULL_DISK])
def test_full_disk_stops_the_grid_and_loses_nothing(
    point: str, records_before: int, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A write that fails with ENOSPC (injected: a test cannot fill a disk on demand): exit 2, one
    paragraph saying what is kept and what to do; the finished records are intact; --resume completes."""
    runs = tmp_path / "runs"
    monkeypatch.setattr("sessbench.faults._parsed", ("", {}))  # no hits counted from before
    monkeypatch.setenv(ENV_VAR, point)
    assert main([*GRID, "--runs-dir", str(runs)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = err.split("sessbench: error: ", 1)[1]
    assert message.count("\n") == 1, message
    reason = "Disk quota exceeded" if "EDQUOT" in point else "No space left on device"
    for fragment in (reason, "The grid stopped here", f"the {records_before} record(s) in {runs} are complete and kept",
                     "this run was not recorded", "free space", "rerun the same command with --resume"):
        assert fragment in message, f"{fragment!r} not in {message}"
    assert assert_nothing_half_written(runs) == records_before  # no failed record of the disk's fault either
    assert not [p.name for p in runs.iterdir() if p.name.endswith((".tmp", ".claim"))]
    kept = comparable(runs)
    assert {k: v for k, v in comparable(reference).items() if k in kept} == kept  # intact, equal to the reference

    monkeypatch.delenv(ENV_VAR)
    assert main([*GRID, "--runs-dir", str(runs), "--resume"]) == 0
    assert comparable(runs) == comparable(reference)
    assert ranks(runs) == ranks(reference)
    assert all_files(runs) == all_files(reference)
    FIGURES["disk faults survived"] += 1
    FIGURES["records compared"] += N_RUNS


def test_full_disk_in_a_run_process_stops_the_grid(reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """--jobs 2: the run process that meets the full disk stops the grid; its sibling is stopped too."""
    runs = tmp_path / "runs"
    monkeypatch.setattr("sessbench.faults._parsed", ("", {}))  # no hits counted from before
    monkeypatch.setenv(ENV_VAR, "atomic.before-rename.json=1:ENOSPC")  # each run process's first record
    assert main([*GRID, "--runs-dir", str(runs), "--jobs", "2"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "No space left on device" in err and "--resume" in err
    before = assert_nothing_half_written(runs)
    time.sleep(0.5)  # a run process left running would write now
    assert assert_nothing_half_written(runs) == before < N_RUNS
    monkeypatch.delenv(ENV_VAR)
    assert main([*GRID, "--runs-dir", str(runs), "--resume", "--jobs", "2"]) == 0
    assert comparable(runs) == comparable(reference)
    assert all_files(runs) == all_files(reference)
    FIGURES["disk faults survived"] += 1
    FIGURES["records compared"] += N_RUNS


def test_resume_repairs_corrupt_and_missing_rank_files(reference: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An ok record whose rank file is missing, truncated or corrupt is not finished: --resume reruns
    exactly those runs (and says why), and leaves the others alone."""
    import shutil
    import zipfile

    runs = tmp_path / "runs"
    shutil.copytree(reference, runs)
    files = sorted(runs.glob("*.ranks.npz"))
    files[0].unlink()
    files[1].write_bytes(files[1].read_bytes()[: files[1].stat().st_size // 2])
    data = bytearray(files[2].read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    files[2].write_bytes(bytes(data))
    with pytest.raises((zipfile.BadZipFile, ValueError, OSError, EOFError)):
        with np.load(files[2], allow_pickle=False) as npz:
            [npz[k] for k in npz.files]  # the corruption is real
    damaged = {f.name.removesuffix(".ranks.npz") for f in files[:3]}
    before = {p.name: p.stat().st_ino for p in runs.glob("*.json")}

    with caplog.at_level("WARNING", logger="sessbench.runner"):
        assert main([*GRID, "--runs-dir", str(runs), "--resume"]) == 0
    said = [r.getMessage() for r in caplog.records if "the run starts again to repair it" in r.getMessage()]
    assert len(said) == 3 and any("is missing" in m for m in said) and sum("is unreadable" in m for m in said) == 2, said
    rerun = {name.removesuffix(".json") for name, ino in before.items() if (runs / name).stat().st_ino != ino}
    assert rerun == damaged  # the damaged runs again, the sound ones skipped
    assert comparable(runs) == comparable(reference)
    assert ranks(runs) == ranks(reference)
    FIGURES["records compared"] += N_RUNS


# ---------------------------------------------------------------------------- claims resolved at once
def _grid_log(runs: Path, caplog: pytest.LogCaptureFixture) -> list[str]:
    with caplog.at_level("INFO", logger="sessbench"):
        assert main(["--quiet", "run", "--models", "pop", "--dataset", SMALL, "--runs-dir", str(runs)]) == 0
    return [r.getMessage() for r in caplog.records]


def test_claim_of_a_pid_reused_by_another_program_is_taken_over_at_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The claim's pid is alive, but it is another program (another start time): not waited on."""
    import subprocess

    runs = tmp_path / "runs"
    runs.mkdir()
    ids = _plan_ids(tmp_path)
    other = subprocess.Popen(["sleep", "60"])
    try:
        start, boot = process_start(other.pid), boot_id()
        if start is None or boot is None:
            pytest.skip("no /proc: process start times cannot be told")
        path = _write_claim(runs, ids[1], other.pid)
        path.write_text(json.dumps({**json.loads(path.read_text()), "process_start": start - 100, "boot_id": boot}))
        messages = _grid_log(runs, caplog)
        assert other.poll() is None  # the unrelated program is left alone
    finally:
        other.kill()
        other.wait()
    assert any(f"pid {other.pid} now belongs to another program" in m for m in messages), messages
    assert not any("is being run by" in m for m in messages), "it waited on an unrelated process"
    assert len(list(iter_records(runs))) == 2 and not path.exists()
    FIGURES["claims resolved at once"] += 1


def test_claim_of_an_older_sessbench_naming_another_program_is_taken_over(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A claim without a start time (older sessbench) whose pid runs neither Python nor sessbench."""
    import subprocess

    runs = tmp_path / "runs"
    runs.mkdir()
    ids = _plan_ids(tmp_path)
    other = subprocess.Popen(["sleep", "60"])
    try:
        if not Path(f"/proc/{other.pid}/cmdline").exists():
            pytest.skip("no /proc: command lines cannot be read")
        path = _write_claim(runs, ids[1], other.pid)
        messages = _grid_log(runs, caplog)
    finally:
        other.kill()
        other.wait()
    assert any(f"pid {other.pid} now runs another program (sleep 60)" in m for m in messages), messages
    assert not any("is being run by" in m for m in messages)
    assert len(list(iter_records(runs))) == 2 and not path.exists()
    FIGURES["claims resolved at once"] += 1


def test_a_live_holder_with_its_start_time_is_still_waited_for(tmp_path: Path) -> None:
    """The start time tells a reused pid apart without taking a live holder's run away."""
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = process_start(holder.pid)
        if start is None:
            pytest.skip("no /proc")
        path = _write_claim(tmp_path, "r1", holder.pid)
        path.write_text(json.dumps({**json.loads(path.read_text()), "process_start": start, "boot_id": boot_id()}))
        claims = Claims(tmp_path)
        assert not claims.acquire("r1")
        assert claims.sweep() == [] and path.exists()
        path.write_text(json.dumps({**json.loads(path.read_text()), "process_start": start + 1}))
        assert claims.acquire("r1")  # the same pid with another start time: another program
        claims.close()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("garbage", [b"{not json", b"[1, 2]", b'{"pid": "12", "host": 3}', b"", b"\xff\xfe\x00"],
                         ids=["truncated", "a list", "wrong types", "empty", "binary"])
def test_garbled_claim_is_taken_over_at_once(garbage: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Claims are written whole, so a garbled one belongs to no live process: not waited on."""
    runs = tmp_path / "runs"
    runs.mkdir()
    ids = _plan_ids(tmp_path)
    path = claim_path(runs, ids[1])
    path.write_bytes(garbage)
    messages = _grid_log(runs, caplog)
    assert any("garbled" in m for m in messages), messages
    assert not any("is being run by" in m for m in messages)
    assert len(list(iter_records(runs))) == 2 and not path.exists()
    FIGURES["claims resolved at once"] += 1


def test_unreadable_claim_is_reported_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A claim file that cannot be read is said at once (path and fix), then waited on until it ages out."""
    from sessbench import claims as claims_module

    path = _write_claim(tmp_path, "r1", 1)
    real = claims_module.read_claim
    monkeypatch.setattr(claims_module, "read_claim", lambda p: {PROBLEM: "unreadable", "detail": "Permission denied"}
                        if Path(p) == path else real(p))
    claims = Claims(tmp_path, stale_after_s=600)
    with caplog.at_level("WARNING", logger="sessbench.claims"):
        assert not claims.acquire("r1")
        assert not claims.acquire("r1")
    said = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert len(said) == 1, said  # at once, and once
    assert "cannot be read (Permission denied)" in said[0] and "Fix:" in said[0] and "delete it" in said[0]
    old = time.time() - 3600
    os.utime(path, (old, old))
    assert claims.acquire("r1")  # aged out: taken over
    claims.close()
    FIGURES["claims resolved at once"] += 1


def test_two_grids_without_resume_run_each_run_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Two grids on one runs directory, started together without --resume (both asked to rerun the
    records already there): each run executes once, and the runs the other grid did are said."""
    from sessbench.data.registry import parse_dataset
    from sessbench.runner import RunSettings, Runner, plan_runs

    plan = plan_runs(["test-sleepy", "pop"], [parse_dataset(SMALL)], [0, 1, 2, 3, 4, 5], "validated",
                     lambda m, d: {"seconds": 0.1} if m == "test-sleepy" else {}, RunSettings())
    alone = tmp_path / "alone"
    Runner(alone).run(plan)
    shared = tmp_path / "shared"
    Runner(shared).run(plan)  # records from before: without --resume both grids start them again
    barrier = threading.Barrier(2, timeout=60)

    class TogetherRunner(Runner):
        """Both grids have taken stock of the runs directory before either runs anything."""

        def _drive(self, *args, **kwargs):
            barrier.wait()
            return super()._drive(*args, **kwargs)

    executed: list[list[str]] = [[], []]
    errors: list[BaseException] = []

    def grid(i: int) -> None:
        try:
            TogetherRunner(shared).run(plan, on_record=lambda rec: executed[i].append(rec["run_id"]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with caplog.at_level("INFO", logger="sessbench.runner"):
        threads = [threading.Thread(target=grid, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not errors, errors
    ran = executed[0] + executed[1]
    assert sorted(ran) == sorted(s.run_id for s in Runner(shared).resolve(plan)), executed  # every run once, none twice
    assert min(map(len, executed)) > 0, "both grids did part of the work"
    said = [r.getMessage() for r in caplog.records if "run by another sessbench process" in r.getMessage()]
    assert said and sum(int(m.split()[0]) for m in said) == len(plan), said
    assert comparable(shared) == comparable(alone)
    FIGURES["records compared"] += len(plan)

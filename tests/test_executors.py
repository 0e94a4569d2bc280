"""Executors: a local process pool and a Dask cluster give the records an in-process grid gives."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import faultkit  # noqa: F401  (registers the test-only models)
from faultkit import SMALL, SMALL2, comparable, ranks
from sessbench.cli import main
from sessbench.data.registry import parse_dataset
from sessbench.errors import ConfigError
from sessbench.dask_executor import DaskExecutor, dask_run_task
from sessbench.executor_factory import make_executor
from sessbench.executors import InProcessExecutor, ProcessPoolExecutor
from sessbench.results import iter_records
from sessbench.runner import RunSettings, Runner, plan_runs

GRID = ["--quiet", "run", "--models", "pop,s-pop", "--dataset", SMALL, "--dataset", SMALL2]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("in-process")
    assert main([*GRID, "--runs-dir", str(runs)]) == 0
    return runs


def test_make_executor_choices() -> None:
    assert isinstance(make_executor(), InProcessExecutor)
    assert isinstance(make_executor(jobs=3), ProcessPoolExecutor)
    pool = make_executor(timeout_s=5)
    assert isinstance(pool, ProcessPoolExecutor) and pool.jobs == 1 and pool.timeout_s == 5
    assert isinstance(make_executor("dask", scheduler="tcp://h:8786"), DaskExecutor)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--timeout", "-1"], "--timeout must be a positive"),
        (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler needs --executor dask"),
    ],
)
def test_executor_option_errors(argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*GRID, "--runs-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_process_pool_gives_the_in_process_records(reference: Path, tmp_path: Path) -> None:
    assert main([*GRID, "--runs-dir", str(tmp_path), "--jobs", "2"]) == 0
    assert comparable(tmp_path) == comparable(reference)
    assert ranks(tmp_path) == ranks(reference)
    assert {r["worker"]["executor"] for r in iter_records(tmp_path)} == {"process-pool"}
    assert {r["attempts"] for r in iter_records(tmp_path)} == {1}


# ---------------------------------------------------------------------------- Dask, without a cluster
class _FakeFuture:
    def __init__(self, fn: Any, args: tuple, fail: BaseException | None) -> None:
        self.fn, self.args, self.fail = fn, args, fail

    def result(self) -> Any:
        if self.fail is not None:
            raise self.fail
        return self.fn(*self.args)

    def add_done_callback(self, callback: Any) -> None:
        callback(self)


class _FakeClient:
    """Runs tasks synchronously; the first `deaths` submissions report a dead worker."""

    def __init__(self, deaths: int = 0) -> None:
        self.calls: list[dict] = []
        self.deaths = deaths

    def submit(self, fn: Any, *args: Any, **kwargs: Any) -> _FakeFuture:
        from distributed import KilledWorker

        self.calls.append(kwargs)
        worker = SimpleNamespace(address="tcp://worker:1")
        fail = KilledWorker(kwargs["key"], worker, 0) if len(self.calls) <= self.deaths else None
        return _FakeFuture(fn, args, fail)


def _spec(model: str, device: str = "auto") -> Any:
    plan = plan_runs([model], [parse_dataset(SMALL)], [0], "validated", lambda m, d: {}, RunSettings(device=device))
    return plan[-1]


def test_dask_gpu_runs_ask_for_a_gpu_resource(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    runner = Runner(tmp_path)
    client = _FakeClient()
    executor = DaskExecutor(client=client, isolate=False)
    executor._gpu_workers = True
    executor.submit(runner, _spec("test-embedding")).result()  # a torch model, device auto, GPU workers
    executor.submit(runner, _spec("pop")).result()  # not a torch model: no GPU needed
    executor._gpu_workers = False
    executor.submit(runner, _spec("pop", device="cuda")).result()  # asked for cuda explicitly
    assert [c["resources"] for c in client.calls] == [{"GPU": 1}, None, {"GPU": 1}]


def test_dask_dead_worker_is_retried_once(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    runner = Runner(tmp_path)
    once = DaskExecutor(client=_FakeClient(deaths=1), isolate=False).submit(runner, _spec("pop")).result()
    assert once["status"] == "ok" and once["attempts"] == 2
    twice = DaskExecutor(client=_FakeClient(deaths=2), isolate=False).submit(runner, _spec("pop")).result()
    assert twice["status"] == "failed" and twice["error"]["reason"] == "worker_died" and twice["attempts"] == 2
    assert (tmp_path / f"{twice['run_id']}.json").is_file()  # the client wrote the failure record


def test_dask_worker_side_memory_check(tmp_path: Path) -> None:
    from sessbench.executors import make_task

    task = make_task(Runner(tmp_path), _spec("test-huge"), "dask", check_memory=True)
    record = dask_run_task(task)
    assert record["status"] == "failed" and record["error"]["reason"] == "insufficient_memory"
    assert "model 'test-huge'" in record["error"]["message"] and "80 items" in record["error"]["message"]
    assert not faultkit.Huge.fitted


# ---------------------------------------------------------------------------- Dask, a real local cluster
@pytest.fixture(scope="module")
def cluster() -> Any:
    pytest.importorskip("distributed")
    import dask
    from distributed import LocalCluster

    # a task whose worker dies fails at once (KilledWorker), so sessbench's own retry is what is tested
    with dask.config.set({"distributed.scheduler.allowed-failures": 0, "distributed.logging.distributed": "warning"}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
        try:
            yield cluster
        finally:
            cluster.close()


def test_dask_cluster_gives_the_in_process_records(cluster: Any, reference: Path, tmp_path: Path) -> None:
    assert main([*GRID, "--runs-dir", str(tmp_path), "--executor", "dask", "--scheduler", cluster.scheduler_address]) == 0
    assert comparable(tmp_path) == comparable(reference)
    assert ranks(tmp_path) == ranks(reference)
    records = list(iter_records(tmp_path))
    assert {r["worker"]["executor"] for r in records} == {"dask"}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith((".tmp", ".claim"))]


@pytest.mark.slow
def test_dask_crash_and_timeout_on_a_real_cluster(cluster: Any, tmp_path: Path) -> None:
    """Each task runs its run in a child process of the (daemonic) worker: crashes and timeouts
    become failed records, and the worker, with the runs queued on it, lives on."""
    code = main([
        "--quiet", "run", "--models", "test-sleepy,test-crash", "--dataset", SMALL, "--runs-dir", str(tmp_path / "t"),
        "--executor", "dask", "--scheduler", cluster.scheduler_address, "--timeout", "3", "--set", "test-sleepy.seconds=60",
    ])
    assert code == 1
    records = {r["model"]: r for r in iter_records(tmp_path / "t")}
    assert records["test-sleepy"]["error"]["reason"] == "timeout"
    assert records["test-crash"]["error"]["reason"] == "worker_died" and records["test-crash"]["attempts"] == 2
    assert "SIGKILL" in records["test-crash"]["error"]["message"]
    assert records["oracle"]["status"] == "ok" and len(cluster.scheduler_info["workers"]) == 2


def test_dask_missing_scheduler_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("distributed")
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main([*GRID, "--runs-dir", str(tmp_path), "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err and "Traceback" not in err



def test_dask_not_installed_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    assert main([*GRID, "--runs-dir", str(tmp_path), "--executor", "dask"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'sessbench[dask]'" in err and "Traceback" not in err


def test_choose_parallelism_never_oversubscribes(monkeypatch: pytest.MonkeyPatch) -> None:
    from sessbench.executors import JOBS_ENV, choose_parallelism

    monkeypatch.delenv(JOBS_ENV, raising=False)
    assert choose_parallelism(21, on_gpu=False, cores=2) == (2, 1)  # 2 cores: 2 runs, 1 thread each
    assert choose_parallelism(1, on_gpu=False, cores=8) == (1, 8)  # one run gets every core
    assert choose_parallelism(21, on_gpu=False, threads=2, cores=8) == (4, 2)
    assert choose_parallelism(21, on_gpu=False, jobs=3, cores=8) == (3, 2)
    assert choose_parallelism(21, on_gpu=True, cores=16) == (1, 16)  # runs would share the card
    for n_runs in range(1, 9):
        for cores in range(1, 17):
            jobs, threads = choose_parallelism(n_runs, on_gpu=False, cores=cores)
            assert jobs * threads <= cores and jobs <= n_runs
    monkeypatch.setenv(JOBS_ENV, "1")
    assert choose_parallelism(21, on_gpu=False, cores=2) == (1, 2)
    monkeypatch.setenv(JOBS_ENV, "zero")
    with pytest.raises(ConfigError, match="SESSBENCH_JOBS"):
        choose_parallelism(21, on_gpu=False, cores=2)


def test_a_default_grid_runs_one_run_per_core(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from sessbench.executors import JOBS_ENV

    monkeypatch.delenv(JOBS_ENV, raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert main(["--quiet", "run", "--models", "pop,s-pop", "--dataset", SMALL, "--runs-dir", str(tmp_path)]) == 0
    assert "2 at a time, 1 torch thread(s) each" in capsys.readouterr().err
    threads = {r["environment"]["torch_threads"] for r in iter_records(tmp_path)}
    assert threads == {1}

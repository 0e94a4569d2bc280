"""The front door for Python callers: the same grids, configs and records as the command line.

    from sessbench import api

    records = api.run(models="pop,srgnn", datasets=["synthetic"], seeds=[0, 1], runs_dir="runs")
    api.report("runs", "results")
    split = api.load_dataset("yoochoose64", data_dir="../shared/data/official-splits").split
    result = api.evaluate("lists.csv", "yoochoose64", data_dir="...")

Configuration is resolved in exactly one place (`prepare_grid`): the model's registered defaults,
`configs/models/<model>.yaml` (defaults, then the dataset's layer), the experiment file
(`config=`), then `set=` overrides; the run settings from the experiment file unless given. The
command line is a thin layer over these functions (parsing, printing, exit codes), so a Python
caller gets exactly the configs `sessbench run` gets, and every record carries the real
invocation: the command line, or the API call with its arguments.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from sessbench.data.registry import DatasetRequest, LoadedDataset
from sessbench.errors import ConfigError
from sessbench.planning import RunSettings, RunSpec

__all__ = ["Grid", "evaluate", "load_dataset", "prepare_grid", "report", "run"]

log = logging.getLogger("sessbench")


@dataclass
class Grid:
    """A resolved grid: what will run (`plan`), with which runner, and how parallel."""

    plan: list[RunSpec]
    runner: Any  # sessbench.runner.Runner
    models: list[str]
    datasets: list[DatasetRequest]
    seeds: list[int]
    protocol: str
    jobs: int | None  # runs at a time (None: one by one in this process)
    threads: int  # torch threads per run

    def estimates(self, batches: int = 10) -> list[Any]:
        """(spec, Estimate) per unfinished run: the measured cost before anything runs."""
        from sessbench.estimate import estimate_plan

        todo = [s for s in self.plan if not (self.runner.resume and self.runner._finished(s))]
        return estimate_plan(todo, self.runner, batches)

    def execute(self, on_record: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        """Run the grid; returns the records of every run of the plan (also those skipped as finished)."""
        import torch

        from sessbench.results import read_record, record_path

        torch.set_num_threads(self.threads)
        self.runner.run(self.plan, on_record=on_record)
        out = [read_record(record_path(self.runner.runs_dir, s.run_id)) for s in self.plan]
        return [r for r in out if r is not None]


def _call_text(name: str, kwargs: dict[str, Any]) -> str:
    """How a call is recorded: `sessbench.api.run(models='pop', seeds=[0, 1])` (defaults left out)."""
    shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items() if v is not None and v != () and k != "progress")
    return f"sessbench.api.{name}({shown})"


def _set_options(values: Sequence[str] | dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    from sessbench.config import parse_set_options

    if values is None:
        return {}
    if isinstance(values, dict):
        return {str(m): dict(p) for m, p in values.items()}
    return parse_set_options(list(values))


def _seed_list(seeds: Sequence[int] | int | str | None, default: list[int]) -> list[int]:
    if seeds is None:
        return default
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        return [seeds]
    if isinstance(seeds, str):
        seeds = [int(s) for s in seeds.split(",") if s.strip()]
    from sessbench.config import MAX_SEED

    out = [int(s) for s in seeds]
    if not out:
        raise ConfigError("seeds is empty: give at least one seed, e.g. seeds=[0, 1, 2]")
    bad = [s for s in out if not 0 <= s <= MAX_SEED]
    if bad:
        raise ConfigError(f"seeds must be integers from 0 to {MAX_SEED} (what numpy and torch accept), got {bad[0]}")
    return out


def prepare_grid(
    models: str | Sequence[str] | None = None,
    datasets: str | Sequence[str] | None = None,
    seeds: Sequence[int] | int | str | None = None,
    protocol: str | None = None,
    *,
    config: str | Path | None = None,
    config_dir: str | Path | None = None,
    set: Sequence[str] | dict[str, dict[str, Any]] | None = None,  # noqa: A002 - the CLI's --set
    dataset_params: dict[str, Any] | None = None,
    validation_fraction: float | None = None,
    device: str | None = None,
    time_budget_s: float | None = None,
    eval_batch_size: int | None = None,
    save_recs: int | None = None,
    recs_cap: int = 10,
    refit: bool = True,
    runs_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    resume: bool = False,
    force: bool = False,
    executor: str = "local",
    jobs: int | None = None,
    threads: int | None = None,
    timeout_s: float | None = None,
    scheduler: str | None = None,
    check_memory: bool = True,
    checkpoint_dir: str | Path | None = None,
    progress: Any = None,
    invocation: str | None = None,
    check_folders: bool = True,
) -> Grid:
    """Resolve a grid exactly as `sessbench run` does (see the module docstring); nothing runs.

    check_folders: refuse an unusable runs, cache or checkpoint folder (read-only, a file in the
    way) before any data is hashed or prepared; off for a plan that writes nothing.
    """
    from sessbench.config import ParamResolver, default_config_dir, load_experiment
    from sessbench.data.registry import parse_dataset
    from sessbench.executor_factory import make_executor
    from sessbench.executors import choose_parallelism
    from sessbench.models import get_model, load_plugins, resolve_models
    from sessbench.planning import check_model_names, plan_runs
    from sessbench.progress import null_progress
    from sessbench.runner import Runner
    from sessbench.training import resolve_device

    if invocation is None:
        invocation = _call_text("run", {k: v for k, v in locals().items() if k in _RUN_ARGS})
    exp = load_experiment(None if config is None else Path(config))
    models_arg = models if models is not None else exp["models"]
    if not isinstance(models_arg, str):
        models_arg = ",".join(models_arg)
    datasets_arg = [datasets] if isinstance(datasets, str) else list(datasets or exp["datasets"])
    seed_list = _seed_list(seeds, exp["seeds"])
    protocol = protocol or exp["protocol"]
    settings = RunSettings(
        validation_fraction=float(validation_fraction if validation_fraction is not None else exp["validation_fraction"]),
        device=device or exp["device"],
        time_budget_s=time_budget_s if time_budget_s is not None else exp["time_budget_s"],
        eval_batch_size=eval_batch_size if eval_batch_size is not None else exp["eval_batch_size"],
        save_recs=save_recs,
        recs_cap_factor=recs_cap,
        refit=refit,
    )
    check_settings(settings, threads=threads, jobs=jobs, timeout_s=timeout_s)

    load_plugins()
    names = resolve_models(models_arg)
    check_model_names(names)  # before any name becomes a path (configs/models/<name>.yaml, run ids)
    specs = [get_model(n) for n in names]
    requests = [parse_dataset(d, {**exp["dataset_params"], **(dataset_params or {})}) for d in datasets_arg]
    resolver = ParamResolver(
        config_dir=Path(config_dir) if config_dir is not None else default_config_dir(),
        experiment_params=exp["params"],
        cli_params=_set_options(set),
        experiment_source=exp.get("_source", "--config"),
        experiment_lines=exp.get("_lines", {}),
    )
    resolver.check_all(specs, [r.name for r in requests])
    plan = plan_runs(names, requests, seed_list, protocol, lambda m, d: resolver.resolve(get_model(m), d), settings,
                     default_params=lambda m, d: resolver.resolve(get_model(m), d, overrides=False))

    n_threads = threads
    n_jobs = jobs
    if executor == "local":
        on_gpu = resolve_device(settings.device).type != "cpu"
        n_jobs, n_threads = choose_parallelism(len(plan), on_gpu, jobs, threads)
        if n_jobs == 1 and timeout_s is None:
            n_jobs = None  # one by one in this process
    runner = Runner(
        runs_dir=Path(runs_dir) if runs_dir is not None else Path(exp["runs_dir"]),
        data_dir=_path(data_dir, exp["data_dir"]),
        cache_dir=_path(cache_dir, exp["cache_dir"]),
        force_prepare=force,
        resume=resume,
        progress=progress or null_progress,
        command=invocation,
        executor=make_executor(executor, jobs=n_jobs, timeout_s=timeout_s, scheduler=scheduler, threads=n_threads),
        check_memory=check_memory,
        checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir),
    )
    import torch

    if check_folders:
        runner.check_folders()
    return Grid(runner.resolve(plan), runner, names, requests, seed_list, protocol, n_jobs,
                n_threads or torch.get_num_threads())


MAX_SAVE_RECS = 10_000  # a top-K list longer than this is not a recommendation list
MAX_RECS_CAP = 1_000
MAX_THREADS = 1_024  # torch overflows (or crashes) far above any machine's core count


def check_settings(
    settings: RunSettings, threads: int | None = None, jobs: int | None = None, timeout_s: float | None = None,
) -> None:
    """Values a grid refuses up front, before anything is prepared or trained (ConfigError: exit
    code 2 on the command line): what cannot mean what the user wants."""
    from sessbench.config import positive_finite

    if not 0 <= settings.validation_fraction < 1:
        raise ConfigError(f"--validation-fraction must be in [0, 1), got {settings.validation_fraction}")
    if settings.eval_batch_size is not None and settings.eval_batch_size < 1:
        raise ConfigError(f"--eval-batch-size must be a positive number of prefixes, got {settings.eval_batch_size}")
    if settings.time_budget_s is not None and not positive_finite(settings.time_budget_s):
        raise ConfigError(f"--time-budget must be a positive, finite number of seconds (leave it out for no "
                          f"budget), got {settings.time_budget_s}")
    if timeout_s is not None and not positive_finite(timeout_s):
        raise ConfigError(f"--timeout must be a positive, finite number of seconds (leave it out for no limit), "
                          f"got {timeout_s}")
    if settings.save_recs is not None and not 1 <= settings.save_recs <= MAX_SAVE_RECS:
        raise ConfigError(f"--save-recs must be a list length K from 1 to {MAX_SAVE_RECS:,}, got {settings.save_recs}")
    if not 1 <= settings.recs_cap_factor <= MAX_RECS_CAP:
        raise ConfigError(f"--recs-cap must be a factor from 1 to {MAX_RECS_CAP:,} (lists hold at most FACTOR x K "
                          f"items), got {settings.recs_cap_factor}")
    for option, value in (("--threads", threads), ("--jobs", jobs)):
        if value is not None and value < 1:
            raise ConfigError(f"{option} must be at least 1, got {value}")
        if value is not None and value > MAX_THREADS:
            raise ConfigError(f"{option} must be at most {MAX_THREADS:,}, got {value}")


def _path(given: str | Path | None, from_config: str | None) -> Path | None:
    if given is not None:
        return Path(given)
    return Path(from_config) if from_config else None


_RUN_ARGS = (
    "models", "datasets", "seeds", "protocol", "config", "config_dir", "set", "dataset_params",
    "validation_fraction", "device", "time_budget_s", "eval_batch_size", "save_recs", "refit", "runs_dir",
    "data_dir", "cache_dir", "resume", "executor", "jobs", "threads", "timeout_s",
)


def run(
    models: str | Sequence[str] | None = None,
    datasets: str | Sequence[str] | None = None,
    seeds: Sequence[int] | int | str | None = None,
    protocol: str | None = None,
    *,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Fit and evaluate a grid (what `sessbench run` does); returns the plan's records.

    Options are those of `prepare_grid` (config, set, runs_dir, data_dir, resume, jobs, ...).
    """
    if "invocation" not in options:
        shown = {"models": models, "datasets": datasets, "seeds": seeds, "protocol": protocol,
                 **{k: v for k, v in options.items() if k in _RUN_ARGS}}
        options["invocation"] = _call_text("run", shown)
    grid = prepare_grid(models, datasets, seeds, protocol, **options)
    return grid.execute(on_record)


def load_dataset(
    name: str, data_dir: str | Path | None = None, cache_dir: str | Path | None = None, *,
    force: bool = False, params: dict[str, Any] | None = None,
) -> LoadedDataset:
    """A prepared dataset (from the cache when it is fresh): `name` as `--dataset` takes it."""
    from sessbench.data.registry import load_dataset as _load
    from sessbench.data.registry import parse_dataset

    return _load(parse_dataset(name, params), _opt_path(data_dir), _opt_path(cache_dir), force=force)


def report(
    runs_dir: str | Path = "runs", out: str | Path = "results", *, reference: str = "srgnn",
    resamples: int = 10_000, alpha: float = 0.05, command: str | None = None,
) -> list[Path]:
    """Write the report of a runs directory (what `sessbench report` does); returns the files."""
    from sessbench.report import write_report

    if command is None:
        command = _call_text("report", {"runs_dir": str(runs_dir), "out": str(out)})
    return write_report(Path(runs_dir), Path(out), reference=reference, resamples=resamples, alpha=alpha, command=command)


def evaluate(
    recs: str | Path, dataset: str, *, data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
    ks: Iterable[int] | None = None,
) -> Any:
    """Score a recommendation-list file with sessbench's metrics on a dataset's test prefixes."""
    from sessbench.recs import evaluate_lists, read_lists

    split = load_dataset(dataset, data_dir, cache_dir).split
    lists = read_lists(Path(recs), split.item_ids.dtype)
    return evaluate_lists(lists, split, None if ks is None else list(ks))


def _opt_path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


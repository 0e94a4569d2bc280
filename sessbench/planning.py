"""The plan of a grid: which runs, with which settings, under which ids.

A run is one (model, dataset source, seed, protocol, hyperparameters, settings) combination.
Its id hashes all of that, the dataset's source by content included (`DataSource.digest`), so a
record made from other data is never taken for this run's, and `--resume` skips exactly the
runs whose inputs are unchanged. Nothing here touches data or models beyond reading the registry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from sessbench.data.registry import DatasetRequest
from sessbench.names import check_name, safe_part

ORACLE = "oracle"
#: on synthetic data the normalized gain needs POP; it is added as a reference when not asked for
REFERENCE_MODEL = "pop"
PROTOCOLS = ("validated", "paper")


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class RunSettings:
    """Settings shared by every run of a grid.

    `validation_fraction`, `time_budget_s` and `refit` change what a run computes, so they are
    part of its identity; `device`, `eval_batch_size` and `save_recs` only change how it is
    computed or what is kept, so a run finished on another device (or batch size) counts as
    finished for `--resume` and reports.

    refit: under `validated`, refit models that select epochs on the whole training set after
    selecting on the validation carve (and fit models that select nothing on the whole training
    set directly); False keeps every model on the carved training set (`--no-refit`).
    """

    validation_fraction: float = 0.1
    device: str = "auto"
    time_budget_s: float | None = None
    eval_batch_size: int | None = None
    #: keep each test prefix's top-K list (tie-complete, at most recs_cap_factor x K items)
    save_recs: int | None = None
    recs_cap_factor: int = 10
    refit: bool = True

    def identity(self) -> dict[str, Any]:
        out: dict[str, Any] = {"validation_fraction": self.validation_fraction, "time_budget_s": self.time_budget_s}
        if not self.refit:
            out["refit"] = False
        return out


@dataclass(frozen=True)
class RunSpec:
    model: str
    dataset: DatasetRequest
    seed: int
    protocol: str
    params: dict[str, Any] = field(default_factory=dict)
    settings: RunSettings = field(default_factory=RunSettings)
    #: whether `params` are the model's default configuration (configs/models, no experiment file
    #: or --set changing them); None when unknown. Not part of the identity: equal params are one run.
    default_config: bool | None = field(default=None, compare=False)

    def identity(self) -> dict[str, Any]:
        out = {
            "model": self.model,
            "dataset": self.dataset.key,
            "seed": self.seed,
            "protocol": self.protocol,
            "params": self.params,
            "settings": self.settings.identity(),
        }
        if self.dataset.source is not None:
            out["source"] = self.dataset.source.digest
        return out

    @property
    def config_id(self) -> str:
        """Hash of everything but the seed: runs that differ only by seed share it (reports average them)."""
        return digest({k: v for k, v in self.identity().items() if k != "seed"})

    @property
    def run_id(self) -> str:
        slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in self.dataset.key)[:60]
        model = safe_part(self.model)  # unchanged for every name `check_model_names` lets through
        return f"{slug}__{model}__{safe_part(self.protocol)}__seed{self.seed}__{digest(self.identity())}"

    @property
    def run_id_stem(self) -> str:
        """The run id without its hash: records of this run on other data or settings share it."""
        return self.run_id.rsplit("__", 1)[0]


def seed_dependent(model: str) -> bool:
    """Whether a model's result depends on the seed (the oracle's and count models' do not)."""
    if model == ORACLE:
        return False
    from sessbench.models import get_model

    return bool(get_model(model).cls.seed_dependent)


def check_model_names(models: list[str]) -> None:
    """Refuse a model name that cannot be part of a file name (`sessbench.names`), naming the
    module that registered it: a plugin's name must never place a file outside the runs directory."""
    for model in models:
        if model == ORACLE:
            continue
        from sessbench.models import get_model

        source = get_model(model).source
        check_name("model", model, f" (registered by {source})" if source else "")


def plan_runs(
    models: list[str],
    datasets: list[DatasetRequest],
    seeds: list[int],
    protocol: str,
    resolve_params: Callable[[str, str], dict[str, Any]],
    settings: RunSettings,
    default_params: Callable[[str, str], dict[str, Any]] | None = None,
) -> list[RunSpec]:
    """Every (dataset, model, seed) run, datasets outermost so each dataset is loaded once.

    A model whose result does not depend on the seed runs once, with the first seed. On
    synthetic data the `oracle` pseudo-model is added once per dataset, and POP once when it is
    not among the models, since the normalized gain is measured from it. `default_params` (the
    model's configuration without experiment file or --set) marks each run's `default_config`.
    """

    def runs(model: str, ds: DatasetRequest, seeds: list[int]) -> list[RunSpec]:
        params = {} if model == ORACLE else resolve_params(model, ds.name)
        default = True if model == ORACLE else None if default_params is None else params == default_params(model, ds.name)
        return [RunSpec(model, ds, seed, protocol, params, settings, default_config=default) for seed in seeds]

    check_model_names(models)
    plan: list[RunSpec] = []
    for ds in datasets:
        if ds.definition.kind == "synthetic":
            plan += runs(ORACLE, ds, seeds[:1])
            if REFERENCE_MODEL not in models:
                plan += runs(REFERENCE_MODEL, ds, seeds[:1])
        for model in models:
            plan += runs(model, ds, seeds if seed_dependent(model) else seeds[:1])
    return plan


def longest_first(plan: list[RunSpec]) -> list[RunSpec]:
    """The plan with each dataset's iterative models first, most epochs first (a stable sort,
    datasets kept in their order so each is loaded once per process).

    With several runs at a time the grid ends when its longest run does: started last, a long
    training run (NARM on the synthetic default: about 8 minutes of the default run's 9) would
    run alone at the end while the other cores idle. Started first, it overlaps the short runs.
    """
    from sessbench.models import get_model

    def weight(spec: RunSpec) -> int:
        if spec.model == ORACLE or not get_model(spec.model).cls.selects_on_validation:
            return 0
        epochs = spec.params.get("epochs", 1)
        return int(epochs) if isinstance(epochs, (int, float)) else 1

    order = {key: i for i, key in enumerate(dict.fromkeys(spec.dataset.identity_key for spec in plan))}
    return sorted(plan, key=lambda spec: (order[spec.dataset.identity_key], -weight(spec)))

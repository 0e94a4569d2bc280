"""The model interface every recommender implements, and the registry that finds them.

A model is a class with `fit(data, ctx)` and `score(batch)`. It is made known to sessbench with
the `@register_model` decorator in a module that the `sessbench.models` entry-point group points
to, so `pip install my-model` is enough for `sessbench run --models my-model` to work. The
built-in baselines and SR-GNN register through that same entry-point group: the harness never
imports a model module by name.
"""

from __future__ import annotations

import logging
import traceback
from abc import ABC, abstractmethod
from contextlib import nullcontext
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, ClassVar, ContextManager, Iterable

import numpy as np
import torch

from sessbench.data.sessions import Prefixes, TrainingData
from sessbench.errors import ConfigError, UnknownNameError
from sessbench.progress import ProgressFactory, null_progress

ENTRY_POINT_GROUP = "sessbench.models"

# ---------------------------------------------------------------------------- context


EpochMetrics = dict[str, float]


@dataclass
class FitContext:
    """Everything a model needs from the harness while fitting.

    device:   where to train (`cuda` when present and allowed, else `cpu`).
    seed:     the run's seed; `rng()` and `torch_generator()` derive from it.
    logger:   a logger for the run.
    progress: `progress(total=..., desc=...)` returns a context-managed progress bar.
    time_budget_s: stop training (keeping the best state so far) after this many seconds.
    evaluate: callable(model) -> metrics on the *selection* examples: the validation split under
              the `validated` protocol, the test split under the `paper` protocol. The model
              never sees those examples; iterative models call this once per epoch (the shared
              training loop does) and stop early on `selection_metric`.
    selection_metric: the metric that early stopping maximizes (default P@20).
    protocol: `validated` or `paper`.
    epoch_log: one dict per epoch (epoch, loss, seconds, selection metrics), appended by the
               training loop and stored with the run record.
    checkpoint: where an iterative model keeps its end-of-epoch state, so that a fit killed
               mid-training resumes from its last finished epoch (None: no checkpoints).
    checkpoint_key: what the checkpoint must belong to (the run id, fit phase and code state);
               a file written for anything else, or by other code, is ignored.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("sessbench.model"))
    progress: ProgressFactory = null_progress
    time_budget_s: float | None = None
    evaluate: Callable[["SessionRecommender"], EpochMetrics] | None = None
    selection_metric: str = "P@20"
    protocol: str = "validated"
    epoch_log: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: Path | None = None
    checkpoint_key: str = ""

    def rng(self, stream: int = 0) -> np.random.Generator:
        """A numpy generator derived from the seed (use different `stream`s for independent uses)."""
        return np.random.default_rng([self.seed, stream])

    def torch_generator(self, stream: int = 0) -> torch.Generator:
        g = torch.Generator(device="cpu")
        g.manual_seed(int(np.random.SeedSequence([self.seed, stream]).generate_state(1)[0]))
        return g


# ---------------------------------------------------------------------------- interface


class SessionRecommender(ABC):
    """The plugin interface.

    Hyperparameters are constructor keyword arguments (defaults come from the registry, then
    the per-dataset config, then the command line). `fit` sees only training data (and the
    validation sessions); `score` sees only the input prefixes of a batch (`Prefixes`, a type
    without targets), never the labels.

    Declarations the harness reads (class attributes; override them where they differ):

    * `seed_dependent`: whether the result depends on the seed. A model that draws nothing
      at random (POP, Item-KNN, the rule and neighbour models) sets False: a grid runs it
      once, whatever `--seeds` says, and the report shows no "± 0.00".
    * `selects_on_validation`: whether `fit` chooses anything on `ctx.evaluate` (epochs,
      rounds). Under the `validated` protocol such a model is fitted on the training set minus
      the validation carve, then refitted on the whole training set with `refit_params()`;
      a model that selects nothing is fitted once on the whole training set.

    Optional hooks (with these defaults; the runner and reports use them when present):

    * `fit_summary`: how the last fit ended (`best_epoch`, `stopped`, ...), stored in records.
    * `eval_batch_size`: prefixes scored at once (None: sized from the item count).
    * `estimate_memory(n_items, params)` (classmethod): bytes the training needs, checked
      against the device before a grid starts (`sessbench.memory`).
    """

    #: set by @register_model
    name: ClassVar[str] = ""
    seed_dependent: ClassVar[bool] = True
    selects_on_validation: ClassVar[bool] = False
    #: prefixes scored at once; None lets the evaluator size batches from the item count
    eval_batch_size: int | None = None

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.fit_summary: dict[str, Any] = {}

    @abstractmethod
    def fit(self, data: TrainingData, ctx: FitContext) -> None:
        """Learn from the training sessions."""

    @abstractmethod
    def score(self, batch: Prefixes) -> torch.Tensor:
        """float [B, n_items + 1]: a score for every candidate item (column 0 is ignored).

        Higher is better. Ties are allowed: the evaluator counts them exactly.
        """

    def refit_params(self) -> dict[str, Any]:
        """Hyperparameter overrides that repeat, without a validation split, what the last
        `fit` selected (e.g. `{"epochs": best_epoch + 1}`); {} when it selected nothing."""
        return {}

    def eval_mode(self) -> ContextManager[Any]:
        """A context in which scoring runs (torch models: no_grad + eval())."""
        return nullcontext()

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


# ---------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ModelSpec:
    name: str
    cls: type[SessionRecommender]
    groups: tuple[str, ...]
    defaults: dict[str, Any]
    description: str
    source: str  # the module that registered it

    def create(self, **overrides: Any) -> SessionRecommender:
        params = {**self.defaults, **overrides}
        return self.cls(**params)


_REGISTRY: dict[str, ModelSpec] = {}
_PLUGIN_ERRORS: dict[str, str] = {}
_PLUGINS_LOADED = False

#: groups every model belongs to
IMPLICIT_GROUPS = ("all",)


def int_param(model: str, key: str, value: Any, minimum: int) -> int:
    """Hyperparameter `key` of `model` as an int >= minimum, or a ConfigError that names both
    (for model constructors: bad values fail before any run starts)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"model '{model}': {key}={value!r} must be an integer >= {minimum}.")
    return int(value)


def choice_param(model: str, key: str, value: Any, choices: Iterable[str]) -> str:
    """Hyperparameter `key` of `model` as one of `choices`, or a ConfigError that lists them."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"model '{model}': {key}={value!r} must be one of {', '.join(choices)}.")
    return str(value)


def register_model(
    name: str,
    *,
    groups: Iterable[str] = (),
    defaults: dict[str, Any] | None = None,
    description: str | None = None,
) -> Callable[[type[SessionRecommender]], type[SessionRecommender]]:
    """Class decorator that registers a `SessionRecommender` under `name`.

    groups: extra group names (every model is in `all`), e.g. ("baselines",).
    defaults: default hyperparameters (constructor kwargs).
    description: one line for `sessbench models` (default: the docstring's first line).
    """

    def decorate(cls: type[SessionRecommender]) -> type[SessionRecommender]:
        if not (isinstance(cls, type) and issubclass(cls, SessionRecommender)):
            raise TypeError(f"@register_model('{name}') must decorate a SessionRecommender subclass")
        existing = _REGISTRY.get(name)
        if existing is not None and existing.cls.__qualname__ != cls.__qualname__:
            raise ValueError(f"model name '{name}' is already registered by {existing.source}")
        doc = (cls.__doc__ or "").strip().splitlines()
        cls.name = name
        _REGISTRY[name] = ModelSpec(
            name=name,
            cls=cls,
            groups=tuple(dict.fromkeys([*IMPLICIT_GROUPS, *groups])),
            defaults=dict(defaults or {}),
            description=description or (doc[0] if doc else ""),
            source=cls.__module__,
        )
        return cls

    return decorate


def load_plugins(force: bool = False) -> dict[str, str]:
    """Import every module of the `sessbench.models` entry-point group (once).

    A plugin that fails to import is recorded (name -> error text) and skipped, so one broken
    plugin never stops the others. Returns those errors.
    """
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED and not force:
        return dict(_PLUGIN_ERRORS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not break the others
            _PLUGIN_ERRORS[ep.name] = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            logging.getLogger("sessbench").warning(
                "model plugin '%s' (%s) failed to import and is skipped: %s",
                ep.name,
                ep.value,
                _PLUGIN_ERRORS[ep.name],
            )
    _PLUGINS_LOADED = True
    return dict(_PLUGIN_ERRORS)


def registered_models() -> dict[str, ModelSpec]:
    load_plugins()
    return dict(sorted(_REGISTRY.items()))


def model_groups() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for spec in registered_models().values():
        for g in spec.groups:
            groups.setdefault(g, []).append(spec.name)
    return groups


def _unknown_hint() -> str:
    """Where to look, plus the plugins that failed to import (the model may live in one)."""
    hint = "Run 'sessbench models' to list them."
    if _PLUGIN_ERRORS:
        hint += " Plugins that failed to import: " + "; ".join(f"{k}: {v}" for k, v in _PLUGIN_ERRORS.items())
    return hint


def get_model(name: str) -> ModelSpec:
    models = registered_models()
    if name not in models:
        raise UnknownNameError("model", name, models, _unknown_hint())
    return models[name]


def resolve_models(spec: str) -> list[str]:
    """'all', a group, or a comma list of names and groups -> model names (order kept, unique)."""
    models = registered_models()
    groups = model_groups()
    names: list[str] = []
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        if token in models:
            names.append(token)
        elif token in groups:
            names.extend(groups[token])
        else:
            raise UnknownNameError("model or group", token, [*models, *groups], _unknown_hint())
    return list(dict.fromkeys(names))

"""Experiment configuration: YAML files under `configs/`, validated before any work starts.

Hyperparameters resolve in this order (later wins):
  1. the model's registered defaults (`@register_model(defaults=...)`);
  2. `configs/models/<model>.yaml`: `defaults:` then `datasets: {<dataset>: {...}}`;
  3. the experiment file passed with `--config`: `params: {<model>: {...}}`;
  4. `--set <model>.<key>=<value>` on the command line.
The resolved values are stored with every result.
"""

from __future__ import annotations

import difflib
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import sessbench
from sessbench.errors import ConfigError
from sessbench.models import ModelSpec

PROTOCOLS = ("validated", "paper")

#: experiment keys, their types, and defaults
EXPERIMENT_KEYS: dict[str, tuple[tuple[type, ...], Any]] = {
    "models": ((str, list), "all"),
    "datasets": ((list, str), ["synthetic"]),
    "dataset_params": ((dict,), {}),
    "seeds": ((list, int), [0]),
    "protocol": ((str,), "validated"),
    "validation_fraction": ((float, int), 0.1),
    "device": ((str,), "auto"),
    "data_dir": ((str, type(None)), None),
    "cache_dir": ((str, type(None)), None),
    "runs_dir": ((str,), "runs"),
    "time_budget_s": ((float, int, type(None)), None),
    "eval_batch_size": ((int, type(None)), None),
    "params": ((dict,), {}),
}


def default_config_dir() -> Path:
    """`$SESSBENCH_CONFIG_DIR`, else the `configs/` folder of the sessbench checkout, else ./configs."""
    env = os.environ.get("SESSBENCH_CONFIG_DIR")
    if env:
        return Path(env)
    repo = Path(sessbench.__file__).resolve().parents[1] / "configs"
    return repo if repo.is_dir() else Path("configs")


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader, with errors that name the file and line."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{where}: invalid YAML ({problem}). Fix the syntax there.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def validate_experiment(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Check keys and types of an experiment mapping; fill defaults."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in EXPERIMENT_KEYS:
            raise ConfigError(
                f"{source}: unknown key '{key}'.{_did_you_mean(key, list(EXPERIMENT_KEYS))} "
                f"Valid keys: {', '.join(EXPERIMENT_KEYS)}."
            )
        types, _ = EXPERIMENT_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            raise ConfigError(f"{source}: key '{key}' must be {names}, got {type(value).__name__} ({value!r})")
        out[key] = value
    for key, (_, default) in EXPERIMENT_KEYS.items():
        out.setdefault(key, default)
    if out["protocol"] not in PROTOCOLS:
        raise ConfigError(f"{source}: protocol must be one of {PROTOCOLS}, got '{out['protocol']}'")
    if not 0 <= float(out["validation_fraction"]) < 1:
        raise ConfigError(f"{source}: validation_fraction must be in [0, 1), got {out['validation_fraction']}")
    if isinstance(out["datasets"], str):
        out["datasets"] = [out["datasets"]]
    if isinstance(out["seeds"], int):
        out["seeds"] = [out["seeds"]]
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in out["seeds"]):
        raise ConfigError(f"{source}: seeds must be a list of integers, got {out['seeds']!r}")
    if isinstance(out["models"], list):
        out["models"] = ",".join(str(m) for m in out["models"])
    for model, params in out["params"].items():
        if not isinstance(params, dict):
            raise ConfigError(f"{source}: params.{model} must be a mapping of hyperparameters")
    return out


def load_experiment(path: Path | None) -> dict[str, Any]:
    if path is None:
        return validate_experiment({}, "defaults")
    return validate_experiment(read_yaml(Path(path)), str(path))


def parse_set_options(values: list[str]) -> dict[str, dict[str, Any]]:
    """`--set model.key=value` (value parsed as YAML) -> {model: {key: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for text in values:
        lhs, eq, rhs = text.partition("=")
        model, dot, key = lhs.partition(".")
        if not eq or not dot or not model or not key:
            raise ConfigError(f"--set '{text}': expected MODEL.KEY=VALUE, e.g. --set srgnn.epochs=5")
        try:
            value = yaml.safe_load(rhs)
        except yaml.YAMLError:
            value = rhs
        out.setdefault(model.strip(), {})[key.strip()] = value
    return out


def allowed_params(spec: ModelSpec) -> set[str] | None:
    """Hyperparameter names a model accepts: its registered defaults plus named constructor args."""
    names = set(spec.defaults)
    sig = inspect.signature(spec.cls.__init__)
    for p in list(sig.parameters.values())[1:]:
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.add(p.name)
    return names


def _check_params(spec: ModelSpec, params: dict[str, Any], source: str) -> None:
    allowed = allowed_params(spec)
    for key, value in params.items():
        if allowed is not None and key not in allowed:
            valid = ", ".join(sorted(allowed)) or "none"
            raise ConfigError(
                f"{source}: model '{spec.name}' has no hyperparameter '{key}'."
                f"{_did_you_mean(key, sorted(allowed))} Valid: {valid}."
            )
        default = spec.defaults.get(key)
        if default is None or value is None:
            continue
        ok = isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int))
        if isinstance(default, bool) != isinstance(value, bool):
            ok = False
        if not ok:
            raise ConfigError(
                f"{source}: {spec.name}.{key} must be {type(default).__name__} "
                f"(default {default!r}), got {type(value).__name__} ({value!r})"
            )


@dataclass
class ParamResolver:
    """Resolves a model's hyperparameters for a dataset (see the module docstring)."""

    config_dir: Path = field(default_factory=default_config_dir)
    experiment_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    cli_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    def model_file(self, model: str) -> dict[str, Any]:
        path = self.config_dir / "models" / f"{model}.yaml"
        if not path.is_file():
            return {}
        data = read_yaml(path)
        unknown = set(data) - {"defaults", "datasets", "description", "source"}
        if unknown:
            raise ConfigError(f"{path}: unknown top-level key(s) {sorted(unknown)}; valid: defaults, datasets")
        return data

    def resolve(self, spec: ModelSpec, dataset: str) -> dict[str, Any]:
        """Hyperparameters for `spec` on `dataset` (a dataset name such as 'yoochoose64')."""
        path = self.config_dir / "models" / f"{spec.name}.yaml"
        data = self.model_file(spec.name)
        layers = [
            (str(path) + ":defaults", data.get("defaults") or {}),
            (f"{path}:datasets.{dataset}", (data.get("datasets") or {}).get(dataset) or {}),
            ("--config params", self.experiment_params.get(spec.name, {})),
            ("--set", self.cli_params.get(spec.name, {})),
        ]
        params = dict(spec.defaults)
        for source, layer in layers:
            if not isinstance(layer, dict):
                raise ConfigError(f"{source}: expected a mapping of hyperparameters")
            _check_params(spec, layer, source)
            params.update(layer)
        return params

    def check_all(self, specs: list[ModelSpec], datasets: list[str]) -> None:
        """Validate every layer for every (model, dataset) before any run starts."""
        known = {s.name for s in specs}
        for source, layer in (("--config params", self.experiment_params), ("--set", self.cli_params)):
            for model in layer:
                if model not in known:
                    raise ConfigError(
                        f"{source}: parameters given for model '{model}', which is not in this run "
                        f"(models: {', '.join(sorted(known))})"
                    )
        for spec in specs:
            for ds in datasets:
                self.resolve(spec, ds)

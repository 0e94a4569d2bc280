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
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import sessbench
from sessbench.errors import ConfigError
from sessbench.models import ModelSpec

PROTOCOLS = ("validated", "paper")

#: the models `sessbench run` runs when none are named: the paper's Table 2 models and the simple
#: models. The five SR-GNN variants (the paper's ablation, `--models all` or `srgnn-variants`) are
#: left out so that the first run finishes within 10 minutes on 2 cores.
DEFAULT_MODELS = "paper,simple"

#: experiment keys, their types, and defaults
EXPERIMENT_KEYS: dict[str, tuple[tuple[type, ...], Any]] = {
    "models": ((str, list), DEFAULT_MODELS),
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


#: the largest seed every random generator sessbench seeds accepts (numpy's legacy seeding: 2**32 - 1)
MAX_SEED = 2**32 - 1


def positive_finite(value: Any) -> bool:
    """A number of seconds (or a size) that means something: > 0, not NaN, not infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def default_config_dir() -> Path:
    """`$SESSBENCH_CONFIG_DIR`, else the `configs/` folder of the sessbench checkout, else ./configs."""
    env = os.environ.get("SESSBENCH_CONFIG_DIR")
    if env:
        return Path(env)
    repo = Path(sessbench.__file__).resolve().parents[1] / "configs"
    return repo if repo.is_dir() else Path("configs")


#: key path (tuple of keys from the top) -> 1-based line, for error messages
KeyLines = dict[tuple[str, ...], int]


def _key_lines(node: Any, prefix: tuple[str, ...] = (), out: KeyLines | None = None) -> KeyLines:
    """Where each key of a composed YAML document sits (mappings only; lists are leaves)."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*prefix, str(key_node.value))
            out[key] = key_node.start_mark.line + 1
            _key_lines(value_node, key, out)
    return out


def where(source: str, lines: KeyLines | None, *key: str) -> str:
    """`source, line N` for a key path when its line is known, else `source`."""
    line = (lines or {}).get(tuple(key))
    return f"{source}, line {line}" if line else source


#: most nodes a YAML document may expand to, aliases expanded (real configs have hundreds): a
#: few hundred bytes of nested aliases ("billion laughs") expand to billions of nodes
MAX_YAML_NODES = 100_000
#: deepest nesting of a YAML document (the parser recurses once per level)
MAX_YAML_DEPTH = 100


def _expanded_size(root: yaml.Node, source: str) -> int:
    """How many nodes `root` holds with every alias expanded, without expanding anything.

    Aliases make the composed graph share nodes; the expanded size is the size of the tree a
    constructor, a walk or a repr would build. Counted bottom-up once per node (memoized), and
    stopped as soon as it passes MAX_YAML_NODES. A node inside itself (`&a [*a]`) is refused.
    """
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_nodes: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
            if sizes[key] > MAX_YAML_NODES:
                raise _refused(source, node, f"expands to more than {MAX_YAML_NODES:,} values through its aliases, "
                               "which could take minutes and gigabytes to build")
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise _refused(source, node, "refers to itself through an alias (a structure without end)")
        if len(open_nodes) >= MAX_YAML_DEPTH:
            raise _refused(source, node, f"nests deeper than {MAX_YAML_DEPTH} levels")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _refused(source: str, node: yaml.Node, problem: str) -> ConfigError:
    line = node.start_mark.line + 1 if node.start_mark is not None else None
    at = f", line {line}" if line else ""
    return ConfigError(
        f"{source}{at}: the YAML document {problem}, so sessbench refuses it before building it. "
        "Fix: write the values out plainly, without nesting anchors (&name) and aliases (*name)."
    )


def load_yaml_text(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """Parse YAML text with the safe loader, bounded: the composed document is checked
    (`_expanded_size`) before any Python object is built from it. Returns (data, node)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return None, None
        _expanded_size(node, source)
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_document(node), node
        finally:
            loader.dispose()
    except RecursionError:
        raise ConfigError(
            f"{source}: the YAML document nests too deeply to read. Fix: flatten it (at most {MAX_YAML_DEPTH} levels)."
        ) from None


def read_yaml_lines(path: Path) -> tuple[dict[str, Any], KeyLines]:
    """Read a YAML mapping with the safe loader (bounded: `load_yaml_text`), plus the line of
    every key (for errors)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror}. Check the path given to --config."
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file ({exc.reason} at byte {exc.start}). Pass a YAML file.") from None
    try:
        data, node = load_yaml_text(text, str(path))
        lines = _key_lines(node) if node is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{at}: invalid YAML ({problem}). Fix the syntax there.") from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of keys to values at the top level, got a "
            f"{type(data).__name__}. Write one 'key: value' per line."
        )
    return data, lines


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader, with errors that name the file and line."""
    return read_yaml_lines(path)[0]


def _did_you_mean(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def _example(key: str) -> str:
    return {
        "models": "models: [pop, s-pop]", "datasets": "datasets: [synthetic, diginetica]",
        "dataset_params": "dataset_params: {test_days: 7}", "seeds": "seeds: [0, 1, 2]",
        "protocol": "protocol: validated", "validation_fraction": "validation_fraction: 0.1",
        "device": "device: auto", "data_dir": "data_dir: ~/data", "cache_dir": "cache_dir: ~/.cache/sessbench",
        "runs_dir": "runs_dir: runs", "time_budget_s": "time_budget_s: 3600", "eval_batch_size": "eval_batch_size: 512",
        "params": "params: {srgnn: {epochs: 10}}",
    }.get(key, f"{key}: ...")


def validate_experiment(data: dict[str, Any], source: str, lines: KeyLines | None = None) -> dict[str, Any]:
    """Check keys, types and ranges of an experiment mapping (the schema is EXPERIMENT_KEYS); fill defaults.

    Every error names the file, the line of the key and an example of a valid value.
    """
    out: dict[str, Any] = {}

    def fail(key: str, problem: str, *path: str) -> ConfigError:
        return ConfigError(f"{where(source, lines, *(path or (key,)))}: {problem}. Write it like '{_example(key)}'.")

    for key, value in data.items():
        key = str(key)
        if key not in EXPERIMENT_KEYS:
            raise ConfigError(
                f"{where(source, lines, key)}: unknown key '{key}'.{_did_you_mean(key, list(EXPERIMENT_KEYS))} "
                f"Valid keys: {', '.join(EXPERIMENT_KEYS)}."
            )
        types, _ = EXPERIMENT_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise fail(key, f"key '{key}' must be {names}, got {type(value).__name__} ({value!r})")
        out[key] = value
    for key, (_, default) in EXPERIMENT_KEYS.items():
        out.setdefault(key, default)
    if out["protocol"] not in PROTOCOLS:
        raise fail("protocol", f"protocol must be one of {', '.join(PROTOCOLS)}, got '{out['protocol']}'")
    if not 0 <= float(out["validation_fraction"]) < 1:
        raise fail("validation_fraction", f"validation_fraction must be in [0, 1), got {out['validation_fraction']}")
    if out["time_budget_s"] is not None and not positive_finite(out["time_budget_s"]):
        raise fail("time_budget_s", f"time_budget_s must be a positive, finite number of seconds (leave it out for "
                   f"no budget), got {out['time_budget_s']}")
    if out["eval_batch_size"] is not None and out["eval_batch_size"] < 1:
        raise fail("eval_batch_size", f"eval_batch_size must be a positive integer, got {out['eval_batch_size']}")
    if isinstance(out["datasets"], str):
        out["datasets"] = [out["datasets"]]
    if not out["datasets"] or not all(isinstance(d, str) and d for d in out["datasets"]):
        raise fail("datasets", f"datasets must be a non-empty list of dataset names, got {out['datasets']!r}")
    if isinstance(out["seeds"], int):
        out["seeds"] = [out["seeds"]]
    if not out["seeds"] or not all(isinstance(s, int) and not isinstance(s, bool) for s in out["seeds"]):
        raise fail("seeds", f"seeds must be a non-empty list of integers, got {out['seeds']!r}")
    bad_seeds = [s for s in out["seeds"] if not 0 <= s <= MAX_SEED]
    if bad_seeds:
        raise fail("seeds", f"seeds must be integers from 0 to {MAX_SEED} (what numpy and torch accept), got {bad_seeds[0]}")
    if isinstance(out["models"], list):
        if not out["models"] or not all(isinstance(m, str) and m for m in out["models"]):
            raise fail("models", f"models must be a name, a group or a list of names, got {out['models']!r}")
        out["models"] = ",".join(out["models"])
    for name, value in out["dataset_params"].items():
        if isinstance(value, (dict, list)):
            raise fail("dataset_params", f"dataset_params.{name} must be a single value, got {value!r}",
                       "dataset_params", str(name))
    for model, params in out["params"].items():
        if not isinstance(params, dict):
            raise fail("params", f"params.{model} must be a mapping of hyperparameters, got {params!r}",
                       "params", str(model))
    return out


def load_experiment(path: Path | None) -> dict[str, Any]:
    """The experiment file validated against the schema (defaults when no file is given)."""
    if path is None:
        return validate_experiment({}, "defaults")
    data, lines = read_yaml_lines(Path(path))
    out = validate_experiment(data, str(path), lines)
    out["_source"], out["_lines"] = str(path), lines  # for errors found later (ParamResolver)
    return out


def parse_set_options(values: list[str]) -> dict[str, dict[str, Any]]:
    """`--set model.key=value` (value parsed as YAML) -> {model: {key: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for text in values:
        lhs, eq, rhs = text.partition("=")
        model, dot, key = lhs.partition(".")
        if not eq or not dot or not model or not key:
            raise ConfigError(f"--set '{text}': expected MODEL.KEY=VALUE, e.g. --set srgnn.epochs=5")
        try:
            value = load_yaml_text(rhs, f"--set '{text}'")[0]
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


def _check_params(
    spec: ModelSpec, params: dict[str, Any], source: str, lines: KeyLines | None = None, path: tuple[str, ...] = ()
) -> None:
    """Keys and types of one layer of hyperparameters against the model's registered defaults."""
    allowed = allowed_params(spec)
    for key, value in params.items():
        key = str(key)
        at = where(source, lines, *path, key)
        if allowed is not None and key not in allowed:
            valid = ", ".join(sorted(allowed)) or "none"
            raise ConfigError(
                f"{at}: model '{spec.name}' has no hyperparameter '{key}'."
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
                f"{at}: {spec.name}.{key} must be {type(default).__name__} "
                f"(default {default!r}), got {type(value).__name__} ({value!r}). "
                f"Write it like '{key}: {default!r}'."
            )


MODEL_FILE_KEYS = ("inherit", "defaults", "datasets", "description", "source")


@dataclass
class ParamResolver:
    """Resolves a model's hyperparameters for a dataset (see the module docstring).

    experiment_source / experiment_lines: the `--config` file and its key lines, so that errors
    in its `params:` point at the line.
    """

    config_dir: Path = field(default_factory=default_config_dir)
    experiment_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    cli_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    experiment_source: str = "--config"
    experiment_lines: KeyLines = field(default_factory=dict)
    _files: dict[str, tuple[dict[str, Any], KeyLines]] = field(default_factory=dict, repr=False)

    def model_file_lines(self, model: str) -> tuple[dict[str, Any], KeyLines]:
        """`configs/models/<model>.yaml` checked against its schema, and its key lines."""
        if model in self._files:
            return self._files[model]
        path = self.config_dir / "models" / f"{model}.yaml"
        if not path.is_file():
            return {}, {}
        data, lines = read_yaml_lines(path)
        for key, value in data.items():
            if key not in MODEL_FILE_KEYS:
                raise ConfigError(
                    f"{where(str(path), lines, str(key))}: unknown top-level key '{key}'."
                    f"{_did_you_mean(str(key), list(MODEL_FILE_KEYS))} Valid: {', '.join(MODEL_FILE_KEYS)}."
                )
            if key == "inherit" and (not isinstance(value, str) or not value or value == model):
                raise ConfigError(
                    f"{where(str(path), lines, key)}: 'inherit' names the model whose file this one extends "
                    f"(a name other than '{model}'), got {value!r}. Write it like 'inherit: srgnn'."
                )
            if key in ("defaults", "datasets") and value is not None and not isinstance(value, dict):
                raise ConfigError(
                    f"{where(str(path), lines, key)}: '{key}' must be a mapping, got {type(value).__name__}. "
                    f"Write it like '{key}: {{hidden_size: 100}}'" + (" per dataset name." if key == "datasets" else ".")
                )
        from sessbench.data.registry import DATASETS

        for name, layer in (data.get("datasets") or {}).items():
            if str(name) not in DATASETS:
                raise ConfigError(
                    f"{where(str(path), lines, 'datasets', str(name))}: unknown dataset '{name}'."
                    f"{_did_you_mean(str(name), list(DATASETS))} Known datasets: {', '.join(DATASETS)}."
                )
            if layer is not None and not isinstance(layer, dict):
                raise ConfigError(
                    f"{where(str(path), lines, 'datasets', str(name))}: datasets.{name} must be a mapping of "
                    f"hyperparameters, got {type(layer).__name__}. Write it like '{name}: {{epochs: 10}}'."
                )
        self._files[model] = (data, lines)
        return data, lines

    def file_chain(self, model: str) -> list[tuple[str, dict[str, Any], KeyLines]]:
        """(path, data, lines) of a model's file and of every file it inherits from, root first.

        `inherit: srgnn` in `configs/models/srgnn-l.yaml` makes srgnn's layers apply first, layer
        by layer: the chain's `defaults` (srgnn's, then the file's own), then the chain's layers
        for the dataset (the same order), so a parent's `datasets.X` beats a child's `defaults`
        (an SR-GNN variant keeps SR-GNN's hyperparameters without copying them).
        """
        chain: list[tuple[str, dict[str, Any], KeyLines]] = []
        seen: list[str] = []
        current: str | None = model
        while current is not None:
            if current in seen:
                raise ConfigError(
                    f"configs/models: the 'inherit' keys form a cycle ({' -> '.join([*seen, current])}); "
                    "remove one of them."
                )
            seen.append(current)
            path = self.config_dir / "models" / f"{current}.yaml"
            if current != model and not path.is_file():
                raise ConfigError(
                    f"{self.config_dir / 'models' / (seen[-2] + '.yaml')}: inherits from '{current}', but "
                    f"{path} does not exist. Fix the name after 'inherit:'."
                )
            data, lines = self.model_file_lines(current)
            chain.insert(0, (str(path), data, lines))
            current = data.get("inherit")
        return chain

    def resolve(self, spec: ModelSpec, dataset: str, *, overrides: bool = True) -> dict[str, Any]:
        """Hyperparameters for `spec` on `dataset` (a dataset name such as 'yoochoose64').

        Layers, later wins: the registered defaults; the `defaults` of the model's file chain
        (inherited files first), then their layers for `dataset`; the experiment file's params;
        `--set`. `overrides=False` stops before the experiment file and `--set`: the model's
        default configuration, which the report prefers when a model ran in several.
        """
        chain = self.file_chain(spec.name)
        exp_lines = self.experiment_lines
        layers: list[tuple[str, KeyLines | None, tuple[str, ...], Any]] = [
            *((path, lines, ("defaults",), data.get("defaults") or {}) for path, data, lines in chain),
            *((path, lines, ("datasets", dataset), (data.get("datasets") or {}).get(dataset) or {})
              for path, data, lines in chain),
        ]
        if overrides:
            layers += [
                (self.experiment_source, exp_lines, ("params", spec.name), self.experiment_params.get(spec.name, {})),
                ("--set", None, (), self.cli_params.get(spec.name, {})),
            ]
        params = dict(spec.defaults)
        for source, key_lines, prefix, layer in layers:
            if not isinstance(layer, dict):
                raise ConfigError(f"{where(source, key_lines, *prefix)}: expected a mapping of hyperparameters")
            _check_params(spec, layer, source, key_lines, prefix)
            params.update(layer)
        return params

    def check_all(self, specs: list[ModelSpec], datasets: list[str]) -> None:
        """Validate every layer for every (model, dataset) before any run starts."""
        known = {s.name for s in specs}
        for source, lines, layer in (
            (self.experiment_source, self.experiment_lines, self.experiment_params), ("--set", None, self.cli_params)
        ):
            for model in layer:
                if model not in known:
                    raise ConfigError(
                        f"{where(source, lines, 'params', model) if lines else source}: parameters given for model "
                        f"'{model}', which is not in this run (models: {', '.join(sorted(known))})."
                        f"{_did_you_mean(model, sorted(known))} Add it to --models or remove its parameters."
                    )
        for spec in specs:
            for ds in datasets:
                self.resolve(spec, ds)

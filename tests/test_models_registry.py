"""The registry: decorator, groups, did-you-mean, and plugins through the entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sessbench.errors import UnknownNameError
from sessbench.models import (
    SessionRecommender,
    get_model,
    model_groups,
    register_model,
    registered_models,
    resolve_models,
)


def test_builtin_models_arrive_through_entry_points() -> None:
    models = registered_models()
    assert {"pop", "s-pop"} <= set(models)
    assert models["pop"].source == "baselines.popularity"
    assert "pop" in model_groups()["baselines"]


def test_resolve_groups_and_names() -> None:
    assert resolve_models("pop") == ["pop"]
    assert resolve_models("s-pop,pop,pop") == ["s-pop", "pop"]
    assert set(resolve_models("all")) >= {"pop", "s-pop"}
    assert set(resolve_models("baselines")) >= {"pop", "s-pop"}


def test_unknown_name_suggests() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 's-pop'"):
        resolve_models("spop")
    with pytest.raises(UnknownNameError, match="sessbench models"):
        get_model("nothing-like-it")


def test_decorator_rejects_non_models_and_name_clashes() -> None:
    with pytest.raises(TypeError):
        register_model("not-a-model")(object)  # type: ignore[arg-type]

    class Other(SessionRecommender):
        def fit(self, data, ctx):  # pragma: no cover
            pass

        def score(self, batch):  # pragma: no cover
            pass

    with pytest.raises(ValueError, match="already registered"):
        register_model("pop")(Other)


PLUGIN = '''
"""A toy plugin: scores items by their index (a deterministic, easily checked ranking)."""
import torch
from sessbench.models import SessionRecommender, register_model


@register_model("toy-plugin", groups=("toys",), defaults={"offset": 0.0}, description="toy plugin model")
class ToyPlugin(SessionRecommender):
    def fit(self, data, ctx):
        self.n_items = data.n_items

    def score(self, batch):
        return torch.arange(self.n_items + 1, dtype=torch.float32).expand(len(batch), -1) + self.params["offset"]
'''

BROKEN = "raise ImportError('this plugin is broken on purpose')\n"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build and install two tiny distributions (one working, one broken) into a private site dir."""
    root = tmp_path_factory.mktemp("plugins")
    site = root / "site"
    for name, module, code in (("toy-plugin", "toy_plugin", PLUGIN), ("broken-plugin", "broken_plugin", BROKEN)):
        src = root / name
        src.mkdir()
        (src / f"{module}.py").write_text(code)
        (src / "pyproject.toml").write_text(textwrap.dedent(f'''
            [build-system]
            requires = ["setuptools>=64"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "{name}"
            version = "0.1"
            [tool.setuptools]
            py-modules = ["{module}"]
            [project.entry-points."sessbench.models"]
            {module} = "{module}"
        '''))
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
             "--target", str(site), str(src)],
            check=True, capture_output=True,
        )
    return site


def _sessbench(args: list[str], site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "sessbench.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_installed_plugin_runs_through_sessbench_run(plugin_site: Path, tmp_path: Path) -> None:
    listing = _sessbench(["models", "--json"], plugin_site, tmp_path)
    assert listing.returncode == 0, listing.stderr
    info = json.loads(listing.stdout)
    assert info["models"]["toy-plugin"]["groups"] == ["all", "toys"]
    assert "broken_plugin" in info["plugin_errors"]  # the broken one is reported, the others load

    res = _sessbench(
        ["--quiet", "run", "--models", "toys", "--dataset", "synthetic:n_sessions=400,n_items=60",
         "--runs-dir", str(tmp_path / "runs")],
        plugin_site, tmp_path,
    )
    assert res.returncode == 0, res.stderr
    records = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*.json")]
    assert {r["model"] for r in records} == {"toy-plugin", "oracle", "pop"}  # oracle and POP: references
    toy = next(r for r in records if r["model"] == "toy-plugin")
    assert toy["status"] == "ok" and toy["config"]["params"] == {"offset": 0.0}
    assert 0.0 <= toy["metrics"]["P@20"] <= 1.0

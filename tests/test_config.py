"""Configuration: safe YAML, schema validation with clear messages, resolution order."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessbench.config import ParamResolver, load_experiment, parse_set_options, read_yaml
from sessbench.errors import ConfigError
from sessbench.models import ModelSpec, SessionRecommender


class Dummy(SessionRecommender):
    def fit(self, data, ctx):  # pragma: no cover
        pass

    def score(self, batch):  # pragma: no cover
        pass


SPEC = ModelSpec("dummy", Dummy, ("all",), {"hidden": 100, "lr": 0.001, "shared": True}, "", "tests")


def test_defaults_when_no_file() -> None:
    exp = load_experiment(None)
    assert exp["protocol"] == "validated" and exp["seeds"] == [0] and exp["datasets"] == ["synthetic"]


def test_unknown_key_has_did_you_mean(tmp_path: Path) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text("modles: all\n")
    with pytest.raises(ConfigError, match=r"exp.yaml, line 1: unknown key 'modles'. Did you mean 'models'"):
        load_experiment(f)


def test_wrong_type_names_key(tmp_path: Path) -> None:
    f = tmp_path / "exp.yaml"
    f.write_text("seeds: three\n")
    with pytest.raises(ConfigError, match="key 'seeds' must be"):
        load_experiment(f)
    f.write_text("protocol: best-of-test\n")
    with pytest.raises(ConfigError, match="protocol must be one of"):
        load_experiment(f)


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("models: all\nseeds: [0, 1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml, line \d+: invalid YAML"):
        read_yaml(f)


def test_yaml_is_read_safely(tmp_path: Path) -> None:
    f = tmp_path / "evil.yaml"
    f.write_text("models: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError):
        read_yaml(f)


def test_resolution_order(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "dummy.yaml").write_text(
        "defaults: {hidden: 50}\ndatasets:\n  diginetica: {hidden: 60, lr: 0.01}\n"
    )
    r = ParamResolver(tmp_path, {"dummy": {"lr": 0.005}}, parse_set_options(["dummy.shared=false"]))
    assert r.resolve(SPEC, "synthetic") == {"hidden": 50, "lr": 0.005, "shared": False}
    assert r.resolve(SPEC, "diginetica") == {"hidden": 60, "lr": 0.005, "shared": False}


def test_param_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no hyperparameter 'hiden'. Did you mean 'hidden'"):
        ParamResolver(tmp_path, cli_params={"dummy": {"hiden": 1}}).resolve(SPEC, "x")
    with pytest.raises(ConfigError, match="dummy.hidden must be int"):
        ParamResolver(tmp_path, cli_params={"dummy": {"hidden": "big"}}).resolve(SPEC, "x")
    # an int where a float is expected is fine
    assert ParamResolver(tmp_path, cli_params={"dummy": {"lr": 1}}).resolve(SPEC, "x")["lr"] == 1
    with pytest.raises(ConfigError, match="not in this run"):
        ParamResolver(tmp_path, cli_params={"other": {"a": 1}}).check_all([SPEC], ["x"])


def test_set_option_syntax() -> None:
    assert parse_set_options(["m.a=3", "m.b=[1, 2]", "n.c=text"]) == {"m": {"a": 3, "b": [1, 2]}, "n": {"c": "text"}}
    with pytest.raises(ConfigError, match="MODEL.KEY=VALUE"):
        parse_set_options(["epochs=3"])


def test_a_model_file_can_inherit_another(tmp_path: Path) -> None:
    from sessbench.config import ParamResolver
    from sessbench.models import get_model

    models = tmp_path / "models"
    models.mkdir()
    (models / "srgnn.yaml").write_text("defaults: {dropout: 0.1}\ndatasets:\n  synthetic: {epochs: 7}\n  diginetica: {epochs: 3}\n")
    (models / "srgnn-l.yaml").write_text("inherit: srgnn\ndatasets:\n  diginetica: {epochs: 4}\n")
    resolver = ParamResolver(config_dir=tmp_path)
    child = get_model("srgnn-l")
    assert resolver.resolve(child, "synthetic")["epochs"] == 7 and resolver.resolve(child, "synthetic")["dropout"] == 0.1
    assert resolver.resolve(child, "diginetica")["epochs"] == 4  # its own layer wins
    (models / "srgnn.yaml").write_text("inherit: srgnn-l\n")
    with pytest.raises(ConfigError, match="cycle"):
        ParamResolver(config_dir=tmp_path).resolve(child, "synthetic")
    (models / "srgnn-l.yaml").write_text("inherit: nosuchmodel\n")
    with pytest.raises(ConfigError, match="does not exist"):
        ParamResolver(config_dir=tmp_path).resolve(child, "synthetic")


def test_the_variants_share_srgnns_hyperparameters() -> None:
    from sessbench.config import ParamResolver
    from sessbench.models import get_model

    resolver = ParamResolver()
    for dataset in ("synthetic", "yoochoose64", "diginetica", "yoochoose4", "yoochoose"):
        base = resolver.resolve(get_model("srgnn"), dataset)
        for variant in ("srgnn-ngc", "srgnn-fc", "srgnn-l", "srgnn-avg", "srgnn-att"):
            params = resolver.resolve(get_model(variant), dataset)
            assert {k: params[k] for k in base} == base, (variant, dataset)

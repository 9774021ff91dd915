"""Tests of bnn_shared.config: pydantic schemas from YAML, flags and overrides, and the one-line
errors they raise."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Literal, Optional

import pytest
import yaml
from bnn_shared.config import (
    ConfigModel,
    add_config_arguments,
    apply_overrides,
    config_from_arguments,
    from_dict,
    load_config,
    load_yaml,
    parse_value,
    to_dict,
)
from bnn_shared.errors import BnnError, ConfigError
from pydantic import Field, model_validator


class Optim(ConfigModel):
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    name: Literal["adam", "sgd"] = "adam"


class Model(ConfigModel):
    hidden: int
    layers: list[int] = [4, 4]
    dropout: Optional[float] = None  # noqa: UP045  (the Optional spelling is supported too)
    act: str | None = "relu"


class Config(ConfigModel):
    model: Model
    optim: Optim = Field(default_factory=Optim)
    epochs: int = 3
    binary: bool = True
    shape: tuple[int, ...] = (1, 28, 28)
    extra: dict[str, Any] = {}
    data_dir: Path = Path("data")

    @model_validator(mode="after")
    def _hidden_fits_layers(self):
        if self.model.hidden > 1000:
            raise ValueError("model.hidden must be at most 1000")
        return self


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


class TestFromDict:
    def test_nested_build_and_defaults(self):
        cfg = from_dict(Config, {"model": {"hidden": 8}, "optim": {"lr": 1, "name": "sgd"}})
        assert cfg.model == Model(hidden=8)
        assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
        assert cfg.optim.name == "sgd" and cfg.epochs == 3

    def test_containers_are_converted(self):
        data = {
            "model": {"hidden": 2, "layers": [1, 2, 3], "dropout": 0.5, "act": None},
            "optim": {"betas": [0.8, 0.9]},
            "shape": [3, 32, 32],
            "extra": {"note": [1, "x"]},
            "data_dir": "/tmp/d",
        }
        cfg = from_dict(Config, data)
        assert cfg.model.layers == [1, 2, 3] and cfg.model.dropout == 0.5 and cfg.model.act is None
        assert cfg.optim.betas == (0.8, 0.9)
        assert cfg.shape == (3, 32, 32)
        assert cfg.extra == {"note": [1, "x"]}
        assert cfg.data_dir == Path("/tmp/d")

    def test_to_dict_round_trips_through_yaml(self):
        cfg = from_dict(Config, {"model": {"hidden": 8}})
        plain = to_dict(cfg)
        assert plain["optim"]["betas"] == [0.9, 0.999] and plain["data_dir"] == "data"
        assert from_dict(Config, yaml.safe_load(yaml.safe_dump(plain))) == cfg

    def test_unknown_key_names_path_source_and_suggestion(self):
        with pytest.raises(ConfigError) as info:
            from_dict(Config, {"model": {"hidden": 8}, "optim": {"lrr": 0.1}}, source="a.yaml")
        message = str(info.value)
        assert "a.yaml" in message and "'lrr'" in message and "'optim.lrr'" in message
        assert "did you mean 'lr'?" in message

    def test_unknown_top_level_key_without_close_match_lists_valid_keys(self):
        with pytest.raises(ConfigError, match=r"unknown key 'zzz'.*valid keys: model, optim"):
            from_dict(Config, {"model": {"hidden": 8}, "zzz": 1})

    def test_missing_required_key(self):
        with pytest.raises(ConfigError, match=r"f\.yaml: missing required key 'model\.hidden'"):
            from_dict(Config, {"model": {}}, source="f.yaml")

    @pytest.mark.parametrize(
        ("data", "pattern"),
        [
            ({"epochs": "3"}, r"'epochs' must be a valid integer, got str"),
            ({"epochs": True}, r"'epochs' must be a valid integer, got bool"),
            ({"epochs": 2.0}, r"'epochs' must be a valid integer, got float"),
            ({"binary": 1}, r"'binary' must be a valid boolean, got int"),
            ({"optim": {"lr": "fast"}}, r"'optim\.lr' must be a valid number, got str"),
            ({"optim": {"lr": False}}, r"'optim\.lr' must be a valid number, got bool"),
            ({"optim": {"lr": 0}}, r"'optim\.lr' must be greater than 0, got int \(0\)"),
            ({"optim": {"name": "rmsprop"}}, r"'optim\.name' must be 'adam' or 'sgd'"),
            ({"optim": {"betas": [0.9]}}, r"missing required key 'optim\.betas\[1\]'"),
            ({"model": {"hidden": 1, "layers": [1, "a"]}}, r"'model\.layers\[1\]' must be a valid"),
            ({"model": {"hidden": 1, "dropout": "x"}}, r"'model\.dropout' must be a valid number"),
            ({"model": 5}, r"'model' must be a valid dictionary"),
            ({"extra": {1: 2}}, r"must be a valid string, got int"),
            ({"shape": 3}, r"'shape' must be a valid tuple, got int"),
            ({"model": {"hidden": 2000}}, r"cfg\.yaml: model\.hidden must be at most 1000$"),
        ],
    )
    def test_wrong_types_name_key_expected_and_given(self, data, pattern):
        data = {"model": {"hidden": 1}, **data}
        with pytest.raises(ConfigError, match=pattern) as info:
            from_dict(Config, data, source="cfg.yaml")
        assert str(info.value).startswith("cfg.yaml: ")

    def test_needs_a_schema(self):
        with pytest.raises(TypeError):
            from_dict(dict, {})

    def test_every_problem_on_one_line(self):
        data = {"model": {"hidden": "x", "layer": 1}, "epochs": -0.5}
        with pytest.raises(ConfigError) as info:
            from_dict(Config, data, source="c.yaml")
        message = str(info.value)
        assert "\n" not in message and message.count("; ") >= 2
        assert "'model.hidden'" in message and "'layer'" in message and "'epochs'" in message

    def test_assignment_is_validated(self):
        cfg = from_dict(Config, {"model": {"hidden": 8}})
        with pytest.raises(ValueError):
            cfg.epochs = "many"


class TestYaml:
    def test_load_yaml_reads_exponent_floats(self, tmp_path):
        path = _write(tmp_path, "a: 1e-3\nb: 2E5\nc: -1.5e+2\nd: 10\ne: 1.0\nf: 1e\n")
        assert load_yaml(path) == {"a": 1e-3, "b": 2e5, "c": -150.0, "d": 10, "e": 1.0, "f": "1e"}

    def test_empty_file_is_an_empty_mapping(self, tmp_path):
        assert load_yaml(_write(tmp_path, "")) == {}

    def test_missing_file(self, tmp_path):
        with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
            load_yaml(tmp_path / "nope.yaml")

    def test_syntax_error_names_file_and_line(self, tmp_path):
        path = _write(tmp_path, "a: 1\nb: [1, 2\n")
        with pytest.raises(ConfigError, match=r"config\.yaml: invalid YAML: .* line \d+"):
            load_yaml(path)

    def test_top_level_must_be_a_mapping(self, tmp_path):
        with pytest.raises(ConfigError, match="must be a mapping"):
            load_yaml(_write(tmp_path, "- 1\n- 2\n"))

    def test_load_config_with_overrides(self, tmp_path):
        path = _write(tmp_path, "model:\n  hidden: 8\noptim:\n  lr: 1e-2\n")
        cfg = load_config(path, Config, ["optim.lr=3e-4", "model.layers=[2, 2]", "binary=false"])
        assert cfg.optim.lr == 3e-4 and cfg.model.layers == [2, 2] and cfg.binary is False

    def test_load_config_error_names_the_file(self, tmp_path):
        path = _write(tmp_path, "model:\n  hiden: 8\n")
        with pytest.raises(ConfigError, match=r"config\.yaml: unknown key 'hiden'.*'hidden'"):
            load_config(path, Config)


class TestOverrides:
    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ("1e-3", 1e-3),
            ("3", 3),
            ("0.5", 0.5),
            ("true", True),
            ("[1, 2]", [1, 2]),
            ("adam", "adam"),
            ("null", None),
            ("'7'", "7"),
        ],
    )
    def test_values_are_parsed_as_yaml(self, text, value):
        assert parse_value(text) == value
        assert type(parse_value(text)) is type(value)

    def test_nested_keys_are_created_and_input_is_not_changed(self):
        data = {"optim": {"lr": 0.1}}
        result = apply_overrides(data, ["optim.lr=1e-3", "model.hidden=4", "epochs = 2"])
        assert result == {"optim": {"lr": 1e-3}, "model": {"hidden": 4}, "epochs": 2}
        assert data == {"optim": {"lr": 0.1}}

    def test_value_may_contain_equals_sign(self):
        assert apply_overrides({}, ["name=a=b"]) == {"name": "a=b"}

    @pytest.mark.parametrize("item", ["lr", "=3", "optim..lr=1", "optim.=1", ".lr=1"])
    def test_malformed_items(self, item):
        with pytest.raises(ConfigError, match="malformed override"):
            apply_overrides({}, [item])

    def test_cannot_walk_through_a_scalar(self):
        with pytest.raises(ConfigError, match="'optim' is float, not a mapping"):
            apply_overrides({"optim": 0.1}, ["optim.lr=1"])

    def test_unparsable_value(self):
        with pytest.raises(ConfigError, match=r"override 'a=\[1': cannot parse value"):
            apply_overrides({}, ["a=[1"])

    def test_errors_are_user_errors(self):
        assert issubclass(ConfigError, BnnError)


class TestCommandLine:
    class Flat(ConfigModel):
        name: str = "mnist"
        layers: list[int] = Field([2000, 1000], description="LUTs per layer")
        lr: float = 1e-2
        feature_wise: bool = True
        alpha: float | None = None

    def parse(self, argv, path=None, overrides=()):
        parser = argparse.ArgumentParser()
        add_config_arguments(parser, self.Flat)
        args = parser.parse_args(argv)
        return config_from_arguments(self.Flat, args, path=path, overrides=overrides)

    def test_descriptions_are_help_texts(self, capsys):
        parser = argparse.ArgumentParser()
        add_config_arguments(parser, self.Flat)
        with pytest.raises(SystemExit):
            parser.parse_args(["--help"])
        assert "LUTs per layer" in capsys.readouterr().out

    def test_defaults_then_file_then_flags(self, tmp_path):
        path = tmp_path / "c.yaml"
        path.write_text("lr: 0.5\nlayers: [10]\nname: digits\n")
        assert self.parse([]) == self.Flat()
        cfg = self.parse(["--layers", "3", "4", "--feature-wise", "false", "--name", "123"], path)
        assert cfg == self.Flat(name="123", layers=[3, 4], lr=0.5, feature_wise=False)

    def test_types_are_validated_and_name_the_key(self):
        with pytest.raises(ConfigError, match="lr"):
            self.parse(["--lr", "fast"])

    def test_bare_boolean_flag_and_optional(self):
        cfg = self.parse(["--feature_wise", "--alpha", "1e-3"])
        assert cfg.feature_wise is True and cfg.alpha == pytest.approx(1e-3)

    def test_overrides_apply_last(self):
        assert self.parse(["--lr", "0.1"], overrides=["lr=0.2"]).lr == pytest.approx(0.2)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinite_floats_are_refused(value):
    with pytest.raises(ConfigError, match="'optim.lr' must be a finite number"):
        from_dict(Config, {"model": {"hidden": 1}, "optim": {"lr": value}})

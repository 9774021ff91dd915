"""``TrainConfig``: constraints name the key, the encoder comes from the registry, flags,
YAML and ``--set`` fill the same schema."""

from __future__ import annotations

import pytest
from bnn_shared.config import config_from_arguments, from_dict
from bnn_shared.errors import ConfigError
from dwn.binarization import ENCODERS
from dwn.config import TrainConfig
from dwn.experiment import make_encoder
from dwn.train import parse_args

OUT_OF_RANGE = [
    ("epochs", 0),
    ("batch_size", 0),
    ("test_batch_size", -1),
    ("lr", 0.0),
    ("lr", -1e-3),
    ("step_size", 0),
    ("gamma", 0.0),
    ("bits", 0),
    ("n", 0),
    ("n", 11),
    ("tau", 0.0),
    ("lm_tau", -1.0),
    ("train_size", 1.0),
    ("layers", [0]),
    ("layers", []),
    ("mapping", []),
]


@pytest.mark.parametrize(("key", "value"), OUT_OF_RANGE)
def test_out_of_range_value_is_one_line_naming_the_key(key, value):
    data = {key: value, **({"mapping": ["random"]} if key == "layers" else {})}
    with pytest.raises(ConfigError, match=rf"key '{key}(\[0\])?'") as error:
        from_dict(TrainConfig, data, source="x.yaml")
    assert "\n" not in str(error.value) and str(error.value).startswith("x.yaml: ")


@pytest.mark.parametrize("name", ENCODERS.names())
def test_every_registered_encoder_is_a_config_choice(name):
    cfg = TrainConfig(encoder=name.upper(), bits=2)
    assert cfg.encoder == name
    assert type(make_encoder(cfg)) is ENCODERS.get(name)


def test_unknown_encoder_lists_the_registered_ones():
    with pytest.raises(ConfigError, match=r"unknown encoder 'thermo' \(--encoder\); choose one"):
        from_dict(TrainConfig, {"encoder": "thermo"})


def test_one_mapping_per_layer():
    assert TrainConfig(layers=[5, 4, 3], mapping=["arange"]).mapping == ["arange"] * 3
    with pytest.raises(ConfigError, match="'mapping' has 2 entries but 'layers' has 3"):
        from_dict(TrainConfig, {"layers": [5, 4, 3], "mapping": ["random", "arange"]})


def test_set_overrides_file_and_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: digits\nlayers: [30]\nmapping: [random]\nlr: 0.1\n")
    args = parse_args(["--config", str(path), "--lr", "0.5", "--set", "epochs=2", "bits=4"])
    cfg = config_from_arguments(TrainConfig, args, path=args.config, overrides=args.overrides)
    assert (cfg.dataset, cfg.layers, cfg.lr, cfg.epochs, cfg.bits) == ("digits", [30], 0.5, 2, 4)
    assert cfg.mapping == ["random"]


def test_set_with_bad_value_names_the_key():
    args = parse_args(["--set", "batch_size=0"])
    with pytest.raises(ConfigError, match="key 'batch_size'"):
        config_from_arguments(TrainConfig, args, overrides=args.overrides)

"""Configs load with the paper values; mistakes name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from bnn_shared.errors import ConfigError
from hadamrnn.config import load
from hadamrnn.getters import MODELS

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "hadamrnn"
NAMES = ["copy", "pmnist", "smnist", "imdb", "sst2", "qqp", "sdigits", "pdigits"]

#: (hidden, input, output, basic_block, batch, epochs, lr, gamma, seed) from the spec's table
PAPER = {
    "copy": (128, 10, 9, "full", 128, 10, 1e-4, 0.98, 712),
    "pmnist": (512, 1, 10, "full", 100, 100, 1e-3, 0.98, 8),
    "smnist": (512, 1, 10, "full", 64, 100, 1e-3, 0.98, 68),
    "imdb": (128, 512, 1, "full", 100, 30, 5e-4, 0.99, 8),
    "sst2": (128, 256, 1, "full", 100, 30, 5e-4, 0.99, 8),
    "qqp": (512, 256, 1, 7, 20, 50, 5e-4, 0.99, 8),
}


@pytest.mark.parametrize("name", NAMES)
def test_every_config_loads(name):
    cfg = load(CONFIGS / f"{name}.yaml")
    assert MODELS.canonical(cfg.model.name) == "hadamrnn"
    assert cfg.model.num_bits == 4 and cfg.model.qoutput
    assert cfg.model.engine == "parallel"


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_values(name):
    cfg = load(CONFIGS / f"{name}.yaml")
    m, t = cfg.model, cfg.train
    got = (
        m.hidden_size,
        m.input_size,
        m.output_size,
        m.basic_block,
        t.batch_size,
        t.n_epochs,
        t.lr,
        t.gamma,
        m.seed,
    )
    assert got == PAPER[name]
    assert t.optimizer == "adam"


def test_copy_task_and_nlp_specifics():
    copy = load(CONFIGS / "copy.yaml")
    assert copy.model.manytomany and copy.dataset.seq_length == 1000
    assert (copy.dataset.train, copy.dataset.val, copy.dataset.test) == (512000, 2000, 2000)
    assert copy.train.metrics == "none"
    for name, vocab in (("imdb", 10000), ("sst2", 30522), ("qqp", 30522)):
        cfg = load(CONFIGS / f"{name}.yaml")
        assert cfg.model.vocab_size == vocab and cfg.train.loss_fn == "bce_with_logits"


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("MODEL:\n  HIDEN_SIZE: 3\n")
    with pytest.raises(ConfigError) as info:
        load(path)
    message = str(info.value)
    assert "hiden_size" in message and str(path) in message and "hidden_size" in message


def test_wrong_type_names_the_key_and_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("TRAIN:\n  LR: fast\n")
    with pytest.raises(ConfigError, match=r"train\.lr.*valid number") as info:
        load(path)
    assert str(path) in str(info.value)


def test_overrides_are_case_insensitive_and_validated():
    cfg = load(CONFIGS / "pmnist.yaml", ["TRAIN.LR=3e-4", "model.engine=sequential"])
    assert cfg.train.lr == 3e-4 and cfg.model.engine == "sequential"
    with pytest.raises(ConfigError, match=r"model\.engine.*unknown engine 'fast'"):
        load(CONFIGS / "pmnist.yaml", ["MODEL.ENGINE=fast"])
    assert load(None, ["MODEL.ENGINE=Sequential"]).model.engine == "sequential"


@pytest.mark.parametrize(
    "override, match",
    [
        ("MODEL.LAMBDA_ORTH=0.1", "LAMBDA_ORTH"),
        ("MODEL.SINGLE_LAYER=false", "SINGLE_LAYER"),
        ("MODEL.BASIC_BLOCK=half", "BASIC_BLOCK"),
        ("MODEL.HIDDEN_SIZE=0", r"'model\.hidden_size' must be greater than or equal to 1"),
        ("TRAIN.BATCH_SIZE=0", r"'train\.batch_size' must be greater than or equal to 1"),
        ("TRAIN.N_EPOCHS=0", r"'train\.n_epochs' must be greater than or equal to 1"),
        ("TRAIN.LR=0", r"'train\.lr' must be greater than 0"),
        ("TRAIN.SIGN_LR=-1", r"'train\.sign_lr' must be greater than or equal to 0"),
        ("TRAIN.RECURRENT_LR=-1", r"'train\.recurrent_lr' must be greater than or equal to 0"),
        ("DATASET.TRAIN=0", r"'dataset\.train' must be greater than or equal to 1"),
        ("TRAIN.MAX_BATCHES=0", r"'train\.max_batches' must be greater than or equal to 1"),
    ],
)
def test_rejected_values_name_the_file(override, match):
    with pytest.raises(ConfigError, match=match) as info:
        load(CONFIGS / "sdigits.yaml", [override])
    assert "sdigits.yaml" in str(info.value) and "\n" not in str(info.value)


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load("nope.yaml")

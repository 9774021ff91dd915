"""Bit-packed export (``hadamrnn.exporting``, ``bnn_shared.export``): every model saves, reloads
through the package's entry point and computes bit-identical outputs; what is packed and at
which precision; the file size against the summary; the ``python -m bnn_shared.export``
round trip on a tiny sdigits run; bad input."""

from __future__ import annotations

import io
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import torch
from bnn_shared import export
from bnn_shared.cli import run_cli
from bnn_shared.config import to_dict
from bnn_shared.errors import CheckpointError, ConfigError
from bnn_shared.export.__main__ import main as export_main
from bnn_shared.quantizers import uniform
from bnn_shared.summary import summary
from bnn_shared.testing import assert_bad_input, single_thread
from hadamrnn import exporting
from hadamrnn.config import DatasetConfig, ModelConfig
from hadamrnn.dataset_tools import load_split
from hadamrnn.quantized_layers import QLinear
from hadamrnn.train import main as train_main

ROOT = Path(__file__).resolve().parents[3]
SDIGITS = str(ROOT / "configs" / "hadamrnn" / "sdigits.yaml")

#: (model name, MODEL overrides, inputs): every model and variant of the package
VARIANTS = {
    "hadamrnn": ("hadamrnn", {}, "float"),
    "block_hadamrnn": ("hadamrnn", {"basic_block": 2}, "float"),
    "hadamrnn_ternary_uv": ("hadamrnn", {"num_bits": 1}, "float"),
    "hadamrnn_float_uv": ("hadamrnn", {"num_bits": None, "qoutput": False}, "float"),
    "hadamrnn_many_to_many": (
        "hadamrnn",
        {"input_size": 10, "output_size": 9, "manytomany": True, "basic_block": 3},
        "float",
    ),
    "hadamrnn_embedding": (
        "hadamrnn",
        {"input_size": 8, "output_size": 1, "vocab_size": 50, "readout": "mean"},
        "tokens",
    ),
    "ornn": ("ornn", {"num_bits": None, "orthogonal_map": "cayley"}, "float"),
    "qornn": ("qornn", {}, "float"),
    "qornn_ternary": ("qornn", {"recurrent_bits": 1}, "float"),
    "qornn_12bit": ("qornn", {"recurrent_bits": 12}, "float"),
    "lstm": ("lstm", {"num_bits": None}, "float"),
}


def _model(variant: str, hidden: int = 16):
    name, overrides, kind = VARIANTS[variant]
    config = to_dict(ModelConfig(name=name, hidden_size=hidden, **overrides))
    torch.manual_seed(3)
    model = exporting.build(name, config)
    with torch.no_grad():  # move the biases away from their init: they must round-trip too
        for param in model.parameters():
            param.add_(0.01 * torch.randn_like(param))
    return model.eval(), name, config, kind


def _inputs(model, kind: str, config: dict) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    if kind == "tokens":
        return torch.randint(0, config["vocab_size"], (5, 12), generator=generator)
    return torch.rand(5, 20, config["input_size"], generator=generator)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_reloaded_outputs_are_bit_identical(variant, tmp_path):
    model, name, config, kind = _model(variant)
    path = export.save_binary(
        model, tmp_path / "m.bnn", package="hadamrnn", model_class=name, config=config
    )
    reloaded = export.load(path)
    assert type(reloaded) is type(model) and not reloaded.training
    x = _inputs(model, kind, config)
    with torch.no_grad():
        assert torch.equal(model(x), reloaded(x))
        if hasattr(model, "recurrent"):
            assert torch.equal(model.recurrent.weight(), reloaded.recurrent.weight())


def test_what_is_packed_and_at_which_precision():
    model, *_ = _model("hadamrnn")
    entries = export.packed_entries(model)
    assert {key: e.precision for key, e in entries.items()} == {
        "recurrent.s": 1,
        "input_layer.weight": 4,
        "output_layer.weight": 4,
    }
    assert set(entries["recurrent.s"].value.unique().tolist()) <= {-1.0, 1.0}
    block, *_ = _model("block_hadamrnn")
    assert export.packed_entries(block)["recurrent.s"].precision == 1
    ternary, *_ = _model("hadamrnn_ternary_uv")
    assert export.packed_entries(ternary)["input_layer.weight"].precision == 2
    assert set(export.packed_entries(_model("qornn")[0])) == {
        "recurrent.latent",
        "input_layer.weight",
        "output_layer.weight",
    }
    # wider than 8 bits: the float latent is stored and the reloaded layer re-quantizes it
    assert "recurrent.latent" not in export.packed_entries(_model("qornn_12bit")[0])
    for float_variant in ("hadamrnn_float_uv", "ornn", "lstm"):
        entries = export.packed_entries(_model(float_variant)[0])
        assert "input_layer.weight" not in entries and "recurrent.latent" not in entries


def test_reload_uses_the_stored_quantized_weight_as_it_is(tmp_path):
    """q(q(W)) != q(W) when the largest entry is positive (clipped to 7/8 of the scale): the
    reloaded QLinear must not quantize its stored weight again."""
    layer = QLinear(3, 2, bias=True, bits=4)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.3, -0.2], [0.55, -0.05, 0.8]]))
    q = layer.quantized_weight()
    assert not torch.equal(uniform(q, 4), q)
    path = export.save_binary(layer, tmp_path / "q.bnn")
    fresh = QLinear(3, 2, bias=True, bits=4)
    export.load_binary(path, fresh)
    assert fresh.weight_is_quantized and torch.equal(fresh.quantized_weight(), q)
    x = torch.rand(4, 3)
    assert torch.equal(fresh(x), layer(x))


def _tensor_bytes(state: dict) -> tuple[int, int]:
    """(bytes of values: packed codes and float tensors, bytes of codebooks)."""
    values = codebooks = 0
    for entry in state.values():
        if isinstance(entry, dict):
            values += entry["packed"].numel()
            codebooks += entry["codebook"].nbytes if "codebook" in entry else 0
        else:
            values += entry.nbytes
    return values, codebooks


def test_file_size_against_the_summary(tmp_path):
    """pMNIST HadamRNN (n = 512): the stored values are exactly the summary's memory
    (512 sign bits, 4-bit U and V, float32 biases: 4968 bytes); the file adds the codebooks
    of U, V and s (float32 distinct values, at most 136 bytes) and torch.save's zip container
    (under 4.5 KiB for these five entries), so it is larger than the summary by more than
    5 %."""
    model, name, config, _ = _model("hadamrnn", hidden=512)
    result = summary(model, (784, 1), print_fn=None)
    assert result.memory_bytes == 4968
    path = export.save_binary(
        model, tmp_path / "m.bnn", package="hadamrnn", model_class=name, config=config
    )
    values, codebooks = _tensor_bytes(export.binary_state_dict(model))
    assert values == result.memory_bytes
    distinct = sum(e.value.unique().numel() for e in export.packed_entries(model).values())
    assert codebooks == 4 * distinct <= 4 * (2 + 16 + 16)
    container = path.stat().st_size - values - codebooks
    assert 0 < container < 4.5 * 1024


def test_build_rejects_an_unknown_model_class():
    with pytest.raises(ConfigError, match="hadamrnn.*lstm|choose one of"):
        exporting.build("gru", {})


def test_from_run_rejects_weights_of_another_shape():
    run_config = {"model": {"hidden_size": 16}, "dataset": {"name": "sdigits"}}
    other = exporting.build("hadamrnn", to_dict(ModelConfig(hidden_size=32)))
    with pytest.raises(CheckpointError, match="does not fit"):
        exporting.from_run(run_config, other.state_dict())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A run directory of ``python -m hadamrnn.train`` on sdigits (hidden 16, 3 batches)."""
    out = tmp_path_factory.mktemp("export") / "run"
    argv = ["--config", SDIGITS, "--device", "cpu", "--quiet", "--out-dir", str(out), "--set"]
    argv += ["MODEL.HIDDEN_SIZE=16", "TRAIN.BATCH_SIZE=64", "TRAIN.N_EPOCHS=1"]
    argv += ["TRAIN.MAX_BATCHES=3"]
    with single_thread():
        assert run_cli(train_main, argv) == 0
    return out


@pytest.mark.slow
def test_export_command_round_trip(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    out = io.StringIO()
    with redirect_stdout(out), single_thread():
        code = run_cli(export_main, [str(run), "--verify"])
    text = out.getvalue()
    assert code == 0, text
    test_size = len(load_split(DatasetConfig(name="sdigits"), "test"))
    assert test_size > 300
    assert f"reloaded model: the same class on {test_size} of {test_size} test inputs" in text
    assert (run / "model.bnn").is_file() and (run / "model.summary.txt").is_file()
    assert "recurrent (HadamardRecurrent)" in (run / "model.summary.txt").read_text()
    header = export.read_header(run / "model.bnn")
    assert header["package"] == "hadamrnn" and header["model_class"] == "hadamrnn"


@pytest.mark.slow
def test_export_command_bad_checkpoint(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    config = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(config.replace("hidden_size: 16", "hidden_size: 32"))
    assert_bad_input(export_main, [str(run)], tmp_path, "does not fit")
    assert not (run / "model.bnn").exists()

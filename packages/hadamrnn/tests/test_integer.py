"""Integer-only HadamRNN (``hadamrnn.integer``, ``python -m hadamrnn.ptq --integer``): the
integer Walsh–Hadamard transform and rounding shift, exact equality with the float64
fixed-point reference run by the package's model, agreement with the float32 fake-quantized
model, the file round trip, and bad input."""

from __future__ import annotations

import io
import math
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import torch
from bnn_shared.cli import run_cli
from bnn_shared.errors import CheckpointError, ConfigError, ShapeError
from bnn_shared.testing import assert_bad_input, single_thread
from hadamrnn.config import load
from hadamrnn.dataset_tools import load_split
from hadamrnn.extra_layers import ActivationQuantizer
from hadamrnn.getters import get_model
from hadamrnn.hadamard import hadamard_matrix
from hadamrnn.integer import (
    IntegerHadamRNN,
    _round_shift,
    fwht_int,
    load_integer_model,
    power_of_two_at_least,
)
from hadamrnn.models import LinearRNN
from hadamrnn.ptq import main as ptq_main
from hadamrnn.quantized_layers import HadamardRecurrent, OrthogonalRecurrent
from hadamrnn.train import main as train_main

SDIGITS = str(Path(__file__).resolve().parents[3] / "configs" / "hadamrnn" / "sdigits.yaml")


@pytest.fixture(autouse=True)
def _one_thread():
    """Small matmuls: one thread is faster, and much faster on a busy machine."""
    with single_thread():
        yield


@pytest.mark.parametrize(("n", "basic_block"), [(16, "full"), (64, 3), (512, "full"), (32, 0)])
def test_integer_walsh_hadamard_transform(n, basic_block):
    block = n if basic_block == "full" else 2**basic_block
    plus_minus = torch.round(hadamard_matrix(n, basic_block).double() * math.sqrt(block)).long()
    x = torch.randint(-(2**15), 2**15, (7, n), generator=torch.Generator().manual_seed(n))
    assert torch.equal(fwht_int(x, block), x @ plus_minus)


def test_rounding_shift_ties_to_even_as_torch_round():
    generator = torch.Generator().manual_seed(0)
    values = torch.randint(-(2**40), 2**40, (4000,), generator=generator)
    values[:8] = torch.tensor([5, 6, 7, -5, -6, -7, 2, -2]) * 2**9  # exact halves (shift 10)
    for shift in (1, 10, 33):
        expected = torch.round(values.double() / 2**shift).long()
        assert torch.equal(_round_shift(values, shift), expected)
    assert torch.equal(_round_shift(values, 0), values)


def test_power_of_two_at_least():
    assert [power_of_two_at_least(v) for v in (1.0, 1.01, 170.16, 0.3, 0.0)] == [
        1.0,
        2.0,
        256.0,
        0.5,
        1.0,
    ]


def _model(many_to_many=False, basic_block="full", hidden=32, vocab=None, input_size=3):
    torch.manual_seed(4)
    recurrent = HadamardRecurrent(hidden, basic_block)
    out = 1 if vocab else 5
    return LinearRNN(
        recurrent,
        input_size=input_size,
        output_size=out,
        num_bits=4,
        many_to_many=many_to_many,
        vocab_size=vocab,
    ).eval()


def _inputs(model, vocab=None, batch=40, steps=30):
    generator = torch.Generator().manual_seed(2)
    if vocab:
        return torch.randint(0, vocab, (batch, steps), generator=generator)
    return torch.rand(batch, steps, model.input_layer.in_features, generator=generator)


def _integer(model, x, bits):
    with torch.no_grad():
        inputs, states = model.embed(x), model.hidden_states(x)
    return IntegerHadamRNN.from_model(
        model,
        input_bits=bits,
        state_bits=bits,
        input_max=float(inputs.abs().max()),
        state_max=float(states.abs().max()),
    )


VARIANTS = {
    "full": {},
    "block": {"basic_block": 2},
    "many_to_many": {"many_to_many": True},
    "embedding": {"vocab": 40, "input_size": 8},
    "full_128": {"hidden": 128},
}


@pytest.mark.parametrize("bits", [6, 12, 16])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_integer_model_equals_the_fixed_point_reference(variant, bits):
    options = VARIANTS[variant]
    model = _model(**options)
    x = _inputs(model, options.get("vocab"))
    integer = _integer(model, x, bits)
    logits = integer.integer_logits(x)
    assert logits.dtype == torch.int64
    ref, x_q, h_q, lam = integer.reference(model)
    with torch.no_grad():
        out = ref(
            x.double() if x.is_floating_point() else x, input_quantizer=x_q, state_quantizer=h_q
        )
    assert torch.equal(out, logits.double() * lam)  # every value exact
    predictions = integer.predict(x)
    expected = (out[..., 0] > 0).long() if out.shape[-1] == 1 else out.argmax(-1)
    assert torch.equal(predictions, expected)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_integer_model_agrees_with_the_float32_fake_quantized_model(variant):
    """Same power-of-two activation scales, the exact weights in float32: only the fixed-point
    constants and float32 rounding differ."""
    options = VARIANTS[variant]
    model = _model(**options)
    x = _inputs(model, options.get("vocab"), batch=100)
    integer = _integer(model, x, 12)
    quantizers = []
    for scale in (integer.meta["input_scale"], integer.meta["state_scale"]):
        quantizer = ActivationQuantizer(12)
        quantizer.max_abs.fill_(scale)
        quantizers.append(quantizer)
    with torch.no_grad():
        fake = model(x, input_quantizer=quantizers[0], state_quantizer=quantizers[1])
    approx = integer(x)
    assert (approx - fake.double()).abs().max() < 0.05 * fake.abs().max()
    predicted = (fake[..., 0] > 0).long() if fake.shape[-1] == 1 else fake.argmax(-1)
    assert (predicted == integer.predict(x)).double().mean() >= 0.95


def test_integer_model_holds_integers_and_round_trips(tmp_path):
    model = _model(basic_block=3)
    x = _inputs(model)
    integer = _integer(model, x, 8)
    assert integer.signs.dtype == torch.int8 and set(integer.signs.tolist()) <= {-1, 1}
    assert integer.input_codes.dtype == torch.int8
    assert int(integer.input_codes.min()) >= -8 and int(integer.input_codes.max()) <= 7
    assert integer.output_codes.dtype == torch.int8
    assert integer.recurrent_bias.dtype == integer.output_bias.dtype == torch.int64
    path = integer.save(tmp_path / "int.pt")
    loaded = load_integer_model(path)
    for name in IntegerHadamRNN.TENSORS:
        assert torch.equal(getattr(loaded, name), getattr(integer, name))
        assert not getattr(loaded, name).is_floating_point()
    assert loaded.meta == integer.meta
    assert torch.equal(loaded.integer_logits(x), integer.integer_logits(x))
    with pytest.raises(ShapeError):
        loaded.integer_logits(torch.rand(2, 5, 4))


def test_models_the_integer_path_cannot_take():
    x = torch.rand(4, 10, 3)
    ornn = LinearRNN(OrthogonalRecurrent(16), input_size=3, output_size=5, num_bits=4)
    float_uv = LinearRNN(HadamardRecurrent(16), input_size=3, output_size=5, num_bits=None)
    pooled = LinearRNN(
        HadamardRecurrent(16), input_size=3, output_size=1, vocab_size=9, readout="mean"
    )
    for model in (ornn, float_uv, pooled):
        with pytest.raises(ConfigError, match="integer PTQ"):
            IntegerHadamRNN.from_model(
                model, input_bits=8, state_bits=8, input_max=1.0, state_max=1.0
            )
    model = _model()
    with pytest.raises(ConfigError, match="2..24"):
        _integer(model, x, 30)


def test_loader_rejects_other_files(tmp_path):
    with pytest.raises(CheckpointError, match="no integer model"):
        load_integer_model(tmp_path / "none.pt")
    (tmp_path / "text.pt").write_text("not a model")
    with pytest.raises(CheckpointError, match="not an integer"):
        load_integer_model(tmp_path / "text.pt")
    torch.save(
        {"format": "hadamrnn.integer", "meta": {}, "tensors": {"signs": torch.ones(3)}},
        tmp_path / "float.pt",
    )
    with pytest.raises(CheckpointError, match="integer tensors only"):
        load_integer_model(tmp_path / "float.pt")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("integer") / "run"
    argv = ["--config", SDIGITS, "--device", "cpu", "--quiet", "--out-dir", str(out), "--set"]
    argv += ["MODEL.HIDDEN_SIZE=16", "TRAIN.BATCH_SIZE=64", "TRAIN.N_EPOCHS=1"]
    argv += ["TRAIN.MAX_BATCHES=5"]
    with single_thread():
        assert run_cli(train_main, argv) == 0
    return out


@pytest.mark.slow
def test_ptq_command_writes_an_integer_model(tiny_run, tmp_path):
    out, table = tmp_path / "int.pt", tmp_path / "ptq.csv"
    argv = ["--checkpoint", str(tiny_run / "best.pt"), "--bits", "10", "--integer"]
    argv += ["--reference", "--out", str(out), "--csv", str(table), "--device", "cpu"]
    text = io.StringIO()
    with redirect_stdout(text), single_thread():
        assert run_cli(ptq_main, argv) == 0
    line = next(x for x in text.getvalue().splitlines() if x.startswith("integer "))
    fields = line.split()[1:]
    row = dict(zip(fields[::2], fields[1::2], strict=True))
    test_size = len(load_split(load(SDIGITS).dataset, "test"))
    assert row["inputs"] == row["agree_reference"] == str(test_size)
    assert int(row["agree"]) >= 0.95 * test_size
    assert int(row["agree_fake64"]) >= 0.95 * test_size
    assert int(row["fake32_vs_fake64"]) >= 0.95 * test_size
    assert table.read_text().splitlines()[0].startswith("bits,scale_x,scale_h,shift")
    loaded = load_integer_model(out)
    x = torch.rand(3, 64, 1)
    assert loaded.predict(x).shape == (3,)


@pytest.mark.slow
def test_ptq_bad_integer_requests(tiny_run, tmp_path):
    checkpoint = str(tiny_run / "best.pt")
    two = ["--checkpoint", checkpoint, "--bits", "8", "12", "--out", str(tmp_path / "a.pt")]
    assert_bad_input(ptq_main, two, tmp_path, "exactly one --bits")
    folder = ["--checkpoint", checkpoint, "--bits", "8", "--out", str(tmp_path)]
    assert_bad_input(ptq_main, folder, tmp_path, "is not a file")
    wide = ["--checkpoint", checkpoint, "--bits", "30", "--integer"]
    assert_bad_input(ptq_main, wide, tmp_path, "2..24")
    config = tmp_path / "ornn.yaml"
    config.write_text(Path(SDIGITS).read_text().replace("hadamrnn", "ornn"))
    ornn = get_model(load(config))
    torch.save(ornn.state_dict(), tmp_path / "ornn.pth")
    argv = ["--checkpoint", str(tmp_path / "ornn.pth"), "--config", str(config), "--integer"]
    assert_bad_input(ptq_main, argv, tmp_path, "HadamRNN")

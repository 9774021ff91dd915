"""Bit-packed export: exact round trips, packed sizes, untouched float entries, clear errors."""

from __future__ import annotations

import math
from collections import OrderedDict

import pytest
import torch
from bnn_shared import quantizers
from bnn_shared.errors import CheckpointError, ShapeError
from bnn_shared.export import (
    FORMAT,
    binary_state_dict,
    load_binary,
    pack_tensor,
    packed_nbytes,
    save_binary,
    storage_bits,
    unpack_tensor,
)
from bnn_shared.layers import QuantConv2d, QuantLinear
from torch import nn

# (kernel quantizer alias, its kwargs, storage bits)
KERNELS = [
    ("ste_sign", {}, 1),
    ("ste_tern", {}, 2),
    ("magnitude_aware_sign", {}, 1),
    ("uniform", {"bits": 4}, 4),
]
PACKED_KEYS = ("conv.weight", "fc.weight")


def make_model(alias: str, kwargs: dict, *, seed: int = 0, hidden: int = 4) -> nn.Module:
    """Conv -> BatchNorm -> Linear with ``alias`` kernels, then a float head."""
    torch.manual_seed(seed)
    layers = {
        "conv": QuantConv2d(
            3,
            hidden,
            3,
            padding=1,
            input_quantizer="ste_sign",
            kernel_quantizer=quantizers.get(alias, **kwargs),
        ),
        "bn": nn.BatchNorm2d(hidden),
        "flat": nn.Flatten(),
        "fc": QuantLinear(hidden * 25, 5, kernel_quantizer=quantizers.get(alias, **kwargs)),
        "head": nn.Linear(5, 2),
    }
    return nn.Sequential(OrderedDict(layers))


@pytest.fixture(params=KERNELS, ids=[alias for alias, _, _ in KERNELS])
def kernel(request):
    return request.param


def trained(alias: str, kwargs: dict, seed: int = 0) -> nn.Module:
    model = make_model(alias, kwargs, seed=seed)
    model(torch.randn(16, 3, 5, 5))  # non-trivial BatchNorm running statistics
    return model.eval()


class TestRoundTrip:
    def test_outputs_are_identical(self, kernel, tmp_path):
        alias, kwargs, _ = kernel
        model = trained(alias, kwargs)
        x = torch.randn(4, 3, 5, 5)
        expected = model(x)
        path = save_binary(model, tmp_path / "model.bin")
        fresh = make_model(alias, kwargs, seed=1).eval()
        assert not torch.equal(fresh(x), expected)
        loaded = load_binary(path, fresh)
        assert loaded is fresh
        assert torch.equal(loaded(x), expected)
        for key in PACKED_KEYS:
            layer = loaded.get_submodule(key.split(".")[0])
            assert isinstance(layer.kernel_quantizer, quantizers.NoOp)
            assert layer.kernel_precision == quantizers.get(alias, **kwargs).precision

    def test_packed_sizes(self, kernel):
        alias, kwargs, bits = kernel
        model = trained(alias, kwargs)
        state = binary_state_dict(model)
        for key in PACKED_KEYS:
            entry = state[key]
            numel = model.state_dict()[key].numel()
            assert entry["format"] == FORMAT
            assert entry["bits"] == bits
            assert entry["packed"].dtype == torch.uint8
            assert entry["packed"].numel() == math.ceil(numel * bits / 8)
            assert entry["codebook"].shape[-1] <= 2**bits

    def test_decoded_state_is_the_quantized_weight(self, kernel, tmp_path):
        alias, kwargs, _ = kernel
        model = trained(alias, kwargs)
        state = load_binary(save_binary(model, tmp_path / "model.bin"))
        for key in PACKED_KEYS:
            layer = model.get_submodule(key.split(".")[0])
            assert torch.equal(state[key], layer.quantized_weight())

    def test_reexport_is_stable(self, kernel, tmp_path):
        alias, kwargs, _ = kernel
        model = trained(alias, kwargs)
        first = binary_state_dict(model)
        path = save_binary(model, tmp_path / "m.bin")
        loaded = load_binary(path, make_model(alias, kwargs, seed=1))
        second = binary_state_dict(loaded)
        for key in PACKED_KEYS:
            assert torch.equal(first[key]["packed"], second[key]["packed"])
            assert torch.equal(first[key]["codebook"], second[key]["codebook"])

    def test_float_entries_unchanged(self):
        model = trained("ste_sign", {})
        reference = model.state_dict()
        state = binary_state_dict(model)
        assert list(state) == list(reference)
        for key, value in state.items():
            if key not in PACKED_KEYS:
                assert isinstance(value, torch.Tensor), key
                assert torch.equal(value, reference[key]), key

    def test_unquantized_quant_layer_kept_float(self):
        layer = QuantLinear(4, 3)  # kernel_quantizer=None
        assert torch.equal(binary_state_dict(layer)["weight"], layer.weight)

    def test_per_channel_codebook(self):
        layer = QuantLinear(6, 3, kernel_quantizer="magnitude_aware_sign")
        entry = binary_state_dict(layer)["weight"]
        assert entry["codebook"].shape == (3, 2)
        assert torch.equal(unpack_tensor(entry), layer.quantized_weight())


class TestPackTensor:
    @pytest.mark.parametrize(
        ("precision", "bits"), [(1, 1), (2, 2), (3, 4), (4, 4), (5, 8), (8, 8)]
    )
    def test_storage_bits(self, precision, bits):
        assert storage_bits(precision) == bits

    @pytest.mark.parametrize("precision", [0, 9, 32])
    def test_storage_bits_out_of_range(self, precision):
        with pytest.raises(ShapeError, match="precision in 1..8"):
            storage_bits(precision)

    def test_too_many_values(self):
        q = torch.tensor([[-1.0, 0.0, 1.0], [1.0, 0.0, -1.0]])
        with pytest.raises(ShapeError, match="3 distinct values per output channel"):
            pack_tensor(q, precision=1)

    def test_rows_with_fewer_values(self):
        q = torch.tensor([[2.0, 2.0, -2.0, 2.0], [0.5, 0.5, 0.5, 0.5], [-3.0, 3.0, 3.0, -3.0]])
        entry = pack_tensor(q, precision=1)
        assert entry["codebook"].shape == (3, 2)
        assert torch.equal(unpack_tensor(entry), q)

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
    def test_dtype_preserved(self, dtype):
        q = torch.tensor([[0.25, -0.25], [-0.25, 0.25]], dtype=dtype)
        decoded = unpack_tensor(pack_tensor(q, precision=1))
        assert decoded.dtype == dtype
        assert torch.equal(decoded, q)


class TestFiles:
    def test_atomic_write(self, tmp_path):
        path = save_binary(trained("ste_sign", {}), tmp_path / "sub" / "model.bin")
        assert path == tmp_path / "sub" / "model.bin"
        assert [p.name for p in path.parent.iterdir()] == ["model.bin"]

    def test_packed_nbytes(self):
        model = trained("ste_sign", {})
        report = packed_nbytes(binary_state_dict(model))
        numels = [model.state_dict()[key].numel() for key in PACKED_KEYS]
        assert report["tensors"] == 2
        assert report["packed_bytes"] == sum(math.ceil(n / 8) for n in numels)
        assert report["float32_bytes"] == 4 * sum(numels)
        assert report["codebook_bytes"] == 2 * 2 * 4
        assert report["ratio"] > 20

    def test_missing_file(self, tmp_path):
        with pytest.raises(CheckpointError, match="no binary export at"):
            load_binary(tmp_path / "nope.bin")

    def test_not_an_export(self, tmp_path):
        path = tmp_path / "plain.pt"
        torch.save({"weight": torch.zeros(2)}, path)
        with pytest.raises(CheckpointError, match="not a packed model"):
            load_binary(path)

    def test_wrong_shape(self, tmp_path):
        path = save_binary(trained("ste_sign", {}), tmp_path / "model.bin")
        wider = make_model("ste_sign", {}, hidden=6)
        with pytest.raises(CheckpointError, match=r"conv\.weight has shape \(4, 3, 3, 3\)"):
            load_binary(path, wider)

    def test_missing_and_unexpected_keys(self, tmp_path):
        path = save_binary(trained("ste_sign", {}), tmp_path / "model.bin")
        other = nn.Sequential(nn.Linear(2, 2))
        with pytest.raises(CheckpointError, match=r"missing keys \['0\.weight'"):
            load_binary(path, other)
        with pytest.raises(CheckpointError, match=r"unexpected keys \['conv\.weight'"):
            load_binary(path, other)

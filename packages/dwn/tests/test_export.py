"""Export and bit-level inference: the compiled copy predicts exactly what the model predicts.

The reference for :class:`~dwn.compiled.CompiledDWN` is the PyTorch model itself,
``model(encoder.binarize(x).flatten(1))``, and for the runner alone a brute-force loop over
samples, LUTs and address bits (spec §3.2, §6, §7, §10 "Export for hardware").
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from bnn_shared.data import load_dataset
from bnn_shared.errors import CheckpointError, ConfigError, ShapeError
from dwn.binarization import DistributiveThermometer, GaussianThermometer, Thermometer
from dwn.compiled import CompiledDWN, CompiledLUTLayer, wiring_dtype
from dwn.export import FORMAT, VERSION, compile_model, export, load_compiled
from dwn.lut_layer import LUTLayer
from dwn.utils import GroupSum
from torch import nn

FEATURES, BITS = 7, 3


def make_model(widths, n, *, k=3, tau=2.5, mapping="random", randperm=False, flatten=False):
    """LUT layers of ``widths`` (first entry = input bits) and a GroupSum."""
    modules: list[nn.Module] = [nn.Flatten()] if flatten else []
    for index, (width_in, width_out) in enumerate(zip(widths, widths[1:], strict=False)):
        layer_mapping = mapping if index == 0 else "random"
        modules.append(LUTLayer(width_in, width_out, n, mapping=layer_mapping))
    modules.append(GroupSum(k, tau=tau, randperm=randperm))
    return nn.Sequential(*modules)


def torch_logits(model, encoder, x):
    with torch.no_grad():
        return model(encoder.binarize(x).flatten(1)).float().numpy()


def assert_same(compiled, model, encoder, x, tau):
    """Identical integer scores (scores / tau = logits) and identical predictions."""
    logits = torch_logits(model, encoder, x)
    scores = compiled.scores(x)
    assert scores.dtype.kind == "i"
    np.testing.assert_array_equal(scores, np.rint(logits * tau).astype(np.int64))
    np.testing.assert_allclose(scores / tau, logits, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(compiled.predict(x), logits.argmax(1))
    np.testing.assert_array_equal(compiled.predict(x), torch.as_tensor(logits).argmax(1).numpy())


@pytest.fixture
def data():
    generator = torch.Generator().manual_seed(0)
    train = torch.randn(200, FEATURES, generator=generator)
    test = torch.randn(300, FEATURES, generator=generator)
    return train, test


def brute_force_scores(x, thresholds, layers, k, permutation):
    """Per-sample loop transcription of the boolean network (the specification)."""
    scores = np.zeros((len(x), k), dtype=np.int64)
    for b in range(len(x)):
        bits = [int(v > t) for v, row in zip(x[b], thresholds, strict=True) for t in row]
        for wiring, tables in layers:
            bits = [
                int(tables[j, sum(bits[wiring[j, l]] << l for l in range(wiring.shape[1]))])
                for j in range(len(wiring))
            ]
        if permutation is not None:
            bits = [bits[p] for p in permutation]
        bits += [0] * (-len(bits) % k)
        size = len(bits) // k
        scores[b] = [sum(bits[c * size : (c + 1) * size]) for c in range(k)]
    return scores


class TestCompiledRunner:
    """The runner on hand-built descriptions, against the brute-force loop."""

    @pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7, 9])
    @pytest.mark.parametrize("permuted", [False, True])
    def test_matches_brute_force(self, n, permuted):
        rng = np.random.default_rng(n)
        thresholds = np.sort(rng.normal(size=(FEATURES, BITS)), axis=1).astype(np.float32)
        widths = [FEATURES * BITS, 13, 11]
        spec, layers = [], []
        for width_in, width_out in zip(widths, widths[1:], strict=False):
            wiring = rng.integers(0, width_in, size=(width_out, n))
            tables = rng.random((width_out, 1 << n)) > 0.5
            spec.append((wiring, tables))
            packed = np.packbits(tables.reshape(-1), bitorder="little")
            layer = CompiledLUTLayer(width_in, wiring.astype(wiring_dtype(width_in)), packed)
            np.testing.assert_array_equal(layer.truth_tables(), tables)
            layers.append(layer)
        permutation = rng.permutation(9) if permuted else None  # keeps 9 of the 11 outputs
        compiled = CompiledDWN(thresholds, (FEATURES,), True, layers, 4, permutation)
        x = rng.normal(size=(40, FEATURES)).astype(np.float32)
        expected = brute_force_scores(x, thresholds, spec, 4, permutation)
        np.testing.assert_array_equal(compiled.scores(x, chunk_size=7), expected)
        assert compiled.padded_size == 12

    def test_wiring_dtype(self):
        assert wiring_dtype(256) == np.uint8
        assert wiring_dtype(257) == np.uint16
        assert wiring_dtype(70_000) == np.uint32

    def test_bad_descriptions(self):
        wiring = np.zeros((2, 3), dtype=np.uint8)
        with pytest.raises(ShapeError, match="bytes"):
            CompiledLUTLayer(4, wiring, np.zeros(3, dtype=np.uint8))
        with pytest.raises(ShapeError, match="reads input"):
            CompiledLUTLayer(4, wiring + 4, np.zeros(2, dtype=np.uint8))
        layer = CompiledLUTLayer(4, wiring, np.zeros(2, dtype=np.uint8))
        with pytest.raises(ShapeError, match="reads 4 bits"):
            CompiledDWN(np.zeros((3, 2), np.float32), (3,), True, [layer], 2)
        with pytest.raises(ShapeError, match="permutation"):
            CompiledDWN(np.zeros((2, 2), np.float32), (2,), True, [layer], 2, np.array([0, 0]))


class TestRoundTrip:
    """export -> load_compiled on small random models gives the model's scores exactly."""

    @pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
    @pytest.mark.parametrize("mapping", ["random", "arange", "learnable"])
    @pytest.mark.parametrize("widths", [(FEATURES * BITS, 17), (FEATURES * BITS, 40, 23)])
    def test_identical_scores(self, tmp_path, data, n, mapping, widths):
        torch.manual_seed(n)
        train, test = data
        encoder = DistributiveThermometer(BITS).fit(train)
        model = make_model(widths, n, k=3, mapping=mapping)  # 17 and 23: padded outputs
        compiled = load_compiled(export(model, encoder, tmp_path / "model.dwn"))
        for training in (False, True):
            model.train(training)
            assert_same(compiled, model, encoder, test, tau=2.5)

    @pytest.mark.parametrize("randperm", [True, 20, 13])
    def test_groupsum_permutation(self, tmp_path, data, randperm):
        torch.manual_seed(1)
        train, test = data
        encoder = GaussianThermometer(BITS).fit(train)
        model = make_model((FEATURES * BITS, 20), 4, k=4, tau=1 / 0.3, randperm=randperm)
        torch_logits(model, encoder, train[:1])  # randperm=True draws at the first call
        compiled = load_compiled(export(model, encoder, tmp_path / "model.npz"))
        assert compiled.permutation is not None
        assert compiled.padded_size == (16 if randperm == 13 else 20)
        assert_same(compiled, model, encoder, test, tau=1 / 0.3)

    def test_leading_flatten_and_image_features(self, tmp_path):
        torch.manual_seed(2)
        train, test = torch.rand(100, 2, 3, 4), torch.rand(50, 2, 3, 4)
        encoder = Thermometer(2).fit(train)
        model = make_model((48, 30), 3, k=5, flatten=True)
        compiled = load_compiled(export(model, encoder, tmp_path / "model.dwn"))
        assert compiled.feature_shape == (2, 3, 4)
        assert_same(compiled, model, encoder, test, tau=2.5)

    def test_shared_thresholds(self, tmp_path, data):
        torch.manual_seed(3)
        train, test = data
        encoder = DistributiveThermometer(4, feature_wise=False).fit(train)
        model = make_model((FEATURES * 4, 12), 6, k=2)
        compiled = load_compiled(export(model, encoder, tmp_path / "model.dwn"))
        assert compiled.feature_shape == (FEATURES,)
        assert compiled.thresholds.shape == (4,)
        assert_same(compiled, model, encoder, test, tau=2.5)

    def test_compile_model_equals_file(self, tmp_path, data):
        torch.manual_seed(4)
        train, test = data
        encoder = DistributiveThermometer(BITS).fit(train)
        model = make_model((FEATURES * BITS, 40, 23), 6, mapping="learnable")
        in_memory = compile_model(model, encoder)
        loaded = load_compiled(export(model, encoder, tmp_path / "model.dwn"))
        np.testing.assert_array_equal(in_memory.scores(test), loaded.scores(test))
        assert in_memory.size_bytes == loaded.size_bytes


def train_steps(model, encoder, x, y, steps):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        batch = torch.randint(len(x), (64,), generator=generator)
        loss = nn.functional.cross_entropy(model(encoder.binarize(x[batch]).flatten(1)), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


class TestDigits:
    def test_whole_test_split(self, tmp_path):
        torch.manual_seed(0)
        train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
        x_train, y_train = train.dataset.x, train.dataset.targets
        x_test = test.dataset.x
        assert x_train.shape[1:] == (1, 8, 8)
        encoder = DistributiveThermometer(3).fit(x_train)
        # backend="torch": this test is about the export, not the compiled EFD kernels.
        model = nn.Sequential(LUTLayer(192, 100, 4, backend="torch"), GroupSum(10, tau=1 / 0.3))
        train_steps(model, encoder, x_train, y_train, steps=30)
        compiled = load_compiled(export(model, encoder, tmp_path / "digits.dwn"))
        assert_same(compiled, model, encoder, x_test, tau=1 / 0.3)
        expected = torch_logits(model, encoder, x_test).argmax(1)
        np.testing.assert_array_equal(compiled.predict(x_test.numpy()), expected)
        # 100 LUTs x 16 table bits = 200 bytes, wiring 100 x 4 uint8 = 400 bytes.
        assert compiled.size_bytes == 600
        assert compiled.sizes["table_bits"] == 1600


class TestFileFormat:
    @pytest.fixture
    def exported(self, tmp_path, data):
        torch.manual_seed(5)
        train, _ = data
        encoder = DistributiveThermometer(BITS).fit(train)
        model = make_model((FEATURES * BITS, 300, 20), 5, k=4, randperm=20)
        return model, encoder, export(model, encoder, tmp_path / "model.dwn")

    def test_only_thresholds_are_float(self, exported):
        _, _, path = exported
        with np.load(path, allow_pickle=False) as archive:
            kinds = {name: archive[name].dtype.kind for name in archive.files}
        assert kinds.pop("header") == "U"
        assert kinds.pop("thresholds") == "f"
        assert set(kinds.values()) == {"u"}
        assert set(kinds) == {
            "layer0.wiring",
            "layer0.tables",
            "layer1.wiring",
            "layer1.tables",
            "groupsum.permutation",
        }

    def test_header_and_arrays(self, exported):
        model, encoder, path = exported
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(str(archive["header"]))
            arrays = {name: archive[name] for name in archive.files}
        assert header["format"] == FORMAT == "dwn.compiled"
        assert header["version"] == VERSION == 1
        assert header["feature_shape"] == [FEATURES] and header["feature_wise"] is True
        assert header["layers"] == [
            {"input_size": 21, "output_size": 300, "n": 5},
            {"input_size": 300, "output_size": 20, "n": 5},
        ]
        assert header["groupsum"] == {"k": 4, "inputs": 20, "permuted": True, "padded_size": 20}
        assert arrays["layer0.wiring"].dtype == np.uint8
        assert arrays["layer1.wiring"].dtype == np.uint16
        for index, layer in enumerate(model[:2]):
            tables = np.unpackbits(arrays[f"layer{index}.tables"], bitorder="little")
            expected = (layer.luts.detach() > 0).numpy()
            np.testing.assert_array_equal(tables.reshape(expected.shape), expected)
            np.testing.assert_array_equal(
                arrays[f"layer{index}.wiring"], layer.effective_mapping().numpy()
            )
        np.testing.assert_array_equal(arrays["thresholds"], encoder.thresholds.numpy())
        np.testing.assert_array_equal(arrays["groupsum.permutation"], model[2].randperm.numpy())

    def test_sizes(self, exported):
        _, _, path = exported
        compiled = load_compiled(path)
        tables = (300 * 32 + 20 * 32) // 8
        wiring = 300 * 5 * 1 + 20 * 5 * 2
        assert compiled.sizes == {
            "tables": tables,
            "wiring": wiring,
            "thresholds": 84,
            "model": tables + wiring,
            "table_bits": 320 * 32,
        }
        assert compiled.size_bytes == tables + wiring

    def test_atomic_overwrite(self, exported, data):
        model, encoder, path = exported
        before = load_compiled(path).scores(data[1])
        export(model, encoder, path)
        assert sorted(os.listdir(path.parent)) == ["model.dwn"]
        np.testing.assert_array_equal(load_compiled(path).scores(data[1]), before)

    def test_unreadable_files(self, tmp_path, exported):
        _, _, path = exported
        with pytest.raises(CheckpointError, match="no DWN export"):
            load_compiled(tmp_path / "missing.dwn")
        garbage = tmp_path / "garbage.dwn"
        garbage.write_bytes(b"not a zip")
        with pytest.raises(CheckpointError, match="not a readable"):
            load_compiled(garbage)
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        header = json.loads(str(arrays["header"]))
        for change, message in [
            ({"format": "other"}, "not a DWN export"),
            ({"version": VERSION + 1}, "version"),
        ]:
            np.savez(
                tmp_path / "bad.npz",
                **{**arrays, "header": np.array(json.dumps({**header, **change}))},
            )
            with pytest.raises(CheckpointError, match=message):
                load_compiled(tmp_path / "bad.npz")
        np.savez(
            tmp_path / "partial.npz", **{k: v for k, v in arrays.items() if k != "layer1.tables"}
        )
        with pytest.raises(CheckpointError, match="layer1.tables"):
            load_compiled(tmp_path / "partial.npz")
        np.savez(
            tmp_path / "short.npz", **{**arrays, "layer1.tables": arrays["layer1.tables"][:-1]}
        )
        with pytest.raises(CheckpointError, match="inconsistent"):
            load_compiled(tmp_path / "short.npz")


class TestErrors:
    @pytest.fixture
    def encoder(self, data):
        return DistributiveThermometer(BITS).fit(data[0])

    def test_ste_false(self, tmp_path, encoder):
        model = nn.Sequential(LUTLayer(21, 12, 3, ste=False), GroupSum(3))
        with pytest.raises(ConfigError, match="ste=False"):
            export(model, encoder, tmp_path / "m.dwn")
        assert not (tmp_path / "m.dwn").exists()

    @pytest.mark.parametrize(
        "model, message",
        [
            (LUTLayer(21, 12, 3), "nn.Sequential"),
            (nn.Sequential(LUTLayer(21, 12, 3)), "ending in GroupSum"),
            (nn.Sequential(GroupSum(3)), "ending in GroupSum"),
            (nn.Sequential(LUTLayer(21, 12, 3), nn.ReLU(), GroupSum(3)), "ReLU"),
            (nn.Sequential(LUTLayer(21, 12, 3), GroupSum(3, tau=-1.0)), "tau"),
            (nn.Sequential(LUTLayer(21, 12, 3), GroupSum(3, randperm=True)), "first forward"),
        ],
    )
    def test_unsupported_models(self, encoder, model, message):
        with pytest.raises(ConfigError, match=message):
            compile_model(model, encoder)

    def test_unsupported_encoders(self):
        model = nn.Sequential(LUTLayer(21, 12, 3), GroupSum(3))
        with pytest.raises(ConfigError, match="thermometer"):
            compile_model(model, object())
        with pytest.raises(ConfigError, match="not fitted"):
            compile_model(model, Thermometer(BITS))

    def test_shape_mismatches(self, encoder, data):
        with pytest.raises(ShapeError, match="expects 20 input bits but gets 21"):
            compile_model(nn.Sequential(LUTLayer(20, 12, 3), GroupSum(3)), encoder)
        with pytest.raises(ShapeError, match="expects 11 input bits but gets 12"):
            compile_model(
                nn.Sequential(LUTLayer(21, 12, 3), LUTLayer(11, 6, 2), GroupSum(3)), encoder
            )
        shared = Thermometer(BITS, feature_wise=False).fit(data[0])
        with pytest.raises(ShapeError, match="multiple"):
            compile_model(nn.Sequential(LUTLayer(20, 12, 3), GroupSum(3)), shared)
        compiled = compile_model(nn.Sequential(LUTLayer(21, 12, 3), GroupSum(3)), encoder)
        with pytest.raises(ShapeError, match="7 features"):
            compiled.predict(np.zeros((4, 6), np.float32))


class TestInputs:
    @pytest.fixture
    def setup(self, data):
        torch.manual_seed(6)
        train, test = data
        encoder = Thermometer(BITS).fit(train)
        model = make_model((FEATURES * BITS, 30), 4, k=3)
        return compile_model(model, encoder), model, encoder, test

    def test_torch_and_numpy(self, setup):
        compiled, model, encoder, test = setup
        expected = torch_logits(model, encoder, test).argmax(1)
        for x in (test, test.numpy(), test.double(), test.double().numpy(), test.requires_grad_()):
            np.testing.assert_array_equal(compiled.predict(x), expected)

    @pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.int64, torch.uint8])
    def test_dtypes_compare_as_torch(self, setup, dtype):
        compiled, model, encoder, test = setup
        x = (test * 3).to(dtype)  # integers compare in the thresholds' dtype, as in torch
        expected = torch_logits(model, encoder, x).argmax(1)
        np.testing.assert_array_equal(compiled.predict(x), expected)
        np.testing.assert_array_equal(compiled.predict(x.numpy()), expected)

    def test_float64_thresholds(self, data):
        torch.manual_seed(7)
        train, test = data
        encoder = DistributiveThermometer(BITS).fit(train.double())
        model = make_model((FEATURES * BITS, 30), 4, k=3)
        compiled = compile_model(model, encoder)
        assert compiled.thresholds.dtype == np.float64
        for x in (test, test.double()):  # float32 inputs compare in float64, as in torch
            expected = torch_logits(model, encoder, x).argmax(1)
            np.testing.assert_array_equal(compiled.predict(x), expected)

    def test_chunking_and_empty_batch(self, setup):
        compiled, _, _, test = setup
        whole = compiled.scores(test)
        for rows in (1, 7, 1000):
            np.testing.assert_array_equal(compiled.scores(test, chunk_size=rows), whole)
        assert compiled.predict(test[:0]).shape == (0,)

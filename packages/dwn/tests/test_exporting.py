"""The bit-packed export of DWNs (:mod:`dwn.exporting`, ``python -m bnn_shared.export``):
reloaded models give bit-identical outputs, and the file size is the summary's memory plus
what the summary does not count (said in each size check)."""

from __future__ import annotations

import re
import shutil

import pytest
import torch
import yaml
from bnn_shared import export
from bnn_shared.cli import run_cli
from bnn_shared.errors import ConfigError
from bnn_shared.export.__main__ import main as export_main
from bnn_shared.summary import summary
from bnn_shared.testing import assert_bad_input
from dwn.config import TrainConfig
from dwn.datasets import load_arrays
from dwn.exporting import MODEL_KEYS, build, from_run, test_inputs
from dwn.lut_layer import LUTLayer
from dwn.train import main as train_main
from dwn.utils import GroupSum
from torch import nn

#: torch.save's zip container: a fixed part plus one record per stored tensor (measured
#: 3.4 KiB for 5 entries and 4.9 KiB for 10 entries, MNIST-size).
CONTAINER_BYTES, ENTRY_BYTES = 2048, 512


@pytest.fixture(scope="module")
def digits():
    x_train, y_train, x_test, _, _ = load_arrays(TrainConfig(dataset="digits"))
    return x_train, y_train, x_test


def model_config(**changes) -> dict:
    cfg = TrainConfig(dataset="digits", layers=[40, 20], n=4, mapping=["learnable", "random"])
    config = {key: getattr(cfg, key) for key in MODEL_KEYS}
    config.update(features=64, classes=10, **changes)
    return config


def trained(config: dict, digits, steps: int = 3) -> nn.Module:
    """The classifier of ``config`` with a fitted encoder after a few Adam steps."""
    x_train, y_train, _ = digits
    torch.manual_seed(0)
    model = build("DWN", config)
    model.encoder.fit(x_train)
    optimizer = torch.optim.Adam(model.network.parameters(), lr=0.05)
    for step in range(steps):
        batch = slice(step * 64, (step + 1) * 64)
        loss = nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def check_size(model: nn.Module, path, input_size) -> None:
    """The file holds the summary's memory (bit-exact up to one byte of rounding per packed
    tensor; float tables of ``ste=False`` layers and the float32 thresholds are counted by the
    summary as stored) plus what the summary does not count: the codebooks of the tables, the
    other buffers (EFD alpha/beta, a GroupSum permutation) and the torch.save container. A
    learnable layer's slot wiring ``arange(J*n)`` is not stored (rebuilt on load)."""
    result = summary(model, input_size, print_fn=None)
    state = export.binary_state_dict(model)
    sizes = export.packed_nbytes(state)
    counted_names = {**dict(model.named_parameters()), "encoder.thresholds": None}
    plain = {key: v.numel() * v.element_size() for key, v in state.items() if torch.is_tensor(v)}
    float_params = sum(size for key, size in plain.items() if key in counted_names)
    counted = sizes["packed_bytes"] + float_params
    assert result.memory_bytes <= counted <= result.memory_bytes + sizes["tensors"]
    payload = sizes["packed_bytes"] + sizes["codebook_bytes"] + sum(plain.values())
    file_bytes = path.stat().st_size
    assert payload <= file_bytes <= payload + CONTAINER_BYTES + ENTRY_BYTES * len(state)


class TestBuild:
    def test_the_shipped_model_encodes_raw_features(self):
        model = build("DWN", model_config())
        assert list(dict(model.named_children())) == ["inputs", "encoder", "bits", "network"]
        assert model.encoder.thresholds.shape == (64, 3)
        assert [m.output_size for m in model.network if isinstance(m, LUTLayer)] == [40, 20]
        assert model(torch.rand(2, 1, 8, 8)).shape == (2, 10)  # images are flattened first

    def test_unknown_model_class_names_the_choices(self):
        with pytest.raises(ConfigError, match="DWN"):
            build("ResNet", model_config())

    def test_bad_value_is_a_config_error(self):
        with pytest.raises(ConfigError, match="bits"):
            build("DWN", model_config(bits=0))


class TestRoundTrip:
    @pytest.mark.parametrize(
        "changes",
        [
            {},  # distributive, learnable + random wiring
            {"encoder": "thermometer", "feature_wise": False, "mapping": ["random", "random"]},
            {"encoder": "gaussian", "layers": [30], "mapping": ["arange"], "efd": "paper"},
        ],
        ids=["learnable", "random_global_thresholds", "arange_gaussian"],
    )
    def test_reloaded_outputs_are_bit_identical(self, changes, digits, tmp_path):
        config = model_config(**changes)
        model = trained(config, digits)
        path = export.save_binary(
            model, tmp_path / "m.bnn", package="dwn", model_class="DWN", config=config
        )
        reloaded = export.load(path)
        x_test = digits[2]
        with torch.no_grad():
            assert torch.equal(reloaded(x_test), model(x_test))
        assert torch.equal(reloaded.encoder.thresholds, model.encoder.thresholds)
        for old, new in zip(model.network[:-1], reloaded.network[:-1], strict=True):
            assert torch.equal(new.luts, old.quantized_weight())  # 0/1 tables
            assert torch.equal(new.effective_mapping(), old.effective_mapping())
        check_size(model, path, (64,))

    def test_hand_built_network(self, tmp_path):
        """Raw-valued tables (ste=False), a user wiring and a GroupSum permutation."""

        def network(seed: int) -> nn.Module:
            torch.manual_seed(seed)
            wiring = torch.randint(0, 30, (24, 3))
            return nn.Sequential(
                LUTLayer(30, 24, 3, mapping=wiring),
                LUTLayer(24, 12, 2, ste=False),
                LUTLayer(12, 8, 2),
                GroupSum(4, randperm=8),
            ).eval()

        model = network(0)
        path = export.save_binary(model, tmp_path / "h.bnn")
        fresh = export.load_binary(path, network(1))
        x = (torch.rand(50, 30) > 0.5).float()
        assert torch.equal(fresh(x), model(x))
        assert torch.equal(fresh[1].luts, model[1].luts)  # float tables stay float
        check_size(model, path, (30,))


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "dwn"
    argv = "--dataset digits --layers 30 20 --mapping learnable random --n 4 --epochs 1"
    argv += f" --export false --quiet --device cpu --out-dir {run}"
    assert run_cli(train_main, argv.split()) == 0
    return run


class TestExportCommand:
    def test_verify_on_a_run_trained_with_the_cli(self, digits_run, tmp_path, capsys):
        out = tmp_path / "digits.bnn"
        assert run_cli(export_main, [str(digits_run), "--out", str(out), "--verify"]) == 0
        text = capsys.readouterr().out
        same = re.search(r"the same class on (\d+) of (\d+) test inputs", text)
        assert same and same[1] == same[2] and int(same[2]) > 300
        assert "LUTLayer" in out.with_suffix(".summary.txt").read_text()
        assert export.read_header(out)["model_class"] == "DWN"

    def test_from_run_refits_the_training_encoder(self, digits_run):
        config = yaml.safe_load((digits_run / "config.yaml").read_text())
        state = torch.load(digits_run / "checkpoint.pt", weights_only=True)["model"]
        run = from_run(config, state)
        cfg = TrainConfig(dataset="digits", layers=[30, 20], n=4)
        x_train, _, x_test, _, _ = load_arrays(cfg)
        expected = type(run.model.encoder)(cfg.bits).fit(x_train).thresholds
        assert torch.equal(run.model.encoder.thresholds, expected)
        batches = list(test_inputs(run, None))
        assert torch.equal(torch.cat(batches), x_test)
        bits = run.model.encoder(x_test).flatten(1)
        with torch.no_grad():  # the same scores as the trained network on encoded inputs
            assert torch.equal(run.model(x_test), run.model.network(bits))

    def test_a_checkpoint_that_does_not_fit_is_one_error_line(self, digits_run, tmp_path):
        other = tmp_path / "other"
        shutil.copytree(digits_run, other)
        config = yaml.safe_load((other / "config.yaml").read_text())
        config["layers"] = [31, 20]
        (other / "config.yaml").write_text(yaml.safe_dump(config))
        assert_bad_input(export_main, [str(other)], tmp_path, "checkpoint")

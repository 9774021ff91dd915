"""Packed files that say how to rebuild their model, the packed_state() protocol, index
entries, parametrized weights, and ``python -m bnn_shared.export``'s one-line errors."""

from __future__ import annotations

import types
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import yaml
from bnn_shared import export, quantizers
from bnn_shared.cli import run_cli
from bnn_shared.errors import CheckpointError, ShapeError
from bnn_shared.export import Indices, Packed, RunModel
from bnn_shared.export.__main__ import main
from bnn_shared.layers import QuantLinear
from torch import nn
from torch.nn.utils import parametrize


class Wired(nn.Module):
    """A layer with its own packed_state: a fixed wiring and a one-hot choice matrix."""

    def __init__(self, inputs: int = 11, outputs: int = 5) -> None:
        super().__init__()
        self.register_buffer("wiring", torch.randint(0, inputs, (outputs, 2)))
        self.choice = nn.Parameter(torch.randn(inputs, outputs))
        self.table = nn.Parameter(torch.randn(outputs, 4))
        self.loaded = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        picked = x[:, self.choice.argmax(0)] + x[:, self.wiring].sum(-1)
        return picked * (self.table > 0).to(x.dtype).sum(-1)

    def packed_state(self) -> dict:
        return {
            "wiring": Indices(self.wiring, self.choice.shape[0]),
            "choice": Indices(self.choice.argmax(0), self.choice.shape[0], one_hot=True),
            "table": Packed((self.table > 0).to(self.table.dtype), 1),
        }

    def packed_loaded(self) -> None:
        self.loaded = True


def toy_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers = OrderedDict(
        wired=Wired(), fc=QuantLinear(5, 3, kernel_quantizer="uniform"), head=nn.Linear(3, 2)
    )
    return nn.Sequential(layers)


def fake_api(seed_used: list) -> types.SimpleNamespace:
    def build(model_class: str, config: dict) -> nn.Module:
        if model_class != "Sequential":
            raise KeyError(model_class)
        seed_used.append(config["seed"])
        return toy_model(seed=config["seed"] + 1)  # other weights: the file must bring its own

    def from_run(run_config: dict, state: dict) -> RunModel:
        model = toy_model(run_config["seed"])
        model.load_state_dict(state)
        return RunModel(model, "Sequential", {"seed": 0}, {"input_size": (11,)}, run_config)

    def test_inputs(run: RunModel, data_dir):
        generator = torch.Generator().manual_seed(3)
        return [torch.randn(7, 11, generator=generator) for _ in range(3)]

    return types.SimpleNamespace(build=build, from_run=from_run, test_inputs=test_inputs)


@pytest.fixture
def api(monkeypatch):
    seeds: list = []
    module = fake_api(seeds)
    entry = types.SimpleNamespace(load=lambda: module)
    monkeypatch.setattr(export, "model_packages", lambda: {"toypkg": entry})
    return module


class TestIndices:
    @pytest.mark.parametrize("size", [1, 2, 3, 255, 256, 3000])
    def test_round_trip(self, size):
        values = torch.randint(0, size, (4, 7))
        entry = export.pack_indices(Indices(values, size))
        assert entry["bits"] == max(1, (size - 1).bit_length())
        assert len(entry["packed"]) == (values.numel() * entry["bits"] + 7) // 8
        assert torch.equal(export.unpack_tensor(entry), values)

    def test_one_hot(self):
        values = torch.tensor([2, 0, 2, 1])
        decoded = export.unpack_tensor(
            export.pack_indices(Indices(values, 3, one_hot=True), torch.float32)
        )
        assert decoded.shape == (3, 4) and torch.equal(decoded.argmax(0), values)
        assert decoded.sum().item() == 4

    def test_out_of_range(self):
        with pytest.raises(ShapeError, match=r"\[0, 3\)"):
            export.pack_indices(Indices(torch.tensor([0, 3]), 3))


class TestProtocol:
    def test_round_trip_is_bit_identical(self, tmp_path):
        model = toy_model().eval()
        x = torch.randn(9, 11)
        path = export.save_binary(model, tmp_path / "m.bnn")
        fresh = toy_model(seed=5)
        export.load_binary(path, fresh)
        assert torch.equal(fresh(x), model(x))
        assert fresh.wired.loaded and isinstance(fresh.fc.kernel_quantizer, quantizers.NoOp)
        assert fresh.fc.kernel_quantizer.precision == 4

    def test_entries(self):
        entries = export.packed_entries(toy_model())
        assert sorted(entries) == ["fc.weight", "wired.choice", "wired.table", "wired.wiring"]

    def test_parametrized_weight(self, tmp_path):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 4), nn.Linear(4, 2))
        parametrize.register_parametrization(model[0], "weight", quantizers.SteSign(zero=-1))
        x = torch.randn(5, 6)
        path = export.save_binary(model, tmp_path / "p.bnn")
        state = torch.load(path, weights_only=True)["state_dict"]
        assert state["0.parametrizations.weight.original"]["bits"] == 1
        torch.manual_seed(1)
        fresh = nn.Sequential(nn.Linear(6, 4), nn.Linear(4, 2))
        parametrize.register_parametrization(fresh[0], "weight", quantizers.SteSign(zero=-1))
        export.load_binary(path, fresh)
        assert torch.equal(fresh(x), model(x))

    def test_parametrization_that_is_not_idempotent(self):
        model = nn.Linear(6, 4)
        halving = quantizers.Lambda(lambda w: torch.sign(w) + 1, precision=1)  # q(0) = 1, not 0
        parametrize.register_parametrization(model, "weight", halving)
        with pytest.raises(ShapeError, match="packed_state"):
            export.binary_state_dict(model)


class TestLoad:
    def test_header_and_load(self, api, tmp_path):
        model = toy_model().eval()
        path = export.save_binary(model, tmp_path / "m.bnn", package="toypkg", config={"seed": 0})
        header = export.read_header(path)
        assert header == {
            "package": "toypkg",
            "model_class": "Sequential",
            "config": {"seed": 0},
            "version": 2,
        }
        loaded = export.load(path)
        x = torch.randn(4, 11)
        assert not loaded.training and torch.equal(loaded(x), model(x))

    def test_package_not_installed(self, api, tmp_path):
        path = export.save_binary(toy_model(), tmp_path / "m.bnn", package="elsewhere")
        with pytest.raises(CheckpointError, match="'elsewhere', which is not installed.*toypkg"):
            export.load(path)

    def test_no_package(self, tmp_path):
        path = export.save_binary(toy_model(), tmp_path / "m.bnn")
        with pytest.raises(CheckpointError, match="load_binary"):
            export.load(path)

    def test_unknown_model_class(self, api, tmp_path):
        path = export.save_binary(
            toy_model(), tmp_path / "m.bnn", package="toypkg", model_class="Other"
        )
        with pytest.raises(CheckpointError, match="cannot build 'Other'"):
            export.load(path)

    def test_truncated(self, tmp_path):
        path = export.save_binary(toy_model(), tmp_path / "m.bnn")
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(CheckpointError, match="not a packed model"):
            export.load_binary(path)


def write_run(run_dir: Path, package: str | None = "toypkg", seed: int = 0) -> None:
    run_dir.mkdir(parents=True)
    config = {"seed": seed, "run": {"device": "cpu", "package": package}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    torch.save({"epoch": 1, "model": toy_model(seed).state_dict()}, run_dir / "checkpoint.pt")


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


class TestCommand:
    def test_export_and_verify(self, api, tmp_path, capsys):
        write_run(tmp_path / "run")
        assert run_cli(main, [str(tmp_path / "run"), "--verify"]) == 0
        out = capsys.readouterr().out
        assert "the same class on 21 of 21 test inputs" in out
        assert "packed file:" in out and "summary memory" in out
        assert (tmp_path / "run" / "model.bnn").is_file()
        assert "Total params" in (tmp_path / "run" / "model.summary.txt").read_text()

    @pytest.mark.parametrize(
        "case, message",
        [
            ("missing", "is not a run directory"),
            ("no_checkpoint", "no checkpoint"),
            ("bad_checkpoint", "not a readable checkpoint"),
            ("no_package", "--package"),
            ("unknown_package", "not installed"),
            ("out_is_dir", "is not a file"),
        ],
    )
    def test_bad_input_is_one_line(self, api, tmp_path, capsys, case, message):
        run = tmp_path / "run"
        args = [str(run)]
        if case != "missing":
            write_run(run, package=None if case == "no_package" else "toypkg")
        if case == "no_checkpoint":
            (run / "checkpoint.pt").unlink()
        if case == "bad_checkpoint":
            (run / "checkpoint.pt").write_text("not a checkpoint")
        if case == "unknown_package":
            args += ["--package", "nothere"]
        if case == "out_is_dir":
            (tmp_path / "adir").mkdir()
            args += ["--out", str(tmp_path / "adir")]
        before = files(tmp_path)
        assert run_cli(main, args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
        assert files(tmp_path) == before


def test_rebuilt_entries_are_not_stored(tmp_path):
    class Slots(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("slots", torch.arange(4000))
            self.scale = nn.Parameter(torch.randn(4000))

        def forward(self, x):
            return x * self.scale[self.slots]

        def packed_state(self):
            return {"slots": export.Rebuilt(tuple(self.slots.shape))}

    model = Slots()
    path = export.save_binary(model, tmp_path / "s.bnn")
    stored = torch.load(path, weights_only=True)["state_dict"]["slots"]
    assert stored == {"format": export.FORMAT, "kind": "rebuilt", "shape": [4000]}
    assert path.stat().st_size < 4000 * 4 + 4000  # the float scale, not 4000 int64 slots
    fresh = Slots()
    with torch.no_grad():
        fresh.scale.zero_()
    export.load_binary(path, fresh)
    x = torch.randn(4000)
    assert torch.equal(fresh(x), model(x))
    assert "slots" not in export.load_binary(path)


class TestCheckAFile:
    """``python -m bnn_shared.export FILE``: rebuild and describe a packed file."""

    def test_a_good_file(self, api, tmp_path, capsys):
        path = export.save_binary(
            toy_model(), tmp_path / "m.bnn", package="toypkg", config={"seed": 0}
        )
        assert run_cli(main, [str(path)]) == 0
        out = capsys.readouterr().out
        assert "toypkg Sequential" in out and "4 packed tensors" in out

    @pytest.mark.parametrize("case", ["not_packed", "truncated", "other_package", "shapes"])
    def test_bad_files_are_one_line(self, api, tmp_path, capsys, monkeypatch, case):
        path = tmp_path / "m.bnn"
        if case == "not_packed":
            torch.save({"weight": torch.zeros(3)}, path)
        else:
            package = "elsewhere" if case == "other_package" else "toypkg"
            export.save_binary(toy_model(), path, package=package, config={"seed": 0})
        if case == "truncated":
            path.write_bytes(path.read_bytes()[:300])
        if case == "shapes":
            wider = nn.Sequential(
                OrderedDict(wired=Wired(13), fc=QuantLinear(5, 3), head=nn.Linear(3, 2))
            )
            monkeypatch.setattr(api, "build", lambda model_class, config: wider)
        before = files(tmp_path)
        assert run_cli(main, [str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1
        expected = {
            "not_packed": "not a packed model",
            "truncated": "not a packed model",
            "other_package": "'elsewhere', which is not installed",
            "shapes": "does not match the model",
        }[case]
        assert expected in err
        assert files(tmp_path) == before


def test_check_prints_the_summary_when_the_package_gives_its_inputs(api, tmp_path, capsys):
    api.summary_inputs = lambda model_class, config: {"input_size": (11,)}
    path = export.save_binary(toy_model(), tmp_path / "m.bnn", package="toypkg", config={"seed": 0})
    assert run_cli(main, [str(path)]) == 0
    assert "Total params" in capsys.readouterr().out


def test_load_trained_weights_is_one_line_when_the_checkpoint_does_not_fit():
    model = toy_model()
    assert export.load_trained_weights(toy_model(1), model.state_dict()) is not None
    state = {**model.state_dict(), "head.weight": torch.zeros(5, 5)}
    with pytest.raises(CheckpointError, match="does not fit the run's model: .*head.weight") as err:
        export.load_trained_weights(toy_model(1), state)
    assert "\n" not in str(err.value)

"""Bit-packed export of both studies' models (``binary_feedback.exporting``, the core's
``bnn_shared.models`` entry point): each model variant, trained for two steps on digits,
is saved with 1-bit weights, rebuilt by ``bnn_shared.export.load`` and gives bit-identical
outputs; the file size against the summary; ``python -m bnn_shared.export RUN_DIR --verify``
on runs trained with the package's CLI; bad input."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch
from binary_feedback import exporting
from binary_feedback.config import StudyAConfig, StudyBConfig
from binary_feedback.data import load_splits
from binary_feedback.experiment import experiment_for
from binary_feedback.train import main as train_main
from bnn_shared import export, quantizers
from bnn_shared.cli import run_cli
from bnn_shared.errors import CheckpointError, ConfigError
from bnn_shared.export.__main__ import main as export_main
from bnn_shared.summary import summary
from bnn_shared.testing import assert_bad_input, single_thread
from torch import nn

A = {"dataset": "digits", "hidden": [32, 16], "init": 1e-3, "batch_size": 32}
B = {"dataset": "digits", "binary_weights": True, "binary_act": True, "bs": 32}
CASES = {
    "a_signsat_bn": StudyAConfig(**A, bn=True, binarize=True, hidden_act="signsat"),
    "a_tanh_bn_tanh_ste": StudyAConfig(**A, bn=True, binarize=True, weight_ste="tanh"),
    "a_sign_binarize_last": StudyAConfig(
        **A, binarize=True, binarize_last=True, hidden_act="sign", weight_ste="sat"
    ),
    "a_float": StudyAConfig(**A),
    "b_mlp": StudyBConfig(**B, model="MLP"),
    "b_mlp_unsat_float_weights": StudyBConfig(**{**B, "binary_weights": False}, unsat=True),
    "b_smallcnn": StudyBConfig(**B, model="SmallCNN"),
    "b_mobilenetv2": StudyBConfig(**B, model="MobileNetV2", image_size=16),
    "b_mlpmixer": StudyBConfig(**B, model="MLPMixer", image_size=16),
}
SLOW_CASES = {"b_vgg16": StudyBConfig(**B, model="vgg16", image_size=32)}
RUN_A = "--dataset digits --bn --binarize --hidden-act signsat --hidden 32,16 --init 1e-3 -b 32"
RUN_B = "--dataset digits --model SmallCNN --binary-act --binary-weights --bs 64 --test-set"
COMMON = "--epochs 1 --seed 0 --device cpu --quiet"
DIGITS_TEST = 359


@pytest.fixture(autouse=True)
def one_thread():
    """Small models run fastest on one thread, and steadily on a busy machine."""
    with single_thread():
        yield


def trained(config, steps: int = 2):
    """The experiment's model after ``steps`` training steps on digits (clipped after each),
    and a batch of test inputs as the model sees them."""
    torch.manual_seed(0)
    experiment, in_shape, num_classes = exporting._experiment(config)
    model, rule, optimizer = experiment.build(in_shape, num_classes)
    x_train, y_train, x_test, _ = load_splits("digits")
    x_train, x_test = experiment.preprocess(x_train), experiment.preprocess(x_test)
    model.train()
    for step in range(steps):
        batch = slice(32 * step, 32 * (step + 1))
        rule.step(model, experiment.prepare(x_train[batch]), y_train[batch], optimizer)
        experiment.clip(model)
    return model.eval(), experiment.prepare(x_test[:64])


def record_overhead(model: nn.Module) -> int:
    """Bytes the file holds beyond the summary's memory figure, bounded: every buffer (batch
    norm's running statistics and batch counts, which the summary does not count), and per
    state-dict entry up to 512 bytes of container (zip record, name, pickled entry; a packed
    weight is two records with its codebook of 2 values), plus 4 KiB for the header and the
    stored config."""
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    return buffers + 512 * len(model.state_dict()) + 4096


def round_trip(config, tmp_path: Path) -> None:
    model, x = trained(config)
    model_class = exporting._model_class(config)
    values = exporting.model_config(config)
    path = export.save_binary(
        model, tmp_path / "m.bnn", package="binary_feedback", model_class=model_class,
        config=values,
    )  # fmt: skip
    reloaded = export.load(path)
    with torch.no_grad():
        assert torch.equal(reloaded(x), model(x))
    header = export.read_header(path)
    assert (header["package"], header["model_class"]) == ("binary_feedback", model_class)
    result = summary(model, tuple(values["in_shape"]), print_fn=None)
    size = path.stat().st_size
    assert result.memory_bytes < size <= result.memory_bytes + record_overhead(model)
    packed = export.packed_entries(model)
    assert sum(entry.value.numel() for entry in packed.values()) == result.params.get(1, 0)
    for module in reloaded.modules():  # the reloaded binary layers hold +-1 values
        if isinstance(getattr(module, "kernel_quantizer", None), quantizers.NoOp):
            assert set(module.weight.unique().tolist()) <= {-1.0, 1.0}


@pytest.mark.parametrize("case", sorted(CASES))
def test_save_and_load_give_identical_outputs(case, tmp_path):
    round_trip(CASES[case], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SLOW_CASES))
def test_save_and_load_vgg(case, tmp_path):
    round_trip(SLOW_CASES[case], tmp_path)


def test_paper_mlp_file_against_summary(tmp_path):
    """Study A's MNIST MLP with batch norm: the file is about 5 % larger than the summary's
    memory (which counts batch norm's running statistics): the container, the step counters
    of batch norm (8 bytes each) and a 2-value codebook per binary tensor."""
    paper = {"hidden": [700, 500, 300, 200], "init": 1e-3}
    config = StudyAConfig(dataset="mnist", bn=True, binarize=True, **paper)
    values = exporting.model_config(config)
    model = exporting.build("study_a", values).eval()
    path = export.save_binary(model, tmp_path / "m.bnn", package="binary_feedback",
                              model_class="study_a", config=values)  # fmt: skip
    memory = summary(model, (1, 28, 28), print_fn=None).memory_bytes
    counters = sum(b.numel() * b.element_size() for n, b in model.named_buffers() if "tracked" in n)
    assert counters == 4 * 8
    assert memory + counters < path.stat().st_size < 1.06 * memory


def test_float64_model_is_rebuilt_in_float64(tmp_path):
    config = CASES["a_signsat_bn"]
    model, _ = trained(config)
    state = {key: value.double() if value.is_floating_point() else value
             for key, value in model.state_dict().items()}  # fmt: skip
    run = exporting.from_run(config.model_dump(), state)
    assert {p.dtype for p in run.model.parameters()} == {torch.float64}
    assert run.config["dtype"] == "float64" and run.summary_kwargs["dtypes"] == [torch.float64]
    path = export.save_binary(run.model, tmp_path / "m.bnn", package="binary_feedback",
                              model_class=run.model_class, config=run.config)  # fmt: skip
    reloaded = export.load(path)
    x = next(iter(exporting.test_inputs(run)))
    assert x.dtype == torch.float64
    with torch.no_grad():
        assert torch.equal(reloaded(x), run.model(x))


class TestTestInputs:
    def test_study_a_scaling(self):
        run = exporting.from_run(CASES["a_float"].model_dump(), trained(CASES["a_float"])[0]
                                 .state_dict())  # fmt: skip
        batches = list(exporting.test_inputs(run))
        _, _, x_test, _ = load_splits("digits")
        assert [len(b) for b in batches] == [DIGITS_TEST]
        assert torch.equal(batches[0], x_test * 2 - 1)

    def test_study_b_normalised_and_resized(self):
        config = CASES["b_mobilenetv2"]
        experiment = experiment_for(config)
        run = exporting.from_run(config.model_dump(), trained(config, steps=0)[0].state_dict())
        batch = next(iter(exporting.test_inputs(run)))
        _, _, x_test, _ = load_splits("digits")
        assert batch.shape == (DIGITS_TEST, 1, 16, 16)
        expected = nn.functional.interpolate(
            experiment.preprocess(x_test), size=(16, 16), mode="bilinear", align_corners=False
        )
        assert torch.equal(batch, expected)
        assert batch.mean().abs() < 1 and batch.min() < -0.9  # (x - 0.5) / 0.5


class TestBadInput:
    def test_unknown_model_class_names_the_choices(self):
        with pytest.raises(ConfigError, match="study_a, study_b"):
            exporting.build("study_c", {})

    def test_missing_key(self):
        values = exporting.model_config(CASES["a_float"])
        del values["in_shape"]
        with pytest.raises(ConfigError, match="in_shape"):
            exporting.build("study_a", values)

    def test_weights_of_another_model(self):
        state = trained(CASES["a_float"])[0].state_dict()
        other = StudyAConfig(**{**A, "hidden": [16]})
        with pytest.raises(CheckpointError, match="does not fit"):
            exporting.from_run(other.model_dump(), state)


def train_run(command: str, out_dir: Path) -> Path:
    assert run_cli(train_main, shlex.split(f"{command} {COMMON} --out-dir {out_dir}")) == 0
    return out_dir


@pytest.mark.parametrize("command", [RUN_A, RUN_B], ids=["study_a", "study_b_smallcnn"])
def test_export_command_verifies_a_trained_run(command, tmp_path, capsys):
    run_dir = train_run(command, tmp_path / "run")
    capsys.readouterr()
    assert run_cli(export_main, [str(run_dir), "--verify"]) == 0
    out = capsys.readouterr().out
    match = re.search(r"the same class on (\d+) of (\d+) test inputs", out)
    assert match and match.group(1) == match.group(2) == str(DIGITS_TEST), out
    assert (run_dir / "model.bnn").is_file() and (run_dir / "model.summary.txt").is_file()
    assert "# 1-bit" in (run_dir / "model.summary.txt").read_text(encoding="utf-8")


def test_export_command_refuses_weights_that_do_not_fit(tmp_path):
    run_dir = train_run(RUN_A, tmp_path / "run")
    config = run_dir / "config.yaml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("- 16\n", "- 8\n"), encoding="utf-8"
    )
    assert_bad_input(export_main, [str(run_dir)], tmp_path, "does not fit")

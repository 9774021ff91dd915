"""Study A's command line (spec A.1): every flag and alias with the study code's meaning and
defaults, the example commands, bad values; the Scaler (``--sn``), ``--binarize_last``,
optional clipping, the counted ``-v``, ``--run-name auto``; the per-batch statistics and
the model size (spec A.2) on hand-computable cases and in a short digits run."""

from __future__ import annotations

import csv
import shlex

import pytest
import torch
from binary_feedback.commons.layers import is_binarized
from binary_feedback.config import StudyAConfig
from binary_feedback.evaluation import (
    BATCH_KEYS,
    BatchMonitor,
    model_size,
    saturation_threshold,
)
from binary_feedback.experiment import StudyAExperiment
from binary_feedback.models.mlp import MLP, Scaler
from binary_feedback.train import main, parse, resolve
from binary_feedback.training import get_rule
from bnn_shared.cli import run_cli
from bnn_shared.testing import assert_bad_input, metric_rows
from torch import nn

# -- flags, aliases and defaults (parse only) -------------------------------------------------

DEFAULTS = {
    "method": "GD", "dataset": "mnist", "epochs": 5, "batch_size": 128, "lr": 1e-3,
    "hidden": [700, 500], "init": 0.1, "bn": False, "sn": False, "hidden_act": "tanh",
    "last_act": "tanh", "binarize": False, "binarize_last": False, "weight_clipping": None,
    "weight_ste": "identity", "verbose": 0, "seed": None, "run_name": None,
    "batch_stats": True, "dtype": "float32", "wandb_project": "mnist custom",
}  # fmt: skip


def test_no_flags_give_the_study_codes_defaults():
    config = resolve([])
    assert config.study == "A"
    assert {key: getattr(config, key) for key in DEFAULTS} == DEFAULTS


@pytest.mark.parametrize(
    "argv, expected",
    [
        ("-m dfa", {"method": "DFA"}),
        ("--method Drtp", {"method": "DRTP"}),
        ("-m gd", {"method": "GD"}),
        ("-d MNIST", {"dataset": "mnist"}),
        (
            "--dataset fashion_mnist",
            {"dataset": "fashion_mnist", "wandb_project": "fashion_mnist custom"},
        ),
        ("-d cifar", {"dataset": "cifar10", "wandb_project": "cifar custom"}),
        ("-d cifar10", {"dataset": "cifar10", "wandb_project": "cifar10 custom"}),
        ("-d CIFAR-10", {"dataset": "cifar10", "wandb_project": "cifar-10 custom"}),
        ("-d cifar --wandb-project mine", {"dataset": "cifar10", "wandb_project": "mine"}),
        ("--dtype float64", {"dtype": "float64"}),
        ("-e 7", {"epochs": 7}),
        ("--epochs 3", {"epochs": 3}),
        ("-b 64", {"batch_size": 64}),
        ("--batchsize 32", {"batch_size": 32}),
        ("--batch-size 16", {"batch_size": 16}),
        ("--lr 1e-5", {"lr": 1e-5}),
        ("--hidden 700,500,300,200", {"hidden": [700, 500, 300, 200]}),
        ("--init 0.001", {"init": 1e-3}),
        ("--bn", {"bn": True}),
        ("--sn", {"sn": True}),
        ("--bn --sn", {"bn": True, "sn": True}),
        ("--hidden-act signSat --last-act SIGN", {"hidden_act": "signSat", "last_act": "SIGN"}),
        ("--hidden-act signtanh --last-act id", {"hidden_act": "signtanh", "last_act": "id"}),
        ("--binarize", {"binarize": True}),
        ("--binarize_last", {"binarize_last": True}),
        ("--binarize-last", {"binarize_last": True}),
        ("--binarize --binarize_last", {"binarize": True, "binarize_last": True}),
        ("--weight-clipping 1", {"weight_clipping": 1.0}),
        ("--weight-clipping 0.5", {"weight_clipping": 0.5}),
        ("--weight-clipping 0", {"weight_clipping": None}),
        ("--weight-clipping=-1", {"weight_clipping": None}),
        ("--weight-ste sat", {"weight_ste": "sat"}),
        ("--weight-ste tanh", {"weight_ste": "tanh"}),
        ("-v", {"verbose": 1}),
        ("-vv", {"verbose": 2}),
        ("-v -v -v", {"verbose": 3}),
        ("--verbose", {"verbose": 1}),
        ("--seed 12", {"seed": 12}),
        ("--run-name auto", {"run_name": "auto"}),
        ("--run-name 'my run'", {"run_name": "my run"}),
        ("--no-batch-stats", {"batch_stats": False}),
    ],
)
def test_every_flag_and_alias(argv, expected):
    config = resolve(shlex.split(argv))
    assert config.study == "A"
    assert {key: getattr(config, key) for key in expected} == expected
    untouched = {k: v for k, v in DEFAULTS.items() if k not in expected}
    assert {key: getattr(config, key) for key in untouched} == untouched


def test_wandb_is_a_run_setting():
    config, settings = parse(["--wandb", "-m", "DFA"])
    assert settings.wandb and config.method == "DFA"


ACCEPTANCE = (
    "--dataset MNIST --method {} --bn --init 0.001 --lr 0.0001 --hidden-act tanh -b 128 "
    "--hidden 700,500,300,200 --binarize --weight-clipping 1 --seed 1"
)
EXAMPLES = [
    # the acceptance commands (issue 22)
    ACCEPTANCE.format("DFA"),
    ACCEPTANCE.format("GD"),
    # the W&B sweeps' expansion (spec A.7: ${args_no_boolean_flags} --wandb -v --run-name auto)
    "--seed=1 --weight-clipping=1.0 --hidden=700,500,300,200 --epochs=100 --bn --method=DRTP "
    "--init=0.001 --lr=1e-05 --binarize --hidden-act=signSat --wandb -v --run-name auto",
    "--seed=1 --weight-clipping=1.0 --hidden=700,500,300,200 --epochs=100 --dataset=CIFAR10 "
    "--bn --method=GD --init=0.1 --lr=0.0001 --hidden-act=tanh --wandb -v --run-name auto",
    "--method=GD --epochs=5 --lr=1e-05 --binarize --wandb -v --run-name auto",
    # run-repeated-experiments.sh (spec 2.6)
    "-d MNIST -m DFA -b 128 -e 100 --hidden 700,500,300,200 --weight-clipping 1 --init 0.001 "
    "--lr 0.000001 --binarize --hidden-act signsat --seed 2 --wandb",
    "-d fashion_mnist -m gd -b 128 -e 100 --hidden 700,500,300,200 --weight-clipping 1 "
    "--init 0.1 --lr 0.0001 --hidden-act tanh --seed 11",
    # every remaining flag at once
    "-m drtp -d cifar -e 2 -b 64 --lr 1e-4 --hidden 64,32 --init 0.01 --bn --sn "
    "--hidden-act sign --last-act signsat --binarize --binarize_last --weight-clipping 1 "
    "--weight-ste tanh -vv --seed 3 --run-name auto",
    # the package README's study A commands
    "--method drtp",
    "--dataset digits --method DFA --bn --binarize --hidden-act signsat --hidden 256,128 "
    "--init 1e-3 --lr 1e-4 -b 32 --epochs 30",
    "--config configs/binary_feedback/mnist_bn_binary_tanh_dfa.yaml",
]


@pytest.mark.parametrize("command", EXAMPLES)
def test_example_commands_parse_as_study_a(command, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(Path(__file__).resolve().parents[3])  # the README's relative paths
    config, _ = parse(shlex.split(command))
    assert isinstance(config, StudyAConfig)


# -- bad values --------------------------------------------------------------------------------

A = "--dataset digits --hidden 8 -b 64 --epochs 1 --seed 0 --device cpu --quiet"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("-m sgd", "sgd"),
        ("-d svhn", "svhn"),
        ("-e 0", "epochs"),
        ("--batchsize 0", "batch_size"),
        ("--batchsize x", "--batchsize"),
        ("--lr x", "--lr"),
        ("--hidden 7a", "--hidden"),
        ("--init 0", "init"),
        ("--init x", "--init"),
        ("--hidden-act relu", "relu"),
        ("--last-act relu", "relu"),
        ("--weight-clipping x", "--weight-clipping"),
        ("--weight-ste sign", "--weight-ste"),
        ("--seed x", "--seed"),
        ("--sn 2", "2"),
        ("--binarize_last 1", "1"),
        ("--verbose 2", "2"),
        ("--set verbose=-1", "verbose"),
        ("--set batchsize=16 --set batch_size=32", "batchsize"),
        ("--no-batch-stats 1", "1"),
        ("--set batch_stats=maybe", "batch_stats"),
        ("--dtype float16", "--dtype"),
        ("--set dtype=half", "dtype"),
    ],
)
def test_bad_values(tmp_path, change, needle):
    argv = shlex.split(f"{A} {change} --out-dir {tmp_path / 'run'}")
    assert_bad_input(main, argv, tmp_path, needle)


def test_non_positive_clipping_warns_and_disables(capsys):
    assert resolve(["--weight-clipping", "-0.5"]).weight_clipping is None
    assert "warning: --weight-clipping -0.5 <= 0" in capsys.readouterr().err


# -- model: Scaler, binarize_last, clipping --------------------------------------------------------


def test_scaler_divides_forward_and_backward_by_the_fan_in():
    x = torch.tensor([[4.0, -8.0]], requires_grad=True)
    y = Scaler(4)(x)
    y.backward(torch.tensor([[1.0, 2.0]]))
    assert y.tolist() == [[1.0, -2.0]] and x.grad.tolist() == [[0.25, 0.5]]
    assert not list(Scaler(4).parameters())


def test_sn_puts_a_scaler_after_each_hidden_linear_before_batch_norm():
    model = MLP(12, 3, [8, 5], sn=True, bn=True)
    kinds = [type(m).__name__ for m in model.layers]
    assert kinds == ["Flatten"] + ["BinaryLinear", "Scaler", "StudyABatchNorm1d", "Tanh"] * 2
    assert [m.fan_in for m in model.layers if isinstance(m, Scaler)] == [12, 8]
    assert not any(isinstance(m, Scaler) for m in [model.output, model.last_act])
    plain = MLP(12, 3, [8, 5], sn=False, init=0.1)
    scaled = MLP(12, 3, [8, 5], sn=True, init=0.1, hidden_act="id")
    assert len(list(scaled.parameters())) == len(list(plain.parameters()))


def test_sn_divides_the_linear_weight_gradient_by_its_fan_in():
    torch.manual_seed(0)
    x = torch.randn(4, 6)
    grads = []
    for sn in (False, True):
        model = MLP(6, 2, [3], sn=sn, hidden_act="id", last_act="id", init=None)
        torch.manual_seed(1)
        nn.init.uniform_(model.layers[1].weight, -1, 1)
        nn.init.uniform_(model.output.weight, -1, 1)
        out = model(x)
        out.sum().backward()
        grads.append(model.layers[1].weight.grad.clone())
    torch.testing.assert_close(grads[1], grads[0] / 6)


def test_binarize_last_binarises_the_output_with_the_identity_ste():
    model = MLP(4, 2, [3], binarize_last=True, weight_ste="sat")  # without --binarize
    assert is_binarized(model.output) and not is_binarized(model.layers[1])
    both = MLP(4, 2, [3], binarize=True, binarize_last=True, weight_ste="sat")
    with torch.no_grad():
        for layer in (both.layers[1], both.output):
            layer.weight.fill_(1.5)  # outside the sat window |W| < 1
    both(torch.ones(2, 4)).sum().backward()
    assert both.output.weight.grad.abs().sum() > 0  # identity STE on the output layer
    assert both.layers[1].weight.grad.abs().sum() == 0  # sat STE on the hidden one
    assert torch.equal(both.output.quantized_weight(), torch.ones(2, 3))


@pytest.mark.parametrize("clipping, bound", [(None, 3.0), (0.5, 0.5), (-1.0, 3.0)])
def test_clipping_is_optional(clipping, bound):
    experiment = StudyAExperiment(StudyAConfig(weight_clipping=clipping, hidden=[3]))
    model = MLP(4, 2, [3], binarize_last=True)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(3.0)
    experiment.clip(model)
    layers = (model.layers[1], model.output)
    assert max(float(m.weight.detach().abs().max()) for m in layers) == bound


def test_run_name_auto_and_project():
    config = StudyAConfig(method="dfa", binarize=True, hidden_act="signsat", run_name="auto")
    experiment = StudyAExperiment(config)
    assert experiment.run_name == "DFA binarised signsat"
    assert experiment.project == "mnist custom"
    config = StudyAConfig(dataset="cifar", run_name="auto")
    assert StudyAExperiment(config).run_name == "GD continuous tanh"
    # as the study's code: the dataset as typed, lower-cased (-d cifar and -d CIFAR10 differ)
    assert StudyAExperiment(config).project == "cifar custom"
    assert StudyAExperiment(StudyAConfig(dataset="CIFAR10")).project == "cifar10 custom"
    assert StudyAExperiment(StudyAConfig(run_name="x")).run_name == "x"
    assert StudyAExperiment(StudyAConfig()).run_name is None


# -- per-batch statistics and model size (spec A.2) ----------------------------------------------


def _tiny(**options):
    model = MLP(2, 2, [3], init=None, **options)
    with torch.no_grad():
        model.layers[1].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        model.output.weight.zero_()
    return model


def test_batch_statistics_by_hand():
    model = _tiny(sn=True, bn=True, hidden_act="signsat")  # P is taken before Scaler and BN
    monitor = BatchMonitor(model)
    model.train()
    model(torch.tensor([[1.0, 2.0], [3.0, -1.0]]))  # P = [1, 2, 3, 3, -1, 2]
    model.layers[1].weight.grad = torch.tensor([[1.0, -1.0], [0.0, 0.0], [2.0, 0.0]])
    model.output.weight.grad = torch.tensor([[0.0, 0.0, -4.0], [0.0, 0.0, 0.0]])
    values = monitor.measure()
    assert list(values) == list(BATCH_KEYS)
    expected = [2 / 6, 17 / 9, 65 / 36, 4.0]  # tau = 2 (output tanh): |3| twice
    assert values == pytest.approx(dict(zip(BATCH_KEYS, expected, strict=True)), rel=1e-12)


def test_evaluation_passes_are_not_measured():
    model = _tiny()
    monitor = BatchMonitor(model)
    model.eval()
    model(torch.ones(2, 2))
    assert "batch/activation_variance" not in monitor.measure()


@pytest.mark.parametrize(
    "hidden, last, tau",
    [("signsat", "tanh", 2.0), ("tanh", "signsat", 1.0), ("tanh", "sign", 1.0),
     ("signsat", "id", 1.0), ("tanh", "signtanh", 2.0), ("id", "id", None)],
)  # fmt: skip
def test_saturation_threshold_comes_from_the_last_recognised_activation(hidden, last, tau):
    model = MLP(4, 2, [3], hidden_act=hidden, last_act=last)
    assert saturation_threshold(model) == tau
    monitor = BatchMonitor(model)
    model.train()
    model(torch.ones(2, 4))
    assert ("batch/average_saturation" in monitor.measure()) == (tau is not None)


def test_dfa_statistics_see_pseudo_gradients():
    torch.manual_seed(0)
    model = MLP(6, 3, [5, 4], binarize=True)
    monitor = BatchMonitor(model)
    rule = get_rule("DFA", regime="study_a", num_classes=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    rule.step(model, torch.randn(8, 6), torch.randint(0, 3, (8,)), optimizer)
    grads = torch.cat([m.weight.grad.reshape(-1) for m in monitor.linears]).double()
    values = monitor.measure()
    assert values["batch/max_abs_gradient"] == pytest.approx(float(grads.abs().max()))
    assert values["batch/gradient_variance"] == pytest.approx(float(grads.var(unbiased=False)))
    assert len(monitor.linears) == 3 and len(monitor.hidden) == 2


def test_model_size_packs_each_binarised_layer_along_its_larger_axis():
    assert model_size(MLP(20, 3, [9])) == ((20 * 9 + 9 * 3) * 4,) * 2
    # (9, 20) packed along 20: 3 bytes x 9; the float output 27 x 4 B
    assert model_size(MLP(20, 3, [9], binarize=True)) == (828, 27 + 108)
    # the output (3, 9) packed along 9: 2 bytes x 3
    assert model_size(MLP(20, 3, [9], binarize=True, binarize_last=True)) == (828, 27 + 6)
    paper = MLP(784, 10, [700, 500, 300, 200], binarize=True)  # spec A.2: 139,100 B of bits
    assert model_size(paper) == (1_110_800 * 4, 139_100 + 2000 * 4)


# -- a short digits run -------------------------------------------------------------------------


@pytest.mark.slow  # two short digits runs (a few seconds each on a loaded 2-core machine)
def test_a_run_writes_batches_and_epoch_means_and_prints_per_level(tmp_path, capsys):
    out = tmp_path / "run"
    argv = shlex.split(f"{A} -m DFA --binarize --sn -b 256 -vv --out-dir {out}")
    assert run_cli(main, [a for a in argv if a != "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()
    with open(out / "batches.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    steps = len(rows)
    assert steps >= 4 and [int(r["step"]) for r in rows] == list(range(1, steps + 1))
    assert printed[0].startswith("model size: normal ")
    assert sum(line.startswith("epoch 1 step ") for line in printed) == steps
    assert sum(line.startswith("epoch 1: ") for line in printed) == 1
    (row,) = metric_rows(out / "metrics.csv")
    for key in BATCH_KEYS:
        assert row[key] == pytest.approx(sum(float(r[key]) for r in rows) / steps)
    assert row["model_size/packed_bytes"] < row["model_size/normal_bytes"]
    # resumed: the steps go on from the first epoch's
    assert run_cli(main, [*argv, "--epochs", "2", "--resume"]) == 0
    with open(out / "batches.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(1, 2 * steps + 1))
    assert {r["epoch"] for r in rows[steps:]} == {"2"}


def test_verbose_zero_prints_no_epoch_or_batch_lines(tmp_path, capsys):
    argv = shlex.split(f"{A} -b 512 --out-dir {tmp_path / 'run'}")
    assert run_cli(main, [a for a in argv if a != "--quiet"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("model size: ")
    assert not any(line.startswith(("epoch 1:", "epoch 1 step")) for line in printed)
    assert (tmp_path / "run" / "batches.csv").is_file()


def test_no_batch_stats_writes_no_batch_file_and_the_same_metrics(tmp_path):
    argv = shlex.split(f"{A} -b 512 -m DFA --binarize --seed 5")
    assert run_cli(main, [*argv, "--out-dir", str(tmp_path / "on")]) == 0
    assert run_cli(main, [*argv, "--no-batch-stats", "--out-dir", str(tmp_path / "off")]) == 0
    assert not (tmp_path / "off" / "batches.csv").exists()
    (on,) = metric_rows(tmp_path / "on" / "metrics.csv")
    (off,) = metric_rows(tmp_path / "off" / "metrics.csv")
    assert not any(key in off for key in BATCH_KEYS) and all(key in on for key in BATCH_KEYS)
    assert on["test/accuracy"] == off["test/accuracy"] and on["train/loss"] == off["train/loss"]
    # a resumed run may switch them on or off
    more = [*argv, "--epochs", "2", "--resume", "--out-dir", str(tmp_path / "off")]
    assert run_cli(main, more) == 0
    assert (tmp_path / "off" / "batches.csv").is_file()


def test_float64_computes_in_double_and_matches_float32(tmp_path):
    """--dtype float64 (the study's NumPy precision): every parameter, input and feedback
    matrix is float64, and training lands where float32 does."""
    config = StudyAConfig(method="DFA", bn=True, binarize=True, hidden=[32], dtype="float64")
    experiment = StudyAExperiment(config)
    torch.manual_seed(0)
    model, rule, optimizer = experiment.build((1, 8, 8), 10)
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    x = experiment.preprocess(torch.rand(16, 1, 8, 8))
    assert x.dtype == torch.float64
    rule.step(model, x, torch.arange(16) % 10, optimizer)
    assert {m.dtype for m in rule.matrices.values()} == {torch.float64}
    results = {}
    for dtype in ("float32", "float64"):
        out = tmp_path / dtype
        argv = f"-d digits -m DFA --bn --binarize --hidden 64 -e 2 --seed 3 --dtype {dtype}"
        assert run_cli(main, [*argv.split(), "--out-dir", str(out), "--quiet"]) == 0
        results[dtype] = float(metric_rows(out / "metrics.csv")[-1]["test/accuracy"])
    assert results["float64"] > 0.5
    assert abs(results["float64"] - results["float32"]) < 0.1

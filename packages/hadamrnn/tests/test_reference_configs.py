"""The reference's six YAML files (spec 3.2 and B.1, tags exactly as in the files) load, build
the same model, optimizer, scheduler, loss and metric as the package's file of the task, and
train one batch.

Training data: the copy task is generated (at T = 30); pMNIST and sMNIST train on the bundled
``pdigits`` / ``sdigits`` (``DATASET.NAME`` substituted, the rest of the file unchanged); IMDB,
SST-2 and QQP, whose files are not available offline, train on a few random token sequences
handed to :func:`hadamrnn.training.run_training` (the file's model, optimizer, scheduler, loss
and metric, at hidden size 16)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from bnn_shared.cli import run_cli
from bnn_shared.data.splits import TensorSplit
from bnn_shared.errors import ConfigError
from bnn_shared.runner import RunSettings
from bnn_shared.testing import metric_rows
from hadamrnn.config import load
from hadamrnn.dataset_tools import DATASETS, Splits
from hadamrnn.getters import LOSSES, get_loss, get_metric, get_model, get_optimizer, get_scheduler
from hadamrnn.train import main
from hadamrnn.training import run_training

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = ROOT / "configs" / "hadamrnn"

COMMON_MODEL = """
  BASIC_BLOCK: {block}
  NUM_BITS: 4
  QOUTPUT: True
  SINGLE_LAYER: True
  ACTIVATION: $torch.nn.ReLU
  ACTIVATION_CONFIG: null
  ACTIVATION_FINAL: null
  ACTIVATION_FINAL_CONFIG: null
  BIAS: True
  BIAS_FINAL: True
  GIVENS: 2
  MULTIPARAMETERS: False
"""
COMMON_TRAIN = """
  OPTIMIZER: $torch.optim.Adam
  SCHEDULER: $torch.optim.lr_scheduler.StepLR
  LOSS_CONFIG: null
  TORCH_DEVICE: cuda:0
  LAMBDA_ORTH: 0
  TRACK_FLIPS: True
  DISPLAY_EPOCH: false
  DISPLAY_EVERY: null
  USE_WANDB: False
"""


def _file(dataset: str, model: str, train: str, block: str = "'full'") -> str:
    return (
        'PROJECT: "hadamRNN_quantized"\n'
        f"DATASET:\n{dataset}"
        f"MODEL:\n{model}{COMMON_MODEL.format(block=block)}"
        f"TRAIN:\n{train}{COMMON_TRAIN}"
    )


MNIST_METRICS = """  METRICS: {'accuracy': $torchmetrics.Accuracy}
  METRICS_CONFIG: {'task': 'multiclass', 'num_classes': 10}
  GET_GRADIENTS: false
"""
BINARY = """  LOSS_FN: $torch.nn.BCEWithLogitsLoss
  METRICS: {'accuracy': $torchmetrics.classification.BinaryAccuracy}
  METRICS_CONFIG: null
  GET_GRADIENTS: false
"""


def _mnist(name: str, seed: int, batch: int) -> str:
    return _file(
        f"  NAME: {name}\n  TRAIN_SIZE: 50000\n  VAL_SIZE: 10000\n",
        f"  NAME: BinadamSSM\n  HIDDEN_SIZE: 512\n  INPUT_SIZE: 1\n  OUTPUT_SIZE: 10\n"
        f"  MANYTOMANY: false\n  SEED: {seed}\n",
        f"  N_EPOCHS: 100\n  BATCH_SIZE: {batch}\n  OPTIMIZER_CONFIG: {{'lr': 0.001}}\n"
        "  SCHEDULER_CONFIG: {'gamma': 0.98, 'step_size': 1}\n"
        f"  LOSS_FN: $torch.nn.CrossEntropyLoss\n{MNIST_METRICS}",
    )


def _glue(task: str, hidden: int, batch: int, epochs: int, block: str) -> str:
    return _file(
        f"  NAME: GLUE\n  TASK: {task}\n",
        f"  NAME: BinadamSSMwithEmbeddings\n  HIDDEN_SIZE: {hidden}\n  INPUT_SIZE: 256\n"
        "  OUTPUT_SIZE: 1\n  MANYTOMANY: False\n  VOCAB_SIZE: 30522\n  SEED: 8\n",
        f"  N_EPOCHS: {epochs}\n  BATCH_SIZE: {batch}\n  OPTIMIZER_CONFIG: {{'lr': 0.0005}}\n"
        f"  SCHEDULER_CONFIG: {{'gamma': 0.99, 'step_size': 1}}\n{BINARY}",
        block,
    )


#: the reference's files, by the name of the package's file of the same task
REFERENCE = {
    "copy": _file(
        "  NAME: CopyMemory\n  SENT_LENGTH: 10\n  SEQ_LENGTH: 1000\n  VOCABULARY: 10\n"
        "  TRAIN_SIZE: 512000\n  VAL_SIZE: 2000\n  TEST_SIZE: 2000\n",
        "  NAME: BinadamSSM\n  HIDDEN_SIZE: 128\n  INPUT_SIZE: 10\n  OUTPUT_SIZE: 9\n"
        "  MANYTOMANY: True\n  SEED: 712\n",
        "  N_EPOCHS: 10\n  BATCH_SIZE: 128\n  OPTIMIZER_CONFIG: {'lr': 0.0001} #0.001\n"
        "  SCHEDULER_CONFIG: {'gamma': 0.98, 'step_size': 1}\n"
        "  LOSS_FN: $torch.nn.CrossEntropyLoss\n  METRICS: null\n  #COMPUTE_SV: False\n",
    ),
    "pmnist": _mnist("pMNIST", 8, 100),
    "smnist": _mnist("sMNIST", 68, 64),
    "imdb": _file(
        "  NAME: IMDB\n  SEQ_LENGTH: 500\n",
        "  NAME: BinadamSSMwithEmbeddings\n  HIDDEN_SIZE: 128\n  INPUT_SIZE: 512\n"
        "  OUTPUT_SIZE: 1\n  MANYTOMANY: false\n  SEED: 8\n",
        "  N_EPOCHS: 30\n  BATCH_SIZE: 100\n  OPTIMIZER_CONFIG: {'lr': 0.0005}\n"
        f"  SCHEDULER_CONFIG: {{'gamma': 0.99, 'step_size': 1}}\n{BINARY}",
    ),
    "sst2": _glue("sst2", 128, 100, 30, "'full'"),
    "qqp": _glue("qqp", 512, 20, 50, "7"),
}


def write_reference(tmp_path: Path, task: str) -> Path:
    path = tmp_path / f"{task}_reference.yaml"
    path.write_text(REFERENCE[task], encoding="utf-8")
    return path


def _built(cfg):
    torch.manual_seed(0)
    model = get_model(cfg)
    optimizer = get_optimizer(cfg, model)
    scheduler = get_scheduler(cfg, optimizer)
    return model, optimizer, scheduler


@pytest.mark.parametrize("task", sorted(REFERENCE))
def test_reference_file_gives_the_package_config(tmp_path, task, capsys):
    ref = load(write_reference(tmp_path, task))
    warned = capsys.readouterr().err
    assert "MODEL.GIVENS has no effect" in warned and "MODEL.MULTIPARAMETERS" in warned
    own = load(CONFIGS / f"{task}.yaml")
    assert capsys.readouterr().err == ""  # the package's own files give no warning
    for key in ("train", "val", "test", "task", "sent_length", "vocabulary"):
        assert getattr(ref.dataset, key) == getattr(own.dataset, key), key
    assert DATASETS.canonical(ref.dataset.name) == DATASETS.canonical(own.dataset.name)
    if own.dataset.name != "glue":  # GLUE: the reference fixes 128, the package's file says so
        assert ref.dataset.seq_length == own.dataset.seq_length
    for key in ("n_epochs", "batch_size", "lr", "gamma", "step_size", "track_flips"):
        assert getattr(ref.train, key) == getattr(own.train, key), key
    assert (ref.project, ref.use_wandb, ref.model.seed) == (
        own.project,
        own.use_wandb,
        own.model.seed,
    )
    assert ref.train.torch_device == "cuda:0" and own.train.torch_device == "auto"
    (model, optimizer, scheduler), (model2, optimizer2, scheduler2) = _built(ref), _built(own)
    assert type(model) is type(model2) and type(model.recurrent) is type(model2.recurrent)
    state, state2 = model.state_dict(), model2.state_dict()
    assert state.keys() == state2.keys()
    assert all(torch.equal(state[key], state2[key]) for key in state)
    assert type(optimizer) is type(optimizer2) is torch.optim.Adam
    assert optimizer.defaults == optimizer2.defaults
    assert type(scheduler) is type(scheduler2) is torch.optim.lr_scheduler.StepLR
    assert scheduler.state_dict() == scheduler2.state_dict()
    assert LOSSES.canonical(ref.train.loss_fn) == LOSSES.canonical(own.train.loss_fn)
    assert get_loss(ref) is get_loss(own)
    assert get_metric(ref) is get_metric(own)  # None for the copy task


def test_reference_copy_file_trains_one_batch(tmp_path):
    out = tmp_path / "run"
    argv = ["--config", str(write_reference(tmp_path, "copy")), "--device", "cpu", "--quiet"]
    argv += ["--out-dir", str(out), "--set", "DATASET.SEQ_LENGTH=30", "DATASET.SENT_LENGTH=4"]
    argv += ["DATASET.TRAIN_SIZE=64", "DATASET.VAL_SIZE=32", "DATASET.TEST_SIZE=32"]
    argv += ["MODEL.HIDDEN_SIZE=16", "TRAIN.N_EPOCHS=1"]
    assert run_cli(main, argv) == 0
    (row,) = metric_rows(out / "metrics.csv")
    assert math.isfinite(row["train/loss"]) and "train/accuracy" not in row
    assert "sv/min" in row  # COMPUTE_SV's reference default is on


@pytest.mark.parametrize(("task", "digits"), [("pmnist", "pdigits"), ("smnist", "sdigits")])
def test_reference_mnist_files_train_one_batch_on_digits(tmp_path, task, digits):
    out = tmp_path / "run"
    argv = ["--config", str(write_reference(tmp_path, task)), "--device", "cpu", "--quiet"]
    argv += ["--out-dir", str(out), "--set", f"DATASET.NAME={digits}", "MODEL.HIDDEN_SIZE=16"]
    argv += ["TRAIN.N_EPOCHS=1", "TRAIN.MAX_BATCHES=1"]
    assert run_cli(main, argv) == 0
    (row,) = metric_rows(out / "metrics.csv")
    assert math.isfinite(row["train/loss"]) and 0 <= row["val/accuracy"] <= 1


def _token_splits(name: str, vocab: int, length: int = 12) -> Splits:
    generator = torch.Generator().manual_seed(0)

    def split(size: int) -> TensorSplit:
        tokens = torch.randint(1, vocab, (size, length), generator=generator)
        return TensorSplit(tokens, torch.randint(0, 2, (size,), generator=generator).float())

    return Splits(name, split(40), split(20), split(20), num_classes=2)


@pytest.mark.parametrize("task", ["imdb", "sst2", "qqp"])
def test_reference_text_files_train_one_batch_on_tokens(tmp_path, task):
    small = ["MODEL.HIDDEN_SIZE=16", "MODEL.BASIC_BLOCK=2", "MODEL.INPUT_SIZE=8"]
    cfg = load(write_reference(tmp_path, task), [*small, "TRAIN.N_EPOCHS=1"])
    splits = _token_splits(task, cfg.model.vocab_size)
    settings = RunSettings(out_dir=tmp_path / "run", device="cpu", quiet=True)
    final = run_training(cfg, settings, splits=splits)
    (row,) = metric_rows(tmp_path / "run" / "metrics.csv")
    assert math.isfinite(row["train/loss"]) and 0 <= row["train/accuracy"] <= 1
    assert 0 <= final["val/accuracy"] <= 1


# -- one test per reference key: it changes behaviour, warns, or is refused ---------------


def _yaml(tmp_path: Path, text: str, suffix: str = ".yaml") -> Path:
    path = tmp_path / f"c{suffix}"
    path.write_text(text, encoding="utf-8")
    return path


def test_sections_and_first_level_keys_are_case_insensitive_nested_keys_verbatim(tmp_path):
    cfg = load(_yaml(tmp_path, "train:\n  Optimizer_Config: {weight_decay: 0.25}\n"))
    assert get_optimizer(cfg, torch.nn.Linear(1, 1)).defaults["weight_decay"] == 0.25
    with pytest.raises(ConfigError, match="no argument 'LR'"):
        load(_yaml(tmp_path, "TRAIN:\n  OPTIMIZER_CONFIG: {LR: 0.1}\n"))
    with pytest.raises(ConfigError, match="given twice"):
        load(_yaml(tmp_path, "TRAIN:\n  LR: 0.1\n  lr: 0.2\n"))


def test_yml_is_accepted_and_other_extensions_refused(tmp_path):
    assert load(_yaml(tmp_path, "MODEL:\n  HIDDEN_SIZE: 8\n", ".yml")).model.hidden_size == 8
    with pytest.raises(ConfigError, match=".yaml or .yml"):
        load(_yaml(tmp_path, "MODEL:\n  HIDDEN_SIZE: 8\n", ".txt"))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("MODEL:\n  ACTIVATION: $ReLU\n", "bare tag"),
        ("MODEL:\n  ACTIVATION: $torch.nn.Tanh\n", "unknown tag"),
        ("TRAIN:\n  LOSS_FN: $torch.optim.Adam\n", "is a optimizer, not a loss"),
        ("TRAIN:\n  OPTIMIZER: $os.system\n", "unknown tag"),
        ("DATASET:\n  NAME: $torchvision.datasets.MNIST\n", "not allowed here"),
        ("TRAIN:\n  METRICS: {f1: $torchmetrics.F1Score}\n", "unknown tag"),
    ],
)
def test_tags_come_from_the_allowed_table_only(tmp_path, text, needle):
    with pytest.raises(ConfigError, match=needle) as info:
        load(_yaml(tmp_path, text))
    assert "\n" not in str(info.value)


def test_activation_tags_and_config():
    assert load(None, ["MODEL.ACTIVATION=$torch.nn.ReLU"]).model.activation == "relu"
    cfg = load(
        None,
        [
            "MODEL.ACTIVATION=$layers.modrelu",
            "MODEL.HIDDEN_SIZE=8",
            "MODEL.ACTIVATION_CONFIG={features: 8}",
        ],
    )
    assert cfg.model.activation == "modrelu"
    with pytest.raises(ConfigError, match="features"):
        load(
            None,
            [
                "MODEL.ACTIVATION=modrelu",
                "MODEL.HIDDEN_SIZE=8",
                "MODEL.ACTIVATION_CONFIG={features: 4}",
            ],
        )
    with pytest.raises(ConfigError, match="relu takes inplace"):
        load(None, ["MODEL.ACTIVATION_CONFIG={negative_slope: 0.1}"])
    with pytest.raises(ConfigError, match="ACTIVATION_FINAL"):
        load(None, ["MODEL.ACTIVATION_FINAL=$torch.nn.ReLU"])


def test_givens_and_multiparameters_warn(capsys):
    load(None, ["MODEL.GIVENS=2"])
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning:") and "MODEL.GIVENS" in err[0]
    load(None, ["MODEL.MULTIPARAMETERS=false"])
    assert "MODEL.MULTIPARAMETERS has no effect" in capsys.readouterr().err


def test_vocab_size_defaults_to_10000_for_reference_embedding_models():
    assert load(None, ["MODEL.NAME=BinadamSSMwithEmbeddings"]).model.vocab_size == 10000
    assert load(None, ["MODEL.NAME=BinadamSSM"]).model.vocab_size is None
    cfg = load(None, ["MODEL.NAME=BinadamSSMwithEmbeddings", "MODEL.VOCAB_SIZE=77"])
    assert get_model(cfg).embedding.num_embeddings == 77


def test_model_seed_sets_the_initial_weights():
    from bnn_shared.utils import seed_everything

    def weights(seed: int) -> torch.Tensor:
        cfg = load(None, [f"MODEL.SEED={seed}", "MODEL.HIDDEN_SIZE=8"])
        seed_everything(cfg.model.seed)
        return get_model(cfg).input_layer.weight.detach().clone()

    assert torch.equal(weights(3), weights(3)) and not torch.equal(weights(3), weights(4))


def test_split_sizes_follow_the_reference_rules():
    cfg = load(
        None,
        [
            "DATASET.NAME=copy_task",
            "DATASET.TRAIN_SIZE=64",
            "DATASET.VAL_SIZE=8",
            "DATASET.TEST_SIZE=4",
        ],
    )
    assert (cfg.dataset.train, cfg.dataset.val, cfg.dataset.test) == (64, 8, 4)
    cfg = load(None, ["DATASET.NAME=pMNIST", "DATASET.TRAIN_SIZE=55000"])
    assert (cfg.dataset.train, cfg.dataset.val) == (55000, 5000)
    with pytest.raises(ConfigError, match="60000"):
        load(None, ["DATASET.NAME=sMNIST", "DATASET.TRAIN_SIZE=50000", "DATASET.VAL_SIZE=5000"])
    for name in ("IMDB", "GLUE"):
        with pytest.raises(ConfigError, match="fixed sizes"):
            load(None, [f"DATASET.NAME={name}", "DATASET.TRAIN_SIZE=100"])


def test_optimizer_config_goes_to_the_optimizer():
    cfg = load(
        None,
        [
            "TRAIN.OPTIMIZER=$torch.optim.SGD",
            "TRAIN.OPTIMIZER_CONFIG={lr: 0.5, momentum: 0.9, weight_decay: 0.01}",
        ],
    )
    optimizer = get_optimizer(cfg, torch.nn.Linear(2, 2))
    assert isinstance(optimizer, torch.optim.SGD) and cfg.train.lr == 0.5
    assert (optimizer.defaults["lr"], optimizer.defaults["momentum"]) == (0.5, 0.9)
    assert optimizer.defaults["weight_decay"] == 0.01
    with pytest.raises(ConfigError, match="Adam has no argument 'momentum'"):
        load(None, ["TRAIN.OPTIMIZER_CONFIG={momentum: 0.9}"])
    with pytest.raises(ConfigError, match="OPTIMIZER_CONFIG"):
        load(None, ["TRAIN.OPTIMIZER_CONFIG={betas: [2.0, 0.9]}"])  # refused by Adam itself


def test_optimizer_config_lr_and_lr_in_one_file_must_agree(tmp_path):
    with pytest.raises(ConfigError, match="disagree"):
        load(_yaml(tmp_path, "TRAIN:\n  LR: 0.1\n  OPTIMIZER_CONFIG: {lr: 0.2}\n"))
    cfg = load(_yaml(tmp_path, "TRAIN:\n  OPTIMIZER_CONFIG: {lr: 0.2}\n"), ["TRAIN.LR=0.3"])
    assert cfg.train.lr == 0.3  # a --set override wins over the file


def _lrs(cfg, epochs: int) -> list[float]:
    optimizer = get_optimizer(cfg, torch.nn.Linear(1, 1))
    scheduler = get_scheduler(cfg, optimizer)
    out = []
    for _ in range(epochs):
        optimizer.step()
        scheduler.step()
        out.append(optimizer.param_groups[0]["lr"])
    return out


def test_scheduler_and_its_config():
    cfg = load(None, ["TRAIN.LR=1", "TRAIN.SCHEDULER_CONFIG={gamma: 0.5, step_size: 2}"])
    assert (cfg.train.gamma, cfg.train.step_size) == (0.5, 2)
    assert _lrs(cfg, 4) == [1, 0.5, 0.5, 0.25]
    cfg = load(
        None,
        [
            "TRAIN.LR=1",
            "TRAIN.SCHEDULER=$torch.optim.lr_scheduler.ExponentialLR",
            "TRAIN.SCHEDULER_CONFIG={gamma: 0.5}",
        ],
    )
    assert _lrs(cfg, 2) == [0.5, 0.25]
    cfg = load(
        None,
        [
            "TRAIN.LR=1",
            "TRAIN.SCHEDULER=$torch.optim.lr_scheduler.MultiStepLR",
            "TRAIN.SCHEDULER_CONFIG={milestones: [2], gamma: 0.1}",
        ],
    )
    assert _lrs(cfg, 3) == pytest.approx([1, 0.1, 0.1])
    cfg = load(None, ["TRAIN.SCHEDULER=CosineAnnealingLR", "TRAIN.SCHEDULER_CONFIG={T_max: 4}"])
    assert _lrs(cfg, 4)[-1] == pytest.approx(0)
    with pytest.raises(ConfigError, match="SCHEDULER_CONFIG"):
        load(None, ["TRAIN.SCHEDULER=CosineAnnealingLR"])  # T_max missing
    cfg = load(None, ["TRAIN.LR=1", "TRAIN.SCHEDULER=ExponentialLR", "TRAIN.GAMMA=0.5"])
    assert _lrs(cfg, 1) == [0.5]  # TRAIN.GAMMA is the default of any scheduler's gamma
    with pytest.raises(ConfigError, match="no argument 'gama'"):
        load(None, ["TRAIN.SCHEDULER_CONFIG={gama: 0.5}"])


def test_loss_config_changes_the_loss():
    logits, target = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    plain = get_loss(load(None, []))(logits, target)
    smooth = get_loss(load(None, ["TRAIN.LOSS_CONFIG={label_smoothing: 0.2}"]))(logits, target)
    expected = torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.2)
    assert torch.allclose(smooth, expected) and not torch.allclose(smooth, plain)
    cfg = load(
        None,
        [
            "TRAIN.LOSS_FN=$torch.nn.BCEWithLogitsLoss",
            "TRAIN.LOSS_CONFIG={pos_weight: [3.0]}",
            "MODEL.OUTPUT_SIZE=1",
        ],
    )
    x, y = torch.randn(5, 1), torch.tensor([1.0, 0, 1, 1, 0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        x.reshape(-1), y, pos_weight=torch.tensor([3.0])
    )
    assert torch.allclose(get_loss(cfg)(x, y), expected)
    with pytest.raises(ConfigError, match="LOSS_CONFIG"):
        load(None, ["TRAIN.LOSS_CONFIG={reduction: sum}"])


def test_metrics_mapping_and_config():
    cfg = load(
        None,
        [
            "TRAIN.METRICS={accuracy: $torchmetrics.Accuracy}",
            "TRAIN.METRICS_CONFIG={task: multiclass, num_classes: 10}",
        ],
    )
    assert cfg.train.metrics == ["accuracy"] and get_metric(cfg) is not None
    binary = [
        "MODEL.OUTPUT_SIZE=1",
        "TRAIN.LOSS_FN=bce_with_logits",
        "TRAIN.METRICS={accuracy: $torchmetrics.classification.BinaryAccuracy}",
    ]
    logits, target = torch.tensor([[0.5], [1.5], [-1.0]]), torch.tensor([0, 1, 0])
    assert get_metric(load(None, binary))(logits, target).item() == 2  # logit > 0
    strict = get_metric(load(None, [*binary, "TRAIN.METRICS_CONFIG={threshold: 0.7}"]))
    assert strict(logits, target).item() == 3  # sigmoid(0.5) < 0.7
    for bad, needle in [
        ("{task: multiclass, num_classes: 7}", "num_classes"),
        ("{task: multilabel}", "binary or multiclass"),
        ("{task: multiclass, num_classes: 10, top_k: 2}", "top_k"),
        ("{task: multiclass, num_classes: 10, foo: 1}", "not foo"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            load(None, [f"TRAIN.METRICS_CONFIG={bad}"])
    with pytest.raises(ConfigError, match="TRAIN.METRICS is none"):
        load(None, ["TRAIN.METRICS=null", "TRAIN.METRICS_CONFIG={task: binary}"])
    with pytest.raises(ConfigError, match="average"):
        load(
            None,
            [
                "TRAIN.METRICS=[$torchmetrics.classification.MulticlassAccuracy]",
                "TRAIN.METRICS_CONFIG={num_classes: 10}",
            ],
        )


def test_metrics_name_other_than_accuracy_warns(capsys):
    load(None, ["TRAIN.METRICS={acc: $torchmetrics.Accuracy}"])
    assert "'acc' is logged as 'accuracy'" in capsys.readouterr().err


def test_lambda_orth_zero_only():
    assert load(None, ["TRAIN.LAMBDA_ORTH=0"]).train.lambda_orth == 0
    with pytest.raises(ConfigError, match="LAMBDA_ORTH"):
        load(None, ["TRAIN.LAMBDA_ORTH=0.1"])


def test_train_use_wandb_is_the_top_level_switch(tmp_path):
    assert load(None, ["TRAIN.USE_WANDB=true"]).use_wandb is True
    with pytest.raises(ConfigError, match="disagree"):
        load(_yaml(tmp_path, "USE_WANDB: false\nTRAIN:\n  USE_WANDB: true\n"))


def test_torch_device_is_read():
    assert load(None, ["TRAIN.TORCH_DEVICE=cuda:0"]).train.torch_device == "cuda:0"

"""``python -m binary_feedback.train``: both studies' command lines in one.

Study A (ACM SAC 2023, binary MLPs) and study B (arXiv 2408.04460, the extension) each keep
their flags; the family of flags used selects the study's regime (``--study A|B`` forces
one): any of ``--model --binary-act --binary-weights --unsat --remove-skips --wd --opt
--augment --bs --test-set --hsic-gamma --hsic-mode --bw-init --no-wandb`` means study B,
otherwise study A. Study A: MSE on a tanh output against +-1 targets, batch-summed
gradients, plain SGD, U(-1, 1) feedback, raw one-hot DRTP targets, every Linear clipped to
``--weight-clipping``, inputs scaled to [-1, 1]. Study B: cross-entropy, Adam (``--opt``)
with weight decay, N(0, 1) feedback, centred one-hot, first and last layers full
precision, binarised layers clipped to [-1, 1], early stopping.

Examples::

    python -m binary_feedback.train --method drtp                       # study A, MNIST
    python -m binary_feedback.train --dataset digits --method DFA --bn --binarize \\
        --hidden-act signsat --init 1e-3 --lr 1e-4 --epochs 20
    python -m binary_feedback.train --method dfa --model SmallCNN --dataset mnist \\
        --binary-act --binary-weights --lr 1e-3 --bs 64 --epochs 2
    python -m binary_feedback.train --config configs/binary_feedback/mnist_bn_binary_tanh_dfa.yaml

Every run writes ``config.yaml``, ``metrics.csv`` (per epoch: train and test loss, accuracy,
macro F1, macro precision) and ``checkpoint.pt`` (``--resume``) under ``--out-dir``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from bnn_shared.cli import add_common_arguments, run_cli
from bnn_shared.config import load_yaml
from bnn_shared.data import load_dataset
from bnn_shared.errors import ConfigError
from bnn_shared.tracking import Run, atomic_write_text
from bnn_shared.utils import parse_device, seed_everything
from torch import nn

from .commons.layers import clip_weights_
from .training import get_rule

__all__ = ["build_parser", "resolve", "train", "main", "STUDY_B_FLAGS"]

#: Flags that exist only in study B's command line; using one selects study B.
STUDY_B_FLAGS = [
    "--model",
    "--binary-act",
    "--binary-weights",
    "--unsat",
    "--remove-skips",
    "--wd",
    "--opt",
    "--augment",
    "--bs",
    "--test-set",
    "--hsic-gamma",
    "--hsic-mode",
    "--bw-init",
    "--no-wandb",
    "--early-stopping-delta",
    "--train-fraction",
    "--pepita-gain",
    "--pepita-gain-mode",
    "--image-size",
]

DATASETS = {
    "mnist": "mnist",
    "fashionmnist": "fashion_mnist",
    "fashion_mnist": "fashion_mnist",
    "fmnist": "fashion_mnist",
    "cifar10": "cifar10",
    "cifar-10": "cifar10",
    "imagenette": "imagenette",
    "digits": "digits",
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# study-dependent defaults of the flags both families share
DEFAULTS = {
    "A": {"epochs": 100, "lr": 1e-4, "method": "DFA"},
    "B": {"epochs": 80, "lr": 1e-3, "method": "bp"},
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m binary_feedback.train",
        description="Train binary networks by BP, DFA, DRTP, HSIC or SigpropTL "
        "(both studies' flags; the flags used select the study).",
    )
    add = parser.add_argument
    add("--config", help="YAML file whose keys are flag names (dashes or underscores)")
    add("--study", choices=["auto", "A", "B"], default="auto", help="regime (default: by flags)")
    add("--method", help="GD|BP|DFA|DRTP (study A), bp|dfa|drtp|hsic|pepita|sigprop (B)")
    add("--dataset", default="MNIST", help="MNIST, FashionMNIST, CIFAR10, imagenette, digits")
    add("--epochs", type=int, help="epochs (study A 100, study B 80)")
    add("--lr", type=float, help="learning rate (study A 1e-4, study B 1e-3)")
    a = parser.add_argument_group("study A (binary MLPs, SAC 2023)")
    a.add_argument("--bn", action="store_true", help="batch norm after each hidden Linear")
    a.add_argument("--init", type=float, default=0.1, help="weights U(-init, init)")
    a.add_argument("--hidden-act", default="tanh", help="signsat, tanh, sign, signtanh")
    a.add_argument("--last-act", default="tanh", help="output activation")
    a.add_argument("-b", "--batch-size", type=int, default=128, help="batch size")
    a.add_argument("--hidden", default="700,500,300,200", help="hidden sizes, comma-separated")
    a.add_argument("--binarize", action="store_true", help="binary weights but the last layer")
    a.add_argument("--binarize-last", action="store_true", help="also binarise the output")
    a.add_argument("--weight-ste", default="identity", choices=["identity", "sat", "tanh"])
    a.add_argument("--weight-clipping", type=float, default=1.0, help="clip |W| to this")
    a.add_argument("-v", "--verbose", action="store_true", help="print every epoch's metrics")
    a.add_argument(
        "--monitor",
        action="store_true",
        help="log saturation and normalised HSIC per layer at each epoch end (2,000 samples)",
    )
    a.add_argument("--run-name", help="run name (default: '<METHOD> <binarised|continuous> <act>')")
    b = parser.add_argument_group("study B (extension, arXiv 2408.04460)")
    b.add_argument("--model", help="MLP, MobileNetV2, vgg16, vgg19, MLPMixer, SmallCNN")
    b.add_argument("--binary-act", action="store_true", help="sign activations")
    b.add_argument("--binary-weights", action="store_true", help="sign weights")
    b.add_argument("--unsat", action="store_true", help="identity STE instead of saturated")
    b.add_argument("--remove-skips", action="store_true", help="drop skip connections")
    b.add_argument("--wd", type=float, default=0.0, help="weight decay (L2 in the gradient)")
    b.add_argument("--opt", default="Adam", help="any torch.optim class name")
    b.add_argument("--augment", action="store_true", help="training augmentation")
    b.add_argument("--bs", type=int, default=10, help="batch size")
    b.add_argument("--test-set", action="store_true", help="train on all, select on test")
    b.add_argument("--train-fraction", type=float, default=0.9, help="train share (no --test-set)")
    b.add_argument("--early-stopping-delta", type=float, default=1e-3)
    b.add_argument("--hsic-gamma", type=float, default=2.0)
    b.add_argument("--hsic-mode", default="biased", choices=["biased", "plausible"])
    b.add_argument("--bw-init", default="normal", help="normal, kaiming_uniform, kaiming_normal")
    b.add_argument("--pepita-gain", type=float, default=1.0, help="SigpropTL gain (see README)")
    b.add_argument(
        "--pepita-gain-mode",
        default="reference",
        choices=["reference", "fixed"],
        help="reference: the gain has no effect (published runs); fixed: F is scaled by it",
    )
    b.add_argument(
        "--image-size",
        type=int,
        help="resize inputs (default: 224 for torchvision "
        "models and MLPMixer, native for MLP and SmallCNN)",
    )
    b.add_argument("--no-wandb", action="store_true", help="no W&B logging (the default here)")
    add_common_arguments(parser, out_dir="runs/binary_feedback", seed=None)
    return parser


def resolve(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse ``argv`` (with ``--config`` values as defaults), pick the study, fill the
    study-dependent defaults and check the settings."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        parser.set_defaults(**_config_defaults(parser, args.config))
        args = parser.parse_args(argv)
    used_b = any(flag.split("=")[0] in STUDY_B_FLAGS for flag in argv)
    used_b = used_b or (args.model is not None)
    args.study = args.study if args.study != "auto" else ("B" if used_b else "A")
    for key, value in DEFAULTS[args.study].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    key = str(args.dataset).lower()
    if key not in DATASETS:
        raise ConfigError(f"unknown dataset {args.dataset!r}; choose from {sorted(DATASETS)}")
    args.dataset = DATASETS[key]
    if args.study == "A":
        args.model = "MLP"
        try:
            args.hidden = [int(h) for h in str(args.hidden).split(",") if h.strip()]
        except ValueError:
            raise ConfigError(
                f"--hidden {args.hidden!r}: give sizes like 700,500,300,200"
            ) from None
    elif args.model is None:
        args.model = "MLP"
    if args.epochs < 0 or args.lr <= 0:
        raise ConfigError("--epochs must be >= 0 and --lr > 0")
    return args


def _config_defaults(parser: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    data = load_yaml(path)
    dests = {a.dest for a in parser._actions}
    values = {}
    for key, value in data.items():
        dest = str(key).lstrip("-").replace("-", "_")
        if dest not in dests:
            raise ConfigError(f"{path}: unknown key {key!r}; keys are flag names, e.g. lr, bn")
        values[dest] = (
            ",".join(map(str, value)) if dest == "hidden" and isinstance(value, list) else value
        )
    return values


# -- data ---------------------------------------------------------------------------------


def load_arrays(args: argparse.Namespace, data_dir: str | None, download: bool):
    """Train and test images (float32, ``(N, C, H, W)``) and labels, preprocessed as the
    study does: study A scales pixels to [-1, 1]; study B normalises (ImageNet statistics
    for 3 channels, else mean 0.5 / std 0.5)."""
    arrays = []
    for split in ("train", "test"):
        dataset = load_dataset(args.dataset, split, data_dir=data_dir, download=download)
        arrays.append(_stack(dataset))
    (x_train, y_train), (x_test, y_test) = arrays
    if args.study == "A":
        x_train, x_test = x_train * 2 - 1, x_test * 2 - 1
    else:
        channels = x_train.shape[1]
        mean = torch.tensor(IMAGENET_MEAN if channels == 3 else (0.5,) * channels)
        std = torch.tensor(IMAGENET_STD if channels == 3 else (0.5,) * channels)
        view = (1, channels, 1, 1)
        x_train = (x_train - mean.view(view)) / std.view(view)
        x_test = (x_test - mean.view(view)) / std.view(view)
    return x_train, y_train, x_test, y_test


def _stack(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    inner = getattr(dataset, "dataset", dataset)
    data, targets, x = (getattr(inner, k, None) for k in ("data", "targets", "x"))
    if isinstance(x, torch.Tensor) and targets is not None:
        images = x.float()
    elif isinstance(data, torch.Tensor) and data.dtype == torch.uint8 and targets is not None:
        images = data.float().div_(255)
    elif data is not None and getattr(data, "dtype", None) is not None and targets is not None:
        images = torch.as_tensor(data).float().div_(255).permute(0, 3, 1, 2)
    else:
        xs, ys = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
        images, targets = torch.stack(xs).float(), ys
    if images.dim() == 3:
        images = images.unsqueeze(1)
    return images.contiguous(), torch.as_tensor(targets).long()


# -- model, rule, optimizer -----------------------------------------------------------------


def build(args: argparse.Namespace, in_shape: tuple[int, ...], num_classes: int):
    """The model (binarised as asked), the training rule and the optimizer."""
    import math

    from .models import MLP, build_model, remove_skips
    from .utils.binary import binarize_activations, binarize_weights

    if args.study == "A":
        model: nn.Module = MLP(
            math.prod(in_shape),
            num_classes,
            args.hidden,
            hidden_act=args.hidden_act,
            last_act=args.last_act,
            bn=args.bn,
            binarize=args.binarize,
            binarize_last=args.binarize_last,
            weight_ste=args.weight_ste,
            init=args.init,
        )
        regime = "study_a"
        rule_options: dict[str, Any] = {}
    else:
        model, fp_layers, _ = build_model(args.model, num_classes, in_shape)
        if args.remove_skips:
            remove_skips(model)
        if args.binary_weights:
            binarize_weights(model, keep_fp=fp_layers)
        if args.binary_act:
            binarize_activations(model, unsat=args.unsat)
        regime = "study_b"
        rule_options = _study_b_rule_options(args)
    rule = get_rule(args.method, regime=regime, num_classes=num_classes, **rule_options)
    if args.study == "A":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=args.lr, foreach=True
        )
    else:
        cls = getattr(torch.optim, args.opt, None)
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            raise ConfigError(f"--opt {args.opt!r} is not a torch.optim optimizer")
        optimizer = cls(model.parameters(), lr=args.lr, weight_decay=args.wd)
    return model, rule, optimizer


def _study_b_rule_options(args: argparse.Namespace) -> dict[str, Any]:
    from .training import ALIASES, RULES

    key = str(args.method).lower()
    cls = RULES.get(ALIASES.get(key, key))
    if cls is None:
        return {}
    names = set(cls.option_names())
    candidates = {
        "bw_init": args.bw_init,
        "gamma": args.hsic_gamma,
        "mode": args.hsic_mode,
        "gain": args.pepita_gain,
        "gain_mode": args.pepita_gain_mode,
    }
    return {k: v for k, v in candidates.items() if k in names}


# -- epochs -------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(
    model: nn.Module,
    rule,
    x,
    y,
    device,
    prepare=lambda t: t,
    batch: int = 500,
    predictions: list | None = None,
) -> dict[str, float]:
    """Loss (the study's logged loss), accuracy, macro F1 and macro precision, eval mode;
    the predicted classes are appended to ``predictions`` when a list is given."""
    from sklearn.metrics import f1_score, precision_score

    model.eval()
    losses, preds = [], []
    for start in range(0, len(y), batch):
        xb = prepare(x[start : start + batch].to(device))
        yb = y[start : start + batch].to(device)
        out = model(xb)
        losses.append(float(rule.regime.logged_loss(out, yb)) * len(yb))
        preds.append(out.argmax(-1).cpu())
    pred = torch.cat(preds).numpy()
    true = y.numpy()
    stats = {
        "loss": sum(losses) / len(y),
        "accuracy": float((pred == true).mean()),
        "f1": float(f1_score(true, pred, average="macro", zero_division=0)),
        "precision": float(precision_score(true, pred, average="macro", zero_division=0)),
    }
    if predictions is not None:
        predictions.append(pred)
    return stats


CONFUSION_FILE = "confusion.csv"


def write_confusion(path: Path, true, pred, num_classes: int, epoch: int) -> None:
    """Atomically write the confusion matrix (rows: true class, columns: predicted class)."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(true, pred, labels=list(range(num_classes)))
    lines = [f"# epoch {epoch}; rows: true class, columns: predicted class"]
    lines.append(",".join(["true\\pred", *map(str, range(num_classes))]))
    lines += [",".join([str(c), *map(str, row)]) for c, row in enumerate(matrix.tolist())]
    atomic_write_text(path, "\n".join(lines) + "\n")


MONITOR_SAMPLES = 2000


@torch.no_grad()
def monitor(model: nn.Module, x, y, device, prepare=lambda t: t) -> dict[str, float]:
    """Study A's monitoring, in eval mode (the reference ran batch norm in train mode here,
    updating its running statistics; not reproduced): for each activation layer j,
    ``layer_{j} saturation`` (share of its inputs with |a| > 2 for tanh, > 1 otherwise)
    and the normalised HSIC ``layer_{j} nHSIC XZ`` / ``nHSIC ZY`` (cosine kernels; the
    targets as +-1 vectors), the output included as the last layer."""
    import torch.nn.functional as F

    from .commons.activations import Activation, Tanh
    from .training.hsic import cosine_kernel, normalized_hsic

    captured: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []
    hooks = [
        m.register_forward_hook(lambda mod, inp, out: captured.append((mod, inp[0], out)))
        for m in model.modules()
        if isinstance(m, Activation)
    ]
    model.eval()
    try:
        xb = prepare(x.to(device))
        output = model(xb)
    finally:
        for hook in hooks:
            hook.remove()
    k_x = cosine_kernel(xb.double())
    k_y = cosine_kernel(2 * F.one_hot(y.to(device), output.shape[-1]).double() - 1)
    row = {}
    for j, (module, pre, out) in enumerate(captured):
        bound = 2.0 if isinstance(module, Tanh) else 1.0
        row[f"layer_{j} saturation"] = float((pre.abs() > bound).float().mean())
        k_z = cosine_kernel(out.double())
        row[f"layer_{j} nHSIC XZ"] = float(normalized_hsic(k_x, k_z))
        row[f"layer_{j} nHSIC ZY"] = float(normalized_hsic(k_z, k_y))
    return row


def _clip(model: nn.Module, args: argparse.Namespace) -> None:
    if args.study == "A":
        clip_weights_(model, args.weight_clipping)
    else:
        clip_weights_(model, 1.0, only_binary=True)


def train(
    args: argparse.Namespace,
    *,
    out_dir: str | Path,
    data_dir: str | None = None,
    download: bool = False,
    resume: bool = False,
    wandb: bool = False,
    quiet: bool = False,
) -> dict[str, float]:
    """Train and evaluate every epoch; returns the last epoch's metrics and the best
    test accuracy (``best_test_accuracy``)."""
    device = parse_device(args.device)
    if args.seed is None:
        args.seed = int(torch.randint(0, 10**6, (1,)).item())
    seed_everything(args.seed)
    x_train, y_train, x_test, y_test = load_arrays(args, data_dir, download)
    if args.study == "B" and not args.test_set:
        x_train, y_train, x_test, y_test = _validation_split(x_train, y_train, args)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    shape = _input_shape(args, tuple(x_train.shape[1:]))
    model, rule, optimizer = build(args, shape, num_classes)
    model.to(device)
    prepare = _batch_transform(args, shape)
    generator = torch.Generator().manual_seed(args.seed)
    batch = args.batch_size if args.study == "A" else args.bs
    config = {k: v for k, v in vars(args).items() if k not in {"config"}}
    last: dict[str, float] = {}
    best = 0.0
    test_losses: list[float] = []
    with Run(out_dir, config, resume=resume, use_wandb=wandb, quiet=quiet,
             project=f"binary_feedback-{args.dataset}") as run:  # fmt: skip
        first = max(run.restore(model, optimizer), 1)
        if run.extra:
            generator.set_state(run.extra["generator"])
            rule.load_state_dict(run.extra["rule"])
            best = run.extra.get("best", 0.0)
            test_losses = list(run.extra.get("test_losses", []))
        for epoch in range(first, args.epochs + 1):
            began = time.perf_counter()
            model.train()
            order = torch.randperm(len(y_train), generator=generator)
            if args.study == "A":  # the reference drops the last partial batch
                order = order[: len(order) - len(order) % batch] if len(order) >= batch else order
            seen = correct = 0
            loss_sum = 0.0
            for idx in run.progress(order.split(batch), desc=f"epoch {epoch}/{args.epochs}"):
                xb, yb = prepare(x_train[idx].to(device)), y_train[idx].to(device)
                if args.study == "B":
                    xb = _augment(xb, generator, args.augment)
                stats = rule.step(model, xb, yb, optimizer)
                _clip(model, args)
                seen += len(idx)
                correct += stats["correct"]
                loss_sum += stats["loss"] * len(idx)
                if wandb and run.wandb_run is not None:
                    run.wandb_run.log({"batch/loss": stats["loss"],
                                       "batch/accuracy": stats["correct"] / len(idx)})  # fmt: skip
            seconds = time.perf_counter() - began
            if args.study == "A":  # full train set at the epoch end, BN in eval mode
                train_stats = evaluate(model, rule, x_train, y_train, device, prepare)
            else:
                train_stats = {"loss": loss_sum / max(seen, 1), "accuracy": correct / max(seen, 1)}
            predicted: list = []
            test_stats = evaluate(model, rule, x_test, y_test, device, prepare,
                                  predictions=predicted)  # fmt: skip
            split = "test" if (args.study == "A" or args.test_set) else "validation"
            if test_stats["accuracy"] > best or epoch == 1:  # the best epoch's errors
                write_confusion(run.out_dir / CONFUSION_FILE, y_test.numpy(), predicted[0],
                                num_classes, epoch)  # fmt: skip
            if wandb and run.wandb_run is not None:
                import wandb as wandb_module

                run.wandb_run.log({f"{split}/confusion": wandb_module.plot.confusion_matrix(
                    y_true=y_test.tolist(), preds=predicted[0].tolist())})  # fmt: skip
            row = {f"train/{k}": v for k, v in train_stats.items()}
            row.update({f"{split}/{k}": v for k, v in test_stats.items()})
            row["time epoch"] = seconds
            if args.monitor:
                row.update(monitor(model, x_train[:MONITOR_SAMPLES], y_train[:MONITOR_SAMPLES],
                                   device, prepare))  # fmt: skip
            best = max(best, test_stats["accuracy"])
            row[f"best {split}/accuracy"] = best
            run.log(epoch, **row)
            test_losses.append(test_stats["loss"])
            run.save_checkpoint(
                epoch, model, optimizer, generator=generator.get_state(),
                rule=rule.state_dict(), best=best, test_losses=test_losses,
            )  # fmt: skip
            last = row
            if args.verbose and not quiet:
                print(f"epoch {epoch}: " + " | ".join(f"{k} {v:.4f}" for k, v in row.items()))
            if args.study == "B" and _early_stop(test_losses, args.early_stopping_delta):
                run._note(f"early stopping after epoch {epoch}")
                break
        run.finish(**{k: v for k, v in last.items() if "accuracy" in k})
    return {**last, "best_test_accuracy": best}


#: study-B models that take 224x224 inputs unless --image-size says otherwise
LARGE_INPUT_MODELS = {"mobilenetv2", "vgg16", "vgg19", "mlpmixer"}


def _input_shape(args: argparse.Namespace, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape the model sees: the image's, resized to 224 x 224 for the large models."""
    if args.study == "A":
        return shape
    large = str(args.model).lower() in LARGE_INPUT_MODELS
    size = args.image_size or (224 if large else shape[-1])
    return (shape[0], size, size)


def _batch_transform(args: argparse.Namespace, shape: tuple[int, ...]):
    """Resize each batch (bilinear) on the fly: MNIST at 224 x 224 would not fit in memory
    as a whole."""
    if args.study == "A":
        return lambda x: x

    def transform(x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != tuple(shape[-2:]):
            x = torch.nn.functional.interpolate(
                x, size=shape[-2:], mode="bilinear", align_corners=False
            )
        return x

    return transform


def _validation_split(x, y, args):
    """Study B without ``--test-set``: a random ``train_fraction`` / rest split of train."""
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(args.seed))
    cut = int(len(y) * args.train_fraction)
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def _early_stop(losses: list[float], delta: float) -> bool:
    """Study B: stop once loss[t-4] - loss[t] <= delta (at least 5 evaluations)."""
    return len(losses) >= 5 and losses[-5] - losses[-1] <= delta


def _flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """RandomHorizontalFlip(0.5), per sample."""
    flip = torch.rand(len(x), generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)


def _augment(x: torch.Tensor, generator: torch.Generator, augment: bool) -> torch.Tensor:
    """Study B's training pipeline on a batch of normalised images already at the model's
    size. Without ``--augment`` the reference still flips; with it: flip, RandomRotation(20),
    RandomResizedCrop(scale 0.5-1, ratio 3/4-4/3), flip again, RandomErasing(p=0.9) (the
    rotation fills with 0, the mean pixel after normalisation; the reference filled black
    before normalising)."""
    import math

    import torchvision.transforms.v2.functional as TF

    x = _flip(x, generator)
    if not augment:
        return x
    size = list(x.shape[-2:])
    area = size[0] * size[1]
    out = []
    for image in x:
        u = torch.rand(8, generator=generator).tolist()
        image = TF.rotate(image, angle=40 * u[0] - 20)
        scale = area * (0.5 + 0.5 * u[1])
        ratio = math.exp(math.log(3 / 4) + u[2] * math.log(16 / 9))
        h = min(size[0], max(1, round(math.sqrt(scale / ratio))))
        w = min(size[1], max(1, round(math.sqrt(scale * ratio))))
        top, left = int(u[3] * (size[0] - h + 1)), int(u[4] * (size[1] - w + 1))
        image = TF.resized_crop(image, top, left, h, w, size, antialias=True)
        if u[5] < 0.9:  # RandomErasing(p=0.9, scale 0.02-0.33, ratio 0.3-3.3, value 0)
            e_area = area * (0.02 + 0.31 * u[6])
            e_ratio = math.exp(math.log(0.3) + u[7] * math.log(11))
            eh = min(size[0], max(1, round(math.sqrt(e_area * e_ratio))))
            ew = min(size[1], max(1, round(math.sqrt(e_area / e_ratio))))
            i = torch.randint(0, size[0] - eh + 1, (1,), generator=generator).item()
            j = torch.randint(0, size[1] - ew + 1, (1,), generator=generator).item()
            image = TF.erase(image, i, j, eh, ew, torch.zeros(()))
        out.append(image)
    return _flip(torch.stack(out), generator)


def main(argv: Sequence[str] | None = None) -> int:
    args = resolve(argv)
    if args.wandb and args.no_wandb:
        raise ConfigError("--wandb and --no-wandb contradict each other")
    train(
        args,
        out_dir=args.out_dir,
        data_dir=args.data_dir,
        download=args.download,
        resume=args.resume,
        wandb=args.wandb,
        quiet=args.quiet,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))

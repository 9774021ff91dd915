"""Small helpers shared by every package: seeding and device parsing."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from .errors import BnnError

__all__ = ["seed_everything", "parse_device"]


def seed_everything(seed: int, *, deterministic: bool = False) -> int:
    """Seed Python, NumPy and PyTorch (CPU and every CUDA device) with ``seed``.

    Args:
        seed: the seed, any integer in [0, 2**32).
        deterministic: also ask cuDNN and PyTorch for deterministic algorithms.

    Returns:
        The seed, for logging.
    """
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    if deterministic:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    return seed


def parse_device(spec: str | int | torch.device | None = "auto") -> torch.device:
    """Turn a user's device choice into a :class:`torch.device`.

    Accepted: ``"auto"`` or ``None`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``,
    ``"cuda:N"``, an integer ``N`` or its string (``cuda:N``; ``-1`` means CPU, as in the
    Equilibrium Propagation reference CLI), or a ``torch.device``.

    Raises:
        BnnError: the string is not a device, or CUDA was asked for and is not available.
    """
    if isinstance(spec, torch.device):
        device = spec
    else:
        text = "auto" if spec is None else str(spec).strip().lower()
        if text == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if text.lstrip("-").isdigit():
            index = int(text)
            text = "cpu" if index < 0 else f"cuda:{index}"
        try:
            device = torch.device(text)
        except RuntimeError as exc:
            raise BnnError(
                f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N, or an integer N "
                "(-1 for CPU)"
            ) from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BnnError(f"device {spec!r} asked for CUDA, but no CUDA GPU is available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BnnError(
                f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) are present"
            )
    elif device.type not in {"cpu", "mps"}:
        raise BnnError(f"unsupported device {spec!r}: use auto, cpu, cuda or cuda:N")
    return device

"""Bit-packed export: ship a model whose weights really are bits.

A quantized layer holds a **latent** float weight (``layer.weight``): the optimizer updates it
and it is never overwritten during training. The forward pass uses the **quantized** weight
``layer.quantized_weight() = kernel_quantizer(weight)``, e.g. exactly ±1 for ``"ste_sign"``
or ±s_c (one scale per output channel) for ``"magnitude_aware_sign"``. Inference needs only
the quantized weight, and it takes ``precision`` bits per value instead of 32.

:func:`binary_state_dict` replaces the latent weight of every layer whose kernel quantizer has
``precision <= 8`` by a packed entry::

    {"format": "bitpacked", "bits": b, "precision": p, "shape": [...], "dtype": "float32",
     "codebook": float tensor (K,) or (C, K), "packed": uint8 tensor of ceil(numel * b / 8)}

where ``b`` (1, 2, 4 or 8, see :func:`storage_bits`) is the smallest storage width holding
``p`` bits, ``codebook`` holds the sorted distinct values of the quantized weight (per tensor,
or per output channel when the quantizer has per-channel scales) and ``packed`` the index of
every value in its codebook (:mod:`bnn_shared.ext.bitpack`). Decoding is exact: the loaded
model computes bit-identical outputs. Every other entry (biases, float layers, BatchNorm) is
kept as is.

:func:`save_binary` writes such a state dict, :func:`load_binary` reads it back either as a
float state dict or into a model, whose packed layers then get a ``NoOp(precision=p)`` kernel
quantizer so that forward uses the stored values unchanged.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import quantizers
from .errors import CheckpointError, ShapeError
from .ext import bitpack

__all__ = [
    "FORMAT",
    "binary_state_dict",
    "load_binary",
    "pack_tensor",
    "packed_nbytes",
    "save_binary",
    "storage_bits",
    "unpack_tensor",
]

#: Value of the ``"format"`` field of a packed entry.
FORMAT = "bitpacked"
_FILE_FORMAT = "bnn_shared.binary"
_FILE_VERSION = 1


def storage_bits(precision: int) -> int:
    """Bits used to store one value of ``precision`` bits: 1, 2, 4 (for 3..4) or 8 (5..8)."""
    if isinstance(precision, bool) or not isinstance(precision, int) or not 1 <= precision <= 8:
        raise ShapeError(f"bit-packing needs a precision in 1..8, got {precision!r}")
    return next(bits for bits in bitpack.BITS if precision <= bits)


def pack_tensor(q: torch.Tensor, precision: int) -> dict[str, Any]:
    """Encode a quantized tensor ``q`` as a packed entry (see the module docstring).

    The codebook is per tensor when ``q`` has at most ``2**bits`` distinct values, else per
    output channel (dim 0) when every row has at most ``2**bits``.

    Raises:
        ShapeError: too many distinct values for ``precision``, or non-finite values.
    """
    bits = storage_bits(precision)
    q = q.detach()
    if not q.is_floating_point():
        raise ShapeError(f"a quantized weight must be a float tensor, got {q.dtype}")
    if not bool(torch.isfinite(q).all()):
        raise ShapeError("a quantized weight has NaN or infinite values; they cannot be packed")
    limit = 1 << bits
    codebook, codes = torch.unique(q.reshape(-1), sorted=True, return_inverse=True)
    if codebook.numel() > limit:
        if q.dim() < 2:
            raise ShapeError(
                f"{codebook.numel()} distinct values do not fit {bits} bits (at most {limit})"
            )
        codebook, codes = _channel_codebook(q.reshape(q.shape[0], -1), limit, bits)
    return {
        "format": FORMAT,
        "bits": bits,
        "precision": int(precision),
        "shape": list(q.shape),
        "dtype": str(q.dtype).removeprefix("torch."),
        "codebook": codebook.cpu(),
        "packed": bitpack.pack_bits(codes.to(torch.uint8), bits).cpu(),
    }


def unpack_tensor(entry: dict[str, Any]) -> torch.Tensor:
    """Decode a packed entry back to the exact quantized tensor (on the CPU)."""
    shape = torch.Size(entry["shape"])
    codes = bitpack.unpack_bits(entry["packed"], entry["bits"], shape.numel()).long()
    codebook = entry["codebook"].to(getattr(torch, entry["dtype"]))
    if codebook.dim() == 1:
        return codebook[codes].reshape(shape)
    rows = codes.reshape(codebook.shape[0], -1)
    return torch.gather(codebook, 1, rows).reshape(shape)


def binary_state_dict(model: nn.Module) -> dict[str, Any]:
    """``model.state_dict()`` with the weight of every quantized layer bit-packed.

    A layer is packed when it has a ``kernel_quantizer`` (not None) of ``precision <= 8`` and a
    ``quantized_weight()`` method; its ``<prefix>weight`` entry becomes a packed entry of
    ``quantized_weight()`` (the latent float weight is not stored). Other entries are kept.
    """
    state: dict[str, Any] = dict(model.state_dict())
    for name, module in model.named_modules():
        precision = _packed_precision(module)
        if precision is None:
            continue
        key = f"{name}.weight" if name else "weight"
        with torch.no_grad():
            q = module.quantized_weight().detach()
        if key in state and tuple(q.shape) != tuple(state[key].shape):
            raise ShapeError(
                f"{key}: quantized_weight() has shape {tuple(q.shape)}, the weight "
                f"{tuple(state[key].shape)}"
            )
        state[key] = pack_tensor(q, precision)
    return state


def save_binary(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write :func:`binary_state_dict` of ``model`` to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": _FILE_FORMAT,
        "version": _FILE_VERSION,
        "state_dict": binary_state_dict(model),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_binary(path: str | os.PathLike, model: nn.Module | None = None) -> Any:
    """Read a file written by :func:`save_binary`.

    Args:
        path: the file.
        model: optional model of the same architecture. Default None.

    Returns:
        Without ``model``: the decoded state dict (quantized weights as float tensors). With
        ``model``: the model, its quantized layers holding the stored weights and a
        ``quantizers.NoOp(precision=p)`` kernel quantizer (forward uses them unchanged).

    Raises:
        CheckpointError: the file is missing or not a binary export, or ``model`` does not
            match it (the message names the key).
    """
    packed_state = _read(Path(path))
    state = {
        key: unpack_tensor(value) if _is_packed(value) else value
        for key, value in packed_state.items()
    }
    if model is None:
        return state
    _check_matches(model, state, path)
    with torch.no_grad():
        model.load_state_dict(state, strict=True)
    for key, entry in packed_state.items():
        if _is_packed(entry):
            layer = model.get_submodule(key.removesuffix("weight").rstrip("."))
            layer.kernel_quantizer = quantizers.NoOp(precision=entry["precision"])
    return model


def packed_nbytes(state: dict[str, Any]) -> dict[str, int | float]:
    """Sizes of the packed entries of a :func:`binary_state_dict`.

    Returns:
        ``{"tensors": number of packed entries, "packed_bytes": bytes of their packed codes,
        "codebook_bytes": bytes of their codebooks, "float32_bytes": bytes the same weights
        take as float32, "ratio": float32_bytes / (packed_bytes + codebook_bytes)}``.
    """
    entries = [value for value in state.values() if _is_packed(value)]
    packed = sum(entry["packed"].numel() for entry in entries)
    codebooks = sum(entry["codebook"].nbytes for entry in entries)
    float32 = sum(4 * torch.Size(entry["shape"]).numel() for entry in entries)
    stored = packed + codebooks
    return {
        "tensors": len(entries),
        "packed_bytes": packed,
        "codebook_bytes": codebooks,
        "float32_bytes": float32,
        "ratio": float32 / stored if stored else 0.0,
    }


def _channel_codebook(
    rows: torch.Tensor, limit: int, bits: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row sorted distinct values ``(C, K)`` and each element's index in its row."""
    values, order = rows.sort(dim=1)
    is_new = torch.ones_like(values, dtype=torch.bool)
    is_new[:, 1:] = values[:, 1:] != values[:, :-1]
    rank = is_new.long().cumsum(dim=1) - 1
    widest = int(rank[:, -1].max()) + 1 if rows.numel() else 0
    if widest > limit:
        raise ShapeError(
            f"a quantized weight has up to {widest} distinct values per output channel, more "
            f"than {bits} bits hold ({limit}); is its quantizer's precision right?"
        )
    # Rows with fewer than K values keep 0 in their unused slots; equal values scatter to
    # the same slot, so whichever write wins, the codebook is the same.
    codebook = values.new_zeros(rows.shape[0], widest).scatter_(1, rank, values)
    codes = torch.empty_like(rank).scatter_(1, order, rank)
    return codebook, codes.reshape(-1)


def _packed_precision(module: nn.Module) -> int | None:
    quantizer = getattr(module, "kernel_quantizer", None)
    if quantizer is None or not callable(getattr(module, "quantized_weight", None)):
        return None
    precision = int(getattr(quantizer, "precision", 32))
    return precision if precision <= 8 else None


def _is_packed(value: Any) -> bool:
    return isinstance(value, dict) and value.get("format") == FORMAT


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"no binary export at {path} (write one with save_binary)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable binary export: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != _FILE_FORMAT:
        raise CheckpointError(f"{path} is not a binary export written by save_binary")
    if payload.get("version", 0) > _FILE_VERSION:
        raise CheckpointError(
            f"{path} has format version {payload['version']}; this bnn_shared reads up to "
            f"{_FILE_VERSION}"
        )
    return payload["state_dict"]


def _check_matches(model: nn.Module, state: dict[str, Any], path: Any) -> None:
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    problems = [f"missing keys {missing}"] if missing else []
    problems += [f"unexpected keys {unexpected}"] if unexpected else []
    if problems:
        raise CheckpointError(f"{path} does not match the model: " + "; ".join(problems))
    for key, value in state.items():
        target = expected[key]
        if isinstance(value, torch.Tensor) and value.shape != target.shape:
            raise CheckpointError(
                f"{path} does not match the model: {key} has shape {tuple(value.shape)} in the "
                f"file and {tuple(target.shape)} in the model"
            )

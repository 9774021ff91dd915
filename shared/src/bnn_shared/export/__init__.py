"""Bit-packed export: ship a model whose weights really are bits, from any package.

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

**Which tensors are packed.** For every module of the model, in this order:

1. a module with a ``packed_state()`` method says it itself: a dict from its own state-dict
   keys (``"weight"``, ``"s"``, ``"mapping.weight"``) to :class:`Packed` (a quantized float
   tensor and its precision) or :class:`Indices` (integer indices, e.g. a LUT's wiring, stored
   with ``ceil(log2(size))`` bits, decoded as integers or as a one-hot float matrix). After
   loading, its ``packed_loaded()`` method, if any, is called (to drop a quantizer whose
   output is no longer its input, for example);
2. a layer with a ``kernel_quantizer`` of ``precision <= 8`` and ``quantized_weight()`` (the
   core's quant layers): its ``weight`` (the rule above);
3. a weight under a ``torch.nn.utils.parametrize`` parametrization that is a
   :class:`~bnn_shared.quantizers.Quantizer` of ``precision <= 8``: the quantized weight is
   stored in ``parametrizations.weight.original`` (the quantizer must give back its own
   outputs unchanged, as a sign does; this is checked when saving).

**Files.** :func:`save_binary` can also record the ``package`` that defines the model, the
``model_class`` and the ``config`` it is built from; :func:`load` then rebuilds the model
through that package's ``bnn_shared.models`` entry point (its ``build(model_class, config)``),
without the training code's command line. ``python -m bnn_shared.export RUN_DIR`` exports a
trained run (see :mod:`bnn_shared.export.__main__`).
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import quantizers
from ..errors import CheckpointError, ShapeError
from ..ext import bitpack

__all__ = [
    "ENTRY_POINT_GROUP",
    "FORMAT",
    "Indices",
    "Packed",
    "Rebuilt",
    "RunModel",
    "load",
    "model_packages",
    "pack_indices",
    "package_api",
    "packed_entries",
    "read_header",
    "binary_state_dict",
    "load_binary",
    "load_trained_weights",
    "pack_tensor",
    "packed_nbytes",
    "save_binary",
    "storage_bits",
    "unpack_tensor",
]

#: Value of the ``"format"`` field of a packed entry.
FORMAT = "bitpacked"
_FILE_FORMAT = "bnn_shared.binary"
_FILE_VERSION = 2
#: Entry-point group through which a package says how to build and export its models.
ENTRY_POINT_GROUP = "bnn_shared.models"


@dataclass
class RunModel:
    """What a package's ``from_run(run_config, state_dict)`` gives the export command.

    Attributes:
        model: the model with the run's trained weights (CPU).
        model_class: its name for the package's ``build``.
        config: the plain values ``build(model_class, config)`` needs to rebuild it.
        summary_kwargs: arguments of :func:`bnn_shared.summary.summary` (``input_size``,
            ``dtypes``, ...).
        run_config: the run's config (for the package's ``test_inputs``).
    """

    model: nn.Module
    model_class: str
    config: dict[str, Any]
    summary_kwargs: dict[str, Any] = field(default_factory=dict)
    run_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Packed:
    """A quantized float tensor to store with ``precision`` bits per value (codebook + codes)."""

    value: torch.Tensor
    precision: int


@dataclass(frozen=True)
class Rebuilt:
    """A state-dict entry that carries no information (e.g. an ``arange`` wiring a module
    always builds the same way): not stored; loading keeps the rebuilt model's own value."""

    shape: tuple[int, ...]


@dataclass(frozen=True)
class Indices:
    """Integer indices in ``[0, size)`` stored with ``ceil(log2(size))`` bits each.

    Decoded as an int64 tensor of ``value``'s shape, or with ``one_hot=True`` as a float
    tensor of shape ``(size, *value.shape)`` with 1 at each index along dim 0 (the arg-max
    form of a learnable mapping's weight matrix)."""

    value: torch.Tensor
    size: int
    one_hot: bool = False

    @property
    def bits(self) -> int:
        return max(1, math.ceil(math.log2(self.size))) if self.size > 1 else 1

    @property
    def shape(self) -> tuple[int, ...]:
        shape = tuple(self.value.shape)
        return (self.size, *shape) if self.one_hot else shape


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
    if entry.get("kind") == "indices":
        return _unpack_indices(entry)
    shape = torch.Size(entry["shape"])
    codes = bitpack.unpack_bits(entry["packed"], entry["bits"], shape.numel()).long()
    codebook = entry["codebook"].to(getattr(torch, entry["dtype"]))
    if codebook.dim() == 1:
        return codebook[codes].reshape(shape)
    rows = codes.reshape(codebook.shape[0], -1)
    return torch.gather(codebook, 1, rows).reshape(shape)


def packed_entries(model: nn.Module) -> dict[str, Packed | Indices | Rebuilt]:
    """The state-dict keys of ``model`` that are stored packed, with what is stored.

    See the module docstring for the three rules. Raises ShapeError when two modules claim
    the same key or a parametrization's quantizer does not give back its own outputs.
    """
    entries: dict[str, Packed | Indices | Rebuilt] = {}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        for key, entry in _module_entries(module).items():
            if prefix + key in entries:
                raise ShapeError(f"{prefix + key} is packed twice")
            entries[prefix + key] = entry
    return entries


def _module_entries(module: nn.Module) -> dict[str, Packed | Indices | Rebuilt]:
    if callable(getattr(module, "packed_state", None)):
        with torch.no_grad():
            return dict(module.packed_state())
    precision = _packed_precision(module)
    if precision is not None:
        with torch.no_grad():
            return {"weight": Packed(module.quantized_weight().detach(), precision)}
    quantizer = _weight_parametrization(module)
    if quantizer is None or quantizer.precision > 8:
        return {}
    with torch.no_grad():
        q = module.weight.detach()
        if not torch.equal(quantizer(q), q):
            raise ShapeError(
                f"{type(quantizer).__name__} on {type(module).__name__}.weight does not give "
                "back its own outputs; give the module a packed_state() method"
            )
    return {"parametrizations.weight.original": Packed(q, int(quantizer.precision))}


def _weight_parametrization(module: nn.Module) -> quantizers.Quantizer | None:
    chain = getattr(getattr(module, "parametrizations", None), "weight", None)
    if chain is None:
        return None
    found = [p for p in chain if isinstance(p, quantizers.Quantizer)]
    return found[-1] if len(found) == 1 and len(chain) == 1 else None


def binary_state_dict(model: nn.Module) -> dict[str, Any]:
    """``model.state_dict()`` with every entry of :func:`packed_entries` bit-packed.

    A core quant layer's ``<prefix>weight`` becomes a packed entry of ``quantized_weight()``
    (the latent float weight is not stored). Other entries are kept.
    """
    state: dict[str, Any] = dict(model.state_dict())
    for key, entry in packed_entries(model).items():
        if key not in state:
            raise ShapeError(f"{key} is not in the model's state_dict; it cannot be packed")
        shape = entry.value.shape if isinstance(entry, Packed) else entry.shape
        if tuple(shape) != tuple(state[key].shape):
            raise ShapeError(
                f"{key}: the packed value has shape {tuple(shape)}, the state_dict entry "
                f"{tuple(state[key].shape)}"
            )
        if isinstance(entry, Rebuilt):
            state[key] = {"format": FORMAT, "kind": "rebuilt", "shape": list(shape)}
        elif isinstance(entry, Indices):
            state[key] = pack_indices(entry, state[key].dtype)
        else:
            state[key] = pack_tensor(entry.value, entry.precision)
    return state


def pack_indices(entry: Indices, dtype: torch.dtype = torch.int64) -> dict[str, Any]:
    """Encode :class:`Indices` as a packed entry (``"kind": "indices"``), bits little-endian."""
    values = entry.value.detach().reshape(-1).long().cpu()
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= entry.size):
        low, high = int(values.min()), int(values.max())
        raise ShapeError(f"indices must lie in [0, {entry.size}), got {low}..{high}")
    bits = entry.bits
    planes = (values.unsqueeze(1) >> torch.arange(bits)) & 1
    return {
        "format": FORMAT,
        "kind": "indices",
        "bits": bits,
        "size": int(entry.size),
        "one_hot": bool(entry.one_hot),
        "shape": list(entry.value.shape),
        "dtype": str(dtype).removeprefix("torch."),
        "packed": bitpack.pack_bits(planes.to(torch.uint8), 1),
    }


def _unpack_indices(entry: dict[str, Any]) -> torch.Tensor:
    shape = torch.Size(entry["shape"])
    bits = entry["bits"]
    planes = bitpack.unpack_bits(entry["packed"], 1, shape.numel() * bits).long()
    values = (planes.reshape(-1, bits) << torch.arange(bits)).sum(1).reshape(shape)
    dtype = getattr(torch, entry["dtype"])
    if not entry["one_hot"]:
        return values.to(dtype)
    out = torch.zeros((entry["size"], *shape), dtype=dtype)
    return out.scatter_(0, values.unsqueeze(0), 1)


def save_binary(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    package: str | None = None,
    model_class: str | None = None,
    config: dict[str, Any] | None = None,
) -> Path:
    """Write :func:`binary_state_dict` of ``model`` to ``path`` atomically; returns the path.

    Args:
        model: the model.
        path: the file to write.
        package: the package whose ``bnn_shared.models`` entry point rebuilds the model (for
            :func:`load`). Default None (load with :func:`load_binary` and a model).
        model_class: the model's name for that package's ``build``. Default: the class name.
        config: plain values (numbers, strings, lists, dicts) ``build`` needs. Default None.
    """
    path = Path(path)
    state = binary_state_dict(model)  # before anything is written: its errors leave no file
    payload = {
        "format": _FILE_FORMAT,
        "version": _FILE_VERSION,
        "package": package,
        "model_class": model_class or type(model).__name__,
        "config": config,
        "state_dict": state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
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
        ``model``: the model holding the stored weights; core quant layers get a
        ``quantizers.NoOp(precision=p)`` kernel quantizer (forward uses them unchanged) and
        modules with ``packed_loaded()`` have it called.

    Raises:
        CheckpointError: the file is missing or not a binary export, or ``model`` does not
            match it (the message names the key).
    """
    packed_state = _read(Path(path))["state_dict"]
    rebuilt = {key for key, value in packed_state.items() if _is_rebuilt(value)}
    state = {
        key: unpack_tensor(value) if _is_packed(value) else value
        for key, value in packed_state.items()
        if key not in rebuilt
    }
    if model is None:
        return state
    own = model.state_dict()
    for key in rebuilt:  # the rebuilt model's own value, if it has the recorded shape
        if key in own and list(own[key].shape) == packed_state[key]["shape"]:
            state[key] = own[key]
    _check_matches(model, state, path)
    with torch.no_grad():
        model.load_state_dict(state, strict=True)
    packed_keys = {key for key, entry in packed_state.items() if _is_packed(entry)}
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if callable(getattr(module, "packed_loaded", None)):
            module.packed_loaded()
        elif f"{prefix}weight" in packed_keys and _packed_precision(module) is not None:
            entry = packed_state[f"{prefix}weight"]
            module.kernel_quantizer = quantizers.NoOp(precision=entry["precision"])
    return model


def load_trained_weights(
    model: nn.Module, state_dict: Any, what: str = "the run's model"
) -> nn.Module:
    """Load a run checkpoint's ``state_dict`` into the rebuilt ``model`` (strict), for a
    package's ``from_run``; a checkpoint that does not fit is one CheckpointError line."""
    try:
        model.load_state_dict(dict(state_dict), strict=True)
    except RuntimeError as exc:
        reason = " ".join(str(exc).strip().splitlines()[:2])
        raise CheckpointError(f"the checkpoint does not fit {what}: {reason}") from None
    return model


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """``{"package", "model_class", "config", "version"}`` of a file written by
    :func:`save_binary` (None where it did not record them)."""
    payload = _read(Path(path))
    return {key: payload.get(key) for key in ("package", "model_class", "config", "version")}


def model_packages() -> dict[str, metadata.EntryPoint]:
    """The installed packages that can rebuild their models, by name (entry-point group
    ``bnn_shared.models``)."""
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def package_api(package: str | None, path: Any = "") -> Any:
    """The export module a package registered under ``bnn_shared.models`` (loaded)."""
    known = model_packages()
    if package is None:
        raise CheckpointError(
            f"{path} does not say which package defines its model; load it with "
            "load_binary(path, model)"
        )
    if package not in known:
        choices = ", ".join(sorted(known)) or "none installed"
        raise CheckpointError(
            f"{path}: its model comes from the package {package!r}, which is not installed "
            f"(packages that export models: {choices})"
        )
    return known[package].load()


def load(path: str | os.PathLike) -> nn.Module:
    """Rebuild the model a file of :func:`save_binary` describes, with its stored weights.

    The package recorded in the file builds the model from its class name and config (its
    ``bnn_shared.models`` entry point's ``build``); the weights are then loaded as by
    :func:`load_binary`. The model is returned in eval mode, on the CPU.

    Raises:
        CheckpointError: not a packed model, truncated, from a package that is not installed,
            or weights whose shapes do not match the rebuilt model.
    """
    header = read_header(path)
    api = package_api(header["package"], path)
    try:
        model = api.build(header["model_class"], dict(header["config"] or {}))
    except (TypeError, KeyError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: {header['package']} cannot build {header['model_class']!r} from the "
            f"stored config: {exc}"
        ) from exc
    return load_binary(path, model).eval()


def packed_nbytes(state: dict[str, Any]) -> dict[str, int | float]:
    """Sizes of the packed entries of a :func:`binary_state_dict`.

    Returns:
        ``{"tensors": number of packed entries, "packed_bytes": bytes of their packed codes,
        "codebook_bytes": bytes of their codebooks, "float32_bytes": bytes the same weights
        take as float32, "ratio": float32_bytes / (packed_bytes + codebook_bytes)}``.
    """
    entries = [value for value in state.values() if _is_packed(value)]
    packed = sum(entry["packed"].numel() for entry in entries)
    codebooks = sum(entry["codebook"].nbytes for entry in entries if "codebook" in entry)
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
    return isinstance(value, dict) and value.get("format") == FORMAT and not _is_rebuilt(value)


def _is_rebuilt(value: Any) -> bool:
    return (
        isinstance(value, dict) and value.get("format") == FORMAT and value.get("kind") == "rebuilt"
    )


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"no binary export at {path} (write one with save_binary)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"{path} is not a packed model (unreadable or truncated: {reason})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != _FILE_FORMAT:
        raise CheckpointError(f"{path} is not a packed model written by save_binary")
    if payload.get("version", 0) > _FILE_VERSION:
        raise CheckpointError(
            f"{path} has format version {payload['version']}; this bnn_shared reads up to "
            f"{_FILE_VERSION}"
        )
    if not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError(f"{path} is not a packed model written by save_binary")
    return payload


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

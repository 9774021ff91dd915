"""Export a trained DWN for hardware: thresholds, wiring and truth-table bits in one file.

A DWN is, after training, a boolean circuit (spec §10 "Export for hardware"): the truth table
of LUT ``j`` is ``T[j, a] = luts[j, a] > 0``, its wiring the (resolved) mapping ``M[j, :]``
with address bit ``l`` read from input ``M[j, l]`` (first input = least-significant bit), the
thermometer keeps its thresholds (strict ``x > thr``) and GroupSum becomes popcount + argmax.
:func:`export` writes that description; :func:`load_compiled` reads it back as a
:class:`~dwn.compiled.CompiledDWN` that predicts with integer and bit operations only, exactly
as the PyTorch model does. No float LUT value is stored: only their signs, as bits.

File format (``"format": "dwn.compiled"``, ``"version": 1``): a NumPy ``.npz`` archive
(zip, compressed, readable with ``numpy.load(path, allow_pickle=False)``) whose entries are

* ``header``: 0-d unicode array holding a JSON object: ``format``, ``version``,
  ``feature_shape`` (raw sample shape), ``feature_wise``, ``num_bits``, ``layers`` (one
  ``{"input_size", "output_size", "n"}`` per LUT layer), ``groupsum`` (``{"k", "inputs",
  "permuted", "padded_size"}``) and ``tables_bit_order`` (``"little"``);
* ``thresholds``: float32 (float64 if the encoder's are), ``(*feature_shape, num_bits)`` when
  ``feature_wise``, else ``(num_bits,)``; the only float entry;
* ``layer{i}.wiring``: smallest unsigned integer dtype, ``(J_i, n_i)``;
* ``layer{i}.tables``: uint8 ``(ceil(J_i * 2**n_i / 8),)``, all truth tables as one bit
  string, bit ``j * 2**n + a`` = output of LUT ``j`` at address ``a`` (LSB-first bytes, as
  ``numpy.packbits(..., bitorder="little")``);
* ``groupsum.permutation`` (only when GroupSum permutes): unsigned ``(size,)``; GroupSum reads
  ``out[:, permutation]`` (``size <= J_last`` outputs), zero-pads to ``padded_size =
  k * ceil(size / k)`` and class ``c`` counts the ones of ``[c*m, (c+1)*m)``.

Supported models: an ``nn.Sequential`` of an optional leading ``nn.Flatten``, one or more
:class:`~dwn.lut_layer.LUTLayer` (``ste=True``) and a final :class:`~dwn.utils.GroupSum`
(``tau > 0``), fed with ``encoder.binarize(x).flatten(1)`` of a fitted thermometer.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bnn_shared.errors import CheckpointError, ConfigError, ShapeError
from torch import nn

from .binarization import Thermometer
from .compiled import CompiledDWN, CompiledLUTLayer, wiring_dtype
from .lut_layer import LUTLayer
from .utils import GroupSum

__all__ = ["FORMAT", "VERSION", "compile_model", "export", "load_compiled", "save_compiled"]

#: Value of the header's ``"format"`` field.
FORMAT = "dwn.compiled"
#: Newest file version this module writes and reads.
VERSION = 1


def export(model: nn.Module, encoder: Thermometer, path: str | os.PathLike) -> Path:
    """Write the bit-level description of ``model`` fed by ``encoder`` to ``path``.

    Args:
        model: ``nn.Sequential([nn.Flatten()], LUTLayer, ..., GroupSum)``, in any mode.
        encoder: the fitted thermometer whose ``binarize(x).flatten(1)`` feeds ``model``.
        path: destination file (any name; ``.npz`` or ``.dwn`` are usual). Written atomically.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: unsupported model or encoder (the message says which part).
        ShapeError: the encoder's bits do not match the first layer, or layers do not chain.
    """
    return save_compiled(compile_model(model, encoder), path)


def compile_model(model: nn.Module, encoder: Thermometer) -> CompiledDWN:
    """The :class:`CompiledDWN` of ``model`` fed by ``encoder``, without writing a file.

    Predicts exactly ``model(encoder.binarize(x).flatten(1)).argmax(1)``. Arguments and
    errors as :func:`export`.
    """
    thresholds, feature_shape = _encoder_description(encoder)
    luts, head = _split_model(model)
    num_bits = int(thresholds.shape[-1])
    if feature_shape is None:  # shared thresholds: the first layer tells the feature count
        features, rest = divmod(int(luts[0].input_size), num_bits)
        if rest:
            raise ShapeError(
                f"LUT layer 0 reads {luts[0].input_size} bits, not a multiple of "
                f"the encoder's {num_bits} bits per feature"
            )
        feature_shape = (features,)
    width = int(np.prod(feature_shape)) * num_bits
    layers = []
    for index, layer in enumerate(luts):
        if int(layer.input_size) != width:
            raise ShapeError(
                f"LUT layer {index} expects {layer.input_size} input bits but "
                f"gets {width} (from the encoder or the previous layer)"
            )
        layers.append(_compile_layer(layer, index))
        width = layers[-1].output_size
    return CompiledDWN(
        thresholds, feature_shape, encoder.feature_wise, layers, head.k, _permutation(head, width)
    )


def save_compiled(compiled: CompiledDWN, path: str | os.PathLike) -> Path:
    """Write ``compiled`` to ``path`` in the format of the module docstring, atomically."""
    header = {
        "format": FORMAT,
        "version": VERSION,
        "feature_shape": list(compiled.feature_shape),
        "feature_wise": compiled.feature_wise,
        "num_bits": compiled.num_bits,
        "layers": [
            {"input_size": layer.input_size, "output_size": layer.output_size, "n": layer.n}
            for layer in compiled.layers
        ],
        "groupsum": {
            "k": compiled.num_classes,
            "inputs": compiled.layers[-1].output_size,
            "permuted": compiled.permutation is not None,
            "padded_size": compiled.padded_size,
        },
        "tables_bit_order": "little",
    }
    arrays: dict[str, np.ndarray] = {
        "header": np.array(json.dumps(header)),
        "thresholds": compiled.thresholds,
    }
    for index, layer in enumerate(compiled.layers):
        arrays[f"layer{index}.wiring"] = layer.wiring
        arrays[f"layer{index}.tables"] = layer.tables
    if compiled.permutation is not None:
        width = compiled.layers[-1].output_size
        arrays["groupsum.permutation"] = compiled.permutation.astype(wiring_dtype(width))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path = Path(path)
    _atomic_write_bytes(path, buffer.getvalue())
    return path


def load_compiled(path: str | os.PathLike) -> CompiledDWN:
    """Read a file written by :func:`export` as a :class:`CompiledDWN`.

    Raises:
        CheckpointError: missing file, not a DWN export, newer version, or inconsistent content.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no DWN export at {path} (write one with dwn.export)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path} is not a readable DWN export: {exc}") from exc
    header = _read_header(arrays, path)
    try:
        return _from_arrays(header, arrays)
    except KeyError as exc:
        raise CheckpointError(f"{path} lacks the entry {exc}; the file is incomplete") from exc
    except (ShapeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} is an inconsistent DWN export: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# Model to description
# ---------------------------------------------------------------------------------------------


def _encoder_description(encoder: Any) -> tuple[np.ndarray, tuple[int, ...] | None]:
    """Thresholds as a NumPy float array and the raw feature shape (None when not known)."""
    if not isinstance(encoder, Thermometer):
        raise ConfigError(
            f"export needs a dwn thermometer encoder (Thermometer, "
            f"GaussianThermometer, DistributiveThermometer), got "
            f"{type(encoder).__name__}"
        )
    if encoder.thresholds is None:
        raise ConfigError(f"the {type(encoder).__name__} is not fitted; call fit(x) first")
    thresholds = encoder.thresholds.detach().cpu()
    if thresholds.dtype not in (torch.float16, torch.float32, torch.float64):
        # bfloat16 values are exact in float32 (only an integer input could then round
        # differently, since torch would compare it in bfloat16).
        thresholds = thresholds.float()
    thresholds = thresholds.numpy()
    return thresholds, tuple(thresholds.shape[:-1]) if encoder.feature_wise else None


def _split_model(model: nn.Module) -> tuple[list[LUTLayer], GroupSum]:
    if not isinstance(model, nn.Sequential):
        raise ConfigError(
            f"export needs an nn.Sequential of LUTLayers and a GroupSum, got {type(model).__name__}"
        )
    modules = list(model)
    if modules and isinstance(modules[0], nn.Flatten):
        modules = modules[1:]
    if len(modules) < 2 or not isinstance(modules[-1], GroupSum):
        raise ConfigError("export needs a model ending in GroupSum after at least one LUTLayer")
    luts, head = modules[:-1], modules[-1]
    for index, module in enumerate(luts):
        if not isinstance(module, LUTLayer):
            raise ConfigError(
                f"export supports LUTLayers between the input and GroupSum; "
                f"module {index} is a {type(module).__name__}"
            )
        if not module.ste:
            raise ConfigError(
                f"LUT layer {index} has ste=False (real outputs); only binary "
                f"LUT layers (ste=True) can be exported"
            )
    if not float(head.tau) > 0:
        raise ConfigError(
            f"GroupSum tau must be > 0 for export (argmax of the popcounts), got {head.tau}"
        )
    return luts, head


def _compile_layer(layer: LUTLayer, index: int) -> CompiledLUTLayer:
    with torch.no_grad():
        wiring = layer.effective_mapping().detach().cpu().long().numpy()
        tables = layer.truth_tables().detach().cpu().bool().numpy()
    count, n = int(layer.output_size), int(layer.n)
    if wiring.shape != (count, n) or tables.shape != (count, 1 << n):
        raise ShapeError(
            f"LUT layer {index}: wiring {wiring.shape} and tables {tables.shape} "
            f"do not match {count} LUTs of {n} inputs"
        )
    if wiring.size and (wiring.min() < 0 or wiring.max() >= layer.input_size):
        raise ShapeError(f"LUT layer {index}: wiring outside 0..{layer.input_size - 1}")
    return CompiledLUTLayer(
        input_size=int(layer.input_size),
        wiring=wiring.astype(wiring_dtype(int(layer.input_size))),
        tables=np.packbits(tables.reshape(-1), bitorder="little"),
    )


def _permutation(head: GroupSum, width: int) -> np.ndarray | None:
    if getattr(head, "_permute_all", False) and head.randperm is None:
        raise ConfigError(
            "GroupSum(randperm=True) draws its permutation at the first forward "
            "call; run the model once before exporting it"
        )
    perm = head.randperm
    if perm is None:
        return None
    if perm.numel() > width:
        raise ShapeError(
            f"the GroupSum permutation has {perm.numel()} entries but the last "
            f"LUT layer only {width} outputs"
        )
    return perm.detach().cpu().long().numpy()


# ---------------------------------------------------------------------------------------------
# File to description
# ---------------------------------------------------------------------------------------------


def _read_header(arrays: dict[str, np.ndarray], path: Path) -> dict[str, Any]:
    try:
        header = json.loads(str(arrays["header"]))
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a DWN export (no readable header)") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a DWN export (format is not {FORMAT!r})")
    version = header.get("version")
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise CheckpointError(
            f"{path} has format version {version!r}; this dwn reads versions 1..{VERSION}"
        )
    return header


def _from_arrays(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> CompiledDWN:
    layers = []
    for index, spec in enumerate(header["layers"]):
        layer = CompiledLUTLayer(
            int(spec["input_size"]), arrays[f"layer{index}.wiring"], arrays[f"layer{index}.tables"]
        )
        if (layer.output_size, layer.n) != (spec["output_size"], spec["n"]):
            raise ShapeError(f"layer {index} arrays disagree with the header {spec}")
        layers.append(layer)
    groupsum = header["groupsum"]
    permutation = arrays["groupsum.permutation"] if groupsum["permuted"] else None
    compiled = CompiledDWN(
        arrays["thresholds"],
        header["feature_shape"],
        header["feature_wise"],
        layers,
        groupsum["k"],
        permutation,
    )
    if compiled.padded_size != groupsum["padded_size"]:
        raise ShapeError(
            f"GroupSum pads to {compiled.padded_size}, the header says {groupsum['padded_size']}"
        )
    return compiled


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data``: a temporary file next to it, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # os.open rather than mkstemp: mode 0o666 minus the umask, like any file the user writes.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

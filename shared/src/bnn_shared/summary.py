"""Bit-aware model summary: what a model costs once its weights really are bits.

``summary(model, input_size)`` runs one forward pass with hooks and prints two tables in
the style of larq's ``summary``:

* per layer: input precision, output shape, parameter counts per bit-width, memory and
  multiply-accumulates (MACs) per precision;
* totals: parameters, model size, size with 8-bit float weights, float-32 equivalent,
  compression ratio, number of MACs and the shares of binarized and ternarized MACs.

A parameter's bit-width is the ``precision`` of the quantizer that produces it (the
``kernel_quantizer`` of :mod:`bnn_shared.layers`), 32 otherwise, so any ``nn.Module`` works:
modules without quantizers count as 32-bit. A MAC's precision is the larger of the layer's
input precision and its weight precision. Memory is counted in KiB (1 KiB = 8 x 1024 bits).
Like larq, the summary models deployment cost, not the memory of the training graph: the
latent float weights the optimizer updates are not counted twice.

Where the bit-widths come from, for a layer's own parameters:

* ``param_precisions() -> dict[str, int | tuple[int, int]]`` of the layer, when it defines
  one: the bit-width of each of its own parameters by name, or ``(bits, count)`` for a
  parameter that ships in another form (a learnable choice matrix shipped as ``count``
  indices of ``bits`` bits; ``(0, 0)``: a latent parameter that is not shipped at all);
* its ``kernel_quantizer``'s ``precision`` for ``weight`` (the core's quant layers), or its
  ``weight_precision`` attribute (any layer that exposes ``quantized_weight()``);
* a ``torch.nn.utils.parametrize`` parametrization of ``weight`` that is a quantizer: the
  parametrized layer is listed with its latent ``weight`` at the quantizer's precision.

``summary_macs(inputs, output) -> list[tuple[int, int]]`` (``(precision, count)`` pairs) lets
a layer count its own operations. A layer with parameters that the forward pass does not call
(a network that reads its weight matrices directly, as EP's relaxation does) is still listed,
with its parameters and without output shape or MACs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import ShapeError
from .quantizers import Quantizer

__all__ = ["LayerStats", "ModelSummary", "summary"]

_LINEAR_TYPES = (nn.Linear,)
_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass
class LayerStats:
    """Cost of one layer: parameters per bit-width and MACs per precision."""

    name: str
    kind: str
    input_precision: int | None
    output_shape: tuple[int, ...] | None
    params: dict[int, int] = field(default_factory=dict)
    trainable: int = 0
    macs: dict[int, int] = field(default_factory=dict)

    @property
    def memory_bits(self) -> int:
        return sum(bits * count for bits, count in self.params.items())


@dataclass
class ModelSummary:
    """Result of :func:`summary`; ``str()`` renders the two tables."""

    name: str
    layers: list[LayerStats]

    def _total(self, attr: str) -> dict[int, int]:
        total: dict[int, int] = {}
        for layer in self.layers:
            for bits, count in getattr(layer, attr).items():
                total[bits] = total.get(bits, 0) + count
        return total

    @property
    def params(self) -> dict[int, int]:
        return self._total("params")

    @property
    def macs(self) -> dict[int, int]:
        return self._total("macs")

    @property
    def total_params(self) -> int:
        return sum(self.params.values())

    @property
    def trainable_params(self) -> int:
        return sum(layer.trainable for layer in self.layers)

    @property
    def memory_bytes(self) -> float:
        return sum(layer.memory_bits for layer in self.layers) / 8

    @property
    def memory_8bit_bytes(self) -> float:
        return sum(min(bits, 8) * count for bits, count in self.params.items()) / 8

    @property
    def float32_bytes(self) -> float:
        return 32 * self.total_params / 8

    @property
    def compression_ratio(self) -> float:
        """Float-32 size divided by the model's size (larger means smaller model)."""
        return self.float32_bytes / self.memory_bytes if self.memory_bytes else 1.0

    @property
    def total_macs(self) -> int:
        return sum(self.macs.values())

    def mac_ratio(self, precision: int) -> float:
        return self.macs.get(precision, 0) / self.total_macs if self.total_macs else 0.0

    def as_dict(self) -> dict[str, float]:
        """Totals as plain numbers (for CSVs and tests)."""
        return {
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "memory_bytes": self.memory_bytes,
            "memory_8bit_bytes": self.memory_8bit_bytes,
            "float32_bytes": self.float32_bytes,
            "compression_ratio": self.compression_ratio,
            "total_macs": self.total_macs,
            "binarized_mac_ratio": self.mac_ratio(1),
            "ternarized_mac_ratio": self.mac_ratio(2),
        }

    def __str__(self) -> str:
        return self.layer_table() + "\n" + self.totals_table()

    def layer_table(self) -> str:
        param_bits = sorted(self.params)
        mac_bits = sorted(self.macs)
        header = ["Layer", "Input prec. (bit)", "Outputs"]
        header += [f"# {bits}-bit" for bits in param_bits]
        header += ["Memory (KiB)"] + [f"{bits}-bit MACs" for bits in mac_bits]
        rows = []
        for layer in self.layers:
            row = [
                f"{layer.name} ({layer.kind})",
                "-" if layer.input_precision is None else str(layer.input_precision),
                _shape(layer.output_shape),
            ]
            row += [str(layer.params.get(bits, 0)) for bits in param_bits]
            row += [f"{layer.memory_bits / 8 / 1024:.2f}"]
            row += [str(layer.macs.get(bits, 0)) for bits in mac_bits]
            rows.append(row)
        total = ["Total", "", ""] + [str(self.params[bits]) for bits in param_bits]
        total += [f"{self.memory_bytes / 1024:.2f}"] + [str(self.macs[b]) for b in mac_bits]
        return _render(f"{self.name} stats", header, rows + [total])

    def totals_table(self) -> str:
        rows = [
            ["Total params", f"{self.total_params}"],
            ["Trainable params", f"{self.trainable_params}"],
            ["Non-trainable params", f"{self.total_params - self.trainable_params}"],
            ["Model size", _bytes(self.memory_bytes)],
            ["Model size (8-bit FP weights)", _bytes(self.memory_8bit_bytes)],
            ["Float-32 Equivalent", _bytes(self.float32_bytes)],
            ["Compression Ratio of Memory", f"{self.compression_ratio:.2f}"],
            ["Number of MACs", f"{self.total_macs}"],
        ]
        for precision, label in ((1, "binarized"), (2, "ternarized")):
            if self.macs.get(precision):
                rows.append([f"Ratio of MACs that are {label}", f"{self.mac_ratio(precision):.4f}"])
        return _render(f"{self.name} summary", ["", ""], rows, header_row=False)


def summary(
    model: nn.Module,
    input_size: Sequence[int] | Sequence[Sequence[int]] | None = None,
    *,
    input_data: torch.Tensor | Sequence[torch.Tensor] | None = None,
    dtypes: Sequence[torch.dtype] | None = None,
    batch_size: int = 1,
    print_fn: Callable[[str], None] | None = print,
) -> ModelSummary:
    """Run one forward pass and report the model's cost per layer and in total.

    Args:
        model: any ``nn.Module``.
        input_size: shape of one input without the batch dimension, e.g. ``(1, 28, 28)``,
            or a list of such shapes for several inputs.
        input_data: real inputs instead of ``input_size`` (needed for integer token ids
            unless ``dtypes`` is given).
        dtypes: dtype of each input built from ``input_size`` (default float32; integer
            dtypes are filled with zeros).
        batch_size: batch size of the generated inputs (default 1).
        print_fn: called with the rendered tables; ``None`` prints nothing.

    Returns:
        A :class:`ModelSummary`; ``str(result)`` is what was printed.

    Raises:
        ShapeError: neither ``input_size`` nor ``input_data`` was given, or the forward pass
            failed on inputs of that shape.
    """
    inputs = _make_inputs(model, input_size, input_data, dtypes, batch_size)
    owned = _owned_quantizers(model)
    records: dict[str, LayerStats] = {}
    seen = _Precisions()
    handles = []
    reported = []
    for name, module in model.named_modules():
        if id(module) in owned:
            continue
        handles.append(module.register_forward_hook(seen.note))
        if not _is_reported(module):
            continue
        reported.append((name or "model", module))
        hook = _hook(name or "model", module, records, seen)
        handles.append(module.register_forward_hook(hook, prepend=True))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*inputs)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise ShapeError(
            f"summary: the forward pass failed on inputs of shape "
            f"{[tuple(x.shape) for x in inputs]}: {exc}"
        ) from exc
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    for name, module in reported:  # layers the forward pass did not call: parameters only
        if name not in records and _own_parameters(module):
            records[name] = _layer_stats(name, module, None)
    order = {name: index for index, (name, _) in enumerate(reported)}
    called = sorted(records.values(), key=lambda stats: order.get(stats.name, len(order)))
    layers = _dedupe_shared_params(called, model, owned)
    result = ModelSummary(type(model).__name__, layers)
    if print_fn is not None:
        print_fn(str(result))
    return result


# ---------------------------------------------------------------------------- helpers


def _make_inputs(model, input_size, input_data, dtypes, batch_size) -> list[torch.Tensor]:
    if input_data is not None:
        return [input_data] if isinstance(input_data, torch.Tensor) else list(input_data)
    if input_size is None:
        raise ShapeError("summary needs input_size (shape without batch) or input_data")
    sizes = list(input_size)
    if sizes and isinstance(sizes[0], int):
        sizes = [tuple(sizes)]
    dtypes = list(dtypes) if dtypes is not None else [torch.float32] * len(sizes)
    if len(dtypes) != len(sizes):
        raise ShapeError(f"summary: {len(sizes)} input sizes but {len(dtypes)} dtypes")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    inputs = []
    for size, dtype in zip(sizes, dtypes, strict=True):
        shape = (batch_size, *size)
        if dtype.is_floating_point:
            generator = torch.Generator().manual_seed(0)
            inputs.append(torch.randn(shape, generator=generator).to(device=device, dtype=dtype))
        else:
            inputs.append(torch.zeros(shape, dtype=dtype, device=device))
    return inputs


def _owned_quantizers(model: nn.Module) -> set[int]:
    """Modules that belong to a layer's cost: its quantizers and parametrizations."""
    owned = set()
    for module in model.modules():
        for attr in ("input_quantizer", "kernel_quantizer", "parametrizations"):
            quantizer = getattr(module, attr, None)
            if isinstance(quantizer, nn.Module):
                owned.update(id(m) for m in quantizer.modules())
    return owned


def _own_parameters(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The layer's own parameters, a parametrized tensor's latent ``original`` under the
    parametrized name (``weight``), a batch norm's running statistics, and the buffers its
    ``param_precisions()`` names (values inference needs, such as a thermometer's
    thresholds)."""
    params = list(module.named_parameters(recurse=False))
    if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
        # the running statistics inference normalises with: non-trainable 32-bit values, as
        # larq counts Keras's moving mean and variance
        params += [("running_mean", module.running_mean), ("running_var", module.running_var)]
    if hasattr(module, "param_precisions"):
        declared = module.param_precisions()
        params += [
            (name, buffer)
            for name, buffer in module.named_buffers(recurse=False)
            if name in declared and buffer is not None
        ]
    for tensor_name, chain in getattr(module, "parametrizations", {}).items():
        params += [(tensor_name, p) for p in chain.parameters(recurse=False)]
    return params


def _is_reported(module: nn.Module) -> bool:
    is_leaf = next(module.children(), None) is None
    has_own_params = bool(_own_parameters(module))
    declares = hasattr(module, "param_precisions") or hasattr(module, "summary_macs")
    return is_leaf or has_own_params or declares


def _param_precisions(module: nn.Module) -> dict[str, int]:
    declared = dict(module.param_precisions()) if hasattr(module, "param_precisions") else {}
    kernel = getattr(module, "kernel_quantizer", None)
    if "weight" not in declared and isinstance(kernel, Quantizer):
        declared["weight"] = int(kernel.precision)
    for tensor_name, chain in getattr(module, "parametrizations", {}).items():
        found = [p for p in chain if isinstance(p, Quantizer)]
        if found and tensor_name not in declared:
            declared[tensor_name] = int(found[-1].precision)
    if "weight" not in declared and isinstance(getattr(module, "weight_precision", None), int):
        declared["weight"] = int(module.weight_precision)
    return declared


def _input_precision(module: nn.Module, fed: int | None = None) -> int | None:
    """The layer's input_quantizer's precision; else ``fed``, the precision of the module
    whose output the layer reads (a sign activation module with ``precision = 1``); else 32
    for the layers that count MACs."""
    quantizer = getattr(module, "input_quantizer", None)
    if isinstance(quantizer, Quantizer):
        return int(quantizer.precision)
    if isinstance(module, _LINEAR_TYPES + _CONV_TYPES) or hasattr(module, "summary_macs"):
        return fed or 32
    return None


#: Modules whose output keeps the precision of their input (reshapes, max-pooling).
_PRECISION_KEEPING = (
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Dropout,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
)


class _Precisions:
    """Precision of the tensors produced during the summary's forward pass, by identity
    (the tensors are kept alive, so that an id is not reused)."""

    def __init__(self) -> None:
        self.by_id: dict[int, tuple[torch.Tensor, int]] = {}

    def of(self, inputs: tuple) -> int | None:
        first = inputs[0] if inputs else None
        entry = self.by_id.get(id(first)) if isinstance(first, torch.Tensor) else None
        return entry[1] if entry is not None else None

    def note(self, module: nn.Module, inputs: tuple, output: Any) -> None:
        if not isinstance(output, torch.Tensor):
            return
        precision = getattr(module, "precision", None)
        if isinstance(module, _PRECISION_KEEPING):
            precision = self.of(inputs)
        if isinstance(precision, int) and not isinstance(precision, bool) and precision < 32:
            self.by_id[id(output)] = (output, precision)


def _layer_stats(
    name: str, module: nn.Module, shape: tuple[int, ...] | None, fed: int | None = None
) -> LayerStats:
    stats = LayerStats(name, type(module).__name__, _input_precision(module, fed), shape)
    precisions = _param_precisions(module)
    for pname, param in _own_parameters(module):
        bits, count = _deployed(precisions.get(pname, 32), param)
        if count:
            stats.params[bits] = stats.params.get(bits, 0) + count
        stats.trainable += count if getattr(param, "requires_grad", False) else 0
    return stats


def _deployed(precision: int | tuple[int, int], param: torch.Tensor) -> tuple[int, int]:
    """(bits per value, number of values) a parameter ships as: ``param_precisions()`` gives
    an int (every entry at that width) or ``(bits, count)`` for a parameter that ships in
    another form (a learnable choice matrix shipped as ``count`` indices; ``count`` 0: not
    shipped at all)."""
    if isinstance(precision, tuple):
        return int(precision[0]), int(precision[1])
    return int(precision), param.numel()


def _hook(name: str, module: nn.Module, records: dict[str, LayerStats], seen: _Precisions):
    def record(mod, inputs, output):
        if name in records:  # a module called twice (weight sharing over time) is listed once
            return
        out = output[0] if isinstance(output, (tuple, list)) else output
        shape = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else None
        stats = _layer_stats(name, mod, shape, seen.of(inputs))
        precisions = _param_precisions(mod)
        for precision, count in _macs(mod, inputs, out, stats.input_precision, precisions):
            stats.macs[precision] = stats.macs.get(precision, 0) + count
        records[name] = stats

    return record


def _macs(module, inputs, output, input_precision, precisions) -> list[tuple[int, int]]:
    if hasattr(module, "summary_macs"):
        return list(module.summary_macs(inputs, output))
    if not isinstance(output, torch.Tensor):
        return []
    precision = max(input_precision or 32, precisions.get("weight", 32))
    if isinstance(module, _LINEAR_TYPES):
        positions = math.prod(output.shape[1:-1]) if output.dim() > 2 else 1
        return [(precision, module.weight.numel() * positions)]
    if isinstance(module, _CONV_TYPES):
        return [(precision, module.weight.numel() * math.prod(output.shape[2:]))]
    return []


def _dedupe_shared_params(layers, model, owned) -> list[LayerStats]:
    """Count a parameter shared by several modules (tied weights) once, at first use."""
    seen: set[int] = set()
    modules = dict(model.named_modules())
    for stats in layers:
        module = modules.get(stats.name) if stats.name != "model" else model
        if module is None:
            continue
        precisions = _param_precisions(module)
        for pname, param in _own_parameters(module):
            bits, count = _deployed(precisions.get(pname, 32), param)
            if id(param) in seen and count:
                stats.params[bits] -= count
                stats.trainable -= count if param.requires_grad else 0
                if stats.params[bits] == 0:
                    del stats.params[bits]
            seen.add(id(param))
    return layers


def _shape(shape: tuple[int, ...] | None) -> str:
    return "?" if shape is None else "(-1, " + ", ".join(str(s) for s in shape) + ")"


def _bytes(count: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.2f} {unit}"
    return f"{count:.2f} B"


def _render(title: str, header: list[str], rows: list[list[str]], header_row=True) -> str:
    table = ([header] if header_row else []) + rows
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    inner = sum(widths) + 3 * (len(widths) - 1)
    line = "+" + "-" * (inner + 2) + "+"
    top = "+" + f"{title}".center(inner + 2, "-") + "+"

    def fmt(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "| " + "   ".join(cells) + " |"

    out = [top]
    if header_row:
        out += [fmt(header), line]
    out += [fmt(row) for row in rows]
    out.append(line)
    return "\n".join(out)
